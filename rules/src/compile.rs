//! Turning a rules document into a [`RuleSet`]: parsing, validation with
//! precise locations, and building the matcher.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::device::Classifier;
use crate::error::{RuleError, SourceMap};
use crate::format::*;
use crate::host::HostSpec;
use crate::links;
use crate::matcher::{HostTable, PatternError, Target};
use crate::query::QueryMode;
use crate::ruleset::*;
use crate::selftest;
use crate::template::Template;
use crate::upstream::{Balance, HealthCheck, HealthCheckKind, Upstream};
use crate::{encode, timestamp, LoadOptions};

const REDIRECT_STATUSES: [i64; 5] = [301, 302, 303, 307, 308];
const DEFAULT_CACHE_CONTROL: &str = "private, max-age=90";

/// A rule that takes a place in the matcher.
enum Placed {
    Redirect(Box<RedirectDef>),
    Respond(RespondDef),
    Route(RouteDef),
    Links(LinksDef),
}

/// Where a placed rule came from, for conflict messages.
#[derive(Clone)]
pub(crate) struct Origin {
    pub id: String,
    pub place: String,
}

/// Accumulates everything while a document is compiled.
pub(crate) struct Compiler {
    pub map: SourceMap,
    pub base_dir: PathBuf,
    pub errors: Vec<RuleError>,
    /// Offsets of ids that were empty or duplicates.
    rejected_ids: std::collections::HashSet<usize>,
    pub schemes: Vec<String>,
    pub settings: Settings,
    pub hosts: HostTable,
    pub redirects: Vec<RedirectRule>,
    pub routes: Vec<RouteRule>,
    pub responds: Vec<RespondRule>,
    pub link_sets: Vec<LinkSet>,
    pub upstreams: BTreeMap<String, Upstream>,
    /// Names under `[upstream]`, including pools with errors.
    pub upstream_names: std::collections::BTreeSet<String>,
    /// Origins of rules, indexed like the `Target` tables.
    pub redirect_origins: Vec<Origin>,
    pub route_origins: Vec<Origin>,
    pub respond_origins: Vec<Origin>,
    pub files: Vec<PathBuf>,
    pub hasher: xxhash_rust::xxh3::Xxh3,
}

/// Compiles `src`, the text of the rules file at `path`.
pub(crate) fn compile(
    src: &str,
    path: &Path,
    opts: &LoadOptions,
) -> Result<RuleSet, Vec<RuleError>> {
    let map = SourceMap::new(path.display().to_string(), src);
    let doc = DeTable::parse(src).map_err(|e| vec![toml_error(&map, &e, "")])?;
    let mut c = Compiler {
        map,
        base_dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        errors: Vec::new(),
        rejected_ids: Default::default(),
        schemes: vec!["http".into(), "https".into()],
        settings: Settings {
            app_schemes: Vec::new(),
            country_header: None,
            click_id_param: None,
            trailing_slash: TrailingSlash::Ignore,
            default_cache_control: DEFAULT_CACHE_CONTROL.into(),
        },
        hosts: HostTable::default(),
        redirects: Vec::new(),
        routes: Vec::new(),
        responds: Vec::new(),
        link_sets: Vec::new(),
        upstreams: BTreeMap::new(),
        upstream_names: Default::default(),
        redirect_origins: Vec::new(),
        route_origins: Vec::new(),
        respond_origins: Vec::new(),
        files: vec![path.to_path_buf()],
        hasher: xxhash_rust::xxh3::Xxh3::new(),
    };
    c.hasher.update(src.as_bytes());
    let root = doc.get_ref();
    for (key, _) in root.iter() {
        if !matches!(
            &**key.get_ref(),
            "settings" | "redirect" | "links" | "route" | "respond" | "upstream" | "test"
        ) {
            let e = c.map.error(
                key.span().start,
                "",
                format!(
                    "unknown table `{}` (expected settings, redirect, links, route, respond, upstream or test)",
                    key.get_ref()
                ),
            );
            c.errors.push(e);
        }
    }
    c.claim_ids(root);
    // Order matters: schemes before destinations, pools before routes.
    if let Some(v) = root.get("settings") {
        if let Some(s) = c.parse_one::<SettingsDef>(v, "") {
            c.settings(s);
        }
    }
    if let Some(v) = root.get("upstream") {
        c.upstream_table(v);
    }
    // Placed rules are compiled in file order whatever their kind, so a
    // conflict is reported at the later rule and names the earlier one.
    let mut placed: Vec<(usize, Placed)> = Vec::new();
    let redirects = c.array::<RedirectDef>(root.get("redirect"), "redirect");
    placed.extend(
        redirects
            .into_iter()
            .map(|(at, d)| (at, Placed::Redirect(Box::new(d)))),
    );
    let responds = c.array::<RespondDef>(root.get("respond"), "respond");
    placed.extend(responds.into_iter().map(|(at, d)| (at, Placed::Respond(d))));
    let routes = c.array::<RouteDef>(root.get("route"), "route");
    placed.extend(routes.into_iter().map(|(at, d)| (at, Placed::Route(d))));
    let links = c.array::<LinksDef>(root.get("links"), "links");
    placed.extend(links.into_iter().map(|(at, d)| (at, Placed::Links(d))));
    placed.sort_by_key(|(at, _)| *at);
    for (at, item) in placed {
        match item {
            Placed::Redirect(d) => c.redirect(at, *d),
            Placed::Respond(d) => c.respond(at, d),
            Placed::Route(d) => c.route(at, d),
            Placed::Links(d) => {
                if c.claim_id(&d.id) {
                    links::load(&mut c, at, d);
                }
            }
        }
    }
    let tests: Vec<(usize, TestDef)> = c.array::<TestDef>(root.get("test"), "test");
    if !c.errors.is_empty() {
        // Kinds are compiled in dependency order; report in reading order,
        // the rules file first, then CSV files.
        let main = c.map.file().to_string();
        c.errors.sort_by(|a, b| {
            (a.file != main, &a.file, a.line, a.column).cmp(&(
                b.file != main,
                &b.file,
                b.line,
                b.column,
            ))
        });
        return Err(c.errors);
    }
    let classifier = Classifier::new().map_err(|m| vec![c.map.error(0, "", m)])?;
    let set = RuleSet {
        settings: c.settings,
        classifier,
        hosts: c.hosts,
        redirects: c.redirects,
        routes: c.routes,
        responds: c.responds,
        link_sets: c.link_sets,
        upstreams: c.upstreams,
        files: c.files,
        hash: c.hasher.digest(),
        tests: tests.len(),
    };
    let failures = selftest::run(&set, &c.map, &tests, opts);
    if failures.is_empty() {
        Ok(set)
    } else {
        Err(failures)
    }
}

fn toml_error(map: &SourceMap, e: &toml::de::Error, rule: &str) -> RuleError {
    let offset = e.span().map_or(0, |s| s.start);
    map.error(offset, rule, e.message().trim().to_string())
}

impl Compiler {
    /// Deserializes one table, recording an error located in it on failure.
    fn parse_one<T: for<'de> Deserialize<'de>>(
        &mut self,
        v: &Spanned<DeValue<'_>>,
        rule: &str,
    ) -> Option<T> {
        match T::deserialize(ValueDeserializer::from(v.clone())) {
            Ok(t) => Some(t),
            Err(e) => {
                let mut err = toml_error(&self.map, &e, rule);
                if e.span().is_none() {
                    let (line, column) = self.map.position(v.span().start);
                    err.line = line;
                    err.column = column;
                }
                self.errors.push(err);
                None
            }
        }
    }

    /// Deserializes every table of an array of tables (`[[redirect]]`); a
    /// broken one is reported and skipped so the others are still checked.
    /// Returns each with the offset of its start.
    fn array<T: for<'de> Deserialize<'de>>(
        &mut self,
        v: Option<&Spanned<DeValue<'_>>>,
        kind: &str,
    ) -> Vec<(usize, T)> {
        let Some(v) = v else { return Vec::new() };
        let Some(items) = v.get_ref().as_array() else {
            let e = self.map.error(
                v.span().start,
                "",
                format!("`{kind}` must be an array of tables: write [[{kind}]]"),
            );
            self.errors.push(e);
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            let id = item
                .get_ref()
                .get("id")
                .and_then(|i| i.get_ref().as_str())
                .unwrap_or("")
                .to_string();
            if let Some(def) = self.parse_one::<T>(item, &id) {
                out.push((item.span().start, def));
            }
        }
        out
    }

    pub(crate) fn err(&mut self, offset: usize, rule: &str, message: impl Into<String>) {
        let e = self.map.error(offset, rule, message);
        self.errors.push(e);
    }

    /// Checks every rule id in file order, whatever its kind, so a duplicate
    /// is reported at the later definition and names the first. Ids are
    /// unique across kinds: they label metrics.
    fn claim_ids(&mut self, root: &DeTable<'_>) {
        let mut ids: Vec<(usize, String)> = Vec::new();
        for kind in ["redirect", "respond", "route", "links"] {
            let Some(items) = root.get(kind).and_then(|v| v.get_ref().as_array()) else {
                continue;
            };
            for item in items.iter() {
                if let Some(id) = item.get_ref().get("id") {
                    if let Some(s) = id.get_ref().as_str() {
                        ids.push((id.span().start, s.to_string()));
                    }
                }
            }
        }
        ids.sort_by_key(|(at, _)| *at);
        let mut first: HashMap<String, usize> = HashMap::new();
        for (at, id) in ids {
            if id.is_empty() {
                self.err(at, "", "id must not be empty");
                self.rejected_ids.insert(at);
            } else if let Some(&f) = first.get(&id) {
                let msg = format!(
                    "duplicate id `{id}` (first defined at {})",
                    self.map.place(f)
                );
                self.err(at, &id, msg);
                self.rejected_ids.insert(at);
            } else {
                first.insert(id, at);
            }
        }
    }

    /// Whether a rule's id survived [`Compiler::claim_ids`].
    pub(crate) fn claim_id(&self, id: &Spanned<String>) -> bool {
        !self.rejected_ids.contains(&id.span().start)
    }

    fn settings(&mut self, s: SettingsDef) {
        for scheme in &s.app_schemes {
            let v = scheme.get_ref().to_ascii_lowercase();
            let ok = v.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            if !ok || matches!(v.as_str(), "javascript" | "data" | "vbscript" | "file") {
                self.err(
                    scheme.span().start,
                    "",
                    format!("`{v}` cannot be an app scheme"),
                );
                continue;
            }
            self.schemes.push(v.clone());
            self.settings.app_schemes.push(v);
        }
        self.settings.country_header = s.country_header;
        if let Some(p) = s.click_id_param {
            if p.get_ref().is_empty()
                || !encode::all_kept(p.get_ref(), &encode::QUERY_VALUE)
                || p.get_ref().contains(['?', '/'])
            {
                self.err(
                    p.span().start,
                    "",
                    "click_id_param must be a plain query parameter name",
                );
            } else {
                self.settings.click_id_param = Some(p.into_inner());
            }
        }
        if let Some(t) = s.trailing_slash {
            match t.get_ref().as_str() {
                "ignore" => self.settings.trailing_slash = TrailingSlash::Ignore,
                "strict" => self.settings.trailing_slash = TrailingSlash::Strict,
                other => self.err(
                    t.span().start,
                    "",
                    format!("trailing_slash must be \"ignore\" or \"strict\", not \"{other}\""),
                ),
            }
        }
        if let Some(cc) = s.default_cache_control {
            if HeaderValue::from_str(cc.get_ref()).is_err() {
                self.err(
                    cc.span().start,
                    "",
                    "default_cache_control is not a valid header value",
                );
            } else {
                self.settings.default_cache_control = cc.into_inner();
            }
        }
    }

    /// A destination template, or an error at its span.
    fn template(&mut self, t: &Spanned<String>, rule: &str, captures: &[&str]) -> Option<Template> {
        match Template::parse(t.get_ref(), &self.schemes, captures) {
            Ok(t) => Some(t),
            Err(msg) => {
                self.err(
                    t.span().start,
                    rule,
                    format!("destination `{}` {msg}", t.get_ref()),
                );
                None
            }
        }
    }

    pub(crate) fn status(
        &mut self,
        s: Option<&Spanned<i64>>,
        rule: &str,
        allowed: &[i64],
        default: u16,
    ) -> u16 {
        match s {
            None => default,
            Some(s) if allowed.contains(s.get_ref()) => *s.get_ref() as u16,
            Some(s) => {
                let list: Vec<String> = allowed.iter().map(i64::to_string).collect();
                self.err(
                    s.span().start,
                    rule,
                    format!(
                        "status {} is not allowed here (use {})",
                        s.get_ref(),
                        list.join(", ")
                    ),
                );
                default
            }
        }
    }

    pub(crate) fn cache_control(
        &mut self,
        cc: Option<&Spanned<String>>,
        rule: &str,
    ) -> HeaderValue {
        let fallback = HeaderValue::from_str(&self.settings.default_cache_control)
            .unwrap_or_else(|_| HeaderValue::from_static(DEFAULT_CACHE_CONTROL));
        match cc {
            None => fallback,
            Some(cc) => HeaderValue::from_str(cc.get_ref()).unwrap_or_else(|_| {
                self.err(
                    cc.span().start,
                    rule,
                    "cache_control is not a valid header value",
                );
                fallback
            }),
        }
    }

    pub(crate) fn query_mode(&mut self, q: Option<&Spanned<String>>, rule: &str) -> QueryMode {
        match q.map(|q| (q, QueryMode::parse(q.get_ref()))) {
            None => QueryMode::Merge,
            Some((_, Ok(m))) => m,
            Some((q, Err(msg))) => {
                self.err(q.span().start, rule, msg);
                QueryMode::Merge
            }
        }
    }

    pub(crate) fn host(
        &mut self,
        h: Option<&Spanned<String>>,
        rule: &str,
        offset: usize,
    ) -> Option<HostSpec> {
        match HostSpec::parse(h.map(|h| h.get_ref().as_str())) {
            Ok(spec) => Some(spec),
            Err(msg) => {
                self.err(h.map_or(offset, |h| h.span().start), rule, msg);
                None
            }
        }
    }

    /// Normalizes a rule path the way request paths are normalized.
    pub(crate) fn rule_path(&mut self, p: &Spanned<String>, rule: &str) -> Option<String> {
        let raw = p.get_ref();
        if !raw.starts_with('/') {
            self.err(p.span().start, rule, format!("`{raw}` must start with /"));
            return None;
        }
        if raw
            .bytes()
            .any(|b| b <= b' ' || b == 0x7f || b == b'?' || b == b'#')
        {
            self.err(
                p.span().start,
                rule,
                format!("`{raw}` must not contain spaces, control characters, `?` or `#`"),
            );
            return None;
        }
        let Ok(decoded) = encode::decode_unreserved(raw) else {
            self.err(
                p.span().start,
                rule,
                format!("`{raw}` has a bad percent-escape"),
            );
            return None;
        };
        let mut s = decoded.into_owned();
        if self.settings.trailing_slash == TrailingSlash::Ignore && s.len() > 1 && s.ends_with('/')
        {
            s.pop();
        }
        Some(s)
    }

    /// Places a rule in the matcher; returns the capture names its
    /// destinations may use.
    fn place(
        &mut self,
        at: MatchDef<'_>,
        rule: &str,
        offset: usize,
        target: Target,
    ) -> Option<Vec<String>> {
        // A bad host is reported, but the path and the destinations are
        // still checked so every problem of the rule shows at once.
        let host = self.host(at.host, rule, offset);
        let given: Vec<(&str, &Spanned<String>)> = [
            ("path", at.path),
            ("pattern", at.pattern),
            ("prefix", at.prefix),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        let (kind, value) = match given.as_slice() {
            [one] => *one,
            [] => {
                self.err(offset, rule, "needs one of `path`, `pattern` or `prefix`");
                return None;
            }
            [_, second, ..] => {
                self.err(
                    second.1.span().start,
                    rule,
                    "give only one of `path`, `pattern` or `prefix`",
                );
                return None;
            }
        };
        let start = value.span().start;
        let normalized = self.rule_path(value, rule)?;
        let names = match kind {
            "path" => Vec::new(),
            "pattern" => pattern_captures(&normalized),
            _ => vec!["rest".to_string()],
        };
        let Some(host) = host else {
            return Some(names);
        };
        let table = self.hosts.table_mut(&host);
        let outcome = match kind {
            "path" => table.insert_exact(&normalized, target).map_err(Some),
            "pattern" => match table.insert_pattern(&normalized, target) {
                Ok(()) => Ok(()),
                Err(PatternError::Conflict { other: Some(o), .. }) => Err(Some(o)),
                Err(PatternError::Conflict { with, other: None }) => {
                    let msg = format!(
                        "pattern `{}` conflicts with pattern `{with}`",
                        value.get_ref()
                    );
                    self.err(start, rule, msg);
                    Ok(())
                }
                Err(PatternError::Invalid(m)) => {
                    self.err(start, rule, format!("pattern `{}`: {m}", value.get_ref()));
                    Ok(())
                }
            },
            // Prefixes keep their trailing slash: `/v1/` must not match `/v1x`.
            _ => match encode::decode_unreserved(value.get_ref()) {
                Ok(p) => table.insert_prefix(&p, target).map_err(Some),
                Err(()) => Ok(()),
            },
        };
        if let Err(Some(other)) = outcome {
            let msg = format!(
                "{kind} `{}` on host `{}` is already claimed by {}",
                value.get_ref(),
                host.describe(),
                self.describe(other)
            );
            self.err(start, rule, msg);
        }
        Some(names)
    }

    /// "rule `x` at file:line:col" for the other side of a conflict.
    pub(crate) fn describe(&self, t: Target) -> String {
        let o = match t {
            Target::Redirect(i) => self.redirect_origins.get(i as usize),
            Target::Route(i) => self.route_origins.get(i as usize),
            Target::Respond(i) => self.respond_origins.get(i as usize),
            Target::Link { set, row } => {
                return match self.link_sets.get(set as usize) {
                    Some(s) => format!(
                        "link set `{}` at {}:{}",
                        s.id,
                        s.file,
                        s.lines.get(row as usize).copied().unwrap_or(0)
                    ),
                    None => "a link in this set".into(),
                }
            }
        };
        match o {
            Some(o) => format!("rule `{}` at {}", o.id, o.place),
            None => "another rule".into(),
        }
    }

    fn origin(&self, id: &Spanned<String>) -> Origin {
        Origin {
            id: id.get_ref().clone(),
            place: self.map.place(id.span().start),
        }
    }

    fn redirect(&mut self, offset: usize, d: RedirectDef) {
        if !self.claim_id(&d.id) {
            return;
        }
        let id = d.id.get_ref().clone();
        let target = Target::Redirect(self.redirects.len() as u32);
        self.redirect_origins.push(self.origin(&d.id));
        let Some(names) = self.place(d.at(), &id, offset, target) else {
            self.redirects.push(placeholder_redirect(&id));
            return;
        };
        let caps: Vec<&str> = names.iter().map(String::as_str).collect();
        let status = self.status(d.status.as_ref(), &id, &REDIRECT_STATUSES, 302);
        let query = self.query_mode(d.query.as_ref(), &id);
        let to = d.to.as_ref().and_then(|t| self.template(t, &id, &caps));
        let mut split = Vec::new();
        let mut split_total: u64 = 0;
        match (&d.to, &d.split) {
            (Some(_), Some(s)) => {
                self.err(s.span().start, &id, "give either `to` or `split`, not both")
            }
            (None, None) => self.err(offset, &id, "needs a destination: `to` or `split`"),
            (None, Some(s)) if s.get_ref().is_empty() => {
                self.err(s.span().start, &id, "split has no variants")
            }
            _ => {}
        }
        if let Some(s) = &d.split {
            for v in s.get_ref() {
                let w = *v.weight.get_ref();
                if w <= 0 || w > u32::MAX as i64 / 1024 {
                    self.err(
                        v.weight.span().start,
                        &id,
                        format!("weight {w} must be a positive whole number"),
                    );
                }
                split_total += w.max(0) as u64;
                if let Some(t) = self.template(&v.to, &id, &caps) {
                    split.push((t, w.max(0) as u32));
                }
            }
            if split_total == 0 && !s.get_ref().is_empty() {
                self.err(s.span().start, &id, "split weights sum to zero");
            }
        }
        let has_devices = d.ios.is_some() || d.android.is_some() || d.desktop.is_some();
        let ios = d.ios.as_ref().and_then(|t| self.template(t, &id, &caps));
        let android = d
            .android
            .as_ref()
            .and_then(|t| self.template(t, &id, &caps));
        let desktop = d
            .desktop
            .as_ref()
            .and_then(|t| self.template(t, &id, &caps));
        let mut countries = Vec::new();
        let mut entries: Vec<_> = d.countries.iter().collect();
        entries.sort_by_key(|(cc, _)| cc.span().start);
        for (cc, t) in entries {
            let code = cc.get_ref();
            if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
                self.err(
                    cc.span().start,
                    &id,
                    format!("`{code}` is not a two-letter country code"),
                );
                continue;
            }
            let b = code.to_ascii_uppercase().into_bytes();
            let key = [b[0], b[1]];
            if countries.iter().any(|(k, _)| *k == key) {
                self.err(
                    cc.span().start,
                    &id,
                    format!("country `{code}` is given twice (codes are case-insensitive)"),
                );
                continue;
            }
            if let Some(t) = self.template(t, &id, &caps) {
                countries.push((key, t));
            }
        }
        let expires_at = d.expires_at.as_ref().and_then(|e| self.time(e, &id));
        if let (Some(e), None) = (&d.expired_to, &d.expires_at) {
            self.err(e.span().start, &id, "expired_to needs expires_at");
        }
        let expired_to = d
            .expired_to
            .as_ref()
            .and_then(|t| self.template(t, &id, &caps));
        let cache_control = self.cache_control(d.cache_control.as_ref(), &id);
        self.redirects.push(RedirectRule {
            id: id.into(),
            status,
            query,
            to,
            split,
            split_total,
            ios,
            android,
            desktop,
            countries,
            expires_at,
            expired_to,
            cache_control,
            has_devices,
        });
    }

    pub(crate) fn time(&mut self, t: &Spanned<toml::Value>, rule: &str) -> Option<i64> {
        match timestamp::parse_value(t.get_ref()) {
            Ok(v) => Some(v),
            Err(msg) => {
                self.err(t.span().start, rule, msg);
                None
            }
        }
    }

    fn respond(&mut self, offset: usize, d: RespondDef) {
        if !self.claim_id(&d.id) {
            return;
        }
        let id = d.id.get_ref().clone();
        let target = Target::Respond(self.responds.len() as u32);
        self.respond_origins.push(self.origin(&d.id));
        self.place(d.at(), &id, offset, target);
        let status = match &d.status {
            None => 200,
            Some(s) if (200..600).contains(s.get_ref()) => *s.get_ref() as u16,
            Some(s) => {
                self.err(
                    s.span().start,
                    &id,
                    format!("status {} must be between 200 and 599", s.get_ref()),
                );
                200
            }
        };
        let content_type = match &d.content_type {
            None => HeaderValue::from_static("text/plain; charset=utf-8"),
            Some(ct) => HeaderValue::from_str(ct.get_ref()).unwrap_or_else(|_| {
                self.err(
                    ct.span().start,
                    &id,
                    "content_type is not a valid header value",
                );
                HeaderValue::from_static("text/plain")
            }),
        };
        let body = match (&d.body, &d.body_file) {
            (Some(_), Some(f)) => {
                self.err(
                    f.span().start,
                    &id,
                    "give either `body` or `body_file`, not both",
                );
                Bytes::new()
            }
            (Some(b), None) => Bytes::from(b.clone()),
            (None, Some(f)) => {
                let path = self.base_dir.join(f.get_ref());
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        self.hasher.update(&bytes);
                        self.files.push(path);
                        Bytes::from(bytes)
                    }
                    Err(e) => {
                        self.err(
                            f.span().start,
                            &id,
                            format!("cannot read body_file {}: {e}", path.display()),
                        );
                        Bytes::new()
                    }
                }
            }
            (None, None) => Bytes::new(),
        };
        let mut headers = Vec::new();
        for (name, value) in &d.headers {
            match (
                HeaderName::from_bytes(name.get_ref().as_bytes()),
                HeaderValue::from_str(value.get_ref()),
            ) {
                (Ok(n), Ok(v)) => headers.push((n, v)),
                (Err(_), _) => self.err(
                    name.span().start,
                    &id,
                    format!("`{}` is not a valid header name", name.get_ref()),
                ),
                (_, Err(_)) => self.err(value.span().start, &id, "not a valid header value"),
            }
        }
        if let Some(cc) = &d.cache_control {
            let v = self.cache_control(Some(cc), &id);
            headers.push((http::header::CACHE_CONTROL, v));
        }
        self.responds.push(RespondRule {
            id: id.into(),
            status,
            content_type,
            headers,
            body,
        });
    }

    fn route(&mut self, offset: usize, d: RouteDef) {
        if !self.claim_id(&d.id) {
            return;
        }
        let id = d.id.get_ref().clone();
        let target = Target::Route(self.routes.len() as u32);
        self.route_origins.push(self.origin(&d.id));
        self.place(d.at(), &id, offset, target);
        if !self.upstream_names.contains(d.upstream.get_ref()) {
            let known: Vec<&str> = self.upstream_names.iter().map(String::as_str).collect();
            let msg = format!(
                "unknown upstream `{}` (defined: {})",
                d.upstream.get_ref(),
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            );
            self.err(d.upstream.span().start, &id, msg);
        }
        let strip = match (d.strip_prefix, &d.prefix, &d.path) {
            (false, _, _) => Strip::Nothing,
            (true, Some(p), _) => encode::decode_unreserved(p.get_ref())
                .map_or(Strip::Nothing, |p| Strip::Prefix(p.into())),
            (true, None, Some(_)) => Strip::Whole,
            (true, None, None) => {
                self.err(offset, &id, "strip_prefix needs a `prefix` or `path`");
                Strip::Nothing
            }
        };
        if let Some(h) = &d.host_header {
            if crate::host::normalize(h.get_ref()).is_err() || h.get_ref().is_empty() {
                self.err(h.span().start, &id, "host_header is not a valid host");
            }
        }
        self.routes.push(RouteRule {
            id: id.into(),
            upstream: d.upstream.get_ref().as_str().into(),
            strip,
            host_header: d.host_header.map(|h| h.into_inner().into()),
        });
    }

    fn upstream_table(&mut self, v: &Spanned<DeValue<'_>>) {
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

/// Names a matchit pattern captures: `{sku}` and `{*rest}`.
fn pattern_captures(p: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = p;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + close];
        out.push(name.trim_start_matches('*').to_string());
        rest = &rest[open + close + 1..];
    }
    out
}

/// Keeps indexes aligned when a rule could not be placed: it is never
/// reachable, and the errors already recorded stop the load.
fn placeholder_redirect(id: &str) -> RedirectRule {
    RedirectRule {
        id: id.into(),
        status: 302,
        query: QueryMode::Merge,
        to: None,
        split: Vec::new(),
        split_total: 0,
        ios: None,
        android: None,
        desktop: None,
        countries: Vec::new(),
        expires_at: None,
        expired_to: None,
        cache_control: HeaderValue::from_static(DEFAULT_CACHE_CONTROL),
        has_devices: false,
    }
}
