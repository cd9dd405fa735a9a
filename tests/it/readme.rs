//! The README's commands run: every line of its `sh` blocks that needs
//! neither the network, another machine nor a build (`cargo`, `ssh`), run in
//! order in a fresh folder holding the files the README names, with this
//! build's `fade` first on PATH. A command the README shows must succeed.

use std::path::Path;
use std::process::Command;

/// The `sh` blocks of README.md, each as its lines.
fn sh_blocks(readme: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(b), l) => b.push(l.to_string()),
            (None, _) => {}
        }
    }
    blocks
}

/// Whether a line is run: not a build, not another machine, and not GNU
/// parallel where it is missing (CI installs it).
fn runnable(line: &str, have_parallel: bool) -> bool {
    let cmd = line.trim_start();
    !(cmd.is_empty()
        || cmd.starts_with('#')
        || cmd.starts_with("cargo ")
        || cmd.starts_with("cd ")
        || cmd.contains("ssh ")
        || (cmd.starts_with("parallel ") && !have_parallel))
}

/// `n` log-like lines, varied as real text is. (An exact repeat of a few
/// KB, learned to near certainty, makes the default's small-lane steps run
/// on subnormal floats, which some CPUs compute very slowly: see
/// docs/PERFORMANCE.md.)
fn lines(n: usize, seed: u64) -> String {
    const WORDS: [&str; 12] = [
        "fox", "dog", "started", "stopped", "backup", "disk", "error", "ok", "user", "cron",
        "sent", "bytes",
    ];
    let mut x = seed;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as usize
    };
    (0..n)
        .map(|i| {
            let w: Vec<&str> = (0..4).map(|_| WORDS[next() % WORDS.len()]).collect();
            format!("{i:05} {} pid={}\n", w.join(" "), next() % 5000)
        })
        .collect()
}

/// The files the README's examples name.
fn fixtures(dir: &Path) {
    let text = lines(300, 1);
    std::fs::write(dir.join("notes.txt"), &text).unwrap();
    std::fs::write(dir.join("big.log"), lines(900, 2)).unwrap();
    std::fs::write(dir.join("disk.img"), lines(600, 3)).unwrap();
    for sub in ["logs", "home/me", "photos"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(dir.join("logs/a.log"), &text[..4000]).unwrap();
    std::fs::write(dir.join("logs/b.log"), &text[4000..]).unwrap();
    std::fs::write(dir.join("home/me/todo"), "backup the photos\n").unwrap();
    std::fs::write(dir.join("photos/cat.raw"), [7u8; 3000]).unwrap();
}

#[test]
fn the_readmes_commands_run() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_fade"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let have_parallel = Command::new("parallel").arg("--version").output().is_ok();
    let mut ran = 0;
    for block in sh_blocks(&readme) {
        let dir = tempfile::tempdir().unwrap();
        fixtures(dir.path());
        for line in block.iter().filter(|l| runnable(l, have_parallel)) {
            let out = Command::new("sh")
                .arg("-c")
                .arg(line)
                .current_dir(dir.path())
                .env("PATH", &path)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "README line failed ({}): {line}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            ran += 1;
        }
    }
    // The quick start alone has eleven commands: the blocks were found.
    assert!(ran >= 20, "only {ran} README commands ran");
    if !have_parallel {
        println!("SKIPPED: the README's GNU parallel line (parallel is not installed)");
    }
}
