//! Custom link domains (`/api/v1/domains`): a partner adds the domain
//! they point at the fleet, publishes the TXT record the answer names,
//! and once it is seen the fleet orders, serves and renews its
//! certificate (`tls::acme`). A key sees only the domains it added; the
//! operator sees all of them.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::Extension;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

use super::auth::{store_problem, Caller};
use super::{ApiResult, ApiState, Reply};
use crate::metrics::StoreOp;
use crate::store::{random_text, Domain as Stored, StoreError};
use crate::tls::acme::{record_name, Acme};
use crate::web::Problem;

/// `POST /api/v1/domains`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainInput {
    /// The domain, e.g. `go.brand-a.com`: a DNS name of two labels or
    /// more, which the key may create links on.
    pub host: String,
}

/// Where a domain is on its way to a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DomainStatus {
    /// Its TXT record was not seen yet.
    Pending,
    /// Proven; its first certificate is being ordered.
    Verified,
    /// Its certificate is served by every gateway.
    Active,
}

/// The TXT record that proves the domain is the partner's.
#[derive(Debug, Serialize, ToSchema)]
pub struct Verification {
    /// Always `dns-txt`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The record's name, e.g. `_gateway-challenge.go.brand-a.com`.
    pub name: String,
    /// The value it must hold.
    pub value: String,
}

/// The certificate the fleet serves for the domain.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainCertificate {
    /// Its serial number, hex.
    pub serial: String,
    /// When it expires, Unix seconds; it is renewed `acme.renew_before`
    /// earlier.
    pub not_after: i64,
    /// When it was stored, Unix seconds.
    pub issued_at: Option<i64>,
}

/// A custom domain.
#[derive(Debug, Serialize, ToSchema)]
pub struct Domain {
    /// The domain, lower case.
    pub host: String,
    /// `pending`, `verified` or `active`.
    pub status: DomainStatus,
    /// The TXT record to publish.
    pub verification: Verification,
    /// Unix seconds.
    pub created_at: i64,
    /// When the TXT record was first seen.
    pub verified_at: Option<i64>,
    /// The last TXT lookup.
    pub checked_at: Option<i64>,
    /// Why the last TXT lookup did not verify it.
    pub check_error: Option<String>,
    /// The served certificate, once there is one.
    pub certificate: Option<DomainCertificate>,
    /// Why the last certificate order failed (it is retried with backoff).
    pub order_error: Option<String>,
}

impl Domain {
    fn of(d: Stored) -> Domain {
        let certificate = match (d.serial, d.not_after) {
            (Some(serial), Some(not_after)) => Some(DomainCertificate {
                serial,
                not_after,
                issued_at: d.issued_at,
            }),
            _ => None,
        };
        let status = match (&certificate, d.verified_at) {
            (Some(_), _) => DomainStatus::Active,
            (None, Some(_)) => DomainStatus::Verified,
            (None, None) => DomainStatus::Pending,
        };
        Domain {
            verification: Verification {
                kind: "dns-txt",
                name: record_name(&d.host).trim_end_matches('.').to_string(),
                value: d.token,
            },
            host: d.host,
            status,
            created_at: d.created_at,
            verified_at: d.verified_at,
            checked_at: d.checked_at,
            check_error: d.check_error,
            certificate,
            order_error: d.order_error,
        }
    }
}

/// `GET /api/v1/domains`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainList {
    /// By host.
    pub domains: Vec<Domain>,
}

fn acme(state: &ApiState) -> Result<&Arc<Acme>, Problem> {
    state.acme.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "domains-off",
            "automatic certificates for custom domains are off on this gateway (no [acme] section)",
        )
    })
}

fn not_found(host: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "domain-not-found",
        format!("no domain `{host}` among this key's domains"),
    )
}

/// `host` normalized, or why it is not a domain the fleet can get a
/// certificate for.
fn clean_host(host: &str) -> Result<String, String> {
    let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = h.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if h.is_empty() || h.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(format!(
            "`{host}` is not a domain name of two labels or more (a wildcard or an address cannot be added)"
        ));
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("`{host}` is an address, not a domain name"));
    }
    Ok(h)
}

/// The domain `host` of `caller`.
async fn owned(state: &ApiState, caller: &Caller, host: &str) -> Result<Stored, Problem> {
    let (h, owner) = (
        host.to_ascii_lowercase(),
        caller.owner().map(str::to_string),
    );
    state
        .store
        .query(StoreOp::Domains, move |b| async move {
            b.domain(&h, owner.as_deref()).await
        })
        .await
        .map_err(|e| store_problem(&e))?
        .ok_or_else(|| not_found(host))
}

fn reply(status: StatusCode, domain: Stored) -> Reply {
    let location = format!("/api/v1/domains/{}", domain.host);
    Reply::json(status, &Domain::of(domain)).location(location)
}

/// Add a custom domain.
#[utoipa::path(
    post,
    path = "/api/v1/domains",
    tag = "domains",
    request_body = DomainInput,
    responses(
        (status = 201, description = "Added, pending: publish the TXT record it names, then POST .../verify", body = Domain),
        (status = 400, description = "Bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, an unknown key, or a revoked one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key, or a host the key may not use", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Automatic certificates are off on this gateway", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The domain was added already", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a domain name", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store cannot be reached", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    acme(&state)?;
    caller.may_write()?;
    let input: DomainInput = crate::web::read_json(raw)?;
    let host = clean_host(&input.host).map_err(|message| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-domain",
            "the domain is not valid",
        )
        .field("host", message)
    })?;
    if !caller.covers(&host) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "host-not-allowed",
            format!("API key `{}` may not use `{host}`", caller.id()),
        )
        .field("host", "not among the hosts of this key"));
    }
    let owner = caller.owner().map(str::to_string);
    let h = host.clone();
    let added = state
        .store
        .query(StoreOp::DomainsWrite, move |b| async move {
            b.add_domain(&h, owner.as_deref(), &random_text(32), rules::unix_now())
                .await
        })
        .await;
    match added {
        Ok(domain) => {
            tracing::info!(domain = %host, key = caller.id(), "acme: custom domain added; waiting for its TXT record");
            Ok(reply(StatusCode::CREATED, domain))
        }
        Err(StoreError::Conflict(_)) => Err(Problem::new(
            StatusCode::CONFLICT,
            "domain-taken",
            format!("`{host}` was added already"),
        )
        .field("host", "added already")),
        Err(e) => Err(store_problem(&e)),
    }
}

/// List custom domains.
#[utoipa::path(
    get,
    path = "/api/v1/domains",
    tag = "domains",
    responses(
        (status = 200, description = "This key's domains", body = DomainList),
        (status = 401, description = "No key, an unknown key, or a revoked one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Automatic certificates are off on this gateway", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store cannot be reached", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    acme(&state)?;
    let owner = caller.owner().map(str::to_string);
    let domains = state
        .store
        .query(StoreOp::Domains, move |b| async move {
            b.domains(owner.as_deref()).await
        })
        .await
        .map_err(|e| store_problem(&e))?;
    Ok(Reply::json(
        StatusCode::OK,
        &DomainList {
            domains: domains.into_iter().map(Domain::of).collect(),
        },
    ))
}

/// Read a custom domain.
#[utoipa::path(
    get,
    path = "/api/v1/domains/{host}",
    tag = "domains",
    params(("host" = String, Path, description = "The domain")),
    responses(
        (status = 200, description = "The domain", body = Domain),
        (status = 401, description = "No key, an unknown key, or a revoked one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not one of this key's domains, or automatic certificates are off", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store cannot be reached", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn read(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(host): Path<String>,
) -> ApiResult {
    acme(&state)?;
    let domain = owned(&state, &caller, &host).await?;
    Ok(reply(StatusCode::OK, domain))
}

/// Look the domain's TXT record up now.
#[utoipa::path(
    post,
    path = "/api/v1/domains/{host}/verify",
    tag = "domains",
    params(("host" = String, Path, description = "The domain")),
    responses(
        (status = 200, description = "The domain after the lookup: `verified` once the record was seen, else still `pending` with `check_error`", body = Domain),
        (status = 401, description = "No key, an unknown key, or a revoked one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not one of this key's domains, or automatic certificates are off", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store cannot be reached", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn verify(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(host): Path<String>,
) -> ApiResult {
    let acme = acme(&state)?.clone();
    caller.may_write()?;
    let domain = owned(&state, &caller, &host).await?;
    if domain.verified_at.is_some() {
        // Verified for good: nothing to look up.
        return Ok(reply(StatusCode::OK, domain));
    }
    let checked = acme
        .check(&domain.host, &domain.token)
        .await
        .map_err(|e| store_problem(&e))?
        .ok_or_else(|| not_found(&host))?;
    Ok(reply(StatusCode::OK, checked))
}

/// Remove a custom domain.
#[utoipa::path(
    delete,
    path = "/api/v1/domains/{host}",
    tag = "domains",
    params(("host" = String, Path, description = "The domain")),
    responses(
        (status = 204, description = "Removed; its certificate stops being served within acme.poll_interval"),
        (status = 401, description = "No key, an unknown key, or a revoked one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not one of this key's domains, or automatic certificates are off", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store cannot be reached", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn remove(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(host): Path<String>,
) -> ApiResult {
    acme(&state)?;
    caller.may_write()?;
    let (h, owner) = (
        host.to_ascii_lowercase(),
        caller.owner().map(str::to_string),
    );
    let removed = state
        .store
        .query(StoreOp::DomainsWrite, move |b| async move {
            b.remove_domain(&h, owner.as_deref()).await
        })
        .await
        .map_err(|e| store_problem(&e))?;
    if !removed {
        return Err(not_found(&host));
    }
    tracing::info!(domain = %host, key = caller.id(), "acme: custom domain removed");
    Ok(Reply::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_dns_names_of_two_labels_or_more() {
        assert_eq!(clean_host("Go.Brand-A.com.").unwrap(), "go.brand-a.com");
        for bad in [
            "",
            "localhost",
            "*.brand.com",
            "a..b",
            "-a.com",
            "a-.com",
            "127.0.0.1",
            "a b.com",
            "xn--ü.com",
        ] {
            assert!(clean_host(bad).is_err(), "{bad}");
        }
    }
}
