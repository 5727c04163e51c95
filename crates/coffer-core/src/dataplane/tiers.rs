//! Storage tiers that hold data: moving a recovery point's snapshot into the cold or the
//! low-cost tier's repository, and finding a point's data wherever it is.
//!
//! Each configured tier is a directory; a vault gets its own repository in it on first use
//! (`TIER_DIR/<vault uid>`, made like the vault's own so both chunk alike, its key sealed
//! under the same master key and recorded in table `tier_repo`). A move (see
//! `model::tier_moves` for the journal) copies the snapshot into the tier, verifies the copy
//! (the same files, sizes, times and content blobs as the original, and every byte of every
//! file read back and authenticated from the tier), and then records it in one transaction
//! that also queues the old snapshot's removal; the runner's removal queue prunes the old
//! copy after that. Nothing is deleted before the tier's copy is verified and recorded, and a
//! move cut off by a crash is finished (or undone, when the point changed meanwhile) by the
//! next lifecycle sweep. Restores, copies, indexes, scans, access points and deletions read
//! through [`repo_holding`].

use coffer_api::ApiError;
use coffer_engine::{CancelToken, SnapshotRef, VaultLocation, VaultRepo};

use crate::dataplane::jobs::PAUSE_ENV;
use crate::dataplane::{Executor, storage};
use crate::model::error::Result;
use crate::model::recovery_points::{self, RecoveryPointRecord};
use crate::model::states::{StorageClass, Tier};
use crate::model::tier_moves::{self, TierMove};
use crate::model::vaults::{self, RepoRecord, VaultRecord};
use crate::model::{composite, deletions, events, retention};

/// Bytes read at a time when a tier's copy is read back.
const READ_BACK_CHUNK: usize = 4 << 20;

/// The repository of `vault` in `tier`, when one was made (whether or not the tier is still
/// configured: a recorded repository stays readable).
pub(crate) async fn recorded_tier_repo(
    plane: &Executor,
    vault: &VaultRecord,
    tier: Tier,
) -> Result<Option<VaultRepo>> {
    let storage = plane.storage()?;
    let key = tier_moves::repo_key(&vault.uid, tier);
    if let Some(r) = storage.cached(&key) {
        return Ok(Some(r));
    }
    let uid = vault.uid.clone();
    let Some(rec) = plane
        .store()
        .read(move |tx| tier_moves::tier_repo(tx, &uid, tier))
        .await?
    else {
        return Ok(None);
    };
    let master = storage.master_key().clone();
    let repo = tokio::task::spawn_blocking(move || {
        VaultRepo::open(rec.location, &rec.sealed_key, &master)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(storage::engine_failure)?;
    storage.keep_open(&key, &repo);
    Ok(Some(repo))
}

/// The repository of `vault` in `tier`, made (and recorded) on first use. The tier must be
/// configured for that.
async fn tier_repo(plane: &Executor, vault: &VaultRecord, tier: Tier) -> Result<VaultRepo> {
    if let Some(r) = recorded_tier_repo(plane, vault, tier).await? {
        return Ok(r);
    }
    let storage = plane.storage()?;
    let Some(dir) = storage.tier_dir(tier).map(|d| d.join(&vault.uid)) else {
        return Err(ApiError::invalid_request(format!(
            "No {} storage tier is configured on this server ([tiers] in its configuration file).",
            tier.as_str()
        ))
        .into());
    };
    let warm = storage::repo_for(plane, vault, None).await?;
    let _guard = storage.creating().lock().await;
    // Another move may have made it meanwhile.
    if let Some(r) = recorded_tier_repo(plane, vault, tier).await? {
        return Ok(r);
    }
    let leftover = dir.clone();
    tokio::task::spawn_blocking(move || storage::set_aside_leftover(&leftover))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let master = storage.master_key().clone();
    let (repo, sealed) = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(dir.parent().unwrap_or(&dir))
            .map_err(|e| coffer_engine::Error::Storage(e.to_string()))?;
        VaultRepo::create_like(VaultLocation::local(dir), &master, &warm)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(storage::engine_failure)?;
    let record = RepoRecord {
        location: repo.location().clone(),
        sealed_key: sealed,
    };
    let (vkey, name, uid) = (
        vaults::key(&vault.account, &vault.region, &vault.name),
        vault.name.clone(),
        vault.uid.clone(),
    );
    plane
        .store()
        .write(move |tx| -> Result<()> {
            // The vault may have been deleted meanwhile: then nothing records the repository.
            let v = vaults::load(tx, &vkey, &name)?;
            if v.uid != uid {
                return Err(
                    ApiError::not_found(format!("Backup vault '{name}' was deleted.")).into(),
                );
            }
            let k = tier_moves::repo_key(&uid, tier);
            tx.put(tier_moves::REPOS, &k, &serde_json::to_vec(&record)?)?;
            Ok(())
        })
        .await?;
    storage.keep_open(&tier_moves::repo_key(&vault.uid, tier), &repo);
    Ok(repo)
}

/// The repository that holds `rp`'s data: its vault's own, or the tier's it was moved to.
pub(crate) async fn repo_holding(
    plane: &Executor,
    vault: &VaultRecord,
    rp: &RecoveryPointRecord,
) -> Result<VaultRepo> {
    let Some(tier) = rp.tier else {
        return storage::repo_for(plane, vault, None).await;
    };
    recorded_tier_repo(plane, vault, tier)
        .await?
        .ok_or_else(|| {
            ApiError::internal(format!(
            "recovery point {} is recorded in the {} tier, which has no repository for vault {}",
            rp.arn,
            tier.as_str(),
            vault.name
        ))
        .into()
        })
}

/// What came of asking for a move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moved {
    /// The point's data is now in the tier (and recorded so).
    Done,
    /// Nothing moved: the point is gone, in that tier already, not movable (a composite
    /// parent, a cold point to the low-cost tier) or held by an access point.
    Skipped,
}

/// Moves the data of the point at `rp_key` into `to` (see the module comment).
pub(crate) async fn move_point(plane: &Executor, rp_key: &str, to: Tier) -> Result<Moved> {
    let now = plane.clock().now();
    let k = rp_key.to_string();
    let begun = plane
        .store()
        .write(move |tx| -> Result<Option<TierMove>> {
            let Some(v) = tx.get(recovery_points::TABLE, &k)? else {
                return Ok(None);
            };
            let rp: RecoveryPointRecord = serde_json::from_slice(&v)?;
            // A backup access point reads the point where it is: the move waits.
            if !tier_moves::may_move(&rp, to) || retention::lifecycle_paused(tx, &rp)?.is_some() {
                return Ok(None);
            }
            Ok(Some(tier_moves::begin(tx, &rp, to, now)?))
        })
        .await?;
    match begun {
        Some(m) => carry_out(plane, m).await,
        None => Ok(Moved::Skipped),
    }
}

/// Copies, verifies and records the journaled move `m`.
async fn carry_out(plane: &Executor, m: TierMove) -> Result<Moved> {
    let vault = vaults::find(plane, &m.account, &m.region, &m.vault_name)
        .await?
        .filter(|v| v.uid == m.vault_uid);
    let Some(vault) = vault else {
        undo(plane, &m, None).await?;
        return Ok(Moved::Skipped);
    };
    let source = match m.from {
        None => storage::repo_for(plane, &vault, None).await?,
        Some(t) => recorded_tier_repo(plane, &vault, t).await?.ok_or_else(|| {
            ApiError::internal(format!(
                "the {} tier lost vault {}'s repository",
                t.as_str(),
                vault.name
            ))
        })?,
    };
    let dest = tier_repo(plane, &vault, m.to).await?;
    let (src, dst, moving) = (source.clone(), dest.clone(), m.clone());
    let snapshot = tokio::task::spawn_blocking(move || copy_verified(&src, &dst, &moving))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| {
            ApiError::internal(format!(
                "moving recovery point {} to the {} tier: {e}",
                m.rp_id,
                m.to.as_str()
            ))
        })?;
    pause_at("tier-copied").await;
    match record(plane, &m, &snapshot).await? {
        Recorded::Yes => {
            tracing::info!(recovery_point = %m.rp_id, vault = %m.vault_name, from = tier_moves::place(m.from), to = m.to.as_str(), "moved a recovery point's data to a storage tier");
            pause_at("tier-recorded").await;
            // The runner removes the old copy from the removal queue.
            plane.running().wake();
            Ok(Moved::Done)
        }
        Recorded::Abandoned { delete_copy } => {
            if delete_copy && let Err(e) = dest.delete_async(snapshot).await {
                tracing::warn!(recovery_point = %m.rp_id, error = %e, "removing an abandoned tier copy failed; the next prune of that repository reclaims nothing of it, delete the snapshot by hand");
            }
            Ok(Moved::Skipped)
        }
    }
}

/// The tier's snapshot of the moved point: the one a move cut off by a crash left there, or
/// a new copy; verified against the original either way.
fn copy_verified(
    source: &VaultRepo,
    dest: &VaultRepo,
    m: &TierMove,
) -> std::result::Result<SnapshotRef, coffer_engine::Error> {
    let snapshot = match dest.find_recovery_point(&m.rp_id)? {
        Some(s) => s,
        None => source.copy_to(dest, &m.snapshot, &m.rp_id, |_| {}, CancelToken::new())?,
    };
    if let Err(e) = verify_copy(source, &m.snapshot, dest, &snapshot) {
        // A bad copy is never recorded; the next attempt copies again.
        let _ = dest.delete(&snapshot);
        return Err(e);
    }
    Ok(snapshot)
}

/// The tier's copy lists the same files (paths, sizes, times, content blobs) as the
/// original, and every byte of each reads back from the tier (authenticated on the way).
fn verify_copy(
    source: &VaultRepo,
    original: &SnapshotRef,
    dest: &VaultRepo,
    copy: &SnapshotRef,
) -> std::result::Result<(), coffer_engine::Error> {
    let damaged = |what: String| coffer_engine::Error::VaultDamaged(what);
    let want = source.catalog(original, CancelToken::new())?;
    let reader = dest.open_reader(copy)?;
    if reader.files() != want.as_slice() {
        return Err(damaged(format!(
            "the tier's copy lists {} files that differ from the original's {}",
            reader.files().len(),
            want.len()
        )));
    }
    for entry in &want {
        let file = reader
            .open(&entry.path)?
            .ok_or_else(|| damaged(format!("{} is missing from the tier's copy", entry.path)))?;
        let mut offset = 0u64;
        while offset < entry.size {
            let chunk = reader.read_at(&file, offset, READ_BACK_CHUNK)?;
            if chunk.is_empty() {
                return Err(damaged(format!(
                    "{} reads back short from the tier ({offset} of {} bytes)",
                    entry.path, entry.size
                )));
            }
            offset += chunk.len() as u64;
        }
    }
    Ok(())
}

enum Recorded {
    Yes,
    /// The point changed (deleted, moved, its access point opened) while its data was
    /// copied: the move is dropped, and its copy deleted unless the point records it.
    Abandoned {
        delete_copy: bool,
    },
}

/// Points the record at the tier's copy, flips StorageClass for a cold move, queues the old
/// snapshot's removal and ends the journal entry, in one transaction.
async fn record(plane: &Executor, m: &TierMove, copy: &SnapshotRef) -> Result<Recorded> {
    let (m, copy, now) = (m.clone(), copy.clone(), plane.clock().now());
    plane
        .store()
        .write(move |tx| -> Result<Recorded> {
            let current = tier_moves::is_current(tx, &m)?;
            let rp = match tx.get(recovery_points::TABLE, &m.rp_key)? {
                Some(v) => Some(serde_json::from_slice::<RecoveryPointRecord>(&v)?),
                None => None,
            };
            let unchanged = rp
                .as_ref()
                .is_some_and(|rp| rp.tier == m.from && rp.snapshot == m.snapshot);
            let paused = match &rp {
                Some(rp) => retention::lifecycle_paused(tx, rp)?.is_some(),
                None => false,
            };
            let (Some(mut rp), true, true, false) = (rp.clone(), current, unchanged, paused) else {
                if current {
                    tier_moves::end(tx, &m.rp_key)?;
                }
                let recorded_there = rp.is_some_and(|p| p.tier == Some(m.to) && p.snapshot == copy);
                return Ok(Recorded::Abandoned {
                    delete_copy: !recorded_there,
                });
            };
            rp.tier = Some(m.to);
            rp.snapshot = copy.clone();
            if m.to == Tier::Cold {
                rp.storage_class = StorageClass::Cold;
            }
            tx.put(recovery_points::TABLE, &m.rp_key, &serde_json::to_vec(&rp)?)?;
            if m.to == Tier::Cold {
                events::recovery_point_modified(tx, &rp, now, "moved to cold storage")?;
            }
            deletions::enqueue(tx, &old_copy_removal(&m))?;
            tier_moves::end(tx, &m.rp_key)?;
            Ok(Recorded::Yes)
        })
        .await
}

/// The removal of the snapshot a move left behind, queued under its own key (the point's
/// own deletion later queues another).
fn old_copy_removal(m: &TierMove) -> deletions::Deletion {
    deletions::Deletion {
        account: m.account.clone(),
        region: m.region.clone(),
        vault_name: m.vault_name.clone(),
        vault_uid: m.vault_uid.clone(),
        snapshot: m.snapshot.clone(),
        rp_key: format!("{}:moved-from-{}", m.rp_key, tier_moves::place(m.from)),
        tier: m.from,
        attempts: 0,
        last_error: None,
        next_attempt: None,
        failed_at: None,
        release_slot: None,
    }
}

/// Drops the journaled move `m` without recording it, deleting a copy it left in the tier
/// unless the point records that copy.
async fn undo(plane: &Executor, m: &TierMove, rp: Option<&RecoveryPointRecord>) -> Result<()> {
    let vault = vaults::find(plane, &m.account, &m.region, &m.vault_name)
        .await?
        .filter(|v| v.uid == m.vault_uid);
    if let Some(vault) = vault
        && let Some(dest) = recorded_tier_repo(plane, &vault, m.to).await?
    {
        let (id, keep) = (
            m.rp_id.clone(),
            rp.filter(|p| p.tier == Some(m.to))
                .map(|p| p.snapshot.clone()),
        );
        let found =
            tokio::task::spawn_blocking(move || dest.find_recovery_point(&id).map(|s| (dest, s)))
                .await
                .map_err(ApiError::internal)?
                .map_err(storage::engine_failure)?;
        if let (dest, Some(s)) = found
            && Some(&s) != keep.as_ref()
        {
            dest.delete_async(s)
                .await
                .map_err(storage::engine_failure)?;
        }
    }
    let k = m.rp_key.clone();
    let moving = m.clone();
    plane
        .store()
        .write(move |tx| -> Result<()> {
            if tier_moves::is_current(tx, &moving)? {
                tier_moves::end(tx, &k)?;
            }
            Ok(())
        })
        .await
}

/// Finishes the moves a crash cut off: a point still where the move found it is moved (the
/// copy already in the tier is verified and used); for any other the move is undone.
/// Returns how many were finished.
pub(crate) async fn resume_moves(plane: &Executor) -> Result<usize> {
    let moves = plane.store().read(|tx| tier_moves::journaled(tx)).await?;
    let mut finished = 0;
    for m in moves {
        let k = m.rp_key.clone();
        let rp = plane
            .store()
            .read(move |tx| -> Result<Option<RecoveryPointRecord>> {
                match tx.get(recovery_points::TABLE, &k)? {
                    Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
                    None => Ok(None),
                }
            })
            .await?;
        let unchanged = rp
            .as_ref()
            .is_some_and(|p| p.tier == m.from && p.snapshot == m.snapshot);
        tracing::warn!(recovery_point = %m.rp_id, vault = %m.vault_name, to = m.to.as_str(), finishing = unchanged, "a tier move was cut off (a crash or a failure); finishing it, or undoing it when the point changed");
        if unchanged {
            if carry_out(plane, m).await? == Moved::Done {
                finished += 1;
            }
        } else {
            undo(plane, &m, rp.as_ref()).await?;
        }
    }
    Ok(finished)
}

/// The lifecycle's cold move with a cold tier configured: the data of the point at `key`
/// (of each nested point, for a composite parent) moves to the cold tier; a parent's
/// StorageClass flips once its nested points are cold. Returns whether the point is cold now.
pub(crate) async fn move_to_cold(plane: &Executor, key: String) -> Result<bool> {
    let k = key.clone();
    let points = plane
        .store()
        .read(move |tx| -> Result<Option<Vec<RecoveryPointRecord>>> {
            let Some(v) = tx.get(recovery_points::TABLE, &k)? else {
                return Ok(None);
            };
            let rp: RecoveryPointRecord = serde_json::from_slice(&v)?;
            let mut points = if rp.composite.is_parent {
                composite::children(tx, &rp)?
            } else {
                Vec::new()
            };
            points.push(rp);
            Ok(Some(points))
        })
        .await?;
    let Some(points) = points else {
        return Ok(false);
    };
    let mut all_cold = true;
    for p in points.iter().filter(|p| !p.composite.is_parent) {
        if p.tier != Some(Tier::Cold)
            && move_point(plane, &p.key(), Tier::Cold).await? == Moved::Skipped
        {
            all_cold = false;
        }
    }
    if !all_cold {
        return Ok(false);
    }
    flip_parent(plane, key).await?;
    Ok(true)
}

/// Marks a composite parent COLD once its data (its nested points') is in the cold tier.
async fn flip_parent(plane: &Executor, key: String) -> Result<()> {
    let now = plane.clock().now();
    plane
        .store()
        .write(move |tx| -> Result<()> {
            let Some(v) = tx.get(recovery_points::TABLE, &key)? else {
                return Ok(());
            };
            let mut rp: RecoveryPointRecord = serde_json::from_slice(&v)?;
            if rp.composite.is_parent && rp.storage_class == StorageClass::Warm {
                rp.storage_class = StorageClass::Cold;
                tx.put(recovery_points::TABLE, &key, &serde_json::to_vec(&rp)?)?;
                events::recovery_point_modified(tx, &rp, now, "moved to cold storage")?;
            }
            Ok(())
        })
        .await
}

/// A test hook: with `COFFER_TEST_PAUSE_AT` naming `point` (`tier-copied`: the tier's copy is
/// verified but not recorded; `tier-recorded`: recorded, the old copy not yet removed), the
/// move stops there for good, so a test can kill the process at that step. Unset in
/// production.
async fn pause_at(point: &str) {
    if std::env::var(PAUSE_ENV).ok().as_deref() == Some(point) {
        tracing::warn!(
            point,
            "a tier move is paused by {PAUSE_ENV} and never resumes in this process"
        );
        std::future::pending::<()>().await;
    }
}
