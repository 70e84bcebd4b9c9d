//! A minimal HTTP/1.1 keep-alive client over raw tokio TCP (or rustls, see
//! [`crate::tls`]): it writes the request bytes it is given and parses only
//! what a load test needs (the status, `Content-Length` or chunked framing,
//! `Connection: close`), so the client costs as little CPU as possible next
//! to the server under test.

use bytes::{Buf, BytesMut};
use serde::Serialize;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::tls::TlsClient;

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The connection could not be established (refused, unreachable, or
    /// the connect itself timed out).
    Connect,
    /// Connected, but no complete answer within the request timeout.
    Timeout,
    /// An answer, but not with the status the scenario expects.
    UnexpectedStatus,
    /// The connection broke or the answer was not valid HTTP/1.1.
    Io,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 4] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::UnexpectedStatus,
        ErrorKind::Io,
    ];

    /// Label in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::UnexpectedStatus => "unexpected_status",
            ErrorKind::Io => "io",
        }
    }
}

/// A failed exchange.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Its kind.
    pub kind: ErrorKind,
    /// What happened, for the report.
    pub detail: String,
}

impl Failure {
    fn new(kind: ErrorKind, detail: impl Into<String>) -> Failure {
        Failure {
            kind,
            detail: detail.into(),
        }
    }
}

/// A parsed answer.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body length in bytes.
    pub body_len: usize,
    /// The body, when the connection keeps bodies (admin calls).
    pub body: Vec<u8>,
}

/// How the body of a response is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (1xx, 204, 304).
    Empty,
    /// `Content-Length`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Read until the server closes.
    UntilClose,
}

/// A parsed response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// Bytes of the head, blank line included.
    pub len: usize,
    /// Body framing.
    pub framing: Framing,
    /// `Connection: close` (or HTTP/1.0 without keep-alive).
    pub close: bool,
}

/// Parses a response head from the start of `buf`: `Ok(None)` while it is
/// incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        if buf.len() > 64 * 1024 {
            return Err("response head larger than 64 KiB".into());
        }
        return Ok(None);
    };
    let head = &buf[..end];
    let mut lines = head.split(|&b| b == b'\n');
    let status_line = lines.next().unwrap_or_default();
    let http10 = status_line.starts_with(b"HTTP/1.0 ");
    if !(status_line.starts_with(b"HTTP/1.1 ") || http10) || status_line.len() < 12 {
        return Err(format!(
            "bad status line {:?}",
            String::from_utf8_lossy(status_line)
        ));
    }
    let digits = &status_line[9..12];
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err("bad status code".into());
    }
    let status = digits
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    let mut length = None;
    let mut chunked = false;
    let mut close = http10;
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            let text = std::str::from_utf8(value).map_err(|_| "bad content-length")?;
            length = Some(
                text.parse::<usize>()
                    .map_err(|_| format!("bad content-length {text:?}"))?,
            );
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = contains_token(value, b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            if contains_token(value, b"close") {
                close = true;
            } else if contains_token(value, b"keep-alive") {
                close = false;
            }
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    Ok(Some(Head {
        status,
        len: end + 4,
        framing,
        close: close || framing == Framing::UntilClose,
    }))
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token))
}

/// Bytes of a complete chunked body at the start of `buf` (trailers
/// included), or `Ok(None)` while incomplete.
pub fn chunked_len(buf: &[u8]) -> Result<Option<usize>, String> {
    let mut pos = 0;
    loop {
        let Some(eol) = memchr::memmem::find(&buf[pos..], b"\r\n") else {
            return Ok(None);
        };
        let line = &buf[pos..pos + eol];
        let size_text = line.split(|&b| b == b';').next().unwrap_or_default();
        let size_text = std::str::from_utf8(trim(size_text)).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        pos += eol + 2;
        if size == 0 {
            // Trailers end with an empty line.
            if buf.len() >= pos + 2 && &buf[pos..pos + 2] == b"\r\n" {
                return Ok(Some(pos + 2));
            }
            return Ok(memchr::memmem::find(&buf[pos..], b"\r\n\r\n").map(|e| pos + e + 4));
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        pos += size + 2;
    }
}

/// A connection: plain TCP or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Longest a connection the server is closing is read for its end (see
/// [`Conn::send`]).
const LINGER: Duration = Duration::from_secs(1);

/// Reads `stream` until the server's end (EOF, or its TLS `close_notify`)
/// and drops it, so the client never closes with unread bytes (which makes
/// the kernel send a reset) and the server, which closed first, keeps the
/// `TIME_WAIT`, as with a browser.
async fn linger(mut stream: Stream) {
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// One keep-alive connection to a server. It connects lazily, reconnects
/// after the server closes, and retries a request once when a reused
/// connection turns out to be closed before any byte of the answer came
/// (what every HTTP client does for idempotent requests).
///
/// With [`Conn::tls`] every connection is a TLS connection (the handshake
/// counts in the latency of the request that opened it).
pub struct Conn {
    addr: SocketAddr,
    stream: Option<Stream>,
    tls: Option<TlsClient>,
    buf: BytesMut,
    keep_body: bool,
    connecting: bool,
    /// Times a stale reused connection was replaced and the request resent.
    pub reconnects: u64,
    /// Connections opened (TCP connects; with TLS, completed handshakes).
    pub connects: u64,
    /// TLS handshakes that resumed a session.
    pub resumed: u64,
}

enum Step {
    Done(Answer),
    /// The reused connection was closed before the answer started.
    Stale(String),
}

impl Conn {
    /// A connection to `addr` (not opened yet).
    pub fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            stream: None,
            tls: None,
            buf: BytesMut::with_capacity(16 * 1024),
            keep_body: false,
            connecting: false,
            reconnects: 0,
            connects: 0,
            resumed: 0,
        }
    }

    /// Speak TLS through `client` on every connection.
    pub fn tls(mut self, client: TlsClient) -> Conn {
        self.tls = Some(client);
        self
    }

    /// Keep response bodies in [`Answer::body`] (for admin calls).
    pub fn keep_body(mut self) -> Conn {
        self.keep_body = true;
        self
    }

    /// Sends `request` (complete HTTP/1.1 bytes) and reads the answer,
    /// all within `timeout`.
    pub async fn send(&mut self, request: &[u8], timeout: Duration) -> Result<Answer, Failure> {
        match tokio::time::timeout(timeout, self.exchange(request)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(f)) => {
                self.close();
                Err(f)
            }
            Err(_) => {
                let kind = if self.connecting {
                    ErrorKind::Connect
                } else {
                    ErrorKind::Timeout
                };
                self.close();
                Err(Failure::new(
                    kind,
                    format!("no answer within {}", humantime::format_duration(timeout)),
                ))
            }
        }
    }

    /// Drops the connection.
    pub fn close(&mut self) {
        self.stream = None;
        self.connecting = false;
        self.buf.clear();
    }

    async fn connect(&mut self) -> Result<(), Failure> {
        self.connecting = true;
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| Failure::new(ErrorKind::Connect, format!("{}: {e}", self.addr)))?;
        let _ = tcp.set_nodelay(true);
        let stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some(client) => {
                let (tls, resumed) = client.handshake(tcp).await.map_err(|e| {
                    Failure::new(
                        ErrorKind::Connect,
                        format!("{}: TLS handshake: {e}", self.addr),
                    )
                })?;
                self.resumed += u64::from(resumed);
                Stream::Tls(Box::new(tls))
            }
        };
        self.connecting = false;
        self.connects += 1;
        self.stream = Some(stream);
        self.buf.clear();
        Ok(())
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<Answer, Failure> {
        let mut attempt = 0;
        loop {
            let reused = self.stream.is_some();
            if !reused {
                self.connect().await?;
            }
            match self.once(request).await? {
                Step::Done(answer) => return Ok(answer),
                Step::Stale(why) => {
                    self.close();
                    if reused && attempt == 0 {
                        attempt += 1;
                        self.reconnects += 1;
                        continue;
                    }
                    return Err(Failure::new(ErrorKind::Io, why));
                }
            }
        }
    }

    async fn once(&mut self, request: &[u8]) -> Result<Step, Failure> {
        let stream = self.stream.as_mut().expect("connected");
        if let Err(e) = stream.write_all(request).await {
            return Ok(Step::Stale(format!("write: {e}")));
        }
        if let Err(e) = stream.flush().await {
            return Ok(Step::Stale(format!("write: {e}")));
        }
        let mut started = !self.buf.is_empty();
        let head = loop {
            match parse_head(&self.buf) {
                Ok(Some(h)) => break h,
                Ok(None) => {}
                Err(e) => return Err(Failure::new(ErrorKind::Io, e)),
            }
            match stream.read_buf(&mut self.buf).await {
                Ok(0) if !started => return Ok(Step::Stale("closed before answering".into())),
                Ok(0) => return Err(Failure::new(ErrorKind::Io, "closed mid-answer")),
                Ok(_) => started = true,
                Err(e) if !started => return Ok(Step::Stale(format!("read: {e}"))),
                Err(e) => return Err(Failure::new(ErrorKind::Io, format!("read: {e}"))),
            }
        };
        self.buf.advance(head.len);
        let body_len = loop {
            let complete = match head.framing {
                Framing::Empty => Some(0),
                Framing::Length(n) => (self.buf.len() >= n).then_some(n),
                Framing::Chunked => {
                    chunked_len(&self.buf).map_err(|e| Failure::new(ErrorKind::Io, e))?
                }
                Framing::UntilClose => None,
            };
            if let Some(n) = complete {
                break n;
            }
            match stream.read_buf(&mut self.buf).await {
                Ok(0) if head.framing == Framing::UntilClose => break self.buf.len(),
                Ok(0) => return Err(Failure::new(ErrorKind::Io, "closed mid-body")),
                Ok(_) => {}
                Err(e) => return Err(Failure::new(ErrorKind::Io, format!("read: {e}"))),
            }
        };
        let body = if self.keep_body {
            self.buf[..body_len].to_vec()
        } else {
            Vec::new()
        };
        self.buf.advance(body_len);
        if head.close {
            // The server closes after this answer: read its end in the
            // background, so the next request does not wait for it.
            if let Some(stream) = self.stream.take() {
                tokio::spawn(linger(stream));
            }
            self.close();
        }
        Ok(Step::Done(Answer {
            status: head.status,
            body_len,
            body,
        }))
    }
}

/// Builds a request with `Host`, extra headers and an optional body.
pub fn build_request(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "PUT" || method == "POST" {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// One request on a fresh connection that keeps the body (admin calls,
/// readiness probes).
pub async fn oneshot(
    addr: SocketAddr,
    request: &[u8],
    timeout: Duration,
) -> Result<Answer, Failure> {
    Conn::new(addr).keep_body().send(request, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let h = parse_head(b"HTTP/1.1 302 Found\r\nLocation: x\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.status, 302);
        assert_eq!(h.framing, Framing::Length(0));
        assert!(!h.close);
        let h = parse_head(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nConnection: close\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.framing, h.close), (Framing::Chunked, true));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n").unwrap(), None);
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
        let h = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Empty);
    }

    #[test]
    fn chunks() {
        assert_eq!(chunked_len(b"3\r\nabc\r\n0\r\n\r\n").unwrap(), Some(13));
        assert_eq!(chunked_len(b"3\r\nabc\r\n0\r\n").unwrap(), None);
        assert_eq!(chunked_len(b"3\r\nab").unwrap(), None);
        assert_eq!(chunked_len(b"0\r\nX-T: 1\r\n\r\n").unwrap(), Some(13));
        assert!(chunked_len(b"zz\r\n").is_err());
    }
}
