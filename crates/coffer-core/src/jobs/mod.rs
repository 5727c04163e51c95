//! Backup, copy and restore jobs: durable state machines in the metadata store, run by a
//! bounded pool of workers.
//!
//! A job is created in one transaction with its entry in the `job_queue` table (and its
//! idempotency token). The runner claims queued jobs with a lease (owner node id, expiry on the
//! wall clock), runs them on the engine, writes progress while they run (which also renews the
//! lease and notices stop requests and windows), and ends each job in one transaction that also
//! records its results (the recovery point, the vault's count) and takes it off the queue. A job
//! that was running when its node died is found by its stale lease on the next start and run
//! again (at most three attempts), so no job is lost and none is silently dropped.

mod backup;
mod copy;
mod restore;
mod runner;
mod summaries;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use coffer_api::types::{CopyAction, Lifecycle, RecoveryPointCreator};
use coffer_api::{ApiError, RequestContext};
use coffer_store::Txn;
use serde::{Deserialize, Serialize};

pub(crate) use backup::{
    BackupJobSpec, create_backup_job, describe_backup_job, list_backup_jobs, start_backup_job,
    stop_backup_job,
};
pub(crate) use copy::{describe_copy_job, list_copy_jobs, start_copy_job};
pub(crate) use restore::{
    describe_restore_job, get_recovery_point_restore_metadata, get_restore_job_metadata,
    list_restore_jobs, list_restore_jobs_by_protected_resource, put_restore_validation_result,
    start_restore_job,
};
pub use runner::Runner;
pub(crate) use summaries::{
    list_backup_job_summaries, list_copy_job_summaries, list_restore_job_summaries,
};

use crate::error::Result;

/// The kind of a job; each kind has its own table and states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum JobKind {
    Backup,
    Copy,
    Restore,
}

impl JobKind {
    pub fn table(self) -> &'static str {
        match self {
            JobKind::Backup => "backup_job",
            JobKind::Copy => "copy_job",
            JobKind::Restore => "restore_job",
        }
    }
    fn tag(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Copy => "copy",
            JobKind::Restore => "restore",
        }
    }
    /// The state of a job waiting to run.
    pub fn waiting_state(self) -> &'static str {
        match self {
            JobKind::Restore => "PENDING",
            _ => "CREATED",
        }
    }
}

pub(crate) const QUEUE: &str = "job_queue";
const TOKENS: &str = "job_token";

/// One job as stored. The fields a kind does not use stay empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobRecord {
    pub id: String,
    pub kind: JobKind,
    pub account: String,
    pub region: String,
    pub state: String,
    #[serde(default)]
    pub status_message: Option<String>,
    #[serde(default)]
    pub message_category: Option<String>,
    pub creation_date: DateTime<Utc>,
    #[serde(default)]
    pub start_by: Option<DateTime<Utc>>,
    #[serde(default)]
    pub complete_by: Option<DateTime<Utc>>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub completion_date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub percent_done: f64,
    #[serde(default)]
    pub bytes_transferred: i64,
    #[serde(default)]
    pub backup_size: i64,
    #[serde(default)]
    pub iam_role_arn: Option<String>,
    #[serde(default)]
    pub idempotency_token: Option<String>,
    pub resource_arn: String,
    pub resource_type: String,
    #[serde(default)]
    pub resource_name: Option<String>,
    /// Backup: the target vault. Copy: the source vault. Restore: the recovery point's vault.
    pub vault_name: String,
    pub vault_arn: String,
    /// Backup: the recovery point made. Copy and restore: the source recovery point.
    #[serde(default)]
    pub recovery_point_id: Option<String>,
    #[serde(default)]
    pub recovery_point_arn: Option<String>,
    #[serde(default)]
    pub recovery_point_creation_date: Option<DateTime<Utc>>,
    /// Copy: the destination vault and the recovery point made there.
    #[serde(default)]
    pub dest_vault_arn: Option<String>,
    #[serde(default)]
    pub dest_recovery_point_arn: Option<String>,
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
    #[serde(default)]
    pub recovery_point_tags: BTreeMap<String, String>,
    #[serde(default)]
    pub backup_options: BTreeMap<String, String>,
    #[serde(default)]
    pub created_by: Option<RecoveryPointCreator>,
    #[serde(default)]
    pub created_by_backup_job_id: Option<String>,
    /// Backup made by a plan: its rule's copy actions, started when it completes.
    #[serde(default)]
    pub copy_actions: Vec<CopyAction>,
    /// Restore: the metadata given to StartRestoreJob.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub created_resource_arn: Option<String>,
    #[serde(default)]
    pub validation_status: Option<String>,
    #[serde(default)]
    pub validation_status_message: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub lease_owner: Option<String>,
    #[serde(default)]
    pub lease_until: Option<DateTime<Utc>>,
}

impl JobRecord {
    pub fn key(&self) -> String {
        job_key(&self.account, &self.region, &self.id)
    }
    pub fn queue_key(&self) -> String {
        format!("{}:{}", self.kind.tag(), self.key())
    }
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.state.as_str(),
            "COMPLETED" | "FAILED" | "ABORTED" | "EXPIRED" | "PARTIAL"
        )
    }
}

pub(crate) fn job_key(account: &str, region: &str, id: &str) -> String {
    format!("{account}:{region}:{id}")
}

pub(crate) fn new_job_id() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

pub(crate) fn load_job(tx: &mut dyn Txn, kind: JobKind, key: &str) -> Result<Option<JobRecord>> {
    Ok(match tx.get(kind.table(), key)? {
        Some(v) => Some(serde_json::from_slice(&v)?),
        None => None,
    })
}

/// Just the state of a stored job (to see what a save changes).
#[derive(Deserialize)]
struct StoredState {
    state: String,
}

/// Saves a job; a change of state also writes its vault events to the notification outbox,
/// in the same transaction (see `crate::events`).
pub(crate) fn save_job(tx: &mut dyn Txn, job: &JobRecord) -> Result<()> {
    let before = match tx.get(job.kind.table(), &job.key())? {
        Some(v) => Some(serde_json::from_slice::<StoredState>(&v)?.state),
        None => None,
    };
    tx.put(job.kind.table(), &job.key(), &serde_json::to_vec(job)?)?;
    crate::events::job_changed(tx, before.as_deref(), job)?;
    if job.is_terminal() {
        tx.delete(QUEUE, &job.queue_key())?;
    }
    Ok(())
}

/// Stores a new job and queues it, unless the idempotency token already made one: then
/// returns that job instead.
pub(crate) fn enqueue(tx: &mut dyn Txn, job: &JobRecord) -> Result<JobRecord> {
    if let Some(token) = &job.idempotency_token {
        let tkey = format!("{}:{}:{}:{token}", job.kind.tag(), job.account, job.region);
        if let Some(existing) = tx.get(TOKENS, &tkey)? {
            let id = String::from_utf8_lossy(&existing).to_string();
            if let Some(j) = load_job(tx, job.kind, &job_key(&job.account, &job.region, &id))? {
                return Ok(j);
            }
        }
        tx.put(TOKENS, &tkey, job.id.as_bytes())?;
    }
    tx.put(job.kind.table(), &job.key(), &serde_json::to_vec(job)?)?;
    tx.put(QUEUE, &job.queue_key(), b"")?;
    Ok(job.clone())
}

/// Reads a job of the caller's scope, or ResourceNotFoundException.
pub(crate) async fn get_job(
    coffer: &crate::Coffer,
    ctx: &RequestContext,
    kind: JobKind,
    id: &str,
) -> Result<JobRecord> {
    let key = job_key(&ctx.account_id, &ctx.region, id);
    let id = id.to_string();
    coffer
        .store()
        .read(move |tx| -> Result<JobRecord> {
            load_job(tx, kind, &key)?.ok_or_else(|| {
                ApiError::not_found(format!(
                    "{} job {id} does not exist in this account and region.",
                    kind_name(kind)
                ))
                .into()
            })
        })
        .await
}

fn kind_name(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Backup => "Backup",
        JobKind::Copy => "Copy",
        JobKind::Restore => "Restore",
    }
}

/// All jobs of a kind in the caller's scope, oldest first.
pub(crate) async fn all_jobs(
    coffer: &crate::Coffer,
    account: &str,
    region: &str,
    kind: JobKind,
) -> Result<Vec<JobRecord>> {
    let prefix = format!("{account}:{region}:");
    let rows = coffer
        .store()
        .read(move |tx| tx.scan(kind.table(), &prefix, None, usize::MAX))
        .await?;
    let mut jobs = rows
        .iter()
        .map(|(_, v)| serde_json::from_slice::<JobRecord>(v))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    jobs.sort_by(|a, b| a.creation_date.cmp(&b.creation_date).then(a.id.cmp(&b.id)));
    Ok(jobs)
}

/// One page of `items` (already filtered and ordered), with the token for the next.
pub(crate) fn page<T>(
    items: Vec<T>,
    id: impl Fn(&T) -> String,
    next_token: Option<&str>,
    max: Option<i32>,
) -> Result<(Vec<T>, Option<String>)> {
    let limit = crate::paging::page_size(max);
    let start = match next_token {
        Some(t) => {
            let after = crate::paging::decode(t, "")?;
            match items.iter().position(|i| id(i) == after) {
                Some(p) => p + 1,
                None => {
                    return Err(ApiError::invalid_parameter(
                        "The NextToken is not valid for this request; start again without it.",
                    )
                    .into());
                }
            }
        }
        None => 0,
    };
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(limit).collect();
    let next = if start + page.len() < total {
        page.last().map(|l| crate::paging::encode(&id(l)))
    } else {
        None
    };
    Ok((page, next))
}

/// Whether `t` passes the optional before/after bounds.
pub(crate) fn within(
    t: Option<DateTime<Utc>>,
    after: Option<&coffer_api::Timestamp>,
    before: Option<&coffer_api::Timestamp>,
) -> bool {
    if after.is_none() && before.is_none() {
        return true;
    }
    let Some(t) = t else { return false };
    after.is_none_or(|a| t > a.0) && before.is_none_or(|b| t < b.0)
}

/// Checks a Lifecycle given to a job or recovery point.
pub(crate) fn check_lifecycle(l: &Lifecycle) -> Result<()> {
    if let Some(d) = l.delete_after_days {
        if !(1..=36500).contains(&d) {
            return Err(ApiError::invalid_parameter(
                "Invalid lifecycle. DeleteAfterDays cannot be less than 1 or more than 36500 days",
            )
            .into());
        }
        if let Some(c) = l.move_to_cold_storage_after_days
            && d < c + 90
        {
            return Err(ApiError::invalid_parameter("Invalid lifecycle. DeleteAfterDays cannot be less than 90 days apart from MoveToColdStorageAfterDays").into());
        }
    }
    if let Some(c) = l.move_to_cold_storage_after_days
        && !(1..=36500).contains(&c)
    {
        return Err(ApiError::invalid_parameter("Invalid lifecycle. MoveToColdStorageAfterDays cannot be less than 1 or more than 36500 days").into());
    }
    Ok(())
}
