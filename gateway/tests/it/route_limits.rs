//! What protects routes and upstreams, through the real binary: per-client
//! rate limits (`rate_limit`), a pool's `max_inflight`, and passive outlier
//! ejection (`eject_after`). Counts over bursts much faster than any
//! refill; no timing is asserted.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::harness::{wait_until, Behavior, Gateway, Response, Upstream};

/// The parameters of a `RateLimit` or `RateLimit-Policy` value:
/// `"name";k=v;k=v` as (name, [(k, v)]).
fn structured(value: &str) -> (String, Vec<(String, u64)>) {
    let mut parts = value.split(';');
    let name = parts.next().unwrap().trim();
    assert!(
        name.starts_with('"') && name.ends_with('"') && name.len() >= 2,
        "the policy name is a quoted string: {value}"
    );
    let params = parts
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or_else(|| panic!("{value}"));
            (
                k.trim().to_string(),
                v.trim().parse().unwrap_or_else(|_| panic!("{value}")),
            )
        })
        .collect();
    (name[1..name.len() - 1].to_string(), params)
}

fn param(value: &str, key: &str) -> u64 {
    structured(value)
        .1
        .into_iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key} in {value}"))
        .1
}

fn count(responses: &[Response], status: u16) -> usize {
    responses.iter().filter(|r| r.status == status).count()
}

#[test]
fn a_rate_limit_lets_each_client_its_burst_and_refuses_the_rest_with_429() {
    let up = Upstream::start("a", Behavior::Ok);
    let rules = format!(
        r#"
[[route]]
id = "api"
host = "api.example.com"
prefix = "/"
upstream = "api"
rate_limit = {{ key = "header:X-Api-Key", rate = "1/m", burst = 5 }}
response_headers = {{ set = {{ "X-Route" = "api" }} }}

[[route]]
id = "by-ip"
host = "ip.example.com"
prefix = "/"
upstream = "api"
rate_limit = {{ key = "ip", rate = "3/h" }}

[upstream.api]
servers = ["{}"]
"#,
        up.addr
    );
    let gw = Gateway::start(&rules);
    let burst = |key: Option<&str>, n: usize| -> Vec<Response> {
        (0..n)
            .map(|_| {
                let headers: Vec<(&str, &str)> =
                    key.map(|k| ("X-Api-Key", k)).into_iter().collect();
                gw.req("GET", "api.example.com", "/v1/items", &headers)
            })
            .collect()
    };

    let a = burst(Some("partner-a"), 12);
    assert_eq!(
        count(&a, 200),
        5,
        "{:?}",
        a.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(count(&a, 429), 7);
    // The first five went through, each saying what is left.
    for (i, r) in a[..5].iter().enumerate() {
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "a\n");
        let policy = r.header("ratelimit-policy").expect("RateLimit-Policy");
        assert_eq!(
            structured(policy),
            ("api".into(), vec![("q".into(), 5), ("w".into(), 300)])
        );
        let state = r.header("ratelimit").expect("RateLimit");
        assert_eq!(structured(state).0, "api");
        assert_eq!(param(state, "r"), 4 - i as u64, "{state}");
        assert!((1..=600).contains(&param(state, "t")), "{state}");
    }
    // The rest were refused here, with the route's response headers.
    for r in &a[5..] {
        assert_eq!(r.status, 429);
        assert_eq!(r.text(), "too many requests\n");
        let wait: u64 = r
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!((1..=600).contains(&wait), "{wait}");
        let state = r.header("ratelimit").expect("RateLimit");
        assert_eq!(param(state, "r"), 0);
        assert_eq!(param(state, "t"), wait);
        assert!(r.header("ratelimit-policy").is_some());
        assert_eq!(r.header("x-route"), Some("api"));
    }
    assert_eq!(
        up.hits.load(Ordering::Relaxed),
        5,
        "refused requests never reach the upstream"
    );

    // Another key has an allowance of its own; requests without the
    // header share one.
    let b = burst(Some("partner-b"), 7);
    assert_eq!((count(&b, 200), count(&b, 429)), (5, 2));
    let none = burst(None, 7);
    assert_eq!((count(&none, 200), count(&none, 429)), (5, 2));

    // By client address: three an hour, all from 127.0.0.1.
    let ip: Vec<Response> = (0..5).map(|_| gw.get("ip.example.com", "/")).collect();
    assert_eq!((count(&ip, 200), count(&ip, 429)), (3, 2));

    assert_eq!(
        gw.metric("gateway_route_rate_limited_total", &[("route", "api")]),
        11.0
    );
    assert_eq!(
        gw.metric("gateway_route_rate_limited_total", &[("route", "by-ip")]),
        2.0
    );
    assert_eq!(
        gw.metric(
            "gateway_requests_total",
            &[("kind", "rate_limited"), ("code", "429")]
        ),
        13.0
    );
}

#[test]
fn max_inflight_answers_503_while_the_pool_is_full() {
    let slow = Upstream::start("slow", Behavior::Slow(Duration::from_millis(1500)));
    let gw = Gateway::start(&crate::harness::api_route(
        &[slow.addr.to_string()],
        "max_inflight = 1",
    ));
    let addr = gw.addr;
    let first = std::thread::spawn(move || {
        crate::harness::request(addr, "GET", "/first", "api.example.com", &[])
    });
    assert!(
        wait_until(Duration::from_secs(10), || slow
            .hits
            .load(Ordering::Relaxed)
            == 1),
        "the first request never reached the upstream"
    );
    let second = gw.get("api.example.com", "/second");
    assert_eq!(second.status, 503);
    assert_eq!(second.text(), "service unavailable: upstream busy\n");
    assert_eq!(first.join().unwrap().status, 200);
    // Its place was given back: once its answer is sent, so a 503 (which
    // never goes upstream) may come first.
    assert!(
        wait_until(Duration::from_secs(10), || gw
            .get("api.example.com", "/third")
            .status
            == 200),
        "the place was never given back"
    );
    assert_eq!(
        slow.hits.load(Ordering::Relaxed),
        2,
        "the refused request never went upstream"
    );
    assert_eq!(
        gw.metric(
            "gateway_upstream_errors_total",
            &[("upstream", "api"), ("reason", "overloaded")]
        ),
        1.0
    );
    assert!(gw.wait_log("upstream at max_inflight", Duration::from_secs(5)));
}

/// Messages of the log lines about `backend` that start with `message`.
fn lines_about(gw: &Gateway, backend: &str, message: &str) -> Vec<serde_json::Value> {
    gw.log_json()
        .into_iter()
        .filter(|v| {
            v["backend"] == backend
                && v["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
        })
        .collect()
}

#[test]
fn a_failing_backend_is_ejected_for_a_doubling_time_and_comes_back() {
    let good = Upstream::start("good", Behavior::Ok);
    let bad = Upstream::start("bad", Behavior::Ok);
    bad.set_status(500);
    let gw = Gateway::start(&crate::harness::api_route(
        &[good.addr.to_string(), bad.addr.to_string()],
        "eject_after = 3\neject_for = \"1s\"\neject_for_max = \"1m\"",
    ));
    let bad_addr = bad.addr.to_string();
    let bad_hits = || bad.hits.load(Ordering::Relaxed);

    // Round robin: the bad backend gets every other request until its
    // third 500 in a row, then none.
    let answers: Vec<Response> = (0..20).map(|_| gw.get("api.example.com", "/x")).collect();
    assert_eq!(bad_hits(), 3, "ejected after exactly eject_after failures");
    assert_eq!(count(&answers, 500), 3);
    assert_eq!(count(&answers, 200), 17);
    assert_eq!(
        gw.metric("gateway_upstream_ejections_total", &[("upstream", "api")]),
        1.0
    );
    assert_eq!(
        gw.metric("gateway_upstream_ejected_backends", &[("upstream", "api")]),
        1.0
    );
    let first = lines_about(&gw, &bad_addr, "backend ejected");
    assert_eq!(first.len(), 1, "{}", gw.log_tail());
    assert_eq!(
        (first[0]["ejection"].as_u64(), first[0]["seconds"].as_f64()),
        (Some(1), Some(1.0))
    );

    // Still failing when it comes back: ejected again, for twice as long.
    assert!(
        wait_until(Duration::from_secs(15), || {
            gw.get("api.example.com", "/x");
            bad_hits() >= 6
        }),
        "the bad backend never came back"
    );
    assert!(wait_until(Duration::from_secs(5), || {
        lines_about(&gw, &bad_addr, "backend ejected").len() == 2
    }));
    let second = &lines_about(&gw, &bad_addr, "backend ejected")[1];
    assert_eq!(
        (second["ejection"].as_u64(), second["seconds"].as_f64()),
        (Some(2), Some(2.0))
    );
    assert!(!lines_about(&gw, &bad_addr, "ejected backend back in the pool").is_empty());

    // Healthy again: it serves once its time is up.
    bad.set_status(200);
    assert!(
        wait_until(Duration::from_secs(15), || gw
            .get("api.example.com", "/x")
            .text()
            == "bad\n"),
        "the recovered backend never served again"
    );
    assert!(wait_until(Duration::from_secs(5), || {
        gw.metric("gateway_upstream_ejected_backends", &[("upstream", "api")]) == 0.0
    }));
    assert_eq!(
        gw.metric("gateway_upstream_ejections_total", &[("upstream", "api")]),
        2.0
    );
}

#[test]
fn connect_failures_eject_too_but_never_the_last_backend_that_can_serve() {
    let good = Upstream::start("good", Behavior::Ok);
    let dead = crate::harness::free_port();
    let last = Upstream::start("last", Behavior::Ok);
    last.set_status(503);
    let rules = format!(
        r#"
[[route]]
id = "api"
host = "api.example.com"
prefix = "/"
upstream = "api"

[[route]]
id = "solo"
host = "solo.example.com"
prefix = "/"
upstream = "solo"

[upstream.api]
servers = ["{}", "127.0.0.1:{dead}"]
eject_after = 2
eject_for = "1m"

[upstream.solo]
servers = ["{}"]
eject_after = 2
"#,
        good.addr, last.addr
    );
    let gw = Gateway::start(&rules);
    // Two refused connects (502s) eject the dead backend; everything
    // after goes to the good one.
    let api: Vec<Response> = (0..12).map(|_| gw.get("api.example.com", "/")).collect();
    assert_eq!(
        count(&api, 502),
        2,
        "{:?}",
        api.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(count(&api, 200), 10);
    assert_eq!(
        gw.metric("gateway_upstream_ejections_total", &[("upstream", "api")]),
        1.0
    );

    // A pool's only backend keeps serving, failing or not.
    let solo: Vec<Response> = (0..10).map(|_| gw.get("solo.example.com", "/")).collect();
    assert_eq!(count(&solo, 503), 10);
    assert!(
        solo.iter().all(|r| r.text() == "last\n"),
        "every answer is the backend's own"
    );
    assert_eq!(last.hits.load(Ordering::Relaxed), 10);
    assert_eq!(
        gw.metric("gateway_upstream_ejections_total", &[("upstream", "solo")]),
        0.0
    );
    assert_eq!(
        lines_about(
            &gw,
            &last.addr.to_string(),
            "backend keeps failing but is not ejected"
        )
        .len(),
        1,
        "{}",
        gw.log_tail()
    );
}
