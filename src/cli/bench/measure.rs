//! Running one codec as a child process: wall time, peak resident memory
//! (from `wait4`) and, where a GPU answers `nvidia-smi`, its peak memory.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Reads one GPU's memory in use through `nvidia-smi`.
pub struct GpuProbe {
    index: String,
}

impl GpuProbe {
    /// A probe of the GPU that `--device` names, if fade may use one there and
    /// `nvidia-smi` answers.
    pub fn new(device: &str) -> Option<Self> {
        let index = match device {
            "cpu" => return None,
            "auto" | "cuda" => "0",
            d => d.strip_prefix("cuda:")?,
        };
        let probe = Self {
            index: index.to_string(),
        };
        probe.used_mib().map(|_| probe)
    }

    /// Memory in use on the GPU now, MiB.
    fn used_mib(&self) -> Option<f64> {
        let out = Command::new("nvidia-smi")
            .args(["--query-gpu=memory.used", "--format=csv,noheader,nounits"])
            .args(["-i", &self.index])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        out.status.success().then_some(())?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Samples the GPU every 200 ms while `run` waits for a child to exit, and
    /// returns `run`'s result with the peak use above `baseline`. It returns
    /// only after one sample is complete, so a child that exits at once is
    /// still seen: `run` must leave it unreaped until then.
    fn watch<T>(&self, baseline: f64, run: impl FnOnce() -> T) -> (T, f64) {
        let stop = AtomicBool::new(false);
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        std::thread::scope(|s| {
            let sampler = s.spawn(|| {
                let mut peak = baseline;
                loop {
                    peak = self.used_mib().map_or(peak, |m| peak.max(m));
                    let _ = ready_tx.try_send(());
                    if stop.load(Ordering::Relaxed) {
                        return peak;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
            let out = run();
            let _ = ready_rx.recv();
            stop.store(true, Ordering::Relaxed);
            let peak = sampler.join().unwrap_or(baseline);
            (out, (peak - baseline).max(0.0))
        })
    }
}

/// Waits until child `pid` has exited, leaving it unreaped (a zombie).
fn wait_exit(pid: libc::pid_t) {
    // SAFETY: plain FFI call on our own child; siginfo_t is plain data.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOWAIT;
    while unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) } != 0 {
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break; // wait4 below reports the failure
        }
    }
}

/// Runs `argv` with stdout to `out`; returns (seconds, peak RSS in bytes, peak
/// GPU MiB above what was in use before, when `gpu` is given).
pub fn measure(
    argv: &[String],
    out: &Path,
    gpu: Option<&GpuProbe>,
) -> Result<(f64, u64, Option<f64>)> {
    let file = std::fs::File::create(out)?;
    let baseline = gpu.and_then(GpuProbe::used_mib);
    let start = Instant::now();
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", argv[0]))?;
    let pid = child.id() as libc::pid_t;
    let timed = || {
        wait_exit(pid);
        start.elapsed().as_secs_f64()
    };
    let (secs, gpu_mib) = match (gpu, baseline) {
        (Some(g), Some(b)) => {
            let (secs, peak) = g.watch(b, timed);
            (secs, Some(peak))
        }
        _ => (timed(), None),
    };
    let mut status = 0;
    // SAFETY: plain FFI call on our own child; rusage is plain data.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        bail!("wait4 failed for {}", argv[0]);
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        let mut err = String::new();
        if let Some(mut e) = child.stderr {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        bail!("{} failed: {}", argv.join(" "), err.trim());
    }
    Ok((secs, usage.ru_maxrss as u64 * 1024, gpu_mib))
}
