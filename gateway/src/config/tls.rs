//! `[tls]`: the TLS listener, its certificates (chosen by server name),
//! session resumption and the crypto provider.

use serde::Deserialize;
use std::path::PathBuf;

/// `[tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Address of the TLS listener (HTTP/1.1 and HTTP/2 via ALPN).
    pub listen: String,
    /// PEM certificate chain of the default certificate: the one a client
    /// gets whose server name no `[[tls.certificate]]` covers.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// More certificates, chosen by the server name (SNI) a client asks
    /// for; without `cert`, the first is the default.
    #[serde(default)]
    pub certificate: Vec<CertificateEntry>,
    /// TLS sessions kept for resumption by session id (TLS 1.2, and 1.3
    /// when `session_tickets` is off).
    #[serde(default = "default_session_cache")]
    pub session_cache: usize,
    /// Resume TLS 1.3 sessions with encrypted tickets the client keeps
    /// (stateless, as many clients as come back), one per handshake; the
    /// ticket key is made at start and rotated every 6 hours.
    #[serde(default = "default_true")]
    pub session_tickets: bool,
    /// Files of ticket keys shared by a fleet (80 bytes each, as
    /// `openssl rand 80` makes; nginx's `ssl_session_ticket_key` files):
    /// the first seals new tickets, every one opens them, and they are read
    /// again when they change. Empty: a key made at start, per gateway.
    #[serde(default)]
    pub session_ticket_keys: Vec<PathBuf>,
    /// The cryptography under rustls: `aws-lc-rs` (the default: 1.35x
    /// `ring`'s full RSA handshakes per second, docs/performance.md
    /// section 13) or `ring`.
    #[serde(default)]
    pub crypto: TlsCrypto,
}

fn default_session_cache() -> usize {
    40_960
}

fn default_true() -> bool {
    true
}

/// `[[tls.certificate]]`: one certificate and the names it serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateEntry {
    /// PEM certificate chain, the end-entity certificate first.
    pub cert: PathBuf,
    /// PEM private key (RSA, ECDSA or Ed25519).
    pub key: PathBuf,
    /// Server names it is chosen for (`*.example.com`: one label below
    /// example.com); none: the DNS names of the certificate itself.
    #[serde(default)]
    pub hosts: Vec<String>,
}

impl TlsSection {
    /// Every certificate, the default first (`cert`/`key`, or else the
    /// first `[[tls.certificate]]`).
    pub fn certificates(&self) -> Vec<CertificateEntry> {
        let mut all = Vec::with_capacity(self.certificate.len() + 1);
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            all.push(CertificateEntry {
                cert: cert.clone(),
                key: key.clone(),
                hosts: Vec::new(),
            });
        }
        all.extend(self.certificate.iter().cloned());
        all
    }
}

/// The rustls crypto provider of the TLS listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsCrypto {
    /// AWS-LC (BoringSSL's descendant), through `aws-lc-rs`.
    #[default]
    AwsLcRs,
    /// `ring`.
    Ring,
}

impl TlsCrypto {
    /// The name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsCrypto::AwsLcRs => "aws-lc-rs",
            TlsCrypto::Ring => "ring",
        }
    }
}
