//! Metrics of the TLS listener's certificates: when each expires, and
//! how their reloads (and the session ticket keys') went.

use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};

use super::register::register;

/// Certificates.
pub struct TlsMetrics {
    /// `gateway_tls_certificate_expiry_timestamp_seconds{certificate}`:
    /// the `notAfter` of each served certificate (its file).
    pub expiry: GaugeVec,
    /// `gateway_tls_certificate_reloads_total{result}`: `success` or
    /// `failure` (the old certificates kept serving).
    pub reloads: IntCounterVec,
    /// `gateway_tls_ticket_key_reloads_total{result}`: the session ticket
    /// key files read again after a change, `success` or `failure` (the
    /// old keys kept).
    pub ticket_key_reloads: IntCounterVec,
    /// `gateway_acme_orders_total{result}`: certificate orders of custom
    /// domains this gateway made, `success` or `failure`.
    pub acme_orders: IntCounterVec,
}

impl TlsMetrics {
    pub(super) fn new(r: &Registry) -> prometheus::Result<TlsMetrics> {
        Ok(TlsMetrics {
            expiry: register(
                r,
                GaugeVec::new(
                    Opts::new(
                        "gateway_tls_certificate_expiry_timestamp_seconds",
                        "When each served TLS certificate expires (notAfter, Unix seconds), by certificate file.",
                    ),
                    &["certificate"],
                )?,
            )?,
            reloads: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_tls_certificate_reloads_total",
                        "Reloads of the TLS certificates after their files changed, by result.",
                    ),
                    &["result"],
                )?,
            )?,
            ticket_key_reloads: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_tls_ticket_key_reloads_total",
                        "Reloads of the TLS session ticket key files after they changed, by result.",
                    ),
                    &["result"],
                )?,
            )?,
            acme_orders: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_acme_orders_total",
                        "ACME certificate orders for custom link domains made by this gateway, by result.",
                    ),
                    &["result"],
                )?,
            )?,
        })
    }
}
