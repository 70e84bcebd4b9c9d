//! The Links API under test: a gateway with `[store]` and `[api]`, API
//! keys made with the binary's own `gateway keys create`, and JSON
//! requests with a body.

use super::free_port;
use super::gateway::{Gateway, Options};
use super::http::{request_with_body, Response};
use super::wait_until;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

/// A gateway serving the Links API on its own port.
pub struct ApiGateway {
    pub gw: Gateway,
    /// The `[api]` listener.
    pub api: SocketAddr,
}

impl Deref for ApiGateway {
    type Target = Gateway;
    fn deref(&self) -> &Gateway {
        &self.gw
    }
}

/// An API key as `keys create` made it.
#[derive(Debug, Clone)]
pub struct Key {
    /// Its public id (the owner of its links).
    pub id: String,
    /// Its secret, for `Authorization: Bearer`.
    pub secret: String,
}

/// A SQLite store URL in `dir`.
pub fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("links.db").display())
}

impl ApiGateway {
    /// `rules` on the store at `store_url` (polled every 100 ms, unknown
    /// codes cached for a minute), with the API on a free port.
    pub fn start(rules: &str, store_url: &str) -> ApiGateway {
        Self::start_with(rules, store_url, "")
    }

    /// As [`ApiGateway::start`], with more `[api]` settings (TOML lines).
    pub fn start_with(rules: &str, store_url: &str, api_settings: &str) -> ApiGateway {
        Self::start_opts(
            rules,
            store_url,
            Options {
                extra_config: api_settings,
                ..Options::default()
            },
        )
    }

    /// As [`ApiGateway::start`] with `opts`: its `extra_config` follows
    /// the `[api]` lines (more of them, or further sections).
    pub fn start_opts(rules: &str, store_url: &str, opts: Options<'_>) -> ApiGateway {
        let port = free_port();
        let extra = format!(
            "[store]\nurl = \"{store_url}\"\npoll_interval = \"100ms\"\nnegative_ttl = \"60s\"\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\n{}\n",
            opts.extra_config
        );
        let gw = Gateway::start_with(
            rules,
            Options {
                extra_config: &extra,
                ..opts
            },
        );
        let api = SocketAddr::from(([127, 0, 0, 1], port));
        let up = wait_until(Duration::from_secs(10), || {
            super::http::try_request(api, "GET", "/api/v1/openapi.json", "api", &[])
                .is_ok_and(|r| r.status == 200)
        });
        assert!(up, "the Links API did not answer; log:\n{}", gw.log_tail());
        ApiGateway { gw, api }
    }

    /// The gateway's config file.
    pub fn config(&self) -> PathBuf {
        self.gw.path("gateway.toml")
    }

    /// `gateway -c <config> <args>`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_gateway"))
            .arg("-c")
            .arg(self.config())
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    /// `gateway keys create --name <name> --hosts <hosts> <more>`: the
    /// key's id and secret.
    pub fn create_key(&self, name: &str, hosts: &str, more: &[&str]) -> Key {
        let mut args = vec!["keys", "create", "--name", name, "--hosts", hosts];
        args.extend_from_slice(more);
        let out = self.cli(&args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "keys create: {stdout}{stderr}");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 1, "keys create prints one line: {stdout:?}");
        let secret = lines[0].trim().to_string();
        // `gwk_<id>_<random>`; stderr names the id too.
        let id = secret
            .strip_prefix("gwk_")
            .and_then(|s| s.split('_').next())
            .unwrap_or_else(|| panic!("secret {secret:?} is not gwk_<id>_<...>"))
            .to_string();
        assert!(stderr.contains(&format!("key {id} created")), "{stderr}");
        Key { id, secret }
    }

    /// A request to the API with `key` (if any), a JSON body (if any) and
    /// more headers.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&Key>,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
        self.raw(method, path, key, bytes.as_deref(), headers)
    }

    /// A request with a body of exactly `body`'s bytes
    /// (`Content-Type: application/json`).
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&Key>,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Response {
        let auth = key.map(|k| format!("Bearer {}", k.secret));
        let mut all: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &auth {
            all.push(("Authorization", a.as_str()));
        }
        if body.is_some() {
            all.push(("Content-Type", "application/json"));
        }
        all.extend_from_slice(headers);
        request_with_body(self.api, method, path, "api.test", &all, body)
    }

    /// `GET` on the API.
    pub fn get_api(&self, path: &str, key: &Key) -> Response {
        self.call("GET", path, Some(key), None, &[])
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, key: &Key, body: &serde_json::Value) -> Response {
        self.call("POST", path, Some(key), Some(body), &[])
    }
}
