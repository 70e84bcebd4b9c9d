//! The cost of choosing a certificate by server name: among one, and
//! among a thousand (an exact name, a wildcard, an unknown name that gets
//! the default). A full handshake signs once, hundreds of microseconds;
//! this is what the choice adds to it.

use criterion::{criterion_group, criterion_main, Criterion};
use gateway::{Certificates, LoadedCertificate};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use std::hint::black_box;
use std::sync::Arc;

/// One real ECDSA certificate and key; every entry shares it, since the
/// choice never looks inside.
fn key() -> Arc<CertifiedKey> {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["go.example.com".to_string()]).unwrap();
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
    Arc::new(
        CertifiedKey::from_der(
            vec![CertificateDer::from(cert.der().to_vec())],
            der,
            &provider,
        )
        .unwrap(),
    )
}

fn certs(n: usize, key: &Arc<CertifiedKey>) -> Vec<LoadedCertificate> {
    (0..n)
        .map(|i| LoadedCertificate {
            name: format!("brand-{i}.pem"),
            hosts: vec![format!("go.brand-{i}.com"), format!("*.brand-{i}.com")],
            key: key.clone(),
            ecdsa: true,
            not_after: 0,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let key = key();
    let one = Certificates::new(&certs(1, &key));
    let thousand = Certificates::new(&certs(1000, &key));
    let mut g = c.benchmark_group("sni");
    g.bench_function("1 certificate", |b| {
        b.iter(|| one.pick(black_box(Some("go.brand-0.com")), true))
    });
    g.bench_function("1000 certificates, exact name", |b| {
        b.iter(|| thousand.pick(black_box(Some("go.brand-517.com")), true))
    });
    g.bench_function("1000 certificates, wildcard", |b| {
        b.iter(|| thousand.pick(black_box(Some("shop.brand-517.com")), true))
    });
    g.bench_function("1000 certificates, unknown name", |b| {
        b.iter(|| thousand.pick(black_box(Some("www.unknown.example")), true))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
