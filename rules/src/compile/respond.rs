//! Compiling `[[respond]]` rules: fixed answers such as
//! apple-app-site-association, with a body inline or from a file.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use super::Compiler;
use crate::files::FileKind;
use crate::format::RespondDef;
use crate::rule_ref::RuleRef;
use crate::ruleset::RespondRule;

impl Compiler {
    pub(crate) fn respond(&mut self, offset: usize, d: RespondDef) {
        if !self.claim_id(&d.id) {
            return;
        }
        let id = d.id.get_ref().clone();
        let rule_ref = RuleRef::Respond(self.responds.len() as u32);
        self.respond_origins.push(self.origin(&d.id));
        self.place(d.at(), &id, offset, rule_ref);
        let status = match &d.status {
            None => 200,
            Some(s) if (200..600).contains(s.get_ref()) => *s.get_ref() as u16,
            Some(s) => {
                self.err(
                    s.span().start,
                    &id,
                    format!("status {} must be between 200 and 599", s.get_ref()),
                );
                200
            }
        };
        let content_type = match &d.content_type {
            None => HeaderValue::from_static("text/plain; charset=utf-8"),
            Some(ct) => HeaderValue::from_str(ct.get_ref()).unwrap_or_else(|_| {
                self.err(
                    ct.span().start,
                    &id,
                    "content_type is not a valid header value",
                );
                HeaderValue::from_static("text/plain")
            }),
        };
        let body = match (&d.body, &d.body_file) {
            (Some(_), Some(f)) => {
                self.err(
                    f.span().start,
                    &id,
                    "give either `body` or `body_file`, not both",
                );
                Bytes::new()
            }
            (Some(b), None) => Bytes::from(b.get_ref().clone()),
            (None, Some(f)) => self
                .read_referenced(
                    f.span().start,
                    &id,
                    "body_file",
                    f.get_ref(),
                    FileKind::Body,
                )
                .map_or_else(Bytes::new, |(_, bytes)| Bytes::from(bytes)),
            (None, None) => Bytes::new(),
        };
        if matches!(status, 204 | 205 | 304) && !body.is_empty() {
            let at = d
                .body
                .as_ref()
                .or(d.body_file.as_ref())
                .map_or(offset, |b| b.span().start);
            self.err(at, &id, format!("a {status} response has no body"));
        }
        let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
        // In file order, so "given twice" lands on the second spelling.
        let mut given: Vec<_> = d.headers.iter().collect();
        given.sort_by_key(|(name, _)| name.span().start);
        for (name, value) in given {
            match (
                HeaderName::from_bytes(name.get_ref().as_bytes()),
                HeaderValue::from_str(value.get_ref()),
            ) {
                (Ok(n), Ok(v)) => {
                    let problem = if headers.iter().any(|(h, _)| *h == n) {
                        Some("is given twice")
                    } else {
                        reserved(&n)
                    };
                    match problem {
                        Some(why) => self.err(
                            name.span().start,
                            &id,
                            format!("header `{}` {why}", name.get_ref()),
                        ),
                        None => headers.push((n, v)),
                    }
                }
                (Err(_), _) => self.err(
                    name.span().start,
                    &id,
                    format!("`{}` is not a valid header name", name.get_ref()),
                ),
                (_, Err(_)) => self.err(value.span().start, &id, "not a valid header value"),
            }
        }
        if let Some(cc) = &d.cache_control {
            let v = self.cache_control(Some(cc), &id);
            headers.push((http::header::CACHE_CONTROL, v));
        }
        self.responds.push(RespondRule {
            id: id.into(),
            status,
            content_type,
            headers,
            body,
        });
    }
}

/// Why a header cannot be set in `headers`, if it cannot: the gateway
/// writes the message framing and connection headers itself (two
/// `Content-Length` values would desynchronise a cache in front of it),
/// and two headers have keys of their own.
fn reserved(name: &HeaderName) -> Option<&'static str> {
    use http::header::*;
    if name == CONTENT_TYPE {
        Some("has its own key: use `content_type`")
    } else if name == CACHE_CONTROL {
        Some("has its own key: use `cache_control`")
    } else if [
        CONTENT_LENGTH,
        TRANSFER_ENCODING,
        CONNECTION,
        TE,
        TRAILER,
        UPGRADE,
        DATE,
    ]
    .contains(name)
        || ["keep-alive", "proxy-connection", "x-rules-version"].contains(&name.as_str())
    {
        Some("is set by the gateway")
    } else {
        None
    }
}
