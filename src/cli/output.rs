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

/// On SIGINT, SIGTERM or SIGHUP: remove every temporary output, exit 130.
pub fn install_signal_cleanup() {
    let _ = ctrlc::set_handler(|| {
        if let Ok(list) = IN_FLIGHT.lock() {
            for p in list.iter() {
                let _ = std::fs::remove_file(p);
            }
        }
        eprintln!("fade: interrupted");
        std::process::exit(130);
    });
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
    /// Refuses an existing target unless `force`, then creates the temporary file
    /// in the target's directory (so the final rename stays on one file system).
    pub fn create(target: &Path, force: bool) -> Result<Self> {
        if target.exists() && !force {
            bail!("{} already exists (use -f to overwrite)", target.display());
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".fade-")
            .suffix(".tmp")
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
        res.map_err(|e| e.error)
            .with_context(|| format!("cannot write {}", self.target.display()))?;
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
