//! The backup job operations: StartBackupJob, DescribeBackupJob, ListBackupJobs and
//! StopBackupJob. Running a backup job is the data plane's (`dataplane::backup`).

use chrono::Duration;
use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};

use super::{Bounds, JobFilter, list_jobs};
use crate::dataplane::Executor;
use crate::model::error::Result;
use crate::model::jobs::{
    BackupJobSpec, JobKind, JobRecord, create_backup_job, get_job, job_key, load_job, save_job,
};
use crate::model::lifecycle;
use crate::model::plan_rules::{
    DEFAULT_COMPLETION_WINDOW_MINUTES, DEFAULT_START_WINDOW_MINUTES, MIN_START_WINDOW_MINUTES,
};
use crate::model::states::{FromWire, JobState};
use crate::model::{Meta, tags, vaults};

/// Checks the windows, lifecycle, options and tags of a StartBackupJob request; returns the
/// start and completion windows in minutes (defaults filled in).
fn check_options(input: &StartBackupJobInput, resource_type: &str) -> Result<(i64, i64)> {
    let start_window = input
        .start_window_minutes
        .unwrap_or(DEFAULT_START_WINDOW_MINUTES);
    let complete_window = input
        .complete_window_minutes
        .unwrap_or(DEFAULT_COMPLETION_WINDOW_MINUTES);
    if start_window < MIN_START_WINDOW_MINUTES {
        return Err(ApiError::invalid_parameter("StartWindowMinutes must be at least 60.").into());
    }
    if complete_window < 1 {
        return Err(
            ApiError::invalid_parameter("CompleteWindowMinutes must be at least 1.").into(),
        );
    }
    if let Some(l) = &input.lifecycle {
        lifecycle::check_given(l)?;
    }
    if let Some(opts) = &input.backup_options
        && let Some((k, _)) = opts.iter().next()
    {
        return Err(ApiError::invalid_parameter(format!(
                "BackupOptions '{k}' does not apply to {} resources; Coffer's EFS and EBS resources take no backup options.",
                resource_type
            ))
            .into());
    }
    tags::check_initial(
        input
            .recovery_point_tags
            .as_ref()
            .unwrap_or(&Default::default()),
    )?;
    Ok((start_window, complete_window))
}

pub(crate) async fn start_backup_job(
    plane: &Executor,
    ctx: &RequestContext,
    input: StartBackupJobInput,
) -> Result<StartBackupJobOutput> {
    let vault = vaults::get(
        plane,
        &ctx.account_id,
        &ctx.region,
        &input.backup_vault_name,
    )
    .await?;
    if vault.air_gapped {
        return Err(ApiError::invalid_request(format!(
            "Backup vault '{}' is a logically air-gapped backup vault: StartBackupJob cannot write into it. Back up into a backup vault and copy the recovery point into it (StartCopyJob, or a rule's copy action).",
            vault.name
        ))
        .into());
    }
    let resource = plane.inventory().get(&input.resource_arn).ok_or_else(|| {
        ApiError::invalid_parameter(crate::model::inventory::not_in_inventory(
            &input.resource_arn,
        ))
    })?;
    if resource.account != ctx.account_id || resource.region != ctx.region {
        return Err(ApiError::invalid_parameter(format!(
            "Resource {} belongs to account {} in {}, not to this account and region.",
            resource.arn, resource.account, resource.region
        ))
        .into());
    }
    let (start_window, complete_window) = check_options(&input, &resource.resource_type)?;
    if input.index == Some(Index::Enabled) {
        crate::model::indexes::check_indexable(&resource.resource_type)?;
    }
    let now = plane.clock().now();
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
        index_resource_types: match input.index {
            Some(Index::Enabled) => vec![resource.resource_type.clone()],
            _ => Vec::new(),
        },
        // AWS makes continuous backups only through a plan's rule, never on demand.
        continuous: false,
        expired_message: None,
    };
    let stored = plane
        .store()
        .write(move |tx| create_backup_job(tx, spec))
        .await?;
    plane.running().wake();
    Ok(StartBackupJobOutput {
        backup_job_id: Some(stored.id.clone()),
        creation_date: Some(Timestamp(stored.creation_date)),
        is_parent: Some(false),
        recovery_point_arn: stored.recovery_point_arn.clone(),
    })
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
        state: Some(j.state.into()),
        status_message: j.status_message.clone(),
        vault_type: Some("BACKUP_VAULT".into()),
        ..Default::default()
    }
}

pub(crate) async fn describe_backup_job(
    meta: &Meta,
    ctx: &RequestContext,
    input: DescribeBackupJobInput,
) -> Result<DescribeBackupJobOutput> {
    let j = get_job(meta, ctx, JobKind::Backup, &input.backup_job_id).await?;
    Ok(describe_output(&j))
}

fn list_member(j: &JobRecord) -> BackupJob {
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
}

pub(crate) async fn list_backup_jobs(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListBackupJobsInput,
) -> Result<ListBackupJobsOutput> {
    let filter = JobFilter {
        account: input.by_account_id.clone(),
        resource_arn: input.by_resource_arn.clone(),
        state: input.by_state.as_ref().map(JobState::from_wire),
        vault_name: input.by_backup_vault_name.clone(),
        resource_type: input.by_resource_type.clone(),
        matches_nothing: input.by_parent_job_id.is_some(),
        message_category: input.by_message_category.clone(),
        created: Bounds {
            after: input.by_created_after,
            before: input.by_created_before,
        },
        completed: Bounds {
            after: input.by_complete_after,
            before: input.by_complete_before,
        },
        ..Default::default()
    };
    let (backup_jobs, next_token) = list_jobs(
        meta,
        ctx,
        JobKind::Backup,
        &filter,
        input.next_token.as_deref(),
        input.max_results,
        list_member,
    )
    .await?;
    Ok(ListBackupJobsOutput {
        backup_jobs: Some(backup_jobs),
        next_token,
    })
}

pub(crate) async fn stop_backup_job(
    plane: &Executor,
    ctx: &RequestContext,
    input: StopBackupJobInput,
) -> Result<()> {
    let key = job_key(&ctx.account_id, &ctx.region, &input.backup_job_id);
    let id = input.backup_job_id.clone();
    let now = plane.clock().now();
    let k = key.clone();
    let running = plane
        .store()
        .write(move |tx| -> Result<bool> {
            let Some(mut j) = load_job(tx, JobKind::Backup, &k)? else {
                return Err(ApiError::not_found(format!(
                    "Backup job {id} does not exist in this account and region."
                ))
                .into());
            };
            match j.state {
                JobState::Created | JobState::Pending => {
                    j.state = JobState::Aborted;
                    j.status_message = Some(
                        "The job was stopped by a StopBackupJob request before it started.".into(),
                    );
                    j.completion_date = Some(now);
                    save_job(tx, &j)?;
                    Ok(false)
                }
                JobState::Running => {
                    j.state = JobState::Aborting;
                    save_job(tx, &j)?;
                    Ok(true)
                }
                JobState::Aborting => Ok(true),
                other => Err(ApiError::invalid_request(format!(
                    "Backup job {id} is {other} and can no longer be stopped."
                ))
                .into()),
            }
        })
        .await?;
    if running {
        plane
            .running()
            .cancel(&key, "The job was stopped by a StopBackupJob request.");
    }
    Ok(())
}
