//! The client's address behind load balancers and CDNs.
//!
//! Splits, click de-duplication, click events, access logs and consistent
//! hashing all want the visitor's address, not the load balancer's. When
//! the TCP peer is a trusted proxy (`[server] trusted_proxies`), the client
//! is the right-most address in `X-Forwarded-For` that is not itself a
//! trusted proxy; anything left of it could have been written by the
//! client and is ignored.

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

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client address for a connection from `peer`; `forwarded_for`
    /// gives its `X-Forwarded-For` value and is only called when the peer
    /// is trusted, so untrusted traffic costs no header lookup.
    pub fn client<'h>(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: impl FnOnce() -> Option<&'h str>,
    ) -> Option<IpAddr> {
        let peer = peer?;
        if self.0.is_empty() || !self.trusts(peer) {
            return Some(peer);
        }
        let Some(chain) = forwarded_for() else {
            return Some(peer);
        };
        let mut client = peer;
        for hop in chain.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if self.trusts(ip) => client = ip,
                Ok(ip) => return Some(ip),
                // A hop that is not an address ends what can be believed.
                Err(_) => break,
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
        assert_eq!(t.client(ip("10.1.2.3"), || None), ip("10.1.2.3"));
        // No trusted proxies: always the peer.
        assert_eq!(
            TrustedProxies::default().client(ip("10.1.2.3"), || Some("203.0.113.5")),
            ip("10.1.2.3")
        );
        assert!(TrustedProxies::parse(&["nope".into()]).is_err());
    }
}
