//! Metrics of the link store: its cache, its queries and how far each
//! gateway is behind the change log.

use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry,
};

use super::register::register;

/// How a store lookup was answered: the `result` of
/// `gateway_store_lookups_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A cached link.
    Hit,
    /// A cached unknown code.
    NegativeHit,
    /// Not cached (or stale): the store was asked.
    Miss,
    /// The store could not be asked and a stale link answered.
    Stale,
    /// The store could not be asked and nothing was cached: `503`.
    Unavailable,
}

impl Lookup {
    const ALL: [Lookup; 5] = [
        Lookup::Hit,
        Lookup::NegativeHit,
        Lookup::Miss,
        Lookup::Stale,
        Lookup::Unavailable,
    ];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Lookup::Hit => "hit",
            Lookup::NegativeHit => "negative_hit",
            Lookup::Miss => "miss",
            Lookup::Stale => "stale",
            Lookup::Unavailable => "unavailable",
        }
    }
}

/// A store query: the `op` of `gateway_store_query_duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// One link, for a miss.
    Get,
    /// The change log's head.
    Head,
    /// A batch of changes.
    Changes,
    /// Pruning old changes.
    Prune,
    /// A page of links' keys, for the shadowed-link scan.
    Keys,
    /// An API key looked up by its secret.
    Key,
    /// A link read by the Links API (by id, external id, or a page).
    Read,
    /// A link created, changed or deleted by the Links API.
    Write,
    /// A batch of links created by `POST /api/v1/links/bulk`.
    Bulk,
    /// An `Idempotency-Key` claimed, answered or released.
    Idempotency,
    /// Per-link counters added (a flush of the analytics).
    Stats,
    /// Per-link counters read for a report.
    StatsRead,
    /// Custom domains, their certificates and HTTP-01 challenges read.
    Domains,
    /// Custom domains added, checked or removed, certificates and
    /// challenges kept, the ACME lease taken.
    DomainsWrite,
}

impl Op {
    /// Whether it writes: SQLite takes one writer at a time, and a writer
    /// that finds the database locked sleeps in SQLite's busy handler
    /// (1 ms, 2 ms, 5 ms ... up to 100 ms), so the store sends its writes
    /// to a pool of one connection instead.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Op::Write | Op::Bulk | Op::Idempotency | Op::Prune | Op::Stats | Op::DomainsWrite
        )
    }

    const ALL: [Op; 14] = [
        Op::Get,
        Op::Head,
        Op::Changes,
        Op::Prune,
        Op::Keys,
        Op::Key,
        Op::Read,
        Op::Write,
        Op::Bulk,
        Op::Idempotency,
        Op::Stats,
        Op::StatsRead,
        Op::Domains,
        Op::DomainsWrite,
    ];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Head => "head",
            Op::Changes => "changes",
            Op::Prune => "prune",
            Op::Keys => "keys",
            Op::Key => "key",
            Op::Read => "read",
            Op::Write => "write",
            Op::Bulk => "bulk",
            Op::Idempotency => "idempotency",
            Op::Stats => "stats",
            Op::StatsRead => "stats_read",
            Op::Domains => "domains",
            Op::DomainsWrite => "domains_write",
        }
    }
}

/// Why a store operation failed: the `kind` of `gateway_store_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The database cannot be reached.
    Unavailable,
    /// A unique key is taken.
    Conflict,
    /// A row that cannot be read back.
    BadRow,
    /// The tables are missing.
    Schema,
    /// `[store]` is wrong.
    Config,
    /// Any other database error.
    Query,
}

impl Failure {
    const ALL: [Failure; 6] = [
        Failure::Unavailable,
        Failure::Conflict,
        Failure::BadRow,
        Failure::Schema,
        Failure::Config,
        Failure::Query,
    ];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Unavailable => "unavailable",
            Failure::Conflict => "conflict",
            Failure::BadRow => "bad_row",
            Failure::Schema => "schema",
            Failure::Config => "config",
            Failure::Query => "query",
        }
    }
}

/// Pre-resolved handles of the store's metrics.
pub struct StoreMetrics {
    lookups: [IntCounter; 5],
    /// Entries evicted for room.
    pub evictions: IntCounter,
    queries: [Histogram; 14],
    errors: [IntCounter; 6],
    /// Changes written that this gateway has not applied.
    pub changes_behind: IntGauge,
    /// How old the newest change this gateway has not applied is, or how
    /// long the log has been unreadable.
    pub lag_seconds: Gauge,
    /// Changes applied.
    pub changes_applied: IntCounter,
    /// Times the log was pruned past this gateway (its cache was dropped).
    pub follower_gaps: IntCounter,
    /// Cached entries (links and unknown codes), set by the follower.
    pub cache_entries: IntGauge,
    /// Bytes they weigh.
    pub cache_bytes: IntGauge,
    /// Stored links a rule of the live rules answers instead.
    pub shadowed: IntGauge,
}

impl StoreMetrics {
    pub(super) fn new(r: &Registry) -> prometheus::Result<StoreMetrics> {
        let lookups = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "gateway_store_lookups_total",
                    "Store link lookups on link domains, by how they were answered.",
                ),
                &["result"],
            )?,
        )?;
        let queries = register(
            r,
            HistogramVec::new(
                HistogramOpts::new(
                    "gateway_store_query_duration_seconds",
                    "Store queries by operation (get, head, changes, prune, keys, key, read, write, bulk, idempotency, stats, stats_read).",
                )
                .buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5,
                ]),
                &["op"],
            )?,
        )?;
        let errors = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "gateway_store_errors_total",
                    "Failed store operations by kind (unavailable, query, bad_row, ...).",
                ),
                &["kind"],
            )?,
        )?;
        // Every series exists from the start, so dashboards and alerts see
        // zeros rather than nothing.
        let queries = Op::ALL.map(|op| queries.with_label_values(&[op.as_str()]));
        let errors = Failure::ALL.map(|f| errors.with_label_values(&[f.as_str()]));
        Ok(StoreMetrics {
            lookups: Lookup::ALL.map(|l| lookups.with_label_values(&[l.as_str()])),
            evictions: register(
                r,
                IntCounter::new(
                    "gateway_store_cache_evictions_total",
                    "Cache entries evicted to stay within store.cache_capacity.",
                )?,
            )?,
            queries,
            errors,
            changes_behind: register(
                r,
                IntGauge::new(
                    "gateway_store_changes_behind",
                    "Changes in the store's log this gateway has not applied yet.",
                )?,
            )?,
            lag_seconds: register(
                r,
                Gauge::new(
                    "gateway_store_lag_seconds",
                    "How far the cache is behind the change log in seconds: 0 when caught up, the age of the last change applied while more wait, or how long the log has been unreadable.",
                )?,
            )?,
            changes_applied: register(
                r,
                IntCounter::new(
                    "gateway_store_changes_applied_total",
                    "Changes read from the store's log and applied to the cache.",
                )?,
            )?,
            follower_gaps: register(
                r,
                IntCounter::new(
                    "gateway_store_follower_gaps_total",
                    "Times changes were missing from the log (pruned) and the cache was dropped.",
                )?,
            )?,
            cache_entries: register(
                r,
                IntGauge::new(
                    "gateway_store_cache_entries",
                    "Links and unknown codes in the cache.",
                )?,
            )?,
            cache_bytes: register(
                r,
                IntGauge::new(
                    "gateway_store_cache_bytes",
                    "Bytes the cached entries weigh (bounded by store.cache_capacity).",
                )?,
            )?,
            shadowed: register(
                r,
                IntGauge::new(
                    "gateway_store_shadowed_links",
                    "Stored links that a rule of the live rules (an exact path or bulk link of the same host) answers instead.",
                )?,
            )?,
        })
    }

    /// Counts a lookup.
    pub fn lookup(&self, result: Lookup) {
        self.lookups[result as usize].inc();
    }

    /// Records how long a query took.
    pub fn query(&self, op: Op, seconds: f64) {
        self.queries[op as usize].observe(seconds);
    }

    /// Counts a failed operation.
    pub fn error(&self, failure: Failure) {
        self.errors[failure as usize].inc();
    }
}
