//! Per-link analytics: clicks and visitors per link (or rule) and hour,
//! split by device, country, referrer host and bot, added up in the link
//! store by every gateway of a fleet (docs/store.md, "Link analytics").
//!
//! ```text
//! redirect ─▶ Analytics::count: added up in the thread's rows (tallies);
//!   a full batch of rows is handed over; queue full: dropped and counted
//! flusher thread, every few ms: the threads' rows ─▶ pending rows
//!   (bounded); every flush_every: one transaction of upserts
//!   (clicks = clicks + excluded.clicks); store down: rows stay pending,
//!   tried again next time
//! shutdown ─▶ drain, one last flush
//! ```
//!
//! [`tallies`] adds clicks up on the request threads, [`flush`] is the
//! flusher, [`report`] reads the counters back for the stats endpoints.

mod flush;
mod report;
mod tallies;

use std::borrow::Cow;
use std::sync::mpsc;
use std::sync::Arc;

use crate::clicks::{Batches, ClickId, Visit};
use crate::config::AnalyticsSection;
use crate::metrics::Metrics;
use crate::store::{Store, SubjectKind};
pub use report::{
    bad as invalid_parameter, report, Counts, GroupBy, GroupRow, Interval, Report, SeriesPoint,
    StatsQuery, PARAMS,
};

use tallies::{RowRef, Tallies};

/// The longest referrer host kept (a DNS name's limit).
const MAX_HOST: usize = 253;

/// Rows a thread adds up before it hands them over whole.
const ROWS_PER_BATCH: usize = 1024;

/// The request side: the threads' rows, which the flusher takes.
pub struct Analytics {
    batches: Arc<Batches<Tallies>>,
    metrics: Arc<Metrics>,
}

/// Owns the flusher thread; [`Pipeline::shutdown`] flushes what is left.
pub struct Pipeline {
    /// Shared with the decision step.
    pub analytics: Arc<Analytics>,
    stop: mpsc::Sender<()>,
    flusher: std::thread::JoinHandle<()>,
}

impl Pipeline {
    /// Starts the flusher for `cfg`, writing into `store`.
    pub fn start(
        cfg: &AnalyticsSection,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Pipeline> {
        let batches = Arc::new(Batches::new(
            ROWS_PER_BATCH.min(cfg.queue_capacity),
            cfg.queue_capacity,
        ));
        let (stop, stopped) = mpsc::channel();
        let flusher = flush::spawn(cfg, batches.clone(), store, metrics.clone(), stopped)?;
        Ok(Pipeline {
            analytics: Arc::new(Analytics { batches, metrics }),
            stop,
            flusher,
        })
    }

    /// Flushes what is pending and stops the flusher. Called once the
    /// server stopped serving, so no click comes after.
    pub fn shutdown(self) {
        // A flusher that already ended has dropped its receiver: nothing
        // to tell it.
        let _ = self.stop.send(());
        if self.flusher.join().is_err() {
            tracing::error!("analytics flusher panicked during shutdown");
        }
    }
}

impl Analytics {
    /// Counts the redirect of `v`: bots and repeat visits too (a repeat
    /// is a click but no new visitor); HEAD requests are no clicks.
    pub fn count(
        &self,
        v: &Visit<'_>,
        click: &ClickId,
        r: &rules::Redirect<'_>,
        class: rules::DeviceClass,
    ) {
        if v.head {
            return;
        }
        let Some((host, path)) = &v.normalized else {
            return;
        };
        // A link is its path: the code of a stored link, the prefix and
        // code of a bulk link (two sets with different prefixes stay
        // apart).
        let (kind, host, name) = match r.code_at {
            Some(_) => (SubjectKind::Link, host.as_ref(), link_name(path)),
            None => (SubjectKind::Rule, "", r.rule),
        };
        let now = click.unix_secs();
        let row = RowRef {
            kind,
            host,
            name,
            hour: now - now.rem_euclid(3600),
            device: class.device.as_str(),
            country: country_code(v.country),
            referrer: v.referer.map(referrer_host).unwrap_or_default(),
            bot: class.bot,
        };
        let visitor = !click.repeat;
        if self.batches.add(|t| t.add(row, visitor)).is_err() {
            self.metrics.analytics.dropped.inc();
        }
    }
}

/// The name a link's counters go by: its normalized path without the
/// leading and trailing `/`.
pub fn link_name(path: &str) -> &str {
    path.strip_prefix('/').unwrap_or(path).trim_end_matches('/')
}

/// An ISO 3166-1 alpha-2 code in upper case; anything else (a CDN's
/// `XX`-style placeholders pass) is unknown, so a client cannot make up
/// countries. Borrowed when the header has it in upper case already.
fn country_code(header: Option<&str>) -> Cow<'_, str> {
    match header.map(str::trim) {
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()) => Cow::Borrowed(c),
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Cow::Owned(c.to_ascii_uppercase())
        }
        _ => Cow::Borrowed(""),
    }
}

/// The host of a `Referer` (`https://news.example.com/a?b` →
/// `news.example.com`), lower-case, without user or port; empty when it
/// has none or it is not a plain DNS name or address. Borrowed from the
/// header unless it had to be lower-cased.
fn referrer_host(referer: &str) -> Cow<'_, str> {
    let Some((_, rest)) = referer.split_once("://") else {
        return Cow::Borrowed("");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = match host_port.strip_prefix('[') {
        // An IPv6 literal keeps its brackets; only the port goes.
        Some(v6) => match v6.split_once(']') {
            Some((addr, _)) if !addr.is_empty() => &host_port[..addr.len() + 2],
            _ => return Cow::Borrowed(""),
        },
        None => host_port.split(':').next().unwrap_or(""),
    };
    let plain = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    if host.is_empty() || host.len() > MAX_HOST || !plain {
        return Cow::Borrowed("");
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrer_hosts() {
        assert_eq!(
            referrer_host("https://News.Example.com/a?b#c"),
            "news.example.com"
        );
        assert_eq!(referrer_host("http://u:p@example.org:8080/"), "example.org");
        assert_eq!(
            referrer_host("android-app://com.google.android.gm/"),
            "com.google.android.gm"
        );
        assert_eq!(referrer_host("http://[2001:db8::1]:80/x"), "[2001:db8::1]");
        assert_eq!(referrer_host("http://[2001:DB8::1]/x"), "[2001:db8::1]");
        assert_eq!(referrer_host("http://[]/x"), "");
        assert_eq!(referrer_host("not a url"), "");
        assert_eq!(referrer_host("https://bad host/"), "");
        assert_eq!(referrer_host("https:///path"), "");
    }

    #[test]
    fn countries() {
        assert_eq!(country_code(Some("de")), "DE");
        assert_eq!(country_code(Some(" US ")), "US");
        assert_eq!(country_code(Some("USA")), "");
        assert_eq!(country_code(Some("1A")), "");
        assert_eq!(country_code(None), "");
    }

    #[test]
    fn link_names() {
        assert_eq!(link_name("/abc"), "abc");
        assert_eq!(link_name("/p/abc/"), "p/abc");
    }
}
