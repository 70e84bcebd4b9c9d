//! The NATS sink: one JetStream message per event, the click id as its
//! `Nats-Msg-Id`, so the stream stores a click once however often it is
//! published within the stream's duplicate window. Only acknowledged
//! publishes count as delivered; the rest are retried, spilled and
//! replayed by [`Spilling`], exactly as for the HTTP collector.
//!
//! Routing an event line to its subject and message is in `route`;
//! publishing a batch and matching the acks to it, in `publish`.

mod publish;
mod route;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};

use super::spill::{Spilling, Transport, Unsent};
use crate::config::{subject_parts, ClicksSection};
use crate::metrics::Metrics;
use publish::Publisher;
use route::{wildcard, Outgoing, Route};

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
    route: Route,
    /// Lent to the publishing task on the runtime (unlocked otherwise).
    publisher: Arc<tokio::sync::Mutex<Publisher>>,
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
        // Building a context spawns async-nats' ack handler onto the
        // current runtime (unused: acks come to the publisher's own
        // subscription), so it must be this one.
        let _guard = rt.enter();
        jetstream::ContextBuilder::new()
            .timeout(cfg.ack_timeout)
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
        client: client.clone(),
        url,
        route: Route::new(subject),
        publisher: Arc::new(tokio::sync::Mutex::new(Publisher::new(
            client,
            js,
            stream,
            cfg.ack_timeout,
            cfg.max_in_flight,
        ))),
    };
    Ok(Spilling::new(
        publish,
        &cfg.dir,
        cfg.max_file_bytes,
        cfg.batch_size,
        metrics,
    ))
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
        let n = lines.len();
        let publisher = self.publisher.clone();
        let batch: Vec<Outgoing> = lines.iter().map(|l| self.route.outgoing(l)).collect();
        // Published from the runtime's own thread, where the client's
        // connection task runs: each publish is a channel send to that
        // task, and from another thread every one of them would wake it.
        let task = self
            .rt
            .spawn(async move { publisher.lock().await.publish(batch).await });
        self.rt
            .block_on(task)
            .unwrap_or_else(|e| Err(Unsent::all(n, format!("publish task failed: {e}"))))
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
