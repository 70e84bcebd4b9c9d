//! The last reload that did not go live, kept so an operator can see why
//! after the fact (the console's Rules page, `GET /admin/rules`), whatever
//! triggered it: a file change, SIGHUP, the admin API, the remote poll.

use rules::RuleError;
use serde::Serialize;
use std::time::SystemTime;

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
    /// A refusal, now, of what `trigger` asked for: the rules' `errors`,
    /// or another `reason`.
    pub fn now(trigger: Trigger, errors: Vec<RuleError>, reason: Option<String>) -> Refusal {
        Refusal {
            at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            trigger: trigger.as_str(),
            errors,
            reason,
        }
    }
}
