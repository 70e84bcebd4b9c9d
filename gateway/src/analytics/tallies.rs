//! One request thread's counter rows since the flusher last took them.
//!
//! Rows are added up where the clicks happen: a link clicked again within
//! the few milliseconds between two takes costs a hash, a lookup and an
//! addition, and no allocation or hand-over. A new row's texts are
//! appended to the batch's one buffer, kept with its memory from batch to
//! batch: with every click a new row, four shared strings allocated per
//! click here and freed on the flusher's thread were the largest part of
//! what analytics cost a request thread (docs/performance.md, §0.2, tenth
//! pass). The flusher merges the threads' rows (the same row may come
//! from several) into its pending rows, and makes a key's shared strings
//! only for a row it did not have.

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
#[derive(PartialEq)]
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

    /// The row with this key.
    pub fn is(&self, k: &StatKey) -> bool {
        k.hour == self.hour
            && k.bot == self.bot
            && k.kind == self.kind
            && k.device == self.device
            && *k.name == *self.name
            && *k.host == *self.host
            && *k.country == *self.country
            && *k.referrer == *self.referrer
    }

    /// The key, its texts shared.
    pub fn into_key(self) -> StatKey {
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

/// A row that carries its key's hash (seeded by [`SEED`]).
pub trait Hashed {
    /// The key's hash, made once where the click happened.
    fn hash(&self) -> u64;
}

impl Hashed for Row {
    fn hash(&self) -> u64 {
        self.hash
    }
}

/// Rows found by the hash each brings, in the order they came: a
/// thread's ([`Tallies`]) and the flusher's waiting for the store
/// (`Rows<Row>`, their texts shared).
pub struct Rows<R> {
    rows: Vec<R>,
    /// Position in `rows`, by the row's hash.
    index: HashTable<usize>,
}

impl<R> Default for Rows<R> {
    fn default() -> Self {
        Rows {
            rows: Vec::new(),
            index: HashTable::new(),
        }
    }
}

impl<R: Hashed> Rows<R> {
    /// The row with `hash` that `is` accepts.
    pub fn find_mut(&mut self, hash: u64, is: impl Fn(&R) -> bool) -> Option<&mut R> {
        let rows = &self.rows;
        let &i = self.index.find(hash, |&i| is(&rows[i]))?;
        self.rows.get_mut(i)
    }

    /// Adds `row`, which [`Rows::find_mut`] did not find.
    pub fn push(&mut self, row: R) {
        let rows = &self.rows;
        self.index
            .insert_unique(row.hash(), rows.len(), |&i| rows[i].hash());
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
    pub fn as_slice(&self) -> &[R] {
        &self.rows
    }

    /// Empties them, keeping the memory.
    pub fn clear(&mut self) {
        self.rows.clear();
        self.index.clear();
    }
}

/// The most text memory an emptied batch keeps: 1,024 rows of 64-byte
/// keys.
const KEEP_TEXT: usize = 64 << 10;

/// A row as a request thread keeps it: its texts (host, name, country,
/// referrer, one after the other) in [`Tallies`]' buffer.
struct Local {
    hash: u64,
    kind: SubjectKind,
    hour: i64,
    device: &'static str,
    bot: bool,
    /// Where the texts start in the buffer, and where each ends.
    start: usize,
    ends: [usize; 4],
    tally: Tally,
}

impl Hashed for Local {
    fn hash(&self) -> u64 {
        self.hash
    }
}

impl Local {
    fn key<'t>(&self, text: &'t str) -> RowRef<'t> {
        let [host, name, country, referrer] = self.ends;
        let part = |from: usize, to: usize| {
            let p = text.get(from..to);
            debug_assert!(
                p.is_some(),
                "a row's text at {from}..{to} of {}",
                text.len()
            );
            p.unwrap_or("")
        };
        RowRef {
            kind: self.kind,
            host: part(self.start, host),
            name: part(host, name),
            hour: self.hour,
            device: self.device,
            country: Cow::Borrowed(part(name, country)),
            referrer: Cow::Borrowed(part(country, referrer)),
            bot: self.bot,
        }
    }
}

/// Rows added up on one thread.
pub struct Tallies {
    rows: Rows<Local>,
    /// The rows' texts.
    text: String,
    /// [`SEED`], copied: the request path reads no shared state for it.
    state: RandomState,
}

impl Default for Tallies {
    fn default() -> Self {
        Tallies {
            rows: Rows::default(),
            text: String::new(),
            state: *SEED,
        }
    }
}

impl Tallies {
    /// Counts a click on `row`; `visitor`: the visitor's first.
    pub fn add(&mut self, row: RowRef<'_>, visitor: bool) {
        let visitors = i64::from(visitor);
        let hash = row.hash(&self.state);
        let text = self.text.as_str();
        if let Some(r) = self.rows.find_mut(hash, |r| r.key(text) == row) {
            r.tally.clicks += 1;
            r.tally.visitors += visitors;
            return;
        }
        let start = self.text.len();
        let mut ends = [0; 4];
        for (end, part) in ends
            .iter_mut()
            .zip([row.host, row.name, &row.country, &row.referrer])
        {
            self.text.push_str(part);
            *end = self.text.len();
        }
        self.rows.push(Local {
            hash,
            kind: row.kind,
            hour: row.hour,
            device: row.device,
            bot: row.bot,
            start,
            ends,
            tally: Tally {
                clicks: 1,
                visitors,
            },
        });
    }

    /// The rows, in the order they came: each key's hash (seeded by
    /// [`SEED`]), the key, its counts.
    pub fn rows(&self) -> impl Iterator<Item = (u64, RowRef<'_>, Tally)> + '_ {
        self.rows
            .as_slice()
            .iter()
            .map(|r| (r.hash, r.key(&self.text), r.tally))
    }
}

impl Batch for Tallies {
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn clear(&mut self) {
        self.rows.clear();
        // A batch of very long names keeps no more than this when used
        // again: the batches live as long as the process.
        if self.text.capacity() > KEEP_TEXT {
            self.text = String::new();
        } else {
            self.text.clear();
        }
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
        let rows: Vec<(StatKey, Tally)> = t.rows().map(|(_, k, n)| (k.into_key(), n)).collect();
        t.clear();
        assert_eq!(t.len(), 0);
        assert_eq!(t.rows().count(), 0);
        let (first, counts) = &rows[0];
        assert_eq!((&*first.name, first.device), ("a", "ios"));
        assert_eq!((counts.clicks, counts.visitors), (3, 2));
        assert_eq!(&*first.host, "go.example.com");
        assert_eq!(&*first.country, "DE");
        assert_eq!(&*first.referrer, "");
        assert!(rows[1..].iter().all(|(_, n)| n.clicks == 1));
        assert_eq!(&*rows[2].0.name, "b");
        assert_eq!(&*rows[3].0.referrer, "news.example.com");
        assert_eq!(rows[3].1.visitors, 0);
        // A batch used again keeps nothing of its last rows: a key it
        // held is a new row.
        assert!(t.text.is_empty());
        t.add(row("c", "desktop", "x.example"), true);
        t.add(row("a", "ios", ""), true);
        let again: Vec<(StatKey, Tally)> = t.rows().map(|(_, k, n)| (k.into_key(), n)).collect();
        assert_eq!(again.len(), 2);
        assert_eq!(
            (&*again[0].0.name, &*again[0].0.referrer),
            ("c", "x.example")
        );
        assert_eq!((&*again[1].0.name, again[1].1.clicks), ("a", 1));
    }

    #[test]
    fn any_part_of_the_key_makes_another_row_and_parts_do_not_run_together() {
        let mut t = Tallies::default();
        let base = || row("ab", "ios", "c.example");
        t.add(base(), true);
        let variants: [fn(&mut RowRef<'static>); 6] = [
            |r| r.host = "go.example.org",
            |r| r.hour += 3600,
            |r| r.kind = SubjectKind::Rule,
            |r| r.bot = true,
            |r| r.country = "FR".into(),
            // "ab" + "c.example" against "a" + "bc.example".
            |r| {
                r.name = "a";
                r.referrer = "bc.example".into();
            },
        ];
        for change in variants {
            let mut r = base();
            change(&mut r);
            t.add(r, true);
        }
        t.add(base(), false);
        assert_eq!(t.len(), 7);
        let counts: Vec<i64> = t.rows().map(|(_, _, n)| n.clicks).collect();
        assert_eq!(counts, [2, 1, 1, 1, 1, 1, 1]);
        // An owned country equal to a borrowed one is the same row.
        let mut de = base();
        de.country = String::from("DE").into();
        t.add(de, true);
        assert_eq!(t.len(), 7);
        assert_eq!(t.rows().next().map(|(_, _, n)| n.clicks), Some(3));
    }

    #[test]
    fn a_batch_of_long_names_gives_its_memory_back_when_emptied() {
        let mut t = Tallies::default();
        let long = "n".repeat(KEEP_TEXT + 1);
        t.add(row(&long, "ios", ""), true);
        t.clear();
        assert_eq!(t.text.capacity(), 0);
        t.add(row("short", "ios", ""), true);
        t.clear();
        assert!(t.text.capacity() > 0, "a short batch keeps its buffer");
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
                t.rows().map(|(hash, _, _)| hash).collect::<Vec<_>>()
            })
            .join()
            .unwrap()
        };
        let (one, two) = (hash_on_a_thread(), hash_on_a_thread());
        assert_eq!(one, two);
        assert_ne!(one[0], one[1]);
    }
}
