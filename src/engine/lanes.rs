//! One segment, cut into lanes, coded step by step.
//!
//! A segment of n bytes has B lanes of L = n / B bytes each (lane b is bytes
//! b*L .. (b+1)*L); the n % B bytes after them are the tail, stored raw. At step t
//! the model sees, for every lane, the T bytes before position t (zeros before the
//! lane's start), predicts byte t, and learns it.
//!
//! The model runs on the calling thread and the range coders on a second one,
//! joined by bounded channels. Compressing, the model knows every target, so it
//! runs ahead of the coder by up to [`AHEAD`] steps. Decompressing, each step's
//! bytes must be decoded before the model can learn them and go on.

use crate::coder::{quantize, Cdf, Decoder, Encoder};
use crate::error::{Error, Result};
use crate::model::Model;
use crossbeam_channel::bounded;

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

/// Codes the lanes of `data` and returns one range-coder stream per lane.
pub fn encode(
    model: &mut Model,
    lay: Layout,
    data: &[u8],
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<Vec<u8>>> {
    let (tx, rx) = bounded::<Vec<f32>>(AHEAD);
    std::thread::scope(|s| {
        let coder = s.spawn(move || {
            let mut enc: Vec<Encoder> = (0..lay.lanes).map(|_| Encoder::new()).collect();
            let mut cdf: Cdf = [0; 257];
            for (t, logits) in rx.iter().enumerate() {
                for (b, e) in enc.iter_mut().enumerate() {
                    quantize(&logits[b * 256..(b + 1) * 256], &mut cdf);
                    e.encode(&cdf, data[b * lay.lane_len + t]);
                }
            }
            enc.into_iter().map(Encoder::finish).collect::<Vec<_>>()
        });
        let mut run = || -> Result<()> {
            let mut ctx = vec![0u8; lay.lanes * lay.context];
            let mut tg = vec![0u8; lay.lanes];
            for t in 0..lay.lane_len {
                lay.gather(data, t, &mut ctx, Some(&mut tg));
                let step = model.forward(&ctx)?;
                if tx.send(step.logits()?).is_err() {
                    break; // coder gone: its panic is reported by join below
                }
                model.learn(step, &tg)?;
                progress(lay.lanes as u64);
            }
            Ok(())
        };
        let res = run();
        drop(tx);
        let lanes = coder
            .join()
            .map_err(|_| Error::Corrupt("coder thread panicked"))?;
        res.map(|_| lanes)
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
    let (tx_logits, rx_logits) = bounded::<Vec<f32>>(1);
    let (tx_bytes, rx_bytes) = bounded::<Result<Vec<u8>>>(1);
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut dec: Vec<Decoder> = streams.iter().map(|l| Decoder::new(l)).collect();
            let mut cdf: Cdf = [0; 257];
            for logits in rx_logits.iter() {
                let mut bytes = vec![0u8; lay.lanes];
                let mut res = Ok(());
                for (b, d) in dec.iter_mut().enumerate() {
                    quantize(&logits[b * 256..(b + 1) * 256], &mut cdf);
                    match d.decode(&cdf) {
                        Ok(v) => bytes[b] = v,
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
        // Owned here, so an early return closes the channel and the coder ends.
        let tx_logits = tx_logits;
        let mut ctx = vec![0u8; lay.lanes * lay.context];
        for t in 0..lay.lane_len {
            lay.gather(out, t, &mut ctx, None);
            let step = model.forward(&ctx)?;
            tx_logits
                .send(step.logits()?)
                .map_err(|_| Error::Corrupt("coder thread stopped"))?;
            let bytes = rx_bytes
                .recv()
                .map_err(|_| Error::Corrupt("coder thread stopped"))??;
            for (b, &v) in bytes.iter().enumerate() {
                out[b * lay.lane_len + t] = v;
            }
            model.learn(step, &bytes)?;
            progress(lay.lanes as u64);
        }
        drop(tx_logits);
        Ok(())
    })
}
