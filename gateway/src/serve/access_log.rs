//! One access-log line per request (`[log] access = true`), optionally
//! sampled. Lines go through `tracing` with target `access`, so they share
//! the JSON or text format of every other log line and can be filtered
//! (`RUST_LOG=access=off`).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::metrics::Kind;

/// Access-log settings.
#[derive(Debug, Clone, Default)]
pub struct AccessLog {
    /// Log requests at all.
    pub enabled: bool,
    /// Fraction of requests logged, 0.0 to 1.0.
    pub sample: f64,
    /// Requests seen, shared by every worker thread so the sample is exact
    /// over the whole process, not per thread.
    seen: Arc<AtomicU64>,
}

impl AccessLog {
    /// Settings with a fresh counter.
    pub fn new(enabled: bool, sample: f64) -> Self {
        AccessLog {
            enabled,
            sample,
            seen: Arc::default(),
        }
    }

    /// Whether this request gets a line: request n is logged when
    /// `floor(n × sample)` steps up, which logs exactly `sample` of them
    /// with no randomness.
    pub fn sampled(&self) -> bool {
        if !self.enabled || self.sample <= 0.0 {
            return false;
        }
        if self.sample >= 1.0 {
            return true;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * self.sample).floor() > (n * self.sample).floor()
    }
}

/// What one access-log line says about a finished request.
pub struct Line<'a> {
    /// `X-Request-Id`, given or generated.
    pub request_id: &'a str,
    /// The client (see `client_ip`).
    pub client_ip: Option<IpAddr>,
    /// Method.
    pub method: &'a str,
    /// Host as requested.
    pub host: &'a str,
    /// Path as requested.
    pub path: &'a str,
    /// Status sent.
    pub status: u16,
    /// How it was answered.
    pub kind: Kind,
    /// Rule id, when a rule matched.
    pub rule: &'a str,
    /// Upstream pool, for proxied requests.
    pub upstream: &'a str,
    /// The upstream's status, 0 when none answered.
    pub upstream_status: u16,
    /// Time from the request head to the end of the answer.
    pub seconds: f64,
    /// Body bytes sent.
    pub bytes: u64,
}

/// Writes the line for a finished request.
pub fn write(line: &Line<'_>) {
    tracing::info!(
        target: "access",
        request_id = line.request_id,
        client_ip = line.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        method = line.method,
        host = line.host,
        path = line.path,
        status = line.status,
        kind = line.kind.as_str(),
        rule = line.rule,
        upstream = line.upstream,
        upstream_status = line.upstream_status,
        duration_us = (line.seconds * 1e6) as u64,
        bytes = line.bytes,
        "access"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_exact_over_many_requests() {
        let log = AccessLog::new(true, 0.25);
        let n = (0..1000).filter(|_| log.sampled()).count();
        assert_eq!(n, 250);
        // Clones (one per proxy service and thread) share the count.
        let shared = AccessLog::new(true, 0.5);
        let clone = shared.clone();
        let n = (0..100)
            .filter(|i| {
                if i % 3 == 0 {
                    clone.sampled()
                } else {
                    shared.sampled()
                }
            })
            .count();
        assert_eq!(n, 50);
        assert!(!AccessLog::new(false, 1.0).sampled());
        assert!(AccessLog::new(true, 1.0).sampled());
    }
}
