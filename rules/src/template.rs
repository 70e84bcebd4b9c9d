//! Destination templates: `https://shop.example.com/product/{sku}`.
//!
//! A template is checked once when the rule set is compiled (absolute URL,
//! allowed scheme, no placeholder before the path, only captures the pattern
//! defines) so that rendering on the request path is a handful of string
//! pushes. Static templates keep a ready `HeaderValue`.

use http::HeaderValue;

use crate::encode::{self, Keep};

/// Where a placeholder sits, which decides how its value is escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    Path,
    Query,
    Fragment,
}

#[derive(Debug, Clone)]
enum Part {
    Literal(Box<str>),
    Capture { name: Box<str>, position: Position },
}

/// A parsed destination.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    raw: Box<str>,
    parts: Box<[Part]>,
    /// Length of `scheme://authority`, which no value can ever change.
    origin_len: usize,
    /// The finished header value when the template has no placeholders.
    static_value: Option<HeaderValue>,
}

/// Looks up capture values by name.
pub(crate) trait Captures {
    /// The raw (still percent-encoded) value of capture `name`.
    fn get(&self, name: &str) -> Option<&str>;
}

impl Template {
    /// Parses and checks `raw`. `schemes` are the allowed schemes (lower
    /// case); `captures` the names the rule's pattern defines.
    pub(crate) fn parse(raw: &str, schemes: &[String], captures: &[&str]) -> Result<Self, String> {
        let (origin_len, scheme) = split_origin(raw)?;
        if !schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
            return Err(format!(
                "scheme `{scheme}` is not allowed (allowed: {}; add app schemes to settings.app_schemes)",
                schemes.join(", ")
            ));
        }
        let mut parts = Vec::new();
        let mut position = Position::Path;
        let mut literal = String::new();
        let mut rest = raw;
        let mut consumed = 0;
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .map(|c| open + c)
                .ok_or_else(|| format!("unclosed `{{` at byte {}", consumed + open))?;
            let before = &rest[..open];
            position = advance(position, before);
            literal.push_str(before);
            let name = &rest[open + 1..close];
            if !valid_name(name) {
                return Err(format!("`{{{name}}}` is not a valid placeholder name"));
            }
            if !captures.contains(&name) {
                let defined = if captures.is_empty() {
                    "none".to_string()
                } else {
                    captures.join(", ")
                };
                return Err(format!(
                    "uses `{{{name}}}`, which the rule does not capture (captures: {defined})"
                ));
            }
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal).into()));
            }
            parts.push(Part::Capture {
                name: name.into(),
                position,
            });
            consumed += close + 1;
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err("unmatched `}`".into());
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal.into()));
        }
        // A sample rendering must be a URL whose origin is the template's,
        // and must already pass the same check every request goes through.
        let sample: String = parts
            .iter()
            .map(|p| match p {
                Part::Literal(s) => s,
                Part::Capture { .. } => "x",
            })
            .collect();
        check_url(&sample, origin_len)?;
        let static_value = if parts.iter().all(|p| matches!(p, Part::Literal(_))) {
            Some(HeaderValue::from_str(raw).map_err(|_| "not a valid header value".to_string())?)
        } else {
            None
        };
        Ok(Template {
            raw: raw.into(),
            parts: parts.into(),
            origin_len,
            static_value,
        })
    }

    /// The template as written.
    pub(crate) fn raw(&self) -> &str {
        &self.raw
    }

    /// Length of `scheme://authority`.
    pub(crate) fn origin_len(&self) -> usize {
        self.origin_len
    }

    /// The pre-built header value of a template without placeholders.
    pub(crate) fn static_value(&self) -> Option<&HeaderValue> {
        self.static_value.as_ref()
    }

    /// Renders the template with `captures`, escaping each value for its
    /// position. Returns `None` if a capture is missing (cannot happen for a
    /// validated rule, but the request path must not panic).
    // Inlined into the redirect path so the `dyn Captures` call resolves to
    // the matcher's captures; see `query::merge` for why it is asked for.
    #[inline]
    pub(crate) fn render(&self, captures: &dyn Captures) -> Option<String> {
        if self.static_value.is_some() {
            return Some(self.raw.to_string());
        }
        let mut out = String::with_capacity(self.raw.len() + 32);
        for part in self.parts.iter() {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Capture { name, position } => {
                    let value = captures.get(name)?;
                    let keep: &Keep = match position {
                        Position::Path => &encode::PATH,
                        Position::Query => &encode::QUERY_VALUE,
                        Position::Fragment => &encode::FRAGMENT,
                    };
                    encode::push(&mut out, value, keep);
                }
            }
        }
        Some(out)
    }
}

/// Splits off `scheme://authority`; returns its length and the scheme.
pub(crate) fn split_origin(raw: &str) -> Result<(usize, &str), String> {
    let Some(sep) = raw.find("://") else {
        if let Some((scheme, _)) = raw.split_once(':') {
            let plain = scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            if !scheme.is_empty() && plain {
                return Err(format!(
                    "uses `{scheme}:` without `//`: destinations must be scheme://host/... with an allowed scheme"
                ));
            }
        }
        return Err("must be an absolute URL (scheme://host/...)".into());
    };
    let scheme = &raw[..sep];
    if scheme.contains('{') {
        return Err("placeholders are not allowed in the scheme".into());
    }
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid {
        return Err(format!("`{scheme}` is not a valid URL scheme"));
    }
    let after = &raw[sep + 3..];
    let authority_len = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = &after[..authority_len];
    if authority.contains('{') || authority.contains('}') {
        return Err(
            "placeholders are not allowed in the host: the host is fixed by the rule".into(),
        );
    }
    if authority.is_empty()
        && (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
    {
        return Err("has no host".into());
    }
    if authority.contains('@') {
        return Err("must not contain credentials (user@host)".into());
    }
    Ok((sep + 3 + authority_len, scheme))
}

/// Checks a rendered location: its origin must be followed by the start of a
/// path, query or fragment (so nothing can extend the host), and every byte
/// after the origin must be one a URL may hold unescaped: no CR, LF, space,
/// control or non-ASCII byte can reach the `Location` header.
pub(crate) fn check_location(location: &str, origin_len: usize) -> bool {
    let Some(tail) = location.get(origin_len..) else {
        return false;
    };
    (tail.is_empty() || matches!(tail.as_bytes()[0], b'/' | b'?' | b'#'))
        && encode::all_kept(tail, &encode::LOCATION)
        && !has_dot_segment(tail)
}

/// `.` or `..` as a path segment (also escaped, as URL parsers read
/// `%2e` as a dot): a capture must not walk the destination's path up to
/// pages the rule never pointed at.
fn has_dot_segment(tail: &str) -> bool {
    let path = &tail[..tail.find(['?', '#']).unwrap_or(tail.len())];
    if !path.contains('.') && !path.contains('%') {
        return false;
    }
    path.split('/').any(|seg| {
        let s = seg.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    })
}

/// Load-time check of a complete URL: it parses, and it passes the
/// request-time check.
pub(crate) fn check_url(url: &str, origin_len: usize) -> Result<(), String> {
    let origin = &url[..origin_len];
    if !origin
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~:/[]+".contains(&b))
    {
        return Err(format!("`{origin}` has characters a host may not hold"));
    }
    if has_dot_segment(&url[origin_len..]) {
        return Err("has a `.` or `..` path segment: write the path it resolves to".into());
    }
    if !check_location(url, origin_len) {
        return Err(
            "has characters that must be percent-encoded (space, quote, control or non-ASCII)"
                .into(),
        );
    }
    url::Url::parse(url).map_err(|e| format!("is not a valid URL: {e}"))?;
    Ok(())
}

fn valid_name(name: &str) -> bool {
    let mut c = name.chars();
    c.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The position after `literal`: a `?` starts the query, a `#` the fragment.
fn advance(position: Position, literal: &str) -> Position {
    if literal.contains('#') || position == Position::Fragment {
        Position::Fragment
    } else if literal.contains('?') || position == Position::Query {
        Position::Query
    } else {
        Position::Path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Map<'a>(&'a [(&'a str, &'a str)]);
    impl Captures for Map<'_> {
        fn get(&self, name: &str) -> Option<&str> {
            self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
        }
    }

    fn schemes() -> Vec<String> {
        vec!["http".into(), "https".into(), "shopapp".into()]
    }

    #[test]
    fn renders_each_position_with_its_escaping() {
        let t = Template::parse(
            "https://s.example.com/p/{sku}?ref={sku}#{sku}",
            &schemes(),
            &["sku"],
        )
        .unwrap();
        let out = t.render(&Map(&[("sku", "a b&c=d")])).unwrap();
        assert_eq!(
            out,
            "https://s.example.com/p/a%20b&c=d?ref=a%20b%26c%3Dd#a%20b&c=d"
        );
        assert!(check_location(&out, t.origin_len()));
    }

    #[test]
    fn static_templates_keep_a_header_value() {
        let t = Template::parse("shopapp://product/1", &schemes(), &[]).unwrap();
        assert_eq!(t.static_value().unwrap(), "shopapp://product/1");
    }

    #[test]
    fn rejects_what_would_let_a_request_move_the_host() {
        let e = |raw: &str, caps: &[&str]| Template::parse(raw, &schemes(), caps).unwrap_err();
        assert!(e("https://{sku}.example.com/", &["sku"]).contains("host"));
        assert!(e("https://example.com{sku}", &["sku"]).contains("host"));
        assert!(e("{s}://example.com/", &["s"]).contains("scheme"));
        assert!(e("javascript://alert(1)", &[]).contains("not allowed"));
        assert!(e("https://example.com/{nope}", &["sku"]).contains("does not capture"));
        assert!(e("/relative", &[]).contains("absolute"));
        assert!(e("https://user@example.com/", &[]).contains("credentials"));
        assert!(e("https://example.com/a b", &[]).contains("percent-encoded"));
    }

    #[test]
    fn location_check_rejects_host_extension_and_control_bytes() {
        assert!(check_location("https://a.com/x?y#z", 13));
        assert!(check_location("https://a.com", 13));
        assert!(!check_location("https://a.com.evil.net/", 13));
        assert!(!check_location("https://a.com@evil.net/", 13));
        assert!(!check_location("https://a.com/\r\nSet-Cookie: x", 13));
        assert!(!check_location("https://a.com/\\evil", 13));
        assert!(!check_location("https://a.com/é", 13));
        assert!(!check_location("https://a.com/p/../admin", 13));
        assert!(!check_location("https://a.com/p/%2E%2e/admin", 13));
        assert!(!check_location("https://a.com/p/./x", 13));
        assert!(check_location(
            "https://a.com/p/..x/.well-known/a.b?q=../..",
            13
        ));
    }
}
