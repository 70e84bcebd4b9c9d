//! The TLS listener of the real binary, driven by the system `curl`:
//! HTTP/1.1 and HTTP/2 (ALPN), redirects and proxying with
//! `X-Forwarded-Proto: https`.

use crate::harness;

use crate::harness::{Behavior, Gateway, Options, Upstream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A self-signed certificate for localhost / 127.0.0.1: (cert PEM, key PEM).
fn self_signed() -> (String, String) {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("rcgen: cannot generate a certificate");
    (cert.pem(), key_pair.serialize_pem())
}

fn rules(upstream: &Upstream) -> String {
    format!(
        r#"
[[redirect]]
id = "summer"
host = "go.example.com"
path = "/summer"
to = "https://shop.example.com/sale?utm_source=go"
status = 302

[[redirect]]
id = "home"
host = "go.example.com"
path = "/"
to = "https://www.example.com/"
status = 301

[[route]]
id = "api"
host = "api.example.com"
prefix = "/v1/"
upstream = "api"

[upstream.api]
servers = ["{}"]
connect_timeout = "500ms"
read_timeout = "5s"
"#,
        upstream.addr
    )
}

/// Runs curl with `args`; fails clearly when curl is not installed, and
/// kills it after 20 s.
fn curl(args: &[&str]) -> Output {
    let mut child = match Command::new("curl")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!(
                "the TLS tests need the `curl` binary on PATH (with HTTP/2 support); install curl"
            )
        }
        Err(e) => panic!("cannot run curl: {e}"),
    };
    assert!(
        harness::exit_within(&mut child, Duration::from_secs(20)).is_some(),
        "curl {args:?} did not finish within 20 s"
    );
    child.wait_with_output().unwrap()
}

/// `curl -sk` to `https://<host>:<port><path>` resolved to the gateway's
/// TLS listener; `extra` are more curl options.
fn curl_gw(gw: &Gateway, host: &str, path: &str, extra: &[&str]) -> Output {
    let port = gw.tls.expect("gateway has no TLS listener").port();
    let resolve = format!("{host}:{port}:127.0.0.1");
    let url = format!("https://{host}:{port}{path}");
    let mut args = vec!["-sS", "-k", "--max-time", "10", "--resolve", &resolve];
    args.extend_from_slice(extra);
    args.push(&url);
    let o = curl(&args);
    assert!(
        o.status.success(),
        "curl {args:?} failed ({:?}): {}\ngateway log:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr),
        gw.log_text()
    );
    o
}

/// `(http_version, http_code, redirect_url)` of one request.
fn probe(gw: &Gateway, host: &str, path: &str, version_flag: &str) -> (String, String, String) {
    let o = curl_gw(
        gw,
        host,
        path,
        &[
            version_flag,
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code} %{redirect_url}",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut parts = out.splitn(3, ' ');
    (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").trim().to_string(),
    )
}

fn start() -> (Upstream, Gateway) {
    let up = Upstream::start("api", Behavior::Ok);
    let gw = Gateway::start_with(
        &rules(&up),
        Options {
            tls: Some(self_signed()),
            ..Options::default()
        },
    );
    (up, gw)
}

#[test]
fn redirect_over_http1_1() {
    let (_up, gw) = start();
    let (version, code, location) = probe(&gw, "go.example.com", "/summer", "--http1.1");
    assert_eq!(version, "1.1");
    assert_eq!(code, "302");
    assert_eq!(location, "https://shop.example.com/sale?utm_source=go");

    let (version, code, location) = probe(&gw, "go.example.com", "/", "--http1.1");
    assert_eq!(version, "1.1");
    assert_eq!(code, "301");
    assert_eq!(location, "https://www.example.com/");
}

#[test]
fn redirect_over_http2() {
    let (_up, gw) = start();
    let (version, code, location) = probe(&gw, "go.example.com", "/summer", "--http2");
    assert_eq!(version, "2", "ALPN did not negotiate h2");
    assert_eq!(code, "302");
    assert_eq!(location, "https://shop.example.com/sale?utm_source=go");

    let (version, code, _) = probe(&gw, "go.example.com", "/missing", "--http2");
    assert_eq!(version, "2");
    assert_eq!(code, "404");
}

/// The request line and headers the upstream saw for `path`, waiting briefly.
fn seen(up: &Upstream, path: &str) -> harness::Seen {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(s) = up
            .requests()
            .into_iter()
            .find(|s| s.request_line.contains(path))
        {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "upstream never saw {path}: {:?}",
            up.requests()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn proxied_over_tls_http1_1_and_http2() {
    let (up, gw) = start();
    for (flag, version, path) in [
        ("--http1.1", "1.1", "/v1/items?via=h1"),
        ("--http2", "2", "/v1/items?via=h2"),
    ] {
        let o = curl_gw(
            &gw,
            "api.example.com",
            path,
            &[flag, "-w", "\n%{http_version} %{http_code}"],
        );
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, status) = out.rsplit_once('\n').unwrap();
        assert_eq!(status, format!("{version} 200"), "{flag}: {out}");
        assert_eq!(body, "api\n", "{flag}: body not from the upstream");
        let s = seen(&up, path);
        assert!(
            s.request_line.starts_with(&format!("GET {path} HTTP/1.1")),
            "{flag}: {}",
            s.request_line
        );
        assert_eq!(
            s.headers.get("x-forwarded-proto").map(String::as_str),
            Some("https"),
            "{flag}: {s:?}"
        );
        assert!(
            s.headers
                .get("host")
                .is_some_and(|h| h.starts_with("api.example.com")),
            "{flag}: {s:?}"
        );
    }
}
