//! De-duplication: the same visitor opening the same link within the window
//! keeps their click id and produces no second event.
//!
//! A fixed-size table, set up once, rather than a cache: with every click a
//! new visitor (the worst case, and the common one for a link shared
//! widely) a general-purpose cache (moka: a concurrent map, a frequency
//! sketch, write buffers and their upkeep) cost about 11 % of the redirect
//! path's CPU. Here a lookup reads one bucket of four slots (a few cache
//! lines) and an insert writes one slot, with no lock and no allocation.
//! Each slot is a seqlock: a reader that races a writer sees a miss, never
//! a torn id; two writers racing for one slot leave one of them out. So
//! de-duplication is best effort at the edges — a visitor may, rarely, get
//! a second id within the window (a second event, which the click id in
//! the event lets a consumer fold) — and never gives one visitor another's
//! id. When a bucket is full the oldest entry in it makes room.

use foldhash::quality::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Slots per bucket.
const WAYS: usize = 4;

/// Four slots on two cache lines, aligned to the pair the adjacent-line
/// prefetcher fetches together. A lookup that finds nothing (every new
/// visitor) reads the first line only (sequences and keys, 48 bytes); the
/// ids follow, the first slot's on that line, the others' on the second. When an
/// id was given is in the id itself (a UUIDv7's first 48 bits are its Unix
/// milliseconds), so the slot stores no time of its own.
#[repr(C, align(128))]
#[derive(Default)]
struct Bucket {
    /// Per slot: even while stable, odd while being written.
    seq: [AtomicU32; WAYS],
    key: [AtomicU64; WAYS],
    /// Per slot: the click id's high and low 64 bits (0: empty).
    id: [[AtomicU64; 2]; WAYS],
}

/// Remembered click ids, bounded in count and time.
pub struct Dedup {
    buckets: Box<[Bucket]>,
    /// Buckets minus one (their number is a power of two).
    mask: usize,
    window_ms: u64,
    /// The keys' hash seed: drawn per process, so no client can aim two
    /// visitors at one key or one bucket.
    seed: RandomState,
}

/// The Unix milliseconds in a UUIDv7 (its first 48 bits).
fn given_at(id_hi: u64) -> u64 {
    id_hi >> 16
}

impl Dedup {
    /// Entries live `window`; room for `capacity` (rounded up to a power
    /// of two).
    pub fn new(window: Duration, capacity: u64) -> Self {
        let slots = usize::try_from(capacity)
            .unwrap_or(usize::MAX)
            .clamp(WAYS, 1 << 30)
            .next_power_of_two();
        Dedup {
            buckets: (0..slots / WAYS).map(|_| Bucket::default()).collect(),
            mask: slots / WAYS - 1,
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            seed: RandomState::default(),
        }
    }

    /// The visitor-and-link key: a hash of client IP, User-Agent, host and
    /// path, seeded per process (a `str` hashes with a terminator, so the
    /// parts cannot run into each other). foldhash in one pass: a
    /// streaming xxh3 fed part by part, copying each into its buffer, took
    /// about twice as long (benches/clicks.rs).
    pub fn key(&self, ip: Option<IpAddr>, user_agent: &str, host: &str, path: &str) -> u64 {
        self.seed.hash_one((ip, user_agent, host, path))
    }

    fn bucket(&self, key: u64) -> &Bucket {
        // Keys are foldhash's quality hashes: their low bits are as good
        // as any.
        &self.buckets[(key as usize) & self.mask]
    }

    /// Starts fetching `key`'s bucket into the cache, so that
    /// [`Dedup::get`] later finds it there: with every click a new visitor
    /// the bucket is a miss all the way to memory (about 300 ns of the
    /// request thread's time here), which the caller overlaps with finding
    /// the link (docs/performance.md, §0.2, tenth pass). Both of its
    /// lines: a new visitor's id goes into either.
    pub fn prefetch(&self, key: u64) {
        let b: *const Bucket = self.bucket(key);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint: it never faults and changes no
        // memory, and both lines are the bucket's (128 bytes, aligned).
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(b.cast::<i8>());
            _mm_prefetch::<_MM_HINT_T0>(b.cast::<i8>().add(64));
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = b;
    }

    /// An id given at `now - window` or later; never the empty slot's 0.
    fn live(&self, id_hi: u64, now: u64) -> bool {
        id_hi != 0 && now.saturating_sub(given_at(id_hi)) < self.window_ms
    }

    /// The click id remembered for `key`, at `now` (Unix milliseconds:
    /// the time the click is given, read once per click by the caller).
    pub fn get(&self, key: u64, now: u64) -> Option<u128> {
        let b = self.bucket(key);
        for i in 0..WAYS {
            // The key alone first: a miss never reads the ids' line.
            if b.key[i].load(Ordering::Relaxed) != key {
                continue;
            }
            let before = b.seq[i].load(Ordering::Acquire);
            if before % 2 == 1 || b.key[i].load(Ordering::Relaxed) != key {
                continue;
            }
            let hi = b.id[i][0].load(Ordering::Relaxed);
            let lo = b.id[i][1].load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if b.seq[i].load(Ordering::Relaxed) != before {
                return None;
            }
            return self
                .live(hi, now)
                .then_some((u128::from(hi) << 64) | u128::from(lo));
        }
        None
    }

    /// Remembers `click_id` (a UUIDv7: it says when it was given) for
    /// `key`, at `now` (Unix milliseconds).
    pub fn insert(&self, key: u64, click_id: u128, now: u64) {
        let b = self.bucket(key);
        let hi = |i: usize| b.id[i][0].load(Ordering::Relaxed);
        // The slot holding this key, else a free or stale one, else the
        // one given out first.
        let Some(i) = (0..WAYS)
            .find(|&i| b.key[i].load(Ordering::Relaxed) == key)
            .or_else(|| (0..WAYS).find(|&i| !self.live(hi(i), now)))
            .or_else(|| (0..WAYS).min_by_key(|&i| given_at(hi(i))))
        else {
            return;
        };
        let seq = b.seq[i].load(Ordering::Relaxed);
        if seq % 2 == 1
            || b.seq[i]
                .compare_exchange(
                    seq,
                    seq.wrapping_add(1),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            // Another writer has it: best effort.
            return;
        }
        // The odd sequence is seen before any of the slot's new values.
        fence(Ordering::Release);
        b.key[i].store(key, Ordering::Relaxed);
        b.id[i][0].store((click_id >> 64) as u64, Ordering::Relaxed);
        b.id[i][1].store(click_id as u64, Ordering::Relaxed);
        b.seq[i].store(seq.wrapping_add(2), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UUIDv7-shaped id given at `ms`, told apart by `n`.
    fn id(ms: u64, n: u64) -> u128 {
        (u128::from(ms) << 80) | u128::from(n)
    }

    #[test]
    fn remembers_within_the_window_only() {
        let d = Dedup::new(Duration::from_millis(200), 100);
        let k = d.key(None, "ua", "h", "/p");
        assert_ne!(k, d.key(None, "ua", "h", "/q"));
        let t = 1_780_000_000_000;
        assert!(d.get(k, t).is_none());
        d.insert(k, id(t, 7), t);
        assert_eq!(d.get(k, t + 199), Some(id(t, 7)));
        d.insert(k, id(t, 7 << 40), t);
        assert_eq!(
            d.get(k, t),
            Some(id(t, 7 << 40)),
            "the whole 128 bits, replaced"
        );
        assert!(d.get(k, t + 200).is_none());
    }

    #[test]
    fn a_full_bucket_forgets_its_oldest_and_keys_never_share_an_id() {
        let d = Dedup::new(Duration::from_secs(60), 4);
        let t = 1_780_000_000_000;
        // One bucket of four: a fifth key pushes the first out.
        for k in 1..=5u64 {
            d.insert(k, id(t + k, k * 10), t + k);
        }
        assert_eq!(d.get(1, t + 6), None);
        for k in 2..=5u64 {
            assert_eq!(d.get(k, t + 6), Some(id(t + k, k * 10)));
        }
        assert_eq!(d.get(6, t + 6), None);
    }

    #[test]
    fn an_empty_slot_is_never_an_id() {
        let d = Dedup::new(Duration::from_secs(u64::MAX / 2000), 4);
        // Key 0 matches the zeroed slots; they hold no id however long
        // the window.
        assert_eq!(d.get(0, 1_780_000_000_000), None);
    }

    #[test]
    fn readers_racing_writers_see_whole_ids_or_none() {
        let d = std::sync::Arc::new(Dedup::new(Duration::from_secs(60), 4));
        let t = 1_780_000_000_000;
        let writer = {
            let d = d.clone();
            std::thread::spawn(move || {
                for i in 0..200_000u64 {
                    // Both halves end in the counter: a torn read shows.
                    let hi = (t << 16) | (i & 0xffff);
                    d.insert(1, (u128::from(hi) << 64) | u128::from(i), t);
                }
            })
        };
        for _ in 0..200_000 {
            if let Some(v) = d.get(1, t) {
                assert_eq!(
                    (v >> 64) as u64 & 0xffff,
                    v as u64 & 0xffff,
                    "torn id {v:x}"
                );
            }
        }
        writer.join().unwrap();
    }
}
