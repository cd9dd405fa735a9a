//! Habits of zstd and gzip that scripts rely on: `-o`, `-r`, level flags in
//! clusters, `--fast`/`--best`, `-dcf` pass-through, `fade bench` with a
//! chosen preset, one-line usage errors. Every test runs the real binary on
//! small files with the tiny test preset.

mod common;
use common::*;
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
    // --best is the strongest built-in level (the paper preset): an empty
    // input keeps it quick.
    let packed = ok(fade_stdin(&["--best", "-c"], b""));
    assert_eq!(preset_of(&packed), "paper");
    fails_with(&fade(&["-19", "-c", name]), "levels are 1 to 5");
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
    for flag in ["--fast", "--best"] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}
