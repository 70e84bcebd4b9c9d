//! Proof that a custom domain is the partner's: a TXT record they publish
//! at `_gateway-challenge.<host>` holding the token the API gave them.
//!
//! Why DNS and not an HTTP token: a partner points their domain at the
//! fleet before (or while) adding it, and from then on the gateway answers
//! every HTTP request for it — a token served over HTTP would be served by
//! the gateway itself and prove nothing about who controls the name. Only
//! whoever controls the zone can publish the TXT record.

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};
use std::net::SocketAddr;
use std::time::Duration;

/// The label the TXT record lives under, in front of the domain.
pub const TXT_LABEL: &str = "_gateway-challenge";

/// Why a domain's TXT record did not prove it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DnsError {
    /// The resolver could not be set up (no usable `/etc/resolv.conf`).
    #[error("cannot set up the DNS resolver: {0}")]
    Resolver(String),
    /// The name has no TXT record.
    #[error("no TXT record at {0}")]
    NoRecord(String),
    /// TXT records exist, none with the token.
    #[error("the TXT records at {name} do not hold the domain's token (found {found:?})")]
    Mismatch {
        /// The record's name.
        name: String,
        /// What they hold.
        found: Vec<String>,
    },
    /// The lookup itself failed (timeout, refused, ...).
    #[error("DNS lookup of {name} failed: {message}")]
    Lookup {
        /// The record's name.
        name: String,
        /// The resolver's error.
        message: String,
    },
}

/// Looks TXT records up, at one configured server or the system's.
#[derive(Debug, Clone)]
pub struct TxtCheck {
    server: Option<SocketAddr>,
}

/// The fully qualified name of `host`'s TXT record.
pub fn record_name(host: &str) -> String {
    format!("{TXT_LABEL}.{host}.")
}

impl TxtCheck {
    /// Asking `server` (`ip:port`), or the system's resolvers.
    pub fn new(server: Option<SocketAddr>) -> TxtCheck {
        TxtCheck { server }
    }

    /// A resolver without a cache: each check sees what is published now
    /// (a partner who just fixed a record should not wait out a TTL on
    /// our side). One per check — checks are rare, and it then lives on
    /// whichever runtime asks.
    fn resolver(&self) -> Result<TokioResolver, DnsError> {
        let mut builder = match self.server {
            Some(addr) => {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut server.connections {
                    c.port = addr.port();
                }
                Resolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => {
                TokioResolver::builder_tokio().map_err(|e| DnsError::Resolver(e.to_string()))?
            }
        };
        let options = builder.options_mut();
        options.cache_size = 0;
        options.timeout = Duration::from_secs(5);
        options.attempts = 2;
        builder
            .build()
            .map_err(|e| DnsError::Resolver(e.to_string()))
    }

    /// Whether `host`'s TXT record holds `token`.
    pub async fn check(&self, host: &str, token: &str) -> Result<(), DnsError> {
        let name = record_name(host);
        let resolver = self.resolver()?;
        let lookup = match resolver.txt_lookup(name.as_str()).await {
            Ok(l) => l,
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => {
                return Err(DnsError::NoRecord(name))
            }
            Err(e) => {
                return Err(DnsError::Lookup {
                    name,
                    message: e.to_string(),
                })
            }
        };
        let found: Vec<String> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                // A TXT record may be split into several strings; its
                // value is them joined.
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect();
        if found.iter().any(|v| v.trim() == token) {
            Ok(())
        } else if found.is_empty() {
            Err(DnsError::NoRecord(name))
        } else {
            Err(DnsError::Mismatch { name, found })
        }
    }
}
