//! The HTTP/1 fast path in front of the Pingora proxy pipeline.
//!
//! Link redirects are the gateway's hottest traffic and need nothing of the
//! proxy pipeline (no upstream, no body, no per-request context), yet going
//! through it costs more than the rule lookup itself. So every HTTP/1
//! connection is read here first: a complete, plain `GET`/`HEAD` head is
//! parsed in place with `httparse`, decided with the same [`Decider`] as the
//! pipeline, and answered from a reused buffer with the same headers
//! Pingora would write. Anything else — a route, a body, an upgrade,
//! HTTP/1.0, an odd target, a malformed or oversized head — is handed to
//! Pingora's `HttpProxy` with the bytes already read
//! (`set_pipelined_prefix`), so it sees the request exactly as if it had
//! read it itself, and the connection comes back here when Pingora is done
//! with it. HTTP/2 (ALPN) goes to Pingora untouched.

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::proxy::{HttpProxy, ProxyHttp};
use pingora::server::ShutdownWatch;
use prometheus::{IntCounter, IntCounterVec};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::access_log::{self, Line};
use crate::decide::{self, Decider, RequestView};
use crate::read_limit::ReadLimit;
use crate::respond::Answer;

/// Connections being served: a graceful stop ends as soon as this is zero
/// rather than after the whole grace period (see `server::exit_when_drained`).
pub static CONNECTIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts one connection in [`CONNECTIONS`] for as long as it lives.
struct Serving;

impl Serving {
    fn new() -> Serving {
        CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Serving
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        CONNECTIONS.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Headers parsed in place on the fast path; a head with more is parsed
/// again with room for [`MAX_HEADERS_SLOW`] to find where it ends.
const MAX_HEADERS: usize = 48;
/// Headers a head may have at all (Pingora's own limit is higher; a head
/// with more is Pingora's to refuse).
const MAX_HEADERS_SLOW: usize = 256;
/// Answers to pipelined requests are sent once this much is queued, or
/// when the buffered requests run out.
const FLUSH_AT: usize = 64 * 1024;
/// What an idle connection's input buffer starts at, and the size above
/// which a buffer is given back once the connection goes idle, so
/// thousands of idle keep-alive connections cost little.
const IDLE_BUFFER: usize = 2 * 1024;
const SHRINK_ABOVE: usize = 16 * 1024;

/// How long a client may take to accept an answer (nginx's
/// `send_timeout`).
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long, and for how many bytes, a refused connection is read and
/// drained before it is closed.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// Bounds on what a client may make a connection hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a whole request head: from the connection's start for
    /// the first request, from its first byte for later ones.
    pub header_timeout: Duration,
    /// Time a kept-alive connection may wait for its next request.
    pub keepalive_timeout: Duration,
    /// Largest request head (request line and headers together): `431`.
    pub max_head: usize,
    /// Longest line of a head: `414` for the request line, `431` for a
    /// header.
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(60),
            max_head: 64 * 1024,
            max_line: 8 * 1024,
        }
    }
}

/// Why the front closed a connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The head did not arrive within `header_timeout`.
    HeaderTimeout,
    /// No next request within `keepalive_timeout`.
    KeepaliveTimeout,
    /// The head grew past `max_head`, or a header line past `max_line`.
    HeadTooLarge,
    /// The request line grew past `max_line`.
    UriTooLong,
}

impl Close {
    /// Every reason, in label order.
    pub const ALL: [Close; 4] = [
        Close::HeaderTimeout,
        Close::KeepaliveTimeout,
        Close::HeadTooLarge,
        Close::UriTooLong,
    ];

    /// Label value of `gateway_connections_closed_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Close::HeaderTimeout => "header_timeout",
            Close::KeepaliveTimeout => "keepalive_timeout",
            Close::HeadTooLarge => "head_too_large",
            Close::UriTooLong => "uri_too_long",
        }
    }

    /// The answer sent before closing, if any (a timed-out client gets
    /// none, as from nginx).
    fn answer(self) -> Option<(u16, &'static str)> {
        match self {
            Close::HeaderTimeout | Close::KeepaliveTimeout => None,
            Close::HeadTooLarge => Some((431, "request header fields too large\n")),
            Close::UriTooLong => Some((414, "uri too long\n")),
        }
    }
}

/// What the fast path does with a plain request: the seam between the
/// connection handling here and the gateway's decisions (or, in the load
/// test's responder, a fixed answer).
pub trait FastAnswer: Send + Sync + 'static {
    /// Appends the whole response to `req` to `out` and returns `true`, or
    /// returns `false` (having written nothing) to hand the request to the
    /// proxy pipeline. `keep_alive` is false when the connection closes
    /// after this answer.
    fn answer(&self, req: &H1Request<'_>, keep_alive: bool, out: &mut Vec<u8>) -> bool;
}

impl<T: FastAnswer> FastAnswer for Arc<T> {
    fn answer(&self, req: &H1Request<'_>, keep_alive: bool, out: &mut Vec<u8>) -> bool {
        (**self).answer(req, keep_alive, out)
    }
}

/// The listener's app: the fast path, with the proxy pipeline behind it.
pub struct Front<A, P> {
    answers: A,
    proxy: Arc<HttpProxy<P>>,
    enabled: bool,
    limits: Limits,
    closes: Option<[IntCounter; 4]>,
}

impl<A, P> Front<A, P> {
    /// A front answering with `answers` and handing the rest to `proxy`.
    /// With `enabled` false every request goes to `proxy`, but heads are
    /// still read here, under `limits`. `closes` (labelled `reason`)
    /// counts the connections the front closes itself.
    pub fn new(
        answers: A,
        proxy: HttpProxy<P>,
        enabled: bool,
        limits: Limits,
        closes: Option<&IntCounterVec>,
    ) -> Self {
        Front {
            answers,
            proxy: Arc::new(proxy),
            enabled,
            limits,
            closes: closes.map(|v| Close::ALL.map(|c| v.with_label_values(&[c.as_str()]))),
        }
    }

    fn count(&self, why: Close) {
        if let Some(c) = &self.closes {
            c[why as usize].inc();
        }
    }

    /// Answers a head over a limit (after what is queued) and closes.
    async fn refuse(
        &self,
        why: Close,
        mut conn: Box<ReadLimit>,
        mut output: Vec<u8>,
    ) -> Option<Stream> {
        self.count(why);
        if let Some((status, body)) = why.answer() {
            Answer::text(status, body, None).encode_h1(false, false, &mut output);
        }
        let _ = send(&mut conn, &mut output).await;
        let _ = pingora::time::timeout(LINGER, conn.shutdown()).await;
        // Closing with unread input would reset the connection and could
        // destroy the answer before the client reads it: read and drop
        // what is still coming for a moment first (nginx's lingering close).
        // On the heap: an array here would make every connection's future
        // larger for the rare connection that gets here.
        let mut sink = vec![0u8; 4096];
        let linger = async {
            let mut left = LINGER_BYTES;
            while left > 0 {
                match conn.read(&mut sink).await {
                    Ok(n) if n > 0 => left = left.saturating_sub(n),
                    _ => break,
                }
            }
        };
        let _ = pingora::time::timeout(LINGER, linger).await;
        None
    }
}

/// How a request handed to Pingora is framed, as far as its head says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// It ends this many bytes after its head (0: with its head).
    Length(u64),
    /// Chunked, an upgrade, or framing Pingora will refuse: its end is
    /// Pingora's to find.
    Unknown,
}

/// What to do with the bytes read so far on a connection.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// A request was answered into the output buffer, using `used` input
    /// bytes; `close` when the connection ends after it.
    Answered { used: usize, close: bool },
    /// The head is not complete yet.
    NeedMore,
    /// Pingora must take this request, whose head is `head` bytes long.
    HandOver { head: usize, framing: Framing },
    /// Not HTTP/1 as Pingora reads it: Pingora gets all of it and answers
    /// `400`.
    Malformed,
    /// The head breaks a limit: answer (or not) and close.
    Refuse(Close),
}

#[async_trait]
impl<A, P> ServerApp for Front<A, P>
where
    A: FastAnswer,
    P: ProxyHttp + Send + Sync + 'static,
    P::CTX: Send + Sync,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let _serving = Serving::new();
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return self.proxy.process_new(stream, shutdown).await;
        }
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let mut conn = Box::new(ReadLimit::new(stream));
        let mut idle_shutdown = shutdown.clone();
        // One waiter for the connection's whole life, not one per read.
        let shutting_down = idle_shutdown.changed();
        tokio::pin!(shutting_down);
        let mut input = BytesMut::with_capacity(IDLE_BUFFER);
        let mut output = Vec::new();
        // The first request's head must arrive within `header_timeout` of
        // the accept; later ones within it of their first byte.
        let mut deadline = Instant::now() + self.limits.header_timeout;
        let mut first = true;
        // How much of `input` is known to hold no complete head: a head
        // sent in many pieces is parsed again only once its end arrives,
        // not after every read (which made a 60 KB head cost 450 KB of
        // parsing).
        let mut checked: usize = 0;
        loop {
            let step = if checked > 0 && !ends_head(&input[checked.saturating_sub(2)..]) {
                Step::NeedMore
            } else {
                checked = 0;
                self.answer(&input, peer, *shutdown.borrow(), &mut output)
            };
            match step {
                Step::Answered { used, close } => {
                    input.advance(used);
                    first = false;
                    if close {
                        let _ = send(&mut conn, &mut output).await;
                        conn.shutdown().await.ok();
                        return None;
                    }
                    if output.len() >= FLUSH_AT {
                        send(&mut conn, &mut output).await?;
                    }
                    deadline = self.limits.next_deadline(&input);
                }
                Step::Refuse(why) => return Box::pin(self.refuse(why, conn, output)).await,
                Step::NeedMore => {
                    // Still a head: all that was read is part of it.
                    if let Some(why) = self.limits.oversized(&input, checked) {
                        return Box::pin(self.refuse(why, conn, output)).await;
                    }
                    checked = input.len();
                    send(&mut conn, &mut output).await?;
                    let idle = input.is_empty();
                    if idle {
                        shrink(&mut input, &mut output);
                    }
                    if input.capacity() - input.len() < 1024 {
                        input.reserve(4096);
                    }
                    let wait = deadline.saturating_duration_since(Instant::now());
                    let read = tokio::select! {
                        biased;
                        r = pingora::time::timeout(wait, conn.read_buf(&mut input)) => r,
                        // An idle keep-alive connection closes at shutdown;
                        // one mid-request gets to finish it.
                        _ = &mut shutting_down, if idle => return None,
                    };
                    match read {
                        Ok(Ok(n)) if n > 0 => {
                            if idle && !first {
                                deadline = Instant::now() + self.limits.header_timeout;
                            }
                        }
                        Err(_) => {
                            self.count(if idle && !first {
                                Close::KeepaliveTimeout
                            } else {
                                Close::HeaderTimeout
                            });
                            return None;
                        }
                        // Closed or failed.
                        _ => return None,
                    }
                }
                Step::HandOver { .. } | Step::Malformed => {
                    send(&mut conn, &mut output).await?;
                    let (prefix, framing) = match step {
                        // Exactly this request: later bytes stay here (or
                        // in the socket) for when the connection comes back.
                        Step::HandOver {
                            head,
                            framing: Framing::Length(body),
                        } => {
                            let here = (input.len() - head)
                                .min(usize::try_from(body).unwrap_or(usize::MAX));
                            (
                                input.split_to(head + here),
                                Framing::Length(body - here as u64),
                            )
                        }
                        _ => (input.split(), Framing::Unknown),
                    };
                    conn.limit(match framing {
                        Framing::Length(rest) => Some(rest),
                        Framing::Unknown => None,
                    });
                    // Pipelining stays off: bytes Pingora reads past a
                    // request it frames itself (chunked, an upgrade) would
                    // be kept in settings the front cannot read back, so
                    // such a connection closes instead, and every
                    // connection that comes back is under the front's
                    // limits again.
                    let mut session = ServerSession::new_http1(conn);
                    if !prefix.is_empty() {
                        session.set_pipelined_prefix(prefix);
                    }
                    // Pingora answers it (and 400s a malformed head); a
                    // connection it keeps alive comes back here.
                    let (back, _) = self
                        .proxy
                        .process_new_http(session, shutdown)
                        .await?
                        .consume();
                    conn = back.into_any().downcast::<ReadLimit>().ok()?;
                    // Pingora drains a body before it gives a connection
                    // back; were any of a counted body left, where the next
                    // request starts would be a guess.
                    if matches!(framing, Framing::Length(_)) && conn.left() != Some(0) {
                        return None;
                    }
                    conn.limit(None);
                    first = false;
                    deadline = self.limits.next_deadline(&input);
                }
            }
        }
    }

    async fn cleanup(&self) {
        self.proxy.cleanup().await;
    }
}
impl<A: FastAnswer, P> Front<A, P> {
    /// Answers the first request in `input` into `output` when the fast
    /// path can, or says what else to do with it.
    fn answer(
        &self,
        input: &[u8],
        peer: Option<IpAddr>,
        shutting_down: bool,
        output: &mut Vec<u8>,
    ) -> Step {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let used = match req.parse(input) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Step::NeedMore,
            Err(httparse::Error::TooManyHeaders) => return slow_step(input, &self.limits),
            Err(_) => return Step::Malformed,
        };
        if let Some(why) = self.limits.oversized(&input[..used], 0) {
            return Step::Refuse(why);
        }
        let plain = if self.enabled {
            H1Request::plain(&req, peer)
        } else {
            None
        };
        let Some(plain) = plain else {
            return Step::HandOver {
                head: used,
                framing: framing(&req),
            };
        };
        let close = plain.close || shutting_down;
        if self.answers.answer(&plain, !close, output) {
            Step::Answered { used, close }
        } else {
            // A plain request: no body, no upgrade, so it ends at `used`.
            Step::HandOver {
                head: used,
                framing: Framing::Length(0),
            }
        }
    }
}

/// [`Front::answer`] for a head with more headers than the fast path
/// parses in place: only where it ends and how it is framed matter.
fn slow_step(input: &[u8], limits: &Limits) -> Step {
    let mut headers = vec![httparse::EMPTY_HEADER; MAX_HEADERS_SLOW];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(input) {
        Ok(httparse::Status::Complete(n)) => match limits.oversized(&input[..n], 0) {
            Some(why) => Step::Refuse(why),
            None => Step::HandOver {
                head: n,
                framing: framing(&req),
            },
        },
        Ok(httparse::Status::Partial) => Step::NeedMore,
        Err(_) => Step::Malformed,
    }
}

impl Limits {
    /// When the wait for the next request ends, once one is done: an idle
    /// connection gets `keepalive_timeout`; one holding the start of the
    /// next head (pipelined) gets `header_timeout` for it.
    fn next_deadline(&self, input: &[u8]) -> Instant {
        Instant::now()
            + if input.is_empty() {
                self.keepalive_timeout
            } else {
                self.header_timeout
            }
    }

    /// Whether a head (complete, or all that was read of one) breaks a
    /// limit. Lines that ended before `from` were checked by an earlier
    /// call, so a head arriving in many pieces is not scanned again and
    /// again.
    fn oversized(&self, head: &[u8], from: usize) -> Option<Close> {
        if head.len() <= self.max_line {
            return None;
        }
        let first_line = memchr::memchr(b'\n', head).unwrap_or(head.len());
        if first_line > self.max_line {
            return Some(Close::UriTooLong);
        }
        if head.len() > self.max_head {
            return Some(Close::HeadTooLarge);
        }
        let checked = from.min(head.len());
        let mut start = memchr::memrchr(b'\n', &head[..checked])
            .unwrap_or(0)
            .max(first_line);
        while start < head.len() {
            let next =
                memchr::memchr(b'\n', &head[start + 1..]).map_or(head.len(), |i| start + 1 + i);
            if next - start > self.max_line {
                return Some(Close::HeadTooLarge);
            }
            start = next;
        }
        None
    }
}

/// Whether `bytes` hold the blank line that ends a head (CRLF or bare LF
/// line ends, as httparse takes them).
fn ends_head(bytes: &[u8]) -> bool {
    memchr::memmem::find(bytes, b"\n\r\n").is_some()
        || memchr::memmem::find(bytes, b"\n\n").is_some()
}

/// How a request Pingora takes is framed (RFC 9112 §6.3): by a
/// `Content-Length` (several identical values count as one, RFC 9110
/// §8.6), or by nothing at all, which ends it with its head.
fn framing(req: &httparse::Request<'_, '_>) -> Framing {
    if req.method == Some("CONNECT") {
        return Framing::Unknown;
    }
    let mut length: Option<u64> = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("transfer-encoding") || name.eq_ignore_ascii_case("upgrade") {
            return Framing::Unknown;
        }
        if name.eq_ignore_ascii_case("content-length") {
            let Ok(text) = std::str::from_utf8(h.value) else {
                return Framing::Unknown;
            };
            for value in text.split(',') {
                let value = value.trim_matches([' ', '\t']);
                let parsed = (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| value.parse::<u64>().ok())
                    .flatten();
                match (parsed, length) {
                    (None, _) => return Framing::Unknown,
                    (Some(n), Some(seen)) if n != seen => return Framing::Unknown,
                    (Some(n), _) => length = Some(n),
                }
            }
        }
    }
    Framing::Length(length.unwrap_or(0))
}

/// Gives back buffers a busy moment grew, once the connection is idle.
fn shrink(input: &mut BytesMut, output: &mut Vec<u8>) {
    if input.capacity() > SHRINK_ABOVE {
        *input = BytesMut::with_capacity(IDLE_BUFFER);
    }
    if output.capacity() > SHRINK_ABOVE {
        *output = Vec::new();
    }
}

/// The gateway's fast answers: everything the rules answer themselves.
impl FastAnswer for Decider {
    fn answer(&self, req: &H1Request<'_>, keep_alive: bool, out: &mut Vec<u8>) -> bool {
        let started = Instant::now();
        let snap = self.live.load();
        let decided = self.decide(&snap, req);
        let (kind, client_ip) = (decided.kind, decided.client_ip);
        let (slot, rule) = (decided.decision.slot(), decided.decision.rule());
        let Ok(answer) = Answer::of(decided.decision, self.announce(&snap)) else {
            // A route: the pipeline decides it again and counts it then.
            return false;
        };
        decide::count_hit(&snap, slot);
        let logged = self.access.sampled();
        let head = req.method == "HEAD";
        answer.encode_h1(head, keep_alive, out);
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.request(kind, answer.status, seconds);
        if logged {
            access_log::write(&Line {
                request_id: req.header("x-request-id").unwrap_or(""),
                client_ip,
                method: req.method,
                host: req.host,
                path: req.path,
                status: answer.status,
                kind,
                rule: rule.unwrap_or(""),
                upstream: "",
                upstream_status: 0,
                seconds,
                bytes: if head { 0 } else { answer.body.len() as u64 },
            });
        }
        true
    }
}

/// Writes and flushes what is queued; `None` when the client is gone or
/// has not taken it within `SEND_TIMEOUT` (a client that pipelines and
/// never reads must not hold the connection).
async fn send(stream: &mut ReadLimit, output: &mut Vec<u8>) -> Option<()> {
    if output.is_empty() {
        return Some(());
    }
    let sent = pingora::time::timeout(SEND_TIMEOUT, async {
        stream.write_all(output).await?;
        stream.flush().await
    })
    .await;
    output.clear();
    sent.ok()?.ok()
}

/// A parsed HTTP/1.1 head the fast path may answer.
pub struct H1Request<'b> {
    method: &'b str,
    path: &'b str,
    query: Option<&'b str>,
    host: &'b str,
    headers: &'b [httparse::Header<'b>],
    peer: Option<IpAddr>,
    /// The client asked to close after this answer.
    close: bool,
}

impl<'b> H1Request<'b> {
    /// The request when it is a plain HTTP/1.1 `GET` or `HEAD` with no
    /// body, no upgrade, a `Host` and an origin-form target made only of
    /// bytes Pingora's URI parser takes as they are; `None` sends it to
    /// Pingora.
    fn plain(req: &'b httparse::Request<'_, 'b>, peer: Option<IpAddr>) -> Option<Self> {
        let method = req.method?;
        if req.version != Some(1) || !matches!(method, "GET" | "HEAD") {
            return None;
        }
        let target = req.path?;
        if !target.starts_with('/') || !target.bytes().all(plain_target_byte) {
            return None;
        }
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let headers: &'b [httparse::Header<'b>] = req.headers;
        let mut host = None;
        let mut close = false;
        let mut seen_connection = false;
        for h in headers {
            let name = h.name;
            if name.eq_ignore_ascii_case("host") {
                // Pingora refuses userinfo in Host with its own 400.
                if host.is_some() || h.value.contains(&b'@') {
                    return None;
                }
                host = Some(visible_ascii(h.value)?);
            } else if name.eq_ignore_ascii_case("connection") {
                // Only the first, as Pingora reads it.
                if seen_connection {
                    continue;
                }
                seen_connection = true;
                for token in visible_ascii(h.value)?.split(',') {
                    let token = token.trim();
                    if token.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case("upgrade") {
                        return None;
                    }
                }
            } else if name.eq_ignore_ascii_case("content-length") {
                if h.value != b"0" {
                    return None;
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                || name.eq_ignore_ascii_case("upgrade")
                || name.eq_ignore_ascii_case("expect")
            {
                return None;
            }
        }
        Some(H1Request {
            method,
            path,
            query,
            host: host?,
            headers,
            peer,
            close,
        })
    }
}

impl RequestView for H1Request<'_> {
    fn method(&self) -> &str {
        self.method
    }
    fn path(&self) -> &str {
        self.path
    }
    fn query(&self) -> Option<&str> {
        self.query
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| visible_ascii(h.value))
    }
    fn header_values(&self, name: &str) -> impl DoubleEndedIterator<Item = &[u8]> {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
    fn host(&self) -> &str {
        self.host
    }
    fn peer_ip(&self) -> Option<IpAddr> {
        self.peer
    }
}

/// A header value as `http::HeaderValue::to_str` would give it: only
/// visible ASCII, spaces and tabs.
fn visible_ascii(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

/// Bytes of a request target the `http` crate keeps as they are in both
/// the path and the query. The rest (`#`, `<`, `>`, `"`, `` ` ``, `{`,
/// `}`, controls, non-ASCII) go to Pingora so an odd target gets exactly
/// the answer it got before the fast path existed.
fn plain_target_byte(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && !matches!(b, b'#' | b'<' | b'>' | b'"' | b'`' | b'{' | b'}')
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoAnswers;
    impl FastAnswer for NoAnswers {
        fn answer(&self, _: &H1Request<'_>, _: bool, _: &mut Vec<u8>) -> bool {
            false
        }
    }

    struct NoUpstream;
    #[async_trait]
    impl ProxyHttp for NoUpstream {
        type CTX = ();
        fn new_ctx(&self) {}
        async fn upstream_peer(
            &self,
            _: &mut pingora::proxy::Session,
            _: &mut (),
        ) -> pingora::Result<Box<pingora::upstreams::peer::HttpPeer>> {
            pingora::Error::e_explain(pingora::ErrorType::InternalError, "none")
        }
    }

    /// Every open connection holds its task's state for as long as it is
    /// open: what an idle keep-alive connection costs is mostly this.
    #[test]
    fn a_connections_state_stays_small() {
        let conf = Arc::new(pingora::server::configuration::ServerConf::default());
        let proxy = pingora::proxy::http_proxy(&conf, NoUpstream);
        let front = Arc::new(Front::new(NoAnswers, proxy, true, Limits::default(), None));
        let (_client, server) = tokio::io::duplex(64);
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        let fut = front.process_new(Box::new(server), &shutdown);
        let size = std::mem::size_of_val(&*fut);
        eprintln!("a connection's future: {size} bytes");
        assert!(size < 2048, "{size} bytes");
    }

    fn plain(raw: &str) -> Option<(String, Option<String>, String, bool)> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let n = req.parse(raw.as_bytes()).unwrap().unwrap();
        assert_eq!(n, raw.len());
        H1Request::plain(&req, None).map(|r| {
            (
                r.path.to_string(),
                r.query.map(str::to_string),
                r.host.to_string(),
                r.close,
            )
        })
    }

    #[test]
    fn plain_get_and_head_are_taken_with_their_target_split() {
        assert_eq!(
            plain("GET /l/abc?x=1&y HTTP/1.1\r\nHost: go.example\r\n\r\n"),
            Some((
                "/l/abc".into(),
                Some("x=1&y".into()),
                "go.example".into(),
                false
            ))
        );
        assert_eq!(
            plain("HEAD / HTTP/1.1\r\nhost: a\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n"),
            Some(("/".into(), None, "a".into(), true))
        );
    }

    #[test]
    fn everything_unusual_goes_to_pingora() {
        for raw in [
            "POST /l HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n",
            "get /l HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /l HTTP/1.0\r\nHost: a\r\n\r\n",
            "GET /l HTTP/1.1\r\n\r\n",
            "GET /l HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET http://a/l HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /l#frag HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /l?q=<x> HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /l HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
            "GET /l HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /l HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "GET /l HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
            "GET /l HTTP/1.1\r\nHost: user@a\r\n\r\n",
        ] {
            assert_eq!(plain(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn header_values_are_read_as_http_does() {
        assert_eq!(
            visible_ascii(b"Mozilla/5.0 (X11)\tx"),
            Some("Mozilla/5.0 (X11)\tx")
        );
        assert_eq!(visible_ascii(b"caf\xc3\xa9"), None);
        assert_eq!(visible_ascii(b"a\x7fb"), None);
    }
}
