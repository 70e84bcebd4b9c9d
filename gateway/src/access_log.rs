//! One access-log line per request (`[log] access = true`), optionally
//! sampled. Lines go through `tracing` with target `access`, so they share
//! the JSON or text format of every other log line and can be filtered
//! (`RUST_LOG=access=off`).

use pingora::proxy::Session;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::metrics::Kind;
use crate::proxy::{header_str, request_host, Ctx};

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

/// Writes the line for a finished request.
pub fn write(session: &Session, ctx: &Ctx, kind: Kind, status: u16, seconds: f64) {
    let req = session.req_header();
    let request_id = ctx
        .request_id
        .as_deref()
        .or_else(|| header_str(session, "x-request-id"))
        .unwrap_or("");
    tracing::info!(
        target: "access",
        request_id,
                client_ip = ctx.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        method = req.method.as_str(),
        host = request_host(session),
        path = req.uri.path(),
        status,
        kind = kind.as_str(),
        rule = ctx.rule.as_deref().unwrap_or(""),
        upstream = ctx.route.as_ref().map_or("", |r| r.upstream.as_str()),
        upstream_status = ctx.upstream_status.unwrap_or(0),
        duration_us = (seconds * 1e6) as u64,
        bytes = session.body_bytes_sent() as u64,
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
