//! The link cache in front of the store: links and unknown codes, weighed
//! in bytes, one load per key at a time, and never a stale entry put back
//! after the change log said the key changed.
//!
//! moka bounds it (weights, eviction, admission). A hit does not ask moka
//! though: its per-read bookkeeping costs about 1.4 µs with a working set
//! larger than the CPU caches (1.8 µs per `get` against 0.4 µs for a hash
//! map, 100,000 entries), a fifth of a redirect. Reads go to a sharded
//! map that mirrors moka's entries — written with them, dropped with them
//! when moka evicts — and every [`TOUCH_EVERY`]th hit is passed on to
//! moka so its eviction policy still sees which links are read.

use moka::sync::Cache;
use moka::Equivalent;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

use super::error::StoreError;

/// What a cache key costs besides its text: moka's entry and our key.
const ENTRY_OVERHEAD: u32 = 96;
/// How long the change log's recent keys are remembered: longer than any
/// load can take (a load is bounded by the store's timeout).
const REMEMBER_CHANGES: Duration = Duration::from_secs(60);
/// Read-tier shards (a power of two).
const SHARDS: usize = 64;
/// One hit in this many is also read through moka.
const TOUCH_EVERY: u64 = 16;

/// A link's key: its host and code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    host: Box<str>,
    code: Box<str>,
}

/// [`Key`] borrowed from a request, so a hit allocates nothing. Hashes as
/// `Key` does (both hash two `str`s in order).
#[derive(Hash)]
struct KeyRef<'a> {
    host: &'a str,
    code: &'a str,
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *self.host == *key.host && *self.code == *key.code
    }
}

impl Key {
    fn new(host: &str, code: &str) -> Key {
        Key {
            host: host.into(),
            code: code.into(),
        }
    }
}

#[derive(Clone)]
enum Entry<V> {
    Found { value: V, fetched: Instant },
    Absent { fetched: Instant },
}

/// An entry as both tiers hold it: `generation` tells an evicted entry
/// from the one that replaced it.
#[derive(Clone)]
struct Held<V> {
    entry: Entry<V>,
    generation: u64,
    /// The change sequence the store was at when the entry was read: a
    /// change the log names at or below it is already in the entry.
    as_of: i64,
}

type Shard<V> = RwLock<hashbrown::HashMap<Key, Held<V>, foldhash::fast::RandomState>>;

/// The read tier: moka's entries, sharded by key hash.
struct Mirror<V> {
    shards: Box<[Shard<V>]>,
    hasher: foldhash::fast::RandomState,
}

impl<V: Clone> Mirror<V> {
    fn new() -> Self {
        Mirror {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn shard(&self, key: &(impl Hash + ?Sized)) -> &Shard<V> {
        let h = self.hasher.hash_one(key) as usize;
        &self.shards[h & (SHARDS - 1)]
    }

    fn get(&self, key: &KeyRef<'_>) -> Option<Held<V>> {
        read(self.shard(key)).get(key).cloned()
    }

    fn insert(&self, key: Key, held: Held<V>) {
        write(self.shard(&key)).insert(key, held);
    }

    fn remove(&self, key: &Key) {
        write(self.shard(key)).remove(key);
    }

    /// Drops `key` if it still holds `generation` (moka evicted it).
    fn evicted(&self, key: &Key, generation: u64) {
        let mut shard = write(self.shard(key));
        if shard.get(key).is_some_and(|h| h.generation == generation) {
            shard.remove(key);
        }
    }

    fn retain(&self, keep: impl Fn(&Key, &Held<V>) -> bool) {
        for shard in self.shards.iter() {
            write(shard).retain(|k, h| keep(k, h));
        }
    }
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// What the cache holds for a key, without asking the store.
pub enum Lookup<V> {
    /// A link read within the TTL.
    Fresh(V),
    /// A link read longer ago than the TTL: read it again, but answer with
    /// it if the store cannot be reached.
    Stale(V),
    /// Known not to exist (within the negative TTL).
    Absent,
    /// Not cached.
    Missing,
}

/// The keys the change log named lately, with the sequence that named
/// them: a load that read the store before that sequence must not cache
/// what it read.
#[derive(Default)]
struct Changed {
    keys: HashMap<Key, (i64, Instant)>,
    hosts: HashMap<Box<str>, (i64, Instant)>,
    /// The keys in the order they changed, so pruning pops the expired
    /// ones instead of scanning every key remembered (a minute of API
    /// writes is a million keys).
    order: std::collections::VecDeque<(Instant, Key)>,
    /// Every key changed up to here, as far as the cache knows: set when
    /// the follower starts or loses its place in the log.
    floor: i64,
}

impl Changed {
    fn since(&self, key: &Key) -> i64 {
        let k = self.keys.get(key).map_or(0, |(s, _)| *s);
        let h = self.hosts.get(&key.host).map_or(0, |(s, _)| *s);
        k.max(h).max(self.floor)
    }

    fn prune(&mut self) {
        let now = Instant::now();
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < REMEMBER_CHANGES {
                break;
            }
            if let Some((at, key)) = self.order.pop_front() {
                // Only if it did not change again since.
                if self.keys.get(&key).is_some_and(|(_, last)| *last == at) {
                    self.keys.remove(&key);
                }
            }
        }
        self.hosts
            .retain(|_, (_, at)| now.duration_since(*at) < REMEMBER_CHANGES);
    }
}

type Flight<V> = Arc<OnceCell<Result<Option<V>, StoreError>>>;

/// The cache. `V` is what a found link is kept as (cheap to clone: an
/// `Arc`). Links stay until evicted or changed; their TTL is checked on
/// lookup, so a stale link can still answer while the store is down.
/// Unknown codes count as unknown for the negative TTL.
pub struct LinkCache<V> {
    /// The bound: what moka keeps, the mirror keeps.
    entries: Cache<Key, Held<V>, foldhash::fast::RandomState>,
    mirror: Arc<Mirror<V>>,
    generation: AtomicU64,
    hits: AtomicU64,
    ttl: Duration,
    negative_ttl: Duration,
    changed: Mutex<Changed>,
    flights: Mutex<HashMap<Key, Flight<V>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data behind.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<V: Clone + Send + Sync + 'static> LinkCache<V> {
    /// A cache of at most `capacity` bytes, `weigh` giving what a value
    /// costs.
    pub fn new(
        capacity: u64,
        ttl: Duration,
        negative_ttl: Duration,
        weigh: fn(&V) -> u32,
        evicted: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let mirror = Arc::new(Mirror::new());
        let for_listener = Arc::downgrade(&mirror);
        let entries = Cache::builder()
            .max_capacity(capacity)
            .weigher(move |k: &Key, v: &Held<V>| {
                // The key twice: in moka and in the mirror.
                let text = 2 * (k.host.len() + k.code.len()) as u32;
                let value = match &v.entry {
                    Entry::Found { value, .. } => weigh(value),
                    Entry::Absent { .. } => 0,
                };
                ENTRY_OVERHEAD.saturating_add(text).saturating_add(value)
            })
            .support_invalidation_closures()
            .eviction_listener(move |key: Arc<Key>, held: Held<V>, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    if let Some(m) = for_listener.upgrade() {
                        m.evicted(&key, held.generation);
                    }
                    evicted();
                }
            })
            .build_with_hasher(foldhash::fast::RandomState::default());
        LinkCache {
            entries,
            mirror,
            generation: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            ttl,
            negative_ttl,
            changed: Mutex::new(Changed::default()),
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// What the cache knows of `host` and `code`; allocates nothing.
    pub fn peek(&self, host: &str, code: &str) -> Lookup<V> {
        let key = KeyRef { host, code };
        let Some(held) = self.mirror.get(&key) else {
            return Lookup::Missing;
        };
        if self
            .hits
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(TOUCH_EVERY)
        {
            // Tells moka's eviction policy this key is read.
            let _ = self.entries.get(&key);
        }
        match held.entry {
            // Checked here rather than by moka's per-entry expiry, whose
            // timer wheel every read would pay for.
            Entry::Absent { fetched } => {
                if fetched.elapsed() <= self.negative_ttl {
                    Lookup::Absent
                } else {
                    Lookup::Missing
                }
            }
            Entry::Found { value, fetched } => {
                if fetched.elapsed() <= self.ttl {
                    Lookup::Fresh(value)
                } else {
                    Lookup::Stale(value)
                }
            }
        }
    }

    /// Reads `host` and `code` with `fetch` (which returns the link and the
    /// change sequence it is as of) and caches the answer. Concurrent loads
    /// of one key share one fetch.
    pub async fn load<F, Fut>(
        &self,
        host: &str,
        code: &str,
        fetch: F,
    ) -> Result<Option<V>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Option<V>, i64), StoreError>>,
    {
        let key = Key::new(host, code);
        let flight = lock(&self.flights).entry(key.clone()).or_default().clone();
        let result = flight
            .get_or_init(|| async {
                // A load that finished between our miss and now has cached
                // the answer: no second query.
                match self.peek(host, code) {
                    Lookup::Fresh(v) => return Ok(Some(v)),
                    Lookup::Absent => return Ok(None),
                    Lookup::Stale(_) | Lookup::Missing => {}
                }
                let (value, as_of) = fetch().await?;
                self.put(key.clone(), value.clone(), as_of);
                Ok(value)
            })
            .await
            .clone();
        let mut flights = lock(&self.flights);
        if flights.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(&key);
        }
        result
    }

    /// Caches what a load read as of change `as_of`, unless the change log
    /// has named the key since.
    fn put(&self, key: Key, value: Option<V>, as_of: i64) {
        let changed = lock(&self.changed);
        if changed.since(&key) > as_of {
            return;
        }
        let entry = match value {
            Some(value) => Entry::Found {
                value,
                fetched: Instant::now(),
            },
            None => Entry::Absent {
                fetched: Instant::now(),
            },
        };
        let held = Held {
            entry,
            as_of,
            generation: self.generation.fetch_add(1, Ordering::Relaxed),
        };
        // The mirror first: moka may evict it at once (the listener then
        // removes it again), never the other way round.
        self.mirror.insert(key.clone(), held.clone());
        self.entries.insert(key, held);
    }

    /// The change log's entry `seq` named `host` and `code` (`*`: every
    /// code of the host).
    pub fn changed(&self, seq: i64, host: &str, code: &str) {
        let mut changed = lock(&self.changed);
        let now = Instant::now();
        if code == "*" {
            changed.hosts.insert(host.into(), (seq, now));
            self.mirror.retain(|k, _| &*k.host != host);
            let host: Box<str> = host.into();
            if self
                .entries
                .invalidate_entries_if(move |k, _| k.host == host)
                .is_err()
            {
                self.entries.invalidate_all();
            }
        } else {
            let key = Key::new(host, code);
            // An entry read after the change already holds it: dropping it
            // would only cost a query (and, were the store down just then,
            // an answer). The writing gateway drops its entry at once, and
            // then reads the change back before its follower names it.
            let holds_it = self
                .mirror
                .get(&KeyRef { host, code })
                .is_some_and(|h| h.as_of >= seq);
            if !holds_it {
                self.mirror.remove(&key);
                self.entries.invalidate(&key);
            }
            changed.order.push_back((now, key.clone()));
            changed.keys.insert(key, (seq, now));
        }
    }

    /// Forgets old change-log keys (call once per batch of changes).
    pub fn prune_changes(&self) {
        lock(&self.changed).prune();
    }

    /// Takes every key as changed at `seq` and drops what was read before
    /// it: the follower starts, or lost its place in the log, at `seq`.
    /// An entry read as of `seq` or later already holds all the log had
    /// then, so it stays: a gateway answering before its follower's first
    /// poll keeps what it learnt (a negative entry among them).
    pub fn reset(&self, seq: i64) {
        let mut changed = lock(&self.changed);
        changed.floor = changed.floor.max(seq);
        self.mirror.retain(|_, h| h.as_of >= seq);
        if self
            .entries
            .invalidate_entries_if(move |_, h| h.as_of < seq)
            .is_err()
        {
            self.entries.invalidate_all();
        }
    }

    /// Entries and their weight in bytes.
    pub fn size(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn cache() -> LinkCache<Arc<str>> {
        LinkCache::new(
            1 << 20,
            Duration::from_secs(60),
            Duration::from_secs(60),
            |v| v.len() as u32,
            || {},
        )
    }

    #[tokio::test]
    async fn concurrent_loads_of_one_key_make_one_fetch() {
        let cache = Arc::new(cache());
        let fetches = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, fetches) = (cache.clone(), fetches.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .load("go.example", "abc", || async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok((Some(Arc::from("https://example.com/")), 1))
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(
                t.await.unwrap().unwrap().as_deref(),
                Some("https://example.com/")
            );
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert!(matches!(cache.peek("go.example", "abc"), Lookup::Fresh(_)));
    }

    #[tokio::test]
    async fn unknown_codes_are_remembered_until_created() {
        let cache = cache();
        let got = cache
            .load("h", "new", || async { Ok((None, 3)) })
            .await
            .unwrap();
        assert!(got.is_none());
        assert!(matches!(cache.peek("h", "new"), Lookup::Absent));
        cache.changed(4, "h", "new");
        assert!(matches!(cache.peek("h", "new"), Lookup::Missing));
    }

    #[tokio::test]
    async fn a_change_an_entry_already_holds_keeps_it() {
        let cache = cache();
        cache
            .load("h", "c", || async { Ok((Some(Arc::from("v5")), 5)) })
            .await
            .unwrap();
        // The follower names a change the entry was read after.
        cache.changed(5, "h", "c");
        assert!(matches!(cache.peek("h", "c"), Lookup::Fresh(v) if &*v == "v5"));
        // A later change drops it.
        cache.changed(6, "h", "c");
        assert!(matches!(cache.peek("h", "c"), Lookup::Missing));
    }

    #[tokio::test]
    async fn a_load_older_than_a_change_is_not_cached() {
        let cache = cache();
        cache.changed(10, "h", "c");
        // Read as of sequence 9: the change at 10 may not be in it.
        let got = cache
            .load("h", "c", || async { Ok((Some(Arc::from("old")), 9)) })
            .await
            .unwrap();
        assert_eq!(got.as_deref(), Some("old"));
        assert!(matches!(cache.peek("h", "c"), Lookup::Missing));
        cache
            .load("h", "c", || async { Ok((Some(Arc::from("new")), 10)) })
            .await
            .unwrap();
        assert!(matches!(cache.peek("h", "c"), Lookup::Fresh(v) if &*v == "new"));
    }

    #[tokio::test]
    async fn after_a_reset_only_loads_as_of_its_sequence_are_cached() {
        let cache = cache();
        cache
            .load("h", "c", || async { Ok((Some(Arc::from("x")), 4)) })
            .await
            .unwrap();
        cache
            .load("h", "kept", || async { Ok((None, 7)) })
            .await
            .unwrap();
        cache.reset(7);
        assert!(matches!(cache.peek("h", "c"), Lookup::Missing));
        assert!(
            !matches!(cache.peek("h", "kept"), Lookup::Missing),
            "read as of the reset: kept"
        );
        cache
            .load("h", "c", || async { Ok((Some(Arc::from("x")), 6)) })
            .await
            .unwrap();
        assert!(matches!(cache.peek("h", "c"), Lookup::Missing));
        cache
            .load("h", "c", || async { Ok((Some(Arc::from("x")), 7)) })
            .await
            .unwrap();
        assert!(matches!(cache.peek("h", "c"), Lookup::Fresh(_)));
    }

    #[tokio::test]
    async fn entries_moka_evicts_leave_the_read_tier_too() {
        let cache: LinkCache<Arc<str>> = LinkCache::new(
            20_000,
            Duration::from_secs(60),
            Duration::from_secs(60),
            |v| v.len() as u32,
            || {},
        );
        let long: Arc<str> = Arc::from("x".repeat(100));
        for i in 0..500 {
            let v = long.clone();
            cache
                .load("h", &format!("c{i}"), || async move { Ok((Some(v), 1)) })
                .await
                .unwrap();
        }
        let (entries, bytes) = cache.size();
        let mirrored: usize = cache.mirror.shards.iter().map(|s| read(s).len()).sum();
        assert!(
            entries < 500 && bytes <= 20_000,
            "{entries} entries, {bytes} bytes"
        );
        assert_eq!(mirrored as u64, entries);
    }

    #[tokio::test]
    async fn a_host_wide_change_drops_the_hosts_entries_only() {
        let cache = cache();
        for (h, c) in [("a", "1"), ("a", "2"), ("b", "1")] {
            cache
                .load(h, c, || async { Ok((Some(Arc::from("x")), 1)) })
                .await
                .unwrap();
        }
        cache.changed(2, "a", "*");
        assert!(matches!(cache.peek("a", "1"), Lookup::Missing));
        assert!(matches!(cache.peek("a", "2"), Lookup::Missing));
        assert!(matches!(cache.peek("b", "1"), Lookup::Fresh(_)));
    }

    #[tokio::test]
    async fn a_failed_load_is_not_cached_and_is_retried() {
        let cache = cache();
        let err = cache
            .load("h", "c", || async {
                Err(StoreError::Unavailable("down".into()))
            })
            .await;
        assert!(matches!(err, Err(StoreError::Unavailable(_))));
        assert!(matches!(cache.peek("h", "c"), Lookup::Missing));
        let ok = cache.load("h", "c", || async { Ok((None, 1)) }).await;
        assert!(matches!(ok, Ok(None)));
    }
}
