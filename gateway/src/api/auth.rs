//! Who is calling: the API key behind `Authorization: Bearer`, found by
//! its hash (cached for the store's poll interval, so a revocation
//! reaches every gateway within it), and whether it may make one more
//! request now (its own token bucket, answered with the IETF `RateLimit`
//! headers).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use http::{HeaderMap, HeaderValue, StatusCode};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use super::ApiState;
use crate::limits::{policy_header, state_header};
use crate::metrics::StoreOp;
use crate::store::{secret_hash, ApiKey, Store, StoreError};
use crate::web::Problem;

/// One key's token bucket (GCRA): `rate_per_second` sustained, `burst`
/// at once.
type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// Each key's bucket, with the rate and burst it was made for.
type Buckets = HashMap<String, (u32, u32, Arc<Bucket>)>;

/// The key a request came with, put in the request's extensions.
#[derive(Clone)]
pub struct Caller(pub Arc<ApiKey>);

impl Caller {
    /// `403` unless the key may write.
    pub fn may_write(&self) -> Result<(), Problem> {
        if self.0.can_write {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "read-only-key",
                format!("API key `{}` is read-only", self.0.id),
            ))
        }
    }

    /// The key's id: the owner of the links it makes.
    pub fn id(&self) -> &str {
        &self.0.id
    }
}

/// Keys recently looked up, and every key's bucket.
pub struct Keys {
    /// By the secret's hash; `None`: no such key. Entries live one poll
    /// interval of the store.
    found: moka::sync::Cache<String, Option<Arc<ApiKey>>>,
    buckets: Mutex<Buckets>,
}

impl Keys {
    /// A cache whose entries live `ttl`.
    pub fn new(ttl: std::time::Duration) -> Keys {
        Keys {
            found: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The key whose secret is `secret`, revoked or not.
    async fn find(&self, store: &Store, secret: &str) -> Result<Option<Arc<ApiKey>>, StoreError> {
        let hash = secret_hash(secret);
        if let Some(found) = self.found.get(&hash) {
            return Ok(found);
        }
        let lookup = hash.clone();
        let found = store
            .query(StoreOp::Key, move |b| async move {
                b.key_by_hash(&lookup).await
            })
            .await?
            .map(Arc::new);
        self.found.insert(hash, found.clone());
        Ok(found)
    }

    /// `key`'s bucket, made anew when its rate or burst changed.
    fn bucket(&self, key: &ApiKey) -> Arc<Bucket> {
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        let rate = NonZeroU32::new(key.rate_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(key.burst).unwrap_or(rate);
        match buckets.get(&key.id) {
            Some((r, b, bucket)) if *r == rate.get() && *b == burst.get() => bucket.clone(),
            _ => {
                let quota = Quota::per_second(rate).allow_burst(burst);
                let bucket = Arc::new(
                    RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>(),
                );
                buckets.insert(key.id.clone(), (rate.get(), burst.get(), bucket.clone()));
                bucket
            }
        }
    }
}

/// The bearer token of `headers`, if any (the scheme is case-insensitive,
/// RFC 9110 §11.1).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
}

fn unauthorized(detail: &str) -> Response {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
        .header(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"links-api\""),
        )
        .into_response()
}

/// `store` could not be asked.
pub fn store_problem(e: &StoreError) -> Problem {
    match e {
        StoreError::Unavailable(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            "the link store cannot be reached; retry shortly",
        )
        .header(http::header::RETRY_AFTER, HeaderValue::from_static("2")),
        other => {
            tracing::error!(error = %other, "api: store query failed");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store-error",
                "the link store failed to answer; the error is logged",
            )
        }
    }
}

/// The `RateLimit-Policy` and `RateLimit` headers (draft-ietf-httpapi-
/// ratelimit-headers): the policy is the bucket — `q` requests at once,
/// full again after `w` seconds — and `r` is what is left of it, `t` the
/// seconds until it is full again (or, refused, until the next request
/// may go).
fn rate_headers(headers: &mut HeaderMap, key: &ApiKey, remaining: u32, reset: u64) {
    let rate = key.rate_per_second.max(1);
    let burst = key.burst.max(1);
    let window = burst.div_ceil(rate);
    if let Some(v) = policy_header("api-key", u64::from(burst), u64::from(window)) {
        headers.insert("ratelimit-policy", v);
    }
    if let Some(v) = state_header("api-key", u64::from(remaining), reset) {
        headers.insert("ratelimit", v);
    }
}

/// Middleware in front of every `/api/v1/links` route.
pub async fn authenticate(
    State(state): State<Arc<ApiState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(secret) = bearer(req.headers()) else {
        return unauthorized("send the API key as `Authorization: Bearer <key>`");
    };
    let key = match state.keys.find(&state.store, secret).await {
        Ok(Some(key)) => key,
        Ok(None) => return unauthorized("unknown API key"),
        Err(e) => return store_problem(&e).into_response(),
    };
    if key.revoked_at.is_some() {
        return unauthorized(&format!("API key `{}` is revoked", key.id));
    }
    let bucket = state.keys.bucket(&key);
    let (remaining, reset) = match bucket.check() {
        Ok(snapshot) => {
            let remaining = snapshot.remaining_burst_capacity();
            let empty = key.burst.max(1).saturating_sub(remaining);
            (
                remaining,
                u64::from(empty.div_ceil(key.rate_per_second.max(1))),
            )
        }
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            state
                .metrics
                .api
                .rate_limited
                .with_label_values(&[key.id.as_str()])
                .inc();
            let mut resp = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                format!(
                    "API key `{}` may make {} requests per second (bursts of {}); retry in {secs} s",
                    key.id, key.rate_per_second, key.burst
                ),
            )
            .header(
                http::header::RETRY_AFTER,
                HeaderValue::from(secs.max(1)),
            )
            .into_response();
            rate_headers(resp.headers_mut(), &key, 0, secs.max(1));
            return resp;
        }
    };
    req.extensions_mut().insert(Caller(key.clone()));
    let mut resp = next.run(req).await;
    rate_headers(resp.headers_mut(), &key, remaining, reset);
    resp
}
