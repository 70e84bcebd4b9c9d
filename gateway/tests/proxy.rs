//! Forwarding to upstream pools through the real binary: balancing, health
//! checks, retries, timeouts, failures and forwarding headers.

mod common;

use common::{wait_until, Behavior, Gateway, Upstream};
use std::time::{Duration, Instant};

/// Rules with one route per host to a pool of `servers`.
fn rules(servers: &[&Upstream], extra_pool: &str) -> String {
    let list: Vec<String> = servers.iter().map(|u| format!("\"{}\"", u.addr)).collect();
    format!(
        r#"
[[route]]
id = "api"
host = "api.example.com"
prefix = "/"
upstream = "api"

[[route]]
id = "legacy"
host = "legacy.example.com"
prefix = "/old-api/"
upstream = "api"
strip_prefix = true
host_header = "internal.example.com"

[upstream.api]
servers = [{}]
connect_timeout = "500ms"
read_timeout = "700ms"
{extra_pool}
"#,
        list.join(", ")
    )
}

#[test]
fn round_robin_spreads_over_three_upstreams() {
    let ups: Vec<Upstream> = ["a", "b", "c"]
        .iter()
        .map(|n| Upstream::start(n, Behavior::Ok))
        .collect();
    let gw = Gateway::start(&rules(&ups.iter().collect::<Vec<_>>(), ""));
    for _ in 0..30 {
        let r = gw.get("api.example.com", "/v1/items");
        assert_eq!(r.status, 200);
    }
    for u in &ups {
        assert_eq!(
            u.hits.load(std::sync::atomic::Ordering::Relaxed),
            10,
            "upstream {}",
            u.name
        );
    }
}

#[test]
fn forwarding_headers_and_request_id() {
    let up = Upstream::start("a", Behavior::Ok);
    let gw = Gateway::start(&rules(&[&up], ""));
    let r = gw.req(
        "GET",
        "api.example.com",
        "/v1/items?x=1",
        &[("X-Forwarded-For", "203.0.113.9")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "a\n");
    let returned_id = r
        .header("x-request-id")
        .expect("request id returned")
        .to_string();
    let seen = up.requests();
    let s = seen.last().unwrap();
    assert_eq!(s.request_line, "GET /v1/items?x=1 HTTP/1.1");
    assert_eq!(s.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(s.headers["x-forwarded-proto"], "http");
    assert_eq!(s.headers["x-forwarded-host"], "api.example.com");
    assert_eq!(s.headers["host"], "api.example.com");
    assert_eq!(s.headers["x-request-id"], returned_id);
    assert_eq!(returned_id.len(), 36);
    // A client-supplied id is passed through and returned.
    let r = gw.req(
        "GET",
        "api.example.com",
        "/",
        &[("X-Request-Id", "trace-42")],
    );
    assert_eq!(r.header("x-request-id"), Some("trace-42"));
    assert_eq!(
        up.requests().last().unwrap().headers["x-request-id"],
        "trace-42"
    );
}

#[test]
fn strip_prefix_and_host_header() {
    let up = Upstream::start("a", Behavior::Ok);
    let gw = Gateway::start(&rules(&[&up], ""));
    let r = gw.get("legacy.example.com", "/old-api/users/7?full=1");
    assert_eq!(r.status, 200);
    let s = up.requests().pop().unwrap();
    assert_eq!(s.request_line, "GET /users/7?full=1 HTTP/1.1");
    assert_eq!(s.headers["host"], "internal.example.com");
    assert_eq!(s.headers["x-forwarded-host"], "legacy.example.com");
}

#[test]
fn retry_on_connection_refused_goes_to_another_backend() {
    let good = Upstream::start("good", Behavior::Ok);
    let dead_port = Upstream::start("dead", Behavior::Ok).kill();
    let dead = format!("127.0.0.1:{dead_port}");
    let rules = format!(
        r#"
[[route]]
id = "api"
host = "api.example.com"
prefix = "/"
upstream = "api"

[upstream.api]
servers = ["{dead}", "{}"]
retries = 1
"#,
        good.addr
    );
    let gw = Gateway::start(&rules);
    // No health checks: the dead backend is picked every other request and
    // each of those must be retried on the good one.
    for i in 0..10 {
        let r = gw.get("api.example.com", &format!("/r/{i}"));
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "good\n"),
            "request {i}"
        );
    }
    assert_eq!(good.hits.load(std::sync::atomic::Ordering::Relaxed), 10);
    assert!(gw.log_text().contains("retrying on another backend"));
}

#[test]
fn connect_failure_after_retries_is_502_and_every_backend_down_is_503() {
    let dead = Upstream::start("dead", Behavior::Ok).kill();
    let rules = format!(
        r#"
[[route]]
id = "api"
host = "api.example.com"
prefix = "/"
upstream = "api"

[[route]]
id = "checked"
host = "checked.example.com"
prefix = "/"
upstream = "checked"

[upstream.api]
servers = ["127.0.0.1:{dead}"]
retries = 2

[upstream.checked]
servers = ["127.0.0.1:{dead}"]
health_check = {{ type = "tcp", interval = "100ms", timeout = "100ms", unhealthy_after = 1, healthy_after = 1 }}
"#
    );
    let gw = Gateway::start(&rules);
    let r = gw.get("api.example.com", "/");
    assert_eq!(r.status, 502);
    assert_eq!(r.text(), "bad gateway\n");
    assert!(wait_until(Duration::from_secs(5), || gw
        .get("checked.example.com", "/")
        .status
        == 503));
    let log = gw.log_text();
    assert!(
        log.contains("\"reason\":\"connect\"") && log.contains("\"upstream\":\"api\""),
        "{log}"
    );
    assert!(
        log.contains("\"reason\":\"no_healthy\"") && log.contains("\"upstream\":\"checked\""),
        "{log}"
    );
}

#[test]
fn slow_upstream_gives_504() {
    let slow = Upstream::start("slow", Behavior::Slow(Duration::from_secs(3)));
    let gw = Gateway::start(&rules(&[&slow], ""));
    let started = Instant::now();
    let r = gw.get("api.example.com", "/slow");
    assert_eq!(r.status, 504);
    assert_eq!(r.text(), "gateway timeout\n");
    // Answered on the read timeout, not after the upstream finished.
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(gw.log_text().contains("\"reason\":\"timeout\""));
}

#[test]
fn health_checks_take_a_killed_upstream_out_and_put_it_back() {
    let a = Upstream::start("a", Behavior::Ok);
    let b = Upstream::start("b", Behavior::Ok);
    let hc = r#"health_check = { path = "/healthz", interval = "100ms", timeout = "200ms", unhealthy_after = 2, healthy_after = 2 }"#;
    let gw = Gateway::start(&rules(&[&a, &b], hc));
    let port = b.kill();
    assert!(
        wait_until(Duration::from_secs(5), || gw
            .log_text()
            .contains("backend marked down")),
        "{}",
        gw.log_text()
    );
    // Every request now lands on a, without a single error.
    for _ in 0..20 {
        let r = gw.get("api.example.com", "/");
        assert_eq!((r.status, r.text().as_str()), (200, "a\n"));
    }
    let b = Upstream::start_on("b", Behavior::Ok, port);
    assert!(wait_until(Duration::from_secs(5), || gw
        .log_text()
        .contains("backend marked up")));
    let mut seen_b = false;
    for _ in 0..10 {
        seen_b |= gw.get("api.example.com", "/").text() == "b\n";
    }
    assert!(seen_b, "b never came back");
    drop(b);
}
