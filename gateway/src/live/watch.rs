//! Reload on file changes: the rules file and every CSV and body file it
//! names ([`run`]); and the same watching for any set of files
//! ([`on_changes`]: the TLS certificates).
//!
//! Directories are watched, not files: editors write a temporary file and
//! rename it over the original, and Kubernetes swaps a `..data` symlink in
//! a ConfigMap volume; a watch on the file itself would see neither. Events
//! for names that matter are debounced (a burst of writes gives one
//! reload), and a reload whose content hash did not change is skipped.

use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use super::reload::Reloader;
use super::snapshot::Trigger;

/// The directories to watch and the file names in them that matter.
fn targets(files: &[PathBuf]) -> (BTreeSet<PathBuf>, BTreeSet<OsString>) {
    let mut dirs = BTreeSet::new();
    let mut names = BTreeSet::new();
    for f in files {
        let dir = f
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        dirs.insert(dir.to_path_buf());
        if let Some(n) = f.file_name() {
            names.insert(n.to_os_string());
        }
    }
    (dirs, names)
}

/// Whether an event path concerns the rules: a watched name, or a
/// ConfigMap's `..data` / timestamped `..2026_…` entries.
fn relevant(path: &Path, names: &BTreeSet<OsString>) -> bool {
    match path.file_name() {
        Some(n) => names.contains(n) || n.to_string_lossy().starts_with(".."),
        None => false,
    }
}

/// How many times a changing file is looked at again before reading it
/// anyway.
const SETTLE_CHECKS: usize = 20;

/// The size and modification time of each file (`None` when missing).
fn stamps(files: &[PathBuf]) -> Vec<Option<(u64, std::time::SystemTime)>> {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)))
        })
        .collect()
}

/// Waits until no file changed size or modification time for `quiet`:
/// a writer that pauses mid-file (no rename) would otherwise have half a
/// file read. `false` when they kept changing.
async fn settle(files: &[PathBuf], quiet: Duration) -> bool {
    let mut before = stamps(files);
    for _ in 0..SETTLE_CHECKS {
        tokio::time::sleep(quiet).await;
        let now = stamps(files);
        if now == before {
            return true;
        }
        before = now;
    }
    false
}

/// Runs until `shutdown` fires: watches, debounces, reloads.
pub async fn run(
    reloader: Arc<Reloader>,
    debounce: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let files = {
        let reloader = reloader.clone();
        move || reloader.live().load().rules.files().to_vec()
    };
    on_changes(files, debounce, shutdown, move || {
        let reloader = reloader.clone();
        async move {
            reloader.reload(Trigger::File, false).await;
        }
    })
    .await;
}

/// Runs until `shutdown` fires: watches the directories of the files
/// `files` names (asked again after each change), and after a burst of
/// changes to them has been quiet for `debounce` and the files stopped
/// growing, calls `changed`.
pub async fn on_changes<F, C, Fut>(
    files: F,
    debounce: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    mut changed: C,
) where
    F: Fn() -> Vec<PathBuf>,
    C: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
    let handler = move |res: notify::Result<notify::Event>| match res {
        Ok(ev) => {
            use notify::event::{AccessKind, AccessMode, EventKind};
            if matches!(ev.kind, EventKind::Access(k) if k != AccessKind::Close(AccessMode::Write))
            {
                return;
            }
            for p in ev.paths {
                let _ = tx.send(p);
            }
        }
        Err(e) => tracing::warn!(error = %e, "file watch error"),
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch files; reload with SIGHUP or the admin API");
            return;
        }
    };
    let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
    let mut names: BTreeSet<OsString>;
    loop {
        // (Re)aim the watches at what the live rules reference now.
        let (dirs, wanted) = targets(&files());
        for d in watched.difference(&dirs) {
            let _ = watcher.unwatch(d);
        }
        for d in dirs.difference(&watched) {
            if let Err(e) = watcher.watch(d, RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %d.display(), error = %e, "cannot watch directory");
            }
        }
        watched = dirs;
        names = wanted;

        // Wait for a relevant event, then for `debounce` of quiet.
        let first = loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                p = rx.recv() => match p {
                    Some(p) if relevant(&p, &names) => break p,
                    Some(_) => continue,
                    None => return,
                },
            }
        };
        let mut quiet_until = tokio::time::Instant::now() + debounce;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep_until(quiet_until) => break,
                p = rx.recv() => match p {
                    None => return,
                    Some(p) if relevant(&p, &names) => quiet_until = tokio::time::Instant::now() + debounce,
                    Some(_) => {}
                },
            }
        }
        tracing::debug!(path = %first.display(), "watched files changed");
        if !settle(&files(), debounce).await {
            tracing::warn!(
                "files still changing after {} checks; reading what is there now",
                SETTLE_CHECKS
            );
        }
        changed().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relevant_names() {
        let (dirs, names) = targets(&["/etc/g/rules.toml".into(), "/etc/g/links/go.csv".into()]);
        assert_eq!(dirs.len(), 2);
        assert!(relevant(Path::new("/etc/g/rules.toml"), &names));
        assert!(relevant(Path::new("/etc/g/links/go.csv"), &names));
        assert!(relevant(Path::new("/etc/g/..data"), &names));
        assert!(relevant(
            Path::new("/etc/g/..2026_11_28_10_00_00.123"),
            &names
        ));
        assert!(!relevant(Path::new("/etc/g/.rules.toml.swp"), &names));
        assert!(!relevant(Path::new("/etc/g/notes.txt"), &names));
    }
}
