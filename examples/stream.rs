//! Compresses standard input to standard output with fade's streaming
//! `Encoder`, or with `-d` decompresses it with the `Decoder`:
//!
//! ```sh
//! cargo run --release --example stream -- -1 < notes.txt > notes.txt.fade
//! cargo run --release --example stream -- -d < notes.txt.fade > notes.txt
//! ```
//!
//! `-1` .. `-5` pick the level (default 3), as with the `fade` command.

use std::io::{self, Write};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "-3".into());
    let mut input = io::stdin().lock();
    let mut output = io::stdout().lock();
    if arg == "-d" {
        // Every frame of the input, checked as it is read.
        let mut dec = fade::Decoder::new(input);
        io::copy(&mut dec, &mut output)?;
        output.flush()?;
    } else {
        let level = match arg.strip_prefix('-').map(str::parse) {
            Some(Ok(level)) => level,
            _ => {
                return Err(
                    format!("usage: stream [-1 .. -5 | -d] < in > out (not {arg:?})").into(),
                )
            }
        };
        // The input is coded a segment (4 MiB) at a time: memory stays
        // bounded whatever its length. `finish` writes the frame's end.
        let mut enc = fade::Encoder::new(output, level)?;
        io::copy(&mut input, &mut enc)?;
        enc.finish()?.flush()?;
    }
    Ok(())
}
