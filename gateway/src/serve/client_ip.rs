//! The client's address behind load balancers and CDNs.
//!
//! Splits, click de-duplication, click events, access logs and consistent
//! hashing all want the visitor's address, not the load balancer's. When
//! the TCP peer is a trusted proxy (`[server] trusted_proxies`), the client
//! is the right-most address in `X-Forwarded-For` that is not itself a
//! trusted proxy; anything left of it could have been written by the
//! client and is ignored. Several `X-Forwarded-For` lines form one chain,
//! in order (RFC 9110 §5.3), exactly as `forwarding` combines them for the
//! upstream: reading only the first line would let a client choose its
//! address by sending a line of its own ahead of the proxy's.

use ipnet::IpNet;
use std::net::IpAddr;

/// Networks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses CIDRs (`10.0.0.0/8`) or single addresses (`192.0.2.1`).
    pub fn parse(entries: &[String]) -> anyhow::Result<Self> {
        let mut nets = Vec::new();
        for e in entries {
            let net = match e.parse::<IpNet>() {
                Ok(n) => n,
                Err(_) => match e.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => anyhow::bail!(
                        "config: server.trusted_proxies: `{e}` is not an address or CIDR"
                    ),
                },
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    /// Whether `ip` is in one of the trusted networks.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client address for a connection from `peer`; `forwarded_for`
    /// gives its `X-Forwarded-For` lines in order (an `Option<&str>` for
    /// one line, `HeaderMap::get_all` for all of them) and is only called
    /// when the peer is trusted, so untrusted traffic costs no header
    /// lookup.
    pub fn client<L>(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: impl FnOnce() -> L,
    ) -> Option<IpAddr>
    where
        L: IntoIterator,
        L::IntoIter: DoubleEndedIterator,
        L::Item: AsRef<[u8]>,
    {
        let peer = peer?;
        if self.0.is_empty() || !self.trusts(peer) {
            return Some(peer);
        }
        let mut client = peer;
        // Walk the chain from the right: the last line, then the one
        // before it, each from its last hop.
        for line in forwarded_for().into_iter().rev() {
            let line = line.as_ref();
            // An empty line adds no hop; `forwarding` drops it too.
            if line.trim_ascii().is_empty() {
                continue;
            }
            for hop in line.rsplit(|&b| b == b',') {
                let ip = std::str::from_utf8(hop.trim_ascii())
                    .ok()
                    .and_then(|h| h.parse::<IpAddr>().ok());
                match ip {
                    Some(ip) if self.trusts(ip) => client = ip,
                    Some(ip) => return Some(ip),
                    // A hop that is not an address ends what can be believed.
                    None => return Some(client),
                }
            }
        }
        Some(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn right_most_untrusted_hop_is_the_client() {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.0.2.1".into()]).unwrap();
        // Not from a trusted proxy: the header is ignored.
        assert_eq!(
            t.client(ip("203.0.113.9"), || Some("198.51.100.1")),
            ip("203.0.113.9")
        );
        // From a trusted proxy: the right-most untrusted hop.
        assert_eq!(
            t.client(ip("10.1.2.3"), || Some("198.51.100.1, 203.0.113.5")),
            ip("203.0.113.5")
        );
        assert_eq!(
            t.client(ip("10.1.2.3"), || Some("203.0.113.5, 10.9.9.9, 192.0.2.1")),
            ip("203.0.113.5")
        );
        // A spoofed left part is not believed.
        assert_eq!(
            t.client(ip("10.1.2.3"), || Some("1.2.3.4, 203.0.113.5")),
            ip("203.0.113.5")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            t.client(ip("10.1.2.3"), || Some("203.0.113.5, nonsense")),
            ip("10.1.2.3")
        );
        assert_eq!(t.client(ip("10.1.2.3"), || None::<&str>), ip("10.1.2.3"));
        // No trusted proxies: always the peer.
        assert_eq!(
            TrustedProxies::default().client(ip("10.1.2.3"), || Some("203.0.113.5")),
            ip("10.1.2.3")
        );
        assert!(TrustedProxies::parse(&["nope".into()]).is_err());
    }

    #[test]
    fn every_forwarded_for_line_is_one_chain() {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        // The client's own line comes first; the proxy's line, with the
        // address it saw, comes last and is the one believed.
        assert_eq!(
            t.client(ip("10.1.2.3"), || ["1.2.3.4", "203.0.113.5"]),
            ip("203.0.113.5")
        );
        // Trusted hops are skipped across lines, right to left.
        assert_eq!(
            t.client(ip("10.1.2.3"), || ["1.2.3.4, 203.0.113.5", "10.9.9.9"]),
            ip("203.0.113.5")
        );
        // Empty lines add no hop; garbage still stops the walk.
        assert_eq!(
            t.client(ip("10.1.2.3"), || ["203.0.113.5", " ", "10.9.9.9"]),
            ip("203.0.113.5")
        );
        assert_eq!(
            t.client(ip("10.1.2.3"), || ["203.0.113.5", "nonsense, 10.9.9.9"]),
            ip("10.9.9.9")
        );
        assert_eq!(
            t.client(ip("10.1.2.3"), || [&b"203.0.113.5"[..], b"\xff"]),
            ip("10.1.2.3")
        );
        // As read from a request: every line, in order.
        let mut headers = http::HeaderMap::new();
        headers.append("x-forwarded-for", "1.2.3.4".parse().unwrap());
        headers.append("x-forwarded-for", "198.51.100.23".parse().unwrap());
        assert_eq!(
            t.client(ip("10.1.2.3"), || headers.get_all("x-forwarded-for")),
            ip("198.51.100.23")
        );
        assert_eq!(
            t.client(ip("10.1.2.3"), std::iter::empty::<&str>),
            ip("10.1.2.3")
        );
    }
}
