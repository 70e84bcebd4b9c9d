//! `loadtest compare`: the gateway against nginx (and, when asked, the
//! Pingora responder) on the same generated links, one worker each, run
//! alternately with the same load, reporting medians. With `--tls` both
//! get a TLS listener with the same generated certificate and the load
//! goes there (`--scenario fresh`: a new connection, so a handshake, per
//! request). `--scenario proxy`
//! compares proxying instead ([`crate::compare_proxy`]); the steps both
//! share (starting the gateway and nginx, the alternating runs, the
//! report) are here.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::compare_proxy::ProxySetup;
use crate::genlinks;
use crate::load::{self, LoadSpec};
use crate::nginx::{self, NginxConfig, NginxTls};
use crate::procfs;
use crate::report::{median, Summary};
use crate::responder::Engine;
use crate::scenario::{Generator, Params, Scenario};
use crate::servers::{self, free_port, loopback, GatewaySpec, GatewayTls, Proc};
use crate::tls::{self, ClientTls, Crypto, TlsMode};

mod table;

/// Everything `loadtest compare` is told.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// A redirect scenario (hot, spread or zipf), or proxy.
    pub scenario: Scenario,
    /// Number of links.
    pub links: u64,
    /// Runs per server.
    pub pairs: usize,
    /// Length of each run.
    pub duration: Duration,
    /// Connections.
    pub connections: usize,
    /// Open-loop rate, closed-loop when `None`.
    pub rate: Option<f64>,
    /// The gateway binary.
    pub gateway: PathBuf,
    /// Gateway `server.threads`.
    pub gateway_threads: usize,
    /// The nginx binary (found when `None`).
    pub nginx: Option<PathBuf>,
    /// Also measure the responder, with this engine.
    pub responder: Option<Engine>,
    /// The `loadtest` binary (for the responder).
    pub exe: PathBuf,
    /// Where to put links, configs and logs (a temporary directory when
    /// `None`).
    pub workdir: Option<PathBuf>,
    /// Unmeasured load before the first run of each server.
    pub warmup: Duration,
    /// Time one request may take.
    pub timeout: Duration,
    /// Stop each run after this many requests.
    pub max_requests: u64,
    /// Seed.
    pub seed: u64,
    /// TLS listeners with an RSA or ECDSA certificate, the load over TLS.
    pub tls: TlsMode,
    /// With `tls`: session resumption on both servers and in the client.
    pub resume: bool,
    /// With `tls`: the gateway's `tls.crypto`.
    pub crypto: Option<Crypto>,
}

/// One server over all its runs.
#[derive(Clone, Debug, Serialize)]
pub struct ServerResult {
    /// `gateway`, `nginx` or `responder`.
    pub name: String,
    /// Median requests per second.
    pub median_rps: f64,
    /// Median of the runs' p50, µs.
    pub median_p50_us: f64,
    /// Median of the runs' p99, µs.
    pub median_p99_us: f64,
    /// Median resident memory after a run (master + worker for nginx).
    pub rss_kib: u64,
    /// Median proportional set size after a run.
    pub pss_kib: u64,
    /// Median CPU use of one core during a run, %.
    pub median_cpu_pct: f64,
    /// Median requests per server CPU second.
    pub median_requests_per_cpu_s: f64,
    /// Median connections opened per second (TLS: handshakes).
    pub median_conn_per_s: f64,
    /// TLS: share of the handshakes that resumed a session, over all runs,
    /// in %.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_pct: Option<f64>,
    /// Median CPU of the load generator during this server's runs, % of
    /// one core.
    pub median_client_cpu_pct: f64,
    /// Failed requests over all runs.
    pub failed: u64,
    /// Seconds from start to ready (links loaded).
    pub startup_s: f64,
    /// `proxy`: median p50 over the direct run's, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_p50_us: Option<f64>,
    /// `proxy`: median p99 over the direct run's, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_p99_us: Option<f64>,
}

/// The result of `loadtest compare`.
#[derive(Clone, Debug, Serialize)]
pub struct CompareReport {
    /// nproc, CPU model, memory.
    pub machine: serde_json::Value,
    /// Scenario name.
    pub scenario: String,
    /// Links.
    pub links: u64,
    /// Runs per server.
    pub pairs: usize,
    /// Seconds per run.
    pub duration_s: f64,
    /// Connections.
    pub connections: usize,
    /// Open-loop rate.
    pub rate: Option<f64>,
    /// `none`, `rsa` or `ecdsa`.
    pub tls: TlsMode,
    /// TLS session resumption.
    pub resume: bool,
    /// The gateway's `tls.crypto`, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crypto: Option<Crypto>,
    /// Seconds to generate the links, the rules and the nginx map.
    pub generate_s: f64,
    /// Every run, in the order they ran.
    pub runs: Vec<Summary>,
    /// Per server.
    pub servers: Vec<ServerResult>,
    /// Gateway median req/s over nginx median req/s.
    pub rps_ratio_gateway_nginx: f64,
    /// The responder's engine (`front`, `proxy` or `app`), when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responder_engine: Option<&'static str>,
    /// Gateway median req/s over responder median req/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rps_ratio_gateway_responder: Option<f64>,
    /// `proxy`: the upstream and the ratio to the bare Pingora proxy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxySetup>,
}

/// One server under comparison and its runs so far.
pub(crate) struct Contender {
    pub(crate) name: &'static str,
    pub(crate) proc: Proc,
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) startup: Duration,
    pub(crate) runs: Vec<Summary>,
    /// The load speaks TLS to it.
    pub(crate) tls: Option<ClientTls>,
}

impl Contender {
    pub(crate) fn new(
        name: &'static str,
        proc: Proc,
        addr: std::net::SocketAddr,
        startup: Duration,
    ) -> Contender {
        Contender {
            name,
            proc,
            addr,
            startup,
            runs: Vec::new(),
            tls: None,
        }
    }
}

fn check(o: &CompareOptions) -> Result<PathBuf> {
    // nginx first: without it there is nothing to compare.
    let nginx = nginx::find_binary(o.nginx.as_deref())?;
    match o.scenario {
        Scenario::RedirectHot
        | Scenario::RedirectSpread
        | Scenario::RedirectZipf
        | Scenario::Fresh => {}
        Scenario::Proxy if o.responder.is_some() => {
            bail!("--responder is for the redirect scenarios: proxy compares the bare Pingora proxy instead")
        }
        Scenario::Proxy if o.tls.is_tls() => {
            bail!("--tls is for the redirect scenarios and fresh")
        }
        Scenario::Proxy => {}
        _ => {
            bail!("compare supports redirect-hot, redirect-spread, redirect-zipf, fresh and proxy")
        }
    }
    if !o.tls.is_tls() && (o.resume || o.crypto.is_some()) {
        bail!("--resume and --crypto go with --tls rsa|ecdsa");
    }
    if o.tls.is_tls() && o.responder.is_some() {
        bail!("--responder has no TLS listener: leave it out with --tls");
    }
    check_runs(
        o.links,
        ("--pairs", o.pairs, 20),
        o.duration,
        o.connections,
        &o.gateway,
    )?;
    Ok(nginx)
}

/// The limits every alternating comparison checks: links, runs (`--pairs`
/// or `--rounds`, at most `max_runs`), run length, connections, and the
/// gateway binary.
pub(crate) fn check_runs(
    links: u64,
    (runs_flag, runs, max_runs): (&str, usize, usize),
    duration: Duration,
    connections: usize,
    gateway: &Path,
) -> Result<()> {
    if links == 0 || links > genlinks::MAX_LINKS {
        bail!("--links must be between 1 and {}", genlinks::MAX_LINKS);
    }
    if runs == 0 || runs > max_runs {
        bail!("{runs_flag} must be between 1 and {max_runs}");
    }
    if duration.is_zero() || duration > load::MAX_DURATION {
        bail!("--duration must be more than zero and at most 10 minutes");
    }
    if connections == 0 || connections > crate::run::MAX_CONNECTIONS {
        bail!(
            "--connections must be between 1 and {}",
            crate::run::MAX_CONNECTIONS
        );
    }
    if !gateway.is_file() {
        bail!(
            "no gateway binary at {} (build it: cargo build --release -p gateway)",
            gateway.display()
        );
    }
    Ok(())
}

async fn measure(c: &mut Contender, o: &CompareOptions, duration: Duration, label: Option<String>) {
    let params = Params {
        links: o.links,
        host: genlinks::DEFAULT_HOST.into(),
        zipf_s: 1.0,
        seed: o.seed,
        distinct_visitors: false,
    };
    let spec = LoadSpec {
        addr: c.addr,
        connections: o.connections,
        duration,
        rate: o.rate,
        max_requests: o.max_requests,
        timeout: o.timeout,
        tls: c.tls.clone(),
    };
    let cpu_before = c.proc.cpu_seconds();
    let result = load::run(
        &spec,
        Generator::for_run(o.scenario, &params, o.connections),
    )
    .await;
    if let Some(label) = label {
        let mut s = Summary::new(&label, &result);
        s.server = Some(c.proc.usage_since(cpu_before, s.elapsed_s, s.ok));
        c.runs.push(s);
    }
}

fn server_result(c: &Contender) -> ServerResult {
    let f = |g: &dyn Fn(&Summary) -> f64| median(&c.runs.iter().map(g).collect::<Vec<_>>());
    let use_of = |s: &Summary| s.server.unwrap_or_default();
    ServerResult {
        name: c.name.into(),
        median_rps: f(&|s| s.rps),
        median_p50_us: f(&|s| s.latency_us.p50),
        median_p99_us: f(&|s| s.latency_us.p99),
        rss_kib: f(&|s| use_of(s).rss_kib as f64) as u64,
        pss_kib: f(&|s| use_of(s).pss_kib as f64) as u64,
        median_cpu_pct: f(&|s| use_of(s).cpu_pct),
        median_requests_per_cpu_s: f(&|s| use_of(s).requests_per_cpu_s),
        median_conn_per_s: f(&|s| s.conn_per_s),
        resumed_pct: c.tls.as_ref().map(|_| {
            let resumed: u64 = c.runs.iter().filter_map(|s| s.resumed).sum();
            let connects: u64 = c.runs.iter().map(|s| s.connects).sum();
            100.0 * resumed as f64 / connects.max(1) as f64
        }),
        median_client_cpu_pct: f(&|s| s.client_cpu_pct),
        failed: c.runs.iter().map(|s| s.errors.total()).sum(),
        startup_s: c.startup.as_secs_f64(),
        added_p50_us: None,
        added_p99_us: None,
    }
}

/// The directory for links, configs and logs: `--workdir`, or a temporary
/// one named `prefix…` (removed when the returned guard is dropped).
pub(crate) fn workdir(
    given: Option<&Path>,
    prefix: &str,
) -> Result<(Option<tempfile::TempDir>, PathBuf)> {
    match given {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            Ok((None, std::path::absolute(d)?))
        }
        None => {
            let temp = tempfile::Builder::new().prefix(prefix).tempdir()?;
            let path = std::path::absolute(temp.path())?;
            Ok((Some(temp), path))
        }
    }
}

/// Starts the gateway on `rules` (`--gateway-threads`, no watcher, log
/// level `warn`) in `dir/gateway`, with a TLS listener when `tls` is given
/// (then the contender's address is that listener).
pub(crate) async fn start_gateway(
    o: &CompareOptions,
    rules: &Path,
    dir: &Path,
    tls: Option<GatewayTls>,
) -> Result<Contender> {
    eprintln!("starting the gateway ({} thread)", o.gateway_threads);
    let gw = servers::start_gateway(
        &GatewaySpec {
            bin: o.gateway.clone(),
            rules: rules.to_path_buf(),
            threads: o.gateway_threads,
            watch: false,
            token: None,
            dir: dir.join("gateway"),
            log_level: "warn".into(),
            tls,
            env: Vec::new(),
        },
        Duration::from_secs(300),
    )
    .await
    .context("starting the gateway")?;
    let addr = gw.tls_addr.unwrap_or(gw.addr);
    Ok(Contender::new("gateway", gw.proc, addr, gw.startup))
}

/// Starts nginx with `conf` and waits for `probe` to be answered `want`.
pub(crate) async fn start_nginx(
    bin: &Path,
    conf: &Path,
    prefix: &Path,
    addr: std::net::SocketAddr,
    (probe, want): (&[u8], u16),
) -> Result<Contender> {
    eprintln!("starting nginx ({})", bin.display());
    let (proc, startup) = servers::start_nginx(
        bin,
        conf,
        prefix,
        addr,
        probe,
        want,
        Duration::from_secs(300),
    )
    .await
    .context("starting nginx")?;
    Ok(Contender::new("nginx", proc, addr, startup))
}

/// Warms every contender up, then runs them in turn `--pairs` times, the
/// order reversed every round.
pub(crate) async fn alternate(contenders: &mut [Contender], o: &CompareOptions) -> Result<()> {
    for c in contenders.iter_mut() {
        if !o.warmup.is_zero() {
            eprintln!("warming up {}", c.name);
            measure(c, o, o.warmup, None).await;
        }
    }
    let mut order: Vec<usize> = (0..contenders.len()).collect();
    for pair in 0..o.pairs {
        for &i in &order {
            let c = &mut contenders[i];
            if !c.proc.alive() {
                return Err(c.proc.failed("exited during the comparison"));
            }
            eprintln!("run {}/{}: {}", pair + 1, o.pairs, c.name);
            let label = format!("{}#{}", c.name, pair + 1);
            measure(c, o, o.duration, Some(label)).await;
        }
        // Alternate who goes first, so drift on a shared machine does not
        // always favour the same server.
        order.reverse();
    }
    Ok(())
}

/// The median req/s of server `name` (0 when it did not run).
pub(crate) fn rps_of(servers: &[ServerResult], name: &str) -> f64 {
    servers
        .iter()
        .find(|s| s.name == name)
        .map_or(0.0, |s| s.median_rps)
}

/// `a / b`, with no division by zero.
pub(crate) fn ratio(a: f64, b: f64) -> f64 {
    a / b.max(f64::MIN_POSITIVE)
}

/// The report of the runs: every run in the order they ran, medians per
/// contender and the gateway / nginx ratio.
pub(crate) fn report(
    o: &CompareOptions,
    contenders: &[Contender],
    generate_s: f64,
) -> CompareReport {
    let servers: Vec<ServerResult> = contenders.iter().map(server_result).collect();
    let mut runs: Vec<Summary> = contenders.iter().flat_map(|c| c.runs.clone()).collect();
    // Stable: within a round, the contenders' order.
    runs.sort_by_key(|s| {
        let n: usize = s
            .label
            .rsplit('#')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        n
    });
    CompareReport {
        machine: procfs::machine(),
        scenario: o.scenario.name().into(),
        links: o.links,
        pairs: o.pairs,
        duration_s: o.duration.as_secs_f64(),
        connections: o.connections,
        rate: o.rate,
        tls: o.tls,
        resume: o.resume,
        crypto: o.crypto,
        generate_s,
        runs,
        rps_ratio_gateway_nginx: ratio(rps_of(&servers, "gateway"), rps_of(&servers, "nginx")),
        responder_engine: None,
        rps_ratio_gateway_responder: None,
        proxy: None,
        servers,
    }
}

/// `loadtest compare`.
pub async fn compare(o: &CompareOptions) -> Result<CompareReport> {
    let nginx_bin = check(o)?;
    let (_temp, dir) = workdir(o.workdir.as_deref(), "loadtest-compare")?;
    if o.scenario == Scenario::Proxy {
        return crate::compare_proxy::compare(o, &nginx_bin, &dir).await;
    }

    eprintln!("generating {} links in {}", o.links, dir.display());
    let t = Instant::now();
    let csv = dir.join("links.csv");
    let rules = dir.join("rules.toml");
    genlinks::generate(
        o.links,
        &csv,
        Some(&rules),
        genlinks::DEFAULT_HOST,
        genlinks::DEFAULT_UPSTREAM,
    )?;
    let cert = if o.tls.is_tls() {
        eprintln!("making a self-signed {} certificate", o.tls.name());
        Some(tls::generate(
            o.tls,
            genlinks::DEFAULT_HOST,
            &dir.join("tls"),
        )?)
    } else {
        None
    };
    let client_tls = match &cert {
        Some(c) => Some(ClientTls::pinned(
            &c.cert,
            genlinks::DEFAULT_HOST,
            o.resume,
        )?),
        None => None,
    };
    let nginx_port = free_port()?;
    let nginx_conf = NginxConfig {
        listen: loopback(nginx_port),
        prefix: dir.join("nginx"),
        map_file: dir.join("nginx").join("links.map"),
        links: o.links,
        workers: 1,
        tls: match &cert {
            Some(c) => Some(NginxTls {
                listen: loopback(free_port()?),
                cert: c.cert.clone(),
                key: c.key.clone(),
                resume: o.resume,
            }),
            None => None,
        },
    };
    let conf_path = nginx::prepare(&nginx_conf)?;
    let generate_s = t.elapsed().as_secs_f64();

    let gateway_tls = cert.as_ref().map(|c| GatewayTls {
        cert: c.cert.clone(),
        key: c.key.clone(),
        crypto: o.crypto,
    });
    let mut contenders = vec![start_gateway(o, &rules, &dir, gateway_tls).await?];
    let mut ng = start_nginx(
        &nginx_bin,
        &conf_path,
        &nginx_conf.prefix,
        nginx_conf.listen,
        (&servers::hot_request(genlinks::DEFAULT_HOST), 302),
    )
    .await?;
    if let Some(t) = &nginx_conf.tls {
        ng.addr = t.listen;
    }
    contenders.push(ng);
    for c in &mut contenders {
        c.tls = client_tls.clone();
    }
    if let Some(engine) = o.responder {
        eprintln!("starting the responder ({})", engine.name());
        let addr = loopback(free_port()?);
        let t = Instant::now();
        let proc =
            servers::start_responder(&o.exe, addr, 1, engine, &dir.join("responder.log")).await?;
        contenders.push(Contender::new("responder", proc, addr, t.elapsed()));
    }
    same_answers(&contenders, o.links).await?;
    alternate(&mut contenders, o).await?;

    let mut report = report(o, &contenders, generate_s);
    report.responder_engine = o.responder.map(|e| e.name());
    report.rps_ratio_gateway_responder = o.responder.map(|_| {
        ratio(
            rps_of(&report.servers, "gateway"),
            rps_of(&report.servers, "responder"),
        )
    });
    for mut c in contenders {
        c.proc.stop();
    }
    Ok(report)
}

/// One request on a new connection to `c` (over TLS when the load is).
async fn ask(c: &Contender, request: &[u8]) -> Result<crate::client::Answer> {
    let mut conn = crate::client::Conn::new(c.addr).keep_body();
    if let Some(t) = &c.tls {
        conn = conn.tls(t.client()?);
    }
    conn.send(request, Duration::from_secs(5))
        .await
        .map_err(|f| anyhow::anyhow!("{}: {}", c.name, f.detail))
}

/// Checks the gateway and nginx answer a few links identically, so the
/// comparison compares the same work.
async fn same_answers(contenders: &[Contender], links: u64) -> Result<()> {
    let gw = &contenders[0];
    let ng = &contenders[1];
    let n = links.max(1);
    for i in [genlinks::HOT, (n - 1) / 2, n - 1] {
        let req = crate::client::build_request(
            "GET",
            &format!("/{}", genlinks::code(i)),
            genlinks::DEFAULT_HOST,
            &[("Connection", "close")],
            b"",
        );
        let a = ask(gw, &req).await?;
        let b = ask(ng, &req).await?;
        if a.status != 302 || b.status != 302 {
            bail!(
                "link {i}: the gateway answered {} and nginx {} (both should redirect)",
                a.status,
                b.status
            );
        }
    }
    Ok(())
}
