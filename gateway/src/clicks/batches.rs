//! Per-thread batches: how request threads hand work to one background
//! thread without a shared cache line per item.
//!
//! A request thread appends to the batch of its shard: a mutex other
//! threads seldom take, so its lock and its buffer stay in the thread's
//! core cache. A full batch goes onto a bounded queue in one hand-over;
//! the background thread takes full batches as they come and, every flush
//! interval, the partial ones out of the shards. Handing over one item at
//! a time (a queue slot, a buffer the other core held last, a depth gauge
//! both sides write) cost a click about 350 ns of cache-line transfers
//! (docs/performance.md, §0.2).

use crossbeam_queue::ArrayQueue;
use prometheus::IntGauge;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Shards: more than request threads, so threads seldom share one (the
/// thread pools are sized by `server.threads`, a few per core).
const SHARDS: usize = 32;

/// What a shard collects.
pub trait Batch: Default + Send {
    /// Items in it.
    fn len(&self) -> usize;
    /// Empties it, keeping its memory.
    fn clear(&mut self);
}

/// One shard on cache lines of its own (two, for the adjacent-line
/// prefetcher), so two threads' shards never share one.
#[repr(align(128))]
struct Shard<B>(Mutex<B>);

/// The batches of every thread, and the queue of full ones.
pub struct Batches<B> {
    shards: Box<[Shard<B>]>,
    full: ArrayQueue<B>,
    /// Emptied batches, to be filled again without allocating. Last in,
    /// first out: the one given back last is likeliest still in a cache.
    spare: Mutex<Vec<B>>,
    /// Most batches kept in `spare`.
    spare_max: usize,
    per_batch: usize,
    /// Items in full batches not yet taken and done with: raised here
    /// before a batch is handed over (so the consumer's decrement never
    /// comes first), lowered by the consumer.
    depth: Option<IntGauge>,
}

/// The queue of full batches is full: the item was not added.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

/// Which shard this thread fills; given out round-robin at first use.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|i| *i)
}

fn lock<B>(m: &Mutex<B>) -> MutexGuard<'_, B> {
    // A batch is plain data: one a panicking thread left is still whole
    // items (the append is the last step), so it is used, not lost.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<B: Batch> Batches<B> {
    /// Batches of `per_batch` items (at least 1), at most `capacity` items
    /// in full batches waiting (at least one batch).
    pub fn new(per_batch: usize, capacity: usize) -> Self {
        let per_batch = per_batch.max(1);
        let batches = (capacity / per_batch).max(1);
        Batches {
            shards: (0..SHARDS).map(|_| Shard(Mutex::default())).collect(),
            full: ArrayQueue::new(batches),
            spare: Mutex::default(),
            spare_max: batches + SHARDS,
            per_batch,
            depth: None,
        }
    }

    /// Keeps `gauge` at the items handed over in full batches.
    pub fn with_depth_gauge(mut self, gauge: IntGauge) -> Self {
        self.depth = Some(gauge);
        self
    }

    /// Adds an item to this thread's batch with `append`. A full batch is
    /// handed over first: `Ok(Some(n))` says one of `n` items was. When the
    /// queue of full batches is full too, nothing is added.
    pub fn add(&self, append: impl FnOnce(&mut B)) -> Result<Option<usize>, Full> {
        let mut batch = lock(&self.shards[shard_index()].0);
        let mut handed = None;
        if batch.len() >= self.per_batch {
            if self.full.is_full() {
                return Err(Full);
            }
            let done = std::mem::replace(&mut *batch, self.fresh());
            let n = done.len();
            if let Some(g) = &self.depth {
                g.add(n as i64);
            }
            if let Err(done) = self.full.push(done) {
                // Filled by another thread since the check: keep the batch.
                if let Some(g) = &self.depth {
                    g.sub(n as i64);
                }
                let fresh = std::mem::replace(&mut *batch, done);
                self.recycle(fresh);
                return Err(Full);
            }
            handed = Some(n);
        }
        append(&mut batch);
        Ok(handed)
    }

    /// Moves the full batches into `out`, and with `partial` also every
    /// shard's unfinished one. Returns the items in the full batches (the
    /// ones [`Batches::add`] reported handed over).
    pub fn take(&self, out: &mut Vec<B>, partial: bool) -> usize {
        let mut handed = 0;
        while let Some(b) = self.full.pop() {
            handed += b.len();
            out.push(b);
        }
        if partial {
            for shard in self.shards.iter() {
                let mut batch = lock(&shard.0);
                if batch.len() > 0 {
                    out.push(std::mem::replace(&mut *batch, self.fresh()));
                }
            }
        }
        handed
    }

    /// Gives an emptied batch back for reuse (or frees it, when enough
    /// are kept).
    pub fn recycle(&self, mut batch: B) {
        batch.clear();
        let mut spare = lock(&self.spare);
        if spare.len() < self.spare_max {
            spare.push(batch);
        }
    }

    /// An empty batch: a spare one, or a new one.
    fn fresh(&self) -> B {
        lock(&self.spare).pop().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Batch for Vec<u32> {
        fn len(&self) -> usize {
            Vec::len(self)
        }
        fn clear(&mut self) {
            Vec::clear(self)
        }
    }

    #[test]
    fn full_batches_are_handed_over_and_partial_ones_taken() {
        let b: Batches<Vec<u32>> = Batches::new(3, 6);
        let mut handed = Vec::new();
        for i in 0..7 {
            handed.push(b.add(|v| v.push(i)).unwrap());
        }
        // The 4th and 7th adds found a full batch.
        assert_eq!(handed.iter().flatten().collect::<Vec<_>>(), [&3, &3]);
        let mut out = Vec::new();
        assert_eq!(b.take(&mut out, false), 6);
        assert_eq!(out, [vec![0, 1, 2], vec![3, 4, 5]]);
        out.clear();
        assert_eq!(b.take(&mut out, true), 0);
        assert_eq!(out, [vec![6]]);
        for v in out.drain(..) {
            b.recycle(v);
        }
        assert_eq!(b.take(&mut out, true), 0);
        assert!(out.is_empty(), "nothing left behind: {out:?}");
    }

    #[test]
    fn a_full_queue_refuses_items_until_it_is_emptied() {
        // One batch of two may wait.
        let b: Batches<Vec<u32>> = Batches::new(2, 2);
        for i in 0..4 {
            assert!(b.add(|v| v.push(i)).is_ok(), "item {i}");
        }
        assert_eq!(b.add(|v| v.push(4)), Err(Full));
        let mut out = Vec::new();
        assert_eq!(b.take(&mut out, false), 2);
        assert_eq!(b.add(|v| v.push(5)), Ok(Some(2)));
        out.clear();
        b.take(&mut out, false);
        assert_eq!(out, [vec![2, 3]], "the refused item is not in any batch");
    }

    #[test]
    fn threads_lose_nothing() {
        let b = std::sync::Arc::new(Batches::<Vec<u32>>::new(64, 1 << 20));
        let threads: Vec<_> = (0..8u32)
            .map(|t| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        b.add(|v| v.push(t * 100_000 + i)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut out = Vec::new();
        b.take(&mut out, true);
        let mut all: Vec<u32> = out.into_iter().flatten().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 80_000);
    }
}
