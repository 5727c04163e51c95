//! Job summaries: ListBackupJobSummaries, ListCopyJobSummaries, ListRestoreJobSummaries.
//!
//! Counts of the caller's jobs by state, resource type and message category over a period:
//! `ONE_DAY` (the default) gives one row per UTC day for the prior 14 days, `SEVEN_DAYS` and
//! `FOURTEEN_DAYS` one row per group for that whole window. A filter value `AGGREGATE_ALL` folds
//! that dimension into one row (reported as `AGGREGATE_ALL`); `ANY` or no filter keeps each value
//! apart. Jobs are placed by their creation time on Coffer's clock.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use coffer_api::types::*;
use coffer_api::{RequestContext, Timestamp};

use coffer_store::Txn;

use crate::model::error::Result;
use crate::model::job_index::{self, Summary};
use crate::model::jobs::{JobKind, JobState, page};
use crate::model::paging::scan_all;
use crate::model::states::FromWire;
use crate::model::{Meta, job_counts};

/// What a request's State asks for: each state apart (`ANY`, or no State), all states in one
/// row (`AGGREGATE_ALL`), or only one (`None`: a state Coffer's jobs of the kind are never in).
#[derive(Clone, Copy)]
enum StateFilter {
    Each,
    Fold,
    Only(Option<JobState>),
}

impl StateFilter {
    /// The filter for a State value of the operation's enum `W`, whose `ANY` and
    /// `AGGREGATE_ALL` values are `any` and `all`.
    fn new<W: PartialEq>(value: Option<&W>, any: W, all: W) -> Self
    where
        JobState: FromWire<W>,
    {
        match value {
            None => StateFilter::Each,
            Some(v) if *v == any => StateFilter::Each,
            Some(v) if *v == all => StateFilter::Fold,
            Some(v) => StateFilter::Only(JobState::from_wire(v)),
        }
    }

    /// The row a job in `state` counts in (`Some(None)`: the row of all states), if any.
    fn group(self, state: JobState) -> Option<Option<JobState>> {
        match self {
            StateFilter::Each => Some(Some(state)),
            StateFilter::Fold => Some(None),
            StateFilter::Only(s) => (s == Some(state)).then_some(Some(state)),
        }
    }
}

struct Filter<'a> {
    account: Option<&'a str>,
    state: StateFilter,
    resource_type: Option<&'a str>,
    category: Option<&'a str>,
    period: Option<&'a AggregationPeriod>,
}

/// What is counted of the caller's jobs of `kind` created in `[from, to)`, each with how many
/// jobs it stands for: the per-day counts of the whole days in the period
/// (`model::job_counts`) and the creation-date index's entries of the parts of days at its
/// ends (`model::job_index`); while a store written by an earlier Coffer is being counted,
/// the index over the whole period; while it is being indexed, every job of the scope.
async fn period_jobs(
    meta: &Meta,
    ctx: &RequestContext,
    kind: JobKind,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(Summary, i64)>> {
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    let seen = job_index::Passes::seen(meta);
    let (jobs, passes) = meta
        .store()
        .read(
            move |tx| -> Result<(Vec<(Summary, i64)>, job_index::Passes)> {
                let passes = seen.read(tx)?;
                let jobs = summed(tx, kind, (&account, &region), from, to, passes)?;
                Ok((jobs, passes))
            },
        )
        .await?;
    passes.note(meta);
    Ok(jobs)
}

/// [`period_jobs`] in one transaction, given which passes of the job backfill are complete.
fn summed(
    tx: &mut dyn Txn,
    kind: JobKind,
    (account, region): (&str, &str),
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    passes: job_index::Passes,
) -> Result<Vec<(Summary, i64)>> {
    let one = |s: Summary| (s, 1);
    if !passes.indexed {
        return every_job(tx, kind, (account, region), from, to);
    }
    let whole = if passes.counted {
        job_counts::whole_days(from, to)
    } else {
        None
    };
    let Some((first, end)) = whole else {
        let jobs = job_index::summaries(tx, kind, account, region, from, to)?;
        return Ok(jobs.into_iter().map(one).collect());
    };
    let last = (end - Duration::days(1)).date_naive();
    let scope = (account, region);
    let counted = job_counts::days(tx, kind, scope, first.date_naive(), last)?;
    let mut out: Vec<(Summary, i64)> = counted
        .into_iter()
        .map(|(day, c)| {
            let s = Summary {
                creation_date: day,
                state: c.state,
                resource_type: c.resource_type,
                message_category: c.message_category,
            };
            (s, c.count)
        })
        .collect();
    for (a, b) in [(from, first), (end, to)] {
        let jobs = job_index::summaries(tx, kind, account, region, a, b)?;
        out.extend(jobs.into_iter().map(one));
    }
    Ok(out)
}

/// What is counted of every job of `kind` in the scope created in `[from, to)`, read job by
/// job (a store whose jobs are not indexed yet).
fn every_job(
    tx: &mut dyn Txn,
    kind: JobKind,
    (account, region): (&str, &str),
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(Summary, i64)>> {
    let mut out = Vec::new();
    for (_, v) in scan_all(tx, kind.table(), &format!("{account}:{region}:"))? {
        let j: job_index::Indexed = serde_json::from_slice(&v)?;
        if j.creation_date >= from && j.creation_date < to {
            let s = Summary {
                creation_date: j.creation_date,
                state: j.state,
                resource_type: j.resource_type,
                message_category: j.message_category,
            };
            out.push((s, 1));
        }
    }
    Ok(out)
}

/// (window start, state (`None`: all states), resource type, message category).
type GroupKey = (DateTime<Utc>, Option<JobState>, String, Option<String>);

struct Row {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    /// `None`: every state (`AGGREGATE_ALL`).
    state: Option<JobState>,
    resource_type: String,
    category: Option<String>,
    count: i32,
}

fn dimension(filter: Option<&str>, value: &str) -> Option<String> {
    match filter {
        None | Some("ANY") => Some(value.to_string()),
        Some("AGGREGATE_ALL") => Some("AGGREGATE_ALL".to_string()),
        Some(f) if f == value => Some(value.to_string()),
        Some(_) => None,
    }
}

async fn summarise(
    meta: &Meta,
    ctx: &RequestContext,
    kind: JobKind,
    f: Filter<'_>,
) -> Result<Vec<Row>> {
    if f.account
        .is_some_and(|a| a != ctx.account_id && a != "ANY" && a != "AGGREGATE_ALL")
    {
        return Ok(Vec::new());
    }
    let now = meta.clock().now();
    let windows: Vec<(DateTime<Utc>, DateTime<Utc>)> = match f.period {
        Some(AggregationPeriod::SevenDays) => vec![(now - Duration::days(7), now)],
        Some(AggregationPeriod::FourteenDays) => vec![(now - Duration::days(14), now)],
        _ => {
            let today = now
                .date_naive()
                .and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .and_utc();
            (0..14)
                .rev()
                .map(|d| {
                    let start = today - Duration::days(d);
                    (start, (start + Duration::days(1)).min(now))
                })
                .collect()
        }
    };
    let from = windows.first().map_or(now, |w| w.0);
    let jobs = period_jobs(meta, ctx, kind, from, now).await?;
    let mut groups: BTreeMap<GroupKey, (DateTime<Utc>, i32)> = BTreeMap::new();
    for (j, n) in &jobs {
        let Some(&(start, end)) = windows
            .iter()
            .find(|(s, e)| j.creation_date >= *s && j.creation_date < *e)
        else {
            continue;
        };
        let (Some(state), Some(rtype)) = (
            f.state.group(j.state),
            dimension(f.resource_type, &j.resource_type),
        ) else {
            continue;
        };
        let category = match kind {
            JobKind::Restore => None,
            _ => match dimension(f.category, j.message_category.as_deref().unwrap_or("")) {
                Some(c) => Some(c),
                None => continue,
            },
        };
        let entry = groups
            .entry((start, state, rtype, category))
            .or_insert((end, 0));
        entry.1 += i32::try_from(*n).unwrap_or(i32::MAX);
    }
    Ok(groups
        .into_iter()
        .map(
            |((start, state, resource_type, category), (end, count))| Row {
                start,
                end,
                state,
                resource_type,
                category,
                count,
            },
        )
        .collect())
}

fn key(r: &Row) -> String {
    format!(
        "{}|{}|{}|{}",
        r.start.timestamp(),
        r.state.map_or("", JobState::as_str),
        r.resource_type,
        r.category.as_deref().unwrap_or("")
    )
}

/// One page of summary rows of `kind` for `f`, with the next token and the period shown.
async fn summary_page(
    meta: &Meta,
    ctx: &RequestContext,
    kind: JobKind,
    f: Filter<'_>,
    next_token: Option<&str>,
    max_results: Option<i32>,
) -> Result<(Vec<Row>, Option<String>, String)> {
    let period = f.period.unwrap_or(&AggregationPeriod::OneDay).to_string();
    let rows = summarise(meta, ctx, kind, f).await?;
    let (page, next) = page(rows, key, next_token, max_results)?;
    Ok((page, next, period))
}

pub(crate) async fn list_backup_job_summaries(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListBackupJobSummariesInput,
) -> Result<ListBackupJobSummariesOutput> {
    let (page, next, period) = summary_page(
        meta,
        ctx,
        JobKind::Backup,
        Filter {
            account: input.account_id.as_deref(),
            state: StateFilter::new(
                input.state.as_ref(),
                BackupJobStatus::Any,
                BackupJobStatus::AggregateAll,
            ),
            resource_type: input.resource_type.as_deref(),
            category: input.message_category.as_deref(),
            period: input.aggregation_period.as_ref(),
        },
        input.next_token.as_deref(),
        input.max_results,
    )
    .await?;
    Ok(ListBackupJobSummariesOutput {
        aggregation_period: Some(period),
        backup_job_summaries: Some(
            page.into_iter()
                .map(|r| BackupJobSummary {
                    account_id: Some(ctx.account_id.clone()),
                    count: Some(r.count),
                    end_time: Some(Timestamp(r.end)),
                    message_category: r.category,
                    region: Some(ctx.region.clone()),
                    resource_type: Some(r.resource_type),
                    start_time: Some(Timestamp(r.start)),
                    state: Some(r.state.map_or(BackupJobStatus::AggregateAll, Into::into)),
                })
                .collect(),
        ),
        next_token: next,
    })
}

pub(crate) async fn list_copy_job_summaries(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListCopyJobSummariesInput,
) -> Result<ListCopyJobSummariesOutput> {
    let (page, next, period) = summary_page(
        meta,
        ctx,
        JobKind::Copy,
        Filter {
            account: input.account_id.as_deref(),
            state: StateFilter::new(
                input.state.as_ref(),
                CopyJobStatus::Any,
                CopyJobStatus::AggregateAll,
            ),
            resource_type: input.resource_type.as_deref(),
            category: input.message_category.as_deref(),
            period: input.aggregation_period.as_ref(),
        },
        input.next_token.as_deref(),
        input.max_results,
    )
    .await?;
    Ok(ListCopyJobSummariesOutput {
        aggregation_period: Some(period),
        copy_job_summaries: Some(
            page.into_iter()
                .map(|r| CopyJobSummary {
                    account_id: Some(ctx.account_id.clone()),
                    count: Some(r.count),
                    end_time: Some(Timestamp(r.end)),
                    message_category: r.category,
                    region: Some(ctx.region.clone()),
                    resource_type: Some(r.resource_type),
                    start_time: Some(Timestamp(r.start)),
                    state: Some(r.state.map_or(CopyJobStatus::AggregateAll, Into::into)),
                })
                .collect(),
        ),
        next_token: next,
    })
}

pub(crate) async fn list_restore_job_summaries(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListRestoreJobSummariesInput,
) -> Result<ListRestoreJobSummariesOutput> {
    let (page, next, period) = summary_page(
        meta,
        ctx,
        JobKind::Restore,
        Filter {
            account: input.account_id.as_deref(),
            state: StateFilter::new(
                input.state.as_ref(),
                RestoreJobState::Any,
                RestoreJobState::AggregateAll,
            ),
            resource_type: input.resource_type.as_deref(),
            category: None,
            period: input.aggregation_period.as_ref(),
        },
        input.next_token.as_deref(),
        input.max_results,
    )
    .await?;
    Ok(ListRestoreJobSummariesOutput {
        aggregation_period: Some(period),
        restore_job_summaries: Some(
            page.into_iter()
                .map(|r| RestoreJobSummary {
                    account_id: Some(ctx.account_id.clone()),
                    count: Some(r.count),
                    end_time: Some(Timestamp(r.end)),
                    region: Some(ctx.region.clone()),
                    resource_type: Some(r.resource_type),
                    start_time: Some(Timestamp(r.start)),
                    state: Some(r.state.map_or(RestoreJobState::AggregateAll, Into::into)),
                })
                .collect(),
        ),
        next_token: next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::clock::Clock;
    use crate::model::jobs::{JobRecord, save_job};
    use chrono::TimeZone;
    use coffer_store::StoreHandle;

    const A: &str = "111122223333";
    const R: &str = "us-east-1";

    /// Every row of the restore job summaries over `period`, as comparable text.
    async fn rows(meta: &Meta, period: AggregationPeriod) -> Vec<String> {
        let ctx = RequestContext::new(A, R);
        let input = ListRestoreJobSummariesInput {
            aggregation_period: Some(period),
            max_results: Some(1000),
            ..Default::default()
        };
        let out = list_restore_job_summaries(meta, &ctx, input).await.unwrap();
        let mut rows: Vec<String> = out
            .restore_job_summaries
            .unwrap_or_default()
            .iter()
            .map(|s| {
                format!(
                    "{:?}",
                    (
                        s.start_time,
                        s.end_time,
                        &s.state,
                        &s.resource_type,
                        s.count
                    )
                )
            })
            .collect();
        rows.sort();
        rows
    }

    #[tokio::test]
    async fn the_per_day_counts_give_what_reading_every_job_gives() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        let clock = Clock::movable();
        let now = Utc.with_ymd_and_hms(2027, 3, 20, 15, 30, 0).unwrap();
        clock.set(now).unwrap();
        // Held, so every summary reads the same period.
        let now = clock.hold().unwrap();
        let meta = Meta::new(store.clone(), clock);
        // A new store: the backfill finds nothing and every save keeps the counts.
        while !store.write(|tx| job_index::backfill(tx, 50)).await.unwrap() {}
        store
            .write(move |tx| -> Result<()> {
                for i in 0..300i64 {
                    // Every 61 minutes over the 16 days before now and a little after.
                    let created = now - Duration::days(16) + Duration::minutes(61 * i);
                    let rtype = ["EBS", "S3"][i as usize % 2];
                    let mut j = JobRecord::new(
                        JobKind::Restore,
                        A,
                        R,
                        created,
                        format!("arn:aws:s3:::bucket-{}", i % 5),
                        rtype.into(),
                    );
                    j.id = format!("R-{i:03}");
                    save_job(tx, &j)?;
                    // Most move on, so a save takes a job out of one group into another.
                    if i % 3 != 0 {
                        j.state = JobState::Running;
                        save_job(tx, &j)?;
                        j.state = [JobState::Completed, JobState::Failed][i as usize % 2];
                        j.completion_date = Some(created + Duration::minutes(5));
                        save_job(tx, &j)?;
                    }
                }
                Ok(())
            })
            .await
            .unwrap();
        let periods = [
            AggregationPeriod::OneDay,
            AggregationPeriod::SevenDays,
            AggregationPeriod::FourteenDays,
        ];
        let mut counted = Vec::new();
        for p in &periods {
            counted.push(rows(&meta, p.clone()).await);
        }
        assert!(counted.iter().all(|r| !r.is_empty()));
        // As on a store whose jobs are not counted yet: the summaries read the index.
        store
            .write(|tx| -> Result<()> {
                tx.delete("job_index_meta", "backfill_counts")?;
                Ok(())
            })
            .await
            .unwrap();
        assert!(!store.read(|tx| job_index::counts_built(tx)).await.unwrap());
        for (p, c) in periods.iter().zip(&counted) {
            assert_eq!(&rows(&meta, p.clone()).await, c, "{p:?}");
        }
        // The counting pass, run again from the start over a table of counts emptied, gives
        // the same counts back.
        store
            .write(|tx| -> Result<()> {
                for (k, _) in tx.scan(job_counts::TABLE, "", None, usize::MAX)? {
                    tx.delete(job_counts::TABLE, &k)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        while !store.write(|tx| job_index::backfill(tx, 7)).await.unwrap() {}
        for (p, c) in periods.iter().zip(&counted) {
            assert_eq!(&rows(&meta, p.clone()).await, c, "{p:?}");
        }
    }
}
