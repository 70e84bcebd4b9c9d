//! `loadtest api`: load on the Links API — single creates from many
//! clients (closed loop), or at a fixed rate (open loop, to measure what a
//! partner's writes cost the redirects beside them), or bulk creates of
//! many links per call.

use anyhow::{bail, Result};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{build_request, Conn};
use crate::load::new_histogram;

/// How `loadtest api` loads the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiMode {
    /// `POST /api/v1/links`, one link per request.
    Single,
    /// `POST /api/v1/links/bulk`, `batch` links per request.
    Bulk,
}

/// What to run.
pub struct ApiOptions {
    /// The API listener.
    pub addr: SocketAddr,
    /// An API key that may write on `host`.
    pub key: String,
    /// The link domain.
    pub host: String,
    /// Single or bulk.
    pub mode: ApiMode,
    /// Concurrent clients (closed loop) or connections (open loop).
    pub connections: usize,
    /// Open loop: requests per second overall.
    pub rate: Option<f64>,
    /// Links per bulk request.
    pub batch: usize,
    /// How long.
    pub duration: Duration,
    /// A request that takes longer counts as failed.
    pub timeout: Duration,
}

/// What `loadtest api` measured.
#[derive(Debug, Serialize)]
pub struct ApiReport {
    /// Single or bulk.
    pub mode: ApiMode,
    /// Concurrent clients.
    pub connections: usize,
    /// Requests answered 201 (single) or 200 (bulk).
    pub requests_ok: u64,
    /// Links created.
    pub links_created: u64,
    /// Seconds measured.
    pub seconds: f64,
    /// Links created per second.
    pub links_per_second: f64,
    /// Request latency percentiles in microseconds (p50, p90, p99, max).
    pub latency_us: BTreeMap<String, u64>,
    /// Answers by status other than the expected one, and transport
    /// failures (`0`).
    pub failures: BTreeMap<u16, u64>,
}

impl ApiReport {
    /// The report as a few lines.
    pub fn table(&self) -> String {
        let l = |k: &str| self.latency_us.get(k).copied().unwrap_or(0) as f64 / 1000.0;
        format!(
            "api {:?}, {} clients, {:.1} s: {} links created ({:.0} links/s), {} requests ok\n\
             latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\nfailures by status: {:?}\n",
            self.mode,
            self.connections,
            self.seconds,
            self.links_created,
            self.links_per_second,
            self.requests_ok,
            l("p50"),
            l("p90"),
            l("p99"),
            l("max"),
            self.failures
        )
    }
}

/// A body creating `n` links with fresh destinations; codes are generated
/// by the gateway.
fn body(mode: ApiMode, host: &str, n: usize, seq: &AtomicU64) -> Vec<u8> {
    let one = |i: u64| {
        format!(
            r#"{{"host":"{host}","to":"https://shop.example.com/p/{i}?src=load","tags":["load"]}}"#
        )
    };
    match mode {
        ApiMode::Single => one(seq.fetch_add(1, Ordering::Relaxed)).into_bytes(),
        ApiMode::Bulk => {
            let items: Vec<String> = (0..n)
                .map(|_| one(seq.fetch_add(1, Ordering::Relaxed)))
                .collect();
            format!(r#"{{"links":[{}]}}"#, items.join(",")).into_bytes()
        }
    }
}

/// Links a bulk answer says were created.
fn created_in(answer: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(answer)
        .ok()
        .and_then(|v| v.get("created")?.as_u64())
        .unwrap_or(0)
}

#[derive(Default)]
struct Tally {
    ok: u64,
    links: u64,
    failures: BTreeMap<u16, u64>,
}

/// Runs the load and reports.
pub async fn run(o: &ApiOptions) -> Result<ApiReport> {
    if !o.addr.ip().is_loopback() {
        bail!("loadtest only loads loopback addresses");
    }
    let seq = Arc::new(AtomicU64::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64),
    ));
    let (path, expected, per) = match o.mode {
        ApiMode::Single => ("/api/v1/links", 201, 1),
        ApiMode::Bulk => ("/api/v1/links/bulk", 200, o.batch.max(1)),
    };
    let auth = format!("Bearer {}", o.key);
    let started = Instant::now();
    let deadline = started + o.duration;
    // Open loop: client `c` sends at c/rate, (c+n)/rate, ... from the start.
    let interval = o
        .rate
        .map(|r| Duration::from_secs_f64(o.connections as f64 / r.max(0.001)));
    let mut tasks = Vec::new();
    for c in 0..o.connections {
        let (seq, auth, host) = (seq.clone(), auth.clone(), o.host.clone());
        let (addr, mode, timeout) = (o.addr, o.mode, o.timeout);
        let offset = o
            .rate
            .map(|r| Duration::from_secs_f64(c as f64 / r.max(0.001)));
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(addr).keep_body();
            let mut hist: Histogram<u64> = new_histogram();
            let mut tally = Tally::default();
            let mut next = offset.map(|o| started + o);
            for _ in 0..100_000_000u64 {
                let intended = match (next, interval) {
                    (Some(at), Some(every)) => {
                        if at >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(at.into()).await;
                        next = Some(at + every);
                        at
                    }
                    _ => {
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        now
                    }
                };
                let b = body(mode, &host, per, &seq);
                let req = build_request(
                    "POST",
                    path,
                    "api",
                    &[
                        ("Authorization", &auth),
                        ("Content-Type", "application/json"),
                    ],
                    &b,
                );
                match conn.send(&req, timeout).await {
                    Ok(a) if a.status == expected => {
                        tally.ok += 1;
                        tally.links += match mode {
                            ApiMode::Single => 1,
                            ApiMode::Bulk => created_in(&a.body),
                        };
                        let us = intended.elapsed().as_micros() as u64;
                        let _ = hist.record(us.max(1));
                    }
                    Ok(a) => *tally.failures.entry(a.status).or_default() += 1,
                    Err(_) => *tally.failures.entry(0).or_default() += 1,
                }
            }
            (hist, tally)
        }));
    }
    let mut hist = new_histogram();
    let mut total = Tally::default();
    for t in tasks {
        let (h, tally) = t.await?;
        hist.add(&h).ok();
        total.ok += tally.ok;
        total.links += tally.links;
        for (k, v) in tally.failures {
            *total.failures.entry(k).or_default() += v;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut latency_us = BTreeMap::new();
    for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
        latency_us.insert(name.to_string(), hist.value_at_quantile(q));
    }
    latency_us.insert("max".into(), hist.max());
    Ok(ApiReport {
        mode: o.mode,
        connections: o.connections,
        requests_ok: total.ok,
        links_created: total.links,
        seconds,
        links_per_second: total.links as f64 / seconds,
        latency_us,
        failures: total.failures,
    })
}
