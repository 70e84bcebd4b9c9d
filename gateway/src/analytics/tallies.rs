//! One request thread's counter rows since the flusher last took them.
//!
//! Rows are added up where the clicks happen: a link clicked again within
//! the few milliseconds between two takes costs a hash, a lookup and an
//! addition, and no allocation or hand-over. The flusher merges the
//! threads' rows (the same row may come from several) into its pending
//! rows.

use std::borrow::Cow;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, LazyLock};

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use crate::clicks::Batch;
use crate::store::{StatKey, SubjectKind, Tally};

/// Seeds every row key's hash, on every thread: the flusher merges the
/// threads' rows by the hash they come with, never hashing a key again.
/// Random, as part of a key (the referrer) is the client's to choose.
static SEED: LazyLock<RandomState> = LazyLock::new(RandomState::default);

/// A row's key as the request has it: borrowed where it can be, so a row
/// already counted is found without building its key.
pub struct RowRef<'a> {
    /// Link or rule.
    pub kind: SubjectKind,
    /// Normalized host (empty for a rule).
    pub host: &'a str,
    /// Link name or rule id.
    pub name: &'a str,
    /// Start of the UTC hour, Unix seconds.
    pub hour: i64,
    /// `ios`, `android` or `desktop`.
    pub device: &'static str,
    /// Upper-case ISO code, or empty.
    pub country: Cow<'a, str>,
    /// Referrer host, or empty.
    pub referrer: Cow<'a, str>,
    /// A known bot.
    pub bot: bool,
}

impl RowRef<'_> {
    /// One pass over the parts (a `str` hashes with a terminator, so the
    /// parts cannot run into each other). foldhash: a streaming xxh3 fed
    /// part by part cost several times more per click.
    fn hash(&self, state: &RandomState) -> u64 {
        let mut h = state.build_hasher();
        (self.kind as u8, self.bot, self.hour).hash(&mut h);
        for part in [
            self.host,
            self.name,
            self.device,
            &self.country,
            &self.referrer,
        ] {
            part.hash(&mut h);
        }
        h.finish()
    }

    fn is(&self, k: &StatKey) -> bool {
        k.hour == self.hour
            && k.bot == self.bot
            && k.kind == self.kind
            && k.device == self.device
            && *k.name == *self.name
            && *k.host == *self.host
            && *k.country == *self.country
            && *k.referrer == *self.referrer
    }

    fn into_key(self) -> StatKey {
        StatKey {
            kind: self.kind,
            host: Arc::from(self.host),
            name: Arc::from(self.name),
            hour: self.hour,
            device: self.device,
            country: Arc::from(self.country),
            referrer: Arc::from(self.referrer),
            bot: self.bot,
        }
    }
}

/// A counter row, with its key's hash (seeded by [`SEED`]).
pub struct Row {
    /// The key's hash, made once where the click happened.
    pub hash: u64,
    /// Whose counters, which hour and split.
    pub key: StatKey,
    /// The counts.
    pub tally: Tally,
}

/// Counter rows found by their key's hash: a thread's since the last
/// hand-over ([`Tallies`]), and the flusher's waiting for the store.
#[derive(Default)]
pub struct Rows {
    rows: Vec<Row>,
    /// Position in `rows`, by the row's hash.
    index: HashTable<usize>,
}

impl Rows {
    /// The counts of the row with `hash` whose key `is` accepts.
    pub fn find_mut(&mut self, hash: u64, is: impl Fn(&StatKey) -> bool) -> Option<&mut Tally> {
        let rows = &mut self.rows;
        let &i = self.index.find(hash, |&i| is(&rows[i].key))?;
        Some(&mut rows[i].tally)
    }

    /// Adds `row`, which [`Rows::find_mut`] did not find.
    pub fn push(&mut self, row: Row) {
        let rows = &self.rows;
        self.index
            .insert_unique(row.hash, rows.len(), |&i| rows[i].hash);
        self.rows.push(row);
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// None.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows, in the order they came.
    pub fn as_slice(&self) -> &[Row] {
        &self.rows
    }

    /// Empties them, keeping the memory.
    pub fn clear(&mut self) {
        self.rows.clear();
        self.index.clear();
    }

    /// The rows, emptied out (the memory stays for reuse).
    pub fn drain(&mut self) -> impl Iterator<Item = Row> + '_ {
        self.index.clear();
        self.rows.drain(..)
    }
}

/// Rows added up on one thread.
pub struct Tallies {
    rows: Rows,
    /// [`SEED`], copied: the request path reads no shared state for it.
    state: RandomState,
}

impl Default for Tallies {
    fn default() -> Self {
        Tallies {
            rows: Rows::default(),
            state: *SEED,
        }
    }
}

impl Tallies {
    /// Counts a click on `row`; `visitor`: the visitor's first.
    pub fn add(&mut self, row: RowRef<'_>, visitor: bool) {
        let visitors = i64::from(visitor);
        let hash = row.hash(&self.state);
        if let Some(t) = self.rows.find_mut(hash, |k| row.is(k)) {
            t.clicks += 1;
            t.visitors += visitors;
            return;
        }
        self.rows.push(Row {
            hash,
            key: row.into_key(),
            tally: Tally {
                clicks: 1,
                visitors,
            },
        });
    }

    /// The rows, emptied out (the memory stays for reuse).
    pub fn drain(&mut self) -> impl Iterator<Item = Row> + '_ {
        self.rows.drain()
    }
}

impl Batch for Tallies {
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn clear(&mut self) {
        self.rows.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(name: &'a str, device: &'static str, referrer: &str) -> RowRef<'a> {
        RowRef {
            kind: SubjectKind::Link,
            host: "go.example.com",
            name,
            hour: 7200,
            device,
            country: "DE".into(),
            referrer: referrer.to_string().into(),
            bot: false,
        }
    }

    #[test]
    fn a_row_counted_again_adds_up_and_any_other_part_makes_a_new_row() {
        let mut t = Tallies::default();
        t.add(row("a", "ios", ""), true);
        t.add(row("a", "ios", ""), false);
        t.add(row("a", "ios", ""), true);
        t.add(row("a", "android", ""), true);
        t.add(row("b", "ios", ""), true);
        t.add(row("a", "ios", "news.example.com"), false);
        assert_eq!(t.len(), 4);
        let rows: Vec<_> = t.drain().collect();
        assert_eq!(t.len(), 0);
        let first = &rows[0];
        assert_eq!((&*first.key.name, first.key.device), ("a", "ios"));
        assert_eq!((first.tally.clicks, first.tally.visitors), (3, 2));
        assert_eq!(&*first.key.country, "DE");
        assert!(rows[1..].iter().all(|r| r.tally.clicks == 1));
        assert_eq!(&*rows[3].key.referrer, "news.example.com");
        assert_eq!(rows[3].tally.visitors, 0);
    }

    #[test]
    fn every_thread_hashes_a_key_alike() {
        // The flusher merges rows by the hash they come with: the same key
        // counted on two threads must arrive with one hash.
        let hash_on_a_thread = || {
            std::thread::spawn(|| {
                let mut t = Tallies::default();
                t.add(row("a", "ios", "news.example.com"), true);
                t.add(row("b", "ios", "news.example.com"), true);
                t.drain().map(|r| r.hash).collect::<Vec<_>>()
            })
            .join()
            .unwrap()
        };
        let (one, two) = (hash_on_a_thread(), hash_on_a_thread());
        assert_eq!(one, two);
        assert_ne!(one[0], one[1]);
    }
}
