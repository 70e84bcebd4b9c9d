//! The HTTP sink: NDJSON batches POSTed to a collector (Vector, Fluent Bit,
//! …). Failed posts are retried with exponential backoff and jitter; a batch
//! that still fails is spilled to files, and spilled files are delivered
//! once the collector answers again. Nothing is dropped for a collector
//! being down.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::file_sink::FileSink;
use crate::metrics::Metrics;

/// Attempts per batch while the collector is believed up.
const ATTEMPTS: u32 = 3;
/// First backoff; doubled per attempt, plus up to half of it as jitter.
const BACKOFF: Duration = Duration::from_millis(100);

/// Posts batches, spilling what cannot be delivered.
pub struct HttpSink {
    agent: ureq::Agent,
    url: String,
    spill_dir: PathBuf,
    spill: FileSink,
    down: bool,
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
            down: false,
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

    /// Delivers a batch, retrying; spills it when the collector is down.
    pub fn deliver(&mut self, lines: &[String]) {
        if lines.is_empty() {
            return;
        }
        let body: String = lines.concat();
        // While down, one attempt per batch: enough to notice recovery
        // without holding the queue up with backoffs.
        let attempts = if self.down { 1 } else { ATTEMPTS };
        let mut last = String::new();
        for attempt in 0..attempts {
            match self.post(&body) {
                Ok(()) => {
                    self.metrics
                        .click_delivered
                        .with_label_values(&["http"])
                        .inc_by(lines.len() as u64);
                    if self.down {
                        tracing::info!(url = %self.url, "click collector is back; delivering spilled events");
                        self.down = false;
                    }
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
        if !self.down {
            tracing::warn!(url = %self.url, error = %last, "click collector unreachable; spilling events to files");
            self.down = true;
        }
        match self.spill.write_batch(lines) {
            Ok(()) => self.metrics.click_spilled.inc_by(lines.len() as u64),
            Err(e) => {
                tracing::error!(error = %e, dir = %self.spill_dir.display(), "cannot spill click events; they are lost");
                self.metrics.click_dropped.inc_by(lines.len() as u64);
            }
        }
    }

    /// Posts spilled files, oldest first, deleting each once delivered.
    fn replay(&mut self) {
        if let Err(e) = self.spill.close() {
            tracing::error!(error = %e, "cannot close the spill file");
        }
        let Ok(entries) = std::fs::read_dir(&self.spill_dir) else {
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
                    tracing::warn!(error = %e, "replaying spilled clicks failed; will retry");
                    self.down = true;
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
    }

    /// Syncs the spill file (shutdown).
    pub fn close(&mut self) {
        if let Err(e) = self.spill.close() {
            tracing::error!(error = %e, "cannot sync the spill file");
        }
    }
}
