//! `GET /admin/stats`: a link's or a rule's clicks for operators, any
//! owner's — the same report as the Links API's
//! `GET /api/v1/links/{id}/stats` (docs/operations.md).

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::StatusCode;

use super::keys::{failed, store};
use super::{json, AdminState};
use crate::analytics::{self, invalid_parameter, StatsQuery};
use crate::store::{Subject, SubjectKind};
use crate::web::{read_query, Problem};

/// The routes of this module.
pub(super) fn routes() -> Router<AdminState> {
    Router::new().route("/admin/stats", get(report))
}

/// Parameters besides the report's own.
const SUBJECT: [&str; 3] = ["host", "code", "rule"];

/// `host` and `code`, or `rule`: one subject, named in full.
fn subject(params: &[(String, String)]) -> Result<Subject, Problem> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim());
    match (get("host"), get("code"), get("rule")) {
        (Some(host), Some(code), None) if !host.is_empty() && !code.is_empty() => Ok(Subject {
            kind: SubjectKind::Link,
            host: host.to_ascii_lowercase(),
            name: analytics::link_name(code).to_string(),
        }),
        (None, None, Some(rule)) if !rule.is_empty() => Ok(Subject {
            kind: SubjectKind::Rule,
            host: String::new(),
            name: rule.to_string(),
        }),
        (_, _, Some(_)) => Err(invalid_parameter(
            "rule",
            "give either rule, or host and code",
        )),
        (Some(h), _, None) if !h.is_empty() => Err(invalid_parameter("code", "host needs a code")),
        _ => Err(invalid_parameter("host", "give host and code, or rule")),
    }
}

async fn report(State(state): State<AdminState>, RawQuery(raw): RawQuery) -> Response {
    let asked = (|| {
        let known: Vec<&str> = SUBJECT.iter().chain(&analytics::PARAMS).copied().collect();
        let params = read_query(raw.as_deref(), &known)?;
        let subject = subject(&params)?;
        let query = StatsQuery::parse(&params, rules::unix_now())?;
        Ok::<_, Problem>((store(&state)?, subject, query))
    })();
    let (store, subject, query) = match asked {
        Ok(a) => a,
        Err(p) => return p.into_response(),
    };
    match analytics::report(store, subject, &query).await {
        Ok(report) => json(StatusCode::OK, &report),
        Err(e) => failed(&e).into_response(),
    }
}
