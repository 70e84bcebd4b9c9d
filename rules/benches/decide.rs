//! Decision and load benchmarks for the rules engine.
//!
//! Rule sets are generated in a temporary directory when the bench starts:
//!
//! * `decide/exact_static`     exact path, static destination, no query
//! * `decide/links_1k`         bulk-link hit, 1,000 links (rotating codes)
//! * `decide/links_1m`         bulk-link hit, 1,000,000 links (rotating codes)
//! * `decide/links_1m_same`    bulk-link hit, 1,000,000 links, one hot code
//! * `decide/pattern_capture`  pattern with one capture
//! * `decide/device_ios`       device-targeted redirect, iPhone User-Agent
//! * `decide/miss`             no rule matches (404)
//! * `load/links_1m_redirects_10k`  load + validate + compile 1,000,000 links
//!   and 10,000 `[[redirect]]` rules
//!
//! `cargo bench -p rules --bench decide` runs everything in a few minutes;
//! `-- --test` runs each benchmark once.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, SamplingMode};
use rules::{Decision, LoadOptions, Request, RuleSet};

const NOW: i64 = 1_790_000_000;
const HOST: &str = "go.example.com";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 \
                      (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

#[path = "support/links.rs"]
mod links;
use links::{base62, write_links};

/// `n` `[[redirect]]` rules on distinct exact paths.
fn redirects(n: usize) -> String {
    let mut s = String::with_capacity(n * 120);
    for i in 0..n {
        writeln!(
            s,
            "[[redirect]]\nid = \"r{i}\"\nhost = \"{HOST}\"\npath = \"/r/{i}\"\nto = \"https://shop.example.com/r/{i}\"\n"
        )
        .unwrap();
    }
    s
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write rules");
    p
}

fn load(path: &Path) -> RuleSet {
    match RuleSet::load_with(
        path,
        &LoadOptions {
            now: Some(NOW),
            ..LoadOptions::default()
        },
    ) {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            panic!("bench rule set {} does not load", path.display());
        }
    }
}

/// The everyday rules: an exact path, a pattern, a device-targeted rule, and
/// some neighbours so the tables are not trivially small.
fn main_rules() -> String {
    let mut s = String::from(
        r#"
[settings]
app_schemes = ["shopapp"]

[[redirect]]
id = "summer"
host = "go.example.com"
path = "/summer"
to = "https://shop.example.com/collections/summer"

[[redirect]]
id = "product"
host = "go.example.com"
pattern = "/p/{sku}"
to = "https://shop.example.com/product/{sku}"

[[redirect]]
id = "app"
host = "go.example.com"
path = "/app"
to = "https://shop.example.com/app"
ios = "https://apps.apple.com/app/id1234567890"
android = "https://play.google.com/store/apps/details?id=com.example.shop"

[[redirect]]
id = "docs"
host = "go.example.com"
prefix = "/docs/"
to = "https://shop.example.com/help/{rest}"
"#,
    );
    s.push_str(&redirects(100));
    s
}

struct Fixtures {
    _dir: tempfile::TempDir,
    main: RuleSet,
    links_1k: RuleSet,
    links_1m: RuleSet,
    /// Rules file with 1,000,000 links and 10,000 redirects.
    big_rules: PathBuf,
}

fn fixtures() -> Fixtures {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write_links(&d.join("links_1k.csv"), 1_000);
    write_links(&d.join("links_1m.csv"), 1_000_000);
    let links =
        |file: &str| format!("[[links]]\nid = \"short\"\nhost = \"{HOST}\"\nfile = \"{file}\"\n");
    let main = load(&write(d, "main.toml", &main_rules()));
    let links_1k = load(&write(d, "links_1k.toml", &links("links_1k.csv")));
    let links_1m = load(&write(d, "links_1m.toml", &links("links_1m.csv")));
    let mut big = links("links_1m.csv");
    big.push('\n');
    big.push_str(&redirects(10_000));
    let big_rules = write(d, "big.toml", &big);
    Fixtures {
        _dir: dir,
        main,
        links_1k,
        links_1m,
        big_rules,
    }
}

/// Paths of `count` links spread over `n` (deterministic LCG).
fn link_paths(n: u64, count: usize) -> Vec<String> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            format!("/{}", base62((x >> 33) % n))
        })
        .collect()
}

fn expect_redirect(d: &Decision<'_>, what: &str) {
    assert!(
        matches!(d, Decision::Redirect(_)),
        "{what}: expected a redirect, got {d:?}"
    );
}

fn bench_decide(c: &mut Criterion, f: &Fixtures) {
    let mut g = c.benchmark_group("decide");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));

    // (a) exact path, static destination, no query.
    let req = Request::get(HOST, "/summer", NOW);
    expect_redirect(&f.main.decide(&req), "exact_static");
    g.bench_function("exact_static", |b| {
        b.iter(|| f.main.decide(black_box(&req)))
    });

    // (b) bulk links at 1k and 1M, cycling through 4,096 codes so the 1M
    // case pays for cache misses like real traffic does.
    for (name, set, n) in [
        ("links_1k", &f.links_1k, 1_000u64),
        ("links_1m", &f.links_1m, 1_000_000),
    ] {
        let paths = link_paths(n, 4096);
        let reqs: Vec<Request<'_>> = paths.iter().map(|p| Request::get(HOST, p, NOW)).collect();
        for r in &reqs {
            expect_redirect(&set.decide(r), name);
        }
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) & 4095;
                set.decide(black_box(&reqs[i]))
            })
        });
    }
    let hot = format!("/{}", base62(500_000));
    let req = Request::get(HOST, &hot, NOW);
    expect_redirect(&f.links_1m.decide(&req), "links_1m_same");
    g.bench_function("links_1m_same", |b| {
        b.iter(|| f.links_1m.decide(black_box(&req)))
    });

    // (c) pattern with one capture.
    let req = Request::get(HOST, "/p/SKU-12345", NOW);
    expect_redirect(&f.main.decide(&req), "pattern_capture");
    g.bench_function("pattern_capture", |b| {
        b.iter(|| f.main.decide(black_box(&req)))
    });

    // (d) device-targeted redirect with an iPhone User-Agent.
    let req = Request::get(HOST, "/app", NOW).with_user_agent(IPHONE);
    match f.main.decide(&req) {
        Decision::Redirect(r) => assert_eq!(r.location, "https://apps.apple.com/app/id1234567890"),
        d => panic!("device_ios: expected a redirect, got {d:?}"),
    }
    g.bench_function("device_ios", |b| b.iter(|| f.main.decide(black_box(&req))));

    // (e) a miss.
    let req = Request::get(HOST, "/no/such/link", NOW);
    assert!(matches!(f.main.decide(&req), Decision::NotFound));
    g.bench_function("miss", |b| b.iter(|| f.main.decide(black_box(&req))));

    g.finish();
}

fn bench_load(c: &mut Criterion, f: &Fixtures) {
    // (f) load + validate + compile 1,000,000 links and 10,000 redirects.
    let counts = load(&f.big_rules).counts();
    assert_eq!((counts.links, counts.redirects), (1_000_000, 10_000));
    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(15));
    g.bench_function("links_1m_redirects_10k", |b| {
        b.iter_with_large_drop(|| load(black_box(&f.big_rules)))
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let f = fixtures();
    bench_decide(c, &f);
    bench_load(c, &f);
}

criterion_group!(decide, benches);
criterion_main!(decide);
