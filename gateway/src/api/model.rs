//! The JSON the Links API reads and writes. Field names are fixed: clients
//! and checks rely on them (docs/api.md).

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::store::LinkRecord;
use crate::web::FieldError;

/// What the request's query does to the destination's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QueryMode {
    /// The request's query is added to the destination's.
    Merge,
    /// The request's query is dropped.
    Drop,
}

impl QueryMode {
    /// As the store keeps it.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryMode::Merge => "merge",
            QueryMode::Drop => "drop",
        }
    }
}

/// A link to create (`POST /api/v1/links`, an item of a bulk create, or
/// the body of `PUT /api/v1/links/by-external-id/{external_id}`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkInput {
    /// The link domain: a `[[domain]]` with `store = true` that the key
    /// may create links on.
    #[schema(example = "go.example.com")]
    pub host: String,
    /// Where it redirects: an absolute `http`/`https` URL (or an app
    /// scheme the rules allow).
    #[schema(example = "https://shop.example.com/summer?utm_source=partner")]
    pub to: String,
    /// The path after `/`; generated when absent (7 characters of an
    /// alphabet without look-alikes).
    #[schema(example = "summer")]
    pub code: Option<String>,
    /// 301, 302 (the default), 303, 307 or 308.
    pub status: Option<u16>,
    /// Destination for iOS devices.
    pub ios: Option<String>,
    /// Destination for Android devices.
    pub android: Option<String>,
    /// Destination for desktops.
    pub desktop: Option<String>,
    /// Destinations by ISO 3166 country code.
    pub countries: Option<BTreeMap<String, String>>,
    /// When the link expires (RFC 3339).
    #[schema(example = "2027-01-31T23:59:59Z")]
    pub expires_at: Option<String>,
    /// Where an expired link goes (else `410 Gone`).
    pub expired_to: Option<String>,
    /// What the request's query does: `merge` (the default) or `drop`.
    pub query: Option<QueryMode>,
    /// `Cache-Control` of the redirect (else the rules' default).
    pub cache_control: Option<String>,
    /// Labels to find links by.
    pub tags: Option<Vec<String>>,
    /// Your own id for the link, unique among your links.
    pub external_id: Option<String>,
}

/// Reads a present field as `Some`, so `null` (clear it) and absent (keep
/// it) differ.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A change (`PATCH /api/v1/links/{id}`): fields absent stay as they are;
/// optional fields set to `null` are cleared.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkPatch {
    /// A new link domain.
    pub host: Option<String>,
    /// A new destination.
    pub to: Option<String>,
    /// A new code.
    pub code: Option<String>,
    /// A new status.
    pub status: Option<u16>,
    /// iOS destination (`null` clears it).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub ios: Option<Option<String>>,
    /// Android destination (`null` clears it).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub android: Option<Option<String>>,
    /// Desktop destination (`null` clears it).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub desktop: Option<Option<String>>,
    /// Destinations by country (replaces them all; `null` clears them).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub countries: Option<Option<BTreeMap<String, String>>>,
    /// Expiry, RFC 3339 (`null` clears it).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Option<String>>,
    /// Where an expired link goes (`null` clears it).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub expired_to: Option<Option<String>>,
    /// `merge` or `drop` (`null`: back to `merge`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<QueryMode>)]
    pub query: Option<Option<QueryMode>>,
    /// `Cache-Control` (`null`: the rules' default).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub cache_control: Option<Option<String>>,
    /// Tags (replaces them all; `null` clears them).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub tags: Option<Option<Vec<String>>>,
    /// Your own id (`null` clears it).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
}

/// A link as the API answers with it: every field, always present
/// (`null` when unset).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Link {
    /// The store's id for it.
    pub id: i64,
    /// The URL to hand out.
    #[schema(example = "https://go.example.com/summer")]
    pub short_url: String,
    /// Link domain.
    pub host: String,
    /// Code.
    pub code: String,
    /// Destination.
    pub to: String,
    /// Redirect status.
    pub status: u16,
    /// iOS destination.
    pub ios: Option<String>,
    /// Android destination.
    pub android: Option<String>,
    /// Desktop destination.
    pub desktop: Option<String>,
    /// Destinations by country.
    pub countries: BTreeMap<String, String>,
    /// Expiry (RFC 3339).
    pub expires_at: Option<String>,
    /// Where an expired link goes.
    pub expired_to: Option<String>,
    /// `merge` or `drop`.
    pub query: QueryMode,
    /// `Cache-Control` set on the link (`null`: the rules' default).
    pub cache_control: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Your own id.
    pub external_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// 1 when created, one more with every change; send it as `If-Match`.
    pub version: i64,
}

/// Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(t: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

impl Link {
    /// The API's view of `record`; `scheme` makes its `short_url`.
    pub fn of(record: LinkRecord, scheme: &str) -> Link {
        let l = record.link;
        Link {
            id: record.id,
            short_url: format!("{scheme}://{}/{}", l.host, l.code),
            query: match l.query_mode.as_deref() {
                Some("drop") => QueryMode::Drop,
                _ => QueryMode::Merge,
            },
            host: l.host,
            code: l.code,
            to: l.destination,
            status: l.status,
            ios: l.ios,
            android: l.android,
            desktop: l.desktop,
            countries: l.countries,
            expires_at: l.expires_at.map(rfc3339),
            expired_to: l.expired_to,
            cache_control: l.cache_control,
            tags: l.tags,
            external_id: l.external_id,
            created_at: rfc3339(record.created_at),
            updated_at: rfc3339(record.updated_at),
            version: record.version,
        }
    }
}

/// A page of links.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkPage {
    /// The links, oldest first.
    pub links: Vec<Link>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /api/v1/links/bulk`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkInput {
    /// Up to 1,000 links (`api.max_bulk`).
    pub links: Vec<serde_json::Value>,
}

/// What became of one item of a bulk create.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResult {
    /// Its place in the request, from 0.
    pub index: usize,
    /// `201` created, or the status it would have had alone (`400`,
    /// `403`, `409`, `422`).
    pub status: u16,
    /// The link, when created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
    /// What is wrong with it, when not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// `POST /api/v1/links/bulk`'s answer: one result per item, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkOutput {
    /// How many were created.
    pub created: usize,
    /// How many were not.
    pub failed: usize,
    /// One per item.
    pub results: Vec<BulkResult>,
}
