//! Latency over time as a PNG: each second's p50 and p99 acknowledgement (by the second the bid
//! was due) and p99 accepted → delivered (sampled watchers, by arrival).

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;

use crate::report::{Latency, Report};

/// Debian's fonts-dejavu-core (scripts/load installs it).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

pub fn latency_over_time(report: &Report, path: &Path) -> Result<()> {
    let font = std::fs::read(FONT).with_context(|| format!("no font at {FONT}"))?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| anyhow!("{FONT} is not a font"))?;

    let series = |pick: fn(&crate::report::Second) -> Option<Latency>, p: fn(&Latency) -> f64| {
        report
            .timeline
            .iter()
            .filter_map(|second| {
                pick(second).map(|latency| (second.second as f64 + 0.5, p(&latency)))
            })
            .collect::<Vec<_>>()
    };
    let lines = [
        ("acknowledgement p50", series(|s| s.ack, |l| l.p50_ms), BLUE),
        ("acknowledgement p99", series(|s| s.ack, |l| l.p99_ms), RED),
        (
            "accepted → delivered p99",
            series(|s| s.delivery, |l| l.p99_ms),
            GREEN,
        ),
    ];
    let top = lines
        .iter()
        .flat_map(|(_, points, _)| points.iter().map(|(_, ms)| *ms))
        .fold(1.0_f64, f64::max)
        * 1.1;
    let right = report.timeline.len().max(1) as f64;

    let root = BitMapBackend::new(path, (1000, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "gavel-load {}: {} bids/s offered, {} lots, {} bidders, {} watchers",
                report.scenario, report.rate, report.lots, report.bidders, report.watchers
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..right, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the first bid was due")
        .y_desc("latency (ms)")
        .draw()?;
    for (label, points, colour) in lines {
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
