//! Running a copy job: the recovery point's snapshot is copied into the destination vault's
//! repository (created with the source's chunking so the two deduplicate alike) and recorded
//! there as a new recovery point that keeps the source's creation date. A destination whose
//! lock (or air-gapped retention) the copy's retention breaks fails the job, at its start and
//! in the recording transaction.

use chrono::{DateTime, Utc};
use coffer_api::ApiError;

use crate::dataplane::jobs::{JobControl, engine_stopped, failed, finish};
use crate::dataplane::{Executor, storage, tiers};
use crate::model::error::Result;
use crate::model::jobs::parse_vault_arn;
use crate::model::jobs::{JobRecord, load_held, save_job};
use crate::model::recovery_points::RecoveryPointRecord;
use crate::model::states::{JobState, RecoveryPointStatus, StorageClass};
use crate::model::{recovery_points, retention, tags, vaults};

/// A composite parent holds no data of its own: there is nothing to copy.
fn composite_refusal(rp: &RecoveryPointRecord) -> Option<String> {
    rp.composite.is_parent.then(|| {
        format!(
            "Recovery point {} is a composite recovery point, which holds no data of its own; copy its nested recovery points instead.",
            rp.arn
        )
    })
}

pub(crate) async fn run(plane: &Executor, job: JobRecord, control: &JobControl) {
    if let Err(e) = run_inner(plane, &job, control).await {
        failed(plane, &job, &e).await;
    }
}

async fn run_inner(plane: &Executor, job: &JobRecord, control: &JobControl) -> Result<()> {
    let source_vault = vaults::get(plane, &job.account, &job.region, &job.vault_name).await?;
    let (a, r, v, rp_arn) = (
        job.account.clone(),
        job.region.clone(),
        job.vault_name.clone(),
        job.recovery_point_arn.clone().unwrap_or_default(),
    );
    let rp = plane
        .store()
        .read(move |tx| recovery_points::find_in_vault(tx, &a, &r, &v, &rp_arn))
        .await?;
    let (dest_account, dest_region, dest_name) =
        parse_vault_arn(job.dest_vault_arn.as_deref().unwrap_or_default())?;
    let dest = vaults::get(plane, &dest_account, &dest_region, &dest_name).await?;
    let refused = composite_refusal(&rp)
        .or_else(|| retention::admission_blocker(&dest, job.lifecycle.as_ref()));
    if let Some(message) = refused {
        tracing::info!(job = %job.id, vault = %dest.name, %message, "the copy was refused");
        finish(plane, job, JobState::Failed, Some(message), "FAILED").await;
        return Ok(());
    }
    let source_repo = tiers::repo_holding(plane, &source_vault, &rp).await?;
    let dest_repo = storage::repo_for(plane, &dest, Some(&source_repo)).await?;
    let dest_arn = job.dest_recovery_point_arn.clone().unwrap_or_default();
    let dest_id = dest_arn.rsplit(':').next().unwrap_or_default().to_string();
    let copied = {
        let (src, dst, snap, id) = (
            source_repo.clone(),
            dest_repo.clone(),
            rp.snapshot.clone(),
            dest_id.clone(),
        );
        let (observer, cancel) = (control.observer(), control.cancel.clone());
        tokio::task::spawn_blocking(move || src.copy_to(&dst, &snap, &id, observer, cancel))
            .await
            .map_err(ApiError::internal)?
    };
    let snapshot = match copied {
        Ok(s) => s,
        Err(e) => {
            // Copy jobs have no ABORTED state: a stopped copy failed.
            engine_stopped(plane, job, control, &e, JobState::Failed).await;
            return Ok(());
        }
    };
    let now = plane.clock().now();
    let new_rp = RecoveryPointRecord {
        id: dest_id,
        arn: dest_arn,
        account: dest_account,
        region: dest_region,
        vault_name: dest.name.clone(),
        vault_arn: dest.arn.clone(),
        vault_uid: dest.uid.clone(),
        snapshot: snapshot.clone(),
        initiation_date: job.started_at,
        completion_date: now,
        iam_role_arn: job.iam_role_arn.clone(),
        lifecycle: job.lifecycle.clone(),
        created_by: job.created_by.clone(),
        source_vault_arn: Some(source_vault.arn.clone()),
        encryption_key_arn: dest.encryption_key_arn.clone(),
        status: RecoveryPointStatus::Completed,
        storage_class: StorageClass::Warm,
        last_restore_time: None,
        // A copy stands on its own, outside any composite, in its vault's own repository.
        composite: Default::default(),
        tier: None,
        continuous: None,
        // What was backed up, and when, stays the source's.
        ..rp.clone()
    };
    let committed = complete(plane, job, rp.arn.clone(), new_rp, now).await;
    if let Err(e) = committed {
        let _ = crate::dataplane::storage::remove_snapshot(plane, &dest_repo, snapshot).await;
        failed(plane, job, &e).await;
    }
    Ok(())
}

/// Records the copy's recovery point (with the source's tags) and completes the job, in one
/// transaction.
async fn complete(
    plane: &Executor,
    job: &JobRecord,
    source_arn: String,
    new_rp: RecoveryPointRecord,
    now: DateTime<Utc>,
) -> Result<()> {
    let run = job.run();
    plane
        .store()
        .write(move |tx| -> Result<()> {
            let Some(mut j) = load_held(tx, &run)? else {
                return Ok(());
            };
            // The destination's lock may have changed while the copy ran.
            let dest_key = vaults::key(&new_rp.account, &new_rp.region, &new_rp.vault_name);
            let dest = vaults::load(tx, &dest_key, &new_rp.vault_name)?;
            if let Some(message) = retention::admission_blocker(&dest, j.lifecycle.as_ref()) {
                return Err(ApiError::invalid_request(message).into());
            }
            let source_tags = tags::get(tx, &source_arn)?;
            recovery_points::insert(tx, &new_rp, &source_tags)?;
            j.state = JobState::Completed;
            j.percent_done = 100.0;
            j.completion_date = Some(now);
            j.message_category = Some("SUCCESS".into());
            j.lease_owner = None;
            j.lease_until = None;
            save_job(tx, &j)?;
            Ok(())
        })
        .await
}
