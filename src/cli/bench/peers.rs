//! The codecs `fade bench` runs: fade at each preset asked for, then every
//! peer installed, the everyday levels beside the strongest ones.

use anyhow::Result;
use std::process::{Command, Stdio};

/// One codec: how to compress and decompress a file named last, to stdout.
pub struct Codec {
    pub name: String,
    pub compress: Vec<String>,
    pub decompress: Vec<String>,
    /// fade itself (which may use the GPU, and gets a verdict).
    pub fade: bool,
}

/// How fade itself runs: the options `fade bench` passes on.
pub struct FadeRun<'a> {
    pub threads: Option<usize>,
    pub block_size: Option<u64>,
    pub device: &'a str,
    pub lanes: Option<u32>,
    pub memory_limit: Option<u64>,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn available(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A peer that has no stdin/stdout mode (zpaq, 7z): a shell wrapper
/// archives a copy of the file in a temporary directory and prints the
/// archive, or extracts it and prints the file.
fn wrapped(name: &str, archive: &str, extract: &str) -> Codec {
    let wrap = |script: String| strings(&["sh", "-c", &script, "sh"]);
    Codec {
        name: name.into(),
        compress: wrap(format!(
            r#"d=$(mktemp -d) && cp "$1" "$d/f" && cd "$d" && {{ {archive}; }} >/dev/null && cat a; s=$?; rm -rf "$d"; exit $s"#
        )),
        decompress: wrap(format!(
            r#"d=$(mktemp -d) && cp "$1" "$d/a" && cd "$d" && {extract}; s=$?; rm -rf "$d"; exit $s"#
        )),
        fade: false,
    }
}

/// The peers, in the order of the table: (tool, name, compress, decompress)
/// for the ones with a stdout mode.
const STREAMING: &[(&str, &str, &[&str], &[&str])] = &[
    ("gzip", "gzip -9", &["-9", "-c"], &["-d", "-c"]),
    ("zstd", "zstd -3", &["-3", "-q", "-c"], &["-d", "-q", "-c"]),
    (
        "zstd",
        "zstd -19",
        &["-19", "-q", "-c"],
        &["-d", "-q", "-c"],
    ),
    ("xz", "xz -6", &["-6", "-T1", "-c"], &["-d", "-T1", "-c"]),
    ("xz", "xz -9e", &["-9e", "-T1", "-c"], &["-d", "-T1", "-c"]),
    ("brotli", "brotli -q 11", &["-q", "11", "-c"], &["-d", "-c"]),
    ("bzip3", "bzip3", &["-e", "-c"], &["-d", "-c"]),
];

/// fade at each of `presets`, then every peer on PATH; `skipped` is called
/// with each peer that is not installed.
pub fn codecs(
    presets: &[String],
    run: &FadeRun,
    mut skipped: impl FnMut(&str),
) -> Result<Vec<Codec>> {
    let exe = std::env::current_exe()?.display().to_string();
    let mut list = Vec::new();
    for p in presets {
        let mut c = vec![
            exe.clone(),
            "-q".into(),
            "--device".into(),
            run.device.into(),
        ];
        if let Some(t) = run.threads {
            c.extend(["-T".into(), t.to_string()]);
        }
        if let Some(b) = run.block_size {
            c.extend(["--block-size".into(), b.to_string()]);
        }
        if let Some(m) = run.memory_limit {
            c.extend(["--memory-limit".into(), m.to_string()]);
        }
        let mut d = c.clone();
        c.extend(strings(&["compress", "-c", "-p", p]));
        d.extend(strings(&["decompress", "-c"]));
        // Named by the preset itself, so "-p 3" and "-p default" read the same.
        let mut name = format!("fade {}", fade::Preset::load(p)?.name);
        if let Some(n) = run.lanes {
            c.extend(["--lanes".into(), n.to_string()]);
            name += &format!(" ({n} lanes)");
        }
        list.push(Codec {
            name,
            compress: c,
            decompress: d,
            fade: true,
        });
    }
    let mut missing: Vec<&str> = Vec::new();
    for &(tool, name, comp, decomp) in STREAMING {
        if !available(tool) {
            if !missing.contains(&tool) {
                missing.push(tool);
            }
            continue;
        }
        let with = |args: &[&str]| [strings(&[tool]), strings(args)].concat();
        list.push(Codec {
            name: name.into(),
            compress: with(comp),
            decompress: with(decomp),
            fade: false,
        });
    }
    if available("7z") {
        list.push(wrapped(
            "7z PPMd -mx9",
            "7z a -t7z -m0=PPMd -mx=9 a.7z f && mv a.7z a",
            "mv a a.7z && 7z e -so a.7z 2>/dev/null",
        ));
    } else {
        missing.push("7z");
    }
    if available("zpaq") {
        list.push(wrapped(
            "zpaq -method 5",
            "zpaq a a.zpaq f -method 5 && mv a.zpaq a",
            "mv a a.zpaq && zpaq x a.zpaq >/dev/null && cat f",
        ));
    } else {
        missing.push("zpaq");
    }
    missing.iter().for_each(|t| skipped(t));
    Ok(list)
}
