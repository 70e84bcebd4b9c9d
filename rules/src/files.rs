//! The one way the rules engine reads a file a rule set references
//! (`body_file`, `[[links]] file`).
//!
//! Rules can arrive over the admin API or from a remote URL, so a file name
//! in them is untrusted: without a fence, `body_file = "/etc/passwd"` would
//! publish that file to anonymous clients. Every referenced file must
//! therefore resolve, after following symlinks and `..`, inside the rules
//! file's directory or an allowed directory, be a regular file outside
//! `/proc`, `/sys` and `/dev`, and stay under a size limit.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Default limit of a `body_file`: bodies are held in memory and sent
/// whole, and nothing legitimate (app-site association, robots.txt) comes
/// close.
pub const DEFAULT_BODY_FILE_LIMIT: u64 = 1 << 20;

/// Limit of a `[[links]]` file: destinations are addressed by 32-bit
/// offsets into a copy of it.
pub const LINKS_FILE_LIMIT: u64 = u32::MAX as u64;

/// Kernel interfaces that look like files but are not content to serve
/// (environment, memory, devices), refused even inside an allowed directory.
const SYSTEM_DIRS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// What a referenced file is used for; decides its size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A `[[respond]]` `body_file`.
    Body,
    /// A `[[links]]` CSV `file`.
    Links,
}

/// Why a referenced file was not read. Messages name neither the file's
/// content nor where a refused path resolves to.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// It resolves outside every allowed directory, or does not resolve at
    /// all from outside them (so the message is no probe for what exists).
    #[error("it is not inside the rules file's directory or an allowed directory (allow_dirs)")]
    Outside,
    /// It resolves under `/proc`, `/sys` or `/dev`.
    #[error("files under /proc, /sys and /dev are never read")]
    System,
    /// One of the server's own files (its configuration, TLS key), which
    /// may sit next to the rules but hold secrets.
    #[error("it is one of the gateway's own configuration or key files")]
    Denied,
    /// A directory, FIFO, socket or device.
    #[error("it is not a regular file")]
    NotRegular,
    /// Larger than the limit for its kind.
    #[error("it is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// An inside file that is missing or unreadable.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Where referenced files may be read from, and how large they may be.
#[derive(Debug, Clone)]
pub struct FileAccess {
    /// Canonical allowed directories.
    roots: Vec<PathBuf>,
    /// Canonical files never read, even inside an allowed directory.
    denied: Vec<PathBuf>,
    body_limit: u64,
}

impl FileAccess {
    /// Files may come from `rules_dir` (the rules file's directory) and
    /// `allow_dirs` (relative ones are taken from `rules_dir`). A directory
    /// that does not exist allows nothing. `body_limit` is the limit of a
    /// body file, [`DEFAULT_BODY_FILE_LIMIT`] when `None`.
    pub fn new(rules_dir: &Path, allow_dirs: &[PathBuf], body_limit: Option<u64>) -> FileAccess {
        let rules_dir = non_empty(rules_dir);
        let roots = std::iter::once(rules_dir.to_path_buf())
            .chain(allow_dirs.iter().map(|d| rules_dir.join(d)))
            .filter_map(|d| std::fs::canonicalize(d).ok())
            .collect();
        FileAccess {
            roots,
            denied: Vec::new(),
            body_limit: body_limit.unwrap_or(DEFAULT_BODY_FILE_LIMIT),
        }
    }

    /// Also refuses `files` (the server's configuration, its TLS key),
    /// wherever they are.
    pub fn deny(mut self, files: &[PathBuf]) -> FileAccess {
        self.denied = files
            .iter()
            .filter_map(|f| std::fs::canonicalize(f).ok())
            .collect();
        self
    }

    /// The size limit of a kind of file, in bytes.
    pub fn limit(&self, kind: FileKind) -> u64 {
        match kind {
            FileKind::Body => self.body_limit,
            FileKind::Links => LINKS_FILE_LIMIT,
        }
    }

    /// The content of the file at `path` (relative to the working
    /// directory, as any path), if it may be read.
    pub fn read(&self, path: &Path, kind: FileKind) -> Result<Vec<u8>, FileError> {
        let real = self.resolve(path)?;
        // Refusing on the path's metadata first means a device or FIFO is
        // not even opened in the usual case; the opened file is checked
        // again below, which is what counts if the path changed meanwhile.
        if !std::fs::metadata(&real)?.is_file() {
            return Err(FileError::NotRegular);
        }
        let file = open(&real)?;
        // A directory on the way could have been swapped for a symlink
        // since the path was resolved: check where the opened file really
        // is (Linux names it in /proc; elsewhere the resolved path stands).
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            if let Ok(opened) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
                self.check(&opened)?;
            }
        }
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(FileError::NotRegular);
        }
        let limit = self.limit(kind);
        if meta.len() > limit {
            return Err(FileError::TooLarge { limit });
        }
        // Bounded, for a file that grows while it is read.
        let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.take(limit.saturating_add(1)).read_to_end(&mut data)?;
        if data.len() as u64 > limit {
            return Err(FileError::TooLarge { limit });
        }
        Ok(data)
    }

    /// The canonical path of `path`, if it is inside an allowed directory.
    fn resolve(&self, path: &Path) -> Result<PathBuf, FileError> {
        match std::fs::canonicalize(path) {
            Ok(real) => {
                self.check(&real)?;
                Ok(real)
            }
            // "Not found" is only told for a file whose directory is
            // inside; from outside, every path gets the same answer.
            Err(e) => {
                let parent = path.parent().map(non_empty).map(std::fs::canonicalize);
                match parent {
                    Some(Ok(dir)) if self.check(&dir).is_ok() => Err(FileError::Io(e)),
                    _ => Err(FileError::Outside),
                }
            }
        }
    }

    fn check(&self, real: &Path) -> Result<(), FileError> {
        if SYSTEM_DIRS.iter().any(|d| real.starts_with(d)) {
            Err(FileError::System)
        } else if self.denied.iter().any(|f| f == real) {
            Err(FileError::Denied)
        } else if self.roots.iter().any(|r| real.starts_with(r)) {
            Ok(())
        } else {
            Err(FileError::Outside)
        }
    }
}

/// `Path::parent` of a bare file name is empty, which names no directory.
fn non_empty(dir: &Path) -> &Path {
    if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }
}

/// Opens for reading without ever blocking (a FIFO with no writer would
/// hang the loader), following no symlink in the last component (the path
/// is canonical, so one there was put in after the check), and never
/// making a terminal the controlling one.
fn open(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY);
    }
    options.open(path)
}
