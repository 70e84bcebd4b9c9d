//! A route's header changes (`request_headers`, `response_headers`),
//! compiled: names and values parsed once at load time, so applying them
//! to a request is a few map operations and no parsing.

use http::{HeaderName, HeaderValue};
use std::sync::Arc;

/// The request headers the gateway itself sets, replaces or drops on every
/// proxied request, in lower case: the client's address and protocol as
/// the gateway decided them, and the request id. A route can neither set
/// nor remove them, so an upstream can trust them whatever the rules say.
pub const FORWARDING_HEADERS: [&str; 6] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "forwarded",
    "x-request-id",
];

/// The headers one side of a route sets and removes.
///
/// Cheap to clone (a reference count, or nothing when there are no
/// changes), so a proxied request can keep its route's changes after the
/// decision without borrowing the rule set.
#[derive(Debug, Clone, Default)]
pub struct HeaderChanges(Option<Arc<Changes>>);

#[derive(Debug)]
struct Changes {
    set: Box<[(HeaderName, HeaderValue)]>,
    remove: Box<[HeaderName]>,
}

impl HeaderChanges {
    pub(crate) fn new(set: Vec<(HeaderName, HeaderValue)>, remove: Vec<HeaderName>) -> Self {
        if set.is_empty() && remove.is_empty() {
            return HeaderChanges(None);
        }
        HeaderChanges(Some(Arc::new(Changes {
            set: set.into(),
            remove: remove.into(),
        })))
    }

    /// Whether there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Headers to set, each replacing every value of its name. No name
    /// appears twice, here or in [`HeaderChanges::remove`].
    pub fn set(&self) -> &[(HeaderName, HeaderValue)] {
        self.0.as_deref().map_or(&[], |c| &c.set)
    }

    /// Headers to remove, every value of each.
    pub fn remove(&self) -> &[HeaderName] {
        self.0.as_deref().map_or(&[], |c| &c.remove)
    }

    /// Whether a header called `name` (any case) already on the message is
    /// dropped or replaced by these changes.
    pub fn touches(&self, name: &str) -> bool {
        let Some(c) = self.0.as_deref() else {
            return false;
        };
        c.remove
            .iter()
            .any(|n| n.as_str().eq_ignore_ascii_case(name))
            || c.set
                .iter()
                .any(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
    }
}
