//! `RuleSet::explain` (issue 12): the click id placeholder, which of host or
//! path matched nothing, and expiry of rules and bulk links.

use rules::{ClickIdSource, Decision, LoadOptions, Probe, Request, RuleSet, CLICK_ID_PLACEHOLDER};

/// 2026-06-15T12:00:00Z.
const NOW: i64 = 1_781_524_800;

fn set(src: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, RuleSet) {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let path = dir.path().join("rules.toml");
    let opts = LoadOptions {
        now: Some(NOW),
        ..Default::default()
    };
    let set = RuleSet::from_source(src, &path, &opts).unwrap_or_else(|e| panic!("{e:?}"));
    (dir, set)
}

fn probe(url: &str) -> Request<'_> {
    Probe {
        url,
        ..Default::default()
    }
    .request(NOW)
    .unwrap()
}

const RULES: &str = r#"
[settings]
click_id_param = "btn_ref"

[[redirect]]
id = "own"
host = "go.example.com"
path = "/own"
to = "https://shop.example.com/x?btn_ref=fixed&a=1#f"

[[redirect]]
id = "wild"
host = "*.example.net"
path = "/w"
to = "https://shop.example.com/w"

[[links]]
id = "codes"
host = "go.example.com"
prefix = "/l/"
file = "links.csv"
"#;

const LINKS: &str = "code,to,expires_at\nold,https://shop.example.com/old,2020-01-01T00:00:00Z\nnew,https://shop.example.com/new,2099-01-01T00:00:00Z\n";

#[test]
fn the_click_id_placeholder_replaces_the_destinations_own_like_the_live_id() {
    let (_d, set) = set(RULES, &[("links.csv", LINKS)]);
    let e = set.explain(&probe("https://go.example.com/own?q=1"));
    let placeholder = format!("btn_ref={CLICK_ID_PLACEHOLDER}");
    assert_eq!(
        e.location.as_deref(),
        Some(format!("https://shop.example.com/x?a=1&q=1&{placeholder}#f").as_str())
    );
    // The same position as a real id.
    let live = set.decide(&probe("https://go.example.com/own?q=1").with_click_id("ID1"));
    let rules::Decision::Redirect(r) = live else {
        panic!("not a redirect")
    };
    assert_eq!(
        r.location
            .to_str()
            .unwrap()
            .replace("ID1", CLICK_ID_PLACEHOLDER),
        e.location.unwrap()
    );
    // A request that carries an id is explained with it.
    let e = set.explain(&probe("https://go.example.com/own").with_click_id("abc"));
    assert_eq!(
        e.location.as_deref(),
        Some("https://shop.example.com/x?a=1&btn_ref=abc#f")
    );
}

#[test]
fn without_a_click_id_param_a_later_id_is_never_asked_for() {
    let (_d, set) = set(
        "[[redirect]]\nid = \"a\"\npath = \"/a\"\nto = \"https://shop.example.com/a\"\n",
        &[],
    );
    let later = || -> &str { panic!("asked for a click id no parameter carries") };
    let mut req = probe("https://any.example.org/a");
    req.click_id = ClickIdSource::Later(&later);
    match set.decide(&req) {
        Decision::Redirect(r) => assert_eq!(r.location, "https://shop.example.com/a"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_placeholder_without_a_click_id_param() {
    let (_d, set) = set(
        "[[redirect]]\nid = \"a\"\npath = \"/a\"\nto = \"https://shop.example.com/a\"\n",
        &[],
    );
    let e = set.explain(&probe("https://any.example.org/a"));
    assert_eq!(e.location.as_deref(), Some("https://shop.example.com/a"));
    // Any-host rules apply to every host: only the path matched nothing.
    let e = set.explain(&probe("https://any.example.org/b"));
    assert_eq!(e.reason.as_deref(), Some("no rule matches this path"));
    assert_eq!(e.host_rules.as_deref(), Some("any"));
}

#[test]
fn unmatched_host_and_unmatched_path_are_told_apart() {
    let (_d, set) = set(RULES, &[("links.csv", LINKS)]);
    let cases = [
        (
            "https://go.example.com/nope",
            "no rule matches this path",
            Some("exact"),
        ),
        (
            "https://a.b.example.net/nope",
            "no rule matches this path",
            Some("wildcard *.example.net"),
        ),
        ("https://example.net/w", "no rule for this host", None),
        (
            "https://other.example.org/own",
            "no rule for this host",
            None,
        ),
    ];
    for (url, reason, level) in cases {
        let e = set.explain(&probe(url));
        assert_eq!(e.action, "not_found", "{url}");
        assert_eq!(e.reason.as_deref(), Some(reason), "{url}");
        assert_eq!(e.host_rules.as_deref(), level, "{url}");
        assert!(
            e.to_string().contains(if level.is_some() {
                "but none matches this path"
            } else {
                "(no rule for this host)"
            }),
            "{url}: {e}"
        );
    }
}

#[test]
fn an_expired_bulk_link_says_when_and_that_it_answers_410() {
    let (_d, set) = set(RULES, &[("links.csv", LINKS)]);
    let e = set.explain(&probe("https://go.example.com/l/old"));
    assert_eq!((e.action, e.status), ("gone", Some(410)));
    assert_eq!(e.expired, Some(true));
    assert_eq!(e.expires_at.as_deref(), Some("2020-01-01T00:00:00Z"));
    assert_eq!(
        e.reason.as_deref(),
        Some("expired at 2020-01-01T00:00:00Z; answers 410 Gone, as it has no expired_to")
    );
    let text = e.to_string();
    assert!(
        text.contains("expires:     2020-01-01T00:00:00Z (expired)"),
        "{text}"
    );

    let e = set.explain(&probe("https://go.example.com/l/new"));
    assert_eq!(e.action, "redirect");
    assert_eq!(e.expired, Some(false));
    assert_eq!(e.reason, None);
    assert_eq!(
        e.location.as_deref(),
        Some("https://shop.example.com/new?btn_ref=<click id>")
    );
}

#[test]
fn probe_errors_name_the_problem() {
    let bad_ip = Probe {
        url: "https://go.example.com/",
        ip: Some("nope"),
        ..Default::default()
    };
    assert_eq!(
        bad_ip.request(NOW).unwrap_err(),
        "ip `nope` is not an IP address"
    );
    let bad_url = Probe {
        url: "go.example.com/",
        ..Default::default()
    };
    assert!(bad_url.request(NOW).unwrap_err().contains("http://"));
}
