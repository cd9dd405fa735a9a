//! The side models' share of the logits: per lane, the sum of its score rows
//! weighted by the weights the network computed.
//!
//! `out[b, c] = sum over r of w[b, r] * s[b, r, c]` is the batched product
//! (B, 1, R) x (B, R, 256), and these kernels compute exactly the canonical
//! product's bits ([`super::matmul`]: one FMA chain per output, over r in
//! increasing order, from +0), forward and for dw (a chain over c). The
//! scores are sparse ([`Scores`]): the kernels walk only the non-zero ones, in
//! ascending (row, byte) order, which keeps every chain's order. A skipped
//! term is `fma(w, +0, acc)` = `acc + (±0)`, which is `acc` itself: a chain
//! from +0 is never -0 (an exact zero sum rounds to +0), so dropping the
//! zero terms changes no bit for finite weights. It is its own kernel because the
//! general product would also compute the scores' gradient (which nothing
//! needs) from B x R x 256 dense values.

use crate::par;
use crate::side::Scores;
use crate::simd::wide_kernel;

wide_kernel! {
    /// Logits of one lane: `out[c] = fma(w[r], s, out[c])` over its entries
    /// (compiled with the FMA instruction where the CPU has one; elsewhere
    /// `mul_add` calls the C library's exact `fmaf`).
    fn mix_fwd(w: &[f32], entries: &[(u32, f32)], out: &mut [f32]) {
        out.fill(0.0);
        for &(i, s) in entries {
            let (r, c) = (i as usize / 256, i as usize % 256);
            out[c] = w[r].mul_add(s, out[c]);
        }
    }
}

wide_kernel! {
    /// dw of one lane: `dw[r] = fma(dout[c], s, dw[r])` over its entries.
    fn mix_bwd(dout: &[f32], entries: &[(u32, f32)], dw: &mut [f32]) {
        dw.fill(0.0);
        for &(i, s) in entries {
            let (r, c) = (i as usize / 256, i as usize % 256);
            dw[r] = dout[c].mul_add(s, dw[r]);
        }
    }
}

/// `out` (B x 256) = the score rows of every lane weighted by `w` (B x R).
pub(crate) fn mix_into(w: &[f32], scores: &Scores, out: &mut [f32]) {
    let (b, r) = (scores.lanes(), scores.rows);
    let per_lane = scores.entries.len() / b.max(1) + 256;
    par::rows_mut(&mut out[..b * 256], 256, per_lane, |i0, out| {
        for (i, o) in (i0..).zip(out.chunks_exact_mut(256)) {
            mix_fwd(&w[i * r..(i + 1) * r], scores.lane(i), o);
        }
    });
}

/// `dw` (B x R) of [`mix_into`] for the output gradient `dout` (B x 256).
pub(crate) fn mix_grad(dout: &[f32], scores: &Scores, dw: &mut [f32]) {
    let (b, r) = (scores.lanes(), scores.rows);
    let per_lane = scores.entries.len() / b.max(1) + r;
    par::rows_mut(&mut dw[..b * r], r, per_lane, |i0, dw| {
        for (i, d) in (i0..).zip(dw.chunks_exact_mut(r)) {
            mix_bwd(&dout[i * 256..(i + 1) * 256], scores.lane(i), d);
        }
    });
}
