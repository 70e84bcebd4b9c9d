//! The label values of the gateway's metrics that are closed sets, each an
//! enum written once: a new value is a new variant, never a string.

/// What kind of answer a request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A redirect.
    Redirect,
    /// A `[[respond]]` answer.
    Respond,
    /// Forwarded to an upstream.
    Proxy,
    /// 410 for an expired rule.
    Gone,
    /// 404.
    NotFound,
    /// 400.
    BadRequest,
    /// The gateway itself failed.
    Error,
    /// 429 from a route's `rate_limit`.
    RateLimited,
}

pub(super) const KINDS: [Kind; 8] = [
    Kind::Redirect,
    Kind::Respond,
    Kind::Proxy,
    Kind::Gone,
    Kind::NotFound,
    Kind::BadRequest,
    Kind::Error,
    Kind::RateLimited,
];

impl Kind {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Redirect => "redirect",
            Kind::Respond => "respond",
            Kind::Proxy => "proxy",
            Kind::Gone => "gone",
            Kind::NotFound => "not_found",
            Kind::BadRequest => "bad_request",
            Kind::Error => "error",
            Kind::RateLimited => "rate_limited",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// Why a proxied request failed: the `reason` of
/// `gateway_upstream_errors_total`, in logs too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// Could not connect (after retries).
    Connect,
    /// Connect, read or write timed out.
    Timeout,
    /// The connection broke mid-way.
    Reset,
    /// Every backend is down.
    NoHealthy,
    /// The pool had `max_inflight` requests in flight already.
    Overloaded,
}

impl UpstreamFailure {
    /// Every reason, in index order.
    pub const ALL: [UpstreamFailure; 5] = [
        UpstreamFailure::Connect,
        UpstreamFailure::Timeout,
        UpstreamFailure::Reset,
        UpstreamFailure::NoHealthy,
        UpstreamFailure::Overloaded,
    ];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamFailure::Connect => "connect",
            UpstreamFailure::Timeout => "timeout",
            UpstreamFailure::Reset => "reset",
            UpstreamFailure::NoHealthy => "no_healthy",
            UpstreamFailure::Overloaded => "overloaded",
        }
    }
}

/// How a reload attempt ended: the `result` of
/// `gateway_rules_reloads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    /// New rules went live.
    Success,
    /// The rules were the same as the live ones.
    Unchanged,
    /// Refused, held back or failed: the live rules keep serving.
    Failure,
}

impl ReloadResult {
    /// Every result.
    pub(super) const ALL: [ReloadResult; 3] = [
        ReloadResult::Success,
        ReloadResult::Failure,
        ReloadResult::Unchanged,
    ];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadResult::Success => "success",
            ReloadResult::Unchanged => "unchanged",
            ReloadResult::Failure => "failure",
        }
    }
}
