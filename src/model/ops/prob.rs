//! Sigmoid, softmax and cross-entropy with fade's own exp and fixed orders.
//!
//! candle's versions call the C library's `expf`, whose last bit depends on
//! the CPU variant glibc picks, and candle reduces rows in a vector order that
//! differs between x86-64 and aarch64. Here every exp is [`crate::math::exp`]
//! and every sum runs over its row in index order.

use super::slice;
use crate::math::exp;
use crate::par;
use crate::simd::wide_kernel;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

wide_kernel! {
    fn sigmoid_kernel(x: &[f32], y: &mut [f32]) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = 1.0 / (1.0 + exp(-v));
        }
    }
}

wide_kernel! {
    /// dx = dy * (y * (1 - y)).
    fn sigmoid_bwd_kernel(y: &[f32], dy: &[f32], dx: &mut [f32]) {
        for ((o, &s), &g) in dx.iter_mut().zip(y).zip(dy) {
            *o = g * (s * (1.0 - s));
        }
    }
}

wide_kernel! {
    /// Softmax of one row into `y`: e = exp(x - max), y = e / (sum of e in index order).
    fn softmax_row(x: &[f32], y: &mut [f32]) {
        let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        for (o, &v) in y.iter_mut().zip(x) {
            *o = exp(v - max);
        }
        let mut s = 0f32;
        for &e in y.iter() {
            s += e;
        }
        for o in y.iter_mut() {
            *o /= s;
        }
    }
}

/// `y = sigmoid(x)` elementwise.
pub(crate) fn sigmoid_into(x: &[f32], y: &mut [f32]) {
    par::rows_mut(&mut y[..x.len()], 1, 16, |i, y| {
        sigmoid_kernel(&x[i..i + y.len()], y)
    });
}

/// `dx = dy * y * (1 - y)` for the sigmoid's output `y`.
pub(crate) fn sigmoid_grad(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    par::rows_mut(&mut dx[..y.len()], 1, 4, |i, d| {
        sigmoid_bwd_kernel(&y[i..i + d.len()], &dy[i..i + d.len()], d)
    });
}

/// Softmax of each `n`-wide row of `x` into `y`.
pub(crate) fn softmax_into(x: &[f32], n: usize, y: &mut [f32]) {
    par::rows_mut(&mut y[..x.len()], n, 16 * n, |i, y| {
        softmax_rows(&x[i * n..i * n + y.len()], n, y)
    });
}

/// dx = y * (dy - d), d = sum of dy * y over each `n`-wide row in index order.
pub(crate) fn softmax_grad(y: &[f32], dy: &[f32], n: usize, dx: &mut [f32]) {
    par::rows_mut(&mut dx[..y.len()], n, 4 * n, |i, dx| {
        for ((yr, gr), dr) in y[i * n..]
            .chunks_exact(n)
            .zip(dy[i * n..].chunks_exact(n))
            .zip(dx.chunks_exact_mut(n))
        {
            let mut d = 0f32;
            for (&s, &g) in yr.iter().zip(gr) {
                d += g * s;
            }
            for ((o, &s), &g) in dr.iter_mut().zip(yr).zip(gr) {
                *o = s * (g - d);
            }
        }
    });
}

/// The gradient of `g` times the mean cross-entropy of (B, 256) `logits`
/// against `targets`: (softmax - onehot) * (g / B).
pub(crate) fn cross_entropy_grad(logits: &[f32], targets: &[u8], g: f32, dx: &mut [f32]) {
    let n = 256;
    let scale = g / targets.len() as f32;
    par::rows_mut(&mut dx[..logits.len()], n, 16 * n, |i, dx| {
        softmax_rows(&logits[i * n..i * n + dx.len()], n, dx);
        for (dr, &t) in dx.chunks_exact_mut(n).zip(&targets[i..]) {
            dr[t as usize] -= 1.0;
            for o in dr.iter_mut() {
                *o *= scale;
            }
        }
    });
}

wide_kernel! {
    /// [`softmax_row`] of every `n`-wide row of `x` into `y`, the sums of
    /// eight rows advancing side by side (each in index order: the same
    /// bits; one row's chain of dependent adds waited on every add).
    fn softmax_rows(x: &[f32], n: usize, y: &mut [f32]) {
        const G: usize = 8;
        let rows = x.len() / n;
        for (xr, yr) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
            let max = xr.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            for (o, &v) in yr.iter_mut().zip(xr) {
                *o = exp(v - max);
            }
        }
        let mut k = 0;
        while k + G <= rows {
            let mut s = [0f32; G];
            for j in 0..n {
                for (r, s) in s.iter_mut().enumerate() {
                    *s += y[(k + r) * n + j];
                }
            }
            for (r, &s) in s.iter().enumerate() {
                for o in &mut y[(k + r) * n..(k + r + 1) * n] {
                    *o /= s;
                }
            }
            k += G;
        }
        for yr in y[k * n..rows * n].chunks_exact_mut(n) {
            let mut s = 0f32;
            for &e in yr.iter() {
                s += e;
            }
            for o in yr.iter_mut() {
                *o /= s;
            }
        }
    }
}

/// The logistic function, elementwise.
pub struct Sigmoid;

impl CustomOp1 for Sigmoid {
    fn name(&self) -> &'static str {
        "fade-sigmoid"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let mut y = vec![0f32; x.len()];
        sigmoid_into(x, &mut y);
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(y.apply_op2_no_bwd(&grad.contiguous()?, &SigmoidBwd)?))
    }
}

struct SigmoidBwd;

impl CustomOp2 for SigmoidBwd {
    fn name(&self) -> &'static str {
        "fade-sigmoid-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, dy) = (slice(s1, l1)?, slice(s2, l2)?);
        let mut dx = vec![0f32; y.len()];
        sigmoid_grad(y, dy, &mut dx);
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// Softmax over the last dimension.
pub struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "fade-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let n = *l.dims().last().unwrap_or(&1);
        let mut y = vec![0f32; x.len()];
        softmax_into(x, n, &mut y);
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(y.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxBwd)?))
    }
}

/// dx = y * (dy - d), d = sum of dy * y over the row in index order.
struct SoftmaxBwd;

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "fade-softmax-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, dy) = (slice(s1, l1)?, slice(s2, l2)?);
        let n = *l1.dims().last().unwrap_or(&1);
        let mut dx = vec![0f32; y.len()];
        softmax_grad(y, dy, n, &mut dx);
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// Mean cross-entropy of (B, 256) logits against B target bytes.
///
/// Only the gradient is on the model's path: dlogits = (softmax - onehot) *
/// (g / B), with the row's softmax as in [`Softmax`]. The loss value itself is
/// never used by the codec (its logarithm uses the C library).
pub struct CrossEntropy {
    pub targets: Vec<u8>,
}

impl CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "fade-cross-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let n = *l.dims().last().unwrap_or(&1);
        let rows = x.len() / n.max(1);
        if rows != self.targets.len() || n != 256 {
            candle_core::bail!("cross-entropy: {:?} logits for {rows} targets", l.dims());
        }
        let mut total = 0f64;
        let mut p = vec![0f32; n];
        for (row, &t) in x.chunks_exact(n).zip(&self.targets) {
            softmax_row(row, &mut p);
            total -= (p[t as usize] as f64).max(1e-30).ln();
        }
        let loss = (total / rows.max(1) as f64) as f32;
        Ok((CpuStorage::F32(vec![loss]), Shape::from(())))
    }

    fn bwd(&self, x: &Tensor, _loss: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = grad.to_scalar::<f32>()?;
        let x = x.contiguous()?;
        let v = x.flatten_all()?.to_vec1::<f32>()?;
        let mut dx = vec![0f32; v.len()];
        cross_entropy_grad(&v, &self.targets, g, &mut dx);
        Ok(Some(Tensor::from_vec(dx, x.dims(), x.device())?))
    }
}

/// Logistic sigmoid: fade's op on the CPU, candle's elsewhere.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    if crate::model::fused_kernels(x.device()) {
        x.contiguous()?.apply_op1(Sigmoid)
    } else {
        candle_nn::ops::sigmoid(x)
    }
}

/// Softmax over the last dimension: fade's op on the CPU, candle's elsewhere.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if crate::model::fused_kernels(x.device()) {
        x.contiguous()?.apply_op1(Softmax)
    } else {
        candle_nn::ops::softmax(x, candle_core::D::Minus1)
    }
}

/// Mean cross-entropy of (B, 256) logits: fade's op on the CPU, candle's elsewhere.
pub fn cross_entropy(logits: &Tensor, targets: &[u8]) -> Result<Tensor> {
    if crate::model::fused_kernels(logits.device()) {
        let op = CrossEntropy {
            targets: targets.to_vec(),
        };
        return logits.contiguous()?.apply_op1(op);
    }
    let tg: Vec<u32> = targets.iter().map(|&c| c as u32).collect();
    let tg = Tensor::from_vec(tg, targets.len(), logits.device())?;
    candle_nn::loss::cross_entropy(logits, &tg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_diff(p: &Tensor, q: &Tensor) -> f32 {
        let d = (p - q).unwrap().abs().unwrap().flatten_all().unwrap();
        d.max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// Values and gradients agree with candle's ops (to rounding).
    #[test]
    fn ops_match_candle_with_gradients() {
        let dev = Device::Cpu;
        let mut g = crate::rng::SplitMix64::new(5);
        let v: Vec<f32> = (0..3 * 256).map(|_| g.normal(2.0)).collect();
        let x = Var::from_vec(v, (3, 256), &dev).unwrap();
        let w: Vec<f32> = (0..3 * 256).map(|_| g.normal(1.0)).collect();
        let w = Tensor::from_vec(w, (3, 256), &dev).unwrap();
        let t = x.as_tensor();
        let grad = |y: &Tensor| {
            let l = (y * &w).unwrap().sum_all().unwrap();
            l.backward().unwrap().get(t).unwrap().clone()
        };
        let pairs = [
            (
                t.apply_op1(Sigmoid).unwrap(),
                candle_nn::ops::sigmoid(t).unwrap(),
            ),
            (
                t.apply_op1(Softmax).unwrap(),
                candle_nn::ops::softmax(t, candle_core::D::Minus1).unwrap(),
            ),
        ];
        for (ours, theirs) in pairs {
            assert!(max_diff(&ours, &theirs) < 1e-6);
            assert!(max_diff(&grad(&ours), &grad(&theirs)) < 1e-5);
        }
        let targets = [3u8, 200, 77];
        let ours = t
            .apply_op1(CrossEntropy {
                targets: targets.to_vec(),
            })
            .unwrap();
        let tg = Tensor::new(&[3u32, 200, 77], &dev).unwrap();
        let theirs = candle_nn::loss::cross_entropy(t, &tg).unwrap();
        assert!(max_diff(&ours, &theirs) < 1e-5);
        let (go, gt) = (ours.backward().unwrap(), theirs.backward().unwrap());
        assert!(max_diff(go.get(t).unwrap(), gt.get(t).unwrap()) < 1e-6);
    }
}
