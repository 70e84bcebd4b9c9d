//! Metrics of the Links API: requests by route and status, their
//! duration, and requests refused by a key's rate limit.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use super::register::register;

/// The Links API's metrics.
pub struct ApiMetrics {
    /// `gateway_api_requests_total{route, method, status}`; `route` is the
    /// path template (`/api/v1/links/{id}`), never the path itself.
    pub requests: IntCounterVec,
    /// `gateway_api_request_duration_seconds{route}`.
    pub duration: HistogramVec,
    /// `gateway_api_rate_limited_total{key}`: requests answered `429`.
    pub rate_limited: IntCounterVec,
    /// `gateway_api_links_written_total{op}`: links created (`create`,
    /// `bulk`, `upsert`), changed (`update`) and deleted (`delete`).
    pub links_written: IntCounterVec,
}

impl ApiMetrics {
    pub(super) fn new(r: &Registry) -> prometheus::Result<ApiMetrics> {
        Ok(ApiMetrics {
            requests: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_api_requests_total",
                        "Links API requests by route template, method and status.",
                    ),
                    &["route", "method", "status"],
                )?,
            )?,
            duration: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "gateway_api_request_duration_seconds",
                        "Links API request duration by route template.",
                    )
                    .buckets(vec![
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    ]),
                    &["route"],
                )?,
            )?,
            rate_limited: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_api_rate_limited_total",
                        "Links API requests refused with 429 by an API key's rate limit, by key id.",
                    ),
                    &["key"],
                )?,
            )?,
            links_written: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_api_links_written_total",
                        "Links written through the Links API, by operation.",
                    ),
                    &["op"],
                )?,
            )?,
        })
    }
}
