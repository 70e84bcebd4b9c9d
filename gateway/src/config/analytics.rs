//! `[analytics]`: per-link click counters kept in the link store
//! (docs/store.md, "Link analytics").

use serde::Deserialize;
use std::time::Duration;

use super::duration;

/// `[analytics]` in the server configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsSection {
    /// Count clicks per link and hour into the store. Needs `[clicks]
    /// enabled` (visitors are told apart by its de-duplication) and a
    /// `[store]` (where the counters live).
    pub enabled: bool,
    /// How often the counters gathered in memory are added to the store.
    #[serde(with = "duration")]
    pub flush_every: Duration,
    /// Clicks the hand-over queue holds until the flusher, which empties
    /// it every few milliseconds, counts them; more are dropped and counted.
    pub queue_capacity: usize,
    /// Counter rows kept in memory while they wait for the store (while it
    /// is down, too); clicks for a row beyond them are dropped and counted.
    pub max_pending_rows: usize,
}

impl Default for AnalyticsSection {
    fn default() -> Self {
        AnalyticsSection {
            enabled: false,
            flush_every: Duration::from_secs(1),
            queue_capacity: 65536,
            max_pending_rows: 100_000,
        }
    }
}

impl AnalyticsSection {
    /// Checks what serde cannot.
    pub fn validate(&self, clicks: bool, store: bool) -> anyhow::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        if !clicks || !store {
            anyhow::bail!(
                "config: [analytics] enabled needs [clicks] enabled (its de-duplication tells visitors apart) and a [store] (where the counters are kept)"
            );
        }
        if self.flush_every < Duration::from_millis(100) {
            anyhow::bail!("config: analytics.flush_every must be at least 100ms");
        }
        if self.queue_capacity == 0 || self.max_pending_rows == 0 {
            anyhow::bail!(
                "config: analytics.queue_capacity and analytics.max_pending_rows must be at least 1"
            );
        }
        Ok(())
    }
}
