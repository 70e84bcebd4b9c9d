//! The flusher: a thread that takes the request threads' rows into pending
//! counter rows every few milliseconds, and every `flush_every` adds them
//! to the store in one transaction. Taking them far more often than the
//! store is written keeps the hand-over queue from filling between two
//! flushes: with every click a new row, one second of clicks at 90,000 a
//! second is more than it holds. A failed flush keeps its rows (bounded by
//! `max_pending_rows`) for the next one.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Tallies;
use crate::clicks::Batches;
use crate::config::AnalyticsSection;
use crate::metrics::{Metrics, StoreOp};
use crate::store::{StatKey, Store, StoreError, Tally};
use foldhash::fast::RandomState;

/// Counter rows waiting for the store. Hashed, not kept in order: a flush
/// sorts them once (`flush`), where a tree compared keys string by string
/// on every add.
type Rows = HashMap<StatKey, Tally, RandomState>;

/// Counter rows waiting for the store, bounded.
struct Pending {
    rows: Rows,
    max: usize,
}

impl Pending {
    /// Adds a thread's `tally` of `key`; `false` when it is a new row and
    /// there is no room.
    fn add(&mut self, key: StatKey, tally: Tally) -> bool {
        if let Some(t) = self.rows.get_mut(&key) {
            t.clicks += tally.clicks;
            t.visitors += tally.visitors;
            return true;
        }
        if self.rows.len() >= self.max {
            return false;
        }
        self.rows.insert(key, tally);
        true
    }
}

/// Starts the flusher thread; it ends after a message on `stop` (or once
/// the sender is gone), with one last flush.
pub(super) fn spawn(
    cfg: &AnalyticsSection,
    batches: Arc<Batches<Tallies>>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    stop: Receiver<()>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let every = cfg.flush_every;
    let pending = Pending {
        rows: Rows::default(),
        max: cfg.max_pending_rows,
    };
    std::thread::Builder::new()
        .name("analytics".into())
        .spawn(move || run(every, &batches, &store, &metrics, &stop, pending))
}

fn run(
    every: Duration,
    batches: &Batches<Tallies>,
    store: &Store,
    metrics: &Metrics,
    stop: &Receiver<()>,
    mut pending: Pending,
) {
    let mut failing = false;
    let drain_every = (every / 20).clamp(Duration::from_millis(5), Duration::from_millis(50));
    let mut flushed = Instant::now();
    let mut taken = Vec::new();
    loop {
        let stopping = !matches!(
            stop.recv_timeout(drain_every),
            Err(RecvTimeoutError::Timeout)
        );
        batches.take(&mut taken, true);
        for mut tallies in taken.drain(..) {
            for (key, tally) in tallies.drain() {
                let clicks = tally.clicks;
                if !pending.add(key, tally) {
                    metrics.analytics.dropped.inc_by(clicks.unsigned_abs());
                }
            }
            batches.recycle(tallies);
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

/// Adds `rows` to the store in one transaction, in key order (the order
/// every gateway writes them in, so two flushes touching the same rows
/// wait for each other instead of deadlocking): how many, or the rows
/// back with the error.
fn flush(store: &Store, rows: Rows) -> Result<u64, (Rows, StoreError)> {
    let rows = Arc::new(in_key_order(rows));
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

/// The rows sorted by key.
fn in_key_order(rows: Rows) -> Vec<(StatKey, Tally)> {
    let mut rows: Vec<(StatKey, Tally)> = rows.into_iter().collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Subject, SubjectKind};

    fn key(name: &str) -> StatKey {
        StatKey {
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
        }
    }

    fn tally(clicks: i64, visitors: i64) -> Tally {
        Tally { clicks, visitors }
    }

    #[test]
    fn pending_rows_add_up_and_stay_bounded() {
        let mut p = Pending {
            rows: Rows::default(),
            max: 1,
        };
        assert!(p.add(key("a"), tally(2, 1)));
        assert!(p.add(key("a"), tally(3, 0)));
        assert!(
            !p.add(key("b"), tally(1, 1)),
            "a second row is over the bound"
        );
        let t = p.rows.values().next().copied().unwrap();
        assert_eq!((t.clicks, t.visitors), (5, 1));
    }

    #[test]
    fn a_flush_writes_rows_in_key_order() {
        let mut rows = Rows::default();
        for name in ["m", "b", "z", "a", "q"] {
            rows.insert(key(name), tally(1, 1));
        }
        let names: Vec<String> = in_key_order(rows)
            .into_iter()
            .map(|(k, _)| k.subject.name)
            .collect();
        assert_eq!(names, ["a", "b", "m", "q", "z"]);
    }
}
