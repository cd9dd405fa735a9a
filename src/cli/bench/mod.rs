//! `fade bench`: fade against the compressors installed beside it, on the
//! same files: does switching pay?
//!
//! Every codec runs as a child process (fade runs its own executable), so wall
//! time and its own peak resident memory ([`measure`]) are measured the same way for
//! all of them, and every round trip is verified byte for byte. When fade may
//! use a GPU and `nvidia-smi` answers, fade's GPU memory is measured too: the
//! GPU's peak use while fade runs, less its use just before.
//!
//! - [`peers`]: the codecs (fade at each preset, then every peer on PATH);
//! - [`measure`]: one child's time, memory and GPU memory;
//! - [`report`]: the table, the verdicts and the JSON;
//! - [`plot`]: `--plot FILE.svg`;
//! - [`sets`]: the named sets of `--set` (quick, 128k, backup).

mod measure;
mod peers;
mod plot;
mod report;
pub mod sets;

use super::args::Common;
use anyhow::{bail, Context, Result};
use measure::{measure, GpuProbe};
use report::{thousands, Row};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What to print: the table or JSON, and an optional picture.
pub struct Output<'a> {
    pub json: bool,
    pub plot: Option<&'a Path>,
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
    output: Output,
    c: &Common,
) -> Result<()> {
    let files = expand(paths)?;
    if files.is_empty() {
        bail!("no files to benchmark");
    }
    let quiet = c.quiet;
    let run = peers::FadeRun {
        threads: c.threads,
        block_size: c.block_size,
        device: &c.device,
        lanes: c.lanes,
        memory_limit: c.memory_limit,
    };
    let codecs = peers::codecs(presets, &run, |tool| {
        if !quiet {
            diag!("fade bench: {tool} not installed, skipped");
        }
    })?;
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
            let row = Row {
                file: name.clone(),
                codec: c.name.clone(),
                fade: c.fade,
                bytes: data.len() as u64,
                compressed: std::fs::metadata(&packed)?.len(),
                compress_s: ct,
                decompress_s: dt,
                peak_rss_mb: cm.max(dm) as f64 / 1048576.0,
                peak_gpu_mb: report::max_opt(cg, dg),
            };
            if !quiet {
                diag!(
                    "{} {}: {} -> {}",
                    row.file,
                    row.codec,
                    thousands(row.bytes),
                    thousands(row.compressed)
                );
            }
            rows.push(row);
        }
    }
    let order: Vec<(String, bool)> = codecs.iter().map(|c| (c.name.clone(), c.fade)).collect();
    let totals = report::totals(&rows, &order);
    if let Some(path) = output.plot {
        let title = match files.as_slice() {
            [one] => one
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string(),
            many => format!("{} files, {} bytes", many.len(), thousands(totals[0].bytes)),
        };
        plot::write(path, &totals, &title)?;
    }
    let mut out = std::io::stdout().lock();
    if output.json {
        let presets: Vec<serde_json::Value> = presets
            .iter()
            .map(|p| {
                let p = fade::Preset::load(p)?;
                Ok(serde_json::json!({
                    "name": p.name,
                    "description": p.description,
                    "lanes": c.lanes.unwrap_or(p.lanes),
                    "context": p.context,
                    "embed": p.embed,
                    "ffn": p.ffn,
                }))
            })
            .collect::<fade::Result<_>>()?;
        return report::json(&mut out, &rows, &totals, serde_json::Value::Array(presets));
    }
    report::markdown(&mut out, &rows, &totals)?;
    out.flush()?;
    Ok(())
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
    row("SSE stage, multiply-adds (at most)", &|c| c.sse_madds)?;
    row("total, flops", &|c| c.flops())?;
    row("parameters", &|c| c.params)?;
    row("side-table lookups", &|c| c.side_lookups)?;
    row("exps", &|c| c.exps)?;
    Ok(())
}
