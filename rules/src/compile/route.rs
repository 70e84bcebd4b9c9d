//! Compiling `[[route]]` rules: which upstream pool, and how the path and
//! `Host` are rewritten; header changes are in `headers`.

use super::headers::Side;
use super::Compiler;
use crate::encode;
use crate::format::{RateLimitDef, RouteDef};
use crate::rate_limit::{self, RateLimit};
use crate::rule_ref::RuleRef;
use crate::ruleset::{RouteRule, Strip};
use crate::size::parse_size;
use toml::Spanned;

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
        let rate_limit = d.rate_limit.and_then(|l| self.rate_limit(l, &id));
        self.routes.push(RouteRule {
            id: id.into(),
            upstream: d.upstream.get_ref().as_str().into(),
            strip,
            host_header: d.host_header.map(|h| h.into_inner().into()),
            max_body,
            upgrade: d.upgrade,
            request_headers,
            response_headers,
            rate_limit,
        });
    }

    /// `rate_limit = { key, rate, burst }`; errors at the bad value.
    fn rate_limit(&mut self, def: Spanned<RateLimitDef>, id: &str) -> Option<RateLimit> {
        let d = def.into_inner();
        let key = rate_limit::parse_key(d.key.get_ref())
            .map_err(|e| self.err(d.key.span().start, id, e))
            .ok();
        let rate = rate_limit::parse_rate(d.rate.get_ref())
            .map_err(|e| self.err(d.rate.span().start, id, e))
            .ok();
        let burst = match &d.burst {
            None => rate.map(|(n, _)| n),
            Some(b) => match u64::try_from(*b.get_ref()) {
                Ok(v) if (1..=10_000_000).contains(&v) => Some(v),
                _ => {
                    self.err(
                        b.span().start,
                        id,
                        "rate_limit burst must be between 1 and 10000000",
                    );
                    None
                }
            },
        };
        let ((requests, per), key, burst) = (rate?, key?, burst?);
        Some(RateLimit {
            key,
            requests,
            per,
            burst,
        })
    }
}

/// A route's request body limit when it sets none: nginx's
/// `client_max_body_size`.
pub const DEFAULT_MAX_BODY: u64 = 1 << 20;

#[cfg(test)]
mod tests {
    use crate::{Decision, LimitKey, LoadOptions, Request, RuleSet};
    use std::time::Duration;

    /// A rules file whose route `api` has `line` as its line 5 and whose
    /// pool `api` has `pool` as its line 9.
    fn load(line: &str, pool: &str) -> Result<RuleSet, Vec<String>> {
        let doc = format!(
            "[[route]]\nid = \"api\"\nprefix = \"/\"\nupstream = \"api\"\n{line}\n\n[upstream.api]\nservers = [\"127.0.0.1:9001\"]\n{pool}\n"
        );
        RuleSet::from_source(&doc, "rules.toml", &LoadOptions::default())
            .map_err(|errors| errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_rate_limit_compiles_into_the_proxy_decision() {
        let set = load(
            r#"rate_limit = { key = "header:X-Api-Key", rate = "100/s", burst = 200 }"#,
            "",
        )
        .unwrap();
        let Decision::Proxy(p) = set.decide(&Request::get("a", "/x", 0)) else {
            panic!("not proxied");
        };
        let limit = p.rate_limit.expect("limited");
        assert_eq!(
            limit.key,
            LimitKey::Header(http::HeaderName::from_static("x-api-key"))
        );
        assert_eq!((limit.requests, limit.burst), (100, 200));
        assert_eq!(limit.window(), Duration::from_secs(2));
        let (slot, id, _) = set.rate_limits().next().unwrap();
        assert_eq!((slot, id), (p.slot, "api"));
        // Without a burst: the rate's own count.
        let set = load(r#"rate_limit = { key = "ip", rate = "60/m" }"#, "").unwrap();
        let (_, _, limit) = set.rate_limits().next().unwrap();
        assert_eq!(limit.burst, 60);
        assert_eq!(limit.window(), Duration::from_secs(60));
    }

    #[test]
    fn bad_rate_limits_are_refused_at_the_value() {
        for (line, needle, says) in [
            (
                r#"rate_limit = { key = "cookie:a", rate = "1/s" }"#,
                "\"cookie",
                "must be \"ip\" or \"header:<name>\"",
            ),
            (
                r#"rate_limit = { key = "ip", rate = "fast" }"#,
                "\"fast",
                "must be requests per unit",
            ),
            (
                r#"rate_limit = { key = "ip", rate = "1/s", burst = 0 }"#,
                "0 }",
                "burst must be between 1",
            ),
        ] {
            let errors = load(line, "").expect_err(line);
            assert_eq!(errors.len(), 1, "{errors:#?}");
            let at = format!(
                "rules.toml:5:{}: rule api: ",
                line.find(needle).unwrap() + 1
            );
            assert!(errors[0].starts_with(&at), "{} not at {at}", errors[0]);
            assert!(errors[0].contains(says), "{}", errors[0]);
        }
        let errors = load(r#"rate_limit = { key = "ip", rate = "1/s", per = 3 }"#, "")
            .expect_err("unknown field");
        assert!(errors[0].contains("per"), "{errors:?}");
    }

    #[test]
    fn max_inflight_and_ejection_compile_and_are_checked() {
        let set = load(
            "",
            "max_inflight = 64\neject_after = 5\neject_for = \"10s\"",
        )
        .unwrap();
        let pool = &set.upstreams()["api"];
        assert_eq!(pool.max_inflight, Some(64));
        let e = pool.ejection.as_ref().unwrap();
        assert_eq!(
            (e.after, e.base, e.max),
            (5, Duration::from_secs(10), Duration::from_secs(300))
        );
        let set = load("", "").unwrap();
        assert_eq!(set.upstreams()["api"].ejection, None);
        for (pool, line, column, says) in [
            ("max_inflight = 0", 9, 16, "max_inflight must be between"),
            ("eject_for = \"10s\"", 9, 13, "need eject_after"),
            (
                "eject_after = 5\neject_for = \"1m\"\neject_for_max = \"10s\"",
                11,
                17,
                "must not be shorter",
            ),
            (
                "eject_after = 5\neject_for = \"soon\"",
                10,
                13,
                "is not a duration",
            ),
        ] {
            let errors = load("", pool).expect_err(pool);
            assert_eq!(errors.len(), 1, "{errors:#?}");
            let at = format!("rules.toml:{line}:{column}: rule api: ");
            assert!(errors[0].starts_with(&at), "{} not at {at}", errors[0]);
            assert!(errors[0].contains(says), "{}", errors[0]);
        }
    }
}
