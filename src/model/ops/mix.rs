//! The side models' share of the logits: per lane, the sum of its score rows
//! weighted by the weights the network computed.
//!
//! `out[b, c] = sum over r of w[b, r] * s[b, r, c]` is the batched product
//! (B, 1, R) x (B, R, 256), and this op computes exactly the canonical
//! product's bits ([`super::matmul`]: one FMA chain per output, over r in
//! increasing order, from +0), forward and for dw (a chain over c). The
//! scores are sparse ([`Scores`]): the op walks only the non-zero ones, in
//! ascending (row, byte) order, which keeps every chain's order. A skipped
//! term is `fma(w, +0, acc)` = `acc + (±0)`, which is `acc` itself: a chain
//! from +0 is never -0 (an exact zero sum rounds to +0), so dropping the
//! zero terms changes no bit for finite weights. It is its own op because the
//! general product would also compute the scores' gradient (which nothing
//! needs) from B x R x 256 dense values.

use crate::par;
use crate::side::Scores;
use crate::simd::wide_kernel;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use std::sync::Arc;

wide_kernel! {
    /// Logits of one lane: `out[c] = fma(w[r], s, out[c])` over its entries
    /// (compiled with the FMA instruction where the CPU has one; elsewhere
    /// `mul_add` calls the C library's exact `fmaf`).
    fn mix_fwd(w: &[f32], entries: &[(u32, f32)], out: &mut [f32]) {
        out.fill(0.0);
        for &(i, s) in entries {
            let (r, c) = (i as usize / 256, i as usize % 256);
            out[c] = w[r].mul_add(s, out[c]);
        }
    }
}

wide_kernel! {
    /// dw of one lane: `dw[r] = fma(dout[c], s, dw[r])` over its entries.
    fn mix_bwd(dout: &[f32], entries: &[(u32, f32)], dw: &mut [f32]) {
        dw.fill(0.0);
        for &(i, s) in entries {
            let (r, c) = (i as usize / 256, i as usize % 256);
            dw[r] = dout[c].mul_add(s, dw[r]);
        }
    }
}

/// `out` (B x 256) = the score rows of every lane weighted by `w` (B x R).
pub(crate) fn mix_into(w: &[f32], scores: &Scores, out: &mut [f32]) {
    let (b, r) = (scores.lanes(), scores.rows);
    let per_lane = scores.entries.len() / b.max(1) + 256;
    par::rows_mut(&mut out[..b * 256], 256, per_lane, |i0, out| {
        for (i, o) in (i0..).zip(out.chunks_exact_mut(256)) {
            mix_fwd(&w[i * r..(i + 1) * r], scores.lane(i), o);
        }
    });
}

/// `dw` (B x R) of [`mix_into`] for the output gradient `dout` (B x 256).
pub(crate) fn mix_grad(dout: &[f32], scores: &Scores, dw: &mut [f32]) {
    let (b, r) = (scores.lanes(), scores.rows);
    let per_lane = scores.entries.len() / b.max(1) + r;
    par::rows_mut(&mut dw[..b * r], r, per_lane, |i0, dw| {
        for (i, d) in (i0..).zip(dw.chunks_exact_mut(r)) {
            mix_bwd(&dout[i * 256..(i + 1) * 256], scores.lane(i), d);
        }
    });
}

/// The weighted sum of `scores` by weights w (B, R): (B, 256).
struct Mix {
    scores: Arc<Scores>,
}

impl Mix {
    fn check(&self, l: &Layout) -> Result<(usize, usize)> {
        match l.dims() {
            &[b, r] if b == self.scores.lanes() && r == self.scores.rows => Ok((b, r)),
            d => candle_core::bail!(
                "mix: weights {d:?} for {} lanes of {} rows",
                self.scores.lanes(),
                self.scores.rows
            ),
        }
    }
}

impl CustomOp1 for Mix {
    fn name(&self) -> &'static str {
        "fade-mix"
    }

    fn cpu_fwd(&self, sw: &CpuStorage, lw: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, r) = self.check(lw)?;
        let w = super::slice(sw, lw)?;
        let mut out = vec![0f32; b * 256];
        mix_into(&w[..b * r], &self.scores, &mut out);
        Ok((CpuStorage::F32(out), Shape::from((b, 256))))
    }

    fn bwd(&self, _w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad_op = MixGrad {
            scores: self.scores.clone(),
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&grad_op)?))
    }
}

/// dw (B, R) of [`Mix`] from dout (B, 256), read in place.
struct MixGrad {
    scores: Arc<Scores>,
}

impl CustomOp1 for MixGrad {
    fn name(&self) -> &'static str {
        "fade-mix-grad"
    }

    fn cpu_fwd(&self, sg: &CpuStorage, lg: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, r) = (self.scores.lanes(), self.scores.rows);
        if lg.dims() != [b, 256] {
            candle_core::bail!("mix gradient of shape {:?}", lg.dims());
        }
        let dout = super::slice(sg, lg)?;
        let mut dw = vec![0f32; b * r];
        mix_grad(dout, &self.scores, &mut dw);
        Ok((CpuStorage::F32(dw), Shape::from((b, r))))
    }
}

/// `out[b, :] = sum_r w[b, r] * s[b, r, :]`: fade's sparse op on the CPU,
/// candle's batched product of the dense scores elsewhere.
pub fn mix(w: &Tensor, s: &Arc<Scores>) -> Result<Tensor> {
    if !crate::model::fused_kernels(w.device()) {
        let dense = Tensor::from_vec(s.dense(), (s.lanes(), s.rows, 256), w.device())?;
        return w.unsqueeze(1)?.matmul(&dense)?.squeeze(1);
    }
    w.contiguous()?.apply_op1(Mix { scores: s.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Same bits as the canonical product of the dense scores, forward and
    /// for dw, with zeros among the scores and weights of both signs.
    #[test]
    fn mix_is_the_canonical_batched_product() {
        let dev = Device::Cpu;
        let mut g = crate::rng::SplitMix64::new(4);
        for (b, r) in [(1, 1), (3, 15), (5, 4), (40, 3)] {
            let wv: Vec<f32> = (0..b * r).map(|_| g.normal(1.0)).collect();
            let sv: Vec<f32> = (0..b * r * 256)
                .map(|_| match g.next_u64() % 4 {
                    0 => g.normal(3.0),
                    1 => 1.0,
                    _ => 0.0,
                })
                .collect();
            let up: Vec<f32> = (0..b * 256).map(|_| g.normal(1.0)).collect();
            let w = Var::from_vec(wv, (b, r), &dev).unwrap();
            let sparse = Arc::new(Scores::from_dense(r, &sv));
            assert_eq!(sparse.dense(), sv);
            let s = Tensor::from_vec(sv, (b, r, 256), &dev).unwrap();
            let up = Tensor::from_vec(up, (b, 256), &dev).unwrap();
            let pool = crate::par::Pool::new(3);
            let ours = pool.run(|| mix(w.as_tensor(), &sparse).unwrap());
            let canon = super::super::matmul(&w.as_tensor().unsqueeze(1).unwrap(), &s)
                .unwrap()
                .squeeze(1)
                .unwrap();
            let bits = |t: &Tensor| {
                let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            };
            assert_eq!(bits(&ours), bits(&canon));
            let go = pool.run(|| (ours * &up).unwrap().sum_all().unwrap().backward().unwrap());
            let gc = (canon * &up)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            assert_eq!(
                bits(go.get(w.as_tensor()).unwrap()),
                bits(gc.get(w.as_tensor()).unwrap())
            );
        }
    }
}
