//! fade: lossless compression with a small neural network trained online.
//!
//! The library has five layers, one module each, and no command-line concerns:
//! - [`coder`]: range coder and probability quantisation (pure integers);
//! - [`model`]: the FADE network in candle, with its fused optimizer;
//! - [`predictor`]: the network (and later its side models) behind one
//!   predict/learn seam that yields the coder's tables, with the fingerprint;
//! - [`format`]: the container (frames, blocks, checksums);
//! - [`engine`]: lanes ([`layout`]), the one step loop and coder threads,
//!   segment by segment.
//!
//! [`preset`] holds the configurations, [`rng`] the seeded initialiser, [`math`]
//! the machine-independent exp, and `simd` the run-time choice of AVX2 kernels.

pub mod coder;
pub mod engine;
pub mod error;
pub mod format;
pub mod layout;
pub mod math;
pub mod model;
pub mod predictor;
pub mod preset;
pub mod rng;
pub mod side;
pub mod simd;

pub use error::{Error, Result};
pub use preset::Preset;
