//! The last reload that did not go live, kept so an operator can see why
//! after the fact (the console's Rules page, `GET /admin/rules`), whatever
//! triggered it: a file change, SIGHUP, the admin API, the remote poll.

use rules::RuleError;
use serde::Serialize;
use std::time::SystemTime;

use super::reload::Outcome;
use super::snapshot::Trigger;

/// A reload that left the live rules as they were.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    /// When (RFC 3339).
    pub at: String,
    /// What asked for it (`file`, `signal`, `admin`, …).
    pub trigger: &'static str,
    /// The rules' errors, each with file, line, column and rule id; empty
    /// when something else stopped it (see `reason`).
    pub errors: Vec<RuleError>,
    /// Why, when it was not the rules' errors: held back as too large a
    /// drop, a file that could not be read or written, a timeout.
    pub reason: Option<String>,
}

impl Refusal {
    /// The refusal `outcome` is, if it is one.
    pub fn of(trigger: Trigger, outcome: &Outcome) -> Option<Refusal> {
        let (errors, reason) = match outcome {
            Outcome::Refused(errors) => (errors.clone(), None),
            Outcome::Held(why) => (Vec::new(), Some(why.clone())),
            Outcome::Failed(why) => (Vec::new(), Some(why.clone())),
            Outcome::Applied(_) | Outcome::Unchanged(_) | Outcome::NoPrevious => return None,
        };
        Some(Refusal {
            at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            trigger: trigger.as_str(),
            errors,
            reason,
        })
    }
}
