//! The Dockerfile cannot be built here (no Docker engine), so this checks
//! what it promises against the binary: the ports it exposes are the
//! binary's defaults, the files it points at exist in `config/`, and its
//! CMD and HEALTHCHECK, with their paths mapped onto the repository, start a
//! gateway that reports healthy. The image creates and owns every directory
//! the gateway writes by default. The deployment files in `deploy/` are
//! checked the same way: their ports, environment variable names and
//! values, probes, paths and shutdown timeouts against the binary's
//! defaults and configuration keys, and the Kubernetes ConfigMap against
//! `config/`. (CI also runs `kubernetes-validate --strict` on them.)

use crate::harness;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn dockerfile() -> String {
    std::fs::read_to_string(harness::workspace("Dockerfile")).unwrap()
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
        harness::workspace("config").to_str().unwrap(),
    )
}

#[test]
fn exposed_ports_are_the_binary_defaults() {
    let defaults =
        gateway::Config::load(Some(&harness::workspace("config/gateway.toml")), Vec::new())
            .unwrap();
    let builtin = gateway::Config::default();
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
    assert!(
        listen.starts_with("0.0.0.0:"),
        "the proxy listens on every interface: {listen}"
    );
    assert!(
        exposed.contains(&port_of(listen)),
        "listener {listen} not exposed: {exposed:?}"
    );
    assert!(exposed.contains(&port_of(&builtin.server.listen[0])));
    // Only what listens on every interface by default is exposed: the
    // admin listener is loopback unless GATEWAY_ADMIN_LISTEN says
    // otherwise, and the metrics listener is off.
    assert!(!env.iter().any(|(k, _)| k == "GATEWAY_ADMIN_LISTEN"));
    for admin in [&builtin.admin.listen, &defaults.admin.listen] {
        let addr: std::net::SocketAddr = admin.parse().unwrap();
        assert!(addr.ip().is_loopback(), "admin default {admin}");
        assert!(
            !exposed.contains(&addr.port()),
            "the loopback admin port {admin} is exposed: {exposed:?}"
        );
    }
    assert!(builtin.metrics.listen.is_none() && defaults.metrics.listen.is_none());
    // The Links API listens on every interface in the image (loopback in
    // the bundled config and without GATEWAY_API_LISTEN).
    let api = &env
        .iter()
        .find(|(k, _)| k == "GATEWAY_API_LISTEN")
        .expect("the image sets GATEWAY_API_LISTEN")
        .1;
    assert!(api.starts_with("0.0.0.0:"), "{api}");
    let bundled_api: std::net::SocketAddr = defaults
        .api
        .as_ref()
        .expect("[api] in the bundled config")
        .listen
        .parse()
        .unwrap();
    assert!(bundled_api.ip().is_loopback(), "bundled api {bundled_api}");
    assert_eq!(
        exposed,
        [port_of(listen), port_of(api)],
        "the proxy port and the API port"
    );
}

/// `host:port` to the port.
fn port_of(a: &str) -> u16 {
    a.rsplit_once(':').unwrap().1.parse::<u16>().unwrap()
}

/// The words of the runtime stage's `RUN` commands that follow `command`
/// (e.g. `mkdir -p`) up to the next `&&`.
fn run_arguments(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    for run in instruction("RUN") {
        for part in run.split("&&") {
            if let Some(rest) = part.trim().strip_prefix(command) {
                out.extend(rest.split_whitespace().map(str::to_string));
            }
        }
    }
    out
}

#[test]
fn the_image_creates_and_owns_every_directory_the_gateway_writes() {
    let builtin = gateway::Config::default();
    let clicks = builtin.clicks.dir.display().to_string();
    let root = builtin.clicks.dir.parent().unwrap();
    // The click files, the http sink's spill files, and the embedded
    // store's directory to come.
    let dirs = [
        root.display().to_string(),
        clicks.clone(),
        format!("{clicks}/spill"),
        root.join("data").display().to_string(),
    ];
    let made = run_arguments("mkdir -p");
    let owned = run_arguments("chown gateway:gateway");
    let made_with_parents = |d: &str| {
        made.iter()
            .any(|m| m == d || m.starts_with(&format!("{d}/")))
    };
    for d in &dirs {
        assert!(made_with_parents(d), "{d} is not created: {made:?}");
        // chown is not recursive: every level is named.
        assert!(
            owned.contains(d),
            "{d} is not owned by the gateway: {owned:?}"
        );
    }
    assert!(
        instruction("RUN")
            .iter()
            .any(|r| r.contains("useradd") && r.contains("--uid 10001")),
        "the gateway user is uid 10001"
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
    let port = harness::free_port();
    let admin = harness::free_port();
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
    // Loopback ephemeral ports instead of the image's fixed ones, and the
    // store in the test's own directory instead of the image's volume.
    envs.retain(|(k, _)| {
        !matches!(
            k.as_str(),
            "GATEWAY_SERVER_LISTEN"
                | "GATEWAY_SERVER_UPGRADE_SOCK"
                | "GATEWAY_API_LISTEN"
                | "GATEWAY_STORE_URL"
        )
    });
    envs.push(("GATEWAY_SERVER_LISTEN".into(), format!("127.0.0.1:{port}")));
    envs.push((
        "GATEWAY_API_LISTEN".into(),
        format!("127.0.0.1:{}", harness::free_port()),
    ));
    envs.push((
        "GATEWAY_STORE_URL".into(),
        format!("sqlite://{}/gateway.db", dir.path().display()),
    ));
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
    let redirect = harness::request(
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

/// Every document of every `deploy/kubernetes/*.yaml`, by kind.
fn kubernetes_manifests() -> std::collections::BTreeMap<String, yaml_rust2::Yaml> {
    let dir = harness::workspace("deploy/kubernetes");
    let mut out = std::collections::BTreeMap::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for doc in yaml_rust2::YamlLoader::load_from_str(&text).unwrap() {
            let kind = doc["kind"].as_str().unwrap().to_string();
            assert!(
                out.insert(kind.clone(), doc).is_none(),
                "two {kind} documents"
            );
        }
    }
    out
}

fn strings(y: &yaml_rust2::Yaml) -> Vec<String> {
    y.as_vec()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// The image's `GATEWAY_*` environment with `extra` on top, loaded over the
/// image's configuration file: an unknown variable name or a bad value
/// fails here as it would at start.
fn config_with(extra: &[(String, String)]) -> gateway::Config {
    let mut env: Vec<(String, String)> = env_vars();
    env.extend(extra.iter().cloned());
    gateway::Config::load(Some(&harness::workspace("config/gateway.toml")), env)
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// The image's health check command, `gateway health …`.
fn healthcheck_command() -> Vec<String> {
    exec_form(instruction("HEALTHCHECK")[0].split("CMD").nth(1).unwrap())
}

#[test]
fn kubernetes_manifests_match_the_binary() {
    let m = kubernetes_manifests();
    let kinds: Vec<&str> = m.keys().map(String::as_str).collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Kustomization",
            "PodDisruptionBudget",
            "Service"
        ]
    );
    let mut listed = strings(&m["Kustomization"]["resources"]);
    listed.sort();
    assert_eq!(
        listed,
        [
            "configmap.yaml",
            "deployment.yaml",
            "hpa.yaml",
            "pdb.yaml",
            "service.yaml"
        ]
    );

    let deploy = &m["Deployment"];
    let pod = &deploy["spec"]["template"]["spec"];
    let labels = &deploy["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&deploy["spec"]["selector"]["matchLabels"], labels);
    let containers = pod["containers"].as_vec().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(
        strings(&c["args"]),
        exec_form(&instruction("CMD")[0]),
        "the image's CMD"
    );

    // Environment: known keys with valid values. A secret is stood in for.
    let mut env = Vec::new();
    for e in c["env"].as_vec().unwrap() {
        let name = e["name"].as_str().unwrap().to_string();
        let value = match e["value"].as_str() {
            Some(v) => v.to_string(),
            None => {
                assert!(!e["valueFrom"]["secretKeyRef"].is_badvalue(), "{name}");
                "a-secret-of-at-least-16-chars".to_string()
            }
        };
        env.push((name, value));
    }
    let config = config_with(&env);
    let env_value = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} not set"))
    };

    // Ports: the proxy, the Links API and the /metrics-only listener;
    // never the admin one.
    let ports: Vec<(String, u16)> = c["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["containerPort"].as_i64().unwrap() as u16,
            )
        })
        .collect();
    let listen = &config.server.listen[0];
    assert!(listen.starts_with("0.0.0.0:"), "{listen}");
    let metrics = config.metrics.listen.clone().unwrap();
    assert!(metrics.starts_with("0.0.0.0:"), "{metrics}");
    assert_eq!(
        ports,
        [
            ("http".to_string(), port_of(listen)),
            (
                "api".to_string(),
                port_of(&config.api.as_ref().expect("[api]").listen)
            ),
            ("metrics".to_string(), port_of(&metrics))
        ]
    );
    let admin: std::net::SocketAddr = config.admin.listen.parse().unwrap();
    assert!(admin.ip().is_loopback(), "the admin API stays on loopback");

    // Probes: /ready and /live on the health and metrics listener, the
    // port the binary's [metrics] listen is set to here, never the admin.
    let metrics: std::net::SocketAddr = config
        .metrics
        .listen
        .as_deref()
        .expect("the manifest sets GATEWAY_METRICS_LISTEN")
        .parse()
        .unwrap();
    assert!(metrics.ip().is_unspecified(), "probed from outside the pod");
    let metrics_port = c["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some("metrics"))
        .and_then(|p| p["containerPort"].as_i64())
        .unwrap();
    assert_eq!(metrics_port as u16, metrics.port());
    for (probe, path) in [
        ("startupProbe", "/ready"),
        ("readinessProbe", "/ready"),
        ("livenessProbe", "/live"),
    ] {
        let p = &c[probe];
        assert!(p["exec"].is_badvalue() && p["tcpSocket"].is_badvalue());
        assert_eq!(p["httpGet"]["path"].as_str(), Some(path), "{probe}");
        assert_eq!(p["httpGet"]["port"].as_str(), Some("metrics"), "{probe}");
        assert!(p["timeoutSeconds"].as_i64().unwrap() >= 2, "{probe}");
    }

    // Shutdown: SIGTERM comes after preStop; then grace_period.
    let pre_stop = strings(&c["lifecycle"]["preStop"]["exec"]["command"]);
    assert_eq!(pre_stop[0], "sleep");
    let pre_stop: u64 = pre_stop[1].parse().unwrap();
    let termination = pod["terminationGracePeriodSeconds"].as_i64().unwrap() as u64;
    assert!(
        termination > pre_stop + config.server.grace_period.as_secs(),
        "terminationGracePeriodSeconds {termination} <= preStop {pre_stop} + grace_period {:?}",
        config.server.grace_period
    );

    // Writable paths on a read-only root filesystem.
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    assert_eq!(pod["securityContext"]["runAsUser"].as_i64(), Some(10001));
    let mounts: Vec<(String, String)> = c["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["mountPath"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mounted = |p: &std::path::Path| mounts.iter().any(|(_, m)| p.starts_with(m));
    for p in [
        config.clicks.dir.clone(),
        std::path::PathBuf::from(&config.server.upgrade_sock),
        std::path::PathBuf::from(&config.server.pid_file),
    ] {
        assert!(
            mounted(&p),
            "{} is on the read-only root filesystem",
            p.display()
        );
    }
    assert!(
        !c["resources"]["requests"]["cpu"].is_badvalue(),
        "the HPA needs a CPU request"
    );

    // Rules: the ConfigMap's items rebuild config/ under the mount.
    let rules_path = std::path::PathBuf::from(env_value("GATEWAY_RULES_PATH"));
    assert_eq!(config.rules.path, rules_path);
    let (volume, _) = mounts
        .iter()
        .find(|(_, m)| rules_path.parent() == Some(std::path::Path::new(m)))
        .expect("GATEWAY_RULES_PATH is in a mounted volume");
    let vol = pod["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str() == Some(volume))
        .unwrap();
    let cm = &m["ConfigMap"];
    assert_eq!(vol["configMap"]["name"], cm["metadata"]["name"]);
    let tmp = tempfile::tempdir().unwrap();
    let config_dir = harness::workspace("config");
    let mut paths = Vec::new();
    for item in vol["configMap"]["items"].as_vec().unwrap() {
        let key = item["key"].as_str().unwrap();
        let path = item["path"].as_str().unwrap();
        let data = cm["data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("ConfigMap has no key {key}"));
        let bundled = std::fs::read_to_string(config_dir.join(path)).unwrap();
        assert!(
            data == bundled,
            "configmap.yaml `{key}` differs from config/{path}: regenerate it (command at its top)"
        );
        let out = tmp.path().join(path);
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::fs::write(&out, data).unwrap();
        paths.push(path.to_string());
    }
    assert_eq!(
        cm["data"].as_hash().unwrap().len(),
        paths.len(),
        "every ConfigMap key is mounted"
    );
    let name = rules_path.file_name().unwrap().to_str().unwrap();
    assert!(paths.iter().any(|p| p == name), "{name} is not an item");
    let bundled = rules::RuleSet::load(config_dir.join("rules.toml")).unwrap();
    let canonical = std::fs::canonicalize(&config_dir).unwrap();
    for f in bundled.files() {
        let f = std::fs::canonicalize(f).unwrap();
        let rel = f
            .strip_prefix(&canonical)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            paths.contains(&rel),
            "config/{rel} is not in the ConfigMap items"
        );
    }
    let mounted_rules = rules::RuleSet::load(tmp.path().join(name));
    assert!(
        mounted_rules.is_ok(),
        "the mounted rules do not load: {:?}",
        mounted_rules.err()
    );

    // Service, PodDisruptionBudget, HorizontalPodAutoscaler.
    let svc = &m["Service"];
    assert_eq!(&svc["spec"]["selector"], labels);
    for p in svc["spec"]["ports"].as_vec().unwrap() {
        let target = p["targetPort"].as_str().unwrap();
        assert!(
            ports.iter().any(|(n, _)| n == target),
            "Service targets {target}, not a container port"
        );
    }
    assert_eq!(
        &m["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        labels
    );
    let hpa = &m["HorizontalPodAutoscaler"]["spec"];
    assert_eq!(hpa["scaleTargetRef"]["kind"].as_str(), Some("Deployment"));
    assert_eq!(hpa["scaleTargetRef"]["name"], deploy["metadata"]["name"]);
    let metric = &hpa["metrics"][0]["resource"];
    assert_eq!(metric["name"].as_str(), Some("cpu"));
}

#[test]
fn ecs_task_definition_matches_the_binary() {
    let text =
        std::fs::read_to_string(harness::workspace("deploy/ecs/task-definition.json")).unwrap();
    let task: serde_json::Value = serde_json::from_str(&text).unwrap();
    let containers = task["containerDefinitions"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let strs = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(strs(&c["command"]), exec_form(&instruction("CMD")[0]));
    let env: Vec<(String, String)> = c["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let config = config_with(&env);

    let ports: Vec<u64> = c["portMappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ports,
        [
            u64::from(port_of(&config.server.listen[0])),
            u64::from(port_of(&config.api.as_ref().expect("[api]").listen))
        ]
    );

    // ECS sends SIGTERM, then SIGKILL after stopTimeout.
    let stop = c["stopTimeout"].as_u64().unwrap();
    assert!(
        stop > config.server.grace_period.as_secs(),
        "stopTimeout {stop} <= grace_period {:?}",
        config.server.grace_period
    );

    let mut hc = vec!["CMD".to_string()];
    hc.extend(healthcheck_command());
    assert_eq!(strs(&c["healthCheck"]["command"]), hc);

    let log = &c["logConfiguration"];
    assert_eq!(log["logDriver"], "awslogs");
    for key in ["awslogs-group", "awslogs-region", "awslogs-stream-prefix"] {
        assert!(log["options"][key].is_string(), "{key}");
    }

    assert!(config.clicks.enabled);
    let mount = c["mountPoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["containerPath"].as_str() == config.clicks.dir.to_str())
        .expect("a volume at the clicks dir");
    assert_eq!(mount["readOnly"], false);
    assert!(task["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["name"] == mount["sourceVolume"]));
}
