//! Helpers shared by the end-to-end tests: they run the real `fade` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

/// The test preset (tests/data/tiny.toml).
pub fn tiny() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tiny.toml")
        .display()
        .to_string()
}

/// The test preset with every side model (tests/data/tiny-side.toml).
pub fn tiny_side() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tiny-side.toml")
        .display()
        .to_string()
}

/// The benchmark corpus: $FADE_CORPUS or ../shared/corpus beside the repository.
pub fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("FADE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    if dir.join("enwik6").exists() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: benchmark corpus not found at {} (set FADE_CORPUS)",
            dir.display()
        );
        None
    }
}

/// Runs fade with `args` and returns its output.
pub fn fade(args: &[&str]) -> Output {
    fade_env(args, &[])
}

/// Runs fade with extra environment variables. Backtraces are asked for, so the
/// one-line error checks also hold for users who set RUST_BACKTRACE.
pub fn fade_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fade"));
    cmd.args(args).env("RUST_BACKTRACE", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("fade runs")
}

/// Asserts success and returns stdout.
pub fn ok(out: Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "fade failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Asserts exit code 1 with a one-line message containing `needle`.
pub fn fails_with(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected exit 1, stderr: {err}");
    assert!(err.contains(needle), "stderr {err:?} lacks {needle:?}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "error is not one line: {err:?}"
    );
}

/// Pseudo-random bytes (SplitMix64).
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut g = fade::__internals::rng::SplitMix64::new(seed);
    (0..n).map(|_| g.next_u64() as u8).collect()
}

/// Compresses `data` with `preset`, decompresses it, asserts equality, returns the compressed size.
pub fn roundtrip(dir: &Path, name: &str, data: &[u8], preset: &str) -> usize {
    let input = dir.join(name);
    let packed = dir.join(format!("{name}.fade"));
    let unpacked = dir.join(format!("{name}.out"));
    std::fs::write(&input, data).unwrap();
    // One model thread per process: the test harness already runs two tests at once.
    ok(fade(&[
        "-T",
        "1",
        "compress",
        "-p",
        preset,
        input.to_str().unwrap(),
        packed.to_str().unwrap(),
    ]));
    ok(fade(&[
        "-T",
        "1",
        "decompress",
        packed.to_str().unwrap(),
        unpacked.to_str().unwrap(),
    ]));
    let back = std::fs::read(&unpacked).unwrap();
    assert!(
        back == data,
        "{name}: round trip differs ({} vs {} bytes)",
        back.len(),
        data.len()
    );
    std::fs::metadata(&packed).unwrap().len() as usize
}

/// Runs fade with `args`, feeding `stdin` on its standard input.
pub fn fade_stdin(args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fade"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fade runs");
    let mut sin = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = sin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

/// Lines of text, `n` bytes.
pub fn lines(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut i = 0u32;
    while out.len() < n {
        out.extend_from_slice(
            format!("line {i}: the model learns the file as it codes it\n").as_bytes(),
        );
        i += 1;
    }
    out.truncate(n);
    out
}
