//! Exact paths of one host level: a hash table of small fixed-size entries
//! whose keys live back to back in one string.
//!
//! A million bulk links would otherwise be a million separately allocated
//! keys: a pointer chase and a cache miss per lookup, and a heap that
//! fragments every time a reload frees one rule set and builds the next.

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::hash::BuildHasher;

use crate::matcher::Target;

#[derive(Clone, Copy)]
struct Entry {
    start: u32,
    len: u32,
    target: Target,
}

/// Exact path → target.
#[derive(Default)]
pub(crate) struct ExactPaths {
    keys: String,
    table: HashTable<Entry>,
    hasher: RandomState,
}

fn key<'k>(keys: &'k str, e: &Entry) -> &'k str {
    keys.get(e.start as usize..(e.start + e.len) as usize)
        .unwrap_or("")
}

impl ExactPaths {
    /// The target of `path`.
    #[inline]
    pub(crate) fn get(&self, path: &str) -> Option<Target> {
        let hash = self.hasher.hash_one(path);
        self.table
            .find(hash, |e| key(&self.keys, e) == path)
            .map(|e| e.target)
    }

    /// Adds `path`; on conflict returns the target already there.
    pub(crate) fn insert(&mut self, path: &str, target: Target) -> Result<(), Target> {
        if let Some(t) = self.get(path) {
            return Err(t);
        }
        let entry = Entry {
            start: self.keys.len() as u32,
            len: path.len() as u32,
            target,
        };
        self.keys.push_str(path);
        let (keys, hasher) = (&self.keys, &self.hasher);
        let hash = hasher.hash_one(path);
        self.table
            .insert_unique(hash, entry, |e| hasher.hash_one(key(keys, e)));
        Ok(())
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
            m.insert(&format!("/l/{i}"), Target::Link { set: 0, row: i })
                .unwrap();
        }
        m.shrink();
        for i in 0..1000u32 {
            assert_eq!(
                m.get(&format!("/l/{i}")),
                Some(Target::Link { set: 0, row: i })
            );
        }
        assert_eq!(m.get("/l/1000"), None);
        assert_eq!(m.get("/l/"), None);
        assert_eq!(
            m.insert("/l/7", Target::Redirect(1)),
            Err(Target::Link { set: 0, row: 7 })
        );
    }
}
