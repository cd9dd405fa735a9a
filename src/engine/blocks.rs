//! Independent blocks on several threads (`fade -T N`).
//!
//! The input is cut into blocks of a fixed size; each block is coded as its
//! own frame with its own model, on one of `threads` workers, and the frames
//! are written in input order. When there are several, each carries its
//! number and an index closes them (`engine::sequence`), so a file cut at a
//! frame boundary or with frames dropped, repeated or swapped is refused; an
//! input of one block is one plain frame. The output depends on the block
//! size only, never on the number of threads. Each block restarts the model, which costs ratio (see docs/PARALLEL.md,
//! "Many cores"), so without `-T` fade keeps one model for the whole input.
//!
//! Decoding finds the frames of a file from their framing
//! ([`super::frames`]) and decodes several at once the same way.
//!
//! Memory is bounded: at most `2 * threads + 2` blocks (input or output) are
//! held at once (the reader holds one back to learn whether it is the last),
//! and [`Limits`] counts one model per thread.

use super::{compress_member, decompress_frame, FrameSpan, Limits, Summary};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::format;
use crate::parallel::Parallel;
use crate::plan::kernel_threads;
use crate::preset::Preset;
use crossbeam_channel::{bounded, select, unbounded, Receiver};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use xxhash_rust::xxh3::Xxh3;

/// Default block size of `-T`: 16 MiB, four segments of the built-in
/// presets. Measured on dickens with level 1 (docs/PARALLEL.md): smaller blocks cost
/// ratio (each restarts the model), larger ones leave cores idle on
/// medium-sized inputs.
pub const DEFAULT_BLOCK_SIZE: usize = 16 << 20;

/// Frames larger than this are decoded one at a time, streaming: decoding in
/// parallel holds a whole frame's content in memory.
const MAX_PARALLEL_FRAME: u64 = 256 << 20;

/// Compresses `input` in blocks of `par.block_size`, each its own frame, on
/// `par.threads` workers, writing the frames in order. `size`, if known,
/// must be what the input yields ([`Error::InputChanged`] otherwise). The
/// memory check counts one model per worker.
#[allow(clippy::too_many_arguments)]
pub fn compress_blocks<R: Read + Send, W: Write>(
    mut input: R,
    mut out: W,
    preset: &Preset,
    device: Device,
    limits: &Limits,
    size: Option<u64>,
    par: Parallel,
    progress: &mut dyn FnMut(u64),
) -> Result<W> {
    let device = &device.open()?;
    let block = par.block_size;
    // The model of a full block; a shorter last block only needs less.
    let per_model = if block < preset.segment as usize {
        preset.fitted(block)
    } else {
        preset.clone()
    };
    let workers = match size {
        Some(n) => par.threads.min((n as usize).div_ceil(block).max(1)),
        None => par.threads,
    };
    limits.check_many(&per_model, workers)?;
    let model_limits = limits.with_threads(kernel_threads(par.threads, workers));
    let model_limits = &model_limits;
    let stop = AtomicBool::new(false);
    type Job = (
        Vec<u8>,
        Option<u64>,
        crossbeam_channel::Sender<Result<Vec<u8>>>,
    );
    let (job_tx, job_rx) = bounded::<Job>(workers);
    let (order_tx, order_rx) = bounded::<Receiver<Result<Vec<u8>>>>(workers);
    let (prog_tx, prog_rx) = unbounded::<u64>();
    let (read_tx, read_rx) = bounded::<Result<ReadSummary>>(1);
    let mut frame_lens = Vec::new();
    std::thread::scope(|s| {
        let stop = &stop;
        let mut handles = Vec::new();
        handles.push(s.spawn(move || {
            let send = |buf: Vec<u8>, member: Option<u64>| {
                let (tx, rx) = bounded(1);
                order_tx.send(rx).is_ok() && job_tx.send((buf, member, tx)).is_ok()
            };
            let _ = read_tx.send(read_blocks(&mut input, block, send));
        }));
        for _ in 0..workers {
            let job_rx = job_rx.clone();
            let prog_tx = prog_tx.clone();
            handles.push(s.spawn(move || {
                for (data, member, tx) in job_rx.iter() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let mut report = |n| {
                        let _ = prog_tx.send(n);
                    };
                    let r = compress_member(
                        &data,
                        Vec::new(),
                        preset,
                        device,
                        model_limits,
                        member,
                        &mut report,
                    );
                    drop(data);
                    if tx.send(r).is_err() {
                        return;
                    }
                }
            }));
        }
        drop(prog_tx);
        let mut lens = |bytes: &[u8]| {
            frame_lens.push(bytes.len() as u64);
            Ok(())
        };
        let res = write_in_order(&order_rx, &prog_rx, &mut out, progress, &mut lens);
        if res.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        drop(order_rx);
        for h in handles {
            let _ = h.join();
        }
        res?;
        let read = read_rx
            .recv()
            .map_err(|_| Error::Internal("reader thread stopped"))??;
        if size.is_some_and(|n| n != read.total) {
            return Err(Error::InputChanged);
        }
        if read.members > 0 {
            // Every block but the last is full.
            let last = read.total - (read.members - 1) * block as u64;
            let entries: Vec<(u64, u64)> = frame_lens
                .iter()
                .enumerate()
                .map(|(i, &len)| {
                    let content = if i as u64 + 1 == read.members {
                        last
                    } else {
                        block as u64
                    };
                    (content, len)
                })
                .collect();
            format::write_index(&mut out, &entries, read.content)?;
        }
        out.flush()?;
        Ok(())
    })?;
    Ok(out)
}

/// What the reader of [`compress_blocks`] saw.
struct ReadSummary {
    /// Bytes read.
    total: u64,
    /// Their xxh3-64.
    content: u64,
    /// Member frames sent (0: one frame of its own).
    members: u64,
}

/// Reads `input` in blocks of `block` bytes and hands each to `send` with
/// its member number, in order, until the input ends or `send` fails. One
/// block is held back until the next read tells whether it was the last, so
/// an input of one block (or none) is sent as one frame of its own.
fn read_blocks<R: Read>(
    input: &mut R,
    block: usize,
    send: impl Fn(Vec<u8>, Option<u64>) -> bool,
) -> Result<ReadSummary> {
    let mut hash = Xxh3::new();
    let (mut total, mut members) = (0u64, 0u64);
    let mut pending: Option<Vec<u8>> = None;
    let done = |total, hash: &Xxh3, members| {
        Ok(ReadSummary {
            total,
            content: hash.digest(),
            members,
        })
    };
    loop {
        let mut buf = Vec::with_capacity(block.min(1 << 20));
        input.by_ref().take(block as u64).read_to_end(&mut buf)?;
        let n = buf.len();
        total += n as u64;
        hash.update(&buf);
        let last = n < block;
        if let Some(prev) = pending.take() {
            if last && n == 0 {
                // `prev` was the last block: a member unless it was the only one.
                let member = (members > 0).then_some(members);
                members += u64::from(member.is_some());
                send(prev, member);
                return done(total, &hash, members);
            }
            if !send(prev, Some(members)) {
                return done(total, &hash, members + 1);
            }
            members += 1;
        }
        if last {
            // `buf` is the last block: the whole input when nothing came
            // before it (an empty input is one empty frame).
            if members == 0 {
                send(buf, None);
            } else if n > 0 {
                send(buf, Some(members));
                members += 1;
            }
            return done(total, &hash, members);
        }
        pending = Some(buf);
    }
}

/// Writes each result in the order their receivers arrive, passing progress
/// reports on while it waits.
fn write_in_order(
    order: &Receiver<Receiver<Result<Vec<u8>>>>,
    prog: &Receiver<u64>,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
    check: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<u64> {
    let mut frames = 0;
    for rx in order.iter() {
        let bytes = loop {
            select! {
                recv(rx) -> r => break r.map_err(|_| Error::Internal("worker thread stopped"))??,
                recv(prog) -> n => if let Ok(n) = n { progress(n) },
            }
        };
        check(&bytes)?;
        out.write_all(&bytes)?;
        frames += 1;
    }
    while let Ok(n) = prog.try_recv() {
        progress(n);
    }
    Ok(frames)
}

/// How many frames of `spans` to decode at once with up to `threads`
/// threads: as many as the memory limit allows, each holding one model, one
/// frame and its content. 1 (decode streaming, one frame after the other)
/// for a single frame, or when a frame is too large to hold in memory.
pub fn frame_workers(spans: &[FrameSpan], limits: &Limits, threads: usize) -> usize {
    if spans.iter().any(|f| f.content > MAX_PARALLEL_FRAME) {
        return 1;
    }
    let per = spans
        .iter()
        .map(|f| {
            f.header
                .preset
                .memory_needed()
                .saturating_add(f.content)
                .saturating_add(f.len)
        })
        .max()
        .unwrap_or(0);
    let fits = (limits.memory / per.max(1)).max(1);
    threads
        .min(fits.min(usize::MAX as u64) as usize)
        .min(spans.len())
        .max(1)
}

/// Decodes the frames `spans` of a file on [`frame_workers`] threads,
/// writing their content in order; `fetch(offset, len)` reads a frame's
/// bytes. Every check of `decompress_frame` applies to each frame.
pub fn decompress_frames<W: Write>(
    spans: &[FrameSpan],
    fetch: &(dyn Fn(u64, usize) -> std::io::Result<Vec<u8>> + Sync),
    out: &mut W,
    device: Device,
    limits: &Limits,
    threads: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary> {
    let device = &device.open()?;
    let workers = frame_workers(spans, limits, threads);
    let limits = &limits.with_threads(kernel_threads(threads, workers));
    let mut sum = Summary::default();
    let stop = AtomicBool::new(false);
    type Job<'a> = (&'a FrameSpan, crossbeam_channel::Sender<Result<Vec<u8>>>);
    let (job_tx, job_rx) = bounded::<Job>(workers);
    let (order_tx, order_rx) = bounded(workers);
    let (prog_tx, prog_rx) = unbounded::<u64>();
    std::thread::scope(|s| {
        let stop = &stop;
        let mut handles = Vec::new();
        handles.push(s.spawn(move || {
            for f in spans {
                let (tx, rx) = bounded(1);
                if order_tx.send(rx).is_err() || job_tx.send((f, tx)).is_err() {
                    return;
                }
            }
        }));
        for _ in 0..workers {
            let job_rx = job_rx.clone();
            let prog_tx = prog_tx.clone();
            handles.push(s.spawn(move || {
                for (f, tx) in job_rx.iter() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let mut report = |n| {
                        let _ = prog_tx.send(n);
                    };
                    let r = fetch(f.offset, f.len as usize)
                        .map_err(Error::from)
                        .and_then(|bytes| {
                            let mut v = Vec::with_capacity(f.content as usize);
                            decompress_frame(&bytes, &mut v, device, limits, &mut report).map(|_| v)
                        });
                    if tx.send(r).is_err() {
                        return;
                    }
                }
            }));
        }
        drop(prog_tx);
        // The frame walk checked each sequence's order and index; the
        // content checksum of each is checked here, in order, before the
        // sequence's last frame is written.
        let mut at = 0;
        let mut hash = Xxh3::new();
        let mut check = |bytes: &[u8]| {
            let f = &spans[at];
            at += 1;
            if f.header.member == Some(0) {
                hash.reset();
            }
            hash.update(bytes);
            match f.closes {
                Some(c) if c != hash.digest() => Err(Error::ChecksumMismatch),
                _ => Ok(()),
            }
        };
        let res = write_in_order(&order_rx, &prog_rx, out, progress, &mut check);
        if res.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        drop(order_rx);
        for h in handles {
            let _ = h.join();
        }
        sum.frames = res? as usize;
        Ok::<_, Error>(())
    })?;
    sum.content = spans.iter().map(|f| f.content).sum();
    sum.first = spans.first().map(|f| f.header.clone());
    Ok(sum)
}
