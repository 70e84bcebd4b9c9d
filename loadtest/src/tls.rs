//! TLS for the load generator (the `fresh` scenario, `--tls`): test
//! certificates made with the `openssl` CLI, and a rustls client that
//! trusts exactly one certificate — the test's own, pinned as the only
//! root, so the client verifies the server as a browser would (chain,
//! name, signature) and accepts nothing else.
//!
//! The client's cryptography is rustls' `aws-lc-rs` provider, restricted to
//! the key exchanges nginx 1.22 (OpenSSL 3.0) also offers, X25519 first:
//! with its default list the client would offer X25519MLKEM768, which the
//! gateway's rustls takes and nginx cannot, so the two servers would do
//! different work for the same handshake. Its cipher suites are in the
//! order browsers send them, `TLS13_AES_128_GCM_SHA256` first (rustls'
//! own order puts `TLS13_AES_256_GCM_SHA384` first, whose SHA-384 key
//! schedule costs a server more); both servers follow the client's order.

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, RootCertStore};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// `--tls`: plain TCP, or TLS with an RSA or an ECDSA certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain TCP.
    #[default]
    None,
    /// RSA-2048 certificate.
    Rsa,
    /// ECDSA P-256 certificate.
    Ecdsa,
}

impl TlsMode {
    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::Rsa => "rsa",
            TlsMode::Ecdsa => "ecdsa",
        }
    }

    /// Whether this is TLS at all.
    pub fn is_tls(self) -> bool {
        self != TlsMode::None
    }
}

/// `--crypto`: the rustls provider the gateway's TLS listener uses
/// (`tls.crypto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Crypto {
    /// AWS-LC through `aws-lc-rs` (the gateway's default).
    #[value(name = "aws-lc-rs")]
    AwsLcRs,
    /// `ring`.
    Ring,
}

impl Crypto {
    /// The value of `tls.crypto`.
    pub fn name(self) -> &'static str {
        match self {
            Crypto::AwsLcRs => "aws-lc-rs",
            Crypto::Ring => "ring",
        }
    }
}

/// A generated certificate and its key (PEM files).
#[derive(Clone, Debug)]
pub struct TestCert {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key (PKCS#8).
    pub key: PathBuf,
}

/// The `openssl req` configuration of a test certificate for `host`: a
/// self-signed end-entity certificate (`CA:FALSE`, so a verifier that
/// pins it as its root accepts it as the server's certificate) for the
/// DNS name `host`, usable for TLS server authentication.
pub fn openssl_config(host: &str) -> String {
    format!(
        "[req]\nprompt = no\ndistinguished_name = dn\nx509_extensions = ext\n\n\
         [dn]\nCN = {host}\n\n\
         [ext]\nbasicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature, keyEncipherment\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = DNS:{host}\n\
         subjectKeyIdentifier = hash\n"
    )
}

/// Makes a self-signed certificate for `host` with an RSA-2048 or ECDSA
/// P-256 key in `dir` (`<kind>.pem`, `<kind>.key`) with the `openssl` CLI,
/// valid 30 days.
pub fn generate(mode: TlsMode, host: &str, dir: &Path) -> Result<TestCert> {
    let name = mode.name();
    let newkey: &[&str] = match mode {
        TlsMode::Rsa => &["-newkey", "rsa:2048"],
        TlsMode::Ecdsa => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        TlsMode::None => bail!("no certificate for plain TCP"),
    };
    std::fs::create_dir_all(dir)?;
    let conf = dir.join(format!("{name}.cnf"));
    std::fs::write(&conf, openssl_config(host))?;
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-sha256", "-days", "30"])
        .args(newkey)
        .arg("-config")
        .arg(&conf)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .context("cannot run openssl (on Debian: apt-get install -y openssl)")?;
    if !out.status.success() {
        bail!(
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(TestCert { cert, key })
}

/// The first certificate of a PEM file.
pub fn read_cert(path: &Path) -> Result<CertificateDer<'static>> {
    CertificateDer::from_pem_file(path)
        .map_err(|e| anyhow::anyhow!("{}: no PEM certificate ({e})", path.display()))
}

/// The kind of key a DER certificate carries: RSA (`rsaEncryption`) or
/// ECDSA (`id-ecPublicKey`), found by its algorithm identifier.
pub fn key_kind(der: &[u8]) -> Option<TlsMode> {
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    const EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    if memchr::memmem::find(der, RSA).is_some() {
        Some(TlsMode::Rsa)
    } else if memchr::memmem::find(der, EC).is_some() {
        Some(TlsMode::Ecdsa)
    } else {
        None
    }
}

/// What a TLS load client needs: the one certificate it trusts, the
/// server name it asks for (SNI and verification), and whether it
/// resumes sessions.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// The pinned certificate (the only root).
    pub root: CertificateDer<'static>,
    /// Server name.
    pub server_name: String,
    /// Keep sessions and offer them (`--resume`).
    pub resume: bool,
}

impl ClientTls {
    /// The pinned certificate of `cert_file` for `server_name`.
    pub fn pinned(cert_file: &Path, server_name: &str, resume: bool) -> Result<ClientTls> {
        Ok(ClientTls {
            root: read_cert(cert_file)?,
            server_name: server_name.to_string(),
            resume,
        })
    }

    /// A client configuration: the pinned root only, TLS 1.2 and 1.3,
    /// ALPN `http/1.1`, X25519 or P-256 key exchange, and either rustls'
    /// in-memory session cache (`resume`) or no resumption at all.
    pub fn config(&self) -> Result<Arc<ClientConfig>> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.root.clone())
            .context("the pinned certificate is not a usable root")?;
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        provider.kx_groups = vec![
            rustls::crypto::aws_lc_rs::kx_group::X25519,
            rustls::crypto::aws_lc_rs::kx_group::SECP256R1,
        ];
        // As Chrome and Firefox: AES-128-GCM with SHA-256 first (a stable
        // sort keeps the rest in rustls' order).
        provider
            .cipher_suites
            .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.resumption = if self.resume {
            Resumption::in_memory_sessions(256)
        } else {
            Resumption::disabled()
        };
        Ok(Arc::new(config))
    }

    /// A connector with its own configuration (and so its own session
    /// cache: one connection of the load is one returning visitor).
    pub fn client(&self) -> Result<TlsClient> {
        let name = ServerName::try_from(self.server_name.clone())
            .map_err(|e| anyhow::anyhow!("server name {:?}: {e}", self.server_name))?;
        Ok(TlsClient {
            connector: TlsConnector::from(self.config()?),
            name,
        })
    }
}

/// Opens TLS connections to one server name.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl TlsClient {
    /// The handshake over `tcp`; whether it resumed a session.
    pub async fn handshake(&self, tcp: TcpStream) -> std::io::Result<(TlsStream<TcpStream>, bool)> {
        let stream = self.connector.connect(self.name.clone(), tcp).await?;
        let resumed = stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
        Ok((stream, resumed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_config_names_the_host_and_is_not_a_ca() {
        let c = openssl_config("go.example.com");
        assert!(c.contains("CN = go.example.com"));
        assert!(c.contains("subjectAltName = DNS:go.example.com"));
        assert!(c.contains("CA:FALSE"));
        assert!(c.contains("extendedKeyUsage = serverAuth"));
    }

    #[test]
    fn a_root_that_does_not_parse_is_refused() {
        let client = ClientTls {
            root: CertificateDer::from(vec![0u8; 4]),
            server_name: "go.example.com".into(),
            resume: false,
        };
        assert!(client.config().is_err());
    }

    #[test]
    fn modes() {
        assert!(!TlsMode::None.is_tls());
        assert_eq!(TlsMode::Ecdsa.name(), "ecdsa");
        assert_eq!(Crypto::AwsLcRs.name(), "aws-lc-rs");
        assert_eq!(key_kind(b"nothing"), None);
    }
}
