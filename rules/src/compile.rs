//! Turning a rules document into a [`RuleSet`]: parsing, validation with
//! precise locations, and building the matcher.

use http::HeaderValue;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::device::Classifier;
use crate::error::{RuleError, SourceMap};
use crate::files::{FileAccess, FileKind};
use crate::format::*;
use crate::host::HostSpec;
use crate::links;
use crate::matcher::HostTable;
use crate::options::LoadOptions;
use crate::query::QueryMode;
use crate::ruleset::*;
use crate::selftest;
use crate::template::Template;
use crate::upstream::Upstream;
use crate::{encode, timestamp};

pub(crate) const REDIRECT_STATUSES: [i64; 5] = [301, 302, 303, 307, 308];

/// The longest path (or bulk-link code) a rule may match. Longer request
/// heads are not even read by the fast path (16 KiB), and a bound keeps
/// every key length well inside the matcher's 32-bit fields.
pub(crate) const MAX_PATH_LEN: usize = 8 * 1024;
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
    /// Origins of rules, indexed like the `RuleRef` indexes.
    pub redirect_origins: Vec<Origin>,
    pub route_origins: Vec<Origin>,
    pub respond_origins: Vec<Origin>,
    pub files: Vec<PathBuf>,
    /// Kind of each referenced file, aligned with `files[1..]`.
    pub file_kinds: Vec<FileKind>,
    pub access: FileAccess,
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
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut c = Compiler {
        map,
        access: FileAccess::new(&base_dir, &opts.allow_dirs, opts.body_file_limit)
            .deny(&opts.deny_files),
        base_dir,
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
        file_kinds: Vec::new(),
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
        file_kinds: c.file_kinds,
        access: c.access,
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
    pub(crate) fn parse_one<T: for<'de> Deserialize<'de>>(
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
    pub(crate) fn template(
        &mut self,
        t: &Spanned<String>,
        rule: &str,
        captures: &[&str],
    ) -> Option<Template> {
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
        if raw.len() > MAX_PATH_LEN {
            self.err(
                p.span().start,
                rule,
                format!(
                    "path is {} bytes long; the limit is {MAX_PATH_LEN}",
                    raw.len()
                ),
            );
            return None;
        }
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

    pub(crate) fn origin(&self, id: &Spanned<String>) -> Origin {
        Origin {
            id: id.get_ref().clone(),
            place: self.map.place(id.span().start),
        }
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
}

/// Keeps indexes aligned when a rule could not be placed: it is never
/// reachable, and the errors already recorded stop the load.
pub(crate) fn placeholder_redirect(id: &str) -> RedirectRule {
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
