//! Backup jobs: StartBackupJob, DescribeBackupJob, ListBackupJobs, StopBackupJob, and running
//! one: the resource's source is read into the vault's repository, with the resource's latest
//! recovery point in that vault as parent, and the new recovery point is recorded.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};
use coffer_engine::{SnapshotRef, SourceSpec};
use coffer_store::Txn;

use super::copy::{CopyJobSpec, check_destination, create_copy_job};
use super::runner::JobControl;
use super::{
    JobKind, JobRecord, all_jobs, check_lifecycle, enqueue, get_job, job_key, load_job, new_job_id,
    page, save_job, within,
};
use crate::error::Result;
use crate::inventory::SourceKind;
use crate::recovery_points::{self, RecoveryPointRecord};
use crate::{Coffer, arn, storage, vaults};

const DEFAULT_START_WINDOW: i64 = 480;
const DEFAULT_COMPLETE_WINDOW: i64 = 10080;

pub(crate) async fn start_backup_job(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: StartBackupJobInput,
) -> Result<StartBackupJobOutput> {
    let vault = vaults::get(
        coffer,
        &ctx.account_id,
        &ctx.region,
        &input.backup_vault_name,
    )
    .await?;
    let resource = coffer.inventory().get(&input.resource_arn).ok_or_else(|| {
        ApiError::invalid_parameter(crate::inventory::not_in_inventory(&input.resource_arn))
    })?;
    if resource.account != ctx.account_id || resource.region != ctx.region {
        return Err(ApiError::invalid_parameter(format!(
            "Resource {} belongs to account {} in {}, not to this account and region.",
            resource.arn, resource.account, resource.region
        ))
        .into());
    }
    let start_window = input.start_window_minutes.unwrap_or(DEFAULT_START_WINDOW);
    let complete_window = input
        .complete_window_minutes
        .unwrap_or(DEFAULT_COMPLETE_WINDOW);
    if start_window < 60 {
        return Err(ApiError::invalid_parameter("StartWindowMinutes must be at least 60.").into());
    }
    if complete_window < 1 {
        return Err(
            ApiError::invalid_parameter("CompleteWindowMinutes must be at least 1.").into(),
        );
    }
    if let Some(l) = &input.lifecycle {
        check_lifecycle(l)?;
    }
    if let Some(opts) = &input.backup_options
        && let Some((k, _)) = opts.iter().next()
    {
        return Err(ApiError::invalid_parameter(format!(
                "BackupOptions '{k}' does not apply to {} resources; Coffer's EFS and EBS resources take no backup options.",
                resource.resource_type
            ))
            .into());
    }
    crate::tags::check_initial(
        input
            .recovery_point_tags
            .as_ref()
            .unwrap_or(&Default::default()),
    )?;
    let now = coffer.clock().now();
    let spec = BackupJobSpec {
        account: ctx.account_id.clone(),
        region: ctx.region.clone(),
        vault_name: vault.name.clone(),
        vault_arn: vault.arn.clone(),
        resource_arn: resource.arn.clone(),
        resource_type: resource.resource_type.clone(),
        resource_name: Some(resource.name.clone()),
        iam_role_arn: input.iam_role_arn.clone(),
        idempotency_token: input.idempotency_token.clone(),
        creation_date: now,
        start_by: now + Duration::minutes(start_window),
        complete_by: now + Duration::minutes(complete_window),
        lifecycle: input.lifecycle.clone(),
        recovery_point_tags: input.recovery_point_tags.clone().unwrap_or_default(),
        created_by: None,
        copy_actions: Vec::new(),
        expired_message: None,
    };
    let stored = coffer
        .store()
        .write(move |tx| create_backup_job(tx, spec))
        .await?;
    coffer.runner().wake();
    Ok(StartBackupJobOutput {
        backup_job_id: Some(stored.id.clone()),
        creation_date: Some(Timestamp(stored.creation_date)),
        is_parent: Some(false),
        recovery_point_arn: stored.recovery_point_arn.clone(),
    })
}

/// Everything a new backup job needs, from StartBackupJob or from a plan's firing.
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
    /// When set, the job is recorded already EXPIRED with this message (a firing whose start
    /// window ended before it could be started).
    pub expired_message: Option<String>,
}

/// Builds a backup job from `spec` and queues it (or records it EXPIRED), in the caller's
/// transaction. StartBackupJob and the scheduler both create their jobs here.
pub(crate) fn create_backup_job(tx: &mut dyn Txn, spec: BackupJobSpec) -> Result<JobRecord> {
    let id = new_job_id();
    let rp_id = uuid::Uuid::new_v4().to_string();
    let expired = spec.expired_message.is_some();
    let job = JobRecord {
        id,
        kind: JobKind::Backup,
        state: if expired { "EXPIRED" } else { "CREATED" }.into(),
        status_message: spec.expired_message,
        message_category: expired.then(|| "EXPIRED".to_string()),
        creation_date: spec.creation_date,
        start_by: Some(spec.start_by),
        complete_by: Some(spec.complete_by),
        started_at: None,
        completion_date: None,
        percent_done: 0.0,
        bytes_transferred: 0,
        backup_size: 0,
        iam_role_arn: Some(spec.iam_role_arn),
        idempotency_token: spec.idempotency_token,
        resource_arn: spec.resource_arn,
        resource_type: spec.resource_type,
        resource_name: spec.resource_name,
        vault_name: spec.vault_name,
        vault_arn: spec.vault_arn,
        recovery_point_id: Some(rp_id.clone()),
        recovery_point_arn: Some(arn::recovery_point(&spec.region, &spec.account, &rp_id)),
        account: spec.account,
        region: spec.region,
        recovery_point_creation_date: None,
        dest_vault_arn: None,
        dest_recovery_point_arn: None,
        lifecycle: spec.lifecycle,
        recovery_point_tags: spec.recovery_point_tags,
        backup_options: Default::default(),
        created_by: spec.created_by,
        created_by_backup_job_id: None,
        copy_actions: spec.copy_actions,
        metadata: Default::default(),
        created_resource_arn: None,
        validation_status: None,
        validation_status_message: None,
        attempts: 0,
        lease_owner: None,
        lease_until: None,
    };
    if expired {
        let mut job = job;
        job.completion_date = job.start_by;
        save_job(tx, &job)?;
        return Ok(job);
    }
    enqueue(tx, &job)
}

fn describe_output(j: &JobRecord) -> DescribeBackupJobOutput {
    DescribeBackupJobOutput {
        account_id: Some(j.account.clone()),
        backup_job_id: Some(j.id.clone()),
        backup_options: if j.backup_options.is_empty() {
            None
        } else {
            Some(j.backup_options.clone())
        },
        backup_size_in_bytes: Some(j.backup_size),
        backup_type: None,
        backup_vault_arn: Some(j.vault_arn.clone()),
        backup_vault_name: Some(j.vault_name.clone()),
        bytes_transferred: Some(j.bytes_transferred),
        completion_date: j.completion_date.map(Timestamp),
        created_by: j.created_by.clone(),
        creation_date: Some(Timestamp(j.creation_date)),
        encryption_key_arn: None,
        expected_completion_date: j.complete_by.map(Timestamp),
        iam_role_arn: j.iam_role_arn.clone(),
        initiation_date: j.started_at.map(Timestamp),
        is_encrypted: Some(true),
        is_parent: Some(false),
        message_category: j.message_category.clone(),
        percent_done: Some(format!("{:.1}", j.percent_done)),
        recovery_point_arn: j.recovery_point_arn.clone(),
        recovery_point_lifecycle: j.lifecycle.clone(),
        resource_arn: Some(j.resource_arn.clone()),
        resource_name: j.resource_name.clone(),
        resource_type: Some(j.resource_type.clone()),
        start_by: j.start_by.map(Timestamp),
        state: Some(j.state.clone()),
        status_message: j.status_message.clone(),
        vault_type: Some("BACKUP_VAULT".into()),
        ..Default::default()
    }
}

pub(crate) async fn describe_backup_job(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: DescribeBackupJobInput,
) -> Result<DescribeBackupJobOutput> {
    let j = get_job(coffer, ctx, JobKind::Backup, &input.backup_job_id).await?;
    Ok(describe_output(&j))
}

pub(crate) async fn list_backup_jobs(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: ListBackupJobsInput,
) -> Result<ListBackupJobsOutput> {
    if let Some(a) = &input.by_account_id
        && a != &ctx.account_id
        && a != "*"
    {
        return Ok(ListBackupJobsOutput {
            backup_jobs: Some(Vec::new()),
            next_token: None,
        });
    }
    let jobs: Vec<JobRecord> = all_jobs(coffer, &ctx.account_id, &ctx.region, JobKind::Backup)
        .await?
        .into_iter()
        .filter(|j| {
            input
                .by_resource_arn
                .as_ref()
                .is_none_or(|x| x == &j.resource_arn)
                && input.by_state.as_ref().is_none_or(|x| x == &j.state)
                && input
                    .by_backup_vault_name
                    .as_ref()
                    .is_none_or(|x| x == &j.vault_name)
                && input
                    .by_resource_type
                    .as_ref()
                    .is_none_or(|x| x == &j.resource_type)
                && input.by_parent_job_id.is_none()
                && input
                    .by_message_category
                    .as_ref()
                    .is_none_or(|x| x == "AGGREGATE_ALL" || j.message_category.as_ref() == Some(x))
                && within(
                    Some(j.creation_date),
                    input.by_created_after.as_ref(),
                    input.by_created_before.as_ref(),
                )
                && within(
                    j.completion_date,
                    input.by_complete_after.as_ref(),
                    input.by_complete_before.as_ref(),
                )
        })
        .collect();
    let (page, next) = page(
        jobs,
        |j| j.id.clone(),
        input.next_token.as_deref(),
        input.max_results,
    )?;
    Ok(ListBackupJobsOutput {
        backup_jobs: Some(
            page.iter()
                .map(|j| {
                    let d = describe_output(j);
                    BackupJob {
                        account_id: d.account_id,
                        backup_job_id: d.backup_job_id,
                        backup_options: d.backup_options,
                        backup_size_in_bytes: d.backup_size_in_bytes,
                        backup_type: d.backup_type,
                        backup_vault_arn: d.backup_vault_arn,
                        backup_vault_name: d.backup_vault_name,
                        bytes_transferred: d.bytes_transferred,
                        completion_date: d.completion_date,
                        created_by: d.created_by,
                        creation_date: d.creation_date,
                        encryption_key_arn: d.encryption_key_arn,
                        expected_completion_date: d.expected_completion_date,
                        iam_role_arn: d.iam_role_arn,
                        initiation_date: d.initiation_date,
                        is_encrypted: d.is_encrypted,
                        is_parent: d.is_parent,
                        message_category: d.message_category,
                        parent_job_id: None,
                        percent_done: d.percent_done,
                        recovery_point_arn: d.recovery_point_arn,
                        recovery_point_lifecycle: d.recovery_point_lifecycle,
                        resource_arn: d.resource_arn,
                        resource_name: d.resource_name,
                        resource_type: d.resource_type,
                        start_by: d.start_by,
                        state: d.state,
                        status_message: d.status_message,
                        vault_lock_state: None,
                        vault_type: d.vault_type,
                    }
                })
                .collect(),
        ),
        next_token: next,
    })
}

pub(crate) async fn stop_backup_job(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: StopBackupJobInput,
) -> Result<()> {
    let key = job_key(&ctx.account_id, &ctx.region, &input.backup_job_id);
    let id = input.backup_job_id.clone();
    let now = coffer.clock().now();
    let k = key.clone();
    let running = coffer
        .store()
        .write(move |tx| -> Result<bool> {
            let Some(mut j) = load_job(tx, JobKind::Backup, &k)? else {
                return Err(ApiError::not_found(format!(
                    "Backup job {id} does not exist in this account and region."
                ))
                .into());
            };
            match j.state.as_str() {
                "CREATED" | "PENDING" => {
                    j.state = "ABORTED".into();
                    j.status_message = Some(
                        "The job was stopped by a StopBackupJob request before it started.".into(),
                    );
                    j.completion_date = Some(now);
                    save_job(tx, &j)?;
                    Ok(false)
                }
                "RUNNING" => {
                    j.state = "ABORTING".into();
                    save_job(tx, &j)?;
                    Ok(true)
                }
                "ABORTING" => Ok(true),
                other => Err(ApiError::invalid_request(format!(
                    "Backup job {id} is {other} and can no longer be stopped."
                ))
                .into()),
            }
        })
        .await?;
    if running {
        coffer
            .runner()
            .cancel(&key, "The job was stopped by a StopBackupJob request.");
    }
    Ok(())
}

/// Ends a job with `state` and `message`, unless it already ended.
pub(crate) async fn finish(
    coffer: &Coffer,
    job: &JobRecord,
    state: &str,
    message: Option<String>,
    category: &str,
) {
    let now = coffer.clock().now();
    let key = job.key();
    let kind = job.kind;
    let (state, category) = (state.to_string(), category.to_string());
    let r = coffer
        .store()
        .write(move |tx| -> Result<()> {
            if let Some(mut j) = load_job(tx, kind, &key)? {
                if j.is_terminal() {
                    return Ok(());
                }
                j.state = state;
                j.status_message = message;
                j.message_category = Some(category);
                j.completion_date = Some(now);
                j.lease_owner = None;
                j.lease_until = None;
                save_job(tx, &j)?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = r {
        tracing::error!(job = %job.id, error = %e.0, "could not record the end of a job");
    }
}

/// The state and message for a job the engine stopped with `e`.
pub(crate) fn engine_end(
    control: &JobControl,
    e: &coffer_engine::Error,
) -> (&'static str, String, &'static str) {
    match e {
        coffer_engine::Error::Cancelled => (
            "ABORTED",
            control
                .reason()
                .unwrap_or_else(|| "The job was stopped.".into()),
            "ABORTED",
        ),
        coffer_engine::Error::SourceNotFound(_) => {
            ("FAILED", e.status_message(), "SOURCE_NOT_FOUND")
        }
        coffer_engine::Error::PermissionDenied(_) => {
            ("FAILED", e.status_message(), "ACCESS_DENIED")
        }
        _ => ("FAILED", e.status_message(), "FAILED"),
    }
}

pub(crate) async fn run(coffer: &Coffer, job: JobRecord, control: &JobControl) {
    if let Err(e) = run_inner(coffer, &job, control).await {
        finish(
            coffer,
            &job,
            "FAILED",
            Some(e.0.message().to_string()),
            "FAILED",
        )
        .await;
    }
}

async fn run_inner(coffer: &Coffer, job: &JobRecord, control: &JobControl) -> Result<()> {
    let Some(resource) = coffer.inventory().get(&job.resource_arn) else {
        finish(
            coffer,
            job,
            "FAILED",
            Some(format!(
                "Resource {} is no longer in Coffer's inventory.",
                job.resource_arn
            )),
            "RESOURCE_NOT_FOUND",
        )
        .await;
        return Ok(());
    };
    let vault = match vaults::get(coffer, &job.account, &job.region, &job.vault_name).await {
        Ok(v) => v,
        Err(_) => {
            finish(
                coffer,
                job,
                "FAILED",
                Some(format!(
                    "Backup vault '{}' no longer exists.",
                    job.vault_name
                )),
                "VAULT_NOT_FOUND",
            )
            .await;
            return Ok(());
        }
    };
    let repo = storage::repo_for(coffer, &vault, None).await?;
    let parent = recovery_points::latest_for_resource(
        coffer,
        &job.account,
        &job.region,
        &vault.name,
        &job.resource_arn,
    )
    .await?
    .filter(|p| p.vault_uid == vault.uid)
    .map(|p| p.snapshot);
    let source = match resource.kind {
        SourceKind::Directory => SourceSpec::Directory(resource.source.clone()),
        SourceKind::Stream => SourceSpec::Stream(resource.source.clone()),
    };
    let rp_id = job.recovery_point_id.clone().unwrap_or_default();
    let outcome = repo
        .backup_async(
            source,
            rp_id.clone(),
            parent,
            vec![format!("resource:{}", job.resource_arn)],
            control.observer(),
            control.cancel.clone(),
        )
        .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            let (state, message, category) = engine_end(control, &e);
            tracing::info!(job = %job.id, error = %e, "backup job ended without a recovery point");
            finish(coffer, job, state, Some(message), category).await;
            return Ok(());
        }
    };
    let now = coffer.clock().now();
    let rp = RecoveryPointRecord {
        id: rp_id,
        arn: job.recovery_point_arn.clone().unwrap_or_default(),
        account: job.account.clone(),
        region: job.region.clone(),
        vault_name: vault.name.clone(),
        vault_arn: vault.arn.clone(),
        vault_uid: vault.uid.clone(),
        snapshot: outcome.snapshot.clone(),
        resource_arn: job.resource_arn.clone(),
        resource_type: job.resource_type.clone(),
        resource_name: job.resource_name.clone(),
        creation_date: job.creation_date,
        initiation_date: job.started_at,
        completion_date: now,
        backup_size: outcome.total_bytes as i64,
        iam_role_arn: job.iam_role_arn.clone(),
        lifecycle: job.lifecycle.clone(),
        created_by: job.created_by.clone(),
        source_vault_arn: None,
        encryption_key_arn: vault.encryption_key_arn.clone(),
        status: "COMPLETED".into(),
        storage_class: "WARM".into(),
        last_restore_time: None,
        source_path: Some(resource.source.display().to_string()),
    };
    let (message, category) = if outcome.warnings.is_empty() {
        (None, "SUCCESS")
    } else {
        let shown: Vec<&str> = outcome
            .warnings
            .iter()
            .take(3)
            .map(String::as_str)
            .collect();
        (
            Some(format!(
                "Completed with {} issue(s): {}",
                outcome.warnings.len(),
                shown.join("; ")
            )),
            "COMPLETED_WITH_ISSUES",
        )
    };
    let key = job.key();
    let rp_tags = job.recovery_point_tags.clone();
    let bytes_added = outcome.bytes_added as i64;
    let committed = coffer
        .store()
        .write(move |tx| -> Result<()> {
            let Some(mut j) = load_job(tx, JobKind::Backup, &key)? else {
                return Ok(());
            };
            if j.is_terminal() {
                return Ok(());
            }
            recovery_points::insert(tx, &rp, &rp_tags)?;
            // A plan's backup: its rule's copy actions start now, in this same transaction,
            // so a crash can never leave a completed backup without its copies.
            for action in &j.copy_actions {
                let spec = CopyJobSpec {
                    source_vault_name: rp.vault_name.clone(),
                    source_vault_arn: rp.vault_arn.clone(),
                    source_vault_uid: rp.vault_uid.clone(),
                    source: rp.clone(),
                    destination_vault_arn: action.destination_backup_vault_arn.clone(),
                    lifecycle: action.lifecycle.clone(),
                    iam_role_arn: j.iam_role_arn.clone().unwrap_or_default(),
                    idempotency_token: None,
                    created_by: j.created_by.clone(),
                    created_by_backup_job_id: Some(j.id.clone()),
                    creation_date: now,
                };
                match check_destination(tx, &spec)? {
                    Ok(dest) => create_copy_job(tx, spec, Ok(&dest))?,
                    Err(e) => create_copy_job(
                        tx,
                        spec,
                        Err(format!(
                            "The backup rule's copy action could not start: {}",
                            e.0.message()
                        )),
                    )?,
                };
            }
            j.state = "COMPLETED".into();
            j.percent_done = 100.0;
            j.backup_size = rp.backup_size;
            j.bytes_transferred = bytes_added;
            j.completion_date = Some(now);
            j.status_message = match message {
                None if j.attempts > 1 => Some(format!(
                    "Completed on attempt {} after Coffer was interrupted during an earlier attempt.",
                    j.attempts
                )),
                m => m,
            };
            j.message_category = Some(category.into());
            j.lease_owner = None;
            j.lease_until = None;
            save_job(tx, &j)?;
            Ok(())
        })
        .await;
    if let Err(e) = committed {
        // The snapshot exists but is not recorded: remove it so the vault holds only what the
        // metadata knows about, and fail the job with the reason.
        let _ = repo
            .delete_async(SnapshotRef(outcome.snapshot.0.clone()))
            .await;
        finish(
            coffer,
            job,
            "FAILED",
            Some(e.0.message().to_string()),
            "FAILED",
        )
        .await;
    }
    Ok(())
}
