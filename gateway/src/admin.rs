//! The admin listener: health endpoints for orchestrators (no token) and
//! the admin API for rules (bearer token), on loopback by default.

use async_trait::async_trait;
use bytes::BytesMut;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use std::sync::Arc;
use subtle::ConstantTimeEq;

use crate::live::{Live, Outcome, Reloader, Snapshot, Trigger};
use crate::metrics::Metrics;
use crate::store::{Store, StoreView};
use rules::StoreStep;
use rules::{Probe, RuleError};

/// The admin HTTP application.
pub struct Admin {
    reloader: Arc<Reloader>,
    store: Option<Arc<Store>>,
    metrics: Arc<Metrics>,
    token: Option<String>,
    max_body: usize,
}

impl Admin {
    /// An admin app over the reloader's live snapshot.
    pub fn new(
        reloader: Arc<Reloader>,
        store: Option<Arc<Store>>,
        metrics: Arc<Metrics>,
        token: Option<String>,
        max_body: usize,
    ) -> Self {
        Admin {
            reloader,
            store,
            metrics,
            token,
            max_body,
        }
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Vec<u8>> {
    let len = body.len();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
}

fn text(status: StatusCode, body: &str) -> Response<Vec<u8>> {
    respond(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Vec<u8>> {
    let mut body = serde_json::to_vec_pretty(&value).unwrap_or_default();
    body.push(b'\n');
    respond(status, "application/json", body)
}

/// `{"errors":[{file,line,column,rule,message}]}`.
fn errors(status: StatusCode, errors: &[RuleError]) -> Response<Vec<u8>> {
    json_response(status, json!({ "errors": errors }))
}

/// An error that is not about a rule.
fn problem(status: StatusCode, message: &str) -> Response<Vec<u8>> {
    json_response(status, json!({ "errors": [{ "message": message }] }))
}

/// Whether the query asks to apply rules the reload policy would hold
/// back (`?force=true`).
fn forced(query: Option<&str>) -> bool {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .any(|(k, v)| k == "force" && matches!(v.as_ref(), "true" | "1"))
}

/// `GET /metrics`: the Prometheus text exposition.
pub fn metrics_response(metrics: &Metrics, live: &Snapshot) -> Response<Vec<u8>> {
    respond(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        live.render_metrics(metrics),
    )
}

/// `GET /ready`: the rules are loaded before any listener is added, so a
/// snapshot means ready; the body says which, and how the pools are.
fn ready_response(snap: &Snapshot) -> Response<Vec<u8>> {
    let mut body = format!(
        "ready: rules version {} from {}, live since {}\n",
        snap.version,
        snap.source,
        humantime::format_rfc3339_seconds(snap.loaded_at)
    );
    let mut pools: Vec<_> = snap.pools.iter().collect();
    pools.sort_by(|a, b| a.0.cmp(b.0));
    for (name, pool) in pools {
        body.push_str(&format!(
            "upstream {name}: {}/{} backends healthy\n",
            pool.healthy_backends(),
            pool.total_backends()
        ));
    }
    text(StatusCode::OK, &body)
}

/// The health and metrics listener (`[metrics] listen`): `GET /metrics`,
/// `/live` and `/ready`, and nothing of the admin API, so orchestrators can
/// probe a port that is safe to open beyond loopback.
pub struct MetricsOnly {
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The live snapshot, for pool gauges.
    pub live: Live,
}

#[async_trait]
impl ServeHttp for MetricsOnly {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let read = matches!(req.method, http::Method::GET | http::Method::HEAD);
        match (read, req.uri.path()) {
            (true, "/metrics") => metrics_response(&self.metrics, &self.live.load()),
            (true, "/live") => text(StatusCode::OK, "live\n"),
            (true, "/ready") => ready_response(&self.live.load()),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

fn outcome_response(outcome: Outcome) -> Response<Vec<u8>> {
    match outcome {
        Outcome::Applied(v) => {
            json_response(StatusCode::OK, json!({ "result": "success", "version": v }))
        }
        Outcome::Unchanged(v) => json_response(
            StatusCode::OK,
            json!({ "result": "unchanged", "version": v }),
        ),
        Outcome::Refused(e) => errors(StatusCode::UNPROCESSABLE_ENTITY, &e),
        Outcome::Held(m) => problem(StatusCode::CONFLICT, &m),
        Outcome::NoPrevious => problem(StatusCode::CONFLICT, "no previous version to roll back to"),
        Outcome::Failed(m) => problem(StatusCode::INTERNAL_SERVER_ERROR, &m),
    }
}

/// An endpoint of the admin API under `/admin/` (but the version texts,
/// which take a version in the path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Reload,
    PutRules,
    GetRules,
    Versions,
    Rollback,
    Explain,
}

impl Endpoint {
    /// Every endpoint with its method and path: the one list the router
    /// and the `405`'s `Allow` header read.
    const ALL: [(&'static str, &'static str, Endpoint); 6] = [
        ("POST", "/admin/reload", Endpoint::Reload),
        ("PUT", "/admin/rules", Endpoint::PutRules),
        ("GET", "/admin/rules", Endpoint::GetRules),
        ("GET", "/admin/versions", Endpoint::Versions),
        ("POST", "/admin/rollback", Endpoint::Rollback),
        ("GET", "/admin/explain", Endpoint::Explain),
    ];

    /// The endpoint `method` and `path` ask for, or the methods `path`
    /// does answer (none: there is no such endpoint).
    fn route(method: &str, path: &str) -> Result<Endpoint, Vec<&'static str>> {
        let at_path = || Self::ALL.iter().filter(move |(_, p, _)| *p == path);
        match at_path().find(|(m, _, _)| *m == method) {
            Some((_, _, e)) => Ok(*e),
            None => Err(at_path().map(|(m, _, _)| *m).collect()),
        }
    }
}

/// `405` with the methods the path does answer.
fn not_allowed(methods: &[&str]) -> Response<Vec<u8>> {
    let mut resp = problem(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    if let Ok(v) = http::HeaderValue::from_str(&methods.join(", ")) {
        resp.headers_mut().insert(http::header::ALLOW, v);
    }
    resp
}

impl Admin {
    /// Checks `Authorization: Bearer <token>` in constant time.
    fn authorized(&self, session: &ServerSession) -> bool {
        let Some(token) = &self.token else {
            return false;
        };
        let Some(given) = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            // The scheme is case-insensitive (RFC 9110 §11.1).
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
        else {
            return false;
        };
        bool::from(given.as_bytes().ct_eq(token.as_bytes()))
    }

    /// Reads the request body, refusing more than `max_body` bytes.
    async fn body(&self, session: &mut ServerSession) -> Result<Vec<u8>, Response<Vec<u8>>> {
        let too_large = || {
            problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "body larger than {} bytes (admin.max_body_bytes)",
                    self.max_body
                ),
            )
        };
        let declared = session
            .req_header()
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.max_body) {
            return Err(too_large());
        }
        let mut body = BytesMut::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.max_body {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body.to_vec()),
                Err(e) => {
                    return Err(problem(
                        StatusCode::BAD_REQUEST,
                        &format!("cannot read body: {e}"),
                    ))
                }
            }
        }
    }

    fn ready(&self) -> Response<Vec<u8>> {
        ready_response(&self.reloader.live().load())
    }

    /// The rules text of a kept version, or why there is none, naming the
    /// versions that are kept.
    fn kept_text(&self, version: &str) -> Result<Arc<str>, String> {
        let text = version
            .parse::<u64>()
            .ok()
            .and_then(|v| self.reloader.text_of(v));
        text.ok_or_else(|| {
            let kept: Vec<String> = self
                .reloader
                .history()
                .iter()
                .map(|v| v.version.to_string())
                .collect();
            format!(
                "version {version} is unknown or no longer kept; the rules of versions {} are kept",
                kept.join(", ")
            )
        })
    }

    /// `GET /admin/versions/{v}/rules` and `GET /admin/versions/{a}/diff/{b}`.
    fn version_texts(&self, method: &str, rest: &str) -> Response<Vec<u8>> {
        let parts: Vec<&str> = rest.split('/').collect();
        let known = matches!(parts.as_slice(), [_, "rules"] | [_, "diff", _]);
        if !known {
            return problem(StatusCode::NOT_FOUND, "no such admin endpoint");
        }
        if method != "GET" {
            return not_allowed(&["GET"]);
        }
        match parts.as_slice() {
            [v, "rules"] => match self.kept_text(v) {
                Ok(t) => text(StatusCode::OK, &t),
                Err(m) => problem(StatusCode::NOT_FOUND, &m),
            },
            [a, "diff", b] => {
                let (old, new) = match (self.kept_text(a), self.kept_text(b)) {
                    (Ok(old), Ok(new)) => (old, new),
                    (Err(m), _) | (_, Err(m)) => return problem(StatusCode::NOT_FOUND, &m),
                };
                let diff = similar::TextDiff::from_lines(&*old, &*new)
                    .unified_diff()
                    .context_radius(3)
                    .header(&format!("version {a}"), &format!("version {b}"))
                    .to_string();
                text(StatusCode::OK, &diff)
            }
            _ => problem(StatusCode::NOT_FOUND, "no such admin endpoint"),
        }
    }

    async fn explain(&self, query: Option<&str>) -> Response<Vec<u8>> {
        let params: Vec<(String, String)> =
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let Some(target) = get("url") else {
            return problem(StatusCode::BAD_REQUEST, "missing url parameter");
        };
        let probe = Probe {
            url: target,
            method: get("method"),
            user_agent: get("ua"),
            country: get("country"),
            ip: get("ip"),
            click_id: None,
        };
        let req = match probe.request(rules::unix_now()) {
            Ok(req) => req,
            Err(m) => return problem(StatusCode::BAD_REQUEST, &m),
        };
        let snap = self.reloader.live().load();
        let view = StoreView::new(self.store.as_deref());
        let mut explanation = snap.rules.explain_with(&req, &view);
        if matches!(explanation.store, Some(StoreStep::Unknown { .. })) {
            if let Err(e) = view.resolve(&snap.rules).await {
                return problem(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
            }
            explanation = snap.rules.explain_with(&req, &view);
        }
        json_response(
            StatusCode::OK,
            json!({ "rules_version": snap.version, "explanation": explanation }),
        )
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.as_str().to_string();
        let path = session.req_header().uri.path().to_string();
        let query = session.req_header().uri.query().map(str::to_string);
        match (method.as_str(), path.as_str()) {
            ("GET" | "HEAD", "/live") => return text(StatusCode::OK, "live\n"),
            ("GET" | "HEAD", "/ready") => return self.ready(),
            ("GET", "/metrics") => {
                return metrics_response(&self.metrics, &self.reloader.live().load())
            }
            _ => {}
        }
        if !path.starts_with("/admin/") {
            return text(StatusCode::NOT_FOUND, "not found\n");
        }
        if self.token.is_none() {
            // Not 401: no credentials would help, and monitoring must not
            // read a switched-off API as failed authentication.
            return problem(
                StatusCode::NOT_FOUND,
                "the admin API is disabled: set admin.token (or GATEWAY_ADMIN_TOKEN)",
            );
        }
        if !self.authorized(session) {
            let mut resp = problem(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            resp.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            return resp;
        }
        if let Some(rest) = path.strip_prefix("/admin/versions/") {
            return self.version_texts(&method, rest);
        }
        let endpoint = match Endpoint::route(&method, &path) {
            Ok(e) => e,
            Err(allowed) if allowed.is_empty() => {
                return problem(StatusCode::NOT_FOUND, "no such admin endpoint")
            }
            Err(allowed) => return not_allowed(&allowed),
        };
        match endpoint {
            Endpoint::Reload => outcome_response(
                self.reloader
                    .reload(Trigger::Admin, forced(query.as_deref()))
                    .await,
            ),
            Endpoint::PutRules => {
                let body = match self.body(session).await {
                    Ok(b) => b,
                    Err(resp) => return resp,
                };
                let Ok(text) = String::from_utf8(body) else {
                    return problem(StatusCode::BAD_REQUEST, "the rules must be UTF-8 text");
                };
                outcome_response(
                    self.reloader
                        .apply(
                            Some(text),
                            Trigger::Admin,
                            "admin api".into(),
                            true,
                            forced(query.as_deref()),
                        )
                        .await,
                )
            }
            Endpoint::GetRules => {
                json_response(StatusCode::OK, json!(self.reloader.live().load().info()))
            }
            Endpoint::Versions => json_response(
                StatusCode::OK,
                json!({ "versions": self.reloader.history() }),
            ),
            Endpoint::Rollback => outcome_response(self.reloader.rollback().await),
            Endpoint::Explain => self.explain(query.as_deref()).await,
        }
    }
}
