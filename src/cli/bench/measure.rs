//! Running one codec as a child process: wall time, its own peak resident
//! memory and, where a GPU answers `nvidia-smi`, its peak GPU memory.
//!
//! A child's peak from `wait4` (`ru_maxrss`) is not its own: when exec
//! replaces the address space the child was forked with, the kernel keeps
//! that space's peak too, which is the bench's own. gzip's 2 MB then read
//! as the bench's 50. On Linux the child is therefore traced: it stops once
//! as it exits, with its memory still mapped, and its `VmHWM` (the peak
//! since exec) is read from /proc then. Where tracing is refused (a sandbox
//! without ptrace) the bench falls back to `wait4`'s figure.

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

/// Waits until child `pid` has exited, leaving it unreaped (a zombie), and
/// returns the largest peak resident memory, in bytes, of it and the
/// processes it started, if it was traced (see the module's comment): every
/// stop of the traced tree passes through here. The child leads its own
/// process group, which its descendants keep (the peers' shell wrappers do
/// not start jobs), so the GPU probe's own children are never waited for here.
fn wait_exit(pid: libc::pid_t) -> Option<u64> {
    let mut peak: Option<u64> = None;
    let mut known = vec![pid];
    let mut started = false;
    loop {
        // SAFETY: plain FFI calls on our own children and tracees; siginfo_t
        // is plain data.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WSTOPPED | libc::WNOWAIT | libc::__WALL;
        if unsafe { libc::waitid(libc::P_PGID, pid as libc::id_t, &mut info, flags) } != 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return peak; // wait4 reports the failure
        }
        let who = unsafe { info.si_pid() };
        let stopped = matches!(info.si_code, libc::CLD_TRAPPED | libc::CLD_STOPPED);
        if !stopped && who == pid {
            return peak; // the child exited: left for wait4
        }
        // A descendant's exit or anyone's stop: take it (waitpid's status
        // says which stop) and let the process go on.
        let mut status = 0;
        if unsafe { libc::waitpid(who, &mut status, libc::WUNTRACED | libc::__WALL) } != who {
            return peak;
        }
        if !stopped {
            continue;
        }
        let signal = libc::WSTOPSIG(status);
        let new = !known.contains(&who);
        let pass = match (signal, status >> 16) {
            // The child's stop after exec: from here on its tree stops at
            // every exit and is traced into the processes it starts.
            (libc::SIGTRAP, 0) if who == pid && !started => {
                started = true;
                trace::follow(pid);
                0
            }
            (libc::SIGTRAP, e) if e == trace::EXIT_EVENT => {
                peak = peak.max(trace::own_peak(who));
                0
            }
            (libc::SIGTRAP, e) if e != 0 => 0, // fork, vfork or exec
            // A process started by the tree stops once as tracing begins.
            (libc::SIGSTOP, 0) if new => {
                known.push(who);
                0
            }
            (signal, _) => signal, // a signal for the process: deliver it
        };
        trace::resume(who, pass);
    }
}

/// Tracing a child and the processes it starts to their exits, on Linux
/// (elsewhere, nothing: `wait4`'s figure it is).
mod trace {
    use std::process::Command;

    #[cfg(target_os = "linux")]
    pub const EXIT_EVENT: i32 = libc::PTRACE_EVENT_EXIT;
    #[cfg(not(target_os = "linux"))]
    pub const EXIT_EVENT: i32 = -1;

    /// Asks that the child started by `cmd` lead a process group of its own
    /// and be traced by this thread. A refusal of tracing (no ptrace in a
    /// sandbox) is not an error: the child then runs untraced.
    pub fn ask(cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        #[cfg(target_os = "linux")]
        // SAFETY: ptrace(PTRACE_TRACEME) is async-signal-safe and touches
        // nothing of the parent's.
        unsafe {
            cmd.pre_exec(|| {
                libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
                Ok(())
            });
        }
    }

    /// Makes the traced child stop once more as it exits, trace the
    /// processes it starts alike, and die with us.
    pub fn follow(pid: libc::pid_t) {
        #[cfg(target_os = "linux")]
        // SAFETY: a ptrace request on our own stopped tracee.
        unsafe {
            let options = libc::PTRACE_O_TRACEEXIT
                | libc::PTRACE_O_TRACEEXEC
                | libc::PTRACE_O_TRACEFORK
                | libc::PTRACE_O_TRACEVFORK
                | libc::PTRACE_O_EXITKILL;
            libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, options as libc::c_long);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = pid;
    }

    /// Lets a stopped tracee go on, delivering `signal` (0: none).
    pub fn resume(pid: libc::pid_t, signal: i32) {
        #[cfg(target_os = "linux")]
        // SAFETY: a ptrace request on our own stopped tracee.
        unsafe {
            libc::ptrace(libc::PTRACE_CONT, pid, 0, signal as libc::c_long);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (pid, signal);
    }

    /// The peak resident memory since exec of a process stopped at its
    /// exit: `VmHWM` in /proc/PID/status.
    pub fn own_peak(pid: libc::pid_t) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
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
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::piped());
    trace::ask(&mut cmd);
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot run {}", argv[0]))?;
    let pid = child.id() as libc::pid_t;
    // The tracer is this thread: the child is waited for here, never on the
    // GPU probe's thread.
    let timed = || {
        let own = wait_exit(pid);
        (start.elapsed().as_secs_f64(), own)
    };
    let ((secs, own_peak), gpu_mib) = match (gpu, baseline) {
        (Some(g), Some(b)) => {
            let (out, peak) = g.watch(b, timed);
            (out, Some(peak))
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
    let peak = own_peak.unwrap_or(usage.ru_maxrss as u64 * 1024);
    Ok((secs, peak, gpu_mib))
}
