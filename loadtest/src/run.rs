//! `loadtest run`: one scenario against a running server. Most scenarios
//! are one run; `proxy` adds the same load straight to the upstream and
//! reports the latency the gateway adds; `reload` runs steady first, then
//! again while the rules are flipped through the admin API.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::load::{self, LoadSpec, MAX_DURATION};
use crate::plot::{self, Series};
use crate::reload::{self, FlipStats};
use crate::report::{fmt_us, summary_table, Summary};
use crate::scenario::{Generator, Params, Scenario};
use crate::target;
use crate::tls::{self, ClientTls, TlsMode};

/// Most connections a run opens.
pub const MAX_CONNECTIONS: usize = 10_000;

/// Everything `loadtest run` is told.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// `http://127.0.0.1:8080`.
    pub target: String,
    /// The scenario.
    pub scenario: Scenario,
    /// Length of each run.
    pub duration: Duration,
    /// Concurrent connections.
    pub connections: usize,
    /// Open-loop rate (requests per second), closed-loop when `None`.
    pub rate: Option<f64>,
    /// Bulk links N (as given to gen-links).
    pub links: Option<u64>,
    /// Host of the links.
    pub host: String,
    /// Zipf exponent.
    pub zipf_s: f64,
    /// Seed of the request streams.
    pub seed: u64,
    /// Every link request from a different client address.
    pub distinct_visitors: bool,
    /// Time one request may take.
    pub timeout: Duration,
    /// Stop each run after this many requests.
    pub max_requests: u64,
    /// `proxy`: the upstream, for the direct run.
    pub upstream: Option<String>,
    /// `reload`: the admin listener.
    pub admin: Option<String>,
    /// `reload`: the admin token.
    pub token: Option<String>,
    /// `reload`: the rules file the gateway runs (flipped with a variant).
    pub rules: Option<PathBuf>,
    /// `reload`: time between flips.
    pub flip_every: Duration,
    /// Speak TLS to the target, expecting this kind of certificate.
    pub tls: TlsMode,
    /// With `tls`: the server's certificate (PEM), the only one trusted.
    pub tls_cert: Option<PathBuf>,
    /// With `tls`: keep TLS sessions and offer them.
    pub resume: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            target: "http://127.0.0.1:8080".into(),
            scenario: Scenario::RedirectHot,
            duration: Duration::from_secs(10),
            connections: 64,
            rate: None,
            links: None,
            host: crate::genlinks::DEFAULT_HOST.into(),
            zipf_s: 1.0,
            seed: 1,
            distinct_visitors: false,
            timeout: Duration::from_secs(2),
            max_requests: 100_000_000,
            upstream: None,
            admin: None,
            token: None,
            rules: None,
            flip_every: Duration::from_millis(250),
            tls: TlsMode::None,
            tls_cert: None,
            resume: false,
        }
    }
}

/// Latency the gateway adds over the direct run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ProxyDelta {
    /// Added median, µs.
    pub added_p50_us: f64,
    /// Added p99, µs.
    pub added_p99_us: f64,
}

/// Reload run against the steady run.
#[derive(Clone, Debug, Serialize)]
pub struct ReloadReport {
    /// The flips.
    pub flips: FlipStats,
    /// Failed requests in the steady run.
    pub failed_steady: u64,
    /// Failed requests while flipping.
    pub failed_reload: u64,
    /// p99 of the steady run, µs.
    pub p99_steady_us: f64,
    /// p99 while flipping, µs.
    pub p99_reload_us: f64,
}

/// The result of `loadtest run`.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Scenario name.
    pub scenario: String,
    /// Target URL.
    pub target: String,
    /// `closed-loop` or `open-loop`.
    pub mode: String,
    /// Connections.
    pub connections: usize,
    /// Open-loop rate.
    pub rate: Option<f64>,
    /// Seconds per run.
    pub duration_s: f64,
    /// Bulk links N.
    pub links: u64,
    /// `none`, `rsa` or `ecdsa`.
    pub tls: TlsMode,
    /// TLS sessions resumed.
    pub resume: bool,
    /// The runs (one, or two for proxy and reload).
    pub runs: Vec<Summary>,
    /// `proxy` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyDelta>,
    /// `reload` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reload: Option<ReloadReport>,
}

impl RunReport {
    /// The text report.
    pub fn table(&self) -> String {
        let mut out = format!(
            "scenario {} against {}{} ({}, {} connections{}, {:.1}s per run, {} links)\n\n",
            self.scenario,
            self.target,
            match (self.tls.is_tls(), self.resume) {
                (false, _) => String::new(),
                (true, r) => format!(
                    " over TLS ({}{})",
                    self.tls.name(),
                    if r {
                        ", resumption"
                    } else {
                        ", full handshakes"
                    }
                ),
            },
            self.mode,
            self.connections,
            self.rate
                .map(|r| format!(", {r:.0} req/s"))
                .unwrap_or_default(),
            self.duration_s,
            self.links
        );
        out.push_str(&summary_table(&self.runs));
        if let Some(p) = &self.proxy {
            let _ = writeln!(
                out,
                "\nadded by the gateway: p50 {}  p99 {}",
                fmt_us(p.added_p50_us),
                fmt_us(p.added_p99_us)
            );
        }
        if let Some(r) = &self.reload {
            let _ = writeln!(
                out,
                "\nflips: {} ok, {} failed, PUT mean {:.0} ms, max {:.0} ms{}",
                r.flips.ok,
                r.flips.failed,
                r.flips.mean_ms,
                r.flips.max_ms,
                r.flips
                    .first_error
                    .as_ref()
                    .map(|e| format!(" (first failure: {e})"))
                    .unwrap_or_default()
            );
            let _ = writeln!(
                out,
                "failed requests: steady {}, while reloading {}; p99 steady {}, while reloading {}",
                r.failed_steady,
                r.failed_reload,
                fmt_us(r.p99_steady_us),
                fmt_us(r.p99_reload_us)
            );
        }
        out
    }

    /// The percentile plot of every run.
    pub fn svg(&self) -> String {
        let series: Vec<Series<'_>> = self
            .runs
            .iter()
            .map(|s| Series {
                label: &s.label,
                points: &s.curve,
            })
            .collect();
        plot::percentile_svg(
            &format!("{} — latency by percentile", self.scenario),
            &series,
        )
    }
}

fn validate(o: &RunOptions) -> Result<()> {
    if o.connections == 0 || o.connections > MAX_CONNECTIONS {
        bail!("--connections must be between 1 and {MAX_CONNECTIONS}");
    }
    if o.duration.is_zero() || o.duration > MAX_DURATION {
        bail!(
            "--duration must be more than zero and at most {}",
            humantime::format_duration(MAX_DURATION)
        );
    }
    if let Some(r) = o.rate {
        if !(r.is_finite() && r > 0.0) {
            bail!("--rate must be a positive number of requests per second");
        }
    }
    if o.scenario.needs_links() && o.links.is_none() {
        bail!(
            "scenario {} needs --links N (the N given to gen-links)",
            o.scenario.name()
        );
    }
    if o.max_requests == 0 {
        bail!("--max-requests must be at least 1");
    }
    if !o.tls.is_tls() && (o.resume || o.tls_cert.is_some()) {
        bail!("--resume and --tls-cert go with --tls rsa|ecdsa");
    }
    if o.tls.is_tls() && matches!(o.scenario, Scenario::Proxy | Scenario::Reload) {
        bail!("--tls is for the redirect scenarios and fresh");
    }
    Ok(())
}

/// The TLS client of a run: the pinned certificate of `--tls-cert`, whose
/// key must be of the `--tls` kind.
fn client_tls(o: &RunOptions) -> Result<Option<ClientTls>> {
    if !o.tls.is_tls() {
        return Ok(None);
    }
    let cert = o.tls_cert.as_ref().context(
        "--tls needs --tls-cert FILE: the server's certificate (PEM), pinned as the only trusted one",
    )?;
    let client = ClientTls::pinned(cert, &o.host, o.resume)?;
    match tls::key_kind(&client.root) {
        Some(kind) if kind == o.tls => {}
        other => bail!(
            "--tls {} but {} has {} key",
            o.tls.name(),
            cert.display(),
            other.map_or("an unknown", |k| if k == TlsMode::Rsa {
                "an RSA"
            } else {
                "an ECDSA"
            })
        ),
    }
    Ok(Some(client))
}

/// One run of `scenario` against `addr`.
async fn one(
    o: &RunOptions,
    label: &str,
    addr: std::net::SocketAddr,
    tls: Option<ClientTls>,
) -> Summary {
    let params = Params {
        links: o.links.unwrap_or(1),
        host: o.host.clone(),
        zipf_s: o.zipf_s,
        seed: o.seed,
        distinct_visitors: o.distinct_visitors,
    };
    let spec = LoadSpec {
        addr,
        connections: o.connections,
        duration: o.duration,
        rate: o.rate,
        max_requests: o.max_requests,
        timeout: o.timeout,
        tls,
    };
    let generators = Generator::for_run(o.scenario, &params, o.connections);
    Summary::new(label, &load::run(&spec, generators).await)
}

/// `loadtest run`.
pub async fn run(o: &RunOptions) -> Result<RunReport> {
    validate(o)?;
    let addr = target::resolve(&o.target)?;
    let tls = client_tls(o)?;
    let mut report = RunReport {
        scenario: o.scenario.name().into(),
        target: o.target.clone(),
        mode: if o.rate.is_some() {
            "open-loop"
        } else {
            "closed-loop"
        }
        .into(),
        connections: o.connections,
        rate: o.rate,
        duration_s: o.duration.as_secs_f64(),
        links: o.links.unwrap_or(1),
        tls: o.tls,
        resume: o.resume,
        runs: Vec::new(),
        proxy: None,
        reload: None,
    };
    match o.scenario {
        Scenario::Proxy => {
            let upstream = o
                .upstream
                .as_deref()
                .context("scenario proxy needs --upstream http://127.0.0.1:PORT (a `loadtest upstream`, the one the gateway's route uses)")?;
            let up = target::resolve(upstream)?;
            let via = one(o, "via gateway", addr, None).await;
            let direct = one(o, "direct", up, None).await;
            report.proxy = Some(ProxyDelta {
                added_p50_us: via.latency_us.p50 - direct.latency_us.p50,
                added_p99_us: via.latency_us.p99 - direct.latency_us.p99,
            });
            report.runs = vec![via, direct];
        }
        Scenario::Reload => {
            let admin = target::resolve(
                o.admin
                    .as_deref()
                    .context("scenario reload needs --admin http://127.0.0.1:PORT")?,
            )?;
            let token = o
                .token
                .as_deref()
                .context("scenario reload needs --token (the gateway's admin token)")?;
            let rules_path = o.rules.as_ref().context(
                "scenario reload needs --rules FILE: the rules file the gateway runs (it is put back after the run)",
            )?;
            let original = std::fs::read_to_string(rules_path)
                .with_context(|| format!("read {}", rules_path.display()))?;
            reload::check_admin(admin, token).await?;
            let steady = one(o, "steady", addr, None).await;
            let deadline = Instant::now() + o.duration;
            let (during, flips) = tokio::join!(
                one(o, "reloading", addr, None),
                reload::flip_until(admin, token, &original, o.flip_every, deadline)
            );
            report.reload = Some(ReloadReport {
                flips,
                failed_steady: steady.errors.total(),
                failed_reload: during.errors.total(),
                p99_steady_us: steady.latency_us.p99,
                p99_reload_us: during.latency_us.p99,
            });
            report.runs = vec![steady, during];
        }
        _ => {
            let label = o.scenario.name();
            report.runs = vec![one(o, label, addr, tls).await];
        }
    }
    Ok(report)
}
