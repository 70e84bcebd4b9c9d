//! The gateway's answers on the fast path: [`FastAnswer`] for the
//! [`Decider`], so a plain redirect is decided, counted and logged exactly
//! as the pipeline would.

use crate::serve::headers::REQUEST_ID;
use std::time::Instant;

use super::{FastAnswer, H1Request};
use crate::serve::access_log::{self, Line};
use crate::serve::decide::{self, Decider, RequestView};
use crate::serve::respond::Answer;
use rules::Decision;

/// The gateway's fast answers: everything the rules answer themselves.
impl FastAnswer for Decider {
    fn answer(&self, req: &H1Request<'_>, keep_alive: bool, out: &mut Vec<u8>) -> bool {
        let started = Instant::now();
        let snap = self.live.load();
        let view = self.store_view();
        let decided = self.decide(&snap, &view, req);
        if matches!(decided.decision, Decision::NeedsStore) {
            // Not cached: the pipeline waits for the store.
            return false;
        }
        let (kind, client_ip) = (decided.kind, decided.client_ip);
        let (slot, rule) = (decided.decision.slot(), decided.decision.rule());
        let Ok(answer) = Answer::of(decided.decision, self.announce(&snap)) else {
            // A route: the pipeline decides it again and counts it then.
            return false;
        };
        decide::count_hit(&snap, slot);
        let logged = self.access.sampled();
        let head = req.method == "HEAD";
        answer.encode_h1(head, keep_alive, out);
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.request(kind, answer.status, seconds);
        if logged {
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
        true
    }
}
