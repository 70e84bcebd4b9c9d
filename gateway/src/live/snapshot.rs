//! The live snapshot: one immutable rule set and its upstream pools behind
//! an `arc-swap` cell. Each request loads it once and keeps it to the end.

use arc_swap::ArcSwap;
use serde::Serialize;
use std::sync::Arc;
use std::time::SystemTime;

use crate::limits::{self, Limiters};
use crate::metrics::Metrics;
use crate::upstream::{self, Pools};
use prometheus::IntCounter;
use rules::{Counts, RuleSet};

/// What made a snapshot: the cause named in logs and in
/// `GET /admin/versions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The rules loaded when the gateway started.
    Startup,
    /// A change to the rules files, seen by the file watch.
    File,
    /// `SIGHUP`.
    Sighup,
    /// `POST /admin/reload` or `PUT /admin/rules`.
    Admin,
    /// A new version at the remote source.
    Remote,
    /// `POST /admin/rollback`.
    Rollback,
}

impl Trigger {
    /// The name in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::File => "file",
            Trigger::Sighup => "sighup",
            Trigger::Admin => "admin",
            Trigger::Remote => "remote",
            Trigger::Rollback => "rollback",
        }
    }
}

/// Everything a request needs, built together and swapped together.
pub struct Snapshot {
    /// The compiled rules.
    pub rules: Arc<RuleSet>,
    /// Upstream pools by name.
    pub pools: Pools,
    /// Rate limiters of the routes that have one.
    pub limiters: Limiters,
    /// Monotonic version, 1 for the rules loaded at start.
    pub version: u64,
    /// When it was built.
    pub loaded_at: SystemTime,
    /// Where it came from: a path, `admin`, or a URL.
    pub source: String,
    /// What made it.
    pub trigger: Trigger,
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
    pub trigger: Trigger,
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
        let pools = upstream::build(rules.upstreams(), previous.map(|p| &p.pools), metrics)?;
        let limiters = limits::build(&rules, previous.map(|p| &p.limiters), metrics);
        Ok(Snapshot {
            limiters,
            rule_hits: rule_hits(&rules, metrics),
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
            rule_hits: rule_hits(&old.rules, metrics),
            rules: old.rules.clone(),
            pools: old.pools.clone(),
            limiters: old.limiters.clone(),
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
            trigger: self.trigger,
            loaded_at: humantime::format_rfc3339_seconds(self.loaded_at).to_string(),
            counts: self.rules.counts(),
        }
    }

    /// Publishes this snapshot, which just went live, in the metrics, and
    /// drops the series of rules and pools `previous` had and this one
    /// does not.
    pub fn publish(&self, metrics: &Metrics, previous: Option<&Snapshot>) {
        let hash = self.rules.content_hash();
        let previous_hash = previous.map(|p| (p.version, p.rules.content_hash()));
        if let Some(prev) = previous {
            let ids: std::collections::HashSet<&str> = self.rules.rule_ids().collect();
            for id in prev.rules.rule_ids().filter(|id| !ids.contains(id)) {
                metrics.forget_rule(id);
            }
            for name in prev.pools.keys().filter(|n| !self.pools.contains_key(*n)) {
                metrics.forget_upstream(name);
            }
        }
        let c = self.rules.counts();
        let loaded = [
            ("redirect", c.redirects),
            ("link", c.links),
            ("link_set", c.link_sets),
            ("route", c.routes),
            ("respond", c.responds),
            ("upstream", c.upstreams),
            ("test", c.tests),
        ];
        let unix = self
            .loaded_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        metrics.rules_live(
            self.version,
            &hash,
            previous_hash.as_ref().map(|(v, h)| (*v, h.as_str())),
            &loaded,
            unix,
        );
    }

    /// The metrics text, with the pool gauges read now.
    pub fn render_metrics(&self, metrics: &Metrics) -> Vec<u8> {
        self.refresh_gauges(metrics);
        metrics.render()
    }

    /// Sets the gauges read off this snapshot's pools (healthy and total
    /// backends) before the metrics are read.
    pub fn refresh_gauges(&self, metrics: &Metrics) {
        for (name, pool) in &self.pools {
            metrics.upstream_backends(name, pool.healthy_backends(), pool.total_backends());
        }
    }
}

/// Per-rule hit counters in slot order (see `RuleSet::rule_ids`).
fn rule_hits(rules: &RuleSet, metrics: &Metrics) -> Vec<IntCounter> {
    rules.rule_ids().map(|id| metrics.rule_hits(id)).collect()
}

/// Where a snapshot comes from.
pub struct Meta {
    /// Version number to give it.
    pub version: u64,
    /// Source description.
    pub source: String,
    /// What made it.
    pub trigger: Trigger,
    /// Rules text.
    pub text: Arc<str>,
}

/// The shared cell holding the live snapshot.
pub type Live = Arc<ArcSwap<Snapshot>>;

/// A new cell holding `snapshot`.
pub fn share(snapshot: Snapshot) -> Live {
    Arc::new(ArcSwap::from_pointee(snapshot))
}
