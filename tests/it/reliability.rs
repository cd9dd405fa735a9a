//! Data safety against a hostile world, through the real binary (issue 11):
//! inputs that change while read, hostile headers, pipes, signals, permissions,
//! operands named like subcommands, and errors that must come early.

use crate::common::*;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fade"));
    c.env("RUST_BACKTRACE", "1");
    c
}

fn text(n: usize) -> Vec<u8> {
    b"Keep every byte of me, even when the world moves under you. "
        .iter()
        .cycle()
        .take(n)
        .cloned()
        .collect()
}

/// Bytes of text the tiny preset takes about a second or more to compress
/// here, and about two seconds on a loaded 2-core machine: long enough to act
/// on a running fade.
const SLOW: usize = 32 * 1024;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    v.sort();
    v
}

/// Waits until fade has opened its input and created its temporary output
/// (it does so in that order), so a change made now happens while it works.
fn wait_for_tmp(dir: &Path, child: &mut Child) {
    let t0 = Instant::now();
    loop {
        if names(dir).iter().any(|n| n.starts_with(".fade-")) {
            return;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("fade ended ({st}) before it created its temporary file");
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no temporary file");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Asserts the child is still running (the change came during the work).
fn still_running(child: &mut Child) {
    assert!(
        child.try_wait().unwrap().is_none(),
        "fade finished before the change: make SLOW larger"
    );
}

fn finish(child: Child) -> std::process::Output {
    child.wait_with_output().unwrap()
}

fn spawn(args: &[&str]) -> Child {
    bin()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Item 1: a file changed in place while fade reads it is reported like tar
/// does; no output is kept and --rm keeps the input.
#[test]
fn input_changed_in_place_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    let data = text(SLOW);
    std::fs::write(&f, &data).unwrap();
    let mut child = spawn(&["-q", "--rm", "-p", &tiny(), s(&f)]);
    wait_for_tmp(dir.path(), &mut child);
    still_running(&mut child);
    // Like `printf Z | dd of=f bs=1 seek=N conv=notrunc`: same size, new byte.
    let mut w = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
    std::io::Seek::seek(&mut w, std::io::SeekFrom::Start(SLOW as u64 * 3 / 4)).unwrap();
    w.write_all(b"Z").unwrap();
    drop(w);
    let out = finish(child);
    fails_with(&out, "file changed as we read it");
    assert_eq!(names(dir.path()), ["f"], "output or temporary file kept");
    assert_eq!(std::fs::metadata(&f).unwrap().len(), SLOW as u64);
}

/// Item 2: a file truncated while read (copytruncate) fails with one line,
/// exit 1, no temporary file, where the memory map took SIGBUS.
#[test]
fn input_truncated_while_read_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("log");
    std::fs::write(&f, text(SLOW)).unwrap();
    let mut child = spawn(&["-q", "--rm", "-p", &tiny(), s(&f)]);
    wait_for_tmp(dir.path(), &mut child);
    still_running(&mut child);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(100)
        .unwrap();
    let out = finish(child);
    fails_with(&out, "file changed as we read it");
    assert_eq!(names(dir.path()), ["log"], "output or temporary file kept");
}

/// A frame header for `preset` with a valid checksum, as a hostile file
/// would carry it, and the given arithmetic fingerprint.
fn header_for(preset: &fade::Preset) -> Vec<u8> {
    header_with(preset, 0)
}

fn header_with(preset: &fade::Preset, fingerprint: u64) -> Vec<u8> {
    let mut v = Vec::new();
    fade::__internals::format::FrameHeader {
        version: fade::__internals::format::VERSION,
        preset: preset.clone(),
        content_check: true,
        device: fade::__internals::format::DeviceClass::Cpu,
        fingerprint,
        content_size: None,
        x86: false,
        member: None,
    }
    .write(&mut v)
    .unwrap();
    v
}

/// `base` with the changes `f` makes (`Preset` is `#[non_exhaustive]`).
fn edit(
    base: impl std::borrow::Borrow<fade::Preset>,
    f: impl FnOnce(&mut fade::Preset),
) -> fade::Preset {
    let mut q = base.borrow().clone();
    f(&mut q);
    q
}

fn preset(toml: &str) -> fade::Preset {
    fade::Preset::parse(toml).unwrap()
}

fn tiny_preset() -> fade::Preset {
    preset(&std::fs::read_to_string(tiny()).unwrap())
}

/// Item 3: a small file with a valid header asking for huge lanes and a huge
/// refiner is refused before any allocation, naming both figures.
#[test]
fn memory_bomb_header_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = edit(tiny_preset(), |q| {
        q.lanes = 65536;
        q.context = 1;
        q.embed = 1;
        q.cache = 1;
        q.cache_step = 1;
        q.refiner_branches = 1;
        q.refiner_rank = 1;
        q.ffn = 32768;
        q.segment = 65536;
    });
    let mut file = header_for(&bomb);
    file.extend_from_slice(&[0u8; 16]);
    assert!(file.len() < 150, "{} bytes", file.len());
    let f = dir.path().join("bomb.fade");
    std::fs::write(&f, &file).unwrap();
    let t0 = Instant::now();
    for args in [
        vec!["-dc", s(&f)],
        vec!["test", s(&f)],
        vec!["decompress", s(&f), "-"],
    ] {
        let out = bin().args(&args).output().unwrap();
        fails_with(&out, "of memory, above the limit of 4.0 GiB");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("GiB") && err.contains("--memory-limit"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
    assert!(t0.elapsed() < Duration::from_secs(10), "refused too late");
}

/// Item 3: --memory-limit sets the limit both ways; compression checks before
/// it starts; the default admits the built-in presets.
#[test]
fn memory_limit_flag_is_applied_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a");
    std::fs::write(&f, text(3000)).unwrap();
    let out = fade(&["--memory-limit", "1MiB", "-p", &tiny(), s(&f)]);
    fails_with(&out, "above the limit of 1.0 MiB");
    assert_eq!(names(dir.path()), ["a"]);
    ok(fade(&["-p", &tiny(), s(&f)]));
    let packed = dir.path().join("a.fade");
    let out = fade(&["--memory-limit", "1000000", "-dc", s(&packed)]);
    fails_with(&out, "above the limit of 976.6 KiB");
    assert_eq!(
        ok(fade(&["--memory-limit", "2G", "-dc", s(&packed)])),
        text(3000)
    );
    // A bad size is a usage error: one line with a hint, exit 1 as every error.
    let out = fade(&["--memory-limit", "lots", "-dc", s(&packed)]);
    fails_with(
        &out,
        "invalid value 'lots' for '--memory-limit <SIZE>': not a size",
    );
}

/// Item 9: frames whose recorded lengths add up beyond 2^64 are corrupt, not
/// listed as "original 0".
#[test]
fn list_refuses_lengths_that_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny_preset();
    let cpu = candle_core::Device::Cpu;
    let mut frame = header_with(
        &p,
        fade::__internals::engine::fingerprint(&p, &cpu, fade::__internals::format::VERSION)
            .unwrap(),
    );
    fade::__internals::format::write_end(&mut frame, 1 << 63, Some(0)).unwrap();
    let f = dir.path().join("huge.fade");
    std::fs::write(&f, [frame.clone(), frame].concat()).unwrap();
    for cmd in ["list", "test"] {
        let out = fade(&[cmd, s(&f)]);
        fails_with(&out, "corrupt data");
    }
}

/// Item 4: a reader that goes away is not an error, also when the library
/// is writing (compression, and decompression past the 1 MiB buffer).
#[test]
fn closed_pipe_is_quiet_success_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, text(3000)).unwrap();
    let mut child = bin()
        .args(["-c", "-p", &tiny(), s(&f)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before the first write
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");

    // Past the 1 MiB output buffer, the library itself meets the closed pipe.
    let packed = dir.path().join("big.fade");
    std::fs::write(&packed, unmodelled_frame(1_200_000)).unwrap();
    assert_eq!(ok(fade(&["-dc", s(&packed)])).len(), 1_200_000);
    let mut child = bin()
        .args(["-dc", s(&packed)])
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
    drop(child.stdout.take()); // `| head -c 10`
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
}

/// A valid frame of `n` bytes that decodes without model work: stored
/// blocks shorter than the lane count have no lane bytes to learn from.
/// (Anything the model codes takes about 30 µs a byte here.)
fn unmodelled_frame(n: usize) -> Vec<u8> {
    let p = edit(tiny_preset(), |q| {
        q.lanes = 2048;
        q.segment = 2048;
    });
    let mut frame = header_with(
        &p,
        fade::__internals::engine::fingerprint(
            &p,
            &candle_core::Device::Cpu,
            fade::__internals::format::VERSION,
        )
        .unwrap(),
    );
    let data = random_bytes(n, 5);
    for block in data.chunks(2047) {
        fade::__internals::format::write_stored_block(&mut frame, block).unwrap();
    }
    let sum = xxhash_rust::xxh3::xxh3_64(&data);
    fade::__internals::format::write_end(&mut frame, n as u64, Some(sum)).unwrap();
    frame
}

/// Item 4: a closed stdout or stdin is an error, as with gzip, xz and zstd.
#[test]
fn closed_standard_streams_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, text(500)).unwrap();
    let sh = |script: &str| {
        Command::new("sh")
            .args([
                "-c",
                script,
                "sh",
                env!("CARGO_BIN_EXE_fade"),
                s(&f),
                &tiny(),
            ])
            .output()
            .unwrap()
    };
    fails_with(
        &sh(r#""$1" -c -p "$3" "$2" >&-"#),
        "cannot write to standard output: it is closed",
    );
    fails_with(
        &sh(r#""$1" -d <&- >/dev/null"#),
        "cannot read standard input: it is closed",
    );
    // Closed streams that are not used do not matter.
    let out = sh(r#""$1" -p "$3" "$2" <&- >&-"#);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(dir.path().join("f.fade").exists());
}

/// Spawns fade with SIGHUP set to `disposition`, as `nohup` does (whatever
/// the test runner's own disposition is).
fn with_hangup(disposition: libc::sighandler_t, args: &[&str]) -> Child {
    use std::os::unix::process::CommandExt;
    let mut cmd = bin();
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: signal(2) is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGHUP, disposition);
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

/// Item 5: a signal the caller ignores (nohup) stays ignored; others still
/// clean up.
#[test]
fn ignored_hangup_stays_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    let data = text(SLOW);
    std::fs::write(&f, &data).unwrap();
    let mut child = with_hangup(libc::SIG_IGN, &["-q", "-p", &tiny(), s(&f)]);
    wait_for_tmp(dir.path(), &mut child);
    still_running(&mut child);
    let kill = |sig: &str, pid: u32| {
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
    };
    kill("-HUP", child.id());
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let packed = dir.path().join("f.fade");
    assert_eq!(ok(fade(&["-dc", s(&packed)])), data);

    // Not ignored: SIGHUP interrupts and removes the temporary file.
    std::fs::remove_file(&packed).unwrap();
    let mut child = with_hangup(libc::SIG_DFL, &["-q", "-p", &tiny(), s(&f)]);
    wait_for_tmp(dir.path(), &mut child);
    kill("-HUP", child.id());
    let out = finish(child);
    // 128 + the signal's number, as a shell reports it.
    assert_eq!(out.status.code(), Some(129), "{out:?}");
    assert_eq!(names(dir.path()), ["f"]);
    let mut child = with_hangup(libc::SIG_DFL, &["-q", "-p", &tiny(), s(&f)]);
    wait_for_tmp(dir.path(), &mut child);
    kill("-TERM", child.id());
    let out = finish(child);
    assert_eq!(out.status.code(), Some(143), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("terminated"));
    assert_eq!(names(dir.path()), ["f"]);
}

/// Item 6: output from a stream gets 0666 less the umask; output from a file
/// keeps the file's mode.
#[test]
fn output_from_stdin_follows_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, text(500)).unwrap();
    for (umask, want) in [("022", 0o644), ("027", 0o640), ("000", 0o666)] {
        let out = dir.path().join(format!("o{umask}"));
        let st = Command::new("sh")
            .args([
                "-c",
                &format!(r#"umask {umask}; exec "$1" compress -p "$2" - "$3" < "$4""#),
                "sh",
                env!("CARGO_BIN_EXE_fade"),
                &tiny(),
                s(&out),
                s(&f),
            ])
            .status()
            .unwrap();
        assert!(st.success());
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, want, "umask {umask}: mode {mode:o}");
    }
}

fn mkfifo(p: &Path) {
    assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
}

/// Feeds `data` into the FIFO `p` from a thread.
fn feed(p: &Path, data: Vec<u8>) -> std::thread::JoinHandle<()> {
    let p = p.to_path_buf();
    std::thread::spawn(move || {
        let mut w = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        let _ = w.write_all(&data);
    })
}

/// Item 7: FIFOs, /dev/null and process substitutions are read as streams
/// when the output is stdout or named; in place they are refused.
#[test]
fn fifos_and_devices_are_read_as_streams() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    mkfifo(&fifo);
    let data = text(5000);
    let w = feed(&fifo, data.clone());
    let packed = ok(fade(&["-c", "-p", &tiny(), s(&fifo)]));
    w.join().unwrap();
    let w = feed(&fifo, packed.clone());
    assert_eq!(ok(fade(&["-dc", s(&fifo)])), data);
    w.join().unwrap();
    let w = feed(&fifo, data.clone());
    let out = dir.path().join("named.fade");
    ok(fade(&["compress", "-p", &tiny(), s(&fifo), s(&out)]));
    w.join().unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), packed);

    let empty = ok(fade(&["-c", "-p", &tiny(), "/dev/null"]));
    assert!(ok(piped_decompress(&empty)).is_empty());

    fails_with(&fade(&["-p", &tiny(), s(&fifo)]), "not a regular file");
    fails_with(&fade(&["-c", s(dir.path())]), "is a directory");
}

fn piped_decompress(packed: &[u8]) -> std::process::Output {
    let mut child = bin()
        .args(["-dc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(packed).unwrap();
    finish(child)
}

/// Item 8: outputs that cannot be written are refused before the work, with
/// the stable wording.
#[test]
fn unusable_outputs_are_refused_before_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, text(SLOW)).unwrap();
    let out = dir.path().join("out");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &out).unwrap();
    let t0 = Instant::now();
    fails_with(
        &fade(&["compress", "-p", &tiny(), s(&f), s(&out)]),
        "already exists (use -f to overwrite)",
    );
    let d = dir.path().join("d");
    std::fs::create_dir(&d).unwrap();
    fails_with(
        &fade(&["compress", "-f", "-p", &tiny(), s(&f), s(&d)]),
        "is a directory",
    );
    let long: PathBuf = dir.path().join("n".repeat(300));
    fails_with(
        &fade(&["compress", "-p", &tiny(), s(&f), s(&long)]),
        "file name too long",
    );
    // Each refusal came before any compression (SLOW takes over a second).
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(names(dir.path()), ["d", "f", "out"]);
}

/// Item 8: an output another process creates meanwhile is left alone, and
/// the race is named plainly.
#[test]
fn output_created_meanwhile_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, text(SLOW)).unwrap();
    let target = dir.path().join("f.fade");
    let mut child = spawn(&["-q", "--rm", "-p", &tiny(), s(&f)]);
    wait_for_tmp(dir.path(), &mut child);
    still_running(&mut child);
    std::fs::write(&target, b"someone else's").unwrap();
    let out = finish(child);
    fails_with(&out, "was created by another process");
    assert_eq!(std::fs::read(&target).unwrap(), b"someone else's");
    assert_eq!(names(dir.path()), ["f", "f.fade"]);
}

/// Item 10: a subcommand is recognised only as the first operand; the
/// gzip-style flags apply to subcommands too.
#[test]
fn operands_named_like_subcommands_are_files() {
    let dir = tempfile::tempdir().unwrap();
    let names_in = ["a", "compress", "list"];
    for n in names_in {
        std::fs::write(dir.path().join(n), text(700)).unwrap();
    }
    let run = |args: &[&str]| bin().args(args).current_dir(dir.path()).output().unwrap();
    ok(run(&["-q", "-p", &tiny(), "a", "compress", "list"]));
    for n in names_in {
        assert!(dir.path().join(format!("{n}.fade")).exists(), "{n} skipped");
    }
    // `-c` before the subcommand still means stdout.
    let packed = ok(run(&["-c", "compress", "-p", &tiny(), "a"]));
    assert_eq!(&packed[..4], b"\x89FDE");
    // -d with a subcommand is a contradiction, not silently ignored.
    let out = run(&["-d", "compress", "a"]);
    fails_with(&out, "cannot be combined with the compress subcommand");
}

// Issue 25: a backup tool's guarantees.

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("SKIPPED: needs root (CI runs as root)");
    }
    root
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn owner_of(p: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).unwrap();
    (m.uid(), m.gid())
}

/// Issue 25, item 1: an existing device or FIFO named by -o is written
/// through, with or without -f, never replaced by a regular file; /dev/null
/// needs no -f.
#[test]
fn device_and_fifo_outputs_are_written_through() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    let data = text(3000);
    std::fs::write(&f, &data).unwrap();
    let packed = dir.path().join("f.fade");
    ok(fade(&["-q", "-k", "-p", &tiny(), s(&f)]));
    // /dev/null without -f, both ways; it stays what it is.
    ok(fade(&["-q", "-d", "-o", "/dev/null", s(&packed)]));
    ok(fade(&["-q", "-p", &tiny(), "-o", "/dev/null", s(&f)]));
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    // --rm into a device keeps the input: the device keeps nothing.
    ok(fade(&[
        "-q",
        "--rm",
        "-p",
        &tiny(),
        "-o",
        "/dev/null",
        s(&f),
    ]));
    assert!(
        f.exists(),
        "--rm removed an input written only to /dev/null"
    );
    if is_root() {
        // A device node of our own (the null device) with -f: still a device.
        let node = dir.path().join("null");
        let st = Command::new("mknod")
            .args([s(&node), "c", "1", "3"])
            .status()
            .unwrap();
        assert!(st.success());
        ok(fade(&["-q", "-d", "-f", "-o", s(&node), s(&packed)]));
        ok(fade(&["-q", "-f", "-p", &tiny(), "-o", s(&node), s(&f)]));
        assert!(std::fs::metadata(&node)
            .unwrap()
            .file_type()
            .is_char_device());
    }
    // A FIFO: its reader gets the whole content, the FIFO stays a FIFO.
    let fifo = dir.path().join("pipe");
    mkfifo(&fifo);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    ok(fade(&["-q", "-d", "-f", "-o", s(&fifo), s(&packed)]));
    assert_eq!(reader.join().unwrap(), data);
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

/// Issue 25, item 2: outputs keep the input's owner and group (fchown before
/// the rename, as root); setuid/setgid never reach a compressed file, and
/// survive decompression only where the owner could be set.
#[test]
fn outputs_keep_the_owner_and_drop_special_bits() {
    if !is_root() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let f = dir.path().join("f");
    let data = text(2000);
    std::fs::write(&f, &data).unwrap();
    let nobody = 65534u32;
    std::os::unix::fs::chown(&f, Some(nobody), Some(nobody)).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o4750)).unwrap();
    ok(fade(&["-q", "-k", "-p", &tiny(), s(&f)]));
    let packed = dir.path().join("f.fade");
    assert_eq!(owner_of(&packed), (nobody, nobody));
    assert_eq!(mode_of(&packed), 0o750, "a compressed file carried setuid");
    ok(fade(&["-q", "-d", "-f", s(&packed)]));
    assert_eq!(owner_of(&f), (nobody, nobody));
    assert_eq!(mode_of(&f), 0o750);
    assert_eq!(std::fs::read(&f).unwrap(), data);
    // A .fade file that is setuid (an older fade, a chmod) decoded by root:
    // the owner is set, the bit may stay.
    std::fs::set_permissions(&packed, std::fs::Permissions::from_mode(0o4750)).unwrap();
    ok(fade(&["-q", "-d", "-f", s(&packed)]));
    assert_eq!(mode_of(&f), 0o4750);
    // Decoded by a user who cannot give the output root's ownership: the
    // output is the user's, and setuid is dropped.
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIPPED: setpriv not found (util-linux)");
        return;
    }
    std::os::unix::fs::chown(&packed, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&packed, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let out = dir.path().join("as-nobody");
    let st = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_fade"),
            "-q",
            "-d",
            "-o",
            s(&out),
            s(&packed),
        ])
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    assert_eq!(owner_of(&out), (nobody, nobody));
    assert_eq!(
        mode_of(&out),
        0o755,
        "setuid kept on a file of another owner"
    );
}

/// Issue 25, item 6: a stderr that cannot be written never stops the work:
/// every file is still done, and the exit status still tells the failure.
#[test]
fn a_full_stderr_does_not_stop_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let (p, q) = (dir.path().join("p"), dir.path().join("q"));
    std::fs::write(&p, text(1500)).unwrap();
    std::fs::write(&q, text(1600)).unwrap();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = bin()
        .args(["-v", "--rm", "-p", &tiny()])
        .arg(dir.path().join("missing"))
        .args([&p, &q])
        .stderr(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(names(dir.path()), ["p.fade", "q.fade"]);
    // --help and -V into a full stdout fail; into a good one they succeed.
    for flag in ["--help", "-V"] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = bin().arg(flag).stdout(full).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{flag}: {out:?}");
        assert!(fade(&[flag]).status.success());
    }
}

/// Issue 25, item 8: the smaller guarantees.
#[test]
fn hard_links_pseudo_files_block_sizes_and_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, text(1500)).unwrap();
    // --rm refuses an input with other hard links, unless -f.
    let link = dir.path().join("link");
    std::fs::hard_link(&f, &link).unwrap();
    fails_with(
        &fade(&["-q", "--rm", "-p", &tiny(), s(&f)]),
        "other hard link",
    );
    assert_eq!(names(dir.path()), ["f", "link"]);
    ok(fade(&["-q", "--rm", "-f", "-p", &tiny(), s(&f)]));
    assert_eq!(names(dir.path()), ["f.fade", "link"]);
    // A file of /proc is read as a stream (its size is 0 there).
    let packed = ok(fade(&["-c", "-p", &tiny(), "/proc/version"]));
    let back = ok(fade_stdin(&["-dc"], &packed));
    assert_eq!(back, std::fs::read("/proc/version").unwrap());
    // --block-size out of its range is refused with the range.
    for bad in ["0", "1000", "2GiB"] {
        fails_with(
            &fade(&["-c", "-p", &tiny(), "--block-size", bad, s(&link)]),
            "1KiB (1024) to 1GiB",
        );
    }
    ok(fade(&[
        "-c",
        "-p",
        &tiny(),
        "--block-size",
        "1KiB",
        s(&link),
    ]));
    // A temporary output a `kill -9` left behind is not an input of -r.
    let d = dir.path().join("d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("a"), text(700)).unwrap();
    std::fs::write(d.join(".fade-Ab3x9Z.tmp"), text(600)).unwrap();
    ok(fade(&["-q", "-r", "-p", &tiny(), s(&d)]));
    assert_eq!(names(&d), [".fade-Ab3x9Z.tmp", "a", "a.fade"]);
    // Preset files: one line, naming the file.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nlanes = \"many\"\n").unwrap();
    fails_with(&fade(&["-c", "-p", s(&bad), s(&link)]), "bad.toml: line 2");
    fails_with(
        &fade(&["-c", "-p", "/nonexistent/p.toml", s(&link)]),
        "cannot read /nonexistent/p.toml",
    );
}

/// Runs fade with `args`, its standard output into `stdout` (a file, or
/// nothing), and gives its output and its peak resident memory in bytes
/// (the child's own `ru_maxrss`, from `wait4`).
// The child is reaped by `wait4` below, which also gives its peak memory.
#[allow(clippy::zombie_processes)]
fn run_peak(args: &[&str], stdout: Option<&Path>) -> (std::process::Output, u64) {
    use std::os::unix::process::ExitStatusExt;
    let out = match stdout {
        Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
        None => Stdio::null(),
    };
    let mut child = bin()
        .args(args)
        .stdout(out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = Vec::new();
    child.stderr.take().unwrap().read_to_end(&mut err).unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain system call on our own child; `rusage` is plain data.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut ru) }, pid);
    let output = std::process::Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: Vec::new(),
        stderr: err,
    };
    (output, ru.ru_maxrss as u64 * 1024)
}

/// Real text: the first `n` bytes of this crate's sources.
fn sources(n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for dir in [
        "src",
        "src/engine",
        "src/side",
        "src/model/host",
        "src/model/ops",
    ] {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "rs"))
                .collect();
        files.sort();
        for f in files {
            v.extend(std::fs::read(f).unwrap());
        }
    }
    assert!(v.len() >= n, "{} bytes of sources", v.len());
    v.truncate(n);
    v
}

/// Issue 25, item 4: the memory estimate a frame is admitted by is an upper
/// bound on the peak resident memory of the whole process (canary, model,
/// tables, buffers, the program itself), compressing and decompressing:
/// every built-in preset on all its lanes, and custom presets at the limit
/// of each field that shapes the model or its tables.
#[test]
fn memory_estimate_bounds_the_measured_peak() {
    let dir = tempfile::tempdir().unwrap();
    // Every run may use 8 GiB: the test is of the estimate, not the limit.
    let check = |p: &fade::Preset, args: &[&str], n: usize, what: &str| {
        let f = dir.path().join("in");
        std::fs::write(&f, sources(n)).unwrap();
        let z = dir.path().join("in.fade");
        let est = p.fitted(n).memory_needed();
        let mut c = args.to_vec();
        c.extend(["-q", "-T2", "--memory-limit", "8GiB", "-c", s(&f)]);
        let (out, peak) = run_peak(&c, Some(&z));
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            peak <= est,
            "{what}: compression peaked at {peak} > estimate {est}"
        );
        let back = dir.path().join("back");
        let (out, peak) = run_peak(
            &["-q", "-T2", "--memory-limit", "8GiB", "-dc", s(&z)],
            Some(&back),
        );
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            peak <= est,
            "{what}: decompression peaked at {peak} > estimate {est}"
        );
        assert_eq!(std::fs::read(&back).unwrap(), sources(n), "{what}");
        eprintln!("{what}: peak {peak}, estimate {est}");
    };
    for name in ["fast", "medium", "default", "strong", "paper"] {
        let p = fade::Preset::load(name).unwrap();
        let lanes = p.lanes.to_string();
        // Every lane gets a few bytes: the model's activations at full width.
        let n = p.lanes as usize * p.context as usize;
        check(
            &p.with_lanes(p.lanes).unwrap(),
            &["-p", name, "--lanes", &lanes],
            n,
            name,
        );
    }
    let base =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default.toml"))
            .unwrap();
    let set = |text: &str, field: &str, value: &str| -> String {
        let mut out = String::new();
        let mut found = false;
        for line in text.lines() {
            if line.split(" = ").next() == Some(field) {
                out += &format!("{field} = {value}\n");
                found = true;
            } else {
                out += &format!("{line}\n");
            }
        }
        assert!(found, "{field}");
        out
    };
    let custom = |edits: &[(&str, &str)]| {
        let mut t = set(&base, "name", "\"edge\"");
        for (k, v) in edits {
            t = set(&t, k, v);
        }
        t
    };
    // Each field at the limit this build supports, the others at the
    // default's values (or as far as the custom-model bound lets them).
    let edges: [&[(&str, &str)]; 9] = [
        &[("lanes", "4096"), ("segment", "16777216")],
        &[("context", "64"), ("embed", "2")],
        &[
            ("embed", "128"),
            ("context", "1"),
            ("refiner_branches", "2"),
        ],
        &[("cache", "16384"), ("cache_step", "1024")],
        &[("refiner_branches", "64")],
        &[("refiner_rank", "256"), ("lanes", "16")],
        &[("ffn", "3840")],
        &[("stats_bits", "26"), ("match_bits", "26")],
        &[("segment", "1073741824")],
    ];
    for edits in edges {
        let toml = custom(edits);
        let f = dir.path().join("edge.toml");
        std::fs::write(&f, &toml).unwrap();
        let p = fade::Preset::parse(&toml).unwrap();
        let lanes = p.lanes.to_string();
        let n = (p.lanes as usize * p.context as usize).max(4096);
        check(
            &p.with_lanes(p.lanes).unwrap(),
            &["-p", s(&f), "--lanes", &lanes],
            n,
            &format!("{edits:?}"),
        );
    }
}

/// Issue 25, item 5: a hostile header is refused in bounded memory (under
/// 100 MB), before any model is built, with the field named: sizes beyond
/// this build's ranges, a custom model beyond the canary's bound, a built-in
/// preset with a fingerprint this build knows is not a CPU's, a custom one
/// whose canary disagrees, and a valid header over damaged blocks.
#[test]
fn hostile_headers_are_refused_cheaply_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let default = fade::Preset::load("default").unwrap();
    // A valid frame's header (written by the binary, so this process stays
    // small: a child's peak counts the memory of the process it was started
    // from), then damage where its first block should be.
    let damaged = |preset: &str| {
        let f = dir.path().join("plain");
        std::fs::write(&f, sources(3000)).unwrap();
        let file = ok(fade(&["-c", "-p", preset, s(&f)]));
        let mut rest = &file[1..];
        fade::__internals::format::FrameHeader::read_after(file[0], &mut rest).unwrap();
        let mut h = file[..file.len() - rest.len()].to_vec();
        h.extend_from_slice(&[0x55; 64]);
        h
    };
    let big_tables = dir.path().join("big-tables.toml");
    std::fs::write(
        &big_tables,
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default.toml"))
            .unwrap()
            .replace("name = \"default\"", "name = \"big\"")
            .replace("stats_bits = 22", "stats_bits = 26")
            .replace("match_bits = 20", "match_bits = 26"),
    )
    .unwrap();
    let with_block = |mut h: Vec<u8>| {
        fade::__internals::format::write_stored_block(&mut h, &sources(8192)).unwrap();
        h.extend_from_slice(&[0u8; 32]);
        h
    };
    let custom = |p: fade::Preset| {
        edit(p, |q| {
            q.name = "hostile".into();
        })
    };
    // The default with one field out of its range.
    let out_of_range =
        |f: fn(&mut fade::Preset), msg| (with_block(header_for(&edit(default.clone(), f))), msg);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        out_of_range(|q| q.embed = 1400, "embed = 1400 is outside 1 to 128"),
        out_of_range(|q| q.context = 1024, "context = 1024 is outside 1 to 64"),
        out_of_range(
            |q| q.refiner_rank = 1024,
            "refiner_rank = 1024 is outside 1 to 256",
        ),
        out_of_range(|q| q.ffn = 65536, "ffn = 65536 is outside 1 to 32768"),
        out_of_range(|q| q.cache = 1 << 16, "cache = 65536 is outside 1 to 16384"),
        (
            with_block(header_for(&custom(edit(default.clone(), |q| {
                q.ffn = 8192;
            })))),
            "a custom model of",
        ),
        // Built-in presets with another fingerprint: no canary runs.
        (
            with_block(header_with(&fade::Preset::load("paper").unwrap(), 1)),
            "device mismatch",
        ),
        (
            with_block(header_with(&fade::Preset::load("strong").unwrap(), 1)),
            "device mismatch",
        ),
        // A custom preset at the bound: its canary runs, and disagrees.
        (
            with_block(header_with(
                &custom(edit(default.clone(), |q| {
                    q.ffn = 3840;
                })),
                1,
            )),
            "device mismatch",
        ),
        // Valid headers (right fingerprints, the largest tables) over a damaged block.
        (damaged(s(&big_tables)), "corrupt data"),
        (damaged("paper"), "corrupt data"),
        (damaged("strong"), "corrupt data"),
    ];
    for (i, (file, needle)) in cases.iter().enumerate() {
        let f = dir.path().join(format!("h{i}.fade"));
        std::fs::write(&f, file).unwrap();
        for args in [vec!["-t", s(&f)], vec!["-dc", s(&f)]] {
            let (out, peak) = run_peak(&args, None);
            fails_with(&out, needle);
            assert!(peak < 100_000_000, "case {i} ({needle}): peak {peak}");
        }
    }
}
