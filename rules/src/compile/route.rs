//! Compiling `[[route]]` rules: which upstream pool, and how the path and
//! `Host` are rewritten.

use super::Compiler;
use crate::encode;
use crate::format::RouteDef;
use crate::rule_ref::RuleRef;
use crate::ruleset::{RouteRule, Strip};

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
        self.routes.push(RouteRule {
            id: id.into(),
            upstream: d.upstream.get_ref().as_str().into(),
            strip,
            host_header: d.host_header.map(|h| h.into_inner().into()),
            max_body,
            upgrade: d.upgrade,
        });
    }
}

/// A route's request body limit when it sets none: nginx's
/// `client_max_body_size`.
pub const DEFAULT_MAX_BODY: u64 = 1 << 20;

/// A size written as a number of bytes or as `"512KiB"`, `"1MiB"`,
/// `"10MB"` (binary and decimal units, `B` alone, spaces allowed).
pub fn parse_size(v: &toml::Value) -> Result<u64, &'static str> {
    const SHAPE: &str = "must be a number of bytes or a size like \"1MiB\"";
    let text = match v {
        toml::Value::Integer(n) => return u64::try_from(*n).map_err(|_| "must not be negative"),
        toml::Value::String(s) => s.trim(),
        _ => return Err(SHAPE),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| SHAPE)?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        _ => return Err(SHAPE),
    };
    n.checked_mul(scale).ok_or("is too large")
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        let s = |t: &str| parse_size(&toml::Value::String(t.into()));
        assert_eq!(s("1MiB"), Ok(1 << 20));
        assert_eq!(s("512 KiB"), Ok(512 << 10));
        assert_eq!(s("10MB"), Ok(10_000_000));
        assert_eq!(s("42"), Ok(42));
        assert_eq!(parse_size(&toml::Value::Integer(0)), Ok(0));
        assert!(s("1.5MiB").is_err());
        assert!(s("lots").is_err());
        assert!(parse_size(&toml::Value::Integer(-1)).is_err());
        assert!(s("99999999999999999999GiB").is_err());
    }
}
