//! `loadtest clicks`: what click events cost a redirect. The same gateway
//! binary is started fresh for every run, alternately without and with
//! what is measured (events to files or to JetStream against events off;
//! analytics against events to files with the store and no analytics),
//! every request a new visitor on a million links, so each redirect is a
//! new click. Reports the medians of req/s and of the gateway's CPU per
//! request (with JetStream also `nats-server`'s, started fresh per run on
//! the same machine), and what the gateway's metrics say became of the
//! events.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::client::{self, build_request};
use crate::compare::{check_runs, ratio, workdir};
use crate::genlinks::{self, RulesSpec};
use crate::load::{self, LoadSpec};
use crate::procfs;
use crate::report::{median, Summary};
use crate::scenario::{Generator, Params, Scenario};
use crate::servers::{self, free_port, loopback, GatewaySpec, Proc};

mod table;

/// The query parameter carrying the click id in every `Location`, as a
/// shop's attribution would.
const CLICK_ID_PARAM: &str = "btn_ref";

/// The analytics flusher's threads in the gateway: its own, and sqlx's
/// SQLite connection threads (`sqlx-sqlite-worker-N`, cut by the kernel).
/// That name covers the store's reader connections too; with the links
/// in the rules' bulk file they stay idle (the baseline arm shows it).
const FLUSHER_THREADS: &[&str] = &["analytics", "sqlx-sqlite-wor"];

/// The admin token of the gateways started here.
const TOKEN: &str = "loadtest-clicks-admin-token-0123456789";

/// What a comparison measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    /// Click events to files (`sink = "file"`) against events off.
    File,
    /// Click events to JetStream (`sink = "nats"`, a `nats-server -js`
    /// started per run) against events off.
    Nats,
    /// Per-link analytics in an embedded SQLite store against events to
    /// files with the same store and analytics off.
    Analytics,
}

impl Measure {
    /// The names of the baseline and the measured arm.
    pub fn arms(self) -> [&'static str; 2] {
        match self {
            Measure::File => ["off", "file"],
            Measure::Nats => ["off", "nats"],
            Measure::Analytics => ["clicks", "analytics"],
        }
    }
}

/// Everything `loadtest clicks` is told.
#[derive(Clone, Debug)]
pub struct ClicksOptions {
    /// What is measured.
    pub measure: Measure,
    /// redirect-spread (the worst case: every link cold), redirect-zipf or
    /// redirect-hot.
    pub scenario: Scenario,
    /// Number of links.
    pub links: u64,
    /// Rounds: one run of each arm per round, the order alternating.
    pub rounds: usize,
    /// Length of each measured run.
    pub duration: Duration,
    /// Unmeasured load after each start.
    pub warmup: Duration,
    /// Connections.
    pub connections: usize,
    /// The gateway binary.
    pub gateway: PathBuf,
    /// Gateway `server.threads`.
    pub gateway_threads: usize,
    /// The `nats-server` binary (looked up on `PATH` when `None`).
    pub nats_server: Option<PathBuf>,
    /// Where links, configs, logs and events go (a temporary directory
    /// when `None`).
    pub workdir: Option<PathBuf>,
    /// Time one request may take.
    pub timeout: Duration,
    /// Stop each run after this many requests.
    pub max_requests: u64,
    /// Seed; each run adds its number, so no two runs send the same
    /// visitors.
    pub seed: u64,
}

/// What the gateway's metrics say at the end of a run: since its start,
/// so the warm-up's events are in them too.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct EventCounts {
    /// `gateway_click_events_total`.
    pub produced: u64,
    /// `gateway_click_events_delivered_total`, all sinks.
    pub delivered: u64,
    /// `gateway_click_events_dropped_total` (queue full).
    pub dropped: u64,
    /// `gateway_click_events_spilled_total`.
    pub spilled: u64,
    /// `gateway_analytics_rows_written_total`.
    pub analytics_rows: u64,
    /// `gateway_analytics_dropped_total`.
    pub analytics_dropped: u64,
}

/// One measured run.
#[derive(Clone, Debug, Serialize)]
pub struct ClicksRun {
    /// The arm's name and the round, e.g. `file#2`.
    pub label: String,
    /// The arm's name.
    pub arm: &'static str,
    /// The load's summary (req/s, latency, errors).
    pub load: Summary,
    /// The gateway's CPU (user + system) per answered request, µs.
    pub gateway_cpu_us_per_request: f64,
    /// `nats-server`'s CPU per answered request, µs (JetStream arm only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_cpu_us_per_request: Option<f64>,
    /// Of the gateway's CPU, the analytics flusher's threads' (its own
    /// and SQLite's) per answered request, µs (analytics measure only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flusher_cpu_us_per_request: Option<f64>,
    /// The gateway's event counters after the run, once the events queued
    /// were written (or 30 s passed).
    pub events: EventCounts,
}

/// One arm over all its runs.
#[derive(Clone, Debug, Serialize)]
pub struct ArmResult {
    /// `off`, `file`, `nats`, `clicks` or `analytics`.
    pub name: &'static str,
    /// Median req/s.
    pub median_rps: f64,
    /// Median gateway CPU per request, µs.
    pub median_gateway_cpu_us: f64,
    /// Median `nats-server` CPU per request, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_nats_cpu_us: Option<f64>,
    /// Median analytics flusher CPU per request, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_flusher_cpu_us: Option<f64>,
    /// Median p99 latency, µs.
    pub median_p99_us: f64,
    /// Failed requests over all runs.
    pub failed: u64,
    /// Events dropped over all runs (click queue and analytics).
    pub dropped: u64,
    /// Events spilled over all runs.
    pub spilled: u64,
}

/// The result of `loadtest clicks`.
#[derive(Clone, Debug, Serialize)]
pub struct ClicksReport {
    /// nproc, CPU model, memory.
    pub machine: serde_json::Value,
    /// What was measured.
    pub measure: Measure,
    /// Scenario name.
    pub scenario: &'static str,
    /// Links.
    pub links: u64,
    /// Rounds.
    pub rounds: usize,
    /// Seconds per measured run.
    pub duration_s: f64,
    /// Connections.
    pub connections: usize,
    /// Gateway `server.threads`.
    pub gateway_threads: usize,
    /// Every run, in the order they ran.
    pub runs: Vec<ClicksRun>,
    /// The baseline, then the measured arm.
    pub arms: [ArmResult; 2],
    /// Median req/s of the measured arm over the baseline's.
    pub rps_ratio: f64,
    /// The same ratio within each round (measured / baseline), whose
    /// median drifts less on a shared machine.
    pub round_ratios: Vec<f64>,
    /// Median of `round_ratios`.
    pub median_round_ratio: f64,
    /// Median gateway CPU per request, measured arm minus baseline, µs:
    /// what one click costs the gateway.
    pub gateway_cpu_us_per_click: f64,
}

fn check(o: &ClicksOptions) -> Result<Option<PathBuf>> {
    if !matches!(
        o.scenario,
        Scenario::RedirectSpread | Scenario::RedirectZipf | Scenario::RedirectHot
    ) {
        bail!("clicks supports redirect-spread, redirect-zipf and redirect-hot");
    }
    check_runs(
        o.links,
        ("--rounds", o.rounds),
        o.duration,
        o.connections,
        &o.gateway,
    )?;
    if o.measure != Measure::Nats {
        return Ok(None);
    }
    let nats = match &o.nats_server {
        Some(p) => p.clone(),
        None => find_nats_server().context(
            "--measure nats needs nats-server (Debian package nats-server) on PATH or --nats-server",
        )?,
    };
    if !nats.is_file() {
        bail!("no nats-server at {}", nats.display());
    }
    Ok(Some(nats))
}

/// `nats-server` on `PATH`, or where Debian's package puts it.
pub fn find_nats_server() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("nats-server"))
                .find(|p| p.is_file())
        })
        .or_else(|| Some(PathBuf::from("/usr/sbin/nats-server")).filter(|p| p.is_file()))
}

/// `loadtest clicks`.
pub async fn clicks(o: &ClicksOptions) -> Result<ClicksReport> {
    let nats_bin = check(o)?;
    let (_temp, dir) = workdir(o.workdir.as_deref(), "loadtest-clicks")?;
    eprintln!("generating {} links in {}", o.links, dir.display());
    let csv = dir.join("links.csv");
    let rules = dir.join("rules.toml");
    let file = std::fs::File::create(&csv).with_context(|| format!("create {}", csv.display()))?;
    genlinks::write_csv(o.links, std::io::BufWriter::with_capacity(1 << 20, file))?;
    let spec = RulesSpec {
        csv: genlinks::csv_reference(&csv, &rules)?,
        host: genlinks::DEFAULT_HOST.into(),
        upstream: genlinks::DEFAULT_UPSTREAM.into(),
        click_id_param: Some(CLICK_ID_PARAM.into()),
    };
    std::fs::write(&rules, genlinks::rules_toml(&spec))?;

    let mut runs = Vec::new();
    let mut round_ratios = Vec::new();
    for round in 0..o.rounds {
        // Alternate who goes first, so drift on a shared machine does not
        // always favour the same arm.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut rps = [0.0; 2];
        for arm in order {
            let run = run_once(o, (round, arm), &rules, &dir, nats_bin.as_deref()).await?;
            rps[arm] = run.load.rps;
            runs.push(run);
        }
        round_ratios.push(ratio(rps[1], rps[0]));
    }
    let arms = o.measure.arms().map(|name| arm_result(name, &runs));
    Ok(ClicksReport {
        machine: procfs::machine(),
        measure: o.measure,
        scenario: o.scenario.name(),
        links: o.links,
        rounds: o.rounds,
        duration_s: o.duration.as_secs_f64(),
        connections: o.connections,
        gateway_threads: o.gateway_threads,
        rps_ratio: ratio(arms[1].median_rps, arms[0].median_rps),
        median_round_ratio: median(&round_ratios),
        round_ratios,
        gateway_cpu_us_per_click: arms[1].median_gateway_cpu_us - arms[0].median_gateway_cpu_us,
        arms,
        runs,
    })
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

/// Starts the gateway (and `nats-server`) for arm 0 (the baseline) or 1
/// (measured) of a round (from 0), warms it up, measures one run, reads
/// its metrics and stops everything.
async fn run_once(
    o: &ClicksOptions,
    (round, arm): (usize, usize),
    rules: &Path,
    dir: &Path,
    nats_bin: Option<&Path>,
) -> Result<ClicksRun> {
    let (measured, name) = (arm == 1, o.measure.arms()[arm]);
    // Numbers the run: its directory and its visitors' seed.
    let n = (round * 2 + arm) as u64;
    let round = round + 1;
    eprintln!("round {round}/{}: {name}", o.rounds);
    let run_dir = dir.join(format!("run-{n}"));
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    let mut nats = match (measured, nats_bin) {
        (true, Some(bin)) => Some(start_nats(bin, &run_dir).await?),
        _ => None,
    };
    let gw = servers::start_gateway(
        &GatewaySpec {
            bin: o.gateway.clone(),
            rules: rules.to_path_buf(),
            threads: o.gateway_threads,
            watch: false,
            token: Some(TOKEN.into()),
            dir: run_dir.join("gateway"),
            log_level: "warn".into(),
            tls: None,
            env: arm_env(o, measured, &run_dir, nats.as_ref().map(|(_, port)| *port)),
        },
        Duration::from_secs(300),
    )
    .await
    .context("starting the gateway")?;
    let mut proc = gw.proc;
    let params = |seed: u64| Params {
        links: o.links,
        host: genlinks::DEFAULT_HOST.into(),
        zipf_s: 1.0,
        seed,
        distinct_visitors: true,
    };
    let spec = |duration: Duration| LoadSpec {
        addr: gw.addr,
        connections: o.connections,
        duration,
        rate: None,
        max_requests: o.max_requests,
        timeout: o.timeout,
        tls: None,
    };
    // Distinct seeds: the warm-up's visitors must not be the measured
    // run's, or its clicks would be repeats the de-dup table already holds.
    let seed = o.seed.wrapping_mul(1_000_003).wrapping_add(n * 2);
    if !o.warmup.is_zero() {
        load::run(
            &spec(o.warmup),
            Generator::for_run(o.scenario, &params(seed), o.connections),
        )
        .await;
    }
    let cpu = |p: &Option<(Proc, u16)>| p.as_ref().map(|(p, _)| p.cpu_seconds());
    let flusher =
        || (o.measure == Measure::Analytics).then(|| proc.threads_cpu_seconds(FLUSHER_THREADS));
    let (gw_before, nats_before, flusher_before) = (proc.cpu_seconds(), cpu(&nats), flusher());
    let result = load::run(
        &spec(o.duration),
        Generator::for_run(o.scenario, &params(seed + 1), o.connections),
    )
    .await;
    let (gw_after, nats_after, flusher_after) = (proc.cpu_seconds(), cpu(&nats), flusher());
    let load = Summary::new(&format!("{name}#{round}"), &result);
    let per_request = |cpu_s: f64| 1e6 * cpu_s / load.ok.max(1) as f64;
    let want_rows = measured && o.measure == Measure::Analytics;
    let events = match settled(gw.admin, want_rows).await {
        Ok(e) => e,
        Err(e) => {
            proc.stop();
            return Err(e.context(proc.failed("reading /metrics")));
        }
    };
    if !proc.alive() {
        return Err(proc.failed("exited during the run"));
    }
    proc.stop();
    if let Some((p, _)) = nats.as_mut() {
        p.stop();
    }
    let run = ClicksRun {
        label: load.label.clone(),
        arm: name,
        gateway_cpu_us_per_request: per_request(gw_after - gw_before),
        nats_cpu_us_per_request: nats_before.zip(nats_after).map(|(b, a)| per_request(a - b)),
        flusher_cpu_us_per_request: flusher_before
            .zip(flusher_after)
            .map(|(b, a)| per_request(a - b)),
        events,
        load,
    };
    // A measured arm whose events went nowhere measured nothing.
    if measured && o.measure != Measure::Analytics && run.events.delivered + run.events.spilled == 0
    {
        bail!(
            "{name}#{round}: no click event was delivered or spilled (see {})",
            run_dir.join("gateway").join("gateway.log").display()
        );
    }
    if measured && o.measure == Measure::Analytics && run.events.analytics_rows == 0 {
        bail!("{name}#{round}: no analytics row was written");
    }
    let _ = std::fs::remove_dir_all(&run_dir);
    Ok(run)
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
/// dropped and no analytics row waits, with `want_rows` once rows were
/// written (at most 30 s after the load).
async fn settled(admin: std::net::SocketAddr, want_rows: bool) -> Result<EventCounts> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = scrape(admin).await?;
        let e = event_counts(&m);
        let pending = m
            .get("gateway_analytics_pending_rows")
            .copied()
            .unwrap_or(0.0);
        let rows = !want_rows || e.analytics_rows > 0;
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

/// Sums the samples of each metric in Prometheus text.
fn sum_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value {
            *out.entry(line[..name_end].to_string()).or_insert(0.0) += v;
        }
    }
    out
}

fn event_counts(m: &BTreeMap<String, f64>) -> EventCounts {
    let get = |name: &str| m.get(name).copied().unwrap_or(0.0) as u64;
    EventCounts {
        produced: get("gateway_click_events_total"),
        delivered: get("gateway_click_events_delivered_total"),
        dropped: get("gateway_click_events_dropped_total"),
        spilled: get("gateway_click_events_spilled_total"),
        analytics_rows: get("gateway_analytics_rows_written_total"),
        analytics_dropped: get("gateway_analytics_dropped_total"),
    }
}

fn arm_result(name: &'static str, runs: &[ClicksRun]) -> ArmResult {
    let mine: Vec<&ClicksRun> = runs.iter().filter(|r| r.arm == name).collect();
    let f = |g: &dyn Fn(&ClicksRun) -> f64| median(&mine.iter().map(|r| g(r)).collect::<Vec<_>>());
    let some_median = |g: &dyn Fn(&ClicksRun) -> Option<f64>| {
        let v: Vec<f64> = mine.iter().filter_map(|r| g(r)).collect();
        (!v.is_empty()).then(|| median(&v))
    };
    ArmResult {
        name,
        median_rps: f(&|r| r.load.rps),
        median_gateway_cpu_us: f(&|r| r.gateway_cpu_us_per_request),
        median_nats_cpu_us: some_median(&|r| r.nats_cpu_us_per_request),
        median_flusher_cpu_us: some_median(&|r| r.flusher_cpu_us_per_request),
        median_p99_us: f(&|r| r.load.latency_us.p99),
        failed: mine.iter().map(|r| r.load.errors.total()).sum(),
        dropped: mine
            .iter()
            .map(|r| r.events.dropped + r.events.analytics_dropped)
            .sum(),
        spilled: mine.iter().map(|r| r.events.spilled).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_summed_over_labels() {
        let m = sum_metrics(
            "# HELP x y\n# TYPE x counter\n\
             gateway_click_events_delivered_total{sink=\"file\"} 10\n\
             gateway_click_events_delivered_total{sink=\"nats\"} 5\n\
             gateway_click_events_total 15\n\
             gateway_click_queue_depth 0\n",
        );
        let e = event_counts(&m);
        assert_eq!((e.delivered, e.produced, e.spilled), (15, 15, 0));
    }
}
