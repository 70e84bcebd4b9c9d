//! Links kept in a database — SQLite embedded, PostgreSQL for a fleet —
//! resolved on the request path through a cache and kept fresh by following
//! the store's change log, so a change reaches every gateway without a
//! reload.
//!
//! ```text
//! request on a [[domain]] with store = true
//!   └─ rules: exact paths and bulk links first
//!        └─ LinkSource::link(host, code) ─▶ cache.peek (no allocation)
//!             ├─ fresh link / known unknown ─▶ decided now (fast path)
//!             └─ missing or stale ─▶ handed to the pipeline:
//!                  Store::load ─▶ one query per key at a time ─▶ decide again
//!                  store down: a stale link answers; nothing cached: 503
//! follower (background): change log after `applied` ─▶ cache.changed(key)
//! ```
//!
//! [`backend`] runs the SQL on SQLite or PostgreSQL, [`cache`] holds what
//! was read, [`follower`] applies the change log, [`record`] is a link as
//! stored, [`view`] is what the rules see of the store for one request.

mod backend;
mod cache;
mod error;
mod follower;
mod record;
mod shadow;
mod view;

pub use backend::Backend;
pub use cache::Lookup;
pub use error::StoreError;
pub use record::{LinkRecord, NewLink};
pub use view::StoreView;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use crate::config::StoreSection;
use crate::live::Live;
use crate::metrics::{Metrics, StoreLookup};
use cache::LinkCache;
use follower::Position;

/// A stored link as the cache keeps it: the row, and the link compiled for
/// the rules that were live when it was read.
pub struct Resolved {
    /// The row.
    pub record: LinkRecord,
    /// What the rules decide with.
    pub link: rules::StoreLink,
}

impl Resolved {
    /// What the cache counts it as weighing.
    fn weight(r: &Arc<Resolved>) -> u32 {
        let l = &r.record.link;
        let text = l.destination.len()
            + l.ios.as_ref().map_or(0, String::len)
            + l.android.as_ref().map_or(0, String::len)
            + l.desktop.as_ref().map_or(0, String::len)
            + l.countries.values().map(|v| v.len() + 8).sum::<usize>()
            + l.expired_to.as_ref().map_or(0, String::len)
            + l.tags.iter().map(|t| t.len() + 8).sum::<usize>()
            + l.owner.as_ref().map_or(0, String::len)
            + l.external_id.as_ref().map_or(0, String::len);
        // The compiled link holds the destinations again.
        (2 * text + 2 * std::mem::size_of::<Resolved>()).min(u32::MAX as usize) as u32
    }
}

/// Scans for shadowed links whenever a new rules version goes live (and at
/// start); a scan that fails is tried again at the next version.
async fn shadow_scans(store: Arc<Store>, live: Live, mut shutdown: pingora::server::ShutdownWatch) {
    let mut scanned = 0;
    loop {
        let snap = live.load_full();
        if snap.version != scanned {
            scanned = snap.version;
            if let Err(e) = shadow::scan(&store, snap.rules.clone()).await {
                tracing::warn!(error = %e, "store: cannot scan for shadowed links");
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

/// The store: its database, its cache and where the follower is.
pub struct Store {
    backend: Backend,
    /// The store's own runtime: every query and the follower run there, so
    /// the pool's connections live on one reactor whichever of Pingora's
    /// runtimes asks.
    rt: tokio::runtime::Handle,
    cache: LinkCache<Arc<Resolved>>,
    position: Position,
    metrics: Arc<Metrics>,
    config: StoreSection,
}

impl Store {
    /// Opens the store `config` names and applies its migrations. A
    /// PostgreSQL server that cannot be reached is not fatal: the gateway
    /// serves what it can and the follower keeps trying.
    pub fn open(config: &StoreSection, metrics: Arc<Metrics>) -> Result<Arc<Store>, StoreError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("store")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Config(format!("cannot start the store's runtime: {e}")))?;
        // The store lives as long as the process; its runtime too.
        let rt = Box::leak(Box::new(rt)).handle().clone();
        let backend = rt.block_on(async {
            let backend =
                Backend::open(&config.url, config.max_connections, config.timeout).await?;
            match backend.migrate().await {
                Ok(()) => Ok(backend),
                Err(StoreError::Unavailable(e)) if matches!(backend, Backend::Postgres(_)) => {
                    tracing::error!(error = %e, "store: PostgreSQL unreachable at start; uncached store links answer 503 until it is back");
                    Ok(backend)
                }
                Err(e) => Err(e),
            }
        })?;
        let evictions = metrics.store.evictions.clone();
        let cache = LinkCache::new(
            config.cache_capacity,
            config.ttl,
            config.negative_ttl,
            Resolved::weight,
            move || evictions.inc(),
        );
        Ok(Arc::new(Store {
            backend,
            rt,
            cache,
            position: Position::new(),
            metrics,
            config: config.clone(),
        }))
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        self.backend.kind()
    }

    /// Follows the change log on the store's runtime until `shutdown`, and
    /// counts the stored links each rules version of `live` shadows.
    pub async fn follow(self: Arc<Self>, live: Live, shutdown: pingora::server::ShutdownWatch) {
        let rt = self.rt.clone();
        let shadows = rt.spawn(shadow_scans(self.clone(), live, shutdown.clone()));
        if let Err(e) = rt.spawn(follower::run(self, shutdown)).await {
            tracing::error!(error = %e, "store: the change-log follower stopped");
        }
        shadows.abort();
    }

    /// What the cache holds for `host` and `code`, counted.
    pub fn peek(&self, host: &str, code: &str) -> Lookup<Arc<Resolved>> {
        let found = self.cache.peek(host, code);
        match &found {
            Lookup::Fresh(_) => self.metrics.store.lookup(StoreLookup::Hit),
            Lookup::Absent => self.metrics.store.lookup(StoreLookup::NegativeHit),
            Lookup::Stale(_) | Lookup::Missing => {}
        }
        found
    }

    /// Reads `host` and `code` from the store (one query per key at a
    /// time) and compiles it for `rules`. While the store is unreachable, a
    /// stale cached link answers.
    pub async fn load(
        &self,
        host: &str,
        code: &str,
        rules: &rules::RuleSet,
    ) -> Result<Option<Arc<Resolved>>, StoreError> {
        self.metrics.store.lookup(StoreLookup::Miss);
        let loaded = self
            .cache
            .load(host, code, || async {
                let (h, c) = (host.to_string(), code.to_string());
                let (record, as_of) = self
                    .query("get", move |b| async move { b.get(&h, &c).await })
                    .await?;
                let Some(record) = record else {
                    return Ok((None, as_of));
                };
                match rules::StoreLink::compile(&record.link.spec(record.id, record.version), rules)
                {
                    Ok(link) => Ok((Some(Arc::new(Resolved { record, link })), as_of)),
                    Err(errors) => {
                        // Written around the API (by hand in SQL, or under
                        // rules that allowed more): it answers as unknown.
                        tracing::warn!(id = record.id, host, code, errors = %errors, "store: link does not validate under the live rules; answering as unknown");
                        self.metrics.store.error("bad_row");
                        Ok((None, as_of))
                    }
                }
            })
            .await;
        match loaded {
            Err(e @ StoreError::Unavailable(_)) => match self.cache.peek(host, code) {
                Lookup::Stale(link) | Lookup::Fresh(link) => {
                    self.metrics.store.lookup(StoreLookup::Stale);
                    Ok(Some(link))
                }
                Lookup::Absent => Ok(None),
                Lookup::Missing => {
                    self.metrics.store.lookup(StoreLookup::Unavailable);
                    Err(e)
                }
            },
            other => other,
        }
    }

    /// Runs `query` on the store's runtime under the store's timeout,
    /// timing it and counting its failure.
    async fn query<T, F, Fut>(&self, op: &'static str, query: F) -> Result<T, StoreError>
    where
        F: FnOnce(Backend) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        let started = Instant::now();
        let timeout = self.config.timeout;
        let running = query(self.backend.clone());
        let result = match self
            .rt
            .spawn(async move { tokio::time::timeout(timeout, running).await })
            .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(StoreError::Unavailable(format!("{op} timed out"))),
            Err(e) => Err(StoreError::Query(format!("{op}: {e}"))),
        };
        self.metrics
            .store
            .query(op, started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            self.metrics.store.error(e.kind());
        }
        result
    }

    /// Refreshes the cache gauges (at scrape time).
    pub fn publish_size(&self) {
        let (entries, bytes) = self.cache.size();
        self.metrics.store.cache_entries.set(entries as i64);
        self.metrics.store.cache_bytes.set(bytes as i64);
    }
}
