//! A route's `rate_limit`: how many requests one client may make, and how
//! clients are told apart.

use http::HeaderName;
use std::time::Duration;

/// What tells one client from another for a route's rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    /// The client's address (after `trusted_proxies`, as in the access log).
    Ip,
    /// The value of a request header, e.g. an API key; requests without it
    /// share one allowance, so leaving it out is no way around the limit.
    Header(HeaderName),
}

impl LimitKey {
    /// As written in the rules: `ip` or `header:<name>`.
    pub fn describe(&self) -> String {
        match self {
            LimitKey::Ip => "ip".into(),
            LimitKey::Header(h) => format!("header:{h}"),
        }
    }
}

/// `rate_limit = { key = "ip", rate = "100/s", burst = 200 }`: each client
/// may make `burst` requests in any window of `burst` / `rate`, which over
/// time is `rate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// How clients are told apart.
    pub key: LimitKey,
    /// Requests per `per`.
    pub requests: u64,
    /// The unit of `rate`: a second, a minute or an hour.
    pub per: Duration,
    /// Requests allowed at once; the window is `burst / rate`.
    pub burst: u64,
}

impl RateLimit {
    /// The window the `burst` is counted over: `burst` requests at `rate`.
    pub fn window(&self) -> Duration {
        let secs = self.per.as_secs_f64() * self.burst as f64 / self.requests.max(1) as f64;
        // Whole milliseconds: the counter underneath works in them.
        Duration::from_millis((secs * 1000.0).ceil().max(1.0) as u64)
    }
}

/// Parses `"100/s"`, `"6000/m"` or `"50000/h"` into (requests, unit).
pub(crate) fn parse_rate(text: &str) -> Result<(u64, Duration), String> {
    let bad = || {
        format!(
            "rate `{text}` must be requests per unit, e.g. \"100/s\", \"6000/m\" or \"50000/h\""
        )
    };
    let (n, unit) = text.split_once('/').ok_or_else(bad)?;
    let n: u64 = n.trim().parse().map_err(|_| bad())?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    if n == 0 || n > 10_000_000 {
        return Err(format!(
            "rate `{text}`: requests must be between 1 and 10000000"
        ));
    }
    Ok((n, per))
}

/// Parses `ip` or `header:<name>`.
pub(crate) fn parse_key(text: &str) -> Result<LimitKey, String> {
    match text.split_once(':') {
        None if text == "ip" => Ok(LimitKey::Ip),
        Some(("header", name)) => HeaderName::from_bytes(name.trim().as_bytes())
            .map(LimitKey::Header)
            .map_err(|_| format!("rate_limit key `{text}`: `{name}` is not a valid header name")),
        _ => Err(format!(
            "rate_limit key `{text}` must be \"ip\" or \"header:<name>\" (e.g. \"header:X-Api-Key\")"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_keys_and_windows() {
        assert_eq!(parse_rate("100/s").unwrap(), (100, Duration::from_secs(1)));
        assert_eq!(
            parse_rate("6000/m").unwrap(),
            (6000, Duration::from_secs(60))
        );
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("100").is_err());
        assert!(parse_rate("100/d").is_err());
        assert_eq!(parse_key("ip").unwrap(), LimitKey::Ip);
        assert_eq!(
            parse_key("header:X-Api-Key").unwrap(),
            LimitKey::Header(HeaderName::from_static("x-api-key"))
        );
        assert!(parse_key("header:bad name").is_err());
        assert!(parse_key("cookie:a").is_err());
        let limit = |requests, per, burst| RateLimit {
            key: LimitKey::Ip,
            requests,
            per: Duration::from_secs(per),
            burst,
        };
        assert_eq!(limit(100, 1, 200).window(), Duration::from_secs(2));
        assert_eq!(limit(100, 1, 100).window(), Duration::from_secs(1));
        assert_eq!(limit(1, 60, 5).window(), Duration::from_secs(300));
        assert_eq!(limit(1000, 1, 1).window(), Duration::from_millis(1));
    }
}
