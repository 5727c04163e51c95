//! The job operations: Start/Describe/List/Stop of backup, copy and restore jobs, restore
//! metadata and validation, and the job summaries. Jobs themselves (records, states, the
//! queue) are in the model layer; running them is the data plane's.

pub(crate) mod backup;
pub(crate) mod copy;
pub(crate) mod restore;
pub(crate) mod summaries;

use coffer_api::{RequestContext, Timestamp};

use crate::model::Meta;
use crate::model::error::Result;
use crate::model::job_index::{self, Field, Plan, Position};
use crate::model::jobs::{JobKind, JobRecord, JobState, load_job};
use crate::model::paging::{page_size, scan_all};

/// A time range a List*Jobs request bounds a date by (exclusive at both ends).
#[derive(Default, Clone, Copy)]
pub(crate) struct Bounds {
    pub after: Option<Timestamp>,
    pub before: Option<Timestamp>,
}

impl Bounds {
    fn contains(&self, t: Option<chrono::DateTime<chrono::Utc>>) -> bool {
        if self.after.is_none() && self.before.is_none() {
            return true;
        }
        let Some(t) = t else { return false };
        self.after.is_none_or(|a| t > a.0) && self.before.is_none_or(|b| t < b.0)
    }

    /// The range of an index these bounds let through (its ends still checked exactly).
    fn range(
        &self,
    ) -> (
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
    ) {
        (self.after.map(|t| t.0), self.before.map(|t| t.0))
    }
}

/// What a List*Jobs request filters on. `None` lets every job through; the one path every
/// job listing takes is [`list_jobs`].
#[derive(Default, Clone)]
pub(crate) struct JobFilter {
    /// ByAccountId: another account than the caller's (and not `*`) lists nothing.
    pub account: Option<String>,
    pub resource_arn: Option<String>,
    /// ByState / ByStatus; `Some(None)` names a state no job of this kind can be in.
    pub state: Option<Option<JobState>>,
    pub vault_name: Option<String>,
    pub resource_type: Option<String>,
    /// `AGGREGATE_ALL` lets every category through.
    pub message_category: Option<String>,
    pub dest_vault_arn: Option<String>,
    pub recovery_point_arn: Option<String>,
    /// ByRestoreTestingPlanArn: restore jobs a restore testing plan started.
    pub restore_testing_plan_arn: Option<String>,
    /// A filter Coffer has no jobs for (parent jobs) was given.
    pub matches_nothing: bool,
    pub created: Bounds,
    pub completed: Bounds,
    pub recovery_point_created: Bounds,
}

fn equal(filter: &Option<String>, value: &str) -> bool {
    filter.as_deref().is_none_or(|f| f == value)
}

fn equal_opt(filter: &Option<String>, value: Option<&String>) -> bool {
    filter
        .as_deref()
        .is_none_or(|f| value.is_some_and(|v| v == f))
}

impl JobFilter {
    fn matches(&self, j: &JobRecord) -> bool {
        !self.matches_nothing
            && equal(&self.resource_arn, &j.resource_arn)
            && self.state.is_none_or(|s| s == Some(j.state))
            && equal(&self.vault_name, &j.vault_name)
            && equal(&self.resource_type, &j.resource_type)
            && self
                .message_category
                .as_deref()
                .is_none_or(|c| c == "AGGREGATE_ALL" || j.message_category.as_deref() == Some(c))
            && equal_opt(&self.dest_vault_arn, j.dest_vault_arn.as_ref())
            && equal_opt(&self.recovery_point_arn, j.recovery_point_arn.as_ref())
            && equal_opt(
                &self.restore_testing_plan_arn,
                j.restore_testing_plan_arn.as_ref(),
            )
            && self.created.contains(Some(j.creation_date))
            && self.completed.contains(j.completion_date)
            && self
                .recovery_point_created
                .contains(j.recovery_point_creation_date)
    }

    /// The equality filter whose index is read: the one likely to match the fewest jobs. A
    /// field given with a state reads the index of the two together when it has one and
    /// `pairs` (every job has those entries; `model::job_index`).
    fn most_selective(&self, pairs: bool) -> Option<(Field, String)> {
        let given = [
            (Field::Resource, &self.resource_arn),
            (Field::RecoveryPoint, &self.recovery_point_arn),
            (Field::Plan, &self.restore_testing_plan_arn),
            (Field::DestVault, &self.dest_vault_arn),
            (Field::Vault, &self.vault_name),
            (Field::ResourceType, &self.resource_type),
        ]
        .into_iter()
        .find_map(|(f, v)| v.clone().map(|v| (f, v)));
        match (given, self.state.flatten()) {
            (Some((f, v)), Some(s)) if pairs && f.paired().is_some() => {
                Some((f.paired()?, job_index::pair(&v, s)))
            }
            // A state is more selective than a resource type.
            (None | Some((Field::ResourceType, _)), Some(s)) => {
                Some((Field::State, s.as_str().to_string()))
            }
            (given, _) => given,
        }
    }

    /// The index a listing of `kind` in the caller's scope reads for this filter (`pairs`:
    /// see [`JobFilter::most_selective`]).
    fn plan(&self, kind: JobKind, ctx: &RequestContext, pairs: bool) -> Plan {
        Plan {
            kind,
            account: ctx.account_id.clone(),
            region: ctx.region.clone(),
            field: self.most_selective(pairs),
            created: self.created.range(),
            completed: self.completed.range(),
        }
    }
}

/// One page of the caller's jobs of `kind` that pass `filter`, oldest first, each turned into
/// the operation's list member by `member`, with the token for the next page. It reads the
/// most selective index the filter has (`model::job_index`) from the token's position and
/// stops after the page; while a store written by an earlier Coffer is being indexed, it
/// reads every job of the scope instead.
pub(crate) async fn list_jobs<T>(
    meta: &Meta,
    ctx: &RequestContext,
    kind: JobKind,
    filter: &JobFilter,
    next_token: Option<&str>,
    max_results: Option<i32>,
    member: impl Fn(&JobRecord) -> T,
) -> Result<(Vec<T>, Option<String>)> {
    if filter
        .account
        .as_deref()
        .is_some_and(|a| a != ctx.account_id && a != "*")
    {
        return Ok((Vec::new(), None));
    }
    let after = next_token.map(Position::from_token).transpose()?;
    if filter.matches_nothing || filter.state == Some(None) {
        return Ok((Vec::new(), None));
    }
    let limit = page_size(max_results);
    let (filter, ctx) = (filter.clone(), ctx.clone());
    let seen = job_index::Passes::seen(meta);
    let ((jobs, next), passes) = meta
        .store()
        .read(move |tx| -> Result<_> {
            let passes = seen.read(tx)?;
            if !passes.indexed {
                let plan = filter.plan(kind, &ctx, false);
                let page = scan_every_job(tx, &plan, &filter, after.as_ref(), limit)?;
                return Ok((page, passes));
            }
            let plan = filter.plan(kind, &ctx, passes.paired);
            let page = job_index::page(tx, &plan, after.as_ref(), limit, |tx, key| {
                Ok(load_job(tx, kind, key)?.filter(|j| filter.matches(j)))
            })?;
            Ok((page, passes))
        })
        .await?;
    passes.note(meta);
    Ok((jobs.iter().map(member).collect(), next.map(|p| p.token())))
}

/// The listing of a store not yet indexed: every job of the scope read and filtered.
fn scan_every_job(
    tx: &mut dyn coffer_store::Txn,
    plan: &Plan,
    filter: &JobFilter,
    after: Option<&Position>,
    limit: usize,
) -> Result<(Vec<JobRecord>, Option<Position>)> {
    let prefix = format!("{}:{}:", plan.account, plan.region);
    let mut jobs = Vec::new();
    for (_, v) in scan_all(tx, plan.kind.table(), &prefix)? {
        let j: JobRecord = serde_json::from_slice(&v)?;
        if filter.matches(&j) {
            jobs.push((Position::of(j.creation_date, &j.id), j));
        }
    }
    Ok(job_index::in_order(jobs, after, limit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::clock::Clock;
    use chrono::{Duration, TimeZone, Utc};
    use coffer_store::StoreHandle;

    const A: &str = "111122223333";
    const R: &str = "us-east-1";

    /// Every page of a listing, pages of `max`: the job ids in order.
    async fn list_all(meta: &Meta, filter: &JobFilter, max: i32) -> Vec<String> {
        let ctx = RequestContext::new(A, R);
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let (page, next) = list_jobs(
                meta,
                &ctx,
                JobKind::Restore,
                filter,
                token.as_deref(),
                Some(max),
                |j| j.id.clone(),
            )
            .await
            .unwrap();
            ids.extend(page);
            match next {
                Some(n) => token = Some(n),
                None => return ids,
            }
        }
    }

    #[tokio::test]
    async fn an_old_store_lists_the_same_before_and_after_its_backfill() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        let meta = Meta::new(store.clone(), Clock::system());
        let t0 = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
        store
            .write(move |tx| -> Result<()> {
                for i in 0..40i64 {
                    let mut j = JobRecord::new(
                        JobKind::Restore,
                        A,
                        R,
                        // Several jobs share a creation time: the id orders them.
                        t0 + Duration::minutes(i / 3),
                        format!("arn:aws:s3:::bucket-{}", i % 3),
                        "S3".into(),
                    );
                    j.id = format!("R-{:02}", (i * 7) % 40);
                    if i % 2 == 0 {
                        j.state = JobState::Completed;
                        j.completion_date = Some(t0 + Duration::hours(1) - Duration::minutes(i));
                    }
                    // Written as an earlier Coffer did: the record alone, no index entries.
                    tx.put(j.kind.table(), &j.key(), &serde_json::to_vec(&j)?)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        let at = |m: i64| Some(coffer_api::Timestamp(t0 + Duration::minutes(m)));
        let filters = [
            JobFilter::default(),
            JobFilter {
                resource_arn: Some("arn:aws:s3:::bucket-1".into()),
                ..Default::default()
            },
            JobFilter {
                state: Some(Some(JobState::Completed)),
                created: Bounds {
                    after: at(2),
                    before: at(9),
                },
                ..Default::default()
            },
            JobFilter {
                completed: Bounds {
                    after: at(30),
                    before: at(50),
                },
                ..Default::default()
            },
            // Read through the resource type and state index once the backfill is done.
            JobFilter {
                state: Some(Some(JobState::Completed)),
                resource_type: Some("S3".into()),
                ..Default::default()
            },
        ];
        let mut before = Vec::new();
        for f in &filters {
            before.push(list_all(&meta, f, 3).await);
        }
        assert_eq!(before[0].len(), 40);
        assert!(before.iter().all(|ids| !ids.is_empty()));
        while !store.write(|tx| job_index::backfill(tx, 7)).await.unwrap() {}
        let ctx = RequestContext::new(A, R);
        assert_eq!(
            filters[4].plan(JobKind::Restore, &ctx, true).field,
            Some((Field::TypeState, job_index::pair("S3", JobState::Completed)))
        );
        for (f, old) in filters.iter().zip(&before) {
            assert_eq!(&list_all(&meta, f, 3).await, old);
            assert_eq!(&list_all(&meta, f, 1000).await, old);
        }
        // A token that names no position is refused as before.
        let bad = list_jobs(
            &meta,
            &ctx,
            JobKind::Restore,
            &filters[0],
            Some("zz"),
            None,
            |j| j.id.clone(),
        )
        .await;
        assert_eq!(
            bad.err().map(|e| e.0.code().to_string()).as_deref(),
            Some("InvalidParameterValueException")
        );
    }
}
