//! The bytes of a frame the side models may look back at.
//!
//! Lane bytes are stored at their place in the input (segment bodies end to
//! end; the few raw tail bytes of a segment are left out) in a ring of a power
//! of two bytes, at least twice the largest segment, so the current segment
//! and at least one segment before it are always there. Positions are absolute
//! (they only grow), and a position is readable only if its byte is already
//! known to the decoder: an earlier segment inside the window, or a lane
//! offset below the number of steps learned in the current segment.

use crate::layout::Layout;

pub struct History {
    buf: Vec<u8>,
    mask: u64,
    /// Absolute position of the current segment's first byte.
    base: u64,
    lay: Layout,
    /// Steps learned in the current segment.
    steps: usize,
}

impl History {
    /// A ring for segments of at most `segment` bytes.
    pub fn new(segment: usize) -> Self {
        let size = Self::size(segment);
        Self {
            buf: vec![0; size],
            mask: size as u64 - 1,
            base: 0,
            lay: Layout::new(0, 1, 1),
            steps: 0,
        }
    }

    /// Bytes of the ring for segments of at most `segment` bytes.
    pub fn size(segment: usize) -> usize {
        (segment.max(1).next_power_of_two() * 2).max(1 << 12)
    }

    pub fn begin_segment(&mut self, lay: &Layout) {
        self.base += self.lay.body() as u64;
        self.lay = *lay;
        self.steps = 0;
    }

    /// Absolute position of lane `b` at step `t` of the current segment.
    pub fn pos(&self, b: usize, t: usize) -> u64 {
        self.base + (b * self.lay.lane_len + t) as u64
    }

    /// Whether the byte at `p` is known to both coder sides now.
    pub fn known(&self, p: u64) -> bool {
        let end = self.base + self.lay.body() as u64;
        if p < self.base {
            return p + self.mask + 1 >= end;
        }
        let i = (p - self.base) as usize;
        i < self.lay.body() && i % self.lay.lane_len < self.steps
    }

    pub fn at(&self, p: u64) -> u8 {
        self.buf[(p & self.mask) as usize]
    }

    /// Stores the bytes of the step just learned (one per lane).
    pub fn push_step(&mut self, bytes: &[u8]) {
        for (b, &v) in bytes.iter().enumerate() {
            let p = self.pos(b, self.steps);
            self.buf[(p & self.mask) as usize] = v;
        }
        self.steps += 1;
    }

    /// Steps learned in the current segment.
    pub fn steps(&self) -> usize {
        self.steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_learned_bytes_are_known() {
        let mut h = History::new(64);
        h.begin_segment(&Layout::new(40, 4, 4)); // lanes of 10
        assert!(!h.known(0));
        h.push_step(&[1, 2, 3, 4]);
        assert!(h.known(0) && h.known(10) && h.known(30));
        assert!(!h.known(1) && !h.known(40));
        assert_eq!((h.at(10), h.at(30)), (2, 4));
        h.begin_segment(&Layout::new(20, 2, 4));
        assert!(h.known(0), "earlier segments are known");
        assert!(!h.known(40));
        h.push_step(&[7, 8]);
        assert!(h.known(40) && h.known(50) && !h.known(41));
        assert_eq!(h.at(50), 8);
    }
}
