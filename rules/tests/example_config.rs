//! The shipped example, `config/rules.toml`, must load (which also runs its
//! embedded `[[test]]`s) and must make the decisions its comments promise.

use rules::{ClickIdSource, Decision, Request, RuleSet};
use std::sync::atomic::{AtomicUsize, Ordering};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/rules.toml");

/// 2026-06-15T12:00:00Z: the summer campaign is live.
const LIVE: i64 = 1_781_524_800;
/// 2030-10-01T00:00:00Z: the summer campaign has ended.
const AFTER: i64 = 1_917_043_200;

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
const ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36";
const DESKTOP: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
/// Googlebot Smartphone: an Android User-Agent that is also a bot.
/// Applebot's mobile User-Agent: iOS and a bot.
const IOS_BOT: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1 (Applebot/0.1; +http://www.apple.com/go/applebot)";
const BOT: &str = "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

fn load() -> RuleSet {
    match RuleSet::load(PATH) {
        Ok(set) => set,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            panic!("{PATH} has {} error(s), printed above", errors.len());
        }
    }
}

/// (status, location, rule) of a redirect; panics on anything else.
fn redirect(set: &RuleSet, req: &Request<'_>) -> (u16, String, String) {
    match set.decide(req) {
        Decision::Redirect(r) => (
            r.status,
            r.location.to_str().unwrap().to_string(),
            r.rule.to_string(),
        ),
        other => panic!(
            "{}{}: expected a redirect, got {other:?}",
            req.host, req.path
        ),
    }
}

fn location(set: &RuleSet, req: Request<'_>) -> String {
    redirect(set, &req).1
}

#[test]
fn example_config_loads_and_counts() {
    let set = load();
    let c = set.counts();
    assert!(c.redirects >= 10, "{c:?}");
    assert_eq!(c.links, 20, "{c:?}");
    assert_eq!(c.link_sets, 1, "{c:?}");
    assert_eq!(c.routes, 2, "{c:?}");
    assert_eq!(c.responds, 3, "{c:?}");
    assert_eq!(c.upstreams, 1, "{c:?}");
    assert!(c.tests >= 12, "{c:?}");

    let s = set.settings();
    assert_eq!(s.app_schemes, ["shopapp"]);
    assert_eq!(
        s.country_header.as_deref(),
        Some("CloudFront-Viewer-Country")
    );
    assert_eq!(s.click_id_param.as_deref(), Some("btn_ref"));
    assert_eq!(s.trailing_slash, rules::TrailingSlash::Ignore);
    assert_eq!(s.default_cache_control, "private, max-age=90");

    let api = &set.upstreams()["api"];
    assert_eq!(api.servers, ["127.0.0.1:9001"]);
    assert_eq!(api.balance, rules::Balance::RoundRobin);
    assert_eq!(api.retries, 2);
    assert_eq!(api.connect_timeout, std::time::Duration::from_millis(500));
    assert_eq!(api.read_timeout, std::time::Duration::from_secs(15));
    let hc = api.health_check.as_ref().expect("health check");
    assert_eq!(hc.kind, rules::HealthCheckKind::Http);
    assert_eq!(hc.path, "/healthz");
    assert_eq!(hc.interval, std::time::Duration::from_secs(2));
    assert_eq!(hc.timeout, std::time::Duration::from_secs(1));
    assert_eq!((hc.unhealthy_after, hc.healthy_after), (3, 2));

    // The rules file, the CSV and both body files are watched.
    assert_eq!(set.files().len(), 4, "{:?}", set.files());
}

#[test]
fn exact_path_with_cache_control_override() {
    let set = load();
    match set.decide(&Request::get("go.example.com", "/", LIVE)) {
        Decision::Redirect(r) => {
            assert_eq!(r.status, 301);
            assert_eq!(r.location.to_str().unwrap(), "https://www.example.com/");
            assert_eq!(r.cache_control, "public, max-age=86400");
        }
        other => panic!("{other:?}"),
    }
    // Rules without cache_control use the default.
    match set.decide(&Request::get("go.example.com", "/p/1", LIVE)) {
        Decision::Redirect(r) => assert_eq!(r.cache_control, "private, max-age=90"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn product_pattern_by_device() {
    let set = load();
    let req = |ua| Request::get("go.example.com", "/p/SKU-1042", LIVE).with_user_agent(ua);
    assert_eq!(location(&set, req(IPHONE)), "shopapp://product/SKU-1042");
    assert_eq!(
        location(&set, req(ANDROID)),
        "https://shop.example.com/app-open?sku=SKU-1042&platform=android"
    );
    assert_eq!(
        location(&set, req(DESKTOP)),
        "https://shop.example.com/products/SKU-1042?src=go"
    );
    // A bot gets the default even though its User-Agent says Android.
    assert_eq!(
        location(&set, req(BOT)),
        "https://shop.example.com/products/SKU-1042?src=go"
    );
    let (status, _, rule) = redirect(&set, &req(DESKTOP));
    assert_eq!((status, rule.as_str()), (302, "product"));
}

#[test]
fn query_merge_and_click_id() {
    let set = load();
    // Incoming `src` replaces the destination's; the rest is appended as sent.
    let req = Request::get("go.example.com", "/p/A1?src=email&x=a+b%20c", LIVE);
    assert_eq!(
        location(&set, req),
        "https://shop.example.com/products/A1?src=email&x=a+b%20c"
    );
    // The click id goes last; a visitor's own btn_ref is dropped.
    let req = Request::get("go.example.com", "/p/A1?btn_ref=forged&ref=ig", LIVE)
        .with_click_id("01J9Z3Q4XK");
    assert_eq!(
        location(&set, req),
        "https://shop.example.com/products/A1?src=go&ref=ig&btn_ref=01J9Z3Q4XK"
    );
    // query = "drop": the visitor's query is ignored, the click id is not.
    let req = Request::get("go.example.com", "/gift-guide?page=2", LIVE).with_click_id("c1");
    assert_eq!(
        location(&set, req),
        "https://shop.example.com/collections/gifts?utm_source=catalogue&utm_medium=qr&btn_ref=c1"
    );
}

#[test]
fn a_later_click_id_is_asked_for_only_by_a_redirect() {
    let set = load();
    let asked = AtomicUsize::new(0);
    let later = || {
        asked.fetch_add(1, Ordering::Relaxed);
        "01LATER"
    };
    let mut req = Request::get("go.example.com", "/p/A1?ref=ig", LIVE);
    req.click_id = ClickIdSource::Later(&later);
    assert_eq!(
        location(&set, req),
        "https://shop.example.com/products/A1?src=go&ref=ig&btn_ref=01LATER"
    );
    assert_eq!(asked.load(Ordering::Relaxed), 1);
    // No `Location` rendered (not found, proxied, answered): no id asked for.
    for (host, path) in [
        ("go.example.com", "/no/such/link"),
        ("api.example.com", "/v1/orders/123"),
        ("go.example.com", "/.well-known/apple-app-site-association"),
    ] {
        let mut req = Request::get(host, path, LIVE);
        req.click_id = ClickIdSource::Later(&later);
        let d = set.decide(&req);
        assert!(!matches!(d, Decision::Redirect(_)), "{path}: {d:?}");
    }
    assert_eq!(asked.load(Ordering::Relaxed), 1);
}

#[test]
fn campaign_countries_devices_and_expiry() {
    let set = load();
    let sale = |now| Request::get("go.example.com", "/sale", now);
    assert_eq!(
        location(&set, sale(LIVE).with_country("DE")),
        "https://shop.example.com/de/sale"
    );
    assert_eq!(
        location(&set, sale(LIVE).with_country("gb")),
        "https://shop.example.com/uk/sale"
    );
    assert_eq!(
        location(&set, sale(LIVE).with_country("US")),
        "https://shop.example.com/sale"
    );
    assert_eq!(location(&set, sale(LIVE)), "https://shop.example.com/sale");
    // Device is chosen before country.
    assert_eq!(
        location(&set, sale(LIVE).with_country("DE").with_user_agent(IPHONE)),
        "shopapp://sale"
    );
    // A bot skips the device step (its UA says iPhone) but still gets its
    // country.
    assert_eq!(
        location(&set, sale(LIVE).with_country("FR").with_user_agent(IOS_BOT)),
        "https://shop.example.com/fr/soldes"
    );
    // Expiry comes first of all.
    assert_eq!(
        location(&set, sale(AFTER).with_country("DE").with_user_agent(IPHONE)),
        "https://shop.example.com/deals"
    );
    // One second before the end it is still live; at the instant it is over.
    let end = 1_914_451_200;
    assert_eq!(
        location(&set, sale(end - 1)),
        "https://shop.example.com/sale"
    );
    assert_eq!(location(&set, sale(end)), "https://shop.example.com/deals");

    match set.decide(&Request::get("go.example.com", "/bf23", LIVE)) {
        Decision::Gone { rule, .. } => assert_eq!(rule, "black-friday-2023"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn split_is_sticky_and_weighted() {
    let set = load();
    let mut grid = 0;
    for i in 0..2000u32 {
        let ip = std::net::IpAddr::from([10, (i >> 8) as u8, i as u8, 1]);
        let req = Request::get("go.example.com", "/new", LIVE)
            .with_client_ip(ip)
            .with_user_agent(DESKTOP);
        let first = location(&set, req);
        assert_eq!(first, location(&set, req), "variant must be sticky");
        if first.ends_with("layout=grid") {
            grid += 1;
        } else {
            assert_eq!(first, "https://shop.example.com/new?layout=stories");
        }
    }
    // 80/20 over 2000 visitors.
    assert!(
        (1450..=1750).contains(&grid),
        "grid chosen {grid} times of 2000"
    );
}

#[test]
fn prefix_pattern_wildcard_and_any_host() {
    let set = load();
    let (status, loc, rule) = redirect(
        &set,
        &Request::get("shop.example.com", "/blog/2026/05/look?utm=x", LIVE),
    );
    assert_eq!(
        (status, loc.as_str(), rule.as_str()),
        (
            301,
            "https://blog.example.com/2026/05/look?utm=x",
            "blog-moved"
        )
    );

    let (status, loc, _) = redirect(
        &set,
        &Request::get("shop.example.com", "/help/articles/returns", LIVE),
    );
    assert_eq!(
        (status, loc.as_str()),
        (308, "https://support.example.com/hc/en-us/articles/returns")
    );

    // Wildcard host at any depth, but not the bare domain.
    let app = |host| Request::get(host, "/app", LIVE).with_user_agent(IPHONE);
    assert_eq!(
        location(&set, app("m.example.com")),
        "https://apps.apple.com/app/id1234567890"
    );
    assert_eq!(
        location(&set, app("a.b.example.com")),
        "https://apps.apple.com/app/id1234567890"
    );
    assert!(matches!(
        set.decide(&app("example.com")),
        Decision::NotFound
    ));
    // go.example.com has its own /app (a bulk link with an iOS column).
    let (_, loc, rule) = redirect(&set, &app("go.example.com"));
    assert_eq!(
        (loc.as_str(), rule.as_str()),
        ("https://apps.apple.com/app/id1234567890", "go-links")
    );

    // Any host, after normalization; exact hosts fall through to it.
    for host in [
        "api.example.com",
        "GO.EXAMPLE.COM.",
        "shop.example.com:8443",
        "unrelated.net",
    ] {
        assert_eq!(
            location(&set, Request::get(host, "/privacy", LIVE)),
            "https://www.example.com/legal/privacy",
            "{host}"
        );
    }
}

#[test]
fn bulk_links() {
    let set = load();
    let (status, loc, rule) = redirect(
        &set,
        &Request::get("go.example.com", "/spring/?utm_content=story", LIVE),
    );
    assert_eq!(status, 302);
    assert_eq!(rule, "go-links");
    assert_eq!(
        loc,
        "https://shop.example.com/collections/spring?utm_source=go&utm_campaign=spring26&utm_content=story"
    );
    assert_eq!(
        redirect(&set, &Request::get("go.example.com", "/jobs", LIVE)).0,
        301
    );
    assert_eq!(
        location(
            &set,
            Request::get("go.example.com", "/rewards", LIVE).with_user_agent(DESKTOP)
        ),
        "https://shop.example.com/rewards?join=1"
    );
    assert_eq!(
        location(
            &set,
            Request::get("go.example.com", "/rewards", LIVE).with_user_agent(ANDROID)
        ),
        "shopapp://rewards"
    );
    // Expired rows answer 410; there is no expired_to for bulk links.
    assert!(matches!(
        set.decide(&Request::get("go.example.com", "/bf24", LIVE)),
        Decision::Gone {
            rule: "go-links",
            ..
        }
    ));
    assert_eq!(
        location(&set, Request::get("go.example.com", "/holiday", LIVE)),
        "https://shop.example.com/holiday"
    );
    assert!(matches!(
        set.decide(&Request::get("go.example.com", "/holiday", AFTER)),
        Decision::Gone { .. }
    ));
    // Codes are case-sensitive; unreserved escapes are decoded.
    assert_eq!(
        location(&set, Request::get("go.example.com", "/Mens-Shoes", LIVE)),
        "https://shop.example.com/c/men/shoes"
    );
    assert_eq!(
        location(&set, Request::get("go.example.com", "/Mens%2DShoes", LIVE)),
        "https://shop.example.com/c/men/shoes"
    );
    assert!(matches!(
        set.decide(&Request::get("go.example.com", "/mens-shoes", LIVE)),
        Decision::NotFound
    ));
}

#[test]
fn routes_and_responds() {
    let set = load();
    match set.decide(&Request::get(
        "api.example.com",
        "/v1/orders/123?expand=items",
        LIVE,
    )) {
        Decision::Proxy(p) => {
            assert_eq!(p.upstream, "api");
            assert_eq!(p.path_and_query, "/v1/orders/123?expand=items");
            assert_eq!(p.host_header, None);
            assert_eq!(p.rule, "api-v1");
        }
        other => panic!("{other:?}"),
    }
    match set.decide(&Request::get(
        "shop.example.com",
        "/api/v1/cart?currency=EUR",
        LIVE,
    )) {
        Decision::Proxy(p) => {
            assert_eq!(p.upstream, "api");
            assert_eq!(p.path_and_query, "/v1/cart?currency=EUR");
            assert_eq!(p.host_header, Some("api.example.com"));
        }
        other => panic!("{other:?}"),
    }
    // Nothing on api.example.com outside /v1/ (and no any-host rule for it).
    assert!(matches!(
        set.decide(&Request::get("api.example.com", "/v2/orders", LIVE)),
        Decision::NotFound
    ));

    let aasa = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/static/aasa.json"
    ))
    .unwrap();
    match set.decide(&Request::get(
        "go.example.com",
        "/.well-known/apple-app-site-association",
        LIVE,
    )) {
        Decision::Respond(r) => {
            assert_eq!(r.status, 200);
            assert_eq!(r.content_type, "application/json");
            assert_eq!(&r.body[..], &aasa[..]);
            assert!(r
                .headers
                .iter()
                .any(|(n, v)| n == "cache-control" && v == "public, max-age=3600"));
        }
        other => panic!("{other:?}"),
    }
    match set.decide(&Request::get(
        "go.example.com",
        "/.well-known/assetlinks.json",
        LIVE,
    )) {
        Decision::Respond(r) => assert!(r.body.starts_with(b"[")),
        other => panic!("{other:?}"),
    }
    match set.decide(&Request::get("shop.example.com", "/robots.txt", LIVE)) {
        Decision::Respond(r) => {
            assert_eq!(r.content_type, "text/plain; charset=utf-8");
            assert_eq!(&r.body[..], b"User-agent: *\nDisallow: /\n");
            assert!(r
                .headers
                .iter()
                .any(|(n, v)| n == "x-robots-tag" && v == "noindex"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn decision_slots_index_rule_ids() {
    let set = load();
    let ids: Vec<&str> = set.rule_ids().collect();
    let cases = [
        ("go.example.com", "/p/1"),
        ("go.example.com", "/spring"),
        ("api.example.com", "/v1/x"),
        ("go.example.com", "/robots.txt"),
        ("go.example.com", "/bf23"),
    ];
    for (host, path) in cases {
        let d = set.decide(&Request::get(host, path, LIVE));
        let slot = d.slot().unwrap_or_else(|| panic!("{host}{path}: {d:?}"));
        assert_eq!(Some(ids[slot]), d.rule(), "{host}{path}");
    }
}
