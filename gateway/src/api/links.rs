//! One link at a time: create, read, change, delete, list, and upsert by
//! the partner's own id.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::Extension;
use http::{HeaderMap, StatusCode};
use std::sync::Arc;

use super::auth::{store_problem, Caller};
use super::idempotency;
use super::model::{Link, LinkInput, LinkPage, LinkPatch};
use super::quota::{quota_left, quota_of, quota_spent};
use super::validate::{fresh_code, input_of, patched, prepare};
use super::versions::{if_match, stale};
use super::{ApiResult, ApiState, Reply};
use crate::metrics::StoreOp;
use crate::store::{LinkFilter, LinkRecord, NewLink, StoreError, Updated};
use crate::web::Problem;

/// Attempts at a generated code before giving up (each clash also makes
/// the next code one character longer, every third attempt).
const CODE_ATTEMPTS: usize = 9;
/// Attempts at a change made without `If-Match` (a PATCH, an upsert)
/// before giving up with `409 busy-link`. An attempt is lost only when
/// another change of the link went in since it was read, and that change's
/// request is then done: n requests racing on one link need at most n
/// attempts each, so this is how many may race before one is refused.
const CHANGE_ATTEMPTS: usize = 64;
/// A page's default and largest size.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 1000;

fn not_found(id: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "link-not-found",
        format!("no link `{id}` among this key's links"),
    )
}

/// The link id in a path; anything else names no link.
pub(super) fn link_id(raw: &str) -> Result<i64, Problem> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| not_found(raw))
}

/// Why a link was not written.
pub enum Failed {
    /// Its owner already has a link with its external id (`409`).
    ExternalIdTaken(Problem),
    /// Anything else.
    Other(Problem),
}

impl From<Failed> for Problem {
    fn from(f: Failed) -> Problem {
        match f {
            Failed::ExternalIdTaken(p) | Failed::Other(p) => p,
        }
    }
}

impl From<Problem> for Failed {
    fn from(p: Problem) -> Failed {
        Failed::Other(p)
    }
}

/// `409` for a link that could not be written because a unique key is
/// taken: its owner's external id, or else its host and code.
pub async fn taken(state: &ApiState, link: &NewLink) -> Failed {
    if let (Some(owner), Some(ext)) = (link.owner.clone(), link.external_id.clone()) {
        let found = state
            .store
            .query(StoreOp::Read, move |b| async move {
                b.link_by_external_id(&owner, &ext).await
            })
            .await;
        if let Ok(Some(other)) = found {
            return Failed::ExternalIdTaken(
                Problem::new(
                    StatusCode::CONFLICT,
                    "external-id-taken",
                    format!("link {} already has this external_id", other.id),
                )
                .field("external_id", "already used by another of your links"),
            );
        }
    }
    Failed::Other(
        Problem::new(
            StatusCode::CONFLICT,
            "code-taken",
            format!("`{}/{}` is already a link", link.host, link.code),
        )
        .field("code", "already taken"),
    )
}

/// Writes a new link of `caller`, within its monthly quota. A generated
/// code that clashes is drawn again.
async fn insert(
    state: &ApiState,
    caller: &Caller,
    mut link: NewLink,
    generated: bool,
) -> Result<LinkRecord, Failed> {
    let rules = state.live.load().rules.clone();
    for attempt in 0..CODE_ATTEMPTS {
        let writing = link.clone();
        let quota = quota_of(caller);
        let result = state
            .store
            .query(StoreOp::Write, move |b| async move {
                let Some((owner, limit, since)) = quota else {
                    return b.insert(&writing, rules::unix_now()).await.map(Some);
                };
                // Counted and written in one transaction: racing creates
                // cannot pass the quota together.
                let one = std::slice::from_ref(&writing);
                let quota = Some((owner.as_str(), limit, since));
                let (mut written, seq, admitted) =
                    b.insert_many(one, rules::unix_now(), quota).await?;
                match written.pop().flatten() {
                    Some(record) => Ok(Some((record, seq))),
                    None if admitted == 0 => Ok(None),
                    None => Err(StoreError::Conflict("the link's keys are taken".into())),
                }
            })
            .await;
        match result {
            Ok(None) => return Err(quota_spent(caller).into()),
            Ok(Some((record, seq))) => {
                state
                    .store
                    .written(seq, &record.link.host, &record.link.code);
                return Ok(record);
            }
            Err(StoreError::Conflict(_)) if generated => {
                if let f @ Failed::ExternalIdTaken(_) = taken(state, &link).await {
                    return Err(f);
                }
                let length = state.config.code_length + (attempt + 1) / 3;
                link.code = fresh_code(&rules, &link.host, length);
            }
            Err(StoreError::Conflict(_)) => return Err(taken(state, &link).await),
            Err(e) => return Err(store_problem(&e).into()),
        }
    }
    Err(Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "no-free-code",
        "no free code was found; retry, or give a code",
    )
    .into())
}

/// Checks and creates the link `input` describes, for `caller`.
pub async fn create_link(
    state: &ApiState,
    caller: &Caller,
    input: &LinkInput,
) -> Result<LinkRecord, Failed> {
    let rules = state.live.load().rules.clone();
    let link = prepare(input, caller, &rules, state.config.code_length)?;
    if quota_left(state, caller).await? == Some(0) {
        return Err(quota_spent(caller).into());
    }
    insert(state, caller, link, input.code.is_none()).await
}

fn counted(state: &ApiState, op: &str) {
    state
        .metrics
        .api
        .links_written
        .with_label_values(&[op])
        .inc();
}

/// Create a link.
#[utoipa::path(
    post,
    path = "/api/v1/links",
    tag = "links",
    request_body = LinkInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    responses(
        (status = 201, description = "Created; it answers on this gateway already", body = Link),
        (status = 400, description = "Bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, an unknown key, or a revoked one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key, or a host the key may not use", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The code is taken, or answered by a rule", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limit or monthly quota", body = Problem, content_type = "application/problem+json"),
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
        "POST /api/v1/links",
        raw,
        |state, caller, input: LinkInput| async move {
            let record = create_link(&state, &caller, &input).await?;
            counted(&state, "create");
            Ok(Reply::link(
                StatusCode::CREATED,
                &Link::of(record, &state.config.short_url_scheme),
            ))
        },
    )
    .await
}

/// The link `id` of `caller`.
pub(super) async fn owned(
    state: &ApiState,
    caller: &Caller,
    id: i64,
) -> Result<LinkRecord, Problem> {
    let owner = caller.owner().map(str::to_string);
    state
        .store
        .query(StoreOp::Read, move |b| async move {
            b.link_by_id(id, owner.as_deref()).await
        })
        .await
        .map_err(|e| store_problem(&e))?
        .ok_or_else(|| not_found(&id.to_string()))
}

/// Read a link.
#[utoipa::path(
    get,
    path = "/api/v1/links/{id}",
    tag = "links",
    params(("id" = i64, Path, description = "The link's id")),
    responses(
        (status = 200, description = "The link", body = Link),
        (status = 401, description = "No key, an unknown key, or a revoked one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not one of this key's links", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store cannot be reached", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn read(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    let record = owned(&state, &caller, link_id(&id)?).await?;
    Ok(Reply::link(
        StatusCode::OK,
        &Link::of(record, &state.config.short_url_scheme),
    ))
}

/// Replaces `record` with what `input` describes, if it is still at
/// `record.version`; `Ok(Err(version))`: it changed meanwhile.
async fn replace(
    state: &ApiState,
    caller: &Caller,
    record: &LinkRecord,
    input: &LinkInput,
) -> Result<Result<LinkRecord, i64>, Problem> {
    let rules = state.live.load().rules.clone();
    let mut link = prepare(input, caller, &rules, state.config.code_length)?;
    // The link keeps its owner, also when the operator changes it.
    link.owner = record.link.owner.clone();
    let (id, owner, expected) = (
        record.id,
        caller.owner().map(str::to_string),
        record.version,
    );
    let writing = link.clone();
    let result = state
        .store
        .query(StoreOp::Write, move |b| async move {
            b.update_link(id, owner.as_deref(), expected, &writing, rules::unix_now())
                .await
        })
        .await;
    match result {
        Ok(Updated::Done(new, seq)) => {
            state
                .store
                .written(seq, &record.link.host, &record.link.code);
            state.store.written(seq, &new.link.host, &new.link.code);
            Ok(Ok(*new))
        }
        Ok(Updated::Stale(now)) => Ok(Err(now)),
        Ok(Updated::Missing) => Err(not_found(&id.to_string())),
        Err(StoreError::Conflict(_)) => Err(taken(state, &link).await.into()),
        Err(e) => Err(store_problem(&e)),
    }
}

/// Change a link.
#[utoipa::path(
    patch,
    path = "/api/v1/links/{id}",
    tag = "links",
    request_body = LinkPatch,
    params(
        ("id" = i64, Path, description = "The link's id"),
        ("If-Match" = Option<String>, Header, description = "The version (ETag) the change is for; 412 when the link is at another"),
    ),
    responses(
        (status = 200, description = "Changed", body = Link),
        (status = 400, description = "Bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, an unknown key, or a revoked one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key, or a host the key may not use", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not one of this key's links", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The new code is taken, or answered by a rule", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The link is at another version than If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store cannot be reached", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn update(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    caller.may_write()?;
    let id = link_id(&id)?;
    let patch: LinkPatch = crate::web::read_json(raw)?;
    let wanted = if_match(&headers)?;
    // Without If-Match the change applies to whatever version is there:
    // a concurrent change makes it read again.
    for _ in 0..CHANGE_ATTEMPTS {
        let record = owned(&state, &caller, id).await?;
        if let Some(v) = wanted.filter(|v| *v != record.version) {
            return Err(stale(v, record.version));
        }
        let input = patched(input_of(&record), patch.clone());
        match replace(&state, &caller, &record, &input).await? {
            Ok(new) => {
                counted(&state, "update");
                return Ok(Reply::link(
                    StatusCode::OK,
                    &Link::of(new, &state.config.short_url_scheme),
                ));
            }
            Err(now) if wanted.is_some() => return Err(stale(record.version, now)),
            Err(_) => continue,
        }
    }
    Err(Problem::new(
        StatusCode::CONFLICT,
        "busy-link",
        "the link kept changing while this change was applied; retry",
    ))
}

/// Delete a link.
#[utoipa::path(
    delete,
    path = "/api/v1/links/{id}",
    tag = "links",
    params(("id" = i64, Path, description = "The link's id")),
    responses(
        (status = 204, description = "Deleted; it no longer answers on this gateway"),
        (status = 401, description = "No key, an unknown key, or a revoked one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not one of this key's links", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store cannot be reached", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn remove(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    caller.may_write()?;
    let id = link_id(&id)?;
    let owner = caller.owner().map(str::to_string);
    let gone = state
        .store
        .query(StoreOp::Write, move |b| async move {
            b.delete_link(id, owner.as_deref()).await
        })
        .await
        .map_err(|e| store_problem(&e))?;
    let (host, code, seq) = gone.ok_or_else(|| not_found(&id.to_string()))?;
    state.store.written(seq, &host, &code);
    counted(&state, "delete");
    Ok(Reply::empty())
}

/// List links.
#[utoipa::path(
    get,
    path = "/api/v1/links",
    tag = "links",
    params(
        ("host" = Option<String>, Query, description = "Only links on this host"),
        ("tag" = Option<String>, Query, description = "Only links with this tag"),
        ("q" = Option<String>, Query, description = "Only links whose code, destination or external id contain this"),
        ("limit" = Option<i64>, Query, description = "Links per page, 1 to 1000 (50)", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the page before"),
    ),
    responses(
        (status = 200, description = "A page, oldest first", body = LinkPage),
        (status = 400, description = "A bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, an unknown key, or a revoked one", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store cannot be reached", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let params = crate::web::read_query(raw.as_deref(), &["host", "tag", "q", "limit", "cursor"])?;
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let limit = match get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-parameter",
                    "limit must be 1 to 1000",
                )
                .field(
                    "limit",
                    format!("`{v}` is not a number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let after = match get("cursor") {
        None => 0,
        Some(v) => v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-parameter",
                "cursor is not one this API gave",
            )
            .field("cursor", "pass next_cursor of the previous page")
        })?,
    };
    let filter = LinkFilter {
        owner: caller.owner().map(str::to_string),
        host: get("host").map(|h| h.trim().to_ascii_lowercase()),
        tag: get("tag"),
        q: get("q"),
    };
    let mut links = state
        .store
        .query(StoreOp::Read, move |b| async move {
            b.list_links(&filter, after, limit + 1).await
        })
        .await
        .map_err(|e| store_problem(&e))?;
    let more = links.len() as i64 > limit;
    links.truncate(limit as usize);
    let next_cursor = more
        .then(|| links.last().map(|l| l.id.to_string()))
        .flatten();
    let scheme = &state.config.short_url_scheme;
    Ok(Reply::json(
        StatusCode::OK,
        &LinkPage {
            links: links.into_iter().map(|r| Link::of(r, scheme)).collect(),
            next_cursor,
        },
    ))
}

/// Create or replace the link with your own id.
#[utoipa::path(
    put,
    path = "/api/v1/links/by-external-id/{external_id}",
    tag = "links",
    request_body = LinkInput,
    params(("external_id" = String, Path, description = "Your own id for the link")),
    responses(
        (status = 200, description = "Replaced", body = Link),
        (status = 201, description = "Created", body = Link),
        (status = 400, description = "Bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, an unknown key, or a revoked one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key, or a host the key may not use", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The code is taken, or answered by a rule", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limit or monthly quota", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store cannot be reached", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn upsert(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(external_id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    caller.may_write()?;
    let mut input: LinkInput = crate::web::read_json(raw)?;
    match &input.external_id {
        Some(given) if *given != external_id => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-link",
                "external_id in the body differs from the one in the path",
            )
            .field("external_id", "must equal the path's, or be left out"))
        }
        _ => input.external_id = Some(external_id.clone()),
    }
    let scheme = state.config.short_url_scheme.clone();
    for _ in 0..CHANGE_ATTEMPTS {
        let (owner, ext) = (caller.id().to_string(), external_id.clone());
        let existing = state
            .store
            .query(StoreOp::Read, move |b| async move {
                b.link_by_external_id(&owner, &ext).await
            })
            .await
            .map_err(|e| store_problem(&e))?;
        match existing {
            Some(record) => {
                let mut wanted = input.clone();
                if wanted.code.is_none() {
                    wanted.code = Some(record.link.code.clone());
                }
                if let Ok(new) = replace(&state, &caller, &record, &wanted).await? {
                    counted(&state, "upsert");
                    return Ok(Reply::link(StatusCode::OK, &Link::of(new, &scheme)));
                }
            }
            None => match create_link(&state, &caller, &input).await {
                Ok(record) => {
                    counted(&state, "upsert");
                    return Ok(Reply::link(StatusCode::CREATED, &Link::of(record, &scheme)));
                }
                // Made by a concurrent upsert: replace that one.
                Err(Failed::ExternalIdTaken(_)) => continue,
                Err(Failed::Other(p)) => return Err(p),
            },
        }
    }
    Err(Problem::new(
        StatusCode::CONFLICT,
        "busy-link",
        "the link kept changing while this change was applied; retry",
    ))
}
