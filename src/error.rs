//! Typed errors of the library.
//!
//! Every way a `.fade` stream can be rejected has its own variant with a short,
//! stable message: scripts match on these words, so they change only with the
//! format version.

use std::io;

/// Everything the library can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input does not start with the fade magic number.
    #[error("not a fade file")]
    NotFade,
    /// The frame was written by a format version this build cannot read.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// The input ended in the middle of a frame.
    #[error("unexpected end of input")]
    Truncated,
    /// A structural check failed (reserved bits, impossible lengths, header
    /// checksum, a range decoder that left its interval).
    #[error("corrupt data ({0})")]
    Corrupt(&'static str),
    /// Everything decoded, but the content checksum differs.
    #[error("checksum mismatch")]
    ChecksumMismatch,
    /// A preset file or name that cannot be used.
    #[error("invalid preset: {0}")]
    Preset(String),
    /// The input did not yield the length announced when compression started
    /// (a file that grew, shrank or was replaced while it was read).
    #[error("file changed as we read it (its length is not the one it had at the start)")]
    InputChanged,
    /// The frame was produced on a device whose arithmetic this one does not reproduce.
    #[error("device mismatch: {0}")]
    Device(String),
    /// Decoding (or compressing with) these settings would need more memory
    /// than the caller allows. Both figures are in bytes.
    #[error("needs about {} of memory, above the limit of {}", human(*.needed), human(*.limit))]
    MemoryLimit {
        /// The estimate for the frame's settings (see [`crate::Preset::memory_needed`]).
        needed: u64,
        /// The limit in force.
        limit: u64,
    },
    /// A fault of fade itself, not of its input: a worker thread that panicked
    /// or stopped. The input may be fine; please report it.
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// The tensor library failed.
    #[error("model: {0}")]
    Model(#[from] candle_core::Error),
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Result with the library's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// A byte count in binary units ("1.5 GiB"), for messages.
pub fn human(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

impl Error {
    /// Maps an I/O "unexpected EOF" onto [`Error::Truncated`], leaving other errors alone.
    pub(crate) fn from_read(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Error::Truncated
        } else {
            Error::Io(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "corrupt data" is for bad input only; fade's own faults and the memory
    /// limit say what they are, with both figures.
    #[test]
    fn internal_faults_and_limits_have_their_own_wording() {
        let e = Error::Internal("coder thread panicked").to_string();
        assert_eq!(e, "internal error: coder thread panicked");
        let e = Error::MemoryLimit {
            needed: 3 << 30,
            limit: 1 << 30,
        }
        .to_string();
        assert!(
            e.contains("3") && e.contains("1") && e.contains("GiB"),
            "{e}"
        );
        assert!(!e.contains("corrupt"));
    }
}
