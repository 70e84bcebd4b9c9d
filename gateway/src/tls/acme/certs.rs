//! The custom domains' certificates every gateway serves: the store's
//! list of (domain, serial) read on each tick, the certificates that
//! changed read and checked, and the resolver's table rebuilt with them —
//! no restart, on every gateway of the fleet.

use prometheus::GaugeVec;
use std::collections::HashMap;
use std::sync::Arc;

use crate::metrics::StoreOp;
use crate::store::{Store, StoreError};
use crate::tls::certificate::{self, Loaded};
use crate::tls::Certificates;

/// The label of a store certificate in logs and in
/// `gateway_tls_certificate_expiry_timestamp_seconds`.
pub fn label(host: &str) -> String {
    format!("store:{host}")
}

/// The leaf's serial number (hex, upper case) and `notAfter` of a PEM
/// chain.
pub fn serial_and_expiry(cert_pem: &str) -> Result<(String, i64), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let leaf = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .next()
        .ok_or("no PEM certificate in the chain")?
        .map_err(|e| format!("bad PEM: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let serial: String = cert
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    Ok((serial, cert.validity().not_after.timestamp()))
}

/// What this gateway serves from the store: by domain, the serial and
/// the certificate.
#[derive(Default)]
pub struct Served {
    by_host: HashMap<String, (String, Loaded)>,
}

impl Served {
    /// Reads what changed in the store and serves it; the number of
    /// certificates that changed. A certificate that does not load is
    /// logged and left out (the one served before, if any, is kept).
    pub async fn sync(
        &mut self,
        store: &Store,
        certificates: &Certificates,
        expiry: &GaugeVec,
    ) -> Result<usize, StoreError> {
        let listed = store
            .query(StoreOp::Domains, |b| async move {
                b.certificate_serials().await
            })
            .await?;
        let listed: HashMap<String, String> = listed.into_iter().collect();
        let gone: Vec<String> = self
            .by_host
            .keys()
            .filter(|h| !listed.contains_key(*h))
            .cloned()
            .collect();
        let mut changed = 0;
        for host in gone {
            self.by_host.remove(&host);
            let _ = expiry.remove_label_values(&[label(&host).as_str()]);
            changed += 1;
        }
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        for (host, serial) in &listed {
            if self.by_host.get(host).is_some_and(|(s, _)| s == serial) {
                continue;
            }
            let h = host.clone();
            let Some(stored) = store
                .query(
                    StoreOp::Domains,
                    move |b| async move { b.certificate(&h).await },
                )
                .await?
            else {
                continue;
            };
            let name = label(host);
            match certificate::from_pem(
                &name,
                stored.cert_pem.as_bytes(),
                stored.key_pem.as_bytes(),
                &provider,
            ) {
                Ok(mut loaded) => {
                    // Served for the domain it was ordered for, whatever
                    // else the certificate names.
                    loaded.hosts = vec![host.clone()];
                    expiry
                        .with_label_values(&[name.as_str()])
                        .set(loaded.not_after as f64);
                    tracing::info!(domain = %host, serial = %stored.serial, not_after = loaded.not_after, "acme: serving the store's certificate");
                    self.by_host.insert(host.clone(), (stored.serial, loaded));
                    changed += 1;
                }
                Err(e) => {
                    tracing::error!(domain = %host, error = %e, "acme: the store's certificate does not load; not served");
                }
            }
        }
        if changed > 0 {
            certificates.replace_stored(self.by_host.values().map(|(_, l)| l.clone()).collect());
        }
        Ok(changed)
    }
}

/// Sets the expiry of each of `stored` (after the files' reload reset
/// the gauge).
pub fn publish_expiry(expiry: &GaugeVec, stored: &[Loaded]) {
    for c in stored {
        expiry
            .with_label_values(&[c.name.as_str()])
            .set(c.not_after as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_and_expiry_of_a_chain() {
        let mut params = rcgen::CertificateParams::new(vec!["go.example.com".into()]).unwrap();
        params.serial_number = Some(rcgen::SerialNumber::from(vec![0x0a, 0xbc]));
        params.not_after = rcgen::date_time_ymd(2030, 1, 2);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (serial, not_after) = serial_and_expiry(&cert.pem()).unwrap();
        assert_eq!(serial, "0ABC");
        assert_eq!(not_after, 1_893_542_400);
        assert!(serial_and_expiry("not pem").is_err());
    }
}
