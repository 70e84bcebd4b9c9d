//! Exact paths of one host level: a hash table of small fixed-size entries
//! whose keys live back to back in one string.
//!
//! A million bulk links would otherwise be a million separately allocated
//! keys: a pointer chase and a cache miss per lookup, and a heap that
//! fragments every time a reload frees one rule set and builds the next.

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::hash::BuildHasher;

use crate::rule_ref::RuleRef;

/// Keys up to this long live inside their entry: the entry is already in
/// cache when the table finds it, so comparing costs no second miss. Short
/// links (`/abc123`) are the common case.
const INLINE: usize = 12;

#[derive(Clone, Copy)]
struct Entry {
    rule: RuleRef,
    len: u32,
    /// The key itself when `len <= INLINE`, else its offset in `keys`
    /// (little-endian u64). `len` fits: keys are at most `MAX_PATH_LEN`
    /// plus a link set's prefix.
    data: [u8; INLINE],
}

// One entry per exact path: a million bulk links are a million of these,
// and a lookup reads one, so it must not grow unnoticed.
const _: () = assert!(std::mem::size_of::<Entry>() == 48);

/// Exact path → rule.
#[derive(Default)]
pub(crate) struct ExactPaths {
    /// Keys longer than `INLINE`, back to back.
    keys: String,
    table: HashTable<Entry>,
    hasher: RandomState,
}

fn key<'k>(keys: &'k str, e: &'k Entry) -> &'k [u8] {
    let len = e.len as usize;
    if len <= INLINE {
        return &e.data[..len];
    }
    let mut start = [0u8; 8];
    start.copy_from_slice(&e.data[..8]);
    let start = u64::from_le_bytes(start) as usize;
    keys.as_bytes().get(start..start + len).unwrap_or(&[])
}

impl ExactPaths {
    /// The rule `path` leads to.
    #[inline]
    pub(crate) fn get(&self, path: &str) -> Option<RuleRef> {
        let hash = self.hasher.hash_one(path.as_bytes());
        self.table
            .find(hash, |e| {
                e.len as usize == path.len() && key(&self.keys, e) == path.as_bytes()
            })
            .map(|e| e.rule)
    }

    /// Adds `path`; on conflict returns the rule already there.
    pub(crate) fn insert(&mut self, path: &str, rule: RuleRef) -> Result<(), RuleRef> {
        if let Some(t) = self.get(path) {
            return Err(t);
        }
        let mut data = [0u8; INLINE];
        if path.len() <= INLINE {
            data[..path.len()].copy_from_slice(path.as_bytes());
        } else {
            // 64 bits: several link sets on one host can add up past 4 GiB.
            data[..8].copy_from_slice(&(self.keys.len() as u64).to_le_bytes());
            self.keys.push_str(path);
        }
        let entry = Entry {
            rule,
            len: path.len() as u32,
            data,
        };
        let (keys, hasher) = (&self.keys, &self.hasher);
        let hash = hasher.hash_one(path.as_bytes());
        self.table
            .insert_unique(hash, entry, |e| hasher.hash_one(key(keys, e)));
        Ok(())
    }

    /// Whether no path was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Room for `n` more paths.
    pub(crate) fn reserve(&mut self, n: usize) {
        let (keys, hasher) = (&self.keys, &self.hasher);
        self.table.reserve(n, |e| hasher.hash_one(key(keys, e)));
    }

    /// Trims spare capacity once the table is complete.
    pub(crate) fn shrink(&mut self) {
        self.keys.shrink_to_fit();
        let (keys, hasher) = (&self.keys, &self.hasher);
        self.table.shrink_to_fit(|e| hasher.hash_one(key(keys, e)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_inserted_and_reports_conflicts() {
        let mut m = ExactPaths::default();
        m.reserve(3);
        for i in 0..1000u32 {
            m.insert(&format!("/l/{i}"), RuleRef::Route(i)).unwrap();
        }
        m.shrink();
        for i in 0..1000u32 {
            assert_eq!(m.get(&format!("/l/{i}")), Some(RuleRef::Route(i)));
        }
        assert_eq!(m.get("/l/1000"), None);
        assert_eq!(m.get("/l/"), None);
        assert_eq!(
            m.insert("/l/7", RuleRef::Redirect(1)),
            Err(RuleRef::Route(7))
        );
    }
}
