//! `fade bench` end to end: the real binary measuring itself (and whichever
//! of gzip, zstd, xz and zpaq are installed) on a small file.

use crate::common::*;
use serde_json::Value;
use std::path::Path;

/// Runs `fade bench --format json` on `file` with the test preset.
fn bench(file: &Path, extra: &[&str], env: &[(&str, &str)]) -> Value {
    let tiny = tiny();
    let mut args = vec!["bench", "-q", "--format", "json", "--presets", &tiny];
    args.extend(extra);
    let path = file.display().to_string();
    args.push(&path);
    serde_json::from_slice(&ok(fade_env(&args, env))).expect("bench prints JSON")
}

/// Words in random order: compressible, like text.
fn random_text(n: usize, seed: u64) -> Vec<u8> {
    let words = ["lane ", "model ", "byte ", "coder ", "step ", "the ", "of "];
    let mut g = fade::__internals::rng::SplitMix64::new(seed);
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        out.extend_from_slice(words[(g.next_u64() % 7) as usize].as_bytes());
    }
    out.truncate(n);
    out
}

/// Whether `tool` runs (as the bench finds its peers).
fn on_path(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok()
}

fn fade_row(v: &Value) -> &Value {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["codec"] == "fade tiny")
        .expect("a fade row")
}

#[test]
fn bench_reports_what_fade_compress_writes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("text");
    std::fs::write(&input, random_text(12_000, 3)).unwrap();
    let v = bench(&input, &["--device", "cpu"], &[]);
    let row = fade_row(&v);
    let packed = dir.path().join("text.fade");
    ok(fade(&[
        "-q",
        "compress",
        "-p",
        &tiny(),
        input.to_str().unwrap(),
        packed.to_str().unwrap(),
    ]));
    let size = std::fs::metadata(&packed).unwrap().len();
    assert_eq!(row["bytes"], 12_000);
    assert_eq!(row["compressed"], size);
    assert!(row["compress_kbps"].as_f64().unwrap() > 0.0);
    assert!(row["peak_rss_mb"].as_f64().unwrap() > 1.0);
    // On the CPU no GPU memory is measured, for any codec.
    assert!(v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["peak_gpu_mb"].is_null()));
    let total = &v["totals"].as_array().unwrap()[0];
    assert_eq!(total["codec"], "fade tiny");
    assert_eq!(total["compressed"], size);
}

/// A peer's peak memory is its own, not the bench's: gzip -9 needs about 2
/// MB, while the bench process (fade itself) holds about 10 before it starts
/// anything. `wait4` alone charged every peer the bench's peak; the bench
/// traces each child to its exit instead (skipped where gzip is missing or
/// tracing is off for everyone).
#[test]
fn bench_charges_a_peer_its_own_memory() {
    let traced = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .map_or(true, |s| s.trim() != "3");
    if !traced || !on_path("gzip") {
        eprintln!("skipped: gzip missing or ptrace off");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("text");
    std::fs::write(&input, random_text(12_000, 5)).unwrap();
    let v = bench(&input, &["--device", "cpu"], &[]);
    let rows = v["rows"].as_array().unwrap();
    let gzip = rows
        .iter()
        .find(|r| r["codec"] == "gzip -9")
        .expect("a gzip row");
    let gzip_mb = gzip["peak_rss_mb"].as_f64().unwrap();
    let fade_mb = fade_row(&v)["peak_rss_mb"].as_f64().unwrap();
    assert!(gzip_mb > 0.1 && gzip_mb < 6.0, "gzip -9 peak {gzip_mb} MB");
    assert!(fade_mb > gzip_mb, "fade {fade_mb} MB, gzip {gzip_mb} MB");
}

/// With a GPU in reach, fade's rows get the GPU's peak memory use above what
/// was in use before. A stand-in `nvidia-smi` reports 1000 MiB, plus 500 while
/// the bench has a fade child running.
#[test]
fn bench_measures_gpu_memory_through_nvidia_smi() {
    let dir = tempfile::tempdir().unwrap();
    let smi = dir.path().join("nvidia-smi");
    std::fs::write(
        &smi,
        "#!/bin/sh\n\
         n=$(awk -v p=\"$PPID\" '$4 == p && $2 == \"(fade)\"' /proc/[0-9]*/stat 2>/dev/null | wc -l)\n\
         echo $((1000 + 500 * n))\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
    let input = dir.path().join("text");
    std::fs::write(&input, random_text(6_000, 4)).unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let v = bench(&input, &[], &[("PATH", &path)]);
    assert_eq!(fade_row(&v)["peak_gpu_mb"].as_f64(), Some(500.0));
    for r in v["rows"].as_array().unwrap() {
        if r["codec"] != "fade tiny" {
            assert!(r["peak_gpu_mb"].is_null(), "{} uses no GPU", r["codec"]);
        }
    }
}

/// `fade bench --explain` prints the cost model of every level (or of the
/// presets named) without measuring anything: the fine refiner of the
/// default is 3 F H multiply-adds forward and twice that backward.
#[test]
fn explain_prints_the_cost_model() {
    let all = String::from_utf8(ok(fade(&["bench", "--explain"]))).unwrap();
    let head = all.lines().next().unwrap();
    assert_eq!(
        head,
        "| per byte coded | fast | medium | default | strong | paper |"
    );
    let fine = all
        .lines()
        .find(|l| l.starts_with("| fine refiner"))
        .expect("a fine refiner row");
    let default = fade::Preset::load("default").unwrap();
    let want = 9 * default.features() as u64 * default.ffn as u64;
    let cells: Vec<&str> = fine.split('|').map(str::trim).collect();
    assert_eq!(
        cells[4].replace(',', "").parse::<u64>().unwrap(),
        want,
        "{fine}"
    );
    let one = String::from_utf8(ok(fade(&["bench", "--explain", "-p", "fast"]))).unwrap();
    assert!(one.starts_with("| per byte coded | fast |\n"), "{one}");
    for l in one.lines().skip(2) {
        assert_eq!(l.matches('|').count(), 3, "{l}");
    }
}

/// The JSON names fade's version, the machine and the presets, carries
/// plain numbers, and an empty file in the set gives no ratio or speed of
/// its own and leaves the totals finite (it once turned every total speed
/// into NaN). Each peer that ran is compared with the smallest, and the
/// verdict names fade's level.
#[test]
fn bench_json_describes_the_run_and_survives_an_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("set");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("a-text"), random_text(8_000, 5)).unwrap();
    std::fs::write(sub.join("b-empty"), b"").unwrap();
    let v = bench(&sub, &["--device", "cpu"], &[]);
    assert_eq!(v["fade_version"], env!("CARGO_PKG_VERSION"));
    assert!(v["machine"]["logical_cores"].as_u64().unwrap() >= 1);
    assert_eq!(v["machine"]["os"], "linux");
    assert_eq!(v["presets"][0]["name"], "tiny");
    let empty = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["file"] == "b-empty" && r["codec"] == "fade tiny")
        .expect("a row for the empty file");
    assert_eq!(empty["bytes"], 0);
    assert!(empty["ratio"].is_null() && empty["compress_kbps"].is_null());
    for t in v["totals"].as_array().unwrap() {
        assert_eq!(t["bytes"], 8_000, "{t}");
        let k = t["compress_kbps"].as_f64().expect("a finite total speed");
        assert!(k > 0.0 && k.is_finite(), "{t}");
        // Plain numbers: a ratio has at most four decimals.
        let r = t["ratio"].as_f64().unwrap();
        assert_eq!((r * 1e4).round() / 1e4, r, "{t}");
    }
    let totals = v["totals"].as_array().unwrap();
    if totals.len() > 1 {
        // A peer ran: the smallest one is the reference of every row, and
        // fade gets a verdict.
        let best = totals
            .iter()
            .filter(|t| t["codec"] != "fade tiny")
            .map(|t| t["compressed"].as_u64().unwrap())
            .min()
            .unwrap();
        let fade_total = totals.iter().find(|t| t["codec"] == "fade tiny").unwrap();
        let want = fade_total["compressed"].as_u64().unwrap() as f64 / best as f64 - 1.0;
        let got = fade_total["vs_best_peer"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-4, "{got} against {want}");
        let verdict = v["verdicts"][0].as_str().unwrap();
        assert!(
            verdict.starts_with("fade tiny: ") && verdict.contains("(the smallest peer)"),
            "{verdict}"
        );
    } else {
        println!("SKIPPED: no peer compressor installed, so no verdict to check");
    }
}

/// `--plot FILE.svg` draws every codec of the run: an SVG naming each.
#[test]
fn bench_plots_size_against_speed() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("text");
    std::fs::write(&input, random_text(6_000, 6)).unwrap();
    let svg = dir.path().join("plot.svg");
    let v = bench(
        &input,
        &["--device", "cpu", "--plot", svg.to_str().unwrap()],
        &[],
    );
    let drawn = std::fs::read_to_string(&svg).expect("the plot is written");
    assert!(drawn.starts_with("<svg") && drawn.trim_end().ends_with("</svg>"));
    assert!(drawn.contains("log scale"));
    for t in v["totals"].as_array().unwrap() {
        let name = t["codec"].as_str().unwrap();
        assert!(drawn.contains(name), "{name} is not on the plot");
    }
}

/// `--set` reads the named set from $FADE_CORPUS: the Silesia files and
/// enwik6 cut to the set's prefix, the backup files whole without their
/// README and checksums; a missing corpus or set is one line.
#[test]
fn named_sets_come_from_the_corpus() {
    let corpus = tempfile::tempdir().unwrap();
    let root = corpus.path();
    std::fs::create_dir_all(root.join("silesia")).unwrap();
    std::fs::create_dir_all(root.join("backup")).unwrap();
    std::fs::write(root.join("silesia/long"), random_text(140_000, 5)).unwrap();
    std::fs::write(root.join("enwik6"), random_text(3_000, 6)).unwrap();
    std::fs::write(root.join("backup/app.log"), random_text(2_000, 7)).unwrap();
    std::fs::write(root.join("backup/README.md"), "about the set").unwrap();
    std::fs::write(root.join("backup/SHA256SUMS"), "sums").unwrap();
    // No peer on PATH: only fade runs.
    let empty = tempfile::tempdir().unwrap();
    let env = [
        ("FADE_CORPUS", root.to_str().unwrap()),
        ("PATH", empty.path().to_str().unwrap()),
    ];
    let tiny = tiny();
    let rows = |set: &str| -> Vec<(String, u64)> {
        let args = [
            "bench",
            "-q",
            "--format",
            "json",
            "--presets",
            &tiny,
            "--set",
            set,
        ];
        let v: Value = serde_json::from_slice(&ok(fade_env(&args, &env))).unwrap();
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["file"].as_str().unwrap().to_string(),
                    r["bytes"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let want = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
        v.iter().map(|&(f, n)| (f.to_string(), n)).collect()
    };
    assert_eq!(rows("128k"), want(&[("long", 131_072), ("enwik6", 3_000)]));
    assert_eq!(rows("backup"), want(&[("app.log", 2_000)]));
    fails_with(
        &fade_env(&["bench", "--set", "huge"], &env),
        "no set \"huge\"",
    );
    std::fs::remove_file(root.join("enwik6")).unwrap();
    fails_with(
        &fade_env(&["bench", "--set", "quick"], &env),
        "enwik6 is missing",
    );
}
