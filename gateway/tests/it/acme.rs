//! Automatic certificates for custom link domains against a real ACME CA
//! (Let's Encrypt's Pebble, which really fetches the HTTP-01 challenge
//! from the gateway) and real DNS (Pebble's challtestsrv, where the tests
//! publish the ownership TXT record): a key adds a domain, it stays
//! pending until the record is published, then the certificate is
//! ordered, stored and served by SNI; a second gateway on the same store
//! serves it without ordering; a renewal replaces it; an unknown name
//! never triggers an order.

use crate::harness::{
    free_port, request_with_body, sqlite_url, wait_until, ApiGateway, Key, Options, Pebble,
    Postgres, Response, Scrape,
};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::Duration;

const TOKEN: &str = "acme-test-admin-token-0123456789";

const RULES: &str = r#"
[[redirect]]
id = "home"
path = "/"
to = "https://www.example.com/"
"#;

/// A self-signed default certificate for `default.test`: what a name the
/// store has no certificate for gets.
fn default_certificate() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["default.test".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "default.test");
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// The `[acme]` section for `pebble`, renewing `renew_before` ahead.
fn acme_config(pebble: &Pebble, renew_before: &str) -> String {
    format!(
        "[acme]\ndirectory = \"{}\"\nca_bundle = \"{}\"\ndns_resolver = \"{}\"\ncontact = \"ops@example.com\"\n\
         poll_interval = \"200ms\"\nverify_every = \"1s\"\nretry_min = \"1s\"\nretry_max = \"4s\"\n\
         renew_before = \"{renew_before}\"\norder_timeout = \"30s\"\nlease = \"40s\"\n",
        pebble.directory(),
        pebble.ca_bundle().display(),
        pebble.dns,
    )
}

/// A gateway with the API, TLS (the default certificate) and `[acme]`
/// on the store at `store_url`, its plain listener on `port`.
fn start(store_url: &str, port: u16, acme: &str) -> ApiGateway {
    ApiGateway::start_opts(
        RULES,
        store_url,
        Options {
            extra_config: acme,
            tls: Some(default_certificate()),
            port: Some(port),
            env: &[("GATEWAY_ADMIN_TOKEN", TOKEN)],
            ..Options::default()
        },
    )
}

/// What `openssl s_client` sees of the certificate a handshake with SNI
/// `name` gets: its `subject=`, `issuer=` and `serial=` lines.
struct Seen {
    subject: String,
    issuer: String,
    serial: String,
}

fn handshake(gw: &ApiGateway, name: &str) -> Seen {
    let tls = gw.tls.unwrap().to_string();
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &tls, "-servername", name])
        .stdin(Stdio::null())
        .output()
        .expect("openssl is needed for the ACME tests");
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-issuer", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = x509.stdin.take().unwrap();
        stdin.write_all(&out.stdout).unwrap();
    }
    let text = String::from_utf8_lossy(&x509.wait_with_output().unwrap().stdout).into_owned();
    let line = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| {
                panic!(
                    "no {prefix} in {text:?}; s_client said {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .trim()
            .to_string()
    };
    Seen {
        subject: line("subject="),
        issuer: line("issuer="),
        serial: line("serial="),
    }
}

fn domain(gw: &ApiGateway, key: &Key, host: &str) -> Response {
    gw.get_api(&format!("/api/v1/domains/{host}"), key)
}

/// Waits until `host` is `active` for `key` and returns the domain.
fn wait_active(gw: &ApiGateway, pebble: &Pebble, key: &Key, host: &str) -> Value {
    let mut last = Value::Null;
    let active = wait_until(Duration::from_secs(60), || {
        last = domain(gw, key, host).json();
        last["status"] == "active"
    });
    assert!(
        active,
        "{host} did not become active: {last}\ngateway log:\n{}\npebble:\n{}",
        gw.log_tail(),
        pebble.log()
    );
    last
}

fn orders(gw: &ApiGateway, result: &str) -> f64 {
    Scrape::fetch(gw.admin, "admin").value("gateway_acme_orders_total", &[("result", result)])
}

/// Adds `host` with `key` and publishes its TXT record: the domain.
fn add_and_publish(gw: &ApiGateway, pebble: &Pebble, key: &Key, host: &str) -> Value {
    let r = gw.post("/api/v1/domains", key, &json!({"host": host}));
    assert_eq!(r.status, 201, "{}", r.text());
    let d = r.json();
    pebble.set_txt(
        &format!("{}.", d["verification"]["name"].as_str().unwrap()),
        d["verification"]["value"].as_str().unwrap(),
    );
    d
}

#[test]
fn a_verified_domain_gets_a_certificate_from_pebble_that_only_its_key_sees() {
    let port = free_port();
    let Some(pebble) = Pebble::start("acme::verified_domain", port, None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&sqlite_url(dir.path()), port, &acme_config(&pebble, "30d"));
    let brand_a = gw.create_key("brand-a", "go.brand-a.test", &[]);
    let brand_b = gw.create_key("brand-b", "links.brand-b.test", &[]);
    let host = "go.brand-a.test";

    // Only a key that may use the host adds it.
    let r = gw.post("/api/v1/domains", &brand_b, &json!({"host": host}));
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["errors"][0]["field"], "host");
    let r = gw.post(
        "/api/v1/domains",
        &brand_a,
        &json!({"host": "*.brand-a.test"}),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["errors"][0]["field"], "host");

    let r = gw.post("/api/v1/domains", &brand_a, &json!({"host": host}));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("/api/v1/domains/go.brand-a.test")
    );
    let added = r.json();
    assert_eq!(added["status"], "pending");
    assert_eq!(added["verification"]["type"], "dns-txt");
    assert_eq!(
        added["verification"]["name"],
        "_gateway-challenge.go.brand-a.test"
    );
    let token = added["verification"]["value"].as_str().unwrap().to_string();
    let again = gw.post("/api/v1/domains", &brand_a, &json!({"host": host}));
    assert_eq!(again.status, 409, "{}", again.text());

    // No TXT record yet: it stays pending, says why, and gets no
    // certificate however long it waits.
    let r = gw.post(
        &format!("/api/v1/domains/{host}/verify"),
        &brand_a,
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "pending");
    let why = r.json()["check_error"].as_str().unwrap_or("").to_string();
    assert!(why.contains("no TXT record"), "{why}");
    // A wrong value does not verify it either.
    pebble.set_txt("_gateway-challenge.go.brand-a.test.", "not-the-token");
    let r = gw.post(
        &format!("/api/v1/domains/{host}/verify"),
        &brand_a,
        &json!({}),
    );
    assert_eq!(r.json()["status"], "pending", "{}", r.text());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(domain(&gw, &brand_a, host).json()["status"], "pending");
    assert_eq!(orders(&gw, "success") + orders(&gw, "failure"), 0.0);
    assert!(handshake(&gw, host).subject.contains("default.test"));

    // Another key sees nothing of it.
    assert_eq!(domain(&gw, &brand_b, host).status, 404);
    assert_eq!(
        gw.get_api("/api/v1/domains", &brand_b).json()["domains"],
        json!([])
    );
    let r = gw.call(
        "DELETE",
        &format!("/api/v1/domains/{host}"),
        Some(&brand_b),
        None,
        &[],
    );
    assert_eq!(r.status, 404, "{}", r.text());

    // Published: verified, ordered from Pebble (which fetched the HTTP-01
    // answer from this gateway), stored and served.
    pebble.set_txt("_gateway-challenge.go.brand-a.test.", &token);
    let r = gw.post(
        &format!("/api/v1/domains/{host}/verify"),
        &brand_a,
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_ne!(r.json()["status"], "pending", "{}", r.text());
    let active = wait_active(&gw, &pebble, &brand_a, host);
    // "active" is stored a moment before the certificate is loaded.
    let served = wait_until(Duration::from_secs(10), || {
        handshake(&gw, host).issuer.contains("Pebble")
    });
    assert!(served, "not served:\n{}", gw.log_tail());
    let seen = handshake(&gw, host);
    assert!(seen.issuer.contains("Pebble"), "issuer {}", seen.issuer);
    assert!(
        seen.subject.contains(host) || seen.subject.is_empty(),
        "{}",
        seen.subject
    );
    assert_eq!(
        seen.serial.to_ascii_uppercase().trim_start_matches('0'),
        active["certificate"]["serial"]
            .as_str()
            .unwrap()
            .trim_start_matches('0')
    );
    // Other names still get the default.
    assert!(handshake(&gw, "www.example.com")
        .subject
        .contains("default.test"));

    let scrape = Scrape::fetch(gw.admin, "admin");
    scrape.expect("gateway_acme_orders_total", &[("result", "success")], 1.0);
    scrape.expect(
        "gateway_tls_certificate_expiry_timestamp_seconds",
        &[("certificate", "store:go.brand-a.test")],
        active["certificate"]["not_after"].as_f64().unwrap(),
    );

    // The operator sees every domain on the admin listener.
    let auth = format!("Bearer {TOKEN}");
    let r = request_with_body(
        gw.admin,
        "GET",
        "/api/v1/domains",
        "127.0.0.1",
        &[("Authorization", auth.as_str())],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["domains"][0]["host"], host);

    // Removed: no longer served.
    let r = gw.call(
        "DELETE",
        &format!("/api/v1/domains/{host}"),
        Some(&brand_a),
        None,
        &[],
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let gone = wait_until(Duration::from_secs(10), || {
        handshake(&gw, host).subject.contains("default.test")
    });
    assert!(gone, "the removed domain's certificate is still served");
}

#[test]
fn a_second_gateway_on_the_same_store_serves_the_certificate_without_ordering() {
    let dir = tempfile::tempdir().unwrap();
    second_gateway("acme::second_gateway", &sqlite_url(dir.path()));
}

#[test]
fn a_second_gateway_on_postgresql_serves_the_certificate_without_ordering() {
    let test = "acme::second_gateway_postgres";
    let Some(pg) = Postgres::start(test) else {
        return;
    };
    second_gateway(test, &pg.url());
}

/// Two gateways on `store`: one orders, both serve, a third orders
/// nothing.
fn second_gateway(test: &str, store: &str) {
    let (port_a, port_b) = (free_port(), free_port());
    // Pebble checks HTTP-01 on the second gateway, which does not order:
    // the answer must come from the store.
    let Some(pebble) = Pebble::start(test, port_b, None) else {
        return;
    };
    let config = acme_config(&pebble, "30d");
    let a = start(store, port_a, &config);
    assert!(
        a.wait_log("this gateway holds the lease", Duration::from_secs(10)),
        "{}",
        a.log_tail()
    );
    let b = start(store, port_b, &config);
    let key = a.create_key("brand-a", "go.brand-a.test", &[]);
    let host = "go.brand-a.test";
    add_and_publish(&b, &pebble, &key, host);
    let r = b.post(&format!("/api/v1/domains/{host}/verify"), &key, &json!({}));
    assert_ne!(r.json()["status"], "pending", "{}", r.text());
    let active = wait_active(&b, &pebble, &key, host);
    let serial = active["certificate"]["serial"]
        .as_str()
        .unwrap()
        .to_string();

    for gw in [&a, &b] {
        let served = wait_until(Duration::from_secs(10), || {
            handshake(gw, host).issuer.contains("Pebble")
        });
        assert!(served, "not served:\n{}", gw.log_tail());
        let seen = handshake(gw, host);
        assert_eq!(
            seen.serial.to_ascii_uppercase().trim_start_matches('0'),
            serial.trim_start_matches('0')
        );
    }
    // One order, by the lease holder; none from the other.
    assert_eq!(orders(&a, "success"), 1.0);
    assert_eq!(orders(&b, "success") + orders(&b, "failure"), 0.0);
    assert_eq!(pebble.orders(), 1, "{}", pebble.log());
    // Pebble fetched the HTTP-01 answer from the gateway that did not
    // order (the rules here answer nothing with 200 themselves).
    let answered = |gw: &ApiGateway| {
        Scrape::fetch(gw.admin, "admin")
            .get(
                "gateway_requests_total",
                &[("kind", "respond"), ("code", "200")],
            )
            .unwrap_or(0.0)
    };
    assert!(answered(&b) >= 1.0, "{}", b.log_tail());
    assert_eq!(answered(&a), 0.0);
    // And a third start on the same store orders nothing either: the
    // certificate is there.
    drop(b);
    let c = start(store, free_port(), &config);
    let served = wait_until(Duration::from_secs(10), || {
        handshake(&c, host).issuer.contains("Pebble")
    });
    assert!(served, "{}", c.log_tail());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(orders(&c, "success") + orders(&c, "failure"), 0.0);
    assert_eq!(pebble.orders(), 1);
}

#[test]
fn a_renewal_replaces_the_certificate() {
    let port = free_port();
    // Certificates valid 40 s, renewed 30 s before they expire: the first
    // is renewed about 10 s after it was issued.
    let Some(pebble) = Pebble::start("acme::renewal", port, Some(40)) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&sqlite_url(dir.path()), port, &acme_config(&pebble, "30s"));
    let key = gw.create_key("brand-a", "go.brand-a.test", &[]);
    let host = "go.brand-a.test";
    add_and_publish(&gw, &pebble, &key, host);
    let first = wait_active(&gw, &pebble, &key, host)["certificate"]["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let first_served = handshake(&gw, host).serial;
    let mut now = String::new();
    let renewed = wait_until(Duration::from_secs(45), || {
        now = domain(&gw, &key, host).json()["certificate"]["serial"]
            .as_str()
            .unwrap_or("")
            .to_string();
        !now.is_empty() && now != first
    });
    assert!(renewed, "not renewed:\n{}\n{}", gw.log_tail(), pebble.log());
    let served = wait_until(Duration::from_secs(5), || {
        handshake(&gw, host).serial != first_served
    });
    assert!(served, "the renewed certificate is not served");
    assert!(handshake(&gw, host).issuer.contains("Pebble"));
    assert!(orders(&gw, "success") >= 2.0);
    assert!(gw
        .log_text()
        .contains("acme: certificate issued and stored"));
}

#[test]
fn an_unknown_server_name_gets_the_default_certificate_and_no_order() {
    let port = free_port();
    let Some(pebble) = Pebble::start("acme::unknown_name", port, None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&sqlite_url(dir.path()), port, &acme_config(&pebble, "30d"));
    let key = gw.create_key("brand-a", "go.brand-a.test", &[]);
    // A domain added but never proven gets nothing either.
    let r = gw.post("/api/v1/domains", &key, &json!({"host": "go.brand-a.test"}));
    assert_eq!(r.status, 201, "{}", r.text());
    for name in ["unknown.brand-c.test", "go.brand-a.test", "www.example.org"] {
        let seen = handshake(&gw, name);
        assert!(
            seen.subject.contains("default.test"),
            "{name}: {}",
            seen.subject
        );
    }
    // Several rounds of the ACME service later: still nothing ordered.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(orders(&gw, "success") + orders(&gw, "failure"), 0.0);
    assert_eq!(pebble.orders(), 0, "{}", pebble.log());
    // The HTTP-01 path of a token nobody issued is the rules' (404 here).
    let r = gw.get("unknown.brand-c.test", "/.well-known/acme-challenge/abc123");
    assert_eq!(r.status, 404);
}
