//! `[acme]`: automatic certificates for custom link domains (docs/
//! operations.md, "Custom domains and automatic certificates").

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

use super::duration;

/// `[acme]` in the server configuration. Without the section the domain
/// endpoints answer that automatic certificates are off, and no gateway
/// orders anything.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeSection {
    /// The ACME (RFC 8555) directory URL of the CA, `https://`.
    pub directory: String,
    /// An e-mail address the CA may write to about the account
    /// (expiry notices, policy changes); none: no contact.
    pub contact: Option<String>,
    /// PEM file with the root certificate the CA's own HTTPS server is
    /// checked against (a test CA such as Pebble's); none: the system's
    /// trust store.
    pub ca_bundle: Option<PathBuf>,
    /// The DNS server (`ip:port`) ownership TXT records are looked up at;
    /// none: the system's resolvers (`/etc/resolv.conf`).
    pub dns_resolver: Option<String>,
    /// A certificate is renewed this long before it expires.
    #[serde(with = "duration")]
    pub renew_before: Duration,
    /// How often every gateway reads the store for new or renewed
    /// certificates, and the lease holder looks for work.
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// How often a domain whose TXT record was not seen yet is looked up
    /// again (besides `POST /api/v1/domains/{host}/verify`).
    #[serde(with = "duration")]
    pub verify_every: Duration,
    /// The wait after a first failed order; it doubles with each failure
    /// in a row, up to `retry_max`.
    #[serde(with = "duration")]
    pub retry_min: Duration,
    /// The longest wait between two orders of a domain that keep failing.
    #[serde(with = "duration")]
    pub retry_max: Duration,
    /// How long the lease of the gateway that orders lasts without being
    /// renewed: after a crash, another gateway takes over within it. It
    /// is renewed before each order, so it must outlast one
    /// (`order_timeout`).
    #[serde(with = "duration")]
    pub lease: Duration,
    /// Longest one order may take, from the new order to the certificate.
    #[serde(with = "duration")]
    pub order_timeout: Duration,
}

impl Default for AcmeSection {
    fn default() -> Self {
        AcmeSection {
            directory: String::new(),
            contact: None,
            ca_bundle: None,
            dns_resolver: None,
            renew_before: Duration::from_secs(30 * 86_400),
            poll_interval: Duration::from_secs(2),
            verify_every: Duration::from_secs(60),
            retry_min: Duration::from_secs(60),
            retry_max: Duration::from_secs(6 * 3600),
            lease: Duration::from_secs(300),
            order_timeout: Duration::from_secs(120),
        }
    }
}

impl AcmeSection {
    /// Checks what serde cannot. ACME needs the store (the fleet shares
    /// domains, certificates, challenges and the lease there), a TLS
    /// listener to serve the certificates, and a plain listener for the
    /// CA's HTTP-01 requests.
    pub fn validate(
        &self,
        has_store: bool,
        has_tls: bool,
        has_plain_listener: bool,
    ) -> anyhow::Result<()> {
        if !has_store {
            anyhow::bail!(
                "config: [acme] needs a [store]: domains and certificates are kept there"
            );
        }
        if !has_tls {
            anyhow::bail!("config: [acme] needs a [tls] listener to serve the certificates");
        }
        if !has_plain_listener {
            anyhow::bail!(
                "config: [acme] needs server.listen: the CA checks HTTP-01 challenges on port 80"
            );
        }
        if !self.directory.starts_with("https://") {
            anyhow::bail!(
                "config: acme.directory must be the CA's https:// directory URL, not `{}`",
                self.directory
            );
        }
        if let Some(contact) = &self.contact {
            if !contact.contains('@') || contact.contains(char::is_whitespace) {
                anyhow::bail!("config: acme.contact must be an e-mail address, not `{contact}`");
            }
        }
        if let Some(path) = &self.ca_bundle {
            if !path.is_file() {
                anyhow::bail!("config: acme.ca_bundle: {} is not a file", path.display());
            }
        }
        if let Some(addr) = &self.dns_resolver {
            addr.parse::<std::net::SocketAddr>().map_err(|_| {
                anyhow::anyhow!(
                    "config: acme.dns_resolver must be an address like 127.0.0.1:53, not `{addr}`"
                )
            })?;
        }
        for (name, value) in [
            ("poll_interval", self.poll_interval),
            ("verify_every", self.verify_every),
            ("retry_min", self.retry_min),
            ("lease", self.lease),
            ("order_timeout", self.order_timeout),
        ] {
            if value.is_zero() {
                anyhow::bail!("config: acme.{name} must be above zero");
            }
        }
        if self.retry_max < self.retry_min {
            anyhow::bail!("config: acme.retry_max must be at least acme.retry_min");
        }
        if self.lease <= self.poll_interval + self.order_timeout {
            anyhow::bail!(
                "config: acme.lease must be longer than acme.poll_interval and acme.order_timeout together: it is renewed once a round and before each order"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> AcmeSection {
        AcmeSection {
            directory: "https://127.0.0.1:14000/dir".into(),
            ..AcmeSection::default()
        }
    }

    #[test]
    fn needs_a_store_tls_a_plain_listener_and_an_https_directory() {
        section().validate(true, true, true).unwrap();
        for (store, tls, plain, needle) in [
            (false, true, true, "[store]"),
            (true, false, true, "[tls]"),
            (true, true, false, "server.listen"),
        ] {
            let e = section()
                .validate(store, tls, plain)
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{e}");
        }
        let plain = AcmeSection {
            directory: "http://ca.example/dir".into(),
            ..AcmeSection::default()
        };
        assert!(plain.validate(true, true, true).is_err());
    }

    #[test]
    fn values_are_checked() {
        let bad_resolver = AcmeSection {
            dns_resolver: Some("localhost".into()),
            ..section()
        };
        assert!(bad_resolver.validate(true, true, true).is_err());
        let bad_contact = AcmeSection {
            contact: Some("nobody".into()),
            ..section()
        };
        assert!(bad_contact.validate(true, true, true).is_err());
        let short_lease = AcmeSection {
            lease: Duration::from_secs(60),
            order_timeout: Duration::from_secs(60),
            ..section()
        };
        assert!(short_lease.validate(true, true, true).is_err());
        let backwards = AcmeSection {
            retry_min: Duration::from_secs(10),
            retry_max: Duration::from_secs(5),
            ..section()
        };
        assert!(backwards.validate(true, true, true).is_err());
    }
}
