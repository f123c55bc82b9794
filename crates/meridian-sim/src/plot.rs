//! A hand-written SVG plot of a scenario run: the offset of every measured node over time,
//! one polyline each, with axes, a legend, the settle time and the fault times marked.

use crate::runner::Report;
use std::fmt::Write;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 540.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
/// Points per polyline at most (min and max of each column are kept).
const COLUMNS: usize = 1200;
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// 1, 2 or 5 times a power of ten, at least `x`.
fn nice(x: f64) -> f64 {
    let p = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|k| k * p)
        .find(|v| *v >= x * (1.0 - 1e-9))
        .unwrap_or(10.0 * p)
}

/// Unit for a span of seconds: (name, seconds per unit).
fn offset_unit(span: f64) -> (&'static str, f64) {
    if span < 1e-6 {
        ("ns", 1e-9)
    } else if span < 1e-3 {
        ("us", 1e-6)
    } else if span < 1.0 {
        ("ms", 1e-3)
    } else {
        ("s", 1.0)
    }
}

fn time_unit(duration: f64) -> (&'static str, f64) {
    if duration >= 3.0 * 86_400.0 {
        ("d", 86_400.0)
    } else if duration >= 7200.0 {
        ("h", 3600.0)
    } else if duration >= 600.0 {
        ("min", 60.0)
    } else {
        ("s", 1.0)
    }
}

/// Keeps the first, minimum, maximum and last point of each of `COLUMNS` time columns.
fn decimate(points: &[(f64, f64)], duration: f64) -> Vec<(f64, f64)> {
    if points.len() <= 2 * COLUMNS {
        return points.to_vec();
    }
    let mut out = Vec::with_capacity(4 * COLUMNS);
    let width = duration.max(1e-9) / COLUMNS as f64;
    let mut i = 0;
    while i < points.len() {
        let column = (points[i].0 / width).floor();
        let mut j = i;
        let (mut lo, mut hi) = (i, i);
        while j < points.len() && (points[j].0 / width).floor() == column {
            if points[j].1 < points[lo].1 {
                lo = j;
            }
            if points[j].1 > points[hi].1 {
                hi = j;
            }
            j += 1;
        }
        let mut keep = vec![i, lo, hi, j - 1];
        keep.sort_unstable();
        keep.dedup();
        out.extend(keep.into_iter().map(|k| points[k]));
        i = j;
    }
    out
}

/// The SVG document for `report`. The vertical range covers the offsets after `settle`
/// (with some room); larger ones, such as a start before the first step, are clipped.
pub fn svg(report: &Report) -> String {
    let duration = report.duration.max(1e-9);
    let settled = report
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(t, _)| *t >= report.settle)
        .fold(0.0f64, |m, (_, e)| m.max(e.abs()));
    let all = report
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .fold(0.0f64, |m, (_, e)| m.max(e.abs()));
    let top = if settled > 0.0 { settled } else { all };
    let half = nice((top * 1.2).max(1e-9));
    let (yu, yk) = offset_unit(half);
    let (xu, xk) = time_unit(duration);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |t: f64| LEFT + plot_w * (t / duration).clamp(0.0, 1.0);
    let y = |e: f64| TOP + plot_h * (0.5 - 0.5 * (e / half).clamp(-1.0, 1.0));

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" font-size="15" text-anchor="middle">{} (seed {}): offset from UTC</text>"#,
        LEFT + plot_w / 2.0,
        escape(&report.scenario),
        report.seed
    );
    // Horizontal grid and y labels.
    let step = nice(half / 4.0);
    let mut v = (-half / step).ceil() * step;
    while v <= half * (1.0 + 1e-9) {
        let yy = y(v);
        let colour = if v.abs() < step * 1e-6 {
            "#888"
        } else {
            "#e5e5e5"
        };
        let _ = writeln!(
            s,
            r#"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="{colour}"/>"#,
            LEFT + plot_w
        );
        let label = v / yk;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            yy + 4.0,
            trim(label)
        );
        v += step;
    }
    // Vertical ticks and x labels.
    let xstep = nice(duration / xk / 8.0) * xk;
    let mut t = 0.0;
    while t <= duration * (1.0 + 1e-9) {
        let xx = x(t);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="#f0f0f0"/>"##,
            TOP + plot_h
        );
        let _ = writeln!(
            s,
            r#"<text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + plot_h + 18.0,
            trim(t / xk)
        );
        t += xstep;
    }
    let _ = writeln!(
        s,
        r#"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">time ({xu})</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 16.0
    );
    let _ = writeln!(
        s,
        r#"<text x="20" y="{:.1}" text-anchor="middle" transform="rotate(-90 20 {:.1})">offset ({yu}); beyond the range: clipped at the edge</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    // Settle time and faults.
    if report.settle > 0.0 {
        let xx = x(report.settle);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="#555" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" fill="#555">settle</text>"##,
            TOP + plot_h,
            xx + 3.0,
            TOP + 12.0
        );
    }
    for (k, m) in report.marks.iter().enumerate() {
        let xx = x(m.time);
        let ly = TOP + 26.0 + 14.0 * (k % 6) as f64;
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="#c44" stroke-dasharray="3 3"/><text x="{:.1}" y="{ly:.1}" fill="#c44" font-size="10">{}</text>"##,
            TOP + plot_h,
            xx + 3.0,
            escape(&m.label)
        );
    }
    // One polyline per node, and the legend.
    for (k, series) in report.series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let mut pts = String::new();
        for (t, e) in decimate(&series.points, duration) {
            let _ = write!(pts, "{:.1},{:.1} ", x(t), y(e));
        }
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.2" points="{}"/>"#,
            pts.trim_end()
        );
        let ly = TOP + 10.0 + 18.0 * k as f64;
        let lx = LEFT + plot_w + 14.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 20.0,
            lx + 26.0,
            ly + 4.0,
            escape(&series.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A tick label without needless digits.
fn trim(x: f64) -> String {
    let r = (x * 1000.0).round() / 1000.0;
    let text = format!("{r}");
    if text == "-0" {
        "0".to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice(0.7), 1.0);
        assert_eq!(nice(1.5), 2.0);
        assert_eq!(nice(3.0), 5.0);
        assert_eq!(nice(6.0), 10.0);
        assert!((nice(2.4e-5) - 5e-5).abs() < 1e-18);
    }

    #[test]
    fn decimation_keeps_extremes_and_bounds_the_size() {
        let points: Vec<(f64, f64)> = (0..100_000)
            .map(|i| (i as f64, if i == 54_321 { 9.0 } else { (i % 7) as f64 }))
            .collect();
        let d = decimate(&points, 100_000.0);
        assert!(d.len() <= 4 * COLUMNS);
        assert!(d.contains(&(54_321.0, 9.0)));
        assert!(d.windows(2).all(|w| w[0].0 <= w[1].0));
    }
}
