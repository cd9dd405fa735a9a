//! Row-wise kernels on (rows, n) matrices with an (n) vector (bias add and
//! gain), the column sums their gradients need, and the skip scale.

use crate::par;
use crate::simd::wide_kernel;

/// `out[i][j] = f(x[i][j], v[j])` for the `v.len()`-wide rows of `x`.
pub(crate) fn rows_with(x: &[f32], v: &[f32], out: &mut [f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    let n = v.len();
    par::rows_mut(&mut out[..x.len()], n, n, |i, out| {
        for (xr, or) in x[i * n..].chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            for ((o, &a), &b) in or.iter_mut().zip(xr).zip(v) {
                *o = f(a, b);
            }
        }
    });
}

/// The column sums of `x`'s `out.len()`-wide rows, in row order from +0.
pub(crate) fn col_sum(x: &[f32], out: &mut [f32]) {
    let n = out.len();
    out.fill(0.0);
    let rows = x.len() / n.max(1);
    par::rows_mut(out, 1, rows, |j0, out| {
        for row in x[..rows * n].chunks_exact(n) {
            for (o, &v) in out.iter_mut().zip(&row[j0..]) {
                *o += v;
            }
        }
    });
}

/// The column sums of the elementwise product of `a` and `b` (rows
/// `out.len()` wide), in row order from +0.
pub(crate) fn col_sum_prod(a: &[f32], b: &[f32], out: &mut [f32]) {
    let n = out.len();
    out.fill(0.0);
    let rows = a.len() / n.max(1);
    par::rows_mut(out, 1, 2 * rows, |j0, out| {
        for (ra, rb) in a[..rows * n].chunks_exact(n).zip(b.chunks_exact(n)) {
            for ((o, &x), &y) in out.iter_mut().zip(&ra[j0..]).zip(&rb[j0..]) {
                *o += x * y;
            }
        }
    });
}

/// `y = x * s` elementwise.
pub(crate) fn scale_into(x: &[f32], s: f32, y: &mut [f32]) {
    par::rows_mut(&mut y[..x.len()], 1, 1, |i, y| {
        scale_kernel(&x[i..i + y.len()], s, y)
    });
}

/// The gradient of a skip scale `s` in `x * s` for the output gradient `g`
/// (of `width`-wide rows): the column sums of g * x, then their sum in index
/// order.
pub(crate) fn scale_grad(g: &[f32], x: &[f32], width: usize, cols: &mut Vec<f32>) -> f32 {
    // Only grown: rows of several widths share `cols`, and a Vec grown back
    // zero-fills the difference (col_sum_prod clears what it uses).
    if cols.len() < width {
        cols.resize(width, 0.0);
    }
    let cols = &mut cols[..width];
    col_sum_prod(g, x, cols);
    cols.iter().fold(0f32, |a, &v| a + v)
}

wide_kernel! {
    fn scale_kernel(x: &[f32], s: f32, y: &mut [f32]) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = v * s;
        }
    }
}
