//! Answers the gateway writes itself: redirects, fixed responses and
//! errors. One [`Answer`] is built from a decision and written either to a
//! Pingora session ([`write`]) or straight into an HTTP/1 response buffer
//! ([`Answer::encode_h1`], used by the fast path in `front`). Every answer
//! carries `Content-Length` so keep-alive connections stay usable, and HEAD
//! gets the headers without the body.

use super::h1;
use super::headers::{RULES_VERSION, RULES_VERSION_NAME};
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, StatusCode};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;
use rules::{Decision, HeaderChanges, Proxy};

/// An answer the gateway writes itself.
pub struct Answer<'a> {
    /// Status code.
    pub status: u16,
    /// `Location`, for redirects.
    pub location: Option<HeaderValue>,
    /// `Content-Type`.
    pub content_type: Option<&'a HeaderValue>,
    /// `Cache-Control`.
    pub cache_control: Option<&'a HeaderValue>,
    /// Extra configured headers (respond rules).
    pub extra: &'a [(HeaderName, HeaderValue)],
    /// Body; not sent for HEAD.
    pub body: Bytes,
    /// Rules version for `X-Rules-Version`, when that header is on.
    pub rules_version: Option<u64>,
}

static ZERO: HeaderValue = HeaderValue::from_static("0");
static TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
/// A link store that cannot be reached is usually back within seconds.
static RETRY_AFTER: [(HeaderName, HeaderValue); 1] =
    [(header::RETRY_AFTER, HeaderValue::from_static("2"))];

impl<'a> Answer<'a> {
    /// The answer to a decision, or the route when the request is proxied.
    // Boxing the route would cost an allocation on every proxied request
    // to save moving 136 bytes once.
    #[allow(clippy::result_large_err)]
    pub fn of(decision: Decision<'a>, rules_version: Option<u64>) -> Result<Self, Proxy<'a>> {
        Ok(match decision {
            Decision::Redirect(r) => Answer {
                status: r.status,
                location: Some(r.location),
                content_type: None,
                cache_control: Some(r.cache_control),
                extra: &[],
                body: Bytes::new(),
                rules_version,
            },
            Decision::Respond(r) => Answer {
                status: r.status,
                location: None,
                content_type: Some(r.content_type),
                cache_control: None,
                extra: r.headers,
                body: r.body,
                rules_version,
            },
            Decision::Gone { .. } => {
                Answer::text(410, "gone: this link has expired\n", rules_version)
            }
            Decision::NotFound => Answer::text(404, "not found\n", rules_version),
            Decision::BadRequest { .. } => Answer::text(400, "bad request\n", rules_version),
            // Decided again once the store answered; still needing it
            // means the store could not be reached.
            Decision::NeedsStore => Answer::store_unavailable(rules_version),
            Decision::Proxy(p) => return Err(p),
        })
    }

    /// A short plain-text answer (404, 410, 400, 5xx), never cached.
    pub fn text(status: u16, body: &'static str, rules_version: Option<u64>) -> Answer<'static> {
        Answer {
            status,
            location: None,
            content_type: Some(&TEXT),
            cache_control: Some(&NO_STORE),
            extra: &[],
            body: Bytes::from_static(body.as_bytes()),
            rules_version,
        }
    }

    /// `200` with an ACME HTTP-01 key authorization (`tls::acme`): plain
    /// text, never cached.
    pub fn key_authorization(body: &str) -> Answer<'static> {
        Answer {
            status: 200,
            location: None,
            content_type: Some(&TEXT),
            cache_control: Some(&NO_STORE),
            extra: &[],
            body: Bytes::copy_from_slice(body.as_bytes()),
            rules_version: None,
        }
    }

    /// `503` with `Retry-After`: a code on a store domain that is not cached
    /// while the store cannot be reached.
    pub fn store_unavailable(rules_version: Option<u64>) -> Answer<'static> {
        Answer {
            extra: &RETRY_AFTER,
            ..Answer::text(503, "link store unavailable, try again\n", rules_version)
        }
    }

    /// Every header but `Content-Length`, in the order they are sent.
    fn headers(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        let fixed = [
            (&header::LOCATION, self.location.as_ref()),
            (&header::CONTENT_TYPE, self.content_type),
            (&header::CACHE_CONTROL, self.cache_control),
        ];
        fixed
            .into_iter()
            .filter_map(|(n, v)| v.map(|v| (n, v)))
            .chain(self.extra.iter().map(|(n, v)| (n, v)))
    }

    /// Appends the whole HTTP/1.1 response to `out`: the same status line
    /// and headers Pingora writes for [`write`] (including `Date` and
    /// `Connection`), and the body unless the request was HEAD.
    pub fn encode_h1(&self, head: bool, keep_alive: bool, out: &mut Vec<u8>) {
        self.encode_h1_changed(head, keep_alive, None, out)
    }

    /// [`Answer::encode_h1`] with a route's `response_headers` applied, as
    /// [`write_changed`] applies them.
    pub fn encode_h1_changed(
        &self,
        head: bool,
        keep_alive: bool,
        changes: Option<&HeaderChanges>,
        out: &mut Vec<u8>,
    ) {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in self.headers() {
            if changes.is_none_or(|c| !c.touches(name.as_str())) {
                h1::line(out, name.as_str().as_bytes(), value.as_bytes());
            }
        }
        if let Some(changes) = changes {
            h1::set_lines(out, changes);
        }
        let mut digits = itoa::Buffer::new();
        let length = digits.format(self.body.len()).as_bytes();
        h1::line(out, b"content-length", length);
        if let Some(v) = self.rules_version {
            h1::line(out, RULES_VERSION.as_bytes(), digits.format(v).as_bytes());
        }
        h1::end_answer(out, keep_alive);
        // As Pingora: no body for HEAD, 204 or 304. The rules already
        // refuse bodies on 204, 205 and 304; this keeps a future bug from
        // desynchronising the connection.
        if !head && !matches!(self.status, 204 | 304) {
            out.extend_from_slice(&self.body);
        }
    }
}

/// Writes `answer` to a Pingora session and ends the response.
pub async fn write(session: &mut Session, answer: Answer<'_>) -> Result<()> {
    write_changed(session, answer, None).await
}

/// [`write`], with a route's `response_headers` applied after the
/// gateway's own headers: the route's answers that are not the upstream's.
pub async fn write_changed(
    session: &mut Session,
    answer: Answer<'_>,
    changes: Option<&HeaderChanges>,
) -> Result<()> {
    // No case-preserving name map: the names are standard and HTTP/1.1
    // names are case-insensitive; this is the request path's hottest
    // allocation site after the lookup.
    let mut resp = ResponseHeader::build_no_case(answer.status, Some(answer.extra.len() + 5))?;
    for (name, value) in answer.headers() {
        resp.insert_header(name.clone(), value.clone())?;
    }
    let length = match answer.body.len() {
        0 => ZERO.clone(),
        n => HeaderValue::from(n),
    };
    resp.insert_header(header::CONTENT_LENGTH, length)?;
    if let Some(v) = answer.rules_version {
        resp.insert_header(RULES_VERSION_NAME.clone(), HeaderValue::from(v))?;
    }
    if let Some(changes) = changes {
        super::route_headers::response(&mut resp, changes)?;
    }
    let head = session.req_header().method == http::Method::HEAD;
    if head || answer.body.is_empty() {
        session.write_response_header(Box::new(resp), true).await
    } else {
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(answer.body), true).await
    }
}

/// Writes a short plain-text answer (413, 5xx) for a routed request, with
/// the route's `response_headers`.
pub async fn route_text(
    session: &mut Session,
    status: u16,
    body: &'static str,
    rules_version: Option<u64>,
    changes: &HeaderChanges,
) -> Result<()> {
    let answer = Answer::text(status, body, rules_version);
    write_changed(session, answer, Some(changes)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h1_encoding_has_length_date_and_connection_and_skips_head_bodies() {
        let a = Answer::text(404, "not found\n", Some(7));
        let mut out = Vec::new();
        a.encode_h1(false, true, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains("\r\ncontent-type: text/plain; charset=utf-8\r\n"));
        assert!(text.contains("\r\ncache-control: no-store\r\n"));
        assert!(text.contains("\r\ncontent-length: 10\r\n"));
        assert!(text.contains("\r\nx-rules-version: 7\r\n"));
        assert!(text.contains("\r\ndate: "));
        assert!(
            text.ends_with("\r\nconnection: keep-alive\r\n\r\nnot found\n"),
            "{text}"
        );

        let mut out = Vec::new();
        a.encode_h1(true, false, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\ncontent-length: 10\r\n"));
        assert!(text.ends_with("\r\nconnection: close\r\n\r\n"), "{text}");
    }
}
