//! Host names: normalization and what a rule's `host` key means.

use std::borrow::Cow;

/// Which hosts a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum HostSpec {
    /// One host, normalized.
    Exact(String),
    /// `*.example.com`: any subdomain, at any depth, of the suffix. Holds the
    /// suffix with its leading dot (`.example.com`).
    Wildcard(String),
    /// No host, or `*`.
    Any,
}

impl HostSpec {
    /// Parses a rule's `host` value.
    pub(crate) fn parse(host: Option<&str>) -> Result<HostSpec, String> {
        let Some(h) = host else {
            return Ok(HostSpec::Any);
        };
        if h == "*" {
            return Ok(HostSpec::Any);
        }
        if let Some(suffix) = h.strip_prefix("*.") {
            let n = normalize(suffix).map_err(|e| format!("host `{h}`: {e}"))?;
            if n.is_empty() || n.contains('*') {
                return Err(format!(
                    "host `{h}`: a wildcard must look like *.example.com"
                ));
            }
            return Ok(HostSpec::Wildcard(format!(".{n}")));
        }
        if h.contains('*') {
            return Err(format!(
                "host `{h}`: `*` is only allowed as a whole first label (*.example.com)"
            ));
        }
        let n = normalize(h).map_err(|e| format!("host `{h}`: {e}"))?;
        if n.is_empty() {
            return Err("host is empty: omit it or use \"*\" for any host".into());
        }
        Ok(HostSpec::Exact(n.into_owned()))
    }

    /// How the host reads in messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            HostSpec::Exact(h) => h.clone(),
            HostSpec::Wildcard(s) => format!("*{s}"),
            HostSpec::Any => "*".into(),
        }
    }
}

/// Normalizes a request host: lower case, port and trailing dot removed.
/// An empty host (HTTP/1.0 without `Host`) stays empty and only matches
/// any-host rules.
pub(crate) fn normalize(host: &str) -> Result<Cow<'_, str>, &'static str> {
    let without_port = if host.starts_with('[') {
        // IPv6 literal: keep the brackets, drop the port after them.
        match host.find(']') {
            Some(end) => &host[..=end],
            None => return Err("unterminated IPv6 literal"),
        }
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            Some(_) => return Err("invalid port"),
            None => host,
        }
    };
    let h = without_port.strip_suffix('.').unwrap_or(without_port);
    let ipv6 = h.starts_with('[');
    let valid = h.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || b == b'-'
            || b == b'.'
            || b == b'_'
            || (ipv6 && matches!(b, b'[' | b']' | b':'))
    });
    if !valid {
        return Err("invalid characters in host");
    }
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        Ok(Cow::Owned(h.to_ascii_lowercase()))
    } else {
        Ok(Cow::Borrowed(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_port_and_trailing_dot() {
        assert_eq!(normalize("Go.Example.COM:8080").unwrap(), "go.example.com");
        assert_eq!(normalize("go.example.com.").unwrap(), "go.example.com");
        assert_eq!(normalize("[::1]:80").unwrap(), "[::1]");
        assert_eq!(normalize("").unwrap(), "");
        assert!(normalize("a b").is_err());
        assert!(normalize("evil.com/x").is_err());
        assert!(normalize("a:b").is_err());
    }

    #[test]
    fn parses_rule_hosts() {
        assert_eq!(HostSpec::parse(None).unwrap(), HostSpec::Any);
        assert_eq!(HostSpec::parse(Some("*")).unwrap(), HostSpec::Any);
        assert_eq!(
            HostSpec::parse(Some("*.Example.com")).unwrap(),
            HostSpec::Wildcard(".example.com".into())
        );
        assert!(HostSpec::parse(Some("a.*.com")).is_err());
        assert!(HostSpec::parse(Some("")).is_err());
    }
}
