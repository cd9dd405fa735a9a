//! Container format v2: frames, blocks and their checksums.
//!
//! ```text
//! file    = frame+                      (concatenated frames decode to concatenated content)
//! frame   = header block* end
//! header  = magic[4] = 89 'F' 'D' 'E'   (non-text first byte, like PNG)
//!           version u8 = 2
//!           flags u8                     bit 0: content checksum present; bits 1-7 reserved, zero
//!           params_len u16
//!           params[params_len]           preset (see Preset::write_to), device class u8,
//!                                        arithmetic fingerprint u64
//!           header_check u32             xxh32 of everything above
//! block   = kind u8 = 1 (model-coded)  seg_len u32  lane_len varint * lanes  block_check u32
//!                                      tail[seg_len % lanes]  lane streams, concatenated
//!         | kind u8 = 2 (stored)        seg_len u32  block_check u32  bytes[seg_len]
//! end     = kind u8 = 0  total_len u64  content_check u64 (xxh3-64, if flagged)  end_check u32
//! ```
//! All integers are little-endian; `block_check` and `end_check` are xxh32 of
//! the block's bytes before them, so a corrupt length is caught before it is used.
//! A segment of `seg_len` bytes is cut into `lanes` lanes of `seg_len / lanes`
//! bytes; the remaining `seg_len % lanes` bytes are the tail, stored as they are.

use crate::error::{Error, Result};
use crate::preset::Preset;
use std::io::{Read, Write};
use xxhash_rust::xxh32::xxh32;

/// First bytes of every frame.
pub const MAGIC: [u8; 4] = [0x89, b'F', b'D', b'E'];
/// The format version this build writes and reads.
pub const VERSION: u8 = 2;
const FLAG_CONTENT_CHECK: u8 = 1;

/// Block kinds.
pub const BLOCK_END: u8 = 0;
/// A segment coded with the model, one range-coder stream per lane.
pub const BLOCK_MODEL: u8 = 1;
/// A segment stored as is because coding would have expanded it.
pub const BLOCK_STORED: u8 = 2;

/// Which kind of device produced the probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceClass {
    /// candle's CPU backend.
    Cpu = 0,
    /// candle's CUDA backend.
    Cuda = 1,
}

/// Everything a frame header carries.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameHeader {
    /// Model, optimizer and lane layout.
    pub preset: Preset,
    /// Whether an xxh3-64 of the content closes the frame.
    pub content_check: bool,
    /// Device class the encoder ran on.
    pub device: DeviceClass,
    /// Hash of a canary computation on that device: equal fingerprints mean equal arithmetic.
    pub fingerprint: u64,
}

fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> Result<()> {
    r.read_exact(buf).map_err(Error::from_read)
}

/// Reads exactly `n` bytes into a buffer that grows as they arrive, so a
/// length a damaged or hostile block gets wrong costs no more memory than the
/// input really holds.
fn read_vec(r: &mut impl Read, n: usize) -> Result<Vec<u8>> {
    let mut v = Vec::with_capacity(n.min(1 << 16));
    r.take(n as u64).read_to_end(&mut v)?;
    if v.len() < n {
        return Err(Error::Truncated);
    }
    Ok(v)
}

fn read_u32(r: &mut impl Read) -> Result<u32> {
    let mut b = [0; 4];
    read_exact(r, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(r: &mut impl Read) -> Result<u64> {
    let mut b = [0; 8];
    read_exact(r, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Reads one byte, or `None` at a clean end of input.
pub fn read_byte_or_eof(r: &mut impl Read) -> Result<Option<u8>> {
    let mut b = [0u8; 1];
    loop {
        match r.read(&mut b) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(b[0])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

impl FrameHeader {
    /// Serialises the header.
    pub fn write(&self, w: &mut impl Write) -> Result<()> {
        let mut params = Vec::new();
        self.preset.write_to(&mut params);
        params.push(self.device as u8);
        params.extend_from_slice(&self.fingerprint.to_le_bytes());
        let mut buf = MAGIC.to_vec();
        buf.push(VERSION);
        buf.push(if self.content_check {
            FLAG_CONTENT_CHECK
        } else {
            0
        });
        buf.extend_from_slice(&(params.len() as u16).to_le_bytes());
        buf.extend_from_slice(&params);
        let check = xxh32(&buf, 0);
        buf.extend_from_slice(&check.to_le_bytes());
        w.write_all(&buf)?;
        Ok(())
    }

    /// Reads a header whose first magic byte has already been consumed as `first`.
    pub fn read_after(first: u8, r: &mut impl Read) -> Result<Self> {
        let mut fixed = [0u8; 8];
        fixed[0] = first;
        // A short input that is not a fade file is "not a fade file", not "truncated".
        let mut got = 1;
        while got < 4 {
            match r.read(&mut fixed[got..4]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if fixed[..got] != MAGIC[..got] {
            return Err(Error::NotFade);
        }
        if got < 4 {
            return Err(Error::Truncated);
        }
        read_exact(r, &mut fixed[4..])?;
        if fixed[4] != VERSION {
            return Err(Error::UnsupportedVersion(fixed[4]));
        }
        let flags = fixed[5];
        let params_len = u16::from_le_bytes([fixed[6], fixed[7]]) as usize;
        let mut params = vec![0u8; params_len];
        read_exact(r, &mut params)?;
        let check = read_u32(r)?;
        let mut all = fixed.to_vec();
        all.extend_from_slice(&params);
        if xxh32(&all, 0) != check {
            return Err(Error::Corrupt("header checksum"));
        }
        if flags & !FLAG_CONTENT_CHECK != 0 {
            return Err(Error::Corrupt("reserved flag bits set"));
        }
        let mut p = &params[..];
        let preset = Preset::read_from(&mut p)?;
        if p.len() != 9 {
            return Err(Error::Corrupt("header length"));
        }
        let device = match p[0] {
            0 => DeviceClass::Cpu,
            1 => DeviceClass::Cuda,
            _ => return Err(Error::Corrupt("unknown device class")),
        };
        let fingerprint = u64::from_le_bytes(p[1..9].try_into().unwrap());
        Ok(Self {
            preset,
            content_check: flags & FLAG_CONTENT_CHECK != 0,
            device,
            fingerprint,
        })
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(r: &mut impl Read, raw: &mut Vec<u8>) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let mut b = [0u8];
        read_exact(r, &mut b)?;
        raw.push(b[0]);
        v |= ((b[0] & 0x7F) as u64) << shift;
        if b[0] & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Error::Corrupt("varint too long"))
}

/// Writes a model-coded block: header with lane lengths, the tail, then the lane streams.
pub fn write_model_block(
    w: &mut impl Write,
    seg_len: u32,
    tail: &[u8],
    lanes: &[Vec<u8>],
) -> Result<()> {
    let mut head = vec![BLOCK_MODEL];
    head.extend_from_slice(&seg_len.to_le_bytes());
    for l in lanes {
        put_varint(&mut head, l.len() as u64);
    }
    let check = xxh32(&head, 0);
    head.extend_from_slice(&check.to_le_bytes());
    w.write_all(&head)?;
    w.write_all(tail)?;
    for l in lanes {
        w.write_all(l)?;
    }
    Ok(())
}

/// Size a model-coded block takes, to decide against storing.
pub fn model_block_size(tail: usize, lanes: &[Vec<u8>]) -> usize {
    let mut v = Vec::new();
    for l in lanes {
        put_varint(&mut v, l.len() as u64);
    }
    1 + 4 + v.len() + 4 + tail + lanes.iter().map(Vec::len).sum::<usize>()
}

/// Writes a stored block.
pub fn write_stored_block(w: &mut impl Write, data: &[u8]) -> Result<()> {
    let mut head = vec![BLOCK_STORED];
    head.extend_from_slice(&(data.len() as u32).to_le_bytes());
    let check = xxh32(&head, 0);
    head.extend_from_slice(&check.to_le_bytes());
    w.write_all(&head)?;
    w.write_all(data)?;
    Ok(())
}

/// Writes the end block.
pub fn write_end(w: &mut impl Write, total: u64, content: Option<u64>) -> Result<()> {
    let mut b = vec![BLOCK_END];
    b.extend_from_slice(&total.to_le_bytes());
    if let Some(c) = content {
        b.extend_from_slice(&c.to_le_bytes());
    }
    let check = xxh32(&b, 0);
    b.extend_from_slice(&check.to_le_bytes());
    w.write_all(&b)?;
    Ok(())
}

/// A block as read from a frame.
#[derive(Debug)]
pub enum Block {
    /// Model-coded segment.
    Model {
        /// Input bytes in the segment.
        seg_len: usize,
        /// The raw tail.
        tail: Vec<u8>,
        /// One range-coder stream per lane.
        lanes: Vec<Vec<u8>>,
    },
    /// Stored segment.
    Stored(Vec<u8>),
    /// End of frame.
    End {
        /// Content length the encoder saw.
        total: u64,
        /// Its xxh3-64, if the frame carries one.
        content: Option<u64>,
    },
}

/// Reads the next block of a frame with header `h`.
pub fn read_block(r: &mut impl Read, h: &FrameHeader) -> Result<Block> {
    let mut kind = [0u8];
    read_exact(r, &mut kind)?;
    let mut head = vec![kind[0]];
    let p = &h.preset;
    match kind[0] {
        BLOCK_END => {
            let total = read_u64(r)?;
            head.extend_from_slice(&total.to_le_bytes());
            let content = if h.content_check {
                let c = read_u64(r)?;
                head.extend_from_slice(&c.to_le_bytes());
                Some(c)
            } else {
                None
            };
            if read_u32(r)? != xxh32(&head, 0) {
                return Err(Error::Corrupt("end block checksum"));
            }
            Ok(Block::End { total, content })
        }
        BLOCK_MODEL | BLOCK_STORED => {
            let seg_len = read_u32(r)?;
            // Refused at once, before anything else of the block is read or
            // allocated: no block of this frame can be longer than a segment.
            if seg_len == 0 || seg_len > p.segment {
                return Err(Error::Corrupt("segment length"));
            }
            head.extend_from_slice(&seg_len.to_le_bytes());
            let mut lane_lens = Vec::new();
            if kind[0] == BLOCK_MODEL {
                for _ in 0..p.lanes {
                    lane_lens.push(read_varint(r, &mut head)?);
                }
            }
            if read_u32(r)? != xxh32(&head, 0) {
                return Err(Error::Corrupt("block header checksum"));
            }
            let seg_len = seg_len as usize;
            if kind[0] == BLOCK_STORED {
                return Ok(Block::Stored(read_vec(r, seg_len)?));
            }
            let lane_len = seg_len / p.lanes as usize;
            // A lane costs at most 16 bits per byte plus flush bytes.
            if lane_lens.iter().any(|&l| l > 2 * lane_len as u64 + 8) {
                return Err(Error::Corrupt("lane length"));
            }
            let mut tail = vec![0; seg_len % p.lanes as usize];
            read_exact(r, &mut tail)?;
            let mut lanes = Vec::with_capacity(lane_lens.len());
            for &l in &lane_lens {
                lanes.push(read_vec(r, l as usize)?);
            }
            Ok(Block::Model {
                seg_len,
                tail,
                lanes,
            })
        }
        _ => Err(Error::Corrupt("unknown block kind")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> FrameHeader {
        FrameHeader {
            preset: Preset::load("default").unwrap(),
            content_check: true,
            device: DeviceClass::Cpu,
            fingerprint: 0x1234_5678_9abc_def0,
        }
    }

    fn read_header(bytes: &[u8]) -> Result<FrameHeader> {
        let mut r = &bytes[1..];
        FrameHeader::read_after(bytes[0], &mut r)
    }

    #[test]
    fn header_roundtrips() {
        let mut buf = Vec::new();
        header().write(&mut buf).unwrap();
        let mut h = read_header(&buf).unwrap();
        h.preset.description = header().preset.description;
        assert_eq!(h, header());
    }

    #[test]
    fn header_faults_have_their_own_errors() {
        let mut buf = Vec::new();
        header().write(&mut buf).unwrap();
        assert!(matches!(read_header(b"hello world"), Err(Error::NotFade)));
        assert!(matches!(read_header(&buf[..2]), Err(Error::Truncated)));
        assert!(matches!(read_header(&buf[..10]), Err(Error::Truncated)));
        let mut v = buf.clone();
        v[4] = 9;
        assert!(matches!(read_header(&v), Err(Error::UnsupportedVersion(9))));
        for i in 5..buf.len() {
            let mut v = buf.clone();
            v[i] ^= 0x10;
            assert!(read_header(&v).is_err(), "flip at {i} accepted");
        }
    }

    /// A block declaring more than the preset's segment is refused from its
    /// length alone: its body is not even present here.
    #[test]
    fn block_longer_than_a_segment_is_refused_at_once() {
        let h = header();
        for kind in [BLOCK_MODEL, BLOCK_STORED] {
            let mut b = vec![kind];
            b.extend_from_slice(&(h.preset.segment + 1).to_le_bytes());
            assert!(matches!(
                read_block(&mut &b[..], &h),
                Err(Error::Corrupt("segment length"))
            ));
        }
    }

    /// A stored block whose input ends early is truncated, and costs no more
    /// memory than the bytes really there.
    #[test]
    fn short_stored_block_is_truncated() {
        let h = header();
        let mut b = Vec::new();
        write_stored_block(&mut b, &[7u8; 1000]).unwrap();
        b.truncate(500);
        assert!(matches!(read_block(&mut &b[..], &h), Err(Error::Truncated)));
    }

    #[test]
    fn blocks_roundtrip() {
        let h = header();
        let lanes: Vec<Vec<u8>> = (0..h.preset.lanes)
            .map(|i| vec![i as u8; (i % 5) as usize])
            .collect();
        let mut buf = Vec::new();
        let seg = h.preset.lanes * 3 + 7;
        write_model_block(&mut buf, seg, &[1, 2, 3, 4, 5, 6, 7], &lanes).unwrap();
        assert_eq!(buf.len(), model_block_size(7, &lanes));
        write_stored_block(&mut buf, b"abc").unwrap();
        write_end(&mut buf, 99, Some(42)).unwrap();
        let mut r = &buf[..];
        match read_block(&mut r, &h).unwrap() {
            Block::Model {
                seg_len,
                tail,
                lanes: l,
            } => {
                assert_eq!(seg_len, seg as usize);
                assert_eq!(tail, vec![1, 2, 3, 4, 5, 6, 7]);
                assert_eq!(l, lanes);
            }
            b => panic!("{b:?}"),
        }
        assert!(matches!(read_block(&mut r, &h).unwrap(), Block::Stored(d) if d == b"abc"));
        assert!(matches!(
            read_block(&mut r, &h).unwrap(),
            Block::End {
                total: 99,
                content: Some(42)
            }
        ));
        assert!(r.is_empty());
    }
}
