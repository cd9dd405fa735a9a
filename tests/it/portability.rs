//! Files decode on every machine: the golden files (one per built-in preset,
//! written once and checked in) decode byte-identical here, at every vector
//! level, under qemu as CPUs without AVX or FMA and with every feature, and
//! with other cache geometries shown through a mount namespace.
//!
//! Regenerate the golden files only when the format changes on purpose:
//! `tests/golden/make.sh` (and bump the format version).

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Golden file, preset, and how many bytes of sample.txt it holds.
const GOLDEN: &[(&str, usize)] = &[
    ("sample.tiny.fade", 4096),
    ("sample.fast.fade", 1024),
    ("sample.medium.fade", 8192),
    ("sample.default.fade", 8192),
    ("sample.strong.fade", 8192),
    ("sample.paper.fade", 512),
    // Retired built-in presets (models/retired/): their files still decode.
    ("sample.fast-1.fade", 1024),
    ("sample.fast-6.fade", 1024),
    ("sample.fast-12.fade", 1024),
    ("sample.medium-2.fade", 8192),
    ("sample.default-3.fade", 8192),
    ("sample.default-7.fade", 8192),
    ("sample.default-11.fade", 8192),
    ("sample.default-13.fade", 8192),
    ("sample.default-17.fade", 8192),
    ("sample.default-18.fade", 8192),
    ("sample.strong-4.fade", 8192),
    ("sample.strong-8.fade", 8192),
    ("sample.strong-9.fade", 8192),
    ("sample.strong-10.fade", 8192),
];

/// The files the slow environments (qemu, namespaces) decode: small presets.
const QUICK: &[&str] = &["sample.tiny.fade", "sample.fast.fade"];

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn want(name: &str) -> Vec<u8> {
    let len = GOLDEN.iter().find(|g| g.0 == name).unwrap().1;
    let all = std::fs::read(golden().join("sample.txt")).unwrap();
    all[..len].to_vec()
}

fn check(out: std::process::Output, name: &str, how: &str) {
    assert!(
        out.status.success(),
        "{name} {how}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == want(name), "{name} {how} decodes differently");
}

/// Skips (visibly) where a tool is missing, but never in CI, which installs it.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is missing in CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: {tool} not installed");
    }
    found
}

#[test]
fn golden_files_decode_byte_identical_at_every_vector_level() {
    // Every decoding is independent: they run on as many threads as there
    // are cores, each one checked as before.
    let mut runs: Vec<(&str, Option<&str>)> = Vec::new();
    for (name, _) in GOLDEN {
        let f = golden().join(name);
        let listing = String::from_utf8(ok(fade(&["list", f.to_str().unwrap()]))).unwrap();
        let preset = name.split(['.', '-']).nth(1).unwrap();
        assert!(listing.contains(preset), "{name}: {listing}");
        runs.push((name, None));
        for level in ["baseline", "avx2"] {
            // Software FMA makes baseline slow, and paper is slow anyway: the
            // canary fingerprint already covers its kernels at every level.
            if *name == "sample.paper.fade" || (level == "baseline" && !QUICK.contains(name)) {
                continue;
            }
            runs.push((name, Some(level)));
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers.min(runs.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(name, level)) = runs.get(i) else {
                    return;
                };
                let f = golden().join(name);
                let args = ["decompress", "-c", f.to_str().unwrap()];
                match level {
                    None => check(fade(&args), name, "natively"),
                    Some(level) => check(
                        fade_env(&args, &[("FADE_SIMD", level)]),
                        name,
                        &format!("with FADE_SIMD={level}"),
                    ),
                }
            });
        }
    });
}

#[test]
fn golden_files_decode_under_qemu_as_other_cpus() {
    if !have("qemu-x86_64") {
        return;
    }
    // Nehalem: SSE4.2, no AVX, no FMA (software fmaf). max: every feature
    // qemu emulates (AVX2 and FMA). Emulation is slow: all four runs at once.
    let runs: Vec<_> = ["Nehalem-v1", "max"]
        .iter()
        .flat_map(|cpu| QUICK.iter().map(move |name| (*cpu, *name)))
        .map(|(cpu, name)| {
            let child = Command::new("qemu-x86_64")
                .args(["-cpu", cpu, env!("CARGO_BIN_EXE_fade"), "decompress", "-c"])
                .arg(golden().join(name))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (cpu, name, child)
        })
        .collect();
    for (cpu, name, child) in runs {
        check(
            child.wait_with_output().unwrap(),
            name,
            &format!("under qemu -cpu {cpu}"),
        );
    }
}

/// A copy of /sys/devices/system/cpu with the cache files rewritten: level 1
/// data cache `l1` (size, ways) and, if given, level 2 `l2`.
fn fake_cpu_tree(dir: &Path, l1: (&str, &str), l2: Option<(&str, &str)>) {
    let real = Path::new("/sys/devices/system/cpu");
    for top in ["online", "possible", "present", "offline", "kernel_max"] {
        if let Ok(v) = std::fs::read(real.join(top)) {
            std::fs::write(dir.join(top), v).unwrap();
        }
    }
    for cpu in std::fs::read_dir(real).unwrap().flatten() {
        let cname = cpu.file_name().to_string_lossy().into_owned();
        if !(cname.starts_with("cpu") && cname[3..].chars().all(|c| c.is_ascii_digit())) {
            continue;
        }
        let Ok(indexes) = std::fs::read_dir(cpu.path().join("cache")) else {
            continue;
        };
        for idx in indexes.flatten() {
            if !idx.file_name().to_string_lossy().starts_with("index") {
                continue;
            }
            let to = dir.join(&cname).join("cache").join(idx.file_name());
            std::fs::create_dir_all(&to).unwrap();
            for f in std::fs::read_dir(idx.path()).unwrap().flatten() {
                if let Ok(v) = std::fs::read(f.path()) {
                    std::fs::write(to.join(f.file_name()), v).unwrap();
                }
            }
            let read = |f: &str| std::fs::read_to_string(to.join(f)).unwrap_or_default();
            let (level, kind) = (read("level"), read("type"));
            let set = match (level.trim(), kind.trim()) {
                ("1", "Data") => Some(l1),
                ("2", _) => l2,
                _ => None,
            };
            if let Some((size, ways)) = set {
                std::fs::write(to.join("size"), format!("{size}\n")).unwrap();
                std::fs::write(to.join("ways_of_associativity"), format!("{ways}\n")).unwrap();
            }
        }
    }
}

#[test]
fn golden_files_decode_with_other_cache_geometries() {
    if !have("unshare") {
        return;
    }
    let probe = Command::new("unshare").args(["-m", "true"]).output();
    if !probe.map(|o| o.status.success()).unwrap_or(false) {
        eprintln!("SKIPPED: unshare -m is not permitted here (needs root and CAP_SYS_ADMIN)");
        return;
    }
    // Intel Ice Lake and later; and a 64K 4-way L1 (AMD Zen 1 instruction-like).
    for (l1, l2) in [(("48K", "12"), Some(("2048K", "16"))), (("64K", "4"), None)] {
        let dir = tempfile::tempdir().unwrap();
        fake_cpu_tree(dir.path(), l1, l2);
        for name in QUICK.iter().chain(&["sample.default.fade"]) {
            let script = format!(
                "mount --bind '{}' /sys/devices/system/cpu && \
                 cat /sys/devices/system/cpu/cpu0/cache/index0/size >&2 && \
                 exec '{}' decompress -c '{}'",
                dir.path().display(),
                env!("CARGO_BIN_EXE_fade"),
                golden().join(name).display()
            );
            let out = Command::new("unshare")
                .args(["-m", "sh", "-c", &script])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.starts_with(l1.0),
                "the namespace did not show the fake L1: {err}"
            );
            check(out, name, &format!("with a {}/{}-way L1", l1.0, l1.1));
        }
    }
}
