//! Reading the counters back: the query of the stats endpoints
//! (`from`, `to`, `interval`, `group_by`) and the report they answer with,
//! shared by `GET /api/v1/links/{id}/stats` and `GET /admin/stats`.

use http::StatusCode;
use serde::Serialize;
use std::time::{Duration, SystemTime};
use utoipa::ToSchema;

use crate::metrics::StoreOp;
use crate::store::{Split, StatSum, Store, StoreError, Subject, SubjectKind};
use crate::web::Problem;

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;
/// The most points a series may have: 31 days by hour, 366 by day.
const MAX_HOURS: i64 = 31 * 24;
const MAX_DAYS: i64 = 366;
/// The last second RFC 3339 can write (9999-12-31T23:59:59Z).
const MAX_TIME: i64 = 253_402_300_799;
/// Groups a report lists at most, the largest first.
const MAX_GROUPS: usize = 1000;

/// The query parameters both stats endpoints take.
pub const PARAMS: [&str; 4] = ["from", "to", "interval", "group_by"];

/// A report's buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    /// UTC hours (at most 31 days).
    Hour,
    /// UTC days (at most 366).
    Day,
}

/// The split a report's `groups` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// `ios`, `android`, `desktop`.
    Device,
    /// Upper-case ISO 3166-1 alpha-2 codes.
    Country,
    /// Referrer hosts.
    Referrer,
}

impl GroupBy {
    fn split(self) -> Split {
        match self {
            GroupBy::Device => Split::Device,
            GroupBy::Country => Split::Country,
            GroupBy::Referrer => Split::Referrer,
        }
    }
}

/// What a report covers, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsQuery {
    /// Start of the first bucket (Unix seconds).
    pub from: i64,
    /// End of the last bucket, exclusive.
    pub to: i64,
    /// Bucket length in seconds: an hour or a day.
    pub step: i64,
    /// The split `groups` lists.
    pub group_by: Option<GroupBy>,
}

/// `400 invalid-parameter` about `field`.
pub fn bad(field: &str, message: impl Into<String>) -> Problem {
    let message = message.into();
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-parameter",
        format!("{field}: {message}"),
    )
    .field(field, message)
}

/// Unix seconds from `2026-12-02T10:00:00Z`, `2026-12-02` or `1764669600`.
fn time(field: &str, text: &str) -> Result<i64, Problem> {
    let t = text.trim();
    let parsed = match t.parse::<i64>() {
        Ok(n) => Some(n),
        Err(_) => {
            let full = if t.len() == 10 {
                format!("{t}T00:00:00Z")
            } else {
                t.to_string()
            };
            humantime::parse_rfc3339(&full).ok().map(|st| {
                st.duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(-1, |d| d.as_secs() as i64)
            })
        }
    };
    parsed.filter(|n| (0..=MAX_TIME).contains(n)).ok_or_else(|| {
        bad(
            field,
            format!("`{text}` is not a time: RFC 3339 (2026-12-02T10:00:00Z), a date (2026-12-02) or Unix seconds"),
        )
    })
}

impl StatsQuery {
    /// Checks `params` (as `web::read_query` gave them); `now` is the
    /// default `to`. Every problem names its parameter.
    pub fn parse(params: &[(String, String)], now: i64) -> Result<StatsQuery, Problem> {
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let (step, max) = match get("interval") {
            None | Some("hour") => (HOUR, MAX_HOURS),
            Some("day") => (DAY, MAX_DAYS),
            Some(other) => return Err(bad("interval", format!("`{other}` is not hour or day"))),
        };
        let group_by = match get("group_by") {
            None => None,
            Some("device") => Some(GroupBy::Device),
            Some("country") => Some(GroupBy::Country),
            Some("referrer") => Some(GroupBy::Referrer),
            Some(other) => {
                return Err(bad(
                    "group_by",
                    format!("`{other}` is not device, country or referrer"),
                ))
            }
        };
        // `to` is exclusive, and a bucket it cuts is in whole; without
        // it, the bucket of this moment is the last.
        let to = get("to")
            .map(|t| time("to", t))
            .transpose()?
            .unwrap_or(now + 1);
        let to = match to.rem_euclid(step) {
            0 => to,
            r => to - r + step,
        };
        let from = match get("from") {
            Some(f) => time("from", f)?,
            None => to - if step == HOUR { DAY } else { 30 * DAY },
        };
        let from = from - from.rem_euclid(step);
        if from >= to {
            return Err(bad("to", "must be later than from"));
        }
        if (to - from) / step > max {
            return Err(bad(
                "from",
                format!("the range is over {max} buckets of this interval (31 days by hour, 366 by day)"),
            ));
        }
        Ok(StatsQuery {
            from,
            to,
            step,
            group_by,
        })
    }
}

/// Clicks and visitors of a bucket, a group or the whole range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Counts {
    /// Redirects of people (bots not included).
    pub clicks: i64,
    /// People's first clicks on the link within the click de-duplication
    /// window (`[clicks] dedup_window`).
    pub visitors: i64,
    /// Redirects of known crawlers and link-preview bots.
    pub bot_clicks: i64,
}

impl Counts {
    fn add(&mut self, s: &StatSum) {
        self.clicks += s.clicks;
        self.visitors += s.visitors;
        self.bot_clicks += s.bot_clicks;
    }
}

/// One bucket of the series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// Start of the hour or day (UTC, RFC 3339).
    pub start: String,
    /// Its counts.
    #[serde(flatten)]
    pub counts: Counts,
}

/// One value of the `group_by` split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct GroupRow {
    /// `ios`, `android` or `desktop`; an upper-case country code; a
    /// referrer's host. Empty: no (valid) country header, no referrer.
    pub key: String,
    /// Its counts over the whole range.
    #[serde(flatten)]
    pub counts: Counts,
}

/// A link's or a rule's clicks over a range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Report {
    /// The link's id (the Links API's reports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// The link's host (a link's report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The link's code (a link's report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The rule's id (a rule's report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Start of the first bucket (UTC, RFC 3339).
    pub from: String,
    /// End of the last bucket, exclusive.
    pub to: String,
    /// The buckets of `series`.
    pub interval: Interval,
    /// The whole range.
    pub totals: Counts,
    /// Every bucket from `from` to `to`, oldest first, empty ones too.
    pub series: Vec<SeriesPoint>,
    /// The split `groups` lists, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_by: Option<GroupBy>,
    /// With `group_by`: each value's counts, most clicks first (at most
    /// 1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<GroupRow>>,
}

fn rfc3339(unix: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `subject`'s report for `q`, read from `store`.
pub async fn report(store: &Store, subject: Subject, q: &StatsQuery) -> Result<Report, StoreError> {
    let (from, to) = (q.from, q.to);
    let by_hour = {
        let s = subject.clone();
        store
            .query(StoreOp::StatsRead, move |b| async move {
                b.stat_sums(&s, from, to, None).await
            })
            .await?
    };
    let mut totals = Counts::default();
    let mut series: Vec<SeriesPoint> = (0..(to - from) / q.step)
        .map(|i| SeriesPoint {
            start: rfc3339(from + i * q.step),
            counts: Counts::default(),
        })
        .collect();
    for s in &by_hour {
        let Some(hour) = s.hour else { continue };
        totals.add(s);
        if let Some(point) = usize::try_from((hour - from) / q.step)
            .ok()
            .and_then(|i| series.get_mut(i))
        {
            point.counts.add(s);
        }
    }
    let groups = match q.group_by {
        None => None,
        Some(split) => {
            let s = subject.clone();
            let sums = store
                .query(StoreOp::StatsRead, move |b| async move {
                    b.stat_sums(&s, from, to, Some(split.split())).await
                })
                .await?;
            let mut groups: Vec<GroupRow> = sums
                .iter()
                .map(|s| {
                    let mut counts = Counts::default();
                    counts.add(s);
                    GroupRow {
                        key: s.grp.clone().unwrap_or_default(),
                        counts,
                    }
                })
                .collect();
            groups.sort_by(|a, b| {
                (b.counts.clicks, b.counts.bot_clicks)
                    .cmp(&(a.counts.clicks, a.counts.bot_clicks))
                    .then_with(|| a.key.cmp(&b.key))
            });
            groups.truncate(MAX_GROUPS);
            Some(groups)
        }
    };
    let (host, code, rule) = match subject.kind {
        SubjectKind::Link => (Some(subject.host), Some(subject.name), None),
        SubjectKind::Rule => (None, None, Some(subject.name)),
    };
    Ok(Report {
        id: None,
        host,
        code,
        rule,
        from: rfc3339(from),
        to: rfc3339(to),
        interval: if q.step == HOUR {
            Interval::Hour
        } else {
            Interval::Day
        },
        totals,
        series,
        group_by: q.group_by,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<StatsQuery, Problem> {
        let params: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        StatsQuery::parse(&params, 1_764_670_000)
    }

    fn field(p: Problem) -> String {
        p.errors[0].field.clone().unwrap()
    }

    #[test]
    fn defaults_are_the_last_day_by_hour() {
        let s = q(&[]).unwrap();
        // 1_764_670_000 is in the hour starting at 1_764_669_600.
        assert_eq!(s.to, 1_764_669_600 + HOUR);
        assert_eq!(s.from, s.to - DAY);
        assert_eq!(s.step, HOUR);
        assert_eq!(s.group_by, None);
    }

    #[test]
    fn times_in_three_spellings() {
        let a = q(&[("from", "2025-12-02"), ("to", "2025-12-03T00:00:00Z")]).unwrap();
        let b = q(&[("from", "1764633600"), ("to", "1764720000")]).unwrap();
        assert_eq!((a.from, a.to), (1_764_633_600, 1_764_720_000));
        assert_eq!(a, b);
        let d = q(&[
            ("from", "2025-12-02T05:00:00Z"),
            ("to", "2025-12-02T06:00:00Z"),
            ("interval", "day"),
        ])
        .unwrap();
        assert_eq!((d.from, d.to), (1_764_633_600, 1_764_633_600 + DAY));
    }

    #[test]
    fn bad_values_name_their_field() {
        assert_eq!(field(q(&[("interval", "week")]).unwrap_err()), "interval");
        assert_eq!(field(q(&[("group_by", "os")]).unwrap_err()), "group_by");
        assert_eq!(field(q(&[("from", "yesterday")]).unwrap_err()), "from");
        assert_eq!(field(q(&[("to", "-5")]).unwrap_err()), "to");
        assert_eq!(
            field(q(&[("from", "2025-12-03"), ("to", "2025-12-01")]).unwrap_err()),
            "to"
        );
        assert_eq!(
            field(q(&[("from", "2025-01-01"), ("to", "2025-12-01")]).unwrap_err()),
            "from"
        );
        assert!(q(&[
            ("from", "2025-01-01"),
            ("to", "2025-12-01"),
            ("interval", "day")
        ])
        .is_ok());
        let p = q(&[("to", "99999999999999999")]).unwrap_err();
        assert_eq!(p.status, 400);
    }
}
