//! Many links in one write (`POST /api/v1/links/bulk`, and single creates
//! of a key with a quota): the links, their change-log entries and the
//! key's usage in one transaction, without the per-row triggers.
//!
//! SQLite takes one statement of many `VALUES` rows; its writes are one
//! at a time anyway. PostgreSQL takes the columns as arrays (`UNNEST`:
//! one statement to plan, not 18,000 parameters), and takes the change
//! log's lock only after the links are in, so batches of several gateways
//! insert side by side and queue only to number their changes.

use std::collections::HashMap;

use super::backend::{on_pool, values_of_links, Backend};
use super::error::StoreError;
use super::record::{LinkRecord, NewLink};

/// What a batch wrote: each link's record (`None`: its key was taken or
/// it was past the quota), the change log's head after it, and how many
/// links, from the first, the quota let in.
pub type Written = (Vec<Option<LinkRecord>>, i64, usize);

/// `(owner, limit, month_start)`: `owner` may create `limit` links in the
/// month starting at `month_start`.
pub type Quota<'a> = Option<(&'a str, i64, i64)>;

/// How many of `$n` links `$quota` lets in, counted in the transaction
/// `$tx` after locking the key's row (the database, on SQLite), so that
/// racing creates are counted one after the other (either database).
macro_rules! admitted {
    ($tx:expr, $quota:expr, $n:expr) => {{
        match $quota {
            None => $n,
            Some((owner, limit, since)) => {
                sqlx::query("UPDATE api_keys SET monthly_quota = monthly_quota WHERE id = $1")
                    .bind(owner)
                    .execute(&mut *$tx)
                    .await?;
                let used: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(created), 0) FROM api_key_usage \
                     WHERE owner = $1 AND month_start = $2",
                )
                .bind(owner)
                .bind(since)
                .fetch_one(&mut *$tx)
                .await?;
                usize::try_from(limit - used).unwrap_or(0).min($n)
            }
        }
    }};
}

impl Backend {
    /// Creates `links`; each is created or, when its host and code (or its
    /// owner's external id) are taken, skipped. With a `quota`, links past
    /// it are not written; creates are counted (`api_key_usage`), so a
    /// deleted link does not give its place back. The count is taken in
    /// the write's transaction after locking the owner's key (its row on
    /// PostgreSQL, the database on SQLite), so creates racing each other,
    /// on any gateway, are counted one after the other.
    pub async fn insert_many(
        &self,
        links: &[NewLink],
        now: i64,
        quota: Quota<'_>,
    ) -> Result<Written, StoreError> {
        if links.is_empty() {
            return Ok((Vec::new(), self.head().await?, 0));
        }
        let (rows, seq, admitted) = match self {
            Backend::Sqlite(_) => self.insert_many_sqlite(links, now, quota).await?,
            Backend::Postgres(pool) => {
                let written = insert_many_postgres(pool, links, now, quota).await?;
                // The changes bypass the trigger: wake the followers as it
                // would.
                sqlx::query("SELECT pg_notify('gateway_link_changes', $1)")
                    .bind(written.1.to_string())
                    .execute(pool)
                    .await?;
                written
            }
        };
        // RETURNING's order is not promised: match rows to links by key.
        let mut ids: HashMap<(String, String), i64> = rows
            .into_iter()
            .map(|(id, host, code)| ((host, code), id))
            .collect();
        let out = links
            .iter()
            .map(|l| {
                // Taken once: a second item with the same key lost to the
                // first.
                ids.remove(&(l.host.clone(), l.code.clone()))
                    .map(|id| LinkRecord {
                        id,
                        link: l.clone(),
                        created_at: now,
                        updated_at: now,
                        version: 1,
                    })
            })
            .collect();
        Ok((out, seq, admitted))
    }

    async fn insert_many_sqlite(
        &self,
        links: &[NewLink],
        now: i64,
        quota: Quota<'_>,
    ) -> Result<(Vec<(i64, String, String)>, i64, usize), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let admitted = admitted!(tx, quota, links.len());
            let links = &links[..admitted];
            // With `bulk` set the per-row triggers stand aside (three
            // statements a row); one statement logs the batch's changes.
            let base: i64 = sqlx::query_scalar(
                "UPDATE store_meta SET bulk = 1 WHERE id = 1 RETURNING seq",
            )
            .fetch_one(&mut *tx)
            .await?;
            let rows: Vec<(i64, String, String)> = if links.is_empty() {
                Vec::new()
            } else {
                let mut qb = values_of_links!(links, now);
                // Only the keys come back: the rest is what was written,
                // and every value returned crosses sqlx's SQLite worker
                // thread one by one.
                qb.push(" ON CONFLICT DO NOTHING RETURNING id, host, code");
                qb.build_query_as().fetch_all(&mut *tx).await?
            };
            if !rows.is_empty() {
                let mut qb = sqlx::QueryBuilder::new("INSERT INTO link_changes (seq, host, code, at) ");
                qb.push_values(rows.iter().enumerate(), |mut b, (i, (_, host, code))| {
                    b.push_bind(base + 1 + i as i64)
                        .push_bind(host)
                        .push_bind(code)
                        .push_bind(now);
                });
                qb.build().execute(&mut *tx).await?;
            }
            let seq = base + rows.len() as i64;
            sqlx::query("UPDATE store_meta SET seq = $1, bulk = 0 WHERE id = 1")
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            if let Some((owner, _, since)) = quota {
                count_usage!(tx, owner, since, rows.len());
            }
            tx.commit().await?;
            Ok((rows, seq, admitted))
        })
    }
}

/// Adds `$created` to `$owner`'s usage of the month at `$since`, in the
/// transaction `$tx` (either database).
macro_rules! count_usage {
    ($tx:expr, $owner:expr, $since:expr, $created:expr) => {
        sqlx::query(
            "INSERT INTO api_key_usage (owner, month_start, created) VALUES ($1, $2, $3) \
             ON CONFLICT (owner, month_start) \
             DO UPDATE SET created = api_key_usage.created + excluded.created",
        )
        .bind($owner)
        .bind($since)
        .bind($created as i64)
        .execute(&mut *$tx)
        .await?
    };
}
use count_usage;

async fn insert_many_postgres(
    pool: &sqlx::PgPool,
    links: &[NewLink],
    now: i64,
    quota: Quota<'_>,
) -> Result<(Vec<(i64, String, String)>, i64, usize), StoreError> {
    let mut tx = pool.begin().await?;
    // The per-row trigger stands aside for this transaction only, so
    // other writers' triggers go on logging theirs meanwhile.
    sqlx::query("SET LOCAL gateway.bulk = 'on'")
        .execute(&mut *tx)
        .await?;
    let admitted = admitted!(tx, quota, links.len());
    let links = &links[..admitted];
    let column = |f: &dyn Fn(&NewLink) -> Option<String>| -> Vec<Option<String>> {
        links.iter().map(f).collect()
    };
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "INSERT INTO links (host, code, destination, status, ios, android, desktop, countries, \
         expires_at, expired_to, query_mode, cache_control, tags, owner, external_id, \
         created_at, updated_at, version) \
         SELECT h, c, d, s, i, a, dk, co, e, et, q, cc, t, o, x, $16, $16, 1 FROM UNNEST( \
         $1::text[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::text[], $7::text[], \
         $8::text[], $9::int8[], $10::text[], $11::text[], $12::text[], $13::text[], \
         $14::text[], $15::text[]) AS u(h, c, d, s, i, a, dk, co, e, et, q, cc, t, o, x) \
         ON CONFLICT DO NOTHING RETURNING id, host, code",
    )
    .bind(links.iter().map(|l| l.host.clone()).collect::<Vec<_>>())
    .bind(links.iter().map(|l| l.code.clone()).collect::<Vec<_>>())
    .bind(
        links
            .iter()
            .map(|l| l.destination.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        links
            .iter()
            .map(|l| i32::from(l.status))
            .collect::<Vec<_>>(),
    )
    .bind(column(&|l| l.ios.clone()))
    .bind(column(&|l| l.android.clone()))
    .bind(column(&|l| l.desktop.clone()))
    .bind(column(&|l| l.countries_json()))
    .bind(links.iter().map(|l| l.expires_at).collect::<Vec<_>>())
    .bind(column(&|l| l.expired_to.clone()))
    .bind(column(&|l| l.query_mode.clone()))
    .bind(column(&|l| l.cache_control.clone()))
    .bind(column(&|l| l.tags_json()))
    .bind(column(&|l| l.owner.clone()))
    .bind(column(&|l| l.external_id.clone()))
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    // Numbering the changes takes the log's lock (the `store_meta` row),
    // held to the commit: changes are numbered in commit order.
    let n = rows.len() as i64;
    let seq: i64 =
        sqlx::query_scalar("UPDATE store_meta SET seq = seq + $1 WHERE id = 1 RETURNING seq")
            .bind(n)
            .fetch_one(&mut *tx)
            .await?;
    if n > 0 {
        sqlx::query(
            "INSERT INTO link_changes (seq, host, code, at) \
             SELECT $1 + ord, h, c, $4 FROM UNNEST($2::text[], $3::text[]) \
             WITH ORDINALITY AS u(h, c, ord)",
        )
        .bind(seq - n)
        .bind(rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.2.clone()).collect::<Vec<_>>())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    if let Some((owner, _, since)) = quota {
        count_usage!(tx, owner, since, rows.len());
    }
    tx.commit().await?;
    Ok((rows, seq, admitted))
}
