//! The `ProxyHttp` implementation: redirects and fixed responses are
//! answered in `request_filter`; routes go to `upstream_peer`.

use super::headers::{REQUEST_ID, REQUEST_ID_NAME, RULES_VERSION_NAME};
use async_trait::async_trait;
use http::{header, HeaderValue};
use pingora::lb::Backend;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};
use rules::{Decision, HeaderChanges};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::access_log::{self, Line};
use super::admission::{self, Admission};
use super::decide::{self, Decider};
use super::forwarding;
use super::framing;
use super::respond::{self, Answer};
use super::route_headers;
use super::session_view::{client_ip, header_str, request_host, SessionView};
use crate::live::Snapshot;
use crate::metrics::{Kind, UpstreamFailure};
use crate::upstream::{classify, Pool, ALL_FAILED, NO_HEALTHY};

/// The gateway's `ProxyHttp` service.
pub struct Gateway {
    decider: Arc<Decider>,
    /// Whether this service's listener is TLS (for `X-Forwarded-Proto`).
    tls: bool,
    /// Longest wait between two reads of a request body.
    body_timeout: Duration,
}

impl Gateway {
    /// A gateway deciding with `decider`; `tls` says whether its listener
    /// is TLS (for `X-Forwarded-Proto`); a proxied request's body may
    /// pause for at most `body_timeout` between reads.
    pub fn new(decider: Arc<Decider>, tls: bool, body_timeout: Duration) -> Self {
        Gateway {
            decider,
            tls,
            body_timeout,
        }
    }

    /// The rules version to announce, when `version_header` is on.
    fn announce(&self, ctx: &Ctx) -> Option<u64> {
        ctx.snapshot.as_ref().and_then(|s| self.decider.announce(s))
    }
}

/// A routed request's upstream, worked out in `request_filter`.
pub struct Route {
    /// Pool name.
    pub upstream: String,
    /// Path and query to send.
    pub path_and_query: String,
    /// `Host` to send instead of the client's.
    pub host_header: Option<String>,
    /// Largest request body (`None`: no limit).
    pub max_body: Option<u64>,
    /// Changes to the request sent upstream.
    pub request_headers: HeaderChanges,
    /// Changes to every answer: the upstream's and the gateway's errors.
    pub response_headers: HeaderChanges,
    /// The pool.
    pub pool: Arc<Pool>,
    /// Its place among the pool's requests in flight, and its rate limit.
    pub admission: Admission,
}

/// Per-request state.
#[derive(Default)]
pub struct Ctx {
    /// The snapshot this request uses from start to end.
    pub snapshot: Option<Arc<Snapshot>>,
    /// Set for proxied requests.
    pub route: Option<Route>,
    /// Backends that failed to connect for this request.
    pub failed: Vec<Backend>,
    /// The backend of the current attempt.
    pub backend: Option<Backend>,
    /// Retries used so far.
    pub retries: u32,
    /// Request id returned to the client on proxied requests.
    pub request_id: Option<String>,
    /// When the request head was read.
    pub started: Option<Instant>,
    /// What kind of answer it got.
    pub kind: Option<Kind>,
    /// Rule id, kept only when access logging is on.
    pub rule: Option<String>,
    /// When the first backend was picked.
    pub upstream_started: Option<Instant>,
    /// Status the upstream answered with.
    pub upstream_status: Option<u16>,
    /// The client's address (see `client_ip`): the TCP peer, or who a
    /// trusted proxy says the client is.
    pub client_ip: Option<IpAddr>,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            started: Some(Instant::now()),
            ..Ctx::default()
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let snap = self.decider.live.load_full();
        ctx.snapshot = Some(snap.clone());
        // An ACME HTTP-01 request the fleet has an answer for, before the
        // rules (which may redirect every plain request to https).
        let path = session.req_header().uri.path();
        if let Some(key_authorization) = self.decider.challenge(path).await {
            ctx.kind = Some(Kind::Respond);
            respond::write(session, Answer::key_authorization(&key_authorization)).await?;
            return Ok(true);
        }
        let version = self.decider.announce(&snap);
        let view = self.decider.store_view();
        let mut decided = self.decider.decide(&snap, &view, &SessionView(session));
        if matches!(decided.decision, Decision::NeedsStore) {
            // A code on a store domain the cache does not hold: wait for
            // the store (one query per code however many ask), then decide
            // again. Still `NeedsStore` when it cannot be reached: a 503.
            match view.resolve(&snap.rules).await {
                Ok(()) => decided = self.decider.decide(&snap, &view, &SessionView(session)),
                Err(e) => tracing::warn!(
                    host = request_host(session),
                    error = %e,
                    "link store unreachable and the code is not cached: 503"
                ),
            }
        }
        decide::count_hit(&snap, decided.decision.slot());
        ctx.client_ip = decided.client_ip;
        ctx.kind = Some(decided.kind);
        if self.decider.access.enabled {
            ctx.rule = decided.decision.rule().map(str::to_string);
        }
        match Answer::of(decided.decision, version) {
            Ok(answer) => respond::write(session, answer).await?,
            Err(p) => {
                let Some(pool) = snap.pools.get(p.upstream).cloned() else {
                    // Validation guarantees every route names a pool; this
                    // only guards against a future bug turning into a panic.
                    tracing::error!(
                        upstream = p.upstream,
                        "route names an upstream with no pool"
                    );
                    ctx.kind = Some(Kind::Error);
                    let changes = p.response_headers;
                    respond::route_text(session, 502, "bad gateway\n", version, changes).await?;
                    return Ok(true);
                };
                if let (Some(max), Some(len)) = (p.max_body, declared_length(session)) {
                    if len > max {
                        let changes = p.response_headers;
                        return self.too_large(session, ctx, version, changes).await;
                    }
                }
                if !p.upgrade && session.req_header().headers.contains_key(header::UPGRADE) {
                    // As nginx without `proxy_set_header Upgrade`: the
                    // request goes upstream as a plain one, so it cannot
                    // turn into a tunnel past the route.
                    session.req_header_mut().remove_header(&header::UPGRADE);
                }
                let admitted = admission::admit(
                    session,
                    &p,
                    &pool,
                    &snap.limiters,
                    ctx.client_ip,
                    version,
                    &mut ctx.kind,
                )
                .await?;
                let Some(admission) = admitted else {
                    return Ok(true);
                };
                session.set_read_timeout(Some(self.body_timeout));
                ctx.route = Some(Route {
                    upstream: p.upstream.to_string(),
                    path_and_query: p.path_and_query,
                    host_header: p.host_header.map(str::to_string),
                    max_body: p.max_body,
                    request_headers: p.request_headers.clone(),
                    response_headers: p.response_headers.clone(),
                    pool,
                    admission,
                });
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        _body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // After a 101 this is tunnel traffic, not a body: no limit.
        if session.was_upgraded() {
            return Ok(());
        }
        // A chunked body declares no length: count it as it arrives. What
        // Pingora has read, not what passed here, so a retry that replays
        // the body is not counted twice.
        if let Some(max) = ctx.route.as_ref().and_then(|r| r.max_body) {
            if session.body_bytes_read() as u64 > max {
                ctx.kind = Some(Kind::BadRequest);
                return Error::e_explain(ErrorType::HTTPStatus(413), "request body over max_body");
            }
        }
        Ok(())
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let Some(route) = &ctx.route else {
            return Error::e_explain(ErrorType::InternalError, "no route for a proxied request");
        };
        let key: Vec<u8> = match &route.pool.def.hash_header {
            Some(h) => header_str(session, h.as_str())
                .unwrap_or("")
                .as_bytes()
                .to_vec(),
            None => ctx
                .client_ip
                .map(|ip| ip.to_string().into_bytes())
                .unwrap_or_default(),
        };
        let mut selected = route.pool.select(&key, &ctx.failed);
        if selected.is_none() && ctx.failed.is_empty() {
            // Every backend is down: a backend that came back since the
            // last check (an upstream started after the gateway) serves
            // this request rather than waiting for the next interval.
            route.pool.recheck_when_down().await;
            selected = route.pool.select(&key, &ctx.failed);
        }
        match selected {
            Some(backend) => {
                ctx.upstream_started.get_or_insert_with(Instant::now);
                if !ctx.failed.is_empty() {
                    // A real retry: another backend after a failed connect.
                    route.pool.metrics.retries.inc();
                }
                let peer = route.pool.peer(&backend);
                ctx.backend = Some(backend);
                Ok(Box::new(peer))
            }
            None => {
                let (etype, why) = if ctx.failed.is_empty() {
                    (NO_HEALTHY, "no healthy backend")
                } else {
                    (ALL_FAILED, "every healthy backend failed to connect")
                };
                let mut e = Error::explain(etype, format!("upstream {}: {why}", route.upstream));
                e.set_retry(false);
                Err(e)
            }
        }
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(b) = ctx.backend.take() {
            if let Some(route) = &ctx.route {
                route.pool.outcome(&b, false);
            }
            ctx.failed.push(b);
        }
        let allowed = ctx.route.as_ref().map_or(0, |r| r.pool.def.retries);
        if ctx.retries < allowed {
            ctx.retries += 1;

            tracing::warn!(
                upstream = ctx.route.as_ref().map_or("", |r| r.upstream.as_str()),
                backend = %peer,
                error = %e,
                retry = ctx.retries,
                "upstream connect failed, retrying on another backend"
            );
            e.set_retry(true);
        } else {
            e.set_retry(false);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(route) = &ctx.route else {
            return Ok(());
        };
        let host = request_host(session).to_string();
        if upstream.uri.path_and_query().map(|pq| pq.as_str())
            != Some(route.path_and_query.as_str())
        {
            let uri = route.path_and_query.parse::<http::Uri>().map_err(|e| {
                Error::because(
                    ErrorType::InternalError,
                    "rewritten path is not a valid URI",
                    e,
                )
            })?;
            upstream.set_uri(uri);
        }
        match &route.host_header {
            Some(h) => upstream.insert_header(header::HOST, h.as_str())?,
            None if !upstream.headers.contains_key(header::HOST) && !host.is_empty() => {
                upstream.insert_header(header::HOST, host.as_str())?
            }
            None => {}
        }
        let host = (!host.is_empty()).then_some(host.as_str());
        framing::single_framing_headers(upstream)?;
        ctx.request_id = Some(forwarding::apply(
            upstream,
            client_ip(session),
            self.decider.trusted_proxies(),
            self.tls,
            host,
        )?);
        // After the forwarding headers, which the rules do not let a route
        // touch: a route can drop what the client sent, not what we add.
        route_headers::request(upstream, &route.request_headers)?;
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // The status line is ours, not the upstream's (as with nginx): an
        // HTTP/1.1 client gets `HTTP/1.1`. Framing stays right: Pingora has
        // already made a close-delimited 1.0 body chunked, and a 1.0 answer
        // with Content-Length means the same in 1.1.
        if resp.version == http::Version::HTTP_10
            && session.req_header().version == http::Version::HTTP_11
        {
            resp.set_version(http::Version::HTTP_11);
        }
        if resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
            // A tunnel now: a side that only listens (server push) is not a
            // stalled body, and body_timeout must not close it.
            session.set_read_timeout(None);
        }
        // Not on a `100 Continue` or `103 Early Hints`: the changes are
        // for the answer, which follows.
        if let Some(route) = &ctx.route {
            if !resp.status.is_informational()
                || resp.status == http::StatusCode::SWITCHING_PROTOCOLS
            {
                // Before the route's changes, which may remove them.
                route.admission.add_headers(resp)?;
                route_headers::response(resp, &route.response_headers)?;
            }
        }
        if let Some(id) = &ctx.request_id {
            resp.insert_header(
                REQUEST_ID_NAME.clone(),
                HeaderValue::from_str(id)
                    .map_err(|e| Error::because(ErrorType::InternalError, "request id", e))?,
            )?;
        }
        if let Some(v) = self.announce(ctx) {
            resp.insert_header(RULES_VERSION_NAME.clone(), v)?;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let status = upstream_response.status;
        ctx.upstream_status = Some(status.as_u16());
        drop_connection_options(upstream_response);
        if let (Some(route), Some(backend)) = (&ctx.route, &ctx.backend) {
            if !status.is_informational() {
                route.pool.outcome(backend, !status.is_server_error());
            }
        }
        Ok(())
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let kind = ctx.kind.unwrap_or(if (400..500).contains(&status) {
            Kind::BadRequest
        } else {
            Kind::Error
        });
        self.decider.metrics.request(kind, status, elapsed);
        if let Some(route) = &ctx.route {
            if let Some(code) = ctx.upstream_status {
                route.pool.metrics.response(code);
            }
            // Only answered requests: a refused connect is an error, not a
            // fast response, and must not pull the percentiles down.
            if let (Some(t), Some(_)) = (ctx.upstream_started, ctx.upstream_status) {
                route
                    .pool
                    .metrics
                    .duration
                    .observe(t.elapsed().as_secs_f64());
            }
        }
        if self.decider.access.sampled() {
            let req = session.req_header();
            access_log::write(&Line {
                request_id: ctx
                    .request_id
                    .as_deref()
                    .or_else(|| header_str(session, REQUEST_ID))
                    .unwrap_or(""),
                client_ip: ctx.client_ip,
                method: req.method.as_str(),
                host: request_host(session),
                path: req.uri.path(),
                status,
                kind,
                rule: ctx.rule.as_deref().unwrap_or(""),
                upstream: ctx.route.as_ref().map_or("", |r| r.upstream.as_str()),
                upstream_status: ctx.upstream_status.unwrap_or(0),
                seconds: elapsed,
                bytes: session.body_bytes_sent() as u64,
            });
        }
    }

    /// `fail_to_proxy` logs every upstream failure itself, with the
    /// upstream's name; Pingora's own line for it would be a duplicate.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, e: &Error) -> bool {
        classify(e).1.is_some()
    }

    /// `fail_to_connect` has logged each connect failure it retries.
    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        ctx: &Ctx,
        e: &Error,
        context: ProxyWarnLogContext,
    ) -> bool {
        matches!(context, ProxyWarnLogContext::UpstreamRetry)
            && ctx.retries > 0
            && matches!(
                classify(e).1,
                Some(UpstreamFailure::Connect | UpstreamFailure::Timeout)
            )
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let (code, failure) = classify(e);
        if let (Some(failure), Some(route)) = (failure, &ctx.route) {
            route.pool.metrics.error(failure);
            // A connect failure was counted against its backend already.
            if let (UpstreamFailure::Timeout | UpstreamFailure::Reset, Some(b)) =
                (failure, &ctx.backend)
            {
                route.pool.outcome(b, false);
            }
        }
        if let Some(failure) = failure {
            tracing::warn!(
                upstream = ctx.route.as_ref().map_or("", |r| r.upstream.as_str()),
                reason = failure.as_str(),
                status = code,
                error = %e,
                "upstream request failed"
            );
        }
        let body = match code {
            502 => "bad gateway\n",
            503 => "service unavailable: no healthy upstream\n",
            504 => "gateway timeout\n",
            413 => "payload too large\n",
            408 => "request timeout\n",
            400 => "bad request\n",
            _ => "error\n",
        };
        if code > 0 {
            // The route's answer even though the upstream gave none, as
            // Envoy's route `response_headers_to_add`.
            let answer = Answer::text(code, body, self.announce(ctx));
            let changes = ctx.route.as_ref().map(|r| &r.response_headers);
            if let Err(err) = respond::write_changed(session, answer, changes).await {
                tracing::debug!(error = %err, "could not write the error response");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }
}

impl Gateway {
    /// Answers `413` to a body over the route's `max_body`, before reading
    /// it, and closes the connection rather than drain it (as nginx does).
    async fn too_large(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        version: Option<u64>,
        changes: &HeaderChanges,
    ) -> Result<bool> {
        ctx.kind = Some(Kind::BadRequest);
        session.set_keepalive(None);
        respond::route_text(session, 413, "payload too large\n", version, changes).await?;
        // Closing with the body unread would reset the connection and
        // could destroy the 413 before the client reads it: read and drop
        // some of it first, as nginx does.
        let drain = async {
            let mut left: usize = 1 << 20;
            while let Ok(Some(chunk)) = session.read_request_body().await {
                left = left.saturating_sub(chunk.len());
                if left == 0 {
                    break;
                }
            }
        };
        let _ = pingora::time::timeout(std::time::Duration::from_secs(2), drain).await;
        Ok(true)
    }
}

/// Removes what the upstream's `Connection` header names (RFC 9110
/// §7.6.1): options of its connection to the gateway, not of the client's.
/// Pingora writes `Connection` itself; the fast path drops the same names.
fn drop_connection_options(resp: &mut ResponseHeader) {
    let Some(listed) = resp
        .headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
    else {
        return;
    };
    let names: Vec<http::HeaderName> = listed
        .split(',')
        .filter_map(|t| http::HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !matches!(n.as_str(), "close" | "keep-alive" | "upgrade"))
        .collect();
    for name in names {
        resp.remove_header(&name);
    }
    resp.remove_header(&http::HeaderName::from_static("keep-alive"));
}

/// The body length a request declares, when it is framed by one.
fn declared_length(session: &Session) -> Option<u64> {
    let req = session.req_header();
    if req.headers.contains_key(header::TRANSFER_ENCODING) {
        return None;
    }
    // Pingora has refused differing values; the first names them all.
    let first = req.headers.get(header::CONTENT_LENGTH)?.to_str().ok()?;
    first.split(',').next()?.trim().parse().ok()
}
