//! The server configuration (`config/gateway.toml`), with every key
//! overridable by a `GATEWAY_<SECTION>_<KEY>` environment variable so a
//! container can be configured without a file.

mod acme;
mod analytics;
mod api;
mod clicks;
mod duration;
mod size;
mod store;
mod tls;

pub use acme::AcmeSection;
pub use analytics::AnalyticsSection;
pub use api::ApiSection;
pub use clicks::{subject_parts, ClicksSection, SinkKind, SubjectPart};
pub use store::StoreSection;
pub use tls::{CertificateEntry, TlsCrypto, TlsSection};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole server configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Plain HTTP listeners and process settings.
    pub server: ServerSection,
    /// Optional TLS listener.
    pub tls: Option<TlsSection>,
    /// Admin listener.
    pub admin: AdminSection,
    /// Where the rules come from.
    pub rules: RulesSection,
    /// Logging.
    pub log: LogSection,
    /// A separate metrics listener.
    pub metrics: MetricsSection,
    /// Click events.
    pub clicks: ClicksSection,
    /// Links kept in a database; none without the section.
    pub store: Option<StoreSection>,
    /// The Links API; none without the section.
    pub api: Option<ApiSection>,
    /// Per-link click counters in the store.
    pub analytics: AnalyticsSection,
    /// Automatic certificates for custom link domains; none without the
    /// section.
    pub acme: Option<AcmeSection>,
    /// The file this configuration was read from, if any.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Serve `GET /metrics` (no token) on this address too; it is always
    /// served on the admin listener.
    pub listen: Option<String>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Addresses of the plain HTTP listeners.
    pub listen: Vec<String>,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// Time in-flight requests get to finish on SIGTERM/SIGINT.
    #[serde(with = "duration")]
    pub grace_period: Duration,
    /// Unix socket used to hand listeners to a new process on upgrade.
    pub upgrade_sock: String,
    /// PID file.
    pub pid_file: String,
    /// Load balancers and CDNs whose `X-Forwarded-For` names the client
    /// (CIDRs or addresses); empty: the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    /// Answer plain HTTP/1.1 `GET`/`HEAD` requests that the rules answer
    /// (redirects, fixed responses, 404/410) straight from the connection
    /// instead of through Pingora's proxy pipeline (see `front`).
    pub fast_path: bool,
    /// Time a client has to send a request head (nginx's
    /// `client_header_timeout`).
    #[serde(with = "duration")]
    pub header_timeout: Duration,
    /// Time a kept-alive connection may wait for its next request
    /// (nginx's `keepalive_timeout`).
    #[serde(with = "duration")]
    pub keepalive_timeout: Duration,
    /// Largest request head, request line and headers together (`431`).
    pub max_head_bytes: usize,
    /// Longest line of a request head (`414` for the request line, `431`
    /// for a header).
    pub max_line_bytes: usize,
    /// Longest wait between two reads of a proxied request's body (nginx's
    /// `client_body_timeout`).
    #[serde(with = "duration")]
    pub body_timeout: Duration,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: vec!["0.0.0.0:8080".into()],
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            grace_period: Duration::from_secs(5),
            upgrade_sock: "/tmp/gateway_upgrade.sock".into(),
            pid_file: "/tmp/gateway.pid".into(),
            trusted_proxies: Vec::new(),
            fast_path: true,
            header_timeout: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(60),
            max_head_bytes: 64 << 10,
            max_line_bytes: 8 << 10,
            body_timeout: Duration::from_secs(60),
        }
    }
}

/// `[admin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Admin listener address; loopback by default.
    pub listen: String,
    /// Bearer token for the admin API (also `GATEWAY_ADMIN_TOKEN`).
    pub token: Option<String>,
    /// Without `token`, make one at each start and print it in the log
    /// (the bundled config: the console works with nothing to set);
    /// otherwise, without `token`, the admin API and console are off.
    pub generate_token: bool,
    /// Largest request body the admin API accepts (`PUT /admin/rules`).
    pub max_body_bytes: usize,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            listen: "127.0.0.1:9901".into(),
            token: None,
            generate_token: false,
            max_body_bytes: 64 << 20,
        }
    }
}

/// `[rules]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesSection {
    /// The rules file. With `url`, it is also where fetched rules are kept,
    /// so a restart starts from the last good version.
    pub path: PathBuf,
    /// Reload when the rules file, or a CSV or body file it names, changes.
    pub watch: bool,
    /// Quiet time after the last file event before reloading.
    #[serde(with = "duration")]
    pub debounce: Duration,
    /// Remote source polled for new rules (`http://` or `https://`).
    pub url: Option<String>,
    /// How often `url` is polled.
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// Add `X-Rules-Version` to every response (for debugging).
    pub version_header: bool,
    /// Directories besides the rules file's own that `body_file` and
    /// `[[links]] file` may name (relative to the rules file's directory).
    pub allow_dirs: Vec<PathBuf>,
    /// Longest a reload may take before it is abandoned.
    #[serde(with = "duration")]
    pub reload_timeout: Duration,
    /// Share (0 to 1) of the live rules and links a reload may remove
    /// unless forced.
    pub max_drop: f64,
    /// Let a rule set with no rules and no links go live.
    pub allow_empty: bool,
}

impl Config {
    /// How the files the rules name are read: never this configuration or
    /// the TLS keys and certificates, which often sit next to them.
    pub fn load_options(&self) -> rules::LoadOptions {
        let deny_files = self
            .source
            .iter()
            .cloned()
            .chain(
                self.tls
                    .iter()
                    .flat_map(|t| t.certificates())
                    .flat_map(|c| [c.key, c.cert]),
            )
            .chain(
                self.tls
                    .iter()
                    .flat_map(|t| t.session_ticket_keys.iter().cloned()),
            )
            .collect();
        rules::LoadOptions {
            allow_dirs: self.rules.allow_dirs.clone(),
            deny_files,
            ..rules::LoadOptions::default()
        }
    }
}

impl Default for RulesSection {
    fn default() -> Self {
        RulesSection {
            path: "config/rules.toml".into(),
            watch: true,
            debounce: Duration::from_millis(250),
            url: None,
            poll_interval: Duration::from_secs(30),
            version_header: false,
            allow_dirs: Vec::new(),
            reload_timeout: Duration::from_secs(60),
            max_drop: 0.5,
            allow_empty: false,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `error`, `warn`, `info`, `debug` or `trace`, or a tracing filter.
    pub level: String,
    /// `json` or `text`.
    pub format: LogFormat,
    /// One line per request (target `access`).
    pub access: bool,
    /// Fraction of requests that get an access-log line.
    pub sample: f64,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".into(),
            format: LogFormat::Json,
            access: false,
            sample: 1.0,
        }
    }
}

const SECTIONS: [&str; 11] = [
    "server",
    "tls",
    "admin",
    "rules",
    "log",
    "metrics",
    "clicks",
    "store",
    "api",
    "analytics",
    "acme",
];

/// Serves the console's files from this directory instead of the binary
/// (for working on the console); a `GATEWAY_` variable that is not
/// configuration.
pub const CONSOLE_DIR_VAR: &str = "GATEWAY_CONSOLE_DIR";

impl Config {
    /// Reads `path` (when it exists or was asked for explicitly) and applies
    /// `GATEWAY_*` overrides from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        let default_path = Path::new("config/gateway.toml");
        let source = match path {
            Some(p) => Some(p.to_path_buf()),
            None => default_path.exists().then(|| default_path.to_path_buf()),
        };
        let mut table: toml::Table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read config {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("invalid config {}", p.display()))?
            }
            None if default_path.exists() => {
                let text = std::fs::read_to_string(default_path)?;
                toml::from_str(&text)
                    .with_context(|| format!("invalid config {}", default_path.display()))?
            }
            None => toml::Table::new(),
        };
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("GATEWAY_") else {
                continue;
            };
            if key == CONSOLE_DIR_VAR {
                continue;
            }
            let rest = rest.to_ascii_lowercase();
            let Some((section, field)) = rest.split_once('_') else {
                bail!("environment variable {key}: expected GATEWAY_<SECTION>_<KEY>");
            };
            if !SECTIONS.contains(&section) {
                bail!(
                    "environment variable {key}: unknown section `{section}` (sections: {})",
                    SECTIONS.join(", ")
                );
            }
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(t) = entry else {
                bail!("config: `{section}` must be a table");
            };
            t.insert(field.to_string(), env_value(section, field, &value));
        }
        let mut config: Config = table.try_into().context("invalid configuration")?;
        config.source = source;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.server.listen.is_empty() && self.tls.is_none() {
            bail!("config: server.listen is empty and no [tls] listener is set: nothing to serve");
        }
        self.clicks.validate()?;
        self.analytics
            .validate(self.clicks.enabled, self.store.is_some())?;
        if let Some(api) = &self.api {
            api.validate(self.store.is_some())?;
        }
        if let Some(store) = &self.store {
            store.validate()?;
        }
        if let Some(acme) = &self.acme {
            acme.validate(
                self.store.is_some(),
                self.tls.is_some(),
                !self.server.listen.is_empty(),
            )?;
        }
        crate::serve::TrustedProxies::parse(&self.server.trusted_proxies)?;
        let rules_dir = self
            .rules
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        for d in &self.rules.allow_dirs {
            if !rules_dir.join(d).is_dir() {
                bail!(
                    "config: rules.allow_dirs: {} is not a directory (relative entries are taken from {})",
                    d.display(),
                    rules_dir.display()
                );
            }
        }
        if !(0.0..=1.0).contains(&self.rules.max_drop) {
            bail!("config: rules.max_drop must be between 0.0 and 1.0");
        }
        if !(0.0..=1.0).contains(&self.log.sample) {
            bail!("config: log.sample must be between 0.0 and 1.0");
        }
        if self.server.max_line_bytes < 256
            || self.server.max_head_bytes < self.server.max_line_bytes
        {
            bail!("config: server.max_line_bytes must be at least 256 and at most server.max_head_bytes");
        }
        if self.server.threads == 0 {
            bail!("config: server.threads must be at least 1");
        }
        for addr in self
            .server
            .listen
            .iter()
            .chain(std::iter::once(&self.admin.listen))
        {
            addr.parse::<std::net::SocketAddr>().with_context(|| {
                format!("config: `{addr}` is not an address like 127.0.0.1:8080")
            })?;
        }
        if let Some(url) = &self.rules.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("config: rules.url must start with http:// or https://");
            }
        }
        if let Some(tls) = &self.tls {
            if tls.cert.is_some() != tls.key.is_some() {
                bail!("config: tls.cert and tls.key go together");
            }
            if tls.certificates().is_empty() {
                bail!("config: [tls] needs a certificate: cert and key, or [[tls.certificate]]");
            }
            if !tls.session_tickets && !tls.session_ticket_keys.is_empty() {
                bail!("config: tls.session_ticket_keys needs tls.session_tickets = true");
            }
        }
        if let Some(t) = &self.admin.token {
            if t.len() < 16 {
                bail!("config: admin.token must be at least 16 characters");
            }
        }
        Ok(())
    }
}

/// Environment values are typed by the key they set: lists are
/// comma-separated, numbers are numbers, everything else is a string.
fn env_value(section: &str, field: &str, value: &str) -> toml::Value {
    match (section, field) {
        ("server", "listen")
        | ("server", "trusted_proxies")
        | ("rules", "allow_dirs")
        | ("tls", "session_ticket_keys") => toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
        ("server", "threads")
        | ("server", "max_head_bytes")
        | ("server", "max_line_bytes")
        | ("admin", "max_body_bytes")
        | ("clicks", "max_file_bytes")
        | ("clicks", "queue_capacity")
        | ("clicks", "dedup_capacity")
        | ("clicks", "batch_size")
        | ("clicks", "max_in_flight")
        | ("store", "max_connections")
        | ("store", "cache_capacity")
        | ("api", "max_bulk")
        | ("tls", "session_cache")
        | ("api", "code_length")
        | ("api", "threads")
        | ("api", "nice")
        | ("analytics", "queue_capacity")
        | ("analytics", "max_pending_rows") => value
            .parse::<i64>()
            .map(toml::Value::Integer)
            .unwrap_or_else(|_| toml::Value::String(value.to_string())),
        ("log", "sample") | ("rules", "max_drop") => value
            .parse::<f64>()
            .map(toml::Value::Float)
            .unwrap_or_else(|_| toml::Value::String(value.to_string())),
        ("server", "fast_path")
        | ("rules", "watch")
        | ("rules", "version_header")
        | ("rules", "allow_empty")
        | ("log", "access")
        | ("admin", "generate_token")
        | ("tls", "session_tickets")
        | ("clicks", "enabled")
        | ("clicks", "anonymize_ip")
        | ("analytics", "enabled") => match value {
            "true" | "1" => toml::Value::Boolean(true),
            "false" | "0" => toml::Value::Boolean(false),
            _ => toml::Value::String(value.to_string()),
        },
        _ => toml::Value::String(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.toml");
        std::fs::write(
            &p,
            "[server]\nlisten = [\"127.0.0.1:1\"]\nthreads = 2\ngrace_period = \"2s\"\n[rules]\npath = \"r.toml\"\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&p),
            env(&[
                ("GATEWAY_SERVER_LISTEN", "127.0.0.1:2, 127.0.0.1:3"),
                ("GATEWAY_ADMIN_TOKEN", "0123456789abcdef0123"),
                ("GATEWAY_LOG_FORMAT", "text"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.listen, vec!["127.0.0.1:2", "127.0.0.1:3"]);
        assert_eq!(c.server.threads, 2);
        assert_eq!(c.server.grace_period, Duration::from_secs(2));
        assert_eq!(c.rules.path, PathBuf::from("r.toml"));
        assert_eq!(c.admin.token.as_deref(), Some("0123456789abcdef0123"));
        assert_eq!(c.admin.listen, "127.0.0.1:9901");
        assert_eq!(c.log.format, LogFormat::Text);
    }

    #[test]
    fn bad_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.toml");
        std::fs::write(&p, "[server]\nlisen = []\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&p), env(&[])).unwrap_err());
        assert!(e.contains("lisen"), "{e}");
        let e = format!(
            "{:#}",
            Config::load(Some(&p), env(&[("GATEWAY_NOPE_X", "1")])).unwrap_err()
        );
        assert!(e.contains("unknown section"), "{e}");
        std::fs::write(&p, "").unwrap();
        // Not configuration, so not an unknown section either.
        Config::load(Some(&p), env(&[(CONSOLE_DIR_VAR, "/tmp/dist")])).unwrap();
        let e = format!(
            "{:#}",
            Config::load(Some(&p), env(&[("GATEWAY_ADMIN_TOKEN", "short")])).unwrap_err()
        );
        assert!(e.contains("16"), "{e}");
    }
}
