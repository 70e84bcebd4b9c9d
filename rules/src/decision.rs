//! What the gateway should do with a request.

use bytes::Bytes;
use http::HeaderValue;
use serde::Serialize;

use crate::device::DeviceClass;
use crate::header_changes::HeaderChanges;
use crate::rate_limit::RateLimit;

/// The answer to "what do we do with this request?".
///
/// Borrows only from the [`RuleSet`](crate::RuleSet) that produced it (never
/// from the request), so a server can hold it while it writes to the
/// connection; the server keeps the snapshot alive for the whole request.
#[derive(Debug, Clone)]
pub enum Decision<'a> {
    /// Answer with a redirect.
    Redirect(Redirect<'a>),
    /// Answer with a fixed response.
    Respond(Respond<'a>),
    /// Forward to an upstream pool.
    Proxy(Proxy<'a>),
    /// The rule matched but has expired and has no `expired_to`: 410.
    Gone {
        /// Id of the expired rule (or link set).
        rule: &'a str,
        /// Its index in [`RuleSet::rule_ids`](crate::RuleSet::rule_ids).
        slot: usize,
    },
    /// No rule matched the host and path: 404.
    NotFound,
    /// A `[[domain]]` with a store, and a code the [`LinkSource`] does not
    /// know yet: ask the store, then decide again.
    ///
    /// [`LinkSource`]: crate::LinkSource
    NeedsStore,
    /// The request cannot be answered safely (bad host, bad path, or a
    /// destination that would not render safely): 400.
    BadRequest {
        /// A short reason, safe to show to the client.
        reason: &'static str,
    },
}

/// A redirect answer.
#[derive(Debug, Clone)]
pub struct Redirect<'a> {
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
    /// The rendered and checked destination.
    pub location: HeaderValue,
    /// The `Cache-Control` header value to send.
    pub cache_control: &'a HeaderValue,
    /// Rule id, or link-set id for bulk links.
    pub rule: &'a str,
    /// Index of the rule in [`RuleSet::rule_ids`](crate::RuleSet::rule_ids).
    pub slot: usize,
    /// For bulk links, where the code starts in the request path (after the
    /// set's prefix); see [`Redirect::code`].
    pub code_at: Option<usize>,
    /// What the User-Agent says, when the rule has device destinations
    /// (otherwise the User-Agent is not looked at; see
    /// [`RuleSet::classify`](crate::RuleSet::classify)).
    pub device: Option<DeviceClass>,
    /// Split variant index when the rule has a `split`.
    pub variant: Option<usize>,
    /// Which destination was chosen.
    pub target: Target,
    /// For a stored link, its id and version in the store.
    pub stored: Option<(i64, i64)>,
}

/// Which destination of a redirect rule was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The default `to`.
    Default,
    /// A per-device destination (`ios`, `android`, `desktop`).
    Device,
    /// A `countries` destination.
    Country,
    /// A `split` variant.
    Split,
    /// The `expired_to` destination of an expired rule.
    Expired,
}

/// A fixed response (`[[respond]]`).
#[derive(Debug, Clone)]
pub struct Respond<'a> {
    /// Status code.
    pub status: u16,
    /// `Content-Type` header value.
    pub content_type: &'a HeaderValue,
    /// Extra headers configured on the rule, `Cache-Control` included when set.
    pub headers: &'a [(http::HeaderName, HeaderValue)],
    /// Body (cheap to clone).
    pub body: Bytes,
    /// Rule id.
    pub rule: &'a str,
    /// Index of the rule in [`RuleSet::rule_ids`](crate::RuleSet::rule_ids).
    pub slot: usize,
}

/// Forward to an upstream pool (`[[route]]`).
#[derive(Debug, Clone)]
pub struct Proxy<'a> {
    /// Upstream pool name (a key of `[upstream]`).
    pub upstream: &'a str,
    /// Path and query to send upstream, after `strip_prefix`.
    pub path_and_query: String,
    /// `Host` header to send instead of the client's, when the route sets one.
    pub host_header: Option<&'a str>,
    /// Largest request body the route accepts (`None`: no limit); a longer
    /// one is answered `413`.
    pub max_body: Option<u64>,
    /// Whether an `Upgrade` request (WebSocket) may become a tunnel; when
    /// not, the upgrade headers are dropped and it is a plain request.
    pub upgrade: bool,
    /// Headers to set and remove on the request sent upstream, after the
    /// gateway's own forwarding headers.
    pub request_headers: &'a HeaderChanges,
    /// Headers to set and remove on every answer for the route: the
    /// upstream's, and the gateway's own errors (502, 504, 413, ...).
    pub response_headers: &'a HeaderChanges,
    /// How many requests each client may make, when the route limits them.
    pub rate_limit: Option<&'a RateLimit>,
    /// Rule id.
    pub rule: &'a str,
    /// Index of the rule in [`RuleSet::rule_ids`](crate::RuleSet::rule_ids).
    pub slot: usize,
}

impl Redirect<'_> {
    /// The bulk-link code within `path`, the normalized request path
    /// ([`RuleSet::normalized`](crate::RuleSet::normalized)), without a
    /// trailing slash.
    pub fn code<'p>(&self, path: &'p str) -> Option<&'p str> {
        let at = self.code_at?;
        path.get(at..).map(|c| c.trim_end_matches('/'))
    }
}

impl<'a> Decision<'a> {
    /// The action name used in logs, metrics and `explain --json`.
    pub fn action(&self) -> &'static str {
        match self {
            Decision::Redirect(_) => "redirect",
            Decision::Respond(_) => "respond",
            Decision::Proxy(_) => "proxy",
            Decision::Gone { .. } => "gone",
            Decision::NotFound => "not_found",
            Decision::BadRequest { .. } => "bad_request",
            Decision::NeedsStore => "needs_store",
        }
    }

    /// The HTTP status the gateway answers with; `None` for proxied requests,
    /// whose status comes from the upstream.
    pub fn status(&self) -> Option<u16> {
        match self {
            Decision::Redirect(r) => Some(r.status),
            Decision::Respond(r) => Some(r.status),
            Decision::Proxy(_) => None,
            Decision::Gone { .. } => Some(410),
            Decision::NotFound => Some(404),
            Decision::BadRequest { .. } => Some(400),
            Decision::NeedsStore => None,
        }
    }

    /// Index of the rule in [`RuleSet::rule_ids`](crate::RuleSet::rule_ids).
    pub fn slot(&self) -> Option<usize> {
        match self {
            Decision::Redirect(r) => Some(r.slot),
            Decision::Respond(r) => Some(r.slot),
            Decision::Proxy(p) => Some(p.slot),
            Decision::Gone { slot, .. } => Some(*slot),
            Decision::NotFound | Decision::BadRequest { .. } | Decision::NeedsStore => None,
        }
    }

    /// Id of the rule (or link set) that produced the decision.
    pub fn rule(&self) -> Option<&'a str> {
        match self {
            Decision::Redirect(r) => Some(r.rule),
            Decision::Respond(r) => Some(r.rule),
            Decision::Proxy(p) => Some(p.rule),
            Decision::Gone { rule, .. } => Some(rule),
            Decision::NotFound | Decision::BadRequest { .. } | Decision::NeedsStore => None,
        }
    }
}
