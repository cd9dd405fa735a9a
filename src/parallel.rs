//! Several threads at once, and the frames of a file: what `fade -T`,
//! parallel decoding and `fade -l` do, as library calls.
//!
//! [`compress_parallel`] cuts the input into blocks of [`Parallel::block_size`]
//! and codes each as its own frame with its own model, on
//! [`Parallel::threads`] workers; the frames of more than one block are
//! numbered and closed by an index, so a file cut at a frame boundary, or with
//! frames dropped, repeated or swapped, is refused. The output depends on the
//! block size only, never on the number of threads, and any [`crate::Decoder`]
//! reads it. [`frames`] finds the frames of a seekable file from their framing
//! alone (no model work), and [`decompress_frames`] decodes them on several
//! threads.

use crate::device::Device;
use crate::engine::{self, blocks, FrameSpan, Limits};
use crate::error::Result;
use crate::plan::resolve_threads;
use crate::preset::Preset;
use std::io::{Read, Seek, Write};

pub use blocks::DEFAULT_BLOCK_SIZE;

/// How many workers, and how large the blocks, of [`compress_parallel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Parallel {
    /// Worker threads, each with its own model (at least 1).
    pub threads: usize,
    /// Bytes of input per frame.
    pub block_size: usize,
}

impl Parallel {
    /// `threads` workers (0: one per core the process may use) and blocks of
    /// `block_size` bytes ([`DEFAULT_BLOCK_SIZE`] if `None`; at least 1).
    pub fn new(threads: usize, block_size: Option<usize>) -> Self {
        Self {
            threads: resolve_threads(threads),
            block_size: block_size.unwrap_or(DEFAULT_BLOCK_SIZE).max(1),
        }
    }
}

/// Compresses `input` into `out` in independent blocks, each its own frame,
/// on several threads (`fade -T`). `size`, when given, is what `input` must
/// yield ([`crate::Error::InputChanged`] otherwise); `limits.memory` counts
/// one model per worker; `progress` is called with input bytes as they are
/// coded. Returns `out`.
///
/// ```
/// use fade::{Device, Limits, Parallel, Preset};
/// let data = vec![b'a'; 5000];
/// let par = Parallel::new(2, Some(2048));
/// let fast = Preset::load("fast")?;
/// let packed = fade::compress_parallel(&data[..], Vec::new(), &fast, Device::Cpu,
///     &Limits::default(), None, par, &mut |_| {})?;
/// assert_eq!(fade::decompress(&packed)?, data);
/// # Ok::<(), fade::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn compress_parallel<R: Read + Send, W: Write>(
    input: R,
    out: W,
    preset: &Preset,
    device: Device,
    limits: &Limits,
    size: Option<u64>,
    par: Parallel,
    progress: &mut dyn FnMut(u64),
) -> Result<W> {
    // The fields are public: a caller may have set either to 0.
    let par = Parallel {
        threads: par.threads.max(1),
        block_size: par.block_size.max(1),
    };
    blocks::compress_blocks(input, out, preset, device, limits, size, par, progress)
}

/// One frame of a file, found from its framing alone ([`frames`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FrameInfo {
    /// Offset of the frame's first byte in the file.
    pub offset: u64,
    /// Bytes of the frame, header to end block.
    pub len: u64,
    /// Bytes of the index after the frame, when it closes a sequence (0
    /// otherwise).
    pub trailer: u64,
    /// Bytes of content it decodes to.
    pub content: u64,
    /// Its preset, as fitted to its input (`description` is not stored).
    pub preset: Preset,
    /// Whether it ends with a content checksum (xxh3-64; always, in the
    /// frames of this format version).
    pub content_check: bool,
    span: FrameSpan,
}

/// Finds every frame of a seekable input from its headers and block framing,
/// seeking over block bodies (no model work): what `fade -l` lists and what
/// [`decompress_frames`] decodes. Checks what framing can check (header and
/// block checksums, lengths against each frame's record, sequences and their
/// indexes, an input that ends inside a frame); the content is not decoded.
pub fn frames<R: Read + Seek>(input: &mut R) -> Result<Vec<FrameInfo>> {
    Ok(engine::frames(input)?
        .into_iter()
        .map(|span| FrameInfo {
            offset: span.offset,
            len: span.len,
            trailer: span.trailer,
            content: span.content,
            preset: span.header.preset.clone(),
            content_check: span.header.content_check,
            span,
        })
        .collect())
}

/// How many of `frames` [`decompress_frames`] decodes at once with up to
/// `threads` threads: as many as `limits.memory` allows, each holding one
/// model, one frame and its content; 1 for a single frame or one too large
/// to hold (those decode as a stream, [`crate::Decoder`]).
pub fn decode_workers(frames: &[FrameInfo], limits: &Limits, threads: usize) -> usize {
    blocks::frame_workers(&spans(frames), limits, threads)
}

/// Decodes `frames` (from [`frames`] on `file`) into `out` on up to
/// `threads` threads ([`decode_workers`] at once), in order, with every
/// check of a streaming decoder: each frame's content checksum, and each
/// sequence's index and whole-content checksum before its last frame is
/// written. `progress` is called with content bytes as they are decoded.
pub fn decompress_frames<W: Write>(
    frames: &[FrameInfo],
    file: &std::fs::File,
    out: &mut W,
    device: Device,
    limits: &Limits,
    threads: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let fetch = |at: u64, len: usize| {
        let mut v = vec![0u8; len];
        read_exact_at(file, &mut v, at).map(|_| v)
    };
    blocks::decompress_frames(
        &spans(frames),
        &fetch,
        out,
        device,
        limits,
        threads.max(1),
        progress,
    )?;
    Ok(())
}

fn spans(frames: &[FrameInfo]) -> Vec<FrameSpan> {
    frames.iter().map(|f| f.span.clone()).collect()
}

#[cfg(unix)]
fn read_exact_at(f: &std::fs::File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, at)
}

#[cfg(not(unix))]
fn read_exact_at(f: &std::fs::File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    use std::io::SeekFrom;
    let mut f = f;
    f.seek(SeekFrom::Start(at))?;
    f.read_exact(buf)
}
