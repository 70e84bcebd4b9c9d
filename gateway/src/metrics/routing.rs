//! Metrics of what protects API routes and their upstreams: requests a
//! route's rate limit refused, and backends outlier detection ejected.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::register::register;

/// Rate limits and outlier ejection.
pub struct RoutingMetrics {
    /// `gateway_route_rate_limited_total{route}`: requests answered `429`
    /// by the route's `rate_limit`.
    pub rate_limited: IntCounterVec,
    /// `gateway_upstream_ejections_total{upstream}`.
    pub(super) ejections: IntCounterVec,
    /// `gateway_upstream_ejected_backends{upstream}`.
    pub(super) ejected: IntGaugeVec,
}

impl RoutingMetrics {
    pub(super) fn new(r: &Registry) -> prometheus::Result<RoutingMetrics> {
        Ok(RoutingMetrics {
            rate_limited: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_route_rate_limited_total",
                        "Requests refused with 429 by a route's rate_limit, by route id.",
                    ),
                    &["route"],
                )?,
            )?,
            ejections: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_upstream_ejections_total",
                        "Backends taken out of their pool by outlier detection (eject_after).",
                    ),
                    &["upstream"],
                )?,
            )?,
            ejected: register(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "gateway_upstream_ejected_backends",
                        "Backends out of their pool by outlier detection now.",
                    ),
                    &["upstream"],
                )?,
            )?,
        })
    }

    pub(super) fn forget_upstream(&self, name: &str) {
        let _ = self.ejections.remove_label_values(&[name]);
        let _ = self.ejected.remove_label_values(&[name]);
    }

    /// Drops the series of a route that is gone or no longer limited.
    pub fn forget_route(&self, id: &str) {
        let _ = self.rate_limited.remove_label_values(&[id]);
    }
}
