//! Hot reload on the real binary: rule flips under load, refused files,
//! file triggers (in place, rename, ConfigMap symlink swap, bursts,
//! identical content), SIGHUP, the admin API, the `X-Rules-Version` header,
//! the remote source and the zero-downtime binary upgrade.
//!
//! Everything runs on loopback; every loop is bounded in count and time;
//! nothing asserts how fast anything is.

use crate::harness;

use crate::harness::{read_response, send, Gateway, Options, Response};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "reload-test-token-0123456789";
const HOST: &str = "go.example.com";
const WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// Rule sets
// ---------------------------------------------------------------------------

/// A rule set named `tag`: `/x` redirects to `https://{tag}.example.com/x`
/// with `max-age={age}`, `/y` to `https://{tag}.example.com/y` with
/// `max-age={age}0`, and a `[[test]]` pins `/x`.
fn rules(tag: &str, age: u32) -> String {
    format!(
        r#"[[redirect]]
id = "x"
host = "go.example.com"
path = "/x"
to = "https://{tag}.example.com/x"
cache_control = "max-age={age}"

[[redirect]]
id = "y"
host = "go.example.com"
path = "/y"
to = "https://{tag}.example.com/y"
cache_control = "max-age={age}0"

[[test]]
name = "x answers {tag}"
url = "https://go.example.com/x"
expect_status = 302
expect_location = "https://{tag}.example.com/x"
"#
    )
}

/// The (Location, Cache-Control) pair `rules(tag, age)` answers `path` with.
fn pair(tag: &str, age: u32, path: &str) -> (String, String) {
    let age = if path == "/y" {
        format!("{age}0")
    } else {
        age.to_string()
    };
    (
        format!("https://{tag}.example.com{path}"),
        format!("max-age={age}"),
    )
}

fn rules_a() -> String {
    rules("a", 1)
}

fn rules_b() -> String {
    rules("b", 2)
}

/// 1-based number of the first line of `text` that starts with `prefix`,
/// searching from line `from`.
fn line_of(text: &str, prefix: &str, from: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| l.starts_with(prefix))
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("no line starting with {prefix:?}"))
}

// ---------------------------------------------------------------------------
// Processes, requests, logs
// ---------------------------------------------------------------------------

fn start(rules: &str, env: &[(&str, &str)]) -> Gateway {
    Gateway::start_with(
        rules,
        Options {
            env,
            ..Default::default()
        },
    )
}

/// A gateway whose rules file is alone in a directory of its own.
///
/// The harness keeps the gateway's log next to its `rules.toml`, and the
/// file watch sees every access to files in that directory (the tests read
/// the log all the time); file-trigger tests keep the two apart. (That such
/// unrelated activity holds a reload back is tested separately.)
struct Alone {
    gw: Gateway,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

fn start_alone(rules: &str, env: &[(&str, &str)]) -> Alone {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, rules).unwrap();
    let p = path.display().to_string();
    let mut all = env.to_vec();
    all.push(("GATEWAY_RULES_PATH", &p));
    let gw = start(rules, &all);
    Alone {
        gw,
        path,
        _dir: dir,
    }
}

/// One request on a fresh connection (`Connection: close`), with extra
/// headers and an optional body.
fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if let Some(b) = body {
        stream.write_all(b)?;
    }
    read_response(&mut BufReader::new(stream), method == "HEAD")
}

fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    try_http(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {addr}{path}: {e}"))
}

/// An admin request with the right token.
fn admin(gw: &Gateway, method: &str, path: &str, body: Option<&str>) -> Response {
    let auth = format!("Bearer {TOKEN}");
    http(
        gw.admin,
        method,
        path,
        &[("Authorization", &auth)],
        body.map(str::as_bytes),
    )
}

/// `GET /admin/rules`: the live version.
fn live(gw: &Gateway) -> Value {
    let r = admin(gw, "GET", "/admin/rules", None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn live_hash(gw: &Gateway) -> String {
    live(gw)["hash"].as_str().unwrap().to_string()
}

/// `GET path` on the proxy: (Location, Cache-Control) of a 302.
fn answer(gw: &Gateway, path: &str) -> (String, String) {
    let r = gw.get(HOST, path);
    assert_eq!(r.status, 302, "{path}: {r:?}");
    (
        r.location().to_string(),
        r.header("cache-control").unwrap_or("").to_string(),
    )
}

/// The last lines of the log, for failure messages.
fn log_tail(gw: &Gateway) -> String {
    let text = gw.log_text();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Polls `f` every 20 ms until it gives a value; after `timeout`, panics
/// with `context()` (log tails).
fn wait_until<T>(
    what: &str,
    timeout: Duration,
    context: &dyn Fn() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out waiting for {what}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`wait_until`] with `gw`'s log tail as context.
fn wait_for<T>(gw: &Gateway, what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    wait_until(what, timeout, &|| format!("log tail:\n{}", log_tail(gw)), f)
}

/// Waits until the live rules hash is `hash`; returns the live version.
fn wait_hash(gw: &Gateway, hash: &str) -> Value {
    wait_for(gw, &format!("live hash {hash}"), WAIT, || {
        let v = live(gw);
        (v["hash"] == hash).then_some(v)
    })
}

/// Waits until the live rules hash is no longer `old`.
fn wait_hash_change(gw: &Gateway, old: &str) -> Value {
    wait_for(gw, &format!("live hash to leave {old}"), WAIT, || {
        let v = live(gw);
        (v["hash"] != old).then_some(v)
    })
}

/// Waits until `/x` answers `expected`.
fn wait_answer(gw: &Gateway, expected: &(String, String)) {
    wait_for(gw, &format!("/x to answer {expected:?}"), WAIT, || {
        (answer(gw, "/x") == *expected).then_some(())
    })
}

/// The JSON log lines.
/// Log lines whose message starts with `message` (and whose trigger is
/// `trigger`, when given).
fn count(gw: &Gateway, message: &str, trigger: Option<&str>) -> usize {
    gw.log_json()
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message))
        })
        .filter(|e| trigger.is_none_or(|t| e["trigger"] == t))
        .count()
}

const RELOADED: &str = "rules reloaded";
const UNCHANGED: &str = "rules unchanged";
const REFUSED: &str = "rules refused";

/// Writes `text` to a temporary name in the same directory, then renames it
/// over `path` (how editors and deploy tools replace a file).
fn replace_by_rename(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        "{}.new",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Makes sure the file watch is active: rewrites the rules file with its
/// own content until the watcher reports an unchanged reload. (The admin
/// `/ready` answers before the background watch is necessarily installed.)
fn sync_watcher(gw: &Gateway, path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    sync_watcher_with(gw, || std::fs::write(path, &text).unwrap());
}

/// [`sync_watcher`] with `touch` producing a file event with the same
/// content.
fn sync_watcher_with(gw: &Gateway, mut touch: impl FnMut()) {
    let before = count(gw, UNCHANGED, Some("file"));
    for _ in 0..30 {
        touch();
        let deadline = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < deadline {
            if count(gw, UNCHANGED, Some("file")) > before {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("the file watch never reacted; log tail:\n{}", log_tail(gw));
}

/// Whether the process is still running.
fn alive(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

// ---------------------------------------------------------------------------
// 1. Reload under load
// ---------------------------------------------------------------------------

/// What the load clients saw.
#[derive(Default)]
struct Load {
    total: AtomicUsize,
    seen_a: AtomicUsize,
    seen_b: AtomicUsize,
    failed: AtomicUsize,
    samples: Mutex<Vec<String>>,
}

impl Load {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut s = self.samples.lock().unwrap();
        if s.len() < 20 {
            s.push(what);
        }
    }

    /// Checks one response: a 302 whose (Location, Cache-Control) is A's or
    /// B's, never a mix.
    fn check(&self, path: &str, r: &Response) {
        let got = (
            r.header("location").unwrap_or("").to_string(),
            r.header("cache-control").unwrap_or("").to_string(),
        );
        if r.status != 302 {
            self.fail(format!("{path}: status {} {got:?}", r.status));
        } else if got == pair("a", 1, path) {
            self.seen_a.fetch_add(1, Ordering::Relaxed);
        } else if got == pair("b", 2, path) {
            self.seen_b.fetch_add(1, Ordering::Relaxed);
        } else {
            self.fail(format!("{path}: inconsistent answer {got:?}"));
        }
    }
}

const LOAD_MIN_REQUESTS: usize = 20_000;

/// Requests `/x` and `/y` alternately on one keep-alive connection until
/// `done` is set and the clients together made `LOAD_MIN_REQUESTS`, or the
/// deadline passes.
fn load_client(addr: SocketAddr, done: &AtomicBool, load: &Load, deadline: Instant) {
    let connect = || -> std::io::Result<(TcpStream, BufReader<TcpStream>)> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok((s.try_clone()?, BufReader::new(s)))
    };
    let mut conn = None;
    for i in 0..2_000_000u32 {
        if Instant::now() >= deadline
            || (done.load(Ordering::Relaxed)
                && load.total.load(Ordering::Relaxed) >= LOAD_MIN_REQUESTS)
        {
            return;
        }
        let (writer, reader) = match &mut conn {
            Some(c) => c,
            None => match connect() {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    load.total.fetch_add(1, Ordering::Relaxed);
                    load.fail(format!("connect: {e}"));
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let path = if i % 2 == 0 { "/x" } else { "/y" };
        send(writer, "GET", path, HOST, &[]);
        load.total.fetch_add(1, Ordering::Relaxed);
        match read_response(reader, false) {
            Ok(r) => {
                load.check(path, &r);
                if r.header("connection")
                    .is_some_and(|c| c.eq_ignore_ascii_case("close"))
                {
                    conn = None;
                }
            }
            Err(e) => {
                load.fail(format!("{path}: {e}"));
                conn = None;
            }
        }
    }
}

#[test]
fn rules_flip_under_load_without_a_failed_or_mixed_answer() {
    let (a, b) = (rules_a(), rules_b());
    let Alone { mut gw, path, _dir } = start_alone(&a, &[("GATEWAY_ADMIN_TOKEN", TOKEN)]);
    sync_watcher(&gw, &path);
    let hash_a = live_hash(&gw);
    let mut hash_b: Option<String> = None;

    let done = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Load::default());
    let deadline = Instant::now() + Duration::from_secs(240);
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (done, load, addr) = (done.clone(), load.clone(), gw.addr);
            std::thread::spawn(move || load_client(addr, &done, &load, deadline))
        })
        .collect();

    let mut triggers = Vec::new();
    for flip in 0..50 {
        let to_b = flip % 2 == 0;
        replace_by_rename(&path, if to_b { &b } else { &a });
        match flip % 3 {
            0 => {} // the file watch
            1 => gw.signal("HUP"),
            _ => {
                let r = admin(&gw, "POST", "/admin/reload", None);
                assert_eq!(r.status, 200, "flip {flip}: {}", r.text());
            }
        }
        let info = match (to_b, &hash_b) {
            (false, _) => wait_hash(&gw, &hash_a),
            (true, Some(h)) => wait_hash(&gw, h),
            (true, None) => {
                let v = wait_hash_change(&gw, &hash_a);
                hash_b = Some(v["hash"].as_str().unwrap().to_string());
                v
            }
        };
        triggers.push(info["trigger"].as_str().unwrap_or("").to_string());
        // Once the admin API shows a version, requests get it.
        let expected = if to_b {
            pair("b", 2, "/x")
        } else {
            pair("a", 1, "/x")
        };
        assert_eq!(answer(&gw, "/x"), expected, "flip {flip}");
    }
    done.store(true, Ordering::Relaxed);
    let panicked = clients
        .into_iter()
        .map(|c| c.join())
        .filter(Result::is_err)
        .count();

    let total = load.total.load(Ordering::Relaxed);
    let failed = load.failed.load(Ordering::Relaxed);
    assert_eq!(panicked, 0, "a load client panicked");
    assert_eq!(
        failed,
        0,
        "{failed} of {total} requests failed, e.g. {:#?}",
        load.samples.lock().unwrap()
    );
    eprintln!(
        "load: {total} requests, {} from A, {} from B, triggers {triggers:?}",
        load.seen_a.load(Ordering::Relaxed),
        load.seen_b.load(Ordering::Relaxed)
    );
    assert!(total >= LOAD_MIN_REQUESTS, "only {total} requests");
    assert!(load.seen_a.load(Ordering::Relaxed) > 0, "never saw A");
    assert!(load.seen_b.load(Ordering::Relaxed) > 0, "never saw B");
    for t in ["file", "sighup", "admin"] {
        assert!(
            triggers.iter().any(|x| x == t),
            "no flip applied by {t}: {triggers:?}"
        );
    }
    assert!(alive(&mut gw.child), "the gateway died");
}

// ---------------------------------------------------------------------------
// 2. Refused files
// ---------------------------------------------------------------------------

/// An invalid rules file and where its error must be reported.
struct Bad {
    name: &'static str,
    text: String,
    line: usize,
    /// Exact column, when the position is the rule's own (not the parser's).
    column: Option<usize>,
    rule: &'static str,
    message: &'static str,
}

/// Rules A with a syntax error, a duplicate id, or a failing `[[test]]`.
fn bad_files() -> Vec<Bad> {
    let a = rules_a();
    let after = a.lines().count() + 1;
    let syntax = format!(
        "{a}\n[[redirect]]\nid = \"broken\"\nhost = \"go.example.com\"\npath = \"/broken\nto = \"https://x.example.com/\"\n"
    );
    let duplicate = duplicate_id(&a);
    let test = format!(
        "{a}\n[[test]]\nname = \"wrong\"\nurl = \"https://go.example.com/x\"\nexpect_location = \"https://wrong.example.com/x\"\n"
    );
    vec![
        Bad {
            name: "syntax error",
            line: line_of(&syntax, "path = \"/broken", after),
            column: None,
            rule: "-",
            message: "",
            text: syntax,
        },
        Bad {
            name: "duplicate id",
            line: line_of(&duplicate, "id = \"x\"", after),
            column: Some(6),
            rule: "x",
            message: "duplicate id",
            text: duplicate,
        },
        Bad {
            name: "failing test",
            line: line_of(&test, "[[test]]", after),
            column: Some(1),
            rule: "-",
            message: "expected location https://wrong.example.com/x",
            text: test,
        },
    ]
}

/// `text` plus a second rule with id `x`.
fn duplicate_id(text: &str) -> String {
    format!(
        "{text}\n[[redirect]]\nid = \"x\"\nhost = \"go.example.com\"\npath = \"/x2\"\nto = \"https://x.example.com/\"\n"
    )
}

/// Checks one `{file,line,column,rule,message}` error object.
fn check_error(
    e: &Value,
    file: &str,
    line: usize,
    column: Option<usize>,
    rule: &str,
    message: &str,
) {
    assert_eq!(e["file"], file, "{e}");
    assert_eq!(e["line"], line, "{e}");
    let col = e["column"]
        .as_u64()
        .unwrap_or_else(|| panic!("no column: {e}"));
    match column {
        Some(c) => assert_eq!(col, c as u64, "{e}"),
        None => assert!(col >= 1, "{e}"),
    }
    assert_eq!(e["rule"], rule, "{e}");
    let m = e["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message: {e}"));
    assert!(!m.is_empty() && m.contains(message), "{e}");
}

/// Waits for the error log line of a refused reload by `trigger` at `line`.
fn logged_error(gw: &Gateway, trigger: &str, line: usize) -> Value {
    wait_for(
        gw,
        &format!("an error logged at line {line} by {trigger}"),
        WAIT,
        || {
            gw.log_json()
                .into_iter()
                .find(|e| e["level"] == "ERROR" && e["trigger"] == trigger && e["line"] == line)
        },
    )
}

/// `POST /admin/reload` must answer 422 with `{"errors":[...]}`.
fn admin_reload_refused(gw: &Gateway) -> Vec<Value> {
    let r = admin(gw, "POST", "/admin/reload", None);
    assert_eq!(r.status, 422, "{}", r.text());
    let body = r.json();
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(!errors.is_empty(), "{body}");
    errors.clone()
}

/// `gateway_rules_reloads_total{result="failure"}`.
fn failures(gw: &Gateway) -> f64 {
    gw.metric("gateway_rules_reloads_total", &[("result", "failure")])
}

/// Refusals counted since `since` = (log lines, metric).
fn refusals_since(gw: &Gateway, since: (usize, f64)) -> (usize, f64) {
    (count(gw, REFUSED, None) - since.0, failures(gw) - since.1)
}

fn refusal_counts(gw: &Gateway) -> (usize, f64) {
    (count(gw, REFUSED, None), failures(gw))
}

#[test]
fn invalid_rules_are_refused_logged_at_their_position_and_the_old_rules_keep_answering() {
    let a = rules_a();
    let Alone { mut gw, path, _dir } = start_alone(&a, &[("GATEWAY_ADMIN_TOKEN", TOKEN)]);
    let file = path.display().to_string();
    sync_watcher(&gw, &path);
    let hash_a = live_hash(&gw);
    // (case, refusals logged, refusals in the metric) while the case's file
    // was on disk: one by the watch, one by POST /admin/reload.
    let mut counted = Vec::new();

    for bad in bad_files() {
        let before = refusal_counts(&gw);
        // The watch picks the broken file up, refuses it and logs where.
        std::fs::write(&path, &bad.text).unwrap();
        let e = logged_error(&gw, "file", bad.line);
        check_error(&e, &file, bad.line, bad.column, bad.rule, bad.message);
        assert_eq!(answer(&gw, "/x"), pair("a", 1, "/x"), "{}", bad.name);
        assert_eq!(answer(&gw, "/y"), pair("a", 1, "/y"), "{}", bad.name);

        // The admin API answers the same errors.
        let errors = admin_reload_refused(&gw);
        let e = errors
            .iter()
            .find(|e| e["line"] == bad.line)
            .unwrap_or_else(|| panic!("{}: {errors:?}", bad.name));
        check_error(e, &file, bad.line, bad.column, bad.rule, bad.message);
        assert_eq!(live_hash(&gw), hash_a, "{}", bad.name);
        assert_eq!(live(&gw)["version"], 1, "{}", bad.name);

        // Four debounce periods: a file that did not change again is not
        // read again.
        std::thread::sleep(Duration::from_secs(1));
        let (logged, metric) = refusals_since(&gw, before);
        counted.push((bad.name, logged, metric));
    }

    // A file caught mid-write (cut inside a string) is refused; once the
    // writer finishes, the complete file goes live.
    let before = refusal_counts(&gw);
    let b = rules_b();
    let cut = b.find("https://b.example.com/y").unwrap() + 10;
    let cut_line = line_of(&b, "to = \"https://b.example.com/y", 1);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&b.as_bytes()[..cut]).unwrap();
    f.sync_all().unwrap();
    let e = logged_error(&gw, "file", cut_line);
    check_error(&e, &file, cut_line, None, "-", "");
    assert_eq!(answer(&gw, "/x"), pair("a", 1, "/x"));
    let errors = admin_reload_refused(&gw);
    check_error(&errors[0], &file, cut_line, None, "-", "");
    assert_eq!(answer(&gw, "/x"), pair("a", 1, "/x"));
    std::thread::sleep(Duration::from_secs(1));
    let (logged, metric) = refusals_since(&gw, before);
    counted.push(("truncated mid-write", logged, metric));

    f.write_all(&b.as_bytes()[cut..]).unwrap();
    drop(f);
    wait_answer(&gw, &pair("b", 2, "/x"));
    assert_eq!(answer(&gw, "/y"), pair("b", 2, "/y"));
    assert!(alive(&mut gw.child), "the gateway died");

    assert!(
        counted
            .iter()
            .all(|&(_, logged, metric)| logged == 2 && metric == 2.0),
        "each broken file must be refused (and counted) once by the watch and once by \
         POST /admin/reload in the second it stays on disk; (case, log lines, metric): {counted:?}"
    );
}

// ---------------------------------------------------------------------------
// 3. File triggers
// ---------------------------------------------------------------------------

/// Writes 10 versions of the rules file within about 100 ms and checks that
/// they give exactly one reload. A write gap longer than the debounce would
/// legitimately give two: if the machine stalls that long, the burst is
/// tried again (at most 3 times).
fn burst_gives_one_reload(gw: &Gateway, path: &Path) {
    for attempt in 0..3u32 {
        let before = count(gw, RELOADED, None);
        let final_tag = format!("burst{attempt}");
        let mut max_gap = Duration::ZERO;
        let mut last = Instant::now();
        for k in 0..10u32 {
            let text = if k == 9 {
                rules(&final_tag, 50 + attempt)
            } else {
                rules(&format!("step{attempt}x{k}"), 60 + k)
            };
            std::fs::write(path, text).unwrap();
            max_gap = max_gap.max(last.elapsed());
            last = Instant::now();
            if k < 9 {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        wait_answer(gw, &pair(&final_tag, 50 + attempt, "/x"));
        // Four debounce periods of quiet: a second reload would show by now.
        std::thread::sleep(Duration::from_secs(1));
        let reloads = count(gw, RELOADED, None) - before;
        if max_gap < Duration::from_millis(150) {
            assert_eq!(reloads, 1, "a burst of 10 writes gave {reloads} reloads");
            return;
        }
        eprintln!("burst {attempt}: {max_gap:?} between two writes; trying again");
    }
    panic!("could not write 10 files within the debounce period in 3 attempts");
}

#[test]
fn file_changes_reload_in_place_by_rename_once_per_burst_and_not_for_the_same_content() {
    let Alone { mut gw, path, _dir } = start_alone(&rules_a(), &[("GATEWAY_ADMIN_TOKEN", TOKEN)]);
    sync_watcher(&gw, &path);

    // In place.
    std::fs::write(&path, rules_b()).unwrap();
    wait_answer(&gw, &pair("b", 2, "/x"));
    assert_eq!(answer(&gw, "/y"), pair("b", 2, "/y"));
    assert_eq!(live(&gw)["trigger"], "file");

    // A temporary file renamed over the rules file.
    replace_by_rename(&path, &rules("c", 3));
    wait_answer(&gw, &pair("c", 3, "/x"));
    assert_eq!(answer(&gw, "/y"), pair("c", 3, "/y"));
    assert_eq!(live(&gw)["trigger"], "file");

    burst_gives_one_reload(&gw, &path);

    // The same content again: no reload.
    let version = live(&gw)["version"].clone();
    let reloaded = count(&gw, RELOADED, None);
    let unchanged = count(&gw, UNCHANGED, None);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while count(&gw, UNCHANGED, None) == unchanged && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        count(&gw, RELOADED, None),
        reloaded,
        "identical content reloaded"
    );
    assert_eq!(live(&gw)["version"], version);
    assert!(alive(&mut gw.child), "the gateway died");
    let skipped: Vec<String> = gw
        .log_json()
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(UNCHANGED))
        })
        .skip(unchanged)
        .map(|e| format!("{} {}", e["timestamp"], e["trigger"]))
        .collect();
    assert!(
        skipped.len() <= 1,
        "one identical write gave {} `rules unchanged` lines in 1.5 s: {skipped:?}",
        skipped.len()
    );
}

#[test]
fn activity_on_other_files_in_the_rules_directory_does_not_hold_a_reload_back() {
    // A debounce of 1 s, so that only a stall of the writer below longer
    // than that could let a reload through that waits for total quiet.
    let Alone { gw, path, _dir } = start_alone(
        &rules_a(),
        &[
            ("GATEWAY_ADMIN_TOKEN", TOKEN),
            ("GATEWAY_RULES_DEBOUNCE", "1s"),
        ],
    );
    sync_watcher(&gw, &path);
    // Another program keeps writing its own file next to the rules (a log,
    // a lock file...), every 50 ms for up to 20 s.
    let stop = Arc::new(AtomicBool::new(false));
    let neighbour = {
        let (stop, other) = (stop.clone(), path.with_file_name("other.log"));
        std::thread::spawn(move || {
            for i in 0..400 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::fs::write(&other, format!("{i}\n")).unwrap();
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    std::fs::write(&path, rules_b()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut applied = false;
    while Instant::now() < deadline && !applied {
        applied = answer(&gw, "/x") == pair("b", 2, "/x");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    neighbour.join().unwrap();
    assert!(
        applied,
        "the rules change did not go live in 10 s while another file in the \
         same directory was written every 50 ms; log tail:\n{}",
        log_tail(&gw)
    );
}

/// A Kubernetes ConfigMap volume: `rules.toml` → `..data/rules.toml`,
/// `..data` → a timestamped directory, swapped atomically on update.
struct ConfigMap {
    dir: tempfile::TempDir,
    current: Option<String>,
    n: u32,
}

impl ConfigMap {
    fn new(text: &str) -> ConfigMap {
        let mut cm = ConfigMap {
            dir: tempfile::tempdir().unwrap(),
            current: None,
            n: 0,
        };
        cm.publish(text);
        std::os::unix::fs::symlink("..data/rules.toml", cm.path()).unwrap();
        cm
    }

    /// The rules path the gateway is given.
    fn path(&self) -> PathBuf {
        self.dir.path().join("rules.toml")
    }

    /// What the kubelet does: a new timestamped directory, a temporary
    /// `..data_tmp` symlink to it renamed over `..data`, then the old
    /// directory removed.
    fn publish(&mut self, text: &str) {
        self.n += 1;
        let ts = format!("..2026_01_01_00_00_{:02}.{:09}", self.n, self.n);
        let d = self.dir.path();
        std::fs::create_dir(d.join(&ts)).unwrap();
        std::fs::write(d.join(&ts).join("rules.toml"), text).unwrap();
        std::os::unix::fs::symlink(&ts, d.join("..data_tmp")).unwrap();
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        if let Some(old) = self.current.replace(ts) {
            std::fs::remove_dir_all(d.join(old)).unwrap();
        }
    }
}

#[test]
fn a_configmap_symlink_swap_reloads() {
    let a = rules_a();
    let mut cm = ConfigMap::new(&a);
    let rules_path = cm.path().display().to_string();
    let mut gw = start(
        &a,
        &[
            ("GATEWAY_ADMIN_TOKEN", TOKEN),
            ("GATEWAY_RULES_PATH", &rules_path),
        ],
    );
    assert_eq!(live(&gw)["source"], rules_path.as_str());
    sync_watcher_with(&gw, || cm.publish(&a));
    let reloaded = count(&gw, RELOADED, Some("file"));

    cm.publish(&rules_b());
    wait_answer(&gw, &pair("b", 2, "/x"));
    assert_eq!(live(&gw)["trigger"], "file");
    cm.publish(&rules("c", 3));
    wait_answer(&gw, &pair("c", 3, "/x"));
    assert_eq!(answer(&gw, "/y"), pair("c", 3, "/y"));
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(count(&gw, RELOADED, Some("file")), reloaded + 2);
    assert!(alive(&mut gw.child), "the gateway died");
}

// ---------------------------------------------------------------------------
// 4. SIGHUP
// ---------------------------------------------------------------------------

#[test]
fn sighup_reloads_and_the_process_survives() {
    let mut gw = start(
        &rules_a(),
        &[
            ("GATEWAY_ADMIN_TOKEN", TOKEN),
            ("GATEWAY_RULES_WATCH", "false"),
        ],
    );
    let path = gw.path("rules.toml");

    // The pid file names this process, so `kill -HUP "$(cat pid_file)"`
    // reaches it.
    let pid = std::fs::read_to_string(gw.path("gateway.pid")).unwrap();
    assert_eq!(pid.trim(), gw.child.id().to_string());
    // With the watch off, only the signal reloads.
    std::fs::write(&path, rules_b()).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(answer(&gw, "/x"), pair("a", 1, "/x"));
    gw.signal("HUP");
    wait_answer(&gw, &pair("b", 2, "/x"));
    let v = live(&gw);
    assert_eq!(
        (v["trigger"].as_str(), v["version"].as_u64()),
        (Some("sighup"), Some(2))
    );

    // An invalid file: refused, the process lives on with B.
    std::fs::write(&path, duplicate_id(&rules_b())).unwrap();
    gw.signal("HUP");
    wait_for(&gw, "a refusal by sighup", WAIT, || {
        (count(&gw, REFUSED, Some("sighup")) == 1).then_some(())
    });
    assert!(alive(&mut gw.child), "the gateway died on SIGHUP");
    assert_eq!(answer(&gw, "/x"), pair("b", 2, "/x"));

    // Several signals at once: one reload, the rest find nothing new.
    std::fs::write(&path, rules("c", 3)).unwrap();
    for _ in 0..5 {
        gw.signal("HUP");
    }
    wait_answer(&gw, &pair("c", 3, "/x"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(alive(&mut gw.child), "the gateway died on SIGHUP");
    assert_eq!(count(&gw, RELOADED, Some("sighup")), 2);
    assert_eq!(http(gw.admin, "GET", "/live", &[], None).status, 200);
}

// ---------------------------------------------------------------------------
// 5. Admin API
// ---------------------------------------------------------------------------

const EXPLAIN_X: &str = "/admin/explain?url=https%3A%2F%2Fgo.example.com%2Fx";

#[test]
fn every_admin_endpoint_needs_the_bearer_token() {
    let a = rules_a();
    let gw = start(&a, &[("GATEWAY_ADMIN_TOKEN", TOKEN)]);
    let b = rules_b();
    let endpoints = [
        ("POST", "/admin/reload"),
        ("PUT", "/admin/rules"),
        ("GET", "/admin/rules"),
        ("GET", "/admin/versions"),
        ("POST", "/admin/rollback"),
        ("GET", EXPLAIN_X),
        ("GET", "/admin/versions/1/rules"),
        ("GET", "/admin/versions/1/diff/1"),
        ("GET", "/admin/nope"),
    ];
    let wrong = [
        None,
        Some("Bearer wrong-token-0123456789abc".to_string()),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_string()),
    ];
    for (method, path) in endpoints {
        for auth in &wrong {
            let headers: Vec<(&str, &str)> =
                auth.iter().map(|a| ("Authorization", a.as_str())).collect();
            let body = (method == "PUT").then_some(b.as_bytes());
            let r = http(gw.admin, method, path, &headers, body);
            assert_eq!(r.status, 401, "{method} {path} with {auth:?}: {}", r.text());
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        }
    }
    // Nothing happened.
    assert_eq!(std::fs::read_to_string(gw.path("rules.toml")).unwrap(), a);
    assert_eq!(answer(&gw, "/x"), pair("a", 1, "/x"));
    assert_eq!(live(&gw)["version"], 1);
    // Health endpoints need no token.
    for p in ["/live", "/ready"] {
        assert_eq!(http(gw.admin, "GET", p, &[], None).status, 200, "{p}");
    }

    // Without a configured token the admin API is off altogether (404,
    // see `a_disabled_admin_api_answers_404_not_401`).
    let off = start(&a, &[]);
    let auth = format!("Bearer {TOKEN}");
    let r = http(
        off.admin,
        "GET",
        "/admin/rules",
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(http(off.admin, "GET", "/ready", &[], None).status, 200);
}

/// `PUT /admin/rules` with a chunked body (no `Content-Length` to refuse
/// up front), in 1000-byte chunks.
fn put_chunked(gw: &Gateway, text: &str) -> Response {
    let mut stream = TcpStream::connect_timeout(&gw.admin, Duration::from_secs(2)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut req = format!(
        "PUT /admin/rules HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for chunk in text.as_bytes().chunks(1000) {
        req.push_str(&format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            String::from_utf8_lossy(chunk)
        ));
    }
    req.push_str("0\r\n\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    read_response(&mut BufReader::new(stream), false).unwrap()
}

/// `PUT /admin/rules` must answer 200 with `result: success`; returns the
/// new version.
fn put_rules(gw: &Gateway, text: &str) -> Value {
    let r = admin(gw, "PUT", "/admin/rules", Some(text));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["result"], "success", "{v}");
    v["version"].clone()
}

#[test]
fn admin_api_reloads_replaces_lists_rolls_back_and_explains() {
    let a = rules_a();
    let mut gw = start(
        &a,
        &[
            ("GATEWAY_ADMIN_TOKEN", TOKEN),
            ("GATEWAY_RULES_WATCH", "false"),
            ("GATEWAY_ADMIN_MAX_BODY_BYTES", "4096"),
        ],
    );
    let path = gw.path("rules.toml");
    let file = path.display().to_string();
    let on_disk = || std::fs::read_to_string(&path).unwrap();

    // GET /admin/rules.
    let v = live(&gw);
    assert_eq!(v["version"], 1, "{v}");
    assert_eq!(v["source"], file.as_str(), "{v}");
    assert_eq!(v["trigger"], "startup", "{v}");
    let hash = v["hash"].as_str().unwrap();
    assert!(
        hash.len() == 16 && hash.bytes().all(|c| c.is_ascii_hexdigit()),
        "{v}"
    );
    let loaded_at = v["loaded_at"].as_str().unwrap();
    assert!(loaded_at.len() == 20 && loaded_at.ends_with('Z'), "{v}");
    assert_eq!(v["counts"]["redirects"], 2, "{v}");
    assert_eq!(v["counts"]["tests"], 1, "{v}");

    // POST /admin/reload: unchanged, applied, refused.
    let r = admin(&gw, "POST", "/admin/reload", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(
        (&body["result"], &body["version"]["version"]),
        (&"unchanged".into(), &1.into())
    );
    std::fs::write(&path, rules_b()).unwrap();
    let r = admin(&gw, "POST", "/admin/reload", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["result"], "success", "{body}");
    assert_eq!(body["version"]["version"], 2, "{body}");
    assert_eq!(body["version"]["trigger"], "admin", "{body}");
    assert_eq!(answer(&gw, "/x"), pair("b", 2, "/x"));
    let dup = duplicate_id(&rules_b());
    std::fs::write(&path, &dup).unwrap();
    let errors = admin_reload_refused(&gw);
    let line = line_of(&dup, "id = \"x\"", rules_b().lines().count() + 1);
    check_error(&errors[0], &file, line, Some(6), "x", "duplicate id");
    assert_eq!(answer(&gw, "/x"), pair("b", 2, "/x"));
    std::fs::write(&path, rules_b()).unwrap();

    // PUT /admin/rules: valid, invalid, too large.
    let c = rules("c", 3);
    let v = put_rules(&gw, &c);
    assert_eq!(v["version"], 3, "{v}");
    assert_eq!(on_disk(), c);
    assert_eq!(answer(&gw, "/x"), pair("c", 3, "/x"));
    assert_eq!(live(&gw)["trigger"], "admin");
    let bad = bad_files().remove(0);
    let r = admin(&gw, "PUT", "/admin/rules", Some(&bad.text));
    assert_eq!(r.status, 422, "{}", r.text());
    let body = r.json();
    check_error(&body["errors"][0], &file, bad.line, None, "-", "");
    assert_eq!(on_disk(), c);
    assert_eq!(answer(&gw, "/x"), pair("c", 3, "/x"));
    let big = format!("{c}\n# {}\n", "padding ".repeat(600));
    assert!(big.len() > 4096);
    let r = admin(&gw, "PUT", "/admin/rules", Some(&big));
    assert_eq!(r.status, 413, "{}", r.text());
    let r = put_chunked(&gw, &big);
    assert_eq!(r.status, 413, "chunked: {}", r.text());
    assert_eq!(on_disk(), c);
    assert_eq!(answer(&gw, "/x"), pair("c", 3, "/x"));

    // GET /admin/versions after 12 more changes: the last 10, newest first.
    let texts: Vec<String> = (0..12u32)
        .map(|i| rules(&format!("v{i}"), 100 + i))
        .collect();
    for t in &texts {
        put_rules(&gw, t);
    }
    let r = admin(&gw, "GET", "/admin/versions", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let versions = body["versions"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(versions.len(), 10, "{body}");
    let numbers: Vec<u64> = versions
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[0] > w[1]),
        "not newest first: {numbers:?}"
    );
    let now = live(&gw);
    assert_eq!(versions[0]["version"], now["version"]);
    assert_eq!(versions[0]["hash"], now["hash"]);
    for v in versions {
        for key in ["hash", "source", "trigger", "loaded_at", "counts"] {
            assert!(!v[key].is_null(), "{key} missing in {v}");
        }
    }

    // POST /admin/rollback: the previous version answers again and is the
    // file on disk.
    let r = admin(&gw, "POST", "/admin/rollback", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"], "success");
    assert_eq!(answer(&gw, "/x"), pair("v10", 110, "/x"));
    assert_eq!(answer(&gw, "/y"), pair("v10", 110, "/y"));
    assert_eq!(on_disk(), texts[10]);
    assert_eq!(live(&gw)["hash"], versions[1]["hash"]);

    // GET /admin/explain.
    let ua = "Mozilla%2F5.0%20(iPhone%3B%20CPU%20iPhone%20OS%2017_0%20like%20Mac%20OS%20X)";
    let r = admin(&gw, "GET", &format!("{EXPLAIN_X}&ua={ua}"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let e = &body["explanation"];
    assert_eq!(e["action"], "redirect", "{body}");
    assert_eq!(e["status"], 302, "{body}");
    assert_eq!(e["location"], "https://v10.example.com/x", "{body}");
    assert_eq!(e["rule"], "x", "{body}");
    assert_eq!(body["rules_version"], live(&gw)["version"], "{body}");
    let r = admin(&gw, "GET", "/admin/explain?ua=x", None);
    assert_eq!(r.status, 400, "{}", r.text());
    let r = admin(&gw, "GET", "/admin/reload", None);
    assert_eq!(r.status, 405, "{}", r.text());

    // Health endpoints need no token.
    for p in ["/live", "/ready"] {
        assert_eq!(http(gw.admin, "GET", p, &[], None).status, 200, "{p}");
    }
    assert!(alive(&mut gw.child), "the gateway died");
}

/// Regression (issue 18): rules could publish any local file. A
/// `body_file` outside the rules directory sent over the admin API is
/// refused at its position without quoting the file, and the public port
/// keeps answering with the old rules.
#[test]
fn put_rules_with_a_body_file_outside_the_rules_directory_is_refused_and_never_served() {
    let a = rules_a();
    let mut gw = start(
        &a,
        &[
            ("GATEWAY_ADMIN_TOKEN", TOKEN),
            ("GATEWAY_RULES_WATCH", "false"),
        ],
    );
    let path = gw.path("rules.toml");
    let file = path.display().to_string();
    let hash = live_hash(&gw);
    let text = format!(
        "{a}\n[[respond]]\nid = \"leak\"\nhost = \"go.example.com\"\npath = \"/leak\"\nbody_file = \"/etc/passwd\"\n"
    );
    let line = line_of(&text, "body_file = ", 1);

    let r = admin(&gw, "PUT", "/admin/rules", Some(&text));
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(!r.text().contains("root:"), "{}", r.text());
    let body = r.json();
    check_error(
        &body["errors"][0],
        &file,
        line,
        Some(13),
        "leak",
        "cannot read body_file /etc/passwd: it is not inside the rules file's directory",
    );
    assert_eq!(live_hash(&gw), hash);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), a);

    assert_eq!(answer(&gw, "/x"), pair("a", 1, "/x"));
    assert_eq!(answer(&gw, "/y"), pair("a", 1, "/y"));
    for p in ["/leak", "/x", "/y", "/etc/passwd"] {
        let r = gw.get(HOST, p);
        assert_ne!(r.status, 200, "{p}: {r:?}");
        assert!(!r.text().contains("root:"), "{p}: {}", r.text());
    }
    assert!(alive(&mut gw.child), "the gateway died");
}

// ---------------------------------------------------------------------------
// 6. X-Rules-Version
// ---------------------------------------------------------------------------

#[test]
fn x_rules_version_header_when_enabled_and_it_follows_reloads() {
    let a = rules_a();
    let off = start(&a, &[]);
    for p in ["/x", "/nope"] {
        let r = off.get(HOST, p);
        assert!(r.header("x-rules-version").is_none(), "{p}: {r:?}");
    }

    let on = start(
        &a,
        &[
            ("GATEWAY_ADMIN_TOKEN", TOKEN),
            ("GATEWAY_RULES_VERSION_HEADER", "true"),
        ],
    );
    for p in ["/x", "/nope"] {
        let r = on.get(HOST, p);
        assert_eq!(r.header("x-rules-version"), Some("1"), "{p}: {r:?}");
    }
    let v = put_rules(&on, &rules_b());
    let version = v["version"].as_u64().unwrap().to_string();
    assert_ne!(version, "1");
    for p in ["/x", "/nope"] {
        let r = on.get(HOST, p);
        assert_eq!(
            r.header("x-rules-version"),
            Some(version.as_str()),
            "{p}: {r:?}"
        );
    }
    assert_eq!(answer(&on, "/x"), pair("b", 2, "/x"));
}

// ---------------------------------------------------------------------------
// 7. Remote source
// ---------------------------------------------------------------------------

/// One request the rules server answered.
#[derive(Debug, Clone)]
struct Poll {
    if_none_match: Option<String>,
    status: u16,
    etag: String,
}

#[derive(Default)]
struct Served {
    body: String,
    etag: String,
    polls: Vec<Poll>,
}

/// A static rules server on loopback: `GET /rules.toml` answers the current
/// body with its ETag, or 304 when `If-None-Match` matches. Stops on drop.
struct RulesServer {
    addr: SocketAddr,
    state: Arc<Mutex<Served>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RulesServer {
    fn start(body: &str, etag: &str) -> RulesServer {
        let listener = harness::listen();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(Served {
            body: body.into(),
            etag: etag.into(),
            polls: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let state = state.clone();
            harness::accept_until(listener, stop.clone(), move |stream| {
                serve_rules(stream, &state)
            })
        };
        RulesServer {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/rules.toml", self.addr)
    }

    fn set(&self, body: &str, etag: &str) {
        let mut s = self.state.lock().unwrap();
        s.body = body.into();
        s.etag = etag.into();
    }

    fn polls(&self) -> Vec<Poll> {
        self.state.lock().unwrap().polls.clone()
    }

    /// Polls that sent `If-None-Match: etag` and got 304.
    fn not_modified(&self, etag: &str) -> usize {
        self.polls()
            .iter()
            .filter(|p| p.status == 304 && p.if_none_match.as_deref() == Some(etag))
            .count()
    }
}

impl Drop for RulesServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one request on `stream`, then closes it.
fn serve_rules(stream: TcpStream, state: &Mutex<Served>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut if_none_match = None;
    for _ in 0..100 {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("if-none-match") {
                if_none_match = Some(v.trim().to_string());
            }
        }
    }
    let response = {
        let mut s = state.lock().unwrap();
        let etag = s.etag.clone();
        let (status, response) = if !request_line.starts_with("GET /rules.toml ") {
            (
                404,
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string(),
            )
        } else if if_none_match.as_deref() == Some(etag.as_str()) {
            (
                304,
                format!("HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n"),
            )
        } else {
            (
                200,
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/toml\r\nETag: {etag}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    s.body.len(),
                    s.body
                ),
            )
        };
        s.polls.push(Poll {
            if_none_match,
            status,
            etag,
        });
        response
    };
    let _ = writer.write_all(response.as_bytes());
    let _ = writer.flush();
}

#[test]
fn remote_rules_are_polled_with_etags_and_only_valid_ones_go_live() {
    let a = rules_a();
    let server = RulesServer::start(&a, "\"a1\"");
    let url = server.url();
    let gw = start(
        &a,
        &[
            ("GATEWAY_ADMIN_TOKEN", TOKEN),
            ("GATEWAY_RULES_URL", &url),
            ("GATEWAY_RULES_POLL_INTERVAL", "200ms"),
        ],
    );
    let path = gw.path("rules.toml");
    let server_log = || format!("polls: {:?}\nlog tail:\n{}", server.polls(), log_tail(&gw));

    // The first poll has no validator; later ones send the ETag and get 304.
    wait_until(
        "two 304 answers to If-None-Match \"a1\"",
        WAIT,
        &server_log,
        || (server.not_modified("\"a1\"") >= 2).then_some(()),
    );
    let first = server.polls()[0].clone();
    assert_eq!((first.if_none_match, first.status), (None, 200));
    assert_eq!(
        live(&gw)["version"],
        1,
        "the same rules must not make a version"
    );

    // A new document goes live and is kept in the rules file.
    let b = rules_b();
    server.set(&b, "\"b1\"");
    wait_answer(&gw, &pair("b", 2, "/x"));
    assert_eq!(answer(&gw, "/y"), pair("b", 2, "/y"));
    let v = live(&gw);
    assert_eq!(v["trigger"], "remote", "{v}");
    assert_eq!(v["source"], url.as_str(), "{v}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), b);
    wait_until(
        "a 304 answer to If-None-Match \"b1\"",
        WAIT,
        &server_log,
        || (server.not_modified("\"b1\"") >= 1).then_some(()),
    );

    // An invalid document is refused: B keeps answering, the file keeps B.
    let hash_b = live_hash(&gw);
    server.set(&duplicate_id(&b), "\"bad1\"");
    wait_until(
        "the invalid document to be fetched and refused",
        WAIT,
        &server_log,
        || {
            let fetched = server
                .polls()
                .iter()
                .any(|p| p.status == 200 && p.etag == "\"bad1\"");
            (fetched && count(&gw, REFUSED, Some("remote")) >= 1).then_some(())
        },
    );
    wait_until(
        "polls to go on after the refusal",
        WAIT,
        &server_log,
        || (server.not_modified("\"bad1\"") >= 1).then_some(()),
    );
    assert_eq!(answer(&gw, "/x"), pair("b", 2, "/x"));
    assert_eq!(live_hash(&gw), hash_b);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), b);
}

// ---------------------------------------------------------------------------
// 8. Zero-downtime binary upgrade
// ---------------------------------------------------------------------------

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the new-connection client saw during the upgrade.
#[derive(Default)]
struct Handover {
    a: AtomicUsize,
    b: AtomicUsize,
    /// Answers from A on requests started after the old process exited.
    a_after: AtomicUsize,
    b_after: AtomicUsize,
    refused: AtomicUsize,
    other: AtomicUsize,
    samples: Mutex<Vec<String>>,
}

/// One request per new connection until `stop` (or the deadline).
fn handover_client(
    addr: SocketAddr,
    stop: &AtomicBool,
    old_gone: &AtomicBool,
    seen: &Handover,
    deadline: Instant,
) {
    for _ in 0..1_000_000 {
        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            return;
        }
        let after = old_gone.load(Ordering::Relaxed);
        match try_http(addr, "GET", "/x", &[], None) {
            Ok(r) => {
                let got = (
                    r.header("location").unwrap_or("").to_string(),
                    r.header("cache-control").unwrap_or("").to_string(),
                );
                let counter = if r.status == 302 && got == pair("a", 1, "/x") {
                    if after {
                        &seen.a_after
                    } else {
                        &seen.a
                    }
                } else if r.status == 302 && got == pair("b", 2, "/x") {
                    if after {
                        &seen.b_after
                    } else {
                        &seen.b
                    }
                } else {
                    seen.samples.lock().unwrap().push(format!("{r:?}"));
                    &seen.other
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let counter = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    &seen.refused
                } else {
                    &seen.other
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let mut s = seen.samples.lock().unwrap();
                if s.len() < 20 {
                    s.push(format!("{e}"));
                }
                drop(s);
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

#[test]
fn binary_upgrade_hands_the_listeners_over_without_refusing_a_connection() {
    let mut gw1 = start(&rules_a(), &[("GATEWAY_RULES_WATCH", "false")]);
    // The new process starts from B; the old one (no watch) keeps A, so the
    // answers tell who served them.
    std::fs::write(gw1.path("rules.toml"), rules_b()).unwrap();
    let config = gw1.path("gateway.toml");
    let sock = gw1.path("upgrade.sock");
    let log2 = gw1.path("gateway2.log");

    let stop = Arc::new(AtomicBool::new(false));
    let old_gone = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Handover::default());
    let client = {
        let (stop, old_gone, seen, addr) = (stop.clone(), old_gone.clone(), seen.clone(), gw1.addr);
        let deadline = Instant::now() + Duration::from_secs(90);
        std::thread::spawn(move || handover_client(addr, &stop, &old_gone, &seen, deadline))
    };
    let log1 = gw1.log.clone();
    let logs = || {
        format!(
            "old log:\n{}\nnew log:\n{}",
            std::fs::read_to_string(&log1).unwrap_or_default(),
            std::fs::read_to_string(&log2).unwrap_or_default()
        )
    };
    wait_until("answers from the old process", WAIT, &logs, || {
        (seen.a.load(Ordering::Relaxed) >= 50).then_some(())
    });

    // The new process waits on the upgrade socket for the listeners...
    let mut gw2 = Proc(
        Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["run", "--upgrade", "-c"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .env("GATEWAY_RULES_WATCH", "false")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log2).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until(
        "the new process to open the upgrade socket",
        WAIT,
        &logs,
        || {
            assert!(alive(&mut gw2.0), "the new process exited; {}", logs());
            sock.exists().then_some(())
        },
    );
    // ...which the old one sends on SIGQUIT, then drains and exits.
    gw1.signal("QUIT");
    let status = wait_until(
        "the old process to exit",
        Duration::from_secs(60),
        &logs,
        || gw1.child.try_wait().unwrap(),
    );
    old_gone.store(true, Ordering::Relaxed);
    wait_until("answers from the new process", WAIT, &logs, || {
        (seen.b_after.load(Ordering::Relaxed) >= 50).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    client.join().expect("the client panicked");

    let n = |c: &AtomicUsize| c.load(Ordering::Relaxed);
    let summary = format!(
        "A {} B {} (after the old exited: A {} B {}), refused {}, other failures {}, e.g. {:?}",
        n(&seen.a),
        n(&seen.b),
        n(&seen.a_after),
        n(&seen.b_after),
        n(&seen.refused),
        n(&seen.other),
        seen.samples.lock().unwrap()
    );
    eprintln!("upgrade: {summary}; the old process exited with {status}");
    assert_eq!(n(&seen.refused), 0, "connections refused: {summary}");
    assert_eq!(n(&seen.other), 0, "failed requests: {summary}");
    assert_eq!(
        n(&seen.a_after),
        0,
        "the old rules answered after exit: {summary}"
    );
    assert!(
        status.success(),
        "the old process exited with {status}; {}",
        logs()
    );
    assert!(alive(&mut gw2.0), "the new process died; {}", logs());
    assert_eq!(http(gw1.admin, "GET", "/ready", &[], None).status, 200);
    assert_eq!(answer(&gw1, "/x"), pair("b", 2, "/x"));
}

// ---------------------------------------------------------------------------
// Reload policy: empty and shrinking sets, half-written files, stuck builds
// ---------------------------------------------------------------------------

/// `n` redirects `/r0`..`/r{n-1}` to `https://{tag}.example.com/rI`.
fn many(tag: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[[redirect]]\nid = \"r{i}\"\nhost = \"go.example.com\"\npath = \"/r{i}\"\nto = \"https://{tag}.example.com/r{i}\"\n\n"
            )
        })
        .collect()
}

/// `gateway reload [--force]` against `gw`'s config; (exit code, stdout).
fn reload_command(gw: &Gateway, force: bool) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
    cmd.arg("reload")
        .arg("-c")
        .arg(gw.path("gateway.toml"))
        .env("GATEWAY_ADMIN_TOKEN", TOKEN);
    if force {
        cmd.arg("--force");
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn empty_and_much_smaller_rule_sets_are_held_until_forced() {
    let ten = many("a", 10);
    let gw = start(
        &ten,
        &[
            ("GATEWAY_ADMIN_TOKEN", TOKEN),
            ("GATEWAY_RULES_WATCH", "false"),
        ],
    );
    let path = gw.path("rules.toml");
    let hash = live_hash(&gw);
    // An empty file, through a reload: held, 409, the old rules answer.
    std::fs::write(&path, "").unwrap();
    let r = admin(&gw, "POST", "/admin/reload", None);
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("no rules and no links"), "{}", r.text());
    assert_eq!(live_hash(&gw), hash);
    assert_eq!(gw.get(HOST, "/r9").status, 302);
    // The same through `gateway reload`: exit 1 and the reason.
    let (code, out) = reload_command(&gw, false);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no rules and no links"), "{out}");
    // Three of ten rules over the admin API: a 70 % drop, held.
    let r = admin(&gw, "PUT", "/admin/rules", Some(&many("b", 3)));
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("remove 7 of the 10"), "{}", r.text());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "",
        "nothing written"
    );
    // Six of ten is within the default 50 %: applied.
    put_rules(&gw, &many("c", 6));
    assert_eq!(gw.get(HOST, "/r5").location(), "https://c.example.com/r5");
    // Forced: three rules go live, and then even the empty set.
    let r = admin(&gw, "PUT", "/admin/rules?force=true", Some(&many("d", 3)));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(gw.get(HOST, "/r5").status, 404);
    std::fs::write(&path, "").unwrap();
    let (code, out) = reload_command(&gw, true);
    assert_eq!(code, 0, "{out}");
    assert_eq!(gw.get(HOST, "/r0").status, 404);
    assert!(gw.metric("gateway_rules_reloads_total", &[("result", "failure")]) >= 3.0);
}

#[test]
fn an_empty_rules_file_does_not_start_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "# nothing yet\n").unwrap();
    let port = harness::free_port();
    let admin_port = harness::free_port();
    let run = |extra: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
        cmd.arg("run")
            .env("GATEWAY_RULES_PATH", &rules)
            .env("GATEWAY_SERVER_LISTEN", format!("127.0.0.1:{port}"))
            .env("GATEWAY_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
            .env("GATEWAY_SERVER_UPGRADE_SOCK", dir.path().join("up.sock"))
            .env("GATEWAY_SERVER_PID_FILE", dir.path().join("pid"))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd.envs(extra.iter().copied());
        cmd.spawn().unwrap()
    };
    let child = run(&[]);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no rules and no links"), "{err}");
    // Allowed explicitly: it starts and answers 404.
    let mut child = run(&[("GATEWAY_RULES_ALLOW_EMPTY", "true")]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let up = harness::wait_until(WAIT, || {
        TcpStream::connect(addr).is_ok()
            && harness::request(addr, "GET", "/x", HOST, &[]).status == 404
    });
    child.kill().ok();
    child.wait().ok();
    assert!(
        up,
        "the gateway did not answer with an empty, allowed rule set"
    );
}

#[test]
fn a_file_written_in_place_with_a_pause_never_goes_live_half_written() {
    let Alone { gw, path, _dir } = start_alone(
        &many("a", 10),
        &[
            ("GATEWAY_ADMIN_TOKEN", TOKEN),
            ("GATEWAY_RULES_DEBOUNCE", "200ms"),
        ],
    );
    let hash = live_hash(&gw);
    let full = many("b", 10);
    // Cut after the third rule, at a point that is valid TOML on its own.
    let cut = full.match_indices("[[redirect]]").nth(3).unwrap().0;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    f.write_all(&full.as_bytes()[..cut]).unwrap();
    f.flush().unwrap();
    // Longer than the debounce and the quiet check together.
    let pause = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < pause {
        assert_eq!(gw.get(HOST, "/r9").status, 302, "a partial set went live");
        std::thread::sleep(Duration::from_millis(50));
    }
    f.write_all(&full.as_bytes()[cut..]).unwrap();
    f.flush().unwrap();
    drop(f);
    wait_hash_change(&gw, &hash);
    wait_for(&gw, "the full new set", WAIT, || {
        let r = gw.get(HOST, "/r9");
        (r.status == 302 && r.location() == "https://b.example.com/r9").then_some(())
    });
    assert!(log_tail(&gw).contains("rules held back") || log_tail(&gw).contains("rules refused"));
}

#[test]
fn a_stuck_or_slow_build_is_abandoned_and_the_admin_api_keeps_answering() {
    let a = rules_a();
    let gw = start(
        &a,
        &[
            ("GATEWAY_ADMIN_TOKEN", TOKEN),
            ("GATEWAY_RULES_WATCH", "false"),
            ("GATEWAY_RULES_RELOAD_TIMEOUT", "1ms"),
        ],
    );
    let path = gw.path("rules.toml");
    // 300,000 links take far longer than a millisecond to compile.
    let mut csv = String::from("code,to\n");
    for i in 0..300_000 {
        csv.push_str(&format!("c{i},https://shop.example.com/{i}\n"));
    }
    std::fs::write(gw.path("big.csv"), csv).unwrap();
    let text =
        format!("{a}\n[[links]]\nid = \"big\"\nhost = \"go.example.com\"\nfile = \"big.csv\"\n");
    let r = admin(&gw, "PUT", "/admin/rules", Some(&text));
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("reload_timeout"), "{}", r.text());
    let r = admin(&gw, "GET", "/admin/versions", None);
    assert_eq!(r.status, 200, "{}", r.text());
    // The build that was given up on finishes in the background and
    // must not write the rules file or go live.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), a);
    assert_eq!(gw.get(HOST, "/c1").status, 404);
    assert_eq!(answer(&gw, "/x"), pair("a", 1, "/x"));
    // A FIFO named as a body file is refused at once, not waited on.
    let fifo = gw.path("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let text = format!("{a}\n[[respond]]\nid = \"p\"\npath = \"/p\"\nbody_file = \"pipe\"\n");
    let r = admin(&gw, "PUT", "/admin/rules", Some(&text));
    assert!(matches!(r.status, 422 | 500), "{}", r.text());
    assert_eq!(admin(&gw, "GET", "/admin/versions", None).status, 200);
}

#[test]
fn the_gateways_own_config_next_to_the_rules_is_never_served() {
    let a = rules_a();
    let gw = start(
        &a,
        &[
            ("GATEWAY_ADMIN_TOKEN", TOKEN),
            ("GATEWAY_RULES_WATCH", "false"),
        ],
    );
    // The harness writes gateway.toml next to rules.toml, as the bundled
    // config and the container image do.
    assert!(gw.path("gateway.toml").exists());
    let text = format!(
        "{a}\n[[respond]]\nid = \"conf\"\nhost = \"go.example.com\"\npath = \"/conf\"\nbody_file = \"./gateway.toml\"\n"
    );
    let r = admin(&gw, "PUT", "/admin/rules", Some(&text));
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text()
            .contains("one of the gateway's own configuration or key files"),
        "{}",
        r.text()
    );
    assert!(!r.text().contains("[server]"), "{}", r.text());
    assert_ne!(gw.get(HOST, "/conf").status, 200);
}

// ---------------------------------------------------------------------------
// Issue 12: rules text and diff of kept versions, a disabled admin API
// ---------------------------------------------------------------------------

/// `GET /admin/versions/{v}/rules` and `GET /admin/versions/{a}/diff/{b}`.
#[test]
fn admin_versions_serve_their_rules_text_and_a_diff() {
    let a = rules_a();
    let gw = start(
        &a,
        &[
            ("GATEWAY_ADMIN_TOKEN", TOKEN),
            ("GATEWAY_RULES_WATCH", "false"),
        ],
    );
    let b = rules_b();
    assert_eq!(put_rules(&gw, &b)["version"], 2);

    // The exact text of each version, not the live one.
    for (v, text) in [(1, &a), (2, &b)] {
        let r = admin(&gw, "GET", &format!("/admin/versions/{v}/rules"), None);
        assert_eq!(r.status, 200, "{v}: {}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{v}"
        );
        assert_eq!(r.text(), *text, "version {v}");
    }

    let r = admin(&gw, "GET", "/admin/versions/1/diff/2", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let diff = r.text();
    assert!(diff.starts_with("--- version 1\n+++ version 2\n"), "{diff}");
    for line in [
        "-to = \"https://a.example.com/x\"",
        "+to = \"https://b.example.com/x\"",
        "-cache_control = \"max-age=1\"",
        "+cache_control = \"max-age=2\"",
        "-expect_location = \"https://a.example.com/x\"",
        "+expect_location = \"https://b.example.com/x\"",
        " id = \"x\"",
    ] {
        assert!(diff.lines().any(|l| l == line), "no {line:?} in\n{diff}");
    }
    assert!(diff.contains("\n@@ "), "{diff}");
    let r = admin(&gw, "GET", "/admin/versions/2/diff/2", None);
    assert_eq!((r.status, r.text()), (200, String::new()));

    // Unknown versions and malformed paths.
    for path in [
        "/admin/versions/99/rules",
        "/admin/versions/0/rules",
        "/admin/versions/x/rules",
        "/admin/versions/1/diff/99",
        "/admin/versions/99/diff/1",
    ] {
        let r = admin(&gw, "GET", path, None);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        let m = r.json()["errors"][0]["message"].clone();
        let m = m.as_str().unwrap_or_else(|| panic!("{path}: {m}"));
        assert!(m.contains("unknown or no longer kept"), "{path}: {m}");
        assert!(m.contains("versions 2, 1 are kept"), "{path}: {m}");
    }
    for path in [
        "/admin/versions/1",
        "/admin/versions/1/text",
        "/admin/versions/1/diff",
    ] {
        let r = admin(&gw, "GET", path, None);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    for method in ["POST", "PUT", "DELETE"] {
        for path in ["/admin/versions/1/rules", "/admin/versions/1/diff/2"] {
            let r = admin(&gw, method, path, None);
            assert_eq!(r.status, 405, "{method} {path}: {}", r.text());
        }
    }

    // Only the kept versions have their text: after ten more, 1 and 2 are gone.
    for i in 0..10u32 {
        put_rules(&gw, &rules(&format!("k{i}"), 200 + i));
    }
    let r = admin(&gw, "GET", "/admin/versions/1/rules", None);
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("no longer kept"), "{}", r.text());
    let r = admin(&gw, "GET", "/admin/versions/3/rules", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), rules("k0", 200));
    let r = admin(&gw, "GET", "/admin/versions/3/diff/12", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text()
            .lines()
            .any(|l| l == "+to = \"https://k9.example.com/x\""),
        "{}",
        r.text()
    );

    // The reload log line's duration has no float noise (issue 12, item 11).
    let durations: Vec<String> = gw
        .log_json()
        .iter()
        .filter(|e| e["message"] == RELOADED)
        .map(|e| e["duration_ms"].to_string())
        .collect();
    assert_eq!(durations.len(), 11, "{durations:?}");
    for d in &durations {
        let decimals = d.split_once('.').map_or(0, |(_, f)| f.len());
        assert!(decimals <= 1, "duration_ms={d} in {durations:?}");
    }
}

/// Regression (issue 12): with no token configured, `/admin/*` answered
/// 401, which monitoring reads as an authentication failure.
#[test]
fn a_disabled_admin_api_answers_404_not_401() {
    let gw = start(&rules_a(), &[]);
    let auth = format!("Bearer {TOKEN}");
    for (method, path) in [
        ("GET", "/admin/rules"),
        ("GET", "/admin/versions"),
        ("GET", "/admin/versions/1/rules"),
        ("POST", "/admin/reload"),
        ("GET", "/admin/nope"),
    ] {
        for headers in [vec![], vec![("Authorization", auth.as_str())]] {
            let r = http(gw.admin, method, path, &headers, None);
            assert_eq!(r.status, 404, "{method} {path}: {}", r.text());
            assert_eq!(r.header("www-authenticate"), None, "{method} {path}");
            assert_eq!(
                r.json()["errors"][0]["message"],
                "the admin API is disabled: set admin.token (or GATEWAY_ADMIN_TOKEN)",
                "{method} {path}"
            );
        }
    }
    assert_eq!(http(gw.admin, "GET", "/ready", &[], None).status, 200);
    assert_eq!(answer(&gw, "/x"), pair("a", 1, "/x"));
}
