//! The live snapshot: one immutable rule set and its upstream pools behind
//! an `arc-swap` cell. Each request loads it once and keeps it to the end.

use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::SystemTime;

use crate::pools::{self, Pools};
use rules::RuleSet;

/// Everything a request needs, built together and swapped together.
pub struct Snapshot {
    /// The compiled rules.
    pub rules: RuleSet,
    /// Upstream pools by name.
    pub pools: Pools,
    /// Monotonic version, 1 for the rules loaded at start.
    pub version: u64,
    /// When it went live.
    pub loaded_at: SystemTime,
    /// Where it came from (a path, `admin`, a URL).
    pub source: String,
}

impl Snapshot {
    /// Builds a snapshot from `rules`, reusing unchanged pools of `previous`.
    pub fn build(
        rules: RuleSet,
        previous: Option<&Snapshot>,
        source: String,
    ) -> anyhow::Result<Snapshot> {
        let pools = pools::build(rules.upstreams(), previous.map(|p| &p.pools))?;
        Ok(Snapshot {
            rules,
            pools,
            version: previous.map_or(1, |p| p.version + 1),
            loaded_at: SystemTime::now(),
            source,
        })
    }
}

/// The shared cell holding the live snapshot.
pub type Live = Arc<ArcSwap<Snapshot>>;

/// A new cell holding `snapshot`.
pub fn live(snapshot: Snapshot) -> Live {
    Arc::new(ArcSwap::from_pointee(snapshot))
}
