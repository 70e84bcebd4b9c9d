//! Observability of the real binary: exact Prometheus counters after a
//! known sequence of requests, reload metrics, the health endpoints, the
//! access log (fields, sampling, off by default) and bounded label sets
//! under 100,000 distinct paths and hosts.
//!
//! Everything runs on loopback; every loop is bounded in count and time;
//! nothing asserts how fast anything is. Metrics are counted when a request
//! is logged, which may be just after the client read its response, so
//! every exact assertion first waits (bounded) for the totals to arrive.

use crate::harness;

use crate::harness::{
    read_response, request, send, Behavior, Gateway, Options, Response, Scrape, Upstream,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::BufReader;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const TOKEN: &str = "observability-token-0123456789";
const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

/// Waits until every request sent has been counted.
fn scrape_total(gw: &Gateway, total: f64) -> Scrape {
    let s = gw.scrape_until_sum(WAIT, "gateway_requests_total", &[], total);
    // Let anything extra (there should be nothing) land, then re-scrape.
    std::thread::sleep(Duration::from_millis(100));
    let s2 = gw.scrape();
    assert_eq!(
        s2.sum("gateway_requests_total", &[]),
        total,
        "requests counted:\n{}",
        s2.lines_of("gateway_requests_total").join("\n")
    );
    drop(s);
    s2
}

// ---------------------------------------------------------------------------
// Requests, logs
// ---------------------------------------------------------------------------

fn admin(gw: &Gateway, method: &str, path: &str) -> Response {
    let auth = format!("Bearer {TOKEN}");
    request(gw.admin, method, path, "admin", &[("Authorization", &auth)])
}

fn expect_status(gw: &Gateway, host: &str, path: &str, status: u16) -> Response {
    let r = gw.get(host, path);
    assert_eq!(r.status, status, "{host}{path}: {r:?}");
    r
}

fn is_hex16(s: &str) -> bool {
    s.len() >= 16 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

// ---------------------------------------------------------------------------
// 1. Exact counters
// ---------------------------------------------------------------------------

const LINKS1: &str = "code,to,status\nabc,https://shop.example.com/item/1,\nxyz,https://shop.example.com/item/2,301\n";

fn counting_rules(api: &[&Upstream], dead_port: u16) -> String {
    let servers: Vec<String> = api.iter().map(|u| format!("\"{}\"", u.addr)).collect();
    format!(
        r#"
[[redirect]]
id = "r1"
host = "go.example.com"
path = "/r1"
to = "https://shop.example.com/r1"
status = 308

[[redirect]]
id = "old"
host = "go.example.com"
path = "/old"
to = "https://shop.example.com/old"
expires_at = "2020-01-01T00:00:00Z"

[[redirect]]
id = "unused"
host = "go.example.com"
path = "/unused"
to = "https://shop.example.com/unused"

[[links]]
id = "links1"
host = "go.example.com"
file = "links1.csv"

[[respond]]
id = "robots"
path = "/robots.txt"
body = "User-agent: *\nDisallow:\n"

[[route]]
id = "api"
host = "api.example.com"
prefix = "/"
upstream = "api"

[[route]]
id = "deadr"
host = "dead.example.com"
prefix = "/"
upstream = "dead"

[[route]]
id = "checkedr"
host = "checked.example.com"
prefix = "/"
upstream = "checked"

[upstream.api]
servers = [{servers}]

[upstream.dead]
servers = ["127.0.0.1:{dead_port}"]
retries = 1
connect_timeout = "1s"

[upstream.checked]
servers = ["127.0.0.1:{dead_port}"]
health_check = {{ type = "tcp", interval = "100ms", timeout = "100ms", unhealthy_after = 1, healthy_after = 1 }}

[[test]]
name = "r1 redirects"
url = "https://go.example.com/r1"
expect_status = 308
expect_location = "https://shop.example.com/r1"
"#,
        servers = servers.join(", ")
    )
}

#[test]
fn counters_are_exact_after_a_known_sequence() {
    let a = Upstream::start("a", Behavior::Ok);
    let b = Upstream::start("b", Behavior::Ok);
    let dead_port = Upstream::start("dead", Behavior::Ok).kill();
    let rules = counting_rules(&[&a, &b], dead_port);
    let gw = Gateway::start_with(
        &rules,
        Options {
            files: &[("links1.csv", LINKS1.as_bytes())],
            env: &[("GATEWAY_ADMIN_TOKEN", TOKEN)],
            ..Default::default()
        },
    );

    // Nothing counted yet, whatever was scraped or probed on the admin side.
    let s0 = gw.scrape();
    assert_eq!(
        s0.sum("gateway_requests_total", &[]),
        0.0,
        "{}",
        s0.gateway_lines()
    );

    // The checked pool's only backend is dead: wait for the health check
    // (on the metrics side only: no request goes to that pool before).
    gw.scrape_until(WAIT, "checked pool marked down", |s| {
        s.get(
            "gateway_upstream_healthy_backends",
            &[("upstream", "checked")],
        ) == Some(0.0)
    });

    const N1: usize = 3; // r1, 308
    const N2A: usize = 2; // links1 /abc, 302
    const N2B: usize = 1; // links1 /xyz, 301
    const N3: usize = 4; // 404
    const N4: usize = 2; // 400
    const N5: usize = 3; // 410
    const N6: usize = 2; // respond 200
    const N7: usize = 6; // proxied 200
    const N8: usize = 2; // dead pool 502
    const N9: usize = 3; // checked pool 503

    for _ in 0..N1 {
        let r = expect_status(&gw, "go.example.com", "/r1", 308);
        assert_eq!(r.location(), "https://shop.example.com/r1");
    }
    for _ in 0..N2A {
        expect_status(&gw, "go.example.com", "/abc", 302);
    }
    for _ in 0..N2B {
        expect_status(&gw, "go.example.com", "/xyz", 301);
    }
    for i in 0..N3 {
        expect_status(&gw, "go.example.com", &format!("/missing/{i}"), 404);
    }
    for i in 0..N4 {
        expect_status(&gw, "go.example.com", &format!("/p/%zz{i}"), 400);
    }
    for _ in 0..N5 {
        expect_status(&gw, "go.example.com", "/old", 410);
    }
    for _ in 0..N6 {
        let r = expect_status(&gw, "any.example.net", "/robots.txt", 200);
        assert_eq!(r.text(), "User-agent: *\nDisallow:\n");
    }
    for i in 0..N7 {
        let r = expect_status(&gw, "api.example.com", &format!("/v1/{i}"), 200);
        assert!(r.text() == "a\n" || r.text() == "b\n", "{r:?}");
    }
    for i in 0..N8 {
        let r = expect_status(&gw, "dead.example.com", &format!("/d/{i}"), 502);
        assert_eq!(r.text(), "bad gateway\n");
    }
    for i in 0..N9 {
        let r = expect_status(&gw, "checked.example.com", &format!("/c/{i}"), 503);
        assert_eq!(r.text(), "service unavailable: no healthy upstream\n");
    }
    let total = N1 + N2A + N2B + N3 + N4 + N5 + N6 + N7 + N8 + N9;

    // Scraping does not count as a request.
    for _ in 0..5 {
        gw.scrape();
    }
    let s = scrape_total(&gw, total as f64);
    let n = |x: usize| x as f64;

    // gateway_requests_total{kind,code}: every series, exactly.
    let want_requests: Vec<(&str, &str, usize)> = vec![
        ("redirect", "308", N1),
        ("redirect", "302", N2A),
        ("redirect", "301", N2B),
        ("not_found", "404", N3),
        ("bad_request", "400", N4),
        ("gone", "410", N5),
        ("respond", "200", N6),
        ("proxy", "200", N7),
        ("proxy", "502", N8),
        ("proxy", "503", N9),
    ];
    for (kind, code, count) in &want_requests {
        s.expect(
            "gateway_requests_total",
            &[("kind", kind), ("code", code)],
            n(*count),
        );
    }
    assert_eq!(
        s.series("gateway_requests_total").len(),
        want_requests.len(),
        "unexpected request series:\n{}",
        s.lines_of("gateway_requests_total").join("\n")
    );

    // Durations: one observation per request, per kind.
    for (kind, count) in [
        ("redirect", N1 + N2A + N2B),
        ("not_found", N3),
        ("bad_request", N4),
        ("gone", N5),
        ("respond", N6),
        ("proxy", N7 + N8 + N9),
        ("error", 0),
    ] {
        s.expect(
            "gateway_request_duration_seconds_count",
            &[("kind", kind)],
            n(count),
        );
        s.expect(
            "gateway_request_duration_seconds_bucket",
            &[("kind", kind), ("le", "+Inf")],
            n(count),
        );
    }

    // Rule hits: every rule and link set, including one never hit.
    for (rule, count) in [
        ("r1", N1),
        ("links1", N2A + N2B),
        ("old", N5),
        ("unused", 0),
        ("robots", N6),
        ("api", N7),
        ("deadr", N8),
        ("checkedr", N9),
    ] {
        s.expect("gateway_rule_hits_total", &[("rule", rule)], n(count));
    }
    assert_eq!(
        s.series("gateway_rule_hits_total").len(),
        8,
        "{}",
        s.lines_of("gateway_rule_hits_total").join("\n")
    );

    // Upstreams: responses only from backends that answered.
    s.expect(
        "gateway_upstream_requests_total",
        &[("upstream", "api"), ("code", "200")],
        n(N7),
    );
    assert_eq!(
        s.series("gateway_upstream_requests_total").len(),
        1,
        "{}",
        s.lines_of("gateway_upstream_requests_total").join("\n")
    );
    assert_eq!(
        a.hits.load(std::sync::atomic::Ordering::Relaxed)
            + b.hits.load(std::sync::atomic::Ordering::Relaxed),
        N7
    );
    for (upstream, reason, count) in [
        ("dead", "connect", N8),
        ("dead", "timeout", 0),
        ("dead", "reset", 0),
        ("dead", "no_healthy", 0),
        ("checked", "no_healthy", N9),
        ("checked", "connect", 0),
        ("api", "connect", 0),
        ("api", "timeout", 0),
        ("api", "reset", 0),
        ("api", "no_healthy", 0),
    ] {
        s.expect(
            "gateway_upstream_errors_total",
            &[("upstream", upstream), ("reason", reason)],
            n(count),
        );
    }
    // The dead pool has one backend: after its connect fails there is no
    // other backend to retry on, so no retry happens (and none is counted).
    s.expect(
        "gateway_upstream_retries_total",
        &[("upstream", "dead")],
        0.0,
    );
    s.expect(
        "gateway_upstream_retries_total",
        &[("upstream", "api")],
        0.0,
    );
    s.expect(
        "gateway_upstream_retries_total",
        &[("upstream", "checked")],
        0.0,
    );
    for (upstream, healthy, total) in [("api", 2.0, 2.0), ("dead", 1.0, 1.0), ("checked", 0.0, 1.0)]
    {
        s.expect(
            "gateway_upstream_healthy_backends",
            &[("upstream", upstream)],
            healthy,
        );
        s.expect(
            "gateway_upstream_backends",
            &[("upstream", upstream)],
            total,
        );
    }
    s.expect(
        "gateway_upstream_duration_seconds_count",
        &[("upstream", "api")],
        n(N7),
    );

    // The live rules.
    for (kind, count) in [
        ("redirect", 3.0),
        ("link", 2.0),
        ("link_set", 1.0),
        ("route", 3.0),
        ("respond", 1.0),
        ("upstream", 3.0),
        ("test", 1.0),
    ] {
        s.expect("gateway_rules_loaded", &[("kind", kind)], count);
    }
    let info = s.series("gateway_rules_info");
    assert_eq!(
        info.len(),
        1,
        "{}",
        s.lines_of("gateway_rules_info").join("\n")
    );
    assert_eq!(info[0].value, 1.0);
    assert_eq!(info[0].labels.get("version").map(String::as_str), Some("1"));
    let hash = info[0].labels["hash"].clone();
    assert!(is_hex16(&hash), "hash {hash:?}");
    assert_eq!(info[0].labels.len(), 2, "{:?}", info[0].labels);
    // The same hash as the admin API and the startup log line.
    let live = admin(&gw, "GET", "/admin/rules").json();
    assert_eq!(live["hash"], hash.as_str(), "{live}");
    assert_eq!(live["version"], 1, "{live}");
    let starting = gw
        .log_json()
        .into_iter()
        .find(|v| v["message"] == "gateway starting")
        .unwrap_or_else(|| panic!("no startup line:\n{}", gw.log_tail()));
    assert_eq!(starting["hash"], hash.as_str(), "{starting}");

    // Build and process information.
    s.expect(
        "gateway_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    assert_eq!(s.series("gateway_build_info").len(), 1);
    let rss = s.value("process_resident_memory_bytes", &[]);
    assert!(rss > 0.0, "rss {rss}");

    // Reload metrics exist from the start, at zero.
    for result in ["success", "failure", "unchanged"] {
        s.expect("gateway_rules_reloads_total", &[("result", result)], 0.0);
    }
    s.expect("gateway_rules_reload_duration_seconds_count", &[], 0.0);

    // Every family has HELP and TYPE lines.
    for family in [
        "gateway_requests_total",
        "gateway_request_duration_seconds",
        "gateway_rule_hits_total",
        "gateway_upstream_requests_total",
        "gateway_upstream_errors_total",
        "gateway_upstream_retries_total",
        "gateway_upstream_healthy_backends",
        "gateway_upstream_backends",
        "gateway_rules_info",
        "gateway_rules_loaded",
        "gateway_build_info",
    ] {
        assert!(s.helped.contains(family), "no HELP for {family}");
        assert!(s.families.contains_key(family), "no TYPE for {family}");
    }

    // /ready agrees with the gauges.
    let ready = request(gw.admin, "GET", "/ready", "admin", &[]);
    assert_eq!(ready.status, 200);
    let body = ready.text();
    assert!(body.contains("rules version 1 "), "{body}");
    assert!(
        body.contains("upstream api: 2/2 backends healthy"),
        "{body}"
    );
    assert!(
        body.contains("upstream checked: 0/1 backends healthy"),
        "{body}"
    );
    assert!(
        body.contains("upstream dead: 1/1 backends healthy"),
        "{body}"
    );

    // More scrapes change nothing.
    let again = gw.scrape();
    assert_eq!(again.sum("gateway_requests_total", &[]), total as f64);
}

// ---------------------------------------------------------------------------
// 2. Reload metrics
// ---------------------------------------------------------------------------

fn reload_rules(extra_id: &str, with_pool: bool) -> String {
    format!(
        r#"
[[redirect]]
id = "keep"
host = "go.example.com"
path = "/keep"
to = "https://shop.example.com/keep"

[[redirect]]
id = "{extra_id}"
host = "go.example.com"
path = "/{extra_id}"
to = "https://shop.example.com/{extra_id}"
{pool}"#,
        pool = if with_pool {
            "\n[[route]]\nid = \"doomed-route\"\nhost = \"doomed.example.com\"\nprefix = \"/\"\nupstream = \"doomedpool\"\n\n[upstream.doomedpool]\nservers = [\"127.0.0.1:9\"]\n"
        } else {
            ""
        }
    )
}

#[test]
fn reload_metrics_count_every_outcome() {
    let v1 = reload_rules("doomed", true);
    let v2 = reload_rules("fresh", false);
    // Only the admin API reloads here: the file watcher is off so writing
    // the file does not trigger extra reloads.
    let gw = Gateway::start_with(
        &v1,
        Options {
            env: &[
                ("GATEWAY_ADMIN_TOKEN", TOKEN),
                ("GATEWAY_RULES_WATCH", "false"),
            ],
            ..Default::default()
        },
    );
    for _ in 0..2 {
        expect_status(&gw, "go.example.com", "/keep", 302);
    }
    for _ in 0..3 {
        expect_status(&gw, "go.example.com", "/doomed", 302);
    }
    let s1 = scrape_total(&gw, 5.0);
    s1.expect("gateway_rule_hits_total", &[("rule", "keep")], 2.0);
    s1.expect("gateway_rule_hits_total", &[("rule", "doomed")], 3.0);
    s1.expect("gateway_rule_hits_total", &[("rule", "doomed-route")], 0.0);
    s1.expect(
        "gateway_upstream_backends",
        &[("upstream", "doomedpool")],
        1.0,
    );
    s1.expect(
        "gateway_upstream_healthy_backends",
        &[("upstream", "doomedpool")],
        1.0,
    );
    s1.expect("gateway_rules_loaded", &[("kind", "redirect")], 2.0);
    s1.expect("gateway_rules_loaded", &[("kind", "route")], 1.0);
    s1.expect("gateway_rules_loaded", &[("kind", "upstream")], 1.0);
    for result in ["success", "failure", "unchanged"] {
        s1.expect("gateway_rules_reloads_total", &[("result", result)], 0.0);
    }
    s1.expect("gateway_rules_reload_duration_seconds_count", &[], 0.0);
    let info1 = s1.series("gateway_rules_info");
    assert_eq!(info1.len(), 1);
    assert_eq!(info1[0].labels["version"], "1");
    let hash1 = info1[0].labels["hash"].clone();
    let t1 = s1.value("gateway_rules_last_reload_success_timestamp_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(t1 > 1.0e9 && t1 <= now + 1.0, "startup timestamp {t1}");

    // Success: the file changes, one rule is removed, one added.
    std::thread::sleep(Duration::from_millis(50));
    std::fs::write(gw.path("rules.toml"), &v2).unwrap();
    let r = admin(&gw, "POST", "/admin/reload");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["result"], "success", "{v}");
    assert_eq!(v["version"]["version"], 2, "{v}");
    let s2 = gw.scrape();
    s2.expect("gateway_rules_reloads_total", &[("result", "success")], 1.0);
    s2.expect("gateway_rules_reloads_total", &[("result", "failure")], 0.0);
    s2.expect(
        "gateway_rules_reloads_total",
        &[("result", "unchanged")],
        0.0,
    );
    s2.expect("gateway_rules_reload_duration_seconds_count", &[], 1.0);
    let info2 = s2.series("gateway_rules_info");
    assert_eq!(
        info2.len(),
        1,
        "{}",
        s2.lines_of("gateway_rules_info").join("\n")
    );
    assert_eq!(info2[0].labels["version"], "2");
    assert_eq!(info2[0].value, 1.0);
    let hash2 = info2[0].labels["hash"].clone();
    assert!(is_hex16(&hash2), "{hash2}");
    assert_ne!(hash2, hash1);
    assert_eq!(v["version"]["hash"], hash2.as_str(), "{v}");
    let t2 = s2.value("gateway_rules_last_reload_success_timestamp_seconds", &[]);
    assert!(t2 > t1, "last success {t1} -> {t2}");
    // The removed rule's series is gone; the kept one keeps counting; the
    // new one starts at zero.
    assert_eq!(
        s2.get("gateway_rule_hits_total", &[("rule", "doomed")]),
        None,
        "{}",
        s2.lines_of("gateway_rule_hits_total").join("\n")
    );
    s2.expect("gateway_rule_hits_total", &[("rule", "keep")], 2.0);
    s2.expect("gateway_rule_hits_total", &[("rule", "fresh")], 0.0);
    assert_eq!(
        s2.get("gateway_rule_hits_total", &[("rule", "doomed-route")]),
        None
    );
    // The removed pool's gauges are gone; the loaded counts follow.
    assert!(
        s2.series("gateway_upstream_backends").is_empty()
            && s2.series("gateway_upstream_healthy_backends").is_empty(),
        "{}",
        s2.gateway_lines()
    );
    s2.expect("gateway_rules_loaded", &[("kind", "redirect")], 2.0);
    s2.expect("gateway_rules_loaded", &[("kind", "route")], 0.0);
    s2.expect("gateway_rules_loaded", &[("kind", "upstream")], 0.0);
    assert_eq!(s2.series("gateway_rule_hits_total").len(), 2);
    expect_status(&gw, "go.example.com", "/keep", 302);
    expect_status(&gw, "go.example.com", "/fresh", 302);
    expect_status(&gw, "go.example.com", "/doomed", 404);
    let s2b = scrape_total(&gw, 8.0);
    s2b.expect("gateway_rule_hits_total", &[("rule", "keep")], 3.0);
    s2b.expect("gateway_rule_hits_total", &[("rule", "fresh")], 1.0);
    assert_eq!(
        s2b.get("gateway_rule_hits_total", &[("rule", "doomed")]),
        None
    );

    // Failure: a broken file is refused with 422 and nothing changes.
    std::fs::write(
        gw.path("rules.toml"),
        "[[redirect]]\nid = \"broken\"\nhost = \n",
    )
    .unwrap();
    let r = admin(&gw, "POST", "/admin/reload");
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.json()["errors"].as_array().is_some_and(|e| !e.is_empty()));
    let s3 = gw.scrape();
    s3.expect("gateway_rules_reloads_total", &[("result", "success")], 1.0);
    s3.expect("gateway_rules_reloads_total", &[("result", "failure")], 1.0);
    s3.expect(
        "gateway_rules_reloads_total",
        &[("result", "unchanged")],
        0.0,
    );
    s3.expect("gateway_rules_reload_duration_seconds_count", &[], 2.0);
    let info3 = s3.series("gateway_rules_info");
    assert_eq!(info3.len(), 1);
    assert_eq!(
        (
            info3[0].labels["version"].as_str(),
            info3[0].labels["hash"].as_str()
        ),
        ("2", hash2.as_str())
    );
    s3.expect(
        "gateway_rules_last_reload_success_timestamp_seconds",
        &[],
        t2,
    );

    // Unchanged, twice: the good file is back.
    std::fs::write(gw.path("rules.toml"), &v2).unwrap();
    for _ in 0..2 {
        let r = admin(&gw, "POST", "/admin/reload");
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["result"], "unchanged", "{v}");
        assert_eq!(v["version"]["version"], 2, "{v}");
    }
    let s4 = gw.scrape();
    s4.expect("gateway_rules_reloads_total", &[("result", "success")], 1.0);
    s4.expect("gateway_rules_reloads_total", &[("result", "failure")], 1.0);
    s4.expect(
        "gateway_rules_reloads_total",
        &[("result", "unchanged")],
        2.0,
    );
    assert_eq!(s4.series("gateway_rules_reloads_total").len(), 3);
    s4.expect("gateway_rules_reload_duration_seconds_count", &[], 4.0);
    s4.expect(
        "gateway_rules_reload_duration_seconds_bucket",
        &[("le", "+Inf")],
        4.0,
    );
    let info4 = s4.series("gateway_rules_info");
    assert_eq!(info4.len(), 1);
    assert_eq!(info4[0].labels["version"], "2");
    assert_eq!(info4[0].labels["hash"], hash2);
    s4.expect(
        "gateway_rules_last_reload_success_timestamp_seconds",
        &[],
        t2,
    );
    // Admin calls and scrapes were not counted as requests.
    assert_eq!(s4.sum("gateway_requests_total", &[]), 8.0);

    // SIGHUP goes through the same path: one more unchanged attempt.
    gw.signal("HUP");
    // A scrape gathers the duration histogram before the counter (by
    // name), so one taken during the reload can see the new count and the
    // old histogram: wait for both.
    let s5 = gw.scrape_until(WAIT, "the SIGHUP reload counted", |s| {
        s.get("gateway_rules_reloads_total", &[("result", "unchanged")]) == Some(3.0)
            && s.get("gateway_rules_reload_duration_seconds_count", &[]) == Some(5.0)
    });
    s5.expect("gateway_rules_reloads_total", &[("result", "success")], 1.0);
    s5.expect("gateway_rules_reloads_total", &[("result", "failure")], 1.0);
    s5.expect("gateway_rules_reload_duration_seconds_count", &[], 5.0);
    assert_eq!(s5.series("gateway_rules_info").len(), 1);
}

// ---------------------------------------------------------------------------
// 3. Health endpoints and auth
// ---------------------------------------------------------------------------

#[test]
fn health_endpoints_need_no_token_and_the_admin_api_does() {
    let a = Upstream::start("a", Behavior::Ok);
    let metrics_port = harness::free_port();
    let metrics_addr = SocketAddr::from(([127, 0, 0, 1], metrics_port));
    let metrics_config = format!("[metrics]\nlisten = \"{metrics_addr}\"\n");
    let rules = harness::api_route(&[a.addr.to_string()], "");
    let gw = Gateway::start_with(
        &rules,
        Options {
            env: &[("GATEWAY_ADMIN_TOKEN", TOKEN)],
            extra_config: &metrics_config,
            ..Default::default()
        },
    );
    let live = request(gw.admin, "GET", "/live", "admin", &[]);
    assert_eq!((live.status, live.text().as_str()), (200, "live\n"));
    let ready = request(gw.admin, "GET", "/ready", "admin", &[]);
    assert_eq!(ready.status, 200);
    let body = ready.text();
    assert!(body.starts_with("ready: rules version 1 from "), "{body}");
    assert!(
        body.contains("upstream api: 1/1 backends healthy"),
        "{body}"
    );
    // HEAD works too.
    assert_eq!(
        request(gw.admin, "HEAD", "/ready", "admin", &[]).status,
        200
    );

    let r = request(gw.admin, "GET", "/admin/rules", "admin", &[]);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = request(
        gw.admin,
        "GET",
        "/admin/rules",
        "admin",
        &[("Authorization", "Bearer not-the-token-0123456789")],
    );
    assert_eq!(r.status, 401);
    let r = admin(&gw, "GET", "/admin/rules");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["version"], 1);

    let has_rules_info = |s: &Scrape| {
        s.series("gateway_rules_info")
            .iter()
            .any(|x| !x.labels.is_empty())
    };
    let m = gw.scrape();
    assert!(has_rules_info(&m), "{}", m.text);
    // The separate health and metrics listener serves the same metrics and
    // the probes, no token, and nothing of the admin API.
    let m2 = Scrape::fetch(metrics_addr, "metrics");
    assert!(has_rules_info(&m2), "{}", m2.text);
    let ready = request(metrics_addr, "GET", "/ready", "metrics", &[]);
    assert_eq!(ready.status, 200);
    assert!(
        ready.text().starts_with("ready: rules version 1 from "),
        "{}",
        ready.text()
    );
    let live = request(metrics_addr, "GET", "/live", "metrics", &[]);
    assert_eq!((live.status, live.text().as_str()), (200, "live\n"));
    assert_eq!(
        request(metrics_addr, "GET", "/admin/rules", "metrics", &[]).status,
        404
    );
    // The metrics are not served on the proxy listener.
    assert_eq!(gw.get("metrics.example.com", "/metrics").status, 404);
}

// ---------------------------------------------------------------------------
// 4. Access log
// ---------------------------------------------------------------------------

const ACCESS_RULES_HEAD: &str = r#"
[[redirect]]
id = "summer"
host = "go.example.com"
path = "/summer"
to = "https://shop.example.com/sale"
"#;

fn access_rules(up: &Upstream) -> String {
    format!(
        r#"{ACCESS_RULES_HEAD}
[[route]]
id = "api-route"
host = "api.example.com"
prefix = "/"
upstream = "apipool"

[upstream.apipool]
servers = ["{}"]
"#,
        up.addr
    )
}

fn start_logging(rules: &str, env: &[(&str, &str)]) -> Gateway {
    Gateway::start_with(
        rules,
        Options {
            env,
            ..Default::default()
        },
    )
}

/// Waits until `n` requests are counted, then lets the log settle.
fn settle(gw: &Gateway, n: usize) {
    scrape_total(gw, n as f64);
    std::thread::sleep(Duration::from_millis(200));
}

#[test]
fn access_log_has_one_line_per_request_with_every_field() {
    let up = Upstream::start("a", Behavior::Ok);
    let gw = start_logging(&access_rules(&up), &[("GATEWAY_LOG_ACCESS", "true")]);
    assert!(gw.access_log().is_empty(), "{}", gw.log_tail());

    let r = gw.req(
        "GET",
        "go.example.com",
        "/summer?utm=1",
        &[("X-Request-Id", "redirect-id-1")],
    );
    assert_eq!(r.status, 302);
    let r = gw.get("api.example.com", "/v1/items?x=1");
    assert_eq!((r.status, r.text().as_str()), (200, "a\n"));
    let returned_id = r.header("x-request-id").expect("request id").to_string();
    let seen_id = up.requests().last().unwrap().headers["x-request-id"].clone();
    assert_eq!(returned_id, seen_id);
    let r = gw.get("nowhere.example.org", "/missing");
    assert_eq!(r.status, 404);
    settle(&gw, 3);

    let lines = gw.access_log();
    assert_eq!(lines.len(), 3, "{lines:#?}\n{}", gw.log_tail());
    let by_path = |p: &str| -> &Value {
        let found: Vec<&Value> = lines.iter().filter(|l| l["path"] == p).collect();
        assert_eq!(found.len(), 1, "lines for {p}: {lines:#?}");
        found[0]
    };

    let redirect = by_path("/summer");
    for (k, want) in [
        ("request_id", Value::from("redirect-id-1")),
        ("client_ip", Value::from("127.0.0.1")),
        ("method", Value::from("GET")),
        ("host", Value::from("go.example.com")),
        ("path", Value::from("/summer")),
        ("status", Value::from(302)),
        ("kind", Value::from("redirect")),
        ("rule", Value::from("summer")),
        ("upstream", Value::from("")),
        ("upstream_status", Value::from(0)),
        ("bytes", Value::from(0)),
        ("target", Value::from("access")),
    ] {
        assert_eq!(redirect[k], want, "field {k} of {redirect}");
    }
    assert!(redirect["duration_us"].is_u64(), "{redirect}");

    let proxied = by_path("/v1/items");
    for (k, want) in [
        ("request_id", Value::from(seen_id.as_str())),
        ("client_ip", Value::from("127.0.0.1")),
        ("method", Value::from("GET")),
        ("host", Value::from("api.example.com")),
        ("status", Value::from(200)),
        ("kind", Value::from("proxy")),
        ("rule", Value::from("api-route")),
        ("upstream", Value::from("apipool")),
        ("upstream_status", Value::from(200)),
        ("bytes", Value::from(2)),
    ] {
        assert_eq!(proxied[k], want, "field {k} of {proxied}");
    }
    assert!(proxied["duration_us"].is_u64(), "{proxied}");

    let missing = by_path("/missing");
    for (k, want) in [
        ("request_id", Value::from("")),
        ("host", Value::from("nowhere.example.org")),
        ("status", Value::from(404)),
        ("kind", Value::from("not_found")),
        ("rule", Value::from("")),
        ("upstream", Value::from("")),
        ("upstream_status", Value::from(0)),
        ("bytes", Value::from("not found\n".len())),
    ] {
        assert_eq!(missing[k], want, "field {k} of {missing}");
    }
}

#[test]
fn access_log_sampling_keeps_half() {
    // Four rounds of 100 requests on fresh connections (as clients send
    // them; the proxy runs two worker threads in the harness): after each
    // round exactly half of all requests so far have a line.
    let gw = start_logging(
        ACCESS_RULES_HEAD,
        &[
            ("GATEWAY_LOG_ACCESS", "true"),
            ("GATEWAY_LOG_SAMPLE", "0.5"),
        ],
    );
    for round in 1..=4 {
        for i in 0..100 {
            let r = gw.get("go.example.com", &format!("/summer?round={round}&i={i}"));
            assert_eq!(r.status, 302);
        }
        settle(&gw, 100 * round);
        let raw = gw.log_text().matches("\"target\":\"access\"").count();
        let lines = gw.access_log();
        assert_eq!(raw, lines.len(), "unparsable access lines");
        assert!(lines.iter().all(|l| l["path"] == "/summer"));
        assert_eq!(
            lines.len(),
            50 * round,
            "GATEWAY_LOG_SAMPLE=0.5: {} requests gave {} access lines instead of {} \
             (round {round})",
            100 * round,
            lines.len(),
            50 * round
        );
    }
}

#[test]
fn no_access_log_unless_enabled() {
    let gw = start_logging(ACCESS_RULES_HEAD, &[]);
    for i in 0..20 {
        let path = if i % 2 == 0 { "/summer" } else { "/nope" };
        gw.get("go.example.com", path);
    }
    settle(&gw, 20);
    let lines = gw.access_log();
    assert!(lines.is_empty(), "{lines:#?}");
    // The log itself works (JSON lines with a target).
    assert!(gw
        .log_json()
        .iter()
        .any(|v| v["message"] == "gateway starting" && v["target"].is_string()));
}

// ---------------------------------------------------------------------------
// 5. Bounded labels
// ---------------------------------------------------------------------------

const BOUNDED_RULES: &str = r#"
[[redirect]]
id = "product"
host = "go.example.com"
pattern = "/p/{sku}"
to = "https://shop.example.com/product/{sku}"

[[redirect]]
id = "wild"
host = "*.w.example.com"
prefix = "/"
to = "https://shop.example.com/w/{rest}"
status = 307
"#;

/// Request `i` of the mix: (host, path, status).
fn mixed(i: usize) -> (String, String, u16) {
    match i % 5 {
        0 => ("go.example.com".into(), format!("/p/sku-{i}"), 302),
        1 => ("go.example.com".into(), format!("/nope/{i}"), 404),
        2 => (format!("h{i}.w.example.com"), format!("/x/{i}"), 307),
        3 => (format!("u{i}.example.org"), format!("/q{i}"), 404),
        _ => ("go.example.com".into(), format!("/p/%zz{i}"), 400),
    }
}

/// A keep-alive connection that reconnects if the server closes it.
struct Conn {
    addr: SocketAddr,
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            addr,
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    fn get(&mut self, host: &str, path: &str) -> Response {
        send(&mut self.writer, "GET", path, host, &[]);
        let r =
            read_response(&mut self.reader, false).unwrap_or_else(|e| panic!("{host}{path}: {e}"));
        if r.header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
        {
            *self = Conn::open(self.addr);
        }
        r
    }
}

/// Sends requests `from..to` of the mix over `conns` parallel keep-alive
/// connections.
fn send_mix(addr: SocketAddr, from: usize, to: usize, conns: usize) {
    std::thread::scope(|scope| {
        for c in 0..conns {
            scope.spawn(move || {
                let mut conn = Conn::open(addr);
                let mut i = from + c;
                while i < to {
                    let (host, path, status) = mixed(i);
                    let r = conn.get(&host, &path);
                    assert_eq!(r.status, status, "{host}{path}: {r:?}");
                    if status == 302 {
                        assert_eq!(
                            r.location(),
                            format!("https://shop.example.com/product/sku-{i}")
                        );
                    }
                    i += conns;
                }
            });
        }
    });
}

#[test]
fn label_sets_stay_bounded_under_distinct_paths_and_hosts() {
    let gw = Gateway::start(BOUNDED_RULES);
    const FIRST: usize = 1_000;
    const ALL: usize = 100_000;
    const CONNS: usize = 4;

    send_mix(gw.addr, 0, FIRST, CONNS);
    let s1 = scrape_total(&gw, FIRST as f64);
    let n1 = s1.gateway_series();

    send_mix(gw.addr, FIRST, ALL, CONNS);
    let s2 = scrape_total(&gw, ALL as f64);
    let n2 = s2.gateway_series();
    assert_eq!(
        n1,
        n2,
        "series grew from {n1} to {n2}:\n{}",
        s2.gateway_lines()
    );

    // Same series, not just the same number.
    let keys = |s: &Scrape| -> Vec<(String, BTreeMap<String, String>)> {
        let mut k: Vec<_> = s
            .samples
            .iter()
            .filter(|x| x.name.starts_with("gateway_"))
            .map(|x| (x.name.clone(), x.labels.clone()))
            .collect();
        k.sort();
        k
    };
    assert_eq!(keys(&s1), keys(&s2));

    // No label value came from a request.
    for sample in s2.samples.iter().filter(|x| x.name.starts_with("gateway_")) {
        for v in sample.labels.values() {
            assert!(
                !v.contains("example.org") && !v.contains("sku-") && !v.contains("w.example"),
                "client value in a label: {} {:?}",
                sample.name,
                sample.labels
            );
        }
    }

    // And every request was counted where it belongs.
    let per = ALL / 5;
    s2.expect(
        "gateway_requests_total",
        &[("kind", "redirect"), ("code", "302")],
        per as f64,
    );
    s2.expect(
        "gateway_requests_total",
        &[("kind", "redirect"), ("code", "307")],
        per as f64,
    );
    s2.expect(
        "gateway_requests_total",
        &[("kind", "not_found"), ("code", "404")],
        (2 * per) as f64,
    );
    s2.expect(
        "gateway_requests_total",
        &[("kind", "bad_request"), ("code", "400")],
        per as f64,
    );
    s2.expect(
        "gateway_rule_hits_total",
        &[("rule", "product")],
        per as f64,
    );
    s2.expect("gateway_rule_hits_total", &[("rule", "wild")], per as f64);
}

// ---------------------------------------------------------------------------
// One log line per event
// ---------------------------------------------------------------------------

/// The WARN and ERROR lines the gateway logged after `from` bytes of log.
fn problems_since(gw: &Gateway, from: usize) -> Vec<String> {
    let log = gw.log_text();
    log.get(from..)
        .unwrap_or("")
        .lines()
        .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
        .map(str::to_string)
        .collect()
}

#[test]
fn each_upstream_failure_is_logged_once() {
    let dead = Upstream::start("dead", Behavior::Ok).kill();
    let good = Upstream::start("good", Behavior::Ok);
    let gw = Gateway::start(&format!(
        r#"
[[route]]
id = "plain"
host = "plain.example.com"
prefix = "/"
upstream = "plain"

[[route]]
id = "checked"
host = "checked.example.com"
prefix = "/"
upstream = "checked"

[[route]]
id = "retried"
host = "retried.example.com"
prefix = "/"
upstream = "retried"

[upstream.plain]
servers = ["127.0.0.1:{dead}"]
retries = 0

[upstream.checked]
servers = ["127.0.0.1:{dead}"]
health_check = {{ type = "tcp", interval = "1s", timeout = "200ms", unhealthy_after = 1 }}

[upstream.retried]
servers = ["127.0.0.1:{dead}", "{}"]
retries = 1
"#,
        good.addr
    ));
    // The backend going down: ours, not also Pingora's.
    assert!(
        gw.wait_log("backend marked down", WAIT),
        "{}",
        gw.log_text()
    );
    std::thread::sleep(Duration::from_millis(200));
    let lines = problems_since(&gw, 0);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("backend marked down"), "{lines:#?}");

    // A connect failure answered 502.
    let from = gw.log_text().len();
    assert_eq!(gw.get("plain.example.com", "/").status, 502);
    std::thread::sleep(Duration::from_millis(300));
    let lines = problems_since(&gw, from);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("\"reason\":\"connect\""), "{lines:#?}");

    // No healthy backend, answered 503.
    let from = gw.log_text().len();
    assert_eq!(gw.get("checked.example.com", "/").status, 503);
    std::thread::sleep(Duration::from_millis(300));
    let lines = problems_since(&gw, from);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("\"reason\":\"no_healthy\""), "{lines:#?}");

    // A connect failure retried on the good backend. Which backend the
    // round robin picks first is not fixed, so send a few requests: each
    // retry (counted by the metric) gives exactly one line, nothing else.
    let from = gw.log_text().len();
    for _ in 0..4 {
        assert_eq!(gw.get("retried.example.com", "/").status, 200);
    }
    std::thread::sleep(Duration::from_millis(300));
    let retries = gw.metric("gateway_upstream_retries_total", &[("upstream", "retried")]);
    let lines = problems_since(&gw, from);
    assert!(retries >= 1.0, "the dead backend was never picked");
    assert_eq!(lines.len() as f64, retries, "{lines:#?}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("retrying on another backend")),
        "{lines:#?}"
    );
}

#[test]
fn rust_log_naming_a_quieted_target_gets_its_lines() {
    let dead = Upstream::start("dead", Behavior::Ok).kill();
    let gw = Gateway::start_with(
        &format!(
            r#"
[[route]]
id = "checked"
host = "checked.example.com"
prefix = "/"
upstream = "checked"

[upstream.checked]
servers = ["127.0.0.1:{dead}"]
health_check = {{ type = "tcp", interval = "1s", timeout = "200ms", unhealthy_after = 1 }}
"#
        ),
        Options {
            env: &[("RUST_LOG", "info,pingora_load_balancing=info")],
            ..Options::default()
        },
    );
    assert!(gw.wait_log("becomes unhealthy", WAIT), "{}", gw.log_text());
}
