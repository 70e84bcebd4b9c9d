//! Delivery with spill: what a remote sink (an HTTP collector, NATS
//! JetStream) does not acknowledge is retried with exponential backoff and
//! jitter, then spilled to local files, and spilled files are delivered
//! once the remote answers again. Nothing is dropped for a remote being
//! down. The remote itself is a [`Transport`]; this file is the one copy
//! of the outage logic every remote sink shares.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::file_sink::FileSink;
use crate::metrics::Metrics;

/// Attempts per batch while the remote is believed up.
const ATTEMPTS: u32 = 3;
/// First backoff; doubled per attempt, plus up to half of it as jitter.
const BACKOFF: Duration = Duration::from_millis(100);
/// While the remote is down, how often a batch (or a replay) probes it;
/// in between, batches go straight to the spill files, so a remote that
/// hangs cannot slow the writer to one batch per timeout.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Lines a transport did not get acknowledged.
#[derive(Debug)]
pub struct Unsent {
    /// Indices into the lines handed to [`Transport::send`].
    pub lines: Vec<usize>,
    /// Why, for the log.
    pub error: String,
}

impl Unsent {
    /// None of `n` lines was acknowledged.
    pub fn all(n: usize, error: impl ToString) -> Unsent {
        Unsent {
            lines: (0..n).collect(),
            error: error.to_string(),
        }
    }
}

/// A remote that takes batches of event lines.
pub trait Transport {
    /// The `sink` label of `gateway_click_events_delivered_total`.
    const SINK: &'static str;
    /// Logged (once) when the remote stops answering.
    const DOWN: &'static str;
    /// Logged when it answers again.
    const BACK: &'static str;

    /// Where events go, for the log.
    fn target(&self) -> &str;

    /// Sends `lines` (each ends with a newline); `Err` names the lines
    /// that were not acknowledged. Those may still have arrived, so a
    /// remote must tolerate seeing a line again (at-least-once).
    fn send(&mut self, lines: &[&str]) -> Result<(), Unsent>;

    /// The process is stopping (nothing is sent after this).
    fn close(&mut self) {}
}

/// Delivers batches through `T`, spilling what it does not acknowledge.
pub struct Spilling<T: Transport> {
    transport: T,
    spill_dir: PathBuf,
    spill: FileSink,
    /// When the remote last failed, while it is believed down.
    down: Option<Instant>,
    last_probe: Instant,
    /// Spill files may exist (also left by an earlier run).
    pending: bool,
    /// Shutting down: no backoff, and no waiting on a remote that fails.
    draining: bool,
    /// The last spill failed (logged once, not per batch).
    spill_failing: bool,
    batch_size: usize,
    metrics: Arc<Metrics>,
}

fn jitter(max: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    Duration::from_nanos(nanos % (max.as_nanos() as u64).max(1))
}

impl<T: Transport> Spilling<T> {
    /// Delivers through `transport`, spilling into `dir/spill`.
    pub fn new(
        transport: T,
        dir: &Path,
        max_file_bytes: u64,
        batch_size: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let spill_dir = dir.join("spill");
        Spilling {
            transport,
            spill: FileSink::new(&spill_dir, "spill", max_file_bytes),
            spill_dir,
            down: None,
            last_probe: Instant::now(),
            pending: true,
            draining: false,
            spill_failing: false,
            batch_size,
            metrics,
        }
    }

    /// Whether a call to the remote may be made now.
    fn may_call(&self) -> bool {
        match self.down {
            None => true,
            Some(_) => !self.draining && self.last_probe.elapsed() >= PROBE_EVERY,
        }
    }

    fn mark_down(&mut self, error: &str) {
        if self.down.is_none() {
            tracing::warn!(url = %self.transport.target(), error = %error, "{}", T::DOWN);
        }
        self.down = Some(Instant::now());
        self.last_probe = Instant::now();
    }

    fn mark_up(&mut self) {
        if self.down.take().is_some() {
            tracing::info!(url = %self.transport.target(), "{}", T::BACK);
        }
    }

    fn delivered(&self, n: usize) {
        self.metrics
            .click_delivered
            .with_label_values(&[T::SINK])
            .inc_by(n as u64);
    }

    /// Sends `todo` (one attempt); returns what is still unacknowledged.
    fn send<'a>(&mut self, todo: Vec<&'a str>) -> (Vec<&'a str>, String) {
        match self.transport.send(&todo) {
            Ok(()) => {
                self.delivered(todo.len());
                (Vec::new(), String::new())
            }
            Err(u) => {
                let rest: Vec<&str> = u
                    .lines
                    .iter()
                    .filter_map(|&i| todo.get(i).copied())
                    .collect();
                self.delivered(todo.len().saturating_sub(rest.len()));
                (rest, u.error)
            }
        }
    }

    /// Delivers a batch, retrying what is not acknowledged; spills the
    /// rest when the remote is down.
    pub fn deliver(&mut self, lines: &[&str]) {
        if lines.is_empty() {
            return;
        }
        let mut todo: Vec<&str> = lines.to_vec();
        if self.may_call() {
            // While down, one attempt per probe; while draining, one attempt.
            let attempts = if self.down.is_some() || self.draining {
                1
            } else {
                ATTEMPTS
            };
            self.last_probe = Instant::now();
            let mut last = String::new();
            for attempt in 0..attempts {
                (todo, last) = self.send(todo);
                if todo.is_empty() {
                    self.mark_up();
                    self.replay();
                    return;
                }
                if attempt + 1 < attempts {
                    let wait = BACKOFF * 2u32.pow(attempt);
                    std::thread::sleep(wait + jitter(wait / 2));
                }
            }
            self.mark_down(&last);
        }
        self.spill_lines(&todo);
    }

    /// Spills lines; what does not reach a spill file is dropped (the
    /// file sink keeps nothing to write later), each line counted once.
    fn spill_lines(&mut self, lines: &[&str]) {
        let written = match self.spill.write_batch(lines) {
            Ok(()) => {
                if std::mem::take(&mut self.spill_failing) {
                    tracing::info!(dir = %self.spill_dir.display(), "spill files are written again");
                }
                lines.len()
            }
            Err(e) => {
                // Logged once per outage: a full disk would log every batch.
                if !std::mem::replace(&mut self.spill_failing, true) {
                    tracing::error!(error = %e.source, dir = %self.spill_dir.display(), "cannot spill click events; they are dropped until the directory is writable again");
                }
                e.written
            }
        };
        if written > 0 {
            self.pending = true;
        }
        self.metrics.click_spilled.inc_by(written as u64);
        self.metrics
            .click_dropped
            .inc_by((lines.len() - written) as u64);
    }

    /// Called when the writer is idle: delivers spilled events once the
    /// remote answers, without waiting for new traffic.
    pub fn tick(&mut self) {
        if self.pending && self.may_call() {
            self.last_probe = Instant::now();
            self.replay();
        }
    }

    /// From now on, never wait on the remote: the process is stopping.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    /// Sends spilled files, oldest first, deleting each once delivered.
    fn replay(&mut self) {
        if let Err(e) = self.spill.close() {
            tracing::error!(error = %e, "cannot close the spill file");
        }
        let Ok(entries) = std::fs::read_dir(&self.spill_dir) else {
            self.pending = false;
            return;
        };
        // Only spill files: not the start's write check or a replay's
        // temporary file (both start with a dot).
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "jsonl")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let lines: Vec<String> = text.lines().map(|l| format!("{l}\n")).collect();
            let mut done = 0;
            while done < lines.len() {
                let end = (done + self.batch_size.max(1)).min(lines.len());
                let (rest, error) =
                    self.send(lines[done..end].iter().map(String::as_str).collect());
                if !rest.is_empty() {
                    // What was acknowledged leaves the file, so it is not
                    // counted (or sent) again on the next replay.
                    let mut keep: Vec<&str> = rest;
                    keep.extend(lines[end..].iter().map(String::as_str));
                    keep_only(&file, &keep);
                    self.mark_down(&error);
                    return;
                }
                done = end;
            }
            if let Err(e) = std::fs::remove_file(&file) {
                tracing::error!(error = %e, file = %file.display(), "cannot remove a delivered spill file");
            }
        }
        self.mark_up();
        self.pending = false;
    }

    /// Syncs the spill file and closes the transport (shutdown).
    pub fn close(&mut self) {
        if let Err(e) = self.spill.close() {
            tracing::error!(error = %e, "cannot sync the spill file");
        }
        self.transport.close();
    }
}

/// Replaces a spill file by the lines still to deliver: written beside it
/// and renamed over it, so a crash leaves either the old or the new file.
/// On failure the old file stays; its lines may be sent twice (the
/// remote's de-duplication, or at-least-once, covers that).
fn keep_only(file: &Path, lines: &[&str]) {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = file.with_file_name(format!(".{name}.tmp"));
    let result = std::fs::write(&tmp, lines.concat())
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, file));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(error = %e, file = %file.display(), "cannot shorten a partly delivered spill file; its delivered lines are sent again");
    }
}
