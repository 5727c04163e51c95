//! Running a backup job: the resource's source is read into the vault's repository, with the
//! resource's latest recovery point in that vault as parent, and the new recovery point is
//! recorded with the job's end (and the copy jobs of its rule) in one transaction. A vault
//! that does not take the point (an air-gapped vault, or a lock whose bounds the job's
//! retention breaks; `model::retention`) fails the job before it reads anything, and again in
//! that transaction if its lock changed while the job ran.

use crate::dataplane::jobs::{JobControl, engine_stopped, failed, finish, pause_point};
use crate::dataplane::{Executor, storage};
use crate::model::error::Result;
use crate::model::inventory::{Resource, SourceKind};
use crate::model::jobs::{CopyJobSpec, check_destination, create_copy_job};
use crate::model::jobs::{JobRecord, load_held, save_job};
use crate::model::recovery_points::RecoveryPointRecord;
use crate::model::restore_bucket::bucket_of_arn;
use crate::model::states::{JobState, RecoveryPointStatus, StorageClass};
use crate::model::vaults::VaultRecord;
use crate::model::{indexes, recovery_points, retention, scans, vaults};
use chrono::{DateTime, Utc};
use coffer_api::ApiError;
use coffer_engine::{BackupOutcome, SnapshotRef, SourceSpec};
use coffer_store::Txn;

pub(crate) async fn run(plane: &Executor, job: JobRecord, control: &JobControl) {
    if let Err(e) = run_inner(plane, &job, control).await {
        failed(plane, &job, &e).await;
    }
}

/// Runs the backup: finds the resource and the vault, reads the source into the vault's
/// repository with the resource's latest recovery point there as parent, then records the
/// outcome.
async fn run_inner(plane: &Executor, job: &JobRecord, control: &JobControl) -> Result<()> {
    let Some((resource, vault)) = locate(plane, job).await? else {
        return Ok(());
    };
    if let Some(message) = refusal(&vault, job) {
        tracing::info!(job = %job.id, vault = %vault.name, %message, "the vault refused the backup");
        finish(plane, job, JobState::Failed, Some(message), "FAILED").await;
        return Ok(());
    }
    if pause_point("backup", control).await {
        let cancelled = coffer_engine::Error::Cancelled;
        engine_stopped(plane, job, control, &cancelled, JobState::Aborted).await;
        return Ok(());
    }
    if job.continuous && resource.kind == SourceKind::Postgres {
        return crate::dataplane::pitr::run(plane, job, &resource, &vault, control).await;
    }
    let repo = storage::repo_for(plane, &vault, None).await?;
    let parent = recovery_points::latest_for_resource(
        plane,
        &job.account,
        &job.region,
        &vault.name,
        &job.resource_arn,
    )
    .await?
    // A point moved to a storage tier is in another repository: no parent then.
    .filter(|p| p.vault_uid == vault.uid && p.tier.is_none())
    .map(|p| p.snapshot);
    let source = match source_of(&resource) {
        Ok(Some(source)) => source,
        Ok(None) => {
            let message = format!(
                "Resource {} is now a composite resource; start its backup again.",
                job.resource_arn
            );
            finish(plane, job, JobState::Failed, Some(message), "FAILED").await;
            return Ok(());
        }
        Err(e) => {
            engine_stopped(plane, job, control, &e, JobState::Aborted).await;
            return Ok(());
        }
    };
    let rp_id = job.recovery_point_id.clone().unwrap_or_default();
    let tags = vec![format!("resource:{}", job.resource_arn)];
    let (observer, cancel) = (control.observer(), control.cancel.clone());
    let outcome = match repo
        .backup_async(source, rp_id, parent, tags, observer, cancel)
        .await
    {
        Ok(o) => o,
        Err(e) => {
            tracing::info!(job = %job.id, error = %e, "backup job ended without a recovery point");
            engine_stopped(plane, job, control, &e, JobState::Aborted).await;
            return Ok(());
        }
    };
    let now = plane.clock().now();
    let rp = recovery_point(job, &vault, &resource, &outcome, now);
    let indexed = job.index;
    if let Err(e) = complete(plane, job, rp, Vec::new(), &outcome, now).await {
        // The snapshot exists but is not recorded: remove it so the vault holds only what the
        // metadata knows about, and fail the job with the reason.
        let _ = crate::dataplane::storage::remove_snapshot(
            plane,
            &repo,
            SnapshotRef(outcome.snapshot.0.clone()),
        )
        .await;
        failed(plane, job, &e).await;
    } else if indexed {
        // The index is built by the runner's next pass, after the backup's transaction.
        plane.running().wake();
    }
    Ok(())
}

/// How the engine reads `resource` (`None` for a composite, which has no data of its own).
pub(crate) fn source_of(resource: &Resource) -> coffer_engine::Result<Option<SourceSpec>> {
    Ok(match resource.kind {
        SourceKind::Directory => Some(SourceSpec::Directory(resource.source.clone())),
        SourceKind::Stream => Some(SourceSpec::Stream(resource.source.clone())),
        SourceKind::Postgres => Some(crate::dataplane::postgres::source(resource)?),
        SourceKind::Composite => None,
        SourceKind::Bucket => Some(SourceSpec::Bucket {
            endpoint: resource.s3.clone().ok_or_else(|| {
                coffer_engine::Error::InvalidInput(format!(
                    "{} is an S3 bucket without a [resources.s3] table; add one with endpoint, access_key_id and secret_access_key",
                    resource.arn
                ))
            })?,
            bucket: bucket_of_arn(&resource.arn).to_string(),
        }),
        SourceKind::Sqlite => Some(SourceSpec::Sqlite(resource.source.clone())),
    })
}

/// The job's resource and vault, or `None` after ending the job FAILED when either is gone.
/// A store failure is an error, never "not found".
pub(crate) async fn locate(
    plane: &Executor,
    job: &JobRecord,
) -> Result<Option<(Resource, VaultRecord)>> {
    let Some(resource) = plane.inventory().get(&job.resource_arn) else {
        let message = format!(
            "Resource {} is no longer in Coffer's inventory.",
            job.resource_arn
        );
        finish(
            plane,
            job,
            JobState::Failed,
            Some(message),
            "RESOURCE_NOT_FOUND",
        )
        .await;
        return Ok(None);
    };
    let Some(vault) = vaults::find(plane, &job.account, &job.region, &job.vault_name).await? else {
        let message = format!("Backup vault '{}' no longer exists.", job.vault_name);
        finish(
            plane,
            job,
            JobState::Failed,
            Some(message),
            "VAULT_NOT_FOUND",
        )
        .await;
        return Ok(None);
    };
    Ok(Some((resource, vault)))
}

/// Why `vault` does not take this job's recovery point: an air-gapped vault takes copies
/// only; a lock (or an air-gapped vault's retention bounds) refuses a retention outside them.
pub(crate) fn refusal(vault: &VaultRecord, job: &JobRecord) -> Option<String> {
    if vault.air_gapped {
        return Some(format!(
            "Backup vault '{}' is a logically air-gapped backup vault: recovery points reach it only by copy (StartCopyJob, a rule's copy action or TargetLogicallyAirGappedBackupVaultArn). Back up into a backup vault and copy from there.",
            vault.name
        ));
    }
    retention::admission_blocker(vault, job.lifecycle.as_ref())
}

/// The recovery point a completed backup makes.
pub(crate) fn recovery_point(
    job: &JobRecord,
    vault: &VaultRecord,
    resource: &Resource,
    outcome: &BackupOutcome,
    now: DateTime<Utc>,
) -> RecoveryPointRecord {
    RecoveryPointRecord {
        id: job.recovery_point_id.clone().unwrap_or_default(),
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
        status: RecoveryPointStatus::Completed,
        storage_class: StorageClass::Warm,
        last_restore_time: None,
        // A database has no path to restore in place.
        source_path: (resource.kind != SourceKind::Postgres)
            .then(|| resource.source.display().to_string()),
        composite: Default::default(),
        tier: None,
        continuous: None,
    }
}

/// The status message and category of a completed backup: the first few issues it saw.
fn completion_message(outcome: &BackupOutcome) -> (Option<String>, &'static str) {
    if outcome.warnings.is_empty() {
        return (None, "SUCCESS");
    }
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
}

/// For a bucket or a SQLite database, what the backup read, put before any issues: objects
/// (new, changed, unchanged: taken from the parent without being read) and bytes.
fn with_counts(message: Option<String>, resource_type: &str, o: &BackupOutcome) -> Option<String> {
    let counts = match resource_type {
        "S3" => format!(
            "Backed up {} objects ({} new, {} changed, {} unchanged), {} bytes, {} bytes uploaded.",
            o.files, o.files_new, o.files_changed, o.files_unmodified, o.total_bytes, o.bytes_added
        ),
        "SQLite" => format!(
            "Backed up a consistent copy of the database, {} bytes, {} bytes uploaded.",
            o.total_bytes, o.bytes_added
        ),
        _ => return message,
    };
    Some(match message {
        Some(m) => format!("{counts} {m}"),
        None => counts,
    })
}

/// Records the recovery point (and a composite's nested points, `children`) and completes
/// the job in one transaction, with the copy jobs of the job's rule.
pub(crate) async fn complete(
    plane: &Executor,
    job: &JobRecord,
    rp: RecoveryPointRecord,
    children: Vec<RecoveryPointRecord>,
    outcome: &BackupOutcome,
    now: DateTime<Utc>,
) -> Result<()> {
    let (message, category) = completion_message(outcome);
    let message = with_counts(message, &job.resource_type, outcome);
    let run = job.run();
    let rp_tags = job.recovery_point_tags.clone();
    let bytes_added = outcome.bytes_added as i64;
    plane
        .store()
        .write(move |tx| -> Result<()> {
            let Some(mut j) = load_held(tx, &run)? else {
                return Ok(());
            };
            // The vault's lock may have changed while the job ran: the point enters only if
            // the lock the vault has now admits it.
            let vault_key = vaults::key(&rp.account, &rp.region, &rp.vault_name);
            let vault = vaults::load(tx, &vault_key, &rp.vault_name)?;
            if let Some(message) = refusal(&vault, &j) {
                return Err(ApiError::invalid_request(message).into());
            }
            recovery_points::insert(tx, &rp, &rp_tags)?;
            for child in &children {
                recovery_points::insert(tx, child, &rp_tags)?;
            }
            if j.index && !rp.composite.is_parent {
                indexes::insert_pending(tx, rp.new_index(None, now))?;
            }
            // A composite's parent holds no snapshot to copy or scan.
            if !rp.composite.is_parent {
                start_copy_actions(tx, &j, &rp, now)?;
                scans::after_backup(tx, &j, &rp, now)?;
            }
            j.state = JobState::Completed;
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
            save_job(tx, &j)
        })
        .await
}

/// A plan's backup: its rule's copy actions start in the backup's final transaction, so a
/// crash can never leave a completed backup without its copies. A destination that cannot be
/// used makes a FAILED copy job saying why.
fn start_copy_actions(
    tx: &mut dyn Txn,
    j: &JobRecord,
    rp: &RecoveryPointRecord,
    now: DateTime<Utc>,
) -> Result<()> {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Meta;
    use crate::model::clock::Clock;
    use crate::model::inventory::SourceKind;
    use crate::model::jobs::{BackupJobSpec, create_backup_job};
    use crate::model::vault_lock::VaultLock;
    use chrono::Duration;
    use coffer_api::types::{EncryptionKeyType, Lifecycle};
    use coffer_store::StoreHandle;

    const ACCOUNT: &str = "111122223333";
    const REGION: &str = "us-east-1";

    /// A lock put on the vault while a backup ran still applies: the transaction that would
    /// record the recovery point refuses it, and the vault holds nothing.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_lock_put_while_the_job_ran_refuses_the_point_at_completion() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        let plane = Executor::new(Meta::new(store, Clock::movable()), Default::default(), None);
        let now = plane.clock().now();
        let vault = VaultRecord {
            account: ACCOUNT.into(),
            region: REGION.into(),
            name: "v".into(),
            arn: crate::model::arn::backup_vault(REGION, ACCOUNT, "v"),
            creation_date: now,
            creator_request_id: None,
            encryption_key_arn: String::new(),
            encryption_key_type: EncryptionKeyType::AwsOwnedKmsKey,
            recovery_points: 0,
            uid: "v-uid".into(),
            repo: None,
            lock: None,
            air_gapped: false,
            mpa: Default::default(),
        };
        let resource_arn = format!("arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:file-system/fs");
        let spec = BackupJobSpec {
            account: ACCOUNT.into(),
            region: REGION.into(),
            vault_name: "v".into(),
            vault_arn: vault.arn.clone(),
            resource_arn: resource_arn.clone(),
            resource_type: "EFS".into(),
            resource_name: None,
            iam_role_arn: "arn:aws:iam::111122223333:role/r".into(),
            idempotency_token: None,
            creation_date: now,
            start_by: now + Duration::hours(1),
            complete_by: now + Duration::days(1),
            lifecycle: Some(Lifecycle {
                delete_after_days: Some(1),
                ..Default::default()
            }),
            recovery_point_tags: Default::default(),
            created_by: None,
            copy_actions: Vec::new(),
            index_resource_types: Vec::new(),
            continuous: false,
            expired_message: None,
        };
        let saved = vault.clone();
        let mut job = plane
            .store()
            .write(move |tx| {
                vaults::save(tx, &saved)?;
                create_backup_job(tx, spec)
            })
            .await
            .unwrap();
        // The job starts while the vault has no lock: nothing refuses it yet.
        assert_eq!(refusal(&vault, &job), None);
        job.state = JobState::Running;
        job.started_at = Some(now);
        let running = job.clone();
        plane
            .store()
            .write(move |tx| save_job(tx, &running))
            .await
            .unwrap();
        // Meanwhile a lock with a 7-day minimum is put.
        let mut locked = vault.clone();
        locked.lock = Some(VaultLock {
            min_retention_days: Some(7),
            max_retention_days: None,
            lock_date: None,
            changeable_for_days: None,
        });
        plane
            .store()
            .write(move |tx| vaults::save(tx, &locked))
            .await
            .unwrap();

        let resource = Resource {
            members: Vec::new(),
            arn: resource_arn,
            account: ACCOUNT.into(),
            region: REGION.into(),
            resource_type: "EFS".into(),
            kind: SourceKind::Directory,
            name: "fs".into(),
            source: dir.path().to_path_buf(),
            tags: Default::default(),
            s3: None,
            database: None,
        };
        let outcome = BackupOutcome {
            snapshot: SnapshotRef("snap".into()),
            bytes_added: 1,
            bytes_stored: 1,
            total_bytes: 1,
            files: 1,
            files_new: 1,
            files_changed: 0,
            files_unmodified: 0,
            warnings: Vec::new(),
        };
        let rp = recovery_point(&job, &vault, &resource, &outcome, now);
        let err = complete(&plane, &job, rp.clone(), Vec::new(), &outcome, now)
            .await
            .unwrap_err();
        assert!(
            err.0.message().contains("minimum retention of 7 days"),
            "{}",
            err.0.message()
        );
        let v = vaults::get(&plane, ACCOUNT, REGION, "v").await.unwrap();
        assert_eq!(v.recovery_points, 0);
        let found = plane
            .store()
            .read(move |tx| recovery_points::find(tx, ACCOUNT, REGION, &rp.arn))
            .await;
        assert!(found.is_err_and(|e| e.is_client_error()));
    }
}
