//! The step's kernels on plain slices, each in a fixed order so that every
//! machine computes the same bits (docs/FORMAT.md specifies each one).
//!
//! The written-out CPU step ([`super::host`]) calls these directly; the
//! tests' candle graph on the CPU wraps them as custom ops
//! (`graph::oracle`). Our own erf and exp, so the numbers do not depend on
//! the C library's variant, and one pass forward and one backward per layer.
//!
//! - [`gelu`]: GELU and GeGLU, with our own erf.
//! - [`norm`]: layer norm.
//! - [`rows`]: bias add and gain along rows, and column sums.
//! - [`matmul`]: matrix products in the canonical order, and transposes.
//! - [`mix`]: the side models' weighted score rows.
//! - [`prob`]: sigmoid, softmax and cross-entropy with our own exp.

mod gelu;
pub mod matmul;
mod mix;
mod norm;
mod prob;
mod rows;

pub(crate) use gelu::{geglu_grad, geglu_into, gelu_grad_kept, gelu_into_keep};
pub(crate) use matmul::transpose_into;
pub(crate) use mix::{mix_grad, mix_into};
pub(crate) use norm::{layer_norm, layer_norm_grad};
pub(crate) use prob::{cross_entropy_grad, sigmoid_grad, sigmoid_into, softmax_grad, softmax_into};
pub(crate) use rows::{col_sum, rows_with, scale_grad, scale_into};

// Kernels only the tests' graph wraps (`graph::oracle`).
#[cfg(test)]
pub(crate) use gelu::{gelu_grad, gelu_into};
#[cfg(test)]
pub(crate) use matmul::gemm_into;
#[cfg(test)]
pub(crate) use norm::{normalize, normalize_grad};
#[cfg(test)]
pub(crate) use rows::col_sum_prod;
