//! Which certificate a handshake gets: by the server name the client
//! asks for (SNI) — an exact name, then a `*.` wildcard one label up,
//! then the default — and, where a name has both, the ECDSA one for a
//! client that accepts ECDSA signatures and the other (RSA) otherwise.
//!
//! The table is swapped whole when certificates are reloaded, so a
//! handshake sees the old set or the new one, never half of each. It is
//! built from two sources: the configured files, and the certificates of
//! custom domains kept in the store (`acme`); a file's certificate wins a
//! name both have, and the default is always a file's.

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::certificate::Loaded;

/// The certificates of one name: at most one ECDSA and one other.
#[derive(Debug, Default, Clone)]
struct Choice {
    ecdsa: Option<Arc<CertifiedKey>>,
    other: Option<Arc<CertifiedKey>>,
}

impl Choice {
    fn add(&mut self, cert: &Loaded) {
        let slot = if cert.ecdsa {
            &mut self.ecdsa
        } else {
            &mut self.other
        };
        // The first listed wins.
        if slot.is_none() {
            *slot = Some(cert.key.clone());
        }
    }

    fn pick(&self, takes_ecdsa: bool) -> Option<Arc<CertifiedKey>> {
        let (first, second) = if takes_ecdsa {
            (&self.ecdsa, &self.other)
        } else {
            (&self.other, &self.ecdsa)
        };
        first.clone().or_else(|| second.clone())
    }
}

/// Names to certificates.
#[derive(Debug, Default)]
struct Table {
    exact: HashMap<String, Choice>,
    /// By the parent of `*.parent`.
    wildcard: HashMap<String, Choice>,
    default: Choice,
}

impl Table {
    /// `certs` in order: the first is the default; then `stored`.
    fn build(certs: &[Loaded], stored: &[Loaded]) -> Table {
        let mut table = Table::default();
        if let Some(first) = certs.first() {
            table.default.add(first);
        }
        for cert in certs.iter().chain(stored) {
            for host in &cert.hosts {
                match host.strip_prefix("*.") {
                    Some(parent) => table
                        .wildcard
                        .entry(parent.to_string())
                        .or_default()
                        .add(cert),
                    None => table.exact.entry(host.clone()).or_default().add(cert),
                }
            }
        }
        table
    }

    fn choice(&self, name: Option<&str>) -> &Choice {
        let Some(name) = name else {
            return &self.default;
        };
        if let Some(c) = self.exact.get(name) {
            return c;
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
    }
}

/// The certificates the TLS listener serves, replaceable while it runs.
#[derive(Debug)]
pub struct Certificates {
    table: ArcSwap<Table>,
    /// What the table was built from: the files' certificates and the
    /// store's, so either can be replaced alone.
    sources: Mutex<(Vec<Loaded>, Vec<Loaded>)>,
}

/// Whether a client accepts ECDSA signatures from the server.
fn takes_ecdsa(schemes: &[SignatureScheme]) -> bool {
    schemes.iter().any(|s| {
        matches!(
            s,
            SignatureScheme::ECDSA_NISTP256_SHA256
                | SignatureScheme::ECDSA_NISTP384_SHA384
                | SignatureScheme::ECDSA_NISTP521_SHA512
        )
    })
}

impl Certificates {
    /// Serving `certs`, the first as the default.
    pub fn new(certs: &[Loaded]) -> Certificates {
        Certificates {
            table: ArcSwap::from_pointee(Table::build(certs, &[])),
            sources: Mutex::new((certs.to_vec(), Vec::new())),
        }
    }

    /// Serves `certs` from the next handshake on.
    pub fn replace(&self, certs: &[Loaded]) {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        sources.0 = certs.to_vec();
        self.table
            .store(Arc::new(Table::build(&sources.0, &sources.1)));
    }

    /// Serves `stored` (custom domains' certificates from the store)
    /// beside the files' from the next handshake on.
    pub fn replace_stored(&self, stored: Vec<Loaded>) {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        sources.1 = stored;
        self.table
            .store(Arc::new(Table::build(&sources.0, &sources.1)));
    }

    /// The store's certificates being served.
    pub fn stored(&self) -> Vec<Loaded> {
        let sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        sources.1.clone()
    }

    /// The certificate for `name` and a client that does (or not) take
    /// ECDSA.
    pub fn pick(&self, name: Option<&str>, takes_ecdsa: bool) -> Option<Arc<CertifiedKey>> {
        self.table.load().choice(name).pick(takes_ecdsa)
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // rustls gives the name lower-cased, without a trailing dot.
        self.pick(hello.server_name(), takes_ecdsa(hello.signature_schemes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::sign::SigningKey;

    /// A stand-in key: the table only compares which one it returns.
    #[derive(Debug)]
    struct Fake;
    impl SigningKey for Fake {
        fn choose_scheme(&self, _: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
            None
        }
        fn algorithm(&self) -> rustls::SignatureAlgorithm {
            rustls::SignatureAlgorithm::Anonymous
        }
    }

    fn cert(name: &str, hosts: &[&str], ecdsa: bool) -> Loaded {
        Loaded {
            name: name.into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            key: Arc::new(CertifiedKey::new(Vec::new(), Arc::new(Fake))),
            ecdsa,
            not_after: 0,
        }
    }

    fn which(certs: &[Loaded], picked: Option<Arc<CertifiedKey>>) -> String {
        let picked = picked.unwrap();
        certs
            .iter()
            .find(|c| Arc::ptr_eq(&c.key, &picked))
            .unwrap()
            .name
            .clone()
    }

    #[test]
    fn exact_then_wildcard_one_label_up_then_the_default() {
        let certs = [
            cert("default", &["www.example.com"], false),
            cert("brand-a", &["go.brand-a.com", "*.brand-a.com"], false),
            cert("exact", &["x.brand-a.com"], false),
        ];
        let c = Certificates::new(&certs);
        let at = |name: Option<&str>| which(&certs, c.pick(name, false));
        assert_eq!(at(Some("go.brand-a.com")), "brand-a");
        assert_eq!(at(Some("links.brand-a.com")), "brand-a");
        assert_eq!(at(Some("x.brand-a.com")), "exact");
        // One label only, and not the bare parent.
        assert_eq!(at(Some("a.b.brand-a.com")), "default");
        assert_eq!(at(Some("brand-a.com")), "default");
        assert_eq!(at(Some("unknown.example.org")), "default");
        assert_eq!(at(None), "default");
    }

    #[test]
    fn ecdsa_to_clients_that_take_it_rsa_to_the_others() {
        let certs = [
            cert("rsa", &["go.example.com"], false),
            cert("ecdsa", &["go.example.com"], true),
        ];
        let c = Certificates::new(&certs);
        assert_eq!(which(&certs, c.pick(Some("go.example.com"), true)), "ecdsa");
        assert_eq!(which(&certs, c.pick(Some("go.example.com"), false)), "rsa");
        assert!(takes_ecdsa(&[
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::ECDSA_NISTP256_SHA256
        ]));
        assert!(!takes_ecdsa(&[SignatureScheme::RSA_PSS_SHA256]));
        // Only one kind: that one, whatever the client says.
        let only = [cert("ecdsa", &["e.example.com"], true)];
        let c = Certificates::new(&only);
        assert_eq!(which(&only, c.pick(Some("e.example.com"), false)), "ecdsa");
    }

    #[test]
    fn stored_certificates_join_the_files_which_win_a_shared_name() {
        let files = [
            cert("default", &["www.example.com"], false),
            cert("file", &["go.brand-a.com"], false),
        ];
        let c = Certificates::new(&files);
        let stored = vec![
            cert("store:go.brand-a.com", &["go.brand-a.com"], false),
            cert("store:links.brand-b.com", &["links.brand-b.com"], false),
        ];
        c.replace_stored(stored.clone());
        let all: Vec<Loaded> = files.iter().chain(&stored).cloned().collect();
        let at = |name: &str| which(&all, c.pick(Some(name), false));
        assert_eq!(at("links.brand-b.com"), "store:links.brand-b.com");
        assert_eq!(at("go.brand-a.com"), "file");
        assert_eq!(at("unknown.example.org"), "default");
        // A reload of the files keeps the store's.
        c.replace(&files);
        assert_eq!(at("links.brand-b.com"), "store:links.brand-b.com");
        c.replace_stored(Vec::new());
        assert_eq!(at("links.brand-b.com"), "default");
    }

    #[test]
    fn a_replaced_table_serves_the_next_pick() {
        let old = [cert("old", &["go.example.com"], false)];
        let new = [cert("new", &["go.example.com"], false)];
        let c = Certificates::new(&old);
        c.replace(&new);
        assert_eq!(which(&new, c.pick(Some("go.example.com"), false)), "new");
    }
}
