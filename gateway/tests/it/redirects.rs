//! Redirects, fixed responses and error answers from the real binary.

use crate::harness;

use crate::harness::{ANDROID, DESKTOP, IPHONE, SLACKBOT};

use crate::harness::{read_response, send, Gateway};
use std::collections::HashMap;
use std::io::BufReader;
use std::net::TcpStream;
use std::time::Duration;

const RULES: &str = r#"
[settings]
app_schemes = ["shopapp"]
country_header = "CloudFront-Viewer-Country"

[[redirect]]
id = "home"
host = "go.example.com"
path = "/"
to = "https://shop.example.com/"
status = 301

[[redirect]]
id = "summer"
host = "go.example.com"
path = "/summer"
to = "https://shop.example.com/sale?utm_source=go&ref=dest"
cache_control = "public, max-age=600"

[[redirect]]
id = "product"
host = "go.example.com"
pattern = "/p/{sku}"
to = "https://shop.example.com/product/{sku}"
ios = "shopapp://product/{sku}"
android = "https://shop.example.com/app/product/{sku}"
countries = { GB = "https://shop.example.co.uk/product/{sku}" }

[[redirect]]
id = "docs"
host = "go.example.com"
prefix = "/docs/"
to = "https://docs.example.com/{rest}"
status = 308

[[redirect]]
id = "brand"
host = "*.brands.example.com"
path = "/"
to = "https://shop.example.com/brands"
status = 307

[[redirect]]
id = "ab"
host = "go.example.com"
path = "/ab"
split = [ { to = "https://a.example.com/", weight = 90 }, { to = "https://b.example.com/", weight = 10 } ]

[[redirect]]
id = "old-campaign"
host = "go.example.com"
path = "/old"
to = "https://shop.example.com/old"
expires_at = "2020-01-01T00:00:00Z"

[[redirect]]
id = "old-with-fallback"
host = "go.example.com"
path = "/old2"
to = "https://shop.example.com/old2"
expires_at = "2020-01-01T00:00:00Z"
expired_to = "https://shop.example.com/offers"

[[redirect]]
id = "future"
host = "go.example.com"
path = "/future"
to = "https://shop.example.com/future"
expires_at = "2099-01-01T00:00:00Z"
expired_to = "https://shop.example.com/offers"

[[redirect]]
id = "nodrop"
host = "go.example.com"
path = "/drop"
to = "https://shop.example.com/dropped"
query = "drop"

[[links]]
id = "go-links"
host = "go.example.com"
file = "links.csv"

[[respond]]
id = "aasa"
host = "go.example.com"
path = "/.well-known/apple-app-site-association"
content_type = "application/json"
body_file = "aasa.json"
cache_control = "public, max-age=3600"

[[respond]]
id = "robots"
path = "/robots.txt"
body = "User-agent: *\nDisallow:\n"
"#;

const LINKS: &str = "code,to,status,ios\nabc,https://shop.example.com/item/1?src=go,,\nxyz,https://shop.example.com/item/2,301,shopapp://item/2\n";
const AASA: &str = r#"{"applinks":{"details":[]}}"#;

fn gateway() -> Gateway {
    gateway_with(RULES)
}

fn gateway_with(rules: &str) -> Gateway {
    Gateway::start_with(
        rules,
        harness::Options {
            files: &[
                ("links.csv", LINKS.as_bytes()),
                ("aasa.json", AASA.as_bytes()),
            ],
            ..Default::default()
        },
    )
}

#[test]
fn redirect_kinds_answer_with_status_location_cache_control_and_empty_body() {
    let gw = gateway();
    let cases = [
        (
            "go.example.com",
            "/",
            301,
            "https://shop.example.com/",
            "private, max-age=90",
        ),
        (
            "go.example.com",
            "/summer",
            302,
            "https://shop.example.com/sale?utm_source=go&ref=dest",
            "public, max-age=600",
        ),
        (
            "go.example.com",
            "/p/123",
            302,
            "https://shop.example.com/product/123",
            "private, max-age=90",
        ),
        (
            "go.example.com",
            "/docs/a/b.html",
            308,
            "https://docs.example.com/a/b.html",
            "private, max-age=90",
        ),
        (
            "x.brands.example.com",
            "/",
            307,
            "https://shop.example.com/brands",
            "private, max-age=90",
        ),
        (
            "Deep.X.Brands.Example.COM:8080",
            "/",
            307,
            "https://shop.example.com/brands",
            "private, max-age=90",
        ),
        (
            "go.example.com",
            "/abc",
            302,
            "https://shop.example.com/item/1?src=go",
            "private, max-age=90",
        ),
        (
            "go.example.com",
            "/xyz",
            301,
            "https://shop.example.com/item/2",
            "private, max-age=90",
        ),
        (
            "go.example.com",
            "/abc/",
            302,
            "https://shop.example.com/item/1?src=go",
            "private, max-age=90",
        ),
    ];
    for (host, path, status, location, cc) in cases {
        let r = gw.get(host, path);
        assert_eq!(r.status, status, "{host}{path}");
        assert_eq!(r.location(), location, "{host}{path}");
        assert_eq!(r.header("cache-control"), Some(cc), "{host}{path}");
        assert_eq!(r.header("content-length"), Some("0"), "{host}{path}");
        assert!(r.body.is_empty());
    }
}

#[test]
fn head_gets_headers_without_body() {
    let gw = gateway();
    let r = gw.req("HEAD", "go.example.com", "/p/9", &[]);
    assert_eq!(r.status, 302);
    assert_eq!(r.location(), "https://shop.example.com/product/9");
    let r = gw.req(
        "HEAD",
        "go.example.com",
        "/.well-known/apple-app-site-association",
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(AASA.len().to_string().as_str())
    );
    // The next request on a fresh connection proves nothing was left unread.
    assert_eq!(gw.get("go.example.com", "/robots.txt").status, 200);
}

#[test]
fn a_hundred_requests_share_one_keep_alive_connection() {
    let gw = gateway();
    let stream = TcpStream::connect(gw.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    for i in 0..100 {
        let (method, path) = match i % 4 {
            0 => ("GET", format!("/p/{i}")),
            1 => ("HEAD", format!("/p/{i}")),
            2 => ("GET", "/robots.txt".to_string()),
            _ => ("GET", "/missing".to_string()),
        };
        send(&mut writer, method, &path, "go.example.com", &[]);
        let r = read_response(&mut reader, method == "HEAD")
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        match i % 4 {
            0 | 1 => assert_eq!(
                r.location(),
                format!("https://shop.example.com/product/{i}")
            ),
            2 => assert_eq!(r.text(), "User-agent: *\nDisallow:\n"),
            _ => assert_eq!(r.status, 404),
        }
    }
}

#[test]
fn device_targeting_by_real_user_agents() {
    let gw = gateway();
    let cases = [
        (IPHONE, "shopapp://product/7"),
        (ANDROID, "https://shop.example.com/app/product/7"),
        (DESKTOP, "https://shop.example.com/product/7"),
        (SLACKBOT, "https://shop.example.com/product/7"),
        ("", "https://shop.example.com/product/7"),
    ];
    for (ua, location) in cases {
        let r = gw.req("GET", "go.example.com", "/p/7", &[("User-Agent", ua)]);
        assert_eq!(r.location(), location, "{ua}");
    }
    // Bulk links have per-row device columns too.
    let r = gw.req("GET", "go.example.com", "/xyz", &[("User-Agent", IPHONE)]);
    assert_eq!(r.location(), "shopapp://item/2");
}

#[test]
fn country_targeting_by_header() {
    let gw = gateway();
    let at = |country: &str| {
        gw.req(
            "GET",
            "go.example.com",
            "/p/5",
            &[
                ("CloudFront-Viewer-Country", country),
                ("User-Agent", DESKTOP),
            ],
        )
        .location()
        .to_string()
    };
    assert_eq!(at("GB"), "https://shop.example.co.uk/product/5");
    assert_eq!(at("gb"), "https://shop.example.co.uk/product/5");
    assert_eq!(at("US"), "https://shop.example.com/product/5");
    assert_eq!(at("not-a-country"), "https://shop.example.com/product/5");
}

#[test]
fn split_is_sticky_per_visitor_and_holds_its_weights() {
    let gw = gateway();
    let stream = TcpStream::connect(gw.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut b = 0;
    let visitors = 10_000;
    for v in 0..visitors {
        let ua = format!("Mozilla/5.0 visitor-{v}");
        send(
            &mut writer,
            "GET",
            "/ab",
            "go.example.com",
            &[("User-Agent", &ua)],
        );
        let loc = read_response(&mut reader, false)
            .unwrap()
            .location()
            .to_string();
        if loc == "https://b.example.com/" {
            b += 1;
        } else {
            assert_eq!(loc, "https://a.example.com/");
        }
        seen.insert(ua, loc);
    }
    // 10 % ± 1.5 points (about 5 standard deviations of a fair draw).
    let share = b as f64 / visitors as f64;
    assert!((0.085..=0.115).contains(&share), "variant b share {share}");
    // The same visitor always sees the same variant.
    for v in (0..visitors).step_by(97) {
        let ua = format!("Mozilla/5.0 visitor-{v}");
        send(
            &mut writer,
            "GET",
            "/ab",
            "go.example.com",
            &[("User-Agent", &ua)],
        );
        let loc = read_response(&mut reader, false)
            .unwrap()
            .location()
            .to_string();
        assert_eq!(seen[&ua], loc, "visitor {v} switched variant");
    }
}

#[test]
fn expiry_gives_410_or_the_fallback() {
    let gw = gateway();
    let r = gw.get("go.example.com", "/old");
    assert_eq!(r.status, 410);
    assert!(r.text().contains("expired"));
    let r = gw.get("go.example.com", "/old2");
    assert_eq!(
        (r.status, r.location()),
        (302, "https://shop.example.com/offers")
    );
    let r = gw.get("go.example.com", "/future");
    assert_eq!(r.location(), "https://shop.example.com/future");
}

#[test]
fn query_is_merged_byte_for_byte_or_dropped() {
    let gw = gateway();
    let r = gw.get("go.example.com", "/summer?ref=in&flag&q=a+b%20c&q=2&empty=");
    assert_eq!(
        r.location(),
        "https://shop.example.com/sale?utm_source=go&ref=in&flag&q=a+b%20c&q=2&empty="
    );
    let r = gw.get("go.example.com", "/p/1?x=%22quoted%22&y='a'!*(b)");
    assert_eq!(
        r.location(),
        "https://shop.example.com/product/1?x=%22quoted%22&y='a'!*(b)"
    );
    // Bytes a URL may not hold never reach the server's decision: the HTTP
    // parser refuses them with 400.
    assert_eq!(gw.get("go.example.com", "/p/1?y=<tag>").status, 400);
    let r = gw.get("go.example.com", "/drop?utm=1");
    assert_eq!(r.location(), "https://shop.example.com/dropped");
}

#[test]
fn click_id_is_appended_last_and_unique_per_click() {
    let rules = RULES.replace(
        "country_header = \"CloudFront-Viewer-Country\"",
        "country_header = \"CloudFront-Viewer-Country\"\nclick_id_param = \"btn_ref\"",
    );
    let gw = gateway_with(&rules);
    let a = gw
        .get("go.example.com", "/summer?x=1&btn_ref=planted")
        .location()
        .to_string();
    let b = gw
        .get("go.example.com", "/summer?x=1")
        .location()
        .to_string();
    for loc in [&a, &b] {
        let (base, id) = loc.rsplit_once("&btn_ref=").unwrap();
        assert_eq!(
            base,
            "https://shop.example.com/sale?utm_source=go&ref=dest&x=1"
        );
        assert_eq!(id.len(), 32, "{loc}");
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(!loc.contains("planted"));
    }
    assert_ne!(a, b);
    let link = gw.get("go.example.com", "/xyz").location().to_string();
    assert!(
        link.starts_with("https://shop.example.com/item/2?btn_ref="),
        "{link}"
    );
}

#[test]
fn respond_rules_send_their_bodies() {
    let gw = gateway();
    let r = gw.get("go.example.com", "/.well-known/apple-app-site-association");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=3600"));
    assert_eq!(r.text(), AASA);
    let r = gw.get("anything.example.net", "/robots.txt");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "User-agent: *\nDisallow:\n")
    );
}

#[test]
fn not_found_and_bad_requests() {
    let gw = gateway();
    for (host, path) in [
        ("go.example.com", "/nope"),
        ("unknown.example.org", "/p/1"),
        ("brands.example.com", "/"),
    ] {
        let r = gw.get(host, path);
        assert_eq!(r.status, 404, "{host}{path}");
        assert_eq!(r.text(), "not found\n");
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    }
    // A bad percent-escape, a bad host, a path that is not a path.
    for (host, path) in [
        ("go.example.com", "/p/%zz"),
        ("bad host!", "/"),
        ("go.example.com", "*"),
    ] {
        let r = gw.get(host, path);
        assert_eq!(r.status, 400, "{host} {path}");
    }
    // Garbage on the wire is refused with 400 too, and the server lives on.
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::io::Write::write_all(&mut s, b"\x16\x03\x01 not http at all\r\n\r\n").unwrap();
    let mut buf = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut buf);
    assert!(buf.is_empty() || buf.starts_with("HTTP/1.1 400"), "{buf:?}");
    assert_eq!(gw.get("go.example.com", "/p/1").status, 302);
}
