//! Prometheus metrics. Label values are bounded: request kinds, status
//! codes, rule and link-set ids, upstream names — never a path, host, bulk
//! code or anything else a client controls. Handles are resolved once
//! (per rule when a snapshot is built, per pool when it is created, per
//! kind and status on first use), so counting costs an atomic add on the
//! request path, not a label lookup.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::{Arc, OnceLock};

use crate::state::Snapshot;
use rules::RuleSet;

/// What kind of answer a request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A redirect.
    Redirect,
    /// A `[[respond]]` answer.
    Respond,
    /// Forwarded to an upstream.
    Proxy,
    /// 410 for an expired rule.
    Gone,
    /// 404.
    NotFound,
    /// 400.
    BadRequest,
    /// The gateway itself failed.
    Error,
}

const KINDS: [Kind; 7] = [
    Kind::Redirect,
    Kind::Respond,
    Kind::Proxy,
    Kind::Gone,
    Kind::NotFound,
    Kind::BadRequest,
    Kind::Error,
];

impl Kind {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Redirect => "redirect",
            Kind::Respond => "respond",
            Kind::Proxy => "proxy",
            Kind::Gone => "gone",
            Kind::NotFound => "not_found",
            Kind::BadRequest => "bad_request",
            Kind::Error => "error",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Status codes 0..600 get a counter each, made on first use.
const CODES: usize = 600;

fn code_index(code: u16) -> usize {
    (code as usize).min(CODES - 1)
}

/// Counters of one label set split by status code.
struct ByCode {
    vec: IntCounterVec,
    prefix: Vec<String>,
    cells: Box<[OnceLock<IntCounter>]>,
}

impl ByCode {
    fn new(vec: IntCounterVec, prefix: Vec<String>) -> Self {
        ByCode {
            vec,
            prefix,
            cells: (0..CODES).map(|_| OnceLock::new()).collect(),
        }
    }

    fn inc(&self, code: u16) {
        let i = code_index(code);
        self.cells[i]
            .get_or_init(|| {
                let code = i.to_string();
                let mut labels: Vec<&str> = self.prefix.iter().map(String::as_str).collect();
                labels.push(&code);
                self.vec.with_label_values(&labels)
            })
            .inc();
    }
}

/// Pre-resolved metrics of one upstream pool.
pub struct UpstreamMetrics {
    requests: ByCode,
    /// Time from picking a backend to the end of the response.
    pub duration: Histogram,
    errors: [IntCounter; 4],
    /// Retries on another backend.
    pub retries: IntCounter,
}

impl UpstreamMetrics {
    /// Counts an upstream response.
    pub fn response(&self, code: u16) {
        self.requests.inc(code);
    }

    /// Counts a failure; `reason` is `connect`, `timeout`, `reset` or `no_healthy`.
    pub fn error(&self, reason: &str) {
        let i = match reason {
            "connect" => 0,
            "timeout" => 1,
            "reset" => 2,
            _ => 3,
        };
        self.errors[i].inc();
    }
}

/// Every metric the gateway exports, in its own registry.
pub struct Metrics {
    registry: Registry,
    requests: Vec<ByCode>,
    durations: Vec<Histogram>,
    rule_hits: IntCounterVec,
    upstream_requests: IntCounterVec,
    upstream_duration: HistogramVec,
    upstream_errors: IntCounterVec,
    upstream_retries: IntCounterVec,
    upstream_healthy: IntGaugeVec,
    upstream_backends: IntGaugeVec,
    reloads: IntCounterVec,
    last_reload_success: Gauge,
    reload_duration: Histogram,
    rules_info: IntGaugeVec,
    rules_loaded: IntGaugeVec,
    /// Click events produced, by device and bot.
    pub click_events: IntCounterVec,
    /// Click events dropped because the queue was full.
    pub click_dropped: IntCounter,
    /// Click events waiting in the queue.
    pub click_queue_depth: IntGauge,
    /// Click events written or posted, by sink.
    pub click_delivered: IntCounterVec,
    /// Click events spilled to files while the collector was down.
    pub click_spilled: IntCounter,
    /// Client connections the gateway closed itself, by reason.
    pub connections_closed: IntCounterVec,
}

/// Request latency buckets: 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

fn register<C: Collector + Clone + 'static>(registry: &Registry, c: C) -> prometheus::Result<C> {
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> prometheus::Result<Arc<Metrics>> {
        let r = Registry::new();
        let requests_vec = register(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "gateway_requests_total",
                    "Requests answered, by kind of answer and status code.",
                ),
                &["kind", "code"],
            )?,
        )?;
        let duration_vec = register(
            &r,
            HistogramVec::new(
                HistogramOpts::new(
                    "gateway_request_duration_seconds",
                    "Time from the request head to the end of the response, by kind.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["kind"],
            )?,
        )?;
        let requests = KINDS
            .iter()
            .map(|k| ByCode::new(requests_vec.clone(), vec![k.as_str().to_string()]))
            .collect();
        let durations = KINDS
            .iter()
            .map(|k| duration_vec.with_label_values(&[k.as_str()]))
            .collect();
        let m = Metrics {
            requests,
            durations,
            rule_hits: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_rule_hits_total",
                        "Requests answered by each rule or link set.",
                    ),
                    &["rule"],
                )?,
            )?,
            upstream_requests: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_upstream_requests_total",
                        "Upstream responses by status code.",
                    ),
                    &["upstream", "code"],
                )?,
            )?,
            upstream_duration: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "gateway_upstream_duration_seconds",
                        "Time from picking a backend to the end of its response.",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    &["upstream"],
                )?,
            )?,
            upstream_errors: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_upstream_errors_total",
                        "Failed proxied requests by reason.",
                    ),
                    &["upstream", "reason"],
                )?,
            )?,
            upstream_retries: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_upstream_retries_total",
                        "Connect failures retried on another backend.",
                    ),
                    &["upstream"],
                )?,
            )?,
            upstream_healthy: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "gateway_upstream_healthy_backends",
                        "Backends the health checks consider up.",
                    ),
                    &["upstream"],
                )?,
            )?,
            upstream_backends: register(
                &r,
                IntGaugeVec::new(
                    Opts::new("gateway_upstream_backends", "Backends in the pool."),
                    &["upstream"],
                )?,
            )?,
            reloads: register(
                &r,
                IntCounterVec::new(
                    Opts::new("gateway_rules_reloads_total", "Reload attempts by result."),
                    &["result"],
                )?,
            )?,
            last_reload_success: register(
                &r,
                Gauge::new(
                    "gateway_rules_last_reload_success_timestamp_seconds",
                    "Unix time the live rules went live.",
                )?,
            )?,
            reload_duration: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "gateway_rules_reload_duration_seconds",
                        "Time to build and swap in new rules.",
                    )
                    .buckets(vec![
                        0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
                    ]),
                )?,
            )?,
            rules_info: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "gateway_rules_info",
                        "The live rules version and content hash (always 1).",
                    ),
                    &["version", "hash"],
                )?,
            )?,
            rules_loaded: register(
                &r,
                IntGaugeVec::new(
                    Opts::new("gateway_rules_loaded", "Items in the live rules by kind."),
                    &["kind"],
                )?,
            )?,
            connections_closed: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_connections_closed_total",
                        "Client connections closed by the gateway: a head too slow or too large, or an idle keep-alive connection.",
                    ),
                    &["reason"],
                )?,
            )?,
            click_events: register(
                &r,
                IntCounterVec::new(
                    Opts::new("gateway_click_events_total", "Click events produced."),
                    &["device", "bot"],
                )?,
            )?,
            click_dropped: register(
                &r,
                IntCounter::new(
                    "gateway_click_events_dropped_total",
                    "Click events lost: dropped because the queue was full, or not writable or spillable.",
                )?,
            )?,
            click_queue_depth: register(
                &r,
                IntGauge::new(
                    "gateway_click_queue_depth",
                    "Click events waiting to be written.",
                )?,
            )?,
            click_delivered: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_click_events_delivered_total",
                        "Click events written to files or posted, by sink.",
                    ),
                    &["sink"],
                )?,
            )?,
            click_spilled: register(
                &r,
                IntCounter::new(
                    "gateway_click_events_spilled_total",
                    "Click events spilled to files while the collector was unreachable.",
                )?,
            )?,
            registry: r,
        };
        let build = register(
            &m.registry,
            IntGaugeVec::new(
                Opts::new("gateway_build_info", "Build information (always 1)."),
                &["version"],
            )?,
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        #[cfg(target_os = "linux")]
        m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        m.reloads.with_label_values(&["success"]);
        m.reloads.with_label_values(&["failure"]);
        m.reloads.with_label_values(&["unchanged"]);
        Ok(Arc::new(m))
    }

    /// Counts one answered request.
    pub fn request(&self, kind: Kind, code: u16, seconds: f64) {
        self.requests[kind.index()].inc(code);
        self.durations[kind.index()].observe(seconds);
    }

    /// Per-rule hit counters in slot order (see `RuleSet::rule_ids`).
    pub fn rule_handles(&self, rules: &RuleSet) -> Vec<IntCounter> {
        rules
            .rule_ids()
            .map(|id| self.rule_hits.with_label_values(&[id]))
            .collect()
    }

    /// Pre-resolved metrics of pool `name`.
    pub fn upstream(&self, name: &str) -> UpstreamMetrics {
        let e = |reason: &str| self.upstream_errors.with_label_values(&[name, reason]);
        UpstreamMetrics {
            requests: ByCode::new(self.upstream_requests.clone(), vec![name.to_string()]),
            duration: self.upstream_duration.with_label_values(&[name]),
            errors: [e("connect"), e("timeout"), e("reset"), e("no_healthy")],
            retries: self.upstream_retries.with_label_values(&[name]),
        }
    }

    /// Records a reload attempt.
    pub fn reload(&self, result: &str, seconds: f64) {
        // The duration first: a scrape that sees the new count (what
        // dashboards and tests wait on) then sees its duration too.
        self.reload_duration.observe(seconds);
        self.reloads.with_label_values(&[result]).inc();
    }

    /// Publishes a snapshot that just went live, and drops the series of
    /// rules and pools the previous one had and this one does not.
    pub fn live(&self, now: &Snapshot, previous: Option<&Snapshot>) {
        if let Some(prev) = previous {
            let _ = self
                .rules_info
                .remove_label_values(&[&prev.version.to_string(), &prev.rules.content_hash()]);
            let ids: std::collections::HashSet<&str> = now.rules.rule_ids().collect();
            for id in prev.rules.rule_ids().filter(|id| !ids.contains(id)) {
                let _ = self.rule_hits.remove_label_values(&[id]);
            }
            for name in prev.pools.keys().filter(|n| !now.pools.contains_key(*n)) {
                let _ = self.upstream_healthy.remove_label_values(&[name]);
                let _ = self.upstream_backends.remove_label_values(&[name]);
                let _ = self.upstream_retries.remove_label_values(&[name]);
                let _ = self.upstream_duration.remove_label_values(&[name]);
                for reason in ["connect", "timeout", "reset", "no_healthy"] {
                    let _ = self.upstream_errors.remove_label_values(&[name, reason]);
                }
                for code in 0..CODES {
                    let _ = self
                        .upstream_requests
                        .remove_label_values(&[name, &code.to_string()]);
                }
            }
        }
        self.rules_info
            .with_label_values(&[&now.version.to_string(), &now.rules.content_hash()])
            .set(1);
        let c = now.rules.counts();
        for (kind, n) in [
            ("redirect", c.redirects),
            ("link", c.links),
            ("link_set", c.link_sets),
            ("route", c.routes),
            ("respond", c.responds),
            ("upstream", c.upstreams),
            ("test", c.tests),
        ] {
            self.rules_loaded.with_label_values(&[kind]).set(n as i64);
        }
        let unix = now
            .loaded_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_reload_success.set(unix);
    }

    /// The text exposition, with pool gauges refreshed from `live`.
    pub fn render(&self, live: &Snapshot) -> Vec<u8> {
        for (name, pool) in &live.pools {
            self.upstream_healthy
                .with_label_values(&[name])
                .set(pool.healthy_backends() as i64);
            self.upstream_backends
                .with_label_values(&[name])
                .set(pool.total_backends() as i64);
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}
