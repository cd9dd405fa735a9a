//! The integration tests: one test binary, one module per subject (these were
//! twelve binaries, `tests/NAME.rs`, until issue 26; each is now
//! `tests/it/NAME.rs`). One binary links once and lets the test harness run
//! every case on every thread, so slow cases of one subject overlap with
//! those of another instead of waiting for their binary's turn.
//!
//! `api` and `properties` use the library alone and also run without the
//! `cli` feature (`cargo test --no-default-features`); the other modules run
//! the real `fade` binary, which only that feature builds.

mod api;
mod properties;

#[cfg(feature = "cli")]
mod bench;
#[cfg(feature = "cli")]
mod cli;
#[cfg(feature = "cli")]
mod common;
#[cfg(feature = "cli")]
mod device;
#[cfg(feature = "cli")]
mod errors;
#[cfg(feature = "cli")]
mod habits;
#[cfg(feature = "cli")]
mod parallel;
#[cfg(feature = "cli")]
mod portability;
#[cfg(feature = "cli")]
mod readme;
#[cfg(feature = "cli")]
mod reliability;
#[cfg(feature = "cli")]
mod roundtrip;
#[cfg(feature = "cli")]
mod terminal;
