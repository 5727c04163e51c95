//! Continuous backup of RDS resources (PostgreSQL) and their point-in-time restores.
//!
//! As in AWS, a rule with EnableContinuousBackup keeps one continuous recovery point per
//! resource and vault, and each of the rule's jobs extends it. The first job creates a
//! replication slot on the source server, streams a base backup into the vault and receives
//! the WAL since the slot was made; every later job (a "sync") commits a heartbeat, receives
//! the WAL up to it from the slot with `pg_receivewal`, stores the new segments as one more
//! snapshot and moves the point's latest restorable time to the heartbeat. The WAL is staged
//! in `DATA/pitr/<slot>/` until it is in the vault; the slot keeps the rest on the server, so
//! a job cut off by a crash runs again and resumes where the last one stopped
//! (`coffer_engine::sources::postgres_pitr`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use coffer_api::ApiError;
use coffer_engine::sources::postgres::PgConn;
use coffer_engine::sources::postgres_pitr::{self as pitr, BaseBackup, PitrRestore};
use coffer_engine::{SnapshotRef, SourceSpec};

use crate::dataplane::jobs::{JobControl, engine_stopped, failed, pause_point};
use crate::dataplane::{Executor, storage};
use crate::model::error::Result;
use crate::model::inventory::Resource;
use crate::model::jobs::{JobRecord, load_held, save_job};
use crate::model::recovery_points::{self, Continuous, RecoveryPointRecord, TABLE};
use crate::model::states::{JobState, RecoveryPointStatus, StorageClass};
use crate::model::vaults::VaultRecord;

/// The resource's continuous recovery point in `vault`, if it has one.
async fn current(
    plane: &Executor,
    job: &JobRecord,
    vault: &VaultRecord,
) -> Result<Option<RecoveryPointRecord>> {
    let all = recovery_points::all(plane, &job.account, &job.region).await?;
    Ok(all.into_iter().find(|rp| {
        rp.vault_name == vault.name
            && rp.vault_uid == vault.uid
            && rp.resource_arn == job.resource_arn
            && rp.continuous.is_some()
    }))
}

/// What one sync adds: the WAL snapshot, the new latest restorable time, the bytes added.
struct Synced {
    wal: SnapshotRef,
    latest: DateTime<Utc>,
    bytes_added: i64,
}

/// Runs a backup job of a continuous rule on an RDS resource: starts the resource's
/// continuous recovery point in the vault, or extends the one it has.
pub(crate) async fn run(
    plane: &Executor,
    job: &JobRecord,
    resource: &Resource,
    vault: &VaultRecord,
    control: &JobControl,
) -> Result<()> {
    let conn = match resource
        .database
        .as_ref()
        .ok_or_else(|| {
            coffer_engine::Error::InvalidInput(format!("{} has no database url", resource.arn))
        })
        .and_then(|d| d.connection(&resource.arn))
    {
        Ok(c) => c,
        Err(e) => {
            engine_stopped(plane, job, control, &e, JobState::Aborted).await;
            return Ok(());
        }
    };
    let c2 = conn.clone();
    if let Err(e) = coffer_engine::sources::postgres::blocking(move || pitr::check(&c2)).await {
        engine_stopped(plane, job, control, &e, JobState::Aborted).await;
        return Ok(());
    }
    let existing = current(plane, job, vault).await?;
    let (rp, new, base_added) = match existing {
        Some(rp) => (rp, false, 0),
        None => match start(plane, job, resource, vault, &conn, control).await? {
            Some((rp, added)) => (rp, true, added),
            None => return Ok(()),
        },
    };
    let Some(c) = rp.continuous.clone() else {
        return Ok(());
    };

    let Some(synced) = sync(plane, job, vault, &conn, &rp, &c.slot, control).await? else {
        if new && !control.is_shutdown() {
            // The job ended without its point: take back what the first job made, so no
            // slot is left holding WAL on the server for nothing.
            abandon(plane, vault, &conn, &rp, &c.slot).await;
        }
        return Ok(());
    };
    let wal = synced.wal.clone();
    let recorded = record(plane, job, rp.clone(), new, synced, base_added).await;
    if let Err(e) = recorded {
        let repo = storage::repo_for(plane, vault, None).await?;
        let _ = repo.delete_async(wal).await;
        if new {
            abandon(plane, vault, &conn, &rp, &c.slot).await;
        }
        failed(plane, job, &e).await;
        return Ok(());
    }
    // The vault has the complete segments now; the .partial one is where the next sync
    // resumes.
    let staged = staging(plane, &c.slot)?;
    for seg in pitr::complete_segments(&staged).unwrap_or_default() {
        let _ = std::fs::remove_file(seg);
    }
    Ok(())
}

/// Drops the replication slot of a continuous point that was deleted or disassociated, and
/// the WAL staged for it, so the database server stops keeping WAL for Coffer. A database no
/// longer in the inventory cannot be reached: that is logged and the removal ends (the slot
/// is the operator's to drop). A server that cannot be reached now is an error, so the
/// removal is tried again later (`dataplane::deletions`).
pub(crate) async fn release_slot(plane: &Executor, resource_arn: &str, slot: &str) -> Result<()> {
    let Some(resource) = plane.inventory().get(resource_arn) else {
        tracing::warn!(
            resource = resource_arn,
            slot,
            "a deleted continuous backup's database is no longer declared: drop its replication slot on the server by hand"
        );
        return Ok(());
    };
    let conn = resource
        .database
        .as_ref()
        .ok_or_else(|| {
            coffer_engine::Error::InvalidInput(format!("{resource_arn} has no database url"))
        })
        .and_then(|d| d.connection(resource_arn))
        .map_err(ApiError::unavailable_because)?;
    let s2 = slot.to_string();
    coffer_engine::sources::postgres::blocking(move || pitr::drop_slot(&conn, &s2))
        .await
        .map_err(ApiError::unavailable_because)?;
    if let Ok(dir) = staging(plane, slot) {
        let _ = std::fs::remove_dir_all(dir);
    }
    tracing::info!(
        resource = resource_arn,
        slot,
        "dropped the replication slot of a deleted continuous backup"
    );
    Ok(())
}

/// Removes what a first job that could not finish made: its base backup, its slot on the
/// server and its staged WAL.
async fn abandon(
    plane: &Executor,
    vault: &VaultRecord,
    conn: &PgConn,
    rp: &RecoveryPointRecord,
    slot: &str,
) {
    if let Ok(repo) = storage::repo_for(plane, vault, None).await {
        let _ = repo.delete_async(rp.snapshot.clone()).await;
    }
    let (c2, s2) = (conn.clone(), slot.to_string());
    if let Err(e) =
        coffer_engine::sources::postgres::blocking(move || pitr::drop_slot(&c2, &s2)).await
    {
        tracing::warn!(slot, error = %e, "cannot drop the replication slot of a continuous backup that did not start");
    }
    if let Ok(dir) = staging(plane, slot) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn staging(plane: &Executor, slot: &str) -> Result<std::path::PathBuf> {
    Ok(plane.storage()?.pitr_dir().join(slot))
}

/// The first job of a continuous backup: the slot, then the base backup. Returns the new
/// recovery point (not recorded yet) and the bytes the base backup added, or `None` after
/// ending the job.
async fn start(
    plane: &Executor,
    job: &JobRecord,
    resource: &Resource,
    vault: &VaultRecord,
    conn: &PgConn,
    control: &JobControl,
) -> Result<Option<(RecoveryPointRecord, i64)>> {
    // Named after the job, so its run after a crash finds the slot it made.
    let slot = pitr::slot_name(job.recovery_point_id.as_deref().unwrap_or(&job.id));
    let (c2, s2) = (conn.clone(), slot.clone());
    let made =
        coffer_engine::sources::postgres::blocking(move || pitr::create_slot(&c2, &s2)).await;
    if let Err(e) = made {
        engine_stopped(plane, job, control, &e, JobState::Aborted).await;
        return Ok(None);
    }
    let name: String = resource
        .name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let id = recovery_points::continuous_id(&name);
    let repo = storage::repo_for(plane, vault, None).await?;
    let source = SourceSpec::Custom(Arc::new(BaseBackup::new(conn.clone())));
    let tags = vec![
        format!("resource:{}", job.resource_arn),
        "continuous:base".to_string(),
    ];
    let outcome = match repo
        .backup_async(
            source,
            id.clone(),
            None,
            tags,
            control.observer(),
            control.cancel.clone(),
        )
        .await
    {
        Ok(o) => o,
        Err(e) => {
            engine_stopped(plane, job, control, &e, JobState::Aborted).await;
            return Ok(None);
        }
    };
    let now = plane.clock().now();
    let rp = new_point(job, vault, &outcome, id, slot, conn.database(), now);
    Ok(Some((rp, outcome.bytes_added as i64)))
}

/// The continuous recovery point a first job records (its range is set by the sync).
fn new_point(
    job: &JobRecord,
    vault: &VaultRecord,
    outcome: &coffer_engine::BackupOutcome,
    id: String,
    slot: String,
    database: &str,
    now: DateTime<Utc>,
) -> RecoveryPointRecord {
    RecoveryPointRecord {
        arn: crate::model::arn::recovery_point(&job.region, &job.account, &id),
        id,
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
        source_path: None,
        composite: Default::default(),
        tier: None,
        continuous: Some(Continuous {
            slot,
            database: database.to_string(),
            wal: Vec::new(),
            // Set by the first sync, right after the base backup.
            earliest_restorable: now,
            latest_restorable: now,
        }),
    }
}

/// One sync: heartbeat, WAL up to it, the new segments into the vault.
async fn sync(
    plane: &Executor,
    job: &JobRecord,
    vault: &VaultRecord,
    conn: &PgConn,
    rp: &RecoveryPointRecord,
    slot: &str,
    control: &JobControl,
) -> Result<Option<Synced>> {
    let dir = staging(plane, slot)?;
    let (c2, s2, d2, cancel) = (
        conn.clone(),
        slot.to_string(),
        dir.clone(),
        control.cancel.clone(),
    );
    let received = coffer_engine::sources::postgres::blocking(move || {
        let beat = pitr::heartbeat(&c2)?;
        pitr::receive_wal(&c2, &s2, &d2, &beat.lsn, &cancel)?;
        Ok(beat)
    })
    .await;
    let beat = match received {
        Ok(b) => b,
        Err(e) => {
            engine_stopped(plane, job, control, &e, JobState::Aborted).await;
            return Ok(None);
        }
    };
    // A test hook: holds a sync of an existing point once its WAL is received and before it
    // is in the vault, so a test can kill Coffer mid-stream.
    let extending = rp.continuous.as_ref().is_some_and(|c| !c.wal.is_empty());
    if extending && pause_point("continuous-sync", control).await {
        let cancelled = coffer_engine::Error::Cancelled;
        engine_stopped(plane, job, control, &cancelled, JobState::Aborted).await;
        return Ok(None);
    }
    let latest = DateTime::parse_from_rfc3339(&beat.time)
        .map_err(|e| {
            ApiError::internal(format!(
                "the database server's clock reads {:?}: {e}",
                beat.time
            ))
        })?
        .with_timezone(&Utc);
    let repo = storage::repo_for(plane, vault, None).await?;
    let tags = vec![
        format!("resource:{}", job.resource_arn),
        "continuous:wal".to_string(),
    ];
    let outcome = match repo
        .backup_async(
            SourceSpec::Directory(dir),
            rp.id.clone(),
            None,
            tags,
            control.observer(),
            control.cancel.clone(),
        )
        .await
    {
        Ok(o) => o,
        Err(e) => {
            engine_stopped(plane, job, control, &e, JobState::Aborted).await;
            return Ok(None);
        }
    };
    Ok(Some(Synced {
        wal: outcome.snapshot,
        latest,
        bytes_added: outcome.bytes_added as i64,
    }))
}

/// Records the sync in one transaction: the new point (with its earliest restorable time) or
/// the extended one, and the job COMPLETED naming it.
async fn record(
    plane: &Executor,
    job: &JobRecord,
    rp: RecoveryPointRecord,
    new: bool,
    synced: Synced,
    base_added: i64,
) -> Result<()> {
    let now = plane.clock().now();
    let run = job.run();
    let rp_tags = job.recovery_point_tags.clone();
    plane
        .store()
        .write(move |tx| -> Result<()> {
            let Some(mut j) = load_held(tx, &run)? else {
                return Ok(());
            };
            let mut rp = if new {
                rp
            } else {
                match tx.get(TABLE, &rp.key())? {
                    Some(v) => serde_json::from_slice(&v)?,
                    None => {
                        return Err(ApiError::invalid_request(format!(
                            "Recovery point {} was deleted while the job ran.",
                            rp.arn
                        ))
                        .into());
                    }
                }
            };
            if let Some(c) = rp.continuous.as_mut() {
                if new {
                    c.earliest_restorable = synced.latest;
                }
                c.wal.push(synced.wal.clone());
                c.latest_restorable = synced.latest;
            }
            rp.completion_date = now;
            rp.backup_size += synced.bytes_added;
            if new {
                recovery_points::insert(tx, &rp, &rp_tags)?;
            } else {
                tx.put(TABLE, &rp.key(), &serde_json::to_vec(&rp)?)?;
            }
            let range = rp.continuous.as_ref().map(|c| {
                format!(
                    "Continuous backup restorable from {} to {}.",
                    c.earliest_restorable.to_rfc3339(),
                    c.latest_restorable.to_rfc3339()
                )
            });
            j.state = JobState::Completed;
            j.percent_done = 100.0;
            j.backup_size = rp.backup_size;
            j.bytes_transferred = base_added + synced.bytes_added;
            j.completion_date = Some(now);
            j.recovery_point_id = Some(rp.id.clone());
            j.recovery_point_arn = Some(rp.arn.clone());
            j.status_message = range;
            j.message_category = Some("SUCCESS".into());
            j.lease_owner = None;
            j.lease_until = None;
            save_job(tx, &j)
        })
        .await
}

/// Restores a continuous point as of `target` into the database `dest` names (created and
/// empty): see `coffer_engine::sources::postgres_pitr::restore_point_in_time`.
pub(crate) async fn restore(
    plane: &Executor,
    job: &JobRecord,
    rp: &RecoveryPointRecord,
    vault: &VaultRecord,
    dest: PgConn,
    target: DateTime<Utc>,
    control: &JobControl,
) -> Result<coffer_engine::Result<()>> {
    let Some(c) = rp.continuous.as_ref() else {
        return Ok(Err(coffer_engine::Error::InvalidInput(format!(
            "{} is not a continuous recovery point",
            rp.arn
        ))));
    };
    let repo = storage::repo_for(plane, vault, None).await?;
    let run_as = is_root().then(|| {
        std::env::var("COFFER_PG_RUN_AS")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "postgres".to_string())
    });
    let r = PitrRestore {
        run_as: run_as.clone(),
        base: rp.snapshot.clone(),
        wal: c.wal.clone(),
        // The temporary server must reach its directory: as root it runs as another user,
        // who may not enter Coffer's data directory, so it works under the system's temp
        // directory then.
        work: match run_as {
            Some(_) => std::env::temp_dir().join(format!("coffer-pitr-{}", job.id)),
            None => plane
                .storage()?
                .pitr_dir()
                .join(format!("restore-{}", job.id)),
        },
        // PostgreSQL reads this form (not RFC 3339's `T` and `Z`) in recovery_target_time.
        target_time: target.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
        database: c.database.clone(),
        user: dest.user(),
        dest,
    };
    let cancel = control.cancel.clone();
    Ok(
        tokio::task::spawn_blocking(move || pitr::restore_point_in_time(&repo, &r, cancel))
            .await
            .map_err(|e| coffer_engine::Error::Engine(format!("engine task failed: {e}")))
            .and_then(|r| r),
    )
}

/// Whether Coffer runs as root (PostgreSQL refuses to: the temporary server then runs as
/// another system user).
fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}
