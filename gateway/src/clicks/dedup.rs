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

use std::net::IpAddr;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;
use xxhash_rust::xxh3::Xxh3;

/// Slots per bucket.
const WAYS: usize = 4;

#[derive(Default)]
struct Slot {
    /// Even while stable, odd while being written.
    seq: AtomicU32,
    /// When written, in Unix milliseconds plus one (0: empty).
    at: AtomicU64,
    key: AtomicU64,
    id_hi: AtomicU64,
    id_lo: AtomicU64,
}

/// Remembered click ids, bounded in count and time.
pub struct Dedup {
    slots: Box<[Slot]>,
    /// Buckets minus one (their number is a power of two).
    mask: usize,
    window_ms: u64,
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
            slots: (0..slots).map(|_| Slot::default()).collect(),
            mask: slots / WAYS - 1,
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn bucket(&self, key: u64) -> &[Slot] {
        // Keys are xxh3 hashes: their low bits are as good as any.
        let b = (key as usize) & self.mask;
        &self.slots[b * WAYS..(b + 1) * WAYS]
    }

    fn live(&self, at: u64, now: u64) -> bool {
        at != 0 && now.saturating_sub(at - 1) < self.window_ms
    }

    /// The click id remembered for `key`, at `now` (Unix milliseconds:
    /// the time the click is given, read once per click by the caller).
    pub fn get(&self, key: u64, now: u64) -> Option<u128> {
        for slot in self.bucket(key) {
            let before = slot.seq.load(Ordering::Acquire);
            if before % 2 == 1 || slot.key.load(Ordering::Relaxed) != key {
                continue;
            }
            let at = slot.at.load(Ordering::Relaxed);
            let id = (u128::from(slot.id_hi.load(Ordering::Relaxed)) << 64)
                | u128::from(slot.id_lo.load(Ordering::Relaxed));
            fence(Ordering::Acquire);
            if slot.seq.load(Ordering::Relaxed) != before {
                return None;
            }
            return self.live(at, now).then_some(id);
        }
        None
    }

    /// Remembers `click_id` for `key`, given at `now` (Unix milliseconds).
    pub fn insert(&self, key: u64, click_id: u128, now: u64) {
        let bucket = self.bucket(key);
        // The slot holding this key, else a free or stale one, else the
        // oldest.
        let slot = bucket
            .iter()
            .find(|s| s.key.load(Ordering::Relaxed) == key)
            .or_else(|| {
                bucket
                    .iter()
                    .find(|s| !self.live(s.at.load(Ordering::Relaxed), now))
            })
            .or_else(|| bucket.iter().min_by_key(|s| s.at.load(Ordering::Relaxed)));
        let Some(slot) = slot else {
            return;
        };
        let seq = slot.seq.load(Ordering::Relaxed);
        if seq % 2 == 1
            || slot
                .seq
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
        slot.key.store(key, Ordering::Relaxed);
        slot.id_hi.store((click_id >> 64) as u64, Ordering::Relaxed);
        slot.id_lo.store(click_id as u64, Ordering::Relaxed);
        slot.at.store(now.saturating_add(1), Ordering::Relaxed);
        slot.seq.store(seq.wrapping_add(2), Ordering::Release);
    }
}

/// The visitor-and-link key: a hash of client IP, User-Agent, host and path.
pub fn key(ip: Option<IpAddr>, user_agent: &str, host: &str, path: &str) -> u64 {
    let mut h = Xxh3::new();
    match ip {
        Some(IpAddr::V4(a)) => h.update(&a.octets()),
        Some(IpAddr::V6(a)) => h.update(&a.octets()),
        None => {}
    }
    for part in [user_agent, host, path] {
        h.update(&[0]);
        h.update(part.as_bytes());
    }
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_within_the_window_only() {
        let d = Dedup::new(Duration::from_millis(200), 100);
        let k = key(None, "ua", "h", "/p");
        assert_ne!(k, key(None, "ua", "h", "/q"));
        let t = 1_780_000_000_000;
        assert!(d.get(k, t).is_none());
        d.insert(k, 7, t);
        assert_eq!(d.get(k, t + 199), Some(7));
        d.insert(k, 7 << 70, t);
        assert_eq!(d.get(k, t), Some(7 << 70), "the whole 128 bits, replaced");
        assert!(d.get(k, t + 200).is_none());
    }

    #[test]
    fn a_full_bucket_forgets_its_oldest_and_keys_never_share_an_id() {
        let d = Dedup::new(Duration::from_secs(60), 4);
        let t = 1_780_000_000_000;
        // One bucket of four: a fifth key pushes the first out.
        for k in 1..=5u64 {
            d.insert(k, u128::from(k) * 10, t + k);
        }
        assert_eq!(d.get(1, t + 6), None);
        for k in 2..=5u64 {
            assert_eq!(d.get(k, t + 6), Some(u128::from(k) * 10));
        }
        assert_eq!(d.get(6, t + 6), None);
    }

    #[test]
    fn readers_racing_writers_see_whole_ids_or_none() {
        let d = std::sync::Arc::new(Dedup::new(Duration::from_secs(60), 4));
        let t = 1_780_000_000_000;
        let writer = {
            let d = d.clone();
            std::thread::spawn(move || {
                for i in 0..200_000u64 {
                    // Both halves equal: a torn read would show it.
                    d.insert(1, (u128::from(i) << 64) | u128::from(i), t);
                }
            })
        };
        for _ in 0..200_000 {
            if let Some(id) = d.get(1, t) {
                assert_eq!((id >> 64) as u64, id as u64, "torn id {id:x}");
            }
        }
        writer.join().unwrap();
    }
}
