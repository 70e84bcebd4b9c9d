//! Let's Encrypt's test ACME server for a test: `pebble` (RFC 8555) and
//! `pebble-challtestsrv` (its DNS server, with an HTTP API to publish
//! records), from Debian's `pebble`, on free loopback ports. Pebble's
//! HTTPS certificate is made here (the package ships none), from a CA the
//! gateway is told to trust (`acme.ca_bundle`). Pebble really validates
//! HTTP-01: it resolves the domain at challtestsrv (every name is
//! 127.0.0.1) and fetches the challenge from `http_port` there — the
//! gateway's plain listener.
//!
//! Without the binaries the tests that need them are skipped with a loud
//! message, unless `TEST_REQUIRE` names `acme` (CI sets it).

use super::http::request_with_body;
use super::{free_port, or_skip, wait_until};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

/// A running Pebble and challtestsrv, killed on drop.
pub struct Pebble {
    dir: tempfile::TempDir,
    pebble: Child,
    challtestsrv: Child,
    port: u16,
    /// challtestsrv's DNS server (UDP and TCP): the gateway's
    /// `acme.dns_resolver`.
    pub dns: SocketAddr,
    management: SocketAddr,
}

fn find(name: &str) -> Option<PathBuf> {
    let dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    dirs.into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A CA and a certificate it signed for 127.0.0.1 and localhost: PEM of
/// the CA, the leaf and its key.
fn https_certificate() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "gateway tests: Pebble's HTTPS CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    (ca.pem(), leaf.pem(), key.serialize_pem())
}

impl Pebble {
    /// Starts both, Pebble validating HTTP-01 on `http_port` and issuing
    /// certificates valid for `validity_secs` (Pebble's default, 5 years,
    /// when `None`); or says loudly why `test` is skipped.
    pub fn start(test: &str, http_port: u16, validity_secs: Option<u64>) -> Option<Pebble> {
        let missing = "no pebble or pebble-challtestsrv (apt-get install pebble)";
        let pebble_bin = or_skip(find("pebble"), "acme", test, missing)?;
        let cts_bin = or_skip(find("pebble-challtestsrv"), "acme", test, missing)?;
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = https_certificate();
        std::fs::write(dir.path().join("ca.pem"), ca).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        let (port, pebble_mgmt, tls_port) = (free_port(), free_port(), free_port());
        let dns = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let management = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{port}"),
                "managementListenAddress": format!("127.0.0.1:{pebble_mgmt}"),
                "certificate": dir.path().join("cert.pem"),
                "privateKey": dir.path().join("key.pem"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        if let Some(v) = validity_secs {
            config["pebble"]["certificateValidityPeriod"] = v.into();
        }
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let challtestsrv = Command::new(cts_bin)
            .args(["-management", &management.to_string()])
            .args(["-dns01", &dns.to_string()])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            // Every name is 127.0.0.1, and has no IPv6 address (the
            // gateway listens on 127.0.0.1 only).
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .unwrap();
        let pebble = Command::new(pebble_bin)
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            .args(["-dnsserver", &dns.to_string()])
            // Validate at once, never refuse a nonce at random, and prove
            // every order anew (a renewal answers HTTP-01 again).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .unwrap();
        let p = Pebble {
            dir,
            pebble,
            challtestsrv,
            port,
            dns,
            management,
        };
        let up = wait_until(Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
                && TcpStream::connect(management).is_ok()
        });
        assert!(up, "pebble did not start:\n{}", p.log());
        Some(p)
    }

    /// The ACME directory URL.
    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// The CA of Pebble's own HTTPS certificate (`acme.ca_bundle`).
    pub fn ca_bundle(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Publishes a TXT record `name` (fully qualified, a trailing dot)
    /// holding `value`.
    pub fn set_txt(&self, name: &str, value: &str) {
        let body = serde_json::json!({"host": name, "value": value}).to_string();
        let r = request_with_body(
            self.management,
            "POST",
            "/set-txt",
            "challtestsrv",
            &[("Content-Type", "application/json")],
            Some(body.as_bytes()),
        );
        assert_eq!(r.status, 200, "set-txt: {}", r.text());
    }

    /// Orders Pebble made (the lines it logs for each new order).
    pub fn orders(&self) -> usize {
        self.log().matches("POST /order-plz").count()
    }

    /// Both servers' logs.
    pub fn log(&self) -> String {
        [
            "pebble.log",
            "pebble.err",
            "challtestsrv.log",
            "challtestsrv.err",
        ]
        .iter()
        .map(|f| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in [&mut self.pebble, &mut self.challtestsrv] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
