//! SVG charts of a run, drawn with plotters: for each scenario, throughput, speedup over one
//! worker, p99 latency and resident memory, each against the number of workers, one line
//! per contender.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::output::Record;

/// One panel of a scenario's chart.
struct Metric {
    title: &'static str,
    unit: &'static str,
    value: fn(&Record, &[Record]) -> Option<f64>,
}

const METRICS: [Metric; 4] = [
    Metric { title: "throughput", unit: "M ops/s", value: |r, _| Some(r.ops_per_sec / 1e6) },
    Metric {
        title: "speedup over 1 worker",
        unit: "x",
        value: |r, all| {
            all.iter()
                .find(|o| {
                    o.scenario() == r.scenario() && o.contender == r.contender && o.workers == 1
                })
                .map(|one| r.ops_per_sec / one.ops_per_sec.max(1e-9))
        },
    },
    Metric { title: "p99 latency", unit: "us", value: |r, _| Some(r.p99_ns as f64 / 1e3) },
    Metric {
        title: "resident memory",
        unit: "MiB",
        value: |r, _| Some(r.rss_bytes as f64 / (1 << 20) as f64),
    },
];

/// A file name for a scenario (`bank_accounts-1024.svg`).
pub fn file_name(scenario: &str) -> String {
    let mut name: String =
        scenario.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    name.push_str(".svg");
    name
}

/// Draws one SVG per scenario into `dir` and returns their paths.
///
/// # Errors
///
/// When a file cannot be written.
pub fn draw_all(dir: &Path, records: &[Record]) -> io::Result<Vec<PathBuf>> {
    let mut scenarios: Vec<String> = records.iter().map(Record::scenario).collect();
    scenarios.dedup();
    let mut paths = Vec::new();
    for scenario in scenarios {
        let rows: Vec<Record> =
            records.iter().filter(|r| r.scenario() == scenario).cloned().collect();
        let path = dir.join(file_name(&scenario));
        draw(&path, &scenario, &rows).map_err(|e| io::Error::other(e.to_string()))?;
        paths.push(path);
    }
    Ok(paths)
}

fn draw(path: &Path, scenario: &str, rows: &[Record]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1100, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(scenario, ("sans-serif", 22))?;
    let contenders: Vec<String> = {
        let mut seen = Vec::new();
        for r in rows {
            if !seen.contains(&r.contender) {
                seen.push(r.contender.clone());
            }
        }
        seen
    };
    let workers: BTreeSet<usize> = rows.iter().map(|r| r.workers).collect();
    let max_workers = workers.iter().copied().max().unwrap_or(1) as f64;
    for (area, metric) in root.split_evenly((2, 2)).iter().zip(METRICS.iter()) {
        let series: Vec<(String, Vec<(f64, f64)>)> = contenders
            .iter()
            .map(|c| {
                let points = rows
                    .iter()
                    .filter(|r| &r.contender == c)
                    .filter_map(|r| (metric.value)(r, rows).map(|v| (r.workers as f64, v)))
                    .collect();
                (c.clone(), points)
            })
            .collect();
        let top = series.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y)).fold(0.0, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{} ({})", metric.title, metric.unit), ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(0.5..max_workers + 0.5, 0.0..(top * 1.15).max(1e-6))?;
        chart
            .configure_mesh()
            .x_desc("workers")
            .x_labels(workers.len().max(2))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()?;
        for (i, (name, points)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
