//! Atomic output: write beside the target, sync, then rename.
//!
//! The temporary file is deleted if anything fails before [`AtomicOutput::commit`],
//! so an interrupted or failed run never leaves a partial file under the target name.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// A file being written under a temporary name.
pub struct AtomicOutput {
    tmp: BufWriter<NamedTempFile>,
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
        Ok(Self {
            tmp: BufWriter::with_capacity(1 << 20, tmp),
            target: target.to_path_buf(),
            force,
        })
    }

    /// The writer.
    pub fn writer(&mut self) -> &mut impl Write {
        &mut self.tmp
    }

    /// Flushes, syncs and renames into place.
    pub fn commit(self) -> Result<File> {
        let tmp = self
            .tmp
            .into_inner()
            .map_err(|e| e.into_error())
            .context("write failed")?;
        tmp.as_file().sync_all().context("sync failed")?;
        let file = if self.force {
            tmp.persist(&self.target)
        } else {
            tmp.persist_noclobber(&self.target)
        }
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", self.target.display()))?;
        Ok(file)
    }
}
