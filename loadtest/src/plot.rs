//! A hand-written SVG of latency by percentile: the x axis is
//! `log10(1 / (1 - p))`, so 90 %, 99 %, 99.9 % … are evenly spaced and the
//! tail is visible, like HdrHistogram's own plots.

use std::fmt::Write as _;

const W: f64 = 820.0;
const H: f64 = 460.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// One line of the plot: a label and its (percentile, µs) points.
pub struct Series<'a> {
    /// Legend text.
    pub label: &'a str,
    /// Points as (percentile 0–100, latency in µs).
    pub points: &'a [(f64, f64)],
}

fn x_of(percentile: f64) -> f64 {
    let rest = (1.0 - percentile / 100.0).max(1e-6);
    (1.0 / rest).log10()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" tick step for a range of `span`.
fn tick_step(span: f64) -> f64 {
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm < 1.5 {
        1.0
    } else if norm < 3.5 {
        2.0
    } else if norm < 7.5 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// The SVG document.
pub fn percentile_svg(title: &str, series: &[Series<'_>]) -> String {
    let xmax = series
        .iter()
        .flat_map(|s| s.points.iter())
        .map(|p| x_of(p.0))
        .fold(1.0f64, f64::max)
        .ceil()
        .min(6.0);
    let ymax_us = series
        .iter()
        .flat_map(|s| s.points.iter())
        .map(|p| p.1)
        .fold(1.0f64, f64::max);
    let (unit, div) = if ymax_us >= 2000.0 {
        ("ms", 1000.0)
    } else {
        ("µs", 1.0)
    };
    let ymax = ymax_us / div;
    let step = tick_step(ymax);
    let ytop = (ymax / step).ceil() * step;
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let px = |x: f64| LEFT + pw * x / xmax;
    let py = |y: f64| TOP + ph * (1.0 - y / ytop);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        LEFT + pw / 2.0,
        escape(title)
    );
    // Grid and axes.
    let mut y = 0.0;
    while y <= ytop + step / 2.0 {
        let yy = py(y);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            yy + 4.0,
            trim_number(y)
        );
        y += step;
    }
    for i in 0..=(xmax as usize) {
        let xx = px(i as f64);
        let label = match i {
            0 => "0%".to_string(),
            _ => format!("{}%", trim_number(100.0 - 100.0 / 10f64.powi(i as i32))),
        };
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="#ddd"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            TOP + ph,
            TOP + ph + 18.0
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        LEFT + pw / 2.0,
        H - 10.0
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="{:.1}" text-anchor="start">latency ({unit})</text>"#,
        TOP - 8.0
    );
    // Lines and legend.
    for (i, serie) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = serie
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", px(x_of(p.0).min(xmax)), py(p.1 / div)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        let ly = TOP + 10.0 + 20.0 * i as f64;
        let lx = LEFT + pw + 15.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 22.0,
            lx + 28.0,
            ly + 4.0,
            escape(serie.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn trim_number(v: f64) -> String {
    let t = format!("{v:.4}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_axes_and_lines() {
        let pts = [(0.0, 100.0), (50.0, 120.0), (99.0, 300.0), (99.9, 900.0)];
        let svg = percentile_svg(
            "a <test>",
            &[
                Series {
                    label: "one",
                    points: &pts,
                },
                Series {
                    label: "two",
                    points: &pts,
                },
            ],
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("99.9%"));
        assert!(svg.contains("a &lt;test&gt;"));
    }
}
