//! Operator explanations: which rule matched a request, why, and what the
//! answer is.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

use crate::decision::{Decision, Target};
use crate::matcher::{HostLevel, MatchKind, Target as Slot};
use crate::request::Request;
use crate::ruleset::RuleSet;

/// Everything an operator needs to understand one decision.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// `redirect`, `respond`, `proxy`, `gone`, `not_found` or `bad_request`.
    pub action: &'static str,
    /// Status the gateway answers with (absent for `proxy`).
    pub status: Option<u16>,
    /// `Location` of a redirect.
    pub location: Option<String>,
    /// Rule or link-set id.
    pub rule: Option<String>,
    /// Kind of the rule: `redirect`, `links`, `route` or `respond`.
    pub rule_kind: Option<&'static str>,
    /// Bulk-link code.
    pub code: Option<String>,
    /// Upstream pool of a proxied request.
    pub upstream: Option<String>,
    /// Path and query sent upstream.
    pub upstream_path: Option<String>,
    /// Host after normalization.
    pub host: Option<String>,
    /// `exact`, `wildcard *.example.com` or `any`.
    pub host_level: Option<String>,
    /// `path`, `pattern /p/{sku}` or `prefix /v1/`.
    pub matched_by: Option<String>,
    /// Captured values (raw, as in the request).
    pub captures: BTreeMap<String, String>,
    /// Device class, when a redirect looked at it.
    pub device: Option<&'static str>,
    /// Known bot.
    pub bot: Option<bool>,
    /// Country code the request carried.
    pub country: Option<String>,
    /// Split variant index.
    pub variant: Option<usize>,
    /// Which destination was used: `default`, `device`, `country`, `split`, `expired`.
    pub target: Option<Target>,
    /// `Cache-Control` of a redirect.
    pub cache_control: Option<String>,
    /// Why a request is a bad request.
    pub reason: Option<&'static str>,
}

impl RuleSet {
    /// Explains the decision for `req`, for `gateway explain` and the admin API.
    pub fn explain(&self, req: &Request<'_>) -> Explanation {
        let trace = self.trace(req, true);
        let mut e = Explanation {
            action: trace.decision.action(),
            status: trace.decision.status(),
            location: None,
            rule: trace.decision.rule().map(str::to_string),
            rule_kind: None,
            code: None,
            upstream: None,
            upstream_path: None,
            host: None,
            host_level: None,
            matched_by: None,
            captures: trace.captures.into_iter().collect(),
            device: trace.device.map(|c| c.device.as_str()),
            bot: trace.device.map(|c| c.bot),
            country: req.country.map(str::to_string),
            variant: None,
            target: None,
            cache_control: None,
            reason: None,
        };
        match &trace.decision {
            Decision::Redirect(r) => {
                e.location = Some(String::from_utf8_lossy(r.location.as_bytes()).into_owned());
                if let Some((_, path)) = self.normalized(req.host, req.path) {
                    e.code = r.code(&path).map(str::to_string);
                }
                e.variant = r.variant;
                e.target = Some(r.target);
                e.cache_control = r.cache_control.to_str().ok().map(str::to_string);
            }
            Decision::Proxy(p) => {
                e.upstream = Some(p.upstream.to_string());
                e.upstream_path = Some(p.path_and_query.to_string());
            }
            Decision::BadRequest { reason } => e.reason = Some(reason),
            _ => {}
        }
        if let Ok(n) = self.normalize(req) {
            e.host = Some(n.host.to_string());
            if let Some(hit) = self.hosts.lookup(&n.host, &n.full[..n.match_len], &n.full) {
                e.host_level = Some(match hit.level {
                    HostLevel::Exact => "exact".to_string(),
                    HostLevel::Wildcard(s) => format!("wildcard *{s}"),
                    HostLevel::Any => "any".to_string(),
                });
                e.matched_by = Some(match hit.kind {
                    MatchKind::Exact => "path".to_string(),
                    MatchKind::Pattern => format!("pattern {}", hit.matched),
                    MatchKind::Prefix => format!("prefix {}", hit.matched),
                });
                e.rule_kind = Some(match hit.target {
                    Slot::Redirect(_) => "redirect",
                    Slot::Link { .. } => "links",
                    Slot::Route(_) => "route",
                    Slot::Respond(_) => "respond",
                });
            }
        }
        e
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.rule, self.rule_kind) {
            (Some(rule), Some(kind)) => writeln!(f, "rule:        {rule} ({kind})")?,
            _ => writeln!(f, "rule:        none matched")?,
        }
        if let Some(h) = &self.host {
            writeln!(
                f,
                "host:        {h} ({})",
                self.host_level
                    .as_deref()
                    .unwrap_or("no rule for this host")
            )?;
        }
        if let Some(m) = &self.matched_by {
            writeln!(f, "matched by:  {m}")?;
        }
        if let Some(c) = &self.code {
            writeln!(f, "code:        {c}")?;
        }
        for (k, v) in &self.captures {
            writeln!(f, "capture:     {k} = {v}")?;
        }
        if let Some(d) = self.device {
            let bot = if self.bot == Some(true) {
                " (bot: default destination)"
            } else {
                ""
            };
            writeln!(f, "device:      {d}{bot}")?;
        }
        if let Some(c) = &self.country {
            writeln!(f, "country:     {c}")?;
        }
        if let Some(t) = self.target {
            let t = serde_json::to_value(t)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            match self.variant {
                Some(v) => writeln!(f, "destination: {t} (variant {v})")?,
                None => writeln!(f, "destination: {t}")?,
            }
        }
        write!(f, "decision:    {}", self.action)?;
        if let Some(s) = self.status {
            write!(f, " {s}")?;
        }
        if let Some(l) = &self.location {
            write!(f, " -> {l}")?;
        }
        if let (Some(u), Some(p)) = (&self.upstream, &self.upstream_path) {
            write!(f, " -> upstream {u} {p}")?;
        }
        if let Some(r) = self.reason {
            write!(f, " ({r})")?;
        }
        writeln!(f)
    }
}
