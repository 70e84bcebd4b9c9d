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

use foldhash::fast::RandomState;

use super::tallies::{Row, RowRef, Rows, Tallies};
use crate::clicks::Batches;
use crate::config::AnalyticsSection;
use crate::metrics::{Metrics, StoreOp};
use crate::store::{StatKey, Store, StoreError, SubjectKind, Tally};

/// Counter rows waiting for the store, bounded. Merged by the hash each
/// row comes with from its request thread, so no key is hashed twice; a
/// flush sorts them once (`in_key_order`). A failed flush leaves them
/// here for the next.
#[derive(Default)]
struct Pending {
    rows: Rows<Row>,
    max: usize,
}

impl Pending {
    /// Adds a thread's row (`key` with `hash`) with its `tally`; `false`
    /// when it is a new row and there is no room.
    fn add(&mut self, hash: u64, key: RowRef<'_>, tally: Tally) -> bool {
        if let Some(r) = self.rows.find_mut(hash, |r| key.is(&r.key)) {
            r.tally.clicks += tally.clicks;
            r.tally.visitors += tally.visitors;
            return true;
        }
        if self.rows.len() >= self.max {
            return false;
        }
        self.rows.push(Row {
            hash,
            key: key.into_key(),
            tally,
        });
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
        max: cfg.max_pending_rows,
        ..Pending::default()
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
        for tallies in taken.drain(..) {
            for (hash, key, tally) in tallies.rows() {
                if !pending.add(hash, key, tally) {
                    metrics
                        .analytics
                        .dropped
                        .inc_by(tally.clicks.unsigned_abs());
                }
            }
            batches.recycle(tallies);
        }
        if !stopping && flushed.elapsed() < every {
            continue;
        }
        flushed = Instant::now();
        if !pending.rows.is_empty() {
            match flush(store, pending.rows.as_slice()) {
                Ok(written) => {
                    pending.rows.clear();
                    metrics.analytics.flushes_ok.inc();
                    metrics.analytics.rows_written.inc_by(written);
                    if failing {
                        tracing::info!("analytics: the store takes counters again");
                    }
                    failing = false;
                }
                Err(e) => {
                    metrics.analytics.flushes_error.inc();
                    let rows = pending.rows.len();
                    if stopping {
                        tracing::error!(error = %e, rows, "analytics: the last flush failed; these counters are lost");
                    } else if !failing {
                        // Once per outage: the metric counts every try.
                        tracing::warn!(error = %e, rows, "analytics: cannot add counters to the store; keeping them and trying again");
                    }
                    failing = true;
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
/// wait for each other instead of deadlocking): how many. The rows stay
/// the caller's, for a retry when it fails.
fn flush(store: &Store, rows: &[Row]) -> Result<u64, StoreError> {
    let writing = Arc::new(in_key_order(rows));
    let written = writing.len() as u64;
    store.block_on(store.query(StoreOp::Stats, move |b| async move {
        b.add_stats(&writing).await
    }))?;
    Ok(written)
}

/// The rows sorted by key, copied (a copy shares the key's text).
///
/// Not a plain sort of the keys: comparing two keys reads four strings of
/// two rows scattered over the heap, a cache miss each, and with every
/// click a new row that was a third of the flusher's time. Each row's
/// place is first decided by small numbers — its link host's rank among
/// the batch's few hosts, then the first eight bytes of its name — and
/// only a tie on both compares whole keys. The order is the keys' own:
/// a rank keeps the hosts' order, and zero-padded big-endian prefixes
/// that differ order their strings as the strings do.
fn in_key_order(rows: &[Row]) -> Vec<(StatKey, Tally)> {
    // Each row's host by the order it was first seen, then those turned
    // into ranks: one lookup a row. Seeded per flush: a bulk link's host
    // can be whatever the client sent, and a fixed seed would let one aim
    // many hosts at one bucket.
    let mut seen: HashMap<(SubjectKind, &str), u32, RandomState> = HashMap::default();
    let firsts: Vec<u32> = rows
        .iter()
        .map(|r| {
            let next = seen.len() as u32;
            *seen.entry((r.key.kind, &*r.key.host)).or_insert(next)
        })
        .collect();
    let mut hosts: Vec<((SubjectKind, &str), u32)> = seen.into_iter().collect();
    hosts.sort_unstable();
    let mut rank = vec![0u32; hosts.len()];
    for (r, (_, first)) in (0u32..).zip(&hosts) {
        rank[*first as usize] = r;
    }
    let mut order: Vec<(u32, u64, usize)> = rows
        .iter()
        .zip(firsts)
        .enumerate()
        .map(|(i, (r, first))| (rank[first as usize], prefix(&r.key.name), i))
        .collect();
    order.sort_unstable_by(|a, b| {
        (a.0, a.1)
            .cmp(&(b.0, b.1))
            .then_with(|| rows[a.2].key.cmp(&rows[b.2].key))
    });
    order
        .into_iter()
        .map(|(_, _, i)| (rows[i].key.clone(), rows[i].tally))
        .collect()
}

/// The first eight bytes of `s`, zero-padded, as a big-endian number.
fn prefix(s: &str) -> u64 {
    let mut bytes = [0u8; 8];
    let n = s.len().min(8);
    bytes[..n].copy_from_slice(&s.as_bytes()[..n]);
    u64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    /// A thread's row: (hash, key, counts).
    fn row(name: &str, clicks: i64, visitors: i64) -> (u64, RowRef<'_>, Tally) {
        let key = RowRef {
            kind: SubjectKind::Link,
            host: "go.example.com",
            name,
            hour: 3600,
            device: "ios",
            country: "".into(),
            referrer: "".into(),
            bot: false,
        };
        let hash = foldhash::fast::FixedState::default().hash_one(name);
        (hash, key, Tally { clicks, visitors })
    }

    fn add(p: &mut Pending, (hash, key, tally): (u64, RowRef<'_>, Tally)) -> bool {
        p.add(hash, key, tally)
    }

    #[test]
    fn pending_rows_add_up_and_stay_bounded() {
        let mut p = Pending {
            max: 1,
            ..Pending::default()
        };
        assert!(add(&mut p, row("a", 2, 1)));
        assert!(add(&mut p, row("a", 3, 0)));
        assert!(
            !add(&mut p, row("b", 1, 1)),
            "a second row is over the bound"
        );
        assert_eq!(p.rows.len(), 1);
        let t = p.rows.as_slice()[0].tally;
        assert_eq!((t.clicks, t.visitors), (5, 1));
    }

    #[test]
    fn rows_sharing_a_hash_stay_apart() {
        let mut p = Pending {
            max: 10,
            ..Pending::default()
        };
        let mut b = row("b", 1, 1);
        b.0 = row("a", 0, 0).0;
        assert!(add(&mut p, row("a", 1, 1)));
        assert!(add(&mut p, b));
        assert!(add(&mut p, row("a", 1, 0)));
        let names: Vec<(&str, i64)> = p
            .rows
            .as_slice()
            .iter()
            .map(|r| (&*r.key.name, r.tally.clicks))
            .collect();
        assert_eq!(names, [("a", 2), ("b", 1)]);
    }

    #[test]
    fn a_flush_writes_rows_in_key_order() {
        // Names that tie on their first eight bytes, run out inside them
        // or hold a zero byte; hosts that share a prefix; rules and links.
        let names = [
            "m",
            "b",
            "z",
            "a",
            "q",
            "abcdefgh",
            "abcdefghi",
            "abcdefgha",
            "abc",
            "abc\0",
            "abc\0\0",
            "ab",
            "",
            "zzzzzzzzzzzz",
            "abcdefgh\0",
        ];
        let hosts = ["go.example.com", "go.example.co", "a.example", ""];
        let mut rows = Vec::new();
        for (i, name) in names.iter().enumerate() {
            for (j, host) in hosts.iter().enumerate() {
                let (hash, key, tally) = row(name, 1, 1);
                let mut r = Row {
                    hash,
                    key: key.into_key(),
                    tally,
                };
                r.key.host = (*host).into();
                r.key.kind = if j == 3 {
                    SubjectKind::Rule
                } else {
                    SubjectKind::Link
                };
                r.key.device = ["ios", "android", "desktop"][(i + j) % 3];
                rows.push(r);
            }
        }
        // Reversed, so the input is not already near order.
        rows.reverse();
        let mut expected: Vec<StatKey> = rows.iter().map(|r| r.key.clone()).collect();
        expected.sort();
        let got: Vec<StatKey> = in_key_order(&rows).into_iter().map(|(k, _)| k).collect();
        assert_eq!(got, expected);
        assert_eq!(&*got[0].name, "", "the empty name first");
    }
}
