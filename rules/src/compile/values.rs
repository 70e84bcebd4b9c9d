//! Checks of the values every kind of rule shares: destinations, statuses,
//! `Cache-Control`, query mode, host, path and times, each reporting its
//! error at the value's own span.

use http::HeaderValue;
use toml::Spanned;

use super::{Compiler, DEFAULT_CACHE_CONTROL, MAX_PATH_LEN};
use crate::encode;
use crate::host::HostSpec;
use crate::query::QueryMode;
use crate::ruleset::TrailingSlash;
use crate::template::Template;
use crate::timestamp;

impl Compiler {
    /// A destination template, or an error at its span.
    pub(crate) fn template(
        &mut self,
        t: &Spanned<String>,
        rule: &str,
        captures: &[&str],
    ) -> Option<Template> {
        match Template::parse(t.get_ref(), &self.schemes, captures) {
            Ok(t) => Some(t),
            Err(msg) => {
                self.err(
                    t.span().start,
                    rule,
                    format!("destination `{}` {msg}", t.get_ref()),
                );
                None
            }
        }
    }

    pub(crate) fn status(
        &mut self,
        s: Option<&Spanned<i64>>,
        rule: &str,
        allowed: &[i64],
        default: u16,
    ) -> u16 {
        match s {
            None => default,
            Some(s) if allowed.contains(s.get_ref()) => *s.get_ref() as u16,
            Some(s) => {
                let list: Vec<String> = allowed.iter().map(i64::to_string).collect();
                self.err(
                    s.span().start,
                    rule,
                    format!(
                        "status {} is not allowed here (use {})",
                        s.get_ref(),
                        list.join(", ")
                    ),
                );
                default
            }
        }
    }

    pub(crate) fn cache_control(
        &mut self,
        cc: Option<&Spanned<String>>,
        rule: &str,
    ) -> HeaderValue {
        let fallback = HeaderValue::from_str(&self.settings.default_cache_control)
            .unwrap_or_else(|_| HeaderValue::from_static(DEFAULT_CACHE_CONTROL));
        match cc {
            None => fallback,
            Some(cc) => HeaderValue::from_str(cc.get_ref()).unwrap_or_else(|_| {
                self.err(
                    cc.span().start,
                    rule,
                    "cache_control is not a valid header value",
                );
                fallback
            }),
        }
    }

    pub(crate) fn query_mode(&mut self, q: Option<&Spanned<String>>, rule: &str) -> QueryMode {
        match q.map(|q| (q, QueryMode::parse(q.get_ref()))) {
            None => QueryMode::Merge,
            Some((_, Ok(m))) => m,
            Some((q, Err(msg))) => {
                self.err(q.span().start, rule, msg);
                QueryMode::Merge
            }
        }
    }

    pub(crate) fn host(
        &mut self,
        h: Option<&Spanned<String>>,
        rule: &str,
        offset: usize,
    ) -> Option<HostSpec> {
        match HostSpec::parse(h.map(|h| h.get_ref().as_str())) {
            Ok(spec) => Some(spec),
            Err(msg) => {
                self.err(h.map_or(offset, |h| h.span().start), rule, msg);
                None
            }
        }
    }

    /// Normalizes a rule path the way request paths are normalized.
    pub(crate) fn rule_path(&mut self, p: &Spanned<String>, rule: &str) -> Option<String> {
        let raw = p.get_ref();
        if raw.len() > MAX_PATH_LEN {
            self.err(
                p.span().start,
                rule,
                format!(
                    "path is {} bytes long; the limit is {MAX_PATH_LEN}",
                    raw.len()
                ),
            );
            return None;
        }
        if !raw.starts_with('/') {
            self.err(p.span().start, rule, format!("`{raw}` must start with /"));
            return None;
        }
        if raw
            .bytes()
            .any(|b| b <= b' ' || b == 0x7f || b == b'?' || b == b'#')
        {
            self.err(
                p.span().start,
                rule,
                format!("`{raw}` must not contain spaces, control characters, `?` or `#`"),
            );
            return None;
        }
        let Ok(decoded) = encode::decode_unreserved(raw) else {
            self.err(
                p.span().start,
                rule,
                format!("`{raw}` has a bad percent-escape"),
            );
            return None;
        };
        let mut s = decoded.into_owned();
        if self.settings.trailing_slash == TrailingSlash::Ignore && s.len() > 1 && s.ends_with('/')
        {
            s.pop();
        }
        Some(s)
    }

    pub(crate) fn time(&mut self, t: &Spanned<toml::Value>, rule: &str) -> Option<i64> {
        match timestamp::parse_value(t.get_ref()) {
            Ok(v) => Some(v),
            Err(msg) => {
                self.err(t.span().start, rule, msg);
                None
            }
        }
    }
}
