//! The `fade` command: a thin layer over the library that handles arguments,
//! files, progress and error messages.

mod cli;

/// candle allocates a fresh buffer for every op; glibc returns large ones to the
/// kernel each time, so most of a step went to page faults. mimalloc keeps them.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let code = match cli::run() {
        Ok(()) => 0,
        Err(e) => {
            // A closed stdout (`fade -dc f | head`) is not an error.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                0
            } else {
                eprintln!("fade: {e:#}");
                1
            }
        }
    };
    std::process::exit(code);
}
