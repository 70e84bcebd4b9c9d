//! Click attribution: a click id on every redirect and one event per
//! consumer click, handed to a bounded queue that never blocks a redirect.
//!
//! The request path does a table lookup (de-duplication) and appends one
//! JSON line to its thread's batch ([`batches`]); a full batch goes onto a
//! bounded queue, and when that is full the event is dropped and counted.
//! A writer thread takes the batches to the sink (files, or an HTTP
//! collector or NATS JetStream with spill to files), and on shutdown
//! writes what is left before the process exits.

mod batches;
mod dedup;
mod event;
mod file_sink;
mod http_sink;
mod nats;
mod spill;
mod writer;

use prometheus::IntCounter;
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{ClicksSection, SinkKind};
use crate::metrics::Metrics;
pub use batches::{Batch, Batches};
pub use dedup::Dedup;
pub use event::{anonymize, Event};
use writer::Lines;

/// Events a request thread collects before it hands them over: few
/// enough that the batch stays in the thread's core cache while it is
/// filled (64 lines are about 30 KB).
const LINES_PER_BATCH: usize = 64;

/// The request side of the pipeline.
pub struct Clicks {
    batches: Arc<Batches<Lines>>,
    dedup: Dedup,
    anonymize_ip: bool,
    metrics: Arc<Metrics>,
    /// `gateway_click_events_total` by [device][bot].
    counters: [[IntCounter; 2]; 3],
}

/// Owns the writer thread; [`Pipeline::shutdown`] drains it.
pub struct Pipeline {
    /// Shared with the proxy services.
    pub clicks: Arc<Clicks>,
    stop: Arc<AtomicBool>,
    writer: std::thread::JoinHandle<()>,
}

impl Pipeline {
    /// Starts the writer thread for `cfg`.
    pub fn start(cfg: &ClicksSection, metrics: Arc<Metrics>) -> anyhow::Result<Pipeline> {
        // Found now, not by losing every event later: a directory the
        // writer cannot create files in stops the start. For `http` and
        // `nats` that is the spill directory, the only place events can
        // wait in.
        match cfg.sink {
            SinkKind::File => file_sink::check_dir(&cfg.dir)?,
            SinkKind::Http | SinkKind::Nats => {
                file_sink::check_dir(&cfg.dir)?;
                file_sink::check_dir(&cfg.dir.join("spill"))?;
            }
        }
        // Never more in one thread's batch than a write takes or the
        // queue may hold.
        // The gauge counts what was handed over, a batch at a time (the
        // writer lowers it once the batch is written): raised per event,
        // its cache line would travel between the request threads and the
        // writer with every click.
        let batches = Arc::new(
            Batches::new(
                LINES_PER_BATCH.min(cfg.batch_size).min(cfg.queue_capacity),
                cfg.queue_capacity,
            )
            .with_depth_gauge(metrics.click_queue_depth.clone()),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let writer = writer::spawn(cfg.clone(), batches.clone(), stop.clone(), metrics.clone())?;
        let counter =
            |device: &str, bot: &str| metrics.click_events.with_label_values(&[device, bot]);
        let counters =
            ["ios", "android", "desktop"].map(|d| [counter(d, "false"), counter(d, "true")]);
        Ok(Pipeline {
            clicks: Arc::new(Clicks {
                batches,
                dedup: Dedup::new(cfg.dedup_window, cfg.dedup_capacity),
                anonymize_ip: cfg.anonymize_ip,
                metrics,
                counters,
            }),
            stop,
            writer,
        })
    }

    /// Writes everything queued, syncs the files and stops the writer.
    /// Called once the server stopped serving, so no event comes after.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::Release);
        if self.writer.join().is_err() {
            tracing::error!("click writer panicked during shutdown");
        }
    }
}

impl Clicks {
    /// Hands an event to the writer without waiting: its line goes into
    /// this thread's batch; a full queue of batches drops it.
    pub fn send(&self, event: &Event<'_>) {
        if self.batches.add(|lines| lines.push(event)).is_err() {
            self.metrics.click_dropped.inc();
        }
    }

    /// Counts a click by device and bot (bots and HEAD produce no event).
    pub fn count(&self, device: rules::Device, bot: bool) {
        let d = match device {
            rules::Device::Ios => 0,
            rules::Device::Android => 1,
            rules::Device::Desktop => 2,
        };
        self.counters[d][usize::from(bot)].inc();
    }
}

/// What a click event needs from the request.
pub struct Visit<'a> {
    /// Client address.
    pub ip: Option<IpAddr>,
    /// `User-Agent`.
    pub user_agent: &'a str,
    /// Host as requested.
    pub host: &'a str,
    /// Path as requested.
    pub path: &'a str,
    /// A HEAD request (no event).
    pub head: bool,
    /// Country code.
    pub country: Option<&'a str>,
    /// `Referer`.
    pub referer: Option<&'a str>,
    /// `X-Request-Id`.
    pub request_id: Option<&'a str>,
    /// Host and path as the rules match them (`RuleSet::normalized`), made
    /// once per visit: one link however it is spelled.
    pub normalized: Option<(Cow<'a, str>, Cow<'a, str>)>,
}

/// The click id given to a visit: a UUIDv7 (time-ordered), written as 32
/// lower-case hex digits (URL-safe). Kept as 128 bits plus its text on the
/// stack, so giving a click an id allocates nothing.
pub struct ClickId {
    key: u64,
    uuid: u128,
    text: [u8; 32],
    /// When the id was given.
    at: ClickTime,
    /// The visitor got this id for this link within the window already.
    pub repeat: bool,
}

/// The one clock read of a request, shared by its decision (expiry), its
/// click id, the de-duplication window and the event's `ts`.
#[derive(Clone, Copy)]
pub struct ClickTime {
    at: SystemTime,
    /// `at` in Unix milliseconds, worked out once.
    ms: u64,
}

impl ClickTime {
    /// Now.
    pub fn now() -> ClickTime {
        let at = SystemTime::now();
        let ms = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        ClickTime { at, ms }
    }

    /// In Unix seconds.
    pub fn unix_secs(&self) -> i64 {
        i64::try_from(self.ms / 1000).unwrap_or(i64::MAX)
    }
}

/// A UUIDv7 for `ms`: that millisecond, then 74 random bits from this
/// thread's generator. `Uuid::now_v7` reads the clock again and takes a
/// process-wide lock for a counter that orders ids within a millisecond;
/// click ids need to be unique, not ordered inside a millisecond.
fn uuid_v7(ms: u64) -> u128 {
    let random: [u8; 10] = rand::random();
    uuid::Builder::from_unix_timestamp_millis(ms, &random)
        .into_uuid()
        .as_u128()
}

impl ClickId {
    fn new(key: u64, uuid: u128, repeat: bool, at: ClickTime) -> ClickId {
        let mut text = [0u8; 32];
        uuid::Uuid::from_u128(uuid).simple().encode_lower(&mut text);
        ClickId {
            key,
            uuid,
            text,
            at,
            repeat,
        }
    }

    /// A new id given `at`, for a redirect when clicks are not recorded.
    pub fn fresh(at: ClickTime) -> ClickId {
        ClickId::new(0, uuid_v7(at.ms), false, at)
    }

    /// When the id was given, in Unix seconds.
    pub fn unix_secs(&self) -> i64 {
        self.at.unix_secs()
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Hex digits only, written by `encode_lower`.
        std::str::from_utf8(&self.text).unwrap_or("")
    }
}

impl Clicks {
    /// The visitor-and-link key of a visit, whose de-duplication bucket
    /// starts on its way into the cache now: [`Clicks::assign`] reads it
    /// once the rules found the link, by when it has arrived.
    pub fn visitor_key(&self, v: &Visit<'_>) -> u64 {
        let (host, path) = match &v.normalized {
            Some((host, path)) => (host.as_ref(), path.as_ref()),
            None => (v.host, v.path),
        };
        let key = self.dedup.key(v.ip, v.user_agent, host, path);
        self.dedup.prefetch(key);
        key
    }

    /// The click id for the visit with `key` ([`Clicks::visitor_key`]),
    /// given `at`: the one the visitor got for this link within the
    /// window, or a new one.
    pub fn assign(&self, key: u64, at: ClickTime) -> ClickId {
        match self.dedup.get(key, at.ms) {
            Some(uuid) => ClickId::new(key, uuid, true, at),
            None => ClickId::new(key, uuid_v7(at.ms), false, at),
        }
    }

    /// Records the click of a redirect by a visitor of `class`: counted,
    /// remembered and queued unless it is a repeat, a HEAD or a bot.
    pub fn record(
        &self,
        v: &Visit<'_>,
        click: &ClickId,
        r: &rules::Redirect<'_>,
        class: rules::DeviceClass,
    ) {
        if v.head || click.repeat {
            return;
        }
        self.count(class.device, class.bot);
        if class.bot {
            return;
        }
        self.dedup.insert(click.key, click.uuid, click.at.ms);
        let code = v.normalized.as_ref().and_then(|(_, path)| r.code(path));
        let client_ip =
            v.ip.map(|ip| if self.anonymize_ip { anonymize(ip) } else { ip });
        self.send(&Event {
            schema: (),
            ts: click.at.at,
            click_id: click.as_str(),
            rule: r.rule,
            code,
            host: v.host,
            path: v.path,
            device: class.device.as_str(),
            country: v.country,
            variant: r.variant,
            destination: r.location.to_str().unwrap_or(""),
            referer: v.referer,
            user_agent: v.user_agent,
            client_ip,
            request_id: v.request_id,
        });
    }
}
