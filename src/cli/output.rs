//! Atomic output: write beside the target, sync, then rename.
//!
//! The temporary file is deleted if anything fails before [`AtomicOutput::commit`],
//! and on SIGINT/SIGTERM/SIGHUP by the handler installed with [`install_signal_cleanup`],
//! so a failed or interrupted run never leaves a partial file. An existing
//! device or FIFO is written through instead, never replaced.

use anyhow::{bail, Context, Result};
use std::fs::{File, Metadata};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;
use tempfile::NamedTempFile;

/// Temporary files in flight, removed by the signal handler.
static IN_FLIGHT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The signals whose handler removes temporary outputs.
const CLEANUP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The write end of the pipe the signal handler writes the signal's number to.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

/// The handler itself: only an async-signal-safe `write` of the signal's
/// number; the thread of [`install_signal_cleanup`] does the rest.
extern "C" fn on_signal(sig: libc::c_int) {
    let b = sig as u8;
    // SAFETY: write(2) is async-signal-safe; a failed write loses nothing
    // that a second signal could not bring again.
    unsafe {
        libc::write(
            SIGNAL_PIPE.load(Ordering::Relaxed),
            (&b as *const u8).cast(),
            1,
        )
    };
}

/// On SIGINT, SIGTERM or SIGHUP: remove every temporary output, say so and
/// exit with 128 + the signal's number (130, 143, 129), as a shell reports a
/// command the signal ended. A signal the caller chose to ignore
/// (`nohup fade big &`) stays ignored, as with gzip.
pub fn install_signal_cleanup() {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills the two descriptors it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return;
    }
    SIGNAL_PIPE.store(fds[1], Ordering::Relaxed);
    let read_end = fds[0];
    std::thread::spawn(move || loop {
        let mut b = 0u8;
        // SAFETY: reads one byte into `b`.
        let n = unsafe { libc::read(read_end, (&mut b as *mut u8).cast(), 1) };
        if n == 1 {
            if let Ok(list) = IN_FLIGHT.lock() {
                for p in list.iter() {
                    let _ = std::fs::remove_file(p);
                }
            }
            let what = match b as libc::c_int {
                libc::SIGTERM => "terminated",
                libc::SIGHUP => "hung up",
                _ => "interrupted",
            };
            diag!("fade: {what}");
            std::process::exit(128 + b as i32);
        }
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return;
    });
    for sig in CLEANUP_SIGNALS {
        // SAFETY: a null new action only reads the current disposition.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
        if rc != 0 || old.sa_sigaction == libc::SIG_IGN {
            continue;
        }
        // SAFETY: installs a handler that only calls write(2).
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_signal as *const () as usize;
            act.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
}

fn forget(path: &Path) {
    if let Ok(mut list) = IN_FLIGHT.lock() {
        list.retain(|p| p != path);
    }
}

/// Where an output's bytes go.
enum Sink {
    /// A new regular file under a temporary name, renamed at the end.
    Tmp(BufWriter<NamedTempFile>),
    /// An existing device, FIFO or other special file, written in place: it
    /// is never renamed over or removed (`-o /dev/null`, a FIFO a reader
    /// waits on), as zstd does.
    Through(BufWriter<File>),
}

/// A file being written under a temporary name.
pub struct AtomicOutput {
    sink: Option<Sink>,
    tmp_path: PathBuf,
    target: PathBuf,
    force: bool,
}

impl AtomicOutput {
    /// Refuses an existing target unless `force` (a dangling symbolic link
    /// counts as existing), a directory even with `force`, and a name the file
    /// system cannot hold, all before any work; then creates the temporary file
    /// in the target's directory (so the final rename stays on one file
    /// system). An existing target that is not a regular file (a device, a
    /// FIFO), or a symbolic link to one, is opened and written through instead,
    /// with or without `force`. Without `keeps_mode` (the input is a stream) the
    /// file is created with mode 0666 less the umask, as any new file;
    /// otherwise it is private until [`AtomicOutput::commit`] gives it the
    /// input's owner and permissions.
    pub fn create(target: &Path, force: bool, keeps_mode: bool) -> Result<Self> {
        let cannot = || format!("cannot write {}", target.display());
        match std::fs::symlink_metadata(target) {
            Ok(m) if m.is_dir() => bail!("{}: is a directory", target.display()),
            Ok(_) if is_special(target) => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(target)
                    .with_context(cannot)?;
                return Ok(Self {
                    sink: Some(Sink::Through(BufWriter::with_capacity(1 << 20, f))),
                    tmp_path: PathBuf::new(),
                    target: target.to_path_buf(),
                    force,
                });
            }
            Ok(_) if !force => {
                bail!("{} already exists (use -f to overwrite)", target.display())
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if e.raw_os_error() == Some(libc::ENAMETOOLONG) => {
                bail!("{}: file name too long", target.display())
            }
            Err(e) => return Err(e).with_context(cannot),
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(TMP_PREFIX).suffix(TMP_SUFFIX);
        if !keeps_mode {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let tmp = builder
            .tempfile_in(dir)
            .map_err(without_tmp_name)
            .with_context(cannot)?;
        let tmp_path = tmp.path().to_path_buf();
        IN_FLIGHT.lock().map(|mut l| l.push(tmp_path.clone())).ok();
        Ok(Self {
            sink: Some(Sink::Tmp(BufWriter::with_capacity(1 << 20, tmp))),
            tmp_path,
            target: target.to_path_buf(),
            force,
        })
    }

    /// Whether the output is an existing special file written through (a
    /// device, a FIFO): it keeps no copy of the data, so `--rm` must not
    /// remove the input, as with stdout.
    pub fn is_through(&self) -> bool {
        matches!(self.sink, Some(Sink::Through(_)))
    }

    /// The writer.
    pub fn writer(&mut self) -> &mut dyn Write {
        match self.sink.as_mut().expect("not committed") {
            Sink::Tmp(w) => w,
            Sink::Through(w) => w,
        }
    }

    /// Flushes, syncs, gives the file the input's owner, permissions and
    /// times (`like`), renames it into place. `special_bits`: setuid, setgid
    /// and sticky may be kept (never for a compressed file), and are only when
    /// the owner could be set too.
    pub fn commit(mut self, like: Option<&Metadata>, special_bits: bool) -> Result<()> {
        let tmp = match self.sink.take().expect("not committed") {
            Sink::Through(w) => {
                w.into_inner()
                    .map_err(|e| e.into_error())
                    .with_context(|| format!("cannot write {}", self.target.display()))?;
                return Ok(());
            }
            Sink::Tmp(w) => w,
        };
        let tmp = tmp
            .into_inner()
            .map_err(|e| e.into_error())
            .context("write failed")?;
        if let Some(meta) = like {
            let f = tmp.as_file();
            copy_owner_and_mode(f, meta, special_bits)?;
            let times = std::fs::FileTimes::new()
                .set_modified(meta.modified()?)
                .set_accessed(meta.accessed()?);
            f.set_times(times).context("cannot set modification time")?;
        }
        tmp.as_file().sync_all().context("sync failed")?;
        let res = if self.force {
            tmp.persist(&self.target)
        } else {
            tmp.persist_noclobber(&self.target)
        };
        forget(&self.tmp_path);
        // The target was checked when the work started; only a race with
        // another process can make it exist now. The temporary file is removed.
        match res.map_err(|e| e.error) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
                "{} was created by another process while fade was working; it was not overwritten (use -f to overwrite)",
                self.target.display()
            ),
            r => r.with_context(|| format!("cannot write {}", self.target.display()))?,
        };
        // Make the rename itself durable before anyone deletes the input.
        if let Some(dir) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

/// The prefix and suffix of fade's temporary outputs (`.fade-XXXXXX.tmp`),
/// which `-r` skips: one a `kill -9` left behind is not an input.
pub const TMP_PREFIX: &str = ".fade-";
/// See [`TMP_PREFIX`].
pub const TMP_SUFFIX: &str = ".tmp";

/// A tempfile error without the temporary name it appends (`at path
/// "/dir/.fade-XXXXXX.tmp"`): the user named the target, and the message
/// names that instead.
fn without_tmp_name(e: std::io::Error) -> std::io::Error {
    if e.get_ref().is_none() {
        return e;
    }
    let text = e.to_string();
    let os_part = text
        .split_once(" at path ")
        .map_or(text.as_str(), |(m, _)| m);
    std::io::Error::new(e.kind(), os_part.to_string())
}

/// Whether `name` is one of fade's temporary outputs.
pub fn is_temporary(name: &std::ffi::OsStr) -> bool {
    let n = name.to_string_lossy();
    n.len() == TMP_PREFIX.len() + 6 + TMP_SUFFIX.len()
        && n.starts_with(TMP_PREFIX)
        && n.ends_with(TMP_SUFFIX)
}

/// Whether `p` exists and is (or links to) something other than a regular
/// file or a directory: a device, a FIFO, a socket.
fn is_special(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Gives `f` the owner, group and permissions of `like`, as gzip and zstd
/// do: the owner where this process may set it (root, or a file already of
/// the same owner), else at least the group where it may. Setuid, setgid and
/// sticky survive only when `special_bits` and the owner and group were both
/// set: a file must not become setuid to someone else.
fn copy_owner_and_mode(f: &File, like: &Metadata, special_bits: bool) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::io::AsRawFd;
    let fd = f.as_raw_fd();
    // SAFETY: fchown on a descriptor this process owns; -1 leaves an id as it is.
    let owned = unsafe { libc::fchown(fd, like.uid(), like.gid()) } == 0;
    if !owned {
        // SAFETY: as above.
        let _ = unsafe { libc::fchown(fd, u32::MAX, like.gid()) };
    }
    let mut mode = like.mode() & 0o7777;
    if !(owned && special_bits) {
        mode &= 0o777;
    }
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .context("cannot set permissions")
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        // Dropping the NamedTempFile deletes it; only forget the path here.
        forget(&self.tmp_path);
    }
}

/// Writes to stdout, flushing at the end.
pub fn stdout_writer() -> BufWriter<std::io::Stdout> {
    BufWriter::with_capacity(1 << 20, std::io::stdout())
}

/// True if both paths name the same existing file.
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Flushes a writer, for the stdout path.
pub fn finish_stdout(mut w: impl Write) -> Result<()> {
    w.flush().context("write to stdout failed")
}
