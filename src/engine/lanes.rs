//! One segment, cut into lanes, coded step by step.
//!
//! A segment of n bytes has B lanes of L = n / B bytes each (lane b is bytes
//! b*L .. (b+1)*L); the n % B bytes after them are the tail, stored raw. At step t
//! the model sees, for every lane, the T bytes before position t (zeros before the
//! lane's start), predicts byte t, and learns it.
//!
//! The model runs on the calling thread and the range coders on one or more
//! others (each coding a contiguous range of lanes), joined by bounded
//! channels. Compressing, the model knows every target, so it runs ahead of the
//! coders by up to [`AHEAD`] steps. Decompressing, each step's
//! bytes must be decoded before the model can learn them and go on.

use crate::coder::{quantize, Cdf, Decoder, Encoder};
use crate::error::{Error, Result};
use crate::model::Model;
use candle_core::Device;
use crossbeam_channel::bounded;
use std::ops::Range;
use std::sync::Arc;

/// Steps the compressing model may run ahead of its coder.
const AHEAD: usize = 4;

/// Geometry of one segment.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Lanes B.
    pub lanes: usize,
    /// Bytes per lane L.
    pub lane_len: usize,
    /// Context length T.
    pub context: usize,
}

impl Layout {
    /// The layout of a segment of `n` bytes.
    pub fn new(n: usize, lanes: usize, context: usize) -> Self {
        Self {
            lanes,
            lane_len: n / lanes,
            context,
        }
    }

    /// Bytes covered by lanes; the rest of the segment is tail.
    pub fn body(&self) -> usize {
        self.lanes * self.lane_len
    }

    /// Fills `ctx` (B x T) with the contexts of step `t` and `tg` with its targets.
    fn gather(&self, data: &[u8], t: usize, ctx: &mut [u8], tg: Option<&mut [u8]>) {
        let (tt, l) = (self.context, self.lane_len);
        for b in 0..self.lanes {
            let row = &mut ctx[b * tt..(b + 1) * tt];
            let start = b * l;
            let have = t.min(tt);
            row[..tt - have].fill(0);
            row[tt - have..].copy_from_slice(&data[start + t - have..start + t]);
        }
        if let Some(tg) = tg {
            for b in 0..self.lanes {
                tg[b] = data[b * l + t];
            }
        }
    }
}

/// Runs the model over the segment without coding: forward and learn at every
/// step, exactly as compressing does. Used for stored segments, so both sides
/// stay in step whatever was written.
pub fn train_only(
    model: &mut Model,
    lay: Layout,
    data: &[u8],
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let mut ctx = vec![0u8; lay.lanes * lay.context];
    let mut tg = vec![0u8; lay.lanes];
    for t in 0..lay.lane_len {
        lay.gather(data, t, &mut ctx, Some(&mut tg));
        let step = model.forward(&ctx)?;
        model.learn(step, &tg)?;
        progress(lay.lanes as u64);
    }
    Ok(())
}

/// Range-coder threads for a model on `dev` with `lanes` lanes. On the CPU the
/// model needs a core to itself and one coder thread keeps up with it (the
/// coder is about 5% of a step). A GPU model leaves the CPU free, and at
/// thousands of lanes one thread could not keep up: use every core but one, at
/// least 64 lanes each. Lanes are coded independently, so the count never
/// changes the output.
fn coder_threads(dev: &Device, lanes: usize) -> usize {
    if dev.is_cpu() {
        return 1;
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores - 1).clamp(1, (lanes / 64).max(1))
}

/// Lane ranges of `workers` coder threads: contiguous, in order, near-equal.
fn split(lanes: usize, workers: usize) -> Vec<Range<usize>> {
    let w = workers.clamp(1, lanes.max(1));
    (0..w).map(|i| i * lanes / w..(i + 1) * lanes / w).collect()
}

/// Codes the lanes of `data` and returns one range-coder stream per lane.
pub fn encode(
    model: &mut Model,
    lay: Layout,
    data: &[u8],
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<Vec<u8>>> {
    let workers = coder_threads(model.device(), lay.lanes);
    encode_with(model, lay, data, workers, progress)
}

fn encode_with(
    model: &mut Model,
    lay: Layout,
    data: &[u8],
    workers: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<Vec<u8>>> {
    std::thread::scope(|s| {
        let mut txs = Vec::new();
        let mut coders = Vec::new();
        for lanes in split(lay.lanes, workers) {
            let (tx, rx) = bounded::<Arc<Vec<f32>>>(AHEAD);
            txs.push(tx);
            coders.push(s.spawn(move || {
                let mut enc: Vec<Encoder> = lanes.clone().map(|_| Encoder::new()).collect();
                let mut cdf: Cdf = [0; 257];
                for (t, logits) in rx.iter().enumerate() {
                    for (b, e) in lanes.clone().zip(enc.iter_mut()) {
                        quantize(&logits[b * 256..(b + 1) * 256], &mut cdf);
                        e.encode(&cdf, data[b * lay.lane_len + t]);
                    }
                }
                enc.into_iter().map(Encoder::finish).collect::<Vec<_>>()
            }));
        }
        let mut run = || -> Result<()> {
            let mut ctx = vec![0u8; lay.lanes * lay.context];
            let mut tg = vec![0u8; lay.lanes];
            for t in 0..lay.lane_len {
                lay.gather(data, t, &mut ctx, Some(&mut tg));
                let step = model.forward(&ctx)?;
                let logits = Arc::new(step.logits()?);
                if txs.iter().any(|tx| tx.send(logits.clone()).is_err()) {
                    break; // a coder is gone: its panic is reported by join below
                }
                model.learn(step, &tg)?;
                progress(lay.lanes as u64);
            }
            Ok(())
        };
        let res = run();
        drop(txs);
        let mut streams = Vec::with_capacity(lay.lanes);
        for c in coders {
            streams.extend(
                c.join()
                    .map_err(|_| Error::Corrupt("coder thread panicked"))?,
            );
        }
        res.map(|_| streams)
    })
}

/// Decodes the lanes of a segment into `out` (length = lay.body()).
pub fn decode(
    model: &mut Model,
    lay: Layout,
    streams: &[Vec<u8>],
    out: &mut [u8],
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let workers = coder_threads(model.device(), lay.lanes);
    decode_with(model, lay, streams, out, workers, progress)
}

fn decode_with(
    model: &mut Model,
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
            let (tx_logits, rx_logits) = bounded::<Arc<Vec<f32>>>(1);
            let (tx_bytes, rx_bytes) = bounded::<Result<Vec<u8>>>(1);
            let mine = &streams[lanes.clone()];
            links.push((tx_logits, rx_bytes, lanes.clone()));
            s.spawn(move || {
                let mut dec: Vec<Decoder> = mine.iter().map(|l| Decoder::new(l)).collect();
                let mut cdf: Cdf = [0; 257];
                for logits in rx_logits.iter() {
                    let mut bytes = vec![0u8; lanes.len()];
                    let mut res = Ok(());
                    for ((b, d), v) in lanes.clone().zip(dec.iter_mut()).zip(bytes.iter_mut()) {
                        quantize(&logits[b * 256..(b + 1) * 256], &mut cdf);
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
        let stopped = || Error::Corrupt("coder thread stopped");
        let mut ctx = vec![0u8; lay.lanes * lay.context];
        let mut tg = vec![0u8; lay.lanes];
        for t in 0..lay.lane_len {
            lay.gather(out, t, &mut ctx, None);
            let step = model.forward(&ctx)?;
            let logits = Arc::new(step.logits()?);
            for (tx, _, _) in &links {
                tx.send(logits.clone()).map_err(|_| stopped())?;
            }
            for (_, rx, lanes) in &links {
                let bytes = rx.recv().map_err(|_| stopped())??;
                tg[lanes.clone()].copy_from_slice(&bytes);
            }
            for (b, &v) in tg.iter().enumerate() {
                out[b * lay.lane_len + t] = v;
            }
            model.learn(step, &tg)?;
            progress(lay.lanes as u64);
        }
        drop(links);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset::Preset;

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

    #[test]
    fn coder_thread_count_never_changes_the_streams() {
        let p = tiny();
        let mut g = crate::rng::SplitMix64::new(5);
        let data: Vec<u8> = (0..p.lanes as usize * 40)
            .map(|_| b"abcab"[(g.next_u64() % 5) as usize])
            .collect();
        let lay = Layout::new(data.len(), p.lanes as usize, p.context as usize);
        let mut streams = Vec::new();
        for workers in [1, 3] {
            let mut m = Model::new(&p, &Device::Cpu).unwrap();
            streams.push(encode_with(&mut m, lay, &data, workers, &mut |_| {}).unwrap());
        }
        assert_eq!(streams[0], streams[1]);
        for workers in [1, 3] {
            let mut m = Model::new(&p, &Device::Cpu).unwrap();
            let mut out = vec![0u8; lay.body()];
            decode_with(&mut m, lay, &streams[0], &mut out, workers, &mut |_| {}).unwrap();
            assert_eq!(out, data[..lay.body()]);
        }
    }
}
