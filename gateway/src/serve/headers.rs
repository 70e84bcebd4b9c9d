//! Names of the headers the gateway itself reads or adds, written once.
//! Lower case: `http::HeaderName::from_static` takes only that, lookups
//! here are case-insensitive, and HTTP/2 sends names in lower case anyway.

use http::HeaderName;

/// The request id: the client's when it sent a valid one, else made for a
/// proxied request; logged, passed upstream and returned.
pub const REQUEST_ID: &str = "x-request-id";

/// The live rules version, added to answers with `[rules] version_header`.
pub const RULES_VERSION: &str = "x-rules-version";

/// [`REQUEST_ID`] as a header name.
pub static REQUEST_ID_NAME: HeaderName = HeaderName::from_static(REQUEST_ID);

/// [`RULES_VERSION`] as a header name.
pub static RULES_VERSION_NAME: HeaderName = HeaderName::from_static(RULES_VERSION);
