//! The console against the real binary: logging in on the admin listener
//! (admin token) and the API listener (API key), the session cookie and
//! its CSRF token standing for the secret, the operator's view of every
//! link, a partner's view of its own, and the admin endpoints the pages
//! read. The pages themselves are driven in Chromium by
//! `console/e2e/run.mjs`, run from [`the_console_in_a_real_browser`].

use crate::harness::{
    api_route, or_skip, request_with_body, sqlite_url, workspace, ApiGateway, Behavior, Key,
    Options, Response, Upstream,
};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const TOKEN: &str = "console-test-token-0123456789";
const HOST: &str = "go.example.com";

const RULES: &str = r#"
[[domain]]
id = "go-links"
host = "go.example.com"
store = true

[[redirect]]
id = "docs"
host = "www.example.com"
path = "/docs"
to = "https://docs.example.com/"

[[test]]
url = "http://www.example.com/docs"
expect_status = 302
expect_location = "https://docs.example.com/"
"#;

/// A gateway with the API, a SQLite store and the admin token, and
/// `rules` (the module's rules when empty).
fn start(rules: &str) -> (tempfile::TempDir, ApiGateway) {
    let dir = tempfile::tempdir().unwrap();
    let rules = if rules.is_empty() { RULES } else { rules };
    let gw = ApiGateway::start_opts(
        rules,
        &sqlite_url(dir.path()),
        Options {
            env: &[("GATEWAY_ADMIN_TOKEN", TOKEN)],
            ..Options::default()
        },
    );
    (dir, gw)
}

/// A browser's session on one listener: its cookie and CSRF token.
struct Browser {
    addr: SocketAddr,
    cookie: String,
    csrf: String,
}

/// `POST /console/session` with `token` on `addr`.
fn log_in(addr: SocketAddr, token: &str) -> Response {
    let body = serde_json::to_vec(&json!({ "token": token })).unwrap();
    request_with_body(
        addr,
        "POST",
        "/console/session",
        "127.0.0.1",
        &[("Content-Type", "application/json")],
        Some(&body),
    )
}

impl Browser {
    /// Logged in on `addr` with `token`; the answer must be a session.
    fn new(addr: SocketAddr, token: &str) -> Browser {
        let r = log_in(addr, token);
        assert_eq!(r.status, 200, "{}", r.text());
        let set = r.header("set-cookie").expect("a session cookie");
        let cookie = set.split(';').next().unwrap().to_string();
        let csrf = r.json()["csrf"].as_str().unwrap().to_string();
        Browser { addr, cookie, csrf }
    }

    /// A request with the cookie, the CSRF token if `csrf`, and a JSON
    /// body if any.
    fn send(&self, method: &str, path: &str, body: Option<&Value>, csrf: bool) -> Response {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
        let mut headers = vec![("Cookie", self.cookie.as_str())];
        if csrf {
            headers.push(("X-CSRF-Token", self.csrf.as_str()));
        }
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        request_with_body(
            self.addr,
            method,
            path,
            "127.0.0.1",
            &headers,
            bytes.as_deref(),
        )
    }

    fn get(&self, path: &str) -> Response {
        self.send("GET", path, None, false)
    }
}

fn link(code: &str) -> Value {
    json!({ "host": HOST, "code": code, "to": format!("https://shop.example.com/{code}") })
}

#[test]
fn an_operator_session_stands_for_the_admin_token_and_changes_need_its_csrf_token() {
    let (_dir, gw) = start("");
    let wrong = log_in(gw.admin, "not-the-token-at-all");
    assert_eq!(wrong.status, 401, "{}", wrong.text());
    assert!(wrong.header("set-cookie").is_none());

    let r = log_in(gw.admin, TOKEN);
    assert_eq!(r.status, 200, "{}", r.text());
    let set = r.header("set-cookie").unwrap().to_string();
    for attr in [
        "gateway_console_admin=",
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Path=/",
    ] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let me = r.json();
    assert_eq!(me["kind"], "operator");
    assert_eq!(me["csrf"].as_str().unwrap().len(), 64);

    let b = Browser::new(gw.admin, TOKEN);
    // Reads with the cookie alone; the token never needed again.
    assert_eq!(b.get("/admin/rules").status, 200);
    assert_eq!(b.get("/console/session").json()["kind"], "operator");
    // A change without the CSRF token is refused and changes nothing.
    let refused = b.send("POST", "/admin/reload", None, false);
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(refused.json()["type"], "urn:gateway:problem:csrf");
    let done = b.send("POST", "/admin/reload", None, true);
    assert_eq!(done.status, 200, "{}", done.text());
    // From another origin even the right token does not do.
    let body = b"{}";
    let cross = request_with_body(
        gw.admin,
        "POST",
        "/admin/reload",
        "127.0.0.1",
        &[
            ("Cookie", b.cookie.as_str()),
            ("X-CSRF-Token", b.csrf.as_str()),
            ("Origin", "http://evil.example"),
        ],
        Some(body),
    );
    assert_eq!(cross.status, 403, "{}", cross.text());
    // Logging out ends the session.
    assert_eq!(
        b.send("DELETE", "/console/session", None, false).status,
        403
    );
    let out = b.send("DELETE", "/console/session", None, true);
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(b.get("/admin/rules").status, 401);
    assert_eq!(b.get("/console/session").status, 401);
}

#[test]
fn the_operator_sees_and_changes_every_link_and_the_owner_stays() {
    let (_dir, gw) = start("");
    let partner: Key = gw.create_key("partner", HOST, &[]);
    let made = gw.post("/api/v1/links", &partner, &link("partners"));
    assert_eq!(made.status, 201, "{}", made.text());
    let partner_link = made.json()["id"].as_i64().unwrap();

    let op = Browser::new(gw.admin, TOKEN);
    let mine = op.send("POST", "/api/v1/links", Some(&link("operators")), true);
    assert_eq!(mine.status, 201, "{}", mine.text());
    let mine = mine.json()["id"].as_i64().unwrap();
    let codes: Vec<String> = op.get("/api/v1/links").json()["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes, ["partners", "operators"]);
    // The partner sees only its own.
    let theirs = gw.get_api("/api/v1/links", &partner).json();
    assert_eq!(theirs["links"].as_array().unwrap().len(), 1);
    assert_eq!(
        gw.get_api(&format!("/api/v1/links/{mine}"), &partner)
            .status,
        404
    );

    // The operator changes the partner's link: it stays the partner's.
    let path = format!("/api/v1/links/{partner_link}");
    let changed = op.send(
        "PATCH",
        &path,
        Some(&json!({ "to": "https://shop.example.com/changed" })),
        true,
    );
    assert_eq!(changed.status, 200, "{}", changed.text());
    let read = gw.get_api(&path, &partner);
    assert_eq!(read.status, 200, "{}", read.text());
    assert_eq!(read.json()["to"], "https://shop.example.com/changed");
    assert_eq!(served(&gw, "partners"), "https://shop.example.com/changed");

    // A field error names the field.
    let bad = op.send(
        "POST",
        "/api/v1/links",
        Some(&json!({ "host": HOST, "code": "x1", "to": "javascript:alert(1)" })),
        true,
    );
    assert_eq!(bad.status, 422, "{}", bad.text());
    assert_eq!(bad.json()["errors"][0]["field"], "to");

    // The QR code of the short URL.
    let qr = op.get(&format!("/api/v1/links/{mine}/qr.svg"));
    assert_eq!(qr.status, 200);
    assert_eq!(qr.header("content-type"), Some("image/svg+xml"));
    assert!(qr.text().contains("<svg"));

    // Without a session or the token, nothing; a partner's key is not
    // the admin token.
    let none = request_with_body(gw.admin, "GET", "/api/v1/links", "127.0.0.1", &[], None);
    assert_eq!(none.status, 401);
    let auth = format!("Bearer {}", partner.secret);
    let keyed = request_with_body(
        gw.admin,
        "GET",
        "/api/v1/links",
        "127.0.0.1",
        &[("Authorization", auth.as_str())],
        None,
    );
    assert_eq!(keyed.status, 401);

    assert_eq!(op.send("DELETE", &path, None, true).status, 204);
    assert_eq!(gw.get_api(&path, &partner).status, 404);
}

/// Where `code` on the link domain redirects to.
fn served(gw: &ApiGateway, code: &str) -> String {
    crate::harness::wait_until(Duration::from_secs(5), || {
        gw.get(HOST, &format!("/{code}")).status == 302
    });
    gw.get(HOST, &format!("/{code}")).location().to_string()
}

#[test]
fn a_partner_session_sees_only_its_links_and_ends_with_its_key() {
    let (_dir, gw) = start("");
    let a = gw.create_key("partner a", HOST, &[]);
    let b = gw.create_key("partner b", HOST, &[]);
    let theirs = gw.post("/api/v1/links", &b, &link("bees"));
    assert_eq!(theirs.status, 201);
    let theirs = theirs.json()["id"].as_i64().unwrap();

    // The admin token is no key.
    assert_eq!(log_in(gw.api, TOKEN).status, 401);
    let r = log_in(gw.api, &a.secret);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .header("set-cookie")
        .unwrap()
        .starts_with("gateway_console_api="));
    let me = r.json();
    assert_eq!(me["kind"], "partner");
    assert_eq!(me["key"], a.id.as_str());
    assert_eq!(me["hosts"], json!([HOST]));

    let s = Browser::new(gw.api, &a.secret);
    assert_eq!(s.get("/console/domains").json()["hosts"], json!([HOST]));
    let refused = s.send("POST", "/api/v1/links", Some(&link("ants")), false);
    assert_eq!(refused.status, 403, "{}", refused.text());
    let made = s.send("POST", "/api/v1/links", Some(&link("ants")), true);
    assert_eq!(made.status, 201, "{}", made.text());
    // Its links carry its rate limit, as with the key itself.
    assert!(made.header("ratelimit").is_some());
    let listed = s.get("/api/v1/links").json();
    let codes: Vec<&str> = listed["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["ants"]);
    assert_eq!(s.get(&format!("/api/v1/links/{theirs}")).status, 404);
    // A partner's session is nothing on the admin listener.
    let admin = request_with_body(
        gw.admin,
        "GET",
        "/admin/rules",
        "127.0.0.1",
        &[("Cookie", s.cookie.as_str())],
        None,
    );
    assert_eq!(admin.status, 401);

    // Revoked, the key's session ends within the key cache's lifetime.
    let out = gw.cli(&["keys", "revoke", &a.id]);
    assert!(out.status.success(), "{out:?}");
    let ended = crate::harness::wait_until(Duration::from_secs(5), || {
        s.get("/api/v1/links").status == 401
    });
    assert!(ended, "a revoked key's session still works");
    assert_eq!(s.get("/console/session").status, 401);
}

#[test]
fn the_console_page_is_served_from_the_binary_with_its_security_headers() {
    let (_dir, gw) = start("");
    let get = |path: &str, headers: &[(&str, &str)]| {
        request_with_body(gw.admin, "GET", path, "127.0.0.1", headers, None)
    };
    let page = get("/console/", &[]);
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html"));
    let built = std::fs::read_to_string(workspace("console/dist/index.html")).unwrap();
    assert_eq!(page.text(), built, "the page is the built one");
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    // Revalidated by its tag.
    let etag = page.header("etag").unwrap().to_string();
    assert_eq!(get("/console/", &[("If-None-Match", &etag)]).status, 304);
    // A deep link loads the page; a missing file is 404; `/console`
    // goes to `/console/`.
    assert_eq!(get("/console/links/7", &[]).text(), built);
    assert_eq!(get("/console/missing.js", &[]).status, 404);
    let bare = get("/console", &[]);
    assert_eq!(bare.status, 308);
    assert_eq!(bare.header("location"), Some("/console/"));
    // Its script and style with their types: under `nosniff` a browser
    // runs no module script served as anything else.
    let script = get("/console/console.js", &[]);
    assert_eq!(script.status, 200);
    assert_eq!(script.header("content-type"), Some("text/javascript"));
    let style = get("/console/console.css", &[]);
    assert_eq!(style.header("content-type"), Some("text/css"));
    // The same page for partners on the API listener.
    let partners = request_with_body(gw.api, "GET", "/console/", "127.0.0.1", &[], None);
    assert_eq!(partners.text(), built);
}

#[test]
fn a_gateway_without_an_admin_token_makes_one_when_asked_and_prints_it() {
    let gw = crate::harness::Gateway::start_with(
        RULES,
        Options {
            env: &[("GATEWAY_ADMIN_GENERATE_TOKEN", "true")],
            ..Options::default()
        },
    );
    assert!(gw.wait_log("admin.token is not set", Duration::from_secs(5)));
    let line = gw
        .log_json()
        .into_iter()
        .find(|l| {
            l["message"]
                .as_str()
                .unwrap_or("")
                .contains("admin.token is not set")
        })
        .unwrap();
    let token = line["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 32);
    assert_eq!(
        line["console"].as_str().unwrap(),
        format!("http://{}/console/", gw.admin)
    );
    let b = Browser::new(gw.admin, &token);
    assert_eq!(b.get("/admin/rules").status, 200);
    let auth = format!("Bearer {token}");
    let r = request_with_body(
        gw.admin,
        "GET",
        "/admin/versions",
        "127.0.0.1",
        &[("Authorization", auth.as_str())],
        None,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn the_pages_data_upstreams_metrics_refusals_and_rollback_to_any_version() {
    let backend = Upstream::start("b1", Behavior::Ok);
    let rules = format!("{RULES}\n{}", api_route(&[backend.addr.to_string()], ""));
    let (_dir, gw) = start(&rules);
    let op = Browser::new(gw.admin, TOKEN);
    assert_eq!(gw.get("api.example.com", "/v1/x").status, 200);

    let pools = op.get("/admin/upstreams").json();
    let pool = &pools["pools"][0];
    assert_eq!(pool["name"], "api");
    assert_eq!(pool["backends"][0]["address"], backend.addr.to_string());
    assert_eq!(pool["backends"][0]["healthy"], true);
    assert_eq!(pool["backends"][0]["ejected"], false);
    assert_eq!(pool["healthy"], 1);

    // A request is counted once its answer has been sent, so the client
    // can ask for the metrics before that: wait for the scrape to have it.
    gw.scrape_until_sum(
        Duration::from_secs(20),
        "gateway_requests_total",
        &[("kind", "proxy")],
        1.0,
    );
    let metrics = op.get("/admin/metrics.json").json();
    let requests = &metrics["families"]["gateway_requests_total"];
    assert_eq!(requests["type"], "counter");
    let proxied: f64 = requests["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["labels"]["kind"] == "proxy")
        .map(|s| s["value"].as_f64().unwrap())
        .sum();
    assert_eq!(proxied, 1.0, "{requests}");
    let duration = &metrics["families"]["gateway_request_duration_seconds"];
    assert_eq!(duration["type"], "histogram");
    let last = duration["series"][0]["buckets"]
        .as_array()
        .unwrap()
        .last()
        .unwrap();
    assert_eq!(last[0], "+Inf");

    // Version 2, then a broken file: refused, and kept for the page.
    let path = gw.path("rules.toml");
    let v2 = format!("{rules}\n# version two\n");
    std::fs::write(&path, &v2).unwrap();
    assert_eq!(
        op.send("POST", "/admin/reload", None, true).json()["version"]["version"],
        2
    );
    std::fs::write(&path, format!("{v2}\n[[redirect]]\nid = \"broken\"\n")).unwrap();
    let refused = op.send("POST", "/admin/reload", None, true);
    assert_eq!(refused.status, 422);
    let live = op.get("/admin/rules").json();
    assert_eq!(live["version"], 2);
    let last = &live["last_refused"];
    // The file watcher may see the broken file too, before or after.
    assert!(
        ["admin", "file"].contains(&last["trigger"].as_str().unwrap()),
        "{last}"
    );
    assert!(last["errors"][0]["line"].as_u64().unwrap() > 1, "{last}");
    assert!(last["errors"][0]["file"]
        .as_str()
        .unwrap()
        .ends_with("rules.toml"));

    // After version 3, back to version 1: not the one just before the
    // live one, so it is built again from its kept text.
    std::fs::write(&path, format!("{rules}\n# version three\n")).unwrap();
    assert_eq!(
        op.send("POST", "/admin/reload", None, true).json()["version"]["version"],
        3
    );
    let back = op.send("POST", "/admin/rollback?to=1", None, true);
    assert_eq!(back.status, 200, "{}", back.text());
    assert_eq!(back.json()["version"]["version"], 4);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), rules);
    let unknown = op.send("POST", "/admin/rollback?to=99", None, true);
    assert_eq!(unknown.status, 404);
    assert_eq!(op.get("/admin/rules").json()["version"], 4);
}

/// The Node.js and Chromium the browser tests need, or why not.
fn browser() -> Result<(), String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err("node is not installed".into());
    }
    if !Path::new("/usr/bin/chromium").exists() {
        return Err("/usr/bin/chromium is not installed (Debian package chromium)".into());
    }
    if !workspace("console/node_modules/playwright-core").exists() {
        return Err("console/node_modules is missing: run `npm ci` in console/".into());
    }
    Ok(())
}

#[test]
fn the_console_in_a_real_browser() {
    let test = "console::the_console_in_a_real_browser";
    let found = browser();
    let why = found.as_ref().err().cloned().unwrap_or_default();
    if or_skip(found.ok(), "browser", test, &why).is_none() {
        return;
    }
    let mut cmd = Command::new("node");
    cmd.arg("e2e/run.mjs")
        .current_dir(workspace("console"))
        .env("GATEWAY_BIN", env!("CARGO_BIN_EXE_gateway"))
        // The page under test is the one the binary embeds.
        .env_remove("GATEWAY_CONSOLE_DIR");
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "the browser tests failed:\n{stdout}{stderr}"
    );
}
