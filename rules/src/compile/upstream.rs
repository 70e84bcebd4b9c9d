//! Compiling `[upstream.NAME]` pools: servers, balancing, health checks,
//! timeouts and retries.

use std::time::Duration;
use toml::de::DeValue;
use toml::Spanned;

use super::Compiler;
use crate::format::UpstreamDef;
use crate::upstream::{Balance, Ejection, HealthCheck, HealthCheckKind, Upstream};

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
        let max_inflight =
            d.max_inflight
                .as_ref()
                .and_then(|m| match u32::try_from(*m.get_ref()) {
                    Ok(v) if (1..=1_000_000).contains(&v) => Some(v),
                    _ => {
                        self.err(
                            m.span().start,
                            name,
                            "max_inflight must be between 1 and 1000000",
                        );
                        None
                    }
                });
        let ejection = self.ejection(&d, name);
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
            max_inflight,
            ejection,
        };
        u
    }

    /// `eject_after`, `eject_for` and `eject_for_max`.
    fn ejection(&mut self, d: &UpstreamDef, name: &str) -> Option<Ejection> {
        let Some(after) = &d.eject_after else {
            for set in [&d.eject_for, &d.eject_for_max].into_iter().flatten() {
                self.err(
                    set.span().start,
                    name,
                    "eject_for and eject_for_max need eject_after",
                );
            }
            return None;
        };
        let after = match u32::try_from(*after.get_ref()) {
            Ok(v) if (1..=1000).contains(&v) => v,
            _ => {
                self.err(
                    after.span().start,
                    name,
                    "eject_after must be between 1 and 1000",
                );
                return None;
            }
        };
        let base = self.duration(d.eject_for.as_ref(), name, Duration::from_secs(10));
        let max = self.duration(
            d.eject_for_max.as_ref(),
            name,
            Duration::from_secs(300).max(base),
        );
        if max < base {
            if let Some(m) = &d.eject_for_max {
                self.err(
                    m.span().start,
                    name,
                    "eject_for_max must not be shorter than eject_for",
                );
            }
        }
        Some(Ejection {
            after,
            base,
            max: max.max(base),
        })
    }
}
