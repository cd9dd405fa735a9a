//! The command line as users drive it: streams, file safety, subcommands,
//! gzip-style forms, integrity checks. Every test runs the real binary.

use crate::common::*;
use std::io::Read;
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fade"))
}

fn text(n: usize) -> Vec<u8> {
    b"Stream me through a pipe, keep my bytes exact; "
        .iter()
        .cycle()
        .take(n)
        .cloned()
        .collect()
}

/// Runs fade with `args`, feeding `stdin`, returning the output.
fn piped(args: &[&str], stdin: &[u8]) -> std::process::Output {
    fade_stdin(args, stdin)
}

#[test]
fn stdin_to_stdout_both_ways() {
    let data = text(5000);
    let packed = ok(piped(&["compress", "-p", &tiny(), "-", "-"], &data));
    assert_eq!(&packed[..4], b"\x89FDE");
    assert_eq!(ok(piped(&["decompress", "-", "-"], &packed)), data);
    // No operands at all also means stdin to stdout; -c forces stdout.
    let packed2 = ok(piped(&["compress", "-p", &tiny()], &data));
    assert_eq!(packed, packed2);
    assert_eq!(ok(piped(&["-d", "-c"], &packed)), data);
}

#[test]
fn stream_and_file_inputs_give_the_same_frame_but_for_the_length() {
    let dir = tempfile::tempdir().unwrap();
    let data = text(9000); // several 4096-byte segments of the tiny preset
    let f = dir.path().join("f");
    let from_file = |content: &[u8]| {
        std::fs::write(&f, content).unwrap();
        ok(fade(&[
            "compress",
            "-c",
            "-p",
            &tiny(),
            f.to_str().unwrap(),
        ]))
    };
    let from_pipe = ok(piped(&["compress", "-p", &tiny()], &data));
    // The same frame, but a file's length is known at the start and goes
    // into the header (zstd does the same), a pipe's is not.
    let split = |v: &[u8]| {
        let mut rest = &v[1..];
        let h = fade::__internals::format::FrameHeader::read_after(v[0], &mut rest).unwrap();
        (h, rest.to_vec())
    };
    let (hf, body_f) = split(&from_file(&data));
    let (hp, body_p) = split(&from_pipe);
    assert_eq!(body_f, body_p);
    assert_eq!((hf.content_size, hp.content_size), (Some(9000), None));
    assert_eq!((hf.preset, hf.fingerprint), (hp.preset, hp.fingerprint));
    // Shorter than a segment, a pipe's length is known too: identical.
    let short = &data[..3000];
    assert_eq!(
        from_file(short),
        ok(piped(&["compress", "-p", &tiny()], short))
    );
}

#[test]
fn gzip_style_forms_keep_or_remove_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("notes.txt");
    let data = text(3000);
    std::fs::write(&f, &data).unwrap();
    let packed = dir.path().join("notes.txt.fade");
    // `fade FILE` writes FILE.fade and keeps FILE.
    ok(fade(&["-p", &tiny(), f.to_str().unwrap()]));
    assert!(packed.exists() && f.exists());
    // `fade -d FILE.fade` refuses to clobber FILE, then with --rm replaces the pair.
    fails_with(
        &fade(&["-d", packed.to_str().unwrap()]),
        "already exists (use -f to overwrite)",
    );
    std::fs::remove_file(&f).unwrap();
    ok(fade(&["-d", "--rm", packed.to_str().unwrap()]));
    assert_eq!(std::fs::read(&f).unwrap(), data);
    assert!(!packed.exists(), "--rm kept the input");
    // -k keeps (the default), --rm on compress removes only after success.
    ok(fade(&["-k", "-p", &tiny(), f.to_str().unwrap()]));
    assert!(f.exists());
    std::fs::remove_file(&packed).unwrap();
    ok(fade(&["--rm", "-p", &tiny(), f.to_str().unwrap()]));
    assert!(!f.exists() && packed.exists());
    // -t and -l.
    ok(fade(&["-t", packed.to_str().unwrap()]));
    let listing = String::from_utf8(ok(fade(&["-l", packed.to_str().unwrap()]))).unwrap();
    assert!(
        listing.contains("tiny") && listing.contains("3000") && listing.contains("xxh3-64"),
        "{listing}"
    );
    // Unknown suffix on -d is refused.
    fails_with(
        &fade(&["-d", dir.path().join("x.gz").to_str().unwrap()]),
        "unknown suffix",
    );
}

#[test]
fn test_and_list_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a");
    std::fs::write(&f, text(2000)).unwrap();
    let p = dir.path().join("a.fade");
    ok(fade(&[
        "compress",
        "-p",
        &tiny(),
        f.to_str().unwrap(),
        p.to_str().unwrap(),
    ]));
    let out = fade(&["-v", "test", p.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("OK (2000 bytes"));
    ok(out);
    let listing = String::from_utf8(ok(fade(&["list", p.to_str().unwrap()]))).unwrap();
    assert!(
        listing.lines().nth(1).unwrap().starts_with("tiny"),
        "{listing}"
    );
    // test on a damaged file fails and writes nothing anywhere.
    let mut bad = std::fs::read(&p).unwrap();
    let n = bad.len();
    bad[n - 30] ^= 0x80;
    std::fs::write(&p, &bad).unwrap();
    let before: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    let out = fade(&["test", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), before.len());
}

#[test]
fn input_equal_to_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("same");
    std::fs::write(&f, b"data").unwrap();
    fails_with(
        &fade(&["compress", "-f", f.to_str().unwrap(), f.to_str().unwrap()]),
        "input and output are the same file",
    );
    assert_eq!(std::fs::read(&f).unwrap(), b"data");
}

#[test]
fn permissions_and_mtime_are_kept() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("p");
    std::fs::write(&f, text(500)).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(old)
        .unwrap();
    ok(fade(&["-p", &tiny(), f.to_str().unwrap()]));
    let m = std::fs::metadata(dir.path().join("p.fade")).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o640);
    assert_eq!(m.modified().unwrap(), old);
}

#[test]
fn terminals_are_refused_without_force() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no `script` to provide a terminal");
        return;
    }
    // `script` runs the command on a pseudo-terminal.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("t");
    std::fs::write(&f, b"to a terminal").unwrap();
    let cmd = format!(
        "{} compress -c -p {} {}",
        env!("CARGO_BIN_EXE_fade"),
        tiny(),
        f.display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&out.stdout);
    assert!(
        all.contains("refusing to write compressed data to a terminal"),
        "{all}"
    );
    assert_eq!(out.status.code(), Some(1));
    let cmd = format!("{} decompress", env!("CARGO_BIN_EXE_fade"));
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&out.stdout);
    assert!(
        all.contains("refusing to read compressed data from a terminal"),
        "{all}"
    );
}

#[test]
fn broken_pipe_is_quiet_success() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big");
    let data = text(40_000);
    std::fs::write(&f, &data).unwrap();
    let p = dir.path().join("big.fade");
    ok(fade(&[
        "compress",
        "-p",
        &tiny(),
        f.to_str().unwrap(),
        p.to_str().unwrap(),
    ]));
    let mut child = bin()
        .args(["-d", "-c", p.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take()); // like `| head -c 10`
    let out = child.wait_with_output().unwrap();
    assert_eq!(&first, &data[..10]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn interrupt_leaves_no_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("slow");
    std::fs::write(&f, random_bytes(1 << 20, 3)).unwrap();
    let out = dir.path().join("slow.fade");
    let mut cmd = bin();
    cmd.args(["-q", "compress", f.to_str().unwrap(), out.to_str().unwrap()]);
    // A test run started in the background of a non-interactive shell has
    // SIGINT ignored, which fade (like gzip) keeps: give the child the
    // default disposition, as a terminal's foreground job has.
    // SAFETY: `signal` is async-signal-safe, as `pre_exec` requires.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait_with_output().unwrap().status;
    assert!(!status.success());
    assert!(!out.exists(), "partial output left");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    assert_eq!(names, vec!["slow".to_string()], "leftovers: {names:?}");
}

#[test]
fn concatenated_files_decompress_to_concatenated_content() {
    let a = text(1500);
    let b = random_bytes(700, 9);
    let pa = ok(piped(&["compress", "-p", &tiny()], &a));
    let pb = ok(piped(&["compress", "-p", &tiny()], &b));
    let both = [pa.clone(), pb].concat();
    assert_eq!(ok(piped(&["decompress"], &both)), [a, b].concat());
    let out = piped(&["decompress"], &[pa, b"trailing junk".to_vec()].concat());
    fails_with(&out, "trailing garbage");
}

#[test]
fn incompressible_input_is_stored_with_tiny_overhead() {
    // 64 KiB: the model still codes every byte before the block is stored,
    // so the size is what the test costs (256 KiB cost four times this).
    let data = random_bytes(64 * 1024, 4);
    let packed = ok(piped(&["compress"], &data));
    let limit = data.len() + data.len() / 1000 + 256;
    assert!(
        packed.len() < limit,
        "{} bytes for 64 KiB of random data (limit {limit})",
        packed.len()
    );
    assert_eq!(ok(piped(&["decompress"], &packed)), data);
}

#[test]
fn every_truncation_fails_cleanly() {
    let packed = ok(piped(&["compress", "-p", &tiny()], &text(600)));
    for n in 0..packed.len() {
        let out = piped(&["decompress"], &packed[..n]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "prefix {n} of {}: {:?}",
            packed.len(),
            out.status
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("unexpected end of input")
                || err.contains("corrupt data")
                || err.contains("checksum mismatch"),
            "prefix {n}: {err}"
        );
    }
}

#[test]
fn bit_flips_in_header_and_body_are_caught() {
    let data = text(1200);
    let packed = ok(piped(&["compress", "-p", &tiny()], &data));
    // magic, version, flags, params_len (LEB128), params, header check
    let (mut params, mut at, mut shift) = (0usize, 6, 0);
    loop {
        params |= ((packed[at] & 0x7f) as usize) << shift;
        at += 1;
        shift += 7;
        if packed[at - 1] & 0x80 == 0 {
            break;
        }
    }
    let header_len = at + params + 4;
    let body: Vec<usize> = (header_len..packed.len()).step_by(7).collect();
    for pos in (0..header_len).chain(body) {
        let bit = 0x01u8 << (pos % 8);
        let mut bad = packed.clone();
        bad[pos] ^= bit;
        let out = piped(&["decompress"], &bad);
        assert_eq!(
            out.status.code(),
            Some(1),
            "flip {bit:#x} at {pos} accepted"
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stderr)
                .trim_end()
                .lines()
                .count(),
            1
        );
    }
}

#[test]
fn level_flags_pick_steps_of_the_preset_ladder() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a");
    let data = text(3000);
    std::fs::write(&f, &data).unwrap();
    let name = f.to_str().unwrap();
    for (form, want) in [
        (vec!["-1", "-c", name], "fast"),
        (vec!["-c", "-2", name], "medium"),
        (vec!["compress", "-p", "4", "-c", name], "strong"),
        (vec!["compress", "-p", "fast", "-c", name], "fast"),
    ] {
        let packed = dir.path().join("a.fade");
        std::fs::write(&packed, ok(fade(&form))).unwrap();
        let p = packed.to_str().unwrap();
        let listing = String::from_utf8(ok(fade(&["list", p]))).unwrap();
        assert!(
            listing.lines().nth(1).unwrap().starts_with(want),
            "{form:?}: {listing}"
        );
        assert_eq!(ok(fade(&["-dc", p])), data, "{form:?}");
    }
    // Level 0 is refused; levels above 5 clamp (tests/habits.rs).
    fails_with(&fade(&["-0", "-c", name]), "levels are 1 to 5");
    // After `--`, "-1" is a file name, not a level.
    fails_with(&fade(&["-c", "--", "-1"]), "-1");
}

/// `--lanes N` codes with exactly N lanes, where the preset alone would give a
/// short input fewer; the frame records the count and decodes as usual.
#[test]
fn lanes_flag_overrides_the_fitted_lane_count() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    // Short enough that the preset alone fits 16 lanes (under 16 x 2048
    // bytes), and short because the medium model's cost grows faster than
    // the input here (8,000 bytes cost 40 times what 2,000 do).
    let data = text(2_000);
    std::fs::write(&input, &data).unwrap();
    let lanes_of = |args: &[&str]| {
        let out = dir.path().join("out.fade");
        let mut all = vec!["-q", "-f", "compress", "-p", "2"];
        all.extend(args);
        all.extend([input.to_str().unwrap(), out.to_str().unwrap()]);
        ok(fade(&all));
        let back = ok(fade(&["-q", "-dc", out.to_str().unwrap()]));
        assert_eq!(back, data);
        let mut f = std::fs::File::open(&out).unwrap();
        fade::scan(&mut f).unwrap().preset.lanes
    };
    assert_eq!(lanes_of(&[]), 16);
    assert_eq!(lanes_of(&["--lanes", "100"]), 100);
    fails_with(
        &fade(&["-q", "-c", "--lanes", "0", input.to_str().unwrap()]),
        "0 lanes",
    );
}
