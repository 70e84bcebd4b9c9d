//! The flusher: a thread that empties the hand-over queue into pending
//! counter rows every few milliseconds, and every `flush_every` adds them
//! to the store in one transaction. Emptying the queue far more often than
//! the store is written keeps it from filling between two flushes: with
//! every click a new row, one second of clicks at 90,000 a second is more
//! than the queue holds. A failed flush keeps its rows (bounded by
//! `max_pending_rows`) for the next one.

use crossbeam_queue::ArrayQueue;
use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Hit;
use crate::config::AnalyticsSection;
use crate::metrics::{Metrics, StoreOp};
use crate::store::{StatKey, Store, StoreError, Tally};

/// Counter rows waiting for the store, in key order (the order every
/// gateway writes them in).
struct Pending {
    rows: BTreeMap<StatKey, Tally>,
    max: usize,
}

impl Pending {
    /// Adds `hit`; `false` when it is a new row and there is no room.
    fn add(&mut self, hit: Hit) -> bool {
        let visitors = i64::from(hit.visitor);
        if let Some(t) = self.rows.get_mut(&hit.key) {
            t.clicks += 1;
            t.visitors += visitors;
            return true;
        }
        if self.rows.len() >= self.max {
            return false;
        }
        self.rows.insert(
            hit.key,
            Tally {
                clicks: 1,
                visitors,
            },
        );
        true
    }
}

/// Starts the flusher thread; it ends after a message on `stop` (or once
/// the sender is gone), with one last flush.
pub(super) fn spawn(
    cfg: &AnalyticsSection,
    queue: Arc<ArrayQueue<Hit>>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    stop: Receiver<()>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let every = cfg.flush_every;
    let pending = Pending {
        rows: BTreeMap::new(),
        max: cfg.max_pending_rows,
    };
    std::thread::Builder::new()
        .name("analytics".into())
        .spawn(move || run(every, &queue, &store, &metrics, &stop, pending))
}

fn run(
    every: Duration,
    queue: &ArrayQueue<Hit>,
    store: &Store,
    metrics: &Metrics,
    stop: &Receiver<()>,
    mut pending: Pending,
) {
    let mut failing = false;
    let drain_every = (every / 20).clamp(Duration::from_millis(5), Duration::from_millis(50));
    let mut flushed = Instant::now();
    loop {
        let stopping = !matches!(
            stop.recv_timeout(drain_every),
            Err(RecvTimeoutError::Timeout)
        );
        while let Some(hit) = queue.pop() {
            if !pending.add(hit) {
                metrics.analytics.dropped.inc();
            }
        }
        if !stopping && flushed.elapsed() < every {
            continue;
        }
        flushed = Instant::now();
        if !pending.rows.is_empty() {
            match flush(store, std::mem::take(&mut pending.rows)) {
                Ok(written) => {
                    metrics.analytics.flushes_ok.inc();
                    metrics.analytics.rows_written.inc_by(written);
                    if failing {
                        tracing::info!("analytics: the store takes counters again");
                    }
                    failing = false;
                }
                Err((rows, e)) => {
                    metrics.analytics.flushes_error.inc();
                    if stopping {
                        tracing::error!(error = %e, rows = rows.len(), "analytics: the last flush failed; these counters are lost");
                    } else if !failing {
                        // Once per outage: the metric counts every try.
                        tracing::warn!(error = %e, rows = rows.len(), "analytics: cannot add counters to the store; keeping them and trying again");
                    }
                    failing = true;
                    pending.rows = rows;
                }
            }
        }
        metrics
            .analytics
            .pending_rows
            .set(pending.rows.len() as i64);
        if stopping {
            return;
        }
    }
}

/// Adds `rows` to the store in one transaction: how many, or the rows
/// back with the error.
fn flush(
    store: &Store,
    rows: BTreeMap<StatKey, Tally>,
) -> Result<u64, (BTreeMap<StatKey, Tally>, StoreError)> {
    let rows: Arc<Vec<(StatKey, Tally)>> = Arc::new(rows.into_iter().collect());
    let writing = rows.clone();
    let result = store.block_on(store.query(StoreOp::Stats, move |b| async move {
        b.add_stats(&writing).await
    }));
    match result {
        Ok(()) => Ok(rows.len() as u64),
        Err(e) => {
            // The query's copy is dropped once it ended; a clone is only
            // the fallback.
            let rows = Arc::try_unwrap(rows).unwrap_or_else(|shared| (*shared).clone());
            Err((rows.into_iter().collect(), e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Subject, SubjectKind};

    fn hit(name: &str, visitor: bool) -> Hit {
        Hit {
            key: StatKey {
                subject: Subject {
                    kind: SubjectKind::Link,
                    host: "go.example.com".into(),
                    name: name.into(),
                },
                hour: 3600,
                device: "ios",
                country: String::new(),
                referrer: String::new(),
                bot: false,
            },
            visitor,
        }
    }

    #[test]
    fn pending_rows_add_up_and_stay_bounded() {
        let mut p = Pending {
            rows: BTreeMap::new(),
            max: 1,
        };
        assert!(p.add(hit("a", true)));
        assert!(p.add(hit("a", false)));
        assert!(!p.add(hit("b", true)), "a second row is over the bound");
        let t = p.rows.values().next().copied().unwrap();
        assert_eq!((t.clicks, t.visitors), (2, 1));
    }
}
