//! Child processes under test: the gateway, nginx, the responder and the
//! upstream. Each is stopped when its handle is dropped (SIGTERM, then
//! SIGKILL after a few seconds), and is also signalled by the kernel if this
//! process dies first (`PR_SET_PDEATHSIG`), so no server outlives a run.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::{self, build_request};
use crate::genlinks;
use crate::procfs;
use crate::report::ServerUse;
use crate::responder::Engine;

/// A free loopback port (bound, then released).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A running child process.
pub struct Proc {
    child: Child,
    name: String,
    log: Option<PathBuf>,
    stopped: bool,
}

impl Proc {
    /// Spawns `cmd` with stdin closed and stdout and stderr to `log` (or
    /// discarded). `death_signal` reaches the child if this process dies.
    pub fn spawn(
        mut cmd: Command,
        name: &str,
        log: Option<&Path>,
        death_signal: i32,
    ) -> Result<Proc> {
        cmd.stdin(Stdio::null());
        match log {
            Some(path) => {
                let f = std::fs::File::create(path)
                    .with_context(|| format!("create {}", path.display()))?;
                cmd.stdout(f.try_clone()?).stderr(f);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, death_signal as libc::c_ulong);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        Ok(Proc {
            child,
            name: name.to_string(),
            log: log.map(Path::to_path_buf),
            stopped: false,
        })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its pid and its children's (nginx workers).
    pub fn pids(&self) -> Vec<u32> {
        let mut v = vec![self.pid()];
        v.extend(procfs::children(self.pid()));
        v
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let Some(log) = &self.log else {
            return String::new();
        };
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// CPU seconds so far, summed over its processes.
    pub fn cpu_seconds(&self) -> f64 {
        self.pids()
            .iter()
            .filter_map(|&p| procfs::cpu_seconds(p))
            .sum()
    }

    /// CPU seconds so far of each thread named like one of `names`
    /// ([`procfs::threads_cpu`]) in its processes, by (pid, thread id):
    /// two readings make a run's share ([`procfs::threads_cpu_since`]).
    pub fn threads_cpu(&self, names: &[&str]) -> BTreeMap<(u32, u32), f64> {
        self.pids()
            .iter()
            .flat_map(|&p| {
                procfs::threads_cpu(p, names)
                    .into_iter()
                    .map(move |(tid, s)| ((p, tid), s))
            })
            .collect()
    }

    /// Resident and proportional memory now, summed over its processes.
    pub fn memory(&self) -> (u64, u64) {
        let pids = self.pids();
        let rss = pids
            .iter()
            .filter_map(|&p| procfs::status_kib(p, "VmRSS"))
            .sum();
        let pss = pids.iter().filter_map(|&p| procfs::pss_kib(p)).sum();
        (rss, pss)
    }

    /// Server use over a run that took `elapsed_s` and answered `ok`,
    /// given the CPU seconds before it.
    pub fn usage_since(&self, cpu_before: f64, elapsed_s: f64, ok: u64) -> ServerUse {
        let cpu = (self.cpu_seconds() - cpu_before).max(0.0);
        let (rss, pss) = self.memory();
        ServerUse {
            rss_kib: rss,
            pss_kib: pss,
            cpu_s: cpu,
            cpu_pct: if elapsed_s > 0.0 {
                100.0 * cpu / elapsed_s
            } else {
                0.0
            },
            requests_per_cpu_s: if cpu > 0.0 { ok as f64 / cpu } else { 0.0 },
        }
    }

    /// Stops it: SIGTERM, then SIGKILL (children too) after 5 s.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let children = procfs::children(self.pid());
        signal(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !self.alive() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.alive() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        for c in children {
            signal(c, libc::SIGKILL);
        }
    }

    /// An error that names the process and quotes its log.
    pub fn failed(&self, what: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "{}: {what}; last log lines:\n{}",
            self.name,
            self.log_tail(20)
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory preconditions; a stale pid is harmless
    // here because we only signal our own children right after checking.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Polls `addr` with `request` until it answers `want` (or another status
/// when `want` is 0), the process dies, or `timeout` passes.
pub async fn wait_answer(
    proc: &mut Proc,
    addr: SocketAddr,
    request: &[u8],
    want: u16,
    timeout: Duration,
) -> Result<client::Answer> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        if !proc.alive() {
            return Err(proc.failed("exited before it was ready"));
        }
        match client::oneshot(addr, request, Duration::from_secs(5)).await {
            Ok(a) if want == 0 || a.status == want => return Ok(a),
            Ok(a) => last = format!("answered {}", a.status),
            Err(f) => last = f.detail,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(proc.failed(&format!(
        "not ready within {} ({last})",
        humantime::format_duration(timeout)
    )))
}

/// How to start a gateway.
#[derive(Clone, Debug)]
pub struct GatewaySpec {
    /// The `gateway` binary.
    pub bin: PathBuf,
    /// Its rules file.
    pub rules: PathBuf,
    /// `server.threads`.
    pub threads: usize,
    /// `rules.watch`.
    pub watch: bool,
    /// `admin.token`.
    pub token: Option<String>,
    /// Directory for its config, log, pid file and upgrade socket.
    pub dir: PathBuf,
    /// `log.level`.
    pub log_level: String,
    /// A `[tls]` listener too.
    pub tls: Option<GatewayTls>,
    /// `GATEWAY_*` settings on top of the config file (e.g. the click
    /// sink), set after this process's own are removed.
    pub env: Vec<(String, String)>,
}

/// The gateway's `[tls]` listener: one certificate (the default) and the
/// crypto provider.
#[derive(Clone, Debug)]
pub struct GatewayTls {
    /// `tls.cert`.
    pub cert: PathBuf,
    /// `tls.key`.
    pub key: PathBuf,
    /// `tls.crypto` (the gateway's default when `None`).
    pub crypto: Option<crate::tls::Crypto>,
}

/// A gateway started by [`start_gateway`].
pub struct RunningGateway {
    /// The process.
    pub proc: Proc,
    /// Its proxy listener.
    pub addr: SocketAddr,
    /// Its admin listener.
    pub admin: SocketAddr,
    /// Its TLS listener, when it has one.
    pub tls_addr: Option<SocketAddr>,
    /// From spawn to ready.
    pub startup: Duration,
}

/// Writes the server config (all `GATEWAY_*` variables of this process are
/// removed from the child so they cannot override it) and starts the
/// gateway; returns once `/ready` answers 200 and the listener accepts.
///
/// Its ports are found free here and bound by the gateway a moment later;
/// another process (tests run in parallel) can take one in between. When
/// the gateway's log says so, it is started again on new ports, up to
/// three times.
pub async fn start_gateway(spec: &GatewaySpec, timeout: Duration) -> Result<RunningGateway> {
    if !spec.bin.is_file() {
        bail!(
            "no gateway binary at {} (build it: cargo build --release -p gateway)",
            spec.bin.display()
        );
    }
    let log = spec.dir.join("gateway.log");
    let mut tries = 0;
    loop {
        tries += 1;
        match start_gateway_once(spec, timeout).await {
            Err(e) if tries < 3 && port_taken(&log) => {
                eprintln!(
                    "gateway: a port was taken before it bound it; again on new ports ({e:#})"
                );
            }
            result => return result,
        }
    }
}

/// The gateway's log says a listener's address was in use.
fn port_taken(log: &Path) -> bool {
    std::fs::read_to_string(log).is_ok_and(|t| t.contains("Address already in use"))
}

async fn start_gateway_once(spec: &GatewaySpec, timeout: Duration) -> Result<RunningGateway> {
    std::fs::create_dir_all(&spec.dir)?;
    let port = free_port()?;
    let admin_port = free_port()?;
    let d = &spec.dir;
    let mut config = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\nthreads = {threads}\ngrace_period = \"1s\"\n\
         upgrade_sock = \"{up}\"\npid_file = \"{pid}\"\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n",
        threads = spec.threads,
        up = d.join("upgrade.sock").display(),
        pid = d.join("gateway.pid").display(),
    );
    if let Some(t) = &spec.token {
        config.push_str(&format!("token = \"{t}\"\n"));
    }
    config.push_str(&format!(
        "\n[rules]\npath = \"{}\"\nwatch = {}\n\n[log]\nlevel = \"{}\"\nformat = \"text\"\n",
        std::path::absolute(&spec.rules)?.display(),
        spec.watch,
        spec.log_level
    ));
    let tls_addr = match &spec.tls {
        None => None,
        Some(t) => {
            let tls_port = free_port()?;
            config.push_str(&gateway_tls_section(loopback(tls_port), t)?);
            Some(loopback(tls_port))
        }
    };
    let config_path = d.join("gateway.toml");
    std::fs::write(&config_path, config)?;
    let mut cmd = Command::new(&spec.bin);
    cmd.args(["run", "-c"])
        .arg(&config_path)
        .env_remove("RUST_LOG");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GATEWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    let started = Instant::now();
    let mut proc = Proc::spawn(cmd, "gateway", Some(&d.join("gateway.log")), libc::SIGKILL)?;
    let admin = loopback(admin_port);
    let ready = build_request("GET", "/ready", "admin", &[("Connection", "close")], b"");
    wait_answer(&mut proc, admin, &ready, 200, timeout).await?;
    let addr = loopback(port);
    let probe = build_request("GET", "/", "probe", &[("Connection", "close")], b"");
    wait_answer(&mut proc, addr, &probe, 0, timeout).await?;
    Ok(RunningGateway {
        proc,
        addr,
        admin,
        tls_addr,
        startup: started.elapsed(),
    })
}

/// The `[tls]` section of a test gateway's configuration.
pub fn gateway_tls_section(listen: SocketAddr, t: &GatewayTls) -> Result<String> {
    let mut text = format!(
        "\n[tls]\nlisten = \"{listen}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        std::path::absolute(&t.cert)?.display(),
        std::path::absolute(&t.key)?.display()
    );
    if let Some(c) = t.crypto {
        text.push_str(&format!("crypto = \"{}\"\n", c.name()));
    }
    Ok(text)
}

/// Starts nginx in the foreground with `conf` and `prefix`; returns once it
/// answers `probe` with `want` (the hot link with 302, a proxied request
/// with 200).
pub async fn start_nginx(
    bin: &Path,
    conf: &Path,
    prefix: &Path,
    addr: SocketAddr,
    probe: &[u8],
    want: u16,
    timeout: Duration,
) -> Result<(Proc, Duration)> {
    let mut cmd = Command::new(bin);
    cmd.arg("-c").arg(conf).arg("-p").arg(prefix);
    let started = Instant::now();
    let mut proc = Proc::spawn(
        cmd,
        "nginx",
        Some(&prefix.join("stderr.log")),
        libc::SIGTERM,
    )?;
    wait_answer(&mut proc, addr, probe, want, timeout)
        .await
        .map_err(|e| {
            let errors = std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
            e.context(errors)
        })?;
    Ok((proc, started.elapsed()))
}

/// Starts `loadtest responder` (the binary `exe`) on `addr`.
pub async fn start_responder(
    exe: &Path,
    addr: SocketAddr,
    threads: usize,
    engine: Engine,
    log: &Path,
) -> Result<Proc> {
    let mut cmd = Command::new(exe);
    cmd.args(["responder", "--listen", &addr.to_string(), "--threads"])
        .arg(threads.to_string())
        .args(["--engine", engine.name()]);
    let mut proc = Proc::spawn(cmd, "responder", Some(log), libc::SIGKILL)?;
    wait_answer(
        &mut proc,
        addr,
        &hot_request("probe"),
        302,
        Duration::from_secs(20),
    )
    .await?;
    Ok(proc)
}

/// Starts `loadtest bare-proxy` on `addr` with `threads` worker threads,
/// forwarding to `upstream`, and waits until a request goes through it.
pub async fn start_bare_proxy(
    exe: &Path,
    addr: SocketAddr,
    upstream: SocketAddr,
    threads: usize,
    log: &Path,
) -> Result<Proc> {
    let mut cmd = Command::new(exe);
    cmd.args(["bare-proxy", "--listen", &addr.to_string()])
        .args(["--upstream", &upstream.to_string()])
        .args(["--threads", &threads.to_string()]);
    let mut proc = Proc::spawn(cmd, "bare-proxy", Some(log), libc::SIGKILL)?;
    wait_answer(
        &mut proc,
        addr,
        &client::build_request("GET", "/healthz", "api", &[], b""),
        200,
        Duration::from_secs(20),
    )
    .await?;
    Ok(proc)
}

/// Starts `loadtest upstream` (the binary `exe`) on `addr` with `threads`
/// runtime threads.
pub async fn start_upstream(
    exe: &Path,
    addr: SocketAddr,
    threads: usize,
    log: &Path,
) -> Result<Proc> {
    let mut cmd = Command::new(exe);
    cmd.args(["upstream", "--listen", &addr.to_string()])
        .args(["--threads", &threads.to_string()]);
    let mut proc = Proc::spawn(cmd, "upstream", Some(log), libc::SIGKILL)?;
    let probe = build_request("GET", "/healthz", "probe", &[("Connection", "close")], b"");
    wait_answer(&mut proc, addr, &probe, 200, Duration::from_secs(20)).await?;
    Ok(proc)
}

/// `GET /<hot code>` on `host`, on a connection that closes after.
pub fn hot_request(host: &str) -> Vec<u8> {
    build_request(
        "GET",
        &format!("/{}", genlinks::code(genlinks::HOT)),
        host,
        &[("Connection", "close")],
        b"",
    )
}
