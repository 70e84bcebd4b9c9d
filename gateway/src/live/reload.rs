//! The one reload path every trigger goes through (file watch, SIGHUP, the
//! admin API, the remote source, rollback): build and validate a complete
//! new snapshot off the request threads, then swap it in with a single
//! `arc-swap` store. A refused change leaves the live snapshot untouched.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use super::refusal::Refusal;
use super::snapshot::{Live, Meta, Snapshot, Trigger, VersionInfo};
use crate::config::Config;
use crate::metrics::{Metrics, ReloadResult};
use rules::{LoadOptions, RuleError, RuleSet};

/// How many versions `GET /admin/versions` lists (and keeps the rules
/// text of).
const HISTORY: usize = 10;
/// How long a new pool's first health-check round may hold a reload.
const FIRST_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// What a reload did.
#[derive(Debug)]
pub enum Outcome {
    /// A new snapshot is live.
    Applied(VersionInfo),
    /// The content is the same as the live one; nothing changed.
    Unchanged(VersionInfo),
    /// The new rules were refused; the live snapshot keeps serving.
    Refused(Vec<RuleError>),
    /// Valid rules that would empty the live set, or remove more of it
    /// than `rules.max_drop` allows; applied only when forced.
    Held(String),
    /// A rollback with no earlier version to go back to.
    NoPrevious,
    /// Something other than the rules failed (reading or writing a file,
    /// resolving a backend, a build over `rules.reload_timeout`); the live
    /// snapshot keeps serving.
    Failed(String),
}

impl Outcome {
    /// How metrics count it.
    pub fn result(&self) -> ReloadResult {
        match self {
            Outcome::Applied(_) => ReloadResult::Success,
            Outcome::Unchanged(_) => ReloadResult::Unchanged,
            Outcome::Refused(_) | Outcome::Held(_) | Outcome::NoPrevious | Outcome::Failed(_) => {
                ReloadResult::Failure
            }
        }
    }
}

/// What a reload may do without being forced, and how long it may take.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Longest a reload (reading the files, compiling, writing) may take;
    /// a slower one is abandoned and the live rules keep serving.
    pub timeout: Duration,
    /// Share (0 to 1) of the live rules and links one reload may remove.
    pub max_drop: f64,
    /// Whether a rule set with no rules and no links may go live.
    pub allow_empty: bool,
    /// How referenced files are loaded (the directories they may be in).
    pub load: LoadOptions,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            timeout: Duration::from_secs(60),
            max_drop: 0.5,
            allow_empty: false,
            load: LoadOptions::default(),
        }
    }
}

/// Rules, links and link domains that answer requests: what an empty or truncated file
/// loses.
pub fn answering(rules: &RuleSet) -> usize {
    let c = rules.counts();
    c.redirects + c.links + c.routes + c.responds + c.domains
}

impl Policy {
    /// The policy `config` sets.
    pub fn of(config: &Config) -> Policy {
        let r = &config.rules;
        Policy {
            timeout: r.reload_timeout,
            max_drop: r.max_drop,
            allow_empty: r.allow_empty,
            load: config.load_options(),
        }
    }

    /// Why `new` may not replace `live` without force, if it may not.
    fn holds(&self, live: usize, new: usize) -> Option<String> {
        if new == 0 && !self.allow_empty {
            return Some(
                "the new rules have no rules and no links; refusing to go live with an empty set \
                 (set rules.allow_empty = true, or force the reload)"
                    .into(),
            );
        }
        let dropped = live.saturating_sub(new);
        if live > 0 && new > 0 && dropped as f64 > self.max_drop * live as f64 {
            return Some(format!(
                "the new rules remove {dropped} of the {live} live rules and links ({:.0}%), more than \
                 rules.max_drop ({:.0}%); force the reload if that is meant \
                 (POST /admin/reload?force=true or `gateway reload --force`)",
                100.0 * dropped as f64 / live as f64,
                100.0 * self.max_drop
            ));
        }
        None
    }
}

/// Why building a snapshot stopped (kept small: it crosses a task boundary).
enum Failure {
    Refused(Vec<RuleError>),
    Held(String),
    Failed(String),
}

struct Inner {
    next_version: u64,
    previous: Option<Arc<Snapshot>>,
}

/// Reloads the rules of one live cell. Reloads are serialized so two
/// triggers at once cannot interleave their builds.
pub struct Reloader {
    live: Live,
    path: PathBuf,
    inner: Mutex<Inner>,
    /// Apart from `inner`, so listing versions never waits for a build.
    history: std::sync::Mutex<VecDeque<Kept>>,
    policy: Policy,
    metrics: Arc<Metrics>,
    /// The last reload that did not go live.
    refused: std::sync::Mutex<Option<Refusal>>,
}

/// A version in the history. Only its text is kept, not its snapshot:
/// a snapshot holds a whole compiled rule set and its pools.
struct Kept {
    info: VersionInfo,
    text: Arc<str>,
}

/// Writes `text` to `path` atomically: a temporary file in the same
/// directory, flushed, then renamed over the target. Readers (and a
/// restart) see the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    write_unless_abandoned(path, text, &std::sync::Mutex::new(Commit::default()))
}

/// Whether a reload's write of the rules file may still happen: the
/// reload and its time limit decide under one lock, so an abandoned build
/// never writes, and a write that happened is never reported as failed.
#[derive(Default)]
struct Commit {
    abandoned: bool,
    written: bool,
}

/// [`write_atomically`], unless `commit` says the reload was abandoned
/// before the rename (the one step that makes the write visible).
fn write_unless_abandoned(
    path: &Path,
    text: &str,
    commit: &std::sync::Mutex<Commit>,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::sync::atomic::AtomicU64;
    // Unique per write: two writers (an abandoned build and the next
    // reload) must never share, and truncate, one temporary file.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or("rules".into(), |n| n.to_string_lossy().into_owned());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    let mut commit = commit.lock().unwrap_or_else(|p| p.into_inner());
    if commit.abandoned {
        let _ = std::fs::remove_file(&tmp);
        return Err(std::io::Error::other("the reload was abandoned"));
    }
    std::fs::rename(&tmp, path)?;
    commit.written = true;
    Ok(())
}

/// Reads the rules file without letting a FIFO or device block or feed
/// the loader: only a regular file is read.
fn read_rules_file(path: &Path) -> Result<String, RuleError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let refuse = |message: String| RuleError {
        file: path.display().to_string(),
        line: 1,
        column: 1,
        rule: "-".into(),
        message,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| refuse(format!("cannot read rules file: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| refuse(format!("cannot read rules file: {e}")))?;
    if !meta.is_file() {
        return Err(refuse("the rules file is not a regular file".into()));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| refuse(format!("cannot read rules file: {e}")))?;
    Ok(text)
}

impl Reloader {
    /// A reloader for `live` (the snapshot loaded at start), reading rules
    /// from `path` under `policy`.
    pub fn new(live: Live, path: PathBuf, policy: Policy, metrics: Arc<Metrics>) -> Arc<Self> {
        let first = Kept {
            info: live.load().info(),
            text: live.load().text.clone(),
        };
        live.load().publish(&metrics, None);
        Arc::new(Reloader {
            inner: Mutex::new(Inner {
                next_version: first.info.version + 1,
                previous: None,
            }),
            history: std::sync::Mutex::new(VecDeque::from([first])),
            live,
            path,
            policy,
            metrics,
            refused: std::sync::Mutex::new(None),
        })
    }

    /// The live cell.
    pub fn live(&self) -> &Live {
        &self.live
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, VecDeque<Kept>> {
        // A panic while the lock was held leaves at worst one version too
        // many in the list, which is still worth showing.
        match self.history.lock() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The last versions that went live, newest first.
    pub fn history(&self) -> Vec<VersionInfo> {
        self.kept().iter().rev().map(|k| k.info.clone()).collect()
    }

    /// The rules text of `version`, while it is among the kept versions.
    pub fn text_of(&self, version: u64) -> Option<Arc<str>> {
        self.kept()
            .iter()
            .find(|k| k.info.version == version)
            .map(|k| k.text.clone())
    }

    /// Reloads from the rules file; `trigger` names the cause in logs.
    /// `force` applies rules that would empty or mostly empty the set.
    pub async fn reload(&self, trigger: Trigger, force: bool) -> Outcome {
        self.apply(None, trigger, self.path.display().to_string(), false, force)
            .await
    }

    /// Validates `text` (or, when `None`, the rules file) as the rules
    /// file and, when valid, makes it live. With `persist`, the text is
    /// first written over the rules file (atomically) so a restart or a
    /// later reload keeps it. `force` applies rules that the policy would
    /// hold back (an empty set, a large drop).
    pub async fn apply(
        &self,
        text: Option<String>,
        trigger: Trigger,
        source: String,
        persist: bool,
        force: bool,
    ) -> Outcome {
        let started = Instant::now();
        let mut inner = self.inner.lock().await;
        let live = self.live.load_full();
        let path = self.path.clone();
        let version = inner.next_version;
        let metrics = self.metrics.clone();
        let policy = self.policy.clone();
        // Decides, with the time limit, whether the rules file is written.
        let commit = Arc::new(std::sync::Mutex::new(Commit::default()));
        let gate = commit.clone();
        // Reading the files and compiling a million links takes about a
        // second of CPU: it runs on the blocking pool, never on a request
        // thread, and is bounded in time so a stuck file cannot hold every
        // later reload.
        let build = tokio::task::spawn_blocking(move || -> Result<Option<Snapshot>, Failure> {
            let text = match text {
                Some(t) => t,
                None => read_rules_file(&path).map_err(|e| Failure::Refused(vec![e]))?,
            };
            if live.rules.content_hash_with(&text).ok().as_deref()
                == Some(&live.rules.content_hash())
            {
                return Ok(None);
            }
            let rules =
                RuleSet::from_source(&text, &path, &policy.load).map_err(Failure::Refused)?;
            if rules.content_hash() == live.rules.content_hash() {
                return Ok(None);
            }
            if !force {
                if let Some(why) = policy.holds(answering(&live.rules), answering(&rules)) {
                    return Err(Failure::Held(why));
                }
            }
            let meta = Meta {
                version,
                source,
                trigger,
                text: text.into(),
            };
            let snapshot = Snapshot::build(rules, Some(&live), meta, &metrics)
                .map_err(|e| Failure::Failed(format!("{e:#}")))?;
            // Written only once everything else succeeded: the file on disk
            // is always a rule set that went live.
            if persist {
                write_unless_abandoned(&path, &snapshot.text, &gate).map_err(|e| {
                    Failure::Failed(format!("cannot write {}: {e}", path.display()))
                })?;
            }
            Ok(Some(snapshot))
        });
        let mut build = build;
        let mut built = tokio::time::timeout(self.policy.timeout, &mut build).await;
        if built.is_err() {
            let written = {
                let mut c = commit.lock().unwrap_or_else(|p| p.into_inner());
                c.abandoned = true;
                c.written
            };
            // Renamed just before the limit: the file is the new rules, so
            // they go live after all (the build is done but for returning).
            if written {
                built = Ok(build.await);
            }
        }
        let outcome = match built {
            Err(_) => Outcome::Failed(format!(
                "reload took longer than rules.reload_timeout ({}); abandoned",
                humantime::format_duration(self.policy.timeout)
            )),
            Ok(Err(join)) => Outcome::Failed(format!("reload task failed: {join}")),
            Ok(Ok(Err(Failure::Refused(e)))) => Outcome::Refused(e),
            Ok(Ok(Err(Failure::Held(m)))) => Outcome::Held(m),
            Ok(Ok(Err(Failure::Failed(m)))) => Outcome::Failed(m),
            Ok(Ok(Ok(None))) => Outcome::Unchanged(self.live.load().info()),
            Ok(Ok(Ok(Some(snapshot)))) => {
                inner.next_version += 1;
                Outcome::Applied(self.install(&mut inner, Arc::new(snapshot)).await)
            }
        };
        drop(inner);
        self.finish(trigger, started, outcome).await
    }

    /// The last reload that did not go live, if any since the start.
    pub fn last_refused(&self) -> Option<Refusal> {
        match self.refused.lock() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Makes kept version `version` live again as a new version, and
    /// writes its rules over the rules file so a restart agrees. The
    /// version just before the live one comes back whole (its pools and
    /// their health); an older one is built again from its text.
    pub async fn rollback_to(&self, version: u64) -> Outcome {
        let previous = self.inner.lock().await.previous.as_ref().map(|p| p.version);
        if previous == Some(version) {
            return self.rollback().await;
        }
        let Some(text) = self.text_of(version) else {
            return Outcome::Failed(format!("version {version} is unknown or no longer kept"));
        };
        self.apply(
            Some(text.to_string()),
            Trigger::Rollback,
            format!("rollback to version {version}"),
            true,
            true,
        )
        .await
    }

    /// Makes the version before the live one live again, and writes its
    /// rules text back over the rules file so a restart agrees.
    pub async fn rollback(&self) -> Outcome {
        let started = Instant::now();
        let mut inner = self.inner.lock().await;
        let outcome = match inner.previous.clone() {
            None => Outcome::NoPrevious,
            Some(prev) => {
                let path = self.path.clone();
                let text = prev.text.clone();
                let written =
                    tokio::task::spawn_blocking(move || write_atomically(&path, &text)).await;
                match written {
                    Ok(Ok(())) => {
                        // A new version with the previous rules: versions only
                        // go up, and its metrics and "live since" are now.
                        let meta = Meta {
                            version: inner.next_version,
                            source: format!("rollback to version {}", prev.version),
                            trigger: Trigger::Rollback,
                            text: prev.text.clone(),
                        };
                        inner.next_version += 1;
                        let snapshot = Arc::new(Snapshot::again(&prev, meta, &self.metrics));
                        Outcome::Applied(self.install(&mut inner, snapshot).await)
                    }
                    Ok(Err(e)) => {
                        Outcome::Failed(format!("cannot write {}: {e}", self.path.display()))
                    }
                    Err(e) => Outcome::Failed(format!("rollback task failed: {e}")),
                }
            }
        };
        drop(inner);
        self.finish(Trigger::Rollback, started, outcome).await
    }

    /// Swaps `snapshot` in. Pools it does not share with the live snapshot
    /// get one health-check round first, so a dead backend in a new pool
    /// takes no traffic.
    async fn install(&self, inner: &mut Inner, snapshot: Arc<Snapshot>) -> VersionInfo {
        let current = self.live.load_full();
        for (name, pool) in &snapshot.pools {
            let shared = current
                .pools
                .get(name)
                .is_some_and(|p| Arc::ptr_eq(p, pool));
            if !shared && pool.def.health_check.is_some() {
                let _ = tokio::time::timeout(FIRST_CHECK_TIMEOUT, pool.check_once()).await;
            }
        }
        crate::upstream::spawn_health_checks(&snapshot.pools);
        let info = snapshot.info();
        let text = snapshot.text.clone();
        snapshot.publish(&self.metrics, Some(&current));
        self.live.store(snapshot);
        inner.previous = Some(current);
        let mut history = self.kept();
        history.push_back(Kept {
            info: info.clone(),
            text,
        });
        while history.len() > HISTORY {
            history.pop_front();
        }
        info
    }

    async fn finish(&self, trigger: Trigger, started: Instant, outcome: Outcome) -> Outcome {
        let refusal = match &outcome {
            Outcome::Refused(errors) => Some(Refusal::now(trigger, errors.clone(), None)),
            Outcome::Held(why) | Outcome::Failed(why) => {
                Some(Refusal::now(trigger, Vec::new(), Some(why.clone())))
            }
            Outcome::Applied(_) | Outcome::Unchanged(_) | Outcome::NoPrevious => None,
        };
        if let Some(refusal) = refusal {
            match self.refused.lock() {
                Ok(mut r) => *r = Some(refusal),
                Err(poisoned) => *poisoned.into_inner() = Some(refusal),
            }
        }
        let elapsed = started.elapsed();
        let trigger = trigger.as_str();
        self.metrics.reload(outcome.result(), elapsed.as_secs_f64());
        // Tenths of a millisecond: the float of the raw duration prints
        // noise digits (1.3441340000000002).
        let ms = ((elapsed.as_micros() + 50) / 100) as f64 / 10.0;
        match &outcome {
            Outcome::Applied(v) => {
                tracing::info!(trigger, version = v.version, hash = %v.hash, duration_ms = ms, "rules reloaded");
            }
            Outcome::Unchanged(v) => {
                tracing::info!(
                    trigger,
                    version = v.version,
                    "rules unchanged, reload skipped"
                );
            }
            Outcome::Refused(errors) => {
                for e in errors {
                    tracing::error!(trigger, file = %e.file, line = e.line, column = e.column, rule = %e.rule, "{}", e.message);
                }
                tracing::error!(
                    trigger,
                    errors = errors.len(),
                    "rules refused, the live rules keep serving"
                );
            }
            Outcome::Held(why) => {
                tracing::error!(trigger, reason = %why, "rules held back, the live rules keep serving");
            }
            Outcome::NoPrevious => {
                tracing::warn!(trigger, "no previous version to roll back to");
            }
            Outcome::Failed(msg) => {
                tracing::error!(trigger, error = %msg, "reload failed, the live rules keep serving");
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_abandoned_reload_never_writes_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.toml");
        std::fs::write(&path, "old").unwrap();
        let commit = std::sync::Mutex::new(Commit {
            abandoned: true,
            written: false,
        });
        assert!(write_unless_abandoned(&path, "new", &commit).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let commit = std::sync::Mutex::new(Commit::default());
        write_unless_abandoned(&path, "new", &commit).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert!(commit.lock().unwrap().written);
    }
}
