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
    /// The frame was produced on a device whose arithmetic this one does not reproduce.
    #[error("device mismatch: {0}")]
    Device(String),
    /// The tensor library failed.
    #[error("model: {0}")]
    Model(#[from] candle_core::Error),
    /// fade itself failed (a thread died, a step out of order): not the input's fault.
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Result with the library's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

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
