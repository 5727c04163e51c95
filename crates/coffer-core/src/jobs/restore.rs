//! Restore jobs: StartRestoreJob, DescribeRestoreJob, ListRestoreJobs,
//! ListRestoreJobsByProtectedResource, GetRestoreJobMetadata, PutRestoreValidationResult,
//! GetRecoveryPointRestoreMetadata, and running one.
//!
//! Restore metadata keys (all values are strings):
//! - `targetPath`: absolute directory on the Coffer host to restore into (a new location).
//!   Required unless `inPlace` is `true`.
//! - `inPlace`: `true` restores into the resource's own source, overwriting what differs. Only
//!   when explicitly asked.
//! - `overwrite`: `true` allows a non-empty `targetPath` (files that differ are replaced, others
//!   kept). Without it a non-empty target is refused.
//! - `ItemsToRestore`: a JSON array of paths inside the recovery point, relative to the backed-up
//!   source (`["docs/a.txt", "photos"]`; a leading `/` is allowed), for item-level restore.
//!
//! Other keys (such as those AWS's restore metadata carries) are kept and ignored.

use std::collections::BTreeMap;
use std::path::PathBuf;

use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};
use coffer_engine::RestoreOptions;

use super::backup::{engine_end, finish};
use super::runner::JobControl;
use super::{
    JobKind, JobRecord, all_jobs, enqueue, get_job, job_key, load_job, new_job_id, page, save_job,
    within,
};
use crate::error::Result;
use crate::recovery_points;
use crate::{Coffer, storage, vaults};

struct RestorePlan {
    target: PathBuf,
    options: RestoreOptions,
    in_place: bool,
}

fn flag(metadata: &BTreeMap<String, String>, key: &str) -> Result<bool> {
    match metadata.get(key).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" || v.is_empty() => Ok(false),
        Some(v) => Err(ApiError::invalid_parameter(format!(
            "Restore metadata '{key}' must be \"true\" or \"false\", not \"{v}\"."
        ))
        .into()),
    }
}

fn plan(metadata: &BTreeMap<String, String>, source_path: Option<&str>) -> Result<RestorePlan> {
    let in_place = flag(metadata, "inPlace")?;
    let overwrite = flag(metadata, "overwrite")?;
    let target = match (
        in_place,
        metadata.get("targetPath").filter(|t| !t.is_empty()),
    ) {
        (true, Some(_)) => {
            return Err(ApiError::invalid_parameter(
                "Give either targetPath or inPlace=true in the restore metadata, not both.",
            )
            .into());
        }
        (true, None) => PathBuf::from(source_path.ok_or_else(|| {
            ApiError::invalid_parameter(
                "This recovery point does not record its source path; restore it to a targetPath.",
            )
        })?),
        (false, Some(t)) => PathBuf::from(t),
        (false, None) => {
            return Err(ApiError::invalid_parameter(
                "Restore metadata must name a targetPath (an absolute directory on the Coffer host), or set inPlace=true to restore over the resource itself.",
            )
            .into());
        }
    };
    if !target.is_absolute() {
        return Err(ApiError::invalid_parameter(format!(
            "targetPath '{}' must be an absolute path.",
            target.display()
        ))
        .into());
    }
    let mut paths = Vec::new();
    if let Some(items) = metadata
        .get("ItemsToRestore")
        .filter(|s| !s.trim().is_empty())
    {
        let list: Vec<String> = serde_json::from_str(items).map_err(|_| {
            ApiError::invalid_parameter(format!(
                "ItemsToRestore must be a JSON array of paths, e.g. [\"docs/a.txt\"]; got {items}"
            ))
        })?;
        for item in list {
            let rel = item.trim_start_matches('/');
            if rel.is_empty() || rel.split('/').any(|c| c == "..") {
                return Err(ApiError::invalid_parameter(format!(
                    "ItemsToRestore entry '{item}' must be a path inside the recovery point."
                ))
                .into());
            }
            paths.push(PathBuf::from(rel));
        }
    }
    Ok(RestorePlan {
        target,
        options: RestoreOptions {
            paths,
            overwrite: overwrite || in_place,
            ..Default::default()
        },
        in_place,
    })
}

pub(crate) async fn start_restore_job(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: StartRestoreJobInput,
) -> Result<StartRestoreJobOutput> {
    let (a, r, rp_arn) = (
        ctx.account_id.clone(),
        ctx.region.clone(),
        input.recovery_point_arn.clone(),
    );
    let rp = coffer
        .store()
        .read(move |tx| recovery_points::find(tx, &a, &r, &rp_arn))
        .await?;
    if let Some(t) = &input.resource_type
        && t != &rp.resource_type
    {
        return Err(ApiError::invalid_parameter(format!(
            "ResourceType {t} does not match the recovery point's type {}.",
            rp.resource_type
        ))
        .into());
    }
    plan(&input.metadata, rp.source_path.as_deref())?;
    let now = coffer.clock().now();
    let job = JobRecord {
        id: new_job_id(),
        kind: JobKind::Restore,
        account: ctx.account_id.clone(),
        region: ctx.region.clone(),
        state: "PENDING".into(),
        status_message: None,
        message_category: None,
        creation_date: now,
        start_by: None,
        complete_by: None,
        started_at: None,
        completion_date: None,
        percent_done: 0.0,
        bytes_transferred: 0,
        backup_size: rp.backup_size,
        iam_role_arn: input.iam_role_arn.clone(),
        idempotency_token: input.idempotency_token.clone(),
        resource_arn: rp.resource_arn.clone(),
        resource_type: rp.resource_type.clone(),
        resource_name: rp.resource_name.clone(),
        vault_name: rp.vault_name.clone(),
        vault_arn: rp.vault_arn.clone(),
        recovery_point_id: Some(rp.id.clone()),
        recovery_point_arn: Some(rp.arn.clone()),
        recovery_point_creation_date: Some(rp.creation_date),
        dest_vault_arn: None,
        dest_recovery_point_arn: None,
        lifecycle: None,
        recovery_point_tags: Default::default(),
        backup_options: Default::default(),
        created_by: None,
        created_by_backup_job_id: None,
        copy_actions: Vec::new(),
        metadata: input.metadata.clone(),
        created_resource_arn: None,
        validation_status: None,
        validation_status_message: None,
        attempts: 0,
        lease_owner: None,
        lease_until: None,
    };
    let stored = coffer.store().write(move |tx| enqueue(tx, &job)).await?;
    coffer.runner().wake();
    Ok(StartRestoreJobOutput {
        restore_job_id: Some(stored.id.clone()),
    })
}

fn describe_output(j: &JobRecord) -> DescribeRestoreJobOutput {
    DescribeRestoreJobOutput {
        account_id: Some(j.account.clone()),
        backup_size_in_bytes: Some(j.backup_size),
        backup_vault_arn: Some(j.vault_arn.clone()),
        completion_date: j.completion_date.map(Timestamp),
        created_resource_arn: j.created_resource_arn.clone(),
        creation_date: Some(Timestamp(j.creation_date)),
        iam_role_arn: j.iam_role_arn.clone(),
        is_parent: Some(false),
        percent_done: Some(format!("{:.1}", j.percent_done)),
        recovery_point_arn: j.recovery_point_arn.clone(),
        recovery_point_creation_date: j.recovery_point_creation_date.map(Timestamp),
        resource_type: Some(j.resource_type.clone()),
        restore_job_id: Some(j.id.clone()),
        source_resource_arn: Some(j.resource_arn.clone()),
        status: Some(j.state.clone()),
        status_message: j.status_message.clone(),
        validation_status: j.validation_status.clone(),
        validation_status_message: j.validation_status_message.clone(),
        ..Default::default()
    }
}

fn list_member(j: &JobRecord) -> RestoreJobsListMember {
    let d = describe_output(j);
    RestoreJobsListMember {
        account_id: d.account_id,
        backup_size_in_bytes: d.backup_size_in_bytes,
        backup_vault_arn: d.backup_vault_arn,
        completion_date: d.completion_date,
        created_resource_arn: d.created_resource_arn,
        creation_date: d.creation_date,
        iam_role_arn: d.iam_role_arn,
        is_parent: d.is_parent,
        percent_done: d.percent_done,
        recovery_point_arn: d.recovery_point_arn,
        recovery_point_creation_date: d.recovery_point_creation_date,
        resource_type: d.resource_type,
        restore_job_id: d.restore_job_id,
        source_resource_arn: d.source_resource_arn,
        status: d.status,
        status_message: d.status_message,
        validation_status: d.validation_status,
        validation_status_message: d.validation_status_message,
        ..Default::default()
    }
}

pub(crate) async fn describe_restore_job(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: DescribeRestoreJobInput,
) -> Result<DescribeRestoreJobOutput> {
    let j = get_job(coffer, ctx, JobKind::Restore, &input.restore_job_id).await?;
    Ok(describe_output(&j))
}

pub(crate) async fn get_restore_job_metadata(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: GetRestoreJobMetadataInput,
) -> Result<GetRestoreJobMetadataOutput> {
    let j = get_job(coffer, ctx, JobKind::Restore, &input.restore_job_id).await?;
    Ok(GetRestoreJobMetadataOutput {
        metadata: Some(j.metadata.clone()),
        restore_job_id: Some(j.id.clone()),
    })
}

pub(crate) async fn list_restore_jobs(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: ListRestoreJobsInput,
) -> Result<ListRestoreJobsOutput> {
    if let Some(a) = &input.by_account_id
        && a != &ctx.account_id
        && a != "*"
    {
        return Ok(ListRestoreJobsOutput {
            restore_jobs: Some(Vec::new()),
            next_token: None,
        });
    }
    let jobs: Vec<JobRecord> = all_jobs(coffer, &ctx.account_id, &ctx.region, JobKind::Restore)
        .await?
        .into_iter()
        .filter(|j| {
            input.by_status.as_ref().is_none_or(|x| x == &j.state)
                && input
                    .by_resource_type
                    .as_ref()
                    .is_none_or(|x| x == &j.resource_type)
                && input.by_parent_job_id.is_none()
                && input.by_restore_testing_plan_arn.is_none()
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
    Ok(ListRestoreJobsOutput {
        restore_jobs: Some(page.iter().map(list_member).collect()),
        next_token: next,
    })
}

pub(crate) async fn list_restore_jobs_by_protected_resource(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: ListRestoreJobsByProtectedResourceInput,
) -> Result<ListRestoreJobsByProtectedResourceOutput> {
    let jobs: Vec<JobRecord> = all_jobs(coffer, &ctx.account_id, &ctx.region, JobKind::Restore)
        .await?
        .into_iter()
        .filter(|j| {
            j.resource_arn == input.resource_arn
                && input.by_status.as_ref().is_none_or(|x| x == &j.state)
                && within(
                    j.recovery_point_creation_date,
                    input.by_recovery_point_creation_date_after.as_ref(),
                    input.by_recovery_point_creation_date_before.as_ref(),
                )
        })
        .collect();
    let (page, next) = page(
        jobs,
        |j| j.id.clone(),
        input.next_token.as_deref(),
        input.max_results,
    )?;
    Ok(ListRestoreJobsByProtectedResourceOutput {
        restore_jobs: Some(page.iter().map(list_member).collect()),
        next_token: next,
    })
}

pub(crate) async fn put_restore_validation_result(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: PutRestoreValidationResultInput,
) -> Result<()> {
    let key = job_key(&ctx.account_id, &ctx.region, &input.restore_job_id);
    let id = input.restore_job_id.clone();
    coffer
        .store()
        .write(move |tx| -> Result<()> {
            let Some(mut j) = load_job(tx, JobKind::Restore, &key)? else {
                return Err(ApiError::not_found(format!("Restore job {id} does not exist in this account and region.")).into());
            };
            if j.state != "COMPLETED" {
                return Err(ApiError::invalid_request(format!("Restore job {id} is {}; a validation result is accepted once it has completed.", j.state)).into());
            }
            j.validation_status = Some(input.validation_status);
            j.validation_status_message = input.validation_status_message;
            save_job(tx, &j)
        })
        .await
}

pub(crate) async fn get_recovery_point_restore_metadata(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: GetRecoveryPointRestoreMetadataInput,
) -> Result<GetRecoveryPointRestoreMetadataOutput> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    vaults::get(coffer, &a, &r, &input.backup_vault_name).await?;
    let rp = coffer
        .store()
        .read(move |tx| {
            recovery_points::find_in_vault(
                tx,
                &a,
                &r,
                &input.backup_vault_name,
                &input.recovery_point_arn,
            )
        })
        .await?;
    let mut metadata = BTreeMap::new();
    metadata.insert("targetPath".to_string(), String::new());
    metadata.insert("inPlace".to_string(), "false".to_string());
    metadata.insert("overwrite".to_string(), "false".to_string());
    metadata.insert("ItemsToRestore".to_string(), "[]".to_string());
    if let Some(p) = &rp.source_path {
        metadata.insert("sourcePath".to_string(), p.clone());
    }
    Ok(GetRecoveryPointRestoreMetadataOutput {
        backup_vault_arn: Some(rp.vault_arn.clone()),
        recovery_point_arn: Some(rp.arn.clone()),
        resource_type: Some(rp.resource_type.clone()),
        restore_metadata: Some(metadata),
    })
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
    let (a, r, rp_arn) = (
        job.account.clone(),
        job.region.clone(),
        job.recovery_point_arn.clone().unwrap_or_default(),
    );
    let rp = coffer
        .store()
        .read(move |tx| recovery_points::find(tx, &a, &r, &rp_arn))
        .await?;
    let vault = vaults::get(coffer, &rp.account, &rp.region, &rp.vault_name).await?;
    let plan = plan(&job.metadata, rp.source_path.as_deref())?;
    let repo = storage::repo_for(coffer, &vault, None).await?;
    // Named by the job, so a run after a crash finishes this job's partial files in a target
    // that was empty when it began, instead of refusing it as not empty.
    let options = RestoreOptions {
        resume_id: Some(job.id.clone()),
        ..plan.options.clone()
    };
    let outcome = repo
        .restore_async(
            rp.snapshot.clone(),
            plan.target.clone(),
            options,
            control.observer(),
            control.cancel.clone(),
        )
        .await;
    if let Err(e) = outcome {
        let (state, message, category) = engine_end(control, &e);
        finish(coffer, job, state, Some(message), category).await;
        return Ok(());
    }
    let now = coffer.clock().now();
    let key = job.key();
    let rp_key = rp.key();
    let created = if plan.in_place {
        Some(job.resource_arn.clone())
    } else {
        None
    };
    coffer
        .store()
        .write(move |tx| -> Result<()> {
            if let Some(v) = tx.get(recovery_points::TABLE, &rp_key)? {
                let mut point: recovery_points::RecoveryPointRecord = serde_json::from_slice(&v)?;
                point.last_restore_time = Some(now);
                tx.put(
                    recovery_points::TABLE,
                    &rp_key,
                    &serde_json::to_vec(&point)?,
                )?;
            }
            let Some(mut j) = load_job(tx, JobKind::Restore, &key)? else {
                return Ok(());
            };
            if j.is_terminal() {
                return Ok(());
            }
            j.state = "COMPLETED".into();
            j.percent_done = 100.0;
            j.completion_date = Some(now);
            j.created_resource_arn = created;
            j.message_category = Some("SUCCESS".into());
            j.lease_owner = None;
            j.lease_until = None;
            save_job(tx, &j)
        })
        .await?;
    release_claim(&plan.target, &job.id);
    Ok(())
}

/// The restore is recorded as done: remove the claim the engine left in its target.
fn release_claim(target: &std::path::Path, job_id: &str) {
    if let Err(e) = coffer_engine::release_restore_claim(target, job_id) {
        tracing::warn!(target = %target.display(), error = %e, "cannot remove the restore claim");
    }
}
