//! Following the store's change log: every gateway reads the changes after
//! the last one it applied and drops the cache entries they name, so a link
//! written anywhere is served everywhere within `poll_interval` (at once on
//! PostgreSQL, where a `NOTIFY` wakes the follower).

use pingora::server::ShutdownWatch;
use sqlx::postgres::PgListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::backend::Backend;
use super::resolve::Store;
use super::shadow;
use crate::live::Live;
use crate::metrics::StoreOp;

/// Changes read per query; a longer backlog is read in a loop at once.
const BATCH: i64 = 1000;
/// Changes older than this are pruned from the log (by every gateway; the
/// delete is cheap and idempotent).
const KEEP_CHANGES: Duration = Duration::from_secs(24 * 3600);
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// The channel the PostgreSQL trigger notifies.
const CHANNEL: &str = "gateway_link_changes";

/// Follows `store`'s change log on the store's runtime until `shutdown`,
/// and counts the stored links each rules version of `live` shadows.
pub async fn follow(store: Arc<Store>, live: Live, shutdown: ShutdownWatch) {
    let rt = store.rt.clone();
    let shadows = rt.spawn(shadow::scans(store.clone(), live, shutdown.clone()));
    if let Err(e) = rt.spawn(run(store, shutdown)).await {
        tracing::error!(error = %e, "store: the change-log follower stopped");
    }
    shadows.abort();
}

/// Follows the log until shutdown.
async fn run(store: Arc<Store>, mut shutdown: ShutdownWatch) {
    let mut listener: Option<PgListener> = None;
    let mut last_prune = Instant::now() - PRUNE_EVERY;
    let mut last_ok = Instant::now();
    loop {
        match step(&store).await {
            Ok(more) => {
                last_ok = Instant::now();
                if more {
                    continue;
                }
            }
            Err(e) => {
                store
                    .metrics
                    .store
                    .lag_seconds
                    .set(last_ok.elapsed().as_secs_f64());
                tracing::warn!(error = %e, "store: cannot read the change log; cached links keep answering");
            }
        }
        store.publish_size();
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            let before = rules::unix_now() - KEEP_CHANGES.as_secs() as i64;
            if let Err(e) = store
                .query(StoreOp::Prune, move |b| async move {
                    b.prune_changes(before).await?;
                    b.prune_idempotency(rules::unix_now()).await
                })
                .await
            {
                tracing::debug!(error = %e, "store: cannot prune the change log");
            }
        }
        if let Backend::Postgres(pool) = &store.backend {
            if listener.is_none() {
                listener = listen(pool).await;
            }
        }
        let wait = tokio::time::sleep(store.config.poll_interval);
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = wait => {}
            notified = notified(&mut listener) => {
                if !notified {
                    listener = None;
                }
            }
        }
    }
}

/// Applies the next batch of changes; `true` when more are waiting.
async fn step(store: &Store) -> Result<bool, super::StoreError> {
    let pos = &store.position;
    let head = store
        .query(StoreOp::Head, |b| async move { b.head().await })
        .await?;
    let applied = pos.applied();
    if applied < 0 || head < applied {
        // A fresh gateway needs no history, only nothing cached from before
        // `head`; a store restored from an older backup starts over too.
        if applied > head {
            tracing::warn!(
                applied,
                head,
                "store: the change log went back; dropping the link cache"
            );
        }
        store.cache.reset(head);
        pos.applied.store(head, Ordering::Release);
        store.metrics.store.changes_behind.set(0);
        store.metrics.store.lag_seconds.set(0.0);
        return Ok(false);
    }
    if head == applied {
        store.metrics.store.changes_behind.set(0);
        store.metrics.store.lag_seconds.set(0.0);
        return Ok(false);
    }
    let changes = store
        .query(StoreOp::Changes, move |b| async move {
            b.changes_after(applied, BATCH).await
        })
        .await?;
    let mut last = applied;
    for change in &changes {
        if change.seq != last + 1 {
            // The log was pruned past us (a follower away for a day):
            // what changed meanwhile is unknown, so nothing cached is kept.
            tracing::warn!(
                expected = last + 1,
                got = change.seq,
                "store: changes missing from the log; dropping the link cache"
            );
            store.metrics.store.follower_gaps.inc();
            store.cache.reset(change.seq);
        }
        store.cache.changed(change.seq, &change.host, &change.code);
        last = change.seq;
    }
    store.cache.prune_changes();
    store
        .metrics
        .store
        .changes_applied
        .inc_by(changes.len() as u64);
    pos.applied.store(last, Ordering::Release);
    store.metrics.store.changes_behind.set(head - last);
    let behind = match changes.last() {
        // More are waiting: the age of the newest one applied is how far
        // behind the cache is at least.
        Some(c) if head > last => (rules::unix_now() - c.at).max(0) as f64,
        _ => 0.0,
    };
    store.metrics.store.lag_seconds.set(behind);
    Ok(head > last && !changes.is_empty())
}

async fn listen(pool: &sqlx::PgPool) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(pool).await.ok()?;
    listener.listen(CHANNEL).await.ok()?;
    Some(listener)
}

/// Resolves when a notification arrives (`true`) or the listener broke
/// (`false`); never without a listener.
async fn notified(listener: &mut Option<PgListener>) -> bool {
    match listener {
        Some(l) => l.recv().await.is_ok(),
        None => std::future::pending().await,
    }
}
