//! Upstream pools (`[upstream.NAME]`) as the server gets them, validated,
//! to build its load balancers from.

use serde::Serialize;
use std::time::Duration;

/// How a pool picks a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each backend in turn.
    RoundRobin,
    /// Consistent hashing (Ketama) of the client IP, or of `hash_header`.
    Consistent,
}

/// How health is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    /// `GET path` must answer 2xx.
    Http,
    /// A TCP connect must succeed.
    Tcp,
}

/// Active health check settings of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// HTTP or TCP.
    pub kind: HealthCheckKind,
    /// Path probed by HTTP checks.
    pub path: String,
    /// Time between two probes of one backend.
    pub interval: Duration,
    /// Time a probe may take.
    pub timeout: Duration,
    /// Consecutive failures that take a backend out.
    pub unhealthy_after: usize,
    /// Consecutive successes that put it back.
    pub healthy_after: usize,
}

/// One upstream pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upstream {
    /// Pool name (the key under `[upstream]`).
    pub name: String,
    /// Backends as `host:port`.
    pub servers: Vec<String>,
    /// Selection algorithm.
    pub balance: Balance,
    /// Header hashed by `consistent` instead of the client IP.
    pub hash_header: Option<String>,
    /// Active health checks; `None` means backends are always considered up.
    pub health_check: Option<HealthCheck>,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time to wait for each read from the upstream.
    pub read_timeout: Duration,
    /// Time to wait for each write to the upstream.
    pub write_timeout: Duration,
    /// Further attempts on another backend when connecting fails.
    pub retries: u32,
    /// Connect with TLS.
    pub tls: bool,
    /// SNI (and certificate name) for TLS; defaults to the backend host.
    pub sni: Option<String>,
    /// Most requests in flight to the pool at once; more are answered
    /// `503` at once instead of queueing on a saturated upstream.
    pub max_inflight: Option<u32>,
    /// Passive outlier ejection; `None` when `eject_after` is not set.
    pub ejection: Option<Ejection>,
}

/// Passive outlier ejection (Envoy's outlier detection): a backend that
/// fails `after` requests in a row (5xx answers, failed connects, timeouts)
/// is left out for `base`, doubling each time it fails again after coming
/// back, up to `max`. The last healthy backend is never left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ejection {
    /// Consecutive failures that eject a backend.
    pub after: u32,
    /// How long the first ejection lasts.
    pub base: Duration,
    /// The longest an ejection lasts, however often it repeats.
    pub max: Duration,
}

impl Ejection {
    /// How long the `nth` ejection in a row (1-based) lasts.
    pub fn duration(&self, nth: u32) -> Duration {
        let doubled = self
            .base
            .saturating_mul(1u32.checked_shl(nth.saturating_sub(1)).unwrap_or(u32::MAX));
        doubled.min(self.max)
    }
}
