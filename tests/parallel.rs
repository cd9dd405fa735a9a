//! GNU parallel as a many-core and many-machine front end (README, "Many
//! cores and many machines"): frames concatenate, so blocks compressed by
//! separate fade processes and joined in order form one valid file.
//! Skips visibly when `parallel` is not installed (CI installs it).

mod common;
use common::*;
use std::process::Command;

fn parallel_installed() -> bool {
    let found = Command::new("parallel")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: GNU parallel not installed (apt-get install parallel)");
    }
    found
}

/// `parallel --pipe --block N -k fade -c < big > big.fade`: one frame per
/// block, in input order; the result passes `fade -t` and decodes to the input.
#[test]
fn parallel_pipe_blocks_round_trip() {
    if !parallel_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    let data = lines(12_000);
    std::fs::write(&big, &data).unwrap();
    let packed = dir.path().join("big.fade");
    let script = format!(
        "parallel --will-cite --pipe --block 3k -k {} -q -T 1 -c -p {} < {} > {}",
        env!("CARGO_BIN_EXE_fade"),
        tiny(),
        big.display(),
        packed.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = packed.to_str().unwrap();
    ok(fade(&["-t", p]));
    let listing = String::from_utf8(ok(fade(&["-l", p]))).unwrap();
    let frames: usize = listing
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(4)
        .unwrap()
        .parse()
        .unwrap();
    assert!(frames >= 3, "expected a frame per 3 KB block: {listing}");
    assert_eq!(ok(fade(&["-dc", p])), data);
}

/// `parallel fade ::: files`: one fade per file, each writing FILE.fade.
#[test]
fn parallel_over_files() {
    if !parallel_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = (0..3)
        .map(|i| {
            let f = dir.path().join(format!("f{i}"));
            std::fs::write(&f, lines(800 + 300 * i)).unwrap();
            f
        })
        .collect();
    let mut cmd = Command::new("parallel");
    cmd.args([
        "--will-cite",
        env!("CARGO_BIN_EXE_fade"),
        "-q",
        "-T",
        "1",
        "-p",
    ])
    .arg(tiny())
    .arg(":::")
    .args(&files);
    assert!(cmd.status().unwrap().success());
    for (i, f) in files.iter().enumerate() {
        let packed = format!("{}.fade", f.display());
        assert_eq!(ok(fade(&["-dc", &packed])), lines(800 + 300 * i));
    }
}
