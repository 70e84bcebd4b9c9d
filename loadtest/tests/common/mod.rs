//! Shared test harness: the real gateway binary, started on ephemeral
//! loopback ports with generated links, plus a `loadtest upstream`.
//!
//! Where the gateway binary comes from: `cargo test --workspace` builds
//! `target/<profile>/gateway` (the gateway package has integration tests,
//! so its binary is part of the build), and a test executable lives in
//! `target/<profile>/deps/`, so the binary is looked up next to it.
//! `CARGO_BIN_EXE_gateway` cannot be used across crates. When the binary is
//! missing (e.g. `cargo test -p loadtest` on a fresh checkout) it is built
//! once with `cargo build -p gateway` (same profile, same target dir).
//! `LOADTEST_GATEWAY=/path/to/gateway` overrides the lookup. Note that
//! `cargo test -p loadtest` alone does not rebuild an existing binary: run
//! `cargo build -p gateway` first when gateway/src changed.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use loadtest::genlinks;
use loadtest::servers::{self, free_port, loopback, GatewaySpec, Proc, RunningGateway};

/// Admin token of test gateways.
pub const TOKEN: &str = "loadtest-token-0123456789";

/// The gateway binary (see the module docs).
pub fn gateway_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("LOADTEST_GATEWAY") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("test executable");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps/<test>");
        let bin = profile_dir.join("gateway");
        if !bin.is_file() {
            let target_dir = profile_dir.parent().expect("target dir");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-p", "gateway"])
                .env("CARGO_TARGET_DIR", target_dir)
                .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build -p gateway");
            assert!(status.success(), "cargo build -p gateway failed");
        }
        assert!(bin.is_file(), "no gateway binary at {}", bin.display());
        bin
    })
    .clone()
}

/// The `loadtest` binary of this crate.
pub fn loadtest_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_loadtest"))
}

/// A current-thread tokio runtime.
pub fn rt() -> tokio::runtime::Runtime {
    loadtest::runtime(1).expect("runtime")
}

/// A gateway with `links` generated links whose API route goes to a
/// running `loadtest upstream`. Everything stops on drop.
pub struct Bench {
    pub gateway: RunningGateway,
    pub upstream: Proc,
    pub upstream_addr: std::net::SocketAddr,
    pub rules: PathBuf,
    pub links: u64,
    pub dir: tempfile::TempDir,
}

impl Bench {
    pub fn start(rt: &tokio::runtime::Runtime, links: u64) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let upstream_addr = loopback(free_port().unwrap());
        let rules = dir.path().join("rules.toml");
        genlinks::generate(
            links,
            &dir.path().join("links.csv"),
            Some(&rules),
            genlinks::DEFAULT_HOST,
            &upstream_addr.to_string(),
        )
        .unwrap();
        let upstream = rt
            .block_on(servers::start_upstream(
                &loadtest_binary(),
                upstream_addr,
                1,
                &dir.path().join("upstream.log"),
            ))
            .unwrap();
        let gateway = rt
            .block_on(servers::start_gateway(
                &GatewaySpec {
                    bin: gateway_binary(),
                    rules: rules.clone(),
                    threads: 1,
                    watch: false,
                    token: Some(TOKEN.into()),
                    dir: dir.path().join("gateway"),
                    log_level: "warn".into(),
                    tls: None,
                    env: Vec::new(),
                },
                Duration::from_secs(60),
            ))
            .unwrap();
        Bench {
            gateway,
            upstream,
            upstream_addr,
            rules,
            links,
            dir,
        }
    }

    pub fn target(&self) -> String {
        format!("http://{}", self.gateway.addr)
    }
}
