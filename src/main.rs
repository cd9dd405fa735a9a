//! The `fade` command: a thin layer over the library that handles arguments,
//! files, progress and error messages.

/// `eprintln!` that never panics: a diagnostic that cannot be written (a
/// closed or full stderr) is dropped, and the work goes on, as with gzip and
/// zstd. Every message of the command goes through it.
macro_rules! diag {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod cli;

/// candle allocates a fresh buffer for every op; glibc returns large ones to the
/// kernel each time, so most of a step went to page faults. mimalloc keeps them.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let code = match cli::run() {
        Ok(()) => 0,
        // A closed stdout (`fade -dc f | head`) is not an error.
        Err(e) if broken_pipe(&e) => 0,
        Err(e) => {
            let hint = match e.chain().find_map(|c| c.downcast_ref::<fade::Error>()) {
                Some(fade::Error::MemoryLimit { .. }) => " (raise it with --memory-limit)",
                Some(fade::Error::Internal(_)) => {
                    " (a fault of fade, not of the input: please report it)"
                }
                _ => "",
            };
            diag!("fade: {e:#}{hint}");
            1
        }
    };
    std::process::exit(code);
}

/// Whether the error is a write to a closed pipe, raised by the command line
/// (an `std::io::Error`) or by the library (a `fade::Error::Io`).
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let io = c
            .downcast_ref::<std::io::Error>()
            .or_else(|| match c.downcast_ref() {
                Some(fade::Error::Io(io)) => Some(io),
                _ => None,
            });
        io.is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
