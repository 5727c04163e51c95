//! The restore testing step of the scheduler: runs restore testing plans when they are due
//! and deletes restore tests' scratch data when their validation windows end.
//!
//! [`run_due`] claims every due scheduled run of every plan (one transaction per run, with
//! `insert_new` on the run's key so a second node or pass does nothing) and creates its
//! restore jobs (`model::restore_testing::start_run`); a run whose start window ended while
//! Coffer was not running is skipped. The runner runs the jobs like any restore, and the data
//! plane validates them. Then the scratch sweep (`dataplane::restore_testing`) deletes what
//! is due. The plans due are read from the queue `rt_due` (`model::due`), never all plans.
//! The scheduler worker calls [`run_due`] on every tick, catch-up and time travel at
//! every step; [`next_due`] is the time travel's next event for them.

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use crate::dataplane::Executor;
use crate::dataplane::restore_testing::sweep;
use crate::model::due;
use crate::model::error::Result;
use crate::model::restore_testing::*;

/// What one step did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Done {
    /// Scheduled runs claimed here.
    pub runs: usize,
    /// Restore jobs those runs created.
    pub jobs: usize,
    /// Restore tests whose scratch data was deleted.
    pub deleted: usize,
}

fn run_key(p: &PlanRecord, at: DateTime<Utc>) -> String {
    format!(
        "{}:{}:{}:{}",
        p.account,
        p.region,
        p.name,
        at.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

/// The plans read per transaction while an older store's queue is built.
const BUILD_BATCH: usize = 500;

/// Builds the queue of the plans' next runs (`rt_due`) once for a store written before it
/// existed, a bounded batch of plans per transaction. Afterwards this is one read.
async fn build_queue(plane: &Executor) -> Result<()> {
    if !plane
        .store()
        .read(|tx| due::needs_backfill(tx, "restore_testing"))
        .await?
    {
        return Ok(());
    }
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor.take();
        let last = plane
            .store()
            .write(move |tx| -> Result<Option<String>> {
                let rows = tx.scan(PLANS, "", after.as_deref(), BUILD_BATCH)?;
                let last = (rows.len() == BUILD_BATCH)
                    .then(|| rows.last().map(|(k, _)| k.clone()))
                    .flatten();
                for (_, v) in rows {
                    queue_plan(tx, &serde_json::from_slice(&v)?)?;
                }
                Ok(last)
            })
            .await?;
        match last {
            Some(k) => cursor = Some(k),
            None => break,
        }
    }
    let now = plane.clock().now();
    plane
        .store()
        .write(move |tx| due::backfilled(tx, "restore_testing", now))
        .await
}

/// Every (plan, scheduled time) due by `now`, oldest first, from the head of the queue
/// `rt_due`; an entry its plan no longer agrees with (the plan was deleted or moved on) is
/// dropped.
async fn due_runs(
    plane: &Executor,
    now: DateTime<Utc>,
) -> Result<Vec<(String, String, String, DateTime<Utc>)>> {
    build_queue(plane).await?;
    plane
        .store()
        .write(move |tx| -> Result<Vec<_>> {
            let scan = due::due_entries(tx, DUE, now, None, usize::MAX - 1)?;
            let mut due = Vec::new();
            for (k, plan_key) in scan.entries {
                let at = due::due_time(&k);
                let plan = match tx.get(PLANS, &plan_key)? {
                    Some(v) => Some(serde_json::from_slice::<PlanRecord>(&v)?),
                    None => None,
                };
                match plan {
                    Some(p) if p.next_run.is_some() && p.next_run == at => {
                        due.push((p.account, p.region, p.name, p.next_run.unwrap_or(now)));
                    }
                    _ => {
                        tx.delete(DUE, &k)?;
                    }
                }
            }
            Ok(due)
        })
        .await
}

/// Claims and carries out one scheduled run of a plan, in one transaction: moves the plan's
/// next run on and creates the run's jobs. `None` when the run was already claimed or the
/// plan changed.
async fn run_one(
    plane: &Executor,
    (account, region, name, at): (String, String, String, DateTime<Utc>),
    now: DateTime<Utc>,
) -> Result<Option<usize>> {
    let inventory = plane.inventory().clone();
    let scratch = plane.storage()?.scratch_dir();
    plane
        .store()
        .write(move |tx| -> Result<Option<usize>> {
            let Some(mut plan) = find_plan(tx, &account, &region, &name)? else {
                return Ok(None);
            };
            if plan.next_run != Some(at) {
                return Ok(None);
            }
            let sched = schedule(
                &plan.schedule_expression,
                plan.schedule_expression_timezone.as_deref(),
            )?;
            let window = Duration::hours(plan.start_window_hours.into());
            if at + window <= now {
                // Coffer was not running during this run's start window (time travel never
                // skips one): like AWS, the missed runs are skipped, up to the first whose
                // window is still open.
                tracing::warn!(plan = %plan.name, missed = %at, "a restore testing plan's run was missed while Coffer was not running; skipped");
                plan.next_run = sched.next_after(now - window);
                put_plan(tx, &plan)?;
                return Ok(None);
            }
            plan.next_run = sched.next_after(at);
            if !tx.insert_new(RUNS, &run_key(&plan, at), b"{}")? {
                put_plan(tx, &plan)?;
                return Ok(None);
            }
            // The claim is history once its time has passed: pruned like the plans' firings.
            let claim = (RUNS.to_string(), run_key(&plan, at));
            crate::model::history::record(tx, at, &[claim])?;
            let run = RunSpec {
                plan: &plan,
                at,
                inventory: &inventory,
                scratch_root: &scratch,
            };
            let ids = start_run(tx, &run)?;
            tx.put(RUNS, &run_key(&plan, at), &serde_json::to_vec(&ids)?)?;
            plan.last_execution_time = Some(at);
            put_plan(tx, &plan)?;
            Ok(Some(ids.len()))
        })
        .await
}

/// Runs every restore testing plan due by `now`, then deletes the scratch data due by then.
pub(crate) async fn run_due(plane: &Executor, now: DateTime<Utc>) -> Result<Done> {
    let mut done = Done::default();
    if !plane.has_storage() {
        return Ok(done);
    }
    // A run picks each resource's point from the recovery point indexes.
    crate::model::recovery_points::build_indexes(plane).await?;
    for d in due_runs(plane, now).await? {
        if let Some(n) = run_one(plane, d, now).await? {
            done.runs += 1;
            done.jobs += n;
        }
    }
    if done.jobs > 0 {
        plane.running().wake();
    }
    done.deleted = sweep(plane, now).await?.deleted;
    Ok(done)
}

/// The next time restore testing has something to do after `at`: a plan's next run or a
/// restore test's scratch deletion.
pub(crate) async fn next_due(plane: &Executor, at: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
    if !plane.has_storage() {
        return Ok(None);
    }
    build_queue(plane).await?;
    let run = plane.store().read(|tx| due::first_due(tx, DUE)).await?;
    // A sweep at `at` deletes nothing more; it reports when the next test is due.
    let deletion = sweep(plane, at).await?.next;
    Ok([run, deletion].into_iter().flatten().min())
}
