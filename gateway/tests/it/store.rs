//! The link store against the real binary: SQLite (always) and a private
//! PostgreSQL server (when installed; required in CI). Links are written
//! straight into the database, as any writer would, and must be served —
//! or gone — on running gateways without a reload.

use crate::harness::{wait_until, Gateway, Options, Postgres};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const HOST: &str = "go.example.com";

/// A link domain with a store, an exact rule that outranks stored links,
/// a prefix that stored links outrank, and a fallback for unknown codes.
const RULES: &str = r#"
[[domain]]
id = "go-links"
host = "go.example.com"
store = true
not_found_to = "https://www.example.com/unknown"

[[redirect]]
id = "fixed"
host = "go.example.com"
path = "/fixed"
to = "https://www.example.com/fixed"

[[redirect]]
id = "promo-prefix"
host = "go.example.com"
prefix = "/promo/"
to = "https://www.example.com/promo"

[[redirect]]
id = "other-host"
host = "www.example.com"
path = "/"
to = "https://www.example.com/home"
"#;

/// Direct writes to the store's database, as an application would make
/// them (the triggers log every change).
enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

impl Db {
    async fn open(url: &str) -> Db {
        if url.starts_with("sqlite:") {
            Db::Sqlite(sqlx::SqlitePool::connect(url).await.unwrap())
        } else {
            Db::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(24)
                    .connect(url)
                    .await
                    .unwrap(),
            )
        }
    }

    async fn exec(&self, sql: &'static str, host: &str, code: &str, to: &str) -> u64 {
        on_db!(self, pool => {
            let q = sqlx::query(sql).bind(host).bind(code);
            let q = if sql.contains("$3") { q.bind(to) } else { q };
            q.execute(pool).await.unwrap().rows_affected()
        })
    }

    async fn create(&self, code: &str, to: &str) {
        self.exec(
            "INSERT INTO links (host, code, destination, status, created_at, updated_at) \
             VALUES ($1, $2, $3, 302, 0, 0)",
            HOST,
            code,
            to,
        )
        .await;
    }

    async fn update(&self, code: &str, to: &str) -> u64 {
        self.exec(
            "UPDATE links SET destination = $3, version = version + 1 WHERE host = $1 AND code = $2",
            HOST,
            code,
            to,
        )
        .await
    }

    async fn delete(&self, code: &str) -> u64 {
        self.exec(
            "DELETE FROM links WHERE host = $1 AND code = $2",
            HOST,
            code,
            "",
        )
        .await
    }

    /// Every link of the test host: code → destination.
    async fn links(&self) -> std::collections::BTreeMap<String, String> {
        let rows: Vec<(String, String)> = on_db!(self, pool => {
            sqlx::query_as("SELECT code, destination FROM links WHERE host = $1")
                .bind(HOST)
                .fetch_all(pool)
                .await
                .unwrap()
        });
        rows.into_iter().collect()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// A gateway on `url`'s store, polling it every 100 ms.
fn gateway_on(url: &str) -> Gateway {
    let extra =
        format!("[store]\nurl = \"{url}\"\npoll_interval = \"100ms\"\nnegative_ttl = \"60s\"\n");
    Gateway::start_with(
        RULES,
        Options {
            extra_config: &extra,
            env: &[("GATEWAY_ADMIN_TOKEN", "store-test-admin-token")],
            ..Options::default()
        },
    )
}

/// Where `code` redirects now (`None`: not a redirect).
fn location(gw: &Gateway, code: &str) -> Option<String> {
    let r = gw.get(HOST, &format!("/{code}"));
    (r.status == 302).then(|| r.header("location").unwrap_or("").to_string())
}

fn served_within(gw: &Gateway, code: &str, want: &str) -> bool {
    wait_until(Duration::from_secs(5), || {
        location(gw, code).as_deref() == Some(want)
    })
}

/// Creating, changing and deleting links in the database reaches a running
/// gateway without a reload, unknown codes included.
fn links_follow_the_database(url: &str, gw: &Gateway) {
    let rt = runtime();
    let db = rt.block_on(Db::open(url));
    // Unknown, and remembered as unknown (a negative entry).
    assert_eq!(
        location(gw, "summer").as_deref(),
        Some("https://www.example.com/unknown")
    );
    assert_eq!(
        location(gw, "summer").as_deref(),
        Some("https://www.example.com/unknown")
    );
    assert!(gw.metric("gateway_store_lookups_total", &[("result", "negative_hit")]) >= 1.0);
    rt.block_on(db.create("summer", "https://shop.example.com/summer"));
    assert!(
        served_within(gw, "summer", "https://shop.example.com/summer"),
        "a negative-cached code did not become live; log:\n{}",
        gw.log_tail()
    );
    // A trailing slash finds the same link, as for bulk links.
    assert_eq!(
        location(gw, "summer/").as_deref(),
        Some("https://shop.example.com/summer")
    );
    // Served from the cache now.
    let hits = gw.metric("gateway_store_lookups_total", &[("result", "hit")]);
    assert_eq!(
        location(gw, "summer").as_deref(),
        Some("https://shop.example.com/summer")
    );
    assert!(gw.metric("gateway_store_lookups_total", &[("result", "hit")]) > hits);
    assert_eq!(
        rt.block_on(db.update("summer", "https://shop.example.com/summer-v2")),
        1
    );
    assert!(served_within(
        gw,
        "summer",
        "https://shop.example.com/summer-v2"
    ));
    assert_eq!(rt.block_on(db.delete("summer")), 1);
    assert!(served_within(
        gw,
        "summer",
        "https://www.example.com/unknown"
    ));
    // Precedence: the domain's exact rule beats a stored link of the same
    // code; a stored link beats the domain's prefix rule.
    rt.block_on(db.create("fixed", "https://shop.example.com/not-this"));
    rt.block_on(db.create("promo/x", "https://shop.example.com/promo-x"));
    assert!(served_within(
        gw,
        "promo/x",
        "https://shop.example.com/promo-x"
    ));
    assert_eq!(
        location(gw, "fixed").as_deref(),
        Some("https://www.example.com/fixed")
    );
    assert_eq!(
        location(gw, "promo/y").as_deref(),
        Some("https://www.example.com/promo")
    );
    // Hosts that are not store domains never touch the store.
    let lookups = gw.scrape().sum("gateway_store_lookups_total", &[]);
    assert_eq!(gw.get("www.example.com", "/").status, 302);
    assert_eq!(gw.get("www.example.com", "/summer").status, 404);
    assert_eq!(gw.scrape().sum("gateway_store_lookups_total", &[]), lookups);
    // The admin explain names the stored link, its id and version.
    let r = crate::harness::request(
        gw.admin,
        "GET",
        "/admin/explain?url=http://go.example.com/promo/x",
        "admin",
        &[("Authorization", "Bearer store-test-admin-token")],
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let e = &r.json()["explanation"];
    assert_eq!(e["rule_kind"], "store");
    assert_eq!(e["store"]["result"], "found");
    assert_eq!(e["store"]["version"], 1);
    assert!(e["store"]["id"].as_i64().is_some_and(|id| id > 0));
    assert_eq!(e["location"], "https://shop.example.com/promo-x");
}

#[test]
fn sqlite_links_are_served_changed_and_removed_without_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("links.db").display());
    let gw = gateway_on(&url);
    links_follow_the_database(&url, &gw);
}

#[test]
fn postgres_links_are_served_changed_and_removed_without_a_reload() {
    let Some(pg) =
        Postgres::start("postgres_links_are_served_changed_and_removed_without_a_reload")
    else {
        return;
    };
    let gw = gateway_on(&pg.url());
    links_follow_the_database(&pg.url(), &gw);
}

/// A reload whose rules newly claim a stored code wins at once, and the
/// shadowed link is counted (and logged).
#[test]
fn a_rule_that_newly_claims_a_stored_code_wins_and_the_link_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("links.db").display());
    let gw = gateway_on(&url);
    let rt = runtime();
    let db = rt.block_on(Db::open(&url));
    rt.block_on(db.create("later", "https://shop.example.com/later"));
    assert!(served_within(
        &gw,
        "later",
        "https://shop.example.com/later"
    ));
    assert_eq!(gw.metric("gateway_store_shadowed_links", &[]), 0.0);
    let rules = format!(
        "{RULES}\n[[redirect]]\nid = \"later-rule\"\nhost = \"go.example.com\"\npath = \"/later\"\nto = \"https://www.example.com/rule\"\n"
    );
    std::fs::write(gw.path("rules.toml"), rules).unwrap();
    gw.signal("HUP");
    assert!(served_within(&gw, "later", "https://www.example.com/rule"));
    assert!(wait_until(Duration::from_secs(5), || {
        gw.metric("gateway_store_shadowed_links", &[]) == 1.0
    }));
    assert!(gw.wait_log(
        "answered by rules of the rules file instead",
        Duration::from_secs(5)
    ));
    assert!(gw
        .log_text()
        .contains("go.example.com/later (link 1) by rule later-rule"));
}

/// Many concurrent requests for one code the cache does not hold make one
/// store query: the first one's query is held up by a table lock while
/// the other 199 arrive, and all of them wait for it.
#[test]
fn concurrent_misses_for_one_code_make_one_query() {
    let Some(pg) = Postgres::start("concurrent_misses_for_one_code_make_one_query") else {
        return;
    };
    let url = pg.url();
    let gw = Arc::new(gateway_on(&url));
    let rt = runtime();
    let Db::Postgres(pool) = rt.block_on(Db::open(&url)) else {
        unreachable!()
    };
    rt.block_on(
        sqlx::query(
            "INSERT INTO links (host, code, destination, status, created_at, updated_at) \
             VALUES ($1, 'hot', 'https://shop.example.com/hot', 302, 0, 0)",
        )
        .bind(HOST)
        .execute(&pool),
    )
    .unwrap();
    let queries = |gw: &Gateway| {
        gw.scrape().sum(
            "gateway_store_query_duration_seconds_count",
            &[("op", "get")],
        )
    };
    let misses = |gw: &Gateway| {
        gw.scrape()
            .sum("gateway_store_lookups_total", &[("result", "miss")])
    };
    let (queries_before, misses_before) = (queries(&gw), misses(&gw));
    let mut tx = rt.block_on(pool.begin()).unwrap();
    rt.block_on(sqlx::query("LOCK TABLE links IN ACCESS EXCLUSIVE MODE").execute(&mut *tx))
        .unwrap();
    let threads: Vec<_> = (0..200)
        .map(|_| {
            let gw = gw.clone();
            std::thread::spawn(move || location(&gw, "hot"))
        })
        .collect();
    assert!(wait_until(Duration::from_secs(10), || misses(&gw)
        - misses_before
        >= 200.0));
    rt.block_on(tx.commit()).unwrap();
    for t in threads {
        assert_eq!(
            t.join().unwrap().as_deref(),
            Some("https://shop.example.com/hot")
        );
    }
    assert_eq!(
        queries(&gw) - queries_before,
        1.0,
        "store queries for one code"
    );
}

fn cli(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("-c")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// `gateway store import` checks every row like the rules' bulk links and
/// names each bad one by its CSV line; a good file is served at once by a
/// running gateway; `export` gives it back.
#[test]
fn import_checks_rows_then_serves_them_and_export_gives_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("links.db").display());
    let gw = gateway_on(&url);
    let config = gw.path("gateway.toml");
    std::fs::write(
        dir.path().join("bad.csv"),
        "code,to,status\nok1,https://shop.example.com/1,302\nbad code,https://shop.example.com/2,302\n\
         js,javascript://x,302\nfixed,https://shop.example.com/3,302\nst,https://shop.example.com/4,200\n",
    )
    .unwrap();
    let out = cli(
        &config,
        &[
            "store",
            "import",
            &dir.path().join("bad.csv").display().to_string(),
            "--host",
            HOST,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let all = format!("{stdout}{stderr}");
    assert!(
        all.contains("bad.csv:3: code: `bad code` must not contain spaces"),
        "{all}"
    );
    assert!(
        all.contains("bad.csv:4:") && all.contains("scheme `javascript`"),
        "{all}"
    );
    assert!(
        all.contains("bad.csv:5: code `fixed` is already answered by rule `fixed`"),
        "{all}"
    );
    assert!(
        all.contains("bad.csv:6:") && all.contains("must be 301, 302, 303, 307 or 308"),
        "{all}"
    );
    assert!(all.contains("4 error(s); nothing imported"), "{all}");
    assert_eq!(
        location(&gw, "ok1").as_deref(),
        Some("https://www.example.com/unknown")
    );

    let mut good = String::from("host,code,to,status,countries,tags,expires_at\n");
    for i in 0..500 {
        good.push_str(&format!(
            "{HOST},c{i},https://shop.example.com/{i},301,\"{{\"\"DE\"\":\"\"https://shop.example.de/{i}\"\"}}\",\"[\"\"t\"\"]\",\n"
        ));
    }
    good.push_str(&format!(
        "{HOST},old,https://shop.example.com/old,302,,,2020-01-01T00:00:00Z\n"
    ));
    std::fs::write(dir.path().join("good.csv"), &good).unwrap();
    let out = cli(
        &config,
        &[
            "store",
            "import",
            &dir.path().join("good.csv").display().to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("501 links imported"));
    // The import logged one change for the host: cached misses are dropped.
    assert!(wait_until(Duration::from_secs(5), || gw
        .get(HOST, "/c7")
        .status
        == 301));
    assert_eq!(
        gw.get(HOST, "/c7").header("location"),
        Some("https://shop.example.com/7")
    );
    // Expired without expired_to: 410.
    assert_eq!(gw.get(HOST, "/old").status, 410);

    let out = cli(&config, &["store", "export"]);
    assert!(out.status.success());
    let csv = String::from_utf8_lossy(&out.stdout);
    assert_eq!(csv.lines().count(), 502, "header and 501 links");
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .starts_with("host,code,to,status"));
    assert!(csv.contains("go.example.com,c7,https://shop.example.com/7,301"));
    assert!(csv.contains("2020-01-01T00:00:00Z"));

    let out = cli(&config, &["store", "status"]);
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{status}");
    assert!(status.contains("links:      501"), "{status}");
}

/// With the database down, cached links keep answering and uncached codes
/// get 503 with Retry-After; when it is back, misses resolve again, the
/// follower catches up by itself and new writes are served.
#[test]
fn postgres_down_cached_links_answer_uncached_get_503_and_it_recovers() {
    let Some(mut pg) =
        Postgres::start("postgres_down_cached_links_answer_uncached_get_503_and_it_recovers")
    else {
        return;
    };
    let url = pg.url();
    let gw = gateway_on(&url);
    let rt = runtime();
    {
        let db = rt.block_on(Db::open(&url));
        rt.block_on(db.create("cached", "https://shop.example.com/cached"));
        rt.block_on(db.create("uncached", "https://shop.example.com/uncached"));
        rt.block_on(async {
            if let Db::Postgres(p) = db {
                p.close().await
            }
        });
    }
    assert!(served_within(
        &gw,
        "cached",
        "https://shop.example.com/cached"
    ));
    pg.stop_server();
    for _ in 0..20 {
        assert_eq!(
            location(&gw, "cached").as_deref(),
            Some("https://shop.example.com/cached")
        );
    }
    let r = gw.get(HOST, "/uncached");
    assert_eq!(r.status, 503, "{}", gw.log_tail());
    assert!(r.header("retry-after").is_some());
    assert!(gw.metric("gateway_store_lookups_total", &[("result", "unavailable")]) >= 1.0);
    assert!(gw.wait_log("link store unreachable", Duration::from_secs(5)));
    pg.start_server();
    assert!(
        served_within(&gw, "uncached", "https://shop.example.com/uncached"),
        "{}",
        gw.log_tail()
    );
    let db = rt.block_on(Db::open(&url));
    rt.block_on(db.create("after", "https://shop.example.com/after"));
    assert!(
        served_within(&gw, "after", "https://shop.example.com/after"),
        "{}",
        gw.log_tail()
    );
    rt.block_on(db.update("cached", "https://shop.example.com/cached-v2"));
    assert!(served_within(
        &gw,
        "cached",
        "https://shop.example.com/cached-v2"
    ));
}

/// Two gateways on one PostgreSQL while 20 writers make 10,000 changes:
/// within a second of the last write both answer every code exactly as the
/// database says, and neither skipped a change of the log.
#[test]
fn postgres_fleet_converges_with_no_stale_answers() {
    let Some(pg) = Postgres::start("postgres_fleet_converges_with_no_stale_answers") else {
        return;
    };
    let url = pg.url();
    let a = Arc::new(gateway_on(&url));
    let b = Arc::new(gateway_on(&url));
    let rt = runtime();
    let db = Arc::new(rt.block_on(Db::open(&url)));
    let head = |gw: &Gateway| gw.metric("gateway_store_changes_applied_total", &[]);
    let (applied_a, applied_b) = (head(&a), head(&b));
    const CODES: usize = 300;
    // Readers keep both caches busy (and racing the writes) meanwhile.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|gw| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = location(&gw, &format!("f{}", i % CODES));
                    i += 7;
                }
            })
        })
        .collect();
    rt.block_on(async {
        let mut writers = Vec::new();
        for w in 0..20usize {
            let db = db.clone();
            writers.push(tokio::spawn(async move {
                for n in 0..500usize {
                    let code = format!("f{}", (w * 131 + n * 17) % CODES);
                    let to = format!("https://shop.example.com/{w}/{n}");
                    match n % 5 {
                        0 | 1 => {
                            if db.update(&code, &to).await == 0 {
                                // Another writer may create it first.
                                db.exec(
                                    "INSERT INTO links (host, code, destination, status, created_at, updated_at) \
                                     VALUES ($1, $2, $3, 302, 0, 0) ON CONFLICT (host, code) DO NOTHING",
                                    HOST,
                                    &code,
                                    &to,
                                )
                                .await;
                            }
                        }
                        4 => {
                            db.delete(&code).await;
                        }
                        _ => {
                            db.update(&code, &to).await;
                        }
                    }
                }
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    let want = rt.block_on(db.links());
    let mut stale = Vec::new();
    for gw in [&a, &b] {
        for i in 0..CODES {
            let code = format!("f{i}");
            let expected = want
                .get(&code)
                .cloned()
                .unwrap_or_else(|| "https://www.example.com/unknown".into());
            let got = location(gw, &code);
            if got.as_deref() != Some(expected.as_str()) {
                stale.push(format!("{code}: want {expected}, got {got:?}"));
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert!(
        stale.is_empty(),
        "{} stale answers: {:?}",
        stale.len(),
        &stale[..stale.len().min(10)]
    );
    let written: f64 = rt.block_on(async {
        match &*db {
            Db::Postgres(p) => sqlx::query_scalar::<_, i64>("SELECT seq FROM store_meta")
                .fetch_one(p)
                .await
                .unwrap() as f64,
            Db::Sqlite(_) => unreachable!(),
        }
    });
    // Both gateways started on an empty log and applied every change.
    for (gw, start) in [(&a, applied_a), (&b, applied_b)] {
        assert_eq!(start, 0.0);
        assert_eq!(gw.metric("gateway_store_follower_gaps_total", &[]), 0.0);
        assert_eq!(gw.metric("gateway_store_changes_behind", &[]), 0.0);
        assert_eq!(
            head(gw),
            written,
            "changes applied, one by one, none skipped"
        );
    }
}
