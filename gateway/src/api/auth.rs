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
use crate::web::{Problem, Subject};

/// One key's token bucket (GCRA): `rate_per_second` sustained, `burst`
/// at once.
type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// Each key's bucket, with the rate and burst it was made for.
type Buckets = HashMap<String, (u32, u32, Arc<Bucket>)>;

/// Who a request comes from, put in the request's extensions: a
/// partner's key, or the operator (the console on the admin listener),
/// who sees and changes every link.
#[derive(Clone)]
pub struct Caller {
    key: Arc<ApiKey>,
    operator: bool,
}

/// The id the operator's requests go under (idempotency keys, logs); no
/// key can have it, as key ids are 12 characters.
const OPERATOR: &str = "operator";

impl Caller {
    /// A request with `key`.
    pub fn key_of(key: Arc<ApiKey>) -> Caller {
        Caller {
            key,
            operator: false,
        }
    }

    /// A request of the operator: no host, quota or rate limit, every link.
    pub fn operator() -> Caller {
        Caller {
            key: Arc::new(ApiKey {
                id: OPERATOR.into(),
                name: OPERATOR.into(),
                hosts: vec!["*".into()],
                can_write: true,
                rate_per_second: 0,
                burst: 0,
                monthly_quota: None,
                created_at: 0,
                revoked_at: None,
            }),
            operator: true,
        }
    }

    /// The key (for the operator, one that stands for it).
    pub fn key(&self) -> &ApiKey {
        &self.key
    }

    /// `403` unless the key may write.
    pub fn may_write(&self) -> Result<(), Problem> {
        if self.key.can_write {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "read-only-key",
                format!("API key `{}` is read-only", self.key.id),
            ))
        }
    }

    /// The key's id (`operator` for the operator): what its idempotency
    /// keys and quota count under.
    pub fn id(&self) -> &str {
        &self.key.id
    }

    /// Whose links the caller sees and makes: its key's; `None` for the
    /// operator, who sees every link and whose links have no owner.
    pub fn owner(&self) -> Option<&str> {
        (!self.operator).then_some(self.key.id.as_str())
    }

    /// Whether the caller may put links on `host` (any store domain, for
    /// the operator).
    pub fn covers(&self, host: &str) -> bool {
        self.operator || self.key.covers(host)
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

    /// The key whose secret hashes to `hash`, revoked or not.
    pub async fn find_hash(
        &self,
        store: &Store,
        hash: String,
    ) -> Result<Option<Arc<ApiKey>>, StoreError> {
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

/// The hash of the key a request comes with: `Authorization: Bearer`, or
/// else the console session it belongs to (a change checked for its CSRF
/// token).
fn key_hash(state: &ApiState, req: &Request) -> Result<String, Box<Response>> {
    Ok(match bearer(req.headers()) {
        Some(secret) => secret_hash(secret),
        None => match state.sessions.authorize(req.method(), req.headers()) {
            Ok(Some(session)) => match &session.subject {
                Subject::Key(hash) => hash.clone(),
                Subject::Operator => return Err(Box::new(unauthorized("not a partner's session"))),
            },
            Ok(None) => {
                return Err(Box::new(unauthorized(
                    "send the API key as `Authorization: Bearer <key>`",
                )))
            }
            Err(p) => return Err(Box::new(p.into_response())),
        },
    })
}

/// The key whose secret hashes to `hash`.
async fn key_of(state: &ApiState, hash: String) -> Result<Arc<ApiKey>, Response> {
    match state.keys.find_hash(&state.store, hash).await {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(unauthorized("unknown API key")),
        Err(e) => Err(store_problem(&e).into_response()),
    }
}

/// Middleware in front of every `/api/v1/links` route.
pub async fn authenticate(
    State(state): State<Arc<ApiState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let hash = match key_hash(&state, &req) {
        Ok(hash) => hash,
        Err(resp) => return *resp,
    };
    let key = match key_of(&state, hash).await {
        Ok(key) => key,
        Err(resp) => return resp,
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
    req.extensions_mut().insert(Caller::key_of(key.clone()));
    let mut resp = next.run(req).await;
    rate_headers(resp.headers_mut(), &key, remaining, reset);
    resp
}
