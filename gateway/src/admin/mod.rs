//! The admin listener — health endpoints for orchestrators (no token) and
//! the admin API under `/admin/` (bearer token), on loopback by default —
//! and the health and metrics listener (`[metrics] listen`).
//!
//! Both are `axum` routers served by [`crate::web::WebService`]. The
//! router is the table of endpoints: a path answers the methods routed on
//! it, and any other method gets `405` with `Allow` from `axum`.
//!
//! A new admin endpoint: a handler in a child module, its route in that
//! module's `routes()`, and that `routes()` merged in [`router`] before
//! the token check is layered on. The check goes by path, so every path
//! under `/admin/` needs the token, routed or not (an unknown one answers
//! `404` only to a client that has it).

mod explain;
mod health;
mod keys;
mod rules;
mod stats;
mod status;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde::Serialize;
use std::sync::Arc;
use subtle::ConstantTimeEq;

use crate::api::ApiState;
use crate::console::{self, Console, Gate};
use crate::live::{Live, Reloader};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::web::{FieldError, Problem, Sessions, Subject};

use health::Health;

/// What the admin handlers share; cloned for every request, so each field
/// is cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    /// Reloads, replaces and rolls back the rules; holds the live snapshot.
    pub reloader: Arc<Reloader>,
    /// The link store, when there is one (`explain` asks it for codes on a
    /// store `[[domain]]`).
    pub store: Option<Arc<Store>>,
    /// The metrics `/metrics` renders.
    pub metrics: Arc<Metrics>,
    /// The bearer token `/admin/*` needs; `None` switches the admin API off.
    pub token: Option<Arc<str>>,
    /// The largest request body the admin API reads (`admin.max_body_bytes`).
    pub max_body: usize,
    /// Operators' console sessions, which stand for the token.
    pub sessions: Arc<Sessions>,
    /// The Links API's state, when there is a store: the console's Links
    /// page works through it, as the operator, on this listener.
    pub links: Option<Arc<ApiState>>,
}

/// The admin listener: `/live`, `/ready` and `/metrics` without a token,
/// the admin API under `/admin/` behind the token check, the console at
/// `/console/`, and (with a store) the link routes of the Links API as
/// the operator, also behind the token check.
pub fn router(state: AdminState) -> Router {
    let console = console::router(Console {
        sessions: state.sessions.clone(),
        gate: Gate::Operator(state.token.clone()),
        live: state.reloader.live().clone(),
    });
    let links = state.links.clone().map(|api| {
        crate::api::operator_router(api).route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_operator,
        ))
    });
    let admin = Router::new()
        .merge(health::routes())
        // The admin API: a new group of `/admin/` routes is merged here.
        .merge(rules::routes())
        .merge(explain::routes())
        .merge(keys::routes())
        .merge(stats::routes())
        .merge(status::routes())
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        // Layered after every route and the fallback, so it covers them
        // all: a route merged after this line would bypass the token.
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        // axum's own default (2 MB) would refuse rules the configured
        // limit allows.
        .layer(DefaultBodyLimit::max(state.max_body))
        .layer(middleware::map_response(no_store))
        .with_state(state)
        // Not under the token check by path: the console logs in here,
        // and the operator's link routes have their own check.
        .merge(console);
    match links {
        Some(links) => admin.merge(links),
        None => admin,
    }
}

/// The health and metrics listener: `/metrics`, `/live` and `/ready` and
/// nothing of the admin API, so orchestrators can probe a port that is
/// safe to open beyond loopback.
pub fn metrics_router(metrics: Arc<Metrics>, live: Live) -> Router {
    health::routes()
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(plain_not_found)
        .layer(middleware::map_response(no_store))
        .with_state(Health { metrics, live })
}

/// The admin API's paths: everything under it needs the token.
const ADMIN_PREFIX: &str = "/admin/";

/// The token check in front of every `/admin/` path. Without a configured
/// token the admin API is off: `404`, not `401`, as no credentials would
/// help, and monitoring must not read a switched-off API as failed
/// authentication.
async fn require_token(state: State<AdminState>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with(ADMIN_PREFIX) {
        return next.run(req).await;
    }
    require_operator(state, req, next).await
}

/// The token check in front of the operator's link routes (and, through
/// [`require_token`], of every `/admin/` path).
async fn require_operator(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    match refusal(&state, &req) {
        None => next.run(req).await,
        Some(resp) => resp,
    }
}

/// The answer refusing `req` unless it is the operator's: the bearer
/// token, or an operator's console session (a change with its CSRF
/// token).
fn refusal(state: &AdminState, req: &Request) -> Option<Response> {
    let Some(token) = &state.token else {
        return Some(problem(
            StatusCode::NOT_FOUND,
            "admin-disabled",
            "the admin API is disabled: set admin.token (or GATEWAY_ADMIN_TOKEN)",
        ));
    };
    if authorized(req.headers(), token) {
        return None;
    }
    match state.sessions.authorize(req.method(), req.headers()) {
        Ok(Some(session)) if session.subject == Subject::Operator => None,
        Err(p) => Some(p.into_response()),
        Ok(_) => Some(
            error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token",
            )
            .header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
            .into_response(),
        ),
    }
}

/// Whether `Authorization: Bearer <token>` carries `token`, compared in
/// constant time so the answer's timing does not tell how much matched.
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
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

/// No route: under `/admin/` (the token already checked) a problem naming
/// the API, anywhere else the plain `404` the listener always gave.
async fn not_found(req: Request) -> Response {
    if req.uri().path().starts_with(ADMIN_PREFIX) {
        problem(
            StatusCode::NOT_FOUND,
            "no-such-endpoint",
            "no such admin endpoint",
        )
    } else {
        plain_not_found().await
    }
}

/// A path routed for other methods; axum adds `Allow` with those.
async fn method_not_allowed() -> Response {
    problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "method not allowed",
    )
}

/// No route on a listener without the admin API.
async fn plain_not_found() -> Response {
    text(StatusCode::NOT_FOUND, "not found\n".to_string())
}

/// Admin and health answers describe the moment they were made: no cache
/// may keep them, errors included.
async fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A problem whose `errors` repeats `detail` as its one `message`, the
/// shape admin errors had before they were problems: clients that read
/// `errors[0].message` keep working.
fn error(status: StatusCode, slug: &str, message: &str) -> Problem {
    Problem::new(status, slug, message).errors(vec![FieldError {
        field: None,
        message: message.to_string(),
    }])
}

/// [`error`] as a response.
fn problem(status: StatusCode, slug: &str, message: &str) -> Response {
    error(status, slug, message).into_response()
}

/// Plain text, as the health endpoints and the rules texts answer.
fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Indented JSON and a final newline, for people reading `curl` output.
fn json(status: StatusCode, value: &impl Serialize) -> Response {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests;
