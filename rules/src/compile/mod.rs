//! Turning a rules document into a [`RuleSet`]: the [`Compiler`] that
//! parses it, validates every kind with precise locations and builds the
//! matcher. Each kind of table is compiled in the child module named
//! after it.

mod domain;
mod headers;
mod links;
mod place;
mod redirect;
mod referenced;
mod respond;
mod route;
mod selftest;
mod settings;
mod upstream;
mod values;

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::device::Classifier;
use crate::error::{RuleError, SourceMap};
use crate::files::{FileAccess, FileKind};
use crate::format::{DomainDef, LinksDef, RedirectDef, RespondDef, RouteDef, SettingsDef, TestDef};
use crate::matcher::HostTable;
use crate::options::LoadOptions;
use crate::ruleset::{
    LinkSet, RedirectRule, RespondRule, RouteRule, RuleSet, Settings, TrailingSlash,
};
use crate::stored::DomainRule;
use crate::upstream::Upstream;
use http::HeaderValue;

/// The longest path (or bulk-link code) a rule may match. Longer request
/// heads are not even read by the fast path (16 KiB), and a bound keeps
/// every key length well inside the matcher's 32-bit fields.
use crate::link_fields::MAX_PATH_LEN;
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
    pub domains: Vec<DomainRule>,
    pub domain_hosts: std::collections::HashMap<Box<str>, u32>,
    pub upstreams: BTreeMap<String, Upstream>,
    /// Names under `[upstream]`, including pools with errors.
    pub upstream_names: std::collections::BTreeSet<String>,
    /// Origins of rules, indexed by the rule numbers a `RuleRef` holds.
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
        domains: Vec::new(),
        domain_hosts: Default::default(),
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
            "settings"
                | "redirect"
                | "links"
                | "route"
                | "respond"
                | "upstream"
                | "test"
                | "domain"
        ) {
            let e = c.map.error(
                key.span().start,
                "",
                format!(
                    "unknown table `{}` (expected settings, redirect, links, route, respond, upstream, domain or test)",
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
            Placed::Links(d) => c.links(at, d),
        }
    }
    for (at, d) in c.array::<DomainDef>(root.get("domain"), "domain") {
        c.domain(at, d);
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
    let default_cache_control = HeaderValue::from_str(&c.settings.default_cache_control)
        .unwrap_or_else(|_| HeaderValue::from_static(DEFAULT_CACHE_CONTROL));
    let set = RuleSet {
        default_cache_control,
        schemes: c.schemes,
        domains: c.domains,
        domain_hosts: c.domain_hosts,
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
        for kind in ["redirect", "respond", "route", "links", "domain"] {
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

    pub(crate) fn origin(&self, id: &Spanned<String>) -> Origin {
        Origin {
            id: id.get_ref().clone(),
            place: self.map.place(id.span().start),
        }
    }
}
