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
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::access_log::{self, Line};
use crate::decide::{self, Decider, RequestView};
use crate::respond::Answer;

/// Heads larger than this go to Pingora, which has its own limits and
/// errors for them.
const MAX_HEAD: usize = 16 * 1024;
/// Headers parsed in place; a request with more goes to Pingora.
const MAX_HEADERS: usize = 48;
/// How long an idle or half-sent connection is kept (Pingora's own first
/// request waits 60 s too; later ones on a kept-alive connection wait
/// without limit, which the fast path does not copy).
const IDLE: Duration = Duration::from_secs(60);
/// Answers to pipelined requests are sent once this much is queued, or
/// when the buffered requests run out.
const FLUSH_AT: usize = 64 * 1024;

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
}

impl<A, P> Front<A, P> {
    /// A front answering with `answers` and handing the rest to `proxy`;
    /// with `enabled` false every connection goes straight to `proxy`.
    pub fn new(answers: A, proxy: HttpProxy<P>, enabled: bool) -> Self {
        Front {
            answers,
            proxy: Arc::new(proxy),
            enabled,
        }
    }
}

/// What to do with the bytes read so far on a connection (with, in
/// `Front::answer`'s result, how many of them the request used: 0 when
/// that is not known).
enum Step {
    /// A request was answered into the output buffer; `close` when the
    /// connection ends after it.
    Answered { close: bool },
    /// The head is not complete yet.
    NeedMore,
    /// Pingora must take this request.
    HandOver,
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
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if !self.enabled || matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return self.proxy.process_new(stream, shutdown).await;
        }
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let mut idle_shutdown = shutdown.clone();
        // One waiter for the connection's whole life, not one per read.
        let shutting_down = idle_shutdown.changed();
        tokio::pin!(shutting_down);
        let mut input = BytesMut::with_capacity(4096);
        let mut output = Vec::with_capacity(1024);
        loop {
            let step = self.answer(&input, peer, *shutdown.borrow(), &mut output);
            match step {
                (Step::Answered { close }, used) => {
                    input.advance(used);
                    if close {
                        let _ = send(&mut stream, &mut output).await;
                        stream.shutdown().await.ok();
                        return None;
                    }
                    if output.len() >= FLUSH_AT {
                        send(&mut stream, &mut output).await?;
                    }
                }
                (Step::NeedMore, _) if input.len() < MAX_HEAD => {
                    send(&mut stream, &mut output).await?;
                    if input.capacity() - input.len() < 1024 {
                        input.reserve(4096);
                    }
                    let idle = input.is_empty();
                    let read = tokio::select! {
                        biased;
                        r = pingora::time::timeout(IDLE, stream.read_buf(&mut input)) => r,
                        // An idle keep-alive connection closes at shutdown;
                        // one mid-request gets to finish it.
                        _ = &mut shutting_down, if idle => return None,
                    };
                    match read {
                        Ok(Ok(n)) if n > 0 => {}
                        // Closed, failed, or idle too long.
                        _ => return None,
                    }
                }
                (Step::NeedMore | Step::HandOver, head) => {
                    send(&mut stream, &mut output).await?;
                    let mut session = ServerSession::new_http1(stream);
                    session.set_keepalive((!*shutdown.borrow()).then_some(IDLE.as_secs()));
                    // A request known to end with its head gets only its
                    // head: Pingora would take pipelined bytes after it as
                    // a reason to close, and they stay here for when the
                    // connection comes back. Anything else may have a body
                    // (or become a tunnel) and gets all that was read.
                    let prefix = if head > 0 {
                        input.split_to(head)
                    } else {
                        input.split()
                    };
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
                    stream = back;
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
    /// path can; returns what happened and how many input bytes it used.
    fn answer(
        &self,
        input: &[u8],
        peer: Option<IpAddr>,
        shutting_down: bool,
        output: &mut Vec<u8>,
    ) -> (Step, usize) {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let used = match req.parse(input) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return (Step::NeedMore, 0),
            Err(_) => return (Step::HandOver, 0),
        };
        let Some(req) = H1Request::plain(&req, peer) else {
            return (Step::HandOver, 0);
        };
        let close = req.close || shutting_down;
        if self.answers.answer(&req, !close, output) {
            (Step::Answered { close }, used)
        } else {
            // A plain request: no body, no upgrade, so it ends at `used`.
            (Step::HandOver, used)
        }
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

/// Writes and flushes what is queued; `None` when the client is gone.
async fn send(stream: &mut Stream, output: &mut Vec<u8>) -> Option<()> {
    if output.is_empty() {
        return Some(());
    }
    let sent = async {
        stream.write_all(output).await?;
        stream.flush().await
    }
    .await;
    output.clear();
    sent.ok()
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
