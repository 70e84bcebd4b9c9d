//! The two databases a store can live in, behind one set of queries.
//!
//! SQLite and PostgreSQL take the same SQL here (`$n` parameters, the same
//! tables, see `gateway/migrations/`), so every query is written once and
//! run on whichever pool the URL named ([`on_pool!`]).

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

use super::error::StoreError;
use super::record::{Change, LinkRecord, NewLink, Row};

/// A connection pool to the store's database.
#[derive(Clone)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite(SqlitePool),
    /// A PostgreSQL server, shared by a fleet.
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool: the same query
/// text, compiled once per database.
macro_rules! on_pool {
    ($backend:expr, $pool:ident => $body:expr) => {
        match $backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}
pub(super) use on_pool;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The columns of a link, in the order `record::Row` reads them.
macro_rules! link_columns {
    () => {
        "id, host, code, destination, status, ios, android, desktop, countries, expires_at, \
         expired_to, query_mode, cache_control, tags, owner, external_id, created_at, \
         updated_at, version"
    };
}
pub(super) use link_columns;

/// Binds a [`NewLink`]'s fields in column order (`host` to `external_id`,
/// parameters `$1` to `$15`).
macro_rules! bind_link {
    ($query:expr, $l:expr) => {
        $query
            .bind(&$l.host)
            .bind(&$l.code)
            .bind(&$l.destination)
            .bind(i32::from($l.status))
            .bind(&$l.ios)
            .bind(&$l.android)
            .bind(&$l.desktop)
            .bind($l.countries_json())
            .bind($l.expires_at)
            .bind(&$l.expired_to)
            .bind(&$l.query_mode)
            .bind(&$l.cache_control)
            .bind($l.tags_json())
            .bind(&$l.owner)
            .bind(&$l.external_id)
    };
}
pub(super) use bind_link;

/// `INSERT INTO links (...) VALUES (...), ...` for `$links` (each created
/// and updated at `$now`, version 1): a query builder to finish with an
/// `ON CONFLICT` clause. Imports and SQLite batches write rows this way.
macro_rules! values_of_links {
    ($links:expr, $now:expr) => {{
        let mut qb = sqlx::QueryBuilder::new(
            "INSERT INTO links (host, code, destination, status, ios, android, desktop, \
             countries, expires_at, expired_to, query_mode, cache_control, tags, owner, \
             external_id, created_at, updated_at, version) ",
        );
        qb.push_values($links, |mut b, l| {
            b.push_bind(&l.host)
                .push_bind(&l.code)
                .push_bind(&l.destination)
                .push_bind(i32::from(l.status))
                .push_bind(&l.ios)
                .push_bind(&l.android)
                .push_bind(&l.desktop)
                .push_bind(l.countries_json())
                .push_bind(l.expires_at)
                .push_bind(&l.expired_to)
                .push_bind(&l.query_mode)
                .push_bind(&l.cache_control)
                .push_bind(l.tags_json())
                .push_bind(&l.owner)
                .push_bind(&l.external_id)
                .push_bind($now)
                .push_bind($now)
                .push_bind(1i64);
        });
        qb
    }};
}
pub(super) use values_of_links;

impl Backend {
    /// A pool for `url`. A SQLite file (and its directory) is created when
    /// missing; a PostgreSQL pool connects lazily, so a gateway starts
    /// while its database is down and catches up when it is back.
    pub async fn open(
        url: &str,
        max_connections: u32,
        timeout: Duration,
    ) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Config(format!("store.url: {e}")))?
                .create_if_missing(true)
                // Readers never wait for the one writer.
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(timeout);
            // The one writer (a pool of one, `Store`'s) keeps a larger page
            // cache: with a few hundred thousand links, inserts into the
            // indexes read pages back from the kernel again and again with
            // SQLite's 2 MB. Readers keep the default: a reader drops its
            // whole cache whenever another connection wrote, and a large
            // one costs more to drop than it saves.
            let options = if max_connections == 1 {
                options.pragma("cache_size", "-16384")
            } else {
                options
            };
            if let Some(dir) = options.get_filename().parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Config(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(timeout)
                .connect_with(options)
                .await?;
            Ok(Backend::Sqlite(pool))
        } else {
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| StoreError::Config(format!("store.url: {e}")))?
                .application_name("gateway");
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(timeout)
                .connect_lazy_with(options);
            Ok(Backend::Postgres(pool))
        }
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Applies the migrations this binary has and the database lacks
    /// (PostgreSQL takes an advisory lock, so a fleet starting at once
    /// migrates once).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Backend::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Backend::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Migrations applied, and those this binary has.
    pub async fn migrations(&self) -> Result<(usize, usize), StoreError> {
        let known = match self {
            Backend::Sqlite(_) => SQLITE_MIGRATIONS.iter().count(),
            Backend::Postgres(_) => POSTGRES_MIGRATIONS.iter().count(),
        };
        let applied: Result<i64, sqlx::Error> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(pool)
                .await
        });
        match applied {
            Ok(n) => Ok((n as usize, known)),
            // No migration table yet: nothing applied.
            Err(sqlx::Error::Database(_)) => Ok((0, known)),
            Err(e) => Err(e.into()),
        }
    }

    /// The link at `host` and `code`, if any, and the change sequence the
    /// answer is as of (one statement, so one snapshot of the database).
    pub async fn get(
        &self,
        host: &str,
        code: &str,
    ) -> Result<(Option<LinkRecord>, i64), StoreError> {
        const SQL: &str = "SELECT m.seq AS as_of, l.* FROM store_meta m LEFT JOIN links l \
             ON l.host = $1 AND l.code = $2 WHERE m.id = 1";
        let row: Option<Row> = on_pool!(self, pool => {
            sqlx::query_as(SQL).bind(host).bind(code).fetch_optional(pool).await?
        });
        let row = row.ok_or(StoreError::Schema(
            "store_meta has no row; run `gateway store migrate`",
        ))?;
        let as_of = row.as_of.unwrap_or(0);
        match row.into_record() {
            Ok(record) => Ok((record, as_of)),
            // A row edited by hand into something unreadable answers as
            // unknown (and says so), not as a store that is down.
            Err(StoreError::BadRow(why)) => {
                tracing::warn!(host, code, error = %why, "store: unreadable link row; answering as unknown");
                Ok((None, as_of))
            }
            Err(e) => Err(e),
        }
    }

    /// The latest change sequence.
    pub async fn head(&self) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT seq FROM store_meta WHERE id = 1").fetch_one(pool).await?
        }))
    }

    /// Up to `limit` changes after `seq`, in order.
    pub async fn changes_after(&self, seq: i64, limit: i64) -> Result<Vec<Change>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT seq, host, code, at FROM link_changes WHERE seq > $1 ORDER BY seq LIMIT $2")
                .bind(seq)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Forgets changes older than `before` (Unix seconds); a follower that
    /// was away longer starts over with an empty cache.
    pub async fn prune_changes(&self, before: i64) -> Result<u64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query("DELETE FROM link_changes WHERE at < $1 AND seq < (SELECT seq FROM store_meta WHERE id = 1)")
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    /// How many links the store holds.
    pub async fn count(&self) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM links").fetch_one(pool).await?
        }))
    }

    /// Creates a link; a taken (host, code) is [`StoreError::Conflict`].
    /// Also returns the change log's head after it (its own entry or a
    /// later one), so this gateway's cache can forget an "unknown" it held
    /// for the code before it answers.
    pub async fn insert(&self, link: &NewLink, now: i64) -> Result<(LinkRecord, i64), StoreError> {
        // RETURNING sees `store_meta` as it was before the insert's own
        // trigger counted the change: one more is this insert's entry.
        const SQL: &str = "INSERT INTO links (host, code, destination, status, ios, android, \
             desktop, countries, expires_at, expired_to, query_mode, cache_control, tags, owner, \
             external_id, created_at, updated_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16, 1) \
             RETURNING id, (SELECT seq FROM store_meta WHERE id = 1) + 1";
        let (id, next): (i64, i64) = on_pool!(self, pool => {
            bind_link!(sqlx::query_as(SQL), link).bind(now).fetch_one(pool).await?
        });
        let seq = match self {
            // One writer at a time, and the statement holds the database:
            // `next` is this insert's entry.
            Backend::Sqlite(_) => next,
            // Another writer may have counted a change between this
            // statement's snapshot and its trigger: read the head after.
            Backend::Postgres(_) => self.head().await?,
        };
        let record = LinkRecord {
            id,
            link: link.clone(),
            created_at: now,
            updated_at: now,
            version: 1,
        };
        Ok((record, seq))
    }

    /// Deletes the link at `host` and `code`; whether there was one.
    pub async fn delete(&self, host: &str, code: &str) -> Result<bool, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query("DELETE FROM links WHERE host = $1 AND code = $2")
                .bind(host)
                .bind(code)
                .execute(pool)
                .await?
                .rows_affected()
                > 0
        }))
    }

    /// The id, host and code of up to `batch` links after `after_id`, in id
    /// order: what a scan for shadowed links needs.
    pub async fn keys(
        &self,
        after_id: i64,
        batch: i64,
    ) -> Result<Vec<(i64, String, String)>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT id, host, code FROM links WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after_id)
                .bind(batch)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Every link, `batch` at a time in id order, for export.
    pub async fn page(&self, after_id: i64, batch: i64) -> Result<Vec<LinkRecord>, StoreError> {
        const SQL: &str = concat!(
            "SELECT CAST(NULL AS BIGINT) AS as_of, ",
            link_columns!(),
            " FROM links WHERE id > $1 ORDER BY id LIMIT $2"
        );
        let rows: Vec<Row> = on_pool!(self, pool => {
            sqlx::query_as(SQL).bind(after_id).bind(batch).fetch_all(pool).await?
        });
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            if let Some(link) = r.into_record()? {
                out.push(link);
            }
        }
        Ok(out)
    }

    /// Writes `links` in one transaction, replacing links with the same
    /// host and code, without a change per row: the change log gets one
    /// entry per host (code `*`), which makes followers drop that host's
    /// cached entries.
    /// `progress` is told how many links are written so far.
    /// The links come from `next`, a chunk at a time (empty: no more), so
    /// a file of millions of rows is never all in memory; `hosts` are the
    /// hosts they are on. An `Err` from `next` rolls everything back.
    pub async fn import(
        &self,
        hosts: &[String],
        mut next: impl FnMut() -> Result<Vec<NewLink>, String>,
        now: i64,
        progress: impl Fn(u64),
    ) -> Result<u64, StoreError> {
        let written = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE store_meta SET bulk = 1 WHERE id = 1").execute(&mut *tx).await?;
            let mut written = 0;
            loop {
                let chunk = next().map_err(StoreError::Query)?;
                if chunk.is_empty() {
                    break;
                }
                let mut qb = values_of_links!(&chunk, now);
                qb.push(
                    " ON CONFLICT (host, code) DO UPDATE SET destination = excluded.destination, \
                     status = excluded.status, ios = excluded.ios, android = excluded.android, \
                     desktop = excluded.desktop, countries = excluded.countries, \
                     expires_at = excluded.expires_at, expired_to = excluded.expired_to, \
                     query_mode = excluded.query_mode, cache_control = excluded.cache_control, \
                     tags = excluded.tags, updated_at = excluded.updated_at, \
                     version = links.version + 1",
                );
                written += qb.build().execute(&mut *tx).await?.rows_affected();
                progress(written);
            }
            sqlx::query("UPDATE store_meta SET bulk = 0 WHERE id = 1").execute(&mut *tx).await?;
            for host in hosts {
                sqlx::query(
                    "UPDATE store_meta SET seq = seq + 1 WHERE id = 1",
                )
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO link_changes (seq, host, code, at) \
                     SELECT seq, $1, '*', $2 FROM store_meta WHERE id = 1",
                )
                .bind(host)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<u64, StoreError>(written)
        })?;
        if let Backend::Postgres(pool) = self {
            // The per-host changes above bypass the trigger: wake the
            // followers as it would.
            sqlx::query("SELECT pg_notify('gateway_link_changes', '')")
                .execute(pool)
                .await?;
        }
        Ok(written)
    }
}
