//! Automatic certificates for custom link domains (`[acme]`, docs/
//! operations.md, "Custom domains and automatic certificates").
//!
//! ```text
//! POST /api/v1/domains ──▶ store: domain + TXT token (pending)
//! every gateway, each poll_interval:
//!   certs::Served::sync ──▶ store certificates that changed ──▶ SNI table
//!   the lease holder only (lease.rs):
//!     TXT re-check of pending domains (dns.rs) ──▶ verified
//!     verified without a certificate, or expiring within renew_before
//!       ──▶ order.rs: account, order, HTTP-01 key authorization in the
//!           store (challenge.rs: any gateway answers the CA), CSR, chain
//!       ──▶ store: certificate + key + serial + notAfter; or a failure
//!           with exponential backoff
//! ```
//!
//! Nothing here runs for a handshake: a name the store does not hold gets
//! the default certificate, and no order is ever made on demand.

mod certs;
mod challenge;
mod dns;
mod lease;
mod order;

pub use certs::publish_expiry;
pub use challenge::{token as challenge_token, Challenges};
pub use dns::record_name;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;

use crate::config::AcmeSection;
use crate::metrics::{Metrics, StoreOp};
use crate::store::{Domain, NewCertificate, Store, StoreError};
use crate::tls::Certificates;

/// Custom domains' certificates: checked, ordered, renewed and served.
pub struct Acme {
    config: AcmeSection,
    store: Arc<Store>,
    certificates: Arc<Certificates>,
    metrics: Arc<Metrics>,
    txt: dns::TxtCheck,
    orderer: order::Orderer,
    lease: lease::Lease,
}

impl Acme {
    /// Ordering per `config`, keeping everything in `store`, serving into
    /// `certificates`, answering HTTP-01 with `challenges`.
    pub fn new(
        config: AcmeSection,
        store: Arc<Store>,
        certificates: Arc<Certificates>,
        challenges: Arc<Challenges>,
        metrics: Arc<Metrics>,
    ) -> Acme {
        // Validated with the configuration.
        let server = config.dns_resolver.as_deref().and_then(|a| a.parse().ok());
        Acme {
            txt: dns::TxtCheck::new(server),
            orderer: order::Orderer::new(config.clone(), store.clone(), challenges),
            lease: lease::Lease::new(store.clone(), config.lease),
            config,
            store,
            certificates,
            metrics,
        }
    }

    /// Looks `host`'s TXT record up now and records what was found: the
    /// domain as it now is (`None`: it was removed meanwhile).
    pub async fn check(&self, host: &str, token: &str) -> Result<Option<Domain>, StoreError> {
        let found = self.txt.check(host, token).await;
        let error = found.as_ref().err().map(ToString::to_string);
        let h = host.to_string();
        let domain = self
            .store
            .query(StoreOp::DomainsWrite, move |b| async move {
                b.domain_checked(&h, rules::unix_now(), error.as_deref())
                    .await
            })
            .await?;
        match &found {
            Ok(()) => {
                tracing::info!(domain = %host, "acme: ownership TXT record found; the domain is verified")
            }
            Err(e) => {
                tracing::debug!(domain = %host, error = %e, "acme: ownership TXT record not found yet")
            }
        }
        Ok(domain)
    }

    /// One tick of the lease holder: re-check pending domains, then order
    /// what is due.
    async fn work(&self, served: &mut certs::Served) -> Result<(), StoreError> {
        let before = rules::unix_now() - self.config.verify_every.as_secs() as i64;
        let pending = self
            .store
            .query(StoreOp::Domains, move |b| async move {
                b.unverified_domains(before).await
            })
            .await?;
        for host in pending {
            let h = host.clone();
            let domain = self
                .store
                .query(StoreOp::Domains, move |b| async move {
                    b.domain(&h, None).await
                })
                .await?;
            if let Some(d) = domain {
                self.check(&d.host, &d.token).await?;
            }
        }
        let now = rules::unix_now();
        let renew_by = now + self.config.renew_before.as_secs() as i64;
        let due = self
            .store
            .query(StoreOp::Domains, move |b| async move {
                b.domains_to_order(now, renew_by).await
            })
            .await?;
        for host in due {
            // Kept for a whole order: `order_timeout` is shorter than the
            // lease (checked with the configuration).
            if !self.lease.hold().await? {
                return Ok(());
            }
            self.order(&host).await?;
            // Served here at once, not a tick later.
            self.sync(served).await;
        }
        Ok(())
    }

    /// Orders `host`'s certificate and keeps what became of it.
    async fn order(&self, host: &str) -> Result<(), StoreError> {
        tracing::info!(domain = %host, directory = %self.config.directory, "acme: ordering a certificate");
        let issued = self.orderer.order(host).await.and_then(|issued| {
            let (serial, not_after) =
                certs::serial_and_expiry(&issued.cert_pem).map_err(order::OrderError::Protocol)?;
            Ok((issued, serial, not_after))
        });
        let orders = &self.metrics.tls.acme_orders;
        match issued {
            Ok((issued, serial, not_after)) => {
                let h = host.to_string();
                self.store
                    .query(StoreOp::DomainsWrite, move |b| async move {
                        let cert = NewCertificate {
                            cert_pem: &issued.cert_pem,
                            key_pem: &issued.key_pem,
                            serial: &serial,
                            not_after,
                        };
                        b.save_certificate(&h, &cert, rules::unix_now()).await
                    })
                    .await?;
                orders.with_label_values(&["success"]).inc();
                tracing::info!(domain = %host, not_after, "acme: certificate issued and stored");
            }
            Err(e) => {
                orders.with_label_values(&["failure"]).inc();
                let h = host.to_string();
                let failures = self
                    .store
                    .query(StoreOp::Domains, move |b| async move {
                        b.domain(&h, None).await
                    })
                    .await?
                    .map_or(0, |d| d.failures);
                let wait = backoff(&self.config, failures);
                let next_at = rules::unix_now() + wait.as_secs() as i64;
                tracing::warn!(domain = %host, error = %e, failures = failures + 1, retry_in = ?wait, "acme: certificate order failed; retrying later");
                let (h, message) = (host.to_string(), e.to_string());
                self.store
                    .query(StoreOp::DomainsWrite, move |b| async move {
                        b.order_failed(&h, &message, next_at).await
                    })
                    .await?;
            }
        }
        Ok(())
    }

    /// Serves what the store holds now.
    async fn sync(&self, served: &mut certs::Served) {
        let expiry = &self.metrics.tls.expiry;
        if let Err(e) = served.sync(&self.store, &self.certificates, expiry).await {
            tracing::warn!(error = %e, "acme: cannot read certificates from the store; the ones served are kept");
        }
    }
}

/// The wait before the next order of a domain after `failures` failed in
/// a row before this one: `retry_min`, doubled for each, at most
/// `retry_max`.
fn backoff(config: &AcmeSection, failures: i64) -> Duration {
    let doublings = u32::try_from(failures.clamp(0, 30)).unwrap_or(30);
    config
        .retry_min
        .saturating_mul(1u32 << doublings)
        .min(config.retry_max)
}

/// The background service: every gateway serves the store's
/// certificates; the lease holder also checks and orders.
pub struct AcmeService(pub Arc<Acme>);

#[async_trait]
impl BackgroundService for AcmeService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let acme = &self.0;
        let mut served = certs::Served::default();
        let mut held = false;
        loop {
            acme.sync(&mut served).await;
            match acme.lease.hold().await {
                Ok(true) => {
                    if !held {
                        tracing::info!(holder = acme.lease.holder(), "acme: this gateway holds the lease: it checks domains and orders certificates");
                    }
                    held = true;
                    if let Err(e) = acme.work(&mut served).await {
                        tracing::warn!(error = %e, "acme: the store failed during a round of checks and orders; next round soon");
                    }
                }
                Ok(false) => {
                    if held {
                        tracing::info!("acme: another gateway holds the lease now");
                    }
                    held = false;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "acme: cannot take the lease; no checks or orders from here this round");
                }
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(acme.config.poll_interval) => {}
            }
        }
        if held {
            acme.lease.release().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_retry_min_up_to_retry_max() {
        let config = AcmeSection {
            retry_min: Duration::from_secs(60),
            retry_max: Duration::from_secs(3600),
            ..AcmeSection::default()
        };
        assert_eq!(backoff(&config, 0), Duration::from_secs(60));
        assert_eq!(backoff(&config, 1), Duration::from_secs(120));
        assert_eq!(backoff(&config, 3), Duration::from_secs(480));
        assert_eq!(backoff(&config, 10), Duration::from_secs(3600));
        assert_eq!(backoff(&config, i64::MAX), Duration::from_secs(3600));
    }
}
