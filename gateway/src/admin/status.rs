//! What the console's Overview and Upstreams pages read: the metrics as
//! JSON (`GET /admin/metrics.json`) and each pool's backends with their
//! health and ejection (`GET /admin/upstreams`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::StatusCode;
use serde::Serialize;

use super::{json, AdminState};
use crate::upstream::BackendState;

pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/admin/metrics.json", get(metrics))
        .route("/admin/upstreams", get(upstreams))
}

/// Every metric family of `/metrics`, with the pools' gauges fresh.
async fn metrics(State(state): State<AdminState>) -> Response {
    state.reloader.live().load().refresh_gauges(&state.metrics);
    // Compact: the page reads it every few seconds, nobody reads it by eye.
    axum::Json(state.metrics.to_json()).into_response()
}

/// One pool as the Upstreams page shows it.
#[derive(Serialize)]
struct PoolState {
    name: String,
    balance: rules::Balance,
    healthy: usize,
    total: usize,
    backends: Vec<BackendState>,
}

/// The live snapshot's pools, in name order.
async fn upstreams(State(state): State<AdminState>) -> Response {
    let snap = state.reloader.live().load();
    let mut pools: Vec<PoolState> = snap
        .pools
        .iter()
        .map(|(name, pool)| {
            let backends = pool.backend_states();
            PoolState {
                name: name.clone(),
                balance: pool.def.balance,
                healthy: backends.iter().filter(|b| b.healthy && !b.ejected).count(),
                total: backends.len(),
                backends,
            }
        })
        .collect();
    pools.sort_by(|a, b| a.name.cmp(&b.name));
    json(StatusCode::OK, &serde_json::json!({ "pools": pools }))
}
