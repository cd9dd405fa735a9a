//! One frame's plan: every decision that depends on the frame's format
//! version, the device the model runs on and the threads it may use, made
//! once when the frame starts (written or read) and read by everything below.
//!
//! What a format version means (its tables' precision, how a block holds its
//! lanes) is the format's: [`crate::format::version_traits`]. What the device
//! and the threads mean is decided here: where probabilities become tables,
//! which implementation runs the step, how many threads share its kernels,
//! and whether the side models get a thread of their own. A new version is
//! one arm there; a new device or thread policy is a change here.

use crate::coder::Precision;
use crate::format::{version_traits, DeviceClass};
use crate::preset::Preset;
use candle_core::Device;

/// Most threads one model's kernels are split over. A step's products are
/// small (256 lanes by a few hundred features); two threads took a 1 MiB
/// default-preset compression from 65.9 s to 51.4 s on a 2-core machine,
/// and wider splits are untested, so they stop at 4.
pub const MAX_KERNEL_THREADS: usize = 4;

/// Lanes x features of the smallest step whose kernels are split over
/// threads. Measured with `fade bench` on the 128 KiB set (2 cores, same
/// build, `-T 1` against two threads): the fast preset (64 lanes x 64
/// features there) was 3% slower on two threads, the default (x 128) 2% /
/// 10% faster, strong (x 256) 18% / 23% faster.
pub const MIN_SPLIT_STEP: usize = 8192;

/// Where a step's probabilities become integer tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantiser {
    /// The coder quantises the logits ([`crate::coder::quantize`]):
    /// bit-exact on any CPU, the format of files made on the CPU.
    Host,
    /// The model's device computes the floors and the coder threads only add
    /// them up ([`crate::coder::cdf_from_floors`]). Used with a GPU model.
    Device,
}

/// The decisions of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The frame's format version.
    pub version: u8,
    /// The precision of its tables (its version's).
    pub precision: Precision,
    /// Whether a model-coded block holds all lanes in one range-coder stream
    /// (else one stream per lane; its version's).
    pub shared_stream: bool,
    /// The class of device the model runs on, as the header records it.
    pub device: DeviceClass,
    /// Where probabilities become tables.
    pub quantiser: Quantiser,
    /// Whether the model runs fade's written-out CPU step (`model::host`);
    /// otherwise candle's graph of composed ops (a GPU).
    pub host_step: bool,
    /// Threads the model's kernels (and a decoder's tables) are split over.
    pub kernel_threads: usize,
    /// Whether the side models run on a thread of their own.
    pub side_thread: bool,
}

impl Plan {
    /// The plan for coding with `p` at format `version` on `dev`, with up to
    /// `threads` threads for this one model (the caller's share: see
    /// [`kernel_threads`]). The output never depends on `threads`.
    pub fn new(p: &Preset, version: u8, dev: &Device, threads: usize) -> Self {
        let traits = version_traits(version);
        let cpu = dev.is_cpu();
        let threads = threads.clamp(1, MAX_KERNEL_THREADS);
        // A small step stays on one thread: its kernels are too short to share.
        let split = cpu && p.lanes as usize * p.features() >= MIN_SPLIT_STEP;
        Self {
            version,
            precision: traits.precision,
            shared_stream: traits.shared_stream,
            device: if cpu {
                DeviceClass::Cpu
            } else {
                DeviceClass::Cuda
            },
            quantiser: if cpu {
                Quantiser::Host
            } else {
                Quantiser::Device
            },
            // The CPU's written-out step; tests can ask for the GPU's code
            // paths on the CPU (`model::gpu_paths_on_this_thread`).
            host_step: crate::model::host_step_on(dev),
            kernel_threads: if split { threads } else { 1 },
            side_thread: threads > 1,
        }
    }
}

/// The thread policy: 0 means every core the process may use.
pub fn resolve_threads(n: usize) -> usize {
    if n > 0 {
        return n;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Threads for each model's kernels when `threads` threads are shared by
/// `models` models running at once: the threads left over once every model
/// has one (capped at [`MAX_KERNEL_THREADS`] by [`Plan::new`]).
pub fn kernel_threads(threads: usize, models: usize) -> usize {
    (threads / models.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_devices_and_threads_decide_once() {
        let p = Preset::load("default").unwrap();
        let v3 = Plan::new(&p, 3, &Device::Cpu, 2);
        assert_eq!(
            (v3.precision, v3.shared_stream, v3.quantiser, v3.host_step),
            (Precision::V3, true, Quantiser::Host, true)
        );
        assert_eq!((v3.kernel_threads, v3.side_thread), (2, true));
        let v2 = Plan::new(&p, 2, &Device::Cpu, 1);
        assert_eq!((v2.precision, v2.shared_stream), (Precision::V2, false));
        assert_eq!((v2.kernel_threads, v2.side_thread), (1, false));
        // Too small a step to split; too many threads are capped.
        let small = p.fitted(1000);
        assert_eq!(Plan::new(&small, 3, &Device::Cpu, 4).kernel_threads, 1);
        assert_eq!(
            Plan::new(&p, 3, &Device::Cpu, 64).kernel_threads,
            MAX_KERNEL_THREADS
        );
        assert_eq!(kernel_threads(5, 2), 2);
        assert_eq!(kernel_threads(1, 4), 1);
        assert!(resolve_threads(0) >= 1);
    }
}
