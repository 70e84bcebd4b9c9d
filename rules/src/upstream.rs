//! Upstream pool definitions (`[upstream.NAME]`), validated and ready for the
//! server to build load balancers from.

use serde::Serialize;
use std::time::Duration;
use toml::de::DeValue;
use toml::Spanned;

use crate::compile::Compiler;
use crate::format::UpstreamDef;

/// How a pool picks a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each backend in turn.
    RoundRobin,
    /// Consistent hashing (Ketama) of the client IP, or of `hash_header`.
    Consistent,
}

/// How health is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    /// `GET path` must answer 2xx.
    Http,
    /// A TCP connect must succeed.
    Tcp,
}

/// Active health check settings of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// HTTP or TCP.
    pub kind: HealthCheckKind,
    /// Path probed by HTTP checks.
    pub path: String,
    /// Time between two probes of one backend.
    pub interval: Duration,
    /// Time a probe may take.
    pub timeout: Duration,
    /// Consecutive failures that take a backend out.
    pub unhealthy_after: usize,
    /// Consecutive successes that put it back.
    pub healthy_after: usize,
}

/// One upstream pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upstream {
    /// Pool name (the key under `[upstream]`).
    pub name: String,
    /// Backends as `host:port`.
    pub servers: Vec<String>,
    /// Selection algorithm.
    pub balance: Balance,
    /// Header hashed by `consistent` instead of the client IP.
    pub hash_header: Option<String>,
    /// Active health checks; `None` means backends are always considered up.
    pub health_check: Option<HealthCheck>,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time to wait for each read from the upstream.
    pub read_timeout: Duration,
    /// Time to wait for each write to the upstream.
    pub write_timeout: Duration,
    /// Further attempts on another backend when connecting fails.
    pub retries: u32,
    /// Connect with TLS.
    pub tls: bool,
    /// SNI (and certificate name) for TLS; defaults to the backend host.
    pub sni: Option<String>,
}

/// Validation of `[upstream.NAME]` tables.
impl Compiler {
    pub(crate) fn upstream_table(&mut self, v: &Spanned<DeValue<'_>>) {
        let Some(table) = v.get_ref().as_table() else {
            self.err(
                v.span().start,
                "",
                "`upstream` must be a table of pools: [upstream.NAME]",
            );
            return;
        };
        for (name, def) in table.iter() {
            let name_str = name.get_ref().to_string();
            // Known even when broken, so routes to it are not reported too.
            self.upstream_names.insert(name_str.clone());
            if let Some(d) = self.parse_one::<UpstreamDef>(def, &name_str) {
                let u = self.upstream(&name_str, d);
                self.upstreams.insert(name_str, u);
            }
        }
    }

    fn duration(&mut self, d: Option<&Spanned<String>>, rule: &str, default: Duration) -> Duration {
        match d {
            None => default,
            Some(d) => match humantime::parse_duration(d.get_ref()) {
                Ok(v) if !v.is_zero() => v,
                Ok(_) => {
                    self.err(d.span().start, rule, "duration must be more than zero");
                    default
                }
                Err(e) => {
                    self.err(
                        d.span().start,
                        rule,
                        format!(
                            "`{}` is not a duration ({e}), e.g. \"500ms\" or \"2s\"",
                            d.get_ref()
                        ),
                    );
                    default
                }
            },
        }
    }

    fn count(&mut self, v: Option<&Spanned<i64>>, rule: &str, default: usize) -> usize {
        match v {
            None => default,
            Some(v) if (1..=1000).contains(v.get_ref()) => *v.get_ref() as usize,
            Some(v) => {
                self.err(
                    v.span().start,
                    rule,
                    format!("{} must be between 1 and 1000", v.get_ref()),
                );
                default
            }
        }
    }

    /// Builds a pool definition; its errors are recorded, and the pool is
    /// returned anyway so routes naming it are not also reported.
    fn upstream(&mut self, name: &str, d: UpstreamDef) -> Upstream {
        if d.servers.get_ref().is_empty() {
            self.err(
                d.servers.span().start,
                name,
                "an upstream needs at least one server",
            );
        }
        let mut servers = Vec::new();
        for s in d.servers.get_ref() {
            match s.get_ref().rsplit_once(':') {
                Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) => {
                    servers.push(s.get_ref().clone())
                }
                _ => self.err(
                    s.span().start,
                    name,
                    format!("server `{}` must be host:port", s.get_ref()),
                ),
            }
        }
        let balance = match d.balance.as_ref().map(|b| (b, b.get_ref().as_str())) {
            None | Some((_, "round_robin")) => Balance::RoundRobin,
            Some((_, "consistent")) => Balance::Consistent,
            Some((b, other)) => {
                self.err(
                    b.span().start,
                    name,
                    format!("balance must be \"round_robin\" or \"consistent\", not \"{other}\""),
                );
                Balance::RoundRobin
            }
        };
        let health_check = d.health_check.as_ref().map(|hc| {
            let h = hc.get_ref();
            let kind = match h.kind.as_ref().map(|k| (k, k.get_ref().as_str())) {
                None | Some((_, "http")) => HealthCheckKind::Http,
                Some((_, "tcp")) => HealthCheckKind::Tcp,
                Some((k, other)) => {
                    self.err(
                        k.span().start,
                        name,
                        format!("health_check type must be \"http\" or \"tcp\", not \"{other}\""),
                    );
                    HealthCheckKind::Http
                }
            };
            let path = match &h.path {
                Some(p) if p.get_ref().starts_with('/') => p.get_ref().clone(),
                Some(p) => {
                    self.err(p.span().start, name, "health_check path must start with /");
                    "/".into()
                }
                None => "/".into(),
            };
            HealthCheck {
                kind,
                path,
                interval: self.duration(h.interval.as_ref(), name, Duration::from_secs(2)),
                timeout: self.duration(h.timeout.as_ref(), name, Duration::from_secs(1)),
                unhealthy_after: self.count(h.unhealthy_after.as_ref(), name, 3),
                healthy_after: self.count(h.healthy_after.as_ref(), name, 2),
            }
        });
        let retries = match &d.retries {
            None => 0,
            Some(r) if (0..=10).contains(r.get_ref()) => *r.get_ref() as u32,
            Some(r) => {
                self.err(r.span().start, name, "retries must be between 0 and 10");
                0
            }
        };
        let u = Upstream {
            name: name.to_string(),
            servers,
            balance,
            hash_header: d.hash_header,
            health_check,
            connect_timeout: self.duration(
                d.connect_timeout.as_ref(),
                name,
                Duration::from_secs(1),
            ),
            read_timeout: self.duration(d.read_timeout.as_ref(), name, Duration::from_secs(10)),
            write_timeout: self.duration(d.write_timeout.as_ref(), name, Duration::from_secs(10)),
            retries,
            tls: d.tls,
            sni: d.sni,
        };
        u
    }
}
