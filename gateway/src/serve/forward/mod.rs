//! The fast path's own HTTP/1 forwarding of plain routed requests.
//!
//! Pingora's proxy pipeline costs about three times nginx's CPU per
//! proxied request, most of it in machinery a plain `GET` does not need: a
//! session and context per request, and a connection pool that wraps every
//! idle upstream connection in a lock and spawns a task with a timer to
//! watch it between two requests. So a plain `GET` or `HEAD` (no body, no
//! upgrade: what the front's `H1Request::plain` takes) on a route to a pool without
//! TLS is forwarded here: the upstream request is built with the same code
//! as the pipeline's (`forwarding`, `route_headers`), sent on a kept-alive
//! connection from the pool's own list ([`crate::upstream::Pool::idle`]),
//! and the answer is relayed by its framing with the same headers the
//! pipeline writes. Everything else — a body, an upgrade, TLS upstreams,
//! HTTP/2 — still goes through Pingora, with the same rules, limits,
//! retries, outlier ejection, metrics and logs.

mod response;

use pingora::lb::Backend;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use self::response::{Body, Chunks, Head, Malformed, Rewrite};
use super::access_log::{self, Line};
use super::admission::Admission;
use super::client_ip::TrustedProxies;
use super::decide::RequestView;
use super::forwarding::Forwarding;
use super::h1;
use super::headers::REQUEST_ID;
use super::read_limit::ReadLimit;
use super::respond::Answer;
use crate::metrics::{Kind, Metrics, UpstreamFailure};
use crate::upstream::Pool;
use rules::{Balance, HeaderChanges, Proxy};

/// How long a client may take to accept the answer (as the front's).
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Upstream reads: what one read takes at most.
const READ_CHUNK: usize = 16 * 1024;

/// A routed request the fast path forwards.
pub struct Job {
    pool: Arc<Pool>,
    /// The request head to send.
    request: Vec<u8>,
    /// Consistent hashing's key (empty for round robin).
    key: Vec<u8>,
    request_id: String,
    response_headers: HeaderChanges,
    admission: Admission,
    rules_version: Option<u64>,
    head_request: bool,
    keep_alive: bool,
    started: Instant,
    metrics: Arc<Metrics>,
    /// What the access log needs, when this request is logged.
    log: Option<Box<LogFields>>,
}

struct LogFields {
    client_ip: Option<IpAddr>,
    method: &'static str,
    host: String,
    path: String,
    rule: String,
}

/// What [`Job::new`] needs besides the request.
pub struct Context<'a> {
    /// The route's pool.
    pub pool: Arc<Pool>,
    /// The admitted request's place and rate-limit headers.
    pub admission: Admission,
    /// The client (see `client_ip`).
    pub client_ip: Option<IpAddr>,
    /// Whose forwarding headers are believed.
    pub trusted: &'a TrustedProxies,
    /// Whether the client's connection is TLS.
    pub tls: bool,
    /// `X-Rules-Version`, when announced.
    pub rules_version: Option<u64>,
    /// Whether the client's connection stays open after this.
    pub keep_alive: bool,
    /// When the request was read.
    pub started: Instant,
    /// Process metrics.
    pub metrics: Arc<Metrics>,
    /// Whether the access log takes this request.
    pub logged: bool,
}

/// Whether the fast path forwards requests to `pool` itself: plain TCP
/// backends only (Pingora's connector does TLS).
pub fn forwards_to(pool: &Pool) -> bool {
    !pool.def.tls
}

impl Job {
    /// The job for `req`, routed by `route`; `None` when the upstream
    /// request cannot be built (the pipeline then takes it).
    pub fn new(req: &impl RequestView, route: &Proxy<'_>, cx: Context<'_>) -> Option<Job> {
        let method: &'static str = match req.method() {
            "GET" => "GET",
            "HEAD" => "HEAD",
            // Only plain requests come here; anything else is the pipeline's.
            _ => return None,
        };
        let forwarding = Forwarding::new(
            req.header_values("x-forwarded-for"),
            req.header(REQUEST_ID),
            req.peer_ip(),
            cx.client_ip,
            cx.trusted,
            cx.tls,
        );
        let mut listed: [&str; 8] = [""; 8];
        let mut n_listed = 0;
        for (name, value) in req.header_lines() {
            if name.eq_ignore_ascii_case("connection") {
                for token in std::str::from_utf8(value).ok()?.split(',') {
                    // More options than that: the pipeline's to forward.
                    *listed.get_mut(n_listed)? = token.trim();
                    n_listed += 1;
                }
            }
        }
        let mut request = Vec::with_capacity(512 + route.path_and_query.len());
        request.extend_from_slice(method.as_bytes());
        request.push(b' ');
        request.extend_from_slice(route.path_and_query.as_bytes());
        request.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in req.header_lines() {
            // Hop-by-hop (RFC 9110 §7.6.1) and what `Connection` lists:
            // this connection's, not the upstream's.
            let dropped = [
                "connection",
                "keep-alive",
                "proxy-connection",
                "te",
                "trailer",
            ]
            .iter()
            .chain(listed[..n_listed].iter())
            .any(|n| name.eq_ignore_ascii_case(n))
                || (route.host_header.is_some() && name.eq_ignore_ascii_case("host"))
                || forwarding.replaces(name)
                || route.request_headers.touches(name);
            if !dropped {
                h1::line(&mut request, name.as_bytes(), value);
            }
        }
        if let Some(host) = route.host_header {
            h1::line(&mut request, b"host", host.as_bytes());
        }
        if !forwarding.chain.is_empty() {
            h1::line(&mut request, b"x-forwarded-for", &forwarding.chain);
        }
        if let Some(ip) = forwarding.real_ip {
            h1::line(&mut request, b"x-real-ip", ip.to_string().as_bytes());
        }
        h1::line(
            &mut request,
            b"x-forwarded-proto",
            forwarding.proto.as_bytes(),
        );
        if !req.host().is_empty() {
            h1::line(&mut request, b"x-forwarded-host", req.host().as_bytes());
        }
        if forwarding.new_id {
            h1::line(
                &mut request,
                REQUEST_ID.as_bytes(),
                forwarding.request_id.as_bytes(),
            );
        }
        // After the forwarding headers, which the rules do not let a route
        // touch: a route can drop what the client sent, not what we add.
        h1::set_lines(&mut request, route.request_headers);
        request.extend_from_slice(b"\r\n");
        let request_id = forwarding.request_id;
        let key = match (&cx.pool.def.balance, &cx.pool.def.hash_header) {
            (Balance::RoundRobin, _) => Vec::new(),
            (Balance::Consistent, Some(h)) => req.header(h).unwrap_or("").as_bytes().to_vec(),
            (Balance::Consistent, None) => cx
                .client_ip
                .map(|ip| ip.to_string().into_bytes())
                .unwrap_or_default(),
        };
        let log = cx.logged.then(|| {
            Box::new(LogFields {
                client_ip: cx.client_ip,
                method,
                host: req.host().to_string(),
                path: req.path().to_string(),
                rule: route.rule.to_string(),
            })
        });
        Some(Job {
            pool: cx.pool,
            request,
            key,
            request_id,
            response_headers: route.response_headers.clone(),
            admission: cx.admission,
            rules_version: cx.rules_version,
            head_request: method == "HEAD",
            keep_alive: cx.keep_alive,
            started: cx.started,
            metrics: cx.metrics,
            log,
        })
    }
}

/// Why a forwarded request got no answer from the upstream.
enum Failed {
    /// Connecting, reading or writing timed out.
    Timeout,
    /// The connection closed or broke before a whole head came back.
    Closed,
    /// The answer was not HTTP/1 as this reads it.
    Malformed(&'static str),
}

/// Forwards `job` and relays the answer to `client`, using `out` for what
/// is sent to it. Returns whether the client's connection may go on.
pub async fn run(job: Box<Job>, client: &mut ReadLimit, out: &mut Vec<u8>) -> bool {
    let pool = job.pool.clone();
    let def = &pool.def;
    let mut failed: Vec<Backend> = Vec::new();
    let mut retries = 0;
    let mut upstream_started = None;
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let (conn, backend, head) = loop {
        let mut backend = pool.select(&job.key, &failed);
        if backend.is_none() && failed.is_empty() {
            pool.recheck_when_down().await;
            backend = pool.select(&job.key, &failed);
        }
        let Some(backend) = backend else {
            let (failure, status) = if failed.is_empty() {
                (UpstreamFailure::NoHealthy, 503)
            } else {
                (UpstreamFailure::Connect, 502)
            };
            return fail(&job, client, out, failure, status, "no backend left").await;
        };
        upstream_started.get_or_insert_with(Instant::now);
        if !failed.is_empty() {
            // A real retry: another backend after a failed connect.
            pool.metrics.retries.inc();
        }
        let Some(addr) = backend.addr.as_inet().copied() else {
            failed.push(backend);
            continue;
        };
        let (mut conn, reused) = match pool.idle.take(addr) {
            Some(c) => (c, true),
            None => match connect(addr, def.connect_timeout).await {
                Ok(c) => (c, false),
                Err(why) => {
                    pool.outcome(&backend, false);
                    failed.push(backend);
                    if retries < def.retries {
                        retries += 1;
                        tracing::warn!(
                            upstream = %def.name,
                            backend = %addr,
                            error = why,
                            retry = retries,
                            "upstream connect failed, retrying on another backend"
                        );
                        continue;
                    }
                    let failure = if why == "connect timed out" {
                        UpstreamFailure::Timeout
                    } else {
                        UpstreamFailure::Connect
                    };
                    let status = if failure == UpstreamFailure::Timeout {
                        504
                    } else {
                        502
                    };
                    return fail(&job, client, out, failure, status, why).await;
                }
            },
        };
        let mut exchanged = exchange(&mut conn, &job, &mut buf, out).await;
        if reused && matches!(exchanged, Err(Failed::Closed)) {
            // The backend closed the kept-alive connection as it was
            // taken: nothing reached it, so the request goes again on a
            // new connection.
            buf.clear();
            out.clear();
            exchanged = match connect(addr, def.connect_timeout).await {
                Ok(c) => {
                    conn = c;
                    exchange(&mut conn, &job, &mut buf, out).await
                }
                Err(_) => Err(Failed::Closed),
            };
        }
        match exchanged {
            Ok(head) => break (conn, backend, head),
            Err(why) => {
                pool.outcome(&backend, false);
                let (failure, status, text) = match why {
                    Failed::Timeout => (UpstreamFailure::Timeout, 504, "timed out"),
                    Failed::Closed => (UpstreamFailure::Reset, 502, "closed before answering"),
                    Failed::Malformed(what) => (UpstreamFailure::Reset, 502, what),
                };
                out.clear();
                return fail(&job, client, out, failure, status, text).await;
            }
        }
    };
    let status = head.status;
    pool.metrics.response(status);
    pool.outcome(&backend, status < 500);
    let addr = backend.addr.as_inet().copied();
    let relayed = relay(conn, addr, client, &job, &head, &mut buf, out).await;
    let (keep, bytes) = match relayed {
        Relayed::Done(bytes) => (job.keep_alive, bytes),
        Relayed::UpstreamBroke(bytes) => {
            pool.metrics.error(UpstreamFailure::Reset);
            tracing::warn!(
                upstream = %def.name,
                reason = UpstreamFailure::Reset.as_str(),
                status,
                error = "the upstream's body ended early",
                "upstream request failed"
            );
            (false, bytes)
        }
        Relayed::ClientGone(bytes) => (false, bytes),
    };
    if let Some(t) = upstream_started {
        pool.metrics.duration.observe(t.elapsed().as_secs_f64());
    }
    finish(&job, status, Some(status), bytes);
    keep
}

async fn connect(addr: std::net::SocketAddr, within: Duration) -> Result<TcpStream, &'static str> {
    match pingora::time::timeout(within, TcpStream::connect(addr)).await {
        Ok(Ok(c)) => {
            let _ = c.set_nodelay(true);
            Ok(c)
        }
        Ok(Err(_)) => Err("connect failed"),
        Err(_) => Err("connect timed out"),
    }
}

/// Sends the request and reads the final response head into `out`; `buf`
/// keeps what was read after it.
async fn exchange(
    conn: &mut TcpStream,
    job: &Job,
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<Head, Failed> {
    let def = &job.pool.def;
    // A request head fits the socket's buffer: a timer only when it does
    // not go at once.
    let sent = match conn.try_write(&job.request) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(_) => return Err(Failed::Closed),
    };
    if sent < job.request.len() {
        let rest = &job.request[sent..];
        match pingora::time::timeout(def.write_timeout, conn.write_all(rest)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(Failed::Closed),
            Err(_) => return Err(Failed::Timeout),
        }
    }
    let rw = Rewrite {
        changes: &job.response_headers,
        rate: job.admission.rate.as_ref(),
        request_id: &job.request_id,
        rules_version: job.rules_version,
        keep_alive: job.keep_alive,
        head_request: job.head_request,
    };
    loop {
        if let Some(head) =
            response::read(buf, &rw, out).map_err(|Malformed(m)| Failed::Malformed(m))?
        {
            if (100..200).contains(&head.status) {
                // Informational answers are not passed on.
                buf.drain(..head.len);
                continue;
            }
            buf.drain(..head.len);
            return Ok(head);
        }
        match read_some(conn, buf, def.read_timeout).await {
            Ok(0) => return Err(Failed::Closed),
            Ok(_) => {}
            Err(f) => return Err(f),
        }
    }
}

/// Reads what is there (up to [`READ_CHUNK`]) onto the end of `buf`.
async fn read_some(
    conn: &mut TcpStream,
    buf: &mut Vec<u8>,
    within: Duration,
) -> Result<usize, Failed> {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
    match pingora::time::timeout(within, conn.read_buf(buf)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(_)) => Err(Failed::Closed),
        Err(_) => Err(Failed::Timeout),
    }
}

enum Relayed {
    /// The whole body went to the client.
    Done(u64),
    /// The upstream closed or stalled mid-body: the client's connection
    /// must close too, as its answer is cut short.
    UpstreamBroke(u64),
    /// The client went away or stopped reading.
    ClientGone(u64),
}

/// Sends the head in `out` and the body after it, by its framing.
async fn relay(
    mut conn: TcpStream,
    addr: Option<std::net::SocketAddr>,
    client: &mut ReadLimit,
    job: &Job,
    head: &Head,
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Relayed {
    let read_timeout = job.pool.def.read_timeout;
    let mut sent: u64 = 0;
    let mut chunks = Chunks::default();
    let mut left = match head.body {
        Body::Length(n) => n,
        _ => 0,
    };
    loop {
        // What of `buf` is body, and whether the body ends in it.
        let (take, ended, extra) = match head.body {
            Body::Empty => (0, true, !buf.is_empty()),
            Body::Length(_) => {
                let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                left -= take as u64;
                (take, left == 0, buf.len() > take)
            }
            Body::Chunked => match chunks.feed(buf) {
                Ok(Some(end)) => (end, true, buf.len() > end),
                Ok(None) => (buf.len(), false, false),
                Err(_) => return Relayed::UpstreamBroke(sent),
            },
            Body::UntilClose => (buf.len(), false, false),
        };
        if head.body == Body::UntilClose {
            if take > 0 {
                let _ = std::io::Write::write_fmt(out, format_args!("{take:x}\r\n"));
                out.extend_from_slice(&buf[..take]);
                out.extend_from_slice(b"\r\n");
            }
        } else {
            out.extend_from_slice(&buf[..take]);
        }
        sent += take as u64;
        buf.clear();
        if ended {
            // Back in the pool before the client has the answer, so the
            // client's next request (on any connection) finds it there.
            if let (true, false, Some(addr)) = (head.reusable, extra, addr) {
                job.pool.idle.put(addr, conn);
            }
            return if write(client, out).await {
                Relayed::Done(sent)
            } else {
                Relayed::ClientGone(sent)
            };
        }
        if !write(client, out).await {
            return Relayed::ClientGone(sent);
        }
        match read_some(&mut conn, buf, read_timeout).await {
            Ok(0) if head.body == Body::UntilClose => {
                out.extend_from_slice(b"0\r\n\r\n");
                if !write(client, out).await {
                    return Relayed::ClientGone(sent);
                }
                return Relayed::Done(sent);
            }
            Ok(0) | Err(_) => return Relayed::UpstreamBroke(sent),
            Ok(_) => {}
        }
    }
}

/// Writes and flushes `out` to the client, then empties it.
async fn write(client: &mut ReadLimit, out: &mut Vec<u8>) -> bool {
    if out.is_empty() {
        return true;
    }
    let sent = pingora::time::timeout(SEND_TIMEOUT, async {
        client.write_all(out).await?;
        client.flush().await
    })
    .await;
    out.clear();
    matches!(sent, Ok(Ok(())))
}

/// Answers a request the upstream did not answer, as the pipeline's
/// `fail_to_proxy` does, and closes the client's connection.
async fn fail(
    job: &Job,
    client: &mut ReadLimit,
    out: &mut Vec<u8>,
    failure: UpstreamFailure,
    status: u16,
    why: &str,
) -> bool {
    job.pool.metrics.error(failure);
    tracing::warn!(
        upstream = %job.pool.def.name,
        reason = failure.as_str(),
        status,
        error = why,
        "upstream request failed"
    );
    let body = match status {
        502 => "bad gateway\n",
        503 => "service unavailable: no healthy upstream\n",
        _ => "gateway timeout\n",
    };
    Answer::text(status, body, job.rules_version).encode_h1_changed(
        job.head_request,
        false,
        Some(&job.response_headers),
        out,
    );
    let _ = write(client, out).await;
    finish(job, status, None, 0);
    false
}

/// Counts and logs the request, as the pipeline's `logging` does.
fn finish(job: &Job, status: u16, upstream_status: Option<u16>, bytes: u64) {
    let seconds = job.started.elapsed().as_secs_f64();
    job.metrics.request(Kind::Proxy, status, seconds);
    if let Some(log) = &job.log {
        access_log::write(&Line {
            request_id: &job.request_id,
            client_ip: log.client_ip,
            method: log.method,
            host: &log.host,
            path: &log.path,
            status,
            kind: Kind::Proxy,
            rule: &log.rule,
            upstream: &job.pool.def.name,
            upstream_status: upstream_status.unwrap_or(0),
            seconds,
            bytes,
        });
    }
}
