//! `GET /admin/explain?url=&method=&ua=&country=&ip=`: what the live rules
//! (and the link store) would do with a request, step by step.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::StatusCode;
use serde_json::json;

use super::{json, problem, AdminState};
use crate::store::StoreView;
use rules::{Probe, StoreStep};

/// The routes of this module.
pub(super) fn routes() -> Router<AdminState> {
    Router::new().route("/admin/explain", get(explain))
}

async fn explain(State(state): State<AdminState>, RawQuery(query): RawQuery) -> Response {
    // The first of a repeated parameter counts, as it always did (axum's
    // `Query` would take the last).
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(target) = get("url") else {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "missing url parameter",
        );
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
        Err(m) => return problem(StatusCode::BAD_REQUEST, "bad-request", &m),
    };
    let snap = state.reloader.live().load();
    let view = StoreView::new(state.store.as_deref());
    let mut explanation = snap.rules.explain_with(&req, &view);
    // A store code not in the cache: ask the store once, then explain
    // again with the answer in the view.
    if matches!(explanation.store, Some(StoreStep::Unknown { .. })) {
        if let Err(e) = view.resolve(&snap.rules).await {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                &e.to_string(),
            );
        }
        explanation = snap.rules.explain_with(&req, &view);
    }
    json(
        StatusCode::OK,
        &json!({ "rules_version": snap.version, "explanation": explanation }),
    )
}
