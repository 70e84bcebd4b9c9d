//! De-duplication: the same visitor opening the same link within the window
//! keeps their click id and produces no second event.

use moka::sync::Cache;
use std::net::IpAddr;
use std::time::Duration;
use xxhash_rust::xxh3::Xxh3;

/// Remembered click ids, bounded in count and time.
pub struct Dedup {
    cache: Cache<u64, u128, foldhash::fast::RandomState>,
}

impl Dedup {
    /// Entries live `window` and at most `capacity` are kept.
    pub fn new(window: Duration, capacity: u64) -> Self {
        Dedup {
            // Keys are already xxh3 hashes: a cheap hasher is enough.
            // Sized up front: growing a million-entry table while clicks
            // arrive means rehashing and zeroing fresh pages on the
            // request path.
            cache: Cache::builder()
                .initial_capacity(capacity.min(1 << 21) as usize)
                .max_capacity(capacity)
                .time_to_live(window)
                .build_with_hasher(foldhash::fast::RandomState::default()),
        }
    }

    /// The click id remembered for `key`.
    pub fn get(&self, key: u64) -> Option<u128> {
        self.cache.get(&key)
    }

    /// Remembers `click_id` for `key`.
    pub fn insert(&self, key: u64, click_id: u128) {
        self.cache.insert(key, click_id);
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
        assert!(d.get(k).is_none());
        d.insert(k, 7);
        assert_eq!(d.get(k), Some(7));
        std::thread::sleep(Duration::from_millis(300));
        assert!(d.get(k).is_none());
    }
}
