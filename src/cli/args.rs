//! Every flag of the command line, in one place.
//!
//! Two forms are accepted: subcommands (`fade compress IN OUT`) and the
//! gzip/xz/zstd form (`fade FILE` writes FILE.fade, `fade -d FILE.fade` writes
//! FILE, with -c, -t, -l, -k, --rm, -f). `-` or a missing operand means
//! stdin/stdout.
//!
//! A subcommand is recognised only as the first operand (`fade a compress b`
//! compresses three files), and the flags of both forms are global, so
//! `fade -c compress FILE` writes to stdout.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Lossless compression with a neural network that learns the data while it codes it.
#[derive(Debug, Parser)]
#[command(name = "fade", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub classic: Classic,
    #[command(flatten)]
    pub common: Common,
}

/// Flags shared by every form.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Threads for the model's matrix products (default 1; results do not depend on it).
    #[arg(short = 'T', long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// No progress bar, no warnings.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print sizes, ratio and speed of each file on stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Overwrite outputs; allow compressed data on a terminal.
    #[arg(short, long, global = true)]
    pub force: bool,
    /// Device for the model: auto, cpu, cuda or cuda:N (cuda needs a build with --features cuda).
    #[arg(long, global = true, default_value = "auto", value_name = "DEV")]
    pub device: String,
    /// Model preset for compression: a step of the ladder (1 fastest .. 5 strongest,
    /// also written -1 .. -5), a built-in name, or a .toml file.
    #[arg(short, long, global = true, default_value = "default")]
    pub preset: String,
    /// Compress with exactly N lanes, overriding the preset's count (which is
    /// lowered for inputs shorter than a segment); for GPUs, which run many
    /// lanes for little more than the cost of a few.
    #[arg(long, global = true, value_name = "N")]
    pub lanes: Option<u32>,
    /// Largest amount of memory a file may need to compress or decompress
    /// (like xz's --memlimit): bytes, or with a unit (512MiB, 8GiB, 8G).
    /// Files asking for more are refused before anything is allocated.
    /// The default, 4 GiB, admits every built-in preset.
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    pub memory_limit: Option<u64>,
    /// Write to stdout, keep inputs.
    #[arg(short = 'c', long, global = true)]
    pub stdout: bool,
    /// Keep input files (the default).
    #[arg(short, long, global = true)]
    pub keep: bool,
    /// Remove each input file after its output is complete and synced
    /// (ignored when writing to stdout).
    #[arg(long, global = true, conflicts_with = "keep")]
    pub rm: bool,
}

/// A byte count: a number of bytes, or a number with a unit (KiB, MiB, GiB,
/// or K, M, G, KB, MB, GB).
fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("not a size ({e})"))
}

/// The gzip-style form: operate on FILEs in place.
#[derive(Debug, Clone, Args)]
pub struct Classic {
    /// Files to process ('-' or none: stdin to stdout).
    pub files: Vec<PathBuf>,
    /// Decompress.
    #[arg(short, long, group = "mode")]
    pub decompress: bool,
    /// Test the integrity of compressed files (decode and verify, write nothing).
    #[arg(short, long, group = "mode")]
    pub test: bool,
    /// List compressed files: preset, sizes, ratio, checksum.
    #[arg(short, long, group = "mode")]
    pub list: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compress IN into OUT ('-' or missing: stdin/stdout; OUT defaults to IN.fade).
    Compress(Transfer),
    /// Decompress IN into OUT ('-' or missing: stdin/stdout; OUT defaults to IN without .fade).
    Decompress(Transfer),
    /// Decode and verify FILEs, writing nothing; exit 1 on any fault.
    Test {
        /// Compressed files ('-' for stdin).
        files: Vec<PathBuf>,
    },
    /// Show preset, original and compressed size, ratio and checksum of FILEs.
    List {
        /// Compressed files.
        files: Vec<PathBuf>,
    },
    /// Compare fade with gzip -9, zstd -19, xz -9e and zpaq -method 5 (those installed)
    /// on FILES or DIRS (one level):
    /// size, ratio, speed, peak memory (and fade's GPU memory, through nvidia-smi,
    /// unless --device cpu), every round trip verified.
    Bench {
        /// Files or directories to measure.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// fade presets to measure (repeatable or comma-separated).
        #[arg(long = "presets", value_delimiter = ',', default_value = "default")]
        presets: Vec<String>,
        /// Use only the first N bytes of each file (1048576 for the quick set).
        #[arg(long, value_name = "N")]
        prefix: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Markdown)]
        format: Format,
    },
}

/// Table formats of `fade bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A markdown table.
    Markdown,
    /// JSON, for scripts.
    Json,
}

/// Operands of compress and decompress.
#[derive(Debug, Args)]
pub struct Transfer {
    /// Input ('-' for stdin).
    pub input: Option<PathBuf>,
    /// Output ('-' for stdout).
    pub output: Option<PathBuf>,
}

impl Command {
    /// The subcommand's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Compress(_) => "compress",
            Command::Decompress(_) => "decompress",
            Command::Test { .. } => "test",
            Command::List { .. } => "list",
            Command::Bench { .. } => "bench",
        }
    }
}
