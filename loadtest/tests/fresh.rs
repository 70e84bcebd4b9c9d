//! The `fresh` scenario: a new connection per request, plain and TLS, with
//! and without resumption. The TLS client against a local rustls server
//! (full handshakes, resumption, the pinned certificate as the only one
//! trusted), then bounded runs against the real gateway's plain and TLS
//! listeners, the nginx TLS configuration, and `compare --scenario fresh
//! --tls` where nginx is installed. No timing is asserted.

mod common;

use common::{gateway_binary, rt};
use loadtest::client::{Conn, ErrorKind};
use loadtest::genlinks::{self, DEFAULT_HOST};
use loadtest::nginx::{find_binary, prepare, render, NginxConfig, NginxTls};
use loadtest::run::{self, RunOptions};
use loadtest::scenario::Scenario;
use loadtest::servers::{self, free_port, loopback, GatewaySpec, GatewayTls};
use loadtest::tls::{self, ClientTls, Crypto, TlsMode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn cert(mode: TlsMode, dir: &Path) -> tls::TestCert {
    tls::generate(mode, DEFAULT_HOST, &dir.join(mode.name())).expect("openssl makes a certificate")
}

/// A TLS server answering every request with a 302 and closing, like the
/// gateway and nginx do for `Connection: close`; rustls' default server
/// configuration (an in-memory session cache, TLS 1.3 tickets).
async fn local_server(c: &tls::TestCert) -> SocketAddr {
    let certs = vec![CertificateDer::from_pem_file(&c.cert).unwrap()];
    let key = PrivateKeyDer::from_pem_file(&c.key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.1 302 Found\r\nLocation: https://shop.example.com/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

fn hot_close() -> Vec<u8> {
    servers::hot_request(DEFAULT_HOST)
}

/// Three requests, each on a new connection; returns (connects, resumed).
async fn three(addr: SocketAddr, client: &ClientTls) -> (u64, u64) {
    let mut conn = Conn::new(addr).tls(client.client().unwrap());
    for _ in 0..3 {
        let a = conn
            .send(&hot_close(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(a.status, 302);
    }
    (conn.connects, conn.resumed)
}

#[test]
fn certificates_of_both_kinds() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [TlsMode::Rsa, TlsMode::Ecdsa] {
        let c = cert(mode, dir.path());
        let der = tls::read_cert(&c.cert).unwrap();
        assert_eq!(tls::key_kind(&der), Some(mode));
        let key = std::fs::read_to_string(&c.key).unwrap();
        assert!(key.contains("PRIVATE KEY"), "{key}");
        // The client: browser cipher order, classic key exchange only.
        let config = ClientTls::pinned(&c.cert, DEFAULT_HOST, false)
            .unwrap()
            .config()
            .unwrap();
        let provider = config.crypto_provider();
        assert_eq!(
            provider.cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        let groups: Vec<_> = provider.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            groups,
            [rustls::NamedGroup::X25519, rustls::NamedGroup::secp256r1]
        );
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    }
    assert!(tls::generate(TlsMode::None, DEFAULT_HOST, dir.path()).is_err());
}

#[test]
fn full_handshakes_without_resume_and_resumed_with_it() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    for mode in [TlsMode::Rsa, TlsMode::Ecdsa] {
        let c = cert(mode, dir.path());
        rt.block_on(async {
            let addr = local_server(&c).await;
            let full = ClientTls::pinned(&c.cert, DEFAULT_HOST, false).unwrap();
            assert_eq!(three(addr, &full).await, (3, 0), "{mode:?} without resume");
            let resuming = ClientTls::pinned(&c.cert, DEFAULT_HOST, true).unwrap();
            // The first handshake is a full one, the next two resume.
            assert_eq!(three(addr, &resuming).await, (3, 2), "{mode:?} with resume");
        });
    }
}

#[test]
fn only_the_pinned_certificate_and_its_name_are_trusted() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let served = cert(TlsMode::Ecdsa, dir.path());
    let other = cert(TlsMode::Ecdsa, &dir.path().join("other"));
    rt.block_on(async {
        let addr = local_server(&served).await;
        for client in [
            // Another certificate for the same name.
            ClientTls::pinned(&other.cert, DEFAULT_HOST, false).unwrap(),
            // The right certificate, another name.
            ClientTls::pinned(&served.cert, "other.example.com", false).unwrap(),
        ] {
            let mut conn = Conn::new(addr).tls(client.client().unwrap());
            let err = conn
                .send(&hot_close(), Duration::from_secs(5))
                .await
                .unwrap_err();
            assert_eq!(err.kind, ErrorKind::Connect, "{}", err.detail);
            assert!(err.detail.contains("TLS handshake"), "{}", err.detail);
        }
    });
}

/// A gateway with generated links, a plain and a TLS listener.
struct TlsGateway {
    gateway: servers::RunningGateway,
    cert: tls::TestCert,
    _dir: tempfile::TempDir,
}

fn tls_gateway(rt: &tokio::runtime::Runtime, mode: TlsMode, crypto: Option<Crypto>) -> TlsGateway {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    genlinks::generate(
        100,
        &dir.path().join("links.csv"),
        Some(&rules),
        DEFAULT_HOST,
        genlinks::DEFAULT_UPSTREAM,
    )
    .unwrap();
    let cert = cert(mode, dir.path());
    let gateway = rt
        .block_on(servers::start_gateway(
            &GatewaySpec {
                bin: gateway_binary(),
                rules,
                threads: 1,
                watch: false,
                token: None,
                dir: dir.path().join("gateway"),
                log_level: "warn".into(),
                tls: Some(GatewayTls {
                    cert: cert.cert.clone(),
                    key: cert.key.clone(),
                    crypto,
                }),
                env: Vec::new(),
            },
            Duration::from_secs(60),
        ))
        .unwrap();
    TlsGateway {
        gateway,
        cert,
        _dir: dir,
    }
}

fn fresh_options(target: SocketAddr) -> RunOptions {
    RunOptions {
        target: format!("http://{target}"),
        scenario: Scenario::Fresh,
        duration: Duration::from_millis(500),
        connections: 2,
        timeout: Duration::from_secs(10),
        max_requests: 100,
        ..RunOptions::default()
    }
}

fn assert_one_connection_per_request(report: &run::RunReport) {
    let s = &report.runs[0];
    assert!(s.ok > 0, "nothing answered\n{}", report.table());
    assert_eq!(s.errors.total(), 0, "errors\n{}", report.table());
    assert!(s.requests <= 100);
    assert_eq!(
        s.connects,
        s.ok,
        "one connection per request\n{}",
        report.table()
    );
    assert_eq!(s.reconnects, 0);
}

#[test]
fn fresh_against_the_gateway_plain_and_tls() {
    let rt = rt();
    let gw = tls_gateway(&rt, TlsMode::Rsa, Some(Crypto::Ring));
    // Plain TCP.
    let report = rt
        .block_on(run::run(&fresh_options(gw.gateway.addr)))
        .unwrap();
    assert_one_connection_per_request(&report);
    assert_eq!(report.runs[0].resumed, None);
    let tls_addr = gw.gateway.tls_addr.expect("a TLS listener");
    // TLS, full handshakes.
    let mut o = fresh_options(tls_addr);
    o.tls = TlsMode::Rsa;
    o.tls_cert = Some(gw.cert.cert.clone());
    let report = rt.block_on(run::run(&o)).unwrap();
    assert_one_connection_per_request(&report);
    assert_eq!(report.runs[0].resumed, Some(0), "{}", report.table());
    assert!(report.table().contains("over TLS (rsa, full handshakes)"));
    // TLS with resumption: all but each connection's first handshake can
    // resume (the gateway keeps sessions; its cache holds 256).
    o.resume = true;
    let report = rt.block_on(run::run(&o)).unwrap();
    assert_one_connection_per_request(&report);
    let s = &report.runs[0];
    assert!(
        s.resumed.unwrap() > 0 && s.resumed.unwrap() < s.connects,
        "{}",
        report.table()
    );
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["runs"][0]["conn_per_s"].as_f64().unwrap() > 0.0);
    // The certificate kind must match --tls.
    o.tls = TlsMode::Ecdsa;
    let err = rt.block_on(run::run(&o)).unwrap_err().to_string();
    assert!(err.contains("has an RSA key"), "{err}");
}

#[test]
fn tls_options_go_together() {
    let rt = rt();
    let addr = loopback(free_port().unwrap());
    let mut o = fresh_options(addr);
    o.resume = true;
    let err = rt.block_on(run::run(&o)).unwrap_err().to_string();
    assert!(
        err.contains("--resume and --tls-cert go with --tls"),
        "{err}"
    );
    let mut o = fresh_options(addr);
    o.tls = TlsMode::Ecdsa;
    let err = rt.block_on(run::run(&o)).unwrap_err().to_string();
    assert!(err.contains("--tls needs --tls-cert"), "{err}");
}

fn nginx_config(prefix: PathBuf, resume: bool) -> NginxConfig {
    NginxConfig {
        listen: "127.0.0.1:18081".parse().unwrap(),
        map_file: prefix.join("links.map"),
        prefix: prefix.clone(),
        links: 10,
        workers: 1,
        tls: Some(NginxTls {
            listen: "127.0.0.1:18443".parse().unwrap(),
            cert: prefix.join("ecdsa.pem"),
            key: prefix.join("ecdsa.key"),
            resume,
        }),
    }
}

#[test]
fn nginx_tls_config() {
    let full = render(&nginx_config(PathBuf::from("/tmp/lt-nginx"), false));
    for needle in [
        "listen 127.0.0.1:18081 backlog=4096;",
        "listen 127.0.0.1:18443 ssl backlog=4096;",
        "ssl_certificate /tmp/lt-nginx/ecdsa.pem;",
        "ssl_certificate_key /tmp/lt-nginx/ecdsa.key;",
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "ssl_session_cache off;",
        "ssl_session_tickets off;",
        "worker_processes 1;",
    ] {
        assert!(full.contains(needle), "missing {needle:?} in\n{full}");
    }
    let resume = render(&nginx_config(PathBuf::from("/tmp/lt-nginx"), true));
    assert!(
        resume.contains("ssl_session_cache shared:SSL:10m;"),
        "{resume}"
    );
    assert!(resume.contains("ssl_session_tickets on;"), "{resume}");
    assert!(!resume.contains("ssl_session_cache off;"));
    assert_eq!(full.matches('{').count(), full.matches('}').count());
}

/// nginx itself accepts the TLS configuration with a real certificate,
/// and serves the hot link over TLS with resumption (where it is
/// installed).
#[test]
fn nginx_serves_the_tls_config() {
    let Ok(nginx) = find_binary(None) else {
        eprintln!("nginx is not installed: nginx TLS test skipped");
        return;
    };
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("nginx");
    let c = cert(TlsMode::Ecdsa, &prefix);
    let mut conf = nginx_config(prefix.clone(), true);
    conf.listen = loopback(free_port().unwrap());
    let tls = conf.tls.as_mut().unwrap();
    tls.listen = loopback(free_port().unwrap());
    tls.cert = c.cert.clone();
    tls.key = c.key.clone();
    let tls_addr = tls.listen;
    let path = prepare(&conf).unwrap();
    rt.block_on(async {
        let (_proc, _) = servers::start_nginx(
            &nginx,
            &path,
            &prefix,
            conf.listen,
            &hot_close(),
            302,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
        let client = ClientTls::pinned(&c.cert, DEFAULT_HOST, true).unwrap();
        assert_eq!(three(tls_addr, &client).await, (3, 2));
    });
}

/// `compare --scenario fresh --tls ecdsa --resume`, one short run each
/// (where nginx is installed).
#[test]
fn compare_fresh_tls_smoke_with_nginx() {
    if find_binary(None).is_err() {
        eprintln!("nginx is not installed: compare --scenario fresh smoke test skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::loadtest_binary())
        .args([
            "compare",
            "--scenario",
            "fresh",
            "--tls",
            "ecdsa",
            "--resume",
            "--crypto",
            "ring",
            "--pairs",
            "1",
            "--duration",
            "300ms",
            "--warmup",
            "0s",
            "--connections",
            "2",
            "--max-requests",
            "100",
            "--json",
            "--gateway",
        ])
        .arg(gateway_binary())
        .arg("--workdir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tls"], "ecdsa", "{report}");
    assert_eq!(report["crypto"], "ring", "{report}");
    let servers = report["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{report}");
    for s in servers {
        assert_eq!(s["failed"], 0, "{report}");
        assert!(s["median_conn_per_s"].as_f64().unwrap() > 0.0, "{report}");
        assert!(s["resumed_pct"].as_f64().unwrap() > 0.0, "{report}");
    }
    let gw = std::fs::read_to_string(dir.path().join("gateway/gateway.toml")).unwrap();
    assert!(
        gw.contains("[tls]") && gw.contains("crypto = \"ring\""),
        "{gw}"
    );
    // Without --tls, --resume is refused.
    let out = std::process::Command::new(common::loadtest_binary())
        .args([
            "compare",
            "--scenario",
            "fresh",
            "--resume",
            "--duration",
            "100ms",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--resume and --crypto go with --tls"), "{err}");
}
