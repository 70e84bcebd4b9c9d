//! Compiling a route's `request_headers` and `response_headers`: valid
//! names and values, each name once, and none of the headers the gateway
//! writes itself.

use http::{HeaderName, HeaderValue};
use toml::Spanned;

use super::Compiler;
use crate::format::HeaderChangesDef;
use crate::header_changes::{HeaderChanges, FORWARDING_HEADERS};

/// Which message of a proxied exchange a table changes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The request sent upstream.
    Request,
    /// The response sent to the client.
    Response,
}

impl Side {
    fn key(self) -> &'static str {
        match self {
            Side::Request => "request_headers",
            Side::Response => "response_headers",
        }
    }
}

impl Compiler {
    /// Compiles one table; every problem is an error at the name (or the
    /// value, for a bad value), and leaves that entry out.
    pub(crate) fn header_changes(
        &mut self,
        def: Option<HeaderChangesDef>,
        side: Side,
        rule: &str,
    ) -> HeaderChanges {
        let Some(def) = def else {
            return HeaderChanges::default();
        };
        // Both lists in file order, so a clash is reported at the later
        // entry whichever list it is in.
        let mut entries: Vec<(&Spanned<String>, Option<&Spanned<String>>)> = def
            .set
            .iter()
            .map(|(name, value)| (name, Some(value)))
            .chain(def.remove.iter().map(|name| (name, None)))
            .collect();
        entries.sort_by_key(|(name, _)| name.span().start);
        let mut set = Vec::new();
        let mut remove = Vec::new();
        // Names taken so far, and whether they were set (or removed).
        let mut taken: Vec<(HeaderName, bool)> = Vec::new();
        for (name, value) in entries {
            let key = side.key();
            let Ok(n) = HeaderName::from_bytes(name.get_ref().as_bytes()) else {
                let msg = format!("{key}: `{}` is not a valid header name", name.get_ref());
                self.err(name.span().start, rule, msg);
                continue;
            };
            let setting = value.is_some();
            let problem = match taken.iter().find(|(t, _)| *t == n) {
                Some((_, was_set)) if *was_set == setting => Some("is given twice"),
                Some(_) => Some("is both set and removed"),
                None => reserved(&n, side),
            };
            if let Some(why) = problem {
                let msg = format!("{key}: header `{}` {why}", name.get_ref());
                self.err(name.span().start, rule, msg);
                continue;
            }
            taken.push((n.clone(), setting));
            match value {
                None => remove.push(n),
                Some(v) => match HeaderValue::from_str(v.get_ref()) {
                    Ok(hv) => set.push((n, hv)),
                    Err(_) => {
                        let msg = format!(
                            "{key}: the value of `{}` is not a valid header value (visible ASCII, spaces and tabs only)",
                            name.get_ref()
                        );
                        self.err(v.span().start, rule, msg);
                    }
                },
            }
        }
        HeaderChanges::new(set, remove)
    }
}

/// Why a route cannot change a header, if it cannot.
///
/// The framing and hop-by-hop headers describe one connection's message,
/// which the gateway and Pingora write themselves: a rule's
/// `Content-Length` next to the real one is request smuggling or response
/// splitting waiting to happen. On the request side the forwarding headers
/// are what upstreams trust to name the client, and `Host` and `Upgrade`
/// have keys of their own; on the response side `Date` is rewritten by the
/// server anyway, and the request id and rules version are the gateway's.
fn reserved(name: &HeaderName, side: Side) -> Option<&'static str> {
    use http::header::*;
    if [CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION, TE, TRAILER].contains(name)
        || ["keep-alive", "proxy-connection"].contains(&name.as_str())
    {
        return Some("is set by the gateway");
    }
    match side {
        Side::Request if name == HOST => Some("has its own key: use `host_header`"),
        Side::Request if name == UPGRADE => Some("has its own key: use `upgrade`"),
        Side::Request if FORWARDING_HEADERS.contains(&name.as_str()) => {
            Some("is a forwarding header the gateway sets")
        }
        Side::Response
            if name == UPGRADE
                || name == DATE
                || ["x-request-id", "x-rules-version"].contains(&name.as_str()) =>
        {
            Some("is set by the gateway")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::{Decision, LoadOptions, Request, RuleSet};

    /// A rules file whose route `api` has `tables` as its line 5.
    fn doc(tables: &str) -> String {
        format!(
            "[[route]]\nid = \"api\"\nprefix = \"/\"\nupstream = \"api\"\n{tables}\n\n[upstream.api]\nservers = [\"127.0.0.1:9001\"]\n"
        )
    }

    fn load(tables: &str) -> Result<RuleSet, Vec<String>> {
        RuleSet::from_source(&doc(tables), "rules.toml", &LoadOptions::default())
            .map_err(|errors| errors.iter().map(ToString::to_string).collect())
    }

    /// The one error of `tables`, which must be at `needle` on line 5.
    #[track_caller]
    fn error_at(tables: &str, needle: &str) -> String {
        let errors = load(tables).expect_err("refused");
        assert_eq!(errors.len(), 1, "{errors:#?}");
        let column = tables.find(needle).expect("needle in the line") + 1;
        let prefix = format!("rules.toml:5:{column}: rule api: ");
        let Some(message) = errors[0].strip_prefix(&prefix) else {
            panic!("{} is not at {prefix}", errors[0]);
        };
        message.to_string()
    }

    fn names(set: &[(http::HeaderName, http::HeaderValue)]) -> Vec<(&str, &str)> {
        set.iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect()
    }

    #[test]
    fn both_tables_compile_into_the_proxy_decision() {
        let set = load(
            r#"request_headers = { set = { "X-Api-Version" = "1", "X-Team" = "payments" }, remove = ["Cookie"] }
response_headers = { set = { "Strict-Transport-Security" = "max-age=31536000" }, remove = ["Server", "x-powered-by"] }"#,
        )
        .unwrap();
        let Decision::Proxy(p) = set.decide(&Request::get("a.example.com", "/x", 0)) else {
            panic!("a route");
        };
        assert_eq!(
            names(p.request_headers.set()),
            [("x-api-version", "1"), ("x-team", "payments")]
        );
        assert_eq!(p.request_headers.remove(), ["cookie"]);
        assert_eq!(
            names(p.response_headers.set()),
            [("strict-transport-security", "max-age=31536000")]
        );
        assert_eq!(p.response_headers.remove(), ["server", "x-powered-by"]);
    }

    #[test]
    fn absent_and_empty_tables_change_nothing() {
        for tables in [
            "",
            "request_headers = {}\nresponse_headers = { set = {}, remove = [] }",
        ] {
            let set = load(tables).unwrap();
            let Decision::Proxy(p) = set.decide(&Request::get("a.example.com", "/x", 0)) else {
                panic!("a route");
            };
            assert!(p.request_headers.is_empty() && p.response_headers.is_empty());
        }
    }

    #[test]
    fn the_gateways_own_request_headers_are_refused() {
        for (name, why) in [
            ("Content-Length", "is set by the gateway"),
            ("Transfer-Encoding", "is set by the gateway"),
            ("Connection", "is set by the gateway"),
            ("Keep-Alive", "is set by the gateway"),
            ("Proxy-Connection", "is set by the gateway"),
            ("TE", "is set by the gateway"),
            ("Trailer", "is set by the gateway"),
            ("Host", "has its own key: use `host_header`"),
            ("Upgrade", "has its own key: use `upgrade`"),
            ("X-Forwarded-For", "is a forwarding header the gateway sets"),
            (
                "X-Forwarded-Proto",
                "is a forwarding header the gateway sets",
            ),
            (
                "x-forwarded-host",
                "is a forwarding header the gateway sets",
            ),
            ("X-Real-IP", "is a forwarding header the gateway sets"),
            ("Forwarded", "is a forwarding header the gateway sets"),
            ("X-Request-Id", "is a forwarding header the gateway sets"),
        ] {
            let want = format!("request_headers: header `{name}` {why}");
            let set = format!(r#"request_headers = {{ set = {{ "{name}" = "x" }} }}"#);
            assert_eq!(error_at(&set, &format!("\"{name}\"")), want);
            let remove = format!(r#"request_headers = {{ remove = ["{name}"] }}"#);
            assert_eq!(error_at(&remove, &format!("\"{name}\"")), want);
        }
    }

    #[test]
    fn the_gateways_own_response_headers_are_refused() {
        for name in [
            "Content-Length",
            "Transfer-Encoding",
            "Connection",
            "Keep-Alive",
            "Proxy-Connection",
            "TE",
            "Trailer",
            "Upgrade",
            "Date",
            "X-Request-Id",
            "X-Rules-Version",
        ] {
            let want = format!("response_headers: header `{name}` is set by the gateway");
            let set = format!(r#"response_headers = {{ set = {{ "{name}" = "x" }} }}"#);
            assert_eq!(error_at(&set, &format!("\"{name}\"")), want);
            let remove = format!(r#"response_headers = {{ remove = ["{name}"] }}"#);
            assert_eq!(error_at(&remove, &format!("\"{name}\"")), want);
        }
        // Forwarding headers mean nothing in a response: not the gateway's.
        load(r#"response_headers = { set = { "X-Forwarded-For" = "x" }, remove = ["Host"] }"#)
            .unwrap();
    }

    #[test]
    fn bad_names_and_values_are_refused_where_they_are() {
        assert_eq!(
            error_at(
                r#"request_headers = { set = { "Bad Header" = "1" } }"#,
                "\"Bad"
            ),
            "request_headers: `Bad Header` is not a valid header name"
        );
        assert_eq!(
            error_at(r#"response_headers = { remove = ["X:Y"] }"#, "\"X:Y"),
            "response_headers: `X:Y` is not a valid header name"
        );
        assert_eq!(
            error_at(
                r#"response_headers = { set = { "X-A" = "one\ntwo" } }"#,
                "\"one"
            ),
            "response_headers: the value of `X-A` is not a valid header value (visible ASCII, spaces and tabs only)"
        );
        assert_eq!(
            error_at(
                r#"request_headers = { set = { "X-A" = "a\u0000b" } }"#,
                "\"a\\u"
            ),
            "request_headers: the value of `X-A` is not a valid header value (visible ASCII, spaces and tabs only)"
        );
    }

    #[test]
    fn a_name_is_changed_once_in_any_spelling() {
        assert_eq!(
            error_at(
                r#"request_headers = { set = { "Cookie" = "a" }, remove = ["cookie"] }"#,
                "\"cookie"
            ),
            "request_headers: header `cookie` is both set and removed"
        );
        // Reported at the later entry, whichever list it is in.
        assert_eq!(
            error_at(
                r#"response_headers = { remove = ["X-A"], set = { "x-a" = "1" } }"#,
                "\"x-a"
            ),
            "response_headers: header `x-a` is both set and removed"
        );
        assert_eq!(
            error_at(
                r#"response_headers = { set = { "X-A" = "1", "x-a" = "2" } }"#,
                "\"x-a"
            ),
            "response_headers: header `x-a` is given twice"
        );
        assert_eq!(
            error_at(
                r#"request_headers = { remove = ["Cookie", "COOKIE"] }"#,
                "\"COOKIE"
            ),
            "request_headers: header `COOKIE` is given twice"
        );
        // The two sides are separate messages.
        load(
            r#"request_headers = { remove = ["X-A"] }
response_headers = { set = { "X-A" = "1" } }"#,
        )
        .unwrap();
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused_where_they_are() {
        assert_eq!(
            error_at(
                r#"request_headers = { set = { "X-A" = "1" }, add = { "X-B" = "2" } }"#,
                "add"
            ),
            "unknown field `add`, expected `set` or `remove`"
        );
        let message = error_at(r#"response_headers = { remove = "Server" }"#, "\"Server");
        assert!(message.contains("invalid type"), "{message}");
    }

    #[test]
    fn every_problem_of_a_table_is_reported() {
        let errors = load(
            r#"request_headers = { set = { "Host" = "x", "X-Ok" = "1", "X-Bad" = "a\rb" }, remove = ["X-Real-IP", "x-ok"] }"#,
        )
        .unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:#?}");
    }
}
