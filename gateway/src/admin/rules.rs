//! The rules endpoints: reload, replace, the live version, the kept
//! versions with their texts and diffs, rollback.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use http::StatusCode;
use serde_json::json;
use std::sync::Arc;

use super::{json, problem, text, AdminState};
use crate::live::{Outcome, Trigger};

/// The routes of this module.
pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/admin/reload", post(reload))
        .route("/admin/rules", get(live_rules).put(put_rules))
        .route("/admin/versions", get(versions))
        .route("/admin/versions/{v}/rules", get(version_rules))
        .route("/admin/versions/{a}/diff/{b}", get(version_diff))
        .route("/admin/rollback", post(rollback))
}

/// `POST /admin/reload[?force=true]`: reads the configured source again.
async fn reload(State(state): State<AdminState>, RawQuery(query): RawQuery) -> Response {
    let outcome = state
        .reloader
        .reload(Trigger::Admin, forced(query.as_deref()))
        .await;
    outcome_response(outcome)
}

/// `PUT /admin/rules[?force=true]`: the body replaces the rules file once
/// it has been built and found valid.
async fn put_rules(
    State(state): State<AdminState>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                &format!(
                    "body larger than {} bytes (admin.max_body_bytes)",
                    state.max_body
                ),
            )
        }
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "unreadable-body",
                &format!("cannot read body: {}", e.body_text()),
            )
        }
    };
    let Ok(text) = String::from_utf8(body.into()) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "not-utf8",
            "the rules must be UTF-8 text",
        );
    };
    let outcome = state
        .reloader
        .apply(
            Some(text),
            Trigger::Admin,
            "admin api".into(),
            true,
            forced(query.as_deref()),
        )
        .await;
    outcome_response(outcome)
}

/// `GET /admin/rules`: the live version.
/// The live version, and the last reload that did not go live (so a
/// refusal triggered by a file change can be seen after the fact).
async fn live_rules(State(state): State<AdminState>) -> Response {
    #[derive(serde::Serialize)]
    struct Live {
        #[serde(flatten)]
        info: crate::live::VersionInfo,
        last_refused: Option<crate::live::Refusal>,
    }
    json(
        StatusCode::OK,
        &Live {
            info: state.reloader.live().load().info(),
            last_refused: state.reloader.last_refused(),
        },
    )
}

/// `GET /admin/versions`: the kept versions, newest first.
async fn versions(State(state): State<AdminState>) -> Response {
    json(
        StatusCode::OK,
        &json!({ "versions": state.reloader.history() }),
    )
}

/// `POST /admin/rollback`: the previous version again.
/// Back to the previous version, or with `?to=V` to kept version `V`.
async fn rollback(State(state): State<AdminState>, RawQuery(query): RawQuery) -> Response {
    let to = url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "to")
        .map(|(_, v)| v.into_owned());
    match to {
        None => outcome_response(state.reloader.rollback().await),
        Some(v) => match kept_text(&state, &v) {
            Err(m) => problem(StatusCode::NOT_FOUND, "unknown-version", &m),
            Ok(_) => {
                // kept_text found it, so it parses.
                let version = v.parse::<u64>().unwrap_or_default();
                outcome_response(state.reloader.rollback_to(version).await)
            }
        },
    }
}

/// `GET /admin/versions/{v}/rules`: the rules text version `v` was built
/// from.
async fn version_rules(State(state): State<AdminState>, Path(v): Path<String>) -> Response {
    match kept_text(&state, &v) {
        Ok(t) => text(StatusCode::OK, t.to_string()),
        Err(m) => problem(StatusCode::NOT_FOUND, "unknown-version", &m),
    }
}

/// `GET /admin/versions/{a}/diff/{b}`: a unified diff of two kept texts.
async fn version_diff(
    State(state): State<AdminState>,
    Path((a, b)): Path<(String, String)>,
) -> Response {
    let (old, new) = match (kept_text(&state, &a), kept_text(&state, &b)) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(m), _) | (_, Err(m)) => return problem(StatusCode::NOT_FOUND, "unknown-version", &m),
    };
    let diff = similar::TextDiff::from_lines(&*old, &*new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("version {a}"), &format!("version {b}"))
        .to_string();
    text(StatusCode::OK, diff)
}

/// The rules text of a kept version, or why there is none, naming the
/// versions that are kept.
fn kept_text(state: &AdminState, version: &str) -> Result<Arc<str>, String> {
    let text = version
        .parse::<u64>()
        .ok()
        .and_then(|v| state.reloader.text_of(v));
    text.ok_or_else(|| {
        let kept: Vec<String> = state
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

/// Whether the query asks to apply rules the reload policy would hold
/// back (`?force=true`).
fn forced(query: Option<&str>) -> bool {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .any(|(k, v)| k == "force" && matches!(v.as_ref(), "true" | "1"))
}

/// The status and body of a reload, replacement or rollback. Refused
/// rules are not a `Problem`: their body stays
/// `{"errors":[{file,line,column,rule,message}]}`, each error where it is
/// in the file, as clients read them.
fn outcome_response(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Applied(v) => json(
            StatusCode::OK,
            &json!({ "result": "success", "version": v }),
        ),
        Outcome::Unchanged(v) => json(
            StatusCode::OK,
            &json!({ "result": "unchanged", "version": v }),
        ),
        Outcome::Refused(e) => json(StatusCode::UNPROCESSABLE_ENTITY, &json!({ "errors": e })),
        Outcome::Held(m) => problem(StatusCode::CONFLICT, "held", &m),
        Outcome::NoPrevious => problem(
            StatusCode::CONFLICT,
            "no-previous-version",
            "no previous version to roll back to",
        ),
        Outcome::Failed(m) => problem(StatusCode::INTERNAL_SERVER_ERROR, "reload-failed", &m),
    }
}
