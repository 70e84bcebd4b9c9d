//! `[clicks]`: click events and where they go.

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `[clicks]` in the server configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClicksSection {
    /// Produce click events at all. Click ids are appended whenever the
    /// rules set `click_id_param`.
    pub enabled: bool,
    /// `file` or `http`.
    pub sink: SinkKind,
    /// Directory of the click files (and of spilled batches for `http`).
    pub dir: PathBuf,
    /// A file is rotated when it would grow past this size.
    pub max_file_bytes: u64,
    /// Collector URL for `sink = "http"`.
    pub url: Option<String>,
    /// Events the queue holds before new ones are dropped.
    pub queue_capacity: usize,
    /// A visitor opening the same link again within this window gets the
    /// same click id and no second event.
    #[serde(with = "super::duration")]
    pub dedup_window: Duration,
    /// Visitors remembered for de-duplication.
    pub dedup_capacity: u64,
    /// Keep only the network part of client addresses (IPv4 /24, IPv6 /48).
    pub anonymize_ip: bool,
    /// Events per batch written or posted.
    pub batch_size: usize,
    /// A partial batch is written after this long.
    #[serde(with = "super::duration")]
    pub flush_interval: Duration,
    /// Time a collector POST may take.
    #[serde(with = "super::duration")]
    pub http_timeout: Duration,
}

/// Where events go.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// JSON lines in rotated files.
    File,
    /// NDJSON batches POSTed to a collector.
    Http,
}

impl SinkKind {
    /// The spelling the config uses, so logs match what operators wrote.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::File => "file",
            SinkKind::Http => "http",
        }
    }
}

impl Default for ClicksSection {
    fn default() -> Self {
        ClicksSection {
            enabled: false,
            sink: SinkKind::File,
            dir: "/var/lib/gateway/clicks".into(),
            max_file_bytes: 128 << 20,
            url: None,
            queue_capacity: 65536,
            dedup_window: Duration::from_secs(3600),
            dedup_capacity: 1_000_000,
            anonymize_ip: true,
            batch_size: 1000,
            flush_interval: Duration::from_secs(1),
            http_timeout: Duration::from_secs(5),
        }
    }
}

impl ClicksSection {
    /// Checks what serde cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        if self.queue_capacity == 0 || self.batch_size == 0 {
            anyhow::bail!("config: clicks.queue_capacity and clicks.batch_size must be at least 1");
        }
        if self.sink == SinkKind::Http {
            match &self.url {
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => {}
                _ => anyhow::bail!(
                    "config: clicks.sink = \"http\" needs clicks.url (http:// or https://)"
                ),
            }
        }
        Ok(())
    }
}
