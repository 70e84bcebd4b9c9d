//! Per-link click counters (`link_stats`, migration 0004): added in
//! batches by every gateway's analytics flusher, read back summed for the
//! stats reports.

use std::sync::Arc;

use sqlx::{Arguments, Database, Encode, Type};

use super::backend::{on_pool, Backend};
use super::error::StoreError;

/// Rows per statement: 10 parameters a row stays under both databases'
/// limits on parameters (SQLite 32766, PostgreSQL 65535).
const ROWS_PER_STATEMENT: usize = 1000;

/// Whose counters a row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SubjectKind {
    /// A link: a bulk link or a stored link, by host and code.
    Link,
    /// A redirect rule, by id.
    Rule,
}

impl SubjectKind {
    /// The `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Link => "link",
            SubjectKind::Rule => "rule",
        }
    }
}

/// A link (`host`, `name` = its code) or a rule (`host` empty, `name` =
/// its id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subject {
    /// Link or rule.
    pub kind: SubjectKind,
    /// The link's host (normalized); empty for a rule.
    pub host: String,
    /// The link's code, or the rule's id.
    pub name: String,
}

/// One counter row's key. Ordered, so every gateway writes a batch's rows
/// in the same order: two flushes touching the same rows then wait for
/// each other instead of deadlocking on PostgreSQL. The text parts are
/// shared (`Arc<str>`): the flusher hands them to the database's
/// arguments without copying them, and keeps them for a retry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatKey {
    /// Link or rule.
    pub kind: SubjectKind,
    /// The link's host (normalized); empty for a rule.
    pub host: Arc<str>,
    /// The link's code, or the rule's id.
    pub name: Arc<str>,
    /// Unix seconds of the start of the UTC hour.
    pub hour: i64,
    /// `ios`, `android` or `desktop`.
    pub device: &'static str,
    /// Upper-case ISO country code, or empty.
    pub country: Arc<str>,
    /// Host of the `Referer`, or empty.
    pub referrer: Arc<str>,
    /// A known bot.
    pub bot: bool,
}

/// What a row adds up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Redirects.
    pub clicks: i64,
    /// Of those, the first of a visitor within the de-duplication window.
    pub visitors: i64,
}

/// A range's sums, by hour or by a split column.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StatSum {
    /// The hour, when summed by hour.
    pub hour: Option<i64>,
    /// The value of the split column, when summed by one.
    pub grp: Option<String>,
    /// People's clicks.
    pub clicks: i64,
    /// People's first clicks within the de-duplication window.
    pub visitors: i64,
    /// Bots' clicks.
    pub bot_clicks: i64,
}

/// A column the counters are split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// `ios`, `android`, `desktop`.
    Device,
    /// The country code.
    Country,
    /// The referrer's host.
    Referrer,
}

/// The statement summing a range of one subject's rows, grouped by
/// `$group`: one static text per grouping, so no client text is ever part
/// of it.
macro_rules! sums_sql {
    ($select:literal, $group:literal) => {
        concat!(
            "SELECT ",
            $select,
            ", CAST(SUM(CASE WHEN bot = 0 THEN clicks ELSE 0 END) AS BIGINT) AS clicks, \
             CAST(SUM(CASE WHEN bot = 0 THEN visitors ELSE 0 END) AS BIGINT) AS visitors, \
             CAST(SUM(CASE WHEN bot = 0 THEN 0 ELSE clicks END) AS BIGINT) AS bot_clicks \
             FROM link_stats WHERE kind = $1 AND host = $2 AND name = $3 \
             AND hour >= $4 AND hour < $5 GROUP BY ",
            $group
        )
    };
}

impl Backend {
    /// Adds `rows` to the counters, in one transaction (a failed flush
    /// adds nothing and is retried whole).
    pub async fn add_stats(&self, rows: &[(StatKey, Tally)]) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let (sql, args) = upsert(pool, chunk).map_err(sqlx::Error::Encode)?;
                sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })
    }

    /// `subject`'s counters of the hours in `from..to` (Unix seconds),
    /// summed by hour, or by the split `by` when given.
    pub async fn stat_sums(
        &self,
        subject: &Subject,
        from: i64,
        to: i64,
        by: Option<Split>,
    ) -> Result<Vec<StatSum>, StoreError> {
        let sql = match by {
            None => sums_sql!("hour, CAST(NULL AS TEXT) AS grp", "hour"),
            Some(Split::Device) => {
                sums_sql!("CAST(NULL AS BIGINT) AS hour, device AS grp", "device")
            }
            Some(Split::Country) => {
                sums_sql!("CAST(NULL AS BIGINT) AS hour, country AS grp", "country")
            }
            Some(Split::Referrer) => {
                sums_sql!("CAST(NULL AS BIGINT) AS hour, referrer AS grp", "referrer")
            }
        };
        Ok(on_pool!(self, pool => {
            sqlx::query_as(sql)
                .bind(subject.kind.as_str())
                .bind(&subject.host)
                .bind(&subject.name)
                .bind(from)
                .bind(to)
                .fetch_all(pool)
                .await?
        }))
    }
}

/// The statement adding `rows` to their counters, and its arguments, made
/// in one pass. Not `QueryBuilder`: its per-value formatting and each text
/// copied into a new allocation were most of the flusher's cost with every
/// click a new row (docs/performance.md, §0.2). `_pool` says which
/// database's placeholders and arguments.
fn upsert<DB>(
    _pool: &sqlx::Pool<DB>,
    rows: &[(StatKey, Tally)],
) -> Result<(String, DB::Arguments), sqlx::error::BoxDynError>
where
    DB: Database,
    for<'q> Arc<str>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
{
    const COLUMNS: usize = 10;
    let mut sql = String::with_capacity(200 + rows.len() * COLUMNS * 6);
    sql.push_str(
        "INSERT INTO link_stats (kind, host, name, hour, device, country, referrer, bot, \
         clicks, visitors) VALUES ",
    );
    let mut args = DB::Arguments::default();
    args.reserve(rows.len() * COLUMNS, rows.len() * 96);
    // Kind and device are a handful of fixed words: one shared copy each,
    // found by the address of the word (each comes from one literal).
    let mut words: Vec<(&'static str, Arc<str>)> = Vec::with_capacity(5);
    let mut word = |w: &'static str| -> Arc<str> {
        // Two literals of one text just make two entries.
        if let Some((_, a)) = words.iter().find(|(at, _)| std::ptr::eq(*at, w)) {
            return a.clone();
        }
        let a = Arc::<str>::from(w);
        words.push((w, a.clone()));
        a
    };
    for (i, (k, t)) in rows.iter().enumerate() {
        sql.push_str(if i == 0 { "(" } else { "),(" });
        bind(&mut sql, &mut args, "", word(k.kind.as_str()))?;
        bind(&mut sql, &mut args, ",", k.host.clone())?;
        bind(&mut sql, &mut args, ",", k.name.clone())?;
        bind(&mut sql, &mut args, ",", k.hour)?;
        bind(&mut sql, &mut args, ",", word(k.device))?;
        bind(&mut sql, &mut args, ",", k.country.clone())?;
        bind(&mut sql, &mut args, ",", k.referrer.clone())?;
        bind(&mut sql, &mut args, ",", i32::from(k.bot))?;
        bind(&mut sql, &mut args, ",", t.clicks)?;
        bind(&mut sql, &mut args, ",", t.visitors)?;
    }
    sql.push_str(
        ") ON CONFLICT (kind, host, name, hour, device, country, referrer, bot) \
         DO UPDATE SET clicks = link_stats.clicks + excluded.clicks, \
         visitors = link_stats.visitors + excluded.visitors",
    );
    Ok((sql, args))
}

/// Adds `value` to `args` and its placeholder, after `sep`, to `sql`: a
/// placeholder is numbered by the arguments before it (PostgreSQL's `$n`).
fn bind<'q, DB: Database, T: Encode<'q, DB> + Type<DB>>(
    sql: &mut String,
    args: &mut DB::Arguments,
    sep: &str,
    value: T,
) -> Result<(), sqlx::error::BoxDynError> {
    sql.push_str(sep);
    args.add(value)?;
    args.format_placeholder(sql)?;
    Ok(())
}
