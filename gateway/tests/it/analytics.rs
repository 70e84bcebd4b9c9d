//! Per-link analytics on the real binary: a known sequence of clicks
//! (devices by User-Agent, countries by the rules' `country_header`,
//! referrers, repeat visitors, bots, HEAD) becomes exactly the expected
//! hourly rows in `link_stats` — on SQLite, and on PostgreSQL with two
//! gateways adding into the same rows and a store outage in between — and
//! the stats endpoints report them. Flushes are waited for by polling
//! (bounded), never by sleeping.

use crate::clicks::{click_id_of, click_ids, read_events};
use crate::harness::{
    exit_within, request, sqlite_url, wait_until, ApiGateway, Key, Options, Postgres, Response,
    ANDROID, DESKTOP, IPHONE, SLACKBOT,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

const HOST: &str = "go.example.com";
const TOKEN: &str = "analytics-test-admin-token";

const RULES: &str = r#"
[settings]
country_header = "CloudFront-Viewer-Country"

[[domain]]
id = "go-links"
host = "go.example.com"
store = true

[[redirect]]
id = "sale"
host = "go.example.com"
path = "/sale"
to = "https://shop.example.com/sale"

[[links]]
id = "bulk"
host = "go.example.com"
prefix = "/l/"
file = "links/go.csv"
"#;

const LINKS_CSV: &[u8] = b"code,to\nspring,https://shop.example.com/spring\n";

/// A row of `link_stats` without its hour: (kind, host, name, device,
/// country, referrer, bot).
type RowKey = (String, String, String, String, String, String, i64);

/// A gateway with the API, clicks and analytics (flushed every 100 ms
/// unless `flush_every` says otherwise) on `store_url`.
fn start(store_url: &str, flush_every: &str) -> (tempfile::TempDir, ApiGateway) {
    let clicks = tempfile::tempdir().unwrap();
    let extra = format!(
        "[clicks]\nenabled = true\ndir = \"{}\"\n[analytics]\nenabled = true\nflush_every = \"{flush_every}\"\n",
        clicks.path().display()
    );
    let gw = ApiGateway::start_opts(
        RULES,
        store_url,
        Options {
            extra_config: &extra,
            files: &[("links/go.csv", LINKS_CSV)],
            env: &[("GATEWAY_ADMIN_TOKEN", TOKEN)],
            ..Options::default()
        },
    );
    (clicks, gw)
}

/// Creates `HOST/code` with `key`; its id.
fn create(gw: &ApiGateway, key: &Key, code: &str) -> i64 {
    let r = gw.post(
        "/api/v1/links",
        key,
        &json!({"host": HOST, "code": code, "to": "https://shop.example.com/promo"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_i64().unwrap()
}

/// A click on `path` with `ua` and, when given, a country and a referrer;
/// it must redirect.
fn click(gw: &ApiGateway, method: &str, path: &str, ua: &str, country: &str, referer: &str) {
    let mut headers = vec![("User-Agent", ua)];
    if !country.is_empty() {
        headers.push(("CloudFront-Viewer-Country", country));
    }
    if !referer.is_empty() {
        headers.push(("Referer", referer));
    }
    let r = gw.req(method, HOST, path, &headers);
    assert_eq!(r.status, 302, "{method} {path}: {}", r.text());
}

fn row(kind: &str, name: &str, device: &str, country: &str, referrer: &str, bot: i64) -> RowKey {
    let host = if kind == "link" { HOST } else { "" };
    (
        kind.into(),
        host.into(),
        name.into(),
        device.into(),
        country.into(),
        referrer.into(),
        bot,
    )
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Every row of `link_stats` as (hour, key) → (clicks, visitors).
fn rows(url: &str) -> Vec<(i64, RowKey, (i64, i64))> {
    type Raw = (
        String,
        String,
        String,
        i64,
        String,
        String,
        String,
        i32,
        i64,
        i64,
    );
    const SQL: &str = "SELECT kind, host, name, hour, device, country, referrer, bot, clicks, \
                       visitors FROM link_stats";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let raw: Vec<Raw> = rt.block_on(async {
        if url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let r = sqlx::query_as(SQL).fetch_all(&pool).await.unwrap();
            pool.close().await;
            r
        } else {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let r = sqlx::query_as(SQL).fetch_all(&pool).await.unwrap();
            pool.close().await;
            r
        }
    });
    raw.into_iter()
        .map(|(k, h, n, hour, d, c, r, b, clicks, visitors)| {
            (hour, (k, h, n, d, c, r, i64::from(b)), (clicks, visitors))
        })
        .collect()
}

/// Waits (bounded) until the store holds `clicks` clicks in all, then
/// checks every row was counted in an hour of `hours` and returns the
/// rows summed over their hours (the same as the hourly rows unless the
/// clicks crossed an hour).
fn settled(url: &str, clicks: i64, hours: (i64, i64)) -> BTreeMap<RowKey, (i64, i64)> {
    let total = |rows: &[(i64, RowKey, (i64, i64))]| rows.iter().map(|r| r.2 .0).sum::<i64>();
    let arrived = wait_until(Duration::from_secs(20), || total(&rows(url)) >= clicks);
    let all = rows(url);
    assert!(
        arrived && total(&all) == clicks,
        "expected {clicks} clicks: {all:?}"
    );
    let (first, last) = (hours.0 - hours.0 % 3600, hours.1 - hours.1 % 3600);
    let mut summed = BTreeMap::new();
    for (hour, key, (c, v)) in all {
        assert!(
            hour % 3600 == 0 && (first..=last).contains(&hour),
            "hour {hour} of {key:?}"
        );
        let e: &mut (i64, i64) = summed.entry(key).or_default();
        e.0 += c;
        e.1 += v;
    }
    summed
}

/// The `errors[0].field` of a `400 invalid-parameter` (or other 400).
#[track_caller]
fn bad_field(r: &Response) -> String {
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    r.json()["errors"][0]["field"].as_str().unwrap().to_string()
}

fn counts(v: &Value) -> (i64, i64, i64) {
    (
        v["clicks"].as_i64().unwrap(),
        v["visitors"].as_i64().unwrap(),
        v["bot_clicks"].as_i64().unwrap(),
    )
}

fn groups(report: &Value) -> Vec<(String, (i64, i64, i64))> {
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["key"].as_str().unwrap().to_string(), counts(g)))
        .collect()
}

/// `GET /admin/stats?<query>` with the admin token.
fn admin_stats(gw: &ApiGateway, query: &str) -> Response {
    let auth = format!("Bearer {TOKEN}");
    request(
        gw.admin,
        "GET",
        &format!("/admin/stats?{query}"),
        "admin",
        &[("Authorization", auth.as_str())],
    )
}

#[test]
fn analytics_sqlite_hourly_rows_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let (_clicks, gw) = start(&url, "100ms");
    let key = gw.create_key("partner-a", HOST, &[]);
    let other = gw.create_key("partner-b", HOST, &[]);
    let id = create(&gw, &key, "promo");

    let started = unix_now();
    let news = "https://News.Example.com/story?id=1";
    click(&gw, "GET", "/promo", IPHONE, "DE", news);
    // The same visitor again: a click, no new visitor.
    click(&gw, "GET", "/promo", IPHONE, "DE", news);
    click(&gw, "GET", "/promo", ANDROID, "us", "");
    click(&gw, "GET", "/promo", DESKTOP, "", "https://twitter.com/x");
    // Bots are never remembered: each click is a visitor of the bot rows.
    click(&gw, "GET", "/promo", SLACKBOT, "", "");
    click(&gw, "GET", "/promo", SLACKBOT, "", "");
    // HEAD is no click; a made-up country is unknown.
    click(&gw, "HEAD", "/promo", DESKTOP, "", "");
    click(&gw, "GET", "/sale", DESKTOP, "Narnia", "");
    click(&gw, "GET", "/l/spring", ANDROID, "", "");

    let got = settled(&url, 8, (started, unix_now()));
    let want = BTreeMap::from([
        (
            row("link", "promo", "ios", "DE", "news.example.com", 0),
            (2, 1),
        ),
        (row("link", "promo", "android", "US", "", 0), (1, 1)),
        (
            row("link", "promo", "desktop", "", "twitter.com", 0),
            (1, 1),
        ),
        (row("link", "promo", "desktop", "", "", 1), (2, 2)),
        (row("rule", "sale", "desktop", "", "", 0), (1, 1)),
        (row("link", "l/spring", "android", "", "", 0), (1, 1)),
    ]);
    assert_eq!(got, want);
    // A flush is counted just after its commit.
    gw.scrape_until_sum(
        Duration::from_secs(10),
        "gateway_analytics_flushes_total",
        &[("result", "ok")],
        1.0,
    );
    assert_eq!(gw.metric("gateway_analytics_pending_rows", &[]), 0.0);

    // The Links API: totals, series and groups of the key's own link.
    let path = format!("/api/v1/links/{id}/stats");
    let r = gw.get_api(&path, &key);
    assert_eq!(r.status, 200, "{}", r.text());
    let report = r.json();
    assert_eq!(report["id"], id);
    assert_eq!(
        (report["host"].as_str(), report["code"].as_str()),
        (Some(HOST), Some("promo"))
    );
    assert_eq!(report["interval"], "hour");
    assert_eq!(counts(&report["totals"]), (4, 3, 2));
    let series = report["series"].as_array().unwrap();
    assert_eq!(series.len(), 24, "{report}");
    let summed = series
        .iter()
        .map(counts)
        .fold((0, 0, 0), |a, c| (a.0 + c.0, a.1 + c.1, a.2 + c.2));
    assert_eq!(summed, (4, 3, 2));
    assert!(report.get("groups").is_none());

    let by = |group: &str| {
        let r = gw.get_api(&format!("{path}?group_by={group}&interval=day"), &key);
        assert_eq!(r.status, 200, "{}", r.text());
        let report = r.json();
        assert_eq!(report["series"].as_array().unwrap().len(), 30, "{report}");
        assert_eq!(counts(&report["totals"]), (4, 3, 2));
        assert_eq!(report["group_by"], group);
        groups(&report)
    };
    let g = |k: &str, c: (i64, i64, i64)| (k.to_string(), c);
    assert_eq!(
        by("device"),
        [
            g("ios", (2, 1, 0)),
            g("desktop", (1, 1, 2)),
            g("android", (1, 1, 0))
        ]
    );
    assert_eq!(
        by("country"),
        [g("DE", (2, 1, 0)), g("", (1, 1, 2)), g("US", (1, 1, 0))]
    );
    assert_eq!(
        by("referrer"),
        [
            g("news.example.com", (2, 1, 0)),
            g("", (1, 1, 2)),
            g("twitter.com", (1, 1, 0))
        ]
    );

    // Another key's link is not found; bad values name their parameter.
    let r = gw.get_api(&path, &other);
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["type"], "urn:gateway:problem:link-not-found");
    for (query, field) in [
        ("interval=week", "interval"),
        ("group_by=os", "group_by"),
        ("from=yesterday", "from"),
        ("to=soon", "to"),
        ("from=2026-01-02&to=2026-01-01", "to"),
        ("from=2020-01-01&to=2020-12-31", "from"),
        ("colour=red", "colour"),
    ] {
        let r = gw.get_api(&format!("{path}?{query}"), &key);
        assert_eq!(bad_field(&r), field, "{query}");
    }

    // The operators' view: any link or rule, the same report.
    let r = admin_stats(&gw, "rule=sale");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["rule"], "sale");
    assert_eq!(counts(&r.json()["totals"]), (1, 1, 0));
    let r = admin_stats(&gw, &format!("host={HOST}&code=l/spring&group_by=device"));
    assert_eq!(counts(&r.json()["totals"]), (1, 1, 0));
    assert_eq!(groups(&r.json()), [g("android", (1, 1, 0))]);
    let r = admin_stats(&gw, &format!("host={HOST}&code=promo"));
    assert_eq!(counts(&r.json()["totals"]), (4, 3, 2));
    assert_eq!(bad_field(&admin_stats(&gw, "")), "host");
    assert_eq!(
        bad_field(&admin_stats(&gw, &format!("host={HOST}"))),
        "code"
    );
    assert_eq!(
        bad_field(&admin_stats(&gw, "rule=sale&interval=minute")),
        "interval"
    );
    let r = request(gw.admin, "GET", "/admin/stats?rule=sale", "admin", &[]);
    assert_eq!(r.status, 401);
}

/// A stored link's redirect is decided again once the store answered;
/// the click id the rules ask for while rendering its `Location` is the
/// visitor's one for the link: the same for a repeat and a HEAD, and the
/// one in the click's only event.
#[test]
fn a_stored_link_gives_a_visitor_one_click_id_and_one_event() {
    let dir = tempfile::tempdir().unwrap();
    let clicks = tempfile::tempdir().unwrap();
    let extra = format!(
        "[clicks]\nenabled = true\ndir = \"{}\"\n",
        clicks.path().display()
    );
    let rules = RULES.replace("[settings]\n", "[settings]\nclick_id_param = \"btn_ref\"\n");
    let mut gw = ApiGateway::start_opts(
        &rules,
        &sqlite_url(dir.path()),
        Options {
            extra_config: &extra,
            files: &[("links/go.csv", LINKS_CSV)],
            env: &[("GATEWAY_ADMIN_TOKEN", TOKEN)],
            ..Options::default()
        },
    );
    let key = gw.create_key("partner-a", HOST, &[]);
    create(&gw, &key, "promo");
    let id_of = |method: &str, ua: &str| {
        let r = gw.req(method, HOST, "/promo", &[("User-Agent", ua)]);
        assert_eq!(r.status, 302, "{method}: {}", r.text());
        click_id_of(r.location())
    };
    let first = id_of("GET", IPHONE);
    assert_eq!(id_of("GET", IPHONE), first, "a repeat keeps the id");
    assert_eq!(id_of("HEAD", IPHONE), first, "a HEAD shows the same id");
    let other = id_of("GET", ANDROID);
    assert_ne!(other, first, "another visitor, another id");

    gw.signal("TERM");
    let status = exit_within(&mut gw.gw.child, Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{}", gw.log_tail());
    let events = read_events(clicks.path());
    let mut ids = click_ids(&events);
    ids.sort();
    let mut want = vec![first, other];
    want.sort();
    assert_eq!(ids, want, "{events:#?}");
    assert!(events.iter().all(|e| e["code"] == "promo"), "{events:#?}");
}

/// Counters still in memory when the gateway stops are flushed before it
/// exits.
#[test]
fn analytics_flushes_what_is_pending_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    // No flush would come for a minute.
    let (_clicks, mut gw) = start(&url, "60s");
    let started = unix_now();
    click(&gw, "GET", "/sale", IPHONE, "FR", "");
    click(&gw, "GET", "/sale", IPHONE, "FR", "");
    gw.signal("TERM");
    let status = exit_within(&mut gw.gw.child, Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{}", gw.log_tail());
    let got = settled(&url, 2, (started, unix_now()));
    assert_eq!(
        got,
        BTreeMap::from([(row("rule", "sale", "ios", "FR", "", 0), (2, 1))])
    );
}

/// Two gateways on one PostgreSQL add into the same rows; while the
/// database is down the counts wait in memory and arrive once it is back.
#[test]
fn analytics_postgres_fleet_adds_into_the_same_rows() {
    let Some(mut pg) = Postgres::start("analytics_postgres_fleet_adds_into_the_same_rows") else {
        return;
    };
    let url = pg.url();
    let (_ca, a) = start(&url, "100ms");
    let (_cb, b) = start(&url, "100ms");
    let key = a.create_key("partner-a", HOST, &[]);
    let id = create(&a, &key, "fleet");
    let started = unix_now();
    click(&a, "GET", "/fleet", IPHONE, "DE", "");
    click(&a, "GET", "/fleet", DESKTOP, "", "");
    // Another gateway does not know a's visitors: a visitor again.
    let served = wait_until(Duration::from_secs(10), || {
        b.req(
            "GET",
            HOST,
            "/fleet",
            &[("User-Agent", IPHONE), ("CloudFront-Viewer-Country", "DE")],
        )
        .status
            == 302
    });
    assert!(served, "{}", b.log_tail());
    click(&b, "GET", "/fleet", SLACKBOT, "", "");
    let got = settled(&url, 4, (started, unix_now()));
    assert_eq!(
        got,
        BTreeMap::from([
            (row("link", "fleet", "ios", "DE", "", 0), (2, 2)),
            (row("link", "fleet", "desktop", "", "", 0), (1, 1)),
            (row("link", "fleet", "desktop", "", "", 1), (1, 1)),
        ])
    );
    let r = b.get_api(&format!("/api/v1/links/{id}/stats"), &key);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(counts(&r.json()["totals"]), (3, 3, 1));

    // The store goes away: the cached link still answers, its counts wait.
    pg.stop_server();
    click(&a, "GET", "/fleet", ANDROID, "", "");
    // The gauge is set after each attempt: a failed one leaves the row.
    let waiting = wait_until(Duration::from_secs(30), || {
        a.metric("gateway_analytics_flushes_total", &[("result", "error")]) >= 1.0
            && a.metric("gateway_analytics_pending_rows", &[]) == 1.0
    });
    assert!(waiting, "{}", a.log_tail());
    pg.start_server();
    let got = settled(&url, 5, (started, unix_now()));
    assert_eq!(got[&row("link", "fleet", "android", "", "", 0)], (1, 1));
    assert!(wait_until(Duration::from_secs(10), || {
        a.metric("gateway_analytics_pending_rows", &[]) == 0.0
    }));
}
