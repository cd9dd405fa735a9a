//! The codec: frames of segments, each segment coded by the model over its lanes.
//!
//! [`Compressor`] takes segments (at most `preset.segment` bytes each) and writes
//! one frame; [`compress_reader`] feeds it from any reader through a reader thread
//! and a bounded channel, so memory stays bounded whatever the input length.
//! [`decompress`] reads any number of concatenated frames.
//!
//! An input shorter than one segment gets fewer lanes ([`Preset::fitted`]),
//! the same whether it comes from a file or a pipe.
//!
//! The model keeps learning across the segments of a frame. A segment whose
//! coded form would not be smaller is stored raw, and both sides still train the
//! model on it, so they stay in step.

pub mod blocks;
pub mod lanes;
pub mod sequence;

use crate::error::{Error, Result};
use crate::filter;
use crate::format::{self, Block, BlockHead, DeviceClass, FrameHeader, Index, Item};
use crate::plan::{resolve_threads, Plan, MAX_KERNEL_THREADS};
use crate::predictor::Predictor;
use crate::preset::Preset;
use candle_core::Device;
use crossbeam_channel::bounded;
use lanes::Layout;
use sequence::Sequence;
use std::io::{Read, Seek, SeekFrom, Write};
use xxhash_rust::xxh3::Xxh3;

/// The fingerprint of `p`'s arithmetic on `device`, with the tables of
/// format `version` (see `Predictor::fingerprint`).
pub fn fingerprint(p: &Preset, device: &Device, version: u8) -> Result<u64> {
    Predictor::fingerprint(p, device, version)
}

/// The fingerprints of the built-in presets' canaries (identifier, format
/// version, fingerprint) on a CPU: fade's arithmetic is the same on every CPU
/// (docs/FORMAT.md), so these are constants of the format, pinned by a test.
/// A header that names a built-in preset with another fingerprint is refused
/// at once, without running the canary (paper's takes 0.3 s and 380 MB).
const KNOWN_FINGERPRINTS: &[(u8, u8, u64)] = &[
    (1, 2, 0x91555fcedb526874),
    (1, 3, 0x15e7779512b4fee1),
    (2, 2, 0x2b6f16dca887f34f),
    (2, 3, 0x034eddcc9b71c628),
    (3, 2, 0xc7c60541c2d0bdfd),
    (3, 3, 0xc319c519ff6cc8e5),
    (4, 2, 0x545106d7a4e5a71f),
    (4, 3, 0xb1a9a1dcf965c480),
    (5, 2, 0xbcd7226d12b0de39),
    (5, 3, 0xe7613047293fb53c),
    (6, 2, 0xa291525a5fa698d9),
    (6, 3, 0x0d781febc72fc5b9),
    (7, 2, 0x502fe56e6fb70e3f),
    (7, 3, 0xbf6e1c4ddb3e514e),
    (8, 2, 0x25501210806c592c),
    (8, 3, 0xc9ea6e39eae97262),
    (9, 2, 0x7e83c691f5a132c5),
    (9, 3, 0xc8114daf251456b2),
    (10, 2, 0x0a923cb6e9f41390),
    (10, 3, 0x6d65cca101239f09),
    (11, 2, 0x02d2ae8f6842a624),
    (11, 3, 0x2fa359382f559bc5),
    (12, 2, 0xa8f78ed33d2e2126),
    (12, 3, 0xf5b4bc7d35b137c2),
    (13, 2, 0x615eeaacc1b43e68),
    (13, 3, 0x0083bf2c859ce3eb),
    (14, 2, 0xb268daf5ac31595b),
    (14, 3, 0xe6f2eee777c7b789),
    (15, 2, 0xa4767aaf5a1cd1a8),
    (15, 3, 0xb7ed583c8873b809),
    (16, 2, 0x4451b5ad0b4ed43d),
    (16, 3, 0xc208943a735fce9),
    (17, 2, 0x5af21d936ff878ee),
    (17, 3, 0xeb6404bdd173bade),
    (18, 2, 0x5af21d936ff878ee),
    (18, 3, 0xeb6404bdd173bade),
    (19, 2, 0x5af21d936ff878ee),
    (19, 3, 0xeb6404bdd173bade),
];

/// The fingerprint a CPU computes for `p` at format `version`, if this build
/// knows it without running the canary: for a built-in preset whose canary
/// is the built-in's own (at least three lanes, tables no smaller than the
/// canary's).
pub fn known_fingerprint(p: &Preset, version: u8) -> Option<u64> {
    let id = p.builtin_id()?;
    if p.canary() != Preset::builtin(id)?.canary() {
        return None;
    }
    KNOWN_FINGERPRINTS
        .iter()
        .find(|k| (k.0, k.1) == (id, version))
        .map(|k| k.2)
}

/// The default memory limit (of [`Limits::default`], and of the `fade`
/// command without `--memory-limit`): 4 GiB. Every built-in preset,
/// with the lanes fade gives it by default, needs well under this (the largest,
/// `paper`, about 1.2 GiB by [`Preset::memory_needed`]).
pub const DEFAULT_MEMORY_LIMIT: u64 = 4 << 30;

/// What the caller lets coding use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Bytes of memory a frame may need ([`Preset::memory_needed`]); a frame
    /// needing more is refused before anything is allocated.
    pub memory: u64,
    /// Threads one frame's model may share its kernels with (the calling
    /// thread included; at most [`MAX_KERNEL_THREADS`] are used). The output
    /// is the same for any number: see `src/par.rs`. Default 1, as zstd's
    /// library: a program decides how many cores fade takes.
    pub threads: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory: DEFAULT_MEMORY_LIMIT,
            threads: 1,
        }
    }
}

impl Limits {
    /// These limits with the kernels of each model on up to `threads`
    /// threads (0: one per core), capped at [`MAX_KERNEL_THREADS`].
    pub fn with_threads(self, threads: usize) -> Self {
        Self {
            threads: resolve_threads(threads).min(MAX_KERNEL_THREADS),
            ..self
        }
    }

    /// These limits with at most `bytes` of memory per frame.
    pub fn with_memory(self, bytes: u64) -> Self {
        Self {
            memory: bytes,
            ..self
        }
    }

    /// Refuses `p` if coding with it would need more memory than allowed.
    pub fn check(&self, p: &Preset) -> Result<()> {
        self.check_many(p, 1)
    }

    /// Refuses `n` models of `p` at once (parallel blocks) above the limit.
    pub fn check_many(&self, p: &Preset, n: usize) -> Result<()> {
        let needed = p.memory_needed().saturating_mul(n as u64);
        if needed > self.memory {
            return Err(Error::MemoryLimit {
                needed,
                limit: self.memory,
            });
        }
        Ok(())
    }
}

fn device_name(c: DeviceClass) -> &'static str {
    match c {
        DeviceClass::Cpu => "cpu",
        DeviceClass::Cuda => "cuda",
    }
}

/// Writes one frame, a segment at a time.
pub struct Compressor<W: Write> {
    out: W,
    predictor: Predictor,
    preset: Preset,
    hasher: Xxh3,
    total: u64,
    /// The length promised in the header, if any.
    promised: Option<u64>,
    /// Segments go through the x86 filter before coding.
    x86: bool,
}

impl<W: Write> Compressor<W> {
    /// Builds the predictor and writes the frame header. `content_size`, when
    /// given, goes into the header, and [`Compressor::finish`] fails with
    /// [`Error::InputChanged`] if the segments do not add up to it. `first`
    /// is the first segment (or all there is): it decides whether the frame
    /// uses the x86 filter. `member` is the frame's number in a sequence of
    /// frames that an index closes (`engine::sequence`), if it is one.
    pub fn new(
        preset: &Preset,
        device: &Device,
        limits: &Limits,
        mut out: W,
        content_size: Option<u64>,
        first: &[u8],
        member: Option<u64>,
    ) -> Result<Self> {
        // The filter is preprocessing for the hybrid presets; `paper` and
        // other pure networks stay the paper's model on the bytes as they are.
        let x86 = preset.has_side_models() && filter::looks_like_x86(first);
        // Never write a frame that a reader would refuse.
        preset
            .validate()
            .and_then(|()| preset.check_custom())
            .map_err(Error::Preset)?;
        // The canary first: it is dropped before the real model is built,
        // so the two never take memory at the same time.
        let plan = Plan::new(preset, format::VERSION, device, limits.threads);
        let header = FrameHeader {
            version: plan.version,
            preset: preset.clone(),
            content_check: true,
            device: plan.device,
            fingerprint: fingerprint(preset, device, format::VERSION)?,
            content_size,
            x86,
            member,
        };
        let predictor = Predictor::new(preset, device, plan)?;
        header.write(&mut out)?;
        Ok(Self {
            out,
            predictor,
            preset: preset.clone(),
            hasher: Xxh3::new(),
            total: 0,
            promised: content_size,
            x86,
        })
    }

    /// Codes one segment (at most `preset.segment` bytes).
    pub fn segment(&mut self, data: &[u8], progress: &mut dyn FnMut(u64)) -> Result<()> {
        assert!(
            data.len() <= self.preset.segment as usize,
            "segment larger than the preset allows"
        );
        if data.is_empty() {
            return Ok(());
        }
        self.hasher.update(data);
        self.total += data.len() as u64;
        let filtered;
        let data = if self.x86 {
            filtered = {
                let mut v = data.to_vec();
                filter::encode(&mut v);
                v
            };
            &filtered[..]
        } else {
            data
        };
        let lay = Layout::new(
            data.len(),
            self.preset.lanes as usize,
            self.preset.context as usize,
        );
        if lay.lane_len == 0 {
            progress(data.len() as u64);
            return format::write_stored_block(&mut self.out, data);
        }
        let (body, tail) = data.split_at(lay.body());
        let stream = lanes::encode(&mut self.predictor, lay, body, progress)?;
        progress(tail.len() as u64);
        if format::model_block_size(data.len(), tail.len(), stream.len())
            >= format::stored_block_size(data.len())
        {
            format::write_stored_block(&mut self.out, data)
        } else {
            format::write_model_block(&mut self.out, data.len() as u32, tail, &stream)
        }
    }

    /// The writer, with everything written to it so far.
    pub fn writer(&mut self) -> &mut W {
        &mut self.out
    }

    /// Writes the end block (length and content checksum) and returns the writer.
    pub fn finish(mut self) -> Result<W> {
        if self.promised.is_some_and(|n| n != self.total) {
            return Err(Error::InputChanged);
        }
        format::write_end(&mut self.out, self.total, Some(self.hasher.digest()))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Compresses everything `input` yields into one frame, within the default
/// [`Limits`]. See [`compress_reader_with`].
pub fn compress_reader<R: Read + Send, W: Write>(
    input: R,
    out: W,
    preset: &Preset,
    device: &Device,
    progress: &mut dyn FnMut(u64),
) -> Result<W> {
    compress_reader_with(
        input,
        out,
        preset,
        device,
        &Limits::default(),
        None,
        progress,
    )
}

/// Compresses everything `input` yields into one frame. A reader thread fills
/// segments and hands them over a bounded channel, so reading overlaps with
/// modelling and at most three segments are in memory. Each segment is read
/// into memory the process owns before it is hashed and coded, so the bytes
/// hashed are exactly the bytes coded, whatever happens to the input meanwhile.
/// Refuses, before the model is built, a preset (as fitted to the input) that
/// would need more memory than `limits` allow.
///
/// `size` is the input's length if the caller knows it (a regular file): it
/// goes into the header, so decoders can show a total, and an input that does
/// not yield exactly that many bytes fails with [`Error::InputChanged`]. An
/// input shorter than one segment records its length anyway.
pub fn compress_reader_with<R: Read + Send, W: Write>(
    mut input: R,
    out: W,
    preset: &Preset,
    device: &Device,
    limits: &Limits,
    size: Option<u64>,
    progress: &mut dyn FnMut(u64),
) -> Result<W> {
    let seg = preset.segment as usize;
    let (tx, rx) = bounded::<std::io::Result<Vec<u8>>>(1);
    std::thread::scope(|s| {
        s.spawn(move || loop {
            let mut buf = vec![0u8; seg];
            let mut n = 0;
            let res = loop {
                match input.read(&mut buf[n..]) {
                    Ok(0) => break Ok(()),
                    Ok(k) => {
                        n += k;
                        if n == seg {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            buf.truncate(n);
            let last = n < seg || res.is_err();
            let msg = res.map(|_| buf);
            if tx.send(msg).is_err() || last {
                return;
            }
        });
        // The reader always sends at least one segment. When the first is short,
        // it is the whole input, and its length is known before the header.
        let first = rx
            .recv()
            .map_err(|_| Error::Internal("reader thread stopped"))??;
        let (preset, size) = if first.len() < seg {
            let n = first.len() as u64;
            if size.is_some_and(|s| s != n) {
                return Err(Error::InputChanged);
            }
            (preset.fitted(first.len()), Some(n))
        } else {
            (preset.clone(), size)
        };
        limits.check(&preset)?;
        let mut c = Compressor::new(&preset, device, limits, out, size, &first, None)?;
        c.segment(&first, progress)?;
        for msg in rx.iter() {
            c.segment(&msg?, progress)?;
        }
        c.finish()
    })
}

/// Compresses an in-memory (or memory-mapped) input into one frame, its
/// model's kernels on `limits.threads` threads (the memory limit is the
/// caller's to check).
pub fn compress_slice<W: Write>(
    data: &[u8],
    out: W,
    preset: &Preset,
    device: &Device,
    limits: &Limits,
    progress: &mut dyn FnMut(u64),
) -> Result<W> {
    compress_member(data, out, preset, device, limits, None, progress)
}

/// [`compress_slice`] for a frame that is number `member` of a sequence
/// closed by an index (`engine::sequence`), or of its own if `None`.
pub fn compress_member<W: Write>(
    data: &[u8],
    out: W,
    preset: &Preset,
    device: &Device,
    limits: &Limits,
    member: Option<u64>,
    progress: &mut dyn FnMut(u64),
) -> Result<W> {
    let preset = if data.len() < preset.segment as usize {
        preset.fitted(data.len())
    } else {
        preset.clone()
    };
    let first = &data[..data.len().min(preset.segment as usize)];
    let size = Some(data.len() as u64);
    let mut c = Compressor::new(&preset, device, limits, out, size, first, member)?;
    for chunk in data.chunks(preset.segment as usize) {
        c.segment(chunk, progress)?;
    }
    c.finish()
}

/// What a decoded stream held.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Frames read.
    pub frames: usize,
    /// Bytes of content.
    pub content: u64,
    /// The first frame's header.
    pub first: Option<FrameHeader>,
}

/// Decodes every frame of `input` into `out` within the default [`Limits`].
/// See [`decompress_with`].
pub fn decompress<R: Read, W: Write>(
    input: &mut R,
    out: &mut W,
    device: &Device,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary> {
    decompress_with(input, out, device, &Limits::default(), progress)
}

/// Decodes every frame of `input` into `out`, verifying lengths and checksums.
/// Trailing bytes that do not start a frame are an error. A frame whose header
/// asks for more memory than `limits` allow is refused before anything of it
/// is allocated.
pub fn decompress_with<R: Read, W: Write>(
    input: &mut R,
    out: &mut W,
    device: &Device,
    limits: &Limits,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary> {
    let mut frames = StreamDecoder::new(device.clone(), *limits);
    while let Some(data) = frames.next_segment(input, progress)? {
        out.write_all(&data)?;
    }
    Ok(frames.into_summary())
}

/// Decodes any number of concatenated frames, a segment at a time: the one
/// decoder behind [`decompress_with`] and [`crate::Decoder`].
pub struct StreamDecoder {
    device: Device,
    limits: Limits,
    frame: Option<FrameDecoder>,
    summary: Summary,
    /// The sequence of member frames being read, if any.
    sequence: Sequence,
    /// Bytes of input consumed, and where the current frame started.
    pos: u64,
    frame_start: u64,
}

impl StreamDecoder {
    /// A decoder whose model runs on `device`, within `limits`.
    pub fn new(device: Device, limits: Limits) -> Self {
        Self {
            device,
            limits,
            frame: None,
            summary: Summary::default(),
            sequence: Sequence::default(),
            pos: 0,
            frame_start: 0,
        }
    }

    /// The limits later frames are checked against.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The next segment of content (never empty), or `None` at the clean end
    /// of the input after the last frame. Every frame's length and checksum are
    /// verified before its end is passed, and every sequence of member frames
    /// against its index before the next frame or the end; bytes after the
    /// last frame that do not start another are an error, and so is an input
    /// with no frame.
    pub fn next_segment<R: Read>(
        &mut self,
        input: &mut R,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Option<Vec<u8>>> {
        let mut input = Counting {
            inner: input,
            n: &mut self.pos,
        };
        loop {
            let frame = match &mut self.frame {
                Some(f) => f,
                None => {
                    let start = *input.n;
                    match next_item(&mut input, self.summary.frames)? {
                        None => {
                            self.sequence.end()?;
                            return Ok(None);
                        }
                        Some(Item::Index(head)) => {
                            let expected = self.sequence.expected()?;
                            let idx = Index::read_rest(head, expected, &mut input)?;
                            self.sequence.close(&idx, true)?;
                            continue;
                        }
                        Some(Item::Frame(h)) => {
                            self.sequence.frame(h.member)?;
                            self.frame_start = start;
                            self.frame
                                .insert(FrameDecoder::new(h, &self.device, &self.limits)?)
                        }
                    }
                }
            };
            if let Some(data) = frame.next_segment(&mut input, progress)? {
                self.sequence.content(&data);
                return Ok(Some(data));
            }
            let done = self.frame.take().expect("a frame was being decoded");
            self.sequence
                .frame_done(done.total, *input.n - self.frame_start);
            let sum = &mut self.summary;
            sum.content = sum.content.checked_add(done.total).ok_or(TOTAL_OVERFLOW)?;
            sum.frames += 1;
            sum.first.get_or_insert(done.header);
        }
    }

    /// What the frames decoded so far held.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// What the frames decoded held.
    pub fn into_summary(self) -> Summary {
        self.summary
    }
}

/// Reads what starts at the next frame boundary: a frame header or an index;
/// `None` at a clean end after at least one frame. Bytes after the last frame
/// that do not start another one are an error.
fn next_item<R: Read>(input: &mut R, frames_read: usize) -> Result<Option<Item>> {
    let first = match format::read_byte_or_eof(input)? {
        None if frames_read > 0 => return Ok(None),
        None => return Err(Error::Truncated),
        Some(b) => b,
    };
    match format::read_item(first, input) {
        Err(Error::NotFade) if frames_read > 0 => {
            Err(Error::Corrupt("trailing garbage after the last frame"))
        }
        Ok(Item::Index(_)) if frames_read == 0 => Err(Error::Corrupt(format::INDEX_WITHOUT_FRAMES)),
        r => r.map(Some),
    }
}

/// Decodes one whole frame held in `bytes` into `out`, on its own: the
/// frames of a sequence decoded in parallel, whose order and index the frame
/// walk ([`frames`]) checked. Anything after the frame's end is an error.
pub fn decompress_frame(
    bytes: &[u8],
    out: &mut Vec<u8>,
    device: &Device,
    limits: &Limits,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let mut input = bytes;
    let header = match next_item(&mut input, 0)? {
        Some(Item::Frame(h)) => h,
        _ => return Err(Error::NotFade),
    };
    let mut frame = FrameDecoder::new(header, device, limits)?;
    while let Some(data) = frame.next_segment(&mut input, progress)? {
        out.extend_from_slice(&data);
    }
    if !input.is_empty() {
        return Err(Error::Corrupt("trailing garbage after the last frame"));
    }
    Ok(())
}

/// The error for a frame whose arithmetic this device does not reproduce.
fn mismatch(this: DeviceClass, writer: DeviceClass) -> Error {
    Error::Device(format!(
        "this {} computes differently from the {} that wrote the file; decompress on the same kind of {} (and build) as the encoder",
        device_name(this),
        device_name(writer),
        device_name(writer)
    ))
}

/// Decodes the blocks of one frame, a segment at a time.
pub struct FrameDecoder {
    header: FrameHeader,
    /// The frame's decisions, from its header, the device and the limits.
    plan: Plan,
    /// Built when the first block's head has passed its checksum, so a
    /// valid header over damaged blocks costs no model.
    predictor: Option<Predictor>,
    device: Device,
    hasher: Xxh3,
    total: u64,
}

impl FrameDecoder {
    /// Checks the frame's memory needs against `limits`, and its device and
    /// (for a built-in preset) its fingerprint against what this build knows
    /// ([`known_fingerprint`]): a header that fails is refused at once. The
    /// canary and the predictor wait for the first block whose head passes
    /// its checksum, so a valid header over damaged blocks costs no model.
    pub fn new(header: FrameHeader, device: &Device, limits: &Limits) -> Result<Self> {
        let p = &header.preset;
        limits.check(p)?;
        let plan = Plan::new(p, header.version, device, limits.threads);
        let known = match plan.device {
            DeviceClass::Cpu => known_fingerprint(p, header.version),
            DeviceClass::Cuda => None,
        };
        if plan.device != header.device || known.is_some_and(|k| k != header.fingerprint) {
            return Err(mismatch(plan.device, header.device));
        }
        Ok(Self {
            header,
            plan,
            predictor: None,
            device: device.clone(),
            hasher: Xxh3::new(),
            total: 0,
        })
    }

    /// The predictor, built on first use, after the canary has shown that
    /// this device computes as the encoder's did: refused before any model
    /// work with "device mismatch", never mid-file with "corrupt data".
    fn predictor(&mut self) -> Result<&mut Predictor> {
        if self.predictor.is_none() {
            let h = &self.header;
            if fingerprint(&h.preset, &self.device, h.version)? != h.fingerprint {
                return Err(mismatch(self.plan.device, h.device));
            }
            self.predictor = Some(Predictor::new(&h.preset, &self.device, self.plan)?);
        }
        Ok(self.predictor.as_mut().expect("built above"))
    }

    /// The next segment of the frame (never empty), or `None` once its end
    /// block is read and the length and content checksum are verified.
    pub fn next_segment<R: Read>(
        &mut self,
        input: &mut R,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Option<Vec<u8>>> {
        let (lanes, context) = (
            self.header.preset.lanes as usize,
            self.header.preset.context as usize,
        );
        let mut data = match format::read_block(input, &self.header)? {
            Block::Stored(data) => {
                let lay = Layout::new(data.len(), lanes, context);
                if lay.lane_len > 0 {
                    lanes::train_only(self.predictor()?, lay, &data[..lay.body()], progress)?;
                }
                progress((data.len() - lay.body()) as u64);
                data
            }
            Block::Model {
                seg_len,
                tail,
                streams,
            } => {
                let lay = Layout::new(seg_len, lanes, context);
                let mut buf = vec![0u8; seg_len];
                lanes::decode(
                    self.predictor()?,
                    lay,
                    &streams,
                    &mut buf[..lay.body()],
                    progress,
                )?;
                buf[lay.body()..].copy_from_slice(&tail);
                progress(tail.len() as u64);
                buf
            }
            Block::End { total, content } => {
                let h = &self.header;
                if total != self.total || h.content_size.is_some_and(|n| n != total) {
                    return Err(Error::Corrupt(
                        "content length differs from the frame's record",
                    ));
                }
                if h.content_check && content != Some(self.hasher.digest()) {
                    return Err(Error::ChecksumMismatch);
                }
                return Ok(None);
            }
        };
        if self.header.x86 {
            filter::decode(&mut data);
        }
        self.hasher.update(&data);
        self.total += data.len() as u64;
        Ok(Some(data))
    }
}

/// Content lengths that add up beyond 2^64 bytes: no real input is that long.
const TOTAL_OVERFLOW: Error = Error::Corrupt("content lengths add up beyond 2^64 bytes");

/// Where one frame lies in a file, found from its framing alone.
#[derive(Debug, Clone)]
pub struct FrameSpan {
    /// Offset of the frame's first byte.
    pub offset: u64,
    /// Bytes of the frame, header to end block.
    pub len: u64,
    /// Its header.
    pub header: FrameHeader,
    /// Bytes of content it decodes to (its end block's record).
    pub content: u64,
    /// When the frame is the last of a sequence: the whole-content checksum
    /// its index records (the index follows the frame).
    pub closes: Option<u64>,
    /// Bytes of the index after the frame (0 when none follows).
    pub trailer: u64,
}

/// Finds every frame of a seekable input from headers and block framing,
/// seeking over block bodies (no model work, no body read): for `fade -l`,
/// progress totals and decoding frames in parallel. Checks what framing can
/// check: header and block checksums, block lengths against the end block's
/// record and the header's content size, and that the input does not end
/// inside a frame.
pub fn frames<R: Read + Seek>(input: &mut R) -> Result<Vec<FrameSpan>> {
    let end = input.seek(SeekFrom::End(0))?;
    input.seek(SeekFrom::Start(0))?;
    walk(input, |r, n| {
        let at = r.stream_position()?;
        if end - at < n {
            return Err(Error::Truncated);
        }
        r.seek(SeekFrom::Current(n as i64))?;
        Ok(at + n)
    })
}

/// Reads only the headers and block framing of every frame (no model work),
/// reading over block bodies: [`frames`] for an input that cannot seek.
/// Returns (header of the first frame, frames, content bytes).
pub fn scan<R: Read>(input: &mut R) -> Result<(FrameHeader, usize, u64)> {
    let mut pos = 0u64;
    let mut counted = Counting {
        inner: input,
        n: &mut pos,
    };
    let spans = walk(&mut counted, |r, n| {
        if std::io::copy(&mut r.take(n), &mut std::io::sink())? < n {
            return Err(Error::Truncated);
        }
        Ok(*r.n)
    })?;
    let content = spans
        .iter()
        .try_fold(0u64, |a, f| a.checked_add(f.content))
        .ok_or(TOTAL_OVERFLOW)?;
    Ok((spans[0].header.clone(), spans.len(), content))
}

/// A reader that counts the bytes read through it.
struct Counting<'a, R> {
    inner: R,
    n: &'a mut u64,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        *self.n += k as u64;
        Ok(k)
    }
}

/// The frame walk of [`frames`] and [`scan`]; `skip(r, n)` passes over `n`
/// body bytes and returns the position after them. Positions come from
/// `skip`, so the walk needs no `Seek` itself.
fn walk<R: Read>(
    input: &mut R,
    mut skip: impl FnMut(&mut R, u64) -> Result<u64>,
) -> Result<Vec<FrameSpan>> {
    let mut spans: Vec<FrameSpan> = Vec::new();
    let mut offset = 0u64;
    let mut seq = Sequence::default();
    loop {
        let header = match next_item(input, spans.len())? {
            None => {
                seq.end()?;
                return Ok(spans);
            }
            Some(Item::Index(head)) => {
                let idx = Index::read_rest(head, seq.expected()?, input)?;
                let content = seq.close(&idx, false)?;
                let last = spans
                    .last_mut()
                    .ok_or(Error::Internal("index before a frame"))?;
                last.closes = Some(content);
                last.trailer = idx.len;
                offset += idx.len;
                continue;
            }
            Some(Item::Frame(h)) => h,
        };
        seq.frame(header.member)?;
        let mut blocks = 0u64;
        let pos = loop {
            let head = format::read_block_head(input, &header)?;
            let body = head.body_len(&header);
            let pos = skip(input, body)?;
            match head {
                BlockHead::End { total, .. } => {
                    if total != blocks || header.content_size.is_some_and(|n| n != total) {
                        return Err(Error::Corrupt(
                            "content length differs from the frame's record",
                        ));
                    }
                    break pos;
                }
                BlockHead::Stored { seg_len } | BlockHead::Model { seg_len, .. } => {
                    blocks += seg_len as u64
                }
            }
        };
        seq.frame_done(blocks, pos - offset);
        spans.push(FrameSpan {
            offset,
            len: pos - offset,
            header,
            content: blocks,
            closes: None,
            trailer: 0,
        });
        offset = pos;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::{supported, with_level, Level};

    /// The canary of every built-in preset hashes the same at every vector
    /// level this machine runs (baseline uses software FMA), and the hash
    /// depends on the preset.
    #[test]
    fn fingerprints_agree_at_every_vector_level() {
        let mut seen = Vec::new();
        for name in Preset::builtin_names() {
            let p = Preset::load(name).unwrap();
            let want = with_level(Level::Baseline, || {
                fingerprint(&p, &Device::Cpu, 3).unwrap()
            });
            for l in Level::ALL.into_iter().filter(|&l| supported(l)) {
                let got = with_level(l, || fingerprint(&p, &Device::Cpu, 3).unwrap());
                assert_eq!(got, want, "{name} at {l:?}");
            }
            assert!(!seen.contains(&want), "{name} shares a fingerprint");
            seen.push(want);
        }
    }

    /// The fingerprints this build knows without a canary are what the
    /// canary computes, at every vector level: for each built-in preset and
    /// each format version that reads it, the table holds the computed value.
    #[test]
    fn known_fingerprints_are_the_canarys() {
        let mut got = Vec::new();
        for id in Preset::builtin_ids() {
            let p = Preset::builtin(id).unwrap();
            for version in [2, 3] {
                let level = Level::ALL.into_iter().rfind(|&l| supported(l));
                let f = with_level(level.unwrap(), || {
                    fingerprint(&p, &Device::Cpu, version).unwrap()
                });
                got.push((id, version, f));
            }
        }
        assert_eq!(got, KNOWN_FINGERPRINTS, "{got:#x?}");
        for &(id, version, f) in KNOWN_FINGERPRINTS {
            let p = Preset::builtin(id).unwrap();
            assert_eq!(known_fingerprint(&p, version), Some(f), "{id} v{version}");
        }
        // A fitted built-in keeps its canary, so the table applies to it.
        let small = Preset::builtin(7).unwrap().fitted(5000);
        assert!(known_fingerprint(&small, 3).is_some());
        // Fewer than three lanes change the canary: not known.
        let two = Preset::builtin(7).unwrap().with_lanes(2).unwrap();
        assert_eq!(known_fingerprint(&two, 3), None);
    }
}
