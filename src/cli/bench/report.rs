//! What `fade bench` prints: the table (sizes with thousands separators,
//! each beside the smallest peer's, speeds and the time 1 GB takes), one
//! verdict per fade level, or the same as JSON with the machine and the
//! presets that made it.

use anyhow::Result;
use serde_json::{json, Value};
use std::io::Write;

/// One codec on one file (or, as a total, on all of them).
#[derive(Debug, Clone)]
pub struct Row {
    pub file: String,
    pub codec: String,
    pub fade: bool,
    pub bytes: u64,
    pub compressed: u64,
    pub compress_s: f64,
    pub decompress_s: f64,
    pub peak_rss_mb: f64,
    /// Peak GPU memory of compressing or decompressing, MiB (fade rows, when
    /// measured).
    pub peak_gpu_mb: Option<f64>,
}

/// KB/s of `bytes` in `secs`; none for an empty input (no speed to speak of).
fn kbps(bytes: u64, secs: f64) -> Option<f64> {
    (bytes > 0 && secs > 0.0).then(|| bytes as f64 / 1000.0 / secs)
}

impl Row {
    /// Original over compressed size; none for an empty input.
    pub fn ratio(&self) -> Option<f64> {
        (self.bytes > 0 && self.compressed > 0).then(|| self.bytes as f64 / self.compressed as f64)
    }

    pub fn compress_kbps(&self) -> Option<f64> {
        kbps(self.bytes, self.compress_s)
    }

    pub fn decompress_kbps(&self) -> Option<f64> {
        kbps(self.bytes, self.decompress_s)
    }

    /// Seconds 10^9 bytes take at this row's speeds (compress, decompress).
    pub fn seconds_per_gb(&self) -> (Option<f64>, Option<f64>) {
        let per = |k: Option<f64>| k.map(|k| 1e9 / (k * 1000.0));
        (per(self.compress_kbps()), per(self.decompress_kbps()))
    }
}

/// The larger of two optional peaks; either alone if the other is missing.
pub fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Totals per codec, in `order`: sizes add up, speeds are total bytes over
/// total time (an empty file adds its time and no bytes).
pub fn totals(rows: &[Row], order: &[(String, bool)]) -> Vec<Row> {
    order
        .iter()
        .map(|(codec, fade)| {
            let rs: Vec<&Row> = rows.iter().filter(|r| &r.codec == codec).collect();
            Row {
                file: "TOTAL".into(),
                codec: codec.clone(),
                fade: *fade,
                bytes: rs.iter().map(|r| r.bytes).sum(),
                compressed: rs.iter().map(|r| r.compressed).sum(),
                compress_s: rs.iter().map(|r| r.compress_s).sum(),
                decompress_s: rs.iter().map(|r| r.decompress_s).sum(),
                peak_rss_mb: rs.iter().map(|r| r.peak_rss_mb).fold(0.0, f64::max),
                peak_gpu_mb: rs.iter().map(|r| r.peak_gpu_mb).fold(None, max_opt),
            }
        })
        .collect()
}

/// The smallest peer (not fade) among `rows` of one file, if any ran.
fn best_peer<'a>(rows: impl Iterator<Item = &'a Row>) -> Option<&'a Row> {
    rows.filter(|r| !r.fade).min_by_key(|r| r.compressed)
}

/// Size relative to the smallest peer on the same file: -0.052 is 5.2% smaller.
fn vs_best(r: &Row, all: &[Row]) -> Option<f64> {
    if r.bytes == 0 {
        return None; // every codec's framing, nothing compressed
    }
    let best = best_peer(all.iter().filter(|o| o.file == r.file))?;
    (best.compressed > 0).then(|| r.compressed as f64 / best.compressed as f64 - 1.0)
}

/// `n` with thousands separators.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A speed in KB/s: one decimal below 100, thousands separators above.
fn speed(k: Option<f64>) -> String {
    match k {
        None => "-".into(),
        Some(k) if k < 100.0 => format!("{k:.1}"),
        Some(k) => thousands(k.round() as u64),
    }
}

/// A duration as people say it: seconds, minutes, hours or days.
pub fn duration(secs: Option<f64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s < 90.0 => format!("{s:.0} s"),
        Some(s) if s < 90.0 * 60.0 => format!("{:.0} min", s / 60.0),
        Some(s) if s < 48.0 * 3600.0 => format!("{:.1} h", s / 3600.0),
        Some(s) => format!("{:.1} days", s / 86400.0),
    }
}

fn percent(x: Option<f64>) -> String {
    x.map_or("-".into(), |x| format!("{:+.1}%", x * 100.0))
}

/// The markdown table of `rows` then `totals`, and the verdicts.
pub fn markdown(out: &mut impl Write, rows: &[Row], totals: &[Row]) -> Result<()> {
    let gpu_col = rows.iter().any(|r| r.peak_gpu_mb.is_some());
    let all: Vec<Row> = rows.iter().chain(totals).cloned().collect();
    writeln!(
        out,
        "| file | codec | bytes | compressed | ratio | vs best peer | compress KB/s | decompress KB/s | 1 GB takes | peak RSS MB |{}",
        if gpu_col { " peak GPU MiB |" } else { "" }
    )?;
    writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|{}",
        if gpu_col { "---:|" } else { "" }
    )?;
    for r in &all {
        let gpu = match (gpu_col, r.peak_gpu_mb) {
            (false, _) => String::new(),
            (true, Some(m)) => format!(" {m:.0} |"),
            (true, None) => " |".into(),
        };
        let (c, d) = r.seconds_per_gb();
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {:.1} |{}",
            r.file,
            r.codec,
            thousands(r.bytes),
            thousands(r.compressed),
            r.ratio().map_or("-".into(), |x| format!("{x:.3}")),
            percent(vs_best(r, &all)),
            speed(r.compress_kbps()),
            speed(r.decompress_kbps()),
            duration(c),
            duration(d),
            r.peak_rss_mb,
            gpu
        )?;
    }
    let verdicts = verdicts(totals);
    if !verdicts.is_empty() {
        writeln!(out)?;
        for v in verdicts {
            writeln!(out, "{v}")?;
        }
    }
    Ok(())
}

/// "12.0% smaller than xz -9e, 9.3x slower" (compressing); `note` follows
/// the peer's name.
fn against(f: &Row, peer: &Row, note: &str) -> String {
    let size = f.compressed as f64 / peer.compressed.max(1) as f64 - 1.0;
    let size = if size <= 0.0 {
        format!("{:.1}% smaller than {}{note}", -size * 100.0, peer.codec)
    } else {
        format!("{:.1}% larger than {}{note}", size * 100.0, peer.codec)
    };
    let time = match (f.compress_s, peer.compress_s) {
        (a, b) if a > 0.0 && b > 0.0 && a >= b => format!("{:.1}x slower", a / b),
        (a, b) if a > 0.0 && b > 0.0 => format!("{:.1}x faster", b / a),
        _ => "speed not measured".into(),
    };
    format!("{size}, {time}")
}

/// One line per fade level on the totals: against the smallest peer and
/// against xz -9e, the everyday strong compressor.
pub fn verdicts(totals: &[Row]) -> Vec<String> {
    let best = best_peer(totals.iter());
    let xz = totals.iter().find(|r| r.codec == "xz -9e");
    totals
        .iter()
        .filter(|r| r.fade)
        .filter_map(|f| {
            let best = best?;
            let mut line = format!("{}: {}", f.codec, against(f, best, " (the smallest peer)"));
            if let Some(xz) = xz.filter(|x| x.codec != best.codec) {
                line += &format!("; {}", against(f, xz, ""));
            }
            Some(line + ".")
        })
        .collect()
}

/// `x` rounded to `digits` decimals, so JSON carries plain numbers.
fn round(x: f64, digits: i32) -> f64 {
    let k = 10f64.powi(digits);
    (x * k).round() / k
}

fn row_json(r: &Row, all: &[Row]) -> Value {
    let (c, d) = r.seconds_per_gb();
    json!({
        "file": r.file,
        "codec": r.codec,
        "bytes": r.bytes,
        "compressed": r.compressed,
        "ratio": r.ratio().map(|x| round(x, 4)),
        "vs_best_peer": vs_best(r, all).map(|x| round(x, 4)),
        "compress_seconds": round(r.compress_s, 3),
        "decompress_seconds": round(r.decompress_s, 3),
        "compress_kbps": r.compress_kbps().map(|x| round(x, 1)),
        "decompress_kbps": r.decompress_kbps().map(|x| round(x, 1)),
        "compress_seconds_per_gb": c.map(|x| round(x, 0)),
        "decompress_seconds_per_gb": d.map(|x| round(x, 0)),
        "peak_rss_mb": round(r.peak_rss_mb, 1),
        "peak_gpu_mb": r.peak_gpu_mb.map(|x| round(x, 0)),
    })
}

/// The whole run as JSON: fade's version, the machine, the presets, every
/// row, the totals and the verdicts.
pub fn json(out: &mut impl Write, rows: &[Row], totals: &[Row], presets: Value) -> Result<()> {
    let all: Vec<Row> = rows.iter().chain(totals).cloned().collect();
    let v = json!({
        "fade_version": env!("CARGO_PKG_VERSION"),
        "machine": machine(),
        "presets": presets,
        "rows": rows.iter().map(|r| row_json(r, &all)).collect::<Vec<_>>(),
        "totals": totals.iter().map(|r| row_json(r, &all)).collect::<Vec<_>>(),
        "verdicts": verdicts(totals),
    });
    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    Ok(())
}

/// The CPU's name, its logical cores, its vector units, and the OS.
fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|m| m.trim().to_string())
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    #[cfg(target_arch = "x86_64")]
    let vector = if std::is_x86_feature_detected!("avx512f") {
        "avx512"
    } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        "avx2+fma"
    } else {
        "sse2"
    };
    #[cfg(not(target_arch = "x86_64"))]
    let vector = std::env::consts::ARCH;
    json!({
        "cpu": cpu,
        "logical_cores": cores,
        "vector": vector,
        "arch": std::env::consts::ARCH,
        "os": std::env::consts::OS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(codec: &str, fade: bool, bytes: u64, compressed: u64, secs: f64) -> Row {
        Row {
            file: "f".into(),
            codec: codec.into(),
            fade,
            bytes,
            compressed,
            compress_s: secs,
            decompress_s: secs,
            peak_rss_mb: 1.0,
            peak_gpu_mb: None,
        }
    }

    #[test]
    fn verdicts_compare_with_the_smallest_peer_and_xz() {
        let t = vec![
            row("fade default", true, 1000, 88, 9.3),
            row("xz -9e", false, 1000, 100, 1.0),
            row("zpaq -method 5", false, 1000, 90, 0.5),
        ];
        assert_eq!(
            verdicts(&t),
            ["fade default: 2.2% smaller than zpaq -method 5 (the smallest peer), 18.6x slower; \
              12.0% smaller than xz -9e, 9.3x slower."]
        );
        assert_eq!(vs_best(&t[0], &t).map(|x| round(x, 4)), Some(-0.0222));
    }

    #[test]
    fn an_empty_file_has_no_ratio_or_speed_and_leaves_totals_finite() {
        let rows = vec![
            row("gzip -9", false, 0, 20, 0.01),
            row("gzip -9", false, 4000, 1000, 1.0),
        ];
        assert_eq!(rows[0].ratio(), None);
        assert_eq!(rows[0].compress_kbps(), None);
        let t = totals(&rows, &[("gzip -9".into(), false)]);
        assert_eq!(t[0].bytes, 4000);
        let k = t[0].compress_kbps().unwrap();
        assert!((k - 4.0 / 1.01).abs() < 1e-9, "{k}");
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(thousands(1_577_886), "1,577,886");
        assert_eq!(speed(Some(29.94)), "29.9");
        assert_eq!(speed(Some(52_855.6)), "52,856");
        assert_eq!(duration(Some(33_333.0)), "9.3 h");
        assert_eq!(duration(Some(625.0)), "10 min");
        assert_eq!(duration(Some(3.0 * 86400.0)), "3.0 days");
    }
}
