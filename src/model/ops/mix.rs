//! The side models' share of the logits: per lane, the sum of its score rows
//! weighted by the weights the network computed.
//!
//! `out[b, c] = sum over r of w[b, r] * s[b, r, c]` is the batched product
//! (B, 1, R) x (B, R, 256), and this op computes exactly the canonical
//! product's bits ([`super::matmul`]: one FMA chain per output, over r in
//! increasing order, from +0), forward and for dw (a chain over c). It is its
//! own op because the general product also computes the scores' gradient
//! (which nothing needs) and transposes them, which cost a tenth of a step.

use super::slice;
use crate::par;
use crate::simd::wide_kernel;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

struct Mix;

wide_kernel! {
    fn mix_fwd(w: &[f32], s: &[f32], out: &mut [f32]) {
        let rows = w.len();
        let n = out.len();
        out.fill(0.0);
        for r in 0..rows {
            let (wr, sr) = (w[r], &s[r * n..(r + 1) * n]);
            for (o, &v) in out.iter_mut().zip(sr) {
                *o = wr.mul_add(v, *o);
            }
        }
    }
}

wide_kernel! {
    /// dw[r] = chain over c of dout[c] * s[r, c]; the R chains advance
    /// together, so they pipeline instead of waiting on each other.
    fn mix_bwd(dout: &[f32], s: &[f32], dw: &mut [f32]) {
        let n = dout.len();
        dw.fill(0.0);
        for (c, &g) in dout.iter().enumerate() {
            for (r, acc) in dw.iter_mut().enumerate() {
                *acc = g.mul_add(s[r * n + c], *acc);
            }
        }
    }
}

/// Shape (B, R) and (B, R, N) of the operands.
fn dims(lw: &Layout, ls: &Layout) -> Result<(usize, usize, usize)> {
    match (lw.dims(), ls.dims()) {
        (&[b, r], &[b2, r2, n]) if b == b2 && r == r2 => Ok((b, r, n)),
        _ => candle_core::bail!("mix needs (B, R) weights and (B, R, N) scores"),
    }
}

impl CustomOp2 for Mix {
    fn name(&self) -> &'static str {
        "fade-mix"
    }

    fn cpu_fwd(
        &self,
        sw: &CpuStorage,
        lw: &Layout,
        ss: &CpuStorage,
        ls: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, r, n) = dims(lw, ls)?;
        let (w, s) = (slice(sw, lw)?, slice(ss, ls)?);
        let mut out = vec![0f32; b * n];
        let _ = b;
        par::rows_mut(&mut out, n, r * n, |i0, out| {
            for (i, o) in (i0..).zip(out.chunks_exact_mut(n)) {
                mix_fwd(&w[i * r..(i + 1) * r], &s[i * r * n..(i + 1) * r * n], o);
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((b, n))))
    }

    fn bwd(
        &self,
        _w: &Tensor,
        s: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dw = grad.contiguous()?.apply_op2_no_bwd(s, &MixGrad)?;
        Ok((Some(dw), None))
    }
}

/// dw of [`Mix`] from dout (B, N) and the scores (B, R, N).
struct MixGrad;

impl CustomOp2 for MixGrad {
    fn name(&self) -> &'static str {
        "fade-mix-grad"
    }

    fn cpu_fwd(
        &self,
        sg: &CpuStorage,
        lg: &Layout,
        ss: &CpuStorage,
        ls: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, n) = lg.shape().dims2()?;
        let (b2, r, n2) = ls.shape().dims3()?;
        if b != b2 || n != n2 {
            candle_core::bail!("mix gradient shapes differ");
        }
        let (g, s) = (slice(sg, lg)?, slice(ss, ls)?);
        let mut dw = vec![0f32; b * r];
        par::rows_mut(&mut dw, r, r * n, |i0, dw| {
            for (i, d) in (i0..).zip(dw.chunks_exact_mut(r)) {
                mix_bwd(&g[i * n..(i + 1) * n], &s[i * r * n..(i + 1) * r * n], d);
            }
        });
        Ok((CpuStorage::F32(dw), Shape::from((b, r))))
    }
}

/// `out[b, :] = sum_r w[b, r] * s[b, r, :]`: fade's op on the CPU, candle's
/// batched product elsewhere.
pub fn mix(w: &Tensor, s: &Tensor) -> Result<Tensor> {
    if !crate::model::fused_kernels(w.device()) {
        return w.unsqueeze(1)?.matmul(s)?.squeeze(1);
    }
    w.contiguous()?.apply_op2(&s.contiguous()?, Mix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Same bits as the canonical product it replaces, forward and for dw.
    #[test]
    fn mix_is_the_canonical_batched_product() {
        let dev = Device::Cpu;
        let mut g = crate::rng::SplitMix64::new(4);
        for (b, r, n) in [(1, 1, 7), (3, 15, 256), (5, 4, 33)] {
            let wv: Vec<f32> = (0..b * r).map(|_| g.normal(1.0)).collect();
            let sv: Vec<f32> = (0..b * r * n).map(|_| g.normal(3.0)).collect();
            let up: Vec<f32> = (0..b * n).map(|_| g.normal(1.0)).collect();
            let w = Var::from_vec(wv, (b, r), &dev).unwrap();
            let s = Tensor::from_vec(sv, (b, r, n), &dev).unwrap();
            let up = Tensor::from_vec(up, (b, n), &dev).unwrap();
            let ours = mix(w.as_tensor(), &s).unwrap();
            let canon = super::super::matmul(&w.as_tensor().unsqueeze(1).unwrap(), &s)
                .unwrap()
                .squeeze(1)
                .unwrap();
            let bits = |t: &Tensor| {
                let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            };
            assert_eq!(bits(&ours), bits(&canon));
            let go = (ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
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
