//! Copy jobs: StartCopyJob, DescribeCopyJob, ListCopyJobs, and running one: the recovery
//! point's snapshot is copied into the destination vault's repository (other keys, created
//! with the source's chunking so the two deduplicate alike) and recorded there as a new
//! recovery point that keeps the source's creation date.

use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};

use super::backup::{engine_end, finish};
use super::runner::JobControl;
use super::{
    JobKind, JobRecord, all_jobs, check_lifecycle, enqueue, get_job, load_job, new_job_id, page,
    save_job, within,
};
use coffer_store::Txn;

use crate::error::{Error, Result};
use crate::recovery_points::{self, RecoveryPointRecord};
use crate::vaults::VaultRecord;
use crate::{Coffer, arn, storage, vaults};

/// The (account, region, name) a backup-vault ARN names.
fn parse_vault_arn(vault_arn: &str) -> Result<(String, String, String)> {
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

pub(crate) async fn start_copy_job(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: StartCopyJobInput,
) -> Result<StartCopyJobOutput> {
    let source_vault = vaults::get(
        coffer,
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
    let rp = coffer
        .store()
        .read(move |tx| recovery_points::find_in_vault(tx, &a, &r, &vname, &rp_arn))
        .await?;
    if rp.storage_class == "COLD" {
        return Err(ApiError::invalid_request(format!(
            "Recovery point {} is in cold storage and cannot be copied.",
            rp.arn
        ))
        .into());
    }
    if let Some(l) = &input.lifecycle {
        check_lifecycle(l)?;
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
        creation_date: coffer.clock().now(),
    };
    let stored = coffer
        .store()
        .write(move |tx| -> Result<JobRecord> {
            let dest = check_destination(tx, &spec)??;
            create_copy_job(tx, spec, Ok(&dest))
        })
        .await?;
    coffer.runner().wake();
    Ok(StartCopyJobOutput {
        copy_job_id: Some(stored.id.clone()),
        creation_date: Some(Timestamp(stored.creation_date)),
        is_parent: Some(false),
    })
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
        if !crate::settings::cross_account_backup_enabled(tx, &caller)? {
            return Ok(Err(ApiError::invalid_request(format!(
                "Cross-account backup is disabled for account {caller}: enable isCrossAccountBackupEnabled with UpdateGlobalSettings first."
            ))
            .into()));
        }
        let allowed = crate::vault_policy::get(tx, &k)?
            .is_some_and(|p| crate::vault_policy::copy_allowed(&p, &dest.arn, &caller));
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
        id: new_job_id(),
        kind: JobKind::Copy,
        account: rp.account.clone(),
        region: rp.region.clone(),
        state: "CREATED".into(),
        status_message: None,
        message_category: None,
        creation_date: spec.creation_date,
        start_by: None,
        complete_by: None,
        started_at: None,
        completion_date: None,
        percent_done: 0.0,
        bytes_transferred: 0,
        backup_size: rp.backup_size,
        iam_role_arn: Some(spec.iam_role_arn),
        idempotency_token: spec.idempotency_token,
        resource_arn: rp.resource_arn.clone(),
        resource_type: rp.resource_type.clone(),
        resource_name: rp.resource_name.clone(),
        vault_name: spec.source_vault_name,
        vault_arn: spec.source_vault_arn,
        recovery_point_id: Some(rp.id.clone()),
        recovery_point_arn: Some(rp.arn.clone()),
        recovery_point_creation_date: Some(rp.creation_date),
        dest_vault_arn: Some(dest_arn),
        dest_recovery_point_arn: dest_rp_arn,
        lifecycle: spec.lifecycle,
        recovery_point_tags: Default::default(),
        backup_options: Default::default(),
        created_by: spec.created_by,
        created_by_backup_job_id: spec.created_by_backup_job_id,
        copy_actions: Vec::new(),
        metadata: Default::default(),
        created_resource_arn: None,
        validation_status: None,
        validation_status_message: None,
        attempts: 0,
        lease_owner: None,
        lease_until: None,
    };
    if let Some(message) = failed {
        job.state = "FAILED".into();
        job.status_message = Some(message);
        job.message_category = Some("FAILED".into());
        job.completion_date = Some(job.creation_date);
        save_job(tx, &job)?;
        return Ok(job);
    }
    enqueue(tx, &job)
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
        destination_vault_type: Some("BACKUP_VAULT".into()),
        iam_role_arn: j.iam_role_arn.clone(),
        is_parent: Some(false),
        message_category: j.message_category.clone(),
        resource_arn: Some(j.resource_arn.clone()),
        resource_name: j.resource_name.clone(),
        resource_type: Some(j.resource_type.clone()),
        source_backup_vault_arn: Some(j.vault_arn.clone()),
        source_recovery_point_arn: j.recovery_point_arn.clone(),
        state: Some(j.state.clone()),
        status_message: j.status_message.clone(),
        ..Default::default()
    }
}

pub(crate) async fn describe_copy_job(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: DescribeCopyJobInput,
) -> Result<DescribeCopyJobOutput> {
    let j = get_job(coffer, ctx, JobKind::Copy, &input.copy_job_id).await?;
    Ok(DescribeCopyJobOutput {
        copy_job: Some(copy_job(&j)),
    })
}

pub(crate) async fn list_copy_jobs(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: ListCopyJobsInput,
) -> Result<ListCopyJobsOutput> {
    if let Some(a) = &input.by_account_id
        && a != &ctx.account_id
        && a != "*"
    {
        return Ok(ListCopyJobsOutput {
            copy_jobs: Some(Vec::new()),
            next_token: None,
        });
    }
    let jobs: Vec<JobRecord> = all_jobs(coffer, &ctx.account_id, &ctx.region, JobKind::Copy)
        .await?
        .into_iter()
        .filter(|j| {
            input
                .by_resource_arn
                .as_ref()
                .is_none_or(|x| x == &j.resource_arn)
                && input.by_state.as_ref().is_none_or(|x| x == &j.state)
                && input
                    .by_resource_type
                    .as_ref()
                    .is_none_or(|x| x == &j.resource_type)
                && input
                    .by_destination_vault_arn
                    .as_ref()
                    .is_none_or(|x| Some(x) == j.dest_vault_arn.as_ref())
                && input
                    .by_source_recovery_point_arn
                    .as_ref()
                    .is_none_or(|x| Some(x) == j.recovery_point_arn.as_ref())
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
    Ok(ListCopyJobsOutput {
        copy_jobs: Some(page.iter().map(copy_job).collect()),
        next_token: next,
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
    let source_vault = vaults::get(coffer, &job.account, &job.region, &job.vault_name).await?;
    let (a, r, v, rp_arn) = (
        job.account.clone(),
        job.region.clone(),
        job.vault_name.clone(),
        job.recovery_point_arn.clone().unwrap_or_default(),
    );
    let rp = coffer
        .store()
        .read(move |tx| recovery_points::find_in_vault(tx, &a, &r, &v, &rp_arn))
        .await?;
    let (dest_account, dest_region, dest_name) =
        parse_vault_arn(job.dest_vault_arn.as_deref().unwrap_or_default())?;
    let dest = vaults::get(coffer, &dest_account, &dest_region, &dest_name).await?;
    let source_repo = storage::repo_for(coffer, &source_vault, None).await?;
    let dest_repo = storage::repo_for(coffer, &dest, Some(&source_repo)).await?;
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
            let (state, message, category) = engine_end(control, &e);
            // Copy jobs have no ABORTED state: a stopped copy failed.
            let state = if state == "ABORTED" { "FAILED" } else { state };
            finish(coffer, job, state, Some(message), category).await;
            return Ok(());
        }
    };
    let now = coffer.clock().now();
    let new_rp = RecoveryPointRecord {
        id: dest_id,
        arn: dest_arn,
        account: dest_account,
        region: dest_region,
        vault_name: dest.name.clone(),
        vault_arn: dest.arn.clone(),
        vault_uid: dest.uid.clone(),
        snapshot: snapshot.clone(),
        resource_arn: rp.resource_arn.clone(),
        resource_type: rp.resource_type.clone(),
        resource_name: rp.resource_name.clone(),
        creation_date: rp.creation_date,
        initiation_date: job.started_at,
        completion_date: now,
        backup_size: rp.backup_size,
        iam_role_arn: job.iam_role_arn.clone(),
        lifecycle: job.lifecycle.clone(),
        created_by: job.created_by.clone(),
        source_vault_arn: Some(source_vault.arn.clone()),
        encryption_key_arn: dest.encryption_key_arn.clone(),
        status: "COMPLETED".into(),
        storage_class: "WARM".into(),
        last_restore_time: None,
        source_path: rp.source_path.clone(),
    };
    let key = job.key();
    let committed = coffer
        .store()
        .write(move |tx| -> Result<()> {
            let Some(mut j) = load_job(tx, JobKind::Copy, &key)? else {
                return Ok(());
            };
            if j.is_terminal() {
                return Ok(());
            }
            let source_tags = crate::tags::get(tx, &rp.arn)?;
            recovery_points::insert(tx, &new_rp, &source_tags)?;
            j.state = "COMPLETED".into();
            j.percent_done = 100.0;
            j.completion_date = Some(now);
            j.message_category = Some("SUCCESS".into());
            j.lease_owner = None;
            j.lease_until = None;
            save_job(tx, &j)?;
            Ok(())
        })
        .await;
    if let Err(e) = committed {
        let _ = dest_repo.delete_async(snapshot).await;
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
