//! The restore testing step of the scheduler: runs restore testing plans when they are due
//! and deletes restore tests' scratch data when their validation windows end.
//!
//! [`run_due`] claims every due scheduled run of every plan (one transaction per run, with
//! `insert_new` on the run's key so a second node or pass does nothing) and creates its
//! restore jobs (`model::restore_testing::start_run`); a run whose start window ended while
//! Coffer was not running is skipped. The runner runs the jobs like any restore, and the data
//! plane validates them. Then the scratch sweep (`dataplane::restore_testing`) deletes what
//! is due. The scheduler worker calls [`run_due`] on every tick, catch-up and time travel at
//! every step; [`next_due`] is the time travel's next event for them.

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use crate::dataplane::Executor;
use crate::dataplane::restore_testing::sweep;
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

/// Every (plan, scheduled time) due by `now`, oldest first.
async fn due_runs(
    plane: &Executor,
    now: DateTime<Utc>,
) -> Result<Vec<(String, String, String, DateTime<Utc>)>> {
    let plans = plane.store().read(all_plans).await?;
    let mut due: Vec<_> = plans
        .into_iter()
        .filter_map(|p| {
            let at = p.next_run.filter(|t| *t <= now)?;
            Some((p.account, p.region, p.name, at))
        })
        .collect();
    due.sort_by_key(|d| d.3);
    Ok(due)
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
    let plans = plane.store().read(all_plans).await?;
    let run = plans.iter().filter_map(|p| p.next_run).min();
    // A sweep at `at` deletes nothing more; it reports when the next test is due.
    let deletion = sweep(plane, at).await?.next;
    Ok([run, deletion].into_iter().flatten().min())
}
