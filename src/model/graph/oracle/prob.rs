//! Sigmoid, softmax and cross-entropy as candle ops over fade's own exp.

use super::slice;
use crate::model::ops::{
    cross_entropy_grad, sigmoid_grad, sigmoid_into, softmax_grad, softmax_into,
};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

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
            softmax_into(row, n, &mut p);
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

/// Logistic sigmoid.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Sigmoid)
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax)
}

/// Mean cross-entropy of (B, 256) logits.
pub fn cross_entropy(logits: &Tensor, targets: &[u8]) -> Result<Tensor> {
    let op = CrossEntropy {
        targets: targets.to_vec(),
    };
    logits.contiguous()?.apply_op1(op)
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
