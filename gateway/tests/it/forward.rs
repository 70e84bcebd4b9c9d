//! The fast path's own forwarding of plain `GET`/`HEAD` requests on routes
//! (`serve::forward`), through the real binary: kept-alive upstream
//! connections, a kept-alive connection the upstream closed, and bodies of
//! every framing relayed whole on a client connection that goes on.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::{
    accept_until, read_response, read_rest_of_request, send, Gateway, RawUpstream, Response,
};

/// What a scripted upstream sends for one request: pieces written with a
/// pause between them, then whether it closes.
type Script = fn(method: &str, path: &str) -> (Vec<&'static [u8]>, bool);

/// An upstream answering by `script`; one that stays idle for `idle_close`
/// after an answer closes the connection without saying so first.
struct Scripted {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Scripted {
    fn start(script: Script, idle_close: Option<Duration>) -> Scripted {
        let listener = crate::harness::listen();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let count = connections.clone();
        accept_until(listener, stop.clone(), move |stream| {
            count.fetch_add(1, Ordering::Relaxed);
            std::thread::spawn(move || serve(stream, script, idle_close));
        });
        Scripted {
            addr,
            connections,
            stop,
        }
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(stream: TcpStream, script: Script, idle_close: Option<Duration>) {
    let mut writer = stream.try_clone().unwrap();
    stream
        .set_read_timeout(Some(idle_close.unwrap_or(Duration::from_secs(10))))
        .unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if read_rest_of_request(&mut reader).is_none() {
            return;
        }
        let mut words = line.split_whitespace();
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let (pieces, close) = script(method, path);
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
            if writer.write_all(piece).is_err() {
                return;
            }
        }
        if close {
            return;
        }
    }
}

fn rules(upstream: SocketAddr) -> String {
    format!(
        "[[route]]\nid = \"api\"\nhost = \"api.example.com\"\nprefix = \"/\"\nupstream = \"api\"\n\n\
         [upstream.api]\nservers = [\"{upstream}\"]\nread_timeout = \"2s\"\n"
    )
}

/// Requests on one client connection, each answered before the next.
fn on_one_connection(gw: &Gateway, requests: &[(&str, &str)]) -> Vec<Response> {
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    requests
        .iter()
        .map(|(method, path)| {
            send(&mut stream, method, path, "api.example.com", &[]);
            read_response(&mut reader, *method == "HEAD")
                .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", gw.log_tail()))
        })
        .collect()
}

#[test]
fn plain_requests_share_kept_alive_upstream_connections() {
    let up = RawUpstream::start();
    let gw = Gateway::start(&rules(up.addr));
    let answers = on_one_connection(&gw, &[("GET", "/a"), ("GET", "/b"), ("GET", "/c?x=1")]);
    assert!(answers.iter().all(|r| r.status == 200));
    for _ in 0..3 {
        // The pipeline (fast path off) gives its upstream connection back
        // just after the client has the answer; the fast path just before.
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(gw.get("api.example.com", "/d").status, 200);
    }
    assert_eq!(up.heads.lock().unwrap().len(), 6);
    assert_eq!(
        up.received.lock().unwrap().len(),
        1,
        "six requests one after another went over one upstream connection"
    );
    let heads = up.heads.lock().unwrap();
    assert!(
        heads[2].starts_with("GET /c?x=1 HTTP/1.1\r\n"),
        "{}",
        heads[2]
    );
    let lower = heads[0].to_ascii_lowercase();
    for forwarded in [
        "x-forwarded-for: 127.0.0.1",
        "x-forwarded-proto: http",
        "x-forwarded-host: api.example.com",
        "x-request-id: ",
    ] {
        assert!(lower.contains(forwarded), "{forwarded} in {}", heads[0]);
    }
}

#[test]
fn a_kept_alive_connection_the_upstream_closed_is_replaced_without_an_error() {
    // Each connection answers once, then closes when idle for 100 ms,
    // without `Connection: close`: the gateway only finds out on reuse.
    let up = Scripted::start(
        |_, _| {
            (
                vec![b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"],
                false,
            )
        },
        Some(Duration::from_millis(100)),
    );
    let gw = Gateway::start(&rules(up.addr));
    for i in 0..4 {
        let r = gw.get("api.example.com", "/again");
        assert_eq!(
            (r.status, r.text()),
            (200, "ok\n".to_string()),
            "request {i}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(up.connections.load(Ordering::Relaxed), 4);
    assert_eq!(
        gw.metric(
            "gateway_upstream_errors_total",
            &[("upstream", "api"), ("reason", "reset")]
        ),
        0.0
    );
}

#[test]
fn bodies_of_every_framing_arrive_whole_and_the_client_connection_goes_on() {
    let up = Scripted::start(
        |method, path| {
            match (method, path) {
            (_, "/chunked") => (
                vec![
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\n5\r\nhel",
                    b"lo\r\n6\r\n world\r\n",
                    b"0\r\n\r\n",
                ],
                false,
            ),
            (_, "/until-close") => (
                vec![b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ", b"close"],
                true,
            ),
            ("HEAD", _) => (vec![b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"], false),
            _ => (vec![b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope\n"], false),
        }
        },
        None,
    );
    let gw = Gateway::start(&rules(up.addr));
    let answers = on_one_connection(
        &gw,
        &[
            ("GET", "/chunked"),
            ("GET", "/until-close"),
            ("HEAD", "/sized"),
            ("GET", "/missing"),
            ("GET", "/chunked"),
        ],
    );
    let summary: Vec<(u16, String)> = answers.iter().map(|r| (r.status, r.text())).collect();
    assert_eq!(
        summary,
        [
            (200, "hello world".to_string()),
            (200, "until close".to_string()),
            (200, String::new()),
            (404, "nope\n".to_string()),
            (200, "hello world".to_string()),
        ]
    );
    // A body the upstream ends by closing reaches the client chunked.
    assert_eq!(answers[1].header("transfer-encoding"), Some("chunked"));
    assert_eq!(answers[2].header("content-length"), Some("12"));
    for r in &answers {
        assert_eq!(r.header("connection"), Some("keep-alive"));
        assert!(r.header("x-request-id").is_some());
    }
    // What the upstream's `Connection` named was its connection's only.
    assert_eq!(answers[0].header("x-hop"), None);
}
