//! The Links API (`[api]`, docs/api.md): partners create, change, list
//! and delete their links with an API key; links are written to the store
//! and answer on every gateway of the fleet without a reload.
//!
//! ```text
//! request ─▶ observe (metrics) ─▶ authenticate (key by hash, revoked?,
//!   token bucket) ─▶ handler: body ─▶ validate (rules' own checks, the
//!   key's hosts, codes the rules file claims) ─▶ store write ─▶ this
//!   gateway's cache forgets the key ─▶ 201
//! ```
//!
//! [`auth`] finds the key and limits its rate, [`validate`] checks a
//! link, [`links`] and [`bulk`] are the handlers, [`versions`] is a
//! link's `ETag` and `If-Match`, [`idempotency`] replays retried creates,
//! [`quota`] is a key's monthly quota, [`stats`] is a link's clicks,
//! [`domains`] are custom link domains (their certificates come from
//! `tls::acme`), [`openapi`] is the contract generated from them.

mod auth;
mod bulk;
mod domains;
mod idempotency;
mod links;
mod model;
mod openapi;
mod qr;
mod quota;
mod stats;
mod validate;
mod versions;

use axum::extract::{MatchedPath, Request};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use http::{HeaderValue, StatusCode};
use std::sync::Arc;

use crate::config::ApiSection;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tls::acme::Acme;
use crate::web::{Observer, Problem, Route, Sessions};

pub use auth::{store_problem, Keys};

/// What every handler reads.
pub struct ApiState {
    /// Where links and keys live.
    pub store: Arc<Store>,
    /// The live rules: what a link is checked against.
    pub live: Live,
    /// `[api]`.
    pub config: ApiSection,
    /// Keys recently seen, and their rate limits.
    pub keys: Keys,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Partners' console sessions on this listener.
    pub sessions: Arc<Sessions>,
    /// Custom domains' certificates, when `[acme]` is set.
    pub acme: Option<Arc<Acme>>,
}

impl ApiState {
    /// The state of an API over `store` and `live`.
    pub fn new(store: Arc<Store>, live: Live, config: ApiSection, metrics: Arc<Metrics>) -> Self {
        let keys = Keys::new(store.poll_interval());
        ApiState {
            store,
            live,
            config,
            keys,
            metrics,
            sessions: Arc::new(Sessions::new("gateway_console_api")),
            acme: None,
        }
    }

    /// With custom domains' certificates (`[acme]`).
    pub fn with_acme(mut self, acme: Option<Arc<Acme>>) -> Self {
        self.acme = acme;
        self
    }
}

/// A successful answer: JSON, and for a link its `Location` and `ETag`.
pub struct Reply {
    status: StatusCode,
    body: Vec<u8>,
    location: Option<String>,
    etag: Option<i64>,
}

impl Reply {
    /// `value` as JSON with `status`.
    pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Reply {
        let mut body = serde_json::to_vec(value).unwrap_or_default();
        body.push(b'\n');
        Reply {
            status,
            body,
            location: None,
            etag: None,
        }
    }

    /// A link: its `Location` (where it can be read) and its version as
    /// `ETag` (what `If-Match` takes).
    pub fn link(status: StatusCode, link: &model::Link) -> Reply {
        let mut reply = Reply::json(status, link);
        reply.location = Some(format!("/api/v1/links/{}", link.id));
        reply.etag = Some(link.version);
        reply
    }

    /// With `Location`.
    pub fn location(mut self, location: String) -> Reply {
        self.location = Some(location);
        self
    }

    /// No content.
    pub fn empty() -> Reply {
        Reply {
            status: StatusCode::NO_CONTENT,
            body: Vec::new(),
            location: None,
            etag: None,
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let empty = self.body.is_empty();
        let mut resp = (self.status, self.body).into_response();
        let h = resp.headers_mut();
        if !empty {
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        if let Some(v) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            h.insert(http::header::LOCATION, v);
        }
        if let Some(version) = self.etag {
            h.insert(http::header::ETAG, versions::etag(version));
        }
        resp
    }
}

/// What a handler answers.
pub type ApiResult = Result<Reply, Problem>;

/// Puts the matched route's template in the response, for [`observer`]
/// (which runs outside the router, where the request has no route yet).
async fn mark_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| Route(m.as_str().into()));
    let mut resp = next.run(req).await;
    if let Some(route) = route {
        resp.extensions_mut().insert(route);
    }
    resp
}

/// Counts and times every request of the API listener by its route
/// template (`unmatched` for a path no route has, and for answers made
/// before routing: a declared body over the limit, a timeout, a panic).
pub fn observer(metrics: Arc<Metrics>) -> Observer {
    Arc::new(move |route, method, status, elapsed| {
        let api = &metrics.api;
        let route = route.unwrap_or("unmatched");
        // A client may send any token as a method: the label keeps to the
        // standard ones.
        let method = match *method {
            http::Method::GET
            | http::Method::HEAD
            | http::Method::POST
            | http::Method::PUT
            | http::Method::PATCH
            | http::Method::DELETE
            | http::Method::OPTIONS => method.as_str(),
            _ => "other",
        };
        api.requests
            .with_label_values(&[route, method, status.as_str()])
            .inc();
        api.duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    })
}

async fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "no such endpoint; see /api/v1/openapi.json",
    )
}

async fn not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this endpoint does not answer that method; see the Allow header",
    )
}

/// The link and domain routes partners and the operator share.
fn link_routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/api/v1/links", get(links::list).post(links::create))
        .route("/api/v1/links/bulk", post(bulk::create))
        .route(
            "/api/v1/links/{id}",
            get(links::read).patch(links::update).delete(links::remove),
        )
        .route("/api/v1/links/{id}/stats", get(stats::read))
        .route("/api/v1/links/{id}/qr.svg", get(qr::svg))
        .route("/api/v1/domains", get(domains::list).post(domains::create))
        .route(
            "/api/v1/domains/{host}",
            get(domains::read).delete(domains::remove),
        )
        .route("/api/v1/domains/{host}/verify", post(domains::verify))
}

/// The Links API's routes, and `extra` (the partners' console) on the
/// same listener, counted in the same metrics.
pub fn router(state: Arc<ApiState>, extra: Router) -> Router {
    let links = link_routes()
        // Partners' own ids: the operator's links have no owner to key
        // them by.
        .route(
            "/api/v1/links/by-external-id/{external_id}",
            put(links::upsert),
        )
        .route_layer(from_fn_with_state(state.clone(), auth::authenticate));
    Router::new()
        .route("/api/v1/openapi.json", get(openapi::document))
        .merge(links)
        .with_state(state)
        .merge(extra)
        .route_layer(axum::middleware::from_fn(mark_route))
        .fallback(not_found)
        .method_not_allowed_fallback(not_allowed)
}

/// The link routes as the operator's console uses them on the admin
/// listener: every link, any store domain, no rate limit or quota. It
/// trusts every request it gets: mount it only behind the admin check.
pub fn operator_router(state: Arc<ApiState>) -> Router {
    link_routes()
        .route_layer(axum::middleware::from_fn(as_operator))
        .with_state(state)
}

/// Marks a request as the operator's (see [`operator_router`]).
async fn as_operator(mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(auth::Caller::operator());
    next.run(req).await
}
