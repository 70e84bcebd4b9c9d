//! The gateway's answers on the fast path: [`FastAnswer`] for the
//! [`Decider`], so a plain redirect is decided, counted and logged exactly
//! as the pipeline would.

use crate::serve::headers::REQUEST_ID;
use std::time::Instant;

use super::{FastAnswer, H1Request, Outcome};
use crate::metrics::Kind;
use crate::serve::access_log::{self, Line};
use crate::serve::admission;
use crate::serve::decide::{self, Decider, RequestView};
use crate::serve::forward;
use crate::serve::respond::Answer;
use rules::Decision;

/// The gateway's fast answers: everything the rules answer themselves,
/// and plain requests on routes the fast path forwards itself.
impl FastAnswer for Decider {
    fn answer(&self, req: &H1Request<'_>, keep_alive: bool, out: &mut Vec<u8>) -> Outcome {
        let started = Instant::now();
        match self.challenge_cached(req.path) {
            decide::Challenge::No => {}
            decide::Challenge::AskStore => return Outcome::Pipeline,
            decide::Challenge::Known(key_authorization) => {
                let answer = Answer::key_authorization(&key_authorization);
                answer.encode_h1(req.method == "HEAD", keep_alive, out);
                let logged = self.access.sampled();
                self.finish(req, &answer, Kind::Respond, None, None, started, logged);
                return Outcome::Answered;
            }
        }
        let snap = self.live.load();
        let view = self.store_view();
        let decided = self.decide(&snap, &view, req);
        if matches!(decided.decision, Decision::NeedsStore) {
            // Not cached: the pipeline waits for the store.
            return Outcome::Pipeline;
        }
        let (kind, client_ip) = (decided.kind, decided.client_ip);
        let (slot, rule) = (decided.decision.slot(), decided.decision.rule());
        let version = self.announce(&snap);
        let answer = match Answer::of(decided.decision, version) {
            Ok(answer) => answer,
            Err(route) => {
                let Some(pool) = snap.pools.get(route.upstream) else {
                    return Outcome::Pipeline;
                };
                if !forward::forwards_to(pool) {
                    // Counted when the pipeline decides it again.
                    return Outcome::Pipeline;
                }
                decide::count_hit(&snap, slot);
                let logged = self.access.sampled();
                let checked = admission::check(&route, pool, &snap.limiters, client_ip, |name| {
                    req.header_values(name.as_str()).next()
                });
                let admission = match checked {
                    Ok(a) => a,
                    Err(refusal) => {
                        let answer = refusal.answer(version);
                        let head = req.method == "HEAD";
                        answer.encode_h1_changed(
                            head,
                            keep_alive,
                            Some(route.response_headers),
                            out,
                        );
                        self.finish(req, &answer, refusal.kind, client_ip, rule, started, logged);
                        return Outcome::Answered;
                    }
                };
                let cx = forward::Context {
                    pool: pool.clone(),
                    admission,
                    client_ip,
                    trusted: self.trusted_proxies(),
                    tls: req.tls,
                    rules_version: version,
                    keep_alive,
                    started,
                    metrics: self.metrics.clone(),
                    logged,
                };
                return match forward::Job::new(req, &route, cx) {
                    Some(job) => Outcome::Forward(Box::new(job)),
                    // Not expressible as the pipeline would send it: the
                    // pipeline refuses or sends it its own way.
                    None => Outcome::Pipeline,
                };
            }
        };
        decide::count_hit(&snap, slot);
        let logged = self.access.sampled();
        let head = req.method == "HEAD";
        answer.encode_h1(head, keep_alive, out);
        self.finish(req, &answer, kind, client_ip, rule, started, logged);
        Outcome::Answered
    }
}

impl Decider {
    /// Counts and logs an answer the fast path wrote.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        req: &H1Request<'_>,
        answer: &Answer<'_>,
        kind: Kind,
        client_ip: Option<std::net::IpAddr>,
        rule: Option<&str>,
        started: Instant,
        logged: bool,
    ) {
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.request(kind, answer.status, seconds);
        if logged {
            let head = req.method == "HEAD";
            access_log::write(&Line {
                request_id: req.header(REQUEST_ID).unwrap_or(""),
                client_ip,
                method: req.method,
                host: req.host,
                path: req.path,
                status: answer.status,
                kind,
                rule: rule.unwrap_or(""),
                upstream: "",
                upstream_status: 0,
                seconds,
                bytes: if head { 0 } else { answer.body.len() as u64 },
            });
        }
    }
}
