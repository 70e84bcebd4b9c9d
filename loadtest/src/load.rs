//! The load engine: `connections` tasks, each with one keep-alive
//! connection, either closed-loop (the next request as soon as the previous
//! one is answered) or open-loop at a fixed overall rate (see
//! [`crate::schedule`]). Every run stops by itself: at `duration`, or after
//! `max_requests`, whichever comes first.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{Conn, ErrorKind};
use crate::scenario::Generator;
use crate::schedule;
use crate::tls::ClientTls;

/// Longest run the engine accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(600);

/// What to send where.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Server address (loopback).
    pub addr: SocketAddr,
    /// Concurrent connections.
    pub connections: usize,
    /// How long to send.
    pub duration: Duration,
    /// Open-loop rate in requests per second; closed-loop when `None`.
    pub rate: Option<f64>,
    /// Stop after this many requests in total.
    pub max_requests: u64,
    /// Time one request may take (connect included).
    pub timeout: Duration,
    /// Speak TLS (each connection with its own client configuration and
    /// session cache).
    pub tls: Option<ClientTls>,
}

/// A latency histogram in nanoseconds (1 ns to 100 s, 3 significant
/// digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// What one run (or one connection of it) counted.
#[derive(Clone, Debug)]
pub struct Tally {
    /// Latency of answers with the expected status, in nanoseconds.
    pub hist: Histogram<u64>,
    /// Answers with the expected status.
    pub ok: u64,
    /// Failures by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// The first message of each failure kind.
    pub samples: BTreeMap<ErrorKind, String>,
    /// Every status seen.
    pub statuses: BTreeMap<u16, u64>,
    /// Stale keep-alive connections replaced (request resent once).
    pub reconnects: u64,
    /// Connections opened.
    pub connects: u64,
    /// TLS handshakes that resumed a session.
    pub resumed: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            hist: new_histogram(),
            ok: 0,
            errors: BTreeMap::new(),
            samples: BTreeMap::new(),
            statuses: BTreeMap::new(),
            reconnects: 0,
            connects: 0,
            resumed: 0,
        }
    }
}

impl Tally {
    /// Counts a failure.
    pub fn fail(&mut self, kind: ErrorKind, detail: impl FnOnce() -> String) {
        *self.errors.entry(kind).or_default() += 1;
        self.samples.entry(kind).or_insert_with(detail);
    }

    /// Failures of one kind.
    pub fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.errors.get(&kind).copied().unwrap_or(0)
    }

    /// All failures.
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Tally) {
        self.hist.add(&other.hist).expect("same histogram bounds");
        self.ok += other.ok;
        for (k, v) in &other.errors {
            *self.errors.entry(*k).or_default() += v;
        }
        for (k, v) in &other.samples {
            self.samples.entry(*k).or_insert_with(|| v.clone());
        }
        for (k, v) in &other.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        self.reconnects += other.reconnects;
        self.connects += other.connects;
        self.resumed += other.resumed;
    }
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Everything counted.
    pub tally: Tally,
    /// From the start to the last answer.
    pub elapsed: Duration,
    /// CPU seconds this process (the load generator) used during the run.
    pub client_cpu_s: f64,
    /// Whether the connections spoke TLS.
    pub tls: bool,
}

/// Runs the load: one task per generator (one generator per connection).
pub async fn run(spec: &LoadSpec, generators: Vec<Generator>) -> RunResult {
    let duration = spec.duration.min(MAX_DURATION);
    let cpu_before = crate::procfs::cpu_seconds(std::process::id()).unwrap_or(0.0);
    let start = Instant::now();
    let deadline = start + duration;
    let issued = Arc::new(AtomicU64::new(0));
    let conns = generators.len().max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for (id, generator) in generators.into_iter().enumerate() {
        let spec = spec.clone();
        let issued = issued.clone();
        tasks.spawn(connection(
            id, conns, spec, generator, start, deadline, issued,
        ));
    }
    let mut tally = Tally::default();
    let mut last = start;
    while let Some(done) = tasks.join_next().await {
        let (t, end) = done.expect("load task panicked");
        tally.merge(&t);
        last = last.max(end);
    }
    let cpu_after = crate::procfs::cpu_seconds(std::process::id()).unwrap_or(0.0);
    RunResult {
        tally,
        elapsed: last
            .saturating_duration_since(start)
            .max(Duration::from_micros(1)),
        client_cpu_s: (cpu_after - cpu_before).max(0.0),
        tls: spec.tls.is_some(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    id: usize,
    conns: usize,
    spec: LoadSpec,
    mut generator: Generator,
    start: Instant,
    deadline: Instant,
    issued: Arc<AtomicU64>,
) -> (Tally, Instant) {
    let mut tally = Tally::default();
    let mut conn = Conn::new(spec.addr);
    if let Some(tls) = &spec.tls {
        match tls.client() {
            Ok(client) => conn = conn.tls(client),
            Err(e) => {
                tally.fail(ErrorKind::Connect, || format!("TLS client: {e:#}"));
                return (tally, start);
            }
        }
    }
    let mut request = Vec::with_capacity(512);
    let mut previous_done = start;
    let mut last = start;
    for j in 0u64.. {
        let origin = match spec.rate {
            None => {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                now
            }
            Some(rate) => {
                let intended = start + schedule::intended_offset(rate, conns, id, j);
                if intended >= deadline {
                    break;
                }
                if intended > Instant::now() {
                    tokio::time::sleep_until(intended.into()).await;
                }
                schedule::latency_origin(intended, Instant::now(), previous_done)
            }
        };
        if issued.fetch_add(1, Ordering::Relaxed) >= spec.max_requests {
            break;
        }
        let expected = generator.next_request(&mut request);
        let result = conn.send(&request, spec.timeout).await;
        let done = Instant::now();
        previous_done = done;
        last = done;
        match result {
            Ok(answer) => {
                *tally.statuses.entry(answer.status).or_default() += 1;
                if answer.status == expected {
                    tally.ok += 1;
                    let ns = done.saturating_duration_since(origin).as_nanos();
                    tally
                        .hist
                        .saturating_record(ns.min(u128::from(u64::MAX)) as u64);
                } else {
                    tally.fail(ErrorKind::UnexpectedStatus, || {
                        format!("expected {expected}, got {}", answer.status)
                    });
                }
            }
            Err(f) => {
                let kind = f.kind;
                tally.fail(kind, || f.detail);
                if kind == ErrorKind::Connect && spec.rate.is_none() {
                    // Do not spin on a refused port.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    tally.reconnects = conn.reconnects;
    tally.connects = conn.connects;
    tally.resumed = conn.resumed;
    (tally, last)
}
