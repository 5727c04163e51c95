//! Restore jobs: StartRestoreJob, DescribeRestoreJob, ListRestoreJobs,
//! ListRestoreJobsByProtectedResource, GetRestoreJobMetadata, PutRestoreValidationResult,
//! GetRecoveryPointRestoreMetadata. Running a restore job is the data plane's
//! (`dataplane::restore`); what the metadata means is `model::restore`.
//!
//! Restore metadata keys (all values are strings):
//! - `targetPath`: absolute directory on the Coffer host to restore into (a new location).
//!   Required unless `inPlace` is `true`.
//! - `inPlace`: `true` restores into the resource's own source, overwriting what differs. Only
//!   when explicitly asked.
//! - `overwrite`: `true` allows a non-empty `targetPath` (files that differ are replaced, others
//!   kept). Without it a non-empty target is refused: at StartRestoreJob when it is already
//!   non-empty then (InvalidParameterValueException naming `overwrite=true`), by the run when
//!   it filled up in between.
//! - `ItemsToRestore`: a JSON array of paths inside the recovery point, relative to the backed-up
//!   source (`["docs/a.txt", "photos"]`; a leading `/` is allowed), for item-level restore.
//!
//! For an RDS recovery point (a PostgreSQL database) the restore creates a new database on the
//! resource's server instead, named by `DBName` (or, without it, `DBInstanceIdentifier`); see
//! `model::restore::database_name`.
//!
//! Other keys (such as those AWS's restore metadata carries) are kept and ignored.

use std::collections::BTreeMap;

use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};

use super::{Bounds, JobFilter, list_jobs};
use crate::dataplane::Executor;
use crate::model::error::Result;
use crate::model::jobs::{
    JobKind, JobRecord, by_token, enqueue, get_job, job_key, load_job, save_job,
};
use crate::model::restore::*;
use crate::model::restore_bucket::{
    BUCKET_TYPE, bucket_of_arn, bucket_plan, bucket_restore_metadata,
};
use crate::model::states::{FromWire, JobState};
use crate::model::{Meta, recovery_points, restore_access, vaults};

pub(crate) async fn start_restore_job(
    plane: &Executor,
    ctx: &RequestContext,
    input: StartRestoreJobInput,
) -> Result<StartRestoreJobOutput> {
    let (a, r, rp_arn) = (
        ctx.account_id.clone(),
        ctx.region.clone(),
        input.recovery_point_arn.clone(),
    );
    let now = plane.clock().now();
    // Another account's point is restored only through an approved restore access vault or
    // a policy sharing its air-gapped vault (model::restore_access).
    let rp = plane
        .store()
        .read(move |tx| restore_access::find_restorable(tx, &a, &r, &rp_arn, now))
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
    if rp.resource_type == BUCKET_TYPE {
        bucket_plan(&input.metadata, bucket_of_arn(&rp.resource_arn))?;
    } else if rp.resource_type == "RDS" {
        database_name(&input.metadata)?;
        point_in_time(&input.metadata, rp.continuous.as_ref())?;
    } else {
        let target = plan(&input.metadata, rp.source_path.as_deref())?;
        if !already_started(plane, ctx, input.idempotency_token.as_deref()).await? {
            refuse_occupied_target(&target)?;
        }
    }
    let now = plane.clock().now();
    let job = JobRecord {
        backup_size: rp.backup_size,
        iam_role_arn: input.iam_role_arn.clone(),
        idempotency_token: input.idempotency_token.clone(),
        resource_name: rp.resource_name.clone(),
        vault_name: rp.vault_name.clone(),
        vault_arn: rp.vault_arn.clone(),
        recovery_point_id: Some(rp.id.clone()),
        recovery_point_arn: Some(rp.arn.clone()),
        recovery_point_creation_date: Some(rp.creation_date),
        metadata: input.metadata.clone(),
        ..JobRecord::new(
            JobKind::Restore,
            &ctx.account_id,
            &ctx.region,
            now,
            rp.resource_arn.clone(),
            rp.resource_type.clone(),
        )
    };
    let stored = plane.store().write(move |tx| enqueue(tx, &job)).await?;
    plane.running().wake();
    Ok(StartRestoreJobOutput {
        restore_job_id: Some(stored.id.clone()),
    })
}

/// Whether a StartRestoreJob with this idempotency token already made its job (the retry
/// gets that job, whatever its target holds now).
async fn already_started(
    plane: &Executor,
    ctx: &RequestContext,
    token: Option<&str>,
) -> Result<bool> {
    let Some(token) = token.map(str::to_string) else {
        return Ok(false);
    };
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let found = plane
        .store()
        .read(move |tx| by_token(tx, JobKind::Restore, &a, &r, &token))
        .await?;
    Ok(found.is_some())
}

fn describe_output(j: &JobRecord) -> DescribeRestoreJobOutput {
    DescribeRestoreJobOutput {
        account_id: Some(j.account.clone()),
        backup_size_in_bytes: Some(j.backup_size),
        backup_vault_arn: Some(j.vault_arn.clone()),
        completion_date: j.completion_date.map(Timestamp),
        created_by: j
            .restore_testing_plan_arn
            .as_ref()
            .map(|arn| RestoreJobCreator {
                restore_testing_plan_arn: Some(arn.clone()),
            }),
        created_resource_arn: j.created_resource_arn.clone(),
        creation_date: Some(Timestamp(j.creation_date)),
        deletion_status: j.deletion_status.clone(),
        deletion_status_message: j.deletion_status_message.clone(),
        iam_role_arn: j.iam_role_arn.clone(),
        is_parent: Some(false),
        percent_done: Some(format!("{:.1}", j.percent_done)),
        recovery_point_arn: j.recovery_point_arn.clone(),
        recovery_point_creation_date: j.recovery_point_creation_date.map(Timestamp),
        resource_type: Some(j.resource_type.clone()),
        restore_job_id: Some(j.id.clone()),
        source_resource_arn: Some(j.resource_arn.clone()),
        status: Some(j.state.into()),
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
        created_by: d.created_by,
        created_resource_arn: d.created_resource_arn,
        creation_date: d.creation_date,
        deletion_status: d.deletion_status,
        deletion_status_message: d.deletion_status_message,
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
    meta: &Meta,
    ctx: &RequestContext,
    input: DescribeRestoreJobInput,
) -> Result<DescribeRestoreJobOutput> {
    let j = get_job(meta, ctx, JobKind::Restore, &input.restore_job_id).await?;
    Ok(describe_output(&j))
}

pub(crate) async fn get_restore_job_metadata(
    meta: &Meta,
    ctx: &RequestContext,
    input: GetRestoreJobMetadataInput,
) -> Result<GetRestoreJobMetadataOutput> {
    let j = get_job(meta, ctx, JobKind::Restore, &input.restore_job_id).await?;
    Ok(GetRestoreJobMetadataOutput {
        metadata: Some(j.metadata.clone()),
        restore_job_id: Some(j.id.clone()),
    })
}

pub(crate) async fn list_restore_jobs(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListRestoreJobsInput,
) -> Result<ListRestoreJobsOutput> {
    let filter = JobFilter {
        account: input.by_account_id.clone(),
        state: input.by_status.as_ref().map(JobState::from_wire),
        resource_type: input.by_resource_type.clone(),
        matches_nothing: input.by_parent_job_id.is_some(),
        restore_testing_plan_arn: input.by_restore_testing_plan_arn.clone(),
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
    let (restore_jobs, next_token) = list_jobs(
        meta,
        ctx,
        JobKind::Restore,
        &filter,
        input.next_token.as_deref(),
        input.max_results,
        list_member,
    )
    .await?;
    Ok(ListRestoreJobsOutput {
        restore_jobs: Some(restore_jobs),
        next_token,
    })
}

pub(crate) async fn list_restore_jobs_by_protected_resource(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListRestoreJobsByProtectedResourceInput,
) -> Result<ListRestoreJobsByProtectedResourceOutput> {
    let filter = JobFilter {
        resource_arn: Some(input.resource_arn.clone()),
        state: input.by_status.as_ref().map(JobState::from_wire),
        recovery_point_created: Bounds {
            after: input.by_recovery_point_creation_date_after,
            before: input.by_recovery_point_creation_date_before,
        },
        ..Default::default()
    };
    let (restore_jobs, next_token) = list_jobs(
        meta,
        ctx,
        JobKind::Restore,
        &filter,
        input.next_token.as_deref(),
        input.max_results,
        list_member,
    )
    .await?;
    Ok(ListRestoreJobsByProtectedResourceOutput {
        restore_jobs: Some(restore_jobs),
        next_token,
    })
}

pub(crate) async fn put_restore_validation_result(
    meta: &Meta,
    ctx: &RequestContext,
    input: PutRestoreValidationResultInput,
) -> Result<()> {
    let key = job_key(&ctx.account_id, &ctx.region, &input.restore_job_id);
    let id = input.restore_job_id.clone();
    meta
        .store()
        .write(move |tx| -> Result<()> {
            let Some(mut j) = load_job(tx, JobKind::Restore, &key)? else {
                return Err(ApiError::not_found(format!("Restore job {id} does not exist in this account and region.")).into());
            };
            if j.state != JobState::Completed {
                return Err(ApiError::invalid_request(format!("Restore job {id} is {}; a validation result is accepted once it has completed.", j.state)).into());
            }
            if j.restore_testing_plan_arn.is_some() && j.deletion_status.is_some() {
                return Err(ApiError::invalid_request(format!("Restore job {id} is a restore test whose validation window has closed (its restored data is deleted); a validation result is accepted only while the window is open.")).into());
            }
            j.validation_status = Some(input.validation_status);
            j.validation_status_message = input.validation_status_message;
            save_job(tx, &j)
        })
        .await
}

pub(crate) async fn get_recovery_point_restore_metadata(
    meta: &Meta,
    ctx: &RequestContext,
    input: GetRecoveryPointRestoreMetadataInput,
) -> Result<GetRecoveryPointRestoreMetadataOutput> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    vaults::get(meta, &a, &r, &input.backup_vault_name).await?;
    let rp = meta
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
    if rp.resource_type == BUCKET_TYPE {
        return Ok(GetRecoveryPointRestoreMetadataOutput {
            backup_vault_arn: Some(rp.vault_arn.clone()),
            recovery_point_arn: Some(rp.arn.clone()),
            resource_type: Some(rp.resource_type.clone()),
            restore_metadata: Some(bucket_restore_metadata(bucket_of_arn(&rp.resource_arn))),
        });
    }
    let mut metadata = BTreeMap::new();
    if rp.resource_type == "RDS" {
        // A database is restored into a new database that DBName names.
        metadata.insert("DBName".to_string(), String::new());
        metadata.insert("Engine".to_string(), "postgres".to_string());
        if let Some(c) = &rp.continuous {
            // A continuous point restores to a moment of its range: RDS's keys, and the range
            // itself (Coffer's keys, since AWS's recovery point shapes have no field for it).
            let at = |t: &chrono::DateTime<chrono::Utc>| {
                t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            };
            metadata.insert("RestoreTime".to_string(), String::new());
            metadata.insert("UseLatestRestorableTime".to_string(), "true".to_string());
            metadata.insert(
                "EarliestRestorableTime".to_string(),
                at(&c.earliest_restorable),
            );
            metadata.insert("LatestRestorableTime".to_string(), at(&c.latest_restorable));
        }
    } else {
        metadata.insert("targetPath".to_string(), String::new());
        metadata.insert("inPlace".to_string(), "false".to_string());
        metadata.insert("overwrite".to_string(), "false".to_string());
        metadata.insert("ItemsToRestore".to_string(), "[]".to_string());
    }
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
