//! A link's clicks: `GET /api/v1/links/{id}/stats`, the counters the
//! gateways keep when `[analytics]` is on (docs/api.md).

use axum::extract::{Path, RawQuery, State};
use axum::Extension;
use http::StatusCode;
use std::sync::Arc;

use super::auth::{store_problem, Caller};
use super::links::{link_id, owned};
use super::{ApiResult, ApiState, Reply};
use crate::analytics::{self, GroupBy, Interval, Report, StatsQuery};
use crate::store::{Subject, SubjectKind};
use crate::web::Problem;

/// A link's clicks and visitors.
#[utoipa::path(
    get,
    path = "/api/v1/links/{id}/stats",
    tag = "links",
    params(
        ("id" = i64, Path, description = "The link's id"),
        ("from" = Option<String>, Query, description = "Start: RFC 3339 time, a date or Unix seconds, rounded down to its hour or day (to minus a day by hour, 30 days by day)"),
        ("to" = Option<String>, Query, description = "End, exclusive, rounded up to its hour or day (now)"),
        ("interval" = Option<Interval>, Query, description = "`hour` (at most 31 days) or `day` (at most 366 days); `hour`"),
        ("group_by" = Option<GroupBy>, Query, description = "Also list the counts by `device`, `country` or `referrer`"),
    ),
    responses(
        (status = 200, description = "The counts over the range", body = Report),
        (status = 400, description = "A bad parameter (named in `errors`)", body = Problem, content_type = "application/problem+json"),
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
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let id = link_id(&id)?;
    let params = crate::web::read_query(raw.as_deref(), &analytics::PARAMS)?;
    let query = StatsQuery::parse(&params, rules::unix_now())?;
    let record = owned(&state, &caller, id).await?;
    let subject = Subject {
        kind: SubjectKind::Link,
        host: record.link.host,
        name: record.link.code,
    };
    let mut report: Report = analytics::report(&state.store, subject, &query)
        .await
        .map_err(|e| store_problem(&e))?;
    report.id = Some(id);
    Ok(Reply::json(StatusCode::OK, &report))
}
