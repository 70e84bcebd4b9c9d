//! The one reload path every trigger goes through: build and validate a new
//! snapshot off the request threads, then swap it in with a single store.

use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Mutex;

use crate::state::{Live, Snapshot};
use rules::{RuleError, RuleSet};

/// What a reload did.
#[derive(Debug)]
pub enum Outcome {
    /// A new snapshot is live.
    Applied {
        /// Its version.
        version: u64,
    },
    /// The content is the same as the live one; nothing changed.
    Unchanged {
        /// The live version.
        version: u64,
    },
    /// The new rules were refused; the live snapshot keeps serving.
    Refused(Vec<RuleError>),
    /// Something other than the rules failed (e.g. resolving a backend).
    Failed(String),
}

/// Reloads the rules of one live cell. Reloads are serialized so two
/// triggers at once cannot interleave their builds.
pub struct Reloader {
    live: Live,
    path: PathBuf,
    lock: Mutex<()>,
}

impl Reloader {
    /// A reloader for `live`, reading rules from `path`.
    pub fn new(live: Live, path: PathBuf) -> Arc<Self> {
        Arc::new(Reloader {
            live,
            path,
            lock: Mutex::new(()),
        })
    }

    /// Reloads from the rules file; `trigger` names the cause in logs.
    pub async fn reload(&self, trigger: &str) -> Outcome {
        let _guard = self.lock.lock().await;
        let path = self.path.clone();
        let live = self.live.clone();
        let started = std::time::Instant::now();
        // Parsing a million links takes long enough to stall a request
        // thread; it runs on the blocking pool instead.
        let built = tokio::task::spawn_blocking(move || -> Result<Option<Snapshot>, Outcome> {
            let rules = RuleSet::load(&path).map_err(Outcome::Refused)?;
            let current = live.load();
            if rules.content_hash() == current.rules.content_hash() {
                return Ok(None);
            }
            Snapshot::build(rules, Some(&current), path.display().to_string())
                .map(Some)
                .map_err(|e| Outcome::Failed(format!("{e:#}")))
        })
        .await;
        let outcome = match built {
            Err(join) => Outcome::Failed(format!("reload task failed: {join}")),
            Ok(Err(outcome)) => outcome,
            Ok(Ok(None)) => Outcome::Unchanged {
                version: self.live.load().version,
            },
            Ok(Ok(Some(snapshot))) => {
                let version = snapshot.version;
                crate::pools::spawn_health_checks(&snapshot.pools);
                self.live.store(Arc::new(snapshot));
                Outcome::Applied { version }
            }
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match &outcome {
            Outcome::Applied { version } => {
                tracing::info!(trigger, version, duration_ms = ms, "rules reloaded")
            }
            Outcome::Unchanged { version } => {
                tracing::info!(trigger, version, "rules unchanged, reload skipped")
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
                tracing::error!(trigger, error = %msg, "reload failed, the live rules keep serving")
            }
        }
        outcome
    }
}
