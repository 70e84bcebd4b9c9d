//! A short, bounded run of every scenario against the real gateway (and of
//! the responder and the compare command). Each run lasts under a second
//! with 2 connections and at most a few hundred requests. No timing is
//! asserted: only that requests were answered, correctly.

mod common;

use common::{rt, Bench, TOKEN};
use loadtest::responder::Engine;
use loadtest::run::{self, RunOptions, RunReport};
use loadtest::scenario::Scenario;
use loadtest::servers::{self, free_port, loopback};
use std::time::Duration;

const LINKS: u64 = 2000;

fn options(bench: &Bench, scenario: Scenario) -> RunOptions {
    RunOptions {
        target: bench.target(),
        scenario,
        duration: Duration::from_millis(500),
        connections: 2,
        links: Some(bench.links),
        timeout: Duration::from_secs(10),
        max_requests: 300,
        ..RunOptions::default()
    }
}

fn assert_clean(report: &RunReport) {
    assert!(!report.runs.is_empty());
    for s in &report.runs {
        assert!(
            s.ok > 0,
            "{}: nothing answered\n{}",
            s.label,
            report.table()
        );
        assert_eq!(
            s.errors.total(),
            0,
            "{}: errors\n{}",
            s.label,
            report.table()
        );
        assert!(
            s.requests <= 300,
            "{}: the request bound was not kept",
            s.label
        );
    }
}

fn smoke(scenario: Scenario) -> RunReport {
    let rt = rt();
    let bench = Bench::start(&rt, LINKS);
    let report = rt.block_on(run::run(&options(&bench, scenario))).unwrap();
    assert_clean(&report);
    report
}

#[test]
fn redirect_hot() {
    let r = smoke(Scenario::RedirectHot);
    assert_eq!(r.runs[0].statuses.keys().collect::<Vec<_>>(), ["302"]);
}

#[test]
fn redirect_spread() {
    smoke(Scenario::RedirectSpread);
}

#[test]
fn redirect_zipf() {
    smoke(Scenario::RedirectZipf);
}

#[test]
fn pattern() {
    smoke(Scenario::Pattern);
}

#[test]
fn mixed() {
    let r = smoke(Scenario::Mixed);
    // Links and patterns redirect, the API is proxied, misses are 404.
    let seen: Vec<&String> = r.runs[0].statuses.keys().collect();
    assert!(seen.contains(&&"302".to_string()), "{seen:?}");
}

#[test]
fn proxy_and_open_loop() {
    let rt = rt();
    let bench = Bench::start(&rt, LINKS);
    let mut o = options(&bench, Scenario::Proxy);
    o.upstream = Some(format!("http://{}", bench.upstream_addr));
    o.rate = Some(200.0);
    let report = rt.block_on(run::run(&o)).unwrap();
    assert_clean(&report);
    assert_eq!(report.runs.len(), 2);
    assert_eq!(report.runs[0].label, "via gateway");
    assert_eq!(report.runs[1].label, "direct");
    // Open loop: exactly the scheduled requests (rate × duration).
    assert_eq!(report.runs[0].requests, 100);
    assert_eq!(report.runs[1].requests, 100);
    assert!(report.proxy.is_some());
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["proxy"]["added_p99_us"].is_number());
    assert!(report.svg().contains("<polyline"));
}

#[test]
fn reload() {
    let rt = rt();
    let bench = Bench::start(&rt, LINKS);
    let original = std::fs::read_to_string(&bench.rules).unwrap();
    // A flip by hand first: both versions are accepted.
    rt.block_on(async {
        let admin = bench.gateway.admin;
        loadtest::reload::put_rules(admin, TOKEN, &loadtest::reload::variant(&original))
            .await
            .unwrap();
        loadtest::reload::put_rules(admin, TOKEN, &original)
            .await
            .unwrap();
    });
    let mut o = options(&bench, Scenario::Reload);
    o.admin = Some(format!("http://{}", bench.gateway.admin));
    o.token = Some(TOKEN.into());
    o.rules = Some(bench.rules.clone());
    o.flip_every = Duration::from_millis(100);
    let report = rt.block_on(run::run(&o)).unwrap();
    assert_clean(&report);
    let r = report.reload.as_ref().unwrap();
    assert_eq!(r.flips.failed, 0, "{:?}", r.flips);
    assert_eq!((r.failed_steady, r.failed_reload), (0, 0));
    // The rules are put back after the run.
    assert_eq!(std::fs::read_to_string(&bench.rules).unwrap(), original);
}

#[test]
fn reload_needs_admin_and_token() {
    let rt = rt();
    let o = RunOptions {
        scenario: Scenario::Reload,
        links: Some(10),
        ..RunOptions::default()
    };
    let e = rt.block_on(run::run(&o)).unwrap_err().to_string();
    assert!(e.contains("--admin"), "{e}");
}

#[test]
fn responder_every_engine() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    for engine in [Engine::Front, Engine::Proxy, Engine::App] {
        let addr = loopback(free_port().unwrap());
        let _responder = rt
            .block_on(servers::start_responder(
                &common::loadtest_binary(),
                addr,
                1,
                engine,
                &dir.path().join(format!("responder-{}.log", engine.name())),
            ))
            .unwrap();
        let o = RunOptions {
            target: format!("http://{addr}"),
            scenario: Scenario::RedirectSpread,
            links: Some(1000),
            duration: Duration::from_millis(500),
            connections: 2,
            max_requests: 300,
            timeout: Duration::from_secs(10),
            ..RunOptions::default()
        };
        let report = rt.block_on(run::run(&o)).unwrap();
        assert_clean(&report);
    }
}

#[test]
fn bare_proxy_forwards_to_its_upstream() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let upstream = loopback(free_port().unwrap());
    let _up = rt
        .block_on(servers::start_upstream(
            &common::loadtest_binary(),
            upstream,
            1,
            &dir.path().join("upstream.log"),
        ))
        .unwrap();
    let addr = loopback(free_port().unwrap());
    let _proxy = rt
        .block_on(servers::start_bare_proxy(
            &common::loadtest_binary(),
            addr,
            upstream,
            1,
            &dir.path().join("bare-proxy.log"),
        ))
        .unwrap();
    // The upstream's own answer, through the proxy, on one kept-alive
    // connection.
    let mut conn = loadtest::client::Conn::new(addr).keep_body();
    for _ in 0..20 {
        let a = rt
            .block_on(conn.send(
                &loadtest::client::build_request("GET", "/v1/users", "api", &[], b""),
                Duration::from_secs(10),
            ))
            .unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"ok\n"[..]));
    }
    assert_eq!(conn.connects, 1);
}

#[test]
fn compare_without_nginx_says_so() {
    let out = std::process::Command::new(common::loadtest_binary())
        .args([
            "compare",
            "--links",
            "10",
            "--nginx",
            "/nonexistent/sbin/nginx",
            "--duration",
            "100ms",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nginx is not installed"), "{err}");
}

/// Runs only where nginx is installed (it is not part of CI).
#[test]
fn compare_smoke_with_nginx() {
    if loadtest::nginx::find_binary(None).is_err() {
        eprintln!("nginx is not installed: compare smoke test skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::loadtest_binary())
        .args([
            "compare",
            "--links",
            "1000",
            "--pairs",
            "1",
            "--duration",
            "300ms",
            "--warmup",
            "0s",
            "--connections",
            "2",
            "--max-requests",
            "200",
            "--responder",
            "--json",
            "--gateway",
        ])
        .arg(common::gateway_binary())
        .arg("--workdir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let servers = report["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3, "{report}");
    for s in servers {
        assert_eq!(s["failed"], 0, "{report}");
        assert!(s["rss_kib"].as_u64().unwrap() > 0, "{report}");
    }
    assert!(report["rps_ratio_gateway_nginx"].as_f64().unwrap() > 0.0);
}

/// `compare --scenario proxy`: the gateway, nginx `proxy_pass`, the bare
/// Pingora proxy and the upstream itself, one short run each. Runs only
/// where nginx is installed (it is not part of CI).
#[test]
fn compare_proxy_smoke_with_nginx() {
    if loadtest::nginx::find_binary(None).is_err() {
        eprintln!("nginx is not installed: compare --scenario proxy smoke test skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::loadtest_binary())
        .args([
            "compare",
            "--scenario",
            "proxy",
            "--links",
            "100",
            "--pairs",
            "1",
            "--duration",
            "300ms",
            "--warmup",
            "0s",
            "--connections",
            "2",
            "--max-requests",
            "200",
            "--json",
            "--gateway",
        ])
        .arg(common::gateway_binary())
        .arg("--workdir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = report["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["gateway", "nginx", "bare-proxy", "direct"],
        "{report}"
    );
    for run in report["runs"].as_array().unwrap() {
        assert!(run["ok"].as_u64().unwrap() > 0, "{report}");
        assert_eq!(run["errors"]["connect"], 0, "{report}");
        assert_eq!(run["statuses"].as_object().unwrap().len(), 1, "{report}");
        assert!(run["statuses"]["200"].as_u64().unwrap() > 0, "{report}");
    }
    for s in report["servers"].as_array().unwrap() {
        assert_eq!(s["failed"], 0, "{report}");
        // Every proxy is compared with the direct run; direct is not.
        assert_eq!(
            s["added_p50_us"].is_number(),
            s["name"] != "direct",
            "{report}"
        );
        assert_eq!(s["added_p99_us"].is_number(), s["name"] != "direct");
    }
    assert!(report["rps_ratio_gateway_nginx"].as_f64().unwrap() > 0.0);
    assert!(
        report["proxy"]["rps_ratio_gateway_bare_proxy"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    // The redirect-only fields stay out of a proxy report.
    assert!(report.get("rps_ratio_gateway_responder").is_none());
}

#[test]
fn compare_proxy_refuses_the_responder() {
    if loadtest::nginx::find_binary(None).is_err() {
        eprintln!("nginx is not installed: compare check skipped");
        return;
    }
    let out = std::process::Command::new(common::loadtest_binary())
        .args(["compare", "--scenario", "proxy", "--responder"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--responder is for the redirect scenarios"),
        "{err}"
    );
}
