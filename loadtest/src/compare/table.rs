//! The reports of `loadtest compare`: the text table (every run, then
//! each server's medians and the ratios) and the percentile curves.

use std::fmt::Write as _;

use super::CompareReport;
use crate::plot::{self, Series};
use crate::report::{fmt_kib, fmt_us, render_table, summary_table};

impl CompareReport {
    /// The text report.
    pub fn table(&self) -> String {
        let tls = if self.tls.is_tls() {
            format!(
                " over TLS ({} certificate, {}{})",
                self.tls.name(),
                if self.resume {
                    "session resumption"
                } else {
                    "full handshakes"
                },
                self.crypto
                    .map(|c| format!(", gateway crypto {}", c.name()))
                    .unwrap_or_default()
            )
        } else {
            String::new()
        };
        let mut out = format!(
            "compare {}{tls} with {} links: {} runs per server of {:.1}s, {} connections{}\n\nruns in order:\n",
            self.scenario,
            self.links,
            self.pairs,
            self.duration_s,
            self.connections,
            self.rate.map(|r| format!(", {r:.0} req/s")).unwrap_or_default()
        );
        out.push_str(&summary_table(&self.runs));
        out.push_str("\nper server (medians):\n");
        let added = self.proxy.is_some();
        let rows: Vec<Vec<String>> = self
            .servers
            .iter()
            .map(|s| {
                let opt_us = |v: Option<f64>| v.map_or_else(|| "-".into(), fmt_us);
                let mut row = vec![
                    s.name.clone(),
                    format!("{:.0}", s.median_rps),
                    format!("{:.0}", s.median_conn_per_s),
                    fmt_us(s.median_p50_us),
                    fmt_us(s.median_p99_us),
                    fmt_kib(s.rss_kib),
                    fmt_kib(s.pss_kib),
                    format!("{:.0}%", s.median_cpu_pct),
                    format!("{:.0}", s.median_requests_per_cpu_s),
                    format!("{:.0}%", s.median_client_cpu_pct),
                    s.failed.to_string(),
                    format!("{:.1}s", s.startup_s),
                ];
                if let Some(r) = s.resumed_pct {
                    row.push(format!("{r:.1}%"));
                }
                if added {
                    row.extend([opt_us(s.added_p50_us), opt_us(s.added_p99_us)]);
                }
                row
            })
            .collect();
        let mut header = vec![
            "server",
            "req/s",
            "conn/s",
            "p50",
            "p99",
            "RSS",
            "PSS",
            "CPU",
            "req/CPU-s",
            "client CPU",
            "failed",
            "startup",
        ];
        if self.tls.is_tls() {
            header.push("resumed");
        }
        if added {
            header.extend(["added p50", "added p99"]);
        }
        out.push_str(&render_table(&header, &rows));
        let _ = writeln!(
            out,
            "\ngateway / nginx req/s: {:.3}",
            self.rps_ratio_gateway_nginx
        );
        if let Some(r) = self.rps_ratio_gateway_responder {
            let engine = self.responder_engine.unwrap_or("");
            let _ = writeln!(out, "gateway / responder ({engine}) req/s: {r:.3}");
        }
        if let Some(p) = &self.proxy {
            out.push_str(&p.lines());
        }
        out
    }

    /// Percentile curves of the last run of each server.
    pub fn svg(&self) -> String {
        let mut series = Vec::new();
        for s in &self.servers {
            if let Some(run) = self
                .runs
                .iter()
                .rev()
                .find(|r| r.label.starts_with(&s.name))
            {
                series.push(Series {
                    label: &run.label,
                    points: &run.curve,
                });
            }
        }
        plot::percentile_svg(
            &format!("{} with {} links", self.scenario, self.links),
            &series,
        )
    }
}
