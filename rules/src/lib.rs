//! The gateway's rules engine.
//!
//! A pure library: it turns a rules file into an immutable, validated and
//! compiled [`RuleSet`], and answers [`RuleSet::decide`] — "what do we do with
//! this request?" — from memory, with no I/O and no global state.
//!
//! ```no_run
//! use rules::{Decision, Request, RuleSet};
//!
//! let set = RuleSet::load("config/rules.toml").map_err(|errors| {
//!     for e in &errors {
//!         eprintln!("{e}"); // file:line:col: rule <id>: message
//!     }
//! }).unwrap();
//! let req = Request::get("go.example.com", "/p/123?x=1", 1_790_000_000);
//! if let Decision::Redirect(r) = set.decide(&req) {
//!     println!("{} {:?}", r.status, r.location);
//! }
//! ```
//!
//! The rule format and matching semantics are documented in `docs/rules.md`.

mod choose;
mod compile;
mod decision;
mod device;
mod encode;
mod error;
mod exact;
mod explain;
mod files;
mod format;
mod header_changes;
mod host;
mod link_fields;
mod matcher;
mod options;
mod query;
mod rate_limit;
mod request;
mod rule_ref;
mod ruleset;
mod size;
mod store_rules;
mod stored;
mod template;
mod timestamp;
mod upstream;

use std::path::Path;

pub use decision::{Decision, Proxy, Redirect, Respond, Target};
pub use device::{Classifier, Device, DeviceClass};
pub use error::RuleError;
pub use explain::{Explanation, CLICK_ID_PLACEHOLDER};
pub use files::{FileAccess, FileError, FileKind, DEFAULT_BODY_FILE_LIMIT, LINKS_FILE_LIMIT};
pub use header_changes::{HeaderChanges, FORWARDING_HEADERS};
pub use options::LoadOptions;
pub use rate_limit::{LimitKey, RateLimit};
pub use request::{split_query, split_url, ClickIdSource, Probe, Request};
pub use ruleset::{Counts, RuleSet, Settings, TrailingSlash};
pub use size::parse_size;
pub use stored::{
    FieldError, FieldErrors, LinkSource, LinkSpec, NoStore, StoreLink, StoreStep, Stored,
};
pub use timestamp::{parse as parse_timestamp, unix_now};
pub use upstream::{Balance, Ejection, HealthCheck, HealthCheckKind, Upstream};

impl RuleSet {
    /// Loads, validates and compiles the rules file at `path`, then runs its
    /// embedded tests. Every problem is returned, each with its location.
    pub fn load(path: impl AsRef<Path>) -> Result<RuleSet, Vec<RuleError>> {
        Self::load_with(path, &LoadOptions::default())
    }

    /// [`RuleSet::load`] with options.
    pub fn load_with(
        path: impl AsRef<Path>,
        opts: &LoadOptions,
    ) -> Result<RuleSet, Vec<RuleError>> {
        let path = path.as_ref();
        let src = std::fs::read_to_string(path).map_err(|e| {
            vec![RuleError {
                file: path.display().to_string(),
                line: 1,
                column: 1,
                rule: "-".into(),
                message: format!("cannot read rules file: {e}"),
            }]
        })?;
        Self::from_source(&src, path, opts)
    }

    /// Compiles rules from `src` as if it were the file at `path`: messages
    /// name `path`, and CSV and body files are found relative to it. Used for
    /// rules that arrive over the admin API before they are written out.
    pub fn from_source(
        src: &str,
        path: impl AsRef<Path>,
        opts: &LoadOptions,
    ) -> Result<RuleSet, Vec<RuleError>> {
        compile::compile(src, path.as_ref(), opts)
    }
}
