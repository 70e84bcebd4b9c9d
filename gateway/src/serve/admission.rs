//! Whether a routed request may go upstream: its route's `rate_limit`
//! (per client) and its pool's `max_inflight`. A refused request is
//! answered here — `429` with `Retry-After` and the `RateLimit` headers, or
//! `503` — with the route's `response_headers`, and never reaches a backend.

use http::{header, HeaderName, HeaderValue};
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};
use rules::{LimitKey, Proxy};
use std::net::IpAddr;
use std::sync::Arc;

use super::respond::{self, Answer};
use crate::limits::{state_header, Limiters, Verdict};
use crate::metrics::{Kind, UpstreamFailure};
use crate::upstream::{Admitted, Pool};

static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// A request let through: its place in the pool, and the `RateLimit`
/// headers for the answer when the route is limited.
pub struct Admission {
    /// Held until the request ends (see [`Pool::admit`]).
    _place: Admitted,
    /// `RateLimit-Policy` and `RateLimit`.
    pub rate_headers: Option<[(HeaderName, HeaderValue); 2]>,
}

impl Admission {
    /// Adds the `RateLimit` headers to an answer for the route.
    pub fn add_headers(&self, resp: &mut pingora::http::ResponseHeader) -> Result<()> {
        for (name, value) in self.rate_headers.iter().flatten() {
            resp.insert_header(name.clone(), value.clone())?;
        }
        Ok(())
    }
}

/// Admits `route`'s request to `pool`, or answers it. `Ok(None)` when it
/// was answered (and `kind` says how).
pub async fn admit(
    session: &mut Session,
    route: &Proxy<'_>,
    pool: &Arc<Pool>,
    limiters: &Limiters,
    client_ip: Option<IpAddr>,
    rules_version: Option<u64>,
    kind: &mut Option<Kind>,
) -> Result<Option<Admission>> {
    let mut rate_headers = None;
    if let Some(limiter) = route.rate_limit.and_then(|_| limiters.get(route.slot)) {
        let verdict = match &limiter.limit.key {
            LimitKey::Ip => limiter.check(&client_ip),
            // Without the header: one allowance shared by all who omit it.
            LimitKey::Header(name) => limiter.check(
                &session
                    .req_header()
                    .headers
                    .get(name)
                    .map(HeaderValue::as_bytes),
            ),
        };
        let policy = limiter
            .policy
            .clone()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "rate limit policy header"))?;
        match verdict {
            Verdict::Allowed { remaining, reset_s } => {
                if let Some(state) = state_header(&limiter.id, remaining, reset_s) {
                    rate_headers = Some([
                        (RATELIMIT_POLICY.clone(), policy),
                        (RATELIMIT.clone(), state),
                    ]);
                }
            }
            Verdict::Limited { retry_after_s } => {
                *kind = Some(Kind::RateLimited);
                let state = state_header(&limiter.id, 0, retry_after_s).ok_or_else(|| {
                    Error::explain(ErrorType::InternalError, "rate limit state header")
                })?;
                let extra = [
                    (header::RETRY_AFTER, HeaderValue::from(retry_after_s)),
                    (RATELIMIT_POLICY.clone(), policy),
                    (RATELIMIT.clone(), state),
                ];
                let answer = Answer {
                    extra: &extra,
                    ..Answer::text(429, "too many requests\n", rules_version)
                };
                respond::write_changed(session, answer, Some(route.response_headers)).await?;
                return Ok(None);
            }
        }
    }
    let Some(place) = pool.admit() else {
        *kind = Some(Kind::Error);
        pool.metrics.error(UpstreamFailure::Overloaded);
        let text = "service unavailable: upstream busy\n";
        respond::route_text(session, 503, text, rules_version, route.response_headers).await?;
        return Ok(None);
    };
    Ok(Some(Admission {
        _place: place,
        rate_headers,
    }))
}
