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
mod host;
mod links;
mod matcher;
mod place;
mod query;
mod redirect;
mod request;
mod respond;
mod route;
mod rule_ref;
mod ruleset;
mod selftest;
mod template;
mod timestamp;
mod upstream;

use std::path::{Path, PathBuf};

pub use decision::{Decision, Proxy, Redirect, Respond, Target};
pub use device::{Classifier, Device, DeviceClass};
pub use error::RuleError;
pub use explain::{Explanation, CLICK_ID_PLACEHOLDER};
pub use files::{FileAccess, FileError, FileKind, DEFAULT_BODY_FILE_LIMIT, LINKS_FILE_LIMIT};
pub use request::{split_query, Probe, Request};
pub use ruleset::{Counts, RuleSet, Settings, TrailingSlash};
pub use selftest::split_url;
pub use upstream::{Balance, HealthCheck, HealthCheckKind, Upstream};

/// Options for loading a rule set.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Time (Unix seconds) at which embedded `[[test]]`s are evaluated;
    /// the current time when `None`.
    pub now: Option<i64>,
    /// Directories besides the rules file's own from which `body_file` and
    /// `[[links]] file` may be read; relative ones are taken from the rules
    /// file's directory. The rules file's directory is always allowed, and
    /// `/proc`, `/sys` and `/dev` never are. Referenced files that resolve
    /// (after `..` and symlinks) anywhere else are refused.
    pub allow_dirs: Vec<PathBuf>,
    /// Largest `body_file`, in bytes; [`DEFAULT_BODY_FILE_LIMIT`] (1 MiB)
    /// when `None`.
    pub body_file_limit: Option<u64>,
    /// Files never read wherever they are: the server's own configuration
    /// and TLS key, which may sit in the rules file's directory.
    pub deny_files: Vec<PathBuf>,
}

impl LoadOptions {
    fn now(&self) -> i64 {
        self.now.unwrap_or_else(unix_now)
    }
}

/// The current time in seconds since the Unix epoch, the clock
/// [`Request::now`] is read against.
pub fn unix_now() -> i64 {
    timestamp::unix_seconds(std::time::SystemTime::now())
}

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
