//! Running a restore job: the recovery point's snapshot is restored into the target the
//! restore metadata names (see `model::restore`), never outside it; a bucket's recovery point is
//! restored into a bucket (`model::restore_bucket`), an RDS recovery point into a new database
//! (`dataplane::postgres`). A restore test's job
//! (started by a restore testing plan) is then compared with the recovery point
//! (`dataplane::restore_testing`) before it is recorded COMPLETED.

use coffer_engine::{BucketTarget, RestoreOptions};

use coffer_api::types::RestoreValidationStatus;

use crate::dataplane::jobs::{JobControl, engine_stopped, failed, finish};
use crate::dataplane::restore_testing::validate;
use crate::dataplane::{Executor, tiers};
use crate::model::error::Result;
use crate::model::jobs::{JobRecord, load_held, save_job};
use crate::model::recovery_points::RecoveryPointRecord;
use crate::model::restore::*;
use crate::model::restore_bucket::{BUCKET_TYPE, bucket_of_arn, bucket_plan};
use crate::model::states::JobState;
use crate::model::vaults::VaultRecord;
use crate::model::{composite, recovery_points, restore_access, vaults};

pub(crate) async fn run(plane: &Executor, job: JobRecord, control: &JobControl) {
    if let Err(e) = run_inner(plane, &job, control).await {
        failed(plane, &job, &e).await;
    }
}

async fn run_inner(plane: &Executor, job: &JobRecord, control: &JobControl) -> Result<()> {
    let (a, r, rp_arn) = (
        job.account.clone(),
        job.region.clone(),
        job.recovery_point_arn.clone().unwrap_or_default(),
    );
    let now = plane.clock().now();
    // Access to another account's point is checked again: it may have been revoked since.
    let rp = plane
        .store()
        .read(move |tx| restore_access::find_restorable(tx, &a, &r, &rp_arn, now))
        .await?;
    let vault = vaults::get(plane, &rp.account, &rp.region, &rp.vault_name).await?;
    if rp.resource_type == BUCKET_TYPE {
        return run_bucket(plane, job, control, &rp, &vault).await;
    }
    if rp.resource_type == "RDS" {
        let created = crate::dataplane::postgres::restore(plane, job, &rp, &vault, control).await?;
        if let Some(created) = created {
            record_completed(plane, job, rp.key(), Some(created), None).await?;
        }
        return Ok(());
    }
    let plan = plan(&job.metadata, rp.source_path.as_deref())?;
    if rp.composite.is_parent {
        return restore_composite(plane, job, control, &vault, &rp, &plan).await;
    }
    let repo = tiers::repo_holding(plane, &vault, &rp).await?;
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
        engine_stopped(plane, job, control, &e, JobState::Aborted).await;
        return Ok(());
    }
    // A restore test's restore is compared with the recovery point before the job ends.
    let validation = match job.restore_testing_plan_arn {
        Some(_) => Some(validate(&repo, &rp, &plan.target, control.cancel.clone()).await),
        None => None,
    };
    let created = plan.in_place.then(|| job.resource_arn.clone());
    record_completed(plane, job, rp.key(), created, validation).await?;
    release_claim(&plan.target, &job.id);
    Ok(())
}

/// Restores a bucket's recovery point into the bucket the metadata names, with the endpoint
/// and credentials of the bucket resource in the inventory.
async fn run_bucket(
    plane: &Executor,
    job: &JobRecord,
    control: &JobControl,
    rp: &RecoveryPointRecord,
    vault: &VaultRecord,
) -> Result<()> {
    let source = bucket_of_arn(&rp.resource_arn);
    let plan = bucket_plan(&job.metadata, source)?;
    let Some(endpoint) = plane.inventory().get(&rp.resource_arn).and_then(|r| r.s3) else {
        let message = format!(
            "Bucket {} is no longer in Coffer's inventory: declare it again under [[resources]] with its [resources.s3] table, which gives the endpoint and credentials the restore writes with.",
            rp.resource_arn
        );
        finish(
            plane,
            job,
            JobState::Failed,
            Some(message),
            "RESOURCE_NOT_FOUND",
        )
        .await;
        return Ok(());
    };
    let repo = tiers::repo_holding(plane, vault, rp).await?;
    let target = BucketTarget {
        endpoint,
        bucket: plan.bucket.clone(),
        prefix: plan.prefix,
        create: plan.new_bucket,
        keys: plan.keys,
    };
    let outcome = repo
        .restore_to_bucket_async(
            rp.snapshot.clone(),
            target,
            control.observer(),
            control.cancel.clone(),
        )
        .await;
    if let Err(e) = outcome {
        engine_stopped(plane, job, control, &e, JobState::Aborted).await;
        return Ok(());
    }
    let created = Some(format!("arn:aws:s3:::{}", plan.bucket));
    record_completed(plane, job, rp.key(), created, None).await
}

/// The subdirectory of a composite restore's target that nested point `child` goes to: its
/// member's name when that is one plain path component, else its id.
fn member_dir(child: &RecoveryPointRecord) -> String {
    match child.composite.member_id.as_deref() {
        Some(m) if !m.is_empty() && m != "." && m != ".." && !m.contains(['/', '\\']) => {
            m.to_string()
        }
        _ => child.id.clone(),
    }
}

/// Restores a composite parent: every nested point it still has goes into its own
/// subdirectory of the target (`TARGET/MEMBER`), one after the other, then the job is
/// recorded COMPLETED.
async fn restore_composite(
    plane: &Executor,
    job: &JobRecord,
    control: &JobControl,
    vault: &VaultRecord,
    rp: &RecoveryPointRecord,
    plan: &RestorePlan,
) -> Result<()> {
    let parent = rp.clone();
    let children = plane
        .store()
        .read(move |tx| composite::children(tx, &parent))
        .await?;
    if children.is_empty() {
        let message = format!(
            "Composite recovery point {} has no nested recovery points left to restore.",
            rp.arn
        );
        finish(plane, job, JobState::Failed, Some(message), "FAILED").await;
        return Ok(());
    }
    let mut targets = Vec::new();
    for child in &children {
        let target = plan.target.join(member_dir(child));
        let resume_id = format!("{}-{}", job.id, child.id);
        let options = RestoreOptions {
            resume_id: Some(resume_id.clone()),
            ..plan.options.clone()
        };
        // Each nested point is read from wherever its data is.
        let repo = tiers::repo_holding(plane, vault, child).await?;
        let outcome = repo
            .restore_async(
                child.snapshot.clone(),
                target.clone(),
                options,
                control.observer(),
                control.cancel.clone(),
            )
            .await;
        if let Err(e) = outcome {
            engine_stopped(plane, job, control, &e, JobState::Aborted).await;
            return Ok(());
        }
        targets.push((target, resume_id));
    }
    record_completed(plane, job, rp.key(), None, None).await?;
    for (target, id) in targets {
        release_claim(&target, &id);
    }
    Ok(())
}

/// Records the job COMPLETED (with its validation, for a restore test) and the point's last
/// restore time, in one transaction.
async fn record_completed(
    plane: &Executor,
    job: &JobRecord,
    rp_key: String,
    created: Option<String>,
    validation: Option<(RestoreValidationStatus, String)>,
) -> Result<()> {
    let now = plane.clock().now();
    let run = job.run();
    plane
        .store()
        .write(move |tx| -> Result<()> {
            let Some(mut j) = load_held(tx, &run)? else {
                return Ok(());
            };
            if let Some(v) = tx.get(recovery_points::TABLE, &rp_key)? {
                let mut point: recovery_points::RecoveryPointRecord = serde_json::from_slice(&v)?;
                point.last_restore_time = Some(now);
                tx.put(
                    recovery_points::TABLE,
                    &rp_key,
                    &serde_json::to_vec(&point)?,
                )?;
            }
            j.state = JobState::Completed;
            j.percent_done = 100.0;
            j.completion_date = Some(now);
            j.created_resource_arn = created;
            j.message_category = Some("SUCCESS".into());
            j.lease_owner = None;
            j.lease_until = None;
            if let Some((status, message)) = validation {
                j.validation_status = Some(status);
                j.validation_status_message = Some(message);
            }
            save_job(tx, &j)
        })
        .await
}

/// The restore is recorded as done: remove the claim the engine left in its target.
fn release_claim(target: &std::path::Path, job_id: &str) {
    if let Err(e) = coffer_engine::release_restore_claim(target, job_id) {
        tracing::warn!(target = %target.display(), error = %e, "cannot remove the restore claim");
    }
}
