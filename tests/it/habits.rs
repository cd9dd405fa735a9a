//! Habits of zstd and gzip that scripts rely on: `-o`, `-r`, level flags in
//! clusters, `--fast`/`--best`, `-dcf` pass-through, `fade bench` with a
//! chosen preset, one-line usage errors. Every test runs the real binary on
//! small files with the tiny test preset.

use crate::common::*;
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The preset name `fade -l` reports for compressed bytes.
fn preset_of(packed: &[u8]) -> String {
    let listing = String::from_utf8(ok(fade_stdin(&["-l"], packed))).unwrap();
    let row = listing.lines().nth(1).expect("a row").to_string();
    row.split_whitespace().next().unwrap().to_string()
}

/// Frames in compressed bytes, from `fade -l`.
fn frames_of(packed: &[u8]) -> usize {
    let listing = String::from_utf8(ok(fade_stdin(&["-l"], packed))).unwrap();
    let row = listing.lines().nth(1).expect("a row").to_string();
    row.split_whitespace().nth(4).unwrap().parse().unwrap()
}

#[test]
fn output_flag_names_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let data = lines(3000);
    std::fs::write(&input, &data).unwrap();
    let out = dir.path().join("out.fade");
    ok(fade(&["-q", "-p", &tiny(), "-o", s(&out), s(&input)]));
    assert!(input.exists(), "-o keeps the input");
    assert!(!dir.path().join("in.fade").exists());
    let back = dir.path().join("back");
    ok(fade(&["-q", "-d", "-o", s(&back), s(&out)]));
    assert_eq!(std::fs::read(&back).unwrap(), data);
    // `-o -` is stdout; the subcommand form takes -o too; same bytes.
    let packed = std::fs::read(&out).unwrap();
    assert_eq!(ok(fade(&["-p", &tiny(), "-o", "-", s(&input)])), packed);
    let out2 = dir.path().join("out2.fade");
    ok(fade(&[
        "compress",
        "-p",
        &tiny(),
        s(&input),
        "-o",
        s(&out2),
    ]));
    assert_eq!(std::fs::read(&out2).unwrap(), packed);
    // An existing output needs -f; -o with -c, twice named, or with -t is refused.
    fails_with(
        &fade(&["-p", &tiny(), "-o", s(&out), s(&input)]),
        "already exists (use -f to overwrite)",
    );
    ok(fade(&["-f", "-p", &tiny(), "-o", s(&out), s(&input)]));
    fails_with(
        &fade(&["-c", "-o", s(&out), s(&input)]),
        "cannot be used with",
    );
    fails_with(
        &fade(&["compress", s(&input), s(&out2), "-o", s(&out)]),
        "named twice",
    );
    fails_with(&fade(&["-t", "-o", s(&back), s(&out)]), "-o");
}

#[test]
fn output_flag_with_several_inputs_concatenates_them() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (da, db) = (lines(2000), random_bytes(500, 5));
    std::fs::write(&a, &da).unwrap();
    std::fs::write(&b, &db).unwrap();
    let both = [da.clone(), db.clone()].concat();
    let ab = dir.path().join("ab.fade");
    ok(fade(&["-q", "-p", &tiny(), "-o", s(&ab), s(&a), s(&b)]));
    let packed = std::fs::read(&ab).unwrap();
    assert_eq!(frames_of(&packed), 2);
    assert_eq!(ok(fade(&["-dc", s(&ab)])), both);
    // Decompressing several files into one output concatenates their contents.
    let (pa, pb) = (dir.path().join("a.fade"), dir.path().join("b.fade"));
    ok(fade(&["-q", "-p", &tiny(), s(&a), s(&b)]));
    let joined = dir.path().join("joined");
    ok(fade(&["-q", "-d", "-o", s(&joined), s(&pa), s(&pb)]));
    assert_eq!(std::fs::read(&joined).unwrap(), both);
    // A failing input leaves no output and removes nothing, even with --rm.
    let missing = dir.path().join("missing");
    let out = dir.path().join("bad.fade");
    let r = fade(&[
        "-q",
        "--rm",
        "-p",
        &tiny(),
        "-o",
        s(&out),
        s(&a),
        s(&missing),
    ]);
    fails_with(&r, "missing");
    assert!(!out.exists() && a.exists());
    // --rm removes every input once the one output is complete.
    let out = dir.path().join("all.fade");
    ok(fade(&[
        "-q",
        "--rm",
        "-p",
        &tiny(),
        "-o",
        s(&out),
        s(&a),
        s(&b),
    ]));
    assert!(!a.exists() && !b.exists());
    assert_eq!(ok(fade(&["-dc", s(&out)])), both);
}

#[test]
fn recursive_codes_every_file_under_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    let sub = root.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    let files = [(root.join("x"), lines(1500)), (sub.join("y"), lines(900))];
    for (p, d) in &files {
        std::fs::write(p, d).unwrap();
    }
    // Symbolic links inside the tree are not followed: each is skipped with
    // a one-line warning (none with -q).
    let outside = dir.path().join("outside");
    std::fs::write(&outside, b"not under the tree").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
    std::os::unix::fs::symlink(&sub, root.join("dirlink")).unwrap();
    let out = fade(&["-r", "-p", &tiny(), s(&root)]);
    let warned = String::from_utf8_lossy(&out.stderr).to_string();
    ok(out);
    for link in ["dirlink", "link"] {
        let want = format!(
            "fade: warning: {}: skipping symbolic link",
            root.join(link).display()
        );
        assert!(warned.lines().any(|l| l == want), "{warned:?} lacks {want}");
    }
    for (p, _) in &files {
        assert!(p.exists(), "{} kept", p.display());
        assert!(Path::new(&format!("{}.fade", p.display())).exists());
    }
    assert!(!root.join("link.fade").exists() && !outside.with_extension("fade").exists());
    assert!(!sub.join("y.fade.fade").exists());
    // Again: FILE.fade is skipped as an input, and existing outputs are refused.
    let again = fade(&["-q", "-r", "-p", &tiny(), s(&root)]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert!(!root.join("x.fade.fade").exists());
    // -t, -l and -d with -r take every FILE.fade (-l ends with a totals row).
    let quiet = fade(&["-q", "-t", "-r", s(&root)]);
    assert!(quiet.stderr.is_empty(), "-q warns");
    ok(quiet);
    let listing = String::from_utf8(ok(fade(&["-q", "-l", "-r", s(&root)]))).unwrap();
    assert_eq!(listing.lines().count(), 4, "{listing}");
    for (p, _) in &files {
        std::fs::remove_file(p).unwrap();
    }
    ok(fade(&["-q", "-d", "-r", "--rm", s(&root)]));
    for (p, d) in &files {
        assert_eq!(&std::fs::read(p).unwrap(), d);
        assert!(!Path::new(&format!("{}.fade", p.display())).exists());
    }
    // An empty directory is nothing to do (and stdin is not read).
    let out = fade(&["-r", "-c", s(&root.join("empty"))]);
    assert!(ok(out).is_empty());
    // Without -r a directory is an error with a hint; -r needs the gzip form.
    fails_with(&fade(&["-p", &tiny(), s(&root)]), "is a directory (fade -r");
    fails_with(&fade(&["compress", "-r", s(&root)]), "-r works with");
}

#[test]
fn level_flags_attach_and_combine() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a");
    let data = lines(1500);
    std::fs::write(&f, &data).unwrap();
    let name = s(&f);
    for (form, want) in [
        (vec!["-1c", name], "fast"),
        (vec!["-c1", name], "fast"),
        (vec!["-kc1", name], "fast"),
        (vec!["-kc", "-2", name], "medium"),
        (vec!["-k2c", name], "medium"),
        (vec!["--fast", "-c", name], "fast"),
        // The last level given wins, as in gzip.
        (vec!["-2", "-1", "-c", name], "fast"),
        (vec!["-c1", "-p", &tiny(), name], "tiny"),
        (vec!["-p", &tiny(), "-c1", name], "fast"),
        (vec!["-p", &tiny(), "--fast", "-c", name], "fast"),
        // A digit that is a flag's value stays its value.
        (vec!["-cT1", "-p", &tiny(), name], "tiny"),
    ] {
        let packed = ok(fade(&form));
        assert_eq!(preset_of(&packed), want, "{form:?}");
        assert_eq!(ok(fade_stdin(&["-dc"], &packed)), data, "{form:?}");
    }
    fails_with(&fade(&["-c0", name]), "no level 0");
    // `-d -c`, `-dc` and `-cd` are the same.
    let packed = dir.path().join("a.fade");
    std::fs::write(&packed, ok(fade(&["-c", "-p", &tiny(), name]))).unwrap();
    for form in [["-d", "-c"].as_slice(), &["-dc"], &["-cd"]] {
        let mut args = form.to_vec();
        args.push(s(&packed));
        assert_eq!(ok(fade(&args)), data, "{form:?}");
    }
}

#[test]
fn dcf_passes_data_that_is_not_fade_through() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.txt");
    let text = lines(700);
    std::fs::write(&plain, &text).unwrap();
    let packed = dir.path().join("p.fade");
    let data = lines(1200);
    std::fs::write(&packed, ok(fade_stdin(&["-c", "-p", &tiny()], &data))).unwrap();
    // Like `zstd -dcf` and `zcat -f`: foreign data unchanged, fade data decoded.
    assert_eq!(ok(fade(&["-dcf", s(&plain)])), text);
    assert_eq!(ok(fade_stdin(&["-dcf"], &text)), text);
    assert_eq!(ok(fade_stdin(&["-d", "-c", "-f"], b"hi")), b"hi");
    assert!(ok(fade_stdin(&["-dcf"], b"")).is_empty());
    assert_eq!(
        ok(fade(&["-dcf", s(&plain), s(&packed), s(&plain)])),
        [text.clone(), data.clone(), text.clone()].concat()
    );
    assert_eq!(ok(fade(&["decompress", "-cf", s(&packed)])), data);
    // Without -f, or to a file, foreign data is an error; so is a damaged fade file.
    fails_with(&fade(&["-dc", s(&plain)]), "not a fade file");
    let named = dir.path().join("named.fade");
    std::fs::copy(&plain, &named).unwrap();
    fails_with(&fade(&["-df", s(&named)]), "not a fade file");
    let mut bad = std::fs::read(&packed).unwrap();
    let n = bad.len();
    bad[n - 20] ^= 0x10;
    let out = fade_stdin(&["-dcf"], &bad);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bench_measures_the_chosen_preset() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("text");
    std::fs::write(&input, lines(2000)).unwrap();
    // Only fade itself: the other codecs are left out of PATH.
    let env = [("PATH", "/nonexistent")];
    let codecs = |args: &[&str]| -> Vec<String> {
        let mut all = args.to_vec();
        all.extend(["-q", "--format", "json", s(&input)]);
        let v: serde_json::Value = serde_json::from_slice(&ok(fade_env(&all, &env))).unwrap();
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["codec"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(codecs(&["bench", "-p", &tiny()]), ["fade tiny"]);
    assert_eq!(codecs(&["-p", &tiny(), "bench"]), ["fade tiny"]);
    assert_eq!(codecs(&["-1", "bench"]), ["fade fast"]);
    assert_eq!(codecs(&["bench", "--presets", &tiny()]), ["fade tiny"]);
    fails_with(
        &fade_env(&["bench", "--presets", "1", "-p", "2", s(&input)], &env),
        "not both",
    );
}

#[test]
fn usage_errors_are_one_line_with_a_hint_and_exit_1() {
    for (args, needle) in [
        (&["--forc", "x"][..], "unexpected argument '--forc'"),
        (&["-x"], "unexpected argument '-x'"),
        (&["bench"], "required arguments were not provided"),
        (&["-T", "abc", "x"], "invalid value 'abc'"),
        (&["-d", "-t", "x"], "cannot be used with"),
        (&["-o"], "a value is required"),
        (&["--presets", "1", "x"], "unexpected argument"),
    ] {
        let out = fade(args);
        fails_with(&out, needle);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("fade: "), "{args:?}: {err}");
        assert!(err.contains("--help'"), "{args:?}: no hint in {err}");
    }
    // The hint names the subcommand whose help to read.
    fails_with(&fade(&["bench", "--bogus", "x"]), "see 'fade bench --help'");
    // Help and version are not errors: stdout, exit 0.
    for args in [["--help"], ["-h"], ["--version"], ["-V"]] {
        let out = fade(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty() && out.stderr.is_empty(), "{args:?}");
    }
    let help = String::from_utf8(ok(fade(&["--help"]))).unwrap();
    for flag in ["--output", "--recursive", "--fast", "--best"] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn best_and_levels_above_5_stay_practical_on_a_cpu() {
    // Empty inputs keep the strong preset quick.
    let level = |args: &[&str]| {
        let out = fade_stdin(args, b"");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        (preset_of(&ok(out)), err)
    };
    // --best is the strongest level practical on a CPU (strong), not paper.
    assert_eq!(level(&["--best", "-c"]), ("strong".into(), String::new()));
    assert_eq!(level(&["--best", "-c", "--device=cpu"]).0, "strong");
    // paper stays reachable by name and by -5.
    assert_eq!(level(&["-5", "-c"]).0, "paper");
    assert_eq!(level(&["-p", "paper", "-c"]).0, "paper");
    // Above 5, as zstd's -19: level 4 with a one-line warning, none with -q.
    for (args, n) in [
        (&["-19", "-c"][..], 19),
        (&["-c9"], 9),
        (&["-6", "-c"], 6),
        (&["-p", "9", "-c"], 9),
        (&["--preset=19", "-c"], 19),
    ] {
        let want = format!(
            "fade: warning: level {n} is above the strongest practical level; using 4 (strong)\n"
        );
        assert_eq!(level(args), ("strong".into(), want), "{args:?}");
        let mut q = args.to_vec();
        q.push("-q");
        assert_eq!(level(&q), ("strong".into(), String::new()), "{args:?}");
    }
    // zstd's --fast=N: every N >= 1 is level 1.
    assert_eq!(level(&["--fast=3", "-c"]).0, "fast");
    assert_eq!(level(&["--fast=1", "-c"]).0, "fast");
    // Level 0 stays an error.
    fails_with(&fade_stdin(&["-0", "-c"], b""), "no level 0");
    fails_with(&fade_stdin(&["-p", "0", "-c"], b""), "no level 0");
}

#[test]
fn every_help_page_fits_80_columns_and_shows_the_levels() {
    let pages: [&[&str]; 9] = [
        &["--help"],
        &["-h"],
        &["compress", "--help"],
        &["decompress", "--help"],
        &["test", "--help"],
        &["list", "-h"],
        &["bench", "--help"],
        &["help"],
        &["help", "compress"],
    ];
    for page in pages {
        let text = String::from_utf8(ok(fade(page))).unwrap();
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{page:?}: {line:?}");
        }
        for flag in ["Levels (", "-1, --fast[=N]", "-4, --best", "-5 "] {
            assert!(text.contains(flag), "{page:?} lacks {flag:?}");
        }
    }
}

#[test]
fn list_of_several_files_ends_with_a_totals_row() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&a, lines(2000)).unwrap();
    std::fs::write(&b, lines(700)).unwrap();
    ok(fade(&["-q", "-p", &tiny(), s(&a), s(&b)]));
    let (pa, pb) = (dir.path().join("a.fade"), dir.path().join("b.fade"));
    let listing = String::from_utf8(ok(fade(&["-l", s(&pa), s(&pb)]))).unwrap();
    let rows: Vec<Vec<&str>> = listing
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 4, "{listing}");
    let num = |r: &[&str], i: usize| r[i].parse::<u64>().unwrap();
    let total = &rows[3];
    assert_eq!(total[0], "total", "{listing}");
    assert_eq!(num(total, 1), num(&rows[1], 1) + num(&rows[2], 1));
    assert_eq!(num(total, 2), 2700);
    assert_eq!(num(total, 4), 2);
    let ratio = 2700.0 / num(total, 1) as f64;
    assert_eq!(total[3], format!("{ratio:.3}"), "{listing}");
    assert_eq!(total[6..], ["2", "files"]);
    // One file: no totals row.
    let one = String::from_utf8(ok(fade(&["-l", s(&pa)]))).unwrap();
    assert_eq!(one.lines().count(), 2, "{one}");
}

#[test]
fn errors_name_what_the_user_named() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("dir");
    std::fs::create_dir(&sub).unwrap();
    // A directory operand is a directory, not a file with an unknown suffix.
    for args in [
        &["-d", s(&sub)][..],
        &["decompress", s(&sub)],
        &["-t", s(&sub)],
    ] {
        fails_with(&fade(args), &format!("{}: is a directory", sub.display()));
    }
    // An output in a missing directory is named as given, never by the
    // temporary name fade writes first.
    let input = dir.path().join("in");
    std::fs::write(&input, lines(300)).unwrap();
    let out = fade(&["-p", &tiny(), "-o", "/nonexistent/x.fade", s(&input)]);
    fails_with(&out, "cannot write /nonexistent/x.fade: No such file");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(".fade-"));
}
