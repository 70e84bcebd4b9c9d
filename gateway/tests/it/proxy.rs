//! Forwarding to upstream pools through the real binary: balancing, health
//! checks, retries, timeouts, failures and forwarding headers.

use crate::harness;

use crate::harness::{wait_until, Behavior, Gateway, Upstream};
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
    let rules = harness::api_route(&[dead, good.addr.to_string()], "retries = 1");
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

/// Routes to a raw upstream: `api` with the default limits, `small` with
/// `max_body = "1KiB"`, `ws` with upgrades allowed.
fn raw_rules(up: &harness::RawUpstream) -> String {
    format!(
        r#"
[[route]]
id = "api"
host = "api.example.com"
prefix = "/"
upstream = "raw"

[[route]]
id = "small"
host = "small.example.com"
prefix = "/"
upstream = "raw"
max_body = "1KiB"

[[route]]
id = "ws"
host = "ws.example.com"
prefix = "/"
upstream = "raw"
upgrade = true

[upstream.raw]
servers = ["{}"]
read_timeout = "5s"
"#,
        up.addr
    )
}

fn raw_client(gw: &Gateway) -> (std::net::TcpStream, std::io::BufReader<std::net::TcpStream>) {
    let s = std::net::TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = std::io::BufReader::new(s.try_clone().unwrap());
    (s, r)
}

#[test]
fn a_repeated_content_length_reaches_the_upstream_as_one_value() {
    use std::io::Write;
    let up = harness::RawUpstream::start();
    let gw = Gateway::start(&raw_rules(&up));
    for head in [
        "Content-Length: 5, 5\r\n",
        "Content-Length: 5\r\nContent-Length: 5\r\n",
    ] {
        let (mut s, mut r) = raw_client(&gw);
        write!(
            s,
            "POST /v1/a HTTP/1.1\r\nHost: api.example.com\r\n{head}\r\nhello"
        )
        .unwrap();
        let resp = harness::read_response(&mut r, false).unwrap();
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (200, "ok\n"),
            "{head:?}"
        );
    }
    let seen = up.text().to_ascii_lowercase();
    assert_eq!(seen.matches("content-length: 5\r\n").count(), 2, "{seen}");
    assert!(!seen.contains("5, 5"), "{seen}");
    assert_eq!(seen.matches("post /v1/a ").count(), 2, "{seen}");

    // Differing values are refused and nothing reaches the upstream.
    let before = up.text().len();
    let (mut s, mut r) = raw_client(&gw);
    s.write_all(
        b"POST /v1/b HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 5, 6\r\n\r\nhello!",
    )
    .unwrap();
    assert_eq!(harness::read_response(&mut r, false).unwrap().status, 400);
    assert_eq!(up.text().len(), before);
}

#[test]
fn bytes_sent_while_a_request_is_proxied_are_the_next_request() {
    use std::io::Write;
    let slow = Upstream::start("slow", Behavior::Slow(Duration::from_millis(400)));
    let gw = Gateway::start(&rules(&[&slow], ""));
    // A late CRLF, then a pipelined request, while the first waits.
    let (mut s, mut r) = raw_client(&gw);
    s.write_all(b"GET /v1/a HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(b"\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"GET /v1/b HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        .unwrap();
    for _ in 0..2 {
        let resp = harness::read_response(&mut r, false).unwrap();
        assert_eq!((resp.status, resp.text().as_str()), (200, "slow\n"));
    }
    // Requests pipelined behind one with a body are all answered.
    let (mut s, mut r) = raw_client(&gw);
    s.write_all(
        b"POST /v1/c HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 5\r\n\r\nhello\
          GET /v1/d HTTP/1.1\r\nHost: api.example.com\r\n\r\n\
          GET /v1/e HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
    )
    .unwrap();
    for _ in 0..3 {
        assert_eq!(harness::read_response(&mut r, false).unwrap().status, 200);
    }
    let paths: Vec<String> = slow
        .requests()
        .iter()
        .map(|s| s.request_line.clone())
        .collect();
    assert_eq!(
        paths,
        [
            "GET /v1/a HTTP/1.1",
            "GET /v1/b HTTP/1.1",
            "POST /v1/c HTTP/1.1",
            "GET /v1/d HTTP/1.1",
            "GET /v1/e HTTP/1.1"
        ]
    );
    let errors = gw.metric(
        "gateway_upstream_errors_total",
        &[("reason", "connect"), ("upstream", "api")],
    );
    assert_eq!(errors, 0.0, "no request was failed as an upstream error");
}

#[test]
fn bodies_over_max_body_get_413_and_slow_bodies_time_out() {
    use std::io::Write;
    let up = harness::RawUpstream::start();
    let gw = Gateway::start_with(
        &raw_rules(&up),
        harness::Options {
            extra_config: "",
            env: &[("GATEWAY_SERVER_BODY_TIMEOUT", "1s")],
            ..Default::default()
        },
    );
    // Declared over the default 1 MiB: refused before the body is read.
    let (mut s, mut r) = raw_client(&gw);
    s.write_all(
        b"POST /v1/big HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 2097152\r\n\r\n",
    )
    .unwrap();
    let resp = harness::read_response(&mut r, false).unwrap();
    assert_eq!(resp.status, 413);
    // Chunked over the route's 1 KiB: refused once it passes the limit.
    let (mut s, mut r) = raw_client(&gw);
    let chunk = "x".repeat(800);
    write!(
        s,
        "POST /up HTTP/1.1\r\nHost: small.example.com\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n"
    )
    .unwrap();
    assert_eq!(harness::read_response(&mut r, false).unwrap().status, 413);
    // Under the limit: forwarded.
    let (mut s, mut r) = raw_client(&gw);
    write!(
        s,
        "POST /up HTTP/1.1\r\nHost: small.example.com\r\nContent-Length: 800\r\n\r\n{chunk}"
    )
    .unwrap();
    assert_eq!(harness::read_response(&mut r, false).unwrap().status, 200);
    assert!(
        !up.text().contains("/v1/big"),
        "a refused body never goes upstream"
    );
    // A body that stops: 408 after body_timeout, not a held connection.
    let (mut s, mut r) = raw_client(&gw);
    s.write_all(b"POST /v1/slow HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 10\r\n\r\nab")
        .unwrap();
    assert_eq!(harness::read_response(&mut r, false).unwrap().status, 408);
    // Counted once the gateway has drained what it reads of a refused
    // body (up to 2 s for a client that sends none).
    assert!(wait_until(Duration::from_secs(10), || gw.metric(
        "gateway_requests_total",
        &[("code", "413"), ("kind", "bad_request")]
    ) >= 2.0));
}

#[test]
fn upgrades_pass_only_on_routes_that_allow_them() {
    use std::io::Write;
    let up = harness::RawUpstream::start();
    let gw = Gateway::start(&raw_rules(&up));
    for host in ["api.example.com", "ws.example.com"] {
        let (mut s, mut r) = raw_client(&gw);
        write!(
            s,
            "GET /chat HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .unwrap();
        assert_eq!(harness::read_response(&mut r, false).unwrap().status, 200);
    }
    let seen = up.text().to_ascii_lowercase();
    let requests: Vec<&str> = seen.split("get /chat ").skip(1).collect();
    assert_eq!(requests.len(), 2, "{seen}");
    let api = requests
        .iter()
        .find(|r| r.contains("host: api.example.com"))
        .unwrap();
    let ws = requests
        .iter()
        .find(|r| r.contains("host: ws.example.com"))
        .unwrap();
    assert!(!api.contains("upgrade: websocket"), "{api}");
    assert!(ws.contains("upgrade: websocket"), "{ws}");
}

/// One route to a pool of `server` with an HTTP check every 2 s and the
/// default thresholds (down after 3 failures, up after 2 successes), as in
/// the bundled config.
fn checked_rules(server: &str) -> String {
    harness::api_route(
        &[server.to_string()],
        r#"health_check = { path = "/healthz", interval = "2s", timeout = "1s" }"#,
    )
}

#[test]
fn upstream_started_just_before_the_gateway_answers_the_first_request() {
    let up = Upstream::start("a", Behavior::Ok);
    let gw = Gateway::start(&checked_rules(&up.addr.to_string()));
    let r = gw.get("api.example.com", "/v1/users");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "a\n"),
        "{}",
        gw.log_text()
    );
}

#[test]
fn upstream_started_after_the_gateway_took_it_down_answers_the_first_request() {
    // The README's order: the gateway runs (and finds nothing on the port)
    // before the throwaway upstream starts and is called at once.
    let port = Upstream::start("gone", Behavior::Ok).kill();
    let gw = Gateway::start(&checked_rules(&format!("127.0.0.1:{port}")));
    assert!(
        wait_until(Duration::from_secs(10), || gw
            .log_text()
            .contains("backend marked down")),
        "{}",
        gw.log_text()
    );
    let up = Upstream::start_on("a", Behavior::Ok, port);
    let r = gw.get("api.example.com", "/v1/users");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "a\n"),
        "{}",
        gw.log_text()
    );
    drop(up);
}

#[test]
fn upstream_dead_at_start_is_taken_out_by_the_first_check_and_not_used() {
    let port = Upstream::start("dead", Behavior::Ok).kill();
    let gw = Gateway::start(&checked_rules(&format!("127.0.0.1:{port}")));
    // The first round (at start) decides: not the third one, 4 s later.
    assert!(
        wait_until(Duration::from_millis(2500), || gw
            .log_text()
            .contains("backend marked down")),
        "{}",
        gw.log_text()
    );
    for _ in 0..3 {
        let r = gw.get("api.example.com", "/");
        assert_eq!(r.status, 503, "{}", gw.log_text());
    }
    let log = gw.log_text();
    assert!(log.contains("\"reason\":\"no_healthy\""), "{log}");
    assert!(!log.contains("\"reason\":\"connect\""), "{log}");
}

/// An HTTP/1.0 upstream: `/length` answers with a Content-Length, anything
/// else with a body that ends when the connection closes.
fn http10_upstream() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = harness::listen();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let answer: &[u8] = if head.starts_with("GET /length ") {
                    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nsized\n"
                } else {
                    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close\n"
                };
                let _ = stream.write_all(answer);
            });
        }
    });
    addr
}

#[test]
fn http10_upstream_answers_an_http11_client_as_http11_correctly_framed() {
    use std::io::{BufRead, BufReader};
    let up = http10_upstream();
    let gw = Gateway::start(&format!(
        r#"
[[route]]
id = "old"
host = "old.example.com"
prefix = "/"
upstream = "old"

[upstream.old]
servers = ["{up}"]
"#
    ));
    // Both answers on one keep-alive connection: the second is only read
    // right if the first was framed exactly.
    let mut stream = std::net::TcpStream::connect(gw.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for (path, body) in [("/length", "sized\n"), ("/close", "until close\n")] {
        harness::send(&mut stream, "GET", path, "old.example.com", &[]);
        let head = String::from_utf8_lossy(reader.fill_buf().unwrap()).into_owned();
        assert!(head.starts_with("HTTP/1.1 200 "), "{path}: {head:?}");
        let r = harness::read_response(&mut reader, false).unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, body), "{path}: {r:?}");
        assert!(
            r.header("content-length").is_some()
                != r.header("transfer-encoding")
                    .is_some_and(|t| t.contains("chunked")),
            "{path}: exactly one framing: {r:?}"
        );
    }
}

/// Rules for the shutdown tests: a slow upstream that answers after 1 s.
fn slow_rules(up: &Upstream) -> String {
    harness::api_route(&[up.addr.to_string()], "read_timeout = \"5s\"")
}

/// Waits (bounded) for the process to end; how long it took.
fn wait_exit(gw: &mut Gateway, bound: Duration) -> Option<(Duration, std::process::ExitStatus)> {
    let started = Instant::now();
    harness::exit_within(&mut gw.child, bound).map(|status| (started.elapsed(), status))
}

const GRACE_5S: harness::Options<'static> = harness::Options {
    files: &[],
    extra_config: "",
    tls: None,
    env: &[("GATEWAY_SERVER_GRACE_PERIOD", "5s")],
    port: None,
    file_size_limit: None,
};

#[test]
fn sigterm_on_an_idle_gateway_does_not_wait_for_the_grace_period() {
    let up = Upstream::start("slow", Behavior::Slow(Duration::from_secs(1)));
    let mut gw = Gateway::start_with(&slow_rules(&up), GRACE_5S);
    assert_eq!(gw.get("api.example.com", "/").status, 200);
    gw.signal("TERM");
    let ended = wait_exit(&mut gw, Duration::from_secs(10));
    let (took, status) = ended.unwrap_or_else(|| panic!("still running; {}", gw.log_text()));
    assert!(status.success(), "{status:?}; {}", gw.log_text());
    // The grace period is 5 s; nothing was in flight.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(!gw.path("gateway.pid").exists(), "pid file left behind");
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_then_exits() {
    let up = Upstream::start("slow", Behavior::Slow(Duration::from_secs(1)));
    let mut gw = Gateway::start_with(&slow_rules(&up), GRACE_5S);
    let addr = gw.addr;
    let client = std::thread::spawn(move || {
        harness::request(addr, "GET", "/in-flight", "api.example.com", &[])
    });
    assert!(wait_until(Duration::from_secs(5), || up
        .hits
        .load(std::sync::atomic::Ordering::Relaxed)
        == 1));
    gw.signal("TERM");
    let signalled = Instant::now();
    let r = client.join().unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "slow\n"));
    let ended = wait_exit(&mut gw, Duration::from_secs(10));
    let (_, status) = ended.unwrap_or_else(|| panic!("still running; {}", gw.log_text()));
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "took {:?}",
        signalled.elapsed()
    );
}

#[test]
fn after_a_chunked_request_the_connection_keeps_the_fronts_limits() {
    use std::io::{Read, Write};
    let up = Upstream::start("a", Behavior::Ok);
    let gw = Gateway::start_with(
        &rules(&[&up], ""),
        harness::Options {
            env: &[("GATEWAY_SERVER_KEEPALIVE_TIMEOUT", "2s")],
            ..Default::default()
        },
    );
    let (mut s, mut r) = raw_client(&gw);
    s.write_all(
        b"POST /v1/up HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(harness::read_response(&mut r, false).unwrap().status, 200);
    // The next head is read by the front again: its limits apply.
    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
        "a".repeat(9 * 1024)
    );
    s.write_all(long.as_bytes()).unwrap();
    assert_eq!(harness::read_response(&mut r, false).unwrap().status, 414);
    // And on another connection, the idle deadline.
    let (mut s, mut r) = raw_client(&gw);
    s.write_all(
        b"POST /v1/up HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(harness::read_response(&mut r, false).unwrap().status, 200);
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "closed when idle, without an answer");
    assert!(
        gw.metric(
            "gateway_connections_closed_total",
            &[("reason", "keepalive_timeout")]
        ) >= 1.0
    );
}

/// Route `api` to `up` with `tables` (its header changes), and route
/// `dead` to a pool nothing listens on, whose 502 carries `X-Route`.
fn header_rules(up: &Upstream, dead_port: u16, tables: &str) -> String {
    format!(
        r#"
[[route]]
id = "api"
host = "api.example.com"
prefix = "/"
upstream = "api"
{tables}

[[route]]
id = "dead"
host = "dead.example.com"
prefix = "/"
upstream = "dead"
response_headers = {{ set = {{ "X-Route" = "dead" }}, remove = ["Cache-Control"] }}

[upstream.api]
servers = ["{}"]

[upstream.dead]
servers = ["127.0.0.1:{dead_port}"]
connect_timeout = "500ms"
"#,
        up.addr
    )
}

const TABLES: &str = r#"request_headers = { set = { "X-Api-Version" = "1", "X-Team" = "payments" }, remove = ["Cookie"] }
response_headers = { set = { "Strict-Transport-Security" = "max-age=31536000" }, remove = ["Server", "X-Upstream"] }"#;

#[test]
fn route_header_changes_reach_the_upstream_and_the_client() {
    let up = Upstream::start("a", Behavior::Ok);
    let dead = Upstream::start("dead", Behavior::Ok).kill();
    let gw = Gateway::start(&header_rules(&up, dead, TABLES));
    let r = gw.req(
        "GET",
        "api.example.com",
        "/v1/items",
        &[
            ("Cookie", "session=secret"),
            ("X-Team", "spoofed"),
            ("X-Keep", "yes"),
            ("X-Forwarded-For", "203.0.113.9"),
        ],
    );
    assert_eq!((r.status, r.text().as_str()), (200, "a\n"));
    let s = up.requests().pop().unwrap();
    assert_eq!(s.headers["x-api-version"], "1");
    assert_eq!(s.headers["x-team"], "payments", "set replaces the client's");
    assert!(!s.headers.contains_key("cookie"), "{:?}", s.headers);
    assert_eq!(s.headers["x-keep"], "yes");
    // The gateway's own headers, as without the tables.
    assert_eq!(s.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(s.headers["x-forwarded-proto"], "http");
    assert_eq!(s.headers["x-forwarded-host"], "api.example.com");
    assert_eq!(s.headers["x-real-ip"], "127.0.0.1");
    assert_eq!(s.headers["host"], "api.example.com");
    assert_eq!(
        Some(s.headers["x-request-id"].as_str()),
        r.header("x-request-id")
    );

    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    assert_eq!(r.header("server"), None);
    assert_eq!(r.header("x-upstream"), None);
    assert_eq!(r.header("content-type"), Some("text/plain"));

    // The gateway's own answer for a route gets the route's changes too.
    let r = gw.get("dead.example.com", "/");
    assert_eq!((r.status, r.text().as_str()), (502, "bad gateway\n"));
    assert_eq!(r.header("x-route"), Some("dead"));
    assert_eq!(r.header("cache-control"), None);
    assert_eq!(r.header("content-length"), Some("12"));
}

#[test]
fn a_reload_changes_a_routes_headers() {
    let up = Upstream::start("a", Behavior::Ok);
    let dead = Upstream::start("dead", Behavior::Ok).kill();
    let gw = Gateway::start(&header_rules(&up, dead, ""));
    let r = gw.req("GET", "api.example.com", "/", &[("Cookie", "a=1")]);
    assert_eq!(r.header("x-upstream"), Some("a"));
    assert_eq!(up.requests().pop().unwrap().headers["cookie"], "a=1");

    std::fs::write(gw.path("rules.toml"), header_rules(&up, dead, TABLES)).unwrap();
    gw.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(10), || gw
            .get("api.example.com", "/")
            .header("x-upstream")
            .is_none()),
        "{}",
        gw.log_tail()
    );
    let r = gw.req("GET", "api.example.com", "/", &[("Cookie", "a=1")]);
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    let s = up.requests().pop().unwrap();
    assert!(!s.headers.contains_key("cookie"));
    assert_eq!(s.headers["x-team"], "payments");
}
