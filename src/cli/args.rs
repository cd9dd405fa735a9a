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
//!
//! Level flags (`-1` .. `-5`, also inside a cluster: `-1c`, `-kc1`) and
//! `--fast` / `--best` are not clap arguments: [`normalize`] rewrites them as
//! `--preset=N` before clap parses, so the last level given wins, as in gzip.

use clap::{Args, CommandFactory, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

/// What each level costs, measured with `fade bench` on a 2-core machine
/// (docs/PERFORMANCE.md, "Default 18 on the three sets"; default 19 codes
/// those 1 MiB files as 18 did), so nobody waits a
/// minute per MB without being told. The level flags are not clap arguments
/// (see [`normalize`]), so they are shown here, in every help page; each line
/// fits 80 columns.
pub const LEVELS: &str = "\
Levels (KB/s compressing/restoring, both cores of a 2-core AMD EPYC; ratio on
the quick set, where xz -9e gives 4.02:1 and zpaq -method 5 5.24:1 at 321/317):
  -1, --fast[=N]  fast     112/116 KB/s  5.19:1
  -2              medium    53/53 KB/s   5.29:1
  -3              default   35/37 KB/s   5.45:1
  -4, --best      strong    10/10 KB/s   5.56:1 (on a 2-core Xeon)
  -5              paper      0.3 KB/s    the paper's pure network, for GPUs
                                         (--best with --device cuda)
Levels above 5 (-9, -19) use the strongest practical level, with a warning.
-T N codes blocks on N cores (see docs/PARALLEL.md).";

/// Width of every help page, so it reads in an 80-column terminal.
const HELP_WIDTH: usize = 80;

/// Lossless compression with a neural network that learns the data while it codes it.
#[derive(Debug, Parser)]
#[command(
    name = "fade",
    version,
    about,
    args_override_self = true,
    after_help = LEVELS,
    term_width = HELP_WIDTH
)]
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
    /// Compress in independent blocks (--block-size) on N threads, 0 = every
    /// core; each block holds its own model (memory x blocks at once) and
    /// restarts it (a little larger output). The output depends on the block
    /// size, not on N. Decompress up to N frames at once (default: every
    /// core, as far as --memory-limit allows). Without -T one model codes the
    /// whole input (the best ratio), its kernels split over every core (up to
    /// 4), which never changes the output.
    #[arg(short = 'T', long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// Block size of -T (default 16MiB, 1KiB to 1GiB); implies blocks even
    /// with -T1.
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_block_size)]
    pub block_size: Option<u64>,
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
    /// Model preset for compression (default: default): a step of the ladder
    /// (1 fastest .. 5 strongest, also written -1 .. -5; --fast is -1, --best
    /// the strongest practical: 4 on a CPU, 5 with --device cuda), a built-in
    /// name, or a .toml file. Levels above 5 use the strongest practical one.
    /// The last one given wins.
    #[arg(short, long, global = true, value_name = "PRESET")]
    pub preset: Option<String>,
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
    /// Write to OUT ('-': stdout); several inputs go into OUT one after the
    /// other (their frames, or their contents with -d, concatenated).
    // Its id is not "output": that is the OUTPUT operand of compress and
    // decompress, which would hide it there.
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        value_name = "OUT",
        conflicts_with = "stdout"
    )]
    pub out: Option<PathBuf>,
    /// Operate recursively on directories: every regular file under DIR (to
    /// FILE.fade beside it), or with -d, -t or -l every FILE.fade under it.
    /// Symbolic links inside DIR are skipped, with a warning.
    #[arg(short, long, global = true)]
    pub recursive: bool,
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

/// Smallest and largest `--block-size`: a block of a few bytes would be a
/// frame header and an end per few bytes of input, and a block is held in
/// memory whole.
const BLOCK_SIZES: std::ops::RangeInclusive<u64> = 1 << 10..=1 << 30;

/// A `--block-size`: a size within [`BLOCK_SIZES`].
fn parse_block_size(s: &str) -> Result<u64, String> {
    let n = parse_size(s)?;
    if !BLOCK_SIZES.contains(&n) {
        return Err(format!(
            "{n} bytes is outside the allowed 1KiB (1024) to 1GiB"
        ));
    }
    Ok(n)
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
    #[command(after_help = LEVELS)]
    Compress(Transfer),
    /// Decompress IN into OUT ('-' or missing: stdin/stdout; OUT defaults to IN without .fade).
    #[command(after_help = LEVELS)]
    Decompress(Transfer),
    /// Decode and verify FILEs, writing nothing; exit 1 on any fault.
    #[command(after_help = LEVELS)]
    Test {
        /// Compressed files ('-' for stdin).
        files: Vec<PathBuf>,
    },
    /// Show preset, original and compressed size, ratio and checksum of FILEs.
    #[command(after_help = LEVELS)]
    List {
        /// Compressed files.
        files: Vec<PathBuf>,
    },
    /// Compare fade with the compressors installed (gzip, zstd -3 and -19, xz -6
    /// and -9e, brotli, bzip3, 7z PPMd, zpaq) on FILES or DIRS (one level):
    /// size against the smallest peer, speed, time per GB, peak memory (and
    /// fade's GPU memory, through nvidia-smi, unless --device cpu), a verdict
    /// per level, every round trip verified; --plot draws it.
    #[command(after_help = LEVELS)]
    Bench {
        /// Files or directories to measure.
        #[arg(required_unless_present_any = ["explain", "set"])]
        paths: Vec<PathBuf>,
        /// Measure a named set of the corpus in $FADE_CORPUS (or
        /// ../shared/corpus): quick (the first MiB of the Silesia files and
        /// enwik6), 128k (their first 128 KiB) or backup (whole files).
        #[arg(long, value_name = "NAME", conflicts_with = "paths")]
        set: Option<String>,
        /// Print what a byte costs at each preset (the cost model:
        /// multiply-adds per byte of every part of a step) and measure
        /// nothing; presets as for a run, all levels if none is named.
        #[arg(long)]
        explain: bool,
        /// fade presets to measure (repeatable or comma-separated; default: the
        /// one of -p or -1 .. -5, else default).
        #[arg(long = "presets", value_delimiter = ',')]
        presets: Vec<String>,
        /// Use only the first N bytes of each file (1048576 for the quick set).
        #[arg(long, value_name = "N")]
        prefix: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Markdown)]
        format: Format,
        /// Also draw compressed size against speed (log scale), compress
        /// and decompress, for every codec, into this SVG file.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
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

/// The preset used when none is given.
pub const DEFAULT_PRESET: &str = "default";

/// Rewrites the level forms clap cannot parse, up to a `--` that ends the
/// options: `-N` (also inside a cluster of short flags: `-1c`, `-c1`,
/// `-kc1`) becomes `--preset=N`, `--fast` becomes `--preset=1` and `--best`
/// `--preset=S`, S the strongest practical level ([`practical_strongest`]);
/// `--fast=N` (N >= 1) is `--fast`. A run of digits is one level (`-19` is
/// 19, which [`clamp_level`] brings down). A digit that is the value of
/// a short flag (`-T2`, `-p3`, `-o 1`) is left alone. The first item is the
/// program name.
pub fn normalize(args: impl IntoIterator<Item = OsString>, strongest: usize) -> Vec<OsString> {
    // Short and long flags that take a value, from clap's own definition.
    let cmd = Cli::command();
    let mut short_values = Vec::new();
    let mut long_values = Vec::new();
    for a in cmd
        .get_arguments()
        .chain(cmd.get_subcommands().flat_map(|s| s.get_arguments()))
        .filter(|a| a.get_action().takes_values() && !a.is_positional())
    {
        short_values.extend(a.get_short());
        long_values.extend(a.get_long().map(str::to_string));
    }
    let mut out = Vec::new();
    let mut options = true;
    let mut value_next = false;
    for (i, arg) in args.into_iter().enumerate() {
        let s = match arg.to_str() {
            Some(s) if i > 0 && options && !value_next && s.starts_with('-') && s != "-" => s,
            _ => {
                value_next = false;
                out.push(arg);
                continue;
            }
        };
        if s == "--" {
            options = false;
            out.push(arg);
        } else if let Some(long) = s.strip_prefix("--") {
            match long {
                "fast" => out.push("--preset=1".into()),
                // zstd's --fast=N: every speed above 1 is fade's fastest.
                _ if fast_level(long) => out.push("--preset=1".into()),
                "best" => out.push(format!("--preset={strongest}").into()),
                _ => {
                    value_next = !long.contains('=') && long_values.iter().any(|l| l == long);
                    out.push(arg);
                }
            }
        } else {
            // A cluster of short flags: split out runs of digits.
            let chars: Vec<char> = s[1..].chars().collect();
            let mut flags = String::new();
            let mut k = 0;
            while k < chars.len() {
                let c = chars[k];
                if c.is_ascii_digit() {
                    let end = (k..chars.len())
                        .find(|&j| !chars[j].is_ascii_digit())
                        .unwrap_or(chars.len());
                    if !flags.is_empty() {
                        out.push(format!("-{}", std::mem::take(&mut flags)).into());
                    }
                    let level: String = chars[k..end].iter().collect();
                    out.push(format!("--preset={level}").into());
                    k = end;
                    continue;
                }
                flags.push(c);
                k += 1;
                if short_values.contains(&c) {
                    // The rest of the cluster is the value, or the next argument is.
                    value_next = k == chars.len();
                    flags.extend(&chars[k..]);
                    break;
                }
            }
            if !flags.is_empty() {
                out.push(format!("-{flags}").into());
            }
        }
    }
    out
}

/// Whether a long flag is `fast=N` with N >= 1 (zstd's `--fast=N`).
fn fast_level(long: &str) -> bool {
    long.strip_prefix("fast=")
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|n| n >= 1)
}

/// The level `--best` stands for: the strongest of `levels` only with an
/// explicit CUDA device (`--device cuda`, `--device=cuda:1`); otherwise the
/// one below it, since the strongest (paper) codes about 0.1 KB/s on a CPU.
/// Read from the raw arguments because [`normalize`] runs before clap.
pub fn practical_strongest(args: &[OsString], levels: usize) -> usize {
    let cuda = args.windows(2).any(|w| {
        let (a, b) = (w[0].to_string_lossy(), w[1].to_string_lossy());
        (a == "--device" && b.starts_with("cuda"))
            || b.strip_prefix("--device=")
                .is_some_and(|d| d.starts_with("cuda"))
    });
    if cuda {
        levels
    } else {
        levels - 1
    }
}

/// A numeric preset above the `levels` built-in ones (zstd's `-19`, `-p 9`)
/// becomes `strongest`, so a habit from zstd or xz still compresses; returns
/// the warning that says so. Level 0 and names are left to `Preset::load`.
pub fn clamp_level(
    preset: &mut Option<String>,
    levels: usize,
    strongest: usize,
    name: &str,
) -> Option<String> {
    let level = preset.as_deref()?.parse::<u64>().ok()?;
    if level <= levels as u64 {
        return None;
    }
    *preset = Some(strongest.to_string());
    Some(format!(
        "level {level} is above the strongest practical level; using {strongest} ({name})"
    ))
}

/// One line for a clap error, with the hint clap gives and where help is:
/// "unexpected argument '--forc' found (a similar argument exists: '--force';
/// see 'fade --help')". clap's own report is several lines.
pub fn usage_error(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut blocks = text.split("\n\n");
    let message = blocks
        .next()
        .unwrap_or_default()
        .trim_start_matches("error:")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut hints = Vec::new();
    let mut command = "fade".to_string();
    for line in text.lines().map(str::trim) {
        if let Some(tip) = line.strip_prefix("tip:") {
            hints.push(tip.trim().to_string());
        } else if let Some(usage) = line.strip_prefix("Usage:") {
            command = usage
                .split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect::<Vec<_>>()
                .join(" ");
        }
    }
    hints.push(format!("see '{command} --help'"));
    format!("{message} ({})", hints.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        let all = std::iter::once("fade").chain(args.iter().copied());
        normalize(all.map(OsString::from), 5)
            .into_iter()
            .skip(1)
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn level_flags_are_rewritten_alone_and_in_clusters() {
        assert_eq!(norm(&["-1", "f"]), ["--preset=1", "f"]);
        assert_eq!(norm(&["-1c"]), ["--preset=1", "-c"]);
        assert_eq!(norm(&["-c1"]), ["-c", "--preset=1"]);
        assert_eq!(norm(&["-kc1"]), ["-kc", "--preset=1"]);
        assert_eq!(norm(&["-k1c"]), ["-k", "--preset=1", "-c"]);
        assert_eq!(norm(&["-19"]), ["--preset=19"]);
        assert_eq!(norm(&["--fast", "--best"]), ["--preset=1", "--preset=5"]);
        assert_eq!(norm(&["-dcf"]), ["-dcf"]);
        assert_eq!(norm(&["-k19c"]), ["-k", "--preset=19", "-c"]);
        assert_eq!(
            norm(&["--fast=3", "--fast=1"]),
            ["--preset=1", "--preset=1"]
        );
        assert_eq!(norm(&["--fast=0"]), ["--fast=0"]);
    }

    #[test]
    fn best_is_paper_only_on_an_explicit_gpu() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(practical_strongest(&os(&["fade", "--best"]), 5), 4);
        assert_eq!(
            practical_strongest(&os(&["fade", "--device", "cuda"]), 5),
            5
        );
        assert_eq!(practical_strongest(&os(&["fade", "--device=cuda:1"]), 5), 5);
        assert_eq!(practical_strongest(&os(&["fade", "--device=cpu"]), 5), 4);
    }

    #[test]
    fn levels_above_the_ladder_clamp_with_a_warning() {
        let mut p = Some("19".to_string());
        let w = clamp_level(&mut p, 5, 4, "strong").unwrap();
        assert_eq!(p.as_deref(), Some("4"));
        assert_eq!(
            w,
            "level 19 is above the strongest practical level; using 4 (strong)"
        );
        for keep in ["0", "5", "paper", "x.toml"] {
            let mut p = Some(keep.to_string());
            assert!(clamp_level(&mut p, 5, 4, "strong").is_none());
            assert_eq!(p.as_deref(), Some(keep));
        }
    }

    #[test]
    fn values_of_flags_are_left_alone() {
        assert_eq!(norm(&["-T2", "-p3"]), ["-T2", "-p3"]);
        assert_eq!(norm(&["-cp", "2"]), ["-cp", "2"]);
        assert_eq!(norm(&["-o", "-1"]), ["-o", "-1"]);
        assert_eq!(norm(&["--lanes", "-1"]), ["--lanes", "-1"]);
        assert_eq!(norm(&["--lanes=3", "-2"]), ["--lanes=3", "--preset=2"]);
        assert_eq!(norm(&["-1p", "fast"]), ["--preset=1", "-p", "fast"]);
        assert_eq!(
            norm(&["-c", "--", "-1", "--fast"]),
            ["-c", "--", "-1", "--fast"]
        );
        assert_eq!(norm(&["-", "-2"]), ["-", "--preset=2"]);
    }
}
