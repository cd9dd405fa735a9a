//! [`Decoder`]: decompression as a [`Read`]; the one-call [`decompress`];
//! [`scan`] for what a stream holds without decoding it.

use crate::device::Device;
use crate::encoder::Progress;
use crate::engine::{self, Limits, StreamDecoder};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::preset::Preset;
use std::io::{self, BufRead, BufReader, Read};

/// Where a [`Decoder`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// The input ended cleanly after the last frame.
    Done,
    /// An error ended decoding.
    Failed,
}

/// Decompresses a fade stream read from `R`: any number of concatenated
/// frames, read as the concatenation of their contents.
///
/// Decoding runs a segment at a time (at most the preset's `segment` bytes,
/// 4 MiB for the built-in presets): a [`read`](Read::read) that finds nothing
/// buffered decodes the next segment, and later reads are served from it.
/// Every frame's header is checked before any model work: its memory needs
/// against the [`Limits`] ([`Error::MemoryLimit`]) and the encoder's
/// arithmetic against this device's ([`Error::Device`]). Each frame's length
/// and content checksum are verified before its last bytes are returned, so a
/// read that returns 0 (the end) means everything was verified. An empty
/// input and bytes after the last frame that do not start another are errors.
///
/// Errors are [`io::Error`]s carrying the [`Error`] ([`Error::io_kind`] gives
/// their kind; `fade::Error::from` gets the fade error back). After an error
/// every later read fails too. `R` is read through a buffer of the decoder's
/// own; it need not be buffered.
///
/// ```
/// use std::io::Read;
///
/// let packed = fade::compress(b"read me back, read me back", 1)?;
/// let mut out = String::new();
/// fade::Decoder::new(&packed[..]).read_to_string(&mut out)?;
/// assert_eq!(out, "read me back, read me back");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Decoder<R> {
    input: BufReader<R>,
    frames: StreamDecoder,
    /// Told of progress; does nothing unless `with_progress` set it.
    progress: Progress,
    /// The segment being served, and how much of it was read.
    segment: Vec<u8>,
    pos: usize,
    state: State,
}

impl<R: Read> Decoder<R> {
    /// A decoder whose model runs on the CPU, within the default [`Limits`].
    pub fn new(input: R) -> Self {
        Self::on(input, candle_core::Device::Cpu)
    }

    /// A decoder whose model runs on `device`, which it opens here. Files
    /// decode only on the kind of device that wrote them.
    pub fn with_device(input: R, device: Device) -> Result<Self> {
        Ok(Self::on(input, device.open()?))
    }

    fn on(input: R, device: candle_core::Device) -> Self {
        Self {
            input: BufReader::with_capacity(1 << 16, input),
            frames: StreamDecoder::new(device, Limits::default()),
            progress: Box::new(|_| {}),
            segment: Vec::new(),
            pos: 0,
            state: State::Running,
        }
    }

    /// Refuses frames that would need more memory than `limits` allow
    /// ([`Error::MemoryLimit`]), before anything of them is allocated.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.frames.set_limits(limits);
        self
    }

    /// Calls `f` with the number of bytes decoded, many times per segment
    /// (once per model step), on the thread that reads.
    pub fn with_progress(mut self, f: impl FnMut(u64) + Send + 'static) -> Self {
        self.progress = Box::new(f);
        self
    }

    /// Frames decoded and verified so far (all of them, once a read has
    /// returned 0).
    pub fn frames(&self) -> usize {
        self.frames.summary().frames
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        self.input.get_ref()
    }

    /// The underlying reader. Input the decoder has buffered but not used is
    /// lost.
    pub fn into_inner(self) -> R {
        self.input.into_inner()
    }
}

impl<R: Read> BufRead for Decoder<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.segment.len() {
            match self.state {
                State::Running => {}
                State::Done => return Ok(&[]),
                State::Failed => {
                    return Err(io::Error::other(
                        "fade::Decoder: an earlier error ended decoding",
                    ))
                }
            }
            match self
                .frames
                .next_segment(&mut self.input, &mut *self.progress)
            {
                Ok(Some(data)) => self.segment = data,
                Ok(None) => {
                    self.state = State::Done;
                    self.segment = Vec::new();
                }
                Err(e) => {
                    self.state = State::Failed;
                    self.segment = Vec::new();
                    self.pos = 0;
                    return Err(e.into());
                }
            }
            self.pos = 0;
        }
        Ok(&self.segment[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.segment.len());
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let have = self.fill_buf()?;
        let n = have.len().min(buf.len());
        buf[..n].copy_from_slice(&have[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// Decompresses every frame of `data` on the CPU, within the default
/// [`Limits`]. See [`Decoder`] for the checks.
pub fn decompress(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    engine::decompress_with(
        &mut &data[..],
        &mut out,
        &candle_core::Device::Cpu,
        &Limits::default(),
        &mut |_| {},
    )?;
    Ok(out)
}

/// What a fade stream holds, from its headers and block framing alone.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StreamInfo {
    /// The first frame's preset, as fitted to its input (its `description`
    /// is not stored and is empty).
    pub preset: Preset,
    /// Whether the first frame ends with a content checksum (xxh3-64).
    pub content_check: bool,
    /// Frames in the stream.
    pub frames: usize,
    /// Bytes of content, all frames together.
    pub content: u64,
}

/// Reads the headers and block framing of every frame of `input`, without
/// any model work (what `fade list` shows). The framing is verified (header
/// and block checksums, each frame's blocks against its recorded length); the
/// content is not decoded, so its checksum is not.
///
/// ```
/// let packed = fade::compress(b"what is in there?", 1)?;
/// let info = fade::scan(&packed[..])?;
/// assert_eq!((info.frames, info.content), (1, 17));
/// assert_eq!(info.preset.name, "fast");
/// # Ok::<(), fade::Error>(())
/// ```
pub fn scan<R: Read>(input: R) -> Result<StreamInfo> {
    let mut input = BufReader::with_capacity(1 << 16, input);
    let (header, frames, content) = engine::scan(&mut input)?;
    Ok(StreamInfo {
        preset: header.preset,
        content_check: header.content_check,
        frames,
        content,
    })
}
