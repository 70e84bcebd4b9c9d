//! Links kept outside the rules file — in the gateway's store — and the
//! `[[domain]]`s they answer on: the types the decision uses. What the
//! rule set says about them (checks, keys, claims) is `store_rules.rs`.
//!
//! A stored link is checked with the same code as a bulk CSV row
//! (`link_fields`), compiled once when it is read, and decided like a bulk
//! link: expiry, device, country, then its destination, finished with the
//! same query merge, click id and `Location` check (`choose.rs`).

use bytes::Bytes;
use http::HeaderValue;
use serde::Serialize;

use crate::link_fields;
use crate::query::QueryMode;

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
