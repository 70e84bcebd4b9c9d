//! How a rule set is loaded: the options a caller passes to
//! [`RuleSet::load_with`](crate::RuleSet::load_with).

use std::path::PathBuf;

use crate::timestamp::unix_now;

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
    /// Largest `body_file`, in bytes; [`DEFAULT_BODY_FILE_LIMIT`](crate::DEFAULT_BODY_FILE_LIMIT) (1 MiB)
    /// when `None`.
    pub body_file_limit: Option<u64>,
    /// Files never read wherever they are: the server's own configuration
    /// and TLS key, which may sit in the rules file's directory.
    pub deny_files: Vec<PathBuf>,
}

impl LoadOptions {
    pub(crate) fn now(&self) -> i64 {
        self.now.unwrap_or_else(unix_now)
    }
}
