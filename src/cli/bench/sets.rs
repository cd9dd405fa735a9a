//! The named sets of `fade bench --set`: the project's development corpora,
//! found under `$FADE_CORPUS` (or `../shared/corpus`, where a checkout of the
//! project keeps them), so that a figure quoted for "the quick set" is one
//! command anyone can repeat.
//!
//! - `quick`: the first MiB of each Silesia file and of enwik6;
//! - `128k`: the first 128 KiB of the same files;
//! - `backup`: the files of `backup/` (a source tar, HTML, JSON, a log, a
//!   file listing, a shared library), whole.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// The names `--set` accepts.
pub const NAMES: [&str; 3] = ["quick", "128k", "backup"];

/// A named set: its files, and how much of each is read.
#[derive(Debug)]
pub struct Set {
    pub files: Vec<PathBuf>,
    pub prefix: Option<u64>,
}

/// The set called `name`, from the corpus folder.
pub fn resolve(name: &str) -> Result<Set> {
    let root = corpus()?;
    let silesia_and_enwik = || -> Result<Vec<PathBuf>> {
        let mut files = files_in(&root.join("silesia"))?;
        files.push(root.join("enwik6"));
        Ok(files)
    };
    let (files, prefix) = match name {
        "quick" => (silesia_and_enwik()?, Some(1 << 20)),
        "128k" => (silesia_and_enwik()?, Some(128 << 10)),
        "backup" => (files_in(&root.join("backup"))?, None),
        _ => bail!("no set {name:?} (sets are {})", NAMES.join(", ")),
    };
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        bail!("set {name}: {} is missing", missing.display());
    }
    Ok(Set { files, prefix })
}

/// `$FADE_CORPUS`, else `../shared/corpus` if it exists.
fn corpus() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("FADE_CORPUS") {
        return Ok(PathBuf::from(dir));
    }
    let beside = Path::new("../shared/corpus");
    if beside.is_dir() {
        return Ok(beside.to_path_buf());
    }
    bail!("named sets need the corpus: set FADE_CORPUS to the folder holding silesia/, enwik6 and backup/")
}

/// The data files of `dir`, sorted (as `fade bench DIR` takes them): its
/// README and checksum list are not data.
fn files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let files = super::expand(&[dir.to_path_buf()])?;
    Ok(files
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap_or_default();
            name != "README.md" && name != "SHA256SUMS"
        })
        .collect())
}
