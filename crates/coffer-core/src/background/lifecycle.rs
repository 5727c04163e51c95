//! The lifecycle sweep: recovery points move to cold storage at MoveToColdStorageAfterDays and
//! are deleted at DeleteAfterDays (counted from their creation date on Coffer's clock), never
//! before their vault lock's MinRetentionDays. It runs as its own worker and at every step of
//! the development clock's time travel, which steps to the next transition a sweep reports.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::background::tiering;
use crate::background::worker::{PassSkip, Worker};
use crate::dataplane::{Executor, tiers};
use crate::model::error::Result;
use crate::model::paging::scan_all;
use crate::model::recovery_points::RecoveryPointRecord;
use crate::model::states::{StorageClass, Tier};
use crate::model::{composite, events, recovery_points, retention, telemetry, vaults};

/// What one sweep did, and when the next transition is due.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Swept {
    pub moved_to_cold: usize,
    /// Points a tiering configuration moved to the low-cost tier.
    pub moved_to_low_cost: usize,
    pub deleted: usize,
    /// The earliest time after the sweep's `now` at which a recovery point it saw moves to
    /// cold storage or is deleted (or its vault lock lets it be deleted).
    pub next: Option<DateTime<Utc>>,
}

/// The sweep as a [`Worker`]: one sweep per tick, one at a time with the scheduler's passes
/// (`pass` is the scheduler's pass lock).
///
/// A sweep reads every recovery point, so the worker skips ticks until the earliest
/// transition the last sweep saw is due, or `RESCAN` went by (for points added or changed
/// since, by this node or another).
pub(crate) struct LifecycleWorker {
    pub pass: Arc<tokio::sync::Mutex<()>>,
    pub plane: Executor,
    pub skip: PassSkip,
}

#[async_trait]
impl Worker for LifecycleWorker {
    fn name(&self) -> &'static str {
        "lifecycle sweep"
    }

    async fn tick(&self) -> std::result::Result<(), String> {
        let _one_at_a_time = self.pass.lock().await;
        let now = self.plane.clock().now();
        if self.skip.skip(now) {
            return Ok(());
        }
        let swept = sweep_lifecycle(&self.plane, now)
            .await
            .map_err(|e| coffer_api::error_chain(&e.0))?;
        self.skip.passed(swept.next);
        Ok(())
    }
}

/// What the lifecycle asks of one recovery point at `now`.
enum LifecycleStep {
    Delete,
    MoveToCold,
}

fn lifecycle_step(rp: &RecoveryPointRecord, now: DateTime<Utc>) -> Option<LifecycleStep> {
    let l = rp.lifecycle.as_ref()?;
    if l.delete_after_days
        .is_some_and(|d| rp.creation_date + Duration::days(d) <= now)
    {
        return Some(LifecycleStep::Delete);
    }
    if rp.storage_class == StorageClass::Warm
        && l.move_to_cold_storage_after_days
            .is_some_and(|d| rp.creation_date + Duration::days(d) <= now)
    {
        return Some(LifecycleStep::MoveToCold);
    }
    None
}

/// When `rp`'s lifecycle next asks something of it after `now`; `held` is when its vault
/// lock lets it be deleted.
fn next_transition(
    rp: &RecoveryPointRecord,
    now: DateTime<Utc>,
    held: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let l = rp.lifecycle.as_ref()?;
    let cold = l
        .move_to_cold_storage_after_days
        .filter(|_| rp.storage_class == StorageClass::Warm)
        .map(|d| rp.creation_date + Duration::days(d));
    let delete = l
        .delete_after_days
        .map(|d| rp.creation_date + Duration::days(d))
        .map(|d| held.map_or(d, |h| d.max(h)));
    [cold, delete]
        .into_iter()
        .flatten()
        .filter(|t| *t > now)
        .min()
}

/// Moves recovery points to cold storage and deletes them as their lifecycle says. A point
/// held by its vault lock's MinRetentionDays stays until the lock allows (a later sweep
/// deletes it then). With a cold tier configured a cold move moves the data
/// (`dataplane::tiers`); with a low-cost tier, tiering configurations move S3 points there
/// (`background::tiering`). Tier moves a crash cut off are finished first.
pub(crate) async fn sweep_lifecycle(plane: &Executor, now: DateTime<Utc>) -> Result<Swept> {
    let mut done = Swept::default();
    if plane.has_storage()
        && let Err(e) = tiers::resume_moves(plane).await
    {
        tracing::warn!(error = %coffer_api::error_chain(&e.0), "finishing an interrupted tier move failed; the next sweep tries again");
    }
    let (rows, vault_rows) = plane
        .store()
        .read(|tx| {
            Ok::<_, coffer_store::StoreError>((
                scan_all(tx, recovery_points::TABLE, "")?,
                scan_all(tx, vaults::TABLE, "")?,
            ))
        })
        .await?;
    let mut vaults_by_key = std::collections::HashMap::new();
    for (k, v) in vault_rows {
        vaults_by_key.insert(k, serde_json::from_slice::<vaults::VaultRecord>(&v)?);
    }
    let mut points = Vec::with_capacity(rows.len());
    for (key, v) in rows {
        let rp: RecoveryPointRecord = serde_json::from_slice(&v)?;
        // A nested point follows its composite parent's lifecycle.
        if rp.composite.parent_arn.is_some() {
            continue;
        }
        let held = vaults_by_key
            .get(&vaults::key(&rp.account, &rp.region, &rp.vault_name))
            .and_then(|v| recovery_points::locked_until(v, &rp));
        if let Some(t) = next_transition(&rp, now, held) {
            done.next = Some(done.next.map_or(t, |n| n.min(t)));
        }
        let step = lifecycle_step(&rp, now);
        match step {
            None => {}
            // Held by the vault lock: nothing to write until the lock allows it.
            Some(LifecycleStep::Delete) if held.is_some_and(|u| now < u) => {}
            Some(_) => carry_out(plane, &mut done, &rp, key.clone(), now).await?,
        }
        points.push((key, rp));
    }
    let (moved, next) = tiering::sweep_low_cost(plane, &points, now).await?;
    done.moved_to_low_cost = moved;
    if let Some(t) = next {
        done.next = Some(done.next.map_or(t, |n| n.min(t)));
    }
    if done.deleted > 0 {
        plane.running().wake();
    }
    Ok(done)
}

/// Carries out the step the lifecycle asks of `rp` now, counting it in `done`.
async fn carry_out(
    plane: &Executor,
    done: &mut Swept,
    rp: &RecoveryPointRecord,
    key: String,
    now: DateTime<Utc>,
) -> Result<()> {
    let cold_tier = plane
        .storage()
        .is_ok_and(|s| s.tier_dir(Tier::Cold).is_some());
    let step = match lifecycle_step(rp, now) {
        // The data moves: a failure is logged and tried again by the next sweep.
        Some(LifecycleStep::MoveToCold) if cold_tier => match tiers::move_to_cold(plane, key).await
        {
            Ok(true) => Some(LifecycleStep::MoveToCold),
            Ok(false) => None,
            Err(e) => {
                tracing::warn!(recovery_point = %rp.arn, error = %coffer_api::error_chain(&e.0), "moving a recovery point to the cold tier failed; the next sweep tries again");
                None
            }
        },
        _ => apply_step(plane, key, now).await?,
    };
    match step {
        Some(LifecycleStep::Delete) => {
            telemetry::lifecycle_action("delete");
            tracing::info!(recovery_point = %rp.arn, vault = %rp.vault_name, resource = %rp.resource_arn, "lifecycle deleted a recovery point");
            done.deleted += 1;
        }
        Some(LifecycleStep::MoveToCold) => {
            telemetry::lifecycle_action("move_to_cold");
            tracing::info!(recovery_point = %rp.arn, vault = %rp.vault_name, resource = %rp.resource_arn, "lifecycle moved a recovery point to cold storage");
            done.moved_to_cold += 1;
        }
        None => {}
    }
    Ok(())
}

/// Carries out what the lifecycle asks of the recovery point at `key` now, in one
/// transaction that reads it again (it may have changed since the scan).
async fn apply_step(
    plane: &Executor,
    key: String,
    now: DateTime<Utc>,
) -> Result<Option<LifecycleStep>> {
    plane
        .store()
        .write(move |tx| -> Result<Option<LifecycleStep>> {
            // Read again: the point may have changed since the scan.
            let Some(v) = tx.get(recovery_points::TABLE, &key)? else {
                return Ok(None);
            };
            let rp: RecoveryPointRecord = serde_json::from_slice(&v)?;
            if rp.composite.parent_arn.is_some() {
                return Ok(None);
            }
            match lifecycle_step(&rp, now) {
                Some(LifecycleStep::Delete) => {
                    let vkey = vaults::key(&rp.account, &rp.region, &rp.vault_name);
                    let mut vault = vaults::load(tx, &vkey, &rp.vault_name)?;
                    // Held by the vault lock, a legal hold or an access point (its own or a
                    // nested point's, for a composite): a later sweep deletes it.
                    match composite::delete(tx, &mut vault, &rp, now)? {
                        Ok(_) => Ok(Some(LifecycleStep::Delete)),
                        Err(_) => Ok(None),
                    }
                }
                Some(LifecycleStep::MoveToCold) => {
                    let mut moving = if rp.composite.is_parent {
                        composite::children(tx, &rp)?
                    } else {
                        Vec::new()
                    };
                    moving.push(rp);
                    // A backup access point pauses the lifecycle: a later sweep moves it.
                    for p in &moving {
                        if retention::lifecycle_paused(tx, p)?.is_some() {
                            return Ok(None);
                        }
                    }
                    for mut p in moving {
                        p.storage_class = StorageClass::Cold;
                        tx.put(recovery_points::TABLE, &p.key(), &serde_json::to_vec(&p)?)?;
                        events::recovery_point_modified(tx, &p, now, "moved to cold storage")?;
                    }
                    Ok(Some(LifecycleStep::MoveToCold))
                }
                None => Ok(None),
            }
        })
        .await
}
