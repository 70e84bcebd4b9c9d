//! What the rules see of the store while deciding one request: the cache,
//! without waiting; a code it cannot answer is noted, loaded by the
//! pipeline, and the request decided again.

use std::sync::{Arc, OnceLock};

use super::cache::Lookup;
use super::error::StoreError;
use super::resolve::{Resolved, Store};
use rules::{LinkSource, RuleSet, StoreLink, Stored};

/// One request's view of the store. Holds the links it hands out, so a
/// decision can borrow them for as long as the request lives.
pub struct StoreView<'s> {
    store: Option<&'s Store>,
    /// A link found in the cache.
    held: OnceLock<Arc<Resolved>>,
    /// What a load returned (a link or none), for the decision after it.
    loaded: OnceLock<Option<Arc<Resolved>>>,
    /// The key the cache could not answer.
    missing: OnceLock<(Box<str>, Box<str>)>,
}

impl<'s> StoreView<'s> {
    /// A view of `store` (none: every code is absent).
    pub fn new(store: Option<&'s Store>) -> Self {
        StoreView {
            store,
            held: OnceLock::new(),
            loaded: OnceLock::new(),
            missing: OnceLock::new(),
        }
    }

    /// A view that already knows the answer for its one code: what
    /// `gateway explain` read from the store itself.
    pub fn known(link: Option<Arc<Resolved>>) -> StoreView<'static> {
        let view = StoreView::new(None);
        let _ = view.loaded.set(link);
        view
    }

    /// Loads the code the last decision needed from the store, so the next
    /// decision has it. `Unavailable` when the store cannot be reached and
    /// nothing (not even a stale link) is cached.
    pub async fn resolve(&self, rules: &RuleSet) -> Result<(), StoreError> {
        let (Some(store), Some((host, code))) = (self.store, self.missing.get()) else {
            return Ok(());
        };
        let link = store.load(host, code, rules).await?;
        let _ = self.loaded.set(link);
        Ok(())
    }
}

impl LinkSource for StoreView<'_> {
    fn link(&self, host: &str, code: &str) -> Stored<'_> {
        if let Some(loaded) = self.loaded.get() {
            return match loaded {
                Some(r) => Stored::Link(&r.link),
                None => Stored::Absent,
            };
        }
        let Some(store) = self.store else {
            return Stored::Absent;
        };
        match store.peek(host, code) {
            Lookup::Fresh(r) => Stored::Link(held(&self.held, r)),
            Lookup::Absent => Stored::Absent,
            Lookup::Stale(_) | Lookup::Missing => {
                let _ = self.missing.set((host.into(), code.into()));
                Stored::Unknown
            }
        }
    }
}

/// Keeps `r` in `cell` (one link per request) and lends its compiled link.
fn held(cell: &OnceLock<Arc<Resolved>>, r: Arc<Resolved>) -> &StoreLink {
    &cell.get_or_init(|| r).link
}
