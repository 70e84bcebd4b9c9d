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
    /// `file`, `http` or `nats`.
    pub sink: SinkKind,
    /// Directory of the click files (and of spilled batches for `http`
    /// and `nats`).
    pub dir: PathBuf,
    /// A file is rotated when it would grow past this size.
    pub max_file_bytes: u64,
    /// Collector URL for `sink = "http"`; NATS server URL (`nats://…`,
    /// several comma-separated) for `sink = "nats"`.
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
    /// `nats`: JetStream stream the events are stored in (created when missing).
    pub stream: String,
    /// `nats`: subject of each event: dot-separated tokens; a token may be one of
    /// the placeholders `<host>` or `<device>` (see [`subject_parts`]).
    pub subject: String,
    /// `nats`: how long the stream keeps an event (the stream's `max_age`).
    #[serde(with = "super::duration")]
    pub max_age: Duration,
    /// `nats`: the stream's de-duplication window: an event published again with
    /// the same click id within it is stored once.
    #[serde(with = "super::duration")]
    pub duplicate_window: Duration,
    /// `nats`: time a publish may wait for JetStream's acknowledgement.
    #[serde(with = "super::duration")]
    pub ack_timeout: Duration,
    /// `nats`: publishes waiting for their acknowledgement at most.
    pub max_in_flight: usize,
}

/// One token of a subject template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectPart {
    /// Written as is.
    Literal(String),
    /// The event's host, made one subject token.
    Host,
    /// The event's device (`ios`, `android`, `desktop`).
    Device,
}

/// The tokens of a subject template: dot-separated, none empty, no
/// wildcard (`*`, `>`) or white space; `<host>` and `<device>` as whole
/// tokens are placeholders.
pub fn subject_parts(template: &str) -> anyhow::Result<Vec<SubjectPart>> {
    template
        .split('.')
        .map(|t| match t {
            "<host>" => Ok(SubjectPart::Host),
            "<device>" => Ok(SubjectPart::Device),
            _ if t.is_empty()
                || t.contains(['*', '>', '<'])
                || t.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                anyhow::bail!(
                    "config: clicks.subject `{template}`: token `{t}` is not a subject token or a placeholder (<host>, <device>)"
                )
            }
            _ => Ok(SubjectPart::Literal(t.to_string())),
        })
        .collect()
}

/// Where events go.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// JSON lines in rotated files.
    File,
    /// NDJSON batches POSTed to a collector.
    Http,
    /// One message per event published to a NATS JetStream stream.
    Nats,
}

impl SinkKind {
    /// The spelling the config uses, so logs match what operators wrote.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::File => "file",
            SinkKind::Http => "http",
            SinkKind::Nats => "nats",
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
            stream: "CLICKS".into(),
            subject: "clicks.<host>".into(),
            max_age: Duration::from_secs(7 * 86400),
            duplicate_window: Duration::from_secs(120),
            ack_timeout: Duration::from_secs(5),
            max_in_flight: 4096,
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
        if self.sink == SinkKind::Nats {
            self.validate_nats()?;
        }
        Ok(())
    }

    fn validate_nats(&self) -> anyhow::Result<()> {
        let n = self;
        let urls_ok = self.url.as_deref().is_some_and(|u| {
            u.split(',')
                .all(|u| u.trim().starts_with("nats://") || u.trim().starts_with("tls://"))
        });
        if !urls_ok {
            anyhow::bail!("config: clicks.sink = \"nats\" needs clicks.url (nats:// or tls://)");
        }
        subject_parts(&n.subject)?;
        if n.stream.is_empty()
            || n.stream
                .contains(|c: char| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace())
        {
            anyhow::bail!("config: clicks.stream `{}` is not a stream name (no dots, wildcards, slashes or spaces)", n.stream);
        }
        if n.max_in_flight == 0 || n.ack_timeout.is_zero() {
            anyhow::bail!("config: clicks.max_in_flight and clicks.ack_timeout must be above zero");
        }
        if n.duplicate_window.is_zero() || n.duplicate_window > n.max_age {
            anyhow::bail!(
                "config: clicks.duplicate_window must be above zero and at most clicks.max_age"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_templates() {
        assert_eq!(
            subject_parts("clicks.<host>.<device>").unwrap(),
            vec![
                SubjectPart::Literal("clicks".into()),
                SubjectPart::Host,
                SubjectPart::Device
            ]
        );
        for bad in [
            "",
            "clicks.",
            "clicks..x",
            "clicks.*",
            "clicks.>",
            "a b",
            "x.h<host>",
        ] {
            assert!(subject_parts(bad).is_err(), "{bad}");
        }
    }
}
