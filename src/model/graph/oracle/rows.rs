//! Bias add, gain and skip scale as candle ops, with the column sums their
//! gradients need.

use super::slice;
use crate::model::ops::{col_sum, col_sum_prod, rows_with, scale_into};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

/// Sums the rows of a contiguous (rows, n) matrix into n values, in row order.
/// candle's own reduction over a leading dimension does an index division per
/// element; bias and gain gradients are exactly this reduction.
pub(super) struct ColSum;

impl CustomOp1 for ColSum {
    fn name(&self) -> &'static str {
        "colsum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let n = *l.shape().dims().last().unwrap_or(&1);
        let mut out = vec![0f32; n];
        col_sum(x, &mut out);
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }
}

/// Column sums of the elementwise product of two (rows, n) matrices.
pub(super) struct ColSumProd;

impl CustomOp2 for ColSumProd {
    fn name(&self) -> &'static str {
        "colsum-prod"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (slice(s1, l1)?, slice(s2, l2)?);
        let n = *l1.shape().dims().last().unwrap_or(&1);
        let mut out = vec![0f32; n];
        col_sum_prod(a, b, &mut out);
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }
}

/// Applies `f(row_value, vec_value)` along rows: (rows, n) with (n) -> (rows, n).
fn row_map(
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> Result<(CpuStorage, Shape)> {
    let (x, v) = (slice(s1, l1)?, slice(s2, l2)?);
    let mut out = vec![0f32; x.len()];
    rows_with(x, v, &mut out, f);
    Ok((CpuStorage::F32(out), l1.shape().clone()))
}

/// x + b for x of shape (rows, n) and b of shape (n).
pub struct AddBias;

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "add-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        row_map(s1, l1, s2, l2, |a, b| a + b)
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        Ok((Some(g.clone()), Some(g.apply_op1_no_bwd(&ColSum)?)))
    }
}

/// x * w for x of shape (rows, n) and w of shape (n).
pub struct RowScale;

impl CustomOp2 for RowScale {
    fn name(&self) -> &'static str {
        "row-scale"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        row_map(s1, l1, s2, l2, |a, b| a * b)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let gx = g.apply_op2_no_bwd(w, &RowScale)?;
        let gw = g.apply_op2_no_bwd(&x.contiguous()?, &ColSumProd)?;
        Ok((Some(gx), Some(gw)))
    }
}

/// Applies a (rows, n) x (n) op to `x` of any rank by flattening its leading
/// dimensions.
fn rowwise(x: &Tensor, v: &Tensor, op: impl CustomOp2 + Send + Sync + 'static) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let n = *dims.last().unwrap_or(&1);
    x.contiguous()?
        .reshape(((), n))?
        .apply_op2(v, op)?
        .reshape(dims)
}

/// `x (.., n) + b (n)`, with a fast bias gradient on the CPU.
pub fn add_bias(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    rowwise(x, b, AddBias)
}

/// `x (.., n) * w (n)`, with a fast weight gradient on the CPU.
pub fn row_scale(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    rowwise(x, w, RowScale)
}

/// `x * s` for a one-element `s` (a learned skip scale).
///
/// ds sums dy * x over every element: first down each column in row order
/// (vectorised across columns), then the column sums in index order. A single
/// chain over all elements would serialise on the add latency.
struct Scale;

impl CustomOp2 for Scale {
    fn name(&self) -> &'static str {
        "fade-scale"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, s) = (slice(s1, l1)?, slice(s2, l2)?);
        let mut y = vec![0f32; x.len()];
        scale_into(x, s[0], &mut y);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        s: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let gx = g.apply_op2_no_bwd(s, &Scale)?;
        let cols = g.apply_op2_no_bwd(&x.contiguous()?, &ColSumProd)?;
        let gs = cols
            .reshape((1, cols.elem_count()))?
            .apply_op1_no_bwd(&RowSum)?;
        Ok((Some(gx), Some(gs)))
    }
}

/// The sum of each row of a (rows, n) matrix in index order: (rows).
struct RowSum;

impl CustomOp1 for RowSum {
    fn name(&self) -> &'static str {
        "fade-rowsum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let n = *l.dims().last().unwrap_or(&1);
        let out: Vec<f32> = x
            .chunks_exact(n.max(1))
            .map(|r| r.iter().fold(0f32, |a, &v| a + v))
            .collect();
        let rows = out.len();
        Ok((CpuStorage::F32(out), Shape::from(rows)))
    }
}

/// `x * s` for a one-element `s`.
pub fn scale(x: &Tensor, s: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(s, Scale)
}
