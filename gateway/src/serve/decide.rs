//! The decision step every request goes through, shared by the Pingora
//! pipeline (`proxy`) and the HTTP/1 fast path (`front`): who the client
//! is, its click id, the rule decision, the click event and the per-rule
//! hit counter. Both front ends see the request through [`RequestView`], so
//! a redirect is decided the same way whichever one read it.

use super::headers::REQUEST_ID;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use super::access_log::AccessLog;
use super::client_ip::TrustedProxies;
use crate::analytics::Analytics;
use crate::clicks::{ClickId, ClickTime, Clicks, Visit};
use crate::live::{Live, Snapshot};
use crate::metrics::{Kind, Metrics};
use crate::store::{Store, StoreView};
use crate::tls::acme::{challenge_token, Challenges};
use rules::{ClickIdSource, Decision, Request};

/// What the decision step reads from a request.
pub trait RequestView {
    /// The method, as sent.
    fn method(&self) -> &str;
    /// The path of the request target, without the query.
    fn path(&self) -> &str;
    /// The query of the request target, without `?`.
    fn query(&self) -> Option<&str>;
    /// The first value of a header, when it is visible ASCII (as
    /// `http::HeaderValue::to_str` accepts).
    fn header(&self, name: &str) -> Option<&str>;
    /// Every value of a header, in the order sent (several lines of one
    /// name are one list: `X-Forwarded-For`).
    fn header_values(&self, name: &str) -> impl DoubleEndedIterator<Item = &[u8]>;
    /// Every header line, name and value, in the order sent.
    fn header_lines(&self) -> impl Iterator<Item = (&str, &[u8])>;
    /// The `Host` header, or the authority of an absolute-form target.
    fn host(&self) -> &str;
    /// The TCP peer's address.
    fn peer_ip(&self) -> Option<IpAddr>;
}

/// How requests are decided besides the rules themselves.
pub struct Options {
    /// Add `X-Rules-Version` to responses.
    pub version_header: bool,
    /// Access-log settings.
    pub access: AccessLog,
    /// Click events, when enabled.
    pub clicks: Option<Arc<Clicks>>,
    /// Per-link counters, when enabled (only with `clicks`).
    pub analytics: Option<Arc<Analytics>>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Links in a database, when `[store]` is set.
    pub store: Option<Arc<Store>>,
    /// ACME HTTP-01 answers, when `[acme]` is set.
    pub challenges: Option<Arc<Challenges>>,
}

/// The rules, metrics and click pipeline every request is decided with.
pub struct Decider {
    /// The live snapshot.
    pub live: Live,
    /// Process metrics.
    pub metrics: Arc<Metrics>,
    /// Access-log settings.
    pub access: AccessLog,
    version_header: bool,
    clicks: Option<Arc<Clicks>>,
    analytics: Option<Arc<Analytics>>,
    trusted: Arc<TrustedProxies>,
    store: Option<Arc<Store>>,
    challenges: Option<Arc<Challenges>>,
}

/// What an HTTP-01 request finds on the fast path.
pub enum Challenge {
    /// Not one (no `[acme]`, or not the path): the rules answer it.
    No,
    /// The key authorization, from memory.
    Known(Arc<str>),
    /// One this gateway does not hold in memory: the pipeline asks the
    /// store.
    AskStore,
}

/// A decision and what was learnt making it.
pub struct Decided<'s> {
    /// What to do.
    pub decision: Decision<'s>,
    /// Its metrics kind.
    pub kind: Kind,
    /// The client (see `client_ip`).
    pub client_ip: Option<IpAddr>,
}

impl Decider {
    /// A decider answering from `live`.
    pub fn new(live: Live, metrics: Arc<Metrics>, opts: Options) -> Self {
        Decider {
            live,
            metrics,
            access: opts.access,
            version_header: opts.version_header,
            clicks: opts.clicks,
            analytics: opts.analytics,
            trusted: opts.trusted_proxies,
            store: opts.store,
            challenges: opts.challenges,
        }
    }

    /// An ACME HTTP-01 request on `path`, as far as memory tells (the
    /// fast path cannot wait for the store).
    pub fn challenge_cached(&self, path: &str) -> Challenge {
        match (&self.challenges, challenge_token(path)) {
            (Some(c), Some(token)) => match c.cached(token) {
                Some(k) => Challenge::Known(k),
                None => Challenge::AskStore,
            },
            _ => Challenge::No,
        }
    }

    /// The key authorization an ACME HTTP-01 request on `path` gets, from
    /// memory or the store; `None`: not one this fleet has (the rules
    /// answer it).
    pub async fn challenge(&self, path: &str) -> Option<Arc<str>> {
        let (challenges, token) = (self.challenges.as_ref()?, challenge_token(path)?);
        match challenges.lookup(token).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "acme: cannot read an HTTP-01 challenge from the store");
                None
            }
        }
    }

    /// A fresh view of the store for one request.
    pub fn store_view(&self) -> StoreView<'_> {
        StoreView::new(self.store.as_deref())
    }

    /// The proxies whose forwarding headers are believed.
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.trusted
    }

    /// The rules version to announce in `X-Rules-Version`, when it is on.
    pub fn announce(&self, snap: &Snapshot) -> Option<u64> {
        self.version_header.then_some(snap.version)
    }

    /// Decides `req` against `snap`: assigns the click id and records the
    /// click of a redirect (see [`count_hit`] for the rule's counter).
    /// `store` is this request's view of the link store
    /// ([`Decider::store_view`]).
    pub fn decide<'s>(
        &self,
        snap: &'s Snapshot,
        store: &'s StoreView<'_>,
        req: &impl RequestView,
    ) -> Decided<'s> {
        let client_ip = self
            .trusted
            .client(req.peer_ip(), || req.header_values("x-forwarded-for"));
        let settings = snap.rules.settings();
        let mut visit = Visit {
            ip: client_ip,
            user_agent: req.header("user-agent").unwrap_or(""),
            host: req.host(),
            path: req.path(),
            head: req.method() == "HEAD",
            country: settings
                .country_header
                .as_deref()
                .and_then(|h| req.header(h)),
            // Only click events need these two: no lookups otherwise.
            referer: self.clicks.as_ref().and_then(|_| req.header("referer")),
            request_id: self.clicks.as_ref().and_then(|_| req.header(REQUEST_ID)),
            normalized: None,
        };
        let at = ClickTime::now();
        // With clicks recorded, the visitor's de-duplication bucket is
        // fetched from memory while the rules find the link: the id is
        // asked for (`ClickIdSource::Later`) only when a redirect's
        // `Location` is rendered, by when the bucket has arrived.
        let key = self.clicks.as_ref().map(|c| {
            visit.normalized = snap.rules.normalized(visit.host, visit.path);
            c.visitor_key(&visit)
        });
        let given: OnceLock<ClickId> = OnceLock::new();
        let give = || {
            given.get_or_init(|| match (&self.clicks, key) {
                (Some(c), Some(key)) => c.assign(key, at),
                _ => ClickId::fresh(at),
            })
        };
        let give_text = || give().as_str();
        // The rules may ask for an id when clicks are recorded or ids
        // appended; otherwise no id is ever made.
        let click_id = if self.clicks.is_some() || settings.click_id_param.is_some() {
            ClickIdSource::Later(&give_text)
        } else {
            ClickIdSource::None
        };
        let request = Request {
            method: req.method(),
            host: visit.host,
            path: visit.path,
            query: req.query(),
            user_agent: visit.user_agent,
            country: visit.country,
            client_ip,
            click_id,
            now: at.unix_secs(),
        };
        let decision = match &visit.normalized {
            Some((host, full)) => snap.rules.decide_normalized(&request, host, full, store),
            None => snap.rules.decide_with(&request, store),
        };
        if let (Some(c), Decision::Redirect(r)) = (&self.clicks, &decision) {
            // Given already when the `Location` carries it; looked up
            // here when no `click_id_param` appends it.
            let click = give();
            // Classified once for both: a repeat visit needs it only for
            // the counters.
            if !visit.head && (!click.repeat || self.analytics.is_some()) {
                let class = r
                    .device
                    .unwrap_or_else(|| snap.rules.classify(visit.user_agent));
                c.record(&visit, click, r, class);
                if let Some(a) = &self.analytics {
                    a.count(&visit, click, r, class);
                }
            }
        }
        Decided {
            kind: kind_of(&decision),
            decision,
            client_ip,
        }
    }
}

/// Counts a hit of the rule in `slot` (`Decision::slot`). Kept apart from
/// [`Decider::decide`] so a request the fast path hands over to the proxy
/// pipeline is counted once, by the pipeline.
pub fn count_hit(snap: &Snapshot, slot: Option<usize>) {
    if let Some(hits) = slot.and_then(|s| snap.rule_hits.get(s)) {
        hits.inc();
    }
}

/// The metrics kind of a decision.
fn kind_of(d: &Decision<'_>) -> Kind {
    match d {
        Decision::Redirect(_) => Kind::Redirect,
        Decision::Respond(_) => Kind::Respond,
        Decision::Proxy(_) => Kind::Proxy,
        Decision::Gone { .. } => Kind::Gone,
        Decision::NotFound => Kind::NotFound,
        Decision::BadRequest { .. } => Kind::BadRequest,
        Decision::NeedsStore => Kind::Error,
    }
}
