//! The copy job operations: StartCopyJob, DescribeCopyJob and ListCopyJobs. Running a copy
//! job is the data plane's (`dataplane::copy`).

use coffer_api::types::*;
use coffer_api::{RequestContext, Timestamp};

use super::{Bounds, JobFilter, list_jobs};
use crate::dataplane::Executor;
use crate::model::error::Result;
use crate::model::jobs::{
    CopyJobSpec, JobKind, JobRecord, check_destination, create_copy_job, get_job,
};
use crate::model::lifecycle;
use crate::model::states::{FromWire, JobState};
use crate::model::{Meta, recovery_points, vaults};

pub(crate) async fn start_copy_job(
    plane: &Executor,
    ctx: &RequestContext,
    input: StartCopyJobInput,
) -> Result<StartCopyJobOutput> {
    let source_vault = vaults::get(
        plane,
        &ctx.account_id,
        &ctx.region,
        &input.source_backup_vault_name,
    )
    .await?;
    let (a, r, vname, rp_arn) = (
        ctx.account_id.clone(),
        ctx.region.clone(),
        source_vault.name.clone(),
        input.recovery_point_arn.clone(),
    );
    let rp = plane
        .store()
        .read(move |tx| recovery_points::find_in_vault(tx, &a, &r, &vname, &rp_arn))
        .await?;
    // Unlike AWS, Coffer copies a cold recovery point: the copy reads it from the cold tier
    // (docs/tiering.md).
    if rp.continuous.is_some() {
        return Err(coffer_api::ApiError::invalid_request(format!(
            "Recovery point {} is a continuous backup of a PostgreSQL database; Coffer does not copy continuous recovery points yet. Restore it to a point in time instead, or copy a snapshot recovery point of the resource.",
            rp.arn
        ))
        .into());
    }
    if let Some(l) = &input.lifecycle {
        lifecycle::check_given(l)?;
    }
    let spec = CopyJobSpec {
        source_vault_name: source_vault.name.clone(),
        source_vault_arn: source_vault.arn.clone(),
        source_vault_uid: source_vault.uid.clone(),
        source: rp,
        destination_vault_arn: input.destination_backup_vault_arn.clone(),
        lifecycle: input.lifecycle.clone(),
        iam_role_arn: input.iam_role_arn.clone(),
        idempotency_token: input.idempotency_token.clone(),
        created_by: None,
        created_by_backup_job_id: None,
        creation_date: plane.clock().now(),
    };
    let stored = plane
        .store()
        .write(move |tx| -> Result<JobRecord> {
            let dest = check_destination(tx, &spec)??;
            create_copy_job(tx, spec, Ok(&dest))
        })
        .await?;
    plane.running().wake();
    Ok(StartCopyJobOutput {
        copy_job_id: Some(stored.id.clone()),
        creation_date: Some(Timestamp(stored.creation_date)),
        is_parent: Some(false),
    })
}

fn copy_job(j: &JobRecord) -> CopyJob {
    CopyJob {
        account_id: Some(j.account.clone()),
        backup_size_in_bytes: Some(j.backup_size),
        completion_date: j.completion_date.map(Timestamp),
        copy_job_id: Some(j.id.clone()),
        created_by: j.created_by.clone(),
        created_by_backup_job_id: j.created_by_backup_job_id.clone(),
        creation_date: Some(Timestamp(j.creation_date)),
        destination_backup_vault_arn: j.dest_vault_arn.clone(),
        destination_recovery_point_arn: j.dest_recovery_point_arn.clone(),
        destination_recovery_point_lifecycle: j.lifecycle.clone(),
        destination_vault_type: Some(
            if j.dest_air_gapped {
                VaultType::LogicallyAirGappedBackupVault
            } else {
                VaultType::BackupVault
            }
            .as_str()
            .into(),
        ),
        iam_role_arn: j.iam_role_arn.clone(),
        is_parent: Some(false),
        message_category: j.message_category.clone(),
        resource_arn: Some(j.resource_arn.clone()),
        resource_name: j.resource_name.clone(),
        resource_type: Some(j.resource_type.clone()),
        source_backup_vault_arn: Some(j.vault_arn.clone()),
        source_recovery_point_arn: j.recovery_point_arn.clone(),
        state: Some(j.state.into()),
        status_message: j.status_message.clone(),
        ..Default::default()
    }
}

pub(crate) async fn describe_copy_job(
    meta: &Meta,
    ctx: &RequestContext,
    input: DescribeCopyJobInput,
) -> Result<DescribeCopyJobOutput> {
    let j = get_job(meta, ctx, JobKind::Copy, &input.copy_job_id).await?;
    Ok(DescribeCopyJobOutput {
        copy_job: Some(copy_job(&j)),
    })
}

pub(crate) async fn list_copy_jobs(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListCopyJobsInput,
) -> Result<ListCopyJobsOutput> {
    let filter = JobFilter {
        account: input.by_account_id.clone(),
        resource_arn: input.by_resource_arn.clone(),
        state: input.by_state.as_ref().map(JobState::from_wire),
        resource_type: input.by_resource_type.clone(),
        dest_vault_arn: input.by_destination_vault_arn.clone(),
        recovery_point_arn: input.by_source_recovery_point_arn.clone(),
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
    let (copy_jobs, next_token) = list_jobs(
        meta,
        ctx,
        JobKind::Copy,
        &filter,
        input.next_token.as_deref(),
        input.max_results,
        copy_job,
    )
    .await?;
    Ok(ListCopyJobsOutput {
        copy_jobs: Some(copy_jobs),
        next_token,
    })
}
