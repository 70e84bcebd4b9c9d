//! The HTTP sink: NDJSON batches POSTed to a collector (Vector, Fluent Bit,
//! …). Failed posts are retried with exponential backoff and jitter; a batch
//! that still fails is spilled to files, and spilled files are delivered
//! once the collector answers again. Nothing is dropped for a collector
//! being down.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::file_sink::FileSink;
use crate::metrics::Metrics;

/// Attempts per batch while the collector is believed up.
const ATTEMPTS: u32 = 3;
/// First backoff; doubled per attempt, plus up to half of it as jitter.
const BACKOFF: Duration = Duration::from_millis(100);
/// While the collector is down, how often a batch (or a replay) probes it;
/// in between, batches go straight to the spill files, so a collector that
/// hangs cannot slow the writer to one batch per timeout.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Posts batches, spilling what cannot be delivered.
pub struct HttpSink {
    agent: ureq::Agent,
    url: String,
    spill_dir: PathBuf,
    spill: FileSink,
    /// When the collector last failed, while it is believed down.
    down: Option<Instant>,
    last_probe: Instant,
    /// Spill files may exist (also left by an earlier run).
    pending: bool,
    /// Shutting down: no backoff, and no waiting on a collector that fails.
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

impl HttpSink {
    /// A sink posting to `url`, spilling into `dir/spill`.
    pub fn new(
        url: String,
        dir: &Path,
        timeout: Duration,
        max_file_bytes: u64,
        batch_size: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build();
        let spill_dir = dir.join("spill");
        HttpSink {
            agent: config.into(),
            url,
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

    fn post(&self, body: &str) -> Result<(), String> {
        let resp = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/x-ndjson")
            .send(body)
            .map_err(|e| e.to_string())?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("collector answered {}", resp.status()))
        }
    }

    /// Whether a call to the collector may be made now.
    fn may_call(&self) -> bool {
        match self.down {
            None => true,
            Some(_) => !self.draining && self.last_probe.elapsed() >= PROBE_EVERY,
        }
    }

    fn mark_down(&mut self, error: &str) {
        if self.down.is_none() {
            tracing::warn!(url = %self.url, error = %error, "click collector unreachable; spilling events to files");
        }
        self.down = Some(Instant::now());
        self.last_probe = Instant::now();
    }

    fn mark_up(&mut self) {
        if self.down.take().is_some() {
            tracing::info!(url = %self.url, "click collector is back; delivering spilled events");
        }
    }

    /// Delivers a batch, retrying; spills it when the collector is down.
    pub fn deliver(&mut self, lines: &[String]) {
        if lines.is_empty() {
            return;
        }
        if self.may_call() {
            let body: String = lines.concat();
            // While down, one attempt per probe; while draining, one attempt.
            let attempts = if self.down.is_some() || self.draining {
                1
            } else {
                ATTEMPTS
            };
            self.last_probe = Instant::now();
            let mut last = String::new();
            for attempt in 0..attempts {
                match self.post(&body) {
                    Ok(()) => {
                        self.metrics
                            .click_delivered
                            .with_label_values(&["http"])
                            .inc_by(lines.len() as u64);
                        self.mark_up();
                        self.replay();
                        return;
                    }
                    Err(e) => last = e,
                }
                if attempt + 1 < attempts {
                    let wait = BACKOFF * 2u32.pow(attempt);
                    std::thread::sleep(wait + jitter(wait / 2));
                }
            }
            self.mark_down(&last);
        }
        self.spill_lines(lines);
    }

    /// Spills a batch; what does not reach a spill file is dropped (the
    /// file sink keeps nothing to write later), each line counted once.
    fn spill_lines(&mut self, lines: &[String]) {
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
    /// collector answers, without waiting for new traffic.
    pub fn tick(&mut self) {
        if self.pending && self.may_call() {
            self.last_probe = Instant::now();
            self.replay();
        }
    }

    /// From now on, never wait on the collector: the process is stopping.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    /// Posts spilled files, oldest first, deleting each once delivered.
    fn replay(&mut self) {
        if let Err(e) = self.spill.close() {
            tracing::error!(error = %e, "cannot close the spill file");
        }
        let Ok(entries) = std::fs::read_dir(&self.spill_dir) else {
            self.pending = false;
            return;
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let lines: Vec<String> = text.lines().map(|l| format!("{l}\n")).collect();
            for chunk in lines.chunks(self.batch_size.max(1)) {
                if let Err(e) = self.post(&chunk.concat()) {
                    // Some chunks of this file may be delivered twice on the
                    // next replay; at-least-once, never lost.
                    self.mark_down(&e);
                    return;
                }
                self.metrics
                    .click_delivered
                    .with_label_values(&["http"])
                    .inc_by(chunk.len() as u64);
            }
            if let Err(e) = std::fs::remove_file(&file) {
                tracing::error!(error = %e, file = %file.display(), "cannot remove a delivered spill file");
            }
        }
        self.mark_up();
        self.pending = false;
    }

    /// Syncs the spill file (shutdown).
    pub fn close(&mut self) {
        if let Err(e) = self.spill.close() {
            tracing::error!(error = %e, "cannot sync the spill file");
        }
    }
}
