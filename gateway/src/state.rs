//! The live snapshot: one immutable rule set and its upstream pools behind
//! an `arc-swap` cell. Each request loads it once and keeps it to the end.

use arc_swap::ArcSwap;
use serde::Serialize;
use std::sync::Arc;
use std::time::SystemTime;

use crate::metrics::Metrics;
use crate::pools::{self, Pools};
use prometheus::IntCounter;
use rules::{Counts, RuleSet};

/// Everything a request needs, built together and swapped together.
pub struct Snapshot {
    /// The compiled rules.
    pub rules: Arc<RuleSet>,
    /// Upstream pools by name.
    pub pools: Pools,
    /// Monotonic version, 1 for the rules loaded at start.
    pub version: u64,
    /// When it was built.
    pub loaded_at: SystemTime,
    /// Where it came from: a path, `admin`, or a URL.
    pub source: String,
    /// What made it: `startup`, `file`, `sighup`, `admin`, `remote`.
    pub trigger: String,
    /// The rules text it was compiled from, kept for rollback.
    pub text: Arc<str>,
    /// Hit counters per rule, in slot order (`Decision::slot`).
    pub rule_hits: Vec<IntCounter>,
}

/// A version as the admin API and logs show it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    /// Version number.
    pub version: u64,
    /// Content hash of the rules and every file they name.
    pub hash: String,
    /// Where it came from.
    pub source: String,
    /// What made it live.
    pub trigger: String,
    /// When it was built (RFC 3339).
    pub loaded_at: String,
    /// Counts per kind.
    pub counts: Counts,
}

impl Snapshot {
    /// Builds a snapshot from `rules`, reusing unchanged pools of `previous`.
    pub fn build(
        rules: RuleSet,
        previous: Option<&Snapshot>,
        meta: Meta,
        metrics: &Metrics,
    ) -> anyhow::Result<Snapshot> {
        let pools = pools::build(rules.upstreams(), previous.map(|p| &p.pools), metrics)?;
        Ok(Snapshot {
            rule_hits: metrics.rule_handles(&rules),
            rules: Arc::new(rules),
            pools,
            version: meta.version,
            loaded_at: SystemTime::now(),
            source: meta.source,
            trigger: meta.trigger,
            text: meta.text,
        })
    }

    /// A new version serving the same rules and pools as `old` (rollback):
    /// fresh metric handles, a new version number, built now.
    pub fn again(old: &Snapshot, meta: Meta, metrics: &Metrics) -> Snapshot {
        Snapshot {
            rule_hits: metrics.rule_handles(&old.rules),
            rules: old.rules.clone(),
            pools: old.pools.clone(),
            version: meta.version,
            loaded_at: SystemTime::now(),
            source: meta.source,
            trigger: meta.trigger,
            text: meta.text,
        }
    }

    /// The version as shown to operators.
    pub fn info(&self) -> VersionInfo {
        VersionInfo {
            version: self.version,
            hash: self.rules.content_hash(),
            source: self.source.clone(),
            trigger: self.trigger.clone(),
            loaded_at: humantime::format_rfc3339_seconds(self.loaded_at).to_string(),
            counts: self.rules.counts(),
        }
    }
}

/// Where a snapshot comes from.
pub struct Meta {
    /// Version number to give it.
    pub version: u64,
    /// Source description.
    pub source: String,
    /// Trigger name.
    pub trigger: String,
    /// Rules text.
    pub text: Arc<str>,
}

/// The shared cell holding the live snapshot.
pub type Live = Arc<ArcSwap<Snapshot>>;

/// A new cell holding `snapshot`.
pub fn live(snapshot: Snapshot) -> Live {
    Arc::new(ArcSwap::from_pointee(snapshot))
}
