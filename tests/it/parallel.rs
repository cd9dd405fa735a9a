//! GNU parallel as a many-core and many-machine front end (docs/PARALLEL.md, "Many
//! cores and many machines"): frames concatenate, so blocks compressed by
//! separate fade processes and joined in order form one valid file.
//! Skips visibly when `parallel` is not installed (CI installs it).

use crate::common::*;
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
    // Four blocks of 2 KB (the tiny model codes about 30 µs a byte, and
    // every case below codes or decodes the whole input).
    let data = lines(7_000);
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
    let t1 = packed(&["-T1", "--block-size", "2k"], "t1.fade");
    let t2 = packed(&["-T2", "--block-size", "2k"], "t2.fade");
    let t0 = packed(&["-T0", "--block-size", "2k"], "t0.fade");
    assert_eq!(frames_of(&one), 1);
    assert_eq!(frames_of(&t2), data.len().div_ceil(2000));
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
    std::fs::write(&small, &data[..1500]).unwrap();
    let s = small.to_str().unwrap();
    let a = ok(fade(&["-q", "-c", "-p", &t, s]));
    let b = ok(fade(&[
        "-q",
        "-c",
        "-p",
        &t,
        "-T2",
        "--block-size",
        "2k",
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

/// Issue 25, item 3: a multi-frame file (-T, --block-size) checks itself. Cut
/// at any frame boundary, or with a frame dropped, repeated or swapped, or
/// its index removed, it is refused by -d (frames in parallel, one at a
/// time, and from a pipe), -t and -l, with one line; whole files still
/// concatenate.
#[test]
fn a_multi_frame_file_cut_or_reordered_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    // Four frames, as 25,000 bytes in 8 KB blocks give (three whole, one
    // short), at a quarter of the size: the 50 decodings below are the cost.
    let data = lines(7_000);
    std::fs::write(&f, &data).unwrap();
    let t = tiny();
    // A file coded in 2 KB blocks, and where its frames lie.
    let sequence = |p: &std::path::Path| {
        let packed = ok(fade(&[
            "-q",
            "-c",
            "-p",
            &t,
            "-T2",
            "--block-size",
            "2k",
            p.to_str().unwrap(),
        ]));
        let spans = fade::__internals::engine::frames(&mut std::io::Cursor::new(&packed)).unwrap();
        (packed, spans)
    };
    let (packed, spans) = sequence(&f);
    assert_eq!(spans.len(), 4);
    let frame = |i: usize| {
        let s = &spans[i];
        packed[s.offset as usize..(s.offset + s.len) as usize].to_vec()
    };
    let index_at = (spans[3].offset + spans[3].len) as usize;
    let index = packed[index_at..].to_vec();
    assert_eq!(spans[3].trailer as usize, index.len());
    let join = |parts: &[Vec<u8>]| parts.concat();
    let (f0, f1, f2, f3) = (frame(0), frame(1), frame(2), frame(3));
    let mut bad: Vec<(&str, Vec<u8>)> = Vec::new();
    for s in &spans[1..] {
        bad.push(("cut at a frame", packed[..s.offset as usize].to_vec()));
    }
    bad.push(("index removed", packed[..index_at].to_vec()));
    bad.push((
        "frame dropped",
        join(&[f0.clone(), f2.clone(), f3.clone(), index.clone()]),
    ));
    bad.push((
        "first frame dropped",
        join(&[f1.clone(), f2.clone(), f3.clone(), index.clone()]),
    ));
    bad.push((
        "frame repeated",
        join(&[
            f0.clone(),
            f1.clone(),
            f1.clone(),
            f2.clone(),
            f3.clone(),
            index.clone(),
        ]),
    ));
    bad.push((
        "frames swapped",
        join(&[
            f0.clone(),
            f2.clone(),
            f1.clone(),
            f3.clone(),
            index.clone(),
        ]),
    ));
    bad.push(("index repeated", join(&[packed.clone(), index.clone()])));
    bad.push(("index alone", index.clone()));
    let file = dir.path().join("bad.fade");
    let fs = file.to_str().unwrap();
    for (what, bytes) in &bad {
        std::fs::write(&file, bytes).unwrap();
        for args in [&["-dc", "-T2"][..], &["-dc", "-T1"], &["-t"], &["-l"]] {
            let mut a = args.to_vec();
            a.push(fs);
            let out = fade(&a);
            assert_eq!(out.status.code(), Some(1), "{what} {args:?} passed");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(err.trim_end().lines().count(), 1, "{what} {args:?}: {err}");
        }
        let out = fade_stdin(&["-dc"], bytes);
        assert_eq!(out.status.code(), Some(1), "{what} from a pipe passed");
    }
    // Whole files concatenate: sequences, and a sequence beside a frame of
    // its own.
    let single = ok(fade_stdin(&["-q", "-c", "-p", &t], b"a frame of its own"));
    let both = join(&[packed.clone(), single.clone(), packed.clone()]);
    std::fs::write(&file, &both).unwrap();
    let mut want = data.clone();
    want.extend_from_slice(b"a frame of its own");
    want.extend_from_slice(&data);
    for args in [&["-dc", "-T2"][..], &["-dc", "-T1"]] {
        let mut a = args.to_vec();
        a.push(fs);
        assert_eq!(ok(fade(&a)), want, "{args:?}");
    }
    assert_eq!(ok(fade_stdin(&["-dc"], &both)), want);
    ok(fade(&["-t", fs]));
    let listed = String::from_utf8(ok(fade(&["-l", fs]))).unwrap();
    assert!(listed.contains(&format!(" {} ", both.len())), "{listed}");
    // The whole-content checksum is checked too: frames of another sequence
    // with the same lengths do not pass for these.
    let other = lines(7_000)
        .iter()
        .map(|b| b.to_ascii_uppercase())
        .collect::<Vec<u8>>();
    let of = dir.path().join("other");
    std::fs::write(&of, &other).unwrap();
    let (packed2, spans2) = sequence(&of);
    if spans2[1].len == spans[1].len {
        let s = &spans2[1];
        let g1 = packed2[s.offset as usize..(s.offset + s.len) as usize].to_vec();
        let mixed = join(&[f0, g1, f2, f3, index]);
        std::fs::write(&file, &mixed).unwrap();
        let out = fade(&["-dc", "-T2", fs]);
        assert_eq!(out.status.code(), Some(1), "a foreign frame passed");
    }
}
