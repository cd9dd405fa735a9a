//! Command-line front end.

mod args;
mod output;

use anyhow::{Context, Result};
use args::{Cli, CodeArgs, Command};
use candle_core::Device;
use clap::Parser;
use fade::engine;
use fade::Preset;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use output::AtomicOutput;
use std::fs::File;
use std::io::IsTerminal;

/// Parses the command line and runs it.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        // candle's CPU kernels size their thread pool from this variable; it is read
        // lazily, so setting it before any model work is enough. Results do not
        // depend on it (tested).
        std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
    }
    match &cli.command {
        Command::Compress(a) => compress(a, cli.quiet),
        Command::Decompress(a) => decompress(a, cli.quiet),
    }
}

fn progress_bar(total: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("valid template"),
    );
    pb
}

/// Maps a regular file into memory (empty files cannot be mapped).
fn map_input(file: &File) -> Result<Option<memmap2::Mmap>> {
    if file.metadata()?.len() == 0 {
        return Ok(None);
    }
    // SAFETY: the map is read-only; a concurrent truncation by another process
    // could fault, as with any mmap-based tool (zstd and xz do the same).
    Ok(Some(unsafe { memmap2::Mmap::map(file)? }))
}

fn compress(a: &CodeArgs, quiet: bool) -> Result<()> {
    let preset = Preset::load(&a.preset)?;
    let file =
        File::open(&a.input).with_context(|| format!("cannot open {}", a.input.display()))?;
    let map = map_input(&file)?;
    let data: &[u8] = map.as_deref().unwrap_or(&[]);
    let mut out = AtomicOutput::create(&a.output, a.force)?;
    let pb = progress_bar(data.len() as u64, quiet);
    engine::compress_slice(data, out.writer(), &preset, &Device::Cpu, &mut |n| {
        pb.inc(n)
    })
    .with_context(|| format!("{}", a.input.display()))?;
    out.commit()?;
    pb.finish_and_clear();
    Ok(())
}

fn decompress(a: &CodeArgs, quiet: bool) -> Result<()> {
    let file =
        File::open(&a.input).with_context(|| format!("cannot open {}", a.input.display()))?;
    let mut input = std::io::BufReader::with_capacity(1 << 20, file);
    let mut out = AtomicOutput::create(&a.output, a.force)?;
    let pb = progress_bar(0, quiet);
    engine::decompress(&mut input, out.writer(), &Device::Cpu, &mut |n| pb.inc(n))
        .with_context(|| format!("{}", a.input.display()))?;
    out.commit()?;
    pb.finish_and_clear();
    Ok(())
}
