//! The click event: one JSON object per consumer click.

use serde::Serialize;
use std::net::IpAddr;
use std::time::SystemTime;

/// User-Agents are cut to this many bytes: enough to tell browsers apart,
/// and no attacker gets to write megabytes into the warehouse.
const MAX_USER_AGENT: usize = 512;

/// The version of the event's fields, written into every line: consumers
/// check it, and it changes when a field changes meaning or goes away
/// (added fields keep it).
pub const SCHEMA: u32 = 1;

/// One click, borrowed from the request and its decision.
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    /// Always [`SCHEMA`]; first in the line.
    #[serde(serialize_with = "schema")]
    pub schema: (),
    /// RFC 3339 with microseconds, UTC.
    #[serde(serialize_with = "rfc3339_micros")]
    pub ts: SystemTime,
    /// The id also carried by the destination URL.
    pub click_id: &'a str,
    /// Rule id, or link-set id for bulk links.
    pub rule: &'a str,
    /// Bulk-link code.
    pub code: Option<&'a str>,
    /// Host as requested.
    pub host: &'a str,
    /// Path as requested.
    pub path: &'a str,
    /// `ios`, `android` or `desktop`.
    pub device: &'a str,
    /// Country code from the configured header.
    pub country: Option<&'a str>,
    /// Split variant index.
    pub variant: Option<usize>,
    /// The final `Location`.
    pub destination: &'a str,
    /// `Referer` header.
    pub referer: Option<&'a str>,
    /// `User-Agent`, at most 512 bytes.
    #[serde(serialize_with = "truncated")]
    pub user_agent: &'a str,
    /// Client address, anonymized unless configured otherwise; written
    /// straight into the line, not made a string first.
    #[serde(serialize_with = "displayed")]
    pub client_ip: Option<IpAddr>,
    /// `X-Request-Id` sent by the client or an edge in front.
    pub request_id: Option<&'a str>,
}

fn schema<S: serde::Serializer>(_: &(), s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u32(SCHEMA)
}

fn rfc3339_micros<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_micros(*t))
}

fn displayed<S: serde::Serializer>(ip: &Option<IpAddr>, s: S) -> Result<S::Ok, S::Error> {
    match ip {
        Some(ip) => s.collect_str(ip),
        None => s.serialize_none(),
    }
}

fn truncated<S: serde::Serializer>(ua: &&str, s: S) -> Result<S::Ok, S::Error> {
    let mut end = ua.len().min(MAX_USER_AGENT);
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    s.serialize_str(&ua[..end])
}

impl Event<'_> {
    /// Writes the event as one JSON line, newline included, into `out`
    /// (cleared first), reusing its capacity.
    pub fn write_line(&self, out: &mut String) {
        out.clear();
        let mut bytes = std::mem::take(out).into_bytes();
        if serde_json::to_writer(&mut bytes, self).is_err() {
            bytes.clear();
        }
        bytes.push(b'\n');
        // serde_json writes UTF-8 only.
        *out = String::from_utf8(bytes).unwrap_or_default();
    }
}

/// Keeps the network part of an address: IPv4 /24, IPv6 /48.
pub fn anonymize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], 0, 0, 0, 0, 0])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymizes_to_the_network() {
        assert_eq!(
            anonymize("203.0.113.77".parse().unwrap()).to_string(),
            "203.0.113.0"
        );
        assert_eq!(
            anonymize("2001:db8:abcd:12::1".parse().unwrap()).to_string(),
            "2001:db8:abcd::"
        );
    }

    #[test]
    fn line_is_one_json_object() {
        let ua = "é".repeat(400);
        let e = Event {
            schema: (),
            ts: SystemTime::UNIX_EPOCH,
            click_id: "01abc",
            rule: "r",
            code: Some("c"),
            host: "go.example.com",
            path: "/c",
            device: "ios",
            country: None,
            variant: Some(1),
            destination: "https://x/",
            referer: None,
            user_agent: &ua,
            client_ip: Some(anonymize("203.0.113.9".parse().unwrap())),
            request_id: None,
        };
        let mut line = String::new();
        e.write_line(&mut line);
        assert!(line.ends_with("}\n") && line.matches('\n').count() == 1);
        assert!(line.starts_with("{\"schema\":1,\"ts\":"), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ts"], "1970-01-01T00:00:00.000000Z");
        assert_eq!(v["user_agent"].as_str().unwrap().len(), 512);
        assert_eq!(v["variant"], 1);
        assert_eq!(v["client_ip"], "203.0.113.0");
    }
}
