//! Certificates of the TLS listener on the real binary, seen by
//! `openssl s_client`: chosen by server name (exact, wildcard, default),
//! ECDSA to clients that take it, replaced on disk without a restart, a
//! broken one refused while the old keeps serving, sessions resumed (on
//! another gateway sharing the ticket keys, too), and each certificate's
//! expiry as a metric.

use crate::harness::{wait_until, Gateway, Options, Scrape};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const RULES: &str = r#"
[[redirect]]
id = "home"
path = "/"
to = "https://www.example.com/"
"#;

/// A self-signed certificate for `names` with common name `cn`, valid
/// `days`, written as `<stem>.pem` and `<stem>.key` in `dir`; `ec`: an
/// ECDSA P-256 key, else RSA 2048.
fn make_cert(dir: &Path, stem: &str, cn: &str, names: &[&str], ec: bool, days: u32) {
    let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    let key = if ec {
        vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    } else {
        vec!["-newkey", "rsa:2048"]
    };
    let (pem, keyfile) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    let out = Command::new("openssl")
        .args(["req", "-x509", "-nodes"])
        .args(&key)
        .args(["-days", &days.to_string(), "-subj", &format!("/CN={cn}")])
        .args(["-addext", &format!("subjectAltName={}", san.join(","))])
        .arg("-keyout")
        .arg(&keyfile)
        .arg("-out")
        .arg(&pem)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is needed for the TLS certificate tests");
    assert!(out.status.success(), "openssl req: {out:?}");
}

/// What a handshake with `name` (SNI) shows: the certificate's subject
/// line, its key size line, and whether the session was new or reused.
struct Seen {
    subject: String,
    key_bits: String,
    session: String,
}

/// `openssl s_client` to the TLS listener, with `extra` arguments; with
/// `-ign_eof` among them, it sends a request with `Connection: close` and
/// reads until the answer ends the connection.
fn handshake(gw: &Gateway, name: &str, extra: &[&str]) -> Seen {
    use std::io::Write;
    let tls = gw.tls.unwrap().to_string();
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &tls, "-servername", name])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if extra.contains(&"-ign_eof") {
        let _ = write!(
            stdin,
            "GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n"
        );
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or("")
            .to_string()
    };
    Seen {
        subject: line("subject="),
        key_bits: line("Server public key is"),
        session: text
            .lines()
            .find(|l| l.starts_with("New,") || l.starts_with("Reused,"))
            .unwrap_or("")
            .to_string(),
    }
}

fn cn(seen: &Seen) -> String {
    seen.subject
        .rsplit("CN")
        .next()
        .unwrap_or("")
        .trim_start_matches([' ', '='])
        .to_string()
}

/// A gateway whose TLS listener serves `config` (the `[tls]` section's
/// certificate lines) from `dir`.
fn start(dir: &Path, certs: &str) -> Gateway {
    let port = crate::harness::free_port();
    let config = format!(
        "[tls]\nlisten = \"127.0.0.1:{port}\"\n{}",
        certs.replace("$DIR", &dir.display().to_string())
    );
    let mut gw = Gateway::start_with(
        RULES,
        Options {
            extra_config: &config,
            ..Options::default()
        },
    );
    gw.tls = Some(([127, 0, 0, 1], port).into());
    let up = wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(gw.tls.unwrap()).is_ok()
    });
    assert!(up, "no TLS listener; log:\n{}", gw.log_tail());
    gw
}

#[test]
fn each_name_gets_its_certificate_wildcards_one_label_deep_unknown_names_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_cert(
        d,
        "default",
        "default.example.com",
        &["www.example.com"],
        false,
        30,
    );
    make_cert(d, "brand-a", "brand-a", &["go.brand-a.com"], false, 30);
    make_cert(d, "brand-b", "brand-b", &["links.brand-b.com"], false, 30);
    let gw = start(
        d,
        r#"cert = "$DIR/default.pem"
key = "$DIR/default.key"

[[tls.certificate]]
cert = "$DIR/brand-a.pem"
key = "$DIR/brand-a.key"
hosts = ["go.brand-a.com", "*.brand-a.com"]

[[tls.certificate]]   # its names are read from the certificate
cert = "$DIR/brand-b.pem"
key = "$DIR/brand-b.key"
"#,
    );
    for (name, expected) in [
        ("go.brand-a.com", "brand-a"),
        ("shop.brand-a.com", "brand-a"),
        ("GO.Brand-A.com", "brand-a"),
        ("links.brand-b.com", "brand-b"),
        ("deep.shop.brand-a.com", "default.example.com"),
        ("unknown.example.org", "default.example.com"),
    ] {
        assert_eq!(cn(&handshake(&gw, name, &[])), expected, "SNI {name}");
    }
}

#[test]
fn ecdsa_goes_to_clients_that_take_it_and_rsa_to_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_cert(d, "rsa", "rsa", &["go.example.com"], false, 30);
    make_cert(d, "ec", "ec", &["go.example.com"], true, 30);
    let gw = start(
        d,
        r#"cert = "$DIR/rsa.pem"
key = "$DIR/rsa.key"
[[tls.certificate]]
cert = "$DIR/ec.pem"
key = "$DIR/ec.key"
"#,
    );
    let any = handshake(&gw, "go.example.com", &[]);
    assert_eq!(cn(&any), "ec", "{}", any.key_bits);
    assert!(any.key_bits.contains("256 bit"), "{}", any.key_bits);
    let rsa_only = handshake(&gw, "go.example.com", &["-sigalgs", "rsa_pss_rsae_sha256"]);
    assert_eq!(cn(&rsa_only), "rsa");
    assert!(
        rsa_only.key_bits.contains("2048 bit"),
        "{}",
        rsa_only.key_bits
    );
}

#[test]
fn a_replaced_certificate_serves_the_next_handshake_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_cert(d, "site", "first", &["go.example.com"], true, 30);
    let gw = start(
        d,
        r#"cert = "$DIR/site.pem"
key = "$DIR/site.key"
"#,
    );
    assert_eq!(cn(&handshake(&gw, "go.example.com", &[])), "first");

    // Renewed: new files renamed over the old ones, as certbot or a
    // Secret update does.
    let next = tempfile::tempdir().unwrap();
    make_cert(next.path(), "site", "second", &["go.example.com"], true, 60);
    for f in ["site.key", "site.pem"] {
        std::fs::copy(next.path().join(f), d.join(format!(".{f}.new"))).unwrap();
        std::fs::rename(d.join(format!(".{f}.new")), d.join(f)).unwrap();
    }
    let renewed = wait_until(Duration::from_secs(10), || {
        cn(&handshake(&gw, "go.example.com", &[])) == "second"
    });
    assert!(
        renewed,
        "the renewed certificate is not served; log:\n{}",
        gw.log_tail()
    );
    // The reload is counted just after the swap.
    let scrape = gw.scrape_until(Duration::from_secs(10), "the reload counted", |s| {
        s.get(
            "gateway_tls_certificate_reloads_total",
            &[("result", "success")],
        )
        .is_some()
    });
    assert_eq!(
        scrape.get(
            "gateway_tls_certificate_reloads_total",
            &[("result", "success")]
        ),
        Some(1.0)
    );

    // Broken: refused, the renewed one keeps serving.
    std::fs::write(
        d.join("site.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64\n",
    )
    .unwrap();
    assert!(gw.wait_log("TLS certificate refused", Duration::from_secs(10)));
    assert_eq!(cn(&handshake(&gw, "go.example.com", &[])), "second");
    let scrape = Scrape::fetch(gw.admin, "admin");
    assert_eq!(
        scrape.get(
            "gateway_tls_certificate_reloads_total",
            &[("result", "failure")]
        ),
        Some(1.0)
    );
}

#[test]
fn a_session_is_resumed_on_the_next_connection() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_cert(d, "site", "site", &["go.example.com"], true, 30);
    let gw = start(d, "cert = \"$DIR/site.pem\"\nkey = \"$DIR/site.key\"\n");
    let session = d.join("session.pem");
    let s = session.display().to_string();
    // A whole exchange, so the tickets that follow the handshake arrive.
    let first = handshake(&gw, "go.example.com", &["-sess_out", &s, "-ign_eof"]);
    assert!(first.session.starts_with("New,"), "{}", first.session);
    let again = handshake(&gw, "go.example.com", &["-sess_in", &s]);
    assert!(again.session.starts_with("Reused,"), "{}", again.session);
}

/// Writes `bytes` as the key file `name` in `dir` by renaming a new file
/// over it, as a Secret update does.
fn put_key(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.new"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn random_key() -> Vec<u8> {
    use rand::RngCore;
    let mut k = vec![0u8; 80];
    rand::rng().fill_bytes(&mut k);
    k
}

#[test]
fn gateways_sharing_ticket_keys_resume_each_others_sessions_and_rotate_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_cert(d, "site", "site", &["go.example.com"], true, 30);
    let old = random_key();
    put_key(d, "current.key", &old);
    put_key(d, "previous.key", &random_key());
    let shared = r#"cert = "$DIR/site.pem"
key = "$DIR/site.key"
session_ticket_keys = ["$DIR/current.key", "$DIR/previous.key"]
"#;
    let a = start(d, shared);
    let b = start(d, shared);
    // A gateway with a key of its own, as every gateway had before.
    let alone = start(d, "cert = \"$DIR/site.pem\"\nkey = \"$DIR/site.key\"\n");

    let session = |n: &str| d.join(n).display().to_string();
    let from_a = session("from-a.pem");
    let first = handshake(&a, "go.example.com", &["-sess_out", &from_a, "-ign_eof"]);
    assert!(first.session.starts_with("New,"), "{}", first.session);
    let on_b = handshake(&b, "go.example.com", &["-sess_in", &from_a]);
    assert!(
        on_b.session.starts_with("Reused,"),
        "a session from gateway A did not resume on gateway B: {}",
        on_b.session
    );
    let elsewhere = handshake(&alone, "go.example.com", &["-sess_in", &from_a]);
    assert!(
        elsewhere.session.starts_with("New,"),
        "{}",
        elsewhere.session
    );

    // Rotation on B: a new first key, the old one second. A's old
    // tickets still open; B's new tickets are sealed with the new key,
    // which A does not have yet.
    put_key(d, "previous.key", &old);
    put_key(d, "current.key", &random_key());
    let rotated = wait_until(Duration::from_secs(10), || {
        Scrape::fetch(b.admin, "admin").get(
            "gateway_tls_ticket_key_reloads_total",
            &[("result", "success")],
        ) >= Some(1.0)
    });
    assert!(rotated, "no ticket key reload; log:\n{}", b.log_tail());
    let still = handshake(&b, "go.example.com", &["-sess_in", &from_a]);
    assert!(still.session.starts_with("Reused,"), "{}", still.session);

    // The old key dropped: its tickets make full handshakes.
    put_key(d, "previous.key", &random_key());
    let dropped = wait_until(Duration::from_secs(10), || {
        handshake(&b, "go.example.com", &["-sess_in", &from_a])
            .session
            .starts_with("New,")
    });
    assert!(dropped, "a ticket of a removed key still resumes");

    // A broken key file: refused, the keys in use kept.
    let from_b = session("from-b.pem");
    let fresh = handshake(&b, "go.example.com", &["-sess_out", &from_b, "-ign_eof"]);
    assert!(fresh.session.starts_with("New,"), "{}", fresh.session);
    put_key(d, "current.key", b"too short");
    assert!(b.wait_log("TLS session ticket keys refused", Duration::from_secs(10)));
    let kept = handshake(&b, "go.example.com", &["-sess_in", &from_b]);
    assert!(kept.session.starts_with("Reused,"), "{}", kept.session);
    assert_eq!(
        Scrape::fetch(b.admin, "admin").get(
            "gateway_tls_ticket_key_reloads_total",
            &[("result", "failure")]
        ),
        Some(1.0)
    );
}

#[test]
fn each_certificates_expiry_is_a_metric() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_cert(d, "soon", "soon", &["go.example.com"], true, 10);
    let gw = start(d, "cert = \"$DIR/soon.pem\"\nkey = \"$DIR/soon.key\"\n");
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-enddate", "-in"])
        .arg(d.join("soon.pem"))
        .output()
        .unwrap();
    let end = String::from_utf8_lossy(&out.stdout);
    let end = end.trim().trim_start_matches("notAfter=");
    // `Dec 12 15:04:05 2026 GMT`
    let expected = chrono::NaiveDateTime::parse_from_str(end, "%b %e %H:%M:%S %Y GMT")
        .unwrap_or_else(|e| panic!("{end}: {e}"))
        .and_utc()
        .timestamp();
    let name = d.join("soon.pem").display().to_string();
    let scrape = Scrape::fetch(gw.admin, "admin");
    assert_eq!(
        scrape.get(
            "gateway_tls_certificate_expiry_timestamp_seconds",
            &[("certificate", name.as_str())]
        ),
        Some(expected as f64)
    );
    // Ten days left: a warning at start.
    assert!(gw.wait_log("expires within two weeks", Duration::from_secs(2)));
}

#[test]
fn three_hundred_returning_clients_all_resume() {
    // More clients than the 256 sessions of rustls's default store, which
    // each handshake filled with two tickets: most of them had to do a
    // full handshake again.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_cert(d, "site", "site", &["go.example.com"], true, 30);
    let gw = start(d, "cert = \"$DIR/site.pem\"\nkey = \"$DIR/site.key\"\n");
    let sessions: Vec<String> = (0..300)
        .map(|i| d.join(format!("session-{i}.pem")).display().to_string())
        .collect();
    for s in &sessions {
        let first = handshake(&gw, "go.example.com", &["-sess_out", s, "-ign_eof"]);
        assert!(first.session.starts_with("New,"), "{}", first.session);
    }
    let reused = sessions
        .iter()
        .filter(|s| {
            handshake(&gw, "go.example.com", &["-sess_in", s])
                .session
                .starts_with("Reused,")
        })
        .count();
    assert_eq!(reused, 300, "returning clients that resumed");
}
