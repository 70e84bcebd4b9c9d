//! Reading an HTTP/1 head: whether the fast path may answer it, and how a
//! request handed to Pingora is framed.

use std::net::IpAddr;

use crate::serve::decide::RequestView;

/// Headers parsed in place on the fast path; a head with more is parsed
/// again with room for `MAX_HEADERS_SLOW` to find where it ends.
pub(super) const MAX_HEADERS: usize = 48;

/// How a request handed to Pingora is framed, as far as its head says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// It ends this many bytes after its head (0: with its head).
    Length(u64),
    /// Chunked, an upgrade, or framing Pingora will refuse: its end is
    /// Pingora's to find.
    Unknown,
}

/// Whether `bytes` hold the blank line that ends a head (CRLF or bare LF
/// line ends, as httparse takes them).
pub(super) fn ends_head(bytes: &[u8]) -> bool {
    memchr::memmem::find(bytes, b"\n\r\n").is_some()
        || memchr::memmem::find(bytes, b"\n\n").is_some()
}

/// How a request Pingora takes is framed (RFC 9112 §6.3): by a
/// `Content-Length` (several identical values count as one, RFC 9110
/// §8.6), or by nothing at all, which ends it with its head.
pub(super) fn framing(req: &httparse::Request<'_, '_>) -> Framing {
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

/// A parsed HTTP/1.1 head the fast path may answer.
pub struct H1Request<'b> {
    pub(crate) method: &'b str,
    pub(crate) path: &'b str,
    query: Option<&'b str>,
    pub(crate) host: &'b str,
    headers: &'b [httparse::Header<'b>],
    peer: Option<IpAddr>,
    /// The client asked to close after this answer.
    pub(super) close: bool,
    /// It came over TLS.
    pub(crate) tls: bool,
}

impl<'b> H1Request<'b> {
    /// The request when it is a plain HTTP/1.1 `GET` or `HEAD` with no
    /// body, no upgrade, a `Host` and an origin-form target made only of
    /// bytes Pingora's URI parser takes as they are; `None` sends it to
    /// Pingora.
    pub(super) fn plain(
        req: &'b httparse::Request<'_, 'b>,
        peer: Option<IpAddr>,
        tls: bool,
    ) -> Option<Self> {
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
            tls,
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
    fn header_lines(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|h| (h.name, h.value))
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
        H1Request::plain(&req, None, false).map(|r| {
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
