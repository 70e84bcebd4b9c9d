//! Operator explanations: which rule matched a request, why, and what the
//! answer is.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

use crate::decision::{Decision, Target};
use crate::matcher::{Hit, HostLevel, MatchKind};
use crate::request::{ClickIdSource, Request};
use crate::rule_ref::RuleRef;
use crate::ruleset::RuleSet;
use crate::stored::{LinkSource, NoStore, StoreStep};

/// How an explained `Location` shows the click id the live answer appends
/// (`btn_ref=<click id>`): each live request gets a fresh one.
pub const CLICK_ID_PLACEHOLDER: &str = "<click id>";

/// Stands in for the click id while deciding: only letters, so it is
/// appended unescaped exactly where a real id goes, then swapped for
/// [`CLICK_ID_PLACEHOLDER`], which the query encoding would otherwise escape.
const CLICK_ID_STAND_IN: &str = "gatewayexplainclickidstandin";

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
    /// When no rule matched: the host level that has rules for this host
    /// (so only the path matched nothing), absent when no rule is for it.
    pub host_rules: Option<String>,
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
    /// When the matched rule or link expires (RFC 3339).
    pub expires_at: Option<String>,
    /// Whether it has expired at the time of the request.
    pub expired: Option<bool>,
    /// Why there is no ordinary answer: a bad request's reason, which of
    /// host or path matched nothing, or when the rule expired and what it
    /// answers instead.
    pub reason: Option<String>,
    /// On a `[[domain]]` with a store: what the store said for the code.
    pub store: Option<StoreStep>,
}

fn level_text(level: &HostLevel<'_>) -> String {
    match level {
        HostLevel::Exact => "exact".to_string(),
        HostLevel::Wildcard(s) => format!("wildcard *{s}"),
        HostLevel::Any => "any".to_string(),
    }
}

/// Unix seconds as RFC 3339 (UTC).
fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(
        || format!("{t} (Unix seconds)"),
        |d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

impl RuleSet {
    /// Explains the decision for `req`, for `gateway explain` and the admin API.
    ///
    /// When `[settings] click_id_param` is set and `req` carries no click
    /// id, the `Location` shows `<param>=<click id>` where the live answer
    /// appends its fresh id.
    pub fn explain(&self, req: &Request<'_>) -> Explanation {
        self.explain_with(req, &NoStore)
    }

    /// [`RuleSet::explain`], asking `store` for stored links as
    /// [`RuleSet::decide_with`] does.
    pub fn explain_with<S: LinkSource + ?Sized>(
        &self,
        req: &Request<'_>,
        store: &S,
    ) -> Explanation {
        let stand_in = self.settings.click_id_param.is_some() && req.click_id.is_none();
        let with_stand_in;
        let req = if stand_in {
            with_stand_in = Request {
                click_id: ClickIdSource::Given(CLICK_ID_STAND_IN),
                ..*req
            };
            &with_stand_in
        } else {
            req
        };
        let trace = self.trace(req, store, true);
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
            host_rules: None,
            matched_by: None,
            captures: trace.captures.into_iter().collect(),
            device: trace.device.map(|c| c.device.as_str()),
            bot: trace.device.map(|c| c.bot),
            country: req.country.map(str::to_string),
            variant: None,
            target: None,
            cache_control: None,
            expires_at: None,
            expired: None,
            reason: None,
            store: trace.store.clone(),
        };
        match &trace.decision {
            Decision::Redirect(r) => {
                let location = String::from_utf8_lossy(r.location.as_bytes());
                e.location = Some(if stand_in {
                    location.replace(CLICK_ID_STAND_IN, CLICK_ID_PLACEHOLDER)
                } else {
                    location.into_owned()
                });
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
            Decision::BadRequest { reason } => e.reason = Some(reason.to_string()),
            _ => {}
        }
        if let Ok(n) = self.normalize(req) {
            e.host = Some(n.host.to_string());
            if let Some(step) = &trace.store {
                match step {
                    StoreStep::Found { code, .. } => {
                        e.rule_kind = Some("store");
                        e.matched_by = Some("stored link".into());
                        e.host_level = Some("exact".into());
                        e.code = Some(code.clone());
                        return e;
                    }
                    StoreStep::Unknown { .. } => {
                        e.reason = Some("the store was not asked for this code".into());
                        return e;
                    }
                    StoreStep::Absent { .. } => {}
                }
            }
            if let Some(hit) = self.hosts.lookup(&n.host, &n.full[..n.match_len], &n.full) {
                e.host_level = Some(level_text(&hit.level));
                if let Some(at) = self.expiry(&hit) {
                    let expired = req.now >= at;
                    e.expires_at = Some(rfc3339(at));
                    e.expired = Some(expired);
                    if expired {
                        let answer = match trace.decision {
                            Decision::Gone { .. } => "answers 410 Gone, as it has no expired_to",
                            _ => "answers its expired_to destination",
                        };
                        e.reason = Some(format!("expired at {}; {answer}", rfc3339(at)));
                    }
                }
                e.matched_by = Some(match hit.kind {
                    MatchKind::Exact => "path".to_string(),
                    MatchKind::Pattern => format!("pattern {}", hit.matched),
                    MatchKind::Prefix => format!("prefix {}", hit.matched),
                });
                e.rule_kind = Some(match hit.rule {
                    RuleRef::Redirect(_) => "redirect",
                    RuleRef::Link { .. } => "links",
                    RuleRef::Route(_) => "route",
                    RuleRef::Respond(_) => "respond",
                });
            } else {
                let level = self.hosts.level_for(&n.host);
                e.reason = Some(match (&trace.decision, &level) {
                    (Decision::Redirect(_), _) => {
                        e.rule_kind = Some("domain");
                        "no rule or link has this code: the domain's not_found_to answers".into()
                    }
                    (_, Some(_)) => "no rule matches this path".into(),
                    (_, None) => "no rule for this host".into(),
                });
                e.host_rules = level.as_ref().map(level_text);
            }
        }
        e
    }

    /// When the rule or link behind `hit` expires, if it does.
    fn expiry(&self, hit: &Hit<'_, '_>) -> Option<i64> {
        match hit.rule {
            RuleRef::Redirect(i) => self.redirects.get(i as usize)?.expires_at,
            RuleRef::Link { set, link, .. } => {
                self.link_sets
                    .get(set as usize)?
                    .extras
                    .get(link.extra as usize)?
                    .expires_at
            }
            RuleRef::Route(_) | RuleRef::Respond(_) => None,
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.rule, self.rule_kind) {
            (Some(rule), Some(kind)) => writeln!(f, "rule:        {rule} ({kind})")?,
            _ => writeln!(f, "rule:        none matched")?,
        }
        if let Some(h) = &self.host {
            match (&self.host_level, &self.host_rules) {
                (Some(level), _) => writeln!(f, "host:        {h} ({level})")?,
                (None, Some(level)) => {
                    let whose = match level.as_str() {
                        "exact" => "this host has rules".to_string(),
                        "any" => "any-host rules apply".to_string(),
                        other => format!("{other} rules apply"),
                    };
                    writeln!(f, "host:        {h} ({whose}, but none matches this path)")?
                }
                (None, None) => writeln!(f, "host:        {h} (no rule for this host)")?,
            }
        }
        if let Some(m) = &self.matched_by {
            writeln!(f, "matched by:  {m}")?;
        }
        if let Some(c) = &self.code {
            writeln!(f, "code:        {c}")?;
        }
        match &self.store {
            Some(StoreStep::Found { id, version, .. }) => {
                writeln!(f, "store:       link {id} (version {version})")?
            }
            Some(StoreStep::Absent { code }) => writeln!(f, "store:       no link `{code}`")?,
            Some(StoreStep::Unknown { code }) => {
                writeln!(f, "store:       `{code}` not looked up")?
            }
            None => {}
        }
        if let Some(at) = &self.expires_at {
            let state = if self.expired == Some(true) {
                "expired"
            } else {
                "not yet expired"
            };
            writeln!(f, "expires:     {at} ({state})")?;
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
        if let Some(r) = &self.reason {
            write!(f, " ({r})")?;
        }
        writeln!(f)
    }
}
