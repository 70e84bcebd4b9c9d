//! Exact paths of one host level: an open-addressed table of small
//! fixed-size entries whose long keys live back to back in one string.
//!
//! A million bulk links would otherwise be a million separately allocated
//! keys: a pointer chase and a cache miss per lookup, and a heap that
//! fragments every time a reload frees one rule set and builds the next.
//!
//! The table is linear-probed and each entry carries part of its key's
//! hash, so a hit reads one run of adjacent entries, usually one or two
//! cache lines: a general-purpose table (hashbrown) reads a group of
//! control bytes first and the entry after it, two misses instead of one
//! when a million links do not fit in the cache.

use foldhash::fast::RandomState;
use std::hash::BuildHasher;

use crate::matcher::Target;

/// Keys up to this long live inside their entry: the entry is already in
/// cache when the probe reaches it, so comparing costs no second miss.
/// Short links (`/abc123`) are the common case.
const INLINE: usize = 12;

/// The table grows past this load (entries / slots, in eighths): low
/// enough that a probe rarely leaves the first cache line or two.
const MAX_LOAD_EIGHTHS: usize = 6;

#[derive(Clone, Copy)]
struct Entry {
    target: Target,
    /// Key length; 0 marks an empty slot (keys are never empty: the empty
    /// path is kept apart).
    len: u32,
    /// The high half of the key's hash, compared before the key.
    tag: u32,
    /// The key itself when `len <= INLINE`, else its offset in `keys`.
    data: [u8; INLINE],
}

const EMPTY: Entry = Entry {
    target: Target::Redirect(0),
    len: 0,
    tag: 0,
    data: [0; INLINE],
};

/// Exact path → target.
#[derive(Default)]
pub(crate) struct ExactPaths {
    /// Keys longer than `INLINE`, back to back.
    keys: String,
    /// A power-of-two number of slots, or none before the first insert.
    slots: Vec<Entry>,
    len: usize,
    /// The empty path, which has no slot of its own.
    empty: Option<Target>,
    hasher: RandomState,
}

fn key<'k>(keys: &'k str, e: &'k Entry) -> &'k [u8] {
    let len = e.len as usize;
    if len <= INLINE {
        return &e.data[..len];
    }
    let mut start = [0u8; 4];
    start.copy_from_slice(&e.data[..4]);
    let start = u32::from_le_bytes(start) as usize;
    keys.as_bytes().get(start..start + len).unwrap_or(&[])
}

impl ExactPaths {
    /// The target of `path`.
    #[inline]
    pub(crate) fn get(&self, path: &str) -> Option<Target> {
        if path.is_empty() {
            return self.empty;
        }
        let mask = self.slots.len().checked_sub(1)?;
        let hash = self.hasher.hash_one(path.as_bytes());
        let tag = (hash >> 32) as u32;
        let mut i = hash as usize & mask;
        loop {
            let e = self.slots.get(i)?;
            if e.len == 0 {
                return None;
            }
            if e.tag == tag && e.len as usize == path.len() && key(&self.keys, e) == path.as_bytes()
            {
                return Some(e.target);
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds `path`; on conflict returns the target already there.
    pub(crate) fn insert(&mut self, path: &str, target: Target) -> Result<(), Target> {
        if let Some(t) = self.get(path) {
            return Err(t);
        }
        if path.is_empty() {
            self.empty = Some(target);
            return Ok(());
        }
        self.reserve(1);
        let mut data = [0u8; INLINE];
        if path.len() <= INLINE {
            data[..path.len()].copy_from_slice(path.as_bytes());
        } else {
            data[..4].copy_from_slice(&(self.keys.len() as u32).to_le_bytes());
            self.keys.push_str(path);
        }
        let hash = self.hasher.hash_one(path.as_bytes());
        let entry = Entry {
            target,
            len: path.len() as u32,
            tag: (hash >> 32) as u32,
            data,
        };
        place(&mut self.slots, hash, entry);
        self.len += 1;
        Ok(())
    }

    /// Room for `n` more paths.
    pub(crate) fn reserve(&mut self, n: usize) {
        let wanted = slots_for(self.len + n);
        if wanted > self.slots.len() {
            self.rebuild(wanted);
        }
    }

    /// Trims spare capacity once the table is complete.
    pub(crate) fn shrink(&mut self) {
        self.keys.shrink_to_fit();
        let wanted = if self.len == 0 {
            0
        } else {
            slots_for(self.len)
        };
        if wanted < self.slots.len() {
            self.rebuild(wanted);
        }
    }

    /// Moves every entry into a table of `n` slots (a power of two, or 0).
    fn rebuild(&mut self, n: usize) {
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; n]);
        for e in old.into_iter().filter(|e| e.len != 0) {
            let hash = self.hasher.hash_one(key(&self.keys, &e));
            place(&mut self.slots, hash, e);
        }
    }
}

/// The number of slots that keeps `n` entries under the maximum load.
fn slots_for(n: usize) -> usize {
    (n * 8)
        .div_ceil(MAX_LOAD_EIGHTHS)
        .max(8)
        .next_power_of_two()
}

/// Puts `e` in the first free slot of its probe sequence; the caller made
/// sure there is one.
fn place(slots: &mut [Entry], hash: u64, e: Entry) {
    let mask = slots.len() - 1;
    let mut i = hash as usize & mask;
    while slots[i].len != 0 {
        i = (i + 1) & mask;
    }
    slots[i] = e;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn finds_what_was_inserted_and_reports_conflicts() {
        let mut m = ExactPaths::default();
        assert_eq!(m.get("/l/1"), None);
        m.reserve(3);
        for i in 0..1000u32 {
            m.insert(&format!("/l/{i}"), Target::Route(i)).unwrap();
        }
        m.shrink();
        for i in 0..1000u32 {
            assert_eq!(m.get(&format!("/l/{i}")), Some(Target::Route(i)));
        }
        assert_eq!(m.get("/l/1000"), None);
        assert_eq!(m.get("/l/"), None);
        assert_eq!(m.insert("/l/7", Target::Redirect(1)), Err(Target::Route(7)));
    }

    #[test]
    fn agrees_with_a_hash_map_for_short_long_and_empty_keys() {
        let mut m = ExactPaths::default();
        let mut reference = HashMap::new();
        // A small generator so the test needs no extra dependency.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..20_000u32 {
            let n = next();
            let len = (n % 40) as usize;
            let key: String = (0..len)
                .map(|j| char::from(b'a' + ((n >> (j % 60)) % 26) as u8))
                .collect();
            let key = if i % 7 == 0 { format!("/{key}") } else { key };
            let expected = reference.get(&key).copied();
            let got = m.insert(&key, Target::Respond(i));
            match expected {
                Some(t) => assert_eq!(got, Err(t), "{key:?}"),
                None => {
                    assert_eq!(got, Ok(()), "{key:?}");
                    reference.insert(key, Target::Respond(i));
                }
            }
            if i == 10_000 {
                m.shrink();
            }
        }
        m.shrink();
        for (k, t) in &reference {
            assert_eq!(m.get(k), Some(*t), "{k:?}");
            let mut other = k.clone();
            other.push('~');
            assert_eq!(m.get(&other), reference.get(&other).copied());
        }
        assert!(
            reference.contains_key(""),
            "the generator made an empty key"
        );
        assert_eq!(m.slots.len(), slots_for(reference.len() - 1));
    }
}
