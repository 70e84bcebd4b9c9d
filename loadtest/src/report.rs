//! Summaries of runs: percentiles from the HdrHistogram, throughput and
//! errors by kind, as an aligned text table or JSON.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::client::ErrorKind;
use crate::load::RunResult;

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    /// Percentiles of a nanosecond histogram, in microseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// Failures by kind.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Errors {
    /// Could not connect.
    pub connect: u64,
    /// No answer in time.
    pub timeout: u64,
    /// Answered with another status than expected.
    pub unexpected_status: u64,
    /// Broken connection or invalid answer.
    pub io: u64,
}

impl Errors {
    /// All failures.
    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.unexpected_status + self.io
    }
}

/// What the server used during a run.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct ServerUse {
    /// Resident memory after the run (VmRSS, summed over the processes).
    pub rss_kib: u64,
    /// Proportional set size (shared pages split between processes).
    pub pss_kib: u64,
    /// CPU seconds used during the run (user + system, all processes).
    pub cpu_s: f64,
    /// `cpu_s` as a percentage of one core over the run.
    pub cpu_pct: f64,
    /// Answered requests per CPU second of the server.
    pub requests_per_cpu_s: f64,
}

/// One run.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// What was measured (e.g. `gateway`, `nginx`, `direct`).
    pub label: String,
    /// Requests that got an answer or an error.
    pub requests: u64,
    /// Answers with the expected status.
    pub ok: u64,
    /// Seconds from the start to the last answer.
    pub elapsed_s: f64,
    /// `ok` per second.
    pub rps: f64,
    /// Latency of the `ok` answers.
    pub latency_us: Latency,
    /// Failures by kind.
    pub errors: Errors,
    /// Every status seen, with counts.
    pub statuses: BTreeMap<String, u64>,
    /// The first message of each failure kind.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub error_samples: BTreeMap<String, String>,
    /// Stale keep-alive connections replaced.
    pub reconnects: u64,
    /// Connections opened (with TLS: handshakes completed).
    pub connects: u64,
    /// `connects` per second: handshakes per second with TLS.
    pub conn_per_s: f64,
    /// TLS only: handshakes that resumed a session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed: Option<u64>,
    /// CPU of the load generator over the run, % of one core.
    pub client_cpu_pct: f64,
    /// Server resources, when the server is a child of this process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerUse>,
    /// The latency percentile curve (percentile, µs), for plots.
    #[serde(skip)]
    pub curve: Vec<(f64, f64)>,
}

impl Summary {
    /// Summarizes `run` under `label`.
    pub fn new(label: &str, run: &RunResult) -> Summary {
        let t = &run.tally;
        let errors = Errors {
            connect: t.errors_of(ErrorKind::Connect),
            timeout: t.errors_of(ErrorKind::Timeout),
            unexpected_status: t.errors_of(ErrorKind::UnexpectedStatus),
            io: t.errors_of(ErrorKind::Io),
        };
        let elapsed = run.elapsed.as_secs_f64();
        Summary {
            label: label.to_string(),
            requests: t.ok + errors.total(),
            ok: t.ok,
            elapsed_s: elapsed,
            rps: t.ok as f64 / elapsed,
            latency_us: Latency::from_histogram(&t.hist),
            errors,
            statuses: t
                .statuses
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            error_samples: t
                .samples
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                .collect(),
            reconnects: t.reconnects,
            connects: t.connects,
            conn_per_s: t.connects as f64 / elapsed,
            resumed: run.tls.then_some(t.resumed),
            client_cpu_pct: 100.0 * run.client_cpu_s / elapsed,
            server: None,
            curve: curve(&t.hist),
        }
    }
}

/// The percentile curve of a nanosecond histogram: points evenly spaced on
/// a `1 / (1 - p)` log scale, up to the resolution the sample count allows.
pub fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let top = (h.len() as f64).log10().clamp(1.0, 6.0);
    let steps = (top * 20.0).ceil() as usize;
    let mut points: Vec<(f64, f64)> = (0..=steps)
        .map(|i| {
            let x = top * i as f64 / steps as f64;
            let q = 1.0 - 10f64.powf(-x);
            (q * 100.0, h.value_at_quantile(q) as f64 / 1000.0)
        })
        .collect();
    points.push((100.0, h.max() as f64 / 1000.0));
    points
}

/// Formats microseconds with a fitting unit.
pub fn fmt_us(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2}s", us / 1_000_000.0)
    } else if us >= 10_000.0 {
        format!("{:.1}ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{us:.0}µs")
    }
}

/// Formats KiB as MiB.
pub fn fmt_kib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// An aligned text table.
pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            if i == 0 {
                l.push_str(c);
                l.push_str(&" ".repeat(pad));
            } else {
                l.push_str("  ");
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
        &mut out,
    );
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// The standard table of runs.
pub fn summary_table(runs: &[Summary]) -> String {
    let tls = runs.iter().any(|s| s.resumed.is_some());
    let mut header = vec![
        "run", "req/s", "conn/s", "ok", "p50", "p90", "p99", "p99.9", "max", "connect", "timeout",
        "status", "io",
    ];
    if tls {
        header.push("resumed");
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|s| {
            let l = &s.latency_us;
            let mut row = vec![
                s.label.clone(),
                format!("{:.0}", s.rps),
                format!("{:.0}", s.conn_per_s),
                s.ok.to_string(),
                fmt_us(l.p50),
                fmt_us(l.p90),
                fmt_us(l.p99),
                fmt_us(l.p999),
                fmt_us(l.max),
                s.errors.connect.to_string(),
                s.errors.timeout.to_string(),
                s.errors.unexpected_status.to_string(),
                s.errors.io.to_string(),
            ];
            if tls {
                row.push(s.resumed.map_or_else(|| "-".into(), |r| r.to_string()));
            }
            row
        })
        .collect();
    let mut out = render_table(&header, &rows);
    for s in runs {
        for (kind, msg) in &s.error_samples {
            let _ = writeln!(out, "  {}: first {kind} error: {msg}", s.label);
        }
    }
    out
}

/// The median of `values` (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_units() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(fmt_us(512.0), "512µs");
        assert_eq!(fmt_us(1500.0), "1.50ms");
        assert_eq!(fmt_us(25_000.0), "25.0ms");
    }

    #[test]
    fn table_is_aligned() {
        let t = render_table(&["a", "bb"], &[vec!["xxx".into(), "1".into()]]);
        assert_eq!(t, "a    bb\n---  --\nxxx   1\n");
    }
}
