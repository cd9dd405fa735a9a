//! The side models' weighted score rows as a candle op, with dw.

use super::slice;
use crate::model::ops::{mix_grad, mix_into};
use crate::side::Scores;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use std::sync::Arc;

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
        let w = slice(sw, lw)?;
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
        let dout = slice(sg, lg)?;
        let mut dw = vec![0f32; b * r];
        mix_grad(dout, &self.scores, &mut dw);
        Ok((CpuStorage::F32(dw), Shape::from((b, r))))
    }
}

/// `out[b, :] = sum_r w[b, r] * s[b, r, :]` over the sparse scores.
pub fn mix(w: &Tensor, s: &Arc<Scores>) -> Result<Tensor> {
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
            let canon = super::super::matmul::matmul(&w.as_tensor().unsqueeze(1).unwrap(), &s)
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
