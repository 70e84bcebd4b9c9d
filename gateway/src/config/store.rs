//! `[store]`: links kept in a database (SQLite or PostgreSQL), resolved
//! through a cache on the request path.

use serde::Deserialize;
use std::time::Duration;

use super::duration;
use super::size;

/// `[store]` in the server configuration. Without the section there is no
/// store, and no request ever waits for one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `sqlite://path/to/file.db` (created and migrated on first start) or
    /// `postgres://user:password@host/db`.
    pub url: String,
    /// Bytes the link cache may hold (links and unknown codes together).
    #[serde(with = "size")]
    pub cache_capacity: u64,
    /// How long a cached link is trusted before it is read again (changes
    /// arrive through the change log long before; this is a safety net).
    /// While the store is unreachable, cached links keep answering past it.
    #[serde(with = "duration")]
    pub ttl: Duration,
    /// How long an unknown code is remembered as unknown.
    #[serde(with = "duration")]
    pub negative_ttl: Duration,
    /// How often the change log is read (PostgreSQL also wakes followers
    /// at once with `NOTIFY`).
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// Connections in the pool.
    pub max_connections: u32,
    /// Longest wait for a connection or a query before the store counts as
    /// unreachable.
    #[serde(with = "duration")]
    pub timeout: Duration,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            url: "sqlite://data/gateway.db".into(),
            cache_capacity: 256 << 20,
            ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(30),
            poll_interval: Duration::from_millis(250),
            max_connections: 8,
            timeout: Duration::from_secs(2),
        }
    }
}

impl StoreSection {
    /// The URL without its password, for logs and messages.
    pub fn display_url(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("***"));
                u.to_string()
            }
            _ => self.url.clone(),
        }
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.url.starts_with("sqlite:")
            || self.url.starts_with("postgres://")
            || self.url.starts_with("postgresql://"))
        {
            anyhow::bail!(
                "config: store.url must start with sqlite:, postgres:// or postgresql://, not `{}`",
                self.url
            );
        }
        // On PostgreSQL the follower's LISTEN holds one connection.
        let least = if self.url.starts_with("sqlite:") {
            1
        } else {
            2
        };
        if self.max_connections < least {
            anyhow::bail!("config: store.max_connections must be at least {least} for this store");
        }
        if self.poll_interval.is_zero() {
            anyhow::bail!("config: store.poll_interval must be above zero");
        }
        Ok(())
    }
}
