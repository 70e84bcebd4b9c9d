//! `loadtest api` against the real gateway with a SQLite store: a short,
//! bounded run of single and bulk creates, checked by what the store then
//! holds. No timing is asserted.

mod common;

use common::{gateway_binary, rt};
use loadtest::api::{ApiMode, ApiOptions};
use loadtest::client::build_request;
use loadtest::servers::{free_port, loopback, wait_answer, Proc};
use std::process::Command;
use std::time::Duration;

const RULES: &str = r#"
[[domain]]
id = "go-links"
host = "go.example.com"
store = true
"#;

#[test]
fn api_load_creates_the_links_it_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin, api) = (
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    );
    std::fs::write(dir.path().join("rules.toml"), RULES).unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\nthreads = 1\ngrace_period = \"1s\"\n\
             upgrade_sock = \"{d}/up.sock\"\npid_file = \"{d}/gw.pid\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n[rules]\npath = \"{d}/rules.toml\"\n\
             [store]\nurl = \"sqlite://{d}/gateway.db\"\n[api]\nlisten = \"127.0.0.1:{api}\"\n\
             [log]\nlevel = \"warn\"\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let made = Command::new(gateway_binary())
        .args(["-c", config.to_str().unwrap()])
        .args([
            "keys",
            "create",
            "--name",
            "load",
            "--hosts",
            "go.example.com",
        ])
        .args(["--rate", "100000/s"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let key = String::from_utf8(made.stdout).unwrap().trim().to_string();
    let mut cmd = Command::new(gateway_binary());
    cmd.args(["-c", config.to_str().unwrap(), "run"]);
    let mut gw = Proc::spawn(
        cmd,
        "gateway",
        Some(&dir.path().join("gw.log")),
        libc::SIGKILL,
    )
    .unwrap();
    let rt = rt();
    let api_addr = loopback(api);
    rt.block_on(wait_answer(
        &mut gw,
        api_addr,
        &build_request("GET", "/api/v1/openapi.json", "api", &[], b""),
        200,
        Duration::from_secs(30),
    ))
    .unwrap();

    let mut created = 0;
    for (mode, batch) in [(ApiMode::Single, 1), (ApiMode::Bulk, 50)] {
        let report = rt
            .block_on(loadtest::api::run(&ApiOptions {
                addr: api_addr,
                key: key.clone(),
                host: "go.example.com".into(),
                mode,
                connections: 2,
                rate: Some(20.0),
                batch,
                duration: Duration::from_millis(500),
                timeout: Duration::from_secs(10),
            }))
            .unwrap();
        assert!(report.links_created > 0, "{}", report.table());
        assert!(report.failures.is_empty(), "{}", report.table());
        // Open loop at 20 requests/s for half a second: about 10, never
        // more than the schedule allows.
        assert!(report.requests_ok <= 12, "{}", report.table());
        assert_eq!(
            report.links_created,
            report.requests_ok * batch as u64,
            "{}",
            report.table()
        );
        created += report.links_created;
    }
    // The store holds exactly what the tool counted.
    let auth = format!("Bearer {key}");
    let listed = rt
        .block_on(loadtest::client::oneshot(
            api_addr,
            &build_request(
                "GET",
                "/api/v1/links?limit=1000",
                "api",
                &[("Authorization", auth.as_str())],
                b"",
            ),
            Duration::from_secs(10),
        ))
        .unwrap();
    assert_eq!(listed.status, 200);
    let page: serde_json::Value = serde_json::from_slice(&listed.body).unwrap();
    assert_eq!(page["links"].as_array().unwrap().len() as u64, created);
    gw.stop();
}
