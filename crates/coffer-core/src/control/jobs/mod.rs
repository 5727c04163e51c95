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
use crate::model::jobs::{JobKind, JobRecord, JobState, all_jobs, page, within};

/// A time range a List*Jobs request bounds a date by (exclusive at both ends).
#[derive(Default, Clone, Copy)]
pub(crate) struct Bounds<'a> {
    pub after: Option<&'a Timestamp>,
    pub before: Option<&'a Timestamp>,
}

/// What a List*Jobs request filters on. `None` lets every job through; the one path every
/// job listing takes is [`list_jobs`].
#[derive(Default)]
pub(crate) struct JobFilter<'a> {
    /// ByAccountId: another account than the caller's (and not `*`) lists nothing.
    pub account: Option<&'a str>,
    pub resource_arn: Option<&'a str>,
    /// ByState / ByStatus; `Some(None)` names a state no job of this kind can be in.
    pub state: Option<Option<JobState>>,
    pub vault_name: Option<&'a str>,
    pub resource_type: Option<&'a str>,
    /// `AGGREGATE_ALL` lets every category through.
    pub message_category: Option<&'a str>,
    pub dest_vault_arn: Option<&'a str>,
    pub recovery_point_arn: Option<&'a str>,
    /// ByRestoreTestingPlanArn: restore jobs a restore testing plan started.
    pub restore_testing_plan_arn: Option<&'a str>,
    /// A filter Coffer has no jobs for (parent jobs) was given.
    pub matches_nothing: bool,
    pub created: Bounds<'a>,
    pub completed: Bounds<'a>,
    pub recovery_point_created: Bounds<'a>,
}

fn equal(filter: Option<&str>, value: &str) -> bool {
    filter.is_none_or(|f| f == value)
}

fn equal_opt(filter: Option<&str>, value: Option<&String>) -> bool {
    filter.is_none_or(|f| value.is_some_and(|v| v == f))
}

impl JobFilter<'_> {
    fn matches(&self, j: &JobRecord) -> bool {
        !self.matches_nothing
            && equal(self.resource_arn, &j.resource_arn)
            && self.state.is_none_or(|s| s == Some(j.state))
            && equal(self.vault_name, &j.vault_name)
            && equal(self.resource_type, &j.resource_type)
            && self
                .message_category
                .is_none_or(|c| c == "AGGREGATE_ALL" || j.message_category.as_deref() == Some(c))
            && equal_opt(self.dest_vault_arn, j.dest_vault_arn.as_ref())
            && equal_opt(self.recovery_point_arn, j.recovery_point_arn.as_ref())
            && equal_opt(
                self.restore_testing_plan_arn,
                j.restore_testing_plan_arn.as_ref(),
            )
            && within(
                Some(j.creation_date),
                self.created.after,
                self.created.before,
            )
            && within(
                j.completion_date,
                self.completed.after,
                self.completed.before,
            )
            && within(
                j.recovery_point_creation_date,
                self.recovery_point_created.after,
                self.recovery_point_created.before,
            )
    }
}

/// One page of the caller's jobs of `kind` that pass `filter`, oldest first, each turned into
/// the operation's list member by `member`, with the token for the next page.
pub(crate) async fn list_jobs<T>(
    meta: &Meta,
    ctx: &RequestContext,
    kind: JobKind,
    filter: &JobFilter<'_>,
    next_token: Option<&str>,
    max_results: Option<i32>,
    member: impl Fn(&JobRecord) -> T,
) -> Result<(Vec<T>, Option<String>)> {
    if filter
        .account
        .is_some_and(|a| a != ctx.account_id && a != "*")
    {
        return Ok((Vec::new(), None));
    }
    let jobs: Vec<JobRecord> = all_jobs(meta, &ctx.account_id, &ctx.region, kind)
        .await?
        .into_iter()
        .filter(|j| filter.matches(j))
        .collect();
    let (page, next) = page(jobs, |j| j.id.clone(), next_token, max_results)?;
    Ok((page.iter().map(member).collect(), next))
}
