//! `loadtest`: load generator, nginx comparison and reference servers for
//! the edge gateway. See `docs/performance.md`.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use loadtest::clicks::{self, ClicksOptions};
use loadtest::compare::{self, CompareOptions};
use loadtest::genlinks;
use loadtest::run::{self, RunOptions};
use loadtest::scenario::Scenario;

#[derive(Parser)]
#[command(name = "loadtest", version, about = "Load tests for the edge gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

/// How the load generator sends, the same for every command that runs
/// load.
#[derive(clap::Args)]
struct Client {
    /// Time one request may take before it counts as a timeout.
    #[arg(long, default_value = "2s", value_parser = duration)]
    timeout: Duration,
    /// Stop each run after this many requests.
    #[arg(long, default_value_t = 100_000_000)]
    max_requests: u64,
    /// Threads of the load generator (1 leaves the other cores to the
    /// server).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
}

#[derive(Subcommand)]
enum Command {
    /// Write N deterministic bulk links (code,to) and a matching rules file.
    GenLinks {
        /// Number of links (1 to 10,000,000).
        n: u64,
        /// The CSV to write.
        out: PathBuf,
        /// Also write a rules file with the link set, a pattern rule and an
        /// API route.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Host of the links and the pattern rule.
        #[arg(long, default_value = genlinks::DEFAULT_HOST)]
        host: String,
        /// Upstream (host:port) of the API route in the rules file.
        #[arg(long, default_value = genlinks::DEFAULT_UPSTREAM)]
        upstream: String,
    },
    /// Load a running server with one scenario.
    Run {
        /// The server, e.g. http://127.0.0.1:8080 (loopback only).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        target: String,
        /// The scenario.
        #[arg(long, value_enum)]
        scenario: Scenario,
        /// Length of each run (at most 10m).
        #[arg(long, default_value = "10s", value_parser = duration)]
        duration: Duration,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Open-loop: this many requests per second overall, latency from
        /// the intended send time. Closed-loop without it.
        #[arg(long)]
        rate: Option<f64>,
        /// Bulk links N, as given to gen-links (spread, zipf, mixed, reload).
        #[arg(long)]
        links: Option<u64>,
        /// Host of the links.
        #[arg(long, default_value = genlinks::DEFAULT_HOST)]
        host: String,
        /// Print JSON on stdout (the table goes to stderr).
        #[arg(long)]
        json: bool,
        /// Write the latency percentile curve as SVG.
        #[arg(long)]
        plot: Option<PathBuf>,
        #[command(flatten)]
        client: Client,
        /// Zipf exponent (redirect-zipf, mixed).
        #[arg(long, default_value_t = 1.0)]
        zipf_s: f64,
        /// Seed of the request streams.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Links: every request from a different client address (a random
        /// `X-Forwarded-For`; the gateway must trust 127.0.0.1 in
        /// `trusted_proxies`), so each one is a new click, the worst case
        /// for click events.
        #[arg(long)]
        distinct_visitors: bool,
        /// proxy: the upstream the gateway forwards to, loaded directly too.
        #[arg(long)]
        upstream: Option<String>,
        /// reload: the gateway's admin listener, e.g. http://127.0.0.1:9901.
        #[arg(long)]
        admin: Option<String>,
        /// reload: the admin bearer token.
        #[arg(long, env = "GATEWAY_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// reload: the rules file the gateway runs (flipped with a variant,
        /// then put back).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// reload: time between two flips.
        #[arg(long, default_value = "250ms", value_parser = duration)]
        flip_every: Duration,
        /// Speak TLS (rustls) to the target, whose certificate has this
        /// kind of key; `none`: plain TCP.
        #[arg(long, value_enum, default_value = "none")]
        tls: loadtest::tls::TlsMode,
        /// With --tls: the server's certificate (PEM), pinned as the only
        /// trusted root (verified for --host).
        #[arg(long)]
        tls_cert: Option<PathBuf>,
        /// With --tls: keep TLS sessions and offer them (rustls' in-memory
        /// session cache); without it every handshake is a full one.
        #[arg(long)]
        resume: bool,
    },
    /// Load the Links API of a running gateway: single or bulk creates,
    /// closed loop (as fast as the clients go) or open loop (`--rate`).
    Api {
        /// The API listener, e.g. http://127.0.0.1:8081 (loopback only).
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        target: String,
        /// An API key that may write on `--host` (`gateway keys create`).
        #[arg(long, env = "GATEWAY_API_KEY", hide_env_values = true)]
        key: String,
        /// The link domain.
        #[arg(long, default_value = "go.example.com")]
        host: String,
        /// single: one link per request; bulk: `--batch` per request.
        #[arg(long, value_enum, default_value = "single")]
        mode: loadtest::api::ApiMode,
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Open loop: requests per second overall.
        #[arg(long)]
        rate: Option<f64>,
        /// Links per bulk request.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Length of the run (at most 10m).
        #[arg(long, default_value = "10s", value_parser = duration)]
        duration: Duration,
        /// Time one request may take before it counts as failed.
        #[arg(long, default_value = "5s", value_parser = duration)]
        timeout: Duration,
        /// Print JSON on stdout (the table goes to stderr).
        #[arg(long)]
        json: bool,
    },
    /// A fast HTTP/1.1 upstream: 200 "ok" to everything, /healthz included.
    Upstream {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9001")]
        listen: SocketAddr,
        /// Runtime threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// A minimal Pingora server answering every request with a fixed 302.
    Responder {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// Worker threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// The Location of every answer.
        #[arg(long, default_value = loadtest::responder::DEFAULT_LOCATION)]
        location: String,
        /// front: the gateway's HTTP/1 fast path; proxy: the HTTP proxy
        /// service; app: a ServeHttp app.
        #[arg(long, value_enum, default_value = "proxy")]
        engine: loadtest::responder::Engine,
        /// One single-threaded runtime per worker thread instead of
        /// Pingora's work-stealing runtime.
        #[arg(long)]
        no_work_stealing: bool,
    },
    /// A bare Pingora proxy to one upstream (the ceiling for API routing):
    /// a `ProxyHttp` that only picks the peer.
    BareProxy {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8091")]
        listen: SocketAddr,
        /// The upstream (host:port, loopback).
        #[arg(long)]
        upstream: SocketAddr,
        /// Worker threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// The gateway against nginx on the same generated links, or (with
    /// `--scenario proxy`) against nginx proxy_pass and the bare Pingora
    /// proxy in front of one upstream, with the upstream itself measured too.
    Compare {
        /// redirect-hot, redirect-spread, redirect-zipf, fresh or proxy.
        #[arg(long, value_enum, default_value = "redirect-spread")]
        scenario: Scenario,
        /// Number of links (default: 1,000,000; 1,000 for proxy, where the
        /// links are only in the gateway's rules file, and for fresh, which
        /// asks for one link).
        #[arg(long)]
        links: Option<u64>,
        /// Runs per server, alternating.
        #[arg(long, default_value_t = 3)]
        pairs: usize,
        /// Length of each run.
        #[arg(long, default_value = "10s", value_parser = duration)]
        duration: Duration,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Open-loop rate (closed-loop without it).
        #[arg(long)]
        rate: Option<f64>,
        /// The gateway binary.
        #[arg(long, default_value = "target/release/gateway")]
        gateway: PathBuf,
        /// Gateway worker threads.
        #[arg(long, default_value_t = 1)]
        gateway_threads: usize,
        /// The nginx binary (default: /usr/sbin/nginx, then PATH).
        #[arg(long)]
        nginx: Option<PathBuf>,
        /// Also measure the fixed-302 responder (the ceiling): `front`
        /// (the gateway's HTTP/1 fast path, the default when no engine is
        /// named), `proxy` (Pingora's proxy pipeline) or `app`.
        #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "front")]
        responder: Option<loadtest::responder::Engine>,
        /// Keep links, configs and logs here (default: a temporary directory).
        #[arg(long)]
        workdir: Option<PathBuf>,
        /// Unmeasured load before each server's first run.
        #[arg(long, default_value = "2s", value_parser = duration)]
        warmup: Duration,
        #[command(flatten)]
        client: Client,
        /// Seed of the request streams.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print JSON on stdout (the table goes to stderr).
        #[arg(long)]
        json: bool,
        /// Write the percentile curves of the last runs as SVG.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Give both servers a TLS listener with the same self-signed RSA
        /// or ECDSA certificate (made with openssl) and send the load there.
        #[arg(long, value_enum, default_value = "none")]
        tls: loadtest::tls::TlsMode,
        /// With --tls: session resumption on both servers (nginx: a shared
        /// session cache and tickets) and in the client; without it, every
        /// handshake is a full one (nginx: no cache, no tickets; the client
        /// offers no session).
        #[arg(long)]
        resume: bool,
        /// With --tls: the gateway's tls.crypto (its default: aws-lc-rs).
        #[arg(long, value_enum)]
        crypto: Option<loadtest::tls::Crypto>,
    },
    /// What click events cost: the gateway alternately without and with
    /// events (to files or JetStream) or analytics, every request a new
    /// visitor, started fresh for every run or (--resident) once per arm;
    /// medians of req/s and of the gateway's CPU per request.
    Clicks {
        /// file: events to files against events off; nats: events to
        /// JetStream (a nats-server started with the gateway) against events off;
        /// analytics: per-link counters in an embedded SQLite store against
        /// events to files with the store and analytics off.
        #[arg(long, value_enum, default_value = "file")]
        measure: loadtest::clicks::Measure,
        /// redirect-spread, redirect-zipf or redirect-hot.
        #[arg(long, value_enum, default_value = "redirect-spread")]
        scenario: Scenario,
        /// Number of links.
        #[arg(long, default_value_t = 1_000_000)]
        links: u64,
        /// Rounds: one run of each arm per round, the order alternating (at
        /// most 20; 200 with --resident).
        #[arg(long, default_value_t = 4)]
        rounds: usize,
        /// Length of each measured run.
        #[arg(long, default_value = "6s", value_parser = duration)]
        duration: Duration,
        /// Unmeasured load after each start.
        #[arg(long, default_value = "2s", value_parser = duration)]
        warmup: Duration,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// The gateway binary.
        #[arg(long, default_value = "target/release/gateway")]
        gateway: PathBuf,
        /// Gateway worker threads.
        #[arg(long, default_value_t = 1)]
        gateway_threads: usize,
        /// The nats-server binary (default: PATH).
        #[arg(long)]
        nats_server: Option<PathBuf>,
        /// Keep links, configs and logs here (default: a temporary directory).
        #[arg(long)]
        workdir: Option<PathBuf>,
        #[command(flatten)]
        client: Client,
        /// Seed of the visitors (each run adds its number).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Start each arm's gateway once and alternate the load between
        /// the two (many short rounds: both arms see the same minute of a
        /// shared machine) instead of a gateway per run.
        #[arg(long)]
        resident: bool,
        /// Print JSON on stdout (the table goes to stderr).
        #[arg(long)]
        json: bool,
    },
}

/// Prints a report: the table, or (with `--json`) the JSON on stdout and
/// the table on stderr, so a saved JSON still shows it.
fn print_report(json: bool, table: &str, report: &impl serde::Serialize) -> Result<()> {
    if json {
        eprint!("{table}");
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{table}");
    }
    Ok(())
}

fn write_plot(path: &Option<PathBuf>, svg: impl FnOnce() -> String) -> Result<()> {
    if let Some(p) = path {
        std::fs::write(p, svg()).with_context(|| format!("write {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> Result<()> {
    match Cli::parse().command {
        Command::GenLinks {
            n,
            out,
            rules,
            host,
            upstream,
        } => {
            genlinks::generate(n, &out, rules.as_deref(), &host, &upstream)?;
            eprintln!(
                "wrote {n} links to {}{}",
                out.display(),
                rules
                    .map(|r| format!(" and rules to {}", r.display()))
                    .unwrap_or_default()
            );
            Ok(())
        }
        Command::Run {
            target,
            scenario,
            duration,
            connections,
            rate,
            links,
            host,
            json,
            plot,
            client,
            zipf_s,
            seed,
            distinct_visitors,
            upstream,
            admin,
            token,
            rules,
            flip_every,
            tls,
            tls_cert,
            resume,
        } => {
            let o = RunOptions {
                tls,
                tls_cert,
                resume,
                distinct_visitors,
                target,
                scenario,
                duration,
                connections,
                rate,
                links,
                host,
                zipf_s,
                seed,
                timeout: client.timeout,
                max_requests: client.max_requests,
                upstream,
                admin,
                token,
                rules,
                flip_every,
            };
            let report = loadtest::runtime(client.client_threads)?.block_on(run::run(&o))?;
            print_report(json, &report.table(), &report)?;
            write_plot(&plot, || report.svg())
        }
        Command::Upstream { listen, threads } => loadtest::upstream::run(listen, threads),
        Command::Responder {
            listen,
            threads,
            location,
            engine,
            no_work_stealing,
        } => loadtest::responder::run(&loadtest::responder::ResponderOptions {
            listen,
            threads,
            location,
            engine,
            work_stealing: !no_work_stealing,
        }),
        Command::BareProxy {
            listen,
            upstream,
            threads,
        } => {
            if !upstream.ip().is_loopback() {
                anyhow::bail!("--upstream must be a loopback address");
            }
            loadtest::bare_proxy::run(&loadtest::bare_proxy::BareProxyOptions {
                listen,
                upstream,
                threads,
            })
        }
        Command::Api {
            target,
            key,
            host,
            mode,
            connections,
            rate,
            batch,
            duration,
            timeout,
            json,
        } => {
            if duration > Duration::from_secs(600) {
                anyhow::bail!("--duration is at most 10m");
            }
            let addr = loadtest::target::resolve(&target)?;
            let o = loadtest::api::ApiOptions {
                addr,
                key,
                host,
                mode,
                connections: connections.max(1),
                rate,
                batch,
                duration,
                timeout,
            };
            let report = loadtest::runtime(1)?.block_on(loadtest::api::run(&o))?;
            print_report(json, &report.table(), &report)
        }
        Command::Compare {
            scenario,
            links,
            pairs,
            duration,
            connections,
            rate,
            gateway,
            gateway_threads,
            nginx,
            responder,
            workdir,
            warmup,
            client,
            seed,
            json,
            plot,
            tls,
            resume,
            crypto,
        } => {
            let links = links.unwrap_or(if matches!(scenario, Scenario::Proxy | Scenario::Fresh) {
                1000
            } else {
                1_000_000
            });
            let o = CompareOptions {
                scenario,
                links,
                pairs,
                duration,
                connections,
                rate,
                gateway,
                gateway_threads,
                nginx,
                responder,
                exe: std::env::current_exe()?,
                workdir,
                warmup,
                timeout: client.timeout,
                max_requests: client.max_requests,
                seed,
                tls,
                resume,
                crypto,
            };
            let report =
                loadtest::runtime(client.client_threads)?.block_on(compare::compare(&o))?;
            print_report(json, &report.table(), &report)?;
            write_plot(&plot, || report.svg())
        }
        Command::Clicks {
            measure,
            scenario,
            links,
            rounds,
            duration,
            warmup,
            connections,
            gateway,
            gateway_threads,
            nats_server,
            workdir,
            client,
            seed,
            resident,
            json,
        } => {
            let o = ClicksOptions {
                measure,
                scenario,
                links,
                rounds,
                duration,
                warmup,
                connections,
                gateway,
                gateway_threads,
                nats_server,
                workdir,
                timeout: client.timeout,
                max_requests: client.max_requests,
                seed,
                resident,
            };
            let report = loadtest::runtime(client.client_threads)?.block_on(clicks::clicks(&o))?;
            print_report(json, &report.table(), &report)
        }
    }
}
