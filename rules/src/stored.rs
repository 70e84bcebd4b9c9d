//! Links kept outside the rules file — in the gateway's store — and the
//! `[[domain]]`s they answer on.
//!
//! A stored link is checked with the same code as a bulk CSV row
//! (`link_fields`), compiled once when it is read, and decided like a bulk
//! link: expiry, device, country, then its destination, finished with the
//! same query merge, click id and `Location` check (`choose.rs`).

use bytes::Bytes;
use http::HeaderValue;
use serde::Serialize;

use crate::encode;
use crate::host;
use crate::link_fields;
use crate::matcher::{HostLevel, MatchKind};
use crate::query::QueryMode;
use crate::ruleset::{RuleSet, TrailingSlash};

/// A stored link as written, before it is checked.
#[derive(Debug, Clone, Default)]
pub struct LinkSpec<'a> {
    /// The store's id for it.
    pub id: i64,
    /// Its version (one more with every change).
    pub version: i64,
    /// The code: the path after `/`.
    pub code: &'a str,
    /// Where it redirects.
    pub to: &'a str,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
    /// Destination for iOS.
    pub ios: Option<&'a str>,
    /// Destination for Android.
    pub android: Option<&'a str>,
    /// Destination for desktops.
    pub desktop: Option<&'a str>,
    /// Destinations by ISO 3166 country code.
    pub countries: Vec<(&'a str, &'a str)>,
    /// Unix seconds after which it is expired.
    pub expires_at: Option<i64>,
    /// Where an expired link goes; `410` without.
    pub expired_to: Option<&'a str>,
    /// `merge` (the default) or `drop`.
    pub query: Option<&'a str>,
    /// `Cache-Control` of the redirect; the rules' default without.
    pub cache_control: Option<&'a str>,
}

/// What is wrong with one field of a [`LinkSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, as the API names it (`destination`, `countries.DE`, ...).
    pub field: String,
    /// What is wrong, safe to show to whoever wrote it.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Several [`FieldError`]s, shown on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A checked destination, with its `Location` value made once.
#[derive(Debug, Clone)]
pub(crate) struct Dest {
    pub url: Box<str>,
    pub origin_len: usize,
    pub header: HeaderValue,
}

impl Dest {
    /// Checks `url` as a fixed destination.
    pub(crate) fn new(url: &str, schemes: &[String]) -> Result<Dest, String> {
        let origin_len =
            link_fields::destination(url, schemes).map_err(|m| format!("`{url}` {m}"))?;
        let header = HeaderValue::from_maybe_shared(Bytes::from(url.to_string()))
            .map_err(|_| format!("`{url}` is not a valid header value"))?;
        Ok(Dest {
            url: url.into(),
            origin_len,
            header,
        })
    }
}

/// Errors gathered while checking a spec.
struct Errors(Vec<FieldError>);

impl Errors {
    fn check<T>(&mut self, field: &str, r: Result<T, String>) -> Option<T> {
        r.map_err(|message| {
            self.0.push(FieldError {
                field: field.to_string(),
                message,
            })
        })
        .ok()
    }
}

/// A stored link, checked and ready to decide with.
#[derive(Debug, Clone)]
pub struct StoreLink {
    pub(crate) id: i64,
    pub(crate) version: i64,
    pub(crate) status: u16,
    pub(crate) to: Dest,
    pub(crate) ios: Option<Dest>,
    pub(crate) android: Option<Dest>,
    pub(crate) desktop: Option<Dest>,
    pub(crate) countries: Vec<([u8; 2], Dest)>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) expired_to: Option<Dest>,
    pub(crate) query: QueryMode,
    pub(crate) cache_control: HeaderValue,
}

impl StoreLink {
    /// Checks `spec` under `rules` (their app schemes and default
    /// `Cache-Control`): every problem, each with its field.
    pub fn compile(spec: &LinkSpec<'_>, rules: &RuleSet) -> Result<StoreLink, FieldErrors> {
        let mut errors = Errors(Vec::new());
        errors.check("code", link_fields::code(spec.code));
        let status = errors
            .check("status", link_fields::status(spec.status))
            .unwrap_or(302);
        let schemes = rules.schemes();
        let dest = |errors: &mut Errors, field: &str, url: &str| {
            errors.check(field, Dest::new(url, schemes))
        };
        let to = dest(&mut errors, "destination", spec.to);
        let ios = spec.ios.and_then(|u| dest(&mut errors, "ios", u));
        let android = spec.android.and_then(|u| dest(&mut errors, "android", u));
        let desktop = spec.desktop.and_then(|u| dest(&mut errors, "desktop", u));
        let expired_to = spec
            .expired_to
            .and_then(|u| dest(&mut errors, "expired_to", u));
        let mut countries = Vec::with_capacity(spec.countries.len());
        for (country, url) in &spec.countries {
            let field = format!("countries.{country}");
            if let Some(code) = errors.check(&field, link_fields::country(country)) {
                if let Some(d) = dest(&mut errors, &field, url) {
                    countries.push((code, d));
                }
            }
        }
        let query = match spec.query {
            None => QueryMode::Merge,
            Some(q) => errors
                .check("query_mode", QueryMode::parse(q))
                .unwrap_or(QueryMode::Merge),
        };
        let cache_control = match spec.cache_control {
            None => rules.default_cache_control().clone(),
            Some(cc) => errors
                .check(
                    "cache_control",
                    HeaderValue::from_str(cc).map_err(|_| "is not a valid header value".into()),
                )
                .unwrap_or_else(|| rules.default_cache_control().clone()),
        };
        match to {
            Some(to) if errors.0.is_empty() => Ok(StoreLink {
                id: spec.id,
                version: spec.version,
                status,
                to,
                ios,
                android,
                desktop,
                countries,
                expires_at: spec.expires_at,
                expired_to,
                query,
                cache_control,
            }),
            _ => Err(FieldErrors(errors.0)),
        }
    }

    /// The store's id for it.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Its version.
    pub fn version(&self) -> i64 {
        self.version
    }

    pub(crate) fn has_devices(&self) -> bool {
        self.ios.is_some() || self.android.is_some() || self.desktop.is_some()
    }
}

/// What the store holds for a code, as far as it can say without waiting.
pub enum Stored<'a> {
    /// This link.
    Link(&'a StoreLink),
    /// No link has this code.
    Absent,
    /// Not known yet: the caller must ask the store and decide again.
    Unknown,
}

/// The store as the rules see it while deciding one request.
pub trait LinkSource {
    /// The link at `host` (normalized) and `code` (normalized: what
    /// [`RuleSet::store_code`] gives).
    fn link(&self, host: &str, code: &str) -> Stored<'_>;
}

/// No store: every code is absent.
pub struct NoStore;

impl LinkSource for NoStore {
    fn link(&self, _: &str, _: &str) -> Stored<'_> {
        Stored::Absent
    }
}

/// A `[[domain]]`, compiled.
#[derive(Debug)]
pub(crate) struct DomainRule {
    pub id: Box<str>,
    /// Whether codes not in the rules are looked up in the store.
    pub store: bool,
    /// Where unknown codes go (else `404`).
    pub not_found_to: Option<Dest>,
}

/// What the store said while deciding, as `explain` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum StoreStep {
    /// A stored link answered.
    Found {
        /// The code looked up.
        code: String,
        /// The link's id in the store.
        id: i64,
        /// Its version.
        version: i64,
    },
    /// The store has no link with this code.
    Absent {
        /// The code looked up.
        code: String,
    },
    /// The store was not asked (or could not answer).
    Unknown {
        /// The code looked up.
        code: String,
    },
}

impl StoreStep {
    pub(crate) fn found(link: &StoreLink, code: &str) -> StoreStep {
        StoreStep::Found {
            code: code.into(),
            id: link.id,
            version: link.version,
        }
    }
}

impl RuleSet {
    /// Schemes destinations may use: `http`, `https` and `[settings]
    /// app_schemes`.
    pub fn schemes(&self) -> &[String] {
        &self.schemes
    }

    /// `Cache-Control` of redirects that set none.
    pub fn default_cache_control(&self) -> &HeaderValue {
        &self.default_cache_control
    }

    /// Whether `host` (normalized) is a `[[domain]]` with `store = true`.
    pub fn is_store_domain(&self, host: &str) -> bool {
        self.domain_hosts
            .get(host)
            .is_some_and(|&i| self.domains[i as usize].store)
    }

    /// The hosts of the `[[domain]]`s with `store = true`.
    pub fn store_domains(&self) -> impl Iterator<Item = &str> {
        self.domain_hosts
            .iter()
            .filter(|(_, &i)| self.domains[i as usize].store)
            .map(|(h, _)| &**h)
    }

    /// A link's host and code as the store keeps them and requests look
    /// them up: the host lower-cased without a port, the code checked like
    /// a CSV row's and normalized like a request path (unreserved escapes
    /// decoded, a trailing slash dropped unless `trailing_slash = "strict"`).
    pub fn store_key(&self, host: &str, code: &str) -> Result<(String, String), FieldErrors> {
        let mut errors = Vec::new();
        let host = match host::normalize(host) {
            Ok(h) => Some(h.into_owned()),
            Err(m) => {
                errors.push(FieldError {
                    field: "host".into(),
                    message: m.into(),
                });
                None
            }
        };
        let code = match link_fields::code(code) {
            Err(m) => Err(m),
            Ok(()) => match encode::decode_unreserved(code) {
                Err(()) => Err(format!("`{code}` has a bad percent-escape")),
                Ok(c) => {
                    let mut c = c.into_owned();
                    if self.settings.trailing_slash == TrailingSlash::Ignore && c.ends_with('/') {
                        c.pop();
                    }
                    if c.is_empty() {
                        Err("is empty".into())
                    } else {
                        Ok(c)
                    }
                }
            },
        };
        let code = code
            .map_err(|m| {
                errors.push(FieldError {
                    field: "code".into(),
                    message: m,
                })
            })
            .ok();
        match (host, code) {
            (Some(h), Some(c)) if errors.is_empty() => Ok((h, c)),
            _ => Err(FieldErrors(errors)),
        }
    }

    /// The rule or link set of this rule set that answers `host` and
    /// `code` (both as [`RuleSet::store_key`] gives them) ahead of any
    /// stored link: an exact path or bulk link of that very host.
    pub fn claimed_by(&self, host: &str, code: &str) -> Option<&str> {
        let path = format!("/{code}");
        let hit = self.hosts.lookup(host, &path, &path)?;
        if hit.level != HostLevel::Exact || hit.kind != MatchKind::Exact {
            return None;
        }
        let slot = self.slot_of(hit.rule);
        self.rule_ids().nth(slot)
    }
}
