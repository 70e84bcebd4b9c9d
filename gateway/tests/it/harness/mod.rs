//! Test harness: starts the real `gateway` binary on ephemeral loopback
//! ports, plus small upstream HTTP servers, and a minimal HTTP/1.1 client
//! that sends exactly the bytes a test writes.

mod api;
mod gateway;
mod http;
mod nats;
mod pebble;
mod postgres;
mod prometheus;
mod upstream;

pub use api::{sqlite_url, ApiGateway, Key};
pub use gateway::{Gateway, Options};
pub use http::{read_response, read_rest_of_request, request, request_with_body, send, Response};
pub use nats::{Nats, Stored};
pub use pebble::Pebble;
pub use postgres::Postgres;
pub use prometheus::Scrape;
pub use upstream::{accept_until, Behavior, RawUpstream, Seen, Upstream};

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::{Mutex, PoisonError};
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

/// Waits up to `timeout` for `child` to exit; if it has not, kills it
/// (and reaps it) and returns `None`.
pub fn exit_within(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every loopback port this process has been given by [`listen`] or
/// [`free_port`], in use or not. All the tests run in one process, so
/// none of them may get a port another test holds, will bind, or keeps
/// as a dead backend: a gateway binding a port another one of its tests
/// was given would answer that test's requests.
static PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A listener on a loopback port no other test of this process was given.
pub fn listen() -> TcpListener {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if PORTS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(port)
        {
            return listener;
        }
    }
}

/// A free loopback port for a gateway to bind: bound then released, and
/// never given to another test of this process (another process could
/// still take it in between; nothing else on a test machine does).
pub fn free_port() -> u16 {
    listen().local_addr().unwrap().port()
}

/// Whether the environment says a missing `what` (a server binary such as
/// `postgres` or `nats`) is a failure: `TEST_REQUIRE` is a comma-separated
/// list of them.
pub fn required(what: &str) -> bool {
    std::env::var("TEST_REQUIRE")
        .map(|v| v.split(',').any(|w| w.trim() == what))
        .unwrap_or(false)
}

/// `found` (a server binary a test needs), or `None` after saying loudly
/// that `test` is skipped because `what` is `missing`; a failure instead
/// when [`required`] says so.
pub fn or_skip<T>(found: Option<T>, what: &str, test: &str, missing: &str) -> Option<T> {
    if found.is_none() {
        assert!(
            !required(what),
            "{test}: {missing}; TEST_REQUIRE={what} makes this a failure"
        );
        eprintln!("\n*** SKIPPED {test}: {missing} ***\n");
    }
    found
}

/// Path of a test fixture relative to the workspace.
pub fn workspace(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}
