//! Which standard streams were closed when fade started (`fade -c f >&-`).
//!
//! Rust's runtime reopens closed standard descriptors on `/dev/null` before
//! `main` (so that a file fade opens never takes descriptor 1), which would
//! make a closed stdout swallow the output and exit 0. A function in
//! `.init_array` runs before that runtime set-up and records which of 0, 1, 2
//! were closed; fade then refuses to use them, as gzip, xz and zstd do.

use std::sync::atomic::{AtomicU8, Ordering};

/// Bit `fd` set: descriptor `fd` was closed at start.
static CLOSED: AtomicU8 = AtomicU8::new(0);

#[cfg(any(target_os = "linux", target_os = "android"))]
extern "C" fn record_closed() {
    let mut bits = 0;
    for fd in 0..3 {
        // SAFETY: F_GETFD only queries the descriptor's flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            bits |= 1 << fd;
        }
    }
    CLOSED.store(bits, Ordering::Relaxed);
}

/// Called by the loader before the Rust runtime starts.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[used]
#[link_section = ".init_array"]
static RECORD_CLOSED: extern "C" fn() = record_closed;

/// Whether standard descriptor `fd` (0, 1 or 2) was closed when fade started.
pub fn was_closed(fd: u8) -> bool {
    CLOSED.load(Ordering::Relaxed) & (1 << fd) != 0
}
