//! What the terminal shows: the `-v` summary line per file in zstd's form,
//! a shorter one on a terminal without -v,
//! with the arrow from what was read to what was written, and the progress
//! bar, which names the file and counts in decimal units (KB = 1000 bytes)
//! like the summary and `fade bench`.

use crate::common::*;
use std::path::Path;
use std::process::Command;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The stderr lines of a successful run.
fn stderr_lines(out: std::process::Output) -> Vec<String> {
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    ok(out);
    err.lines().map(str::to_string).collect()
}

#[test]
fn verbose_prints_one_zstd_style_line_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&a, lines(3000)).unwrap();
    std::fs::write(&b, lines(1000)).unwrap();
    let lines_c = stderr_lines(fade(&["-v", "-p", &tiny(), s(&a), s(&b)]));
    assert_eq!(lines_c.len(), 2, "{lines_c:?}");
    for (line, (p, n)) in lines_c.iter().zip([(&a, 3000), (&b, 1000)]) {
        let packed = std::fs::metadata(format!("{}.fade", p.display()))
            .unwrap()
            .len();
        let pct = format!("{:.2}%", packed as f64 * 100.0 / n as f64);
        let want = format!(
            "{} : {pct} ({n} => {packed} bytes, {}.fade) ",
            p.display(),
            p.display()
        );
        assert!(
            line.starts_with(&want),
            "{line:?} does not start with {want:?}"
        );
        assert!(line.ends_with(" KB/s"), "{line:?}");
    }
    // Decompressing: the arrow goes from the compressed size to the original.
    std::fs::remove_file(&a).unwrap();
    let packed = std::fs::metadata(dir.path().join("a.fade")).unwrap().len();
    let line = &stderr_lines(fade(&["-d", "-v", s(&dir.path().join("a.fade"))]))[0];
    let want = format!(
        "{}.fade : {:.2}% ({packed} => 3000 bytes, {}) ",
        a.display(),
        packed as f64 * 100.0 / 3000.0,
        a.display()
    );
    assert!(
        line.starts_with(&want),
        "{line:?} does not start with {want:?}"
    );
    // To stdout, and from stdin.
    let out = fade(&["-dcv", s(&dir.path().join("b.fade"))]);
    let line = &stderr_lines(out)[0];
    assert!(line.contains("=> 1000 bytes, (stdout))"), "{line:?}");
    let out = fade_stdin(&["-cv", "-p", &tiny()], &lines(500));
    let line = &stderr_lines(out)[0];
    assert!(line.starts_with("(stdin) : "), "{line:?}");
    // Without -v nothing is printed.
    let out = fade_stdin(&["-c", "-p", &tiny()], &lines(500));
    assert!(stderr_lines(out).is_empty());
}

#[test]
fn progress_bar_names_the_file_and_counts_in_kb() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no `script` to provide a terminal");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("progress-me.txt");
    std::fs::write(&f, lines(6000)).unwrap();
    // `script` gives fade a terminal on stderr; the bar is drawn at once and
    // then every 250 ms, so it shows even for a short run.
    let screen = |flags: &str| {
        let cmd = format!(
            "{} -T 1 -p {} -c {flags} {} > /dev/null",
            env!("CARGO_BIN_EXE_fade"),
            tiny(),
            f.display()
        );
        let out = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let shown = screen("");
    assert!(shown.contains("progress-me.txt"), "{shown}");
    assert!(shown.contains("/6.0 KB "), "{shown}");
    assert!(shown.contains(" KB/s"), "{shown}");
    assert!(!shown.contains("KiB") && !shown.contains("MiB"), "{shown}");
    // Not drawn with -q.
    assert!(!screen("-q").contains("KB/s"));
}

/// What a terminal shows of `fade ARGS` run through `script` (which gives it
/// one), or `None` when there is no `script`.
fn on_terminal(args: &str) -> Option<String> {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no `script` to provide a terminal");
        return None;
    }
    let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_fade"));
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{args}");
    Some(String::from_utf8_lossy(&out.stdout).to_string())
}

#[test]
fn terminal_shows_a_summary_line_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("sum-me");
    std::fs::write(&f, lines(3000)).unwrap();
    let Some(shown) = on_terminal(&format!("-p {} {}", tiny(), f.display())) else {
        return;
    };
    // zstd's form: FILE : 28.03% (3.0 KB => 841 B, FILE.fade), in the
    // progress bar's decimal units.
    let packed = std::fs::metadata(format!("{}.fade", f.display()))
        .unwrap()
        .len();
    let packed_shown = match packed {
        0..=999 => format!("{packed} B"),
        n => format!("{:.1} KB", n as f64 / 1e3),
    };
    let want = format!(
        "{} : {:.2}% (3.0 KB => {packed_shown}, {}.fade)\r\n",
        f.display(),
        packed as f64 * 100.0 / 3000.0,
        f.display()
    );
    assert!(shown.contains(&want), "{shown:?} lacks {want:?}");
    // Decompressing: FILE.fade : N bytes.
    std::fs::remove_file(&f).unwrap();
    let shown = on_terminal(&format!("-d {}.fade", f.display())).unwrap();
    let want = format!("{}.fade : 3000 bytes", f.display());
    assert!(shown.contains(&want), "{shown:?} lacks {want:?}");
    // Not with -q.
    std::fs::remove_file(&f).unwrap();
    let shown = on_terminal(&format!("-q -d {}.fade", f.display())).unwrap();
    assert!(!shown.contains("bytes"), "{shown:?}");
}
