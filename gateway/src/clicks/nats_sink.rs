//! The NATS sink: one JetStream message per event, the click id as its
//! `Nats-Msg-Id`, so the stream stores a click once however often it is
//! published within the stream's duplicate window. Only acknowledged
//! publishes count as delivered; the rest are retried, spilled and
//! replayed by [`Spilling`], exactly as for the HTTP collector.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::Deserialize;

use super::spill::{Spilling, Transport, Unsent};
use crate::config::{subject_parts, ClicksSection, SubjectPart};
use crate::metrics::Metrics;

/// Publishes events, spilling what JetStream does not acknowledge.
pub type NatsSink = Spilling<NatsPublish>;

/// Why the NATS sink cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The sink's runtime could not be built.
    #[error("cannot start the NATS client runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// `clicks.url` is not a NATS server address.
    #[error("clicks.url `{url}`: {reason}")]
    Url {
        /// The configured URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `clicks.subject` is not a valid template.
    #[error("{0}")]
    Subject(String),
}

/// Publishes batches to JetStream.
pub struct NatsPublish {
    /// The sink's own runtime. The writer is a plain thread (the file and
    /// HTTP sinks block) and async-nats needs tokio. One worker thread, not
    /// a current-thread runtime: the client's connection task (pings,
    /// reconnects, reading acks) must keep running while the writer
    /// sleeps between batches, and a current-thread runtime only runs it
    /// inside `block_on`. Not the proxy's runtimes: a slow or hanging NATS
    /// must never take a request thread.
    rt: tokio::runtime::Runtime,
    client: async_nats::Client,
    url: String,
    publisher: Publisher,
}

/// What a publish needs, apart from the runtime it runs on.
struct Publisher {
    js: jetstream::Context,
    stream: stream::Config,
    /// The stream was found or created (checked again after a
    /// "stream not found").
    stream_ready: bool,
    subject: Vec<SubjectPart>,
    /// The subject when it has no placeholders: made once, shared by
    /// every publish.
    fixed: Option<async_nats::Subject>,
    ack_timeout: Duration,
    max_in_flight: usize,
}

/// The fields of an event line the sink routes by.
#[derive(Deserialize)]
struct Keys<'a> {
    #[serde(borrow)]
    click_id: Cow<'a, str>,
    #[serde(borrow, default)]
    host: Cow<'a, str>,
    #[serde(borrow, default)]
    device: Cow<'a, str>,
}

/// A sink publishing to `cfg.url`, spilling into `cfg.dir/spill`. Does not
/// wait for the server: an unreachable one is an outage like any later.
pub fn new(cfg: &ClicksSection, metrics: Arc<Metrics>) -> Result<NatsSink, NatsError> {
    let url = cfg.url.clone().unwrap_or_default();
    let addrs = url
        .split(',')
        .map(|u| u.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| NatsError::Url {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    let subject = subject_parts(&cfg.subject).map_err(|e| NatsError::Subject(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("click-nats")
        .enable_all()
        .build()?;
    let options = async_nats::ConnectOptions::new()
        .name("gateway-clicks")
        // Connects in the background: the gateway starts (and spills)
        // while NATS is down, and reconnects for as long as it runs.
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(cfg.ack_timeout)
        // At most 2 s between attempts, so spilled events flow soon after
        // NATS returns (the default backs off further).
        .reconnect_delay_callback(|n| Duration::from_millis(100 * n.min(20) as u64));
    let client = rt
        .block_on(options.connect(addrs))
        .map_err(|e| NatsError::Url {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    let js = {
        // The context spawns its ack handler onto the current runtime.
        let _guard = rt.enter();
        jetstream::ContextBuilder::new()
            .timeout(cfg.ack_timeout)
            .max_ack_inflight(cfg.max_in_flight)
            .backpressure_on_inflight(true)
            .build(client.clone())
    };
    let stream = stream::Config {
        name: cfg.stream.clone(),
        subjects: vec![wildcard(&subject)],
        max_age: cfg.max_age,
        duplicate_window: cfg.duplicate_window,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    let publish = NatsPublish {
        rt,
        client,
        url,
        publisher: Publisher {
            js,
            stream,
            stream_ready: false,
            fixed: subject
                .iter()
                .all(|p| matches!(p, SubjectPart::Literal(_)))
                .then(|| async_nats::Subject::from(wildcard(&subject))),
            subject,
            ack_timeout: cfg.ack_timeout,
            max_in_flight: cfg.max_in_flight,
        },
    };
    Ok(Spilling::new(
        publish,
        &cfg.dir,
        cfg.max_file_bytes,
        cfg.batch_size,
        metrics,
    ))
}

/// The routing fields of an event line. A line this gateway wrote has them
/// as plain strings at the top level, found by a search for their keys:
/// parsing every line with serde_json cost over a microsecond an event.
/// Anything else (an escaped value, a line from elsewhere) is parsed.
fn keys_of(line: &str) -> Option<Keys<'_>> {
    // In a JSON string a `"` is escaped, so `,"key":"` only occurs where
    // the key is; a value ends at the next `"` unless it holds an escape.
    fn plain<'a>(line: &'a str, key: &memchr::memmem::Finder<'_>) -> Option<Cow<'a, str>> {
        let start = key.find(line.as_bytes())? + key.needle().len();
        let rest = line.get(start..)?;
        let value = rest.get(..memchr::memchr(b'"', rest.as_bytes())?)?;
        (!value.contains('\\')).then_some(Cow::Borrowed(value))
    }
    static FINDERS: std::sync::OnceLock<[memchr::memmem::Finder<'static>; 3]> =
        std::sync::OnceLock::new();
    let [click_id, host, device] = FINDERS.get_or_init(|| {
        [",\"click_id\":\"", ",\"host\":\"", ",\"device\":\""].map(memchr::memmem::Finder::new)
    });
    let quick = || {
        Some(Keys {
            click_id: plain(line, click_id)?,
            host: plain(line, host)?,
            device: plain(line, device)?,
        })
    };
    quick().or_else(|| serde_json::from_str(line).ok())
}

/// The subjects a stream needs for `parts`: each placeholder a `*`.
fn wildcard(parts: &[SubjectPart]) -> String {
    parts
        .iter()
        .map(|p| match p {
            SubjectPart::Literal(l) => l.as_str(),
            SubjectPart::Host | SubjectPart::Device => "*",
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Appends `value` as one subject token: ASCII letters (lower-cased),
/// digits, `-` and `_` are kept, anything else (dots, wildcards, white
/// space, `:` of a port, non-ASCII) becomes `_`; an empty value is `_`.
fn push_token(out: &mut String, value: &str) {
    let start = out.len();
    out.extend(value.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            c.to_ascii_lowercase()
        } else {
            '_'
        }
    }));
    if out.len() == start {
        out.push('_');
    }
}

impl Publisher {
    /// The subject of an event.
    fn subject_of(&self, keys: Option<&Keys<'_>>) -> async_nats::Subject {
        if let Some(fixed) = &self.fixed {
            return fixed.clone();
        }
        let mut s = String::with_capacity(64);
        for (n, part) in self.subject.iter().enumerate() {
            if n > 0 {
                s.push('.');
            }
            match part {
                SubjectPart::Literal(l) => s.push_str(l),
                SubjectPart::Host => push_token(&mut s, keys.map_or("", |k| &k.host)),
                SubjectPart::Device => push_token(&mut s, keys.map_or("", |k| &k.device)),
            }
        }
        s.into()
    }

    async fn ensure_stream(&mut self) -> Result<(), String> {
        let name = self.stream.name.clone();
        let created = tokio::time::timeout(
            self.ack_timeout,
            self.js.get_or_create_stream(self.stream.clone()),
        )
        .await
        .map_err(|_| format!("stream {name}: no answer in {:?}", self.ack_timeout))?
        .map_err(|e| format!("stream {name}: {e}"))?;
        let info = created.cached_info();
        // An existing stream is used as it is: its retention and subjects
        // are the operator's (the log shows them).
        tracing::info!(
            stream = %name,
            subjects = ?info.config.subjects,
            max_age = ?info.config.max_age,
            duplicate_window = ?info.config.duplicate_window,
            "click stream ready"
        );
        self.stream_ready = true;
        Ok(())
    }

    /// Publishes every line, up to `max_in_flight` awaiting their acks at
    /// once (pipelined: one round trip per batch, not per event).
    async fn publish(&mut self, lines: &[&str]) -> Result<(), Unsent> {
        if !self.stream_ready {
            self.ensure_stream()
                .await
                .map_err(|e| Unsent::all(lines.len(), e))?;
        }
        let mut failed = Failed::default();
        let mut acks = FuturesUnordered::new();
        // The publishes get into the client's buffer by one deadline, not
        // a clock read and timer each; it moves on whenever acks came in.
        let mut deadline = tokio::time::Instant::now() + self.ack_timeout;
        for (i, line) in lines.iter().enumerate() {
            if acks.len() >= self.max_in_flight {
                while acks.len() >= self.max_in_flight {
                    if let Some(done) = acks.next().await {
                        failed.note(done);
                    }
                }
                deadline = tokio::time::Instant::now() + self.ack_timeout;
            }
            let keys = keys_of(line);
            let subject = self.subject_of(keys.as_ref());
            let mut msg =
                PublishMessage::build().payload(Bytes::copy_from_slice(line.trim_end().as_bytes()));
            if let Some(k) = &keys {
                msg = msg.message_id(&*k.click_id);
            }
            // Bounded: with the connection gone the client's send buffer
            // fills and a publish would wait for the reconnect.
            match tokio::time::timeout_at(deadline, self.js.send_publish(subject, msg)).await {
                Ok(Ok(ack)) => acks.push(async move { (i, ack.await) }),
                Ok(Err(e)) => {
                    failed.rest(i..lines.len(), e.to_string());
                    break;
                }
                Err(_) => {
                    failed.rest(i..lines.len(), "publish timed out".into());
                    break;
                }
            }
        }
        while let Some(done) = acks.next().await {
            failed.note(done);
        }
        if failed.stream_missing {
            self.stream_ready = false;
        }
        if failed.lines.is_empty() {
            Ok(())
        } else {
            failed.lines.sort_unstable();
            Err(Unsent {
                lines: failed.lines,
                error: failed.error,
            })
        }
    }
}

/// The publishes of a batch that were not acknowledged.
#[derive(Default)]
struct Failed {
    lines: Vec<usize>,
    error: String,
    stream_missing: bool,
}

type Acked = Result<jetstream::publish::PublishAck, jetstream::context::PublishError>;

impl Failed {
    fn note(&mut self, (i, acked): (usize, Acked)) {
        if let Err(e) = acked {
            if e.kind() == jetstream::context::PublishErrorKind::StreamNotFound {
                self.stream_missing = true;
            }
            self.lines.push(i);
            self.error = e.to_string();
        }
    }

    fn rest(&mut self, lines: std::ops::Range<usize>, error: String) {
        self.lines.extend(lines);
        self.error = error;
    }
}

impl Transport for NatsPublish {
    const SINK: &'static str = "nats";
    const DOWN: &'static str =
        "NATS unreachable or not acknowledging; spilling click events to files";
    const BACK: &'static str = "NATS acknowledges again; delivering spilled click events";

    fn target(&self) -> &str {
        &self.url
    }

    fn send(&mut self, lines: &[&str]) -> Result<(), Unsent> {
        // Known to be down: fail at once instead of filling the client's
        // buffer (it would send those on reconnect; de-duplication would
        // then drop the replayed copies, but memory is better spent on
        // the spill files).
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(Unsent::all(lines.len(), "not connected"));
        }
        self.rt.block_on(self.publisher.publish(lines))
    }

    fn close(&mut self) {
        // Acks were awaited for everything counted; this only hands over
        // what a timed-out publish left in the client's buffer.
        let flush = tokio::time::timeout(Duration::from_secs(1), self.client.flush());
        let _ = self.rt.block_on(flush);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_fields_are_found_in_lines_as_written_and_parsed_otherwise() {
        let line = r#"{"schema":1,"ts":"2026-12-03T02:17:05.123456Z","click_id":"0193a1b2c3d4e5f60718293a4b5c6d7e","rule":"r","code":null,"host":"go.example.com","path":"/x","device":"ios","country":null}"#;
        let k = keys_of(line).unwrap();
        assert_eq!(
            (&*k.click_id, &*k.host, &*k.device),
            ("0193a1b2c3d4e5f60718293a4b5c6d7e", "go.example.com", "ios")
        );
        // An escaped host, and a path that mentions the keys: the parser's
        // answer.
        let line = r#"{"click_id":"c1","path":"/a\",\"host\":\"evil","host":"go.\u0065xample.com","device":"android"}"#;
        let k = keys_of(line).unwrap();
        assert_eq!(
            (&*k.click_id, &*k.host, &*k.device),
            ("c1", "go.example.com", "android")
        );
        assert!(keys_of("not json").is_none());
    }

    #[test]
    fn hosts_become_one_token() {
        let mut s = String::new();
        push_token(&mut s, "Go.Example.com:8443");
        assert_eq!(s, "go_example_com_8443");
        s.clear();
        push_token(&mut s, "");
        assert_eq!(s, "_");
        s.clear();
        push_token(&mut s, "a*b>c d\u{e9}");
        assert_eq!(s, "a_b_c_d_");
    }

    #[test]
    fn stream_subjects_from_the_template() {
        let parts = subject_parts("clicks.<host>.<device>").unwrap();
        assert_eq!(wildcard(&parts), "clicks.*.*");
        assert_eq!(wildcard(&subject_parts("events").unwrap()), "events");
    }

    /// The publish rate of one sink, against the server at
    /// `CLICKS_NATS_BENCH_URL` (e.g. `nats-server -js -sd /tmp/js`):
    /// `CLICKS_NATS_BENCH_URL=nats://127.0.0.1:4222 cargo test -p gateway
    /// --lib publish_rate -- --ignored --nocapture`. Prints, never asserts
    /// a rate.
    #[test]
    #[ignore = "needs a NATS server; prints a measurement"]
    fn publish_rate() {
        const EVENTS: usize = 200_000;
        let url = std::env::var("CLICKS_NATS_BENCH_URL").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = ClicksSection {
            sink: crate::config::SinkKind::Nats,
            url: Some(url),
            dir: dir.path().to_path_buf(),
            stream: "CLICKS_BENCH".into(),
            ..ClicksSection::default()
        };
        let metrics = Metrics::new().unwrap();
        let mut sink = new(&cfg, metrics.clone()).unwrap();
        let ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15";
        let lines: Vec<String> = (0..EVENTS)
            .map(|i| {
                let mut line = String::new();
                super::super::Event {
                    schema: (),
                    ts: std::time::SystemTime::now(),
                    click_id: &format!("{:032x}", uuid::Uuid::now_v7().as_u128() ^ i as u128),
                    rule: "product",
                    code: None,
                    host: "go.example.com",
                    path: "/p/1",
                    device: "ios",
                    country: Some("DE"),
                    variant: None,
                    destination: "https://shop.example.com/products/1?btn_ref=x",
                    referer: None,
                    user_agent: ua,
                    client_ip: Some(std::net::IpAddr::from([203, 0, 113, 0])),
                    request_id: None,
                }
                .write_line(&mut line);
                line
            })
            .collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        // Connected and the stream created before the clock starts.
        while metrics.click_delivered.with_label_values(&["nats"]).get() == 0 {
            sink.deliver(&lines[..1]);
            std::thread::sleep(Duration::from_millis(100));
        }
        let started = std::time::Instant::now();
        for batch in lines[1..].chunks(cfg.batch_size) {
            sink.deliver(batch);
        }
        let took = started.elapsed();
        let delivered = metrics.click_delivered.with_label_values(&["nats"]).get();
        println!(
            "{} events acknowledged in {took:?}: {:.0} events/s (spilled {})",
            EVENTS - 1,
            (EVENTS - 1) as f64 / took.as_secs_f64(),
            metrics.click_spilled.get()
        );
        assert!(delivered >= EVENTS as u64 - 1);
    }
}
