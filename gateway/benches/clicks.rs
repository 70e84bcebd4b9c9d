//! What a click adds to a redirect on the request thread: its event line,
//! and the de-duplication lookup and insert of a visitor never seen
//! before (every click a new visitor, the worst case). The end-to-end
//! cost, kernel and writer thread included, is `loadtest clicks`
//! (docs/performance.md, §0.2); this is the part the gateway's own code
//! decides, measured without the noise of a whole server.

use criterion::{criterion_group, criterion_main, Criterion};
use gateway::{ClickDedup, ClickEvent};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

/// The binary's allocator, so tables sit in memory as they do there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) \
                  AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

fn event_line(c: &mut Criterion) {
    let event = ClickEvent {
        schema: (),
        ts: SystemTime::now(),
        click_id: "019ae3c1f0b87c3a9d1e2f3a4b5c6d7e",
        rule: "bulk-links",
        code: Some("k7Qx2"),
        host: "go.example.com",
        path: "/k7Qx2",
        device: "ios",
        country: Some("DE"),
        variant: None,
        destination: "https://shop.example.com/products/summer-sale?utm_source=link\
                      &utm_medium=social&btn_ref=019ae3c1f0b87c3a9d1e2f3a4b5c6d7e",
        referer: Some("https://www.instagram.com/"),
        user_agent: UA,
        client_ip: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 0))),
        request_id: None,
    };
    let mut line = String::with_capacity(1024);
    c.bench_function("click event line", |b| {
        b.iter(|| {
            line.clear();
            black_box(&event).write_line(&mut line);
            black_box(line.len())
        })
    });
}

fn dedup_new_visitor(c: &mut Criterion) {
    // The default table (1,000,000 entries, 32 MB): bigger than a cache,
    // so a new visitor's bucket is a miss, as on a busy gateway.
    let dedup = ClickDedup::new(Duration::from_secs(3600), 1_000_000);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut n: u32 = 0;
    c.bench_function("click dedup, a new visitor", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let ip = IpAddr::V4(Ipv4Addr::from(n));
            let key = dedup.key(Some(ip), UA, "go.example.com", "/k7Qx2");
            if dedup.get(key, now).is_none() {
                dedup.insert(key, (u128::from(now) << 80) | u128::from(n), now);
            }
        })
    });
}

criterion_group!(benches, event_line, dedup_new_visitor);
criterion_main!(benches);
