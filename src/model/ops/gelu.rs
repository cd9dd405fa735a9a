//! GELU and GeGLU: our own erf, so the numbers do not depend on the C
//! library's `erff`, and one pass forward and one backward.

use super::rows::ColSum;
use super::slice;
use crate::par;
use crate::simd::wide_kernel;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// erf with max error 1.2e-7 (Numerical Recipes' erfc Chebyshev fit), written
/// out so every machine computes the same bits.
#[inline]
pub(super) fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_2 + t * 0.170_872_77))))))));
    let r = 1.0 - t * crate::math::exp(poly);
    // A select of +-1 rather than of r and -r: the same bits, and the loops
    // around it stay vectorised.
    r * if x >= 0.0 { 1.0 } else { -1.0 }
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f32 = 0.398_942_3;

wide_kernel! {
    fn gelu_fwd(x: &[f32], y: &mut [f32]) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = 0.5 * v * (1.0 + erf(v * FRAC_1_SQRT_2));
        }
    }
}

wide_kernel! {
    fn gelu_bwd(x: &[f32], g: &[f32], d: &mut [f32]) {
        for ((o, &v), &gr) in d.iter_mut().zip(x).zip(g) {
            let cdf = 0.5 * (1.0 + erf(v * FRAC_1_SQRT_2));
            let pdf = INV_SQRT_2PI * crate::math::exp(-0.5 * v * v);
            *o = gr * (cdf + v * pdf);
        }
    }
}

/// `y = gelu(x)` elementwise.
pub(crate) fn gelu_into(x: &[f32], y: &mut [f32]) {
    par::rows_mut(&mut y[..x.len()], 1, 24, |i, y| {
        gelu_fwd(&x[i..i + y.len()], y)
    });
}

/// `d = g * gelu'(x)` elementwise.
pub(crate) fn gelu_grad(x: &[f32], g: &[f32], d: &mut [f32]) {
    par::rows_mut(&mut d[..x.len()], 1, 32, |i, d| {
        gelu_bwd(&x[i..i + d.len()], &g[i..i + d.len()], d)
    });
}

/// GeGLU of the rows of `xw` (2h wide, before the bias `b`) into `y` (h wide).
pub(crate) fn geglu_into(xw: &[f32], b: &[f32], y: &mut [f32]) {
    let w = b.len();
    let h = w / 2;
    let rows = xw.len() / w;
    par::rows_mut(&mut y[..rows * h], h, 24 * h, |i, y| {
        let mut u = vec![0f32; w];
        for (xr, yr) in xw[i * w..].chunks_exact(w).zip(y.chunks_exact_mut(h)) {
            biased_row(xr, b, &mut u);
            geglu_fwd(&u[..h], &u[h..], yr);
        }
    });
}

/// The gradient `du` (rows x 2h) of [`geglu_into`] for the output gradient
/// `dy` (rows x h); it is also the gradient of `xw`, and its column sums the
/// bias's.
pub(crate) fn geglu_grad(xw: &[f32], b: &[f32], dy: &[f32], du: &mut [f32]) {
    let w = b.len();
    let h = w / 2;
    par::rows_mut(&mut du[..xw.len()], w, 32 * w, |i, du| {
        let mut u = vec![0f32; w];
        for ((xr, dyr), dur) in xw[i * w..]
            .chunks_exact(w)
            .zip(dy[i * h..].chunks_exact(h))
            .zip(du.chunks_exact_mut(w))
        {
            biased_row(xr, b, &mut u);
            let (da, dg) = dur.split_at_mut(h);
            geglu_bwd(&u[..h], &u[h..], dyr, da, dg);
        }
    });
}

wide_kernel! {
    /// [`gelu_fwd`] that also keeps each element's erf for the backward pass.
    fn gelu_fwd_keep(x: &[f32], y: &mut [f32], e: &mut [f32]) {
        for ((o, k), &v) in y.iter_mut().zip(e.iter_mut()).zip(x) {
            let ev = erf(v * FRAC_1_SQRT_2);
            *k = ev;
            *o = 0.5 * v * (1.0 + ev);
        }
    }
}

wide_kernel! {
    /// [`gelu_bwd`] from the erf the forward pass kept (the same value).
    fn gelu_bwd_kept(x: &[f32], e: &[f32], g: &[f32], d: &mut [f32]) {
        for (((o, &v), &ev), &gr) in d.iter_mut().zip(x).zip(e).zip(g) {
            let cdf = 0.5 * (1.0 + ev);
            let pdf = INV_SQRT_2PI * crate::math::exp(-0.5 * v * v);
            *o = gr * (cdf + v * pdf);
        }
    }
}

/// [`gelu_into`] that keeps each element's erf in `e` for [`gelu_grad_kept`].
pub(crate) fn gelu_into_keep(x: &[f32], y: &mut [f32], e: &mut [f32]) {
    let ep = par::SharedMut(e.as_mut_ptr());
    par::rows_mut(&mut y[..x.len()], 1, 24, |i, y| {
        // SAFETY: elements i.. of e (as long as x) belong to this range only.
        let e = unsafe { ep.slice(i, y.len()) };
        gelu_fwd_keep(&x[i..i + y.len()], y, e)
    });
}

/// [`gelu_grad`] from the erf values [`gelu_into_keep`] kept: the same bits,
/// one erf fewer per element.
pub(crate) fn gelu_grad_kept(x: &[f32], e: &[f32], g: &[f32], d: &mut [f32]) {
    par::rows_mut(&mut d[..x.len()], 1, 24, |i, d| {
        let r = i..i + d.len();
        gelu_bwd_kept(&x[r.clone()], &e[r.clone()], &g[r], d)
    });
}

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

wide_kernel! {
    /// One row of GeGLU: y = a * gelu(g).
    fn geglu_fwd(a: &[f32], g: &[f32], y: &mut [f32]) {
        for ((o, &av), &v) in y.iter_mut().zip(a).zip(g) {
            *o = av * (0.5 * v * (1.0 + erf(v * FRAC_1_SQRT_2)));
        }
    }
}

wide_kernel! {
    /// One row of GeGLU's backward pass, in the exact operations candle's
    /// graph of `a * gelu(g)` ran (mul, then [`GeluBwd`]); `+ 0.0` is candle's
    /// gradient accumulation onto zeros, which turns -0 into +0.
    fn geglu_bwd(a: &[f32], g: &[f32], dy: &[f32], da: &mut [f32], dg: &mut [f32]) {
        for ((((oa, og), &av), &v), &gr) in da.iter_mut().zip(dg.iter_mut()).zip(a).zip(g).zip(dy) {
            let e = erf(v * FRAC_1_SQRT_2);
            let gelu = 0.5 * v * (1.0 + e);
            let cdf = 0.5 * (1.0 + e);
            let pdf = INV_SQRT_2PI * crate::math::exp(-0.5 * v * v);
            *oa = gr * gelu + 0.0;
            *og = (gr * av + 0.0) * (cdf + v * pdf) + 0.0;
        }
    }
}

/// GeGLU with its layer's bias: rows u = xw + b = [a | g] of width 2h give
/// a * gelu(g), h wide. One pass each way and one graph node, where candle's
/// ops took a bias add, two narrows, a copy, GELU and a product, and their
/// backward passes padded each half back to full width with zeros. It
/// computes the same bits as that graph.
pub struct GeGlu;

/// Fills `u` with one row of xw + b.
fn biased_row(xw: &[f32], b: &[f32], u: &mut [f32]) {
    for ((o, &x), &bv) in u.iter_mut().zip(xw).zip(b) {
        *o = x + bv;
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (2.0, 0.995_322_3),
            (-1.5, -0.966_105_1),
        ] {
            assert!((erf(x) - want).abs() < 3e-7, "erf({x}) = {}", erf(x));
        }
    }
}
