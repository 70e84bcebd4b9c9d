//! The Links API against the real binary: keys made with `gateway keys
//! create`, every endpoint over HTTP, and the redirects the same gateway
//! (and, on PostgreSQL, another one) serves for what the API wrote. On
//! SQLite always; on a private PostgreSQL server when installed (required
//! with `TEST_REQUIRE=postgres`).

use crate::harness::{
    sqlite_url, wait_until, ApiGateway, Gateway, Key, Postgres, Response, ANDROID, DESKTOP, IPHONE,
};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

const HOST: &str = "go.example.com";
/// A second link domain, without a fallback: unknown codes are `404`.
const OTHER: &str = "other.example.com";
const FALLBACK: &str = "https://www.example.com/unknown";
/// The alphabet of generated codes.
const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";

const RULES: &str = r#"
[[domain]]
id = "go-links"
host = "go.example.com"
store = true
not_found_to = "https://www.example.com/unknown"

[[domain]]
id = "other-links"
host = "other.example.com"
store = true

[[redirect]]
id = "fixed"
host = "go.example.com"
path = "/fixed"
to = "https://www.example.com/fixed"

[[respond]]
id = "robots"
path = "/robots.txt"
body = "User-agent: *\n"

[[redirect]]
id = "catch-all"
prefix = "/anything/"
to = "https://www.example.com/anything"
"#;

/// A gateway with the API on a fresh SQLite store (the directory holds
/// the database).
fn sqlite() -> (tempfile::TempDir, ApiGateway) {
    let dir = tempfile::tempdir().unwrap();
    let gw = ApiGateway::start(RULES, &sqlite_url(dir.path()));
    (dir, gw)
}

/// What `host/code` answers on the redirect listener: status and Location.
fn served(gw: &Gateway, host: &str, code: &str) -> (u16, Option<String>) {
    let r = gw.get(host, &format!("/{code}"));
    (r.status, r.header("location").map(str::to_string))
}

/// Where `code` of [`HOST`] redirects with `302` (`None`: no `302`).
fn location(gw: &Gateway, code: &str) -> Option<String> {
    match served(gw, HOST, code) {
        (302, l) => l,
        _ => None,
    }
}

/// The body of a successful answer of `status`.
#[track_caller]
fn ok(r: &Response, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    r.json()
}

/// The problem of an answer of `status` whose type ends with `slug`:
/// `application/problem+json` with every member of RFC 9457 the API sends.
#[track_caller]
fn problem(r: &Response, status: u16, slug: &str) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{r:?}"
    );
    let p = r.json();
    assert_eq!(
        p["type"].as_str(),
        Some(format!("urn:gateway:problem:{slug}").as_str()),
        "{p}"
    );
    assert_eq!(p["status"], status, "{p}");
    assert!(p["title"].is_string() && p["detail"].is_string(), "{p}");
    p
}

/// The fields named in a problem's `errors`.
fn fields(p: &Value) -> Vec<String> {
    p["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The `"api-key";k=v;...` parameters of a RateLimit header.
fn rate_params(r: &Response, name: &str) -> Vec<(String, u64)> {
    let v = r
        .header(name)
        .unwrap_or_else(|| panic!("no {name} header: {r:?}"));
    let rest = v
        .strip_prefix("\"api-key\";")
        .unwrap_or_else(|| panic!("{name}: {v:?} does not start with \"api-key\";"));
    rest.split(';')
        .map(|p| {
            let (k, n) = p.split_once('=').unwrap_or_else(|| panic!("{name}: {v:?}"));
            (k.trim().to_string(), n.trim().parse().unwrap())
        })
        .collect()
}

fn param(params: &[(String, u64)], name: &str) -> u64 {
    params
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no {name} in {params:?}"))
        .1
}

/// A link's id.
fn id_of(link: &Value) -> i64 {
    link["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id: {link}"))
}

fn is_generated(code: &str, length: usize) -> bool {
    code.len() == length && code.bytes().all(|b| ALPHABET.contains(&b))
}

/// Every link of `key`'s list with `query` (without `cursor`), page by
/// page of `limit`.
fn list_all(gw: &ApiGateway, key: &Key, query: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut path = format!("/api/v1/links?limit={limit}");
        if !query.is_empty() {
            path.push('&');
            path.push_str(query);
        }
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = ok(&gw.get_api(&path, key), 200);
        let links = page["links"].as_array().unwrap();
        assert!(links.len() <= limit, "{page}");
        out.extend(links.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
    panic!("more than 100 pages");
}

fn codes(links: &[Value]) -> Vec<String> {
    links
        .iter()
        .map(|l| l["code"].as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------
// Flows shared by SQLite and PostgreSQL.
// ---------------------------------------------------------------------

/// Create (requested before as unknown), read, PATCH with If-Match (a
/// stale one too), delete: every answer, and what the gateway serves
/// right after each.
fn crud_flow(gw: &ApiGateway, key: &Key) {
    // Unknown, and cached as unknown.
    assert_eq!(location(gw, "summer").as_deref(), Some(FALLBACK));
    assert_eq!(location(gw, "summer").as_deref(), Some(FALLBACK));
    assert!(gw.metric("gateway_store_lookups_total", &[("result", "negative_hit")]) >= 1.0);

    let r = gw.post(
        "/api/v1/links",
        key,
        &json!({
            "host": HOST,
            "code": "summer",
            "to": "https://shop.example.com/summer",
            "ios": "https://apps.example.com/summer",
            "tags": ["promo", "summer"],
        }),
    );
    let link = ok(&r, 201);
    // Served by this gateway at once, though it was cached as unknown.
    assert_eq!(
        location(gw, "summer").as_deref(),
        Some("https://shop.example.com/summer"),
        "a link created through the API is not served right after the 201; log:\n{}",
        gw.log_tail()
    );
    let id = id_of(&link);
    assert!(id > 0);
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/links/{id}").as_str())
    );
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // Every field, always present.
    let names: BTreeSet<&str> = link
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    let want: BTreeSet<&str> = [
        "id",
        "short_url",
        "host",
        "code",
        "to",
        "status",
        "ios",
        "android",
        "desktop",
        "countries",
        "expires_at",
        "expired_to",
        "query",
        "cache_control",
        "tags",
        "external_id",
        "created_at",
        "updated_at",
        "version",
    ]
    .into_iter()
    .collect();
    assert_eq!(names, want, "{link}");
    assert_eq!(link["short_url"], "https://go.example.com/summer");
    assert_eq!(link["host"], HOST);
    assert_eq!(link["code"], "summer");
    assert_eq!(link["to"], "https://shop.example.com/summer");
    assert_eq!(link["status"], 302);
    assert_eq!(link["ios"], "https://apps.example.com/summer");
    assert_eq!(link["android"], Value::Null);
    assert_eq!(link["desktop"], Value::Null);
    assert_eq!(link["countries"], json!({}));
    assert_eq!(link["expires_at"], Value::Null);
    assert_eq!(link["expired_to"], Value::Null);
    assert_eq!(link["query"], "merge");
    assert_eq!(link["cache_control"], Value::Null);
    assert_eq!(link["tags"], json!(["promo", "summer"]));
    assert_eq!(link["external_id"], Value::Null);
    assert_eq!(link["version"], 1);
    for t in ["created_at", "updated_at"] {
        let text = link[t].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(text).is_ok(),
            "{t}: {text}"
        );
    }
    assert_eq!(link["created_at"], link["updated_at"]);
    // Every authenticated answer tells the key's rate (the default key:
    // 50/s, bursts of 100).
    let policy = rate_params(&r, "ratelimit-policy");
    assert_eq!(param(&policy, "q"), 100);
    assert_eq!(param(&policy, "w"), 2);
    let now = rate_params(&r, "ratelimit");
    assert!(param(&now, "r") < 100);

    // A generated code.
    let r = gw.post(
        "/api/v1/links",
        key,
        &json!({"host": HOST, "to": "https://shop.example.com/generated"}),
    );
    let generated = ok(&r, 201);
    let code = generated["code"].as_str().unwrap().to_string();
    assert!(is_generated(&code, 7), "generated code {code:?}");
    assert_eq!(
        generated["short_url"],
        format!("https://go.example.com/{code}")
    );
    assert_eq!(
        location(gw, &code).as_deref(),
        Some("https://shop.example.com/generated")
    );

    // Read.
    let r = gw.get_api(&format!("/api/v1/links/{id}"), key);
    assert_eq!(ok(&r, 200), link);
    assert_eq!(r.header("etag"), Some("\"1\""));

    // PATCH: absent fields stay, null clears.
    let r = gw.call(
        "PATCH",
        &format!("/api/v1/links/{id}"),
        Some(key),
        Some(&json!({"to": "https://shop.example.com/summer-v2", "ios": null})),
        &[("If-Match", "\"1\"")],
    );
    let changed = ok(&r, 200);
    assert_eq!(r.header("etag"), Some("\"2\""));
    assert_eq!(changed["version"], 2);
    assert_eq!(changed["id"], id);
    assert_eq!(changed["to"], "https://shop.example.com/summer-v2");
    assert_eq!(changed["ios"], Value::Null);
    assert_eq!(changed["code"], "summer");
    assert_eq!(changed["tags"], json!(["promo", "summer"]));
    assert_eq!(changed["status"], 302);
    assert_eq!(changed["created_at"], link["created_at"]);
    assert_eq!(
        location(gw, "summer").as_deref(),
        Some("https://shop.example.com/summer-v2")
    );
    // The read sees the change.
    assert_eq!(
        ok(&gw.get_api(&format!("/api/v1/links/{id}"), key), 200),
        changed
    );
    // A stale If-Match changes nothing.
    let r = gw.call(
        "PATCH",
        &format!("/api/v1/links/{id}"),
        Some(key),
        Some(&json!({"to": "https://shop.example.com/not-this"})),
        &[("If-Match", "\"1\"")],
    );
    problem(&r, 412, "version-mismatch");
    assert_eq!(r.header("etag"), Some("\"2\""));
    assert_eq!(
        location(gw, "summer").as_deref(),
        Some("https://shop.example.com/summer-v2")
    );
    // PATCH without If-Match applies to what is there; a new code moves
    // the link.
    let r = gw.call(
        "PATCH",
        &format!("/api/v1/links/{id}"),
        Some(key),
        Some(&json!({"code": "summer-moved", "tags": null})),
        &[],
    );
    let moved = ok(&r, 200);
    assert_eq!(moved["version"], 3);
    assert_eq!(moved["tags"], json!([]));
    assert_eq!(moved["to"], "https://shop.example.com/summer-v2");
    assert_eq!(location(gw, "summer").as_deref(), Some(FALLBACK));
    assert_eq!(
        location(gw, "summer-moved").as_deref(),
        Some("https://shop.example.com/summer-v2")
    );

    // A new host moves it there.
    let r = gw.call(
        "PATCH",
        &format!("/api/v1/links/{id}"),
        Some(key),
        Some(&json!({"host": OTHER})),
        &[("If-Match", "\"3\"")],
    );
    assert_eq!(
        ok(&r, 200)["short_url"],
        "https://other.example.com/summer-moved"
    );
    assert_eq!(location(gw, "summer-moved").as_deref(), Some(FALLBACK));
    assert_eq!(
        served(gw, OTHER, "summer-moved"),
        (302, Some("https://shop.example.com/summer-v2".to_string()))
    );
    // Delete: gone at once, here.
    let r = gw.call(
        "DELETE",
        &format!("/api/v1/links/{id}"),
        Some(key),
        None,
        &[],
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty());
    assert_eq!(served(gw, OTHER, "summer-moved").0, 404);
    problem(
        &gw.get_api(&format!("/api/v1/links/{id}"), key),
        404,
        "link-not-found",
    );
    problem(
        &gw.call(
            "DELETE",
            &format!("/api/v1/links/{id}"),
            Some(key),
            None,
            &[],
        ),
        404,
        "link-not-found",
    );
    // On a domain without a fallback, a deleted code is 404.
    let r = gw.post(
        "/api/v1/links",
        key,
        &json!({"host": OTHER, "code": "brief", "to": "https://shop.example.com/brief"}),
    );
    let brief = ok(&r, 201);
    assert_eq!(
        served(gw, OTHER, "brief"),
        (302, Some("https://shop.example.com/brief".to_string()))
    );
    let r = gw.call(
        "DELETE",
        &format!("/api/v1/links/{}", id_of(&brief)),
        Some(key),
        None,
        &[],
    );
    assert_eq!(r.status, 204);
    assert_eq!(served(gw, OTHER, "brief").0, 404);
}

/// List with `host`, `tag`, `q`, `limit` and `cursor`: filters find
/// exactly their links; pages cover every link once, links created
/// between page reads included.
fn list_flow(gw: &ApiGateway, key: &Key) {
    let create = |host: &str, code: &str, to: &str, tags: Value| {
        ok(
            &gw.post(
                "/api/v1/links",
                key,
                &json!({"host": host, "code": code, "to": to, "tags": tags}),
            ),
            201,
        )
    };
    for i in 0..7 {
        let (host, tag) = if i % 2 == 0 {
            (HOST, "even")
        } else {
            (OTHER, "odd")
        };
        let to = if i == 3 {
            "https://shop.example.com/Needle-100%".to_string()
        } else {
            format!("https://shop.example.com/l{i}")
        };
        create(host, &format!("l{i}"), &to, json!([tag, "all"]));
    }
    let page = ok(&gw.get_api("/api/v1/links", key), 200);
    assert_eq!(
        codes(page["links"].as_array().unwrap()),
        ["l0", "l1", "l2", "l3", "l4", "l5", "l6"]
    );
    assert_eq!(page["next_cursor"], Value::Null);
    let only = |query: &str| codes(&list_all(gw, key, query, 1000));
    assert_eq!(only(&format!("host={OTHER}")), ["l1", "l3", "l5"]);
    assert_eq!(only("host=GO.example.com"), ["l0", "l2", "l4", "l6"]);
    assert_eq!(only("tag=even"), ["l0", "l2", "l4", "l6"]);
    assert_eq!(only("tag=all").len(), 7);
    // A tag is matched whole.
    assert!(only("tag=eve").is_empty());
    assert!(only("tag=ven").is_empty());
    // q: code, destination or external id, case-insensitive; `%` and `_`
    // are themselves.
    assert_eq!(only("q=NEEDLE"), ["l3"]);
    assert_eq!(only("q=100%25"), ["l3"]);
    assert!(only("q=l_").is_empty());
    assert_eq!(only("q=l5"), ["l5"]);
    assert_eq!(only(&format!("host={HOST}&tag=odd")), Vec::<String>::new());
    assert_eq!(
        codes(&list_all(gw, key, &format!("host={HOST}&tag=even"), 1)),
        ["l0", "l2", "l4", "l6"]
    );

    // Pages of 3 while links are created between the reads.
    let mut seen: Vec<i64> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut made = 0;
    for _ in 0..20 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/links?limit=3&cursor={c}"),
            None => "/api/v1/links?limit=3".to_string(),
        };
        let page = ok(&gw.get_api(&path, key), 200);
        let links = page["links"].as_array().unwrap();
        assert!(links.len() <= 3);
        seen.extend(links.iter().map(id_of));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        // Created between two page reads: on a later page.
        create(
            HOST,
            &format!("late{made}"),
            "https://shop.example.com/late",
            json!([]),
        );
        made += 1;
    }
    assert!(made >= 2, "{made}");
    let all: Vec<i64> = list_all(gw, key, "", 1000).iter().map(id_of).collect();
    assert_eq!(all.len(), 7 + made);
    assert_eq!(
        seen, all,
        "pages must cover every link exactly once, in order"
    );
    // Bad parameters.
    let p = problem(
        &gw.get_api("/api/v1/links?limit=0", key),
        400,
        "invalid-parameter",
    );
    assert_eq!(fields(&p), ["limit"]);
    let p = problem(
        &gw.get_api("/api/v1/links?cursor=abc", key),
        400,
        "invalid-parameter",
    );
    assert_eq!(fields(&p), ["cursor"]);
    let p = problem(
        &gw.get_api("/api/v1/links?colour=red", key),
        400,
        "unknown-parameter",
    );
    assert_eq!(fields(&p), ["colour"]);
}

/// Bulk: one result per item, in order; created ones are served.
fn bulk_flow(gw: &ApiGateway, key: &Key) {
    // Cached as unknown before the bulk create.
    assert_eq!(location(gw, "b0").as_deref(), Some(FALLBACK));
    assert_eq!(served(gw, OTHER, "b8").0, 404);
    let r = gw.post(
        "/api/v1/links",
        key,
        &json!({"host": HOST, "code": "taken", "to": "https://shop.example.com/taken"}),
    );
    ok(&r, 201);
    let r = gw.post(
        "/api/v1/links/bulk",
        key,
        &json!({"links": [
            {"host": HOST, "code": "b0", "to": "https://shop.example.com/b0"},
            {"host": HOST, "code": "b1", "to": "javascript:alert(1)"},
            {"host": HOST, "to": "https://shop.example.com/b2", "tags": ["bulk"]},
            {"host": HOST, "code": "b0", "to": "https://shop.example.com/b0-again"},
            {"host": HOST, "code": "b4", "to": "https://shop.example.com/b4", "colour": "red"},
            {"host": "nope.example.com", "code": "b5", "to": "https://shop.example.com/b5"},
            {"host": HOST, "code": "taken", "to": "https://shop.example.com/b6"},
            {"host": HOST, "code": "fixed", "to": "https://shop.example.com/b7"},
            {"host": OTHER, "code": "b8", "to": "https://shop.example.com/b8", "status": 301},
        ]}),
    );
    let out = ok(&r, 200);
    let results = out["results"].as_array().unwrap();
    let statuses: Vec<u64> = results
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [201, 422, 201, 409, 400, 422, 409, 409, 201],
        "{out}"
    );
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i, "{out}");
        if r["status"] == 201 {
            assert!(r["link"]["id"].as_i64().is_some(), "{out}");
            assert!(r.get("errors").is_none(), "{out}");
        } else {
            assert!(r.get("link").is_none(), "{out}");
            assert!(!r["errors"].as_array().unwrap().is_empty(), "{out}");
        }
    }
    assert_eq!(out["created"], 3);
    assert_eq!(out["failed"], 6);
    let field_of = |i: usize| fields(&results[i]);
    assert!(field_of(1).contains(&"to".to_string()), "{out}");
    assert!(field_of(3).contains(&"code".to_string()), "{out}");
    assert!(field_of(5).contains(&"host".to_string()), "{out}");
    assert!(field_of(6).contains(&"code".to_string()), "{out}");
    assert!(results[7]["errors"].to_string().contains("fixed"), "{out}");
    assert!(
        field_of(4).iter().any(|f| f.starts_with("links[4]")),
        "{out}"
    );
    // Created ones are served at once.
    assert_eq!(
        location(gw, "b0").as_deref(),
        Some("https://shop.example.com/b0")
    );
    let generated = results[2]["link"]["code"].as_str().unwrap();
    assert!(is_generated(generated, 7), "{generated}");
    assert_eq!(results[2]["link"]["tags"], json!(["bulk"]));
    assert_eq!(
        location(gw, generated).as_deref(),
        Some("https://shop.example.com/b2")
    );
    assert_eq!(
        served(gw, OTHER, "b8"),
        (301, Some("https://shop.example.com/b8".to_string()))
    );
    assert_eq!(
        location(gw, "taken").as_deref(),
        Some("https://shop.example.com/taken")
    );
    assert_eq!(
        location(gw, "fixed").as_deref(),
        Some("https://www.example.com/fixed")
    );
    assert_eq!(location(gw, "b1").as_deref(), Some(FALLBACK));
    // Nothing else was written.
    let listed = codes(&list_all(gw, key, "", 1000));
    let mut sorted = listed.clone();
    sorted.sort();
    let mut want = vec![
        "b0".to_string(),
        "b8".to_string(),
        "taken".to_string(),
        generated.to_string(),
    ];
    want.sort();
    assert_eq!(sorted, want);
}

/// 20 PATCHes of one link with `If-Match: "1"` at once: exactly one
/// wins, the others get `412`; the link is then at version 2 with the
/// winner's destination.
fn if_match_race(gw: &Arc<ApiGateway>, key: &Key) {
    let link = ok(
        &gw.post(
            "/api/v1/links",
            key,
            &json!({"host": HOST, "code": "race", "to": "https://shop.example.com/race"}),
        ),
        201,
    );
    let id = id_of(&link);
    let barrier = Arc::new(Barrier::new(20));
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let (gw, key, barrier) = (gw.clone(), key.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let r = gw.call(
                    "PATCH",
                    &format!("/api/v1/links/{id}"),
                    Some(&key),
                    Some(&json!({"to": format!("https://shop.example.com/race/{i}")})),
                    &[("If-Match", "\"1\"")],
                );
                (i, r)
            })
        })
        .collect();
    let mut won = Vec::new();
    let mut stale = 0;
    // Every thread is joined before anything is asserted: a failure
    // must not leave a thread holding the gateway past the test.
    let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (i, r) in answers {
        match r.status {
            200 => won.push(i),
            412 => {
                problem(&r, 412, "version-mismatch");
                stale += 1;
            }
            other => panic!("PATCH {i}: {other} {}", r.text()),
        }
    }
    assert_eq!(won.len(), 1, "exactly one PATCH wins: {won:?}");
    assert_eq!(stale, 19);
    let now = ok(&gw.get_api(&format!("/api/v1/links/{id}"), key), 200);
    assert_eq!(now["version"], 2);
    let to = format!("https://shop.example.com/race/{}", won[0]);
    assert_eq!(now["to"], to.as_str());
    assert_eq!(location(gw, "race").as_deref(), Some(to.as_str()));
}

// ---------------------------------------------------------------------
// SQLite.
// ---------------------------------------------------------------------

#[test]
fn sqlite_create_read_patch_delete_are_served_at_once() {
    let (_dir, gw) = sqlite();
    let key = gw.create_key("partner-a", &format!("{HOST},{OTHER}"), &[]);
    crud_flow(&gw, &key);
}

#[test]
fn sqlite_list_filters_and_pages_cover_every_link_once() {
    let (_dir, gw) = sqlite();
    let key = gw.create_key("partner-a", &format!("{HOST},{OTHER}"), &[]);
    list_flow(&gw, &key);
}

#[test]
fn sqlite_bulk_answers_each_item_in_order_and_serves_the_created() {
    let (_dir, gw) = sqlite();
    let key = gw.create_key("partner-a", &format!("{HOST},{OTHER}"), &[]);
    bulk_flow(&gw, &key);
}

#[test]
fn sqlite_upsert_by_external_id_creates_then_replaces_the_same_link() {
    let (_dir, gw) = sqlite();
    let key = gw.create_key("partner-a", HOST, &[]);
    let path = "/api/v1/links/by-external-id/crm-42";
    assert_eq!(location(&gw, "crm").as_deref(), Some(FALLBACK));
    let r = gw.call(
        "PUT",
        path,
        Some(&key),
        Some(&json!({"host": HOST, "code": "crm", "to": "https://shop.example.com/crm-1"})),
        &[],
    );
    let first = ok(&r, 201);
    assert_eq!(first["external_id"], "crm-42");
    assert_eq!(first["version"], 1);
    assert_eq!(
        location(&gw, "crm").as_deref(),
        Some("https://shop.example.com/crm-1")
    );
    // Again, without a code: the same link, its code kept.
    let r = gw.call(
        "PUT",
        path,
        Some(&key),
        Some(&json!({"host": HOST, "to": "https://shop.example.com/crm-2"})),
        &[],
    );
    let second = ok(&r, 200);
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["code"], "crm");
    assert_eq!(second["version"], 2);
    assert_eq!(second["external_id"], "crm-42");
    assert_eq!(r.header("etag"), Some("\"2\""));
    assert_eq!(
        location(&gw, "crm").as_deref(),
        Some("https://shop.example.com/crm-2")
    );
    // q finds it by its external id.
    assert_eq!(codes(&list_all(&gw, &key, "q=CRM-4", 10)), ["crm"]);
    // One link.
    assert_eq!(list_all(&gw, &key, "", 1000).len(), 1);
    // The body's external_id must be the path's.
    let r = gw.call(
        "PUT",
        path,
        Some(&key),
        Some(&json!({"host": HOST, "to": "https://shop.example.com/x", "external_id": "other"})),
        &[],
    );
    let p = problem(&r, 422, "invalid-link");
    assert_eq!(fields(&p), ["external_id"]);
}

#[test]
fn sqlite_idempotency_key_replays_the_first_create() {
    let (_dir, gw) = sqlite();
    let key = gw.create_key("partner-a", HOST, &[]);
    let body = json!({"host": HOST, "to": "https://shop.example.com/once"});
    let headers = [("Idempotency-Key", "order-7781")];
    let r = gw.call("POST", "/api/v1/links", Some(&key), Some(&body), &headers);
    let first = ok(&r, 201);
    assert_eq!(r.header("idempotent-replayed"), None);
    let r = gw.call("POST", "/api/v1/links", Some(&key), Some(&body), &headers);
    let again = ok(&r, 201);
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["code"], first["code"]);
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/links/{}", id_of(&first)).as_str())
    );
    assert_eq!(r.header("etag"), Some("\"1\""));
    // One row.
    assert_eq!(list_all(&gw, &key, "", 1000).len(), 1);
    // The same key with another body.
    let other = json!({"host": HOST, "to": "https://shop.example.com/twice"});
    let r = gw.call("POST", "/api/v1/links", Some(&key), Some(&other), &headers);
    problem(&r, 422, "idempotency-key-reused");
    assert_eq!(list_all(&gw, &key, "", 1000).len(), 1);
    // Another key of the same name is another request: a key is the
    // caller's own.
    let partner_b = gw.create_key("partner-b", HOST, &[]);
    let r = gw.call(
        "POST",
        "/api/v1/links",
        Some(&partner_b),
        Some(&body),
        &headers,
    );
    let theirs = ok(&r, 201);
    assert_eq!(r.header("idempotent-replayed"), None);
    assert_ne!(theirs["id"], first["id"]);
    // A refused create is replayed as refused too.
    let bad = json!({"host": HOST, "code": "fixed", "to": "https://shop.example.com/x"});
    let h = [("Idempotency-Key", "bad-1")];
    problem(
        &gw.call("POST", "/api/v1/links", Some(&key), Some(&bad), &h),
        409,
        "code-claimed-by-rule",
    );
    let r = gw.call("POST", "/api/v1/links", Some(&key), Some(&bad), &h);
    problem(&r, 409, "code-claimed-by-rule");
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
}

/// Every field a link has reaches the redirect: status, devices, query
/// handling, Cache-Control, expiry; PATCH changes and clears them, and
/// refuses what a create refuses.
#[test]
fn sqlite_every_field_is_served_and_patch_refuses_like_create() {
    let (_dir, gw) = sqlite();
    let key = gw.create_key("partner-a", HOST, &[]);
    let r = gw.post(
        "/api/v1/links",
        &key,
        &json!({
            "host": HOST,
            "code": "full",
            "to": "https://shop.example.com/full?a=1",
            "status": 301,
            "ios": "https://apps.example.com/ios",
            "android": "https://apps.example.com/android",
            "desktop": "https://www.example.com/desktop",
            "countries": {"DE": "https://shop.example.de/full"},
            "expires_at": "2099-01-31T23:59:59Z",
            "expired_to": "https://shop.example.com/expired",
            "query": "drop",
            "cache_control": "max-age=60",
            "tags": ["x"],
            "external_id": "full-1",
        }),
    );
    let link = ok(&r, 201);
    let id = id_of(&link);
    assert_eq!(link["status"], 301);
    assert_eq!(link["android"], "https://apps.example.com/android");
    assert_eq!(link["desktop"], "https://www.example.com/desktop");
    assert_eq!(
        link["countries"],
        json!({"DE": "https://shop.example.de/full"})
    );
    assert_eq!(link["expires_at"], "2099-01-31T23:59:59Z");
    assert_eq!(link["expired_to"], "https://shop.example.com/expired");
    assert_eq!(link["query"], "drop");
    assert_eq!(link["cache_control"], "max-age=60");
    assert_eq!(link["external_id"], "full-1");
    let r = gw.req("GET", HOST, "/full?utm=x", &[("User-Agent", IPHONE)]);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://apps.example.com/ios"));
    let r = gw.req("GET", HOST, "/full?utm=x", &[("User-Agent", ANDROID)]);
    assert_eq!(
        r.header("location"),
        Some("https://apps.example.com/android")
    );
    let r = gw.req("GET", HOST, "/full?utm=x", &[("User-Agent", DESKTOP)]);
    assert_eq!(
        r.header("location"),
        Some("https://www.example.com/desktop")
    );
    let r = gw.get(HOST, "/full?utm=x");
    assert_eq!(r.status, 301);
    // Without a User-Agent: the desktop destination; `drop`: the request's
    // query is not passed on.
    assert_eq!(
        r.header("location"),
        Some("https://www.example.com/desktop")
    );
    assert_eq!(r.header("cache-control"), Some("max-age=60"));

    let path = format!("/api/v1/links/{id}");
    let patch = |body: Value, headers: &[(&str, &str)]| {
        gw.call("PATCH", &path, Some(&key), Some(&body), headers)
    };
    // Clear most of it; `query: null` is back to merge.
    let r = patch(
        json!({"status": 302, "ios": null, "android": null, "desktop": null,
               "countries": null, "expires_at": null, "expired_to": null,
               "query": null, "cache_control": null, "tags": null, "external_id": null}),
        &[("If-Match", "W/\"1\"")],
    );
    let cleared = ok(&r, 200);
    for f in [
        "ios",
        "android",
        "desktop",
        "expires_at",
        "expired_to",
        "cache_control",
        "external_id",
    ] {
        assert_eq!(cleared[f], Value::Null, "{f}: {cleared}");
    }
    assert_eq!(cleared["countries"], json!({}));
    assert_eq!(cleared["tags"], json!([]));
    assert_eq!(cleared["query"], "merge");
    assert_eq!(cleared["status"], 302);
    assert_eq!(cleared["to"], "https://shop.example.com/full?a=1");
    assert_eq!(cleared["version"], 2);
    let r = gw.req("GET", HOST, "/full?utm=x", &[("User-Agent", IPHONE)]);
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://shop.example.com/full?a=1&utm=x")
    );
    // Expired: 410 without expired_to.
    let r = patch(
        json!({"expires_at": "2020-01-01T00:00:00Z"}),
        &[("If-Match", "*")],
    );
    assert_eq!(ok(&r, 200)["version"], 3);
    assert_eq!(gw.get(HOST, "/full").status, 410);
    let r = patch(json!({"expires_at": null}), &[]);
    ok(&r, 200);
    assert_eq!(gw.get(HOST, "/full").status, 302);

    // What a create refuses, a PATCH refuses, and the link stays.
    ok(
        &gw.post(
            "/api/v1/links",
            &key,
            &json!({"host": HOST, "code": "other", "to": "https://shop.example.com/o",
                    "external_id": "ext-o"}),
        ),
        201,
    );
    let p = problem(&patch(json!({"host": OTHER}), &[]), 403, "host-not-allowed");
    assert_eq!(fields(&p), ["host"]);
    let p = problem(&patch(json!({"code": "other"}), &[]), 409, "code-taken");
    assert_eq!(fields(&p), ["code"]);
    let p = problem(
        &patch(json!({"code": "fixed"}), &[]),
        409,
        "code-claimed-by-rule",
    );
    assert_eq!(fields(&p), ["code"]);
    let p = problem(
        &patch(json!({"external_id": "ext-o"}), &[]),
        409,
        "external-id-taken",
    );
    assert_eq!(fields(&p), ["external_id"]);
    let p = problem(
        &patch(json!({"to": "javascript:alert(1)"}), &[]),
        422,
        "invalid-link",
    );
    assert!(fields(&p).contains(&"to".to_string()), "{p}");
    let p = problem(&patch(json!({"status": 200}), &[]), 422, "invalid-link");
    assert!(fields(&p).contains(&"status".to_string()), "{p}");
    let p = problem(
        &patch(json!({"expires_at": "next tuesday"}), &[]),
        422,
        "invalid-link",
    );
    assert!(fields(&p).contains(&"expires_at".to_string()), "{p}");
    problem(
        &patch(
            json!({"to": "https://x.example.com/"}),
            &[("If-Match", "\"x\"")],
        ),
        412,
        "version-mismatch",
    );
    let now = ok(&gw.get_api(&path, &key), 200);
    assert_eq!(now["version"], 4);
    assert_eq!(now["code"], "full");
    assert_eq!(
        location(&gw, "full").as_deref(),
        Some("https://shop.example.com/full?a=1")
    );
    assert_eq!(
        location(&gw, "other").as_deref(),
        Some("https://shop.example.com/o")
    );
    // A new code that was cached as unknown is served at once.
    assert_eq!(location(&gw, "renamed").as_deref(), Some(FALLBACK));
    let r = patch(json!({"code": "renamed"}), &[("If-Match", "\"4\"")]);
    assert_eq!(ok(&r, 200)["short_url"], "https://go.example.com/renamed");
    assert_eq!(
        location(&gw, "renamed").as_deref(),
        Some("https://shop.example.com/full?a=1")
    );
    assert_eq!(location(&gw, "full").as_deref(), Some(FALLBACK));
}

/// Retries with one Idempotency-Key racing each other make one link:
/// every answer is that link (first or replayed) or `409` while the
/// first still runs.
#[test]
fn sqlite_concurrent_retries_with_one_idempotency_key_make_one_link() {
    let (_dir, gw) = sqlite();
    let gw = Arc::new(gw);
    let key = gw.create_key("retrier", HOST, &[]);
    idempotency_race(&gw, &key);
}

fn idempotency_race(gw: &Arc<ApiGateway>, key: &Key) {
    let barrier = Arc::new(Barrier::new(10));
    let threads: Vec<_> = (0..10)
        .map(|_| {
            let (gw, key, barrier) = (gw.clone(), key.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                gw.call(
                    "POST",
                    "/api/v1/links",
                    Some(&key),
                    Some(&json!({"host": HOST, "to": "https://shop.example.com/once"})),
                    &[("Idempotency-Key", "same-for-all")],
                )
            })
        })
        .collect();
    let mut ids = BTreeSet::new();
    let mut fresh = 0;
    // Every thread is joined before anything is asserted: a failure
    // must not leave a thread holding the gateway past the test.
    let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for r in answers {
        match r.status {
            201 => {
                ids.insert(id_of(&r.json()));
                if r.header("idempotent-replayed").is_none() {
                    fresh += 1;
                }
            }
            409 => {
                problem(&r, 409, "idempotency-key-in-use");
                assert!(r.header("retry-after").is_some());
            }
            other => panic!("{other}: {}", r.text()),
        }
    }
    assert_eq!(fresh, 1, "one request ran");
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(list_all(gw, key, "", 1000).len(), 1);
    // After, a retry is a replay.
    let r = gw.call(
        "POST",
        "/api/v1/links",
        Some(key),
        Some(&json!({"host": HOST, "to": "https://shop.example.com/once"})),
        &[("Idempotency-Key", "same-for-all")],
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    assert!(ids.contains(&id_of(&r.json())));
}

/// A bulk create retried with its Idempotency-Key gets the first answer
/// and writes nothing more.
#[test]
fn sqlite_bulk_with_idempotency_key_is_replayed() {
    let (_dir, gw) = sqlite();
    let key = gw.create_key("bulker", HOST, &[]);
    let body = json!({"links": [
        {"host": HOST, "to": "https://shop.example.com/1"},
        {"host": HOST, "to": "https://shop.example.com/2"},
    ]});
    let h = [("Idempotency-Key", "batch-1")];
    let r = gw.call("POST", "/api/v1/links/bulk", Some(&key), Some(&body), &h);
    let first = ok(&r, 200);
    assert_eq!(first["created"], 2);
    let r = gw.call("POST", "/api/v1/links/bulk", Some(&key), Some(&body), &h);
    assert_eq!(ok(&r, 200), first);
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    assert_eq!(list_all(&gw, &key, "", 1000).len(), 2);
    // The same key on the single create is another request.
    let r = gw.call(
        "POST",
        "/api/v1/links",
        Some(&key),
        Some(&json!({"host": HOST, "to": "https://shop.example.com/3"})),
        &h,
    );
    problem(&r, 422, "idempotency-key-reused");
}

/// Upserts of one external id racing each other make one link.
#[test]
fn sqlite_concurrent_upserts_of_one_external_id_make_one_link() {
    let (_dir, gw) = sqlite();
    let gw = Arc::new(gw);
    let key = gw.create_key("upserter", HOST, &[]);
    upsert_race(&gw, &key);
}

fn upsert_race(gw: &Arc<ApiGateway>, key: &Key) {
    for code in [None, Some("given")] {
        let ext = if code.is_some() {
            "with-code"
        } else {
            "generated"
        };
        let barrier = Arc::new(Barrier::new(10));
        let threads: Vec<_> = (0..10)
            .map(|i| {
                let (gw, key, barrier) = (gw.clone(), key.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut body =
                        json!({"host": HOST, "to": format!("https://shop.example.com/u/{i}")});
                    if let Some(c) = code {
                        body["code"] = json!(c);
                    }
                    barrier.wait();
                    gw.call(
                        "PUT",
                        &format!("/api/v1/links/by-external-id/{ext}"),
                        Some(&key),
                        Some(&body),
                        &[],
                    )
                })
            })
            .collect();
        let mut statuses = Vec::new();
        let mut ids = BTreeSet::new();
        // Every thread is joined before anything is asserted: a failure
        // must not leave a thread holding the gateway past the test.
        let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        for r in answers {
            statuses.push(r.status);
            assert!(
                matches!(r.status, 200 | 201),
                "{ext}: {} {}",
                r.status,
                r.text()
            );
            ids.insert(id_of(&r.json()));
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{ext}: {statuses:?}"
        );
        assert_eq!(ids.len(), 1, "{ext}: {ids:?}");
        let listed = list_all(gw, key, &format!("q={ext}"), 1000);
        assert_eq!(listed.len(), 1, "{ext}");
        assert_eq!(listed[0]["version"], 10, "{ext}: every upsert applied");
        let code = listed[0]["code"].as_str().unwrap();
        assert_eq!(
            location(gw, code),
            listed[0]["to"].as_str().map(str::to_string)
        );
    }
}

/// A code beyond ASCII (or with `"`, `{`, ...) is kept as a browser sends
/// it, percent-encoded, so the link answers the request a browser makes
/// for its short URL; the same code sent encoded is the same link.
#[test]
fn sqlite_codes_beyond_ascii_are_served_at_their_short_url() {
    let (_dir, gw) = sqlite();
    let key = gw.create_key("partner-a", HOST, &[]);
    for (code, stored) in [
        ("été", "%C3%A9t%C3%A9"),
        ("x{\"y\"}", "x%7B%22y%22%7D"),
        (
            "日本/セール",
            "%E6%97%A5%E6%9C%AC/%E3%82%BB%E3%83%BC%E3%83%AB",
        ),
    ] {
        let to = format!("https://shop.example.com/{stored}");
        let r = gw.post(
            "/api/v1/links",
            &key,
            &json!({"host": HOST, "code": code, "to": to}),
        );
        let link = ok(&r, 201);
        assert_eq!(link["code"], stored, "{link}");
        assert_eq!(
            link["short_url"],
            format!("https://go.example.com/{stored}")
        );
        // What a browser requests for the short URL.
        assert_eq!(location(&gw, stored).as_deref(), Some(to.as_str()));
        // Sent encoded: the same code.
        let p = problem(
            &gw.post(
                "/api/v1/links",
                &key,
                &json!({"host": HOST, "code": stored, "to": to}),
            ),
            409,
            "code-taken",
        );
        assert_eq!(fields(&p), ["code"]);
        // PATCH keeps it.
        let r = gw.call(
            "PATCH",
            &format!("/api/v1/links/{}", id_of(&link)),
            Some(&key),
            Some(&json!({"status": 307})),
            &[],
        );
        assert_eq!(ok(&r, 200)["code"], stored);
        assert_eq!(served(&gw, HOST, stored), (307, Some(to.clone())));
    }
    // Still refused: spaces, `?`, `#`, bad escapes.
    for code in ["a b", "a?b", "a#b", "100%"] {
        let p = problem(
            &gw.post(
                "/api/v1/links",
                &key,
                &json!({"host": HOST, "code": code, "to": "https://shop.example.com/"}),
            ),
            422,
            "invalid-link",
        );
        assert_eq!(fields(&p), ["code"], "{code}: {p}");
    }
}

#[test]
fn openapi_document_is_3_1_and_lists_every_endpoint() {
    let (_dir, gw) = sqlite();
    // No key needed.
    let r = gw.call("GET", "/api/v1/openapi.json", None, None, &[]);
    let doc = ok(&r, 200);
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    let want: &[(&str, &[&str])] = &[
        ("/api/v1/links", &["get", "post"]),
        ("/api/v1/links/bulk", &["post"]),
        ("/api/v1/links/{id}", &["get", "patch", "delete"]),
        ("/api/v1/links/by-external-id/{external_id}", &["put"]),
    ];
    for (path, methods) in want {
        let ops = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} missing from {:?}", paths.keys()));
        for m in *methods {
            assert!(ops.get(*m).is_some(), "{m} {path} missing");
        }
    }
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
    assert!(doc["components"]["schemas"]["Link"].is_object());
}

#[test]
fn errors_are_problems_naming_the_field() {
    let (_dir, gw) = sqlite();
    let key = gw.create_key("partner-a", HOST, &[]);
    let create = |body: Value| gw.post("/api/v1/links", &key, &body);

    let p = problem(
        &create(json!({"host": HOST, "code": "js", "to": "javascript:alert(1)"})),
        422,
        "invalid-link",
    );
    assert!(fields(&p).contains(&"to".to_string()), "{p}");
    assert_eq!(location(&gw, "js").as_deref(), Some(FALLBACK));

    let p = problem(
        &create(json!({"host": "nope.example.com", "to": "https://shop.example.com/"})),
        422,
        "invalid-link",
    );
    assert!(fields(&p).contains(&"host".to_string()), "{p}");

    let p = problem(
        &create(json!({"host": HOST, "code": "fixed", "to": "https://shop.example.com/"})),
        409,
        "code-claimed-by-rule",
    );
    assert!(
        p["detail"].as_str().unwrap().contains("rule `fixed`"),
        "{p}"
    );
    assert_eq!(fields(&p), ["code"]);
    assert_eq!(
        location(&gw, "fixed").as_deref(),
        Some("https://www.example.com/fixed")
    );
    // A path an any-host rule answers is not a partner's to take over,
    // although stored links outrank rules of other host levels.
    let p = problem(
        &create(json!({"host": HOST, "code": "robots.txt", "to": "https://shop.example.com/"})),
        409,
        "code-claimed-by-rule",
    );
    assert!(
        p["detail"].as_str().unwrap().contains("rule `robots`"),
        "{p}"
    );
    assert_eq!(gw.get(HOST, "/robots.txt").status, 200);
    // Prefixes are fallbacks: a code under one is a partner's to take.
    ok(
        &create(json!({"host": HOST, "code": "anything/x", "to": "https://shop.example.com/x"})),
        201,
    );
    assert_eq!(
        location(&gw, "anything/x").as_deref(),
        Some("https://shop.example.com/x")
    );

    ok(
        &create(json!({"host": HOST, "code": "mine", "to": "https://shop.example.com/1"})),
        201,
    );
    let p = problem(
        &create(json!({"host": HOST, "code": "mine", "to": "https://shop.example.com/2"})),
        409,
        "code-taken",
    );
    assert_eq!(fields(&p), ["code"]);
    assert_eq!(
        location(&gw, "mine").as_deref(),
        Some("https://shop.example.com/1")
    );

    // Not JSON: where.
    let bad = format!("{{\"host\": \"{HOST}\",\n \"to\": }}");
    let p = problem(
        &gw.raw(
            "POST",
            "/api/v1/links",
            Some(&key),
            Some(bad.as_bytes()),
            &[],
        ),
        400,
        "invalid-json",
    );
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("line 2") && detail.contains("column"),
        "{p}"
    );
    // Trailing bytes.
    let trailing = format!("{{\"host\": \"{HOST}\", \"to\": \"https://a.example.com/\"}} x");
    problem(
        &gw.raw(
            "POST",
            "/api/v1/links",
            Some(&key),
            Some(trailing.as_bytes()),
            &[],
        ),
        400,
        "invalid-json",
    );
    // An unknown field, a field of the wrong type.
    let p = problem(
        &create(json!({"host": HOST, "to": "https://shop.example.com/", "colour": "red"})),
        400,
        "invalid-json-field",
    );
    assert!(p["detail"].as_str().unwrap().contains("colour"), "{p}");
    let p = problem(
        &create(json!({"host": HOST, "to": "https://shop.example.com/", "status": "302"})),
        400,
        "invalid-json-field",
    );
    assert_eq!(fields(&p), ["status"]);
    // A PATCH body is checked the same way.
    let p = problem(
        &gw.call(
            "PATCH",
            "/api/v1/links/1",
            Some(&key),
            Some(&json!({"colour": "red"})),
            &[],
        ),
        400,
        "invalid-json-field",
    );
    assert!(p["detail"].as_str().unwrap().contains("colour"), "{p}");

    // A method the endpoint does not answer.
    for (method, path) in [
        ("PUT", "/api/v1/links"),
        ("DELETE", "/api/v1/links/bulk"),
        ("POST", "/api/v1/links/1"),
    ] {
        let r = gw.call(method, path, Some(&key), None, &[]);
        problem(&r, 405, "method-not-allowed");
        assert!(
            r.header("allow").is_some_and(|a| !a.is_empty()),
            "{method} {path}: no Allow: {r:?}"
        );
    }
    let r = gw.call("PUT", "/api/v1/links", Some(&key), None, &[]);
    let allow: BTreeSet<String> = r
        .header("allow")
        .unwrap()
        .split(',')
        .map(|m| m.trim().to_string())
        .collect();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow:?}");
    // No such endpoint, and ids that name no link.
    problem(&gw.get_api("/api/v1/nothing", &key), 404, "not-found");
    problem(
        &gw.get_api("/api/v1/links/abc", &key),
        404,
        "link-not-found",
    );
    problem(&gw.get_api("/api/v1/links/0", &key), 404, "link-not-found");
}

/// A body over `api.max_body_bytes` (1 MiB) whose length is only found
/// while reading it (chunked) is a `413` problem; one just under is read.
#[test]
fn body_over_the_limit_is_a_413_problem() {
    let (_dir, gw) = sqlite();
    let key = gw.create_key("partner-a", HOST, &[]);
    let big = format!(
        "{{\"host\":\"{HOST}\",\"to\":\"https://shop.example.com/{}\"}}",
        "a".repeat(1 << 20)
    );
    // Chunked: no length up front.
    let mut chunked = Vec::new();
    for part in big.as_bytes().chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = gw.raw(
        "POST",
        "/api/v1/links",
        Some(&key),
        Some(&chunked),
        &[("Transfer-Encoding", "chunked")],
    );
    problem(&r, 413, "body-too-large");
    // Just under the limit is read.
    let under = format!(
        "{{\"host\":\"{HOST}\",\"to\":\"https://shop.example.com/{}\"}}",
        "a".repeat((1 << 20) - 100)
    );
    let r = gw.raw(
        "POST",
        "/api/v1/links",
        Some(&key),
        Some(under.as_bytes()),
        &[],
    );
    assert_ne!(r.status, 413, "{}", r.text());
}

/// The same with the length declared up front (`Content-Length`), as most
/// clients send it: the answer must be the API's problem too.
#[test]
fn body_with_a_declared_length_over_the_limit_is_a_413_problem() {
    let (_dir, gw) = sqlite();
    let key = gw.create_key("partner-a", HOST, &[]);
    let big = format!(
        "{{\"host\":\"{HOST}\",\"to\":\"https://shop.example.com/{}\"}}",
        "a".repeat(1 << 20)
    );
    let r = gw.raw(
        "POST",
        "/api/v1/links",
        Some(&key),
        Some(big.as_bytes()),
        &[],
    );
    problem(&r, 413, "body-too-large");
}

#[test]
fn keys_are_required_scoped_and_revocable() {
    let (_dir, gw) = sqlite();
    // No key, a malformed header, an unknown key.
    let r = gw.call("GET", "/api/v1/links", None, None, &[]);
    problem(&r, 401, "unauthorized");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "{r:?}"
    );
    let r = gw.call(
        "GET",
        "/api/v1/links",
        None,
        None,
        &[("Authorization", "Basic dXNlcjpwYXNz")],
    );
    problem(&r, 401, "unauthorized");
    let wrong = Key {
        id: "knope".into(),
        secret: "gwk_knope_22222222222222222222222222222222".into(),
    };
    let r = gw.get_api("/api/v1/links", &wrong);
    problem(&r, 401, "unauthorized");
    assert!(r.header("www-authenticate").is_some());

    let a = gw.create_key("partner-a", HOST, &[]);
    let b = gw.create_key("partner-b", &format!("{HOST},{OTHER}"), &[]);
    let reader = gw.create_key("dashboard", HOST, &["--read-only"]);

    // A host the key does not own.
    let p = problem(
        &gw.post(
            "/api/v1/links",
            &a,
            &json!({"host": OTHER, "code": "x", "to": "https://shop.example.com/x"}),
        ),
        403,
        "host-not-allowed",
    );
    assert_eq!(fields(&p), ["host"]);
    assert_eq!(served(&gw, OTHER, "x").0, 404);

    let link = ok(
        &gw.post(
            "/api/v1/links",
            &a,
            &json!({"host": HOST, "code": "a-link", "to": "https://shop.example.com/a"}),
        ),
        201,
    );
    let id = id_of(&link);
    let path = format!("/api/v1/links/{id}");

    // Another key's link does not exist for this key.
    problem(&gw.get_api(&path, &b), 404, "link-not-found");
    problem(
        &gw.call(
            "PATCH",
            &path,
            Some(&b),
            Some(&json!({"to": "https://evil.example.com/"})),
            &[],
        ),
        404,
        "link-not-found",
    );
    problem(
        &gw.call(
            "PATCH",
            &path,
            Some(&b),
            Some(&json!({"to": "https://evil.example.com/"})),
            &[("If-Match", "\"1\"")],
        ),
        404,
        "link-not-found",
    );
    problem(
        &gw.call("DELETE", &path, Some(&b), None, &[]),
        404,
        "link-not-found",
    );
    assert!(list_all(&gw, &b, "", 1000).is_empty());
    assert!(list_all(&gw, &b, &format!("host={HOST}"), 1000).is_empty());
    // Nor may it take its external id or upsert over it.
    let r = gw.call(
        "PUT",
        "/api/v1/links/by-external-id/shared",
        Some(&a),
        Some(&json!({"host": HOST, "code": "a-ext", "to": "https://shop.example.com/a-ext"})),
        &[],
    );
    ok(&r, 201);
    let r = gw.call(
        "PUT",
        "/api/v1/links/by-external-id/shared",
        Some(&b),
        Some(&json!({"host": HOST, "code": "b-ext", "to": "https://shop.example.com/b-ext"})),
        &[],
    );
    assert_eq!(ok(&r, 201)["code"], "b-ext");
    // Still a's, unchanged.
    let mine = ok(&gw.get_api(&path, &a), 200);
    assert_eq!(mine["version"], 1);
    assert_eq!(mine["to"], "https://shop.example.com/a");
    assert_eq!(
        location(&gw, "a-link").as_deref(),
        Some("https://shop.example.com/a")
    );
    assert_eq!(
        location(&gw, "a-ext").as_deref(),
        Some("https://shop.example.com/a-ext")
    );
    assert_eq!(list_all(&gw, &a, "", 1000).len(), 2);

    // A read-only key reads, never writes.
    let p = problem(
        &gw.post(
            "/api/v1/links",
            &reader,
            &json!({"host": HOST, "code": "r", "to": "https://shop.example.com/r"}),
        ),
        403,
        "read-only-key",
    );
    assert!(p["detail"].as_str().unwrap().contains(&reader.id), "{p}");
    for (method, path, body) in [
        (
            "POST",
            "/api/v1/links/bulk".to_string(),
            Some(json!({"links": [{"host": HOST, "to": "https://shop.example.com/r"}]})),
        ),
        (
            "PUT",
            "/api/v1/links/by-external-id/r".to_string(),
            Some(json!({"host": HOST, "to": "https://shop.example.com/r"})),
        ),
        (
            "PATCH",
            "/api/v1/links/1".to_string(),
            Some(json!({"to": "https://shop.example.com/r"})),
        ),
        ("DELETE", "/api/v1/links/1".to_string(), None),
    ] {
        let r = gw.call(method, &path, Some(&reader), body.as_ref(), &[]);
        problem(&r, 403, "read-only-key");
    }
    assert_eq!(
        ok(&gw.get_api("/api/v1/links", &reader), 200)["links"],
        json!([])
    );
    assert_eq!(location(&gw, "r").as_deref(), Some(FALLBACK));

    // Revoked: refused within about the poll interval (100 ms).
    ok(&gw.get_api("/api/v1/links", &a), 200);
    let out = gw.cli(&["keys", "revoke", &a.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = wait_until(Duration::from_secs(2), || {
        gw.get_api("/api/v1/links", &a).status == 401
    });
    assert!(refused, "a revoked key is still accepted");
    let p = problem(&gw.get_api("/api/v1/links", &a), 401, "unauthorized");
    assert!(p["detail"].as_str().unwrap().contains("revoked"), "{p}");
    problem(
        &gw.post(
            "/api/v1/links",
            &a,
            &json!({"host": HOST, "to": "https://shop.example.com/late"}),
        ),
        401,
        "unauthorized",
    );
    // The other keys still work, and the revoked key's links still answer.
    ok(&gw.get_api("/api/v1/links", &b), 200);
    assert_eq!(
        location(&gw, "a-link").as_deref(),
        Some("https://shop.example.com/a")
    );
    // `keys list` shows it revoked, never a secret.
    let out = gw.cli(&["keys", "list", "--json"]);
    assert!(out.status.success());
    let keys: Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == a.id.as_str())
        .unwrap();
    assert!(listed["revoked_at"].is_i64(), "{listed}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&a.secret));
}

#[test]
fn rate_limit_answers_429_with_retry_after_and_counts_it() {
    let (_dir, gw) = sqlite();
    let key = gw.create_key("slow", HOST, &["--rate", "2/s", "--burst", "3"]);
    let answers: Vec<Response> = (0..4).map(|_| gw.get_api("/api/v1/links", &key)).collect();
    for (i, r) in answers[..3].iter().enumerate() {
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        let policy = rate_params(r, "ratelimit-policy");
        assert_eq!(param(&policy, "q"), 3, "{r:?}");
        assert_eq!(param(&policy, "w"), 2, "{r:?}");
        let now = rate_params(r, "ratelimit");
        assert_eq!(param(&now, "r"), 2 - i as u64, "request {i}: {r:?}");
    }
    let r = &answers[3];
    let p = problem(r, 429, "rate-limited");
    assert!(p["detail"].as_str().unwrap().contains(&key.id), "{p}");
    let retry: u64 = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After: {r:?}"))
        .parse()
        .unwrap();
    assert!(retry >= 1, "{r:?}");
    let now = rate_params(r, "ratelimit");
    assert_eq!(param(&now, "r"), 0);
    assert!(param(&now, "t") >= 1);
    let policy = rate_params(r, "ratelimit-policy");
    assert_eq!(param(&policy, "q"), 3);
    assert_eq!(
        gw.metric("gateway_api_rate_limited_total", &[("key", &key.id)]),
        1.0
    );
    // Another key has its own bucket.
    let other = gw.create_key("other", HOST, &[]);
    ok(&gw.get_api("/api/v1/links", &other), 200);
    // The bucket refills.
    let refilled = wait_until(Duration::from_secs(5), || {
        gw.get_api("/api/v1/links", &key).status == 200
    });
    assert!(refilled);
}

#[test]
fn monthly_quota_refuses_the_create_past_it() {
    let (_dir, gw) = sqlite();
    let key = gw.create_key("quota", HOST, &["--monthly-quota", "2"]);
    for i in 0..2 {
        ok(
            &gw.post(
                "/api/v1/links",
                &key,
                &json!({"host": HOST, "code": format!("q{i}"), "to": "https://shop.example.com/q"}),
            ),
            201,
        );
    }
    let r = gw.post(
        "/api/v1/links",
        &key,
        &json!({"host": HOST, "code": "q2", "to": "https://shop.example.com/q"}),
    );
    let p = problem(&r, 429, "quota-exceeded");
    assert!(p["type"].as_str().unwrap().ends_with("quota-exceeded"));
    assert!(r.header("retry-after").is_some(), "{r:?}");
    assert_eq!(location(&gw, "q2").as_deref(), Some(FALLBACK));
    // Bulk items past the quota are refused one by one.
    let out = ok(
        &gw.post(
            "/api/v1/links/bulk",
            &key,
            &json!({"links": [{"host": HOST, "to": "https://shop.example.com/q"}]}),
        ),
        200,
    );
    assert_eq!(out["results"][0]["status"], 429, "{out}");
    let links = list_all(&gw, &key, "", 1000);
    assert_eq!(links.len(), 2);
    // Reads still work.
    ok(&gw.get_api("/api/v1/links", &key), 200);
    // Creates are counted, not links: deleting one gives no place back.
    let gone = links[1]["id"].as_i64().unwrap();
    let r = gw.call(
        "DELETE",
        &format!("/api/v1/links/{gone}"),
        Some(&key),
        None,
        &[],
    );
    assert_eq!(r.status, 204, "{r:?}");
    let r = gw.post(
        "/api/v1/links",
        &key,
        &json!({"host": HOST, "code": "q3", "to": "https://shop.example.com/q"}),
    );
    problem(&r, 429, "quota-exceeded");
}

#[test]
fn sqlite_ids_of_deleted_links_are_never_given_out_again() {
    let (_dir, gw) = sqlite();
    let key = gw.create_key("ids", HOST, &[]);
    let made = |code: &str| {
        ok(
            &gw.post(
                "/api/v1/links",
                &key,
                &json!({"host": HOST, "code": code, "to": "https://shop.example.com/i"}),
            ),
            201,
        )["id"]
            .as_i64()
            .unwrap()
    };
    let first = made("i1");
    let r = gw.call(
        "DELETE",
        &format!("/api/v1/links/{first}"),
        Some(&key),
        None,
        &[],
    );
    assert_eq!(r.status, 204, "{r:?}");
    let second = made("i2");
    assert!(second > first, "id {first} given out again as {second}");
    // The old id names nothing, even with the old version as If-Match.
    let r = gw.call(
        "PATCH",
        &format!("/api/v1/links/{first}"),
        Some(&key),
        Some(&json!({"to": "https://shop.example.com/other"})),
        &[("If-Match", "\"1\"")],
    );
    assert_eq!(r.status, 404, "{r:?}");
}

/// Creates racing each other, on `gateways` in turn, do not get past a
/// monthly quota of 3: exactly 3 of 12 are created, the others get `429`.
fn quota_race(gateways: &[Arc<ApiGateway>], key: &Key) {
    let barrier = Arc::new(Barrier::new(12));
    let threads: Vec<_> = (0..12)
        .map(|i| {
            let gw = gateways[i % gateways.len()].clone();
            let (key, barrier) = (key.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                if i % 3 == 2 {
                    gw.post(
                        "/api/v1/links/bulk",
                        &key,
                        &json!({"links": [{"host": HOST, "to": format!("https://shop.example.com/q/{i}")}]}),
                    )
                } else {
                    gw.post(
                        "/api/v1/links",
                        &key,
                        &json!({"host": HOST, "to": format!("https://shop.example.com/q/{i}")}),
                    )
                }
            })
        })
        .collect();
    let mut created = 0;
    // Every thread is joined before anything is asserted: a failure
    // must not leave a thread holding the gateway past the test.
    let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for r in answers {
        let (status, body) = if r.status == 200 {
            let out = ok(&r, 200);
            let item = out["results"][0].clone();
            (item["status"].as_u64().unwrap() as u16, item)
        } else {
            (r.status, r.json())
        };
        match status {
            201 => created += 1,
            429 => assert!(body.to_string().contains("quota"), "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(created, 3, "creates past a monthly quota of 3");
    assert_eq!(list_all(&gateways[0], key, "", 1000).len(), 3);
}

#[test]
fn sqlite_concurrent_creates_stop_at_the_monthly_quota() {
    let (_dir, gw) = sqlite();
    let gw = Arc::new(gw);
    let key = gw.create_key("quota", HOST, &["--monthly-quota", "3"]);
    quota_race(&[gw], &key);
}

#[test]
fn sqlite_fifty_concurrent_creates_get_fifty_distinct_codes() {
    let (_dir, gw) = sqlite();
    let gw = Arc::new(gw);
    let key = gw.create_key("busy", HOST, &[]);
    fifty_creates(&gw, &key);
}

fn fifty_creates(gw: &Arc<ApiGateway>, key: &Key) {
    let barrier = Arc::new(Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let (gw, key, barrier) = (gw.clone(), key.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                gw.post(
                    "/api/v1/links",
                    &key,
                    &json!({"host": HOST, "to": format!("https://shop.example.com/c/{i}")}),
                )
            })
        })
        .collect();
    let mut made = std::collections::BTreeMap::new();
    // Every thread is joined before anything is asserted: a failure
    // must not leave a thread holding the gateway past the test.
    let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (i, r) in answers.into_iter().enumerate() {
        let link = ok(&r, 201);
        let code = link["code"].as_str().unwrap().to_string();
        assert!(is_generated(&code, 7), "{code}");
        made.insert(code, i);
    }
    assert_eq!(made.len(), 50, "50 distinct codes");
    let listed = list_all(gw, key, "", 1000);
    assert_eq!(listed.len(), 50);
    let listed: BTreeSet<String> = codes(&listed).into_iter().collect();
    assert_eq!(listed, made.keys().cloned().collect());
    for (code, i) in &made {
        assert_eq!(
            location(gw, code),
            Some(format!("https://shop.example.com/c/{i}"))
        );
    }
}

#[test]
fn sqlite_twenty_patches_with_one_if_match_one_wins() {
    let (_dir, gw) = sqlite();
    let gw = Arc::new(gw);
    let key = gw.create_key("racer", HOST, &[]);
    if_match_race(&gw, &key);
}

/// 20 PATCHes of one link without If-Match at once: each applies to
/// whatever version is there, so all 20 succeed and the link ends at
/// version 21 with one of their destinations.
fn blind_patch_race(gw: &Arc<ApiGateway>, key: &Key) {
    let link = ok(
        &gw.post(
            "/api/v1/links",
            key,
            &json!({"host": HOST, "code": "blind", "to": "https://shop.example.com/blind"}),
        ),
        201,
    );
    let id = id_of(&link);
    let barrier = Arc::new(Barrier::new(20));
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let (gw, key, barrier) = (gw.clone(), key.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                gw.call(
                    "PATCH",
                    &format!("/api/v1/links/{id}"),
                    Some(&key),
                    Some(&json!({"to": format!("https://shop.example.com/blind/{i}")})),
                    &[],
                )
            })
        })
        .collect();
    let mut versions = BTreeSet::new();
    // Every thread is joined before anything is asserted: a failure
    // must not leave a thread holding the gateway past the test.
    let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for r in answers {
        versions.insert(ok(&r, 200)["version"].as_i64().unwrap());
    }
    assert_eq!(versions, (2..=21).collect(), "each PATCH made one version");
    let now = ok(&gw.get_api(&format!("/api/v1/links/{id}"), key), 200);
    assert_eq!(now["version"], 21);
    assert_eq!(location(gw, "blind").as_deref(), now["to"].as_str());
}

#[test]
fn sqlite_twenty_patches_without_if_match_all_apply() {
    let (_dir, gw) = sqlite();
    let gw = Arc::new(gw);
    let key = gw.create_key("blind", HOST, &[]);
    blind_patch_race(&gw, &key);
}

#[test]
fn postgres_twenty_patches_without_if_match_all_apply() {
    let Some(pg) = Postgres::start("postgres_twenty_patches_without_if_match_all_apply") else {
        return;
    };
    let gw = Arc::new(ApiGateway::start(RULES, &pg.url()));
    let key = gw.create_key("blind", HOST, &[]);
    blind_patch_race(&gw, &key);
}

// ---------------------------------------------------------------------
// PostgreSQL.
// ---------------------------------------------------------------------

/// A link created through A's API is served by A at once and by B,
/// which cached the code as unknown, within a second.
#[test]
fn postgres_api_link_is_served_by_both_gateways() {
    let Some(pg) = Postgres::start("postgres_api_link_is_served_by_both_gateways") else {
        return;
    };
    let a = ApiGateway::start(RULES, &pg.url());
    let b = ApiGateway::start(RULES, &pg.url());
    let key = a.create_key("fleet", HOST, &[]);
    // B knows the key too.
    ok(&b.get_api("/api/v1/links", &key), 200);
    assert_eq!(location(&a, "fleet").as_deref(), Some(FALLBACK));
    assert_eq!(location(&b, "fleet").as_deref(), Some(FALLBACK));
    let link = ok(
        &a.post(
            "/api/v1/links",
            &key,
            &json!({"host": HOST, "code": "fleet", "to": "https://shop.example.com/fleet"}),
        ),
        201,
    );
    assert_eq!(
        location(&a, "fleet").as_deref(),
        Some("https://shop.example.com/fleet")
    );
    let on_b = wait_until(Duration::from_secs(1), || {
        location(&b, "fleet").as_deref() == Some("https://shop.example.com/fleet")
    });
    assert!(
        on_b,
        "gateway B does not serve the link a second after A's 201; B's log:\n{}",
        b.log_tail()
    );
    // Changed through B: served by B at once, by A soon.
    let r = b.call(
        "PATCH",
        &format!("/api/v1/links/{}", id_of(&link)),
        Some(&key),
        Some(&json!({"to": "https://shop.example.com/fleet-v2"})),
        &[("If-Match", "\"1\"")],
    );
    ok(&r, 200);
    assert_eq!(
        location(&b, "fleet").as_deref(),
        Some("https://shop.example.com/fleet-v2")
    );
    assert!(wait_until(Duration::from_secs(1), || {
        location(&a, "fleet").as_deref() == Some("https://shop.example.com/fleet-v2")
    }));
    // Deleted through B: gone on B at once, on A soon.
    let r = b.call(
        "DELETE",
        &format!("/api/v1/links/{}", id_of(&link)),
        Some(&key),
        None,
        &[],
    );
    assert_eq!(r.status, 204);
    assert_eq!(location(&b, "fleet").as_deref(), Some(FALLBACK));
    assert!(wait_until(Duration::from_secs(1), || {
        location(&a, "fleet").as_deref() == Some(FALLBACK)
    }));
    // Revoked with the CLI of one: refused by both.
    let out = a.cli(&["keys", "revoke", "fleet"]);
    assert!(out.status.success());
    for gw in [&a, &b] {
        assert!(wait_until(Duration::from_secs(2), || {
            gw.get_api("/api/v1/links", &key).status == 401
        }));
    }
}

#[test]
fn postgres_main_flow() {
    let Some(pg) = Postgres::start("postgres_main_flow") else {
        return;
    };
    let gw = ApiGateway::start(RULES, &pg.url());
    let crud = gw.create_key("crud", &format!("{HOST},{OTHER}"), &[]);
    crud_flow(&gw, &crud);
    let lister = gw.create_key("lister", &format!("{HOST},{OTHER}"), &[]);
    list_flow(&gw, &lister);
    let bulk = gw.create_key("bulk", &format!("{HOST},{OTHER}"), &[]);
    bulk_flow(&gw, &bulk);
}

#[test]
fn postgres_twenty_patches_with_one_if_match_one_wins() {
    let Some(pg) = Postgres::start("postgres_twenty_patches_with_one_if_match_one_wins") else {
        return;
    };
    let gw = Arc::new(ApiGateway::start(RULES, &pg.url()));
    let key = gw.create_key("racer", HOST, &[]);
    if_match_race(&gw, &key);
}

/// The races on PostgreSQL too: 50 creates with generated codes, retries
/// with one Idempotency-Key, upserts of one external id.
#[test]
fn postgres_concurrent_creates_retries_and_upserts() {
    let Some(pg) = Postgres::start("postgres_concurrent_creates_retries_and_upserts") else {
        return;
    };
    let gw = Arc::new(ApiGateway::start(RULES, &pg.url()));
    fifty_creates(&gw, &gw.create_key("busy", HOST, &[]));
    idempotency_race(&gw, &gw.create_key("retrier", HOST, &[]));
    upsert_race(&gw, &gw.create_key("upserter", HOST, &[]));
}

/// `[api]` settings reach the answers: the short URL's scheme, the length
/// of generated codes, the largest bulk.
#[test]
fn api_settings_shape_short_urls_codes_and_bulk() {
    let dir = tempfile::tempdir().unwrap();
    let gw = ApiGateway::start_with(
        RULES,
        &sqlite_url(dir.path()),
        "short_url_scheme = \"http\"\ncode_length = 5\nmax_bulk = 2\n",
    );
    // A wildcard key covers the subdomains; the scheme is case-blind.
    let key = gw.create_key("wild", "*.example.com", &[]);
    let r = gw.call(
        "POST",
        "/api/v1/links",
        None,
        Some(&json!({"host": "GO.Example.COM", "to": "https://shop.example.com/w"})),
        &[("Authorization", &format!("bearer {}", key.secret))],
    );
    let link = ok(&r, 201);
    let code = link["code"].as_str().unwrap();
    assert!(is_generated(code, 5), "{code}");
    assert_eq!(link["host"], HOST);
    assert_eq!(link["short_url"], format!("http://go.example.com/{code}"));
    assert_eq!(
        location(&gw, code).as_deref(),
        Some("https://shop.example.com/w")
    );
    ok(
        &gw.post(
            "/api/v1/links",
            &key,
            &json!({"host": OTHER, "to": "https://shop.example.com/w"}),
        ),
        201,
    );
    let item = json!({"host": HOST, "to": "https://shop.example.com/b"});
    let p = problem(
        &gw.post(
            "/api/v1/links/bulk",
            &key,
            &json!({"links": [item, item, item]}),
        ),
        422,
        "too-many-links",
    );
    assert_eq!(fields(&p), ["links"]);
    let out = ok(
        &gw.post("/api/v1/links/bulk", &key, &json!({"links": [item, item]})),
        200,
    );
    assert_eq!(out["created"], 2);
    let out = ok(
        &gw.post("/api/v1/links/bulk", &key, &json!({"links": []})),
        200,
    );
    assert_eq!(out["created"], 0);
    assert_eq!(out["results"], json!([]));
    assert_eq!(list_all(&gw, &key, "", 1000).len(), 4);
    problem(
        &gw.get_api("/api/v1/links?limit=1001", &key),
        400,
        "invalid-parameter",
    );
    // Requests are counted by route template and status.
    assert!(
        gw.metric(
            "gateway_api_requests_total",
            &[
                ("route", "/api/v1/links"),
                ("method", "POST"),
                ("status", "201")
            ]
        ) >= 2.0
    );
    assert_eq!(
        gw.metric("gateway_api_links_written_total", &[("op", "bulk")]),
        2.0
    );
    // Answers made outside any route are counted too, as `unmatched`.
    let r = gw.get_api("/api/v1/nowhere", &key);
    assert_eq!(r.status, 404);
    assert_eq!(
        gw.metric(
            "gateway_api_requests_total",
            &[("route", "unmatched"), ("method", "GET"), ("status", "404")]
        ),
        1.0
    );
}

/// Two gateways on one PostgreSQL: creates racing on both stop at the
/// key's monthly quota.
#[test]
fn postgres_creates_racing_on_two_gateways_stop_at_the_monthly_quota() {
    let Some(pg) =
        Postgres::start("postgres_creates_racing_on_two_gateways_stop_at_the_monthly_quota")
    else {
        return;
    };
    let a = Arc::new(ApiGateway::start(RULES, &pg.url()));
    let b = Arc::new(ApiGateway::start(RULES, &pg.url()));
    let key = a.create_key("quota", HOST, &["--monthly-quota", "3"]);
    quota_race(&[a, b], &key);
}

/// A create with an Idempotency-Key that the API's timeout cuts off (the
/// store is held up by a lock) still finishes: its retry gets that one
/// link, instead of `409 idempotency-key-in-use` for the day the key is
/// kept, or a second link.
#[test]
fn postgres_a_create_cut_off_by_the_timeout_is_replayed_to_its_retry() {
    let Some(pg) =
        Postgres::start("postgres_a_create_cut_off_by_the_timeout_is_replayed_to_its_retry")
    else {
        return;
    };
    let gw = Arc::new(ApiGateway::start_with(RULES, &pg.url(), "timeout = \"1s\""));
    let key = gw.create_key("slow", HOST, &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = rt.block_on(sqlx::PgPool::connect(&pg.url())).unwrap();
    let mut tx = rt.block_on(pool.begin()).unwrap();
    rt.block_on(sqlx::query("LOCK TABLE links IN ACCESS EXCLUSIVE MODE").execute(&mut *tx))
        .unwrap();
    let body = json!({"host": HOST, "code": "slow", "to": "https://shop.example.com/slow"});
    let h = [("Idempotency-Key", "slow-1")];
    let first = gw.call("POST", "/api/v1/links", Some(&key), Some(&body), &h);
    assert_eq!(first.status, 408, "{}", first.text());
    // The lock goes before the store's own timeout (2 s): the insert that
    // waited for it goes in.
    std::thread::sleep(Duration::from_millis(300));
    rt.block_on(tx.commit()).unwrap();
    let mut last = None;
    let replayed = wait_until(Duration::from_secs(5), || {
        let r = gw.call("POST", "/api/v1/links", Some(&key), Some(&body), &h);
        let done = r.status != 409;
        last = Some(r);
        done
    });
    let r = last.unwrap();
    assert!(replayed, "the retry is still refused: {}", r.text());
    let link = ok(&r, 201);
    assert_eq!(link["code"], "slow");
    assert_eq!(list_all(&gw, &key, "", 1000).len(), 1);
    assert_eq!(
        location(&gw, "slow").as_deref(),
        Some("https://shop.example.com/slow")
    );
}

/// A second gateway started by mistake on the same ports stops at once,
/// saying which port is taken, instead of sharing the API and admin
/// listeners with the first (they are bound with `SO_REUSEPORT` for
/// binary upgrades).
#[test]
fn a_second_gateway_on_the_same_ports_refuses_to_start() {
    let (_dir, gw) = sqlite();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["run", "-c"])
        .arg(gw.config())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen on") && err.contains(&gw.admin.to_string()),
        "{err}"
    );
    // The first one is untouched.
    assert_eq!(
        gw.call("GET", "/api/v1/openapi.json", None, None, &[])
            .status,
        200
    );
}
