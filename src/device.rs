//! Where the model runs: fade's own [`Device`], turned into candle's inside.

use crate::error::{Error, Result};
use std::fmt;

/// Where the model runs.
///
/// The device is part of a file's identity: a frame records the class of
/// device that wrote it and a fingerprint of its arithmetic, and decoding on a
/// device that computes differently is refused before any work
/// ([`Error::Device`]). Files written on the CPU decode on every CPU, so
/// [`Device::Cpu`] is the default everywhere in the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Device {
    /// The CPU: the same bits on every x86-64 and aarch64 machine.
    #[default]
    Cpu,
    /// The CUDA GPU with this ordinal. Needs a build with the `cuda` feature;
    /// files written on it decode only on a GPU that computes the same.
    Cuda(usize),
}

impl Device {
    /// CUDA device 0 when this build has CUDA support and the GPU opens,
    /// otherwise the CPU.
    pub fn auto() -> Self {
        if cfg!(feature = "cuda") && Device::Cuda(0).check().is_ok() {
            Device::Cuda(0)
        } else {
            Device::Cpu
        }
    }

    /// Opens the device once, to report early that it cannot be used
    /// ([`Error::DeviceUnavailable`]): a CPU-only build asked for CUDA, or a
    /// GPU that does not open. The CPU is always available.
    pub fn check(&self) -> Result<()> {
        self.open().map(drop)
    }

    /// candle's device for this one.
    pub(crate) fn open(&self) -> Result<candle_core::Device> {
        match *self {
            Device::Cpu => Ok(candle_core::Device::Cpu),
            Device::Cuda(_) if !cfg!(feature = "cuda") => Err(Error::DeviceUnavailable(
                "this fade was built without CUDA support (rebuild with --features cuda)".into(),
            )),
            Device::Cuda(n) => candle_core::Device::new_cuda(n)
                .map_err(|e| Error::DeviceUnavailable(format!("cannot open CUDA device {n}: {e}"))),
        }
    }
}

/// `cpu`, or `cuda:N`: the spelling of fade's `--device`.
impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_the_default_and_always_opens() {
        assert_eq!(Device::default(), Device::Cpu);
        assert!(Device::Cpu.check().is_ok());
        assert_eq!(Device::Cuda(1).to_string(), "cuda:1");
    }

    #[test]
    fn cuda_on_a_cpu_build_is_unavailable() {
        if cfg!(feature = "cuda") {
            return;
        }
        let e = Device::Cuda(0).check().unwrap_err();
        assert!(matches!(e, Error::DeviceUnavailable(_)), "{e:?}");
        assert!(e.to_string().contains("built without CUDA support"), "{e}");
        assert_eq!(Device::auto(), Device::Cpu);
    }
}
