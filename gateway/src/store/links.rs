//! The queries the Links API writes and reads links with: by id and owner,
//! a page of a filtered list, a change with a version check, a batch.
//! Every write also returns the change log's head after it (`seq`, its
//! own entry or a later one), so the writing gateway's cache forgets the
//! key before the API answers. A write is one statement (its triggers log
//! the change in the same statement); the head is read after it commits.

use super::backend::{bind_link, link_columns, on_pool, Backend};
use super::error::StoreError;
use super::record::{LinkRecord, NewLink, Row};

/// What a change with a version check found.
#[derive(Debug)]
pub enum Updated {
    /// Changed: the link now, and the change-log entry.
    Done(Box<LinkRecord>, i64),
    /// The link is at another version than the one expected.
    Stale(i64),
    /// No such link of this owner.
    Missing,
}

/// Which links a page holds.
#[derive(Debug, Default, Clone)]
pub struct LinkFilter {
    /// Only this owner's (none: everyone's).
    pub owner: Option<String>,
    /// Only links on this host.
    pub host: Option<String>,
    /// Only links with this tag.
    pub tag: Option<String>,
    /// Only links whose code, destination or external id contain this
    /// (case-insensitive).
    pub q: Option<String>,
}

/// `s` with LIKE's wildcards escaped (`\` is the escape character).
fn like_escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn records(rows: Vec<Row>) -> Result<Vec<LinkRecord>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        if let Some(link) = r.into_record()? {
            out.push(link);
        }
    }
    Ok(out)
}

impl Backend {
    /// The link `id`, if it is `owner`'s (any owner's when `owner` is
    /// `None`).
    pub async fn link_by_id(
        &self,
        id: i64,
        owner: Option<&str>,
    ) -> Result<Option<LinkRecord>, StoreError> {
        const SQL: &str = concat!(
            "SELECT CAST(NULL AS BIGINT) AS as_of, ",
            link_columns!(),
            " FROM links WHERE id = $1 AND (CAST($2 AS TEXT) IS NULL OR owner = $2)"
        );
        let row: Option<Row> = on_pool!(self, pool => {
            sqlx::query_as(SQL).bind(id).bind(owner).fetch_optional(pool).await?
        });
        Ok(row.map(Row::into_record).transpose()?.flatten())
    }

    /// `owner`'s link with `external_id`.
    pub async fn link_by_external_id(
        &self,
        owner: &str,
        external_id: &str,
    ) -> Result<Option<LinkRecord>, StoreError> {
        const SQL: &str = concat!(
            "SELECT CAST(NULL AS BIGINT) AS as_of, ",
            link_columns!(),
            " FROM links WHERE owner = $1 AND external_id = $2"
        );
        let row: Option<Row> = on_pool!(self, pool => {
            sqlx::query_as(SQL).bind(owner).bind(external_id).fetch_optional(pool).await?
        });
        Ok(row.map(Row::into_record).transpose()?.flatten())
    }

    /// Up to `limit` links matching `filter` with ids above `after_id`, in
    /// id order: new links get higher ids, so a page boundary never moves
    /// while others create links.
    pub async fn list_links(
        &self,
        filter: &LinkFilter,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<LinkRecord>, StoreError> {
        let rows: Vec<Row> = on_pool!(self, pool => {
            let mut qb = sqlx::QueryBuilder::new(concat!(
                "SELECT CAST(NULL AS BIGINT) AS as_of, ",
                link_columns!(),
                " FROM links WHERE id > "
            ));
            qb.push_bind(after_id);
            if let Some(owner) = &filter.owner {
                qb.push(" AND owner = ").push_bind(owner.clone());
            }
            if let Some(host) = &filter.host {
                qb.push(" AND host = ").push_bind(host.clone());
            }
            if let Some(tag) = &filter.tag {
                // Tags are stored as a JSON array: the tag in quotes, as
                // JSON writes it, is one whole element.
                let quoted = serde_json::to_string(tag).unwrap_or_default();
                qb.push(" AND tags LIKE ")
                    .push_bind(format!("%{}%", like_escaped(&quoted)))
                    .push(" ESCAPE '\\'");
            }
            if let Some(q) = &filter.q {
                let pattern = format!("%{}%", like_escaped(&q.to_lowercase()));
                qb.push(" AND (LOWER(code) LIKE ")
                    .push_bind(pattern.clone())
                    .push(" ESCAPE '\\' OR LOWER(destination) LIKE ")
                    .push_bind(pattern.clone())
                    .push(" ESCAPE '\\' OR LOWER(COALESCE(external_id, '')) LIKE ")
                    .push_bind(pattern)
                    .push(" ESCAPE '\\')");
            }
            qb.push(" ORDER BY id LIMIT ").push_bind(limit);
            qb.build_query_as().fetch_all(pool).await?
        });
        records(rows)
    }

    /// Replaces the fields of `owner`'s link `id` (any owner's when `owner`
    /// is `None`) with `link`'s if it is
    /// still at version `expected`; its version goes up by one. The write
    /// comes first (the version check is in it): SQLite cannot turn a
    /// read transaction into a write once another writer committed, so a
    /// read first would fail concurrent changes instead of telling them
    /// apart.
    pub async fn update_link(
        &self,
        id: i64,
        owner: Option<&str>,
        expected: i64,
        link: &NewLink,
        now: i64,
    ) -> Result<Updated, StoreError> {
        const SQL: &str = concat!(
            "UPDATE links SET host = $1, code = $2, destination = $3, status = $4, ios = $5, \
             android = $6, desktop = $7, countries = $8, expires_at = $9, expired_to = $10, \
             query_mode = $11, cache_control = $12, tags = $13, owner = $14, external_id = $15, \
             updated_at = $16, version = version + 1 \
             WHERE id = $17 AND (CAST($18 AS TEXT) IS NULL OR owner = $18) AND version = $19 \
             RETURNING CAST(NULL AS BIGINT) AS as_of, ",
            link_columns!()
        );
        let row: Option<Row> = on_pool!(self, pool => {
            bind_link!(sqlx::query_as(SQL), link)
                .bind(now)
                .bind(id)
                .bind(owner)
                .bind(expected)
                .fetch_optional(pool)
                .await?
        });
        let Some(row) = row else {
            let version: Option<i64> = on_pool!(self, pool => {
                sqlx::query_scalar(
                    "SELECT version FROM links WHERE id = $1 AND (CAST($2 AS TEXT) IS NULL OR owner = $2)",
                )
                    .bind(id)
                    .bind(owner)
                    .fetch_optional(pool)
                    .await?
            });
            return Ok(version.map_or(Updated::Missing, Updated::Stale));
        };
        let seq = self.head().await?;
        let record = row
            .into_record()?
            .ok_or(StoreError::Schema("an update returned no row"))?;
        Ok(Updated::Done(Box::new(record), seq))
    }

    /// Deletes `owner`'s link `id` (any owner's when `owner` is `None`):
    /// its host and code and the change-log entry, or `None` when there is
    /// no such link.
    pub async fn delete_link(
        &self,
        id: i64,
        owner: Option<&str>,
    ) -> Result<Option<(String, String, i64)>, StoreError> {
        let gone: Option<(String, String)> = on_pool!(self, pool => {
            sqlx::query_as(
                "DELETE FROM links WHERE id = $1 AND (CAST($2 AS TEXT) IS NULL OR owner = $2) \
                 RETURNING host, code",
            )
                .bind(id)
                .bind(owner)
                .fetch_optional(pool)
                .await?
        });
        let Some((host, code)) = gone else {
            return Ok(None);
        };
        Ok(Some((host, code, self.head().await?)))
    }
}
