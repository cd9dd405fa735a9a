//! Sequences of member frames and the index that closes them.
//!
//! `fade -T` and `--block-size` write one frame per block. Each frame is
//! sound on its own, so without more a file cut at a frame boundary, or with
//! a frame dropped, repeated or swapped, would decode "cleanly" to the wrong
//! content. Such frames carry their number in the sequence (header flag 4),
//! and an index after the last one lists every frame's lengths and a checksum
//! of the whole content. [`Sequence`] is the one reader-side check of that,
//! shared by the streaming decoder and the frame walk (`-l`, parallel
//! decoding): a member frame must carry the next number, a sequence must end
//! in its index before anything else starts or the input ends, and the index
//! must list exactly the frames seen.
//!
//! Frames without a number are frames of their own, as before: files from
//! older versions and single-frame files are unchanged, and plain
//! concatenations of whole files (sequences included) still decode.

use crate::error::{Error, Result};
use crate::format::{Index, IndexEntries, INDEX_MISMATCH, INDEX_WITHOUT_FRAMES};
use xxhash_rust::xxh3::Xxh3;

/// A sequence that has started and not yet met its index.
#[derive(Clone)]
struct Open {
    /// The number the next member frame must carry.
    next: u64,
    /// The (content, frame) lengths of the frames seen.
    entries: IndexEntries,
    /// The content seen, when the reader checks it.
    content: Xxh3,
}

/// Where a reader stands between frames.
#[derive(Clone, Default)]
pub struct Sequence {
    open: Option<Open>,
}

/// Said when a sequence is interrupted by something other than its index.
const UNCLOSED: &str = "a multi-frame sequence ends without its index";

impl Sequence {
    /// A frame with `member` (its number, if any) starts: refuses a number out
    /// of turn, and a frame of its own inside an open sequence.
    pub fn frame(&mut self, member: Option<u64>) -> Result<()> {
        match (member, &mut self.open) {
            (None, None) => Ok(()),
            (None, Some(_)) | (Some(0), Some(_)) => Err(Error::Corrupt(UNCLOSED)),
            (Some(0), None) => {
                self.open = Some(Open {
                    next: 0,
                    entries: IndexEntries::default(),
                    content: Xxh3::new(),
                });
                Ok(())
            }
            (Some(k), Some(o)) if k == o.next => Ok(()),
            (Some(_), _) => Err(Error::Corrupt(INDEX_MISMATCH)),
        }
    }

    /// Content of the current frame, in order (only where it is checked).
    pub fn content(&mut self, data: &[u8]) {
        if let Some(o) = &mut self.open {
            o.content.update(data);
        }
    }

    /// The current frame ended, holding `content` bytes in `len` bytes.
    pub fn frame_done(&mut self, content: u64, len: u64) {
        if let Some(o) = &mut self.open {
            o.entries.push(content, len);
            o.next += 1;
        }
    }

    /// How many frames an index here must list: those of the open sequence,
    /// or an error if none is open.
    pub fn expected(&self) -> Result<u64> {
        match &self.open {
            Some(o) => Ok(o.next),
            None => Err(Error::Corrupt(INDEX_WITHOUT_FRAMES)),
        }
    }

    /// The index `idx` closes the open sequence: its entries must be the
    /// frames seen, and, when `check_content`, its checksum the content's.
    /// Returns the checksum it records.
    pub fn close(&mut self, idx: &Index, check_content: bool) -> Result<u64> {
        let o = self
            .open
            .take()
            .ok_or(Error::Corrupt(INDEX_WITHOUT_FRAMES))?;
        if idx.frames != o.next || idx.entries != o.entries.digest() {
            return Err(Error::Corrupt(INDEX_MISMATCH));
        }
        if check_content && idx.content != o.content.digest() {
            return Err(Error::ChecksumMismatch);
        }
        Ok(idx.content)
    }

    /// The input ended: an open sequence means frames, or its index, are
    /// missing from the end.
    pub fn end(&self) -> Result<()> {
        match self.open {
            Some(_) => Err(Error::Truncated),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(frames: &[(u64, u64)], content: &[u8]) -> Index {
        let mut e = IndexEntries::default();
        for &(c, f) in frames {
            e.push(c, f);
        }
        Index {
            frames: frames.len() as u64,
            entries: e.digest(),
            content: xxhash_rust::xxh3::xxh3_64(content),
            len: 0,
        }
    }

    fn run(members: &[Option<u64>], close: Option<&Index>) -> Result<()> {
        let mut s = Sequence::default();
        for (i, &m) in members.iter().enumerate() {
            s.frame(m)?;
            s.content(b"ab");
            s.frame_done(2, 10 + i as u64);
        }
        if let Some(idx) = close {
            s.expected()?;
            s.close(idx, true)?;
        }
        s.end()
    }

    /// A whole sequence passes; every way of breaking it is refused.
    #[test]
    fn only_a_whole_sequence_in_order_passes() {
        let good = index(&[(2, 10), (2, 11), (2, 12)], b"ababab");
        let all = [Some(0), Some(1), Some(2)];
        assert!(run(&all, Some(&good)).is_ok());
        // Cut at a frame boundary (before the index, or a frame earlier).
        assert!(matches!(run(&all, None), Err(Error::Truncated)));
        assert!(matches!(run(&all[..2], None), Err(Error::Truncated)));
        // A frame dropped, repeated or swapped.
        for bad in [
            &[Some(0), Some(2)][..],
            &[Some(0), Some(1), Some(1), Some(2)],
            &[Some(0), Some(2), Some(1)],
            &[Some(1), Some(2)],
        ] {
            assert!(run(bad, Some(&good)).is_err(), "{bad:?}");
        }
        // A frame of its own inside a sequence; a sequence restarted.
        assert!(run(&[Some(0), None], Some(&good)).is_err());
        assert!(run(&[Some(0), Some(1), Some(0)], Some(&good)).is_err());
        // An index listing other lengths, or other content.
        let other = index(&[(2, 10), (2, 11), (2, 13)], b"ababab");
        assert!(run(&all, Some(&other)).is_err());
        let other = index(&[(2, 10), (2, 11), (2, 12)], b"abab!b");
        assert!(matches!(
            run(&all, Some(&other)),
            Err(Error::ChecksumMismatch)
        ));
        // An index with no sequence open.
        assert!(run(&[None], Some(&good)).is_err());
        // Frames of their own around a whole sequence are fine.
        let mut s = Sequence::default();
        s.frame(None).unwrap();
        for k in 0..3 {
            s.frame(Some(k)).unwrap();
            s.content(b"ab");
            s.frame_done(2, 10 + k);
        }
        s.close(&good, true).unwrap();
        s.frame(None).unwrap();
        s.end().unwrap();
    }
}
