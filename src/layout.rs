//! The lane geometry of a segment.
//!
//! A segment of n bytes has B lanes of L = n / B bytes each (lane b is bytes
//! b*L .. (b+1)*L); the n % B bytes after them are the tail, stored raw. At step
//! t every lane's context is the T bytes before position t (zeros before the
//! lane's start) and its target is byte t.

/// Geometry of one segment.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Lanes B.
    pub lanes: usize,
    /// Bytes per lane L.
    pub lane_len: usize,
    /// Context length T.
    pub context: usize,
}

impl Layout {
    /// The layout of a segment of `n` bytes.
    pub fn new(n: usize, lanes: usize, context: usize) -> Self {
        Self {
            lanes,
            lane_len: n / lanes,
            context,
        }
    }

    /// Bytes covered by lanes; the rest of the segment is tail.
    pub fn body(&self) -> usize {
        self.lanes * self.lane_len
    }

    /// Fills `ctx` (B x T) with the contexts of step `t` and `tg` with its targets.
    pub(crate) fn gather(&self, data: &[u8], t: usize, ctx: &mut [u8], tg: Option<&mut [u8]>) {
        let (tt, l) = (self.context, self.lane_len);
        for b in 0..self.lanes {
            let row = &mut ctx[b * tt..(b + 1) * tt];
            let start = b * l;
            let have = t.min(tt);
            row[..tt - have].fill(0);
            row[tt - have..].copy_from_slice(&data[start + t - have..start + t]);
        }
        if let Some(tg) = tg {
            for b in 0..self.lanes {
                tg[b] = data[b * l + t];
            }
        }
    }
}
