//! The client address behind trusted proxies: splits, click events and
//! access logs use the right-most untrusted `X-Forwarded-For` hop when the
//! connection comes from a trusted proxy, and the TCP peer otherwise. Also
//! what a routed request tells its upstream about the client
//! (`X-Forwarded-For`, `X-Real-IP`, `Forwarded`).

use crate::harness;

use crate::harness::{wait_until, Gateway, Options, RawUpstream};
use std::collections::HashSet;
use std::time::Duration;

const RULES: &str = r#"
[[redirect]]
id = "home"
host = "go.example.com"
path = "/"
to = "https://shop.example.com/"

[[redirect]]
id = "ab"
host = "go.example.com"
path = "/ab"
split = [ { to = "https://a.example.com/", weight = 50 }, { to = "https://b.example.com/", weight = 50 } ]
"#;

fn start(trusted: Option<&str>, clicks: &std::path::Path) -> Gateway {
    let dir = clicks.display().to_string();
    let mut env = vec![
        ("GATEWAY_LOG_ACCESS", "true"),
        ("GATEWAY_CLICKS_ENABLED", "true"),
        ("GATEWAY_CLICKS_DIR", dir.as_str()),
        ("GATEWAY_CLICKS_FLUSH_INTERVAL", "50ms"),
    ];
    if let Some(t) = trusted {
        env.push(("GATEWAY_SERVER_TRUSTED_PROXIES", t));
    }
    // The env slice must outlive the call only.
    let env: Vec<(&str, &str)> = env;
    Gateway::start_with(
        RULES,
        Options {
            env: &env,
            ..Default::default()
        },
    )
}

fn access_client_ips(gw: &Gateway) -> Vec<String> {
    gw.access_log()
        .iter()
        .filter_map(|v| v["client_ip"].as_str().map(str::to_string))
        .collect()
}

fn click_client_ips(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "jsonl") {
            for line in std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
            {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                    out.push(v["client_ip"].as_str().unwrap_or("").to_string());
                }
            }
        }
    }
    out
}

#[test]
fn a_trusted_proxy_names_the_client() {
    let clicks = tempfile::tempdir().unwrap();
    let gw = start(Some("127.0.0.0/8"), clicks.path());
    let r = gw.req(
        "GET",
        "go.example.com",
        "/",
        &[
            ("X-Forwarded-For", "1.2.3.4, 198.51.100.23"),
            ("User-Agent", "ua-1"),
        ],
    );
    assert_eq!(r.status, 302);
    assert!(
        wait_until(Duration::from_secs(5), || access_client_ips(&gw)
            == ["198.51.100.23"]),
        "{:?}",
        access_client_ips(&gw)
    );
    assert!(
        wait_until(Duration::from_secs(5), || click_client_ips(clicks.path())
            == ["198.51.100.0"]),
        "{:?}",
        click_client_ips(clicks.path())
    );
}

#[test]
fn without_trust_the_header_is_ignored() {
    let clicks = tempfile::tempdir().unwrap();
    let gw = start(None, clicks.path());
    gw.req(
        "GET",
        "go.example.com",
        "/",
        &[("X-Forwarded-For", "198.51.100.23"), ("User-Agent", "ua-1")],
    );
    assert!(
        wait_until(Duration::from_secs(5), || access_client_ips(&gw)
            == ["127.0.0.1"]),
        "{:?}",
        access_client_ips(&gw)
    );
    assert!(
        wait_until(Duration::from_secs(5), || click_client_ips(clicks.path())
            == ["127.0.0.0"]),
        "{:?}",
        click_client_ips(clicks.path())
    );
}

#[test]
fn splits_stick_to_the_forwarded_client() {
    let clicks = tempfile::tempdir().unwrap();
    let gw = start(Some("127.0.0.1"), clicks.path());
    let variant = |ip: &str| {
        gw.req(
            "GET",
            "go.example.com",
            "/ab",
            &[("X-Forwarded-For", ip), ("User-Agent", "same-browser")],
        )
        .location()
        .to_string()
    };
    let mut seen = HashSet::new();
    for i in 0..64 {
        let ip = format!("203.0.113.{i}");
        let first = variant(&ip);
        assert_eq!(variant(&ip), first, "client {ip} switched variant");
        seen.insert(first);
    }
    // Same browser, different clients: both variants appear.
    assert_eq!(seen.len(), 2, "{seen:?}");
}

/// A gateway routing `api.example.com` to `up`, trusting `trusted`.
fn start_routed(up: &RawUpstream, trusted: Option<&str>) -> Gateway {
    let rules = harness::api_route(&[up.addr.to_string()], "");
    let mut env = vec![("GATEWAY_LOG_ACCESS", "true")];
    if let Some(t) = trusted {
        env.push(("GATEWAY_SERVER_TRUSTED_PROXIES", t));
    }
    Gateway::start_with(
        &rules,
        Options {
            env: &env,
            ..Default::default()
        },
    )
}

#[test]
fn forwarded_for_lines_reach_the_upstream_as_one_chain() {
    let up = RawUpstream::start();
    let gw = start_routed(&up, None);
    let r = gw.req(
        "GET",
        "api.example.com",
        "/",
        &[
            ("X-Forwarded-For", "198.51.100.1"),
            ("X-Forwarded-For", "203.0.113.5, 192.0.2.9"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Both lines, in order, then the TCP peer; one header line.
    assert_eq!(
        up.last("x-forwarded-for"),
        ["198.51.100.1, 203.0.113.5, 192.0.2.9, 127.0.0.1"]
    );
}

#[test]
fn an_untrusted_client_cannot_name_an_address_to_the_upstream() {
    let up = RawUpstream::start();
    let gw = start_routed(&up, None);
    let r = gw.req(
        "GET",
        "api.example.com",
        "/",
        &[
            ("Forwarded", "for=1.2.3.4;proto=https"),
            ("X-Real-IP", "1.2.3.4"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        up.last("forwarded").is_empty(),
        "{:?}",
        up.last("forwarded")
    );
    // X-Real-IP is the address the gateway believes: here the TCP peer.
    assert_eq!(up.last("x-real-ip"), ["127.0.0.1"]);
    assert_eq!(up.last("x-forwarded-for"), ["127.0.0.1"]);
}

#[test]
fn a_trusted_proxy_keeps_forwarded_and_the_whole_chain_names_the_client() {
    let up = RawUpstream::start();
    let gw = start_routed(&up, Some("127.0.0.1"));
    let r = gw.req(
        "GET",
        "api.example.com",
        "/",
        &[
            // The client's own line first; the proxy's line, with the
            // address it saw, last.
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Forwarded-For", "198.51.100.23"),
            ("Forwarded", "for=198.51.100.23;proto=https"),
            ("X-Real-IP", "10.9.9.9"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.last("forwarded"), ["for=198.51.100.23;proto=https"]);
    assert_eq!(up.last("x-real-ip"), ["198.51.100.23"]);
    assert_eq!(
        up.last("x-forwarded-for"),
        ["1.2.3.4, 198.51.100.23, 127.0.0.1"]
    );
    assert!(
        wait_until(Duration::from_secs(5), || access_client_ips(&gw)
            == ["198.51.100.23"]),
        "{:?}",
        access_client_ips(&gw)
    );
}

#[test]
fn a_redirect_reads_every_forwarded_for_line() {
    // Redirects are answered on the HTTP/1 fast path, which reads headers
    // on its own.
    let clicks = tempfile::tempdir().unwrap();
    let gw = start(Some("127.0.0.1"), clicks.path());
    let r = gw.req(
        "GET",
        "go.example.com",
        "/",
        &[
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Forwarded-For", "198.51.100.23"),
            ("User-Agent", "ua-1"),
        ],
    );
    assert_eq!(r.status, 302);
    assert!(
        wait_until(Duration::from_secs(5), || access_client_ips(&gw)
            == ["198.51.100.23"]),
        "{:?}",
        access_client_ips(&gw)
    );
}
