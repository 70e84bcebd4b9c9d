//! Property tests: whatever a client sends, `RuleSet::decide` must not panic,
//! must be deterministic, and every redirect it answers must carry a
//! `Location` that is a valid header value, a parseable URL, and points at the
//! origin (scheme + host) the rule's template fixed.
//!
//! Run with `cargo test -p rules --test safety_proptest`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use proptest::prelude::*;
use rules::{Decision, Redirect, Request, RuleSet, Target};

const CASES: u32 = 512;
const NOW: i64 = 1_790_000_000; // 2026-09-21

// --------------------------------------------------------------------------
// Rule sets
// --------------------------------------------------------------------------

/// The main rule set. Every device-specific destination (`ios` of `product`
/// and the `ios` column of the CSV) is an app-scheme `shopapp://product/...`
/// URL; every other destination is on `https://shop.example.com`.
const SAFETY_RULES: &str = r#"
[settings]
app_schemes = ["shopapp"]
click_id_param = "btn_ref"

# Pattern with one capture, used in path, query and fragment, on a wildcard host.
[[redirect]]
id = "product"
host = "*.example.com"
pattern = "/p/{sku}"
to = "https://shop.example.com/product/{sku}?src={sku}#{sku}"
ios = "shopapp://product/{sku}"
countries = { DE = "https://shop.example.com/de/product/{sku}" }

# Catch-all pattern.
[[redirect]]
id = "category"
host = "*.example.com"
pattern = "/c/{*rest}"
to = "https://shop.example.com/c/{rest}"

# Prefix rule with {rest}, any host.
[[redirect]]
id = "docs"
prefix = "/d/"
to = "https://shop.example.com/docs/{rest}"
status = 301

# Prefix rule whose destination has a query, and an expiry.
[[redirect]]
id = "campaign"
prefix = "/e/"
to = "https://shop.example.com/campaign/{rest}?utm_source=go&btn_ref=dest"
expires_at = "2026-01-01T00:00:00Z"
expired_to = "https://shop.example.com/expired?from={rest}"

# Split with a capture.
[[redirect]]
id = "split"
host = "*.example.com"
pattern = "/x/{id}"
split = [
  { to = "https://shop.example.com/a/{id}", weight = 1 },
  { to = "https://shop.example.com/b/{id}?v={id}", weight = 3 },
]

# Static destination with a query (including a planted click id).
[[redirect]]
id = "sale"
path = "/s"
to = "https://shop.example.com/sale?utm_source=go&btn_ref=dest"

# Bulk links on the exact host go.example.com.
[[links]]
id = "short"
host = "go.example.com"
prefix = "/l/"
file = "links.csv"
"#;

const SAFETY_LINKS: &str = "\
code,to,ios
abc,https://shop.example.com/item/1?utm_source=go,
sale,https://shop.example.com/sale,shopapp://product/42
x-1,https://shop.example.com/item/3#top,
%41b,https://shop.example.com/item/4?a=1&b=2,
deep/er,https://shop.example.com/item/5,
";

/// Rule set for the query pass-through property: no click id, destinations
/// without query or fragment.
const QUERY_RULES: &str = r#"
[[redirect]]
id = "product"
pattern = "/p/{sku}"
to = "https://shop.example.com/product/{sku}"

[[redirect]]
id = "category"
pattern = "/c/{*rest}"
to = "https://shop.example.com/c/{rest}"

[[redirect]]
id = "docs"
prefix = "/d/"
to = "https://shop.example.com/docs/{rest}"

[[redirect]]
id = "sale"
path = "/s"
to = "https://shop.example.com/sale"

[[links]]
id = "short"
prefix = "/l/"
file = "links.csv"
"#;

const QUERY_LINKS: &str = "\
code,to
abc,https://shop.example.com/item/1
xyz,https://shop.example.com/item/2/
";

fn build(rules: &str, csv: &str) -> RuleSet {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("links.csv"), csv).expect("write csv");
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, rules).expect("write rules");
    match RuleSet::load(&path) {
        Ok(set) => set,
        Err(errors) => {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("test rule set does not load:\n{}", list.join("\n"));
        }
    }
}

fn safety_set() -> &'static RuleSet {
    static SET: OnceLock<RuleSet> = OnceLock::new();
    SET.get_or_init(|| build(SAFETY_RULES, SAFETY_LINKS))
}

fn query_set() -> &'static RuleSet {
    static SET: OnceLock<RuleSet> = OnceLock::new();
    SET.get_or_init(|| build(QUERY_RULES, QUERY_LINKS))
}

// --------------------------------------------------------------------------
// Strategies
// --------------------------------------------------------------------------

/// Pieces that exercise escaping, decoding and query handling.
const TOKENS: &[&str] = &[
    "a",
    "Z",
    "0",
    "9",
    "-",
    ".",
    "_",
    "~",
    "/",
    "//",
    "..",
    "?",
    "#",
    "&",
    "=",
    "+",
    ";",
    ":",
    "@",
    "!",
    "$",
    "'",
    "(",
    ")",
    "*",
    ",",
    "%",
    "%41",
    "%2F",
    "%2f",
    "%20",
    "%25",
    "%0D%0A",
    "%00",
    "%zz",
    "%4",
    "%C3%A9",
    "%5F",
    " ",
    "\r",
    "\n",
    "\r\nSet-Cookie: x=1",
    "\t",
    "\0",
    "\x7f",
    "\"",
    "<",
    ">",
    "\\",
    "[",
    "]",
    "{",
    "}",
    "|",
    "^",
    "`",
    "é",
    "日本",
    "\u{202e}",
    "\u{feff}",
    "btn_ref=evil",
    "btn_ref",
    "btn%5Fref=evil",
    "src=x",
    "utm_source=in",
    "abc",
    "sale",
    "x-1",
    "%41b",
    "evil.com",
    "@evil.com",
    "https://evil.com",
];

/// A string of tokens, arbitrary Unicode, or arbitrary bytes made UTF-8.
fn messy() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::collection::vec(proptest::sample::select(TOKENS), 0..12).prop_map(|t| t.concat()),
        1 => any::<String>(),
        1 => proptest::collection::vec(any::<u8>(), 0..40)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("go.example.com".to_string()),
        2 => Just("m.shop.example.com".to_string()),
        1 => Just("GO.Example.COM:8443".to_string()),
        1 => Just("go.example.com.".to_string()),
        1 => Just("example.com".to_string()),
        1 => Just("other.net".to_string()),
        1 => Just("[::1]:80".to_string()),
        1 => Just(String::new()),
        2 => messy(),
    ]
}

/// Paths that reach every rule, plus fully arbitrary ones.
fn path() -> impl Strategy<Value = String> {
    let prefixed = (
        proptest::sample::select(
            &[
                "/p/", "/c/", "/d/", "/e/", "/x/", "/l/", "/s", "/", "/p", "/l/abc", "/l/sale",
            ][..],
        ),
        messy(),
    )
        .prop_map(|(p, rest)| format!("{p}{rest}"));
    prop_oneof![
        6 => prefixed,
        2 => proptest::sample::select(&["/l/abc", "/l/sale", "/l/x-1", "/l/Ab", "/l/%41b", "/l/deep/er", "/s", "/s/"][..])
            .prop_map(str::to_string),
        2 => messy(),
    ]
}

fn user_agent() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148".to_string()),
        Just("Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/120.0.0.0 Mobile Safari/537.36".to_string()),
        Just("Twitterbot/1.0".to_string()),
        Just(String::new()),
        messy(),
    ]
}

fn country() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just("DE".to_string()),
        Just("de".to_string()),
        Just("US".to_string()),
        messy()
    ])
}

fn now() -> impl Strategy<Value = i64> {
    prop_oneof![3 => Just(NOW), 1 => Just(1_700_000_000i64), 1 => any::<i64>()]
}

fn client_ip() -> impl Strategy<Value = Option<IpAddr>> {
    prop::option::of(any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))))
}

/// An owned request; `as_request` borrows it.
#[derive(Debug, Clone)]
struct Input {
    host: String,
    path: String,
    query: Option<String>,
    user_agent: String,
    country: Option<String>,
    click_id: Option<String>,
    client_ip: Option<IpAddr>,
    now: i64,
}

impl Input {
    fn as_request(&self) -> Request<'_> {
        Request {
            method: "GET",
            host: &self.host,
            path: &self.path,
            query: self.query.as_deref(),
            user_agent: &self.user_agent,
            country: self.country.as_deref(),
            client_ip: self.client_ip,
            click_id: self.click_id.as_deref().into(),
            now: self.now,
        }
    }
}

fn input() -> impl Strategy<Value = Input> {
    (
        host(),
        path(),
        prop::option::of(messy()),
        user_agent(),
        country(),
        prop::option::of(messy()),
        client_ip(),
        now(),
    )
        .prop_map(
            |(host, path, query, user_agent, country, click_id, client_ip, now)| Input {
                host,
                path,
                query,
                user_agent,
                country,
                click_id,
                client_ip,
                now,
            },
        )
}

// --------------------------------------------------------------------------
// Checks
// --------------------------------------------------------------------------

/// Scheme and host the redirect must point at: the app scheme for device
/// destinations, the shop for everything else (see `SAFETY_RULES`).
fn expected_origin(r: &Redirect<'_>) -> (&'static str, &'static str) {
    if r.target == Target::Device {
        ("shopapp", "product")
    } else {
        ("https", "shop.example.com")
    }
}

/// Every safety property of one redirect's `Location`.
fn check_location(r: &Redirect<'_>, origin: (&str, &str)) -> Result<url::Url, TestCaseError> {
    let bytes = r.location.as_bytes();
    let shown = String::from_utf8_lossy(bytes);
    prop_assert!(
        http::HeaderValue::from_bytes(bytes).is_ok(),
        "Location {shown:?} is not a valid header value"
    );
    if let Some(b) = bytes.iter().find(|&&b| !(0x21..=0x7e).contains(&b)) {
        return Err(TestCaseError::fail(format!(
            "Location {shown:?} holds byte {b:#04x} (CR/LF/control/space/non-ASCII)"
        )));
    }
    let s = r
        .location
        .to_str()
        .map_err(|e| TestCaseError::fail(format!("to_str: {e}")))?;
    let url = url::Url::parse(s)
        .map_err(|e| TestCaseError::fail(format!("Location {s:?} does not parse: {e}")))?;
    prop_assert_eq!(url.scheme(), origin.0, "scheme of {:?}", s);
    prop_assert_eq!(url.host_str(), Some(origin.1), "host of {:?}", s);
    prop_assert!(
        url.username().is_empty() && url.password().is_none(),
        "credentials in {:?}",
        s
    );
    prop_assert_eq!(url.port(), None, "port in {:?}", s);
    // Textually, too: the literal origin followed by the start of a path,
    // query or fragment (nothing can extend the host).
    let lit = format!("{}://{}", origin.0, origin.1);
    prop_assert!(
        s.starts_with(&lit)
            && matches!(s.as_bytes().get(lit.len()), None | Some(b'/' | b'?' | b'#')),
        "Location {:?} does not start with the origin {}",
        s,
        lit
    );
    Ok(url)
}

fn describe(d: &Decision<'_>) -> String {
    format!("{d:?}")
}

// --------------------------------------------------------------------------
// Sanity: the properties are not vacuous
// --------------------------------------------------------------------------

fn loc(d: &Decision<'_>) -> String {
    match d {
        Decision::Redirect(r) => r.location.to_str().unwrap().to_string(),
        other => panic!("expected a redirect, got {other:?}"),
    }
}

#[test]
fn every_rule_of_the_safety_set_redirects() {
    let set = safety_set();
    let get = |host: &'static str, pq: &'static str| set.decide(&Request::get(host, pq, NOW));
    assert_eq!(
        loc(&get("go.example.com", "/p/a%20b&c")),
        "https://shop.example.com/product/a%20b&c?src=a%20b%26c#a%20b&c"
    );
    let ios = Request::get("go.example.com", "/p/42", NOW)
        .with_user_agent("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)");
    assert_eq!(loc(&set.decide(&ios)), "shopapp://product/42");
    assert_eq!(
        loc(&set.decide(&Request::get("go.example.com", "/p/42", NOW).with_country("de"))),
        "https://shop.example.com/de/product/42"
    );
    assert_eq!(
        loc(&get("m.shop.example.com", "/c/a/b/c")),
        "https://shop.example.com/c/a/b/c"
    );
    assert_eq!(
        loc(&get("other.net", "/d/x/y?q=1")),
        "https://shop.example.com/docs/x/y?q=1"
    );
    assert_eq!(
        loc(&get("other.net", "/e/x")),
        "https://shop.example.com/expired?from=x"
    );
    assert!(loc(&get("go.example.com", "/x/7")).starts_with("https://shop.example.com/"));
    assert_eq!(
        loc(&get("go.example.com", "/s")),
        "https://shop.example.com/sale?utm_source=go&btn_ref=dest"
    );
    assert_eq!(
        loc(&get("go.example.com", "/l/abc")),
        "https://shop.example.com/item/1?utm_source=go"
    );
    assert_eq!(
        loc(&get("go.example.com", "/l/Ab")),
        "https://shop.example.com/item/4?a=1&b=2"
    );
    let ios = Request::get("go.example.com", "/l/sale", NOW).with_user_agent("iPhone");
    assert_eq!(loc(&set.decide(&ios)), "shopapp://product/42");
    let clicked = Request::get("go.example.com", "/s?btn_ref=evil&q=1", NOW).with_click_id("01ABC");
    assert_eq!(
        loc(&set.decide(&clicked)),
        "https://shop.example.com/sale?utm_source=go&q=1&btn_ref=01ABC"
    );
    assert!(matches!(
        get("go.example.com", "/nothing"),
        Decision::NotFound
    ));
}

#[test]
fn every_rule_of_the_query_set_redirects() {
    let set = query_set();
    for (pq, want) in [
        ("/p/1?a=b", "https://shop.example.com/product/1?a=b"),
        ("/c/x/y?a=b", "https://shop.example.com/c/x/y?a=b"),
        ("/d/z?a=b", "https://shop.example.com/docs/z?a=b"),
        ("/s?a=b", "https://shop.example.com/sale?a=b"),
        ("/l/abc?a=b", "https://shop.example.com/item/1?a=b"),
        ("/l/xyz?a=b", "https://shop.example.com/item/2/?a=b"),
    ] {
        assert_eq!(
            loc(&set.decide(&Request::get("any.host", pq, NOW))),
            want,
            "{pq}"
        );
    }
}

// --------------------------------------------------------------------------
// Properties
// --------------------------------------------------------------------------

/// Query strings made only of bytes a query may hold as they are, and valid
/// `%XX` escapes. Non-empty.
fn safe_query() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        8 => proptest::sample::select(
            &b"abcxyzABCXYZ0189-._~!$&'()*+,;=:@/?"[..]
        ).prop_map(|b| (b as char).to_string()),
        1 => (0u8..=255).prop_map(|b| format!("%{b:02X}")),
        1 => (0u8..=255).prop_map(|b| format!("%{b:02x}")),
        1 => proptest::sample::select(&["utm_source=a", "q=a+b", "flag", "x=%20y", "a=1&a=2", "&&", "=="][..])
            .prop_map(str::to_string),
    ];
    proptest::collection::vec(piece, 1..24).prop_map(|v| v.concat())
}

/// Alphanumeric codes that the click id property reaches through patterns,
/// prefixes, the static rule and bulk links.
fn click_path() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9]{1,12}".prop_map(|s| format!("/p/{s}")),
        "[a-zA-Z0-9][a-zA-Z0-9/]{0,11}".prop_map(|s| format!("/c/{s}")),
        "[a-zA-Z0-9/]{0,12}".prop_map(|s| format!("/d/{s}")),
        "[a-zA-Z0-9/]{0,12}".prop_map(|s| format!("/e/{s}")),
        "[a-zA-Z0-9]{1,12}".prop_map(|s| format!("/x/{s}")),
        Just("/s".to_string()),
        proptest::sample::select(&["/l/abc", "/l/sale", "/l/x-1", "/l/Ab", "/l/deep/er"][..])
            .prop_map(str::to_string),
    ]
}

/// Incoming queries that may try to plant a click id.
fn planting_query() -> impl Strategy<Value = Option<String>> {
    let param = prop_oneof![
        3 => proptest::sample::select(&[
            "btn_ref=evil", "btn_ref", "btn_ref=", "btn_ref=a&btn_ref=b", "src=in", "utm_source=in",
            "q=1", "flag", "a=b+c", "x=%20y", "", "btn_ref=1%26btn_ref%3D2",
        ][..]).prop_map(str::to_string),
        1 => "[a-z_=%5F0-9]{0,12}",
    ];
    prop::option::of(proptest::collection::vec(param, 0..6).prop_map(|v| v.join("&")))
}

/// Same as `planting_query`, plus a percent-encoded click id name
/// (`btn%5Fref=evil`), which decodes to `btn_ref` in every query parser.
fn planting_query_encoded() -> impl Strategy<Value = Option<String>> {
    let param = prop_oneof![
        2 => proptest::sample::select(&["btn_ref=evil", "q=1", "flag", ""][..]).prop_map(str::to_string),
        1 => proptest::sample::select(&["btn%5Fref=evil", "btn%5fref=evil", "%62tn_ref=evil"][..]).prop_map(str::to_string),
    ];
    prop::option::of(proptest::collection::vec(param, 0..6).prop_map(|v| v.join("&")))
}

fn check_click_id(
    set: &RuleSet,
    host: &str,
    path: &str,
    query: Option<&str>,
    ua: &str,
    id: &str,
) -> Result<(), TestCaseError> {
    let req = Request {
        method: "GET",
        host,
        path,
        query,
        user_agent: ua,
        country: None,
        client_ip: None,
        click_id: rules::ClickIdSource::Given(id),
        now: NOW,
    };
    let d = set.decide(&req);
    let Decision::Redirect(r) = &d else {
        return Err(TestCaseError::fail(format!(
            "expected a redirect for {path:?} ? {query:?}, got {}",
            describe(&d)
        )));
    };
    let url = check_location(r, expected_origin(r))?;
    let s = r.location.to_str().unwrap();
    let q = url.query().unwrap_or("");
    let raw: Vec<&str> = q.split('&').collect();
    let want = format!("btn_ref={id}");
    prop_assert_eq!(
        raw.last().copied(),
        Some(want.as_str()),
        "last parameter of {:?}",
        s
    );
    // Raw names, as written.
    let raw_named = raw
        .iter()
        .filter(|p| p.split('=').next() == Some("btn_ref"))
        .count();
    prop_assert_eq!(raw_named, 1, "raw btn_ref parameters in {:?}", s);
    // Decoded names, as every query parser sees them.
    let decoded: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k == "btn_ref")
        .map(|(_, v)| v.into_owned())
        .collect();
    prop_assert_eq!(
        decoded,
        vec![id.to_string()],
        "decoded btn_ref parameters in {:?}",
        s
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: CASES,
        // Failures are reported with their minimal input; no regression file.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// `decide` never panics, is deterministic, and every redirect is safe.
    #[test]
    fn redirects_are_safe_and_deterministic(inp in input()) {
        let set = safety_set();
        let req = inp.as_request();
        let first = set.decide(&req);
        let second = set.decide(&req);
        prop_assert_eq!(describe(&first), describe(&second), "not deterministic for {:?}", inp);
        if let Decision::Redirect(r) = &first {
            check_location(r, expected_origin(r))?;
        }
    }

    /// Deciding on the caller's normalization (the gateway normalizes once
    /// for the click and the decision) is deciding on the request.
    #[test]
    fn a_decision_on_the_callers_normalization_is_the_same(inp in input()) {
        for set in [safety_set(), query_set()] {
            let req = inp.as_request();
            let direct = set.decide(&req);
            match set.normalized(req.host, req.path) {
                Some((host, full)) => {
                    let again = set.decide_normalized(&req, &host, &full, &rules::NoStore);
                    prop_assert_eq!(describe(&direct), describe(&again), "for {:?}", inp);
                }
                None => prop_assert!(
                    matches!(direct, Decision::BadRequest { .. }),
                    "normalized() refused what decide() took: {:?}",
                    inp
                ),
            }
        }
    }

    /// Same, through `Request::get`, so a `?` in the path-and-query splits
    /// the query off as the server would.
    #[test]
    fn redirects_from_raw_targets_are_safe(
        host in host(),
        path in path(),
        query in prop::option::of(messy()),
        click in prop::option::of(messy()),
    ) {
        let set = safety_set();
        let pq = match &query {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        let mut req = Request::get(&host, &pq, NOW);
        if let Some(c) = &click {
            req = req.with_click_id(c);
        }
        let first = set.decide(&req);
        prop_assert_eq!(describe(&first), describe(&set.decide(&req)));
        if let Decision::Redirect(r) = &first {
            check_location(r, expected_origin(r))?;
        }
    }

    /// An incoming query of characters a query may hold is carried byte for
    /// byte when the destination has no query and no click id is configured.
    #[test]
    fn safe_query_is_carried_byte_for_byte(
        path in prop_oneof![
            "[a-zA-Z0-9]{1,12}".prop_map(|s| format!("/p/{s}")),
            "[a-zA-Z0-9][a-zA-Z0-9/]{0,11}".prop_map(|s| format!("/c/{s}")),
            "[a-zA-Z0-9/]{0,12}".prop_map(|s| format!("/d/{s}")),
            proptest::sample::select(&["/s", "/l/abc", "/l/xyz"][..]).prop_map(str::to_string),
        ],
        query in safe_query(),
        click in prop::option::of("[a-zA-Z0-9]{1,16}"),
    ) {
        let set = query_set();
        let req = Request {
            method: "GET",
            host: "go.example.com",
            path: &path,
            query: Some(&query),
            user_agent: "",
            country: None,
            client_ip: None,
            click_id: click.as_deref().into(),
            now: NOW,
        };
        let d = set.decide(&req);
        let Decision::Redirect(r) = &d else {
            return Err(TestCaseError::fail(format!("expected a redirect, got {}", describe(&d))));
        };
        check_location(r, ("https", "shop.example.com"))?;
        let s = r.location.to_str().unwrap();
        let tail = format!("?{query}");
        prop_assert!(s.ends_with(&tail), "Location {:?} does not end with {:?}", s, tail);
        prop_assert_eq!(s.matches('?').count(), query.matches('?').count() + 1, "extra `?` in {:?}", s);
    }

    /// With `click_id_param`, the click id is the last parameter and the only
    /// `btn_ref`, whatever the visitor sent.
    #[test]
    fn click_id_is_last_and_unique(
        host in prop_oneof![Just("go.example.com"), Just("m.shop.example.com"), Just("GO.EXAMPLE.COM:80")],
        path in click_path(),
        query in planting_query(),
        ua in prop_oneof![Just(""), Just("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)")],
        id in "[a-zA-Z0-9]{1,32}",
    ) {
        // /l/ links only live on go.example.com.
        let host = if path.starts_with("/l/") { "go.example.com" } else { host };
        check_click_id(safety_set(), host, &path, query.as_deref(), ua, &id)?;
    }

    /// Same, when the visitor percent-encodes the click id parameter's name.
    #[test]
    fn click_id_cannot_be_planted_with_an_encoded_name(
        path in click_path(),
        query in planting_query_encoded(),
        id in "[a-zA-Z0-9]{1,32}",
    ) {
        check_click_id(safety_set(), "go.example.com", &path, query.as_deref(), "", &id)?;
    }
}
