//! A key's monthly link quota: the calendar month (UTC) it counts in, how
//! much of it is left, and the `429` once it is spent. The store counts
//! creates in the write's own transaction (`store/batch.rs`).

use chrono::{Datelike, TimeZone};
use http::{HeaderValue, StatusCode};

use super::auth::{store_problem, Caller};
use super::ApiState;
use crate::metrics::StoreOp;
use crate::web::Problem;

/// Unix seconds at the start of `now`'s calendar month (UTC), and of the
/// next one.
pub fn month_bounds(now: i64) -> (i64, i64) {
    let at = chrono::Utc
        .timestamp_opt(now, 0)
        .single()
        .unwrap_or_default();
    let start = chrono::Utc
        .with_ymd_and_hms(at.year(), at.month(), 1, 0, 0, 0)
        .single()
        .map_or(now, |t| t.timestamp());
    let (y, m) = if at.month() == 12 {
        (at.year() + 1, 1)
    } else {
        (at.year(), at.month() + 1)
    };
    let next = chrono::Utc
        .with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .map_or(now + 86_400, |t| t.timestamp());
    (start, next)
}

/// How many more links `caller` may create this month (`None`: no quota).
pub async fn quota_left(state: &ApiState, caller: &Caller) -> Result<Option<i64>, Problem> {
    let Some(quota) = caller.key().monthly_quota else {
        return Ok(None);
    };
    let (start, _) = month_bounds(rules::unix_now());
    let owner = caller.id().to_string();
    let used = state
        .store
        .query(StoreOp::Read, move |b| async move {
            b.created_in_month(&owner, start).await
        })
        .await
        .map_err(|e| store_problem(&e))?;
    Ok(Some((quota - used).max(0)))
}

/// `429` for a key whose monthly quota is spent.
pub fn quota_spent(caller: &Caller) -> Problem {
    let now = rules::unix_now();
    let (_, next) = month_bounds(now);
    Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "quota-exceeded",
        format!(
            "API key `{}` has created its {} links of this month; the quota renews at {}",
            caller.id(),
            caller.key().monthly_quota.unwrap_or(0),
            super::model::rfc3339(next)
        ),
    )
    .header(
        http::header::RETRY_AFTER,
        HeaderValue::from((next - now).max(1)),
    )
}

/// `caller`'s monthly quota as the store checks it in a write: the key,
/// its quota, and the start of this month.
pub fn quota_of(caller: &Caller) -> Option<(String, i64, i64)> {
    let quota = caller.key().monthly_quota?;
    let (start, _) = month_bounds(rules::unix_now());
    Some((caller.id().to_string(), quota, start))
}
