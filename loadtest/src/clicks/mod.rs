//! `loadtest clicks`: what click events cost a redirect. The same gateway
//! binary runs alternately without and with what is measured (events to
//! files or to JetStream against events off; analytics against events to
//! files with the store and no analytics), every request a new visitor on
//! a million links, so each redirect is a new click: started fresh for
//! every run, or (`--resident`) once per arm, the load alternating between
//! the two. Reports the medians of req/s and of the gateway's CPU per
//! request (with JetStream also `nats-server`'s, on the same machine), and
//! what the gateway's metrics say became of the events.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::compare::{check_runs, ratio, workdir};
use crate::genlinks::{self, RulesSpec};
use crate::procfs;
use crate::report::{median, Summary};
use crate::scenario::Scenario;

mod arm;
mod table;

use arm::{visitors, Running};

/// The query parameter carrying the click id in every `Location`, as a
/// shop's attribution would.
const CLICK_ID_PARAM: &str = "btn_ref";

/// The analytics flusher's threads in the gateway: its own, and sqlx's
/// SQLite connection threads (`sqlx-sqlite-worker-N`, cut by the kernel).
/// That name covers the store's reader connections too; with the links
/// in the rules' bulk file they stay idle (the baseline arm shows it).
const FLUSHER_THREADS: &[&str] = &["analytics", "sqlx-sqlite-wor"];

/// The gateway's threads that carry events away from the request threads:
/// the click writer, the NATS publisher's runtime and the analytics
/// flusher's (with SQLite's connection threads, which the store's reader
/// connections share: in the analytics baseline they are not zero). Their
/// CPU is a click's cost too, but on a machine with a core to spare it
/// does not slow a redirect down; what the other threads spend (the
/// request threads, and the admin listener answering the scrapes) does.
const BACKGROUND_THREADS: &[&str] = &["click-writer", "click-nats", "analytics", "sqlx-sqlite-wor"];

/// The admin token of the gateways started here.
const TOKEN: &str = "loadtest-clicks-admin-token-0123456789";

/// What a comparison measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    /// Click events to files (`sink = "file"`) against events off.
    File,
    /// Click events to JetStream (`sink = "nats"`, a `nats-server -js`
    /// started with the gateway) against events off.
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
    /// Start each arm's gateway once and alternate the load between the
    /// two, instead of a gateway started per run: many short runs, both
    /// arms under the same minute's conditions.
    pub resident: bool,
}

/// What the gateway's event counters say: since its start, or (a run's)
/// what they added during the run.
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

impl EventCounts {
    /// What was counted after `earlier`.
    fn since(&self, earlier: &EventCounts) -> EventCounts {
        EventCounts {
            produced: self.produced.saturating_sub(earlier.produced),
            delivered: self.delivered.saturating_sub(earlier.delivered),
            dropped: self.dropped.saturating_sub(earlier.dropped),
            spilled: self.spilled.saturating_sub(earlier.spilled),
            analytics_rows: self.analytics_rows.saturating_sub(earlier.analytics_rows),
            analytics_dropped: self
                .analytics_dropped
                .saturating_sub(earlier.analytics_dropped),
        }
    }
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
    /// Of the gateway's CPU, the background threads' (click writer, NATS
    /// publisher, analytics flusher) per answered request, µs.
    pub background_cpu_us_per_request: f64,
    /// The rest of the gateway's CPU per answered request, µs: its request
    /// threads, and the few others (the admin listener answering the
    /// scrapes, the store's runtime).
    pub other_cpu_us_per_request: f64,
    /// What the gateway's event counters added during the run (the first
    /// run of a gateway: since its start, warm-up included), read once the
    /// events queued were written (or 30 s passed).
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
    /// Median background threads' CPU per request, µs.
    pub median_background_cpu_us: f64,
    /// Median CPU per request of the other threads (the request threads
    /// and the rest), µs.
    pub median_other_cpu_us: f64,
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
    /// Both arms' gateways ran throughout, the load alternating between
    /// them (`--resident`); otherwise a gateway was started per run.
    pub resident: bool,
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
    /// The same for the background threads only: the part of a click's
    /// cost a spare core would take off the request threads.
    pub background_cpu_us_per_click: f64,
    /// The same for the other threads (the request threads and the rest):
    /// the part that slows redirects down. A difference of medians, like
    /// the two above, so the three need not add up exactly.
    pub other_cpu_us_per_click: f64,
}

fn check(o: &ClicksOptions) -> Result<Option<PathBuf>> {
    if !matches!(
        o.scenario,
        Scenario::RedirectSpread | Scenario::RedirectZipf | Scenario::RedirectHot
    ) {
        bail!("clicks supports redirect-spread, redirect-zipf and redirect-hot");
    }
    // Resident rounds are short and cost no start: many of them are what
    // makes their median steady.
    let max_rounds = if o.resident { 200 } else { 20 };
    check_runs(
        o.links,
        ("--rounds", o.rounds, max_rounds),
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
    // Resident: both arms start once (with visitors numbered after every
    // run's) and stay up; otherwise each run starts its own.
    let mut resident = Vec::new();
    if o.resident {
        for arm in 0..2 {
            eprintln!("starting {}", o.measure.arms()[arm]);
            let seed = visitors(o, (2 * o.rounds + arm) as u64);
            let dir = dir.join(format!("arm-{arm}"));
            resident.push(Running::start(o, arm, &rules, dir, nats_bin.as_deref(), seed).await?);
        }
    }
    for round in 0..o.rounds {
        // Alternate who goes first, so drift on a shared machine does not
        // always favour the same arm.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut rps = [0.0; 2];
        for arm in order {
            // Numbers the run: its directory and its visitors.
            let n = (round * 2 + arm) as u64;
            eprintln!(
                "round {}/{}: {}",
                round + 1,
                o.rounds,
                o.measure.arms()[arm]
            );
            let run = match resident.get_mut(arm) {
                Some(running) => running.measure(o, round + 1, visitors(o, n) + 1).await?,
                None => {
                    let dir = dir.join(format!("run-{n}"));
                    let mut running =
                        Running::start(o, arm, &rules, dir, nats_bin.as_deref(), visitors(o, n))
                            .await?;
                    let run = running.measure(o, round + 1, visitors(o, n) + 1).await;
                    // A failed run's logs and events stay for a look.
                    running.stop(run.is_err());
                    run?
                }
            };
            rps[arm] = run.load.rps;
            runs.push(run);
        }
        round_ratios.push(ratio(rps[1], rps[0]));
    }
    for running in resident {
        running.stop(false);
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
        resident: o.resident,
        rps_ratio: ratio(arms[1].median_rps, arms[0].median_rps),
        median_round_ratio: median(&round_ratios),
        round_ratios,
        gateway_cpu_us_per_click: arms[1].median_gateway_cpu_us - arms[0].median_gateway_cpu_us,
        background_cpu_us_per_click: arms[1].median_background_cpu_us
            - arms[0].median_background_cpu_us,
        other_cpu_us_per_click: arms[1].median_other_cpu_us - arms[0].median_other_cpu_us,
        arms,
        runs,
    })
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
        median_background_cpu_us: f(&|r| r.background_cpu_us_per_request),
        median_other_cpu_us: f(&|r| r.other_cpu_us_per_request),
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
