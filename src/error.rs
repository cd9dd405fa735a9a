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
    /// A frame header, its checksum intact, asks for a model this build does
    /// not support: a size outside the range of its field (listed in
    /// docs/FORMAT.md), or a built-in preset with larger tables than its own.
    /// Refused before anything is built; the message names the field.
    #[error("unsupported model settings ({0})")]
    Unsupported(String),
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
    /// The device asked for cannot be used here: a build without CUDA
    /// support, or a GPU that does not open.
    #[error("{0}")]
    DeviceUnavailable(String),
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
    Model(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Reading or writing failed.
    #[error(transparent)]
    Io(io::Error),
}

/// The tensor library's errors become [`Error::Model`] inside the crate; no
/// candle type appears in fade's public API, so its versions are fade's own
/// business.
pub(crate) fn model_error(e: candle_core::Error) -> Error {
    Error::Model(Box::new(e))
}

/// An [`io::Error`] that carries a fade [`Error`] (as the [`crate::Encoder`]
/// and [`crate::Decoder`] return them) gives that error back; any other is
/// [`Error::Io`].
impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        if !e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            return Error::Io(e);
        }
        let inner = e.into_inner().expect("a custom error");
        *inner.downcast::<Error>().expect("a fade::Error")
    }
}

/// A fade [`Error`] as an [`io::Error`], for the [`std::io::Read`] and
/// [`std::io::Write`] implementations: [`Error::Io`] is the I/O error itself;
/// any other is carried inside one whose kind says what it is
/// ([`io::ErrorKind::InvalidData`] for damaged input,
/// [`io::ErrorKind::UnexpectedEof`] for [`Error::Truncated`], ...), and
/// `fade::Error::from` gets it back.
impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(io) => io,
            e => io::Error::new(e.io_kind(), e),
        }
    }
}

/// Result with the library's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// A byte count in binary units ("1.5 GiB"), for messages.
pub fn human(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

impl Error {
    /// The [`io::ErrorKind`] this error has as an [`io::Error`].
    pub fn io_kind(&self) -> io::ErrorKind {
        use io::ErrorKind as K;
        match self {
            Error::Io(e) => e.kind(),
            Error::NotFade
            | Error::UnsupportedVersion(_)
            | Error::Corrupt(_)
            | Error::ChecksumMismatch => K::InvalidData,
            Error::Unsupported(_) => K::Unsupported,
            Error::Truncated => K::UnexpectedEof,
            Error::InputChanged => K::InvalidInput,
            Error::Preset(_) => K::InvalidInput,
            Error::Device(_) | Error::DeviceUnavailable(_) => K::Unsupported,
            Error::MemoryLimit { .. } => K::OutOfMemory,
            Error::Internal(_) | Error::Model(_) => K::Other,
        }
    }

    /// Maps an I/O "unexpected EOF" onto [`Error::Truncated`], leaving other errors alone.
    pub(crate) fn from_read(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Error::Truncated
        } else {
            Error::from(e)
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
