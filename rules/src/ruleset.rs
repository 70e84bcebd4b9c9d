//! The compiled, immutable rule set and its decisions.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use crate::decision::{Decision, Proxy, Respond};
use crate::device::{Classifier, DeviceClass};
use crate::encode;
use crate::files::{FileAccess, FileKind};
use crate::header_changes::HeaderChanges;
use crate::host;
use crate::matcher::{Hit, HostLevel, HostTable, MatchKind};
use crate::query::QueryMode;
use crate::rate_limit::RateLimit;
use crate::request::Request;
use crate::rule_ref::{RuleRef, Span};
use crate::stored::{DomainRule, LinkSource, NoStore, StoreStep, Stored};
use crate::template::{Captures, Template};
use crate::upstream::Upstream;

/// How a trailing slash in the request path is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrailingSlash {
    /// `/shoes/` matches a rule for `/shoes` (and the other way round).
    #[default]
    Ignore,
    /// Paths must match exactly.
    Strict,
}

/// `[settings]`, validated.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    /// Schemes allowed in destinations besides `http` and `https`.
    pub app_schemes: Vec<String>,
    /// Header carrying the client's ISO country code.
    pub country_header: Option<String>,
    /// Query parameter that carries the click id on every redirect.
    pub click_id_param: Option<String>,
    /// Trailing slash handling.
    pub trailing_slash: TrailingSlash,
    /// `Cache-Control` of redirects that do not set their own.
    pub default_cache_control: String,
}

/// A `[[redirect]]` rule, compiled.
pub(crate) struct RedirectRule {
    pub id: Box<str>,
    pub status: u16,
    pub query: QueryMode,
    pub to: Option<Template>,
    pub split: Vec<(Template, u32)>,
    pub split_total: u64,
    pub ios: Option<Template>,
    pub android: Option<Template>,
    pub desktop: Option<Template>,
    pub countries: Vec<([u8; 2], Template)>,
    pub expires_at: Option<i64>,
    pub expired_to: Option<Template>,
    pub cache_control: HeaderValue,
    /// Whether any of `ios`, `android`, `desktop` is set.
    pub has_devices: bool,
}

/// A `[[route]]`, compiled.
pub(crate) struct RouteRule {
    pub id: Box<str>,
    pub upstream: Box<str>,
    /// What `strip_prefix` removes from the path.
    pub strip: Strip,
    pub host_header: Option<Box<str>>,
    /// Largest request body; `None` when the route sets no limit.
    pub max_body: Option<u64>,
    /// Whether `Upgrade` requests (WebSocket) are passed through.
    pub upgrade: bool,
    /// `request_headers`: applied to the request sent upstream.
    pub request_headers: HeaderChanges,
    /// `response_headers`: applied to every answer for the route.
    pub response_headers: HeaderChanges,
    /// `rate_limit`, per client.
    pub rate_limit: Option<RateLimit>,
}

/// What a route's `strip_prefix` removes.
pub(crate) enum Strip {
    /// Forward the path as it is.
    Nothing,
    /// Remove this (decoded) prefix.
    Prefix(Box<str>),
    /// A `path` route: the whole matched path becomes `/`.
    Whole,
}

/// A `[[respond]]`, compiled.
pub(crate) struct RespondRule {
    pub id: Box<str>,
    pub status: u16,
    pub content_type: HeaderValue,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

/// The rarely used columns of a bulk link.
#[derive(Debug, Clone, Default)]
pub(crate) struct LinkExtra {
    pub ios: Option<Span>,
    pub android: Option<Span>,
    pub desktop: Option<Span>,
    pub expires_at: Option<i64>,
}

/// A `[[links]]` set, compiled.
pub(crate) struct LinkSet {
    pub id: Box<str>,
    pub prefix: Box<str>,
    /// Every destination of the set, back to back, as text (validated once
    /// when the set is loaded)...
    pub arena: Arc<str>,
    /// ...and the same memory as `Bytes`, so a static destination becomes
    /// a header value without a copy.
    pub arena_bytes: Bytes,

    pub extras: Vec<LinkExtra>,
    pub query: QueryMode,
    pub cache_control: HeaderValue,
    /// CSV file, for messages.
    pub file: String,
    /// CSV line of each row, for conflict messages.
    pub lines: Vec<u32>,
}

impl LinkSet {
    pub(crate) fn text(&self, span: Span) -> &str {
        // Spans were cut from whole `str`s, so they fall on character
        // boundaries; `get` keeps a bad span from panicking anyway.
        self.arena
            .get(span.start as usize..(span.start + span.len) as usize)
            .unwrap_or("")
    }

    pub(crate) fn header(&self, span: Span) -> Option<HeaderValue> {
        let bytes = self
            .arena_bytes
            .slice(span.start as usize..(span.start + span.len) as usize);
        HeaderValue::from_maybe_shared(bytes).ok()
    }
}

/// How many items of each kind a rule set holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// `[[redirect]]` rules.
    pub redirects: usize,
    /// Bulk links over all `[[links]]` sets.
    pub links: usize,
    /// `[[links]]` sets.
    pub link_sets: usize,
    /// `[[route]]` rules.
    pub routes: usize,
    /// `[[respond]]` rules.
    pub responds: usize,
    /// `[upstream.*]` pools.
    pub upstreams: usize,
    /// `[[test]]` cases.
    pub tests: usize,
    /// `[[domain]]`s.
    pub domains: usize,
}

/// An immutable, validated and compiled rule set.
///
/// Built once per (re)load, then shared read-only by every request.
pub struct RuleSet {
    pub(crate) settings: Settings,
    pub(crate) classifier: Classifier,
    pub(crate) hosts: HostTable,
    pub(crate) redirects: Vec<RedirectRule>,
    pub(crate) routes: Vec<RouteRule>,
    pub(crate) responds: Vec<RespondRule>,
    pub(crate) link_sets: Vec<LinkSet>,
    pub(crate) upstreams: BTreeMap<String, Upstream>,
    pub(crate) files: Vec<PathBuf>,
    /// Kind of each referenced file, aligned with `files[1..]`.
    pub(crate) file_kinds: Vec<FileKind>,
    /// The fence the files were read through, for re-reading them.
    pub(crate) access: FileAccess,
    pub(crate) hash: u64,
    pub(crate) tests: usize,
    /// `[[domain]]`s in file order (their slots follow the link sets')...
    pub(crate) domains: Vec<DomainRule>,
    /// ...and by normalized host.
    pub(crate) domain_hosts: HashMap<Box<str>, u32>,
    /// Schemes destinations may use: `http`, `https` and the app schemes.
    pub(crate) schemes: Vec<String>,
    /// `[settings] default_cache_control` as a header value.
    pub(crate) default_cache_control: HeaderValue,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("hash", &self.content_hash())
            .field("counts", &self.counts())
            .finish()
    }
}

/// The request after normalization, shared by `decide` and `explain`.
pub(crate) struct Normalized<'r> {
    pub host: Cow<'r, str>,
    /// Path used by prefixes (unreserved escapes decoded).
    pub full: Cow<'r, str>,
    /// Length of `full` used by exact paths and patterns (trailing slash
    /// dropped when ignored).
    pub match_len: usize,
}

/// Everything `decide` worked out, kept for `explain`.
pub(crate) struct Trace<'a> {
    pub decision: Decision<'a>,
    pub device: Option<DeviceClass>,
    pub captures: Vec<(String, String)>,
    /// What the store said, on a `[[domain]]` with one.
    pub store: Option<StoreStep>,
}

pub(crate) struct HitCaptures<'h, 't, 'p>(pub &'h Hit<'t, 'p>);

impl Captures for HitCaptures<'_, '_, '_> {
    fn get(&self, name: &str) -> Option<&str> {
        match self.0.kind {
            MatchKind::Prefix if name == "rest" => Some(self.0.rest),
            _ => self.0.params.as_ref().and_then(|p| p.get(name)),
        }
    }
}

impl RuleSet {
    /// Classifies a User-Agent (device class, known bot).
    pub fn classify(&self, user_agent: &str) -> DeviceClass {
        self.classifier.classify(user_agent)
    }

    /// Settings of this rule set.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Upstream pools by name.
    pub fn upstreams(&self) -> &BTreeMap<String, Upstream> {
        &self.upstreams
    }

    /// Every route with a `rate_limit`: its slot (as in
    /// [`Decision::slot`]), id and limit. The server keeps one counter per
    /// route, and keeps it across reloads while both stay the same.
    pub fn rate_limits(&self) -> impl Iterator<Item = (usize, &str, &RateLimit)> {
        let first = self.redirects.len();
        self.routes
            .iter()
            .enumerate()
            .filter_map(move |(i, r)| r.rate_limit.as_ref().map(|l| (first + i, &*r.id, l)))
    }

    /// Files this rule set was built from: the rules file first, then every
    /// CSV and body file it references. A watcher reloads when any changes.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Hash of the content of every file the rule set was built from.
    pub fn content_hash(&self) -> String {
        format!("{:016x}", self.hash)
    }

    /// What [`RuleSet::content_hash`] would be for rules text `rules_text`
    /// with this set's CSV and body files as they are on disk now. A
    /// reload compares it with the live hash to skip compiling content
    /// that did not change. (If the new text names other files its own
    /// hash differs anyway, so the comparison stays sound.)
    pub fn content_hash_with(&self, rules_text: &str) -> std::io::Result<String> {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(rules_text.as_bytes());
        // Through the same fence as the load: a file swapped for a FIFO or
        // a symlink out of the directory must not block or leak here.
        for (f, kind) in self.files.iter().skip(1).zip(&self.file_kinds) {
            h.update(&self.access.read(f, *kind).map_err(std::io::Error::other)?);
        }
        Ok(format!("{:016x}", h.digest()))
    }

    /// Counts per kind.
    pub fn counts(&self) -> Counts {
        Counts {
            redirects: self.redirects.len(),
            links: self.link_sets.iter().map(|s| s.lines.len()).sum(),
            link_sets: self.link_sets.len(),
            routes: self.routes.len(),
            responds: self.responds.len(),
            upstreams: self.upstreams.len(),
            tests: self.tests,
            domains: self.domains.len(),
        }
    }

    /// The dense index of a matched rule in [`RuleSet::rule_ids`] order.
    pub(crate) fn slot_of(&self, rule: RuleRef) -> usize {
        let (r, ro, rs) = (self.redirects.len(), self.routes.len(), self.responds.len());
        match rule {
            RuleRef::Redirect(i) => i as usize,
            RuleRef::Route(i) => r + i as usize,
            RuleRef::Respond(i) => r + ro + i as usize,
            RuleRef::Link { set, .. } => r + ro + rs + set as usize,
        }
    }

    /// The slot of `[[domain]]` number `i`.
    fn domain_slot(&self, i: u32) -> usize {
        self.redirects.len()
            + self.routes.len()
            + self.responds.len()
            + self.link_sets.len()
            + i as usize
    }

    /// Ids of the rules and link sets that can appear in a decision, in
    /// slot order: a decision's `slot` indexes this sequence, so per-rule
    /// metrics can be resolved once per rule set instead of per request.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.redirects
            .iter()
            .map(|r| &*r.id)
            .chain(self.routes.iter().map(|r| &*r.id))
            .chain(self.responds.iter().map(|r| &*r.id))
            .chain(self.link_sets.iter().map(|s| &*s.id))
            .chain(self.domains.iter().map(|d| &*d.id))
    }

    /// The host and path as the matcher sees them (lower-case host without
    /// port, unreserved escapes decoded), or `None` for a request that
    /// would be a bad request. [`Redirect::code`](crate::Redirect::code)
    /// indexes this path; it also makes a stable key for one link.
    pub fn normalized<'r>(
        &self,
        host: &'r str,
        path: &'r str,
    ) -> Option<(Cow<'r, str>, Cow<'r, str>)> {
        // `path` is the path alone (a `?` in it is not a query here), as
        // `decide` takes `Request::path`.
        let req = Request {
            path,
            query: None,
            ..Request::get(host, "/", 0)
        };
        let n = self.normalize(&req).ok()?;
        Some((n.host, n.full))
    }

    /// Decides what to do with `req`, taking every stored code as absent.
    pub fn decide<'s>(&'s self, req: &Request<'_>) -> Decision<'s> {
        self.trace(req, &NoStore, false).decision
    }

    /// Decides what to do with `req`, asking `store` for codes on a
    /// `[[domain]]` with `store = true`: a stored link ranks below the
    /// domain's own exact paths and bulk links and above its patterns and
    /// prefixes. [`Decision::NeedsStore`] when `store` cannot say yet.
    pub fn decide_with<'s, S: LinkSource + ?Sized>(
        &'s self,
        req: &Request<'_>,
        store: &'s S,
    ) -> Decision<'s> {
        self.trace(req, store, false).decision
    }

    pub(crate) fn normalize<'r>(&self, req: &Request<'r>) -> Result<Normalized<'r>, &'static str> {
        let host = host::normalize(req.host)?;
        if !req.path.starts_with('/') {
            return Err("path must start with /");
        }
        if req.path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err("path holds a space or a control character");
        }
        let full =
            encode::decode_unreserved(req.path).map_err(|()| "bad percent-encoding in path")?;
        let match_len = self.match_len(&full);
        Ok(Normalized {
            host,
            full,
            match_len,
        })
    }

    /// How much of a normalized path exact paths and patterns match: all
    /// of it, or all but a trailing slash that is ignored.
    fn match_len(&self, full: &str) -> usize {
        if self.settings.trailing_slash == TrailingSlash::Ignore
            && full.len() > 1
            && full.ends_with('/')
        {
            full.len() - 1
        } else {
            full.len()
        }
    }

    /// [`RuleSet::decide_with`] for a request whose host and path the
    /// caller normalized already with [`RuleSet::normalized`] (`host`,
    /// `full`): the same decision, without normalizing twice.
    pub fn decide_normalized<'s, S: LinkSource + ?Sized>(
        &'s self,
        req: &Request<'_>,
        host: &str,
        full: &str,
        store: &'s S,
    ) -> Decision<'s> {
        let n = Normalized {
            host: Cow::Borrowed(host),
            full: Cow::Borrowed(full),
            match_len: self.match_len(full),
        };
        self.trace_normalized(req, &n, store, false).decision
    }

    /// Decides, optionally keeping what `explain` shows.
    pub(crate) fn trace<'a, S: LinkSource + ?Sized>(
        &'a self,
        req: &Request<'_>,
        store: &'a S,
        keep: bool,
    ) -> Trace<'a> {
        match self.normalize(req) {
            Ok(n) => self.trace_normalized(req, &n, store, keep),
            Err(reason) => Trace {
                decision: Decision::BadRequest { reason },
                device: None,
                captures: Vec::new(),
                store: None,
            },
        }
    }

    /// [`RuleSet::trace`] once `req`'s host and path are normalized (`n`).
    fn trace_normalized<'a, S: LinkSource + ?Sized>(
        &'a self,
        req: &Request<'_>,
        n: &Normalized<'_>,
        store: &'a S,
        keep: bool,
    ) -> Trace<'a> {
        let mut trace = Trace {
            decision: Decision::NotFound,
            device: None,
            captures: Vec::new(),
            store: None,
        };
        let hit = self.hosts.lookup(&n.host, &n.full[..n.match_len], &n.full);
        if !self.domains.is_empty() {
            if let Some(&i) = self.domain_hosts.get(&*n.host) {
                let domain = &self.domains[i as usize];
                let slot = self.domain_slot(i);
                // The domain's own exact paths and bulk links come first.
                let own_exact = hit
                    .as_ref()
                    .is_some_and(|h| h.level == HostLevel::Exact && h.kind == MatchKind::Exact);
                let code = &n.full[1..n.match_len];
                if domain.store && !own_exact && !code.is_empty() {
                    match store.link(&n.host, code) {
                        Stored::Link(link) => {
                            trace.store = Some(StoreStep::found(link, code));
                            trace.decision =
                                self.stored(domain, link, req, slot, &mut trace.device);
                            return trace;
                        }
                        Stored::Unknown => {
                            trace.store = Some(StoreStep::Unknown { code: code.into() });
                            trace.decision = Decision::NeedsStore;
                            return trace;
                        }
                        Stored::Absent => {
                            trace.store = Some(StoreStep::Absent { code: code.into() })
                        }
                    }
                }
                if hit.is_none() {
                    if let Some(to) = &domain.not_found_to {
                        trace.decision = self.not_found_to(domain, to, req, slot);
                    }
                    return trace;
                }
            }
        }
        let Some(hit) = hit else {
            return trace;
        };
        if keep {
            trace.captures = hit
                .params
                .iter()
                .flat_map(|p| p.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            if hit.kind == MatchKind::Prefix {
                trace.captures.push(("rest".into(), hit.rest.to_string()));
            }
        }
        let slot = self.slot_of(hit.rule);
        trace.decision = match hit.rule {
            RuleRef::Redirect(i) => self.redirect(
                &self.redirects[i as usize],
                &hit,
                req,
                slot,
                &mut trace.device,
            ),
            RuleRef::Link { set, link, .. } => self.link(
                &self.link_sets[set as usize],
                link,
                req,
                slot,
                &mut trace.device,
            ),
            RuleRef::Respond(i) => {
                let r = &self.responds[i as usize];
                Decision::Respond(Respond {
                    status: r.status,
                    content_type: &r.content_type,
                    headers: &r.headers,
                    body: r.body.clone(),
                    rule: &r.id,
                    slot,
                })
            }
            RuleRef::Route(i) => {
                let r = &self.routes[i as usize];
                Decision::Proxy(Proxy {
                    upstream: &r.upstream,
                    path_and_query: proxied_path(r, n, req),
                    host_header: r.host_header.as_deref(),
                    max_body: r.max_body,
                    upgrade: r.upgrade,
                    request_headers: &r.request_headers,
                    response_headers: &r.response_headers,
                    rate_limit: r.rate_limit.as_ref(),
                    rule: &r.id,
                    slot,
                })
            }
        };
        trace
    }
}

/// The path and query sent upstream: the request's own bytes, or what is
/// left after `strip_prefix` (always starting with `/`).
fn proxied_path(rule: &RouteRule, n: &Normalized<'_>, req: &Request<'_>) -> String {
    let mut out = String::with_capacity(req.path.len() + req.query.map_or(0, |q| q.len() + 1) + 1);
    // Always the normalized path (unreserved escapes decoded, which RFC
    // 3986 makes equivalent), stripped or not, so upstreams see one form.
    match &rule.strip {
        Strip::Prefix(prefix) => {
            let rest = n.full.strip_prefix(&**prefix).unwrap_or(&n.full);
            if !rest.starts_with('/') {
                out.push('/');
            }
            out.push_str(rest);
        }
        Strip::Whole => out.push('/'),
        Strip::Nothing => out.push_str(&n.full),
    }
    if let Some(q) = req.query {
        out.push('?');
        out.push_str(q);
    }
    out
}
