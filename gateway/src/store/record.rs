//! A link as the store keeps it, and as it is written.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::error::StoreError;

/// A stored link: what a bulk CSV row holds, and who made it and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkRecord {
    /// Store-wide id.
    pub id: i64,
    /// The fields it was written with.
    #[serde(flatten)]
    pub link: NewLink,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// 1 when created, one more with every change.
    pub version: i64,
}

/// A link to write. `host` and `code` are stored normalized (lower-case
/// host, the code as the matcher compares it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLink {
    /// The link domain.
    pub host: String,
    /// The path after `/`, e.g. `summer` for `https://go.example.com/summer`.
    pub code: String,
    /// Where it redirects.
    pub destination: String,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
    /// Destination for iOS devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ios: Option<String>,
    /// Destination for Android devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android: Option<String>,
    /// Destination for desktops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desktop: Option<String>,
    /// Destinations by ISO country code.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub countries: BTreeMap<String, String>,
    /// Unix seconds after which the link is expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Where an expired link goes (else `410`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_to: Option<String>,
    /// `merge` (the default) or `drop`: what happens to the request's query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_mode: Option<String>,
    /// `Cache-Control` of the redirect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The API key (its id) that created it; none for operators' links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The owner's own id for it, unique per owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

impl NewLink {
    /// The link as the rules check it.
    pub fn spec(&self, id: i64, version: i64) -> rules::LinkSpec<'_> {
        rules::LinkSpec {
            id,
            version,
            code: &self.code,
            to: &self.destination,
            status: self.status,
            ios: self.ios.as_deref(),
            android: self.android.as_deref(),
            desktop: self.desktop.as_deref(),
            countries: self
                .countries
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            expires_at: self.expires_at,
            expired_to: self.expired_to.as_deref(),
            query: self.query_mode.as_deref(),
            cache_control: self.cache_control.as_deref(),
        }
    }

    /// `countries` as stored: a JSON object, or NULL when empty.
    pub fn countries_json(&self) -> Option<String> {
        (!self.countries.is_empty())
            .then(|| serde_json::to_string(&self.countries).ok())
            .flatten()
    }

    /// `tags` as stored: a JSON array, or NULL when empty.
    pub fn tags_json(&self) -> Option<String> {
        (!self.tags.is_empty())
            .then(|| serde_json::to_string(&self.tags).ok())
            .flatten()
    }
}

/// One entry of the change log: the link at `host` and `code` changed
/// (code `*`: every link of `host`, after an import).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Change {
    /// Its place in the log; consecutive, in commit order.
    pub seq: i64,
    /// The link's host.
    pub host: String,
    /// The link's code, or `*`.
    pub code: String,
    /// When it was written (Unix seconds).
    pub at: i64,
}

/// A row as both databases return it; every column nullable because a
/// lookup joins the link to the sequence and may find no link.
#[derive(sqlx::FromRow)]
pub(super) struct Row {
    pub as_of: Option<i64>,
    id: Option<i64>,
    host: Option<String>,
    code: Option<String>,
    destination: Option<String>,
    status: Option<i32>,
    ios: Option<String>,
    android: Option<String>,
    desktop: Option<String>,
    countries: Option<String>,
    expires_at: Option<i64>,
    expired_to: Option<String>,
    query_mode: Option<String>,
    cache_control: Option<String>,
    tags: Option<String>,
    owner: Option<String>,
    external_id: Option<String>,
    created_at: Option<i64>,
    updated_at: Option<i64>,
    version: Option<i64>,
}

impl Row {
    /// The link, or `None` when the row holds none.
    pub fn into_record(self) -> Result<Option<LinkRecord>, StoreError> {
        let Some(id) = self.id else {
            return Ok(None);
        };
        let bad = |what: &str| StoreError::BadRow(format!("link {id}: {what}"));
        let countries = match &self.countries {
            None => BTreeMap::new(),
            Some(text) => serde_json::from_str(text)
                .map_err(|_| bad("countries is not a JSON object of strings"))?,
        };
        let tags = match &self.tags {
            None => Vec::new(),
            Some(text) => serde_json::from_str(text)
                .map_err(|_| bad("tags is not a JSON array of strings"))?,
        };
        let status = self
            .status
            .and_then(|s| u16::try_from(s).ok())
            .ok_or_else(|| bad("status"))?;
        Ok(Some(LinkRecord {
            id,
            link: NewLink {
                host: self.host.ok_or_else(|| bad("host is null"))?,
                code: self.code.ok_or_else(|| bad("code is null"))?,
                destination: self.destination.ok_or_else(|| bad("destination is null"))?,
                status,
                ios: self.ios,
                android: self.android,
                desktop: self.desktop,
                countries,
                expires_at: self.expires_at,
                expired_to: self.expired_to,
                query_mode: self.query_mode,
                cache_control: self.cache_control,
                tags,
                owner: self.owner,
                external_id: self.external_id,
            },
            created_at: self.created_at.unwrap_or(0),
            updated_at: self.updated_at.unwrap_or(0),
            version: self.version.unwrap_or(1),
        }))
    }
}
