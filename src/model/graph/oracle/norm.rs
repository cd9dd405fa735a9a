//! Layer norm (and the plain normalisation it replaced) as candle ops.

use super::rows::ColSum;
use super::slice;
use crate::model::ops::{layer_norm, layer_norm_grad, normalize, normalize_grad};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// (x - mean) / sqrt(var + eps) over the last dimension (no affine part). The
/// model used it before [`LayerNorm`]; tests keep it as the reference.
pub struct Normalize {
    pub eps: f32,
}

impl CustomOp1 for Normalize {
    fn name(&self) -> &'static str {
        "fused-normalize"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let d = *l.shape().dims().last().unwrap_or(&1);
        let mut y = vec![0f32; x.len()];
        normalize(x, d, self.eps, &mut y);
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
        let mut dx = g[..x.len()].to_vec();
        normalize_grad(x, d, self.eps, &mut dx);
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// Layer norm with gain and bias on (rows, n): xhat * w + b. One graph node
/// where [`Normalize`], `RowScale` and `AddBias` took three (seven with
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
        let mut y = vec![0f32; x.len()];
        layer_norm(x, w, b, self.eps, &mut y);
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
        let rows = x.dim(0)?;
        // One pass gives dx (rows x n) with the gain's gradient as an extra row.
        let both = x.apply_op3_no_bwd(w, &g, &LayerNormBwd { eps: self.eps })?;
        let dx = both.narrow(0, 0, rows)?;
        let dw = both.narrow(0, rows, 1)?.flatten_all()?;
        let db = g.apply_op1_no_bwd(&ColSum)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// The backward pass of [`LayerNorm`]: for x, w and the output gradient g,
/// rows of dx followed by one row of dw = sum over rows of g * xhat. Each row's
/// statistics are computed once; the operations are those of the graph
/// Normalize, RowScale, AddBias ran, so the bits are the same.
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
        let rows = x.len() / d;
        let mut out = vec![0f32; x.len() + d];
        let (dx, dw) = out.split_at_mut(x.len());
        layer_norm_grad(x, w, g, self.eps, dx, dw);
        Ok((CpuStorage::F32(out), Shape::from((rows + 1, d))))
    }
}
