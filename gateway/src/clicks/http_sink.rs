//! The HTTP sink: NDJSON batches POSTed to a collector (Vector, Fluent Bit,
//! …). Retries, spill while the collector is down and replay are
//! [`Spilling`]'s; this file only posts.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::spill::{Spilling, Transport, Unsent};
use crate::metrics::Metrics;

/// Posts batches, spilling what cannot be delivered.
pub type HttpSink = Spilling<HttpPost>;

/// One POST per batch; a batch is delivered whole or not at all.
pub struct HttpPost {
    agent: ureq::Agent,
    url: String,
}

/// A sink posting to `url`, spilling into `dir/spill`.
pub fn new(
    url: String,
    dir: &Path,
    timeout: Duration,
    max_file_bytes: u64,
    batch_size: usize,
    metrics: Arc<Metrics>,
) -> HttpSink {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build();
    let post = HttpPost {
        agent: config.into(),
        url,
    };
    Spilling::new(post, dir, max_file_bytes, batch_size, metrics)
}

impl HttpPost {
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
}

impl Transport for HttpPost {
    const SINK: &'static str = "http";
    const DOWN: &'static str = "click collector unreachable; spilling events to files";
    const BACK: &'static str = "click collector is back; delivering spilled events";

    fn target(&self) -> &str {
        &self.url
    }

    fn send(&mut self, lines: &[&str]) -> Result<(), Unsent> {
        self.post(&lines.concat())
            .map_err(|e| Unsent::all(lines.len(), e))
    }
}
