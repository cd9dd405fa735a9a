//! The graph's ops: candle's composed ops, which a GPU runs. In the tests on
//! the CPU each takes the oracle's custom op instead ([`super::oracle`]),
//! which computes fade's canonical bits.

use crate::side::Scores;
use candle_core::{Result, Tensor, D};
use std::sync::Arc;

/// Returns the oracle's result where the tests' graph runs on the CPU.
macro_rules! oracle {
    ($dev:expr, $e:expr) => {
        #[cfg(test)]
        if super::oracle::on($dev) {
            return $e;
        }
    };
}

/// `a.matmul(b)`.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    oracle!(a.device(), super::oracle::matmul(a, b));
    a.matmul(b)
}

/// `x (.., n) + b (n)`.
pub fn add_bias(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    oracle!(x.device(), super::oracle::add_bias(x, b));
    x.broadcast_add(b)
}

/// `x (.., n) * w (n)`.
pub fn row_scale(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    oracle!(x.device(), super::oracle::row_scale(x, w));
    x.broadcast_mul(w)
}

/// `x * s` for a one-element `s` (a learned skip scale).
pub fn scale(x: &Tensor, s: &Tensor) -> Result<Tensor> {
    oracle!(x.device(), super::oracle::scale(x, s));
    x.broadcast_mul(s)
}

/// Exact GELU.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    oracle!(x.device(), super::oracle::gelu(x));
    x.gelu_erf()
}

/// GeGLU of `xw` (2h wide, before its bias `b`): a * gelu(g) for the halves
/// [a | g] of xw + b.
pub fn geglu(xw: &Tensor, b: &Tensor) -> Result<Tensor> {
    oracle!(xw.device(), super::oracle::geglu(xw, b));
    let y = xw.broadcast_add(b)?;
    let h = b.elem_count() / 2;
    let a = y.narrow(1, 0, h)?;
    let g = y.narrow(1, h, h)?;
    a * g.gelu_erf()?
}

/// Layer norm of the last dimension with gain `w` and bias `b`, written
/// out from basic ops (candle's fused one has no gradient).
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    oracle!(x.device(), super::oracle::layer_norm(x, w, b));
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
    xn.broadcast_mul(w)?.broadcast_add(b)
}

/// Logistic sigmoid.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    oracle!(x.device(), super::oracle::sigmoid(x));
    candle_nn::ops::sigmoid(x)
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    oracle!(x.device(), super::oracle::softmax_last_dim(x));
    candle_nn::ops::softmax(x, D::Minus1)
}

/// Mean cross-entropy of (B, 256) logits against B target bytes.
pub fn cross_entropy(logits: &Tensor, targets: &[u8]) -> Result<Tensor> {
    oracle!(
        logits.device(),
        super::oracle::cross_entropy(logits, targets)
    );
    let tg: Vec<u32> = targets.iter().map(|&c| c as u32).collect();
    let tg = Tensor::from_vec(tg, targets.len(), logits.device())?;
    candle_nn::loss::cross_entropy(logits, &tg)
}

/// `out[b, :] = sum_r w[b, r] * s[b, r, :]`: the batched product of the
/// dense scores.
pub fn mix(w: &Tensor, s: &Arc<Scores>) -> Result<Tensor> {
    oracle!(w.device(), super::oracle::mix(w, s));
    let dense = Tensor::from_vec(s.dense(), (s.lanes(), s.rows, 256), w.device())?;
    w.unsqueeze(1)?.matmul(&dense)?.squeeze(1)
}
