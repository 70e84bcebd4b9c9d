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
    s.serialize_str(cut(ua))
}

impl Event<'_> {
    /// Appends the event as one JSON line, newline included, to `out`.
    ///
    /// Written by hand rather than through serde_json, which was 5 % of a
    /// redirect's CPU with every request a click: most fields need no
    /// escaping and go in as they are, and the line needs no second UTF-8
    /// check. The bytes are serde_json's (a test compares them), so
    /// `Serialize` stays the event's schema.
    pub fn write_line(&self, out: &mut String) {
        // The schema is a constant: its digits are part of the text (the
        // byte-for-byte test against serde_json fails if they drift).
        out.push_str("{\"schema\":1,\"ts\":\"");
        push_ts(out, self.ts);
        out.push('"');
        field(out, ",\"click_id\":", Some(self.click_id));
        field(out, ",\"rule\":", Some(self.rule));
        field(out, ",\"code\":", self.code);
        field(out, ",\"host\":", Some(self.host));
        field(out, ",\"path\":", Some(self.path));
        field(out, ",\"device\":", Some(self.device));
        field(out, ",\"country\":", self.country);
        out.push_str(",\"variant\":");
        match self.variant {
            Some(v) => push_uint(out, v as u64),
            None => out.push_str("null"),
        }
        field(out, ",\"destination\":", Some(self.destination));
        field(out, ",\"referer\":", self.referer);
        field(out, ",\"user_agent\":", Some(cut(self.user_agent)));
        out.push_str(",\"client_ip\":");
        match self.client_ip {
            Some(IpAddr::V4(ip)) => push_ipv4(out, ip),
            Some(ip) => {
                use std::fmt::Write as _;
                let _ = write!(out, "\"{ip}\"");
            }
            None => out.push_str("null"),
        }
        field(out, ",\"request_id\":", self.request_id);
        out.push_str("}\n");
    }
}

/// `"a.b.c.d"`, quotes included, composed on the stack and appended in one
/// copy: digit by digit into the line, each push checking the capacity,
/// it was a tenth of the line's cost.
fn push_ipv4(out: &mut String, ip: std::net::Ipv4Addr) {
    let mut text = [0u8; 17];
    text[0] = b'"';
    let mut at = 1;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            text[at] = b'.';
            at += 1;
        }
        if octet >= 100 {
            text[at] = b'0' + octet / 100;
            at += 1;
        }
        if octet >= 10 {
            text[at] = b'0' + octet / 10 % 10;
            at += 1;
        }
        text[at] = b'0' + octet % 10;
        at += 1;
    }
    text[at] = b'"';
    // ASCII digits, dots and quotes only.
    out.push_str(std::str::from_utf8(&text[..=at]).unwrap_or("null"));
}

/// `n` in decimal.
pub(super) fn push_uint(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Digit by digit: the numbers are short (an address's octets, the
    // schema), and a copy call per number cost more than the digits.
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// `t` as humantime's RFC 3339 with microseconds
/// (`2026-12-02T20:31:05.123456Z`). The calendar part is worked out once
/// per second and thread; formatting it for every click through
/// `fmt::Display` was most of the line's cost after the escaping.
fn push_ts(out: &mut String, t: SystemTime) {
    thread_local! {
        /// The second last written, and its `YYYY-MM-DDTHH:MM:SS.`.
        static SECOND: std::cell::Cell<(u64, [u8; 20])> = const { std::cell::Cell::new((u64::MAX, [0; 20])) };
    }
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let prefix = SECOND.with(|cell| {
        let (cached, prefix) = cell.get();
        if cached == secs {
            return prefix;
        }
        let whole = humantime::format_rfc3339_seconds(
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs),
        )
        .to_string();
        let mut prefix = [b'.'; 20];
        let n = whole.len().saturating_sub(1).min(19);
        prefix[..n].copy_from_slice(&whole.as_bytes()[..n]);
        cell.set((secs, prefix));
        prefix
    });
    let mut text = [b'0'; 27];
    text[..20].copy_from_slice(&prefix);
    let mut m = since.subsec_micros();
    for d in text[20..26].iter_mut().rev() {
        *d = b'0' + (m % 10) as u8;
        m /= 10;
    }
    text[26] = b'Z';
    // ASCII only: humantime's digits and separators, and ours.
    out.push_str(std::str::from_utf8(&text).unwrap_or(""));
}

/// `name` (the comma, the quoted key and the colon), then the value as a
/// JSON string escaped as serde_json escapes, or `null`. Inlined, so each
/// name is a copy of known length rather than a call.
#[inline(always)]
fn field(out: &mut String, name: &str, value: Option<&str>) {
    out.push_str(name);
    let Some(value) = value else {
        out.push_str("null");
        return;
    };
    out.push('"');
    if !needs_escape(value.as_bytes()) {
        out.push_str(value);
    } else {
        for c in value.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{08}' => out.push_str("\\b"),
                '\u{0c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => {
                    use std::fmt::Write as _;
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

/// Whether `bytes` hold a `"`, a `\\` or a control character (what JSON
/// escapes). Sixteen bytes at a time with word arithmetic, the three tests
/// folded into one branch, the tail as one overlapping word: a byte-wise
/// check of every field was the largest part of writing a line. Only a
/// field shorter than a word goes byte by byte.
fn needs_escape(bytes: &[u8]) -> bool {
    let (pairs, rest) = bytes.as_chunks::<16>();
    let mut found = pairs.iter().fold(0, |acc, pair| {
        let (a, b) = pair.split_at(8);
        acc | escapes(word(a)) | escapes(word(b))
    });
    // The last 8 bytes again (overlap is harmless in an "any"), or, when
    // the whole is shorter, its bytes one by one: padding them into a word
    // went through a copy call and a load that waited on its byte stores
    // (no store forwarding), three quarters of this function's time with
    // short fields such as `device` and `country`.
    if rest.len() > 8 {
        found |= escapes(word(&rest[..8]));
    }
    if bytes.len() >= 8 {
        if !rest.is_empty() {
            found |= escapes(word(&bytes[bytes.len() - 8..]));
        }
    } else if rest.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        return true;
    }
    found != 0
}

/// Eight bytes as a word (`bytes` holds exactly eight).
#[inline(always)]
fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(bytes);
    u64::from_ne_bytes(w)
}

/// Non-zero when a byte of `x` is below 0x20, a `"` or a `\\` (the high bit
/// of such a byte is set; exact for whether any is).
#[inline(always)]
fn escapes(x: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let quote = x ^ (ONES * u64::from(b'"'));
    let backslash = x ^ (ONES * u64::from(b'\\'));
    // A byte below n: subtracting n borrows into its high bit (a zero
    // byte is one below 1).
    ((x.wrapping_sub(ONES * 0x20) & !x)
        | (quote.wrapping_sub(ONES) & !quote)
        | (backslash.wrapping_sub(ONES) & !backslash))
        & HIGH
}

/// The User-Agent cut to [`MAX_USER_AGENT`] bytes, on a character boundary.
fn cut(ua: &str) -> &str {
    let mut end = ua.len().min(MAX_USER_AGENT);
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    &ua[..end]
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
    fn escapes_are_found_wherever_they_are() {
        assert!(!needs_escape(b""));
        assert!(!needs_escape(
            "Mozilla/5.0 (iPhone) ~\x7f é 日本".as_bytes()
        ));
        for bad in [b'"', b'\\', 0, 0x1f, b'\n'] {
            for at in 0..20 {
                let mut v = vec![b'a'; 20];
                v[at] = bad;
                assert!(needs_escape(&v), "byte {bad:#x} at {at}");
            }
        }
        // Bytes just around the escaped ones are clean.
        for ok in [0x20u8, b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff] {
            assert!(!needs_escape(&[ok; 17]), "byte {ok:#x}");
        }
    }

    #[test]
    fn escapes_are_found_at_every_length_and_place() {
        // Every length around the 16-byte steps and the 8-byte tails.
        for len in 0..50 {
            assert!(!needs_escape(&vec![b'a'; len]), "clean, {len} bytes");
            for at in 0..len {
                for bad in [b'"', b'\\', 0, 0x1f] {
                    let mut v = vec![0xffu8; len];
                    v[at] = bad;
                    assert!(needs_escape(&v), "byte {bad:#x} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn ipv4_addresses_are_written_as_displayed() {
        for ip in ["0.0.0.0", "9.10.99.100", "203.0.113.0", "255.255.255.255"] {
            let ip: std::net::Ipv4Addr = ip.parse().unwrap();
            let mut out = String::new();
            push_ipv4(&mut out, ip);
            assert_eq!(out, format!("\"{ip}\""));
        }
    }

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

    #[test]
    fn the_line_is_serde_jsons_byte_for_byte() {
        let odd = "a\"b\\c\nd\re\tf\u{01}g\u{1f}h é 😀 </script>";
        let cases = [
            (
                Some("c"),
                Some("DE"),
                Some(2),
                Some(odd),
                Some("203.0.113.0"),
                Some("id-1"),
            ),
            (None, None, None, None, None, None),
            (
                Some(odd),
                Some(odd),
                Some(0),
                Some(""),
                Some("2001:db8::"),
                Some(odd),
            ),
        ];
        for (code, country, variant, referer, ip, request_id) in cases {
            let ua = format!("{odd}{}", "x".repeat(600));
            let e = Event {
                schema: (),
                ts: SystemTime::UNIX_EPOCH
                    + std::time::Duration::from_micros(1_781_524_800_123_456),
                click_id: "01abc",
                rule: odd,
                code,
                host: "go.example.com",
                path: odd,
                device: "ios",
                country,
                variant,
                destination: "https://x/?a=1&b=\"2\"",
                referer,
                user_agent: &ua,
                client_ip: ip.map(|ip| ip.parse().unwrap()),
                request_id,
            };
            let mut line = String::new();
            e.write_line(&mut line);
            let mut expected = serde_json::to_string(&e).unwrap();
            expected.push('\n');
            assert_eq!(line, expected);
        }
    }

    #[test]
    fn times_and_addresses_are_written_as_serde_json_writes_them() {
        // Within one second, across seconds, days and years, and
        // microseconds with leading zeros: the calendar part is cached
        // per second.
        let micros = [
            0u64,
            1,
            999_999,
            1_781_524_800_000_007,
            1_781_524_800_000_070,
            1_781_524_800_999_999,
            1_781_524_801_000_000,
            1_798_761_599_999_999,
            1_798_761_600_000_001,
            4_102_444_800_123_456,
        ];
        let ips = [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "::",
            "2001:db8::1",
            "::ffff:1.2.3.4",
        ];
        for (i, us) in micros.into_iter().enumerate() {
            let e = Event {
                schema: (),
                ts: SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(us),
                click_id: "id",
                rule: "r",
                code: None,
                host: "h",
                path: "/",
                device: "ios",
                country: None,
                variant: Some(i * 1_000_003),
                destination: "https://x/",
                referer: None,
                user_agent: "ua",
                client_ip: Some(ips[i % ips.len()].parse().unwrap()),
                request_id: None,
            };
            let mut line = String::new();
            e.write_line(&mut line);
            let mut expected = serde_json::to_string(&e).unwrap();
            expected.push('\n');
            assert_eq!(line, expected);
        }
    }
}
