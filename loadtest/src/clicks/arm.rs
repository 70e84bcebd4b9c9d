//! One arm of `loadtest clicks` while it runs: its gateway (and, for
//! JetStream, its `nats-server`), started and warmed up, measured one run
//! at a time, then stopped.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{event_counts, sum_metrics, ClicksOptions, ClicksRun, EventCounts, Measure};
use super::{BACKGROUND_THREADS, FLUSHER_THREADS, TOKEN};
use crate::client::{self, build_request};
use crate::genlinks;
use crate::load::{self, LoadSpec};
use crate::procfs::threads_cpu_since;
use crate::report::Summary;
use crate::scenario::{Generator, Params};
use crate::servers::{self, free_port, loopback, GatewaySpec, Proc};

/// An arm's processes, started and warmed up.
pub(super) struct Running {
    /// 0: the baseline; 1: what is measured.
    arm: usize,
    gateway: Proc,
    addr: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    nats: Option<(Proc, u16)>,
    dir: PathBuf,
    /// The event counters at the end of the last measured run: each run
    /// reports what it added (the first also the warm-up's).
    counted: EventCounts,
}

/// The seed of a run's visitors: distinct for every run and warm-up, so
/// no run's clicks are repeats the de-dup table already holds.
pub(super) fn visitors(o: &ClicksOptions, n: u64) -> u64 {
    o.seed.wrapping_mul(1_000_003).wrapping_add(n * 2)
}

impl Running {
    /// Starts arm 0 (the baseline) or 1 (measured) under `dir`, and loads
    /// it for `o.warmup` with the visitors of `seed`.
    pub(super) async fn start(
        o: &ClicksOptions,
        arm: usize,
        rules: &Path,
        dir: PathBuf,
        nats_bin: Option<&Path>,
        seed: u64,
    ) -> Result<Running> {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let measured = arm == 1;
        let nats = match (measured, nats_bin) {
            (true, Some(bin)) => Some(start_nats(bin, &dir).await?),
            _ => None,
        };
        // A `nats-server` already started stops when dropped.
        let gw = servers::start_gateway(
            &GatewaySpec {
                bin: o.gateway.clone(),
                rules: rules.to_path_buf(),
                threads: o.gateway_threads,
                watch: false,
                token: Some(TOKEN.into()),
                dir: dir.join("gateway"),
                log_level: "warn".into(),
                tls: None,
                env: arm_env(o, measured, &dir, nats.as_ref().map(|(_, port)| *port)),
            },
            Duration::from_secs(300),
        )
        .await
        .context("starting the gateway")?;
        let running = Running {
            arm,
            gateway: gw.proc,
            addr: gw.addr,
            admin: gw.admin,
            nats,
            dir,
            counted: EventCounts::default(),
        };
        if !o.warmup.is_zero() {
            load::run(
                &running.spec(o, o.warmup),
                Generator::for_run(o.scenario, &params(o, seed), o.connections),
            )
            .await;
        }
        Ok(running)
    }

    fn spec(&self, o: &ClicksOptions, duration: Duration) -> LoadSpec {
        LoadSpec {
            addr: self.addr,
            connections: o.connections,
            duration,
            rate: None,
            max_requests: o.max_requests,
            timeout: o.timeout,
            tls: None,
        }
    }

    /// One measured run of `o.duration` with the visitors of `seed`,
    /// labelled `<arm>#<round>`: its load, the CPU each process spent on
    /// it, and what became of the events it made.
    pub(super) async fn measure(
        &mut self,
        o: &ClicksOptions,
        round: usize,
        seed: u64,
    ) -> Result<ClicksRun> {
        let (measured, name) = (self.arm == 1, o.measure.arms()[self.arm]);
        let nats_cpu = |n: &Option<(Proc, u16)>| n.as_ref().map(|(p, _)| p.cpu_seconds());
        let analytics = o.measure == Measure::Analytics;
        let flusher = |g: &Proc| analytics.then(|| g.threads_cpu(FLUSHER_THREADS));
        let before = (
            self.gateway.cpu_seconds(),
            nats_cpu(&self.nats),
            flusher(&self.gateway),
            self.gateway.threads_cpu(BACKGROUND_THREADS),
        );
        let result = load::run(
            &self.spec(o, o.duration),
            Generator::for_run(o.scenario, &params(o, seed), o.connections),
        )
        .await;
        let rows_after = (measured && analytics).then_some(self.counted.analytics_rows);
        let total = settled(self.admin, rows_after)
            .await
            .map_err(|e| e.context(self.gateway.failed("reading /metrics")))?;
        if !self.gateway.alive() {
            return Err(self.gateway.failed("exited during the run"));
        }
        // Read once the run's events are written: what the run left
        // queued (a last flush, the last batch of lines) is its cost too.
        // The wait itself costs next to nothing (idle threads, a scrape
        // every 100 ms).
        let after = (
            self.gateway.cpu_seconds(),
            nats_cpu(&self.nats),
            flusher(&self.gateway),
            self.gateway.threads_cpu(BACKGROUND_THREADS),
        );
        // Events on and no click writer found: the gateway's thread names
        // changed, and the whole cost would pass for the request threads'.
        if name != "off" && self.gateway.threads_cpu(&["click-writer"]).is_empty() {
            bail!(
                "{name}: the gateway has no thread named click-writer; \
                 loadtest's BACKGROUND_THREADS must follow the gateway's thread names"
            );
        }
        let load = Summary::new(&format!("{name}#{round}"), &result);
        let per_request = |cpu_s: f64| 1e6 * cpu_s / load.ok.max(1) as f64;
        let (gateway_cpu, background_cpu) = (
            per_request(after.0 - before.0),
            per_request(threads_cpu_since(&before.3, &after.3)),
        );
        let events = total.since(&self.counted);
        self.counted = total;
        let run = ClicksRun {
            label: load.label.clone(),
            arm: name,
            gateway_cpu_us_per_request: gateway_cpu,
            nats_cpu_us_per_request: before.1.zip(after.1).map(|(b, a)| per_request(a - b)),
            flusher_cpu_us_per_request: before
                .2
                .zip(after.2)
                .map(|(b, a)| per_request(threads_cpu_since(&b, &a))),
            background_cpu_us_per_request: background_cpu,
            other_cpu_us_per_request: gateway_cpu - background_cpu,
            events,
            load,
        };
        // A measured arm whose events went nowhere measured nothing.
        if measured && !analytics && run.events.delivered + run.events.spilled == 0 {
            bail!(
                "{}: no click event was delivered or spilled (see {})",
                run.label,
                self.dir.join("gateway").join("gateway.log").display()
            );
        }
        if measured && analytics && run.events.analytics_rows == 0 {
            bail!("{}: no analytics row was written", run.label);
        }
        Ok(run)
    }

    /// Stops the processes; `keep` leaves their directory (logs, events)
    /// in place.
    pub(super) fn stop(mut self, keep: bool) {
        self.gateway.stop();
        if let Some((p, _)) = self.nats.as_mut() {
            p.stop();
        }
        if !keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The load's links and visitors (every request a new one).
fn params(o: &ClicksOptions, seed: u64) -> Params {
    Params {
        links: o.links,
        host: genlinks::DEFAULT_HOST.into(),
        zipf_s: 1.0,
        seed,
        distinct_visitors: true,
    }
}

/// The `GATEWAY_*` settings of an arm: events under `run_dir`.
fn arm_env(
    o: &ClicksOptions,
    measured: bool,
    run_dir: &Path,
    nats: Option<u16>,
) -> Vec<(String, String)> {
    let mut env = vec![
        // The load sends every visitor's address in X-Forwarded-For.
        ("GATEWAY_SERVER_TRUSTED_PROXIES", "127.0.0.1/32".to_string()),
        (
            "GATEWAY_CLICKS_DIR",
            run_dir.join("clicks").display().to_string(),
        ),
    ];
    let on = if measured || o.measure == Measure::Analytics {
        "true"
    } else {
        "false"
    };
    env.push(("GATEWAY_CLICKS_ENABLED", on.into()));
    match o.measure {
        Measure::File => {}
        Measure::Nats => {
            if let Some(port) = nats {
                env.push(("GATEWAY_CLICKS_SINK", "nats".into()));
                env.push(("GATEWAY_CLICKS_URL", format!("nats://127.0.0.1:{port}")));
            }
        }
        Measure::Analytics => {
            let db = run_dir.join("store.db");
            env.push(("GATEWAY_STORE_URL", format!("sqlite://{}", db.display())));
            env.push(("GATEWAY_ANALYTICS_ENABLED", measured.to_string()));
        }
    }
    env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Starts `nats-server -js` on a free loopback port with its store under
/// `run_dir`, and waits until it accepts connections.
async fn start_nats(bin: &Path, run_dir: &Path) -> Result<(Proc, u16)> {
    let port = free_port()?;
    let store = run_dir.join("jetstream");
    let mut cmd = Command::new(bin);
    cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&store);
    let mut proc = Proc::spawn(
        cmd,
        "nats-server",
        Some(&run_dir.join("nats.log")),
        libc::SIGKILL,
    )?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if !proc.alive() {
            return Err(proc.failed("exited before it was ready"));
        }
        if tokio::net::TcpStream::connect(loopback(port)).await.is_ok() {
            return Ok((proc, port));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(proc.failed("not accepting connections within 20s"))
}

/// The event counters once every event produced is delivered, spilled or
/// dropped and no analytics row waits, with `rows_after` (when given) once
/// more rows than that were written (at most 30 s after the load).
async fn settled(admin: std::net::SocketAddr, rows_after: Option<u64>) -> Result<EventCounts> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = scrape(admin).await?;
        let e = event_counts(&m);
        let pending = m
            .get("gateway_analytics_pending_rows")
            .copied()
            .unwrap_or(0.0);
        let rows = rows_after.is_none_or(|n| e.analytics_rows > n);
        if (e.produced <= e.delivered + e.spilled + e.dropped && pending == 0.0 && rows)
            || Instant::now() > deadline
        {
            return Ok(e);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The gateway's metrics, each name's samples summed over their labels.
async fn scrape(admin: std::net::SocketAddr) -> Result<BTreeMap<String, f64>> {
    let auth = format!("Bearer {TOKEN}");
    let req = build_request(
        "GET",
        "/metrics",
        "admin",
        &[("Authorization", &auth), ("Connection", "close")],
        b"",
    );
    let a = client::oneshot(admin, &req, Duration::from_secs(10))
        .await
        .map_err(|f| anyhow::anyhow!("GET /metrics: {}", f.detail))?;
    if a.status != 200 {
        bail!("GET /metrics answered {}", a.status);
    }
    Ok(sum_metrics(&String::from_utf8_lossy(&a.body)))
}
