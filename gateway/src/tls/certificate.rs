//! One certificate read from its PEM files: the chain and key rustls
//! serves, the names it is for, and when it expires.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::SignatureAlgorithm;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::CertificateEntry;

/// Why a certificate cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{}: no PEM certificate in it", path.display())]
    NoCertificate { path: PathBuf },
    /// The key file holds no PEM private key.
    #[error("{}: no PEM private key in it", path.display())]
    NoKey { path: PathBuf },
    /// The certificate or key is not what it should be.
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// A certificate ready to serve.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Its certificate file: its name in logs and metrics.
    pub name: String,
    /// Server names it is chosen for, lower case.
    pub hosts: Vec<String>,
    /// The chain and the signing key.
    pub key: Arc<CertifiedKey>,
    /// Whether its key is ECDSA (preferred for clients that take it).
    pub ecdsa: bool,
    /// Its end-entity certificate's `notAfter`, Unix seconds.
    pub not_after: i64,
}

fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|source| CertError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The DNS names and `notAfter` of an end-entity certificate.
fn names_and_expiry(der: &[u8], path: &Path) -> Result<(Vec<String>, i64), CertError> {
    let invalid = |message: String| CertError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| invalid(format!("not an X.509 certificate: {e}")))?;
    let mut names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    Ok((names, cert.validity().not_after.timestamp()))
}

/// Reads `entry`'s files with `provider`'s key loader: the key must match
/// the certificate.
pub fn load(entry: &CertificateEntry, provider: &CryptoProvider) -> Result<Loaded, CertError> {
    let cert_pem = read(&entry.cert)?;
    let key_pem = read(&entry.key)?;
    parse(
        (&entry.cert, &cert_pem),
        (&entry.key, &key_pem),
        &entry.hosts,
        provider,
    )
}

/// A certificate and key held in memory (the store's, for a custom
/// domain): `name` stands for their files in errors, logs and metrics.
pub fn from_pem(
    name: &str,
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<Loaded, CertError> {
    let path = Path::new(name);
    parse((path, cert_pem), (path, key_pem), &[], provider)
}

/// A chain and key from their PEM text (each with the file it came
/// from), for `hosts` (none: the certificate's own names).
fn parse(
    (cert_path, cert_pem): (&Path, &[u8]),
    (key_path, key_pem): (&Path, &[u8]),
    hosts: &[String],
    provider: &CryptoProvider,
) -> Result<Loaded, CertError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::Invalid {
            path: cert_path.to_path_buf(),
            message: format!("bad PEM: {e}"),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(CertError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    };
    let (names, not_after) = names_and_expiry(leaf, cert_path)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| CertError::NoKey {
        path: key_path.to_path_buf(),
    })?;
    let certified =
        CertifiedKey::from_der(chain, key, provider).map_err(|e| CertError::Invalid {
            path: key_path.to_path_buf(),
            message: format!("cannot use this key with {}: {e}", cert_path.display()),
        })?;
    let hosts = if hosts.is_empty() {
        names
    } else {
        hosts.iter().map(|h| h.to_ascii_lowercase()).collect()
    };
    Ok(Loaded {
        name: cert_path.display().to_string(),
        hosts,
        ecdsa: certified.key.algorithm() == SignatureAlgorithm::ECDSA,
        key: Arc::new(certified),
        not_after,
    })
}
