//! `fade bench --plot FILE.svg`: compressed size against speed, one point
//! for compressing and one for decompressing per codec (speed on a log
//! scale), drawn with plotters' SVG backend.

use super::report::{thousands, Row};
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

/// Draws the `totals` of a run into `path`; `title` names the files.
pub fn write(path: &Path, totals: &[Row], title: &str) -> Result<()> {
    let e = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    let points: Vec<(&Row, f64, f64, f64)> = totals
        .iter()
        .filter_map(|r| {
            Some((
                r,
                r.compress_kbps()?,
                r.decompress_kbps()?,
                r.compressed as f64,
            ))
        })
        .collect();
    if points.is_empty() {
        return Err(anyhow!(
            "nothing to plot: no codec has a speed (empty files only?)"
        ));
    }
    let speeds = points.iter().flat_map(|p| [p.1, p.2]);
    let (lo, hi) = speeds.fold((f64::MAX, 0f64), |(lo, hi), s| (lo.min(s), hi.max(s)));
    let (small, large) = points
        .iter()
        .fold((f64::MAX, 0f64), |(a, b), p| (a.min(p.3), b.max(p.3)));
    let pad = ((large - small) * 0.08).max(large * 0.02);
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(
            (lo / 2.0..hi * 2.0).log_scale(),
            (small - pad)..(large + pad),
        )
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("speed, KB/s (log scale): filled = compress, open = decompress")
        .y_desc("compressed bytes")
        .y_label_formatter(&|v| thousands(v.max(0.0) as u64))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|x| e(&x))?;
    for (i, &(r, c, d, size)) in points.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                [(c, size), (d, size)],
                color.stroke_width(1),
            ))
            .map_err(|x| e(&x))?;
        chart
            .draw_series([Circle::new((c, size), 6, color.filled())])
            .map_err(|x| e(&x))?;
        chart
            .draw_series([Circle::new((d, size), 6, color.stroke_width(2))])
            .map_err(|x| e(&x))?;
        let name = Text::new(r.codec.clone(), (c.min(d), size), ("sans-serif", 13));
        chart.draw_series([name]).map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
