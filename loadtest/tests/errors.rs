//! Error classification: refused connections, wrong statuses and servers
//! that never answer, against small local servers.

use loadtest::client::{build_request, Conn, ErrorKind};
use loadtest::load::{self, LoadSpec};
use loadtest::scenario::{Generator, Params, Scenario};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;

fn spec(addr: SocketAddr, timeout: Duration) -> LoadSpec {
    LoadSpec {
        addr,
        connections: 1,
        duration: Duration::from_millis(500),
        rate: None,
        max_requests: 5,
        timeout,
        tls: None,
    }
}

fn hot() -> Vec<Generator> {
    Generator::for_run(Scenario::RedirectHot, &Params::default(), 1)
}

/// A port nothing listens on.
fn refused_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

#[test]
fn refused_connection_is_connect() {
    let rt = loadtest::runtime(1).unwrap();
    let addr = refused_port();
    let r = rt.block_on(load::run(&spec(addr, Duration::from_secs(2)), hot()));
    assert_eq!(r.tally.ok, 0);
    assert!(
        r.tally.errors_of(ErrorKind::Connect) > 0,
        "{:?}",
        r.tally.errors
    );
    assert_eq!(r.tally.error_total(), r.tally.errors_of(ErrorKind::Connect));
    assert!(r.tally.samples[&ErrorKind::Connect].contains("refused"));
}

#[test]
fn wrong_status_is_unexpected_status() {
    let rt = loadtest::runtime(1).unwrap();
    let r = rt.block_on(async {
        // The upstream answers 200; the hot link expects 302.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(loadtest::upstream::serve(listener));
        let r = load::run(&spec(addr, Duration::from_secs(5)), hot()).await;
        server.abort();
        r
    });
    assert_eq!(r.tally.ok, 0);
    assert_eq!(r.tally.errors_of(ErrorKind::UnexpectedStatus), 5);
    assert_eq!(r.tally.error_total(), 5);
    assert_eq!(r.tally.statuses.get(&200), Some(&5));
    assert_eq!(
        r.tally.samples[&ErrorKind::UnexpectedStatus],
        "expected 302, got 200"
    );
}

#[test]
fn server_that_never_answers_is_timeout() {
    let rt = loadtest::runtime(1).unwrap();
    let r = rt.block_on(async {
        // Accepts, reads nothing, answers nothing.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let mut s = spec(addr, Duration::from_millis(100));
        s.max_requests = 2;
        let r = load::run(&s, hot()).await;
        server.abort();
        r
    });
    assert_eq!(r.tally.ok, 0);
    assert_eq!(r.tally.errors_of(ErrorKind::Timeout), 2);
    assert_eq!(r.tally.error_total(), 2);
}

#[test]
fn server_that_closes_mid_answer_is_io() {
    let rt = loadtest::runtime(1).unwrap();
    let failure = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 302 Found\r\nContent-Length: 10\r\n\r\nabc")
                .await;
        });
        let req = build_request("GET", "/", "x", &[], b"");
        let f = Conn::new(addr)
            .send(&req, Duration::from_secs(5))
            .await
            .unwrap_err();
        server.abort();
        f
    });
    assert_eq!(failure.kind, ErrorKind::Io);
}

#[test]
fn keep_alive_connection_is_reused() {
    let rt = loadtest::runtime(1).unwrap();
    let r = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(loadtest::upstream::serve(listener));
        let gens = Generator::for_run(Scenario::Proxy, &Params::default(), 1);
        let mut s = spec(addr, Duration::from_secs(5));
        s.max_requests = 50;
        let r = load::run(&s, gens).await;
        server.abort();
        r
    });
    assert_eq!(r.tally.ok, 50);
    assert_eq!(r.tally.connects, 1);
}
