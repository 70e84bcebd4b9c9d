//! Click attribution on the real binary: click ids in `Location`, one JSON
//! event per consumer click, de-duplication, bots and HEAD, file rotation,
//! the HTTP sink with spill and replay, draining on SIGTERM and a full
//! queue that drops instead of slowing redirects.
//!
//! Everything runs on loopback with bounded loops; nothing asserts on how
//! fast anything is.

use crate::harness;

use crate::harness::{ANDROID, DESKTOP, IPHONE, SLACKBOT};

use crate::harness::{read_response, wait_until, Gateway, Options, Response, Scrape};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const GOOGLEBOT_SMARTPHONE: &str = "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const FACEBOOK: &str = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)";

pub(crate) const HOST: &str = "go.example.com";
const COUNTRY_HEADER: &str = "CloudFront-Viewer-Country";

const RULES: &str = r#"
[settings]
app_schemes = ["shopapp"]
country_header = "CloudFront-Viewer-Country"
click_id_param = "btn_ref"

[[redirect]]
id = "product"
host = "go.example.com"
pattern = "/p/{sku}"
to = "https://shop.example.com/products/{sku}?src=go"
ios = "shopapp://product/{sku}"
android = "https://shop.example.com/app-open?sku={sku}"

[[redirect]]
id = "sale"
host = "go.example.com"
path = "/sale"
to = "https://shop.example.com/sale"
countries = { DE = "https://shop.example.com/de/sale" }

[[redirect]]
id = "ab"
host = "go.example.com"
path = "/ab"
split = [
  { to = "https://shop.example.com/new?layout=grid", weight = 50 },
  { to = "https://shop.example.com/new?layout=stories", weight = 50 },
]

[[links]]
id = "go-links"
host = "go.example.com"
prefix = "/l/"
file = "links/go.csv"

[[respond]]
id = "robots"
host = "go.example.com"
path = "/robots.txt"
body = "User-agent: *\n"
"#;

const LINKS_CSV: &[u8] = b"code,to,ios,android
spring,https://shop.example.com/collections/spring?utm_source=go,,
track,https://shop.example.com/account/orders,shopapp://orders,https://shop.example.com/app/orders
";

/// The fields of a click event, exactly.
const FIELDS: [&str; 15] = [
    "schema",
    "ts",
    "click_id",
    "rule",
    "code",
    "host",
    "path",
    "device",
    "country",
    "variant",
    "destination",
    "referer",
    "user_agent",
    "client_ip",
    "request_id",
];

// ---------------------------------------------------------------------------
// Harness helpers

/// Starts the gateway with the test rules, the CSV file and `env`.
pub(crate) fn start(env: &[(&str, String)]) -> Gateway {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Gateway::start_with(
        RULES,
        Options {
            files: &[("links/go.csv", LINKS_CSV)],
            env: &env,
            ..Options::default()
        },
    )
}

/// Environment for clicks on, into `dir`, plus `extra`.
pub(crate) fn clicks_env(dir: &Path, extra: &[(&str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("GATEWAY_CLICKS_ENABLED", "true".to_string()),
        ("GATEWAY_CLICKS_DIR", dir.display().to_string()),
    ];
    for (k, v) in extra {
        let k: &'static str = Box::leak(k.to_string().into_boxed_str());
        env.push((k, v.to_string()));
    }
    env
}

/// SIGTERM, then waits (bounded) for the process to exit.
pub(crate) fn stop(gw: &mut Gateway) -> ExitStatus {
    gw.signal("TERM");
    harness::exit_within(&mut gw.child, Duration::from_secs(60)).unwrap_or_else(|| {
        panic!(
            "gateway did not exit within 60s of SIGTERM; log:\n{}",
            gw.log_text()
        )
    })
}

/// A keep-alive HTTP/1.1 client connection to the gateway.
pub(crate) struct Client {
    addr: SocketAddr,
    conn: Option<(TcpStream, BufReader<TcpStream>)>,
}

impl Client {
    pub(crate) fn new(addr: SocketAddr) -> Client {
        Client { addr, conn: None }
    }

    /// One request; the connection is dropped on any error (no retry, so a
    /// request is never sent twice).
    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> std::io::Result<Response> {
        if self.conn.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            let reader = BufReader::new(stream.try_clone()?);
            self.conn = Some((stream, reader));
        }
        let (stream, reader) = self.conn.as_mut().unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let result = stream
            .write_all(req.as_bytes())
            .and_then(|()| read_response(reader, method == "HEAD"));
        let keep = matches!(&result, Ok(r) if !r.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close")));
        if !keep {
            self.conn = None;
        }
        result
    }

    pub(crate) fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        self.try_request(method, path, headers)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }
}

/// The `btn_ref` value of a `Location`, checked to be the last parameter.
pub(crate) fn click_id_of(location: &str) -> String {
    let (before, id) = location
        .rsplit_once("btn_ref=")
        .unwrap_or_else(|| panic!("no btn_ref in Location {location}"));
    assert!(
        before.ends_with('?') || before.ends_with('&'),
        "btn_ref is not a parameter in {location}"
    );
    assert!(
        !id.contains('&') && !id.contains('#'),
        "btn_ref is not the last parameter in {location}"
    );
    assert_eq!(
        location.matches("btn_ref=").count(),
        1,
        "btn_ref appears more than once in {location}"
    );
    id.to_string()
}

/// A click id: 32 lower-case hex digits of a UUIDv7.
fn assert_click_id_format(id: &str) {
    assert_eq!(id.len(), 32, "click id {id:?} is not 32 characters");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "click id {id:?} is not lower-case hex"
    );
    assert_eq!(&id[12..13], "7", "click id {id:?} is not a UUIDv7");
    assert!(
        matches!(&id[16..17], "8" | "9" | "a" | "b"),
        "click id {id:?} has no RFC 9562 variant"
    );
}

/// The Unix milliseconds embedded in a UUIDv7 click id.
fn click_id_millis(id: &str) -> u64 {
    u64::from_str_radix(&id[..12], 16).unwrap()
}

/// The click files of `dir` (not the spill directory), sorted by name.
pub(crate) fn click_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// `clicks-YYYYMMDD-HH-N.jsonl` (or `spill-…`).
fn assert_file_name(path: &Path, prefix: &str) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let rest = name
        .strip_prefix(&format!("{prefix}-"))
        .and_then(|r| r.strip_suffix(".jsonl"))
        .unwrap_or_else(|| panic!("unexpected file name {name}"));
    let parts: Vec<&str> = rest.split('-').collect();
    assert!(
        parts.len() == 3
            && parts[0].len() == 8
            && parts[1].len() == 2
            && !parts[2].is_empty()
            && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())),
        "file name {name} is not {prefix}-YYYYMMDD-HH-N.jsonl"
    );
}

/// Every line of a JSON-lines file, checked to be whole JSON objects.
fn read_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    if text.is_empty() {
        return Vec::new();
    }
    assert!(
        text.ends_with('\n'),
        "{} ends mid-line: {:?}",
        path.display(),
        &text[text.len().saturating_sub(80)..]
    );
    text.lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("{}: line is not JSON ({e}): {l:?}", path.display()))
        })
        .collect()
}

/// Every event in the click files of `dir`.
pub(crate) fn read_events(dir: &Path) -> Vec<Value> {
    let mut events = Vec::new();
    for f in click_files(dir) {
        assert_file_name(&f, "clicks");
        events.extend(read_lines(&f));
    }
    events
}

/// Every event in `dir/spill`.
pub(crate) fn read_spilled(dir: &Path) -> Vec<Value> {
    let mut events = Vec::new();
    for f in click_files(&dir.join("spill")) {
        assert_file_name(&f, "spill");
        events.extend(read_lines(&f));
    }
    events
}

pub(crate) fn click_ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["click_id"].as_str().expect("click_id").to_string())
        .collect()
}

/// Asserts no id occurs twice and returns them as a set.
pub(crate) fn unique(ids: &[String], what: &str) -> HashSet<String> {
    let mut set = HashSet::new();
    let mut dups = Vec::new();
    for id in ids {
        if !set.insert(id.clone()) {
            dups.push(id.clone());
        }
    }
    assert!(dups.is_empty(), "{what}: duplicate click ids {dups:?}");
    set
}

fn device_of(ua: &str) -> &'static str {
    if ua.contains("Android") {
        "android"
    } else if ua.contains("iPhone") {
        "ios"
    } else {
        "desktop"
    }
}

// ---------------------------------------------------------------------------
// A test collector: a tiny HTTP/1.1 server counting NDJSON lines of POSTs.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// 200 at once.
    Ok,
    /// 503, nothing accepted.
    Unavailable,
    /// Sleep, then 200.
    Slow(Duration),
}

#[derive(Default)]
struct Received {
    /// Lines of accepted POST bodies.
    lines: Vec<String>,
    /// Lines per accepted POST.
    posts: Vec<usize>,
    /// POSTs answered 503.
    rejected: usize,
    /// `Content-Type` of every POST.
    content_types: HashSet<String>,
}

struct Collector {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    received: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    fn start(mode: Mode) -> Collector {
        let listener = harness::listen();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(mode));
        let received = Arc::new(Mutex::new(Received::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (mode, received, stop) = (mode.clone(), received.clone(), stop.clone());
            harness::accept_until(listener, stop.clone(), move |stream| {
                let (mode, received, stop) = (mode.clone(), received.clone(), stop.clone());
                std::thread::spawn(move || collect(stream, &mode, &received, &stop));
            })
        };
        Collector {
            addr,
            mode,
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/ingest", self.addr)
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn lines(&self) -> Vec<String> {
        self.received.lock().unwrap().lines.clone()
    }

    fn line_count(&self) -> usize {
        self.received.lock().unwrap().lines.len()
    }

    fn ids(&self) -> Vec<String> {
        self.lines()
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("collector got a non-JSON line ({e}): {l:?}"));
                v["click_id"].as_str().unwrap().to_string()
            })
            .collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn collect(stream: TcpStream, mode: &Mutex<Mode>, received: &Mutex<Received>, stop: &AtomicBool) {
    let idle = Duration::from_millis(200);
    stream.set_read_timeout(Some(idle)).ok();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) && line.is_empty() =>
            {
                continue
            }
            Err(_) => return,
        }
        // The rest of the request comes right after its first line.
        reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok();
        let Some((headers, body)) = harness::read_rest_of_request(&mut reader) else {
            return;
        };
        reader.get_ref().set_read_timeout(Some(idle)).ok();
        let post = line.starts_with("POST ");
        let current = *mode.lock().unwrap();
        let answer = match current {
            Mode::Unavailable if post => {
                let mut r = received.lock().unwrap();
                r.rejected += 1;
                if let Some(ct) = headers.get("content-type") {
                    r.content_types.insert(ct.clone());
                }
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
            }
            Mode::Slow(_) | Mode::Ok if post => {
                if let Mode::Slow(d) = current {
                    std::thread::sleep(d);
                }
                let text = String::from_utf8_lossy(&body).into_owned();
                let lines: Vec<String> = text
                    .split('\n')
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect();
                let mut r = received.lock().unwrap();
                r.posts.push(lines.len());
                r.lines.extend(lines);
                if let Some(ct) = headers.get("content-type") {
                    r.content_types.insert(ct.clone());
                }
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
            }
            _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        };
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------
// 1. One event per click, with every field

/// What the test sent for one click and what it got back.
struct Sent {
    path: String,
    rule: &'static str,
    code: Option<&'static str>,
    user_agent: String,
    country: Option<&'static str>,
    referer: Option<String>,
    request_id: Option<String>,
    location: String,
}

#[test]
fn every_redirect_gets_a_click_id_and_exactly_one_complete_event() {
    const N: usize = 300;
    let clicks = tempfile::tempdir().unwrap();
    let mut gw = start(&clicks_env(clicks.path(), &[]));
    let started = SystemTime::now();
    let mut client = Client::new(gw.addr);
    let mut sent: HashMap<String, Sent> = HashMap::new();
    let countries = [Some("DE"), Some("GB"), None, Some("US")];
    for i in 0..N {
        let base = [IPHONE, ANDROID, DESKTOP][i % 3];
        let mut user_agent = format!("{base} visitor/{i}");
        if i % 50 == 7 {
            // Long User-Agents are cut to 512 bytes in the event.
            while user_agent.len() < 2000 {
                user_agent.push('x');
            }
        }
        let (path, rule, code) = match i % 5 {
            0 => (format!("/p/SKU-{i}"), "product", None),
            1 => (
                "/sale?utm_source=mail&btn_ref=forged".to_string(),
                "sale",
                None,
            ),
            2 => ("/ab".to_string(), "ab", None),
            3 => ("/l/spring".to_string(), "go-links", Some("spring")),
            _ => ("/l/track?from=qr".to_string(), "go-links", Some("track")),
        };
        let country = countries[i % 4];
        let referer = (i % 3 != 1).then(|| format!("https://news.example.com/article/{i}"));
        let request_id = (i % 7 != 3).then(|| format!("req-{i:05}"));
        let mut headers: Vec<(&str, &str)> = vec![("User-Agent", &user_agent)];
        if let Some(c) = country {
            headers.push((COUNTRY_HEADER, c));
        }
        if let Some(r) = &referer {
            headers.push(("Referer", r));
        }
        if let Some(r) = &request_id {
            headers.push(("X-Request-Id", r));
        }
        let r = client.request("GET", &path, &headers);
        assert_eq!(r.status, 302, "GET {path}: {r:?}");
        let location = r.location().to_string();
        let id = click_id_of(&location);
        assert_click_id_format(&id);
        assert!(
            !location.contains("forged"),
            "a visitor's btn_ref must never reach the Location: {location}"
        );
        let prev = sent.insert(
            id.clone(),
            Sent {
                path,
                rule,
                code,
                user_agent,
                country,
                referer,
                request_id,
                location,
            },
        );
        assert!(prev.is_none(), "click id {id} given to two visitors");
    }
    // Answers that are not redirects make no event.
    assert_eq!(
        client
            .request("GET", "/nope", &[("User-Agent", DESKTOP)])
            .status,
        404
    );
    assert_eq!(
        client
            .request("GET", "/robots.txt", &[("User-Agent", DESKTOP)])
            .status,
        200
    );
    drop(client);

    let status = stop(&mut gw);
    assert!(status.success(), "exit {status:?}; log:\n{}", gw.log_text());
    let finished = SystemTime::now();

    let events = read_events(clicks.path());
    assert_eq!(
        events.len(),
        N,
        "expected exactly {N} events in {:?}",
        click_files(clicks.path())
    );
    let ids = unique(&click_ids(&events), "click files");
    assert_eq!(ids, sent.keys().cloned().collect::<HashSet<_>>());

    let mut devices: BTreeMap<String, usize> = BTreeMap::new();
    let mut variants = [0usize; 2];
    for e in &events {
        let obj = e.as_object().expect("event is an object");
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "event fields: {e}");
        assert_eq!(e["schema"], 1, "schema version: {e}");

        let id = e["click_id"].as_str().unwrap();
        let s = &sent[id];
        // ts: RFC 3339, UTC, microseconds.
        let ts = e["ts"].as_str().expect("ts is a string");
        let b = ts.as_bytes();
        assert!(
            ts.len() == 27
                && b[4] == b'-'
                && b[10] == b'T'
                && b[19] == b'.'
                && b[20..26].iter().all(u8::is_ascii_digit)
                && b[26] == b'Z',
            "ts {ts:?} is not RFC 3339 with microseconds in UTC"
        );
        let t = humantime::parse_rfc3339(ts).unwrap();
        assert!(
            t + Duration::from_secs(1) >= started && t <= finished + Duration::from_secs(1),
            "ts {ts} is outside the test run"
        );
        let t_ms = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(
            click_id_millis(id).abs_diff(t_ms) < 5_000,
            "click id {id} is not time-ordered with its event's ts {ts}"
        );
        assert_eq!(e["rule"], s.rule, "{e}");
        match s.code {
            Some(c) => assert_eq!(e["code"], c, "{e}"),
            None => assert!(e["code"].is_null(), "{e}"),
        }
        assert_eq!(e["host"], HOST, "{e}");
        let path = s.path.split('?').next().unwrap();
        assert_eq!(
            e["path"], path,
            "path is the path as requested, without query: {e}"
        );
        let device = device_of(&s.user_agent);
        assert_eq!(e["device"], device, "{e}");
        *devices.entry(device.to_string()).or_default() += 1;
        match s.country {
            Some(c) => assert_eq!(e["country"], c, "{e}"),
            None => assert!(e["country"].is_null(), "{e}"),
        }
        if s.rule == "ab" {
            let v = e["variant"].as_u64().expect("split rule has a variant") as usize;
            let want = if s.location.contains("layout=grid") {
                0
            } else {
                1
            };
            assert_eq!(
                v, want,
                "variant does not match Location {}: {e}",
                s.location
            );
            variants[v] += 1;
        } else {
            assert!(e["variant"].is_null(), "{e}");
        }
        assert_eq!(
            e["destination"],
            s.location.as_str(),
            "destination == Location"
        );
        match &s.referer {
            Some(r) => assert_eq!(e["referer"], r.as_str(), "{e}"),
            None => assert!(e["referer"].is_null(), "{e}"),
        }
        let ua = e["user_agent"].as_str().unwrap();
        if s.user_agent.len() > 512 {
            assert_eq!(ua.len(), 512, "user_agent is cut to 512 bytes");
            assert_eq!(ua, &s.user_agent[..512]);
        } else {
            assert_eq!(ua, s.user_agent);
        }
        assert_eq!(e["client_ip"], "127.0.0.0", "client_ip is anonymized: {e}");
        match &s.request_id {
            Some(r) => assert_eq!(e["request_id"], r.as_str(), "{e}"),
            None => assert!(e["request_id"].is_null(), "{e}"),
        }
        // Device destinations were used for the product rule and tracked links.
        if (s.rule == "product" || s.code == Some("track")) && device == "ios" {
            assert!(s.location.starts_with("shopapp://"), "{}", s.location);
        }
    }
    assert_eq!(devices.len(), 3, "{devices:?}");
    assert!(
        variants[0] > 0 && variants[1] > 0,
        "both variants: {variants:?}"
    );
}

// ---------------------------------------------------------------------------
// 2. De-duplication

#[test]
fn the_same_visitor_opening_the_same_link_within_the_window_is_one_click() {
    let clicks = tempfile::tempdir().unwrap();
    let mut gw = start(&clicks_env(
        clicks.path(),
        &[("GATEWAY_CLICKS_DEDUP_WINDOW", "1s")],
    ));
    let mut client = Client::new(gw.addr);
    let a = format!("{IPHONE} visitor/a");
    let b = format!("{IPHONE} visitor/b");
    let mut get = |path: &str, ua: &str| {
        let r = client.request("GET", path, &[("User-Agent", ua)]);
        assert_eq!(r.status, 302, "{r:?}");
        click_id_of(r.location())
    };

    let first = get("/sale", &a);
    let again = get("/sale", &a);
    assert_eq!(first, again, "same visitor, same link, within the window");
    // The key is the path: a different query is the same link.
    let with_query = get("/sale?utm_source=x", &a);
    assert_eq!(first, with_query, "the query is not part of the de-dup key");
    // Another link, or another visitor, is another click.
    let other_link = get("/p/A1", &a);
    assert_ne!(first, other_link);
    let other_visitor = get("/sale", &b);
    assert_ne!(first, other_visitor);

    // Past the window: a new click.
    std::thread::sleep(Duration::from_millis(2000));
    let later = get("/sale", &a);
    assert_ne!(first, later, "a click after the window gets a new id");
    let later_again = get("/sale", &a);
    assert_eq!(later, later_again);

    let status = stop(&mut gw);
    assert!(status.success(), "exit {status:?}");
    let events = read_events(clicks.path());
    let ids = click_ids(&events);
    unique(&ids, "click files");
    let mut want = vec![first, other_link, other_visitor, later];
    want.sort();
    let mut got = ids.clone();
    got.sort();
    assert_eq!(got, want, "events: {events:#?}");
    let sale_a = events
        .iter()
        .filter(|e| e["path"] == "/sale" && e["user_agent"] == a.as_str())
        .count();
    assert_eq!(sale_a, 2, "two events for visitor a on /sale: {events:#?}");
}

// ---------------------------------------------------------------------------
// 3. Bots and HEAD

#[test]
fn bots_and_head_requests_get_click_ids_but_no_events() {
    let clicks = tempfile::tempdir().unwrap();
    let mut gw = start(&clicks_env(
        clicks.path(),
        &[("GATEWAY_CLICKS_ANONYMIZE_IP", "false")],
    ));
    let mut client = Client::new(gw.addr);
    let paths = ["/p/B1", "/sale", "/l/track"];

    let mut bot_ids = Vec::new();
    let mut bots_by_device: HashMap<&str, usize> = HashMap::new();
    for bot in [SLACKBOT, GOOGLEBOT, FACEBOOK, GOOGLEBOT_SMARTPHONE] {
        for p in paths {
            let r = client.request("GET", p, &[("User-Agent", bot)]);
            assert_eq!(r.status, 302, "{bot} GET {p}: {r:?}");
            let loc = r.location().to_string();
            // Bots see the web page, never an app link.
            assert!(loc.starts_with("https://"), "{bot} got {loc}");
            let id = click_id_of(&loc);
            assert_click_id_format(&id);
            bot_ids.push(id);
            *bots_by_device.entry(device_of(bot)).or_default() += 1;
        }
    }
    let mut head_ids = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let ua = format!("{IPHONE} head/{i}");
        let r = client.request("HEAD", p, &[("User-Agent", &ua)]);
        assert_eq!(r.status, 302, "HEAD {p}: {r:?}");
        let id = click_id_of(r.location());
        assert_click_id_format(&id);
        head_ids.push(id);
    }
    // Consumers on the same links make events.
    let mut consumer_ids = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let ua = format!("{ANDROID} consumer/{i}");
        let r = client.request("GET", p, &[("User-Agent", &ua)]);
        assert_eq!(r.status, 302);
        consumer_ids.push(click_id_of(r.location()));
    }
    drop(client);

    let text = gw.scrape();
    let bots = bot_ids.len() as f64;
    assert_eq!(
        text.sum("gateway_click_events_total", &[("bot", "true")]),
        bots,
        "bots are counted with bot=\"true\":\n{}",
        text.text
    );
    for (device, n) in &bots_by_device {
        assert_eq!(
            text.sum(
                "gateway_click_events_total",
                &[("device", device), ("bot", "true")]
            ),
            *n as f64,
            "bots on {device}"
        );
    }
    assert_eq!(
        text.sum("gateway_click_events_total", &[("bot", "false")]),
        consumer_ids.len() as f64,
        "only consumer GETs count as bot=\"false\" clicks (HEAD is not a click)"
    );
    assert_eq!(
        text.sum(
            "gateway_click_events_total",
            &[("device", "android"), ("bot", "false")]
        ),
        consumer_ids.len() as f64
    );

    let status = stop(&mut gw);
    assert!(status.success(), "exit {status:?}");
    let events = read_events(clicks.path());
    let ids = unique(&click_ids(&events), "click files");
    assert_eq!(
        ids,
        consumer_ids.iter().cloned().collect::<HashSet<_>>(),
        "only consumer GETs make events: {events:#?}"
    );
    for id in bot_ids.iter().chain(&head_ids) {
        assert!(!ids.contains(id), "bot or HEAD click {id} made an event");
    }
    for e in &events {
        assert_eq!(e["client_ip"], "127.0.0.1", "anonymize_ip = false: {e}");
        assert_eq!(e["device"], "android");
    }
}

// ---------------------------------------------------------------------------
// 4. Rotation by size

#[test]
fn click_files_rotate_by_size_with_whole_lines_only() {
    const N: usize = 150;
    const MAX: u64 = 2000;
    let clicks = tempfile::tempdir().unwrap();
    // This one is configured in the file's [clicks] section.
    let config = format!(
        "[clicks]\nenabled = true\nsink = \"file\"\ndir = \"{}\"\nmax_file_bytes = {MAX}\nbatch_size = 7\nflush_interval = \"50ms\"\n",
        clicks.path().display()
    );
    let mut gw = Gateway::start_with(
        RULES,
        Options {
            files: &[("links/go.csv", LINKS_CSV)],
            extra_config: &config,
            ..Options::default()
        },
    );
    let mut client = Client::new(gw.addr);
    let mut sent = HashSet::new();
    for i in 0..N {
        let ua = format!("{DESKTOP} rotation/{i}");
        let r = client.request(
            "GET",
            &format!("/p/R{i}"),
            &[("User-Agent", &ua), ("Referer", "https://ref.example.com/")],
        );
        assert_eq!(r.status, 302);
        sent.insert(click_id_of(r.location()));
        if i % 40 == 39 {
            // Let some batches reach the files while the load goes on.
            std::thread::sleep(Duration::from_millis(120));
        }
    }
    drop(client);
    let text = gw.scrape_until_sum(
        Duration::from_secs(30),
        "gateway_click_events_delivered_total",
        &[("sink", "file")],
        N as f64,
    );
    assert_eq!(
        text.sum("gateway_click_events_delivered_total", &[("sink", "file")]),
        N as f64
    );
    assert_eq!(text.sum("gateway_click_events_dropped_total", &[]), 0.0);
    let status = stop(&mut gw);
    assert!(status.success(), "exit {status:?}");

    let files = click_files(clicks.path());
    assert!(files.len() >= 3, "expected several files: {files:?}");
    let mut total = 0;
    let mut ids = Vec::new();
    for f in &files {
        assert_file_name(f, "clicks");
        let len = std::fs::metadata(f).unwrap().len();
        let events = read_lines(f);
        assert!(!events.is_empty(), "{} is empty", f.display());
        assert!(
            len <= MAX || events.len() == 1,
            "{} has {len} bytes in {} lines: over max_file_bytes",
            f.display(),
            events.len()
        );
        total += events.len();
        ids.extend(click_ids(&events));
    }
    assert_eq!(total, N, "events across {} files", files.len());
    assert_eq!(unique(&ids, "click files"), sent);
}

// ---------------------------------------------------------------------------
// 5. HTTP sink: batches, spill while down, replay after

#[test]
fn http_sink_posts_batches_spills_while_the_collector_is_down_and_replays() {
    const N: usize = 120;
    const M: usize = 60;
    const K: usize = 5;
    const L: usize = 25;
    let collector = Collector::start(Mode::Ok);
    let clicks = tempfile::tempdir().unwrap();
    let url = collector.url();
    let env = clicks_env(
        clicks.path(),
        &[
            ("GATEWAY_CLICKS_SINK", "http"),
            ("GATEWAY_CLICKS_URL", &url),
            ("GATEWAY_CLICKS_BATCH_SIZE", "10"),
            ("GATEWAY_CLICKS_FLUSH_INTERVAL", "100ms"),
            ("GATEWAY_CLICKS_HTTP_TIMEOUT", "2s"),
        ],
    );
    let mut gw = start(&env);
    let mut client = Client::new(gw.addr);
    let mut sent: Vec<String> = Vec::new();
    let mut n = 0;
    let mut click = |client: &mut Client, sent: &mut Vec<String>| {
        let ua = format!("{ANDROID} http/{n}");
        n += 1;
        let r = client.request("GET", &format!("/p/H{n}"), &[("User-Agent", &ua)]);
        assert_eq!(r.status, 302);
        sent.push(click_id_of(r.location()));
    };

    // Up: everything is delivered, in several batches of at most 10.
    for _ in 0..N {
        click(&mut client, &mut sent);
    }
    assert!(
        wait_until(Duration::from_secs(30), || collector.line_count() >= N),
        "collector got {} of {N} events; log:\n{}",
        collector.line_count(),
        gw.log_text()
    );
    {
        let r = collector.received.lock().unwrap();
        assert!(r.posts.len() >= N / 10, "posts: {:?}", r.posts);
        assert!(
            r.posts.iter().all(|&p| (1..=10).contains(&p)),
            "{:?}",
            r.posts
        );
        assert_eq!(
            r.content_types,
            HashSet::from(["application/x-ndjson".to_string()])
        );
    }
    assert_eq!(
        unique(&collector.ids(), "collector"),
        sent.iter().cloned().collect::<HashSet<_>>()
    );
    assert!(click_files(&clicks.path().join("spill")).is_empty());
    // The collector has the lines before the gateway reads its 200 and
    // counts them delivered.
    let text = gw.scrape_until_sum(
        Duration::from_secs(10),
        "gateway_click_events_delivered_total",
        &[("sink", "http")],
        N as f64,
    );
    assert_eq!(
        text.sum("gateway_click_events_delivered_total", &[("sink", "http")]),
        N as f64
    );

    // Down: events are spilled to files.
    collector.set_mode(Mode::Unavailable);
    for _ in 0..M {
        click(&mut client, &mut sent);
    }
    let text = gw.scrape_until_sum(
        Duration::from_secs(30),
        "gateway_click_events_spilled_total",
        &[],
        M as f64,
    );
    assert_eq!(
        text.sum("gateway_click_events_spilled_total", &[]),
        M as f64
    );
    assert!(collector.received.lock().unwrap().rejected > 0);
    assert_eq!(collector.line_count(), N, "nothing accepted while down");
    let spilled = read_spilled(clicks.path());
    assert_eq!(
        spilled.len(),
        M,
        "spill files hold the events of the outage"
    );
    assert_eq!(
        unique(&click_ids(&spilled), "spill"),
        sent[N..].iter().cloned().collect::<HashSet<_>>()
    );

    // Back: the next batch goes out and the spill files are replayed.
    collector.set_mode(Mode::Ok);
    for _ in 0..K {
        click(&mut client, &mut sent);
    }
    assert!(
        wait_until(Duration::from_secs(30), || collector.line_count()
            >= N + M + K),
        "collector got {} of {} after recovery; log:\n{}",
        collector.line_count(),
        N + M + K,
        gw.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(10), || read_spilled(clicks.path())
            .is_empty()),
        "spill files are removed once delivered: {:?}",
        click_files(&clicks.path().join("spill"))
    );
    assert_eq!(
        unique(&collector.ids(), "collector after replay"),
        sent.iter().cloned().collect::<HashSet<_>>()
    );
    let text = gw.scrape_until_sum(
        Duration::from_secs(10),
        "gateway_click_events_delivered_total",
        &[("sink", "http")],
        (N + M + K) as f64,
    );
    assert_eq!(
        text.sum("gateway_click_events_delivered_total", &[("sink", "http")]),
        (N + M + K) as f64
    );

    // Down again at shutdown: what cannot be posted stays spilled.
    collector.set_mode(Mode::Unavailable);
    for _ in 0..L {
        click(&mut client, &mut sent);
    }
    drop(client);
    let status = stop(&mut gw);
    assert!(status.success(), "exit {status:?}; log:\n{}", gw.log_text());
    let delivered = collector.ids();
    let spilled = click_ids(&read_spilled(clicks.path()));
    assert_eq!(
        delivered.len() + spilled.len(),
        N + M + K + L,
        "delivered {} + still spilled {}",
        delivered.len(),
        spilled.len()
    );
    let mut all = delivered.clone();
    all.extend(spilled.iter().cloned());
    assert_eq!(
        unique(&all, "delivered and spilled"),
        sent.iter().cloned().collect::<HashSet<_>>()
    );

    // A new process delivers what the old one left spilled.
    collector.set_mode(Mode::Ok);
    let mut gw2 = start(&env);
    let mut client = Client::new(gw2.addr);
    click(&mut client, &mut sent);
    drop(client);
    assert!(
        wait_until(Duration::from_secs(30), || collector.line_count()
            > N + M + K + L),
        "collector got {} of {} after a restart; log:\n{}",
        collector.line_count(),
        N + M + K + L + 1,
        gw2.log_text()
    );
    let status = stop(&mut gw2);
    assert!(status.success(), "exit {status:?}");
    assert!(read_spilled(clicks.path()).is_empty());
    assert_eq!(
        unique(&collector.ids(), "collector at the end"),
        sent.iter().cloned().collect::<HashSet<_>>()
    );
}

// ---------------------------------------------------------------------------
// 6. SIGTERM under load

#[test]
fn sigterm_under_load_loses_no_event() {
    const THREADS: usize = 4;
    const MAX_PER_THREAD: usize = 1500;
    let clicks = tempfile::tempdir().unwrap();
    let mut gw = start(&clicks_env(clicks.path(), &[]));
    let addr = gw.addr;
    let done = Arc::new(AtomicUsize::new(0));
    let stop_clients = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (done, stop_clients) = (done.clone(), stop_clients.clone());
            std::thread::spawn(move || {
                let mut client = Client::new(addr);
                let mut ids = Vec::new();
                let mut failures = 0;
                for i in 0..MAX_PER_THREAD {
                    if stop_clients.load(Ordering::Relaxed) || failures > 20 {
                        break;
                    }
                    let ua = format!("{} load/{t}/{i}", [IPHONE, ANDROID, DESKTOP][i % 3]);
                    let path = ["/sale", "/ab", "/l/spring", "/p/L1"][i % 4];
                    match client.try_request("GET", path, &[("User-Agent", &ua)]) {
                        Ok(r) if r.status == 302 => {
                            ids.push(click_id_of(r.location()));
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(_) => {
                            failures += 1;
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
                ids
            })
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(60), || done.load(Ordering::Relaxed)
            >= 400),
        "load did not start"
    );
    let at_signal = done.load(Ordering::Relaxed);
    gw.signal("TERM");
    let status = harness::exit_within(&mut gw.child, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no exit; log:\n{}", gw.log_text()));
    stop_clients.store(true, Ordering::Relaxed);
    let received: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(status.success(), "exit {status:?}; log:\n{}", gw.log_text());
    assert!(received.len() >= at_signal);
    eprintln!(
        "{} redirects answered, {at_signal} of them before SIGTERM",
        received.len()
    );
    let received = unique(&received, "Locations");

    let events = read_events(clicks.path());
    let written = unique(&click_ids(&events), "click files");
    let missing: Vec<&String> = received.difference(&written).collect();
    assert!(
        missing.is_empty(),
        "{} of {} click ids answered to clients are not in the click files \
         ({} events written; {} answered before SIGTERM): {:?}",
        missing.len(),
        received.len(),
        written.len(),
        at_signal,
        &missing[..missing.len().min(5)]
    );
    // Only clicks that were made: a response lost in the shutdown may have
    // its event, but there is no event the clients did not ask for.
    assert!(written.len() <= THREADS * MAX_PER_THREAD);
}

// ---------------------------------------------------------------------------
// 7. A full queue drops and counts

#[test]
fn a_full_queue_drops_and_counts_instead_of_slowing_redirects() {
    const N: usize = 300;
    let collector = Collector::start(Mode::Slow(Duration::from_secs(2)));
    let clicks = tempfile::tempdir().unwrap();
    let url = collector.url();
    let mut gw = start(&clicks_env(
        clicks.path(),
        &[
            ("GATEWAY_CLICKS_SINK", "http"),
            ("GATEWAY_CLICKS_URL", &url),
            ("GATEWAY_CLICKS_QUEUE_CAPACITY", "1"),
            ("GATEWAY_CLICKS_BATCH_SIZE", "1"),
            ("GATEWAY_CLICKS_FLUSH_INTERVAL", "20ms"),
            ("GATEWAY_CLICKS_HTTP_TIMEOUT", "10s"),
        ],
    ));
    let mut client = Client::new(gw.addr);
    for i in 0..N {
        let ua = format!("{DESKTOP} queue/{i}");
        let r = client.request("GET", "/sale", &[("User-Agent", &ua)]);
        assert_eq!(r.status, 302, "redirect {i}: {r:?}");
        click_id_of(r.location());
    }
    drop(client);

    // Every event is accounted for once the writer has caught up.
    let sum = |text: &Scrape| {
        text.sum("gateway_click_events_delivered_total", &[])
            + text.sum("gateway_click_events_spilled_total", &[])
            + text.sum("gateway_click_events_dropped_total", &[])
    };
    let text = gw.scrape_until(
        Duration::from_secs(60),
        &format!("delivered + spilled + dropped to reach {N}"),
        |text| sum(text) >= N as f64,
    );
    let dropped = text.sum("gateway_click_events_dropped_total", &[]);
    assert!(
        dropped > 0.0,
        "a queue of 1 behind a stuck writer drops:\n{}",
        text.text
    );
    assert_eq!(
        sum(&text),
        N as f64,
        "every click counted once:\n{}",
        text.text
    );
    assert_eq!(
        text.sum("gateway_click_events_total", &[("bot", "false")]),
        N as f64
    );
    let delivered = text.sum("gateway_click_events_delivered_total", &[("sink", "http")]);

    let status = stop(&mut gw);
    assert!(status.success(), "exit {status:?}");
    assert_eq!(collector.line_count() as f64, delivered);
    assert_eq!(
        (collector.line_count() + read_spilled(clicks.path()).len()) as f64 + dropped,
        N as f64
    );
}

// ---------------------------------------------------------------------------
// The queue-depth gauge

/// `gateway_click_queue_depth` is "events waiting to be written": once every
/// event is written, it is 0.
#[test]
fn queue_depth_is_zero_once_every_event_is_written() {
    const N: usize = 300;
    let clicks = tempfile::tempdir().unwrap();
    let mut gw = start(&clicks_env(
        clicks.path(),
        &[
            ("GATEWAY_CLICKS_BATCH_SIZE", "1"),
            ("GATEWAY_CLICKS_FLUSH_INTERVAL", "10ms"),
        ],
    ));
    let mut client = Client::new(gw.addr);
    for i in 0..N {
        let ua = format!("{IPHONE} depth/{i}");
        let r = client.request("GET", "/ab", &[("User-Agent", &ua)]);
        assert_eq!(r.status, 302);
    }
    drop(client);
    gw.scrape_until_sum(
        Duration::from_secs(30),
        "gateway_click_events_delivered_total",
        &[("sink", "file")],
        N as f64,
    );
    // Give a late gauge update time to land; the value must then be 0.
    std::thread::sleep(Duration::from_millis(300));
    let text = gw.scrape();
    assert_eq!(
        text.sum("gateway_click_events_delivered_total", &[("sink", "file")]),
        N as f64
    );
    assert_eq!(
        text.sum("gateway_click_queue_depth", &[]),
        0.0,
        "all {N} events are written, yet gateway_click_queue_depth says some are queued"
    );
    let status = stop(&mut gw);
    assert!(status.success(), "exit {status:?}");
    assert_eq!(read_events(clicks.path()).len(), N);
}

// ---------------------------------------------------------------------------
// Bulk-link codes of escaped request paths

/// A bulk link reached through an escaped path (`/l/%73pring` is
/// `/l/spring`: unreserved escapes are decoded for matching) is the same
/// link, and its event must carry the CSV code.
#[test]
fn bulk_link_code_is_the_csv_code_however_the_path_is_escaped() {
    let clicks = tempfile::tempdir().unwrap();
    let mut gw = start(&clicks_env(clicks.path(), &[]));
    let mut client = Client::new(gw.addr);
    let paths = ["/l/spring", "/l/%73pring", "/%6C/spring", "/l/spring/"];
    for (i, p) in paths.iter().enumerate() {
        let ua = format!("{DESKTOP} escaped/{i}");
        let r = client.request("GET", p, &[("User-Agent", &ua)]);
        assert_eq!(r.status, 302, "GET {p}: {r:?}");
        assert!(
            r.location()
                .starts_with("https://shop.example.com/collections/spring?utm_source=go&btn_ref="),
            "{}",
            r.location()
        );
    }
    drop(client);
    let status = stop(&mut gw);
    assert!(status.success(), "exit {status:?}");
    let events = read_events(clicks.path());
    assert_eq!(events.len(), paths.len());
    let wrong: Vec<String> = events
        .iter()
        .filter(|e| e["code"] != "spring" || e["rule"] != "go-links")
        .map(|e| format!("path {} -> code {}", e["path"], e["code"]))
        .collect();
    assert!(
        wrong.is_empty(),
        "events of /l/spring reached through escaped paths must have code \"spring\": {wrong:?}"
    );
}

// ---------------------------------------------------------------------------
// Configuration errors

#[test]
fn the_http_sink_without_a_url_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.toml"), RULES).unwrap();
    std::fs::create_dir_all(dir.path().join("links")).unwrap();
    std::fs::write(dir.path().join("links/go.csv"), LINKS_CSV).unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{}\"]\n[admin]\nlisten = \"127.0.0.1:{}\"\n[rules]\npath = \"{}\"\n",
            harness::free_port(),
            harness::free_port(),
            dir.path().join("rules.toml").display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["run", "-c"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .env("GATEWAY_CLICKS_ENABLED", "true")
        .env("GATEWAY_CLICKS_DIR", dir.path().join("clicks"))
        .env("GATEWAY_CLICKS_SINK", "http")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = harness::exit_within(&mut child, Duration::from_secs(20))
        .expect("the gateway started with sink = \"http\" and no url");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success());
    assert!(stderr.contains("clicks.url"), "{stderr}");
    assert!(!dir.path().join("clicks").exists());
}

// ---------------------------------------------------------------------------
// 8. Disabled

#[test]
fn with_clicks_disabled_no_files_are_written_but_location_has_btn_ref() {
    let clicks = tempfile::tempdir().unwrap();
    let dir = clicks.path().join("clicks");
    // The directory is configured but clicks are off (the default).
    let mut gw = start(&[("GATEWAY_CLICKS_DIR", dir.display().to_string())]);
    let mut client = Client::new(gw.addr);
    let mut ids = Vec::new();
    for (i, p) in ["/sale", "/sale", "/ab", "/l/spring", "/p/D1"]
        .iter()
        .enumerate()
    {
        let r = client.request("GET", p, &[("User-Agent", DESKTOP)]);
        assert_eq!(r.status, 302, "{i}: {r:?}");
        let id = click_id_of(r.location());
        assert_click_id_format(&id);
        ids.push(id);
    }
    drop(client);
    unique(&ids, "Locations");
    let text = gw.scrape();
    assert_eq!(text.sum("gateway_click_events_total", &[]), 0.0);
    let status = stop(&mut gw);
    assert!(status.success(), "exit {status:?}");
    assert!(
        !dir.exists(),
        "clicks.dir must not be created when clicks are off"
    );
    let stray: Vec<PathBuf> = walk(gw.dir.path())
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.ends_with(".jsonl")
        })
        .collect();
    assert!(stray.is_empty(), "click files written: {stray:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// 9. A full disk, an unwritable directory

/// A `Referer` long enough that one batch of 60 events (about 400 KB) is
/// far past the file-size limit below and past any write buffer, so writes
/// fail part way through a batch and through a line.
fn long_referer() -> String {
    format!("https://ref.example.com/{}", "r".repeat(6000))
}

/// Sends `n` distinct clicks with a long `Referer`; returns their ids.
fn send_long_clicks(gw: &Gateway, n: usize, tag: &str) -> HashSet<String> {
    let referer = long_referer();
    let mut client = Client::new(gw.addr);
    let mut sent = HashSet::new();
    for i in 0..n {
        let ua = format!("{DESKTOP} {tag}/{i}");
        let r = client.request(
            "GET",
            &format!("/p/{tag}{i}"),
            &[("User-Agent", &ua), ("Referer", &referer)],
        );
        assert_eq!(r.status, 302, "click {i}: {r:?}");
        sent.insert(click_id_of(r.location()));
    }
    sent
}

/// Checks `files`: none empty, each ending in a whole line. Returns the
/// click ids of all their lines.
fn ids_in_checked_files(files: &[PathBuf], prefix: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for f in files {
        assert_file_name(f, prefix);
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len > 0, "{} is an empty file", f.display());
        // `read_lines` also fails on a torn last line.
        ids.extend(click_ids(&read_lines(f)));
    }
    ids
}

const FULL_DISK_N: usize = 600;
/// `RLIMIT_FSIZE` of the gateway: about 15 events fit in a file.
const FILE_SIZE_LIMIT: u64 = 100 << 10;

/// The gateway with clicks into `dir` (and `sink`, more settings), batches
/// of 60 and at most [`FILE_SIZE_LIMIT`] bytes a file.
fn start_on_a_full_disk(dir: &Path, sink: &[(&str, &str)]) -> Gateway {
    let mut extra = sink.to_vec();
    extra.extend([
        ("GATEWAY_CLICKS_BATCH_SIZE", "60"),
        ("GATEWAY_CLICKS_FLUSH_INTERVAL", "100ms"),
    ]);
    let env = clicks_env(dir, &extra);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Gateway::start_with(
        RULES,
        Options {
            files: &[("links/go.csv", LINKS_CSV)],
            env: &env,
            file_size_limit: Some(FILE_SIZE_LIMIT),
            ..Options::default()
        },
    )
}

#[test]
fn on_a_full_disk_the_metrics_match_the_files_and_no_empty_files_pile_up() {
    let clicks = tempfile::tempdir().unwrap();
    let mut gw = start_on_a_full_disk(clicks.path(), &[]);
    let sent = send_long_clicks(&gw, FULL_DISK_N, "full");

    let delivered =
        |text: &Scrape| text.sum("gateway_click_events_delivered_total", &[("sink", "file")]);
    let dropped = |text: &Scrape| text.sum("gateway_click_events_dropped_total", &[]);
    gw.scrape_until(
        Duration::from_secs(30),
        &format!("delivered + dropped to reach {FULL_DISK_N}"),
        |text| delivered(text) + dropped(text) >= FULL_DISK_N as f64,
    );
    // A late write or a second count would show up now.
    std::thread::sleep(Duration::from_millis(300));
    let text = gw.scrape();
    let (delivered, dropped) = (delivered(&text), dropped(&text));
    assert_eq!(
        delivered + dropped,
        FULL_DISK_N as f64,
        "every click counted once:\n{}",
        text.text
    );
    assert!(delivered > 0.0 && dropped > 0.0, "{}", text.text);
    let files_while_failing = click_files(clicks.path());
    let status = stop(&mut gw);
    assert!(status.success(), "exit {status:?}");

    let files = click_files(clicks.path());
    // One file per rotation: nothing rotates here (max_file_bytes is far
    // larger), but the UTC hour may turn once during the test.
    assert!(
        files.len() <= 2 && files_while_failing.len() <= 2,
        "a file per failed batch: {files_while_failing:?} then {files:?}"
    );
    let ids = ids_in_checked_files(&files, "clicks");
    assert_eq!(
        ids.len() as f64,
        delivered,
        "lines in the click files against gateway_click_events_delivered_total"
    );
    assert!(unique(&ids, "click files").is_subset(&sent));
}

#[test]
fn on_a_full_disk_spilled_plus_dropped_match_the_spill_files() {
    let collector = Collector::start(Mode::Unavailable);
    let clicks = tempfile::tempdir().unwrap();
    let url = collector.url();
    let mut gw = start_on_a_full_disk(
        clicks.path(),
        &[
            ("GATEWAY_CLICKS_SINK", "http"),
            ("GATEWAY_CLICKS_URL", &url),
        ],
    );
    let sent = send_long_clicks(&gw, FULL_DISK_N, "spill");

    let spilled = |text: &Scrape| text.sum("gateway_click_events_spilled_total", &[]);
    let dropped = |text: &Scrape| text.sum("gateway_click_events_dropped_total", &[]);
    gw.scrape_until(
        Duration::from_secs(60),
        &format!("spilled + dropped to reach {FULL_DISK_N}"),
        |text| spilled(text) + dropped(text) >= FULL_DISK_N as f64,
    );
    std::thread::sleep(Duration::from_millis(300));
    let text = gw.scrape();
    let (spilled, dropped) = (spilled(&text), dropped(&text));
    assert_eq!(
        spilled + dropped,
        FULL_DISK_N as f64,
        "every click counted once:\n{}",
        text.text
    );
    assert!(spilled > 0.0 && dropped > 0.0, "{}", text.text);
    assert_eq!(text.sum("gateway_click_events_delivered_total", &[]), 0.0);
    let status = stop(&mut gw);
    assert!(status.success(), "exit {status:?}");

    let files = click_files(&clicks.path().join("spill"));
    assert!(files.len() <= 2, "a spill file per failed batch: {files:?}");
    let ids = ids_in_checked_files(&files, "spill");
    assert_eq!(
        ids.len() as f64,
        spilled,
        "lines in the spill files against gateway_click_events_spilled_total"
    );
    assert!(unique(&ids, "spill files").is_subset(&sent));
    assert_eq!(collector.line_count(), 0);
}

/// Runs `gateway run` with clicks on and `env`, expecting it to exit on its
/// own (bounded); returns its status and stderr.
pub(crate) fn run_to_exit(env: &[(&str, &str)]) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.toml"), RULES).unwrap();
    std::fs::create_dir_all(dir.path().join("links")).unwrap();
    std::fs::write(dir.path().join("links/go.csv"), LINKS_CSV).unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{}\"]\nupgrade_sock = \"{}\"\npid_file = \"{}\"\n[admin]\nlisten = \"127.0.0.1:{}\"\n[rules]\npath = \"{}\"\n",
            harness::free_port(),
            dir.path().join("upgrade.sock").display(),
            dir.path().join("gateway.pid").display(),
            harness::free_port(),
            dir.path().join("rules.toml").display()
        ),
    )
    .unwrap();
    let stderr_path = dir.path().join("stderr");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["run", "-c"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .env("GATEWAY_CLICKS_ENABLED", "true")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let status = harness::exit_within(&mut child, Duration::from_secs(20)).unwrap_or_else(|| {
        panic!(
            "the gateway started with {env:?}; log:\n{}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        )
    });
    (status, std::fs::read_to_string(&stderr_path).unwrap())
}

#[test]
fn an_unwritable_clicks_dir_stops_the_start_and_names_the_directory() {
    // Tests run as root, so permissions cannot make a directory unwritable.
    // A path under a regular file cannot be created; /proc/self exists but
    // nobody can create a file in it; a spill directory that is a regular
    // file cannot hold spill files.
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain-file");
    std::fs::write(&plain, "x").unwrap();
    let under_file = plain.join("clicks");
    let with_bad_spill = tmp.path().join("clicks");
    std::fs::create_dir_all(&with_bad_spill).unwrap();
    std::fs::write(with_bad_spill.join("spill"), "x").unwrap();
    let url = "http://127.0.0.1:9/ingest";
    let cases: [(&str, PathBuf, PathBuf); 4] = [
        ("file", under_file.clone(), under_file),
        ("file", "/proc/self".into(), "/proc/self".into()),
        ("http", "/proc/self".into(), "/proc/self".into()),
        ("http", with_bad_spill.clone(), with_bad_spill.join("spill")),
    ];
    for (sink, dir, named) in cases {
        let dir_text = dir.display().to_string();
        let (status, stderr) = run_to_exit(&[
            ("GATEWAY_CLICKS_SINK", sink),
            ("GATEWAY_CLICKS_URL", url),
            ("GATEWAY_CLICKS_DIR", &dir_text),
        ]);
        assert!(!status.success(), "sink {sink}, dir {dir_text}: {status:?}");
        let named = named.display().to_string();
        assert!(
            stderr.contains(&format!("clicks.dir {named}:")) && stderr.contains("os error"),
            "sink {sink}, dir {dir_text}: stderr does not name {named} and the OS error:\n{stderr}"
        );
    }
}
