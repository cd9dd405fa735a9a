//! `fade bench`: fade against gzip, zstd, xz and zpaq on the same files.
//!
//! Every codec runs as a child process (fade runs its own executable), so wall
//! time and peak resident memory (from `wait4`) are measured the same way for
//! all of them, and every round trip is verified byte for byte. When fade may
//! use a GPU and `nvidia-smi` answers, fade's GPU memory is measured too: the
//! GPU's peak use while fade runs, less its use just before.

use super::args::Common;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One codec: how to compress and decompress stdin-free, file to stdout.
struct Codec {
    name: String,
    compress: Vec<String>,
    decompress: Vec<String>,
    /// fade itself, which may use the GPU.
    fade: bool,
}

/// One measured run.
#[derive(Debug, Serialize)]
pub struct Row {
    pub file: String,
    pub codec: String,
    pub bytes: u64,
    pub compressed: u64,
    pub ratio: f64,
    pub compress_kbps: f64,
    pub decompress_kbps: f64,
    pub peak_rss_mb: f64,
    /// Peak GPU memory of compressing or decompressing, MiB (fade rows, when
    /// measured).
    pub peak_gpu_mb: Option<f64>,
}

/// Reads one GPU's memory in use through `nvidia-smi`.
struct GpuProbe {
    index: String,
}

impl GpuProbe {
    /// A probe of the GPU that `--device` names, if fade may use one there and
    /// `nvidia-smi` answers.
    fn new(device: &str) -> Option<Self> {
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
fn measure(argv: &[String], out: &Path, gpu: Option<&GpuProbe>) -> Result<(f64, u64, Option<f64>)> {
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

fn available(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn codecs(
    presets: &[String],
    threads: Option<usize>,
    block_size: Option<u64>,
    device: &str,
    lanes: Option<u32>,
    memory_limit: Option<u64>,
    quiet: bool,
) -> Result<Vec<Codec>> {
    let exe = std::env::current_exe()?.display().to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut list = Vec::new();
    for p in presets {
        let mut c = vec![exe.clone(), "-q".into(), "--device".into(), device.into()];
        if let Some(t) = threads {
            c.extend(["-T".into(), t.to_string()]);
        }
        if let Some(b) = block_size {
            c.extend(["--block-size".into(), b.to_string()]);
        }
        if let Some(m) = memory_limit {
            c.extend(["--memory-limit".into(), m.to_string()]);
        }
        let mut d = c.clone();
        c.extend(s(&["compress", "-c", "-p", p]));
        d.extend(s(&["decompress", "-c"]));
        // Named by the preset itself, so "-p 3" and "-p default" read the same.
        let mut name = format!("fade {}", fade::Preset::load(p)?.name);
        if let Some(n) = lanes {
            c.extend(["--lanes".into(), n.to_string()]);
            name += &format!(" ({n} lanes)");
        }
        list.push(Codec {
            name,
            compress: c,
            decompress: d,
            fade: true,
        });
    }
    for (tool, name, level, extra) in [
        ("gzip", "gzip -9", "-9", &[][..]),
        ("zstd", "zstd -19", "-19", &["-q"][..]),
        ("xz", "xz -9e", "-9e", &["-T1"][..]),
    ] {
        if available(tool) {
            let mut c = s(&[tool, level, "-c"]);
            c.extend(s(extra));
            let mut d = s(&[tool, "-d", "-c"]);
            d.extend(s(extra));
            list.push(Codec {
                name: name.into(),
                compress: c,
                decompress: d,
                fade: false,
            });
        } else if !quiet {
            diag!("fade bench: {tool} not installed, skipped");
        }
    }
    // zpaq has no stdin/stdout mode: a shell wrapper archives a copy in a
    // temporary directory and prints the archive (or extracts and prints).
    if available("zpaq") {
        let wrap = |script: &str| s(&["sh", "-c", script, "sh"]);
        list.push(Codec {
            name: "zpaq -method 5".into(),
            compress: wrap(
                r#"d=$(mktemp -d) && cp "$1" "$d/f" && cd "$d" && zpaq a a.zpaq f -method 5 >/dev/null && cat a.zpaq; s=$?; rm -rf "$d"; exit $s"#,
            ),
            decompress: wrap(
                r#"d=$(mktemp -d) && cp "$1" "$d/a.zpaq" && cd "$d" && zpaq x a.zpaq >/dev/null && cat f; s=$?; rm -rf "$d"; exit $s"#,
            ),
            fade: false,
        });
    } else if !quiet {
        diag!("fade bench: zpaq not installed, skipped");
    }
    Ok(list)
}

/// Files named, with directories expanded one level (sorted).
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            v.sort();
            out.extend(v);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Runs the benchmark and prints the table. fade runs with the threads,
/// device and lanes of `c`.
pub fn run(
    paths: &[PathBuf],
    presets: &[String],
    prefix: Option<u64>,
    json: bool,
    c: &Common,
) -> Result<()> {
    let files = expand(paths)?;
    if files.is_empty() {
        bail!("no files to benchmark");
    }
    let quiet = c.quiet;
    let codecs = codecs(
        presets,
        c.threads,
        c.block_size,
        &c.device,
        c.lanes,
        c.memory_limit,
        quiet,
    )?;
    let gpu = GpuProbe::new(&c.device);
    let work = tempfile::tempdir()?;
    let mut rows = Vec::new();
    for f in &files {
        let mut data = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        if let Some(n) = prefix {
            data.truncate(n as usize);
        }
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let input = work.path().join("input");
        std::fs::write(&input, &data)?;
        for c in &codecs {
            let packed = work.path().join("packed");
            let back = work.path().join("back");
            let mut argv = c.compress.clone();
            argv.push(input.display().to_string());
            let probe = gpu.as_ref().filter(|_| c.fade);
            let (ct, cm, cg) = measure(&argv, &packed, probe)?;
            let mut argv = c.decompress.clone();
            argv.push(packed.display().to_string());
            let (dt, dm, dg) = measure(&argv, &back, probe)?;
            if std::fs::read(&back)? != data {
                bail!("{}: {} round trip differs", name, c.name);
            }
            let size = std::fs::metadata(&packed)?.len();
            let n = data.len() as u64;
            let row = Row {
                file: name.clone(),
                codec: c.name.clone(),
                bytes: n,
                compressed: size,
                ratio: n as f64 / size.max(1) as f64,
                compress_kbps: n as f64 / 1000.0 / ct,
                decompress_kbps: n as f64 / 1000.0 / dt,
                peak_rss_mb: cm.max(dm) as f64 / 1048576.0,
                peak_gpu_mb: max_opt(cg, dg),
            };
            if !quiet {
                diag!(
                    "{} {}: {} -> {} ({:.3})",
                    row.file,
                    row.codec,
                    n,
                    size,
                    row.ratio
                );
            }
            rows.push(row);
        }
    }
    // Totals per codec: sizes add up, speeds are total bytes over total time.
    let mut totals = Vec::new();
    for c in &codecs {
        let rs: Vec<&Row> = rows.iter().filter(|r| r.codec == c.name).collect();
        let bytes: u64 = rs.iter().map(|r| r.bytes).sum();
        let comp: u64 = rs.iter().map(|r| r.compressed).sum();
        let ct: f64 = rs
            .iter()
            .map(|r| r.bytes as f64 / 1000.0 / r.compress_kbps)
            .sum();
        let dt: f64 = rs
            .iter()
            .map(|r| r.bytes as f64 / 1000.0 / r.decompress_kbps)
            .sum();
        totals.push(Row {
            file: "TOTAL".into(),
            codec: c.name.clone(),
            bytes,
            compressed: comp,
            ratio: bytes as f64 / comp.max(1) as f64,
            compress_kbps: bytes as f64 / 1000.0 / ct,
            decompress_kbps: bytes as f64 / 1000.0 / dt,
            peak_rss_mb: rs.iter().map(|r| r.peak_rss_mb).fold(0.0, f64::max),
            peak_gpu_mb: rs.iter().map(|r| r.peak_gpu_mb).fold(None, max_opt),
        });
    }
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "rows": rows, "totals": totals }))?
        )?;
        return Ok(());
    }
    let gpu_col = rows.iter().any(|r| r.peak_gpu_mb.is_some());
    writeln!(
        out,
        "| file | codec | bytes | compressed | ratio | compress KB/s | decompress KB/s | peak RSS MB |{}",
        if gpu_col { " peak GPU MiB |" } else { "" }
    )?;
    writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|{}",
        if gpu_col { "---:|" } else { "" }
    )?;
    for r in rows.iter().chain(totals.iter()) {
        let gpu = match (gpu_col, r.peak_gpu_mb) {
            (false, _) => String::new(),
            (true, Some(m)) => format!(" {m:.0} |"),
            (true, None) => " |".into(),
        };
        writeln!(
            out,
            "| {} | {} | {} | {} | {:.3} | {:.1} | {:.1} | {:.1} |{}",
            r.file,
            r.codec,
            r.bytes,
            r.compressed,
            r.ratio,
            r.compress_kbps,
            r.decompress_kbps,
            r.peak_rss_mb,
            gpu
        )?;
    }
    Ok(())
}

/// The larger of two optional measurements.
fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Prints the cost model of `presets` (`fade::cost`): multiply-adds per byte
/// coded of every part of a step, forward and backward, then the optimizer,
/// the side models' lookups and the coder's exps; docs/PERFORMANCE.md sets
/// these against the machine's peak.
pub fn explain(presets: &[String]) -> Result<()> {
    use fade::Preset;
    let loaded: Vec<Preset> = presets
        .iter()
        .map(|n| Preset::load(n))
        .collect::<fade::Result<_>>()?;
    let costs: Vec<fade::cost::Cost> = loaded.iter().map(fade::cost::of).collect();
    let mut out = std::io::stdout().lock();
    let names: Vec<&str> = loaded.iter().map(|p| p.name.as_str()).collect();
    writeln!(out, "| per byte coded | {} |", names.join(" | "))?;
    writeln!(out, "|---|{}", "---:|".repeat(names.len()))?;
    let mut row = |name: &str, f: &dyn Fn(&fade::cost::Cost) -> f64| {
        let cells: Vec<String> = costs
            .iter()
            .map(|c| thousands(f(c).round() as u64))
            .collect();
        writeln!(out, "| {name} | {} |", cells.join(" | "))
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in costs.iter().flat_map(|c| &c.parts) {
        if !parts.contains(&p.name) {
            parts.push(p.name);
        }
    }
    for name in parts {
        row(&format!("{name}, multiply-adds"), &|c| {
            c.parts
                .iter()
                .find(|p| p.name == name)
                .map_or(0.0, |p| p.forward + p.backward)
        })?;
    }
    row("network, multiply-adds (forward + backward)", &|c| {
        c.network_madds()
    })?;
    row("optimizer, flops", &|c| c.optimizer_flops)?;
    row("total, flops", &|c| c.flops())?;
    row("parameters", &|c| c.params)?;
    row("side-table lookups", &|c| c.side_lookups)?;
    row("exps", &|c| c.exps)?;
    Ok(())
}

/// `n` with thousands separators.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
