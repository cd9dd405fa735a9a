//! GELU and GeGLU: our own erf, so the numbers do not depend on the C
//! library's `erff`, and one pass forward and one backward.

use crate::par;
use crate::simd::wide_kernel;

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
    #[cfg(test)]
    fn gelu_fwd(x: &[f32], y: &mut [f32]) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = 0.5 * v * (1.0 + erf(v * FRAC_1_SQRT_2));
        }
    }
}

wide_kernel! {
    #[cfg(test)]
    fn gelu_bwd(x: &[f32], g: &[f32], d: &mut [f32]) {
        for ((o, &v), &gr) in d.iter_mut().zip(x).zip(g) {
            let cdf = 0.5 * (1.0 + erf(v * FRAC_1_SQRT_2));
            let pdf = INV_SQRT_2PI * crate::math::exp(-0.5 * v * v);
            *o = gr * (cdf + v * pdf);
        }
    }
}

/// `y = gelu(x)` elementwise (the tests' graph; the step keeps the erf,
/// [`gelu_into_keep`]).
#[cfg(test)]
pub(crate) fn gelu_into(x: &[f32], y: &mut [f32]) {
    par::rows_mut(&mut y[..x.len()], 1, 24, |i, y| {
        gelu_fwd(&x[i..i + y.len()], y)
    });
}

/// `d = g * gelu'(x)` elementwise.
#[cfg(test)]
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
    /// graph of `a * gelu(g)` ran (mul, then GELU's backward pass); `+ 0.0` is candle's
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

/// Fills `u` with one row of xw + b.
fn biased_row(xw: &[f32], b: &[f32], u: &mut [f32]) {
    for ((o, &x), &bv) in u.iter_mut().zip(xw).zip(b) {
        *o = x + bv;
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
