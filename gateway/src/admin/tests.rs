//! The router without a socket: which paths need the token, `405` and
//! `Allow`, `404`s, the body limit, `Cache-Control`.

use axum::body::Body;
use axum::Router;
use http::{header, Method, Request, StatusCode};
use std::sync::Arc;
use tower::ServiceExt;

use super::{metrics_router, router, AdminState};
use crate::config::Config;
use crate::live::{self, Meta, Policy, Reloader, Snapshot, Trigger};
use crate::metrics::Metrics;

const TOKEN: &str = "0123456789abcdef0123";

const RULES: &str = "[[redirect]]\nid = \"x\"\nhost = \"go.example.com\"\npath = \"/x\"\nto = \"https://a.example.com/x\"\n";

/// An admin state over a one-redirect rules file in a temporary directory.
fn state(token: Option<&str>, max_body: usize) -> (tempfile::TempDir, AdminState) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, RULES).unwrap();
    let mut config = Config::default();
    config.rules.path = path.clone();
    let policy = Policy::of(&config);
    let rules = rules::RuleSet::load_with(&path, &policy.load).unwrap();
    let metrics = Metrics::new().unwrap();
    let meta = Meta {
        version: 1,
        source: path.display().to_string(),
        trigger: Trigger::Startup,
        text: RULES.into(),
    };
    let snapshot = Snapshot::build(rules, None, meta, &metrics).unwrap();
    let reloader = Reloader::new(live::share(snapshot), path, policy, metrics.clone());
    let state = AdminState {
        reloader,
        store: None,
        metrics,
        token: token.map(Arc::from),
        max_body,
        sessions: Arc::new(crate::web::Sessions::new("test")),
        links: None,
    };
    (dir, state)
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn message(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body));
        v["errors"][0]["message"].as_str().unwrap_or("").to_string()
    }
}

async fn call(app: &Router, method: Method, uri: &str, auth: Option<&str>, body: &str) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let req = req.body(Body::from(body.to_string())).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Every path under `/admin/`, routed or not and whatever the method,
/// answers 401 without the right token, before routing could say 404 or
/// 405; what would have been routed says nothing.
#[tokio::test]
async fn every_admin_path_needs_the_token_whatever_the_method() {
    let (_dir, state) = state(Some(TOKEN), 1 << 20);
    let app = router(state);
    let wrong = [
        None,
        Some("Bearer wrong-token-0123456789".to_string()),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_string()),
        Some(format!("Bearer {TOKEN}x")),
    ];
    for (method, path) in [
        (Method::POST, "/admin/reload"),
        (Method::GET, "/admin/reload"),
        (Method::PUT, "/admin/rules"),
        (Method::DELETE, "/admin/rules"),
        (Method::GET, "/admin/versions/1/rules"),
        (
            Method::GET,
            "/admin/explain?url=http%3A%2F%2Fgo.example.com%2Fx",
        ),
        (Method::GET, "/admin/nope"),
        (Method::POST, "/admin/keys"),
    ] {
        for auth in &wrong {
            let a = call(&app, method.clone(), path, auth.as_deref(), "").await;
            assert_eq!(
                a.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth:?}"
            );
            assert_eq!(a.header(header::WWW_AUTHENTICATE), Some("Bearer"));
            assert_eq!(a.header(header::CACHE_CONTROL), Some("no-store"));
            assert_eq!(
                a.header(header::CONTENT_TYPE),
                Some("application/problem+json")
            );
            assert_eq!(a.message(), "missing or wrong bearer token");
        }
    }
    // The scheme is case-insensitive.
    let auth = format!("bEaReR {TOKEN}");
    let a = call(&app, Method::GET, "/admin/rules", Some(&auth), "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

#[tokio::test]
async fn without_a_token_the_admin_api_is_off_and_the_probes_answer() {
    let (_dir, state) = state(None, 1 << 20);
    let app = router(state);
    let auth = format!("Bearer {TOKEN}");
    for (method, path) in [
        (Method::GET, "/admin/rules"),
        (Method::POST, "/admin/reload"),
        (Method::DELETE, "/admin/rules"),
        (Method::GET, "/admin/nope"),
    ] {
        for a in [None, Some(auth.as_str())] {
            let r = call(&app, method.clone(), path, a, "").await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}");
            assert_eq!(r.header(header::WWW_AUTHENTICATE), None);
            assert_eq!(
                r.message(),
                "the admin API is disabled: set admin.token (or GATEWAY_ADMIN_TOKEN)"
            );
        }
    }
    for path in ["/live", "/ready", "/metrics"] {
        let r = call(&app, Method::GET, path, None, "").await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"), "{path}");
    }
}

/// A known path with another method: 405 and the methods it answers.
#[tokio::test]
async fn a_wrong_method_gets_405_with_allow() {
    let (_dir, state) = state(Some(TOKEN), 1 << 20);
    let app = router(state);
    let auth = format!("Bearer {TOKEN}");
    for (method, path, allowed) in [
        (Method::GET, "/admin/reload", &["POST"][..]),
        (Method::POST, "/admin/rules", &["GET", "HEAD", "PUT"][..]),
        (Method::DELETE, "/admin/versions", &["GET", "HEAD"][..]),
        (Method::PUT, "/admin/versions/1/rules", &["GET", "HEAD"][..]),
        (
            Method::POST,
            "/admin/versions/1/diff/2",
            &["GET", "HEAD"][..],
        ),
        (Method::GET, "/admin/rollback", &["POST"][..]),
        (Method::POST, "/admin/explain", &["GET", "HEAD"][..]),
        (Method::POST, "/ready", &["GET", "HEAD"][..]),
    ] {
        let r = call(&app, method.clone(), path, Some(&auth), "").await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        let mut allow: Vec<&str> = r
            .header(header::ALLOW)
            .unwrap_or_else(|| panic!("{method} {path}: no Allow"))
            .split(',')
            .map(str::trim)
            .collect();
        allow.sort_unstable();
        assert_eq!(allow, allowed, "{method} {path}");
        assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
        assert_eq!(r.message(), "method not allowed", "{method} {path}");
    }
}

#[tokio::test]
async fn unknown_paths_get_404() {
    let (_dir, state) = state(Some(TOKEN), 1 << 20);
    let app = router(state);
    let auth = format!("Bearer {TOKEN}");
    for path in ["/admin/nope", "/admin/versions/1", "/admin/versions/1/diff"] {
        let r = call(&app, Method::GET, path, Some(&auth), "").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.message(), "no such admin endpoint", "{path}");
    }
    let r = call(&app, Method::GET, "/nope", None, "").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::NOT_FOUND, "not found\n")
    );
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
}

/// A body over the limit that declares no length (chunked) is refused
/// when read, after the token check.
#[tokio::test]
async fn a_body_over_the_limit_gets_413() {
    let (_dir, state) = state(Some(TOKEN), 64);
    let app = router(state);
    let auth = format!("Bearer {TOKEN}");
    let r = call(
        &app,
        Method::PUT,
        "/admin/rules",
        Some(&auth),
        &"#".repeat(65),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert_eq!(
        r.message(),
        "body larger than 64 bytes (admin.max_body_bytes)"
    );
    let r = call(&app, Method::PUT, "/admin/rules", None, &"#".repeat(65)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// Refused rules keep their own body: each error where it is in the file.
#[tokio::test]
async fn refused_rules_answer_422_with_their_errors() {
    let (_dir, state) = state(Some(TOKEN), 1 << 20);
    let app = router(state);
    let auth = format!("Bearer {TOKEN}");
    let bad = format!("{RULES}{RULES}");
    let r = call(&app, Method::PUT, "/admin/rules", Some(&auth), &bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.header(header::CONTENT_TYPE), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let e = &v["errors"][0];
    for key in ["file", "line", "column", "rule", "message"] {
        assert!(!e[key].is_null(), "{key} missing in {v}");
    }
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
}

#[tokio::test]
async fn the_metrics_listener_serves_the_probes_and_nothing_of_the_admin_api() {
    let (_dir, state) = state(Some(TOKEN), 1 << 20);
    let app = metrics_router(state.metrics.clone(), state.reloader.live().clone());
    let r = call(&app, Method::GET, "/live", None, "").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "live\n"));
    let r = call(&app, Method::GET, "/ready", None, "").await;
    assert!(
        r.body.starts_with("ready: rules version 1 from "),
        "{}",
        r.body
    );
    let r = call(&app, Method::GET, "/metrics", None, "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header(header::CONTENT_TYPE),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(r.body.contains("gateway_rules_info"), "{}", r.body);
    let r = call(&app, Method::POST, "/metrics", None, "").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header(header::ALLOW), Some("GET,HEAD"));
    let auth = format!("Bearer {TOKEN}");
    let r = call(&app, Method::GET, "/admin/rules", Some(&auth), "").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::NOT_FOUND, "not found\n")
    );
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
}
