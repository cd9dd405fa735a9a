//! Sigmoid, softmax and cross-entropy with fade's own exp and fixed orders.
//!
//! candle's versions call the C library's `expf`, whose last bit depends on
//! the CPU variant glibc picks, and candle reduces rows in a vector order that
//! differs between x86-64 and aarch64. Here every exp is [`crate::math::exp`]
//! and every sum runs over its row in index order.

use crate::math::exp;
use crate::par;
use crate::simd::wide_kernel;

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
    /// The softmax of every `n`-wide row of `x` into `y` (e = exp(x - max),
    /// y = e / (sum of e in index order)), the sums of eight rows advancing side by side (each in index order: the same
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
