//! Backup, copy and restore jobs: durable state machines in the metadata store, run by a
//! bounded pool of workers.
//!
//! A job is created in one transaction with its entry in the `job_queue` table (and its
//! idempotency token). The runner claims queued jobs with a lease (owner node id, expiry on the
//! wall clock), runs them on the engine, writes progress while they run (which also renews the
//! lease and notices stop requests and windows), and ends each job in one transaction that also
//! records its results (the recovery point, the vault's count) and takes it off the queue. A job
//! that was running when its node died is found by its stale lease on the next start and run
//! again, and a run that failed for a reason that can pass (the store or the vault's storage
//! unavailable) is run again after a backoff (`next_attempt`); [`MAX_ATTEMPTS`] runs in all,
//! then the job ends FAILED naming the last error. No job is lost and none is silently dropped.

use crate::model::error::{Error, Result};
use crate::model::events::{self, Notice};
pub(crate) use crate::model::paging::page;
pub(crate) use crate::model::queue::job_key;
use crate::model::recovery_points::RecoveryPointRecord;
pub(crate) use crate::model::states::{JobKind, JobState};
use crate::model::vaults::VaultRecord;
use crate::model::{
    Meta, arn, history, job_index, queue, settings, telemetry, vault_policy, vaults,
};

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use coffer_api::types::{
    BackupVaultEvent, CopyAction, Lifecycle, RecoveryPointCreator, RestoreDeletionStatus,
    RestoreValidationStatus,
};
use coffer_api::{ApiError, RequestContext};
use coffer_store::{StoreError, Txn};
use serde::{Deserialize, Serialize};

pub(crate) use crate::model::queue::QUEUE;

/// Runs of one job at most, interrupted or failed (see the module comment).
pub(crate) const MAX_ATTEMPTS: u32 = 3;
pub(crate) const TOKENS: &str = "job_token";

/// One job as stored. The fields a kind does not use stay empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobRecord {
    pub id: String,
    pub kind: JobKind,
    pub account: String,
    pub region: String,
    pub state: JobState,
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
    /// A copy's destination is a logically air-gapped vault (its DestinationVaultType).
    #[serde(default)]
    pub dest_air_gapped: bool,
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
    /// Backup: the recovery point is indexed (StartBackupJob's Index, a rule's IndexActions).
    #[serde(default)]
    pub index: bool,
    /// Backup made by a rule with EnableContinuousBackup: for an RDS resource it extends the
    /// resource's continuous recovery point in the vault (`dataplane::pitr`).
    #[serde(default)]
    pub continuous: bool,
    /// Restore: the metadata given to StartRestoreJob.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub created_resource_arn: Option<String>,
    #[serde(default)]
    pub validation_status: Option<RestoreValidationStatus>,
    #[serde(default)]
    pub validation_status_message: Option<String>,
    /// Restore started by a restore testing plan: the plan (the job's CreatedBy).
    #[serde(default)]
    pub restore_testing_plan_arn: Option<String>,
    /// Restore test: whether its scratch data has been deleted (see `model::restore_testing`).
    #[serde(default)]
    pub deletion_status: Option<RestoreDeletionStatus>,
    #[serde(default)]
    pub deletion_status_message: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub lease_owner: Option<String>,
    #[serde(default)]
    pub lease_until: Option<DateTime<Utc>>,
    /// After a failed run that may pass: the job is not claimed before this time (Coffer
    /// clock).
    #[serde(default)]
    pub next_attempt: Option<DateTime<Utc>>,
}

impl JobRecord {
    pub fn key(&self) -> String {
        job_key(&self.account, &self.region, &self.id)
    }
    pub fn queue_key(&self) -> String {
        queue::key(
            &self.account,
            self.creation_date,
            self.kind,
            &self.region,
            &self.id,
        )
    }
    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }

    /// What the job indexes hold of this job (`job_index`).
    pub fn indexed(&self) -> job_index::Indexed {
        job_index::Indexed {
            kind: self.kind,
            id: self.id.clone(),
            account: self.account.clone(),
            region: self.region.clone(),
            state: self.state,
            creation_date: self.creation_date,
            completion_date: self.completion_date,
            vault_name: self.vault_name.clone(),
            resource_arn: self.resource_arn.clone(),
            resource_type: self.resource_type.clone(),
            message_category: self.message_category.clone(),
            dest_vault_arn: self.dest_vault_arn.clone(),
            recovery_point_arn: self.recovery_point_arn.clone(),
            restore_testing_plan_arn: self.restore_testing_plan_arn.clone(),
        }
    }

    /// A new job of `kind` in its waiting state, every optional field empty: the one place a
    /// job record is built from nothing (callers fill in what their kind uses).
    pub fn new(
        kind: JobKind,
        account: &str,
        region: &str,
        creation_date: DateTime<Utc>,
        resource_arn: String,
        resource_type: String,
    ) -> JobRecord {
        JobRecord {
            id: new_job_id(),
            kind,
            account: account.to_string(),
            region: region.to_string(),
            state: kind.waiting_state(),
            status_message: None,
            message_category: None,
            creation_date,
            start_by: None,
            complete_by: None,
            started_at: None,
            completion_date: None,
            percent_done: 0.0,
            bytes_transferred: 0,
            backup_size: 0,
            iam_role_arn: None,
            idempotency_token: None,
            resource_arn,
            resource_type,
            resource_name: None,
            vault_name: String::new(),
            vault_arn: String::new(),
            recovery_point_id: None,
            recovery_point_arn: None,
            recovery_point_creation_date: None,
            dest_vault_arn: None,
            dest_recovery_point_arn: None,
            dest_air_gapped: false,
            lifecycle: None,
            recovery_point_tags: BTreeMap::new(),
            backup_options: BTreeMap::new(),
            created_by: None,
            created_by_backup_job_id: None,
            copy_actions: Vec::new(),
            index: false,
            continuous: false,
            metadata: BTreeMap::new(),
            created_resource_arn: None,
            validation_status: None,
            validation_status_message: None,
            restore_testing_plan_arn: None,
            deletion_status: None,
            deletion_status_message: None,
            attempts: 0,
            lease_owner: None,
            lease_until: None,
            next_attempt: None,
        }
    }
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

/// Saves a job; a change of state also writes its vault events to the notification outbox,
/// and a change of what the job indexes hold rewrites its index entries (`job_index`), in the
/// same transaction (see `events`). The one write path of a job after [`enqueue`]: a tool
/// that seeds a store calls it once per job, in transactions of as many jobs as it likes.
pub(crate) fn save_job(tx: &mut dyn Txn, job: &JobRecord) -> Result<()> {
    let stored = match tx.get(job.kind.table(), &job.key())? {
        Some(v) => Some(serde_json::from_slice::<job_index::Indexed>(&v)?),
        None => None,
    };
    let before = stored.as_ref().map(|s| s.state);
    check_transition(job, before)?;
    tx.put(job.kind.table(), &job.key(), &serde_json::to_vec(job)?)?;
    job_index::reindex(tx, stored.as_ref(), &job.indexed())?;
    job_changed(tx, before, job)?;
    if job.is_terminal() {
        tx.delete(QUEUE, &job.queue_key())?;
        if !before.is_some_and(JobState::is_terminal) {
            enter_history(tx, job)?;
        }
    }
    if before != Some(job.state) {
        log_transition(job);
    }
    Ok(())
}

/// The line an operator reads when a job starts or ends: INFO for a start and a completion
/// (with how long it ran, its size, the bytes it moved and the recovery point), WARN for a job that failed,
/// expired or was stopped (with its message). Written as the change is saved, inside the
/// transaction: a transaction that then cannot commit logs its own error.
fn log_transition(job: &JobRecord) {
    let kind = match job.kind {
        JobKind::Backup => "backup",
        JobKind::Copy => "copy",
        JobKind::Restore => "restore",
    };
    let state = job.state.as_str();
    if job.state == JobState::Running {
        tracing::info!(job = %job.id, kind = %kind, resource = %job.resource_arn, vault = %job.vault_name, attempt = job.attempts, "{kind} job started");
        return;
    }
    if !job.is_terminal() {
        return;
    }
    let secs = match (job.started_at, job.completion_date) {
        (Some(s), Some(e)) => (e - s).num_milliseconds().max(0) as f64 / 1000.0,
        _ => 0.0,
    };
    let bytes = job.bytes_transferred.max(0) as u64;
    telemetry::job_ended(kind, state, secs, bytes);
    let point = job
        .dest_recovery_point_arn
        .as_deref()
        .or(job.recovery_point_arn.as_deref())
        .unwrap_or("");
    if job.state == JobState::Completed {
        tracing::info!(job = %job.id, kind = %kind, resource = %job.resource_arn, vault = %job.vault_name, duration_secs = secs, backup_size = job.backup_size, bytes_transferred = job.bytes_transferred, recovery_point = point, created_resource = job.created_resource_arn.as_deref().unwrap_or(""), "{kind} job completed");
    } else {
        tracing::warn!(job = %job.id, kind = %kind, state = %state, resource = %job.resource_arn, vault = %job.vault_name, duration_secs = secs, status = job.status_message.as_deref().unwrap_or(""), "{kind} job ended {state}");
    }
}

/// Refuses a save that moves a job between states its life cycle does not allow (see
/// [`JobState::may_become`]): such a write is a bug in Coffer, reported as an internal error.
fn check_transition(job: &JobRecord, before: Option<JobState>) -> Result<()> {
    let allowed = match before {
        Some(b) => b.may_become(job.state),
        None => job.state.may_start_as(),
    };
    if allowed {
        return Ok(());
    }
    let from = before.map_or("nothing", JobState::as_str);
    tracing::error!(job = %job.id, from, to = %job.state, "refused an invalid job state transition");
    Err(ApiError::internal(format!(
        "job {} cannot move from {from} to {}",
        job.id, job.state
    ))
    .into())
}

/// The events a job's move from `before` to its current state publishes (see
/// docs/notifications.md for the table).
pub(crate) fn job_events(
    kind: JobKind,
    before: Option<JobState>,
    state: JobState,
) -> Vec<BackupVaultEvent> {
    use BackupVaultEvent as E;
    use JobState::*;
    if before == Some(state) || before.is_some_and(JobState::is_terminal) {
        return Vec::new();
    }
    let terminal = state.is_terminal();
    match (kind, state) {
        (JobKind::Backup, Running) => vec![E::BackupJobStarted],
        (JobKind::Copy, Running) => vec![E::CopyJobStarted],
        (JobKind::Restore, Running) => vec![E::RestoreJobStarted],
        (JobKind::Backup, Completed) => vec![E::BackupJobCompleted, E::BackupJobSuccessful],
        (JobKind::Backup, Failed | Aborted) => vec![E::BackupJobCompleted, E::BackupJobFailed],
        (JobKind::Backup, Expired) => vec![E::BackupJobCompleted, E::BackupJobExpired],
        (JobKind::Backup, _) if terminal => vec![E::BackupJobCompleted],
        (JobKind::Copy, Completed) => vec![E::CopyJobSuccessful],
        (JobKind::Copy, _) if terminal => vec![E::CopyJobFailed],
        (JobKind::Restore, Completed) => vec![E::RestoreJobCompleted, E::RestoreJobSuccessful],
        (JobKind::Restore, _) if terminal => vec![E::RestoreJobCompleted, E::RestoreJobFailed],
        _ => Vec::new(),
    }
}

/// AWS Backup's wording for a job event.
fn job_message(job: &JobRecord) -> String {
    let (noun, id_label) = match job.kind {
        JobKind::Backup => ("backup", "BackupJob ID"),
        JobKind::Copy => ("copy", "CopyJob ID"),
        JobKind::Restore => ("restore", "RestoreJob ID"),
    };
    let rp = match job.kind {
        JobKind::Copy => job
            .dest_recovery_point_arn
            .clone()
            .or_else(|| job.recovery_point_arn.clone()),
        _ => job.recovery_point_arn.clone(),
    }
    .unwrap_or_default();
    let mut tail = format!(
        "Resource ARN : {}. {id_label} : {}",
        job.resource_arn, job.id
    );
    if let Some(plan) = &job.restore_testing_plan_arn {
        // A restore test says which plan started it and, once it has one, its verdict.
        tail.push_str(&format!(". Restore testing plan ARN : {plan}"));
        if let Some(v) = &job.validation_status {
            tail.push_str(&format!(". Validation status : {}", v.as_str()));
        }
    }
    let status = job
        .status_message
        .as_deref()
        .map(|m| format!(". Status message : {m}"))
        .unwrap_or_default();
    match job.state {
        JobState::Running => format!("An AWS Backup {noun} job was started. {tail}"),
        JobState::Completed | JobState::Partial => match job.kind {
            JobKind::Restore => format!(
                "An AWS Backup job was completed successfully. Recovery point ARN: {rp}. Created resource ARN : {}. {tail}",
                job.created_resource_arn.clone().unwrap_or_default()
            ),
            _ => format!(
                "An AWS Backup job was completed successfully. Recovery point ARN: {rp}. {tail}"
            ),
        },
        JobState::Expired => {
            format!("An AWS Backup job failed to complete in time. {tail}{status}")
        }
        JobState::Aborted => format!("An AWS Backup job was stopped. {tail}{status}"),
        _ => format!("An AWS Backup job failed. {tail}{status}"),
    }
}

/// Emits the events of a job's state change (`before` is the state it had, `None` for a new
/// job). Called by [`save_job`] whenever it saves a job, inside that transaction.
pub(crate) fn job_changed(
    tx: &mut dyn Txn,
    before: Option<JobState>,
    job: &JobRecord,
) -> Result<(), StoreError> {
    let events = job_events(job.kind, before, job.state);
    if events.is_empty() {
        return Ok(());
    }
    let notice = Notice {
        event_type: match job.kind {
            JobKind::Backup => "BACKUP_JOB",
            JobKind::Copy => "COPY_JOB",
            JobKind::Restore => "RESTORE_JOB",
        },
        state: job.state.to_string(),
        id: job.id.clone(),
        start_time: job.started_at.unwrap_or(job.creation_date),
        at: job
            .completion_date
            .or(job.started_at)
            .unwrap_or(job.creation_date),
        message: job_message(job),
    };
    for event in events {
        events::emit(
            tx,
            &job.account,
            &job.region,
            &job.vault_name,
            &event,
            &notice,
        )?;
    }
    Ok(())
}

/// Stores a new job and queues it, unless the idempotency token already made one: then
/// returns that job instead.
pub(crate) fn enqueue(tx: &mut dyn Txn, job: &JobRecord) -> Result<JobRecord> {
    if let Some(token) = &job.idempotency_token {
        if let Some(j) = by_token(tx, job.kind, &job.account, &job.region, token)? {
            return Ok(j);
        }
        let tkey = token_key(job.kind, &job.account, &job.region, token);
        tx.put(TOKENS, &tkey, job.id.as_bytes())?;
    }
    tx.put(job.kind.table(), &job.key(), &serde_json::to_vec(job)?)?;
    job_index::reindex(tx, None, &job.indexed())?;
    tx.put(QUEUE, &job.queue_key(), b"")?;
    Ok(job.clone())
}

/// One run of a job on a node: who claimed it and on which attempt. Every transaction that
/// ends or hands back the run checks it with [`load_held`], so a node whose lease ran out (it
/// was paused or cut off, and another node took the job over) cannot end the job under the
/// node that runs it now.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    kind: JobKind,
    key: String,
    id: String,
    owner: Option<String>,
    attempts: u32,
}

impl JobRecord {
    /// This record's run, as the runner claimed it.
    pub(crate) fn run(&self) -> Run {
        Run {
            kind: self.kind,
            key: self.key(),
            id: self.id.clone(),
            owner: self.lease_owner.clone(),
            attempts: self.attempts,
        }
    }
}

/// The job as stored, if `run` still holds it: not ended, and (for a claimed run) claimed by
/// the same owner on the same attempt. A run that lost its job is told `None`, and its
/// result is dropped with a warning: the node that holds the job now ends it.
pub(crate) fn load_held(tx: &mut dyn Txn, run: &Run) -> Result<Option<JobRecord>> {
    let Some(j) = load_job(tx, run.kind, &run.key)? else {
        return Ok(None);
    };
    if j.is_terminal() {
        return Ok(None);
    }
    let held = run.owner.is_none() || (j.lease_owner == run.owner && j.attempts == run.attempts);
    if !held {
        tracing::warn!(job = %run.id, attempt = run.attempts, now_held_by = j.lease_owner.as_deref().unwrap_or("nobody"), "this node's lease on the job ran out and the job moved on; its result is dropped");
        return Ok(None);
    }
    Ok(Some(j))
}

/// Enters a job that has just finished into the history (`model::history`): the job and,
/// if it had one, its idempotency token go together when the retention is up.
fn enter_history(tx: &mut dyn Txn, job: &JobRecord) -> Result<()> {
    let mut items = vec![(job.kind.table().to_string(), job.key())];
    if let Some(token) = &job.idempotency_token {
        items.push((
            TOKENS.to_string(),
            token_key(job.kind, &job.account, &job.region, token),
        ));
    }
    let finished = job.completion_date.unwrap_or(job.creation_date);
    history::record(tx, finished, &items)
}

/// Enters a stored job written before the history table existed, if it has finished (the
/// history's backfill).
pub(crate) fn enter_finished(tx: &mut dyn Txn, value: &[u8]) -> Result<()> {
    let job: JobRecord = serde_json::from_slice(value)?;
    if job.is_terminal() {
        enter_history(tx, &job)?;
    }
    Ok(())
}

/// The key of an idempotency token in table `job_token`.
pub(crate) fn token_key(kind: JobKind, account: &str, region: &str, token: &str) -> String {
    format!("{}:{account}:{region}:{token}", kind.tag())
}

/// The job a Start call with this idempotency token already made, if any.
pub(crate) fn by_token(
    tx: &mut dyn Txn,
    kind: JobKind,
    account: &str,
    region: &str,
    token: &str,
) -> Result<Option<JobRecord>> {
    let tkey = token_key(kind, account, region, token);
    let Some(existing) = tx.get(TOKENS, &tkey)? else {
        return Ok(None);
    };
    let id = String::from_utf8_lossy(&existing).to_string();
    load_job(tx, kind, &job_key(account, region, &id))
}

/// Rewrites up to `max` entries of the earlier layout `KIND:ACCOUNT:REGION:ID`; returns how
/// many it found.
pub(crate) fn migrate_legacy_queue(tx: &mut dyn Txn, max: usize) -> Result<usize> {
    let mut found = 0;
    for kind in [JobKind::Backup, JobKind::Copy, JobKind::Restore] {
        let prefix = format!("{}:", kind.tag());
        for (k, _) in tx.scan(QUEUE, &prefix, None, max)? {
            found += 1;
            tx.delete(QUEUE, &k)?;
            if let Some(job) = load_job(tx, kind, &k[prefix.len()..])?
                && !job.is_terminal()
            {
                tx.put(QUEUE, &job.queue_key(), b"")?;
            }
        }
    }
    Ok(found)
}

/// Reads a job of the caller's scope, or ResourceNotFoundException.
pub(crate) async fn get_job(
    meta: &Meta,
    ctx: &RequestContext,
    kind: JobKind,
    id: &str,
) -> Result<JobRecord> {
    let key = job_key(&ctx.account_id, &ctx.region, id);
    let id = id.to_string();
    meta.store()
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

pub(crate) fn kind_name(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Backup => "Backup",
        JobKind::Copy => "Copy",
        JobKind::Restore => "Restore",
    }
}

/// All jobs of a kind in a scope, oldest first (for tests; listings read the job indexes).
#[cfg(test)]
pub(crate) async fn all_jobs(
    meta: &Meta,
    account: &str,
    region: &str,
    kind: JobKind,
) -> Result<Vec<JobRecord>> {
    let prefix = format!("{account}:{region}:");
    let rows = meta
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

/// The (account, region, name) a backup-vault ARN names.
pub(crate) fn parse_vault_arn(vault_arn: &str) -> Result<(String, String, String)> {
    let bad = || {
        ApiError::invalid_parameter(format!(
            "DestinationBackupVaultArn '{vault_arn}' is not a backup vault ARN (arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME)."
        ))
    };
    let a = arn::parse(vault_arn).ok_or_else(bad)?;
    let name = a.resource.strip_prefix("backup-vault:").ok_or_else(bad)?;
    if a.service != "backup" || name.is_empty() {
        return Err(bad().into());
    }
    Ok((
        a.account.to_string(),
        a.region.to_string(),
        name.to_string(),
    ))
}

/// Everything a new copy job needs, from StartCopyJob or from a rule's copy action.
pub(crate) struct CopyJobSpec {
    pub source_vault_name: String,
    pub source_vault_arn: String,
    pub source_vault_uid: String,
    pub source: RecoveryPointRecord,
    pub destination_vault_arn: String,
    pub lifecycle: Option<Lifecycle>,
    pub iam_role_arn: String,
    pub idempotency_token: Option<String>,
    pub created_by: Option<RecoveryPointCreator>,
    pub created_by_backup_job_id: Option<String>,
    pub creation_date: chrono::DateTime<chrono::Utc>,
}

/// The destination vault of a copy, checked inside the transaction: the outer error is a
/// store failure, the inner one says why this destination cannot be used.
pub(crate) fn check_destination(
    tx: &mut dyn Txn,
    spec: &CopyJobSpec,
) -> Result<std::result::Result<VaultRecord, Error>> {
    let (dest_account, dest_region, dest_name) = match parse_vault_arn(&spec.destination_vault_arn)
    {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let k = vaults::key(&dest_account, &dest_region, &dest_name);
    let dest: VaultRecord = match tx.get(vaults::TABLE, &k)? {
        Some(v) => serde_json::from_slice(&v)?,
        None => {
            return Ok(Err(ApiError::not_found(format!(
                "Destination backup vault {} does not exist.",
                spec.destination_vault_arn
            ))
            .into()));
        }
    };
    if dest_account != spec.source.account {
        let caller = spec.source.account.clone();
        if !settings::cross_account_backup_enabled(tx, &caller)? {
            return Ok(Err(ApiError::invalid_request(format!(
                "Cross-account backup is disabled for account {caller}: enable isCrossAccountBackupEnabled with UpdateGlobalSettings first."
            ))
            .into()));
        }
        let allowed = vault_policy::get(tx, &k)?
            .is_some_and(|p| vault_policy::copy_allowed(&p, &dest.arn, &caller));
        if !allowed {
            return Ok(Err(ApiError::invalid_request(format!(
                "The access policy of {} does not allow account {caller} to backup:CopyIntoBackupVault.",
                dest.arn
            ))
            .into()));
        }
    }
    if dest.uid == spec.source_vault_uid {
        return Ok(Err(ApiError::invalid_parameter(
            "The destination vault is the source vault; copy into another vault.",
        )
        .into()));
    }
    Ok(Ok(dest))
}

/// Builds a copy job from `spec` into `dest` and queues it, in the caller's transaction; when
/// `dest` is an error message the job is recorded FAILED with it instead (a plan's copy action
/// whose destination cannot be used). StartCopyJob and completed plan backups both create
/// their copy jobs here.
pub(crate) fn create_copy_job(
    tx: &mut dyn Txn,
    spec: CopyJobSpec,
    dest: std::result::Result<&VaultRecord, String>,
) -> Result<JobRecord> {
    let dest_rp_id = uuid::Uuid::new_v4().to_string();
    let dest_air_gapped = dest.as_ref().is_ok_and(|d| d.air_gapped);
    let (dest_arn, dest_rp_arn, failed) = match dest {
        Ok(d) => (
            d.arn.clone(),
            Some(arn::recovery_point(&d.region, &d.account, &dest_rp_id)),
            None,
        ),
        Err(m) => (spec.destination_vault_arn.clone(), None, Some(m)),
    };
    let rp = spec.source;
    let mut job = JobRecord {
        backup_size: rp.backup_size,
        iam_role_arn: Some(spec.iam_role_arn),
        idempotency_token: spec.idempotency_token,
        resource_name: rp.resource_name.clone(),
        vault_name: spec.source_vault_name,
        vault_arn: spec.source_vault_arn,
        recovery_point_id: Some(rp.id.clone()),
        recovery_point_arn: Some(rp.arn.clone()),
        recovery_point_creation_date: Some(rp.creation_date),
        dest_vault_arn: Some(dest_arn),
        dest_recovery_point_arn: dest_rp_arn,
        dest_air_gapped,
        lifecycle: spec.lifecycle,
        created_by: spec.created_by,
        created_by_backup_job_id: spec.created_by_backup_job_id,
        ..JobRecord::new(
            JobKind::Copy,
            &rp.account,
            &rp.region,
            spec.creation_date,
            rp.resource_arn.clone(),
            rp.resource_type.clone(),
        )
    };
    if let Some(message) = failed {
        job.state = JobState::Failed;
        job.status_message = Some(message);
        job.message_category = Some("FAILED".into());
        job.completion_date = Some(job.creation_date);
        save_job(tx, &job)?;
        return Ok(job);
    }
    enqueue(tx, &job)
}

/// Everything a new backup job needs, from StartBackupJob or from a plan's firing.
#[derive(Clone)]
pub(crate) struct BackupJobSpec {
    pub account: String,
    pub region: String,
    pub vault_name: String,
    pub vault_arn: String,
    pub resource_arn: String,
    pub resource_type: String,
    pub resource_name: Option<String>,
    pub iam_role_arn: String,
    pub idempotency_token: Option<String>,
    /// For a plan's job: the scheduled time (so retention counts from it).
    pub creation_date: DateTime<Utc>,
    pub start_by: DateTime<Utc>,
    pub complete_by: DateTime<Utc>,
    pub lifecycle: Option<Lifecycle>,
    pub recovery_point_tags: BTreeMap<String, String>,
    pub created_by: Option<RecoveryPointCreator>,
    /// The rule's copy actions, carried out when the job completes.
    pub copy_actions: Vec<CopyAction>,
    /// The resource types whose recovery points this job indexes (a rule's IndexActions;
    /// StartBackupJob with Index ENABLED names its resource's type).
    pub index_resource_types: Vec<String>,
    /// The rule has EnableContinuousBackup.
    pub continuous: bool,
    /// When set, the job is recorded already EXPIRED with this message (a firing whose start
    /// window ended before it could be started).
    pub expired_message: Option<String>,
}

/// Builds a backup job from `spec` and queues it (or records it EXPIRED), in the caller's
/// transaction. StartBackupJob and the scheduler both create their jobs here.
pub(crate) fn create_backup_job(tx: &mut dyn Txn, spec: BackupJobSpec) -> Result<JobRecord> {
    let rp_id = uuid::Uuid::new_v4().to_string();
    let expired = spec.expired_message.is_some();
    let job = JobRecord {
        state: if expired {
            JobState::Expired
        } else {
            JobState::Created
        },
        status_message: spec.expired_message,
        message_category: expired.then(|| "EXPIRED".to_string()),
        start_by: Some(spec.start_by),
        complete_by: Some(spec.complete_by),
        iam_role_arn: Some(spec.iam_role_arn),
        idempotency_token: spec.idempotency_token,
        resource_name: spec.resource_name,
        vault_name: spec.vault_name,
        vault_arn: spec.vault_arn,
        recovery_point_id: Some(rp_id.clone()),
        recovery_point_arn: Some(arn::recovery_point(&spec.region, &spec.account, &rp_id)),
        lifecycle: spec.lifecycle,
        recovery_point_tags: spec.recovery_point_tags,
        created_by: spec.created_by,
        copy_actions: spec.copy_actions,
        index: spec.index_resource_types.contains(&spec.resource_type),
        continuous: spec.continuous,
        ..JobRecord::new(
            JobKind::Backup,
            &spec.account,
            &spec.region,
            spec.creation_date,
            spec.resource_arn,
            spec.resource_type,
        )
    };
    if expired {
        let mut job = job;
        job.completion_date = job.start_by;
        save_job(tx, &job)?;
        return Ok(job);
    }
    enqueue(tx, &job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_run_that_lost_its_lease_cannot_end_the_job() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            coffer_store::StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        let mut job = JobRecord::new(
            JobKind::Backup,
            "111122223333",
            "r",
            Utc::now(),
            "arn:res".into(),
            "EFS".into(),
        );
        job.state = JobState::Running;
        job.attempts = 1;
        job.lease_owner = Some("node-a/1".into());
        let run_a = job.run();
        let unclaimed = JobRecord {
            lease_owner: None,
            ..job.clone()
        }
        .run();
        let mut taken = job.clone();
        taken.attempts = 2;
        taken.lease_owner = Some("node-b/1".into());
        store
            .write(move |tx| -> Result<()> {
                tx.put(
                    JobKind::Backup.table(),
                    &job.key(),
                    &serde_json::to_vec(&job)?,
                )?;
                assert!(
                    load_held(tx, &run_a)?.is_some(),
                    "the claiming run holds it"
                );
                // The lease ran out and node b claimed the job for its second attempt.
                tx.put(
                    JobKind::Backup.table(),
                    &taken.key(),
                    &serde_json::to_vec(&taken)?,
                )?;
                assert!(load_held(tx, &run_a)?.is_none(), "node a's run lost it");
                assert!(
                    load_held(tx, &taken.run())?.is_some(),
                    "node b's run holds it"
                );
                // The same node on an earlier attempt does not hold it either.
                let mut old = taken.clone();
                old.attempts = 1;
                assert!(load_held(tx, &old.run())?.is_none());
                // An unclaimed run (no lease) sees any job that has not ended.
                assert!(load_held(tx, &unclaimed)?.is_some());
                let mut ended = taken.clone();
                ended.state = JobState::Completed;
                tx.put(
                    JobKind::Backup.table(),
                    &ended.key(),
                    &serde_json::to_vec(&ended)?,
                )?;
                assert!(
                    load_held(tx, &taken.run())?.is_none(),
                    "an ended job is held by nobody"
                );
                Ok(())
            })
            .await
            .unwrap();
    }

    #[test]
    fn a_restore_test_event_names_its_plan_and_verdict() {
        let mut job = JobRecord::new(
            JobKind::Restore,
            "1",
            "r",
            Utc::now(),
            "arn:res".into(),
            "EFS".into(),
        );
        job.state = JobState::Completed;
        let plain = job_message(&job);
        assert!(!plain.contains("Restore testing plan"), "{plain}");
        job.restore_testing_plan_arn = Some("arn:plan".into());
        job.validation_status = Some(RestoreValidationStatus::Successful);
        let m = job_message(&job);
        assert!(
            m.ends_with("Restore testing plan ARN : arn:plan. Validation status : SUCCESSFUL"),
            "{m}"
        );
    }

    #[test]
    fn job_transitions_map_to_events() {
        use BackupVaultEvent as E;
        use JobKind::*;
        use JobState::*;
        assert_eq!(
            job_events(Backup, Some(Created), Running),
            [E::BackupJobStarted]
        );
        assert_eq!(
            job_events(Backup, Some(Running), Completed),
            [E::BackupJobCompleted, E::BackupJobSuccessful]
        );
        assert_eq!(
            job_events(Backup, Some(Aborting), Aborted),
            [E::BackupJobCompleted, E::BackupJobFailed]
        );
        assert_eq!(
            job_events(Backup, Some(Created), Expired),
            [E::BackupJobCompleted, E::BackupJobExpired]
        );
        assert_eq!(job_events(Copy, Some(Running), Failed), [E::CopyJobFailed]);
        assert_eq!(
            job_events(Restore, Some(Running), Completed),
            [E::RestoreJobCompleted, E::RestoreJobSuccessful]
        );
        assert!(job_events(Backup, Some(Running), Running).is_empty());
        assert!(job_events(Backup, Some(Running), Aborting).is_empty());
        assert!(job_events(Backup, None, Created).is_empty());
        assert!(job_events(Restore, Some(Completed), Completed).is_empty());
    }
}
