//! Per-day counts of jobs: what the job summaries (ListBackupJobSummaries,
//! ListCopyJobSummaries, ListRestoreJobSummaries) add up for whole days, so a summary over 14
//! days reads a few hundred counters instead of every job of the period.
//!
//! Table `job_day_count`, key `KIND:ACCOUNT:REGION:DAY:STATE:TYPE:CATEGORY` (`DAY` the UTC
//! date of the jobs' creation, `YYYY-MM-DD`, so one scope's days read in date order; `TYPE`
//! and `CATEGORY` escaped so that they never hold `:`), value a [`DayCount`]. They are kept by
//! `model::job_index` in the transaction that saves the job: a save that moves a job to
//! another group (a new job, a new state, a message category) takes one from its old group
//! and adds one to its new; the history pruner takes a pruned job off. A store written before
//! the counts is counted once by the job indexes' backfill, and until that has reached a job,
//! its saves leave the counts alone (`job_index::counted`), so no job is counted twice.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use coffer_store::Txn;
use serde::{Deserialize, Serialize};

use crate::model::error::Result;
use crate::model::states::{JobKind, JobState};

pub(crate) const TABLE: &str = "job_day_count";

/// The value of a job's `created` entry: what the job summaries group by, so they count a
/// period's jobs without reading them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Summary {
    pub creation_date: DateTime<Utc>,
    pub state: JobState,
    pub resource_type: String,
    #[serde(default)]
    pub message_category: Option<String>,
}

/// A value inside a key: `%` and `:` escaped, so `:` only ever separates (the job indexes'
/// keys are made the same way).
pub(crate) fn escape(value: &str) -> String {
    value.replace('%', "%25").replace(':', "%3A")
}

/// One group's count on one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DayCount {
    pub state: JobState,
    pub resource_type: String,
    #[serde(default)]
    pub message_category: Option<String>,
    pub count: i64,
}

fn scope(kind: JobKind, account: &str, region: &str) -> String {
    format!("{}:{account}:{region}:", kind.tag())
}

fn day_key(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// The key of the group `s` counts in. A job without a message category and one with an
/// empty one count together: the summaries show both as the same category.
fn key(kind: JobKind, account: &str, region: &str, s: &Summary) -> String {
    format!(
        "{}{}:{}:{}:{}",
        scope(kind, account, region),
        day_key(s.creation_date.date_naive()),
        s.state.as_str(),
        escape(&s.resource_type),
        escape(s.message_category.as_deref().unwrap_or(""))
    )
}

/// The group a job counts in: its creation day, state, resource type and message category.
pub(crate) fn same_group(a: &Summary, b: &Summary) -> bool {
    a.creation_date.date_naive() == b.creation_date.date_naive()
        && a.state == b.state
        && a.resource_type == b.resource_type
        && a.message_category.as_deref().unwrap_or("")
            == b.message_category.as_deref().unwrap_or("")
}

/// Adds `delta` to the count of the group job `s` is in (a count that reaches zero goes).
pub(crate) fn add(
    tx: &mut dyn Txn,
    kind: JobKind,
    (account, region): (&str, &str),
    s: &Summary,
    delta: i64,
) -> Result<()> {
    let k = key(kind, account, region, s);
    let mut count = match tx.get(TABLE, &k)? {
        Some(v) => serde_json::from_slice(&v)?,
        None => DayCount {
            state: s.state,
            resource_type: s.resource_type.clone(),
            message_category: s.message_category.clone().filter(|c| !c.is_empty()),
            count: 0,
        },
    };
    count.count += delta;
    if count.count <= 0 {
        tx.delete(TABLE, &k)?;
    } else {
        tx.put(TABLE, &k, &serde_json::to_vec(&count)?)?;
    }
    Ok(())
}

/// The counts of the jobs of `kind` in the scope created on the days `first..=last`, each
/// with its day's start.
pub(crate) fn days(
    tx: &mut dyn Txn,
    kind: JobKind,
    (account, region): (&str, &str),
    first: NaiveDate,
    last: NaiveDate,
) -> Result<Vec<(DateTime<Utc>, DayCount)>> {
    let prefix = scope(kind, account, region);
    // Every key of `first` sorts after `PREFIX` + `first` (it goes on with `:`).
    let mut cursor = Some(format!("{prefix}{}", day_key(first)));
    let last = day_key(last);
    let mut out = Vec::new();
    loop {
        let rows = tx.scan(TABLE, &prefix, cursor.as_deref(), 1000)?;
        let exhausted = rows.len() < 1000;
        for (k, v) in rows {
            let day = k[prefix.len()..].get(..10).unwrap_or_default();
            if day > last.as_str() {
                return Ok(out);
            }
            let start = NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc());
            if let Ok(start) = start {
                out.push((start, serde_json::from_slice(&v)?));
            }
            cursor = Some(k);
        }
        if exhausted {
            return Ok(out);
        }
    }
}

/// The whole UTC days within `[from, to)`: the first day's start and the end of the last
/// (the start of the day after it), or `None` when no whole day fits.
pub(crate) fn whole_days(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let floor = |t: DateTime<Utc>| t.date_naive().and_time(chrono::NaiveTime::MIN).and_utc();
    let first = if floor(from) == from {
        from
    } else {
        floor(from) + Duration::days(1)
    };
    let end = floor(to);
    (first < end).then_some((first, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn whole_days_are_those_entirely_inside_the_period() {
        assert_eq!(
            whole_days(at("2026-01-01T10:00:00Z"), at("2026-01-04T09:00:00Z")),
            Some((at("2026-01-02T00:00:00Z"), at("2026-01-04T00:00:00Z")))
        );
        assert_eq!(
            whole_days(at("2026-01-01T00:00:00Z"), at("2026-01-02T00:00:00Z")),
            Some((at("2026-01-01T00:00:00Z"), at("2026-01-02T00:00:00Z")))
        );
        assert_eq!(
            whole_days(at("2026-01-01T10:00:00Z"), at("2026-01-02T09:00:00Z")),
            None
        );
        assert_eq!(
            whole_days(at("2026-01-01T00:00:00Z"), at("2026-01-01T23:00:00Z")),
            None
        );
    }
}
