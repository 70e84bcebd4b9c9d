//! The TLS listener's certificates (docs/operations.md, "TLS"): several,
//! chosen per handshake by the server name the client asks for
//! ([`resolver`]), read from PEM files ([`certificate`]) and read again
//! when those files change — a rename over them, a Kubernetes Secret's
//! symlink swap — with a set that does not load refused whole while the
//! old one keeps serving. Each certificate's expiry is a metric. Session
//! tickets are sealed with keys from files a fleet shares ([`tickets`]),
//! read again the same way. Custom link domains get their certificates
//! from an ACME CA, kept in the store ([`acme`]).

pub mod acme;
mod certificate;
mod resolver;
mod tickets;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{CertificateEntry, TlsSection};
use crate::metrics::Metrics;

pub use certificate::{CertError, Loaded};
pub use resolver::Certificates;
pub use tickets::TicketKeys;

/// How long certificate files must be quiet before they are read again.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// The configured certificates and what serves them.
pub struct Tls {
    entries: Vec<CertificateEntry>,
    /// Given to the listener as its certificate resolver.
    pub certificates: Arc<Certificates>,
    /// `tls.session_ticket_keys`, when set.
    tickets: Option<Arc<TicketKeys>>,
    metrics: Arc<Metrics>,
}

/// Reads every certificate of `entries`: all of them, or every error.
fn load_all(entries: &[CertificateEntry]) -> Result<Vec<Loaded>, Vec<CertError>> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let (mut loaded, mut errors) = (Vec::new(), Vec::new());
    for entry in entries {
        match certificate::load(entry, &provider) {
            Ok(c) => loaded.push(c),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(errors)
    }
}

impl Tls {
    /// Reads `section`'s certificates; any that cannot be served stops the
    /// start, naming each.
    pub fn start(section: &TlsSection, metrics: Arc<Metrics>) -> anyhow::Result<Tls> {
        let entries = section.certificates();
        let loaded = load_all(&entries).map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(|e| format!("tls: {e}")).collect();
            anyhow::anyhow!(lines.join("\n"))
        })?;
        let tickets = if section.session_ticket_keys.is_empty() {
            None
        } else {
            let keys = TicketKeys::load(section.session_ticket_keys.clone()).map_err(|errors| {
                let lines: Vec<String> = errors.iter().map(|e| format!("tls: {e}")).collect();
                anyhow::anyhow!(lines.join("\n"))
            })?;
            Some(Arc::new(keys))
        };
        let tls = Tls {
            certificates: Arc::new(Certificates::new(&loaded)),
            entries,
            tickets,
            metrics,
        };
        tls.publish(&loaded);
        // Both series from the start, so an alert on failures has one
        // (ACME's orders too: `[acme]` needs this listener).
        for result in ["success", "failure"] {
            tls.metrics.tls.reloads.with_label_values(&[result]);
            tls.metrics
                .tls
                .ticket_key_reloads
                .with_label_values(&[result]);
            tls.metrics.tls.acme_orders.with_label_values(&[result]);
        }
        Ok(tls)
    }

    /// Sets each certificate's expiry, and warns of one that has expired
    /// or expires within two weeks.
    fn publish(&self, loaded: &[Loaded]) {
        let expiry = &self.metrics.tls.expiry;
        expiry.reset();
        let now = rules::unix_now();
        for c in loaded {
            expiry
                .with_label_values(&[c.name.as_str()])
                .set(c.not_after as f64);
            if c.not_after < now + 14 * 86_400 {
                tracing::warn!(certificate = %c.name, hosts = ?c.hosts, not_after = c.not_after, "TLS certificate expires within two weeks or has expired");
            }
        }
        // The reset above took the store's certificates too.
        acme::publish_expiry(expiry, &self.certificates.stored());
    }

    /// Reads the certificates again: all of them go live, or none (each
    /// error logged, the old set kept).
    pub fn reload(&self) -> Result<usize, Vec<CertError>> {
        let reloads = &self.metrics.tls.reloads;
        match load_all(&self.entries) {
            Ok(loaded) => {
                self.certificates.replace(&loaded);
                self.publish(&loaded);
                reloads.with_label_values(&["success"]).inc();
                tracing::info!(certificates = loaded.len(), "TLS certificates reloaded");
                Ok(loaded.len())
            }
            Err(errors) => {
                reloads.with_label_values(&["failure"]).inc();
                for e in &errors {
                    tracing::error!(error = %e, "TLS certificate refused; the previous certificates keep serving");
                }
                Err(errors)
            }
        }
    }

    /// Reads the session ticket key files again: all their keys go live,
    /// or none (each error logged, the old keys kept).
    fn reload_ticket_keys(&self) {
        let Some(tickets) = &self.tickets else {
            return;
        };
        let reloads = &self.metrics.tls.ticket_key_reloads;
        match tickets.reload() {
            Ok(n) => {
                reloads.with_label_values(&["success"]).inc();
                tracing::info!(keys = n, "TLS session ticket keys reloaded");
            }
            Err(errors) => {
                reloads.with_label_values(&["failure"]).inc();
                for e in &errors {
                    tracing::error!(error = %e, "TLS session ticket keys refused; the previous keys keep sealing and opening tickets");
                }
            }
        }
    }

    /// The rustls configuration of the TLS listener: these certificates,
    /// HTTP/2 and HTTP/1.1 by ALPN, `section`'s session cache and tickets.
    pub fn server_config(&self, section: &TlsSection) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(self.certificates.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config.session_storage =
            rustls::server::ServerSessionMemoryCache::new(section.session_cache.max(1));
        if let Some(keys) = &self.tickets {
            config.ticketer = keys.clone();
        } else if section.session_tickets {
            config.ticketer = match section.crypto {
                crate::config::TlsCrypto::AwsLcRs => rustls::crypto::aws_lc_rs::Ticketer::new()?,
                crate::config::TlsCrypto::Ring => rustls::crypto::ring::Ticketer::new()?,
            };
        }
        // One ticket per handshake: a second costs a resumed handshake
        // about 7 % (docs/performance.md section 13) and a browser uses one.
        config.send_tls13_tickets = 1;
        Ok(Arc::new(config))
    }

    /// Every file the certificates are read from.
    fn files(&self) -> Vec<PathBuf> {
        self.entries
            .iter()
            .flat_map(|e| [e.cert.clone(), e.key.clone()])
            .collect()
    }
}

/// Reloads the certificates, and the session ticket keys, when their
/// files change: each set on its own, so a rotated key never counts as a
/// certificate reload.
pub struct CertWatch(pub Arc<Tls>);

#[async_trait]
impl BackgroundService for CertWatch {
    async fn start(&self, shutdown: ShutdownWatch) {
        let files = self.0.files();
        let tls = self.0.clone();
        let certificates = crate::live::watch_files(
            move || files.clone(),
            DEBOUNCE,
            shutdown.clone(),
            move || {
                let tls = tls.clone();
                async move {
                    let _ = tls.reload();
                }
            },
        );
        let key_files = self
            .0
            .tickets
            .as_ref()
            .map(|t| t.files().to_vec())
            .unwrap_or_default();
        let tls = self.0.clone();
        let ticket_keys = async move {
            if key_files.is_empty() {
                return;
            }
            crate::live::watch_files(
                move || key_files.clone(),
                DEBOUNCE,
                shutdown,
                move || {
                    let tls = tls.clone();
                    async move { tls.reload_ticket_keys() }
                },
            )
            .await
        };
        tokio::join!(certificates, ticket_keys);
    }
}
