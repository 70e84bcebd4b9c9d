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

mod answer;
mod head;
mod limits;
mod tls;

pub use head::H1Request;
pub use limits::{Close, Limits};

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

use super::forward;
use super::read_limit::ReadLimit;
use super::respond::Answer;
use head::{ends_head, framing, Framing, MAX_HEADERS};

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

/// What the fast path does with a plain request: the seam between the
/// connection handling here and the gateway's decisions (or, in the load
/// test's responder, a fixed answer).
pub trait FastAnswer: Send + Sync + 'static {
    /// Appends the whole response to `req` to `out` ([`Outcome::Answered`]),
    /// or says who else answers it, having written nothing. `keep_alive`
    /// is false when the connection closes after this answer.
    fn answer(&self, req: &H1Request<'_>, keep_alive: bool, out: &mut Vec<u8>) -> Outcome;
}

impl<T: FastAnswer> FastAnswer for Arc<T> {
    fn answer(&self, req: &H1Request<'_>, keep_alive: bool, out: &mut Vec<u8>) -> Outcome {
        (**self).answer(req, keep_alive, out)
    }
}

/// What became of a plain request.
pub enum Outcome {
    /// Answered into the output buffer.
    Answered,
    /// For the proxy pipeline.
    Pipeline,
    /// To be forwarded upstream by the fast path itself.
    Forward(Box<forward::Job>),
}

/// The listener's app: the fast path, with the proxy pipeline behind it.
pub struct Front<A, P> {
    answers: A,
    proxy: Arc<HttpProxy<P>>,
    enabled: bool,
    limits: Limits,
    closes: Option<[IntCounter; 4]>,
    tls: bool,
    /// Terminates TLS itself on accepted connections (the TLS listener).
    acceptor: Option<tokio_rustls::TlsAcceptor>,
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
            tls: false,
            acceptor: None,
        }
    }

    /// Says its connections are TLS (for `X-Forwarded-Proto` on requests
    /// it forwards).
    pub fn tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// Does the TLS handshake of each accepted connection with `config`
    /// (within `header_timeout`) before reading its requests.
    pub fn terminate_tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = true;
        self.acceptor = Some(tokio_rustls::TlsAcceptor::from(config));
        self
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

/// What to do with the bytes read so far on a connection.
enum Step {
    /// A request was answered into the output buffer, using `used` input
    /// bytes; `close` when the connection ends after it.
    Answered { used: usize, close: bool },
    /// The head is not complete yet.
    NeedMore,
    /// Pingora must take this request, whose head is `head` bytes long.
    HandOver { head: usize, framing: Framing },
    /// The fast path forwards this request itself; it used `used` bytes.
    Forward {
        used: usize,
        close: bool,
        job: Box<forward::Job>,
    },
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
        let stream = match &self.acceptor {
            Some(acceptor) => tls::accept(acceptor, stream, self.limits.header_timeout).await?,
            None => stream,
        };
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
                Step::Forward { used, close, job } => {
                    input.advance(used);
                    first = false;
                    // Answers to requests before it go first.
                    send(&mut conn, &mut output).await?;
                    let keep = Box::pin(forward::run(job, &mut conn, &mut output)).await;
                    if close || !keep {
                        conn.shutdown().await.ok();
                        return None;
                    }
                    deadline = self.limits.next_deadline(&input);
                }
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
                        // one mid-request gets to finish it, and so does a
                        // connection just accepted: its client has sent (or
                        // is sending) a request, and closing under it would
                        // reset it during a binary upgrade.
                        _ = &mut shutting_down, if idle && !first => return None,
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
            H1Request::plain(&req, peer, self.tls)
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
        match self.answers.answer(&plain, !close, output) {
            Outcome::Answered => Step::Answered { used, close },
            Outcome::Forward(job) => Step::Forward { used, close, job },
            // A plain request: no body, no upgrade, so it ends at `used`.
            Outcome::Pipeline => Step::HandOver {
                head: used,
                framing: Framing::Length(0),
            },
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

/// Gives back buffers a busy moment grew, once the connection is idle.
fn shrink(input: &mut BytesMut, output: &mut Vec<u8>) {
    if input.capacity() > SHRINK_ABOVE {
        *input = BytesMut::with_capacity(IDLE_BUFFER);
    }
    if output.capacity() > SHRINK_ABOVE {
        *output = Vec::new();
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

#[cfg(test)]
mod tests {
    use super::*;

    struct NoAnswers;
    impl FastAnswer for NoAnswers {
        fn answer(&self, _: &H1Request<'_>, _: bool, _: &mut Vec<u8>) -> Outcome {
            Outcome::Pipeline
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

    struct Ok200;
    impl FastAnswer for Ok200 {
        fn answer(&self, _: &H1Request<'_>, _: bool, out: &mut Vec<u8>) -> Outcome {
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            Outcome::Answered
        }
    }

    /// During a binary upgrade the old process stops at once; a connection
    /// it had just accepted still carries a client's request, which must be
    /// answered, not reset.
    #[tokio::test]
    async fn a_connection_accepted_just_before_shutdown_is_answered() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let conf = Arc::new(pingora::server::configuration::ServerConf::default());
        let proxy = pingora::proxy::http_proxy(&conf, NoUpstream);
        let front = Arc::new(Front::new(Ok200, proxy, true, Limits::default(), None));
        let (mut client, server) = tokio::io::duplex(4096);
        let (tx, shutdown) = tokio::sync::watch::channel(false);
        let serving = tokio::spawn(async move {
            front.process_new(Box::new(server), &shutdown).await;
        });
        tokio::task::yield_now().await;
        tx.send(true).unwrap();
        tokio::task::yield_now().await;
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert!(got.ends_with(b"ok"), "{:?}", String::from_utf8_lossy(&got));
        serving.await.unwrap();
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
}
