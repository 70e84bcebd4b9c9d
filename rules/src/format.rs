//! The rule file as written: serde shapes of every table, with spans so that
//! validation can point at the exact line and column.
//!
//! Unknown keys are errors everywhere (`deny_unknown_fields`): a typo such as
//! `expires = …` must not silently turn a campaign into a link that never
//! expires.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// A string value with its span in the file.
pub(crate) type S = Spanned<String>;

/// `[settings]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsDef {
    #[serde(default)]
    pub app_schemes: Vec<S>,
    pub country_header: Option<String>,
    pub click_id_param: Option<S>,
    pub trailing_slash: Option<S>,
    pub default_cache_control: Option<S>,
}

/// Where a rule applies: its host and exactly one of `path`, `pattern`,
/// `prefix`. A view over the rule's own fields, because serde cannot combine
/// `flatten` with `deny_unknown_fields`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatchDef<'a> {
    pub host: Option<&'a S>,
    pub path: Option<&'a S>,
    pub pattern: Option<&'a S>,
    pub prefix: Option<&'a S>,
}

/// Rules that are placed by host and path.
macro_rules! placed {
    ($t:ty) => {
        impl $t {
            pub(crate) fn at(&self) -> MatchDef<'_> {
                MatchDef {
                    host: self.host.as_ref(),
                    path: self.path.as_ref(),
                    pattern: self.pattern.as_ref(),
                    prefix: self.prefix.as_ref(),
                }
            }
        }
    };
}
placed!(RedirectDef);
placed!(RouteDef);
placed!(RespondDef);

/// `[[redirect]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedirectDef {
    pub id: S,
    pub host: Option<S>,
    pub path: Option<S>,
    pub pattern: Option<S>,
    pub prefix: Option<S>,
    pub to: Option<S>,
    pub status: Option<Spanned<i64>>,
    pub query: Option<S>,
    pub ios: Option<S>,
    pub android: Option<S>,
    pub desktop: Option<S>,
    #[serde(default)]
    pub countries: BTreeMap<Spanned<String>, S>,
    pub split: Option<Spanned<Vec<SplitDef>>>,
    pub expires_at: Option<Spanned<toml::Value>>,
    pub expired_to: Option<S>,
    pub cache_control: Option<S>,
}

/// One `split` variant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SplitDef {
    pub to: S,
    pub weight: Spanned<i64>,
}

/// `[[links]]`: a CSV of bulk short links.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinksDef {
    pub id: S,
    pub host: Option<S>,
    pub file: S,
    /// Path the codes live under, `/` by default (`/l/` gives `/l/<code>`).
    pub prefix: Option<S>,
    pub status: Option<Spanned<i64>>,
    pub query: Option<S>,
    pub cache_control: Option<S>,
}

/// `[[domain]]`: a link domain, whose codes may live in the gateway's store.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DomainDef {
    pub id: S,
    pub host: S,
    /// Look codes no rule answers up in the store.
    #[serde(default)]
    pub store: bool,
    /// Where a code nothing answers goes (a `302`), instead of `404`.
    pub not_found_to: Option<S>,
}

/// `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteDef {
    pub id: S,
    pub host: Option<S>,
    pub path: Option<S>,
    pub pattern: Option<S>,
    pub prefix: Option<S>,
    pub upstream: S,
    #[serde(default)]
    pub strip_prefix: bool,
    pub host_header: Option<S>,
    /// Largest request body, in bytes or as `"1MiB"`; 0 for no limit.
    pub max_body: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub upgrade: bool,
    pub request_headers: Option<HeaderChangesDef>,
    pub response_headers: Option<HeaderChangesDef>,
    pub rate_limit: Option<Spanned<RateLimitDef>>,
}

/// A route's `rate_limit = { key, rate, burst }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitDef {
    pub key: S,
    pub rate: S,
    pub burst: Option<Spanned<i64>>,
}

/// A route's `request_headers` or `response_headers`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeaderChangesDef {
    #[serde(default)]
    pub set: BTreeMap<Spanned<String>, S>,
    #[serde(default)]
    pub remove: Vec<S>,
}

/// `[[respond]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RespondDef {
    pub id: S,
    pub host: Option<S>,
    pub path: Option<S>,
    pub pattern: Option<S>,
    pub prefix: Option<S>,
    pub status: Option<Spanned<i64>>,
    pub content_type: Option<S>,
    pub body: Option<S>,
    pub body_file: Option<S>,
    #[serde(default)]
    pub headers: BTreeMap<Spanned<String>, S>,
    pub cache_control: Option<S>,
}

/// `[upstream.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamDef {
    pub servers: Spanned<Vec<S>>,
    pub balance: Option<S>,
    pub hash_header: Option<String>,
    pub health_check: Option<Spanned<HealthCheckDef>>,
    pub connect_timeout: Option<S>,
    pub read_timeout: Option<S>,
    pub write_timeout: Option<S>,
    pub retries: Option<Spanned<i64>>,
    #[serde(default)]
    pub tls: bool,
    pub sni: Option<String>,
    pub max_inflight: Option<Spanned<i64>>,
    pub eject_after: Option<Spanned<i64>>,
    pub eject_for: Option<S>,
    pub eject_for_max: Option<S>,
}

/// `health_check = { … }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthCheckDef {
    #[serde(rename = "type")]
    pub kind: Option<S>,
    pub path: Option<S>,
    pub interval: Option<S>,
    pub timeout: Option<S>,
    pub unhealthy_after: Option<Spanned<i64>>,
    pub healthy_after: Option<Spanned<i64>>,
}

/// `[[test]]`: an embedded expectation, run by `check` and before every reload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestDef {
    pub name: Option<String>,
    pub url: S,
    #[serde(default)]
    pub method: Option<String>,
    pub user_agent: Option<String>,
    pub country: Option<String>,
    pub ip: Option<S>,
    pub click_id: Option<String>,
    /// RFC 3339 time to evaluate at (expiry tests); now by default.
    pub at: Option<Spanned<toml::Value>>,
    pub expect_status: Option<i64>,
    pub expect_location: Option<String>,
    pub expect_rule: Option<String>,
    pub expect_upstream: Option<String>,
    pub expect_path: Option<String>,
    pub expect_body: Option<String>,
}
