//! The upstream's answer to a request the fast path forwarded: its head
//! read and written again for the client as the Pingora pipeline writes it
//! (`response_filter`), and how its body is framed.

use http::StatusCode;
use rules::HeaderChanges;

use crate::serve::admission::RateState;
use crate::serve::h1;
use crate::serve::headers::{REQUEST_ID, RULES_VERSION};

/// A response head longer than this is the upstream's fault: 502.
pub const MAX_HEAD: usize = 64 * 1024;
/// Headers a response head may have.
const MAX_HEADERS: usize = 128;

/// How the body after a response head ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// There is none (HEAD, 204, 304).
    Empty,
    /// After this many bytes.
    Length(u64),
    /// With its last chunk.
    Chunked,
    /// When the upstream closes; sent on chunked, so the client's
    /// connection lives on.
    UntilClose,
}

/// A response head read from the upstream.
#[derive(Debug)]
pub struct Head {
    /// Its status.
    pub status: u16,
    /// Its length in the buffer.
    pub len: usize,
    /// How its body ends.
    pub body: Body,
    /// Whether the connection may carry another request after the body.
    pub reusable: bool,
}

/// The upstream's head is not HTTP/1 as this reads it.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// What the gateway changes on the way to the client.
pub struct Rewrite<'a> {
    /// The route's `response_headers`.
    pub changes: &'a HeaderChanges,
    /// For `RateLimit-Policy` and `RateLimit`, when the route is limited.
    pub rate: Option<&'a RateState>,
    /// `X-Request-Id`.
    pub request_id: &'a str,
    /// `X-Rules-Version`, when announced.
    pub rules_version: Option<u64>,
    /// Whether the client's connection stays open.
    pub keep_alive: bool,
    /// The request was `HEAD`: no body whatever the head says.
    pub head_request: bool,
}

/// Headers of one connection, never passed on (RFC 9110 §7.6.1); `Date`
/// and `Connection` are written anew, as Pingora does.
fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
        "date",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// Reads the response head at the start of `buf`: `Ok(None)` while it is
/// incomplete. A complete final head is written, rewritten, to `out`; an
/// informational one (1xx) is only measured, for the caller to skip.
pub fn read(buf: &[u8], rw: &Rewrite<'_>, out: &mut Vec<u8>) -> Result<Option<Head>, Malformed> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) => return Err(Malformed("response head too large")),
        Err(_) => return Err(Malformed("malformed response head")),
    };
    let status = resp.code.ok_or(Malformed("no status"))?;
    if (100..200).contains(&status) {
        // A 101 would be a tunnel nobody asked for (no request the fast
        // path forwards has `Upgrade`).
        if status == 101 {
            return Err(Malformed("101 to a request without Upgrade"));
        }
        return Ok(Some(Head {
            status,
            len,
            body: Body::Empty,
            reusable: true,
        }));
    }
    let http11 = resp.version == Some(1);
    let mut chunked = None;
    let mut length: Option<u64> = None;
    let mut close = !http11;
    let mut listed: [&str; 8] = [""; 8];
    let mut n_listed = 0;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("transfer-encoding") {
            let text = std::str::from_utf8(h.value).map_err(|_| Malformed("transfer-encoding"))?;
            let last = text.rsplit(',').next().unwrap_or("").trim();
            chunked = Some(chunked.unwrap_or(true) && last.eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).map_err(|_| Malformed("content-length"))?;
            for v in text.split(',') {
                let v = v.trim();
                let n: u64 = (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| v.parse().ok())
                    .flatten()
                    .ok_or(Malformed("content-length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(Malformed("differing content-length values"));
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("connection") {
            let text = std::str::from_utf8(h.value).unwrap_or("");
            for token in text.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") && !http11 {
                    close = false;
                } else if n_listed < listed.len() {
                    listed[n_listed] = token;
                    n_listed += 1;
                } else {
                    return Err(Malformed("too many connection options"));
                }
            }
        }
    }
    let no_body = rw.head_request || status == 204 || status == 304;
    let body = match (no_body, chunked, length) {
        (true, _, _) => Body::Empty,
        (false, Some(true), _) => Body::Chunked,
        (false, Some(false), _) => Body::UntilClose,
        (false, None, Some(n)) => Body::Length(n),
        (false, None, None) => Body::UntilClose,
    };
    let reusable = !close && body != Body::UntilClose;

    let reason = resp
        .reason
        .filter(|r| !r.is_empty() && r.bytes().all(|b| b == b' ' || b.is_ascii_graphic()))
        .or_else(|| StatusCode::from_u16(status).ok()?.canonical_reason())
        .unwrap_or("");
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(digits.format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let ours = |name: &str| {
        name.eq_ignore_ascii_case(REQUEST_ID)
            || (rw.rules_version.is_some() && name.eq_ignore_ascii_case(RULES_VERSION))
            || (rw.rate.is_some()
                && RateState::names()
                    .iter()
                    .any(|n| n.as_str().eq_ignore_ascii_case(name)))
    };
    for h in resp.headers.iter() {
        let name = h.name;
        let dropped = hop_by_hop(name)
            || listed[..n_listed].iter().any(|l| l.eq_ignore_ascii_case(name))
            // A chunked body's length is its chunks'.
            || (chunked.is_some() && name.eq_ignore_ascii_case("content-length"))
            || (body == Body::UntilClose && name.eq_ignore_ascii_case("transfer-encoding"))
            || ours(name)
            || rw.changes.touches(name);
        if !dropped {
            h1::line(out, name.as_bytes(), h.value);
        }
    }
    if body == Body::UntilClose {
        h1::line(out, b"transfer-encoding", b"chunked");
    }
    if let Some(rate) = rw.rate {
        rate.write_h1(out, |name| rw.changes.touches(name));
    }
    h1::set_lines(out, rw.changes);
    h1::line(out, REQUEST_ID.as_bytes(), rw.request_id.as_bytes());
    if let Some(v) = rw.rules_version {
        h1::line(out, RULES_VERSION.as_bytes(), digits.format(v).as_bytes());
    }
    h1::end_answer(out, rw.keep_alive);
    Ok(Some(Head {
        status,
        len,
        body,
        reusable,
    }))
}

/// Finds where a chunked body ends, reading it as it passes.
#[derive(Debug, Default)]
pub struct Chunks {
    state: State,
    size: u64,
    digits: u8,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    Extension,
    SizeEnd,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    FinalLf,
}

impl Chunks {
    /// Reads `bytes`: `Ok(Some(n))` when the body ends after the first `n`
    /// of them, `Ok(None)` when it goes on past them.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, Malformed> {
        let bad = Malformed("malformed chunked body");
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match self.state {
                State::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if self.digits >= 15 {
                            return Err(Malformed("chunk size too large"));
                        }
                        let d = (b as char).to_digit(16).unwrap_or(0);
                        self.size = self.size * 16 + u64::from(d);
                        self.digits += 1;
                    }
                    b';' | b' ' | b'\t' if self.digits > 0 => self.state = State::Extension,
                    b'\r' if self.digits > 0 => self.state = State::SizeEnd,
                    b'\n' if self.digits > 0 => self.size_line_done(),
                    _ => return Err(bad),
                },
                State::Extension => match b {
                    b'\r' => self.state = State::SizeEnd,
                    b'\n' => self.size_line_done(),
                    _ => {}
                },
                State::SizeEnd => match b {
                    b'\n' => self.size_line_done(),
                    _ => return Err(bad),
                },
                State::Data => {
                    let take =
                        (bytes.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    self.size -= take as u64;
                    i += take;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::DataCr => match b {
                    b'\r' => self.state = State::DataLf,
                    b'\n' => self.state = State::Size,
                    _ => return Err(bad),
                },
                State::DataLf => match b {
                    b'\n' => self.state = State::Size,
                    _ => return Err(bad),
                },
                State::TrailerStart => match b {
                    b'\r' => self.state = State::FinalLf,
                    b'\n' => return Ok(Some(i + 1)),
                    _ => self.state = State::TrailerLine,
                },
                State::TrailerLine => {
                    if b == b'\n' {
                        self.state = State::TrailerStart;
                    }
                }
                State::FinalLf => match b {
                    b'\n' => return Ok(Some(i + 1)),
                    _ => return Err(bad),
                },
            }
            i += 1;
        }
        Ok(None)
    }

    fn size_line_done(&mut self) {
        self.state = if self.size == 0 {
            State::TrailerStart
        } else {
            State::Data
        };
        self.digits = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(changes: &HeaderChanges) -> Rewrite<'_> {
        Rewrite {
            changes,
            rate: None,
            request_id: "id-1",
            rules_version: Some(7),
            keep_alive: true,
            head_request: false,
        }
    }

    fn read_text(raw: &str) -> (Head, String) {
        let none = HeaderChanges::default();
        let mut out = Vec::new();
        let head = read(raw.as_bytes(), &rw(&none), &mut out).unwrap().unwrap();
        (head, String::from_utf8(out).unwrap())
    }

    #[test]
    fn heads_are_framed_and_rewritten_as_pingora_writes_them() {
        let (head, text) = read_text(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: old\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nX-Request-Id: theirs\r\nServer: up\r\n\r\nok",
        );
        assert_eq!(
            (head.status, head.body, head.reusable),
            (200, Body::Length(2), true)
        );
        assert_eq!(head.len, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: old\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nX-Request-Id: theirs\r\nServer: up\r\n\r\n".len());
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: up\r\nx-request-id: id-1\r\nx-rules-version: 7\r\ndate: "), "{text}");
        assert!(
            text.ends_with("\r\nconnection: keep-alive\r\n\r\n"),
            "{text}"
        );
        assert!(!text.contains("old") && !text.contains("X-Hop") && !text.contains("theirs"));

        // HTTP/1.0 until close: chunked for the client, not reusable.
        let (head, text) = read_text("HTTP/1.0 200 OK\r\nServer: up\r\n\r\n");
        assert_eq!((head.body, head.reusable), (Body::UntilClose, false));
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\n")
                && text.contains("\r\ntransfer-encoding: chunked\r\n")
        );
        // Chunked wins over a length, which is not passed on.
        let (head, text) =
            read_text("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n");
        assert_eq!(head.body, Body::Chunked);
        assert!(!text.to_ascii_lowercase().contains("content-length"));
        let (head, _) = read_text("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n");
        assert_eq!(head.body, Body::Empty);
        let (head, _) =
            read_text("HTTP/1.1 500 Oops\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        assert_eq!((head.status, head.reusable), (500, false));
        let (head, _) = read_text("HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(head.status, 100);
    }

    #[test]
    fn bad_heads_are_refused() {
        let none = HeaderChanges::default();
        let mut out = Vec::new();
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "SMTP ready\r\n\r\n",
        ] {
            assert!(read(raw.as_bytes(), &rw(&none), &mut out).is_err(), "{raw}");
        }
        assert!(matches!(
            read(b"HTTP/1.1 200 OK\r\nX: y", &rw(&none), &mut out),
            Ok(None)
        ));
    }

    #[test]
    fn chunked_bodies_end_at_their_last_chunk_however_they_arrive() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let end = body.len() - 4;
        let mut whole = Chunks::default();
        assert_eq!(whole.feed(body), Ok(Some(end)));
        for split in 1..end {
            let mut c = Chunks::default();
            assert_eq!(c.feed(&body[..split]), Ok(None), "split at {split}");
            assert_eq!(
                c.feed(&body[split..]),
                Ok(Some(end - split)),
                "split at {split}"
            );
        }
        let mut c = Chunks::default();
        assert_eq!(c.feed(b"0\r\n\r\n"), Ok(Some(5)));
        assert!(Chunks::default().feed(b"x\r\n").is_err());
        assert!(Chunks::default().feed(b"4\r\nWikiXX").is_err());
        assert!(Chunks::default().feed(b"ffffffffffffffff\r\n").is_err());
    }
}
