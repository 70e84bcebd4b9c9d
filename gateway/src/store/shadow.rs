//! Stored links a rule answers instead: a reload whose rules newly claim a
//! stored code wins (rules rank first), and the link it shadows is logged
//! and counted rather than silently unreachable.

use std::sync::Arc;

use super::error::StoreError;
use super::resolve::Store;
use crate::live::Live;
use pingora::server::ShutdownWatch;
use rules::RuleSet;

/// Links read per query.
const BATCH: i64 = 5000;
/// Shadowed links named in the log (the rest are counted).
const NAMED: usize = 20;

/// Scans every stored link on a store domain of `rules`; sets
/// `gateway_store_shadowed_links` and logs the shadowed ones.
pub async fn scan(store: &Store, rules: Arc<RuleSet>) -> Result<u64, StoreError> {
    let mut after = 0;
    let mut shadowed = 0u64;
    let mut named = Vec::new();
    loop {
        let page = store
            .query(crate::metrics::StoreOp::Keys, move |b| async move {
                b.keys(after, BATCH).await
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = last.0;
        for (id, host, code) in &page {
            if !rules.is_store_domain(host) {
                continue;
            }
            if let Some(rule) = rules.claimed_by(host, code) {
                shadowed += 1;
                if named.len() < NAMED {
                    named.push(format!("{host}/{code} (link {id}) by rule {rule}"));
                }
            }
        }
    }
    store.metrics.store.shadowed.set(shadowed as i64);
    if shadowed > 0 {
        tracing::warn!(
            shadowed,
            examples = %named.join(", "),
            "store: stored links answered by rules of the rules file instead"
        );
    }
    Ok(shadowed)
}

/// Scans for shadowed links whenever a new rules version goes live (and at
/// start); a scan that fails is tried again at the next version.
pub async fn scans(store: Arc<Store>, live: Live, mut shutdown: ShutdownWatch) {
    let mut scanned = 0;
    loop {
        let snap = live.load_full();
        if snap.version != scanned {
            scanned = snap.version;
            if let Err(e) = scan(&store, snap.rules.clone()).await {
                tracing::warn!(error = %e, "store: cannot scan for shadowed links");
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}
