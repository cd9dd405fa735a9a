//! Fused CPU kernels with their own backward passes.
//!
//! Built from candle's basic ops, one layer norm is about 9 tensor ops forward
//! and 15 backward, each a full pass and an allocation, and GELU calls glibc's
//! scalar `erff`. Profiling the default preset showed these two dominating a
//! step. Here each is one pass forward and one backward, in a fixed order (so
//! results are deterministic), with our own erf so the numbers do not depend on
//! the C library's variant.

use crate::simd::wide_kernel;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

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
        let h = w / 2;
        let (mut u, mut y) = (vec![0f32; w], vec![0f32; rows * h]);
        for (xr, yr) in xw.chunks_exact(w).zip(y.chunks_exact_mut(h)) {
            biased_row(xr, b, &mut u);
            geglu_fwd(&u[..h], &u[h..], yr);
        }
        Ok((CpuStorage::F32(y), Shape::from((rows, h))))
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
        let (_, w) = l1.shape().dims2()?;
        let h = w / 2;
        let (mut u, mut du) = (vec![0f32; w], vec![0f32; xw.len()]);
        for ((xr, dyr), dur) in xw
            .chunks_exact(w)
            .zip(dy.chunks_exact(h))
            .zip(du.chunks_exact_mut(w))
        {
            biased_row(xr, b, &mut u);
            let (da, dg) = dur.split_at_mut(h);
            geglu_bwd(&u[..h], &u[h..], dyr, da, dg);
        }
        Ok((CpuStorage::F32(du), l1.shape().clone()))
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

    /// Bits of a tensor, so that -0 and +0 differ.
    fn bits(t: &Tensor) -> Vec<u32> {
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// The whole-layer ops give exactly the bits, forward and backward, of the
    /// smaller ops they replaced (files made before them must still decode).
    #[test]
    fn layer_ops_match_the_graphs_they_replace_bit_for_bit() {
        let dev = Device::Cpu;
        let mut g = crate::rng::SplitMix64::new(8);
        let mut var = |n: usize, shape: (usize, usize), s: f64| {
            let v: Vec<f32> = (0..n).map(|_| g.normal(s)).collect();
            Var::from_vec(v, shape, &dev).unwrap()
        };
        let (x, w, b) = (
            var(60, (6, 10), 2.0),
            var(10, (1, 10), 1.0),
            var(10, (1, 10), 1.0),
        );
        let down = var(60, (6, 10), 1.0);
        let (w, b) = (
            w.as_tensor().flatten_all().unwrap(),
            b.as_tensor().flatten_all().unwrap(),
        );
        let (w, b) = (Var::from_tensor(&w).unwrap(), Var::from_tensor(&b).unwrap());
        let params = [x.as_tensor(), w.as_tensor(), b.as_tensor()];
        // A loss whose gradient has zeros of both signs and a relu-like kink.
        let loss = |y: &Tensor| {
            let y = y.relu().unwrap().sqr().unwrap();
            let n = y.dims()[1];
            y.broadcast_mul(&down.as_tensor().narrow(1, 0, n).unwrap())
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let check = |fused: Tensor, old: Tensor| {
            assert_eq!(bits(&fused), bits(&old), "forward");
            let (gf, go) = (
                loss(&fused).backward().unwrap(),
                loss(&old).backward().unwrap(),
            );
            for p in params {
                // (GeGLU does not use w: no gradient on either side.)
                assert_eq!(gf.get(p).map(bits), go.get(p).map(bits), "gradient");
            }
            assert!(gf.get(params[0]).is_some());
        };
        let (t, wt, bt) = (x.as_tensor(), w.as_tensor(), b.as_tensor());
        let ln = t.apply_op3(wt, bt, LayerNorm { eps: 1e-5 }).unwrap();
        let xn = t.apply_op1(Normalize { eps: 1e-5 }).unwrap();
        check(ln, add_bias(&row_scale(&xn, wt).unwrap(), bt).unwrap());
        let geglu = t.apply_op2(bt, GeGlu).unwrap();
        let u = add_bias(t, bt).unwrap();
        let (a, gate) = (u.narrow(1, 0, 5).unwrap(), u.narrow(1, 5, 5).unwrap());
        let old = (a * gate.contiguous().unwrap().apply_op1(Gelu).unwrap()).unwrap();
        check(geglu, old);
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
