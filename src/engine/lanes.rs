//! One segment, cut into lanes, coded step by step.
//!
//! The segment's geometry is a [`Layout`]. One step loop serves training,
//! encoding and decoding: at every step the [`Predictor`] predicts every
//! lane's next byte, the coders code it, and the predictor learns it.
//!
//! The predictor runs on the calling thread and the range coders on one or more
//! others (each coding a contiguous range of lanes), joined by bounded
//! channels. Compressing, the model knows every target, so it runs ahead of the
//! coders by up to [`AHEAD`] steps. Decompressing, each step's
//! bytes must be decoded before the model can learn them and go on.

use crate::coder::{Cdf, Decoder, Encoder};
use crate::error::{Error, Result};
pub use crate::layout::Layout;
use crate::predictor::{Predictor, Tables};
use crossbeam_channel::bounded;
use std::ops::Range;
use std::sync::Arc;

/// Steps the compressing model may run ahead of its coder.
const AHEAD: usize = 4;

/// What a step loop reads its contexts from: all lane bytes (compressing,
/// training) or the bytes decoded so far, which it completes.
enum Lanes<'a> {
    Known(&'a [u8]),
    Decoding(&'a mut [u8]),
}

/// The one step loop. At every step: gather the contexts, predict, let `code`
/// turn the tables into the step's true bytes (`tg` holds them already when
/// the bytes are known; decoding fills it), store decoded bytes, learn.
/// `code` returns false to stop early (its coder is gone).
fn run_steps(
    pred: &mut Predictor,
    lay: Layout,
    mut bytes: Lanes<'_>,
    mut code: impl FnMut(Arc<Tables>, &mut [u8]) -> Result<bool>,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    pred.begin_segment(&lay)?;
    let mut ctx = vec![0u8; lay.lanes * lay.context];
    let mut tg = vec![0u8; lay.lanes];
    for t in 0..lay.lane_len {
        match &bytes {
            Lanes::Known(d) => lay.gather(d, t, &mut ctx, Some(&mut tg)),
            Lanes::Decoding(o) => lay.gather(o, t, &mut ctx, None),
        }
        let tables = pred.predict(&ctx)?;
        if !code(tables, &mut tg)? {
            break;
        }
        if let Lanes::Decoding(o) = &mut bytes {
            for (b, &v) in tg.iter().enumerate() {
                o[b * lay.lane_len + t] = v;
            }
        }
        pred.learn(&tg)?;
        progress(lay.lanes as u64);
    }
    Ok(())
}

/// Runs the predictor over the segment without coding: predict and learn at
/// every step, exactly as compressing does. Used for stored segments, so both
/// sides stay in step whatever was written.
pub fn train_only(
    pred: &mut Predictor,
    lay: Layout,
    data: &[u8],
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    run_steps(pred, lay, Lanes::Known(data), |_, _| Ok(true), progress)
}

/// Lane ranges of `workers` coder threads: contiguous, in order, near-equal.
fn split(lanes: usize, workers: usize) -> Vec<Range<usize>> {
    let w = workers.clamp(1, lanes.max(1));
    (0..w).map(|i| i * lanes / w..(i + 1) * lanes / w).collect()
}

/// Codes the lanes of `data` and returns one range-coder stream per lane.
pub fn encode(
    pred: &mut Predictor,
    lay: Layout,
    data: &[u8],
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<Vec<u8>>> {
    let workers = pred.coder_threads(lay.lanes);
    encode_with(pred, lay, data, workers, progress)
}

fn encode_with(
    pred: &mut Predictor,
    lay: Layout,
    data: &[u8],
    workers: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<Vec<u8>>> {
    std::thread::scope(|s| {
        let mut txs = Vec::new();
        let mut coders = Vec::new();
        for lanes in split(lay.lanes, workers) {
            let (tx, rx) = bounded::<Arc<Tables>>(AHEAD);
            txs.push(tx);
            coders.push(s.spawn(move || {
                let mut enc: Vec<Encoder> = lanes.clone().map(|_| Encoder::new()).collect();
                let mut cdfs: [Cdf; TABLES_AT_ONCE] = [[0; 257]; TABLES_AT_ONCE];
                for (t, tables) in rx.iter().enumerate() {
                    for (k, encs) in enc.chunks_mut(TABLES_AT_ONCE).enumerate() {
                        let first = lanes.start + k * TABLES_AT_ONCE;
                        let cdfs = &mut cdfs[..encs.len()];
                        tables.cdfs(first, cdfs);
                        for ((b, e), cdf) in (first..).zip(encs).zip(cdfs.iter()) {
                            e.encode(cdf, data[b * lay.lane_len + t]);
                        }
                    }
                }
                enc.into_iter().map(Encoder::finish).collect::<Vec<_>>()
            }));
        }
        // A send fails only when a coder is gone: its panic is reported by
        // the join below.
        let send = |tables: Arc<Tables>, _: &mut [u8]| {
            Ok(txs.iter().all(|tx| tx.send(tables.clone()).is_ok()))
        };
        let res = run_steps(pred, lay, Lanes::Known(data), send, progress);
        drop(txs);
        let mut streams = Vec::with_capacity(lay.lanes);
        for c in coders {
            streams.extend(
                c.join()
                    .map_err(|_| Error::Internal("coder thread panicked"))?,
            );
        }
        res.map(|_| streams)
    })
}

/// Decodes the lanes of a segment into `out` (length = lay.body()).
pub fn decode(
    pred: &mut Predictor,
    lay: Layout,
    streams: &[Vec<u8>],
    out: &mut [u8],
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    if pred.on_cpu() {
        return decode_on_pool(pred, lay, streams, out, progress);
    }
    let workers = pred.coder_threads(lay.lanes);
    decode_with(pred, lay, streams, out, workers, progress)
}

/// Lanes whose tables are built together (their sums advance side by side).
const TABLES_AT_ONCE: usize = 8;

/// Work of one lane's table and decode, in the units of [`crate::par`]
/// (about 256 exps and sums).
const DECODE_WORK: usize = 4096;

/// Decodes with the range decoders on the model's own threads ([`Predictor::pool`]):
/// on the CPU the model waits for every step's bytes, so its threads are free
/// while the lanes decode, and a separate coder thread would leave them
/// spinning beside it.
fn decode_on_pool(
    pred: &mut Predictor,
    lay: Layout,
    streams: &[Vec<u8>],
    out: &mut [u8],
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let mut dec: Vec<Decoder> = streams.iter().map(|l| Decoder::new(l)).collect();
    if dec.len() != lay.lanes {
        return Err(Error::Internal("one stream per lane"));
    }
    let pool = pred.pool();
    let exchange = |tables: Arc<Tables>, tg: &mut [u8]| -> Result<bool> {
        let failed = std::sync::Mutex::new(None);
        let (dp, tp) = (
            crate::par::SharedMut(dec.as_mut_ptr()),
            crate::par::SharedMut(tg.as_mut_ptr()),
        );
        pool.run(|| {
            crate::par::for_ranges(lay.lanes, DECODE_WORK, TABLES_AT_ONCE, |r| {
                let mut cdfs: [Cdf; TABLES_AT_ONCE] = [[0; 257]; TABLES_AT_ONCE];
                // SAFETY: the ranges are disjoint lanes of `dec` and `tg`,
                // which both hold one element per lane.
                let (decs, bytes) =
                    unsafe { (dp.slice(r.start, r.len()), tp.slice(r.start, r.len())) };
                let groups = decs
                    .chunks_mut(TABLES_AT_ONCE)
                    .zip(bytes.chunks_mut(TABLES_AT_ONCE));
                for (k, (decs, bytes)) in groups.enumerate() {
                    let cdfs = &mut cdfs[..decs.len()];
                    tables.cdfs(r.start + k * TABLES_AT_ONCE, cdfs);
                    for ((d, v), cdf) in decs.iter_mut().zip(bytes).zip(cdfs.iter()) {
                        match d.decode(cdf) {
                            Ok(x) => *v = x,
                            Err(e) => {
                                *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                                return;
                            }
                        }
                    }
                }
            })
        });
        match failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(e),
            None => Ok(true),
        }
    };
    run_steps(pred, lay, Lanes::Decoding(out), exchange, progress)
}

fn decode_with(
    pred: &mut Predictor,
    lay: Layout,
    streams: &[Vec<u8>],
    out: &mut [u8],
    workers: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    std::thread::scope(|s| {
        // Owned by this closure, so an early return closes every channel and
        // the coders end.
        let mut links = Vec::new();
        for lanes in split(lay.lanes, workers) {
            let (tx_tables, rx_tables) = bounded::<Arc<Tables>>(1);
            let (tx_bytes, rx_bytes) = bounded::<Result<Vec<u8>>>(1);
            let mine = &streams[lanes.clone()];
            links.push((tx_tables, rx_bytes, lanes.clone()));
            s.spawn(move || {
                let mut dec: Vec<Decoder> = mine.iter().map(|l| Decoder::new(l)).collect();
                let mut cdf: Cdf = [0; 257];
                for tables in rx_tables.iter() {
                    let mut bytes = vec![0u8; lanes.len()];
                    let mut res = Ok(());
                    for ((b, d), v) in lanes.clone().zip(dec.iter_mut()).zip(bytes.iter_mut()) {
                        tables.cdf(b, &mut cdf);
                        match d.decode(&cdf) {
                            Ok(x) => *v = x,
                            Err(e) => {
                                res = Err(e);
                                break;
                            }
                        }
                    }
                    let failed = res.is_err();
                    if tx_bytes.send(res.map(|_| bytes)).is_err() || failed {
                        return;
                    }
                }
            });
        }
        let stopped = || Error::Internal("coder thread stopped");
        let exchange = |tables: Arc<Tables>, tg: &mut [u8]| -> Result<bool> {
            for (tx, _, _) in &links {
                tx.send(tables.clone()).map_err(|_| stopped())?;
            }
            for (_, rx, lanes) in &links {
                let bytes = rx.recv().map_err(|_| stopped())??;
                tg[lanes.clone()].copy_from_slice(&bytes);
            }
            Ok(true)
        };
        run_steps(pred, lay, Lanes::Decoding(out), exchange, progress)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predictor::Quantiser;
    use crate::preset::Preset;
    use candle_core::Device;

    fn tiny() -> Preset {
        Preset::parse(include_str!("../../tests/data/tiny.toml")).unwrap()
    }

    #[test]
    fn lane_ranges_cover_every_lane_once_in_order() {
        for (lanes, workers) in [(8, 1), (8, 3), (8, 8), (8, 20), (1, 4), (257, 4)] {
            let r = split(lanes, workers);
            assert_eq!(r.first().unwrap().start, 0);
            assert_eq!(r.last().unwrap().end, lanes);
            assert!(r.windows(2).all(|w| w[0].end == w[1].start));
            assert!(r.iter().all(|x| !x.is_empty()));
        }
    }

    /// `lanes * per_lane` bytes drawn from `alphabet`, and their layout.
    fn sample(p: &Preset, per_lane: usize, seed: u64, alphabet: &[u8]) -> (Layout, Vec<u8>) {
        let mut g = crate::rng::SplitMix64::new(seed);
        let n = alphabet.len() as u64;
        let data: Vec<u8> = (0..p.lanes as usize * per_lane)
            .map(|_| alphabet[(g.next_u64() % n) as usize])
            .collect();
        let lay = Layout::new(data.len(), p.lanes as usize, p.context as usize);
        (lay, data)
    }

    /// The lane streams of `data`, coded by a fresh model.
    fn streams(p: &Preset, lay: Layout, data: &[u8], workers: usize, q: Quantiser) -> Vec<Vec<u8>> {
        let mut m = Predictor::with_quantiser(p, &Device::Cpu, q).unwrap();
        encode_with(&mut m, lay, data, workers, &mut |_| {}).unwrap()
    }

    /// Decodes `s` with a fresh model for each coder-thread count in
    /// `workers` and checks that every one gives back `data`.
    fn assert_decodes(
        p: &Preset,
        lay: Layout,
        data: &[u8],
        s: &[Vec<u8>],
        workers: &[usize],
        q: Quantiser,
    ) {
        for &w in workers {
            let mut m = Predictor::with_quantiser(p, &Device::Cpu, q).unwrap();
            let mut out = vec![0u8; lay.body()];
            decode_with(&mut m, lay, s, &mut out, w, &mut |_| {}).unwrap();
            assert_eq!(out, data[..lay.body()]);
        }
    }

    fn size(s: &[Vec<u8>]) -> usize {
        s.iter().map(Vec::len).sum()
    }

    #[test]
    fn coder_thread_count_never_changes_the_streams() {
        let p = tiny();
        let (lay, data) = sample(&p, 40, 5, b"abcab");
        let q = Quantiser::Host;
        let (one, three) = (streams(&p, lay, &data, 1, q), streams(&p, lay, &data, 3, q));
        assert_eq!(one, three);
        assert_decodes(&p, lay, &data, &one, &[1, 3], q);
    }

    /// Everything a GPU model runs differently, run on the CPU: candle's
    /// composed ops instead of the fused kernels, AdamW as tensor ops, the
    /// device quantiser and several coder threads. It round-trips, and codes
    /// about as well as the CPU path (the two compute slightly different bits).
    #[test]
    fn gpu_code_paths_roundtrip_on_the_cpu() {
        let p = tiny();
        let (lay, data) = sample(&p, 300, 12, b"a lane of text ");
        let coded = |gpu: bool| -> usize {
            crate::model::gpu_paths_on_this_thread(gpu);
            let q = if gpu {
                Quantiser::Device
            } else {
                Quantiser::Host
            };
            let s = streams(&p, lay, &data, 3, q);
            assert_decodes(&p, lay, &data, &s, &[2], q);
            size(&s)
        };
        let (gpu, cpu) = (coded(true), coded(false));
        assert!(
            gpu.abs_diff(cpu) * 50 <= cpu,
            "gpu paths {gpu} bytes, cpu {cpu}"
        );
    }

    /// The GPU path's quantiser, run on the CPU: it round-trips, with any number
    /// of coder threads, and codes about as well as the host quantiser.
    #[test]
    fn device_quantiser_roundtrips_and_costs_about_the_same() {
        let p = tiny();
        let (lay, data) = sample(&p, 400, 9, b"the cat sat ");
        let coded = |q| -> usize {
            let s = streams(&p, lay, &data, 2, q);
            assert_decodes(&p, lay, &data, &s, &[1, 3], q);
            size(&s)
        };
        let (host, device) = (coded(Quantiser::Host), coded(Quantiser::Device));
        assert!(
            host.abs_diff(device) * 100 <= host,
            "host {host} bytes, device {device}"
        );
    }
}
