//! What a rule set says about stored links: checking one
//! ([`StoreLink::compile`]), the key it is stored and looked up under, the
//! rule that answers a code ahead of the store.

use http::HeaderValue;

use crate::encode;
use crate::host;
use crate::link_fields;
use crate::matcher::{HostLevel, MatchKind};
use crate::query::QueryMode;
use crate::ruleset::{RuleSet, TrailingSlash};
use crate::stored::{Dest, FieldError, FieldErrors, LinkSpec, StoreLink};

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

    /// The rule that answers `/code` on `host` with an exact path or a
    /// pattern, at any host level (`*.example.com`, any host): what a
    /// partner must not take over with a stored link, although the store
    /// outranks those rules of other host levels (`/robots.txt` of every
    /// host, say). Prefixes are fallbacks that stored links outrank by
    /// design, so they claim nothing.
    pub fn answered_by(&self, host: &str, code: &str) -> Option<&str> {
        let path = format!("/{code}");
        let hit = self.hosts.lookup(host, &path, &path)?;
        if hit.kind == MatchKind::Prefix {
            return None;
        }
        let slot = self.slot_of(hit.rule);
        self.rule_ids().nth(slot)
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
