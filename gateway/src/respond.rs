//! Writing answers straight from `request_filter`: redirects, fixed
//! responses and errors. Every answer carries `Content-Length` so keep-alive
//! connections stay usable, and HEAD gets the headers without the body.

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

/// An answer the gateway writes itself.
pub struct Answer<'a> {
    /// Status code.
    pub status: u16,
    /// Headers besides `Content-Length`.
    pub headers: &'a [(HeaderName, &'a HeaderValue)],
    /// Extra configured headers (respond rules).
    pub extra: &'a [(HeaderName, HeaderValue)],
    /// Body; not sent for HEAD.
    pub body: Bytes,
    /// Rules version for `X-Rules-Version`, when that header is on.
    pub rules_version: Option<u64>,
}

static ZERO: HeaderValue = HeaderValue::from_static("0");
static RULES_VERSION: HeaderName = HeaderName::from_static("x-rules-version");

/// Writes `answer` and ends the response.
pub async fn write(session: &mut Session, answer: Answer<'_>) -> Result<()> {
    // No case-preserving name map: the names are standard and HTTP/1.1
    // names are case-insensitive; this is the request path's hottest
    // allocation site after the lookup.
    let mut resp = ResponseHeader::build_no_case(
        answer.status,
        Some(answer.headers.len() + answer.extra.len() + 2),
    )?;
    for (name, value) in answer.headers {
        resp.insert_header(name.clone(), (*value).clone())?;
    }
    for (name, value) in answer.extra {
        resp.insert_header(name.clone(), value.clone())?;
    }
    let length = match answer.body.len() {
        0 => ZERO.clone(),
        n => HeaderValue::from(n),
    };
    resp.insert_header(header::CONTENT_LENGTH, length)?;
    if let Some(v) = answer.rules_version {
        resp.insert_header(RULES_VERSION.clone(), HeaderValue::from(v))?;
    }
    let head = session.req_header().method == http::Method::HEAD;
    if head || answer.body.is_empty() {
        session.write_response_header(Box::new(resp), true).await
    } else {
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(answer.body), true).await
    }
}

/// Writes a short plain-text answer (404, 410, 400, 5xx).
pub async fn text(
    session: &mut Session,
    status: u16,
    body: &'static str,
    rules_version: Option<u64>,
) -> Result<()> {
    static TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
    static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
    write(
        session,
        Answer {
            status,
            headers: &[
                (header::CONTENT_TYPE, &TEXT),
                (header::CACHE_CONTROL, &NO_STORE),
            ],
            extra: &[],
            body: Bytes::from_static(body.as_bytes()),
            rules_version,
        },
    )
    .await
}
