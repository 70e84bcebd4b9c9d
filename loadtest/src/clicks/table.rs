//! The text report of `loadtest clicks`: every run in order, then each
//! arm's medians and the ratio.

use std::fmt::Write as _;

use super::{ClicksReport, Measure};
use crate::report::{fmt_us, render_table};

impl ClicksReport {
    /// The text report.
    pub fn table(&self) -> String {
        let [base, with] = self.measure.arms();
        let mut out = format!(
            "clicks: {with} against {base}, {} with {} links, every request a new visitor: \
             {} rounds of {:.1}s, {} connections, gateway threads {}, {}\n\nruns in order:\n",
            self.scenario,
            self.links,
            self.rounds,
            self.duration_s,
            self.connections,
            self.gateway_threads,
            if self.resident {
                "both gateways running throughout"
            } else {
                "a gateway started per run"
            },
        );
        let extra = ExtraCpu::of(self.measure);
        let mut header = vec!["run", "req/s", "p50", "p99", "gw CPU/req", "bg CPU/req"];
        header.extend(extra.headers());
        header.extend([
            "events",
            "delivered",
            "spilled",
            "dropped",
            "rows",
            "failed",
        ]);
        let rows: Vec<Vec<String>> = self
            .runs
            .iter()
            .map(|r| {
                let mut row = vec![
                    r.label.clone(),
                    format!("{:.0}", r.load.rps),
                    fmt_us(r.load.latency_us.p50),
                    fmt_us(r.load.latency_us.p99),
                    cpu_us(r.gateway_cpu_us_per_request),
                    cpu_us(r.background_cpu_us_per_request),
                ];
                row.extend(extra.cells(r.nats_cpu_us_per_request, r.flusher_cpu_us_per_request));
                let e = &r.events;
                row.extend([
                    e.produced.to_string(),
                    e.delivered.to_string(),
                    e.spilled.to_string(),
                    (e.dropped + e.analytics_dropped).to_string(),
                    e.analytics_rows.to_string(),
                    r.load.errors.total().to_string(),
                ]);
                row
            })
            .collect();
        out.push_str(&render_table(&header, &rows));
        out.push_str("\nper arm (medians):\n");
        let mut header = vec!["arm", "req/s", "p99", "gw CPU/req", "bg CPU/req"];
        header.extend(extra.headers());
        header.extend(["failed", "dropped", "spilled"]);
        let rows: Vec<Vec<String>> = self
            .arms
            .iter()
            .map(|a| {
                let mut row = vec![
                    a.name.to_string(),
                    format!("{:.0}", a.median_rps),
                    fmt_us(a.median_p99_us),
                    cpu_us(a.median_gateway_cpu_us),
                    cpu_us(a.median_background_cpu_us),
                ];
                row.extend(extra.cells(a.median_nats_cpu_us, a.median_flusher_cpu_us));
                row.extend([
                    a.failed.to_string(),
                    a.dropped.to_string(),
                    a.spilled.to_string(),
                ]);
                row
            })
            .collect();
        out.push_str(&render_table(&header, &rows));
        let _ = writeln!(
            out,
            "\n{with} / {base} req/s: {:.3} (medians); per round: {} (median {:.3})",
            self.rps_ratio,
            self.round_ratios
                .iter()
                .map(|r| format!("{r:.3}"))
                .collect::<Vec<_>>()
                .join(" "),
            self.median_round_ratio
        );
        let _ = writeln!(
            out,
            "gateway CPU per click: {:+.2} µs; on the background threads (bg: click writer, NATS \
             publisher, analytics flusher) {:+.2} µs, on the others (the request threads and the \
             rest) {:+.2} µs (differences of medians)",
            self.gateway_cpu_us_per_click,
            self.background_cpu_us_per_click,
            self.other_cpu_us_per_click
        );
        if let [Some(base), Some(with)] = self.arms.each_ref().map(|a| a.median_flusher_cpu_us) {
            let _ = writeln!(
                out,
                "of which the analytics flusher (its thread and SQLite's): {:+.2} µs",
                with - base
            );
        }
        out
    }
}

/// The CPU columns only some measures have: `nats-server`'s, and the
/// analytics flusher's.
struct ExtraCpu {
    nats: bool,
    flusher: bool,
}

impl ExtraCpu {
    fn of(measure: Measure) -> ExtraCpu {
        ExtraCpu {
            nats: measure == Measure::Nats,
            flusher: measure == Measure::Analytics,
        }
    }

    fn headers(&self) -> Vec<&'static str> {
        [
            (self.nats, "nats CPU/req"),
            (self.flusher, "flusher CPU/req"),
        ]
        .into_iter()
        .filter_map(|(on, h)| on.then_some(h))
        .collect()
    }

    /// The cells under [`ExtraCpu::headers`]: `-` for a figure missing.
    fn cells(&self, nats: Option<f64>, flusher: Option<f64>) -> Vec<String> {
        [(self.nats, nats), (self.flusher, flusher)]
            .into_iter()
            .filter(|&(on, _)| on)
            .map(|(_, v)| v.map_or("-".into(), cpu_us))
            .collect()
    }
}

/// CPU per request: a few µs, so two decimals.
fn cpu_us(v: f64) -> String {
    format!("{v:.2}µs")
}
