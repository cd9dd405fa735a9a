//! Container format v3 (v2 is still read): frames, blocks and their checksums.
//!
//! ```text
//! file    = frame+                      (concatenated frames decode to concatenated content)
//! frame   = header block* end
//! header  = magic[4] = 89 'F' 'D' 'E'   (non-text first byte, like PNG)
//!           version u8 = 3 (or 2)
//!           flags u8                     bit 0: content checksum present (required); bit 1:
//!                                        built-in preset by identifier; bit 2: content size present;
//!                                        bit 3: blocks hold the content through the x86 filter;
//!                                        bit 4: the frame is a member of a sequence
//!           params_len varint
//!           params[params_len]           preset (every value, Preset::write_to; or identifier u8,
//!                                        lanes varint, stats_bits u8, match_bits u8,
//!                                        xxh32 of every value), device class u8,
//!                                        arithmetic fingerprint u64, [content size varint],
//!                                        [member number varint]
//!           header_check u32             xxh32 of everything above
//! block   = kind u8 = 3 (model-coded)  seg_len varint  stream_len varint  block_check u32
//!                                      tail[seg_len % lanes]  stream[stream_len]   (v3 only)
//!         | kind u8 = 1 (model-coded)  seg_len varint  lane_len varint * lanes  block_check u32
//!                                      tail[seg_len % lanes]  lane streams, concatenated (v2 only)
//!         | kind u8 = 2 (stored)        seg_len varint  block_check u32  bytes[seg_len]
//! end     = kind u8 = 0  total_len varint  content_check u64 (xxh3-64, if flagged)  end_check u32
//! index   = magic[4] = 89 'F' 'D' 'X'   closes a sequence of member frames (see `Index`)
//!           frames varint  (content_len varint  frame_len varint) * frames
//!           content_check u64 (xxh3-64 of the sequence's content)  index_check u32
//! ```
//! All integers are little-endian; `block_check` and `end_check` are xxh32 of
//! the block's bytes before them, so a corrupt length is caught before it is used.
//! A segment of `seg_len` bytes is cut into `lanes` lanes of `seg_len / lanes`
//! bytes; the remaining `seg_len % lanes` bytes are the tail, stored as they are.

mod params;

use crate::coder::Precision;
use crate::error::{Error, Result};
use crate::preset::Preset;
use std::io::{Read, Write};
use xxhash_rust::xxh32::xxh32;

/// First bytes of every frame.
pub const MAGIC: [u8; 4] = [0x89, b'F', b'D', b'E'];
/// The format version this build writes.
pub const VERSION: u8 = 3;
/// The oldest version it reads. Version 2 coded each lane of a segment as
/// its own range-coder stream, with a length each; version 3 codes all of
/// them into one (see [`BLOCK_CODED`]).
pub const OLDEST_VERSION: u8 = 2;

/// What a format version means to the coder: the one place that maps a
/// version onto its differences (read by `crate::plan::Plan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionTraits {
    /// Precision of the tables and the range coder.
    pub precision: Precision,
    /// Whether a model-coded block holds one stream for all lanes (block
    /// kind [`BLOCK_CODED`]) or one per lane ([`BLOCK_MODEL`]).
    pub shared_stream: bool,
}

/// The traits of `version` ([`OLDEST_VERSION`] to [`VERSION`]: a header of
/// any other version is refused before this is asked).
pub fn version_traits(version: u8) -> VersionTraits {
    match version {
        2 => VersionTraits {
            precision: Precision::V2,
            shared_stream: false,
        },
        _ => VersionTraits {
            precision: Precision::V3,
            shared_stream: true,
        },
    }
}
const FLAG_CONTENT_CHECK: u8 = 1;
/// `params` names a built-in preset by its identifier instead of listing every value.
const FLAG_BUILTIN: u8 = 2;
/// `params` ends with the content length.
const FLAG_CONTENT_SIZE: u8 = 4;
/// Flag bit 3: blocks carry the content through the x86 filter (`crate::filter`).
const FLAG_X86: u8 = 8;
/// Flag bit 4: `params` ends with the frame's number in a sequence of
/// frames that an index (`Index`) closes (what `fade -T` and `--block-size` write).
const FLAG_MEMBER: u8 = 16;
const KNOWN_FLAGS: u8 =
    FLAG_CONTENT_CHECK | FLAG_BUILTIN | FLAG_CONTENT_SIZE | FLAG_X86 | FLAG_MEMBER;
/// First bytes of the index that closes a sequence of member frames: the
/// frame magic with its last byte changed, so a reader looking for a frame
/// tells the two apart from the same four bytes.
pub const INDEX_MAGIC: [u8; 4] = [0x89, b'F', b'D', b'X'];
/// Longest `params` a header may declare: a custom preset takes about 100
/// bytes and a name at most 32, so anything longer is not a fade header.
const MAX_PARAMS_LEN: u64 = 1024;

/// Block kinds.
pub const BLOCK_END: u8 = 0;
/// A segment coded with the model, one range-coder stream per lane (v2).
pub const BLOCK_MODEL: u8 = 1;
/// A segment coded with the model into one range-coder stream: at every
/// step, every lane's byte in lane order (v3). Separate streams cost each
/// lane a length and its coder's flush, about 4 bytes: 1 KB of a 1 MiB file
/// in 256 lanes, 2% of a 20 KB file's output in 16.
pub const BLOCK_CODED: u8 = 3;
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
    /// The format version ([`VERSION`] for frames this build writes).
    pub version: u8,
    /// Model, optimizer and lane layout.
    pub preset: Preset,
    /// Whether an xxh3-64 of the content closes the frame: always, since a
    /// frame without one could not tell damaged content from good, and
    /// decoders refuse it.
    pub content_check: bool,
    /// Device class the encoder ran on.
    pub device: DeviceClass,
    /// Hash of a canary computation on that device: equal fingerprints mean equal arithmetic.
    pub fingerprint: u64,
    /// The content length, when the encoder knew it before it started (a file,
    /// or a pipe shorter than one segment): progress bars get a total, and the
    /// decoder checks the end block against it.
    pub content_size: Option<u64>,
    /// Whether the blocks hold the content through the x86 filter
    /// (`crate::filter`), which the decoder undoes.
    pub x86: bool,
    /// The frame's number in its sequence (0 for the first), when it is one
    /// of several frames closed by an index (`Index`); `None` for a frame of its own.
    pub member: Option<u64>,
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
    /// Serialises the header. A built-in preset is written as its level, its
    /// lanes and table sizes, and an xxh32 of all its values, so a tiny input
    /// costs about 40 bytes; the decoder rebuilds the preset from its own copy
    /// and refuses the frame if the values differ (built-in presets are frozen
    /// once released). A custom preset lists every value.
    pub fn write(&self, w: &mut impl Write) -> Result<()> {
        let mut flags = 0;
        let mut params = Vec::new();
        match self.preset.builtin_id() {
            Some(id) => {
                flags |= FLAG_BUILTIN;
                params.push(id);
                put_varint(&mut params, self.preset.lanes as u64);
                params.push(self.preset.stats_bits as u8);
                params.push(self.preset.match_bits as u8);
                params.extend_from_slice(&xxh32(&self.preset.encoded(), 0).to_le_bytes());
            }
            None => self.preset.write_to(&mut params),
        }
        params.push(self.device as u8);
        params.extend_from_slice(&self.fingerprint.to_le_bytes());
        if let Some(n) = self.content_size {
            flags |= FLAG_CONTENT_SIZE;
            put_varint(&mut params, n);
        }
        if self.content_check {
            flags |= FLAG_CONTENT_CHECK;
        }
        if self.x86 {
            flags |= FLAG_X86;
        }
        if let Some(k) = self.member {
            flags |= FLAG_MEMBER;
            put_varint(&mut params, k);
        }
        let mut buf = MAGIC.to_vec();
        buf.push(self.version);
        buf.push(flags);
        put_varint(&mut buf, params.len() as u64);
        buf.extend_from_slice(&params);
        let check = xxh32(&buf, 0);
        buf.extend_from_slice(&check.to_le_bytes());
        w.write_all(&buf)?;
        Ok(())
    }

    /// Reads a header whose first magic byte has already been consumed as
    /// `first`. An index where a frame should start is corrupt: it closes a
    /// sequence of frames, and none came before it.
    pub fn read_after(first: u8, r: &mut impl Read) -> Result<Self> {
        match read_item(first, r)? {
            Item::Frame(h) => Ok(h),
            Item::Index(_) => Err(Error::Corrupt(INDEX_WITHOUT_FRAMES)),
        }
    }

    /// Reads the rest of a header whose magic has been read and checked.
    fn read_after_magic(r: &mut impl Read) -> Result<Self> {
        let mut all = MAGIC.to_vec();
        let mut vf = [0u8; 2];
        read_exact(r, &mut vf)?;
        all.extend_from_slice(&vf);
        if !(OLDEST_VERSION..=VERSION).contains(&vf[0]) {
            return Err(Error::UnsupportedVersion(vf[0]));
        }
        let flags = vf[1];
        let params_len = read_varint(r, &mut all)?;
        if params_len > MAX_PARAMS_LEN {
            return Err(Error::Corrupt("header length"));
        }
        let mut params = vec![0u8; params_len as usize];
        read_exact(r, &mut params)?;
        all.extend_from_slice(&params);
        if xxh32(&all, 0) != read_u32(r)? {
            return Err(Error::Corrupt("header checksum"));
        }
        if flags & !KNOWN_FLAGS != 0 {
            return Err(Error::Corrupt("reserved flag bits set"));
        }
        if flags & FLAG_CONTENT_CHECK == 0 {
            return Err(Error::Corrupt("frame without a content checksum"));
        }
        let mut p = &params[..];
        let preset = if flags & FLAG_BUILTIN != 0 {
            let id = take(&mut p, 1)?[0];
            let lanes = read_varint(&mut p, &mut Vec::new())?;
            let bits = take(&mut p, 2)?;
            let (stats_bits, match_bits) = (bits[0] as u32, bits[1] as u32);
            let values = u32::from_le_bytes(take(&mut p, 4)?.try_into().unwrap());
            let lanes = u32::try_from(lanes)
                .map_err(|_| Error::Unsupported(format!("lanes = {lanes} is above 2^32")))?;
            let preset = Preset::from_builtin(id, lanes, stats_bits, match_bits)?;
            if xxh32(&preset.encoded(), 0) != values {
                return Err(Error::Preset(format!(
                    "the file's built-in preset '{}' differs from this fade's (it was written by another version)",
                    preset.name
                )));
            }
            preset
        } else {
            Preset::read_from(&mut p)?
        };
        let device = match take(&mut p, 1)?[0] {
            0 => DeviceClass::Cpu,
            1 => DeviceClass::Cuda,
            _ => return Err(Error::Corrupt("unknown device class")),
        };
        let fingerprint = u64::from_le_bytes(take(&mut p, 8)?.try_into().unwrap());
        let content_size = if flags & FLAG_CONTENT_SIZE != 0 {
            Some(read_varint(&mut p, &mut Vec::new())?)
        } else {
            None
        };
        let member = if flags & FLAG_MEMBER != 0 {
            Some(read_varint(&mut p, &mut Vec::new())?)
        } else {
            None
        };
        if !p.is_empty() {
            return Err(Error::Corrupt("header length"));
        }
        Ok(Self {
            version: vf[0],
            preset,
            content_check: flags & FLAG_CONTENT_CHECK != 0,
            device,
            fingerprint,
            content_size,
            x86: flags & FLAG_X86 != 0,
            member,
        })
    }
}

/// The message for an index that follows no member frame.
pub const INDEX_WITHOUT_FRAMES: &str = "frame index without the frames it lists";

/// What starts at a frame boundary: a frame, or the index closing a sequence.
#[derive(Debug, Clone, PartialEq)]
// Read once per frame and moved once: boxing the header saves nothing.
#[allow(clippy::large_enum_variant)]
pub enum Item {
    /// A frame, of which this is the header.
    Frame(FrameHeader),
    /// The index of a sequence; its entries are read by [`Index::read_rest`].
    Index(IndexHead),
}

/// Reads what starts at a frame boundary, its first byte already consumed as
/// `first`: a frame header, or the start of an index. A short input that is
/// not fade is "not a fade file", not "truncated".
pub fn read_item(first: u8, r: &mut impl Read) -> Result<Item> {
    let mut magic = [first, 0, 0, 0];
    let mut got = 1;
    while got < 4 {
        match r.read(&mut magic[got..4]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let prefix = &magic[..got];
    if prefix != &MAGIC[..got] && prefix != &INDEX_MAGIC[..got] {
        return Err(Error::NotFade);
    }
    if got < 4 {
        return Err(Error::Truncated);
    }
    if magic == INDEX_MAGIC {
        let frames = read_varint(r, &mut Vec::new())?;
        return Ok(Item::Index(IndexHead { frames }));
    }
    FrameHeader::read_after_magic(r).map(Item::Frame)
}

/// The start of an index: how many frames it lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexHead {
    /// Member frames of the sequence it closes.
    pub frames: u64,
}

/// The index that closes a sequence of member frames (`fade -T`,
/// `--block-size`): each frame's content and compressed lengths and a
/// checksum of the whole content, so that a sequence cut at a frame
/// boundary, or with frames dropped, repeated or swapped, is refused even
/// though each frame is sound on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    /// Member frames listed.
    pub frames: u64,
    /// [`IndexEntries`] digest of the listed (content, frame) lengths.
    pub entries: u64,
    /// xxh3-64 of the sequence's whole content.
    pub content: u64,
    /// Bytes of the index, magic to checksum.
    pub len: u64,
}

/// A running digest of (content length, frame length) pairs, in order: what
/// an index lists, and what a reader saw, compared without keeping either.
#[derive(Clone, Default)]
pub struct IndexEntries {
    raw: Vec<u8>,
    hash: xxhash_rust::xxh3::Xxh3,
}

impl IndexEntries {
    /// Adds one frame's lengths.
    pub fn push(&mut self, content: u64, frame: u64) {
        self.raw.clear();
        put_varint(&mut self.raw, content);
        put_varint(&mut self.raw, frame);
        self.hash.update(&self.raw);
    }

    /// The digest of the pairs added so far.
    pub fn digest(&self) -> u64 {
        self.hash.digest()
    }
}

impl Index {
    /// Reads the index's entries, content checksum and index checksum after
    /// its head. `expected` is how many frames the reader saw in the sequence:
    /// any other count is refused before an entry is read, so a damaged count
    /// costs nothing.
    pub fn read_rest(head: IndexHead, expected: u64, r: &mut impl Read) -> Result<Self> {
        if head.frames != expected {
            return Err(Error::Corrupt(INDEX_MISMATCH));
        }
        let mut raw = INDEX_MAGIC.to_vec();
        put_varint(&mut raw, head.frames);
        let mut entries = IndexEntries::default();
        for _ in 0..head.frames {
            let content = read_varint(r, &mut raw)?;
            let frame = read_varint(r, &mut raw)?;
            entries.push(content, frame);
        }
        let content = read_u64(r)?;
        raw.extend_from_slice(&content.to_le_bytes());
        if read_u32(r)? != xxh32(&raw, 0) {
            return Err(Error::Corrupt("frame index checksum"));
        }
        Ok(Self {
            frames: head.frames,
            entries: entries.digest(),
            content,
            len: raw.len() as u64 + 4,
        })
    }
}

/// The message for an index that does not list the frames before it.
pub const INDEX_MISMATCH: &str = "frames missing, repeated or out of order";

/// Writes the index of a sequence whose frames had these (content length,
/// frame length) pairs and whose whole content hashes to `content`.
pub fn write_index(w: &mut impl Write, frames: &[(u64, u64)], content: u64) -> Result<()> {
    let mut b = INDEX_MAGIC.to_vec();
    put_varint(&mut b, frames.len() as u64);
    for &(c, f) in frames {
        put_varint(&mut b, c);
        put_varint(&mut b, f);
    }
    b.extend_from_slice(&content.to_le_bytes());
    let check = xxh32(&b, 0);
    b.extend_from_slice(&check.to_le_bytes());
    w.write_all(&b)?;
    Ok(())
}

/// The first `n` bytes of `input`, which is advanced past them.
fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if input.len() < n {
        return Err(Error::Corrupt("header length"));
    }
    let (a, b) = input.split_at(n);
    *input = b;
    Ok(a)
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

/// Writes a model-coded block: header with the stream's length, the tail,
/// then the stream.
pub fn write_model_block(
    w: &mut impl Write,
    seg_len: u32,
    tail: &[u8],
    stream: &[u8],
) -> Result<()> {
    let mut head = vec![BLOCK_CODED];
    put_varint(&mut head, seg_len as u64);
    put_varint(&mut head, stream.len() as u64);
    let check = xxh32(&head, 0);
    head.extend_from_slice(&check.to_le_bytes());
    w.write_all(&head)?;
    w.write_all(tail)?;
    w.write_all(stream)?;
    Ok(())
}

/// Size a model-coded block takes, to decide against storing.
pub fn model_block_size(seg_len: usize, tail: usize, stream: usize) -> usize {
    let mut v = Vec::new();
    put_varint(&mut v, seg_len as u64);
    put_varint(&mut v, stream as u64);
    1 + v.len() + 4 + tail + stream
}

/// Size a stored block of `n` bytes takes.
pub fn stored_block_size(n: usize) -> usize {
    let mut v = Vec::new();
    put_varint(&mut v, n as u64);
    1 + v.len() + 4 + n
}

/// Writes a stored block.
pub fn write_stored_block(w: &mut impl Write, data: &[u8]) -> Result<()> {
    let mut head = vec![BLOCK_STORED];
    put_varint(&mut head, data.len() as u64);
    let check = xxh32(&head, 0);
    head.extend_from_slice(&check.to_le_bytes());
    w.write_all(&head)?;
    w.write_all(data)?;
    Ok(())
}

/// Writes the end block.
pub fn write_end(w: &mut impl Write, total: u64, content: Option<u64>) -> Result<()> {
    let mut b = vec![BLOCK_END];
    put_varint(&mut b, total);
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
        /// The range-coder streams: one for all lanes (v3), or one per
        /// lane (v2).
        streams: Vec<Vec<u8>>,
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

/// A block's framing: what it holds and how long its body is, known without
/// reading the body (to find frames without decoding them).
#[derive(Debug)]
pub enum BlockHead {
    /// Model-coded segment: its length and its streams'.
    Model {
        /// Input bytes in the segment.
        seg_len: usize,
        /// Bytes of each range-coder stream (one, or one per lane in v2).
        stream_lens: Vec<u64>,
    },
    /// Stored segment of `seg_len` bytes.
    Stored {
        /// Input bytes in the segment.
        seg_len: usize,
    },
    /// End of frame.
    End {
        /// Content length the encoder saw.
        total: u64,
        /// Its xxh3-64, if the frame carries one.
        content: Option<u64>,
    },
}

impl BlockHead {
    /// Bytes that follow the block's framing (0 for the end block).
    pub fn body_len(&self, h: &FrameHeader) -> u64 {
        match self {
            BlockHead::Model {
                seg_len,
                stream_lens,
            } => (seg_len % h.preset.lanes as usize) as u64 + stream_lens.iter().sum::<u64>(),
            BlockHead::Stored { seg_len } => *seg_len as u64,
            BlockHead::End { .. } => 0,
        }
    }
}

/// Reads the framing of the next block of a frame with header `h`, checking
/// it, and leaves `r` at the block's body.
pub fn read_block_head(r: &mut impl Read, h: &FrameHeader) -> Result<BlockHead> {
    let mut kind = [0u8];
    read_exact(r, &mut kind)?;
    let mut head = vec![kind[0]];
    let p = &h.preset;
    match kind[0] {
        BLOCK_END => {
            let total = read_varint(r, &mut head)?;
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
            Ok(BlockHead::End { total, content })
        }
        BLOCK_MODEL | BLOCK_CODED | BLOCK_STORED => {
            // Each version has its own kind of model-coded block.
            let model = if version_traits(h.version).shared_stream {
                BLOCK_CODED
            } else {
                BLOCK_MODEL
            };
            if kind[0] != BLOCK_STORED && kind[0] != model {
                return Err(Error::Corrupt("unknown block kind"));
            }
            let seg_len = read_varint(r, &mut head)?;
            // Refused at once, before anything else of the block is read or
            // allocated: no block of this frame can be longer than a segment.
            if seg_len == 0 || seg_len > p.segment as u64 {
                return Err(Error::Corrupt("segment length"));
            }
            let seg_len = seg_len as usize;
            if kind[0] == BLOCK_STORED {
                if read_u32(r)? != xxh32(&head, 0) {
                    return Err(Error::Corrupt("block header checksum"));
                }
                return Ok(BlockHead::Stored { seg_len });
            }
            let streams = if kind[0] == BLOCK_CODED { 1 } else { p.lanes };
            let mut stream_lens = Vec::new();
            for _ in 0..streams {
                stream_lens.push(read_varint(r, &mut head)?);
            }
            if read_u32(r)? != xxh32(&head, 0) {
                return Err(Error::Corrupt("block header checksum"));
            }
            // A byte costs at most 16 bits, and a stream's flush a few bytes.
            let coded = (seg_len / p.lanes as usize * p.lanes as usize / streams as usize) as u64;
            if stream_lens.iter().any(|&l| l > 2 * coded + 8) {
                return Err(Error::Corrupt("lane length"));
            }
            Ok(BlockHead::Model {
                seg_len,
                stream_lens,
            })
        }
        _ => Err(Error::Corrupt("unknown block kind")),
    }
}

/// Reads the next block of a frame with header `h`, body included.
pub fn read_block(r: &mut impl Read, h: &FrameHeader) -> Result<Block> {
    Ok(match read_block_head(r, h)? {
        BlockHead::End { total, content } => Block::End { total, content },
        BlockHead::Stored { seg_len } => Block::Stored(read_vec(r, seg_len)?),
        BlockHead::Model {
            seg_len,
            stream_lens,
        } => {
            let mut tail = vec![0; seg_len % h.preset.lanes as usize];
            read_exact(r, &mut tail)?;
            let mut streams = Vec::with_capacity(stream_lens.len());
            for &l in &stream_lens {
                streams.push(read_vec(r, l as usize)?);
            }
            Block::Model {
                seg_len,
                tail,
                streams,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> FrameHeader {
        FrameHeader {
            version: VERSION,
            preset: Preset::load("default").unwrap(),
            content_check: true,
            device: DeviceClass::Cpu,
            fingerprint: 0x1234_5678_9abc_def0,
            content_size: Some(123_456),
            x86: false,
            member: None,
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
        let x86 = FrameHeader {
            x86: true,
            ..header()
        };
        buf.clear();
        x86.write(&mut buf).unwrap();
        assert!(read_header(&buf).unwrap().x86);
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

    /// A frame without a content checksum could decode damage silently: it
    /// is refused, whatever else it holds.
    #[test]
    fn frames_without_a_content_checksum_are_refused() {
        let mut buf = Vec::new();
        FrameHeader {
            content_check: false,
            ..header()
        }
        .write(&mut buf)
        .unwrap();
        assert!(matches!(
            read_header(&buf),
            Err(Error::Corrupt("frame without a content checksum"))
        ));
    }

    /// A member's number travels in its header; an index reads back what
    /// was written, refuses another count before reading entries, and is
    /// told from a frame by its magic.
    #[test]
    fn members_and_indexes_roundtrip() {
        let mut buf = Vec::new();
        let h = FrameHeader {
            member: Some(300),
            ..header()
        };
        h.write(&mut buf).unwrap();
        let mut back = read_header(&buf).unwrap();
        back.preset.description = h.preset.description.clone();
        assert_eq!(back, h);
        let entries = [(8192, 3000), (8192, 2900), (1000, 700)];
        let mut idx = Vec::new();
        write_index(&mut idx, &entries, 0xABCD).unwrap();
        let read = |bytes: &[u8], expected| {
            let mut r = &bytes[1..];
            match read_item(bytes[0], &mut r)? {
                Item::Index(head) => Index::read_rest(head, expected, &mut r),
                Item::Frame(_) => panic!("an index read as a frame"),
            }
        };
        let got = read(&idx, 3).unwrap();
        let mut want = IndexEntries::default();
        for (c, f) in entries {
            want.push(c, f);
        }
        assert_eq!(got.entries, want.digest());
        assert_eq!(
            (got.frames, got.content, got.len),
            (3, 0xABCD, idx.len() as u64)
        );
        assert!(matches!(read(&idx, 2), Err(Error::Corrupt(INDEX_MISMATCH))));
        for i in 4..idx.len() {
            let mut v = idx.clone();
            v[i] ^= 1;
            assert!(read(&v, 3).is_err(), "flip at {i} accepted");
        }
        assert!(matches!(
            read_header(&idx),
            Err(Error::Corrupt(INDEX_WITHOUT_FRAMES))
        ));
    }

    /// A built-in preset, fitted or not, travels as its level (a short
    /// header); a changed value makes it a custom preset with every value;
    /// both read back equal.
    #[test]
    fn builtin_presets_take_short_headers() {
        let len = |h: &FrameHeader| {
            let mut v = Vec::new();
            h.write(&mut v).unwrap();
            let mut back = read_header(&v).unwrap();
            // Only the compressor reads the lane plan; no header carries it.
            back.preset.description = h.preset.description.clone();
            back.preset.lane_bytes = h.preset.lane_bytes;
            assert_eq!(&back, h);
            v.len()
        };
        let mut h = header();
        h.content_size = None;
        let full = len(&h);
        assert!(full <= 30, "{full}");
        h.preset = h.preset.fitted(100);
        assert!(len(&h) <= 30);
        h.preset.lr *= 2.0;
        assert!(len(&h) > 100, "a changed preset must list its values");
    }

    /// A short header naming an unknown level, or whose values hash differs
    /// from this build's preset, is refused with its own message.
    #[test]
    fn short_headers_that_do_not_match_this_build_are_refused() {
        let mut params = vec![200u8, 16, 12, 12, 0, 0, 0, 0, 0];
        params.extend_from_slice(&[0; 8]);
        let frame = |params: &[u8]| {
            let mut v = MAGIC.to_vec();
            v.extend_from_slice(&[
                VERSION,
                FLAG_BUILTIN | FLAG_CONTENT_CHECK,
                params.len() as u8,
            ]);
            v.extend_from_slice(params);
            let c = xxh32(&v, 0);
            v.extend_from_slice(&c.to_le_bytes());
            v
        };
        let e = read_header(&frame(&params)).unwrap_err();
        assert!(
            matches!(e, Error::Corrupt("unknown built-in preset")),
            "{e}"
        );
        params[0] = 3;
        let e = read_header(&frame(&params)).unwrap_err().to_string();
        assert!(e.contains("built-in preset 'default' differs"), "{e}");
    }

    /// A block declaring more than the preset's segment is refused from its
    /// length alone: its body is not even present here.
    #[test]
    fn block_longer_than_a_segment_is_refused_at_once() {
        let h = header();
        for kind in [BLOCK_CODED, BLOCK_STORED] {
            let mut b = vec![kind];
            put_varint(&mut b, h.preset.segment as u64 + 1);
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
        let stream: Vec<u8> = (0..300).map(|i| i as u8).collect();
        let mut buf = Vec::new();
        let seg = h.preset.lanes * 3 + 7;
        write_model_block(&mut buf, seg, &[1, 2, 3, 4, 5, 6, 7], &stream).unwrap();
        assert_eq!(buf.len(), model_block_size(seg as usize, 7, stream.len()));
        write_stored_block(&mut buf, b"abc").unwrap();
        write_end(&mut buf, 99, Some(42)).unwrap();
        let mut r = &buf[..];
        match read_block(&mut r, &h).unwrap() {
            Block::Model {
                seg_len,
                tail,
                streams,
            } => {
                assert_eq!(seg_len, seg as usize);
                assert_eq!(tail, vec![1, 2, 3, 4, 5, 6, 7]);
                assert_eq!(streams, [stream]);
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

    /// A version 2 frame's model blocks hold one stream per lane; each
    /// version refuses the other's kind of model block.
    #[test]
    fn version_2_blocks_hold_a_stream_per_lane() {
        let v2 = FrameHeader {
            version: 2,
            ..header()
        };
        let lanes = v2.preset.lanes as usize;
        let seg = lanes * 3 + 2;
        let mut b = vec![BLOCK_MODEL];
        put_varint(&mut b, seg as u64);
        for i in 0..lanes {
            put_varint(&mut b, (i % 3) as u64);
        }
        let check = xxh32(&b, 0);
        b.extend_from_slice(&check.to_le_bytes());
        b.extend_from_slice(&[9, 9]);
        for i in 0..lanes {
            b.extend(std::iter::repeat_n(i as u8, i % 3));
        }
        match read_block(&mut &b[..], &v2).unwrap() {
            Block::Model { tail, streams, .. } => {
                assert_eq!(tail, [9, 9]);
                assert_eq!(streams.len(), lanes);
                assert!(streams.iter().enumerate().all(|(i, s)| s.len() == i % 3));
            }
            b => panic!("{b:?}"),
        }
        assert!(matches!(
            read_block(&mut &b[..], &header()),
            Err(Error::Corrupt("unknown block kind"))
        ));
        let mut v3 = Vec::new();
        write_model_block(&mut v3, seg as u32, &[9, 9], &[1, 2, 3]).unwrap();
        assert!(matches!(
            read_block(&mut &v3[..], &v2),
            Err(Error::Corrupt("unknown block kind"))
        ));
        // Version 2 headers still read; 1 and 4 do not.
        let mut buf = Vec::new();
        v2.write(&mut buf).unwrap();
        assert_eq!(read_header(&buf).unwrap().version, 2);
        for v in [1, 4] {
            let bad = FrameHeader {
                version: v,
                ..header()
            };
            buf.clear();
            bad.write(&mut buf).unwrap();
            assert!(matches!(read_header(&buf), Err(Error::UnsupportedVersion(x)) if x == v));
        }
    }
}
