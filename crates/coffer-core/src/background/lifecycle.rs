//! The lifecycle sweep: recovery points move to cold storage at MoveToColdStorageAfterDays and
//! are deleted at DeleteAfterDays (counted from their creation date on Coffer's clock), never
//! before their vault lock's MinRetentionDays. It runs as its own worker and at every step of
//! the development clock's time travel, which steps to the next transition a sweep reports.
//! A sweep reads the lifecycle queue (`model::due`, `lifecycle_due`: each point's next
//! lifecycle date in time order) up to its now, never every recovery point.

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
use crate::model::{composite, due, events, recovery_points, retention, telemetry, vaults};

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
/// A sweep reads the due head of the lifecycle queue; the worker still skips ticks until the
/// earliest transition the last sweep saw is due, or `RESCAN` went by (for points added or
/// changed since, by this node or another).
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

/// Due entries read per transaction of a sweep.
const SWEEP_BATCH: usize = 256;

/// Builds the lifecycle queue (with the other recovery point indexes) once for a store
/// written before it existed (`recovery_points::build_indexes`).
pub(crate) async fn build_queue(plane: &Executor) -> Result<()> {
    recovery_points::build_indexes(plane).await
}

/// Moves recovery points to cold storage and deletes them as their lifecycle says, reading
/// only the points the lifecycle queue has due by `now`. A point held by its vault lock's
/// MinRetentionDays is queued again at the lock's date; one held by a legal hold or an access
/// point stays due (each sweep tries again). With a cold tier configured a cold move moves
/// the data (`dataplane::tiers`); with a low-cost tier, tiering configurations move S3 points
/// there (`background::tiering`, which reads every point). Tier moves a crash cut off are
/// finished first.
pub(crate) async fn sweep_lifecycle(plane: &Executor, now: DateTime<Utc>) -> Result<Swept> {
    let mut done = Swept::default();
    if plane.has_storage()
        && let Err(e) = tiers::resume_moves(plane).await
    {
        tracing::warn!(error = %coffer_api::error_chain(&e.0), "finishing an interrupted tier move failed; the next sweep tries again");
    }
    build_queue(plane).await?;
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor.clone();
        let scan = plane
            .store()
            .read(move |tx| {
                due::due_entries(tx, due::LIFECYCLE_DUE, now, after.as_deref(), SWEEP_BATCH)
            })
            .await?;
        if let Some(t) = scan.next {
            done.next = Some(done.next.map_or(t, |n| n.min(t)));
        }
        for (key, rp_key) in &scan.entries {
            cursor = Some(key.clone());
            if let Some(t) = sweep_one(plane, &mut done, rp_key.clone(), now).await?
                && t > now
            {
                done.next = Some(done.next.map_or(t, |n| n.min(t)));
            }
        }
        if !scan.more {
            break;
        }
    }
    let low_cost = plane
        .storage()
        .is_ok_and(|s| s.tier_dir(Tier::LowCost).is_some());
    if low_cost {
        let rows = plane
            .store()
            .read(|tx| scan_all(tx, recovery_points::TABLE, ""))
            .await?;
        let mut points = Vec::with_capacity(rows.len());
        for (key, v) in rows {
            let rp: RecoveryPointRecord = serde_json::from_slice(&v)?;
            if rp.composite.parent_arn.is_none() {
                points.push((key, rp));
            }
        }
        let (moved, next) = tiering::sweep_low_cost(plane, &points, now).await?;
        done.moved_to_low_cost = moved;
        if let Some(t) = next {
            done.next = Some(done.next.map_or(t, |n| n.min(t)));
        }
    }
    if done.deleted > 0 {
        plane.running().wake();
    }
    Ok(done)
}

/// Carries out what the lifecycle asks of the due point at `key` now (unless its vault lock
/// holds it), then queues it at its next lifecycle date, returned.
async fn sweep_one(
    plane: &Executor,
    done: &mut Swept,
    key: String,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>> {
    let k = key.clone();
    let found = plane
        .store()
        .read(
            move |tx| -> Result<Option<(RecoveryPointRecord, Option<DateTime<Utc>>)>> {
                let Some(v) = tx.get(recovery_points::TABLE, &k)? else {
                    return Ok(None);
                };
                let rp: RecoveryPointRecord = serde_json::from_slice(&v)?;
                let held = held_until(tx, &rp)?;
                Ok(Some((rp, held)))
            },
        )
        .await?;
    if let Some((rp, held)) = &found {
        match lifecycle_step(rp, now) {
            None => {}
            // Held by the vault lock: queued again at the lock's date below.
            Some(LifecycleStep::Delete) if held.is_some_and(|u| now < u) => {}
            Some(_) => carry_out(plane, done, rp, key.clone(), now).await?,
        }
    }
    plane
        .store()
        .write(move |tx| -> Result<Option<DateTime<Utc>>> {
            let at = match tx.get(recovery_points::TABLE, &key)? {
                Some(v) => {
                    let rp: RecoveryPointRecord = serde_json::from_slice(&v)?;
                    let held = held_until(tx, &rp)?;
                    recovery_points::lifecycle_due(&rp, held)
                }
                None => None,
            };
            due::queue_lifecycle(tx, &key, at)?;
            Ok(at)
        })
        .await
}

/// When `rp`'s vault lock lets it be deleted, if it holds it at all.
fn held_until(
    tx: &mut dyn coffer_store::Txn,
    rp: &RecoveryPointRecord,
) -> Result<Option<DateTime<Utc>>> {
    let vkey = vaults::key(&rp.account, &rp.region, &rp.vault_name);
    Ok(match tx.get(vaults::TABLE, &vkey)? {
        Some(v) => {
            let vault: vaults::VaultRecord = serde_json::from_slice(&v)?;
            recovery_points::locked_until(&vault, rp)
        }
        None => None,
    })
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
                        recovery_points::save(tx, &p)?;
                        events::recovery_point_modified(tx, &p, now, "moved to cold storage")?;
                    }
                    Ok(Some(LifecycleStep::MoveToCold))
                }
                None => Ok(None),
            }
        })
        .await
}
