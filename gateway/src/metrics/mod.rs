//! Prometheus metrics. Label values are bounded: request kinds, status
//! codes, rule and link-set ids, upstream names — never a path, host, bulk
//! code or anything else a client controls. Handles are resolved once
//! (per rule when a snapshot is built, per pool when it is created, per
//! kind and status on first use), so counting costs an atomic add on the
//! request path, not a label lookup.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::{Arc, OnceLock};

mod analytics;
mod api;
mod json;
mod labels;
mod register;
mod routing;
mod store;
mod tls;

use register::register;

pub use analytics::AnalyticsMetrics;
pub use api::ApiMetrics;
use labels::KINDS;
pub use labels::{Kind, ReloadResult, UpstreamFailure};
pub use routing::RoutingMetrics;
pub use store::{Failure as StoreFailure, Lookup as StoreLookup, Op as StoreOp, StoreMetrics};
pub use tls::TlsMetrics;

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
    errors: [IntCounter; UpstreamFailure::ALL.len()],
    /// Retries on another backend.
    pub retries: IntCounter,
    /// Backends ejected by outlier detection.
    pub ejections: IntCounter,
    /// Backends ejected now.
    pub ejected: IntGauge,
}

impl UpstreamMetrics {
    /// Counts an upstream response.
    pub fn response(&self, code: u16) {
        self.requests.inc(code);
    }

    /// Counts a failure.
    pub fn error(&self, failure: UpstreamFailure) {
        self.errors[failure as usize].inc();
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
    /// Click events written, posted or acknowledged by JetStream, by sink.
    pub click_delivered: IntCounterVec,
    /// Click events spilled to files while the collector or NATS was down.
    pub click_spilled: IntCounter,
    /// Client connections the gateway closed itself, by reason.
    pub connections_closed: IntCounterVec,
    /// The link store's.
    pub store: StoreMetrics,
    /// The Links API's.
    pub api: ApiMetrics,
    /// The per-link analytics'.
    pub analytics: AnalyticsMetrics,
    /// Rate limits and outlier ejection of API routes.
    pub routing: RoutingMetrics,
    /// The TLS certificates.
    pub tls: TlsMetrics,
}

/// Request latency buckets: 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

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
                        "Click events written to files, posted, or acknowledged by JetStream, by sink.",
                    ),
                    &["sink"],
                )?,
            )?,
            click_spilled: register(
                &r,
                IntCounter::new(
                    "gateway_click_events_spilled_total",
                    "Click events spilled to files while the collector or NATS was unreachable.",
                )?,
            )?,
            store: StoreMetrics::new(&r)?,
            api: ApiMetrics::new(&r)?,
            analytics: AnalyticsMetrics::new(&r)?,
            routing: RoutingMetrics::new(&r)?,
            tls: TlsMetrics::new(&r)?,
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
        for result in ReloadResult::ALL {
            m.reloads.with_label_values(&[result.as_str()]);
        }
        Ok(Arc::new(m))
    }

    /// Counts one answered request.
    pub fn request(&self, kind: Kind, code: u16, seconds: f64) {
        self.requests[kind.index()].inc(code);
        self.durations[kind.index()].observe(seconds);
    }

    /// The hit counter of rule or link set `id`.
    pub fn rule_hits(&self, id: &str) -> IntCounter {
        self.rule_hits.with_label_values(&[id])
    }

    /// Pre-resolved metrics of pool `name`.
    pub fn upstream(&self, name: &str) -> UpstreamMetrics {
        UpstreamMetrics {
            requests: ByCode::new(self.upstream_requests.clone(), vec![name.to_string()]),
            duration: self.upstream_duration.with_label_values(&[name]),
            errors: UpstreamFailure::ALL
                .map(|f| self.upstream_errors.with_label_values(&[name, f.as_str()])),
            retries: self.upstream_retries.with_label_values(&[name]),
            ejections: self.routing.ejections.with_label_values(&[name]),
            ejected: self.routing.ejected.with_label_values(&[name]),
        }
    }

    /// Records a reload attempt.
    pub fn reload(&self, result: ReloadResult, seconds: f64) {
        // The duration first: a scrape that sees the new count (what
        // dashboards and tests wait on) then sees its duration too.
        self.reload_duration.observe(seconds);
        self.reloads.with_label_values(&[result.as_str()]).inc();
    }

    /// Drops the series of a rule or link set that is gone.
    pub fn forget_rule(&self, id: &str) {
        let _ = self.rule_hits.remove_label_values(&[id]);
    }

    /// Drops every series of a pool that is gone.
    pub fn forget_upstream(&self, name: &str) {
        let _ = self.upstream_healthy.remove_label_values(&[name]);
        let _ = self.upstream_backends.remove_label_values(&[name]);
        let _ = self.upstream_retries.remove_label_values(&[name]);
        self.routing.forget_upstream(name);
        let _ = self.upstream_duration.remove_label_values(&[name]);
        for failure in UpstreamFailure::ALL {
            let _ = self
                .upstream_errors
                .remove_label_values(&[name, failure.as_str()]);
        }
        for code in 0..CODES {
            let _ = self
                .upstream_requests
                .remove_label_values(&[name, &code.to_string()]);
        }
    }

    /// Publishes which rules are live: their version and content hash,
    /// how many items of each kind they hold, and when they went live
    /// (Unix seconds). `previous` is the version and hash this replaces.
    pub fn rules_live(
        &self,
        version: u64,
        hash: &str,
        previous: Option<(u64, &str)>,
        loaded: &[(&str, usize)],
        unix_seconds: f64,
    ) {
        if let Some((version, hash)) = previous {
            let _ = self
                .rules_info
                .remove_label_values(&[&version.to_string(), hash]);
        }
        self.rules_info
            .with_label_values(&[&version.to_string(), hash])
            .set(1);
        for (kind, n) in loaded {
            self.rules_loaded.with_label_values(&[kind]).set(*n as i64);
        }
        self.last_reload_success.set(unix_seconds);
    }

    /// Sets a pool's backend gauges, read at scrape time.
    pub fn upstream_backends(&self, name: &str, healthy: usize, total: usize) {
        self.upstream_healthy
            .with_label_values(&[name])
            .set(healthy as i64);
        self.upstream_backends
            .with_label_values(&[name])
            .set(total as i64);
    }

    /// The text exposition.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}
