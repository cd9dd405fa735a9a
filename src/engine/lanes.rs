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

use crate::coder::{cdf_from_floors, quantize, Cdf, Decoder, Encoder};
use crate::error::{Error, Result};
use crate::model::{Model, Step};
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

/// Where a step's probabilities become integer tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantiser {
    /// The coder threads quantise the logits ([`quantize`]): bit-exact on any
    /// CPU, the format of files made on the CPU.
    Host,
    /// The model's device computes the floors ([`Step::floors`]) and the coder
    /// threads only add them up ([`cdf_from_floors`]). Used with a GPU model.
    Device,
}

impl Quantiser {
    /// The quantiser a model on `dev` uses.
    pub fn for_device(dev: &Device) -> Self {
        if dev.is_cpu() {
            Self::Host
        } else {
            Self::Device
        }
    }

    /// One step's tables, as the coder threads receive them.
    fn tables(self, step: &Step) -> Result<Arc<Tables>> {
        Ok(Arc::new(match self {
            Self::Host => Tables::Logits(step.logits()?),
            Self::Device => Tables::Floors(step.floors()?),
        }))
    }
}

/// One step's probabilities for every lane, B x 256, row-major.
enum Tables {
    Logits(Vec<f32>),
    Floors(Vec<u32>),
}

impl Tables {
    /// The cumulative table of lane `b`.
    fn cdf(&self, b: usize, cdf: &mut Cdf) {
        let row = b * 256..(b + 1) * 256;
        match self {
            Self::Logits(l) => quantize(&l[row], cdf),
            Self::Floors(f) => cdf_from_floors(&f[row], cdf),
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
    let q = Quantiser::for_device(model.device());
    encode_with(model, lay, data, workers, q, progress)
}

fn encode_with(
    model: &mut Model,
    lay: Layout,
    data: &[u8],
    workers: usize,
    q: Quantiser,
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
                let mut cdf: Cdf = [0; 257];
                for (t, tables) in rx.iter().enumerate() {
                    for (b, e) in lanes.clone().zip(enc.iter_mut()) {
                        tables.cdf(b, &mut cdf);
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
                let tables = q.tables(&step)?;
                if txs.iter().any(|tx| tx.send(tables.clone()).is_err()) {
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
                    .map_err(|_| Error::Internal("coder thread panicked"))?,
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
    let q = Quantiser::for_device(model.device());
    decode_with(model, lay, streams, out, workers, q, progress)
}

fn decode_with(
    model: &mut Model,
    lay: Layout,
    streams: &[Vec<u8>],
    out: &mut [u8],
    workers: usize,
    q: Quantiser,
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
        let mut ctx = vec![0u8; lay.lanes * lay.context];
        let mut tg = vec![0u8; lay.lanes];
        for t in 0..lay.lane_len {
            lay.gather(out, t, &mut ctx, None);
            let step = model.forward(&ctx)?;
            let tables = q.tables(&step)?;
            for (tx, _, _) in &links {
                tx.send(tables.clone()).map_err(|_| stopped())?;
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
        let mut m = Model::new(p, &Device::Cpu).unwrap();
        encode_with(&mut m, lay, data, workers, q, &mut |_| {}).unwrap()
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
            let mut m = Model::new(p, &Device::Cpu).unwrap();
            let mut out = vec![0u8; lay.body()];
            decode_with(&mut m, lay, s, &mut out, w, q, &mut |_| {}).unwrap();
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
