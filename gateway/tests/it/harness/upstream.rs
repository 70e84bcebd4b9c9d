//! Upstream HTTP servers on loopback ports.

use super::http::read_rest_of_request;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What an upstream test server does with a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Behavior {
    /// Answer 200 at once.
    Ok,
    /// Sleep this long before answering.
    Slow(Duration),
}

/// A recorded upstream request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub request_line: String,
    pub headers: HashMap<String, String>,
}

/// A small HTTP/1.1 upstream on a loopback port. Answers `200` with its
/// name as the body and in `X-Upstream`, with `Server: upstream` (and
/// `/healthz` with 200 while healthy); records what it saw. Stops when
/// dropped.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub hits: Arc<AtomicUsize>,
    /// Status of answers to requests other than health checks.
    status: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    pub fn start(name: &str, behavior: Behavior) -> Upstream {
        Self::start_on(name, behavior, 0)
    }

    /// Starts on a given port (0 = any), e.g. to bring a killed one back.
    pub fn start_on(name: &str, behavior: Behavior, port: u16) -> Upstream {
        let listener = match port {
            0 => super::listen(),
            _ => TcpListener::bind(("127.0.0.1", port)).unwrap(),
        };
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(AtomicU16::new(200));
        let thread = {
            let (seen, hits, stop, name, status) = (
                seen.clone(),
                hits.clone(),
                stop.clone(),
                name.to_string(),
                status.clone(),
            );
            accept_until(listener, stop.clone(), move |stream| {
                let (seen, hits, stop, name, status) = (
                    seen.clone(),
                    hits.clone(),
                    stop.clone(),
                    name.clone(),
                    status.clone(),
                );
                std::thread::spawn(move || {
                    serve(stream, &name, behavior, &seen, &hits, &status, &stop)
                });
            })
        };
        Upstream {
            name: name.to_string(),
            addr,
            seen,
            hits,
            status,
            stop,
            thread: Some(thread),
        }
    }

    /// Answers requests (not health checks) with `code` from now on.
    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::Relaxed);
    }

    /// Requests seen (health checks excluded).
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Stops accepting and closes the listener (connections refused after).
    pub fn kill(mut self) -> u16 {
        let port = self.addr.port();
        self.shutdown();
        port
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts connections on `listener` until `stop` is set, on a thread of
/// its own, and hands each to `handle`; the listener closes when the
/// thread ends.
pub fn accept_until(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    mut handle: impl FnMut(TcpStream) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => handle(stream),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    })
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(
    stream: TcpStream,
    name: &str,
    behavior: Behavior,
    seen: &Mutex<Vec<Seen>>,
    hits: &AtomicUsize,
    status: &AtomicU16,
    stop: &AtomicBool,
) {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .ok();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let idle_deadline = Instant::now() + Duration::from_secs(30);
    while !stop.load(Ordering::Relaxed) && Instant::now() < idle_deadline {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        }
        let Some((headers, _body)) = read_rest_of_request(&mut reader) else {
            return;
        };
        let request_line = line.trim_end().to_string();
        let health = request_line.contains(" /healthz ");
        if !health {
            hits.fetch_add(1, Ordering::Relaxed);
            seen.lock().unwrap().push(Seen {
                request_line,
                headers,
            });
            if let Behavior::Slow(d) = behavior {
                std::thread::sleep(d);
            }
        }
        let body = format!("{name}\n");
        let code = if health {
            200
        } else {
            status.load(Ordering::Relaxed)
        };
        let resp = format!(
            "HTTP/1.1 {code} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nServer: upstream\r\nX-Upstream: {name}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// An upstream that records the exact bytes it receives, per connection,
/// and answers every request `200 ok`. It frames requests by the first
/// number of the first `Content-Length` line, as a lax server would, so a
/// test sees what such a server would make of what the gateway sends.
pub struct RawUpstream {
    pub addr: SocketAddr,
    /// Bytes received, one entry per connection, in accept order.
    pub received: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Each request's head (without the blank line), in the order answered.
    pub heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl RawUpstream {
    pub fn start() -> RawUpstream {
        let listener = super::listen();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (rx, hs, st) = (received.clone(), heads.clone(), stop.clone());
        accept_until(listener, stop.clone(), move |stream| {
            let slot = {
                let mut all = rx.lock().unwrap();
                all.push(Vec::new());
                all.len() - 1
            };
            let (rx, hs, st) = (rx.clone(), hs.clone(), st.clone());
            std::thread::spawn(move || raw_serve(stream, slot, &rx, &hs, &st));
        });
        RawUpstream {
            addr,
            received,
            heads,
            stop,
        }
    }

    /// Every value of header `name` (lower case) in the last request, one
    /// per header line, as sent.
    pub fn last(&self, name: &str) -> Vec<String> {
        let heads = self.heads.lock().unwrap();
        let last = heads.last().expect("the upstream saw a request");
        last.lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    /// Everything received on every connection, as text.
    pub fn text(&self) -> String {
        let all = self.received.lock().unwrap();
        all.iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("")
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The length of a whole chunked body (no trailers) at the start of
/// `body`; `None` while it has not all arrived.
fn chunked_len(body: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let line_end = at + body.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[at..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2 + size + 2;
        if body.len() < at {
            return None;
        }
        if size == 0 {
            return Some(at);
        }
    }
}

fn raw_serve(
    mut stream: TcpStream,
    slot: usize,
    rx: &Mutex<Vec<Vec<u8>>>,
    heads: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .ok();
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                rx.lock().unwrap()[slot].extend_from_slice(&buf[..n]);
                pending.extend_from_slice(&buf[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
        // Answer every complete request in `pending`.
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let raw_head = String::from_utf8_lossy(&pending[..end]).into_owned();
            let head = raw_head.to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| {
                    let digits: String = v
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_digit())
                        .collect();
                    digits.parse().ok()
                })
                .unwrap_or(0);
            // A chunked body is read to its end before the answer, as a
            // real server does: answering after the head would race a
            // gateway that refuses the body part way (max_body).
            let len = if head.contains("transfer-encoding: chunked") {
                match chunked_len(&pending[end + 4..]) {
                    Some(len) => len,
                    None => break,
                }
            } else {
                len
            };
            if pending.len() < end + 4 + len {
                break;
            }
            pending.drain(..end + 4 + len);
            if !head.contains(" /healthz ") {
                heads.lock().unwrap().push(raw_head);
            }
            if !head.contains(" /healthz ")
                && stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                    .is_err()
            {
                return;
            }
            if head.contains(" /healthz ")
                && stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .is_err()
            {
                return;
            }
        }
    }
}
