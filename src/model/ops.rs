//! Fused CPU kernels with their own backward passes.
//!
//! Built from candle's basic ops, one layer norm is about 9 tensor ops forward
//! and 15 backward, each a full pass and an allocation, and GELU calls glibc's
//! scalar `erff`. Profiling the default preset showed these two dominating a
//! step. Here each is one pass forward and one backward, in a fixed order (so
//! results are deterministic), with our own erf so the numbers do not depend on
//! the C library's variant.

use crate::simd::wide_kernel;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("fused op needs a contiguous f32 tensor"),
    }
}

/// erf with max error 1.2e-7 (Numerical Recipes' erfc Chebyshev fit), written
/// out so every machine computes the same bits.
#[inline]
fn erf(x: f32) -> f32 {
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

/// GELU(x) = x * Phi(x), exact form.
pub struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "fused-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let mut y = vec![0f32; x.len()];
        gelu_fwd(x, &mut y);
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
        gelu_bwd(x, g, &mut d);
        Ok((CpuStorage::F32(d), l1.shape().clone()))
    }
}

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

    /// dx = inv * (g - mean(g) - xhat * mean(g * xhat)).
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (slice(s1, l1)?, slice(s2, l2)?);
        let d = *l1.shape().dims().last().unwrap_or(&1);
        let n = d as f32;
        let mut dx = vec![0f32; x.len()];
        for ((xr, gr), dr) in x
            .chunks_exact(d)
            .zip(g.chunks_exact(d))
            .zip(dx.chunks_exact_mut(d))
        {
            let (mean, inv) = row_stats(xr, self.eps);
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
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// Sums the rows of a contiguous (rows, n) matrix into n values, in row order.
/// candle's own reduction over a leading dimension does an index division per
/// element; bias and gain gradients are exactly this reduction.
struct ColSum;

impl CustomOp1 for ColSum {
    fn name(&self) -> &'static str {
        "colsum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let n = *l.shape().dims().last().unwrap_or(&1);
        let mut out = vec![0f32; n];
        for row in x.chunks_exact(n) {
            for (o, &v) in out.iter_mut().zip(row) {
                *o += v;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }
}

/// Column sums of the elementwise product of two (rows, n) matrices.
struct ColSumProd;

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
        for (ra, rb) in a.chunks_exact(n).zip(b.chunks_exact(n)) {
            for ((o, &x), &y) in out.iter_mut().zip(ra).zip(rb) {
                *o += x * y;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }
}

/// Applies `f(row_value, vec_value)` along rows: (rows, n) with (n) -> (rows, n).
fn row_map(
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
    f: impl Fn(f32, f32) -> f32,
) -> Result<(CpuStorage, Shape)> {
    let (x, v) = (slice(s1, l1)?, slice(s2, l2)?);
    let n = v.len();
    let mut out = vec![0f32; x.len()];
    for (xr, or) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        for ((o, &a), &b) in or.iter_mut().zip(xr).zip(v) {
            *o = f(a, b);
        }
    }
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
/// dimensions; other devices use candle's broadcasting `fallback`.
fn rowwise(
    x: &Tensor,
    v: &Tensor,
    op: impl CustomOp2 + Send + Sync + 'static,
    fallback: fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return fallback(x, v);
    }
    let dims = x.dims().to_vec();
    let n = *dims.last().unwrap_or(&1);
    x.contiguous()?
        .reshape(((), n))?
        .apply_op2(v, op)?
        .reshape(dims)
}

/// `x (.., n) + b (n)`, with a fast bias gradient on the CPU.
pub fn add_bias(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    rowwise(x, b, AddBias, |x, b| x.broadcast_add(b))
}

/// `x (.., n) * w (n)`, with a fast weight gradient on the CPU.
pub fn row_scale(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    rowwise(x, w, RowScale, |x, w| x.broadcast_mul(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

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

    /// The fused ops and their gradients agree with candle's composed ones.
    #[test]
    fn fused_ops_match_composed_ops_and_gradients() {
        let dev = Device::Cpu;
        let mut g = crate::rng::SplitMix64::new(4);
        let data: Vec<f32> = (0..6 * 10).map(|_| g.normal(2.0)).collect();
        let w: Vec<f32> = (0..6 * 10).map(|_| g.normal(1.0)).collect();
        let w = Tensor::from_vec(w, (6, 10), &dev).unwrap();
        let x = Var::from_vec(data, (6, 10), &dev).unwrap();
        let check = |fused: &Tensor, composed: &Tensor| {
            let (a, b) = (
                fused.broadcast_mul(&w).unwrap().sum_all().unwrap(),
                composed.broadcast_mul(&w).unwrap().sum_all().unwrap(),
            );
            let (ga, gb) = (a.backward().unwrap(), b.backward().unwrap());
            let diff = |p: &Tensor, q: &Tensor| {
                p.sub(q)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            };
            assert!(diff(fused, composed) < 1e-5, "values differ");
            assert!(
                diff(
                    ga.get(x.as_tensor()).unwrap(),
                    gb.get(x.as_tensor()).unwrap()
                ) < 1e-4,
                "gradients differ"
            );
        };
        let t = x.as_tensor();
        check(&t.apply_op1(Gelu).unwrap(), &t.gelu_erf().unwrap());
        let mean = t.mean_keepdim(D::Minus1).unwrap();
        let xc = t.broadcast_sub(&mean).unwrap();
        let var = xc.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let composed = xc
            .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
            .unwrap();
        check(&t.apply_op1(Normalize { eps: 1e-5 }).unwrap(), &composed);
        // Row ops: gradients flow to both operands and match broadcasting ops.
        let v = Var::from_vec(
            (0..10).map(|i| i as f32 * 0.3 - 1.0).collect::<Vec<f32>>(),
            10,
            &dev,
        )
        .unwrap();
        for (fused, composed) in [
            (
                add_bias(t, v.as_tensor()).unwrap(),
                t.broadcast_add(v.as_tensor()).unwrap(),
            ),
            (
                row_scale(t, v.as_tensor()).unwrap(),
                t.broadcast_mul(v.as_tensor()).unwrap(),
            ),
        ] {
            let ga = fused
                .broadcast_mul(&w)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gb = composed
                .broadcast_mul(&w)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for p in [t, v.as_tensor()] {
                let d = ga
                    .get(p)
                    .unwrap()
                    .sub(gb.get(p).unwrap())
                    .unwrap()
                    .abs()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap();
                assert!(d.to_scalar::<f32>().unwrap() < 1e-4);
            }
        }
    }
}
