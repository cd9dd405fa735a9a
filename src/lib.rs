//! fade: lossless compression with a small neural network trained online.
//!
//! The model starts from a seeded random initialisation, predicts every byte,
//! a range coder codes the byte with that prediction, and the model takes one
//! optimizer step on it; the decompressor repeats the same computation. It is
//! slow (tens of KB/s on one CPU core) and compresses text and similar data
//! markedly better than zstd or xz.
//!
//! The API follows zstd's and flate2's: a streaming [`Encoder`] (a
//! [`Write`](std::io::Write)) and [`Decoder`] (a [`Read`](std::io::Read)),
//! and one-call [`compress`] and [`decompress`].
//!
//! ```
//! let data = b"It was the best of times, it was the worst of times. ".repeat(8);
//! let packed = fade::compress(&data, 1)?;
//! assert_eq!(fade::decompress(&packed)?, data);
//! # Ok::<(), fade::Error>(())
//! ```
//!
//! Streaming, in bounded memory whatever the input's length:
//!
//! ```no_run
//! use std::fs::File;
//! use std::io::{self, BufWriter};
//!
//! let mut enc = fade::Encoder::new(BufWriter::new(File::create("log.fade")?), 3)?;
//! io::copy(&mut File::open("log")?, &mut enc)?;
//! enc.finish()?;
//!
//! let mut dec = fade::Decoder::new(File::open("log.fade")?);
//! io::copy(&mut dec, &mut io::stdout())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Many cores, and the frames of a file
//!
//! What the `fade` command does with several threads is library calls too:
//! [`compress_parallel`] codes the input in independent blocks on several
//! workers (`fade -T`), [`frames`] lists the frames of a seekable file from
//! their framing alone (`fade -l`), and [`decompress_frames`] decodes them on
//! several threads. [`scan`] summarises any stream without decoding it.
//!
//! ```
//! use fade::{Device, Limits, Parallel, Preset};
//! let data = b"one block, then another, then a third. ".repeat(200);
//! let fast = Preset::load("fast")?;
//! let par = Parallel::new(2, Some(4096));
//! let packed = fade::compress_parallel(&data[..], Vec::new(), &fast, Device::Cpu,
//!     &Limits::default(), Some(data.len() as u64), par, &mut |_| {})?;
//! let frames = fade::frames(&mut std::io::Cursor::new(&packed))?;
//! assert_eq!(frames.len(), 2);
//! assert_eq!(frames.iter().map(|f| f.content).sum::<u64>(), data.len() as u64);
//! assert_eq!(fade::decompress(&packed)?, data);
//! # Ok::<(), fade::Error>(())
//! ```
//!
//! # Levels and presets
//!
//! Levels 1 to 5 are the built-in presets `fast`, `medium`, `default`,
//! `strong` and `paper` (the `fade` command's `-1` .. `-5`, default 3). A
//! [`Preset`] holds every model and coding parameter;
//! [`Encoder::with_preset`] takes any, loaded by name or level
//! ([`Preset::load`]) or parsed from TOML ([`Preset::parse`]). Every parameter
//! is written into the frame, so decoding needs no settings.
//!
//! # Devices
//!
//! The model runs on the CPU by default ([`Device::Cpu`]), and a file written
//! on any CPU decodes on any other. With the `cuda` cargo feature,
//! [`Device::Cuda`] runs it on a GPU; files written there decode only on a
//! GPU that computes the same, and a decoder on another device refuses them
//! before any work ([`Error::Device`]).
//!
//! # Errors and limits
//!
//! Every way a stream can be rejected has its own [`Error`] variant with a
//! stable message ("not a fade file", "unexpected end of input", "checksum
//! mismatch", ...). The [`Read`](std::io::Read) and
//! [`Write`](std::io::Write) implementations return [`std::io::Error`]s that
//! carry the [`Error`]; `fade::Error::from(io_error)` gets it back. A frame's
//! memory needs are computed from its header and checked against [`Limits`]
//! (4 GiB by default) before anything is allocated.
//!
//! # Cargo features
//!
//! - `cli` (default): the `fade` command and its dependencies (clap,
//!   indicatif, mimalloc, serde_json, ...). A library user turns it
//!   off: `fade = { version = "0.1", default-features = false }`.
//! - `cuda`: candle's CUDA backend and [`Device::Cuda`]. Building needs the
//!   CUDA toolkit, and the result needs an NVIDIA driver to start.
//!
//! # Internals
//!
//! `fade::__internals` (hidden from these docs) exposes the range coder, the
//! network, the seeded generator, the container writers and the engine's
//! callback-driven functions to fade's own benchmarks, fuzz targets and
//! tests; the `fade` command uses only the public API. It is not part of the
//! API and changes without notice.
//!
//! Inside, the library has five layers, one module each: the range coder,
//! the network (candle with fade's own CPU kernels), the predictor (network
//! and side models behind one predict/learn seam, with the arithmetic
//! fingerprint), the container format, and the engine (lanes, the one step
//! loop and its coder, segment by segment, frame by frame).

mod coder;
pub mod cost;
mod decoder;
mod device;
mod encoder;
mod engine;
mod error;
mod filter;
mod format;
mod layout;
mod math;
mod model;
mod par;
mod parallel;
mod plan;
mod predictor;
mod preset;
mod rng;
mod side;
mod simd;

pub use decoder::{decompress, scan, Decoder, StreamInfo};
pub use device::Device;
pub use encoder::{compress, Encoder};
pub use engine::{Limits, DEFAULT_MEMORY_LIMIT};
pub use error::{Error, Result};
pub use format::MAGIC;
pub use parallel::{
    compress_parallel, decode_workers, decompress_frames, frames, FrameInfo, Parallel,
    DEFAULT_BLOCK_SIZE,
};
pub use plan::MAX_KERNEL_THREADS;
pub use preset::{GlobalRead, Preset};

/// Not part of fade's API: what fade's own benchmarks (`benches/`), fuzz
/// targets (`fuzz/`) and tests reach inside for. It changes without notice.
#[doc(hidden)]
pub mod __internals {
    /// The range coder and probability quantisation.
    pub mod coder {
        pub use crate::coder::{cdf_from_floors, quantize, Cdf, Decoder, Encoder, Precision};
    }

    /// The network and its matrix-product kernel.
    pub mod model {
        pub use crate::model::{gemm, Model, View};
    }

    /// The seeded generator.
    pub mod rng {
        pub use crate::rng::SplitMix64;
    }

    /// The container: frame headers and block writers.
    pub mod format {
        pub use crate::format::{write_end, write_stored_block, DeviceClass, FrameHeader, VERSION};
    }

    /// The engine's functions, on candle's devices, with progress callbacks.
    pub mod engine {
        pub use crate::engine::{
            blocks, compress_reader, compress_reader_with, compress_slice, decompress,
            decompress_with, fingerprint, frames, scan, FrameSpan, Summary,
        };
    }

    /// `preset`'s parameters as a frame header stores them.
    pub fn preset_bytes(p: &crate::Preset) -> Vec<u8> {
        let mut v = Vec::new();
        p.write_to(&mut v);
        v
    }

    /// A preset read back from [`preset_bytes`], validated as a decoder does.
    pub fn preset_from_bytes(bytes: &mut &[u8]) -> crate::Result<crate::Preset> {
        crate::Preset::read_from(bytes)
    }
}
