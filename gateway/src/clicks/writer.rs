//! The writer thread: takes lines off the queue in batches and hands them
//! to the sink. A plain thread, because the sinks block (file writes,
//! fsync, HTTP posts with backoff, waits for JetStream acks) and must never
//! hold up a request thread.

use crossbeam_queue::ArrayQueue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often an idle writer looks at the queue.
const POLL: Duration = Duration::from_millis(10);

use super::file_sink::FileSink;
use super::spill::{Spilling, Transport};
use super::{http_sink, nats_sink};
use super::{ClicksSection, SinkKind};
use crate::metrics::Metrics;

enum Sink {
    /// The files, and whether the last batch failed (so a disk that stays
    /// full logs once, not once per batch).
    File(FileSink, bool),
    /// A remote (HTTP collector, NATS) with spill files.
    Remote(Box<dyn Remote>),
}

/// A remote sink with spill files, whatever its transport.
trait Remote: Send {
    fn deliver(&mut self, lines: &[String]);
    fn tick(&mut self);
    fn drain(&mut self);
    fn close(&mut self);
}

impl<T: Transport + Send> Remote for Spilling<T> {
    fn deliver(&mut self, lines: &[String]) {
        Spilling::deliver(self, lines);
    }
    fn tick(&mut self) {
        Spilling::tick(self);
    }
    fn drain(&mut self) {
        Spilling::drain(self);
    }
    fn close(&mut self) {
        Spilling::close(self);
    }
}

impl Sink {
    fn write(&mut self, lines: &[String], metrics: &Metrics) {
        match self {
            Sink::File(f, failing) => {
                // Each line is counted once: delivered when it is in a
                // file, dropped when it is not (the sink keeps nothing to
                // write later).
                let written = match f.write_batch(lines) {
                    Ok(()) => {
                        if std::mem::take(failing) {
                            tracing::info!(dir = %f.dir().display(), "click files are written again");
                        }
                        lines.len()
                    }
                    Err(e) => {
                        if !std::mem::replace(failing, true) {
                            tracing::error!(error = %e.source, dir = %e.dir.display(), "cannot write click events; they are dropped until the directory is writable again");
                        }
                        e.written
                    }
                };
                metrics
                    .click_delivered
                    .with_label_values(&["file"])
                    .inc_by(written as u64);
                metrics.click_dropped.inc_by((lines.len() - written) as u64);
            }
            Sink::Remote(r) => r.deliver(lines),
        }
    }

    /// Nothing to write this round.
    fn idle(&mut self) {
        if let Sink::Remote(r) = self {
            r.tick();
        }
    }

    /// The process is stopping.
    fn drain(&mut self) {
        if let Sink::Remote(r) = self {
            r.drain();
        }
    }

    fn close(&mut self) {
        match self {
            Sink::File(f, _) => {
                if let Err(e) = f.close() {
                    tracing::error!(error = %e, "cannot sync the click file");
                }
            }
            Sink::Remote(r) => r.close(),
        }
    }
}

/// Starts the writer. It stops when `stop` is set (after writing everything
/// queued) or when every sender is gone.
pub fn spawn(
    cfg: ClicksSection,
    queue: Arc<ArrayQueue<String>>,
    spare: Arc<ArrayQueue<String>>,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let mut sink = match cfg.sink {
        SinkKind::File => Sink::File(FileSink::new(&cfg.dir, "clicks", cfg.max_file_bytes), false),
        SinkKind::Http => Sink::Remote(Box::new(http_sink::new(
            cfg.url.clone().unwrap_or_default(),
            &cfg.dir,
            cfg.http_timeout,
            cfg.max_file_bytes,
            cfg.batch_size,
            metrics.clone(),
        ))),
        SinkKind::Nats => Sink::Remote(Box::new(
            nats_sink::new(&cfg, metrics.clone()).map_err(std::io::Error::other)?,
        )),
    };
    std::thread::Builder::new()
        .name("click-writer".into())
        .spawn(move || {
            let mut batch: Vec<String> = Vec::with_capacity(cfg.batch_size);
            let mut since = Instant::now();
            // Polled, not woken: a wake-up per event would cost every click
            // a futex system call on the request path.
            let nap = cfg.flush_interval.min(POLL);
            loop {
                let stopping = stop.load(Ordering::Acquire);
                if stopping {
                    sink.drain();
                }
                while batch.len() < cfg.batch_size || stopping {
                    match queue.pop() {
                        Some(line) => {
                            if batch.is_empty() {
                                since = Instant::now();
                            }
                            batch.push(line);
                        }
                        None => break,
                    }
                }
                let full = batch.len() >= cfg.batch_size;
                let due = !batch.is_empty() && since.elapsed() >= cfg.flush_interval;
                if full || due || (stopping && !batch.is_empty()) {
                    metrics.click_queue_depth.sub(batch.len() as i64);
                    for chunk in batch.chunks(cfg.batch_size) {
                        sink.write(chunk, &metrics);
                    }
                    // Hand the buffers back; a full spare queue just frees them.
                    for line in batch.drain(..) {
                        let _ = spare.push(line);
                    }
                } else if batch.is_empty() {
                    sink.idle();
                }
                if stopping {
                    sink.close();
                    tracing::info!("click events drained");
                    return;
                }
                if !full {
                    std::thread::sleep(nap);
                }
            }
        })
}
