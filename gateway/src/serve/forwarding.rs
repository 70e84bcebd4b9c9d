//! Standard forwarding headers on proxied requests: `X-Forwarded-For`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Real-IP` and `X-Request-Id`.
//!
//! Who may name the client to the upstream:
//! - `X-Forwarded-For`: every line the client sent is kept, combined in
//!   order into one line, and the TCP peer is appended (nginx's
//!   `$proxy_add_x_forwarded_for`). Its right-most entry is always ours;
//!   only [`TrustedProxies`] decides how many entries left of it to
//!   believe.
//! - `X-Real-IP`: always set to the client address the gateway decided on
//!   (the one in access logs and click events), replacing whatever was
//!   sent. It is a single address with no chain to append to, so passing a
//!   sent one through would give the upstream a second, possibly different
//!   answer to "who is the client".
//! - `Forwarded` (RFC 7239): removed unless the TCP peer is a trusted
//!   proxy, so a client cannot claim an address; from a trusted proxy it
//!   passes unchanged. The gateway neither reads it nor adds to it.

use super::client_ip::TrustedProxies;
use super::headers::REQUEST_ID;
use pingora::http::RequestHeader;
use pingora::Result;
use std::net::IpAddr;

const FORWARDED_FOR: &str = "x-forwarded-for";

/// What the forwarding headers of one request become, worked out once for
/// either way of writing the request upstream: Pingora's header map
/// ([`apply`]) or the fast path's bytes (`serve::forward`).
pub struct Forwarding {
    /// `X-Forwarded-For`: every line sent, in order, and the TCP peer;
    /// empty means none is sent.
    pub chain: Vec<u8>,
    /// `X-Real-IP`: the client as the gateway decided it.
    pub real_ip: Option<IpAddr>,
    /// Whether a `Forwarded` header sent may pass (from a trusted proxy).
    pub keep_forwarded: bool,
    /// `X-Forwarded-Proto`.
    pub proto: &'static str,
    /// The request id, and whether it is new (to be sent) rather than the
    /// client's own (already in the request).
    pub request_id: String,
    /// See [`Forwarding::request_id`].
    pub new_id: bool,
}

impl Forwarding {
    /// The forwarding of a request whose `X-Forwarded-For` lines are
    /// `lines` and whose first `X-Request-Id` is `sent_id`; `client` is
    /// who the gateway decided the client is (see `TrustedProxies`).
    pub fn new<'a>(
        lines: impl Iterator<Item = &'a [u8]>,
        sent_id: Option<&str>,
        peer: Option<IpAddr>,
        client: Option<IpAddr>,
        trusted: &TrustedProxies,
        tls: bool,
    ) -> Forwarding {
        // Join the lines as bytes: a line that is not visible ASCII still
        // reaches the upstream as sent rather than being dropped.
        let mut chain = Vec::new();
        for line in lines {
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            if !chain.is_empty() {
                chain.extend_from_slice(b", ");
            }
            chain.extend_from_slice(line);
        }
        if let Some(ip) = peer {
            use std::io::Write;
            if !chain.is_empty() {
                chain.extend_from_slice(b", ");
            }
            // Writing into a Vec cannot fail.
            let _ = write!(chain, "{ip}");
        }
        let (request_id, new_id) = match sent_id {
            Some(id) if valid_request_id(id) => (id.to_string(), false),
            _ => (uuid::Uuid::now_v7().to_string(), true),
        };
        Forwarding {
            chain,
            real_ip: client,
            keep_forwarded: peer.is_some_and(|ip| trusted.trusts(ip)),
            proto: if tls { "https" } else { "http" },
            request_id,
            new_id,
        }
    }

    /// Whether a header the client sent is replaced or dropped here (so a
    /// writer passing the client's headers on leaves it out).
    pub fn replaces(&self, name: &str) -> bool {
        [
            "x-forwarded-for",
            "x-real-ip",
            "x-forwarded-proto",
            "x-forwarded-host",
        ]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
            || (!self.keep_forwarded && name.eq_ignore_ascii_case("forwarded"))
            || (self.new_id && name.eq_ignore_ascii_case(REQUEST_ID))
    }
}

/// Sets the forwarding headers on the upstream request; `peer` is the TCP
/// peer and `trusted` says whose forwarding headers are believed. Returns
/// the request id, so the response can carry it back to the client.
pub fn apply(
    req: &mut RequestHeader,
    peer: Option<IpAddr>,
    trusted: &TrustedProxies,
    tls: bool,
    original_host: Option<&str>,
) -> Result<String> {
    // Read before the chain below is rewritten; the same walk over the
    // same lines as the decision step, so it is the same address.
    let client = trusted.client(peer, || req.headers.get_all(FORWARDED_FOR));
    let sent_id = req.headers.get(REQUEST_ID).and_then(|v| v.to_str().ok());
    let lines = req
        .headers
        .get_all(FORWARDED_FOR)
        .iter()
        .map(|v| v.as_bytes());
    let f = Forwarding::new(lines, sent_id, peer, client, trusted, tls);
    if f.chain.is_empty() {
        req.remove_header(FORWARDED_FOR);
    } else {
        // One line replacing all: every value came from a valid header
        // value or an address, so this cannot fail in practice.
        req.insert_header("X-Forwarded-For", f.chain)?;
    }
    // Removing costs a lookup in two maps: only when there is something
    // to remove (the usual request has neither header).
    if !f.keep_forwarded && req.headers.contains_key("forwarded") {
        req.remove_header("forwarded");
    }
    match f.real_ip {
        Some(ip) => req.insert_header("X-Real-IP", ip.to_string())?,
        None if req.headers.contains_key("x-real-ip") => {
            req.remove_header("x-real-ip");
        }
        None => {}
    }
    req.insert_header("X-Forwarded-Proto", f.proto)?;
    if let Some(host) = original_host {
        req.insert_header("X-Forwarded-Host", host)?;
    }
    if f.new_id {
        req.insert_header(REQUEST_ID, &f.request_id)?;
    }
    Ok(f.request_id)
}

/// A client-supplied id is kept only when it is short and plain, so it
/// cannot smuggle anything into logs or upstream headers.
fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn values(req: &RequestHeader, name: &str) -> Vec<String> {
        req.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        for (k, v) in headers {
            req.append_header(k.to_string(), *v).unwrap();
        }
        req
    }

    #[test]
    fn every_forwarded_for_line_is_combined_in_order() {
        let mut req = request(&[
            ("X-Forwarded-For", "198.51.100.1"),
            ("X-Forwarded-For", "  "),
            ("X-Forwarded-For", "203.0.113.5, 10.0.0.9"),
        ]);
        let none = TrustedProxies::default();
        apply(&mut req, ip("192.0.2.7"), &none, false, None).unwrap();
        assert_eq!(
            values(&req, "x-forwarded-for"),
            ["198.51.100.1, 203.0.113.5, 10.0.0.9, 192.0.2.7"]
        );
        // Without a peer address the lines are still made one.
        let mut req = request(&[("X-Forwarded-For", "a"), ("X-Forwarded-For", "b")]);
        apply(&mut req, None, &none, false, None).unwrap();
        assert_eq!(values(&req, "x-forwarded-for"), ["a, b"]);
        assert!(values(&req, "x-real-ip").is_empty());
        let mut req = request(&[("X-Forwarded-For", " ")]);
        apply(&mut req, None, &none, false, None).unwrap();
        assert!(values(&req, "x-forwarded-for").is_empty());
    }

    #[test]
    fn an_untrusted_peer_cannot_name_an_address() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        let mut req = request(&[
            ("Forwarded", "for=1.2.3.4"),
            ("Forwarded", "for=5.6.7.8"),
            ("X-Real-IP", "1.2.3.4"),
            ("X-Real-IP", "5.6.7.8"),
            ("X-Forwarded-For", "1.2.3.4"),
        ]);
        apply(&mut req, ip("192.0.2.7"), &trusted, false, None).unwrap();
        assert!(values(&req, "forwarded").is_empty());
        assert_eq!(values(&req, "x-real-ip"), ["192.0.2.7"]);
        assert_eq!(values(&req, "x-forwarded-for"), ["1.2.3.4, 192.0.2.7"]);
    }

    #[test]
    fn a_trusted_proxy_keeps_forwarded_and_names_the_real_ip() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        let mut req = request(&[
            ("Forwarded", "for=198.51.100.23;proto=https"),
            ("X-Real-IP", "1.2.3.4"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Forwarded-For", "198.51.100.23"),
        ]);
        apply(&mut req, ip("10.1.2.3"), &trusted, true, None).unwrap();
        assert_eq!(values(&req, "forwarded"), ["for=198.51.100.23;proto=https"]);
        // The client from the whole chain, not the first line or the
        // X-Real-IP that was sent.
        assert_eq!(values(&req, "x-real-ip"), ["198.51.100.23"]);
        assert_eq!(
            values(&req, "x-forwarded-for"),
            ["1.2.3.4, 198.51.100.23, 10.1.2.3"]
        );
    }

    #[test]
    fn appends_and_generates() {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.insert_header("X-Forwarded-For", "10.0.0.1").unwrap();
        let id = apply(
            &mut req,
            Some("192.0.2.7".parse().unwrap()),
            &TrustedProxies::default(),
            true,
            Some("api.example.com"),
        )
        .unwrap();
        assert_eq!(req.headers["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
        assert_eq!(req.headers["x-forwarded-proto"], "https");
        assert_eq!(req.headers["x-forwarded-host"], "api.example.com");
        assert_eq!(req.headers[REQUEST_ID], id.as_str());
        assert_eq!(id.len(), 36);
    }

    /// A route's `request_headers` cannot spoof or drop what this sets:
    /// the rules refuse every name it touches.
    #[test]
    fn every_header_set_or_dropped_here_is_refused_to_routes() {
        let mut req = request(&[("Forwarded", "for=1.2.3.4"), ("X-Real-IP", "1.2.3.4")]);
        let none = TrustedProxies::default();
        apply(
            &mut req,
            ip("192.0.2.7"),
            &none,
            true,
            Some("a.example.com"),
        )
        .unwrap();
        assert!(!req.headers.contains_key("forwarded"));
        let mut touched: Vec<&str> = req.headers.keys().map(|n| n.as_str()).collect();
        touched.push("forwarded");
        assert_eq!(
            touched.len(),
            rules::FORWARDING_HEADERS.len(),
            "{touched:?}"
        );
        for name in touched {
            assert!(rules::FORWARDING_HEADERS.contains(&name), "{name}");
        }
    }

    #[test]
    fn keeps_a_plain_client_request_id() {
        let none = TrustedProxies::default();
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.insert_header("X-Request-Id", "abc-123").unwrap();
        assert_eq!(
            apply(&mut req, None, &none, false, None).unwrap(),
            "abc-123"
        );
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.insert_header("X-Request-Id", "a b<script>").unwrap();
        assert_ne!(
            apply(&mut req, None, &none, false, None).unwrap(),
            "a b<script>"
        );
    }
}
