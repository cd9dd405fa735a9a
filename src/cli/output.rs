//! Atomic output: write beside the target, sync, then rename.
//!
//! The temporary file is deleted if anything fails before [`AtomicOutput::commit`],
//! and on SIGINT/SIGTERM/SIGHUP by the handler installed with [`install_signal_cleanup`],
//! so a failed or interrupted run never leaves a partial file.

use anyhow::{bail, Context, Result};
use std::fs::{File, Metadata};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tempfile::NamedTempFile;

/// Temporary files in flight, removed by the signal handler.
static IN_FLIGHT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The signals whose handler removes temporary outputs.
const CLEANUP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// On SIGINT, SIGTERM or SIGHUP: remove every temporary output, exit 130.
/// A signal the caller chose to ignore (`nohup fade big &`) stays ignored, as
/// with gzip.
pub fn install_signal_cleanup() {
    let ignored: Vec<libc::c_int> = CLEANUP_SIGNALS
        .into_iter()
        .filter(|&sig| {
            // SAFETY: a null new action only reads the current disposition.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            let rc = unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
            rc == 0 && old.sa_sigaction == libc::SIG_IGN
        })
        .collect();
    let _ = ctrlc::set_handler(|| {
        if let Ok(list) = IN_FLIGHT.lock() {
            for p in list.iter() {
                let _ = std::fs::remove_file(p);
            }
        }
        eprintln!("fade: interrupted");
        std::process::exit(130);
    });
    for sig in ignored {
        // SAFETY: restores the disposition the process started with.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
}

fn forget(path: &Path) {
    if let Ok(mut list) = IN_FLIGHT.lock() {
        list.retain(|p| p != path);
    }
}

/// A file being written under a temporary name.
pub struct AtomicOutput {
    tmp: Option<BufWriter<NamedTempFile>>,
    tmp_path: PathBuf,
    target: PathBuf,
    force: bool,
}

impl AtomicOutput {
    /// Refuses an existing target unless `force` (a dangling symbolic link
    /// counts as existing), a directory even with `force`, and a name the file
    /// system cannot hold, all before any work; then creates the temporary file
    /// in the target's directory (so the final rename stays on one file
    /// system). Without `keeps_mode` (the input is a stream) the file is
    /// created with mode 0666 less the umask, as any new file; otherwise it is
    /// private until [`AtomicOutput::commit`] gives it the input's permissions.
    pub fn create(target: &Path, force: bool, keeps_mode: bool) -> Result<Self> {
        match std::fs::symlink_metadata(target) {
            Ok(m) if m.is_dir() => bail!("{}: is a directory", target.display()),
            Ok(_) if !force => {
                bail!("{} already exists (use -f to overwrite)", target.display())
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if e.raw_os_error() == Some(libc::ENAMETOOLONG) => {
                bail!("{}: file name too long", target.display())
            }
            Err(e) => return Err(e).with_context(|| format!("cannot write {}", target.display())),
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(".fade-").suffix(".tmp");
        if !keeps_mode {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let tmp = builder
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
        let tmp_path = tmp.path().to_path_buf();
        IN_FLIGHT.lock().map(|mut l| l.push(tmp_path.clone())).ok();
        Ok(Self {
            tmp: Some(BufWriter::with_capacity(1 << 20, tmp)),
            tmp_path,
            target: target.to_path_buf(),
            force,
        })
    }

    /// The writer.
    pub fn writer(&mut self) -> &mut BufWriter<NamedTempFile> {
        self.tmp.as_mut().expect("not committed")
    }

    /// Flushes, syncs, copies the input's permissions and times, renames into place.
    pub fn commit(mut self, like: Option<&Metadata>) -> Result<()> {
        let tmp = self.tmp.take().expect("not committed");
        let tmp = tmp
            .into_inner()
            .map_err(|e| e.into_error())
            .context("write failed")?;
        if let Some(meta) = like {
            let f = tmp.as_file();
            f.set_permissions(meta.permissions())
                .context("cannot set permissions")?;
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
