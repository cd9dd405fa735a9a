//! Command-line front end: argument handling, file safety, progress and messages.
//! All coding work is the library's.

mod args;
mod bench;
mod output;
mod stdio;

use anyhow::{anyhow, bail, Context, Result};
use args::{Cli, Command, Common, Transfer};
use clap::Parser;
use fade::{Decoder, Device, Encoder, Limits, Preset};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use output::{finish_stdout, same_file, stdout_writer, AtomicOutput};
use std::fs::{File, Metadata};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Suffix of compressed files.
const SUFFIX: &str = "fade";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Compress,
    Decompress,
}

/// Where bytes come from or go to.
#[derive(Debug, Clone)]
enum End {
    Std,
    File(PathBuf),
}

impl End {
    fn from_arg(p: Option<&PathBuf>) -> Self {
        match p {
            None => End::Std,
            Some(p) if p.as_os_str() == "-" => End::Std,
            Some(p) => End::File(p.clone()),
        }
    }

    fn name(&self) -> String {
        match self {
            End::Std => "(stdin)".into(),
            End::File(p) => p.display().to_string(),
        }
    }
}

/// Resolves `--device`: auto picks CUDA when built with it and a GPU is present.
/// A device that cannot be used is refused here, before any work.
fn device(spec: &str) -> Result<Device> {
    let dev = match spec {
        "auto" => return Ok(Device::auto()),
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        s => match s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => Device::Cuda(n),
            None => bail!("unknown device '{s}' (use auto, cpu, cuda or cuda:N)"),
        },
    };
    dev.check()?;
    Ok(dev)
}

/// Parses the command line and runs it.
pub fn run() -> Result<()> {
    let raw: Vec<_> = std::env::args_os().collect();
    let names = Preset::builtin_names();
    let strongest = args::practical_strongest(&raw, names.len());
    let mut cli = match Cli::try_parse_from(args::normalize(raw, strongest)) {
        Ok(cli) => cli,
        // --help and --version print on stdout and exit 0, or 1 when that
        // output cannot be written (`fade --help > /dev/full`).
        Err(e) if !e.use_stderr() => {
            e.print()
                .and_then(|_| std::io::stdout().flush())
                .context("cannot write to standard output")?;
            std::process::exit(0);
        }
        // Usage errors are one line with a hint, exit 1, like every other error.
        Err(e) => return Err(anyhow!(args::usage_error(&e))),
    };
    // candle attaches a backtrace to each error when RUST_BACKTRACE is set and
    // prints it inside the message, which broke fade's one-line errors (seen
    // with `--device cuda` and no usable GPU). This turns off backtraces for
    // errors only; panics still honour RUST_BACKTRACE.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    // fade's kernels split their work over their own threads (src/par.rs),
    // never changing a result; what candle still runs on its pool is data
    // movement, cheaper on one thread.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1")
    }
    output::install_signal_cleanup();
    let name = names[strongest - 1];
    if let Some(w) = args::clamp_level(&mut cli.common.preset, names.len(), strongest, name) {
        warn(&cli.common, &w);
    }
    let c = &cli.common;
    let k = &cli.classic;
    if let Some(cmd) = &cli.command {
        if k.decompress || k.test || k.list {
            bail!(
                "-d, -t and -l cannot be combined with the {} subcommand",
                cmd.name()
            );
        }
    }
    match &cli.command {
        Some(Command::Compress(_) | Command::Decompress(_)) if c.recursive => bail!(
            "-r works with the gzip form and with test and list (fade -r DIR, fade -d -r DIR)"
        ),
        Some(cmd @ (Command::Test { .. } | Command::List { .. } | Command::Bench { .. }))
            if c.out.is_some() =>
        {
            bail!("-o has no meaning with {} (it writes no file)", cmd.name())
        }
        _ => {}
    }
    match &cli.command {
        Some(Command::Compress(t)) => transfer(Mode::Compress, t, c),
        Some(Command::Decompress(t)) => transfer(Mode::Decompress, t, c),
        Some(Command::Test { files }) => {
            each(&operands(files, Mode::Decompress, c)?, |f| test(f, c))
        }
        Some(Command::List { files }) => list(&operands(files, Mode::Decompress, c)?),
        Some(Command::Bench {
            paths,
            set,
            explain,
            presets,
            prefix,
            format,
            plot,
        }) => {
            if *explain {
                let names = if presets.is_empty() && c.preset.is_none() {
                    Preset::builtin_names()
                        .iter()
                        .map(|n| n.to_string())
                        .collect()
                } else {
                    bench_presets(presets, c)?
                };
                return bench::explain(&names);
            }
            if c.recursive {
                bail!("bench reads the files of each directory it is given; -r is not needed");
            }
            let presets = bench_presets(presets, c)?;
            let output = bench::Output {
                json: *format == args::Format::Json,
                plot: plot.as_deref(),
            };
            match set {
                Some(name) => {
                    let set = bench::sets::resolve(name)?;
                    bench::run(&set.files, &presets, prefix.or(set.prefix), output, c)
                }
                None => bench::run(paths, &presets, *prefix, output, c),
            }
        }
        None => classic(&cli),
    }
}

/// A one-line warning on stderr, unless -q.
fn warn(c: &Common, what: &str) {
    if !c.quiet {
        diag!("fade: warning: {what}");
    }
}

/// The presets `fade bench` measures: those of --presets, or the one chosen
/// with -p, -1 .. -5, --fast or --best, or the default; not both forms.
fn bench_presets(listed: &[String], c: &Common) -> Result<Vec<String>> {
    match (listed.is_empty(), &c.preset) {
        (false, Some(_)) => {
            bail!("bench takes its presets from --presets or from one -p (or -1 .. -5), not both")
        }
        (false, None) => Ok(listed.to_vec()),
        (true, Some(p)) => Ok(vec![p.clone()]),
        (true, None) => Ok(vec![args::DEFAULT_PRESET.to_string()]),
    }
}

/// The operands as inputs: '-' or none is stdin; with -r a directory stands
/// for the regular files under it (for compression every file not named
/// *.fade, otherwise every *.fade), depth first in name order, symbolic links
/// inside it not followed. Operands that were all empty directories give no
/// input at all.
fn operands(files: &[PathBuf], mode: Mode, c: &Common) -> Result<Vec<End>> {
    if files.is_empty() {
        return Ok(vec![End::Std]);
    }
    let wanted =
        |p: &Path| (mode == Mode::Decompress) == p.extension().is_some_and(|e| e == SUFFIX);
    let mut out = Vec::new();
    for f in files {
        if c.recursive && f.as_os_str() != "-" && f.is_dir() {
            let mut found = Vec::new();
            walk(f, &wanted, c, &mut found)?;
            out.extend(found.into_iter().map(End::File));
        } else {
            out.push(End::from_arg(Some(f)));
        }
    }
    Ok(out)
}

/// Appends the regular files under `dir` that `wanted` accepts. A symbolic
/// link is skipped with a warning, as zstd does, so a file left uncoded is
/// never a surprise.
fn walk(
    dir: &Path,
    wanted: &dyn Fn(&Path) -> bool,
    c: &Common,
    out: &mut Vec<PathBuf>,
) -> Result<()> {
    let cannot = || format!("cannot read directory {}", dir.display());
    let mut entries = std::fs::read_dir(dir)
        .with_context(cannot)?
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(cannot)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let kind = e.file_type().with_context(cannot)?;
        let p = e.path();
        if kind.is_dir() {
            walk(&p, wanted, c, out)?;
        } else if kind.is_symlink() {
            warn(c, &format!("{}: skipping symbolic link", p.display()));
        } else if kind.is_file() && wanted(&p) && !output::is_temporary(&e.file_name()) {
            out.push(p);
        }
    }
    Ok(())
}

/// Runs `f` on every input; reports each failure, fails if any did.
fn each(ends: &[End], mut f: impl FnMut(&End) -> Result<()>) -> Result<()> {
    let mut failed = None;
    let many = ends.len() > 1;
    for e in ends {
        if let Err(err) = f(e) {
            if !many {
                return Err(err);
            }
            diag!("fade: {err:#}");
            failed = Some(err);
        }
    }
    match failed {
        Some(_) => bail!("some files failed"),
        None => Ok(()),
    }
}

fn classic(cli: &Cli) -> Result<()> {
    let (k, c) = (&cli.classic, &cli.common);
    if (k.list || k.test) && c.out.is_some() {
        bail!("-o has no meaning with -t or -l (they write no file)");
    }
    if k.list {
        return list(&operands(&k.files, Mode::Decompress, c)?);
    }
    if k.test {
        return each(&operands(&k.files, Mode::Decompress, c)?, |f| test(f, c));
    }
    let mode = if k.decompress {
        Mode::Decompress
    } else {
        Mode::Compress
    };
    let inputs = operands(&k.files, mode, c)?;
    if let Some(o) = &c.out {
        // Every input into one output, as zstd -o does.
        let output = End::from_arg(Some(o));
        let rm = c.rm && matches!(output, End::File(_));
        return code(mode, &inputs, &output, rm, false, c);
    }
    each(&inputs, |input| {
        let (output, in_place) = match input {
            End::File(p) if !c.stdout => (End::File(derived_name(mode, p)?), true),
            _ => (End::Std, false),
        };
        code(
            mode,
            std::slice::from_ref(input),
            &output,
            c.rm && !c.stdout,
            in_place,
            c,
        )
    })
}

fn transfer(mode: Mode, t: &Transfer, c: &Common) -> Result<()> {
    let input = End::from_arg(t.input.as_ref());
    let named = match (&t.output, &c.out) {
        (Some(_), Some(_)) => bail!("the output is named twice (as an operand and with -o)"),
        (o, None) | (None, o) => o.as_ref(),
    };
    let (output, in_place) = match (named, &input) {
        (Some(o), _) => (End::from_arg(Some(o)), false),
        (None, End::File(p)) if !c.stdout => (End::File(derived_name(mode, p)?), true),
        _ => (End::Std, false),
    };
    // As with zstd, --rm is ignored when the output goes to stdout.
    let rm = c.rm && matches!(output, End::File(_));
    code(mode, &[input], &output, rm, in_place, c)
}

/// FILE -> FILE.fade; FILE.fade -> FILE.
/// A directory is refused first: its name has no suffix to judge by.
fn derived_name(mode: Mode, p: &Path) -> Result<PathBuf> {
    if p.is_dir() {
        bail!(
            "{}: is a directory (fade -r DIR works on the files in it)",
            p.display()
        );
    }
    match mode {
        Mode::Compress => {
            if p.extension().is_some_and(|e| e == SUFFIX) {
                bail!("{} already has the .{SUFFIX} suffix", p.display());
            }
            let mut s = p.as_os_str().to_owned();
            s.push(format!(".{SUFFIX}"));
            Ok(s.into())
        }
        Mode::Decompress => match p.extension() {
            Some(e) if e == SUFFIX => Ok(p.with_extension("")),
            _ => bail!(
                "{}: unknown suffix (expected .{SUFFIX}; use -c or name the output)",
                p.display()
            ),
        },
    }
}

/// A progress bar on stderr when it is a terminal and not -q, named after
/// the file. Sizes and speeds are in decimal units (KB = 1000 bytes), as in
/// the -v summary and `fade bench`.
fn progress_bar(total: Option<u64>, quiet: bool, name: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    pb.set_style(progress_style(total.is_some()));
    pb.set_message(short_name(name, 32));
    // Redrawn on its own, so the elapsed time and the spinner move between
    // the model's steps.
    pb.enable_steady_tick(Duration::from_millis(250));
    pb
}

/// The bar's layout: with a total, a bar and the time left; without, a spinner.
fn progress_style(has_total: bool) -> ProgressStyle {
    let tpl = if has_total {
        "{msg} {bar:30} {done}/{size} {rate} eta {eta}"
    } else {
        "{msg} {spinner} {done} {rate} {elapsed}"
    };
    ProgressStyle::with_template(tpl)
        .expect("valid template")
        .with_key("done", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&decimal(s.pos()));
        })
        .with_key("size", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&decimal(s.len().unwrap_or(0)));
        })
        .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.1} KB/s", s.per_sec() / 1000.0);
        })
}

/// A byte count in decimal units: "512 B", "12.3 KB", "4.19 MB", "1.07 GB".
fn decimal(n: u64) -> String {
    let x = n as f64;
    match n {
        0..=999 => format!("{n} B"),
        1_000..=999_999 => format!("{:.1} KB", x / 1e3),
        1_000_000..=999_999_999 => format!("{:.2} MB", x / 1e6),
        _ => format!("{:.2} GB", x / 1e9),
    }
}

/// `name`, cut to its last `max` characters behind "..." if longer.
fn short_name(name: &str, max: usize) -> String {
    let n = name.chars().count();
    if n <= max {
        return name.to_string();
    }
    let tail: String = name.chars().skip(n - (max - 3)).collect();
    format!("...{tail}")
}

/// Counts bytes passing through a writer.
struct Counter<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// An opened input.
enum Source {
    /// A regular file and its metadata when opened: its size for the progress
    /// bar, its permissions and times for the output, and the reference that
    /// tells whether it changed while it was read.
    Regular(File, Metadata),
    /// A FIFO, a character device (`/dev/null`, a terminal), a socket or a
    /// process substitution: read as a stream, like stdin.
    Stream(File),
    /// Standard input.
    Stdin,
}

impl Source {
    /// Opens `input`. Anything but a directory can be read; a non-regular file
    /// only when the output is not derived from its name (`-c` or a named
    /// output), as with gzip, and never with --rm. With --rm, a file with
    /// other hard links is refused unless `force` (as gzip does: removing one
    /// name of it keeps nothing safe). A file of /proc or /sys is read as a
    /// stream: its size says nothing of what it yields.
    fn open(input: &End, in_place: bool, rm: bool, force: bool) -> Result<Self> {
        let p = match input {
            End::Std if stdio::was_closed(0) => bail!("cannot read standard input: it is closed"),
            End::Std => return Ok(Source::Stdin),
            End::File(p) => p,
        };
        // Looked at before opening: opening a FIFO waits for a writer.
        let m = std::fs::metadata(p).with_context(|| format!("cannot open {}", p.display()))?;
        if m.is_dir() {
            bail!(
                "{}: is a directory (fade -r DIR works on the files in it)",
                p.display()
            );
        }
        if !m.is_file() && (in_place || rm) {
            bail!(
                "{}: not a regular file (use -c or name the output to read it as a stream)",
                p.display()
            );
        }
        if rm && !force {
            use std::os::unix::fs::MetadataExt;
            if m.nlink() > 1 {
                bail!(
                    "{}: has {} other hard link(s); not compressed with --rm (use -f to remove this name anyway)",
                    p.display(),
                    m.nlink() - 1
                );
            }
        }
        let f = File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
        let m = f
            .metadata()
            .with_context(|| format!("cannot open {}", p.display()))?;
        if m.is_file() && on_pseudo_fs(&f) {
            if rm {
                bail!(
                    "{}: a file of /proc or /sys is never removed (--rm)",
                    p.display()
                );
            }
            return Ok(Source::Stream(f));
        }
        Ok(if m.is_file() {
            Source::Regular(f, m)
        } else {
            Source::Stream(f)
        })
    }

    fn meta(&self) -> Option<&Metadata> {
        match self {
            Source::Regular(_, m) => Some(m),
            _ => None,
        }
    }

    /// The frames of a regular fade file, from their framing (no model
    /// work): for the progress bar's total and parallel decoding. `None` for
    /// streams and for files that are not whole fade files (decoding then
    /// says why).
    fn frames(&self) -> Result<Option<Vec<fade::FrameInfo>>> {
        let Source::Regular(f, _) = self else {
            return Ok(None);
        };
        let mut r = std::io::BufReader::new(f);
        let total = fade::frames(&mut r).ok();
        let mut f: &File = f;
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0))
            .context("cannot rewind the input")?;
        Ok(total)
    }

    fn reader(&self) -> Box<dyn Read + Send + '_> {
        match self {
            Source::Regular(f, _) | Source::Stream(f) => Box::new(f),
            Source::Stdin => Box::new(std::io::stdin()),
        }
    }

    /// After the input was read to its end (`read` bytes): fails like tar's
    /// "file changed as we read it" if a regular file's size, modification or
    /// status-change time moved, or if it did not yield the size it had.
    fn check_unchanged(&self, read: u64) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let Source::Regular(f, before) = self else {
            return Ok(());
        };
        let now = f.metadata().context("cannot stat the input again")?;
        let stamp = |m: &Metadata| {
            (
                m.len(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
            )
        };
        if read != before.len() || stamp(&now) != stamp(before) {
            bail!("file changed as we read it");
        }
        Ok(())
    }
}

/// Whether `f` lies on procfs or sysfs, whose files report a size (0, or a
/// page) unrelated to what they yield.
fn on_pseudo_fs(f: &File) -> bool {
    use std::os::unix::io::AsRawFd;
    const PROC: i64 = 0x9fa0;
    const SYSFS: i64 = 0x6265_6572;
    // SAFETY: fstatfs fills the struct it is given for a descriptor we own.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    matches!(st.f_type as i64, PROC | SYSFS)
}

/// The work itself: every input into `output` (several inputs: one after
/// the other into the same output), then the optional removal of the inputs
/// once the output is complete. `in_place`: the output's name is derived from
/// the (single) input's.
fn code(
    mode: Mode,
    inputs: &[End],
    output: &End,
    rm: bool,
    in_place: bool,
    c: &Common,
) -> Result<()> {
    let limits = limits(c);
    let preset = if mode == Mode::Compress {
        let p = Preset::load(c.preset.as_deref().unwrap_or(args::DEFAULT_PRESET))?;
        Some(match c.lanes {
            Some(n) => p.with_lanes(n)?,
            None => p,
        })
    } else {
        None
    };
    if let End::Std = output {
        if stdio::was_closed(1) {
            bail!("cannot write to standard output: it is closed")
        }
        if mode == Mode::Compress && std::io::stdout().is_terminal() && !c.force {
            bail!("refusing to write compressed data to a terminal (use -f to force)")
        }
    }
    for input in inputs {
        match (input, output) {
            (End::Std, _)
                if mode == Mode::Decompress && std::io::stdin().is_terminal() && !c.force =>
            {
                bail!("refusing to read compressed data from a terminal (use -f to force)")
            }
            (End::File(i), End::File(o)) if same_file(i, o) => {
                bail!("{}: input and output are the same file", i.display())
            }
            _ => {}
        }
    }
    // `zstd -dcf` and `zcat -f`: to stdout with -f, data that is not fade
    // passes through unchanged.
    let pass_through = mode == Mode::Decompress && matches!(output, End::Std) && c.force;
    let job = Job {
        mode,
        preset: preset.as_ref(),
        limits,
        pass_through,
        blocks: (c.threads.is_some() || c.block_size.is_some()).then(|| {
            fade::Parallel::new(
                c.threads.unwrap_or(1),
                c.block_size
                    .map(|b| usize::try_from(b).unwrap_or(usize::MAX)),
            )
        }),
        frame_threads: fade::Parallel::new(c.threads.unwrap_or(0), None).threads,
        out_name: match output {
            End::Std => "(stdout)".into(),
            End::File(o) => o.display().to_string(),
        },
        c,
    };
    let mut sources = inputs
        .iter()
        .map(|i| Source::open(i, in_place, rm, c.force));
    let Some(first) = sources.next() else {
        return Ok(()); // -r on directories without a file to code
    };
    let first = first?;
    // A preset too large for the limit is refused before any work; the
    // library checks again once the preset is fitted to the input.
    if let (Some(p), Some(m)) = (&preset, first.meta()) {
        limits.check(&p.fitted(m.len().try_into().unwrap_or(usize::MAX)))?;
    }
    let dev = device(&c.device)?;
    let mut first = Some(first);
    let mut next_source = || first.take().map(Ok).or_else(|| sources.next()).transpose();
    let mut summaries = Vec::new();
    let mut kept_nowhere = false;
    match output {
        End::Std => {
            let mut w = stdout_writer();
            for input in inputs {
                let source = next_source()?.expect("one source per input");
                let line = job.run(&source, input, &mut w, &dev)?;
                if let Some(line) = line {
                    diag!("{line}");
                }
            }
            finish_stdout(w)?;
        }
        End::File(o) => {
            let single = inputs.len() == 1;
            let like = |s: &Source| s.meta().filter(|_| single).cloned();
            let mut like_first = None;
            let mut out: Option<AtomicOutput> = None;
            for input in inputs {
                let source = next_source()?.expect("one source per input");
                if out.is_none() {
                    like_first = like(&source);
                    out = Some(AtomicOutput::create(o, c.force, like_first.is_some())?);
                }
                let w = out.as_mut().expect("created").writer();
                summaries.extend(job.run(&source, input, w, &dev)?);
            }
            if let Some(out) = out {
                // Written through a device or FIFO, the output keeps nothing:
                // the input stays, as with stdout.
                kept_nowhere = out.is_through();
                out.commit(like_first.as_ref(), mode == Mode::Decompress)?;
            }
        }
    }
    // Printed once the output is complete.
    for line in summaries {
        diag!("{line}");
    }
    if rm && !kept_nowhere {
        for input in inputs {
            if let End::File(p) = input {
                std::fs::remove_file(p)
                    .with_context(|| format!("cannot remove {}", p.display()))?;
            }
        }
    }
    Ok(())
}

/// What every input of one [`code`] call shares.
struct Job<'a> {
    mode: Mode,
    preset: Option<&'a Preset>,
    limits: Limits,
    pass_through: bool,
    /// Compression in independent blocks (-T, --block-size).
    blocks: Option<fade::Parallel>,
    /// Frames a multi-frame file may decode at once.
    frame_threads: usize,
    out_name: String,
    c: &'a Common,
}

impl Job<'_> {
    /// Codes one opened input into `w`, with a progress bar; returns the
    /// summary line: the -v one, or zstd's short one when stderr is a
    /// terminal (not with -q).
    fn run(
        &self,
        source: &Source,
        input: &End,
        w: &mut dyn Write,
        dev: &Device,
    ) -> Result<Option<String>> {
        let start = Instant::now();
        let name = input.name();
        let spans = match self.mode {
            Mode::Compress => None,
            Mode::Decompress => source.frames()?,
        };
        let total = match &spans {
            None => source.meta().map(|m| m.len()),
            Some(v) => v.iter().try_fold(0u64, |a, s| a.checked_add(s.content)),
        };
        let pb = progress_bar(total, self.c.quiet, &name);
        let (n_in, n_out) = self
            .transfer(source, spans.as_deref(), w, dev, &pb)
            .with_context(|| name.clone())?;
        pb.finish_and_clear();
        let secs = start.elapsed().as_secs_f64();
        Ok(if self.c.verbose {
            Some(summary(self.mode, &name, &self.out_name, n_in, n_out, secs))
        } else if !self.c.quiet && std::io::stderr().is_terminal() {
            Some(short_summary(self.mode, &name, &self.out_name, n_in, n_out))
        } else {
            None
        })
    }

    /// The codec from `source` into `w`; returns (bytes in, bytes out).
    fn transfer(
        &self,
        source: &Source,
        spans: Option<&[fade::FrameInfo]>,
        w: &mut dyn Write,
        dev: &Device,
        pb: &ProgressBar,
    ) -> Result<(u64, u64)> {
        let progress = {
            let pb = pb.clone();
            move |n| pb.inc(n)
        };
        let mut w = Counter { inner: w, n: 0 };
        let n_in = match self.mode {
            Mode::Compress => {
                // Each segment is read into fade's own memory, then hashed
                // and coded from there: what is hashed is what is coded.
                let mut counted = ReadCounter {
                    inner: source.reader(),
                    n: 0,
                };
                let preset = self.preset.expect("compression has a preset");
                let size = source.meta().map(|m| m.len());
                match self.blocks {
                    Some(par) => {
                        fade::compress_parallel(
                            &mut counted,
                            &mut w,
                            preset,
                            *dev,
                            &self.limits,
                            size,
                            par,
                            &mut { progress },
                        )?;
                    }
                    None => {
                        let mut enc = Encoder::with_preset(&mut w, preset, *dev)?
                            .with_limits(self.limits)
                            .with_progress(progress);
                        if let Some(n) = size {
                            enc = enc.with_size(n);
                        }
                        std::io::copy(&mut counted, &mut enc).map_err(fade::Error::from)?;
                        enc.finish()?;
                    }
                }
                source.check_unchanged(counted.n)?;
                counted.n
            }
            Mode::Decompress
                if spans.is_some_and(|v| {
                    v.len() > 1 && fade::decode_workers(v, &self.limits, self.frame_threads) > 1
                }) =>
            {
                let (Source::Regular(f, _), Some(spans)) = (source, spans) else {
                    unreachable!("frames are only found in regular files");
                };
                fade::decompress_frames(
                    spans,
                    f,
                    &mut w,
                    *dev,
                    &self.limits,
                    self.frame_threads,
                    &mut { progress },
                )?;
                spans.last().map_or(0, |s| s.offset + s.len + s.trailer)
            }
            Mode::Decompress => {
                let mut r = ReadCounter {
                    inner: std::io::BufReader::with_capacity(1 << 20, source.reader()),
                    n: 0,
                };
                let mut head = [0u8; fade::MAGIC.len()];
                let got = if self.pass_through {
                    read_up_to(&mut r, &mut head)?
                } else {
                    0
                };
                let mut all = (&head[..got]).chain(&mut r);
                if self.pass_through && head[..got] != fade::MAGIC {
                    let n = std::io::copy(&mut all, &mut w)?;
                    pb.inc(n);
                } else {
                    let mut dec = Decoder::with_device(all, *dev)?
                        .with_limits(self.limits)
                        .with_progress(progress);
                    std::io::copy(&mut dec, &mut w).map_err(fade::Error::from)?;
                }
                r.n
            }
        };
        w.flush()?;
        Ok((n_in, w.n))
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The -v line, in zstd's form, then time and speed:
/// `FILE : 35.20% (1048576 => 369123 bytes, FILE.fade) 12.3 s, 85.2 KB/s`.
/// The percentage is compressed over original size both ways; the arrow
/// goes from what was read to what was written; the speed counts original
/// bytes.
fn summary(mode: Mode, input: &str, output: &str, n_in: u64, n_out: u64, secs: f64) -> String {
    let (orig, packed) = match mode {
        Mode::Compress => (n_in, n_out),
        Mode::Decompress => (n_out, n_in),
    };
    format!(
        "{input} : {:.2}% ({n_in} => {n_out} bytes, {output}) {secs:.1} s, {:.1} KB/s",
        packed as f64 * 100.0 / orig.max(1) as f64,
        orig as f64 / 1000.0 / secs.max(1e-9)
    )
}

/// The line a terminal shows after each file, as zstd's: compressing
/// `FILE : 41.89% (48.8 KB => 20.5 KB, FILE.fade)` (decimal units, as the
/// progress bar), decompressing `FILE.fade : 50000 bytes`.
fn short_summary(mode: Mode, input: &str, output: &str, n_in: u64, n_out: u64) -> String {
    match mode {
        Mode::Compress => format!(
            "{input} : {:.2}% ({} => {}, {output})",
            n_out as f64 * 100.0 / n_in.max(1) as f64,
            decimal(n_in),
            decimal(n_out)
        ),
        Mode::Decompress => format!("{input} : {n_out} bytes"),
    }
}

/// The limits of `--memory-limit` and `-T` (without -T, every core: the
/// threads never change the output).
fn limits(c: &Common) -> Limits {
    Limits::default()
        .with_memory(c.memory_limit.unwrap_or(fade::DEFAULT_MEMORY_LIMIT))
        .with_threads(c.threads.unwrap_or(0))
}

/// Counts bytes read.
struct ReadCounter<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for ReadCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

fn open_compressed(e: &End) -> Result<Box<dyn Read>> {
    let source = Source::open(e, false, false, false)?;
    Ok(match source {
        Source::Regular(f, _) | Source::Stream(f) => {
            Box::new(std::io::BufReader::with_capacity(1 << 20, f))
        }
        Source::Stdin => Box::new(std::io::stdin().lock()),
    })
}

fn test(e: &End, c: &Common) -> Result<()> {
    let r = open_compressed(e)?;
    let pb = progress_bar(None, c.quiet, &e.name());
    let progress = {
        let pb = pb.clone();
        move |n| pb.inc(n)
    };
    let mut dec = Decoder::with_device(r, device(&c.device)?)?
        .with_limits(limits(c))
        .with_progress(progress);
    let content = std::io::copy(&mut dec, &mut std::io::sink())
        .map_err(fade::Error::from)
        .with_context(|| e.name())?;
    pb.finish_and_clear();
    if c.verbose {
        diag!(
            "{}: OK ({} bytes, {} frame(s))",
            e.name(),
            content,
            dec.frames()
        );
    }
    Ok(())
}

fn list(files: &[End]) -> Result<()> {
    if stdio::was_closed(1) {
        bail!("cannot write to standard output: it is closed");
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<10} {:>14} {:>14} {:>7} {:>7}  {:<9} file",
        "preset", "compressed", "original", "ratio", "frames", "check"
    )?;
    let mut total = Listing {
        preset: "total".into(),
        content_check: false,
        frames: 0,
        content: 0,
        packed: 0,
    };
    let listed = each(files, |e| {
        let l = frame_summary(e).with_context(|| e.name())?;
        let check = if l.content_check { "xxh3-64" } else { "none" };
        list_row(&mut out, &l, check, &e.name())?;
        total.add(&l);
        Ok(())
    });
    // Like xz -l: a last row sums the files listed.
    if files.len() > 1 {
        list_row(&mut out, &total, "-", &format!("{} files", files.len()))?;
    }
    listed
}

/// One row of `fade -l`.
fn list_row(out: &mut impl Write, l: &Listing, check: &str, file: &str) -> Result<()> {
    writeln!(
        out,
        "{:<10} {:>14} {:>14} {:>7.3} {:>7}  {:<9} {file}",
        l.preset,
        l.packed,
        l.content,
        l.content as f64 / l.packed.max(1) as f64,
        l.frames,
        check,
    )?;
    Ok(())
}

/// What `fade -l` shows of one input.
struct Listing {
    /// The first frame's preset name.
    preset: String,
    content_check: bool,
    frames: usize,
    content: u64,
    packed: u64,
}

impl Listing {
    /// Adds another listing's counts, for the totals row.
    fn add(&mut self, l: &Listing) {
        self.frames += l.frames;
        self.content = self.content.saturating_add(l.content);
        self.packed = self.packed.saturating_add(l.packed);
    }
}

/// The listing of one input: a regular file by seeking over block bodies, a
/// stream by reading them.
fn frame_summary(e: &End) -> Result<Listing> {
    if let End::File(p) = e {
        if std::fs::metadata(p).is_ok_and(|m| m.is_file()) {
            let f = File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            let frames = fade::frames(&mut std::io::BufReader::new(f))?;
            let content = frames
                .iter()
                .try_fold(0u64, |a, s| a.checked_add(s.content))
                .context("content lengths add up beyond 2^64 bytes")?;
            let first = frames.first().context("no frame")?;
            return Ok(Listing {
                preset: first.preset.name.clone(),
                content_check: first.content_check,
                frames: frames.len(),
                content,
                packed: frames.last().map_or(0, |s| s.offset + s.len + s.trailer),
            });
        }
    }
    let mut r = ReadCounter {
        inner: open_compressed(e)?,
        n: 0,
    };
    let info = fade::scan(&mut r)?;
    Ok(Listing {
        preset: info.preset.name,
        content_check: info.content_check,
        frames: info.frames,
        content: info.content,
        packed: r.n,
    })
}
