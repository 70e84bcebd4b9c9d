//! A route's `rate_limit`, counted per client with `pingora-limits`' `Rate`:
//! a sliding window (the previous window's count, weighted by how much of
//! it still overlaps, plus the current one's, as Cloudflare counts) in a
//! count-min sketch of fixed size. Memory stays the same however many
//! clients there are; with very many at once, one may be counted a little
//! high, never low. Refused requests are taken back out of the count, so a
//! client that keeps retrying still gets through at the configured rate.

use http::HeaderValue;
use pingora_limits::rate::Rate;
use prometheus::IntCounter;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use crate::metrics::Metrics;
use rules::{RateLimit, RuleSet};

use super::headers::{policy_header, quoted};

/// Columns of each row of the sketch; four rows, two windows: 512 KiB a
/// limited route.
const SLOTS: usize = 8192;
const HASHES: usize = 4;

/// What a route's limit says of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let through; `remaining` more may follow now, and the allowance is
    /// whole again in `reset_s` seconds.
    Allowed {
        /// Requests left in the window.
        remaining: u64,
        /// Seconds until nothing counts against the client any more.
        reset_s: u64,
    },
    /// Refused with `429`; the next request may go in `retry_after_s`.
    Limited {
        /// Seconds to wait (`Retry-After`).
        retry_after_s: u64,
    },
}

/// One route's limit and its counts.
pub struct RouteLimiter {
    /// The route's id: the metric's label and the policy's name.
    pub id: Box<str>,
    /// The limit as configured.
    pub limit: RateLimit,
    rate: Rate,
    window_s: f64,
    /// `RateLimit-Policy`, the same on every answer.
    pub policy: Option<HeaderValue>,
    /// The id as the policy's name in the headers.
    pub quoted: Box<str>,
    limited: IntCounter,
}

impl RouteLimiter {
    /// A limiter for route `id`.
    pub fn new(id: &str, limit: &RateLimit, metrics: &Metrics) -> Self {
        let window = limit.window();
        let window_s = window.as_secs_f64();
        RouteLimiter {
            id: id.into(),
            limit: limit.clone(),
            rate: Rate::new_with_estimator_config(window, HASHES, SLOTS),
            window_s,
            policy: policy_header(id, limit.burst, window_s.ceil() as u64),
            quoted: quoted(id).into(),
            limited: metrics.routing.rate_limited.with_label_values(&[id]),
        }
    }

    /// Counts a request of client `key` and says whether it may go.
    pub fn check<K: Hash>(&self, key: &K) -> Verdict {
        self.rate.observe(key, 1);
        let (prev, curr, into) = self.rate.rate_with(key, |c| {
            (
                c.prev_samples.max(0) as f64,
                c.curr_samples.max(0) as f64,
                c.current_interval_fraction,
            )
        });
        let burst = self.limit.burst as f64;
        let counted = prev * (1.0 - into) + curr;
        if counted <= burst {
            // The current window still counts through the next one.
            let whole_again = (1.0 - into) + if curr > 0.0 { 1.0 } else { 0.0 };
            return Verdict::Allowed {
                remaining: (burst - counted).floor() as u64,
                reset_s: seconds(whole_again * self.window_s),
            };
        }
        self.rate.observe(key, -1);
        self.limited.inc();
        Verdict::Limited {
            retry_after_s: seconds(wait(prev, (curr - 1.0).max(0.0), into, burst) * self.window_s),
        }
    }
}

/// Windows to wait until one more request fits: the previous window's
/// weight fades through the current one, and the current one's count fades
/// through the next.
fn wait(prev: f64, curr: f64, into: f64, burst: f64) -> f64 {
    if curr + 1.0 <= burst && prev > 0.0 {
        ((1.0 - into) - (burst - curr - 1.0) / prev).max(0.0)
    } else if curr > 0.0 {
        (1.0 - into) + (1.0 - (burst - 1.0) / curr).max(0.0)
    } else {
        1.0 - into
    }
}

/// Whole seconds, at least one (`Retry-After: 0` would invite a retry loop).
fn seconds(s: f64) -> u64 {
    (s.ceil() as u64).max(1)
}

/// The limiters of one snapshot's routes, by rule slot.
#[derive(Default, Clone)]
pub struct Limiters(HashMap<usize, Arc<RouteLimiter>>);

impl Limiters {
    /// The limiter of the route in `slot`.
    pub fn get(&self, slot: usize) -> Option<&Arc<RouteLimiter>> {
        self.0.get(&slot)
    }

    fn by_id(&self, id: &str) -> Option<&Arc<RouteLimiter>> {
        self.0.values().find(|l| &*l.id == id)
    }
}

/// The limiters for `rules`; a route whose id and limit are unchanged keeps
/// its counts across the reload. Series of routes that lost their limit are
/// dropped.
pub fn build(rules: &RuleSet, previous: Option<&Limiters>, metrics: &Metrics) -> Limiters {
    let mut out = HashMap::new();
    for (slot, id, limit) in rules.rate_limits() {
        let kept = previous
            .and_then(|p| p.by_id(id))
            .filter(|l| l.limit == *limit)
            .cloned();
        let limiter = kept.unwrap_or_else(|| Arc::new(RouteLimiter::new(id, limit, metrics)));
        out.insert(slot, limiter);
    }
    if let Some(previous) = previous {
        for old in previous.0.values() {
            if !out.values().any(|l| l.id == old.id) {
                metrics.routing.forget_route(&old.id);
            }
        }
    }
    Limiters(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rules::LimitKey;
    use std::time::Duration;

    fn limiter(requests: u64, per_s: u64, burst: u64) -> RouteLimiter {
        let metrics = Metrics::new().unwrap();
        let limit = RateLimit {
            key: LimitKey::Ip,
            requests,
            per: Duration::from_secs(per_s),
            burst,
        };
        RouteLimiter::new("api", &limit, &metrics)
    }

    #[test]
    fn a_burst_gets_exactly_its_allowance_per_client() {
        // One a minute, five at once: a window of five minutes, far longer
        // than this test.
        let l = limiter(1, 60, 5);
        let verdicts: Vec<Verdict> = (0..8).map(|_| l.check(&"a")).collect();
        let remaining: Vec<u64> = verdicts
            .iter()
            .filter_map(|v| match v {
                Verdict::Allowed { remaining, .. } => Some(*remaining),
                Verdict::Limited { .. } => None,
            })
            .collect();
        assert_eq!(remaining, [4, 3, 2, 1, 0]);
        for v in &verdicts[5..] {
            let Verdict::Limited { retry_after_s } = v else {
                panic!("{v:?}");
            };
            assert!((1..=600).contains(retry_after_s), "{retry_after_s}");
        }
        // Another client has its own allowance.
        assert!(matches!(
            l.check(&"b"),
            Verdict::Allowed { remaining: 4, .. }
        ));
        assert_eq!(l.limited.get(), 3);
    }

    #[test]
    fn the_wait_follows_the_fading_windows() {
        // Nothing this window and a full previous one 5% gone (weighing
        // 9.5): one more fits once it weighs 9, a tenth of the way in.
        let w = wait(10.0, 0.0, 0.05, 10.0);
        assert!((w - 0.05).abs() < 1e-9, "{w}");
        // Full in this window: through the rest of it and a tenth of the
        // next.
        let w = wait(0.0, 10.0, 0.25, 10.0);
        assert!((w - 0.85).abs() < 1e-9, "{w}");
        assert_eq!(seconds(0.01), 1);
    }
}
