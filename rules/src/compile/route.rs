//! Compiling `[[route]]` rules: which upstream pool, and how the path and
//! `Host` are rewritten; header changes are in `headers`.

use super::headers::Side;
use super::Compiler;
use crate::encode;
use crate::format::RouteDef;
use crate::rule_ref::RuleRef;
use crate::ruleset::{RouteRule, Strip};
use crate::size::parse_size;

impl Compiler {
    pub(crate) fn route(&mut self, offset: usize, d: RouteDef) {
        if !self.claim_id(&d.id) {
            return;
        }
        let id = d.id.get_ref().clone();
        let rule_ref = RuleRef::Route(self.routes.len() as u32);
        self.route_origins.push(self.origin(&d.id));
        self.place(d.at(), &id, offset, rule_ref);
        if !self.upstream_names.contains(d.upstream.get_ref()) {
            let known: Vec<&str> = self.upstream_names.iter().map(String::as_str).collect();
            let msg = format!(
                "unknown upstream `{}` (defined: {})",
                d.upstream.get_ref(),
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            );
            self.err(d.upstream.span().start, &id, msg);
        }
        let strip = match (d.strip_prefix, &d.prefix, &d.path) {
            (false, _, _) => Strip::Nothing,
            (true, Some(p), _) => encode::decode_unreserved(p.get_ref())
                .map_or(Strip::Nothing, |p| Strip::Prefix(p.into())),
            (true, None, Some(_)) => Strip::Whole,
            (true, None, None) => {
                self.err(offset, &id, "strip_prefix needs a `prefix` or `path`");
                Strip::Nothing
            }
        };
        if let Some(h) = &d.host_header {
            if crate::host::normalize(h.get_ref()).is_err() || h.get_ref().is_empty() {
                self.err(h.span().start, &id, "host_header is not a valid host");
            }
        }
        let max_body = match &d.max_body {
            None => Some(DEFAULT_MAX_BODY),
            Some(v) => match parse_size(v.get_ref()) {
                Ok(0) => None,
                Ok(n) => Some(n),
                Err(why) => {
                    self.err(v.span().start, &id, format!("max_body {why}"));
                    Some(DEFAULT_MAX_BODY)
                }
            },
        };
        let request_headers = self.header_changes(d.request_headers, Side::Request, &id);
        let response_headers = self.header_changes(d.response_headers, Side::Response, &id);
        self.routes.push(RouteRule {
            id: id.into(),
            upstream: d.upstream.get_ref().as_str().into(),
            strip,
            host_header: d.host_header.map(|h| h.into_inner().into()),
            max_body,
            upgrade: d.upgrade,
            request_headers,
            response_headers,
        });
    }
}

/// A route's request body limit when it sets none: nginx's
/// `client_max_body_size`.
pub const DEFAULT_MAX_BODY: u64 = 1 << 20;
