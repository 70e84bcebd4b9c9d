//! `/admin/keys`: API keys of the Links API for operators — the same as
//! `gateway keys create|list|revoke`, for tools that manage partners.
//! A new key's secret is in the `201` and nowhere else.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::Router;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{json, AdminState};
use crate::metrics::StoreOp;
use crate::store::{NewKey, Store};
use crate::web::{read_json, Problem};

/// The routes of this module.
pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/admin/keys", get(list).post(create))
        .route("/admin/keys/{id}", delete(revoke))
}

/// `POST /admin/keys`'s body: what `gateway keys create` takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
    hosts: Vec<String>,
    rate: Option<String>,
    burst: Option<u32>,
    #[serde(default)]
    read_only: bool,
    monthly_quota: Option<i64>,
}

pub(super) fn store(state: &AdminState) -> Result<&Store, Problem> {
    state.store.as_deref().ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "no-store",
            "API keys and link stats live in the link store, and this gateway has no [store]",
        )
    })
}

pub(super) fn failed(e: &crate::store::StoreError) -> Problem {
    let status = match e {
        crate::store::StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        crate::store::StoreError::Conflict(_) => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Problem::new(status, "store-error", e.to_string())
}

async fn list(State(state): State<AdminState>) -> Response {
    let listed = match store(&state) {
        Ok(s) => {
            s.query(StoreOp::Key, |b| async move { b.list_keys().await })
                .await
        }
        Err(p) => return p.into_response(),
    };
    match listed {
        Ok(keys) => json(StatusCode::OK, &json!({ "keys": keys })),
        Err(e) => failed(&e).into_response(),
    }
}

async fn create(State(state): State<AdminState>, raw: Result<Bytes, BytesRejection>) -> Response {
    let store = match store(&state) {
        Ok(s) => s,
        Err(p) => return p.into_response(),
    };
    let body: CreateKey = match read_json(raw) {
        Ok(b) => b,
        Err(p) => return p.into_response(),
    };
    let key = match NewKey::parse(
        &body.name,
        &body.hosts,
        body.rate.as_deref(),
        body.burst,
        body.read_only,
        body.monthly_quota,
    ) {
        Ok(k) => k,
        Err((field, message)) => {
            return Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-key",
                format!("{field}: {message}"),
            )
            .field(field, message)
            .into_response()
        }
    };
    let made = store
        .query(StoreOp::Write, move |b| async move {
            b.create_key(&key, rules::unix_now()).await
        })
        .await;
    match made {
        Ok((key, secret)) => {
            tracing::info!(key = %key.id, name = %key.name, "admin: API key created");
            json(
                StatusCode::CREATED,
                &json!({ "key": key, "secret": secret }),
            )
        }
        Err(e) => failed(&e).into_response(),
    }
}

async fn revoke(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    let store = match store(&state) {
        Ok(s) => s,
        Err(p) => return p.into_response(),
    };
    let wanted = id.clone();
    let revoked = store
        .query(StoreOp::Write, move |b| async move {
            b.revoke_key(&wanted, rules::unix_now()).await
        })
        .await;
    match revoked {
        Ok(Some(key)) => {
            tracing::info!(key = %key.id, name = %key.name, "admin: API key revoked");
            json(StatusCode::OK, &json!({ "key": key }))
        }
        Ok(None) => Problem::new(
            StatusCode::NOT_FOUND,
            "no-such-key",
            format!("no key `{id}`"),
        )
        .into_response(),
        Err(e) => failed(&e).into_response(),
    }
}
