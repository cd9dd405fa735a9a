//! One segment, cut into lanes, coded step by step.
//!
//! The segment's geometry is a [`Layout`]. One step loop serves training,
//! encoding and decoding: at every step the [`Predictor`] predicts every
//! lane's next byte, the coders code it, and the predictor learns it.
//!
//! All lanes of a segment are coded into one range-coder stream, at every
//! step every lane's byte in lane order. Compressing, the predictor runs on
//! the calling thread and the coder on another, joined by a bounded channel:
//! the model knows every target, so it runs ahead of the coder by up to
//! [`AHEAD`] steps. Decompressing, each step's bytes must be decoded before
//! the model can learn them and go on.

use crate::coder::{Cdf, Decoder, Encoder};
use crate::error::{Error, Result};
pub use crate::layout::Layout;
use crate::predictor::{Predictor, Tables};
use crossbeam_channel::bounded;
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

/// Codes the lanes of `data` into one range-coder stream: at every step,
/// every lane's byte in lane order. The coder runs on a thread of its own,
/// up to [`AHEAD`] steps behind the model.
pub fn encode(
    pred: &mut Predictor,
    lay: Layout,
    data: &[u8],
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<u8>> {
    let prec = pred.precision();
    std::thread::scope(|s| {
        let (tx, rx) = bounded::<Arc<Tables>>(AHEAD);
        let coder = s.spawn(move || {
            let mut enc = Encoder::new(prec);
            let mut cdfs: [Cdf; TABLES_AT_ONCE] = [[0; 257]; TABLES_AT_ONCE];
            for (t, tables) in rx.iter().enumerate() {
                for first in (0..lay.lanes).step_by(TABLES_AT_ONCE) {
                    let cdfs = &mut cdfs[..TABLES_AT_ONCE.min(lay.lanes - first)];
                    tables.cdfs(first, cdfs);
                    for (b, cdf) in (first..).zip(cdfs.iter()) {
                        enc.encode(cdf, data[b * lay.lane_len + t]);
                    }
                }
            }
            enc.finish()
        });
        // A send fails only when the coder is gone: its panic is reported by
        // the join below.
        let send = |tables: Arc<Tables>, _: &mut [u8]| Ok(tx.send(tables).is_ok());
        let res = run_steps(pred, lay, Lanes::Known(data), send, progress);
        drop(tx);
        let stream = coder
            .join()
            .map_err(|_| Error::Internal("coder thread panicked"))?;
        res.map(|_| stream)
    })
}

/// Lanes whose tables are built together (their sums advance side by side).
const TABLES_AT_ONCE: usize = 8;

/// Work of one lane's table, in the units of [`crate::par`] (about 256 exps
/// and sums).
const TABLE_WORK: usize = 4096;

/// Decodes the lanes of a segment into `out` (length = lay.body()) from its
/// streams: one for all lanes (format v3), or one per lane (v2).
///
/// A step's tables are built on the model's threads ([`Predictor::pool`]):
/// the model waits for the step's bytes anyway, so its threads are free. The
/// bytes are then decoded in lane order, a few microseconds a step.
pub fn decode(
    pred: &mut Predictor,
    lay: Layout,
    streams: &[Vec<u8>],
    out: &mut [u8],
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let shared = pred.plan().shared_stream;
    if streams.len() != if shared { 1 } else { lay.lanes } {
        return Err(Error::Internal("one stream, or one per lane"));
    }
    let prec = pred.precision();
    let mut dec: Vec<Decoder> = streams.iter().map(|l| Decoder::new(l, prec)).collect();
    let mut cdfs: Vec<Cdf> = vec![[0; 257]; lay.lanes];
    let pool = pred.pool();
    let exchange = |tables: Arc<Tables>, tg: &mut [u8]| -> Result<bool> {
        let all = crate::par::SharedMut(cdfs.as_mut_ptr());
        pool.run(|| {
            crate::par::for_ranges(lay.lanes, TABLE_WORK, TABLES_AT_ONCE, |r| {
                // SAFETY: the ranges are disjoint lanes of `cdfs`, which
                // holds one table per lane.
                let mine = unsafe { all.slice(r.start, r.len()) };
                tables.cdfs(r.start, mine);
            })
        });
        for (b, (v, cdf)) in tg.iter_mut().zip(&cdfs).enumerate() {
            let d = &mut dec[if shared { 0 } else { b }];
            *v = d.decode(cdf)?;
        }
        Ok(true)
    };
    run_steps(pred, lay, Lanes::Decoding(out), exchange, progress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coder::Precision;
    use crate::predictor::Quantiser;
    use crate::preset::Preset;
    use candle_core::Device;

    fn tiny() -> Preset {
        Preset::parse(include_str!("../../tests/data/tiny.toml")).unwrap()
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

    /// The plan of a frame of `version` on the CPU, with tables built by
    /// `q` (tests run the device quantiser on the CPU).
    fn plan(p: &Preset, version: u8, q: Quantiser) -> crate::plan::Plan {
        crate::plan::Plan {
            quantiser: q,
            ..crate::plan::Plan::new(p, version, &Device::Cpu, 1)
        }
    }

    /// The stream of `data`, coded by a fresh model.
    fn stream(p: &Preset, lay: Layout, data: &[u8], q: Quantiser) -> Vec<u8> {
        let mut m = Predictor::new(p, &Device::Cpu, plan(p, 3, q)).unwrap();
        encode(&mut m, lay, data, &mut |_| {}).unwrap()
    }

    /// Decodes `s` with a fresh model (tables of precision `prec`) on 1 and
    /// on 3 threads and checks that both give back `data`.
    fn assert_decodes(
        p: &Preset,
        lay: Layout,
        data: &[u8],
        s: &[Vec<u8>],
        q: Quantiser,
        prec: Precision,
    ) {
        for threads in [1, 3] {
            let version = if prec == Precision::V2 { 2 } else { 3 };
            let mut m = Predictor::new(p, &Device::Cpu, plan(p, version, q)).unwrap();
            let mut out = vec![0u8; lay.body()];
            m.pool_for_tests(threads);
            decode(&mut m, lay, s, &mut out, &mut |_| {}).unwrap();
            assert_eq!(out, data[..lay.body()]);
        }
    }

    fn size(s: &[Vec<u8>]) -> usize {
        s.iter().map(Vec::len).sum()
    }

    /// One stream for every lane round-trips, and so do the per-lane streams
    /// of format v2, coded here as v2's encoder did: lane b's bytes into
    /// its own coder, with tables of v2's precision.
    #[test]
    fn one_stream_and_v2_lane_streams_decode() {
        let p = tiny();
        let (lay, data) = sample(&p, 40, 5, b"abcab");
        let q = Quantiser::Host;
        let one = stream(&p, lay, &data, q);
        assert_decodes(&p, lay, &data, std::slice::from_ref(&one), q, Precision::V3);
        let v2 = Precision::V2;
        let mut m = Predictor::new(&p, &Device::Cpu, plan(&p, 2, q)).unwrap();
        let mut enc: Vec<Encoder> = (0..lay.lanes).map(|_| Encoder::new(v2)).collect();
        let mut cdf: Cdf = [0; 257];
        let mut t = 0;
        run_steps(
            &mut m,
            lay,
            Lanes::Known(&data),
            |tables, tg| {
                for (b, e) in enc.iter_mut().enumerate() {
                    tables.cdfs(b, std::slice::from_mut(&mut cdf));
                    e.encode(&cdf, tg[b]);
                    assert_eq!(tg[b], data[b * lay.lane_len + t]);
                }
                t += 1;
                Ok(true)
            },
            &mut |_| {},
        )
        .unwrap();
        let lanes: Vec<Vec<u8>> = enc.into_iter().map(Encoder::finish).collect();
        assert_decodes(&p, lay, &data, &lanes, q, v2);
        // The lanes' own streams cost each its flush (and v2 a length each).
        assert!(
            one.len() < size(&lanes),
            "{} >= {}",
            one.len(),
            size(&lanes)
        );
    }

    /// Everything a GPU model runs differently, run on the CPU: candle's
    /// composed ops instead of the fused kernels, AdamW as tensor ops, the
    /// device quantiser. It round-trips, and codes
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
            let s = stream(&p, lay, &data, q);
            assert_decodes(&p, lay, &data, std::slice::from_ref(&s), q, Precision::V3);
            s.len()
        };
        let (gpu, cpu) = (coded(true), coded(false));
        assert!(
            gpu.abs_diff(cpu) * 50 <= cpu,
            "gpu paths {gpu} bytes, cpu {cpu}"
        );
    }

    /// The GPU path's quantiser, run on the CPU: it round-trips, with any number
    /// of threads, and codes about as well as the host quantiser.
    #[test]
    fn device_quantiser_roundtrips_and_costs_about_the_same() {
        let p = tiny();
        let (lay, data) = sample(&p, 400, 9, b"the cat sat ");
        let coded = |q| -> usize {
            let s = stream(&p, lay, &data, q);
            assert_decodes(&p, lay, &data, std::slice::from_ref(&s), q, Precision::V3);
            s.len()
        };
        let (host, device) = (coded(Quantiser::Host), coded(Quantiser::Device));
        assert!(
            host.abs_diff(device) * 100 <= host,
            "host {host} bytes, device {device}"
        );
    }
}
