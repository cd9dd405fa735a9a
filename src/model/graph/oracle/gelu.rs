//! GELU and GeGLU as candle ops over [`crate::model::ops`]' kernels.

use super::rows::ColSum;
use super::slice;
use crate::model::ops::{geglu_grad, geglu_into, gelu_grad, gelu_into};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// GELU(x) = x * Phi(x), exact form.
pub struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "fused-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let mut y = vec![0f32; x.len()];
        gelu_into(x, &mut y);
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &GeluBwd)?))
    }
}

struct GeluBwd;

impl CustomOp2 for GeluBwd {
    fn name(&self) -> &'static str {
        "fused-gelu-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (slice(s1, l1)?, slice(s2, l2)?);
        let mut d = vec![0f32; x.len()];
        gelu_grad(x, g, &mut d);
        Ok((CpuStorage::F32(d), l1.shape().clone()))
    }
}

/// GeGLU with its layer's bias: rows u = xw + b = [a | g] of width 2h give
/// a * gelu(g), h wide. One pass each way and one graph node, where candle's
/// ops took a bias add, two narrows, a copy, GELU and a product, and their
/// backward passes padded each half back to full width with zeros. It
/// computes the same bits as that graph.
pub struct GeGlu;

impl CustomOp2 for GeGlu {
    fn name(&self) -> &'static str {
        "fused-geglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (xw, b) = (slice(s1, l1)?, slice(s2, l2)?);
        let (rows, w) = l1.shape().dims2()?;
        let mut y = vec![0f32; rows * w / 2];
        geglu_into(xw, b, &mut y);
        Ok((CpuStorage::F32(y), Shape::from((rows, w / 2))))
    }

    fn bwd(
        &self,
        xw: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let du = xw.apply_op3_no_bwd(b, &grad.contiguous()?, &GeGluBwd)?;
        let db = du.apply_op1_no_bwd(&ColSum)?;
        Ok((Some(du), Some(db)))
    }
}

struct GeGluBwd;

impl CustomOp3 for GeGluBwd {
    fn name(&self) -> &'static str {
        "fused-geglu-bwd"
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
        let (xw, b, dy) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let mut du = vec![0f32; xw.len()];
        geglu_grad(xw, b, dy, &mut du);
        Ok((CpuStorage::F32(du), l1.shape().clone()))
    }
}
