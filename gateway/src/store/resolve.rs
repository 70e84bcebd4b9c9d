//! The store as the request path sees it: a link read from the database
//! and compiled ([`Resolved`]), the cache in front of it, and the one way
//! queries run ([`Store::query`]: on the store's runtime, under its
//! timeout, timed and counted).

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::backend::Backend;
use super::cache::{LinkCache, Lookup};
use super::error::StoreError;
use super::record::LinkRecord;
use crate::config::StoreSection;
use crate::metrics::{Metrics, StoreFailure, StoreLookup, StoreOp};

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

/// The store: its database, its cache and where the follower is.
pub struct Store {
    pub(super) backend: Backend,
    /// The store's own runtime: the follower runs there, and so does every
    /// PostgreSQL query, so the pool's sockets live on one reactor
    /// whichever of Pingora's runtimes asks (SQLite's run where asked).
    pub(super) rt: tokio::runtime::Handle,
    pub(super) cache: LinkCache<Arc<Resolved>>,
    pub(super) position: Position,
    pub(super) metrics: Arc<Metrics>,
    pub(super) config: StoreSection,
    /// Where writes go (see `StoreOp::writes`): on SQLite a pool of one
    /// connection, so writers queue here instead of in SQLite's busy
    /// handler, and the one writer's page cache stays warm with the
    /// indexes it inserts into; on PostgreSQL the pool itself.
    writer: Backend,
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
        let (backend, writer) = rt.block_on(async {
            let backend =
                Backend::open(&config.url, config.max_connections, config.timeout).await?;
            let writer = match &backend {
                Backend::Sqlite(_) => Backend::open(&config.url, 1, config.timeout).await?,
                Backend::Postgres(_) => backend.clone(),
            };
            match backend.migrate().await {
                Ok(()) => Ok((backend, writer)),
                Err(StoreError::Unavailable(e)) if matches!(backend, Backend::Postgres(_)) => {
                    tracing::error!(error = %e, "store: PostgreSQL unreachable at start; uncached store links answer 503 until it is back");
                    Ok((backend, writer))
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
            writer,
        }))
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        self.backend.kind()
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
                    .query(StoreOp::Get, move |b| async move { b.get(&h, &c).await })
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
                        self.metrics.store.error(StoreFailure::BadRow);
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
    pub async fn query<T, F, Fut>(&self, op: StoreOp, query: F) -> Result<T, StoreError>
    where
        F: FnOnce(Backend) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        let started = Instant::now();
        let timeout = self.config.timeout;
        let running = query(if op.writes() {
            self.writer.clone()
        } else {
            self.backend.clone()
        });
        // SQLite's connections are threads of sqlx's own, bound to no
        // reactor: the query runs where it was asked, saving two thread
        // hand-offs a query. PostgreSQL's sockets live on the store's
        // runtime.
        let ran = match self.backend {
            Backend::Sqlite(_) => Ok(tokio::time::timeout(timeout, running).await),
            Backend::Postgres(_) => {
                self.rt
                    .spawn(async move { tokio::time::timeout(timeout, running).await })
                    .await
            }
        };
        let result = match ran {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(StoreError::Unavailable(format!(
                "{} timed out",
                op.as_str()
            ))),
            Err(e) => Err(StoreError::Query(format!("{}: {e}", op.as_str()))),
        };
        self.metrics
            .store
            .query(op, started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            self.metrics.store.error(e.kind());
        }
        result
    }

    /// Runs `f` to its end on the store's runtime, from a thread of its
    /// own (the analytics flusher): PostgreSQL's sockets live there.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// A write of this gateway made change-log entry `seq` for `host` and
    /// `code`: the cache forgets the key now (an "unknown" it held would
    /// otherwise answer until the follower reads the entry), so the write
    /// is served here before the API answers it.
    pub fn written(&self, seq: i64, host: &str, code: &str) {
        self.cache.changed(seq, host, code);
    }

    /// How often the change log is read: the bound on how long a change
    /// (a revoked API key, too) takes to reach every gateway.
    pub fn poll_interval(&self) -> std::time::Duration {
        self.config.poll_interval
    }

    /// Refreshes the cache gauges (at scrape time).
    pub fn publish_size(&self) {
        let (entries, bytes) = self.cache.size();
        self.metrics.store.cache_entries.set(entries as i64);
        self.metrics.store.cache_bytes.set(bytes as i64);
    }
}

/// Where the follower is in the log.
#[derive(Debug, Default)]
pub struct Position {
    /// The last change applied; -1 until the follower first reached the
    /// store.
    pub(super) applied: AtomicI64,
}

impl Position {
    /// A follower that has not started.
    pub fn new() -> Position {
        Position {
            applied: AtomicI64::new(-1),
        }
    }

    /// The last change applied (-1: none yet).
    pub fn applied(&self) -> i64 {
        self.applied.load(Ordering::Acquire)
    }
}
