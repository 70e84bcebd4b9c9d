//! Passive outlier ejection (Envoy's outlier detection): requests that a
//! backend fails in a row — 5xx answers, failed connects, timeouts, resets —
//! take it out of its pool for a while, independently of the active health
//! check. Each ejection that follows another without a success in between
//! lasts twice as long, up to `eject_for_max`. The last backend that could
//! still serve is never ejected.

use pingora::lb::Backend;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::metrics::UpstreamMetrics;
use rules::Ejection;

/// One backend's record.
struct Record {
    addr: String,
    backend: Backend,
    /// Requests failed in a row.
    failures: AtomicU32,
    /// Ejections in a row (no success in between): sets the next length.
    ejections: AtomicU32,
    /// Milliseconds since `Outliers::start` until which it is ejected; 0
    /// when it is not.
    until_ms: AtomicU64,
}

/// The ejection state of one pool's backends.
pub struct Outliers {
    def: Ejection,
    pool: String,
    records: Vec<Record>,
    /// Backends ejected now: while 0, selecting costs no clock read.
    ejected: AtomicUsize,
    start: Instant,
    /// Ejections are decided one at a time, so two backends failing at
    /// once cannot both leave when only one may.
    deciding: Mutex<()>,
}

impl Outliers {
    /// The state for `backends` of pool `pool`.
    pub fn new(def: Ejection, pool: &str, backends: impl IntoIterator<Item = Backend>) -> Self {
        Outliers {
            def,
            pool: pool.to_string(),
            records: backends
                .into_iter()
                .map(|b| Record {
                    addr: b.addr.to_string(),
                    backend: b,
                    failures: AtomicU32::new(0),
                    ejections: AtomicU32::new(0),
                    until_ms: AtomicU64::new(0),
                })
                .collect(),
            ejected: AtomicUsize::new(0),
            start: Instant::now(),
            deciding: Mutex::new(()),
        }
    }

    // Pools have a handful of backends: a scan beats hashing the address.
    fn record(&self, backend: &Backend) -> Option<(usize, &Record)> {
        self.records
            .iter()
            .enumerate()
            .find(|(_, r)| r.backend.addr == backend.addr)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether `backend` is ejected now. One whose time is up returns here
    /// if its timer has not run yet.
    pub fn is_ejected(&self, backend: &Backend, metrics: &UpstreamMetrics) -> bool {
        if self.ejected.load(Ordering::Acquire) == 0 {
            return false;
        }
        let Some((i, r)) = self.record(backend) else {
            return false;
        };
        let until = r.until_ms.load(Ordering::Acquire);
        if until == 0 {
            return false;
        }
        if self.now_ms() < until {
            return true;
        }
        self.bring_back(i, until, metrics);
        false
    }

    /// Whether any backend is ejected now.
    pub fn any_ejected(&self) -> bool {
        self.ejected.load(Ordering::Acquire) > 0
    }

    /// Ends ejection `until` of backend `i`, once (the timer and a request
    /// may both get here).
    fn bring_back(&self, i: usize, until: u64, metrics: &UpstreamMetrics) {
        let r = &self.records[i];
        if r.until_ms
            .compare_exchange(until, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.ejected.fetch_sub(1, Ordering::AcqRel);
            metrics.ejected.dec();
            tracing::info!(upstream = %self.pool, backend = %r.addr, "ejected backend back in the pool");
        }
    }

    /// Records a request `backend` answered without a 5xx.
    pub fn success(&self, backend: &Backend) {
        if let Some((_, r)) = self.record(backend) {
            if r.failures.load(Ordering::Relaxed) != 0 {
                r.failures.store(0, Ordering::Relaxed);
            }
            if r.ejections.load(Ordering::Relaxed) != 0 {
                r.ejections.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Records a request `backend` failed; ejects it after `eject_after` in
    /// a row unless no other backend could serve (`usable` says whether one
    /// not ejected could: healthy by the active check).
    pub fn failure(
        self: &Arc<Self>,
        backend: &Backend,
        usable: impl Fn(&Backend) -> bool,
        metrics: &Arc<UpstreamMetrics>,
    ) {
        let Some((i, r)) = self.record(backend) else {
            return;
        };
        let failed = r.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failed < self.def.after || r.until_ms.load(Ordering::Acquire) != 0 {
            return;
        }
        let _one_at_a_time = self.deciding.lock().unwrap_or_else(PoisonError::into_inner);
        if r.until_ms.load(Ordering::Acquire) != 0 {
            return;
        }
        let now = self.now_ms();
        let others = self.records.iter().enumerate().any(|(j, o)| {
            j != i && {
                let until = o.until_ms.load(Ordering::Acquire);
                (until == 0 || until <= now) && usable(&o.backend)
            }
        });
        if !others {
            if failed == self.def.after {
                tracing::warn!(
                    upstream = %self.pool,
                    backend = %r.addr,
                    failures = failed,
                    "backend keeps failing but is not ejected: it is the last one that can serve"
                );
            }
            return;
        }
        let nth = r.ejections.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        let length = self.def.duration(nth);
        let until = now
            .saturating_add(u64::try_from(length.as_millis()).unwrap_or(u64::MAX))
            .max(1);
        r.until_ms.store(until, Ordering::Release);
        r.failures.store(0, Ordering::Release);
        self.ejected.fetch_add(1, Ordering::AcqRel);
        metrics.ejections.inc();
        metrics.ejected.inc();
        tracing::warn!(
            upstream = %self.pool,
            backend = %r.addr,
            failures = failed,
            ejection = nth,
            seconds = length.as_secs_f64(),
            "backend ejected after failing requests in a row"
        );
        // Back on time even with no request to notice; a request that
        // comes first brings it back itself (`is_ejected`).
        let weak: Weak<Outliers> = Arc::downgrade(self);
        let metrics = Arc::downgrade(metrics);
        tokio::spawn(async move {
            tokio::time::sleep(length + Duration::from_millis(1)).await;
            if let (Some(me), Some(metrics)) = (weak.upgrade(), metrics.upgrade()) {
                me.bring_back(i, until, &metrics);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Arc<UpstreamMetrics> {
        let m = crate::metrics::Metrics::new().unwrap();
        Arc::new(m.upstream("api"))
    }

    fn backends() -> Vec<Backend> {
        ["127.0.0.1:1", "127.0.0.1:2"]
            .iter()
            .map(|a| Backend::new(a).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn ejects_after_n_in_a_row_but_never_the_last() {
        let def = Ejection {
            after: 3,
            base: Duration::from_secs(60),
            max: Duration::from_secs(300),
        };
        let m = metrics();
        let b = backends();
        let o = Arc::new(Outliers::new(def, "api", b.clone()));
        // Two failures, a success, two failures: never three in a row.
        for ok in [false, false, true, false, false] {
            if ok {
                o.success(&b[0]);
            } else {
                o.failure(&b[0], |_| true, &m);
            }
        }
        assert!(!o.is_ejected(&b[0], &m));
        o.failure(&b[0], |_| true, &m);
        assert!(o.is_ejected(&b[0], &m));
        assert_eq!(m.ejections.get(), 1);
        assert_eq!(m.ejected.get(), 1);
        // The other one is now the last that can serve.
        for _ in 0..10 {
            o.failure(&b[1], |_| true, &m);
        }
        assert!(!o.is_ejected(&b[1], &m));
        assert_eq!(m.ejections.get(), 1);
    }

    #[test]
    fn each_ejection_in_a_row_lasts_twice_as_long_up_to_the_cap() {
        let def = Ejection {
            after: 1,
            base: Duration::from_secs(10),
            max: Duration::from_secs(50),
        };
        let secs: Vec<u64> = (1..=5).map(|n| def.duration(n).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 50, 50]);
        assert_eq!(def.duration(200), Duration::from_secs(50));
    }
}
