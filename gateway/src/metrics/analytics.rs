//! Metrics of the per-link analytics: the in-memory counters and their
//! flushes to the store.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::register::register;

/// Pre-resolved handles of the analytics metrics.
pub struct AnalyticsMetrics {
    /// Flushes that added every pending row to the store.
    pub flushes_ok: IntCounter,
    /// Flushes that failed (the rows stay pending and are tried again).
    pub flushes_error: IntCounter,
    /// Counter rows waiting for the next flush.
    pub pending_rows: IntGauge,
    /// Rows added to the store.
    pub rows_written: IntCounter,
    /// Clicks not counted: the queue was full, or a new row found the
    /// pending rows at their bound.
    pub dropped: IntCounter,
}

impl AnalyticsMetrics {
    pub(super) fn new(r: &Registry) -> prometheus::Result<AnalyticsMetrics> {
        let flushes = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "gateway_analytics_flushes_total",
                    "Flushes of the per-link counters to the store, by result (ok, error).",
                ),
                &["result"],
            )?,
        )?;
        Ok(AnalyticsMetrics {
            flushes_ok: flushes.with_label_values(&["ok"]),
            flushes_error: flushes.with_label_values(&["error"]),
            pending_rows: register(
                r,
                IntGauge::new(
                    "gateway_analytics_pending_rows",
                    "Per-link counter rows kept in memory until the store has them.",
                )?,
            )?,
            rows_written: register(
                r,
                IntCounter::new(
                    "gateway_analytics_rows_written_total",
                    "Per-link counter rows added to the store.",
                )?,
            )?,
            dropped: register(
                r,
                IntCounter::new(
                    "gateway_analytics_dropped_total",
                    "Clicks left out of the per-link counters: the queue was full, or analytics.max_pending_rows was reached.",
                )?,
            )?,
        })
    }
}
