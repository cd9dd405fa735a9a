//! The match model: for every lane, the byte that followed the longest recent
//! occurrence of the lane's last bytes anywhere in the frame's history.
//!
//! Two hash tables map the hash of the last `long` and of the last `short`
//! bytes of a lane to the position right after them (the most recent such
//! position wins). A lane without a match looks up the long table first, then
//! the short one, and checks the candidate by comparing bytes backwards, so a
//! hash collision never becomes a match and the length is the true length. A
//! match then follows its source byte by byte until it mispredicts.

use super::history::History;

/// Length buckets of the confidence features (the last is "this long or longer").
pub const LEN_BUCKETS: [u32; 8] = [1, 8, 12, 16, 24, 32, 64, 128];
/// How far back a candidate is checked.
const MAX_VERIFY: usize = 128;

pub struct Matcher {
    /// Minimum lengths (short, long) and their tables.
    min: [usize; 2],
    tables: [Vec<u32>; 2],
    bits: u32,
    /// Per lane: source position of the predicted byte, and the match length.
    ptr: Vec<u64>,
    len: Vec<u32>,
    /// Per lane and table (lane-major): the table index of the lane's last
    /// bytes at step `hashed`, [`NONE`] where the lane has too few bytes.
    /// The prediction of a step looks up the same places the learning of
    /// that step then writes, so they are hashed once.
    at: Vec<usize>,
    hashed: Option<usize>,
}

/// No table index: the lane has fewer bytes than the table's length.
const NONE: usize = usize::MAX;

fn hash(h: &History, end: u64, n: usize, bits: u32) -> usize {
    let mut x: u64 = n as u64;
    for i in (1..=n as u64).rev() {
        x = (x ^ h.at(end - i) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    (x >> (64 - bits)) as usize
}

impl Matcher {
    pub fn new(short: usize, long: usize, bits: u32) -> Self {
        let n = 1usize << bits;
        Self {
            min: [short, long],
            tables: [vec![0; n], vec![0; n]],
            bits,
            ptr: Vec::new(),
            len: Vec::new(),
            at: Vec::new(),
            hashed: None,
        }
    }

    /// Hashes every lane's last bytes for both tables at step `t`.
    fn hash_all(&mut self, h: &History, t: usize, lanes: usize) {
        self.at.clear();
        for b in 0..lanes {
            let cur = h.pos(b, t);
            for n in self.min {
                let ok = n > 0 && t >= n;
                self.at
                    .push(if ok { hash(h, cur, n, self.bits) } else { NONE });
            }
        }
        self.hashed = Some(t);
    }

    pub fn begin_segment(&mut self, lanes: usize) {
        self.ptr = vec![0; lanes];
        self.len = vec![0; lanes];
        self.hashed = None;
    }

    /// The true length of the match of lane position `cur` with source `src`
    /// (both already valid positions), counting back at most [`MAX_VERIFY`]
    /// bytes and only over the lane's own bytes (`t` of them).
    fn verify(h: &History, cur: u64, src: u64, t: usize) -> u32 {
        let most = t.min(MAX_VERIFY) as u64;
        let mut n = 0;
        while n < most && src > n && h.known(src - n - 1) && h.at(src - n - 1) == h.at(cur - n - 1)
        {
            n += 1;
        }
        n as u32
    }

    /// Fills `pred[b]` with lane b's predicted byte and match length (0: none).
    pub fn predict(&mut self, h: &History, pred: &mut [(u8, u32)]) {
        let t = h.steps();
        self.hash_all(h, t, pred.len());
        for (b, at) in self.at.chunks_exact(2).enumerate() {
            if self.len[b] == 0 {
                for (k, &i) in at.iter().enumerate() {
                    if i != NONE {
                        super::prefetch(&self.tables[k][i]);
                    }
                }
            }
        }
        for (b, out) in pred.iter_mut().enumerate() {
            let cur = h.pos(b, t);
            if self.len[b] > 0 && !h.known(self.ptr[b]) {
                self.len[b] = 0;
            }
            if self.len[b] == 0 {
                for k in [1, 0] {
                    let (n, i) = (self.min[k], self.at[2 * b + k]);
                    if i == NONE {
                        continue;
                    }
                    let stored = self.tables[k][i];
                    // Stored positions are absolute modulo 2^32: rebuild the
                    // position and drop it if it left the window.
                    let back = (cur as u32).wrapping_sub(stored) as u64;
                    if stored == 0 || back == 0 || back > cur || !h.known(cur - back) {
                        continue;
                    }
                    let src = cur - back;
                    let len = Self::verify(h, cur, src, t);
                    if len as usize >= n {
                        self.ptr[b] = src;
                        self.len[b] = len;
                        break;
                    }
                }
            }
            *out = if self.len[b] > 0 {
                (h.at(self.ptr[b]), self.len[b])
            } else {
                (0, 0)
            };
        }
    }

    /// Learns the step's bytes, already pushed to `h`: matches that predicted
    /// right move on, the others end; every lane's new position is indexed
    /// (at the places the step's prediction hashed).
    pub fn learn(&mut self, h: &History, bytes: &[u8]) {
        let t = h.steps() - 1; // the step just pushed
        if self.hashed != Some(t) || self.at.len() != 2 * bytes.len() {
            self.hash_all(h, t, bytes.len());
        }
        for (b, &v) in bytes.iter().enumerate() {
            if self.len[b] > 0 {
                if h.at(self.ptr[b]) == v {
                    self.ptr[b] += 1;
                    self.len[b] = self.len[b].saturating_add(1).min(65535);
                } else {
                    self.len[b] = 0;
                }
            }
            let cur = h.pos(b, t);
            for k in 0..2 {
                let i = self.at[2 * b + k];
                if i != NONE {
                    self.tables[k][i] = cur as u32;
                }
            }
        }
        self.hashed = None;
    }
}

/// The bucket of a match length, 0 to 7 (a lane without a match has none).
pub fn len_bucket(len: u32) -> usize {
    LEN_BUCKETS
        .iter()
        .filter(|&&l| len >= l)
        .count()
        .saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Layout;

    #[test]
    fn a_repeat_is_found_and_followed() {
        // One lane: a random block, then the same block again.
        let mut g = crate::rng::SplitMix64::new(3);
        let block: Vec<u8> = (0..200).map(|_| g.next_u64() as u8).collect();
        let data = [block.clone(), block.clone()].concat();
        let mut h = History::new(data.len());
        let mut m = Matcher::new(6, 32, 12);
        h.begin_segment(&Layout::new(data.len(), 1, 8));
        m.begin_segment(1);
        let mut hits = 0;
        for &v in &data {
            let mut p = [(0, 0)];
            m.predict(&h, &mut p);
            if p[0].1 > 0 {
                assert_eq!(p[0].0, v, "a verified match never mispredicts here");
                hits += 1;
            }
            h.push_step(&[v]);
            m.learn(&h, &[v]);
        }
        // Every byte of the repeat after the first `short` is predicted.
        assert!(hits >= 200 - 6 - 1, "{hits}");
    }

    #[test]
    fn buckets_grow_with_length() {
        assert_eq!(len_bucket(0), 0);
        assert_eq!(len_bucket(1), 0);
        assert_eq!(len_bucket(6), 0);
        assert_eq!(len_bucket(8), 1);
        assert_eq!(len_bucket(200), 7);
    }
}
