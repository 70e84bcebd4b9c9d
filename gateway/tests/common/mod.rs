//! Test harness: starts the real `gateway` binary on ephemeral loopback
//! ports, plus small upstream HTTP servers, and a minimal HTTP/1.1 client
//! that sends exactly the bytes a test writes.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Real User-Agents for device and bot tests.
pub const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
pub const ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36";
pub const DESKTOP: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
pub const SLACKBOT: &str = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)";

/// Rules with one route: every path of `api.example.com` to the pool
/// `api` of `servers` (addresses), with `pool` (more keys of the pool)
/// appended.
pub fn api_route(servers: &[String], pool: &str) -> String {
    let list: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[[route]]\nid = \"api\"\nhost = \"api.example.com\"\nprefix = \"/\"\nupstream = \"api\"\n\n\
         [upstream.api]\nservers = [{}]\n{pool}\n",
        list.join(", ")
    )
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A free loopback port (bound then released; the race is harmless here).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running gateway process, killed on drop.
pub struct Gateway {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub tls: Option<SocketAddr>,
    pub log: PathBuf,
}

/// Options for [`Gateway::start_with`].
#[derive(Default)]
pub struct Options<'a> {
    /// Extra files (relative path, content) next to the rules file.
    pub files: &'a [(&'a str, &'a [u8])],
    /// Extra TOML appended to the server config.
    pub extra_config: &'a str,
    /// TLS listener with this (cert, key) PEM pair.
    pub tls: Option<(String, String)>,
    /// Environment variables for the process (e.g. `GATEWAY_ADMIN_TOKEN`),
    /// for settings in sections the harness already writes.
    pub env: &'a [(&'a str, &'a str)],
    /// `RLIMIT_FSIZE` of the process, in bytes: writes past it fail with
    /// `EFBIG` (`SIGXFSZ` is ignored), like a full disk, without root.
    pub file_size_limit: Option<u64>,
}

impl Gateway {
    /// Starts the gateway with `rules` as its rules file.
    pub fn start(rules: &str) -> Gateway {
        Self::start_with(rules, Options::default())
    }

    pub fn start_with(rules: &str, opts: Options<'_>) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rules.toml"), rules).unwrap();
        for (name, content) in opts.files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let port = free_port();
        let admin_port = free_port();
        let mut config = format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\nthreads = 2\ngrace_period = \"1s\"\nupgrade_sock = \"{up}\"\npid_file = \"{pid}\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin_port}\"\n[rules]\npath = \"{rules}\"\n[log]\nlevel = \"info\"\nformat = \"json\"\n",
            up = dir.path().join("upgrade.sock").display(),
            pid = dir.path().join("gateway.pid").display(),
            rules = dir.path().join("rules.toml").display(),
        );
        let mut tls = None;
        if let Some((cert, key)) = &opts.tls {
            std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
            std::fs::write(dir.path().join("key.pem"), key).unwrap();
            let tls_port = free_port();
            config.push_str(&format!(
                "[tls]\nlisten = \"127.0.0.1:{tls_port}\"\ncert = \"{}\"\nkey = \"{}\"\n",
                dir.path().join("cert.pem").display(),
                dir.path().join("key.pem").display()
            ));
            tls = Some(SocketAddr::from(([127, 0, 0, 1], tls_port)));
        }
        config.push_str(opts.extra_config);
        let config_path = dir.path().join("gateway.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.path().join("gateway.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
        command
            .args(["run", "-c"])
            .arg(&config_path)
            .env_remove("RUST_LOG")
            .envs(opts.env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(limit) = opts.file_size_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec only async-signal-safe calls.
            unsafe {
                command.pre_exec(move || {
                    let rl = libc::rlimit {
                        rlim_cur: limit as libc::rlim_t,
                        rlim_max: limit as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    Ok(())
                });
            }
        }
        let child = command.spawn().unwrap();
        let gw = Gateway {
            child,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            tls,
            log,
        };
        gw.wait_ready();
        gw
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = try_request(self.admin, "GET", "/ready", "admin", &[]) {
                if r.status == 200 && TcpStream::connect(self.addr).is_ok() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("gateway did not become ready; log:\n{}", self.log_text());
    }

    /// The gateway's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Path of a file in the gateway's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The value of a series on the admin listener's `/metrics`, e.g.
    /// `gateway_rules_reloads_total{result="failure"}`; panics when absent.
    pub fn metric(&self, series: &str) -> f64 {
        let r = request(self.admin, "GET", "/metrics", "admin", &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series} in /metrics:\n{}", r.text()))
    }

    /// `GET path` with `Host: host`.
    pub fn get(&self, host: &str, path: &str) -> Response {
        request(self.addr, "GET", path, host, &[])
    }

    /// A request with extra headers.
    pub fn req(&self, method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        request(self.addr, method, path, host, headers)
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits until the log contains `needle` (bounded).
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log_text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn location(&self) -> &str {
        self.header("location")
            .unwrap_or_else(|| panic!("no Location in {self:?}"))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Writes one request on `stream`.
pub fn send(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
}

/// Reads one response; `head` says the request was HEAD (no body).
pub fn read_response(reader: &mut BufReader<TcpStream>, head: bool) -> std::io::Result<Response> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head || status == 304 || status == 204 {
        return Ok(resp);
    }
    if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().unwrap();
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        resp.body = body;
    } else if resp
        .header("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            resp.body.extend_from_slice(&chunk[..n]);
        }
    } else {
        reader.read_to_end(&mut resp.body)?;
    }
    Ok(resp)
}

fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    all.push(("Connection", "close"));
    send(&mut stream, method, path, host, &all);
    let mut reader = BufReader::new(stream);
    read_response(&mut reader, method == "HEAD")
}

/// One request on a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
) -> Response {
    try_request(addr, method, path, host, headers)
        .unwrap_or_else(|e| panic!("{method} {host}{path}: {e}"))
}

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
/// name as the body (and `/healthz` with 200 while healthy); records what
/// it saw. Stops when dropped.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    pub fn start(name: &str, behavior: Behavior) -> Upstream {
        Self::start_on(name, behavior, 0)
    }

    /// Starts on a given port (0 = any), e.g. to bring a killed one back.
    pub fn start_on(name: &str, behavior: Behavior, port: u16) -> Upstream {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, hits, stop, name) =
                (seen.clone(), hits.clone(), stop.clone(), name.to_string());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (seen, hits, stop, name) =
                                (seen.clone(), hits.clone(), stop.clone(), name.clone());
                            std::thread::spawn(move || {
                                serve(stream, &name, behavior, &seen, &hits, &stop)
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Upstream {
            name: name.to_string(),
            addr,
            seen,
            hits,
            stop,
            thread: Some(thread),
        }
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
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Upstream: {name}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// Reads a request's headers (after its first line) and its body
/// (`Content-Length` or chunked). `None` when the connection ends early.
pub fn read_rest_of_request(
    reader: &mut BufReader<TcpStream>,
) -> Option<(HashMap<String, String>, Vec<u8>)> {
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if let Some(len) = headers
        .get("content-length")
        .and_then(|l| l.parse::<usize>().ok())
    {
        body = vec![0; len];
        reader.read_exact(&mut body).ok()?;
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            if reader.read_line(&mut size).unwrap_or(0) == 0 {
                return None;
            }
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some((headers, body))
}

/// Path of a test fixture relative to the workspace.
pub fn workspace(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
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
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (rx, hs, st) = (received.clone(), heads.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let slot = {
                            let mut all = rx.lock().unwrap();
                            all.push(Vec::new());
                            all.len() - 1
                        };
                        let (rx, hs, st) = (rx.clone(), hs.clone(), st.clone());
                        std::thread::spawn(move || raw_serve(stream, slot, &rx, &hs, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
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
