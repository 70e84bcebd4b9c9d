//! `Idempotency-Key` on creates (draft-ietf-httpapi-idempotency-key-
//! header): the first answer is kept for a day; a retry with the same key
//! and body gets it again instead of making a second link; the same key
//! with another body is refused, as is a retry while the first request
//! still runs.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use std::future::Future;

use super::auth::{store_problem, Caller};
use super::{ApiResult, ApiState};
use crate::metrics::StoreOp;
use crate::store::{sha256_hex, Claim, Store};
use crate::web::{parse_json, unreadable, Problem};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// The longest key accepted.
const MAX_KEY_LEN: usize = 255;

/// A create (`POST`): the key must write, the body must be read; then
/// `run` gets the body as `T` once per `Idempotency-Key` ([`once`]) —
/// a body that does not parse is an answer kept like any other.
pub async fn create<T, F, Fut>(
    state: Arc<ApiState>,
    caller: Caller,
    headers: &HeaderMap,
    route: &str,
    raw: Result<Bytes, BytesRejection>,
    run: F,
) -> Response
where
    T: DeserializeOwned,
    F: FnOnce(Arc<ApiState>, Caller, T) -> Fut + Send + 'static,
    Fut: Future<Output = ApiResult> + Send + 'static,
{
    if let Err(p) = caller.may_write() {
        return p.into_response();
    }
    let bytes = match raw {
        Ok(b) => b,
        Err(e) => return unreadable(e).into_response(),
    };
    let work = {
        let (state, caller, bytes) = (state.clone(), caller.clone(), bytes.clone());
        move || async move {
            let input: T = parse_json(&bytes)?;
            run(state, caller, input).await
        }
    };
    once(&state, &caller, headers, route, &bytes, work).await
}

/// Runs `run` once per `Idempotency-Key` of `caller` (every time without
/// the header). `route` and `body` identify the request.
pub async fn once<F, Fut>(
    state: &ApiState,
    caller: &Caller,
    headers: &HeaderMap,
    route: &str,
    body: &[u8],
    run: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ApiResult> + Send + 'static,
{
    let Some(raw) = headers.get("idempotency-key") else {
        return run().await.into_response();
    };
    let key = match raw.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= MAX_KEY_LEN => k.to_string(),
        _ => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-idempotency-key",
                format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
            )
            .into_response()
        }
    };
    let mut identity = Vec::with_capacity(route.len() + 1 + body.len());
    identity.extend_from_slice(route.as_bytes());
    identity.push(b'\n');
    identity.extend_from_slice(body);
    let hash = sha256_hex(&identity);
    let owner = caller.id().to_string();
    let claim = {
        let (owner, key) = (owner.clone(), key.clone());
        state
            .store
            .query(StoreOp::Idempotency, move |b| async move {
                b.claim_idempotency(&owner, &key, &hash, rules::unix_now())
                    .await
            })
            .await
    };
    match claim {
        Err(e) => store_problem(&e).into_response(),
        Ok(Claim::Running) => Problem::new(
            StatusCode::CONFLICT,
            "idempotency-key-in-use",
            "a request with this Idempotency-Key is still running; retry when it has finished",
        )
        .header(http::header::RETRY_AFTER, HeaderValue::from_static("1"))
        .into_response(),
        Ok(Claim::Answered {
            same_request: false,
            ..
        }) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "this Idempotency-Key was used for another request; use a new key for a new request",
        )
        .into_response(),
        Ok(Claim::Answered { status, body, .. }) => replay(status, body),
        Ok(Claim::Fresh) => {
            // Run to the end and keep the answer even when this request
            // is dropped (the API's timeout, the client gone): its writes
            // go in anyway, so a retry must get their answer, not a claim
            // that stays "running" for as long as the key is kept.
            let store = state.store.clone();
            let work = run();
            let task = tokio::spawn(async move {
                let result = work.await;
                keep(&store, owner, key, &result).await;
                result
            });
            match task.await {
                Ok(result) => result.into_response(),
                Err(e) => {
                    tracing::error!(error = %e, "api: an Idempotency-Key request failed");
                    Problem::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal-error",
                        "the request failed; the error is logged",
                    )
                    .into_response()
                }
            }
        }
    }
}

/// Keeps `result` as the answer to `owner`'s request with `key`, or lets
/// a retry run again when it is a server error.
async fn keep(store: &Store, owner: String, key: String, result: &ApiResult) {
    let (status, text) = match result {
        Ok(reply) => (
            reply.status,
            String::from_utf8_lossy(&reply.body).into_owned(),
        ),
        Err(p) => (p.status(), serde_json::to_string(p).unwrap_or_default()),
    };
    let kept = if status.is_server_error() {
        // A retry may succeed: let it run.
        store
            .query(StoreOp::Idempotency, move |b| async move {
                b.release_idempotency(&owner, &key).await
            })
            .await
    } else {
        store
            .query(StoreOp::Idempotency, move |b| async move {
                b.answered(&owner, &key, status.as_u16(), &text).await
            })
            .await
    };
    if let Err(e) = kept {
        tracing::warn!(error = %e, "api: cannot keep the answer of an Idempotency-Key request; a retry runs again");
    }
}

/// The first answer again, marked as a replay.
fn replay(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let content_type = if status.is_client_error() {
        "application/problem+json"
    } else {
        "application/json"
    };
    let link: Option<(i64, i64)> = (status == StatusCode::CREATED)
        .then(|| serde_json::from_str::<serde_json::Value>(&body).ok())
        .flatten()
        .and_then(|v| Some((v.get("id")?.as_i64()?, v.get("version")?.as_i64()?)));
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    if let Some((id, version)) = link {
        if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/links/{id}")) {
            h.insert(http::header::LOCATION, v);
        }
        h.insert(http::header::ETAG, super::versions::etag(version));
    }
    resp
}
