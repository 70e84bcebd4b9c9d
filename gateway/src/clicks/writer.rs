//! The writer thread: takes the request threads' batches of lines and
//! hands them to the sink. A plain thread, because the sinks block (file
//! writes, fsync, HTTP posts with backoff, waits for JetStream acks) and
//! must never hold up a request thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the writer looks for full batches.
const POLL: Duration = Duration::from_millis(10);

use super::batches::{Batch, Batches};
use super::event::Event;
use super::file_sink::FileSink;
use super::spill::{Spilling, Transport};
use super::{http_sink, nats};
use super::{ClicksSection, SinkKind};
use crate::metrics::Metrics;

/// One request thread's batch: event lines, one after the other, each
/// ending in a newline.
#[derive(Default)]
pub struct Lines {
    text: String,
    /// Where each line ends: the writer finds them without scanning.
    ends: Vec<usize>,
}

impl Lines {
    /// Appends `event`'s line.
    pub fn push(&mut self, event: &Event<'_>) {
        event.write_line(&mut self.text);
        self.ends.push(self.text.len());
    }

    /// The lines, each with its newline.
    fn iter(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .filter_map(|(start, end)| self.text.get(start..end))
    }
}

impl Batch for Lines {
    fn len(&self) -> usize {
        self.ends.len()
    }
    fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }
}

enum Sink {
    /// The files, and whether the last batch failed (so a disk that stays
    /// full logs once, not once per batch).
    File(FileSink, bool),
    /// A remote (HTTP collector, NATS) with spill files.
    Remote(Box<dyn Remote>),
}

/// A remote sink with spill files, whatever its transport.
trait Remote: Send {
    fn deliver(&mut self, lines: &[&str]);
    fn tick(&mut self);
    fn drain(&mut self);
    fn close(&mut self);
}

impl<T: Transport + Send> Remote for Spilling<T> {
    fn deliver(&mut self, lines: &[&str]) {
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
    fn write(&mut self, lines: &[&str], metrics: &Metrics) {
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

/// Starts the writer. It stops when `stop` is set, after writing
/// everything the request threads handed it.
pub fn spawn(
    cfg: ClicksSection,
    batches: Arc<Batches<Lines>>,
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
            nats::new(&cfg, metrics.clone()).map_err(std::io::Error::other)?,
        )),
    };
    std::thread::Builder::new()
        .name("click-writer".into())
        .spawn(move || {
            let mut taken: Vec<Lines> = Vec::new();
            // Of the events in `taken`, those handed over in full batches
            // (counted in the depth gauge).
            let mut handed = 0;
            let mut flushed = Instant::now();
            // Polled, not woken: a wake-up per batch would cost a request
            // thread a futex system call.
            let nap = cfg.flush_interval.min(POLL);
            loop {
                let stopping = stop.load(Ordering::Acquire);
                if stopping {
                    sink.drain();
                }
                // Unfinished batches once per flush interval (and at the
                // end), so a quiet gateway's events wait no longer than that.
                let due = stopping || flushed.elapsed() >= cfg.flush_interval;
                if due {
                    flushed = Instant::now();
                }
                handed += batches.take(&mut taken, due);
                let count: usize = taken.iter().map(Batch::len).sum();
                if taken.is_empty() {
                    sink.idle();
                } else if due || count >= cfg.batch_size {
                    let lines: Vec<&str> = taken.iter().flat_map(Lines::iter).collect();
                    for chunk in lines.chunks(cfg.batch_size) {
                        sink.write(chunk, &metrics);
                    }
                    metrics
                        .click_queue_depth
                        .sub(std::mem::take(&mut handed) as i64);
                    for b in taken.drain(..) {
                        batches.recycle(b);
                    }
                }
                if stopping {
                    sink.close();
                    tracing::info!("click events drained");
                    return;
                }
                if count < cfg.batch_size {
                    std::thread::sleep(nap);
                }
            }
        })
}
