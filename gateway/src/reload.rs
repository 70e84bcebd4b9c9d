//! The one reload path every trigger goes through (file watch, SIGHUP, the
//! admin API, the remote source, rollback): build and validate a complete
//! new snapshot off the request threads, then swap it in with a single
//! `arc-swap` store. A refused change leaves the live snapshot untouched.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use crate::metrics::Metrics;
use crate::state::{Live, Meta, Snapshot, VersionInfo};
use rules::{LoadOptions, RuleError, RuleSet};

/// How many versions `GET /admin/versions` lists.
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
    /// Something other than the rules failed (reading or writing a file,
    /// resolving a backend); the live snapshot keeps serving.
    Failed(String),
}

impl Outcome {
    /// `success`, `unchanged` or `failure`, as metrics label it.
    pub fn result(&self) -> &'static str {
        match self {
            Outcome::Applied(_) => "success",
            Outcome::Unchanged(_) => "unchanged",
            Outcome::Refused(_) | Outcome::Failed(_) => "failure",
        }
    }
}

/// Why building a snapshot stopped (kept small: it crosses a task boundary).
enum Failure {
    Refused(Vec<RuleError>),
    Failed(String),
}

struct Inner {
    next_version: u64,
    history: VecDeque<VersionInfo>,
    previous: Option<Arc<Snapshot>>,
}

/// Reloads the rules of one live cell. Reloads are serialized so two
/// triggers at once cannot interleave their builds.
pub struct Reloader {
    live: Live,
    path: PathBuf,
    inner: Mutex<Inner>,
    metrics: Arc<Metrics>,
}

/// Writes `text` to `path` atomically: a temporary file in the same
/// directory, flushed, then renamed over the target. Readers (and a
/// restart) see the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or("rules".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

impl Reloader {
    /// A reloader for `live` (the snapshot loaded at start), reading rules
    /// from `path`.
    pub fn new(live: Live, path: PathBuf, metrics: Arc<Metrics>) -> Arc<Self> {
        let first = live.load().info();
        metrics.live(&live.load(), None);
        Arc::new(Reloader {
            inner: Mutex::new(Inner {
                next_version: first.version + 1,
                history: VecDeque::from([first]),
                previous: None,
            }),
            live,
            path,
            metrics,
        })
    }

    /// The live cell.
    pub fn live(&self) -> &Live {
        &self.live
    }

    /// The rules file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last versions that went live, newest first.
    pub async fn history(&self) -> Vec<VersionInfo> {
        self.inner
            .lock()
            .await
            .history
            .iter()
            .rev()
            .cloned()
            .collect()
    }

    /// Reloads from the rules file; `trigger` names the cause in logs.
    pub async fn reload(&self, trigger: &str) -> Outcome {
        let path = self.path.clone();
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) => {
                let err = RuleError {
                    file: path.display().to_string(),
                    line: 1,
                    column: 1,
                    rule: "-".into(),
                    message: format!("cannot read rules file: {e}"),
                };
                return self
                    .finish(trigger, Instant::now(), Outcome::Refused(vec![err]))
                    .await;
            }
        };
        self.apply(text, trigger, path.display().to_string(), false)
            .await
    }

    /// Validates `text` as the rules file and, when valid, makes it live.
    /// With `persist`, the text is first written over the rules file
    /// (atomically) so a restart or a later reload keeps it.
    pub async fn apply(
        &self,
        text: String,
        trigger: &str,
        source: String,
        persist: bool,
    ) -> Outcome {
        let started = Instant::now();
        let mut inner = self.inner.lock().await;
        let live = self.live.load_full();
        let path = self.path.clone();
        let version = inner.next_version;
        let trigger_owned = trigger.to_string();
        let metrics = self.metrics.clone();
        // Compiling a million links takes about a second of CPU: it runs on
        // the blocking pool, never on a request thread.
        let built = tokio::task::spawn_blocking(move || -> Result<Option<Snapshot>, Failure> {
            if live.rules.content_hash_with(&text).ok().as_deref()
                == Some(&live.rules.content_hash())
            {
                return Ok(None);
            }
            let rules = RuleSet::from_source(&text, &path, &LoadOptions::default())
                .map_err(Failure::Refused)?;
            if rules.content_hash() == live.rules.content_hash() {
                return Ok(None);
            }
            let meta = Meta {
                version,
                source,
                trigger: trigger_owned,
                text: text.into(),
            };
            let snapshot = Snapshot::build(rules, Some(&live), meta, &metrics)
                .map_err(|e| Failure::Failed(format!("{e:#}")))?;
            // Written only once everything else succeeded: the file on disk
            // is always a rule set that went live.
            if persist {
                write_atomically(&path, &snapshot.text).map_err(|e| {
                    Failure::Failed(format!("cannot write {}: {e}", path.display()))
                })?;
            }
            Ok(Some(snapshot))
        })
        .await;
        let outcome = match built {
            Err(join) => Outcome::Failed(format!("reload task failed: {join}")),
            Ok(Err(Failure::Refused(e))) => Outcome::Refused(e),
            Ok(Err(Failure::Failed(m))) => Outcome::Failed(m),
            Ok(Ok(None)) => Outcome::Unchanged(self.live.load().info()),
            Ok(Ok(Some(snapshot))) => {
                inner.next_version += 1;
                Outcome::Applied(self.install(&mut inner, Arc::new(snapshot)).await)
            }
        };
        drop(inner);
        self.finish(trigger, started, outcome).await
    }

    /// Makes the version before the live one live again, and writes its
    /// rules text back over the rules file so a restart agrees.
    pub async fn rollback(&self) -> Outcome {
        let started = Instant::now();
        let mut inner = self.inner.lock().await;
        let outcome = match inner.previous.clone() {
            None => Outcome::Failed("no previous version to roll back to".into()),
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
                            trigger: "rollback".into(),
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
        self.finish("rollback", started, outcome).await
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
        crate::pools::spawn_health_checks(&snapshot.pools);
        let info = snapshot.info();
        self.metrics.live(&snapshot, Some(&current));
        self.live.store(snapshot);
        inner.previous = Some(current);
        inner.history.push_back(info.clone());
        while inner.history.len() > HISTORY {
            inner.history.pop_front();
        }
        info
    }

    async fn finish(&self, trigger: &str, started: Instant, outcome: Outcome) -> Outcome {
        let elapsed = started.elapsed();
        self.metrics.reload(outcome.result(), elapsed.as_secs_f64());
        let ms = elapsed.as_secs_f64() * 1000.0;
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
            Outcome::Failed(msg) => {
                tracing::error!(trigger, error = %msg, "reload failed, the live rules keep serving");
            }
        }
        outcome
    }
}
