//! Layer norm with gain and bias, and (for tests) the plain normalisation
//! the model used before it.

use crate::par;
use crate::simd::wide_kernel;

fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// (x - mean) / sqrt(var + eps) of each `d`-wide row of `x` into `y` (no
/// affine part): what the model used before [`layer_norm`], kept as the
/// tests' reference.
#[cfg(test)]
pub(crate) fn normalize(x: &[f32], d: usize, eps: f32, y: &mut [f32]) {
    for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        let (mean, inv) = row_stats(xr, eps);
        for (o, &v) in yr.iter_mut().zip(xr) {
            *o = (v - mean) * inv;
        }
    }
}

/// The backward pass of [`normalize`]: `dx` holds the output gradient and
/// becomes the input's.
#[cfg(test)]
pub(crate) fn normalize_grad(x: &[f32], d: usize, eps: f32, dx: &mut [f32]) {
    for (xr, dr) in x.chunks_exact(d).zip(dx.chunks_exact_mut(d)) {
        normalize_bwd_row(xr, row_stats(xr, eps), dr);
    }
}

/// Rows whose sums advance side by side.
const GROUP: usize = 8;

/// [`row_stats`] of the `d`-wide rows of `x`, one per element of `out`. The
/// sums of eight rows advance side by side, each in its own index order (the
/// same bits): one row's chain of dependent adds waited on the add latency
/// at every element.
fn rows_stats(x: &[f32], d: usize, eps: f32, out: &mut [(f32, f32)]) {
    let n = d as f32;
    let done = out.len() / GROUP * GROUP;
    let mut chunks = out.chunks_exact_mut(GROUP);
    for (k, o) in (&mut chunks).enumerate() {
        let rows: [&[f32]; GROUP] = std::array::from_fn(|r| &x[(k * GROUP + r) * d..][..d]);
        // `Sum` for f32 folds from -0.0.
        let mut s = [-0.0f32; GROUP];
        for j in 0..d {
            for (s, row) in s.iter_mut().zip(&rows) {
                *s += row[j];
            }
        }
        let mean = s.map(|v| v / n);
        let mut q = [-0.0f32; GROUP];
        for j in 0..d {
            for ((q, row), &m) in q.iter_mut().zip(&rows).zip(&mean) {
                *q += (row[j] - m) * (row[j] - m);
            }
        }
        for ((o, &m), &q) in o.iter_mut().zip(&mean).zip(&q) {
            *o = (m, 1.0 / (q / n + eps).sqrt());
        }
    }
    for (i, o) in (done..).zip(chunks.into_remainder()) {
        *o = row_stats(&x[i * d..(i + 1) * d], eps);
    }
}

wide_kernel! {
    /// Layer norm of the rows of `x` (as many as `stats` holds) into `y`.
    fn layer_norm_rows(
        x: &[f32],
        w: &[f32],
        b: &[f32],
        eps: f32,
        y: &mut [f32],
        stats: &mut [(f32, f32)],
    ) {
        let d = w.len();
        rows_stats(x, d, eps, stats);
        for ((xr, yr), &(mean, inv)) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)).zip(&*stats) {
            for (((o, &v), &wv), &bv) in yr.iter_mut().zip(xr).zip(w).zip(b) {
                *o = (v - mean) * inv * wv + bv;
            }
        }
    }
}

/// Layer norm of each `w.len()`-wide row of `x` into `y`: xhat * w + b.
pub(crate) fn layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32, y: &mut [f32]) {
    let d = w.len();
    par::rows_mut(&mut y[..x.len()], d, 8 * d, |i, y| {
        let rows = y.len() / d;
        let mut stats = vec![(0f32, 0f32); rows];
        layer_norm_rows(&x[i * d..(i + rows) * d], w, b, eps, y, &mut stats);
    });
}

/// The backward pass of [`layer_norm`] for the output gradient `g`: `dx`
/// (rows x d) and `dw` (d), both overwritten. Each row's statistics are
/// computed once; the operations are those of the graph Normalize, RowScale,
/// AddBias ran, so the bits are the same.
pub(crate) fn layer_norm_grad(
    x: &[f32],
    w: &[f32],
    g: &[f32],
    eps: f32,
    dx: &mut [f32],
    dw: &mut [f32],
) {
    let d = w.len();
    let rows = x.len() / d;
    let (dx, dw) = (&mut dx[..x.len()], &mut dw[..d]);
    dw.fill(0.0);
    let mut stats = vec![(0f32, 0f32); rows];
    // dx row by row (each row's statistics kept for dw) ...
    let dxp = par::SharedMut(dx.as_mut_ptr());
    par::rows_mut(&mut stats, 1, 12 * d, |i0, st| {
        let rows = st.len();
        let (x, g) = (&x[i0 * d..(i0 + rows) * d], &g[i0 * d..(i0 + rows) * d]);
        // SAFETY: rows i0.. of dx (inside `dx`, rows x d) belong to this
        // range of rows only.
        let dx = unsafe { dxp.slice(i0 * d, rows * d) };
        layer_norm_grad_rows(x, w, g, eps, st, dx);
    });
    // ... then dw column by column, each a sum over the rows in order.
    par::rows_mut(dw, 1, 2 * rows, |j0, dw| {
        for (i, &(mean, inv)) in stats.iter().enumerate() {
            let (gr, xr) = (&g[i * d + j0..], &x[i * d + j0..]);
            for ((o, &gv), &v) in dw.iter_mut().zip(gr).zip(xr) {
                *o += gv * ((v - mean) * inv);
            }
        }
    });
}

wide_kernel! {
    /// dx of [`layer_norm_grad`] for the rows of `x` (as many as `stats`
    /// holds), their statistics into `stats`. dx first holds the gradient
    /// reaching xhat; each row then becomes its dx in place (every element
    /// is read before it is written).
    fn layer_norm_grad_rows(
        x: &[f32],
        w: &[f32],
        g: &[f32],
        eps: f32,
        stats: &mut [(f32, f32)],
        dx: &mut [f32],
    ) {
        let d = w.len();
        rows_stats(x, d, eps, stats);
        // The gradient reaching xhat, as candle's graph accumulated it onto
        // zeros (`+ 0.0` turns -0 into +0).
        for (gxr, gr) in dx.chunks_exact_mut(d).zip(g.chunks_exact(d)) {
            for ((o, &gv), &wv) in gxr.iter_mut().zip(gr).zip(w) {
                *o = gv * wv + 0.0;
            }
        }
        let n = d as f32;
        let rows = stats.len();
        let mut k = 0;
        while k + GROUP <= rows {
            // The two sums of eight rows side by side, each in index order.
            let (mut sg, mut sgx) = ([0f32; GROUP], [0f32; GROUP]);
            for j in 0..d {
                for r in 0..GROUP {
                    let (mean, inv) = stats[k + r];
                    let (v, gv) = (x[(k + r) * d + j], dx[(k + r) * d + j]);
                    sg[r] += gv;
                    sgx[r] += gv * (v - mean) * inv;
                }
            }
            for r in 0..GROUP {
                let i = k + r;
                let (mean, inv) = stats[i];
                let (mg, mgx) = (sg[r] / n, sgx[r] / n);
                let xr = &x[i * d..(i + 1) * d];
                for (o, &v) in dx[i * d..(i + 1) * d].iter_mut().zip(xr) {
                    let gv = *o;
                    *o = inv * (gv - mg - (v - mean) * inv * mgx);
                }
            }
            k += GROUP;
        }
        for i in k..rows {
            let xr = &x[i * d..(i + 1) * d];
            normalize_bwd_row(xr, stats[i], &mut dx[i * d..(i + 1) * d]);
        }
    }
}

/// One row of dx = inv * (g - mean(g) - xhat * mean(g * xhat)), in place:
/// `dr` holds g.
fn normalize_bwd_row(xr: &[f32], (mean, inv): (f32, f32), dr: &mut [f32]) {
    let n = xr.len() as f32;
    let mut sg = 0f32;
    let mut sgx = 0f32;
    for (&v, &gv) in xr.iter().zip(dr.iter()) {
        sg += gv;
        sgx += gv * (v - mean) * inv;
    }
    let (mg, mgx) = (sg / n, sgx / n);
    for (o, &v) in dr.iter_mut().zip(xr) {
        let gv = *o;
        *o = inv * (gv - mg - (v - mean) * inv * mgx);
    }
}
