//! The gateway process under test.

use super::free_port;
use super::http::{request, try_request, Response};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running gateway process, killed on drop.
pub struct Gateway {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub tls: Option<SocketAddr>,
    pub log: PathBuf,
}

/// Options for [`Gateway::start_with`].
#[derive(Default)]
pub struct Options<'a> {
    /// Extra files (relative path, content) next to the rules file.
    pub files: &'a [(&'a str, &'a [u8])],
    /// Extra TOML appended to the server config.
    pub extra_config: &'a str,
    /// TLS listener with this (cert, key) PEM pair.
    pub tls: Option<(String, String)>,
    /// Environment variables for the process (e.g. `GATEWAY_ADMIN_TOKEN`),
    /// for settings in sections the harness already writes.
    pub env: &'a [(&'a str, &'a str)],
    /// The plain listener's port, when the test must know it before the
    /// gateway starts (a CA told where to check HTTP-01); else a free one.
    pub port: Option<u16>,
    /// `RLIMIT_FSIZE` of the process, in bytes: writes past it fail with
    /// `EFBIG` (`SIGXFSZ` is ignored), like a full disk, without root.
    pub file_size_limit: Option<u64>,
}

impl Gateway {
    /// Starts the gateway with `rules` as its rules file.
    pub fn start(rules: &str) -> Gateway {
        Self::start_with(rules, Options::default())
    }

    pub fn start_with(rules: &str, opts: Options<'_>) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rules.toml"), rules).unwrap();
        for (name, content) in opts.files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let port = opts.port.unwrap_or_else(free_port);
        let admin_port = free_port();
        let mut config = format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\nthreads = 2\ngrace_period = \"1s\"\nupgrade_sock = \"{up}\"\npid_file = \"{pid}\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin_port}\"\n[rules]\npath = \"{rules}\"\n[log]\nlevel = \"info\"\nformat = \"json\"\n",
            up = dir.path().join("upgrade.sock").display(),
            pid = dir.path().join("gateway.pid").display(),
            rules = dir.path().join("rules.toml").display(),
        );
        let mut tls = None;
        if let Some((cert, key)) = &opts.tls {
            std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
            std::fs::write(dir.path().join("key.pem"), key).unwrap();
            let tls_port = free_port();
            config.push_str(&format!(
                "[tls]\nlisten = \"127.0.0.1:{tls_port}\"\ncert = \"{}\"\nkey = \"{}\"\n",
                dir.path().join("cert.pem").display(),
                dir.path().join("key.pem").display()
            ));
            tls = Some(SocketAddr::from(([127, 0, 0, 1], tls_port)));
        }
        config.push_str(opts.extra_config);
        let config_path = dir.path().join("gateway.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.path().join("gateway.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
        command
            .args(["run", "-c"])
            .arg(&config_path)
            .env_remove("RUST_LOG")
            .envs(opts.env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(limit) = opts.file_size_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec only async-signal-safe calls.
            unsafe {
                command.pre_exec(move || {
                    let rl = libc::rlimit {
                        rlim_cur: limit as libc::rlim_t,
                        rlim_max: limit as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    Ok(())
                });
            }
        }
        let child = command.spawn().unwrap();
        let gw = Gateway {
            child,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            tls,
            log,
        };
        gw.wait_ready();
        gw
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = try_request(self.admin, "GET", "/ready", "admin", &[]) {
                // The TLS listener may start after the others.
                if r.status == 200
                    && TcpStream::connect(self.addr).is_ok()
                    && self.tls.is_none_or(|t| TcpStream::connect(t).is_ok())
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("gateway did not become ready; log:\n{}", self.log_text());
    }

    /// The gateway's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log lines that are JSON objects (the harness logs JSON).
    pub fn log_json(&self) -> Vec<serde_json::Value> {
        self.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Access-log lines: JSON objects with `"target":"access"` (the JSON
    /// formatter with `flatten_event` puts the fields and the target at the
    /// top level).
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        self.log_json()
            .into_iter()
            .filter(|v| v["target"] == "access")
            .collect()
    }

    /// The last 40 lines of the log.
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Path of a file in the gateway's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `GET path` with `Host: host`.
    pub fn get(&self, host: &str, path: &str) -> Response {
        request(self.addr, "GET", path, host, &[])
    }

    /// A request with extra headers.
    pub fn req(&self, method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        request(self.addr, method, path, host, headers)
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits until the log contains `needle` (bounded).
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log_text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
