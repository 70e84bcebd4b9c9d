//! `loadtest compare --scenario proxy`: the gateway's API routing against
//! nginx `proxy_pass` and the bare Pingora proxy (`loadtest bare-proxy`),
//! all three forwarding to the same `loadtest upstream`, plus the same
//! requests straight to that upstream ("direct"), so the report can say how
//! much latency each proxy adds. The four run alternately like the redirect
//! comparison ([`crate::compare`]).
//!
//! Every proxy gets one worker (the gateway `--gateway-threads`, 1 by
//! default; nginx one worker process; the bare proxy one thread). The
//! upstream runs on one thread too: on the 2-core machine of
//! docs/performance.md it answers about 270,000 req/s straight from the
//! load generator, several times what any proxy in front of it makes, and a
//! second thread made it slower (about 250,000 req/s), the client and the
//! upstream then fighting over the same two cores. The direct row shows
//! the upstream's own rate in every report, so a report where the upstream
//! would be the bottleneck says so.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::client::{self, build_request};
use crate::compare::{self, ratio, rps_of, CompareOptions, CompareReport, Contender};
use crate::genlinks;
use crate::nginx::{self, NginxProxyConfig};
use crate::servers::{self, free_port, loopback};
use crate::upstream;

/// Runtime threads of the upstream (see the module docs).
pub const UPSTREAM_THREADS: usize = 1;
/// Worker threads of the bare Pingora proxy.
pub const BARE_PROXY_THREADS: usize = 1;
/// Idle upstream connections nginx keeps (`keepalive`): as many as the
/// load generator's default connections, so no request waits for a
/// connect once warmed up.
pub const NGINX_KEEPALIVE: usize = 64;
/// Name of the run straight to the upstream.
pub const DIRECT: &str = "direct";
/// Name of the bare Pingora proxy.
pub const BARE_PROXY: &str = "bare-proxy";

/// What `compare --scenario proxy` adds to the report.
#[derive(Clone, Debug, Serialize)]
pub struct ProxySetup {
    /// The upstream every proxy forwards to.
    pub upstream: String,
    /// Its runtime threads.
    pub upstream_threads: usize,
    /// Gateway median req/s over the bare Pingora proxy's.
    pub rps_ratio_gateway_bare_proxy: f64,
}

impl ProxySetup {
    /// The lines under the report's table.
    pub fn lines(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "gateway / bare-proxy req/s: {:.3}",
            self.rps_ratio_gateway_bare_proxy
        );
        let _ = writeln!(
            out,
            "upstream: loadtest upstream on {} ({} thread); added = the proxy's median minus direct's",
            self.upstream, self.upstream_threads
        );
        out
    }
}

/// The request every contender is checked with before the runs: what the
/// `proxy` scenario sends, on a connection that closes after.
fn api_request() -> Vec<u8> {
    build_request(
        "GET",
        "/api/item/1",
        genlinks::API_HOST,
        &[("Connection", "close")],
        b"",
    )
}

/// `loadtest compare --scenario proxy`, in `dir`, once the options are
/// checked.
pub(crate) async fn compare(
    o: &CompareOptions,
    nginx_bin: &Path,
    dir: &Path,
) -> Result<CompareReport> {
    let upstream_addr = loopback(free_port()?);
    eprintln!("starting the upstream on {upstream_addr} ({UPSTREAM_THREADS} thread)");
    let t = Instant::now();
    let upstream_proc = servers::start_upstream(
        &o.exe,
        upstream_addr,
        UPSTREAM_THREADS,
        &dir.join("upstream.log"),
    )
    .await
    .context("starting the upstream")?;
    let direct = Contender::new(DIRECT, upstream_proc, upstream_addr, t.elapsed());

    // The gateway's generated rules route api.example.com/api/ to
    // [upstream.bench], here the upstream above; the links are only there
    // because the rules file has them.
    eprintln!("generating {} links in {}", o.links, dir.display());
    let t = Instant::now();
    let rules = dir.join("rules.toml");
    genlinks::generate(
        o.links,
        &dir.join("links.csv"),
        Some(&rules),
        genlinks::DEFAULT_HOST,
        &upstream_addr.to_string(),
    )?;
    let nginx_conf = NginxProxyConfig {
        listen: loopback(free_port()?),
        prefix: dir.join("nginx"),
        upstream: upstream_addr,
        workers: 1,
        keepalive: NGINX_KEEPALIVE,
    };
    let conf_path = nginx::prepare_proxy(&nginx_conf)?;
    let generate_s = t.elapsed().as_secs_f64();

    let probe = api_request();
    let mut contenders = vec![compare::start_gateway(o, &rules, dir, None).await?];
    contenders.push(
        compare::start_nginx(
            nginx_bin,
            &conf_path,
            &nginx_conf.prefix,
            nginx_conf.listen,
            (&probe, 200),
        )
        .await?,
    );
    eprintln!("starting the bare Pingora proxy ({BARE_PROXY_THREADS} thread)");
    let addr = loopback(free_port()?);
    let t = Instant::now();
    let proc = servers::start_bare_proxy(
        &o.exe,
        addr,
        upstream_addr,
        BARE_PROXY_THREADS,
        &dir.join("bare-proxy.log"),
    )
    .await
    .context("starting the bare proxy")?;
    contenders.push(Contender::new(BARE_PROXY, proc, addr, t.elapsed()));
    contenders.push(direct);

    same_answers(&contenders, &probe).await?;
    compare::alternate(&mut contenders, o).await?;

    let mut report = compare::report(o, &contenders, generate_s);
    add_latency(&mut report.servers);
    report.proxy = Some(ProxySetup {
        upstream: upstream_addr.to_string(),
        upstream_threads: UPSTREAM_THREADS,
        rps_ratio_gateway_bare_proxy: ratio(
            rps_of(&report.servers, "gateway"),
            rps_of(&report.servers, BARE_PROXY),
        ),
    });
    for mut c in contenders {
        c.proc.stop();
    }
    Ok(report)
}

/// Sets every proxy's added p50 and p99: its median minus direct's.
pub fn add_latency(servers: &mut [compare::ServerResult]) {
    let Some(direct) = servers.iter().find(|s| s.name == DIRECT) else {
        return;
    };
    let (p50, p99) = (direct.median_p50_us, direct.median_p99_us);
    for s in servers.iter_mut().filter(|s| s.name != DIRECT) {
        s.added_p50_us = Some(s.median_p50_us - p50);
        s.added_p99_us = Some(s.median_p99_us - p99);
    }
}

/// Checks every contender answers the proxied request with the upstream's
/// own answer (200 and its body), so all of them do the same work and the
/// proxies really reach the upstream.
async fn same_answers(contenders: &[Contender], request: &[u8]) -> Result<()> {
    for c in contenders {
        let a = client::oneshot(c.addr, request, Duration::from_secs(5))
            .await
            .map_err(|f| anyhow::anyhow!("{}: {}", c.name, f.detail))?;
        if a.status != 200 || a.body != upstream::BODY {
            bail!(
                "{} answered {} with {:?}, not the upstream's 200 with {:?}",
                c.name,
                a.status,
                String::from_utf8_lossy(&a.body),
                String::from_utf8_lossy(upstream::BODY)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, p50: f64, p99: f64) -> compare::ServerResult {
        compare::ServerResult {
            name: name.into(),
            median_rps: 1.0,
            median_p50_us: p50,
            median_p99_us: p99,
            rss_kib: 0,
            pss_kib: 0,
            median_cpu_pct: 0.0,
            median_requests_per_cpu_s: 0.0,
            median_conn_per_s: 0.0,
            resumed_pct: None,
            median_client_cpu_pct: 0.0,
            failed: 0,
            startup_s: 0.0,
            added_p50_us: None,
            added_p99_us: None,
        }
    }

    #[test]
    fn added_latency_is_over_direct() {
        let mut s = vec![
            server("gateway", 150.0, 400.0),
            server("nginx", 120.0, 500.0),
            server(DIRECT, 50.0, 100.0),
        ];
        add_latency(&mut s);
        assert_eq!(
            (s[0].added_p50_us, s[0].added_p99_us),
            (Some(100.0), Some(300.0))
        );
        assert_eq!(
            (s[1].added_p50_us, s[1].added_p99_us),
            (Some(70.0), Some(400.0))
        );
        assert_eq!((s[2].added_p50_us, s[2].added_p99_us), (None, None));
        let req = String::from_utf8(api_request()).unwrap();
        assert!(req.starts_with("GET /api/item/1 HTTP/1.1\r\nHost: api.example.com\r\n"));
    }
}
