//! The `RateLimit-Policy` and `RateLimit` headers of
//! draft-ietf-httpapi-ratelimit-headers: the policy is `q` requests per
//! window of `w` seconds; the state is `r` requests left and `t` seconds
//! until the allowance is whole again (or, refused, until the next request
//! may go). The policy is named, as a structured-field string, so a client
//! can tell the gateway's from an upstream's.

use http::HeaderValue;
use std::fmt::Write as _;

/// `name` as a structured-field string: quoted, `"` and `\\` escaped.
pub fn quoted(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 24);
    out.push('"');
    for c in name
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
    {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `RateLimit-Policy: "<name>";q=<quota>;w=<window>`.
pub fn policy_header(name: &str, quota: u64, window_s: u64) -> Option<HeaderValue> {
    let mut v = quoted(name);
    let _ = write!(v, ";q={quota};w={}", window_s.max(1));
    HeaderValue::from_str(&v).ok()
}

/// `RateLimit: "<name>";r=<remaining>;t=<reset>`.
pub fn state_header(name: &str, remaining: u64, reset_s: u64) -> Option<HeaderValue> {
    let mut v = Vec::with_capacity(name.len() + 24);
    write_state(&mut v, &quoted(name), remaining, reset_s);
    HeaderValue::from_bytes(&v).ok()
}

/// Appends the `RateLimit` value for the policy `quoted` (see [`quoted`])
/// to `out`: how the fast path writes it, with no allocation.
pub fn write_state(out: &mut Vec<u8>, quoted: &str, remaining: u64, reset_s: u64) {
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(quoted.as_bytes());
    out.extend_from_slice(b";r=");
    out.extend_from_slice(digits.format(remaining).as_bytes());
    out.extend_from_slice(b";t=");
    out.extend_from_slice(digits.format(reset_s).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_structured_field_strings() {
        assert_eq!(policy_header("api", 200, 2).unwrap(), "\"api\";q=200;w=2");
        assert_eq!(
            state_header("a\"b\\c", 0, 3).unwrap(),
            "\"a\\\"b\\\\c\";r=0;t=3"
        );
        assert_eq!(policy_header("x", 1, 0).unwrap(), "\"x\";q=1;w=1");
    }
}
