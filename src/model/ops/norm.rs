//! Layer norm: the plain normalisation, and the whole layer with gain and
//! bias as one graph node.

use super::rows::{ColSum, ColSumProd};
use super::slice;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// (x - mean) / sqrt(var + eps) over the last dimension (no affine part).
pub struct Normalize {
    pub eps: f32,
}

fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp1 for Normalize {
    fn name(&self) -> &'static str {
        "fused-normalize"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let d = *l.shape().dims().last().unwrap_or(&1);
        let mut y = vec![0f32; x.len()];
        for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
            let (mean, inv) = row_stats(xr, self.eps);
            for (o, &v) in yr.iter_mut().zip(xr) {
                *o = (v - mean) * inv;
            }
        }
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(
            &grad.contiguous()?,
            &NormalizeBwd { eps: self.eps },
        )?))
    }
}

struct NormalizeBwd {
    eps: f32,
}

impl CustomOp2 for NormalizeBwd {
    fn name(&self) -> &'static str {
        "fused-normalize-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (slice(s1, l1)?, slice(s2, l2)?);
        let d = *l1.shape().dims().last().unwrap_or(&1);
        let mut dx = vec![0f32; x.len()];
        normalize_bwd(x, g, d, self.eps, &mut dx);
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// dx = inv * (g - mean(g) - xhat * mean(g * xhat)) for rows of length `d`.
fn normalize_bwd(x: &[f32], g: &[f32], d: usize, eps: f32, dx: &mut [f32]) {
    let n = d as f32;
    for ((xr, gr), dr) in x
        .chunks_exact(d)
        .zip(g.chunks_exact(d))
        .zip(dx.chunks_exact_mut(d))
    {
        let (mean, inv) = row_stats(xr, eps);
        let mut sg = 0f32;
        let mut sgx = 0f32;
        for (&v, &gv) in xr.iter().zip(gr) {
            sg += gv;
            sgx += gv * (v - mean) * inv;
        }
        let (mg, mgx) = (sg / n, sgx / n);
        for ((o, &v), &gv) in dr.iter_mut().zip(xr).zip(gr) {
            *o = inv * (gv - mg - (v - mean) * inv * mgx);
        }
    }
}

/// Layer norm with gain and bias on (rows, n): xhat * w + b. One graph node
/// where [`Normalize`], [`RowScale`] and [`AddBias`] took three (seven with
/// their reshapes), each with a full-size gradient to zero and accumulate.
/// It computes the same bits as those three ops.
pub struct LayerNorm {
    pub eps: f32,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let d = w.len();
        let mut y = vec![0f32; x.len()];
        for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
            let (mean, inv) = row_stats(xr, self.eps);
            for (((o, &v), &wv), &bv) in yr.iter_mut().zip(xr).zip(w).zip(b) {
                *o = (v - mean) * inv * wv + bv;
            }
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let dx = x.apply_op3_no_bwd(w, &g, &LayerNormBwd { eps: self.eps })?;
        let xhat = x.apply_op1_no_bwd(&Normalize { eps: self.eps })?;
        let dw = g.apply_op2_no_bwd(&xhat, &ColSumProd)?;
        let db = g.apply_op1_no_bwd(&ColSum)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

struct LayerNormBwd {
    eps: f32,
}

impl CustomOp3 for LayerNormBwd {
    fn name(&self) -> &'static str {
        "fused-layer-norm-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, g) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let d = w.len();
        // The gradient reaching xhat, as candle's graph accumulated it onto
        // zeros (`+ 0.0` turns -0 into +0).
        let mut gx = vec![0f32; g.len()];
        for (gr, or) in g.chunks_exact(d).zip(gx.chunks_exact_mut(d)) {
            for ((o, &gv), &wv) in or.iter_mut().zip(gr).zip(w) {
                *o = gv * wv + 0.0;
            }
        }
        let mut dx = vec![0f32; x.len()];
        normalize_bwd(x, &gx, d, self.eps, &mut dx);
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}
