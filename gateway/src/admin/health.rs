//! `/live`, `/ready` and `/metrics`: no token, on the admin listener and
//! on the health and metrics listener alike.

use axum::extract::{FromRef, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderValue, StatusCode};
use std::fmt::Write;
use std::sync::Arc;

use super::{text, AdminState};
use crate::live::Live;
use crate::metrics::Metrics;

/// What the health endpoints read: the metrics and the live snapshot.
#[derive(Clone)]
pub struct Health {
    /// The metrics `/metrics` renders.
    pub metrics: Arc<Metrics>,
    /// The live snapshot, for `/ready` and the pool gauges.
    pub live: Live,
}

impl FromRef<AdminState> for Health {
    fn from_ref(state: &AdminState) -> Health {
        Health {
            metrics: state.metrics.clone(),
            live: state.reloader.live().clone(),
        }
    }
}

/// The three routes, for any router whose state gives a [`Health`].
pub(super) fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Health: FromRef<S>,
{
    Router::new()
        .route("/live", get(live))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// `GET /live`: the process answers.
async fn live() -> Response {
    text(StatusCode::OK, "live\n".to_string())
}

/// `GET /ready`: the rules are loaded before any listener is added, so a
/// snapshot means ready; the body says which, and how the pools are.
async fn ready(State(health): State<Health>) -> Response {
    let snap = health.live.load();
    let mut body = format!(
        "ready: rules version {} from {}, live since {}\n",
        snap.version,
        snap.source,
        humantime::format_rfc3339_seconds(snap.loaded_at)
    );
    let mut pools: Vec<_> = snap.pools.iter().collect();
    pools.sort_by(|a, b| a.0.cmp(b.0));
    for (name, pool) in pools {
        let _ = writeln!(
            body,
            "upstream {name}: {}/{} backends healthy",
            pool.healthy_backends(),
            pool.total_backends()
        );
    }
    text(StatusCode::OK, body)
}

/// `GET /metrics`: the Prometheus text exposition.
async fn metrics(State(health): State<Health>) -> Response {
    let body = health.live.load().render_metrics(&health.metrics);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}
