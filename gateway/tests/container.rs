//! The Dockerfile cannot be built here (no Docker engine), so this checks
//! what it promises against the binary: the ports it exposes are the
//! binary's defaults, the files it points at exist in `config/`, and its
//! CMD and HEALTHCHECK, with their paths mapped onto the repository, start a
//! gateway that reports healthy.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn dockerfile() -> String {
    std::fs::read_to_string(common::workspace("Dockerfile")).unwrap()
}

/// Lines of the final stage, with `\` continuations joined.
fn runtime_stage() -> Vec<String> {
    let text = dockerfile().replace("\\\n", " ");
    let stage = text.rsplit("\nFROM ").next().unwrap().to_string();
    stage
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

fn instruction(name: &str) -> Vec<String> {
    runtime_stage()
        .into_iter()
        .filter_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_string))
        .collect()
}

/// `["a", "b"]` exec-form arguments.
fn exec_form(s: &str) -> Vec<String> {
    let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(',')
        .map(|a| a.trim().trim_matches('"').to_string())
        .collect()
}

fn env_vars() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in instruction("ENV") {
        for pair in e.split_whitespace() {
            let (k, v) = pair.split_once('=').unwrap();
            out.push((k.to_string(), v.to_string()));
        }
    }
    out
}

/// Maps the image's /etc/gateway onto the repository's config/.
fn map_path(p: &str) -> String {
    p.replace(
        "/etc/gateway",
        common::workspace("config").to_str().unwrap(),
    )
}

#[test]
fn exposed_ports_are_the_binary_defaults() {
    let defaults =
        gateway::config::Config::load(Some(&common::workspace("config/gateway.toml")), Vec::new())
            .unwrap();
    let builtin = gateway::config::Config::default();
    let env = env_vars();
    let listen = &env
        .iter()
        .find(|(k, _)| k == "GATEWAY_SERVER_LISTEN")
        .unwrap()
        .1;
    let exposed: Vec<u16> = instruction("EXPOSE")
        .iter()
        .flat_map(|l| {
            l.split_whitespace()
                .map(|p| p.parse::<u16>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let port_of = |a: &str| a.rsplit_once(':').unwrap().1.parse::<u16>().unwrap();
    assert!(
        exposed.contains(&port_of(listen)),
        "listener {listen} not exposed: {exposed:?}"
    );
    assert!(exposed.contains(&port_of(&builtin.server.listen[0])));
    assert!(
        exposed.contains(&port_of(&defaults.admin.listen)),
        "admin port not exposed"
    );
    assert_eq!(
        port_of(&builtin.admin.listen),
        port_of(&defaults.admin.listen)
    );
}

#[test]
fn files_the_image_uses_exist_and_validate() {
    let copy = instruction("COPY");
    assert!(
        copy.iter().any(|c| c.ends_with("config/ /etc/gateway/")),
        "{copy:?}"
    );
    let env = env_vars();
    let rules = map_path(
        &env.iter()
            .find(|(k, _)| k == "GATEWAY_RULES_PATH")
            .unwrap()
            .1,
    );
    assert!(
        rules::RuleSet::load(&rules).is_ok(),
        "{rules} does not validate"
    );
    let cmd = exec_form(&instruction("CMD")[0]);
    assert_eq!(cmd[0], "run");
    let config = map_path(&cmd[2]);
    assert!(std::path::Path::new(&config).exists(), "{config}");
    let hc = instruction("HEALTHCHECK")[0].clone();
    assert!(
        hc.contains("gateway\", \"health\""),
        "HEALTHCHECK must need no curl: {hc}"
    );
    assert!(
        instruction("USER")[0].starts_with("10001"),
        "runs as non-root"
    );
}

#[test]
fn cmd_and_healthcheck_run_a_healthy_gateway() {
    let port = common::free_port();
    let admin = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let entry = exec_form(&instruction("ENTRYPOINT")[0]);
    assert_eq!(entry, ["/usr/local/bin/gateway"]);
    let cmd: Vec<String> = exec_form(&instruction("CMD")[0])
        .iter()
        .map(|a| map_path(a))
        .collect();
    let mut envs: Vec<(String, String)> = env_vars()
        .into_iter()
        .map(|(k, v)| (k, map_path(&v)))
        .collect();
    // Loopback ephemeral ports instead of the image's fixed ones.
    envs.retain(|(k, _)| k != "GATEWAY_SERVER_LISTEN" && k != "GATEWAY_SERVER_UPGRADE_SOCK");
    envs.push(("GATEWAY_SERVER_LISTEN".into(), format!("127.0.0.1:{port}")));
    envs.push(("GATEWAY_ADMIN_LISTEN".into(), format!("127.0.0.1:{admin}")));
    envs.push((
        "GATEWAY_SERVER_UPGRADE_SOCK".into(),
        dir.path().join("u.sock").display().to_string(),
    ));
    envs.push((
        "GATEWAY_SERVER_PID_FILE".into(),
        dir.path().join("g.pid").display().to_string(),
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(&cmd)
        .envs(envs.clone())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let hc = exec_form(instruction("HEALTHCHECK")[0].split("CMD").nth(1).unwrap());
    let healthy = || {
        Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(hc[1..].iter().map(|a| map_path(a)))
            .envs(envs.clone())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ok = false;
    while Instant::now() < deadline && !ok {
        ok = healthy();
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let redirect = common::request(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        "GET",
        "/robots.txt",
        "go.example.com",
        &[],
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "HEALTHCHECK never passed");
    assert_eq!(redirect.status, 200);
    // Once the process is gone the health check fails.
    assert!(!healthy());
}
