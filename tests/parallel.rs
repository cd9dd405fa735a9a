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
    let frames = frames_of(p);
    assert!(frames >= 3, "expected a frame per 3 KB block, got {frames}");
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

/// Frames in a fade file, from `fade -l`.
fn frames_of(path: &str) -> usize {
    let listing = String::from_utf8(ok(fade(&["-l", path]))).unwrap();
    listing
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(4)
        .unwrap()
        .parse()
        .unwrap()
}

/// `-T N` cuts the input into blocks of --block-size, one frame each, written
/// in input order; the output does not depend on N, and decoding (several
/// frames at once, or one at a time with -T1, or from a pipe) gives the input.
/// Without -T the whole input is one frame.
#[test]
fn threads_code_blocks_as_frames_independent_of_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    let data = lines(25_000);
    std::fs::write(&f, &data).unwrap();
    let fs = f.to_str().unwrap();
    let t = tiny();
    let packed = |args: &[&str], name: &str| {
        let out = dir.path().join(name);
        let o = out.to_str().unwrap().to_string();
        let mut a = vec!["-q", "-k", "-p", &t, "-o", &o];
        a.extend_from_slice(args);
        a.push(fs);
        ok(fade(&a));
        o
    };
    let one = packed(&[], "one.fade");
    let t1 = packed(&["-T1", "--block-size", "8k"], "t1.fade");
    let t2 = packed(&["-T2", "--block-size", "8k"], "t2.fade");
    let t0 = packed(&["-T0", "--block-size", "8k"], "t0.fade");
    assert_eq!(frames_of(&one), 1);
    assert_eq!(frames_of(&t2), data.len().div_ceil(8000));
    let bytes = |p: &str| std::fs::read(p).unwrap();
    assert_eq!(bytes(&t1), bytes(&t2), "output depends on the thread count");
    assert_eq!(bytes(&t0), bytes(&t2), "output depends on the thread count");
    assert_ne!(bytes(&one), bytes(&t2));
    for args in [
        &["-dc"][..],
        &["-dc", "-T1"],
        &["-dc", "-T2"],
        &["-dc", "-T3"],
    ] {
        let mut a = args.to_vec();
        a.push(&t2);
        assert_eq!(ok(fade(&a)), data, "{args:?}");
    }
    assert_eq!(ok(fade_stdin(&["-dc"], &bytes(&t2))), data);
    ok(fade(&["-t", &t2]));
    // An input shorter than a block is the same single frame as without -T.
    let small = dir.path().join("small");
    std::fs::write(&small, &data[..5000]).unwrap();
    let s = small.to_str().unwrap();
    let a = ok(fade(&["-q", "-c", "-p", &t, s]));
    let b = ok(fade(&[
        "-q",
        "-c",
        "-p",
        &t,
        "-T2",
        "--block-size",
        "8k",
        s,
    ]));
    assert_eq!(a, b);
}

/// A damaged frame in the middle of a multi-frame file fails decoding with
/// one line and leaves no output, also when frames decode in parallel.
#[test]
fn a_damaged_block_fails_parallel_decoding_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, lines(25_000)).unwrap();
    let t = tiny();
    let fs = f.to_str().unwrap();
    ok(fade(&["-q", "-p", &t, "-T2", "--block-size", "8k", fs]));
    let packed = dir.path().join("f.fade");
    std::fs::remove_file(&f).unwrap();
    let mut bytes = std::fs::read(&packed).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&packed, &bytes).unwrap();
    let out = fade(&["-d", "-T2", "-f", packed.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .trim_end()
            .lines()
            .count(),
        1
    );
    assert!(!f.exists(), "partial output left behind");
}

/// The memory check counts one model per thread: a limit that admits one
/// model refuses two.
#[test]
fn threads_multiply_the_memory_needed() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, lines(25_000)).unwrap();
    let t = tiny();
    let fs = f.to_str().unwrap();
    let p = fade::Preset::parse(&std::fs::read_to_string(&t).unwrap()).unwrap();
    let one = p.memory_needed();
    let limit = (one + one / 2).to_string();
    let base = [
        "-q",
        "-c",
        "-p",
        &t,
        "--block-size",
        "8k",
        "--memory-limit",
        &limit,
    ];
    let mut a = base.to_vec();
    a.extend(["-T1", fs]);
    ok(fade(&a));
    let mut a = base.to_vec();
    a.extend(["-T2", fs]);
    fails_with(&fade(&a), "needs about");
}
