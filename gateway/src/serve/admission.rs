//! Whether a routed request may go upstream: its route's `rate_limit`
//! (per client) and its pool's `max_inflight`. A refused request is
//! answered by the gateway — `429` with `Retry-After` and the `RateLimit`
//! headers, or `503` — with the route's `response_headers`, and never
//! reaches a backend. The check is one; the answer is written by whichever
//! front end read the request (Pingora's session or the fast path).

use http::{header, HeaderName, HeaderValue};
use pingora::proxy::Session;
use pingora::Result;
use rules::{LimitKey, Proxy};
use std::net::IpAddr;
use std::sync::Arc;

use super::h1;
use super::respond::{self, Answer};
use crate::limits::{state_header, write_state, Limiters, RouteLimiter, Verdict};
use crate::metrics::{Kind, UpstreamFailure};
use crate::upstream::{Admitted, Pool};

static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// A request let through: its place in the pool, and where it stands
/// against the route's rate limit.
pub struct Admission {
    /// Held until the request ends (see [`Pool::admit`]).
    _place: Admitted,
    /// For the `RateLimit` headers, when the route is limited.
    pub rate: Option<RateState>,
}

/// Where a request stands against its route's rate limit: what the
/// `RateLimit-Policy` and `RateLimit` headers of its answer say.
pub struct RateState {
    limiter: Arc<RouteLimiter>,
    remaining: u64,
    reset_s: u64,
}

impl RateState {
    /// The two header names, for a writer leaving an upstream's out.
    pub fn names() -> [&'static HeaderName; 2] {
        [&RATELIMIT_POLICY, &RATELIMIT]
    }

    /// Appends both headers as HTTP/1 lines to `out`, except those `skip`
    /// names (a route's `response_headers` may remove them).
    pub fn write_h1(&self, out: &mut Vec<u8>, skip: impl Fn(&str) -> bool) {
        if let Some(policy) = &self.limiter.policy {
            if !skip(RATELIMIT_POLICY.as_str()) {
                h1::line(out, b"ratelimit-policy", policy.as_bytes());
            }
        }
        if !skip(RATELIMIT.as_str()) {
            out.extend_from_slice(b"ratelimit: ");
            write_state(out, &self.limiter.quoted, self.remaining, self.reset_s);
            out.extend_from_slice(b"\r\n");
        }
    }
}

impl Admission {
    /// Adds the `RateLimit` headers to an answer for the route.
    pub fn add_headers(&self, resp: &mut pingora::http::ResponseHeader) -> Result<()> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        if let Some(policy) = &rate.limiter.policy {
            resp.insert_header(RATELIMIT_POLICY.clone(), policy.clone())?;
        }
        if let Some(state) = state_header(&rate.limiter.id, rate.remaining, rate.reset_s) {
            resp.insert_header(RATELIMIT.clone(), state)?;
        }
        Ok(())
    }
}

/// A request refused: the answer it gets.
pub struct Refusal {
    /// `429` or `503`.
    pub status: u16,
    body: &'static str,
    /// `Retry-After` and the `RateLimit` headers of a `429`.
    extra: Vec<(HeaderName, HeaderValue)>,
    /// How the request is counted.
    pub kind: Kind,
}

impl Refusal {
    /// The answer, for either front end to write.
    pub fn answer(&self, rules_version: Option<u64>) -> Answer<'_> {
        Answer {
            extra: &self.extra,
            ..Answer::text(self.status, self.body, rules_version)
        }
    }
}

/// Decides whether `route`'s request may go to `pool`; `header` reads the
/// request's headers (for a `header:` rate-limit key).
pub fn check<'h>(
    route: &Proxy<'_>,
    pool: &Arc<Pool>,
    limiters: &Limiters,
    client_ip: Option<IpAddr>,
    header: impl FnOnce(&HeaderName) -> Option<&'h [u8]>,
) -> std::result::Result<Admission, Refusal> {
    let mut rate = None;
    if let Some(limiter) = route.rate_limit.and_then(|_| limiters.get(route.slot)) {
        let verdict = match &limiter.limit.key {
            LimitKey::Ip => limiter.check(&client_ip),
            // Without the header: one allowance shared by all who omit it.
            LimitKey::Header(name) => limiter.check(&header(name)),
        };
        match verdict {
            Verdict::Allowed { remaining, reset_s } => {
                rate = Some(RateState {
                    limiter: limiter.clone(),
                    remaining,
                    reset_s,
                });
            }
            Verdict::Limited { retry_after_s } => {
                let policy = limiter.policy.clone();
                let mut extra = vec![(header::RETRY_AFTER, HeaderValue::from(retry_after_s))];
                extra.extend(policy.map(|p| (RATELIMIT_POLICY.clone(), p)));
                extra.extend(
                    state_header(&limiter.id, 0, retry_after_s).map(|s| (RATELIMIT.clone(), s)),
                );
                return Err(Refusal {
                    status: 429,
                    body: "too many requests\n",
                    extra,
                    kind: Kind::RateLimited,
                });
            }
        }
    }
    let Some(place) = pool.admit() else {
        pool.metrics.error(UpstreamFailure::Overloaded);
        return Err(Refusal {
            status: 503,
            body: "service unavailable: upstream busy\n",
            extra: Vec::new(),
            kind: Kind::Error,
        });
    };
    Ok(Admission {
        _place: place,
        rate,
    })
}

/// [`check`] for a request Pingora read: a refusal is answered on the
/// session, `Ok(None)`, with `kind` saying how it is counted.
pub async fn admit(
    session: &mut Session,
    route: &Proxy<'_>,
    pool: &Arc<Pool>,
    limiters: &Limiters,
    client_ip: Option<IpAddr>,
    rules_version: Option<u64>,
    kind: &mut Option<Kind>,
) -> Result<Option<Admission>> {
    let checked = check(route, pool, limiters, client_ip, |name| {
        session
            .req_header()
            .headers
            .get(name)
            .map(HeaderValue::as_bytes)
    });
    match checked {
        Ok(admission) => Ok(Some(admission)),
        Err(refusal) => {
            *kind = Some(refusal.kind);
            let answer = refusal.answer(rules_version);
            respond::write_changed(session, answer, Some(route.response_headers)).await?;
            Ok(None)
        }
    }
}
