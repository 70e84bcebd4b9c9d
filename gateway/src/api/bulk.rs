//! `POST /api/v1/links/bulk`: up to `api.max_bulk` links in one call,
//! each checked on its own and written in one statement; the answer has
//! one result per item, created or refused with its own errors.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use http::{HeaderMap, StatusCode};
use std::sync::Arc;

use super::auth::{store_problem, Caller};
use super::idempotency;
use super::links::taken;
use super::model::{BulkInput, BulkOutput, BulkResult, Link, LinkInput};
use super::quota::{quota_left, quota_of, quota_spent};
use super::validate::{fresh_code, prepare};
use super::{ApiResult, ApiState, Reply};
use crate::metrics::StoreOp;
use crate::store::NewLink;
use crate::web::{FieldError, Problem};

/// Rounds of drawing new codes for generated codes that clashed.
const ROUNDS: usize = 4;

/// Create many links.
#[utoipa::path(
    post,
    path = "/api/v1/links/bulk",
    tag = "links",
    request_body = BulkInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    responses(
        (status = 200, description = "One result per item, in order", body = BulkOutput),
        (status = 400, description = "Bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, an unknown key, or a revoked one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "More links than api.max_bulk", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store cannot be reached", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    idempotency::create(
        state,
        caller,
        &headers,
        "POST /api/v1/links/bulk",
        raw,
        |state, caller, input: BulkInput| async move { create_all(&state, &caller, input).await },
    )
    .await
}

/// One item on its way to the store.
struct Pending {
    index: usize,
    link: NewLink,
    generated: bool,
}

fn refused(index: usize, problem: Problem) -> BulkResult {
    let errors = if problem.errors.is_empty() {
        vec![FieldError {
            field: None,
            message: problem.detail.clone(),
        }]
    } else {
        problem.errors.clone()
    };
    BulkResult {
        index,
        status: problem.status,
        link: None,
        errors,
    }
}

async fn create_all(state: &ApiState, caller: &Caller, input: BulkInput) -> ApiResult {
    let max = state.config.max_bulk;
    if input.links.len() > max {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too-many-links",
            format!(
                "{} links in one call; at most {max} (api.max_bulk)",
                input.links.len()
            ),
        )
        .field("links", format!("at most {max} items")));
    }
    let rules = state.live.load().rules.clone();
    let length = state.config.code_length;
    let mut results: Vec<Option<BulkResult>> = (0..input.links.len()).map(|_| None).collect();
    let mut pending = Vec::with_capacity(input.links.len());
    for (index, value) in input.links.into_iter().enumerate() {
        let item: LinkInput = match serde_path_to_error::deserialize(value) {
            Ok(i) => i,
            Err(e) => {
                let field = format!(
                    "links[{index}]{}",
                    match e.path().to_string().as_str() {
                        "." => String::new(),
                        p => format!(".{p}"),
                    }
                );
                results[index] = Some(BulkResult {
                    index,
                    status: 400,
                    link: None,
                    errors: vec![FieldError {
                        field: Some(field),
                        message: e.into_inner().to_string(),
                    }],
                });
                continue;
            }
        };
        match prepare(&item, caller, &rules, length) {
            Ok(link) => pending.push(Pending {
                index,
                link,
                generated: item.code.is_none(),
            }),
            Err(p) => results[index] = Some(refused(index, p)),
        }
    }
    if let Some(left) = quota_left(state, caller).await? {
        let left = usize::try_from(left).unwrap_or(0);
        if pending.len() > left {
            for p in pending.split_off(left) {
                results[p.index] = Some(refused(p.index, quota_spent(caller)));
            }
        }
    }
    let scheme = state.config.short_url_scheme.clone();
    for round in 0..ROUNDS {
        if pending.is_empty() {
            break;
        }
        let links: Vec<NewLink> = pending.iter().map(|p| p.link.clone()).collect();
        let quota = quota_of(caller);
        let (written, seq, admitted) = state
            .store
            .query(StoreOp::Bulk, move |b| async move {
                let quota = quota.as_ref().map(|(o, l, s)| (o.as_str(), *l, *s));
                b.insert_many(&links, rules::unix_now(), quota).await
            })
            .await
            .map_err(|e| store_problem(&e))?;
        let mut retry = Vec::new();
        for (i, (p, record)) in pending.into_iter().zip(written).enumerate() {
            match record {
                // Past the quota, counted in the write.
                None if i >= admitted => {
                    results[p.index] = Some(refused(p.index, quota_spent(caller)));
                }
                Some(record) => {
                    state
                        .store
                        .written(seq, &record.link.host, &record.link.code);
                    results[p.index] = Some(BulkResult {
                        index: p.index,
                        status: 201,
                        link: Some(Link::of(record, &scheme)),
                        errors: Vec::new(),
                    });
                }
                None => {
                    let failed = taken(state, &p.link).await;
                    match failed {
                        super::links::Failed::Other(_) if p.generated && round + 1 < ROUNDS => {
                            let mut p = p;
                            p.link.code = fresh_code(&rules, &p.link.host, length + round);
                            retry.push(p);
                        }
                        f => results[p.index] = Some(refused(p.index, f.into())),
                    }
                }
            }
        }
        pending = retry;
    }
    let results: Vec<BulkResult> = results
        .into_iter()
        .enumerate()
        .map(|(index, r)| {
            r.unwrap_or_else(|| {
                refused(
                    index,
                    Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no-free-code",
                        "no free code was found; retry",
                    ),
                )
            })
        })
        .collect();
    let created = results.iter().filter(|r| r.status == 201).count();
    state
        .metrics
        .api
        .links_written
        .with_label_values(&["bulk"])
        .inc_by(created as u64);
    Ok(Reply::json(
        StatusCode::OK,
        &BulkOutput {
            created,
            failed: results.len() - created,
            results,
        },
    ))
}
