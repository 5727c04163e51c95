//! Time travel: moving the development clock runs the skipped time as if Coffer had been up.
//!
//! A user who moves the clock a day means "let a day pass", not "Coffer was down for a day".
//! So `POST /_coffer/clock` does not jump: it runs the interval as a discrete-event
//! simulation. Holding the scheduler's pass lock (no firing or sweep of the workers at a later
//! time meanwhile) and the runner (only this simulation's passes claim jobs), it holds the
//! clock and steps it from event to event:
//!
//! 1. at each step's time it carries out what is due then: the rules' firings, the ends of
//!    the completion windows of running jobs, the runner's passes (waiting jobs past their
//!    StartBy become EXPIRED, the others are claimed and run), the lifecycle sweep and the
//!    report plans due;
//! 2. it waits until every job it started has ended or is waiting for something outside it
//!    (the test pause point): the clock stands still meanwhile, so **a job takes no simulated
//!    time**: its StartDate and CompletionDate are the step's time, and it never outlives its
//!    completion window unless it would never end by itself (a waiting job is stopped when
//!    the clock reaches its window's end);
//! 3. it steps the clock to the next event: the earliest next firing of any rule or restore
//!    testing plan, restore test scratch deletion, lifecycle transition, StartBy of a waiting
//!    job, completion window end of a running one or report plan's daily run, or the target,
//!    whichever comes first.
//!
//! Only the next event is ever computed, so a year of hourly rules runs step by step in
//! bounded memory; progress goes to the log every few seconds. Notification delivery retries
//! are not events of the simulation: their backoff counts wall-clock time (an endpoint that is
//! down does not come back sooner because the clock moved), while the messages carry the
//! simulated times of what they report. Real downtime (a process that was not running) is not
//! time travel: the scheduler worker's catch-up records missed windows EXPIRED as before.
//!
//! Report plans' daily runs (`background::reports`), restore testing plans' runs and their
//! scratch deletions (`background::restore_testing`) are events too. Timed work joins by
//! adding its next due time in [`next_event`] and its work in [`run_step`].

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use coffer_api::ApiError;
use serde::Serialize;

use crate::background::history;
use crate::background::lifecycle;
use crate::background::reports;
use crate::background::restore_testing;
use crate::background::runner::{Runner, RunnerHeld};
use crate::background::scheduler::{self, CatchUp, Scheduler};
use crate::dataplane::Executor;
use crate::model::clock::Clock;
use crate::model::error::Result;
use crate::model::jobs::{JobKind, load_job};
use crate::model::queue;

/// Where the clock goes.
#[derive(Debug, Clone, Copy)]
pub enum Destination {
    /// Forward by this much.
    Advance(Duration),
    /// To this time (not before now).
    At(DateTime<Utc>),
}

/// Why time travel did not happen or did not finish.
#[derive(Debug)]
pub enum TravelError {
    /// The move itself is refused (system clock, backwards): the caller's mistake.
    Refused(String),
    /// Something failed on the way; the clock stays at the step it reached.
    Failed(ApiError),
}

/// What happened at one step of the simulation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Step {
    pub at: DateTime<Utc>,
    pub firings: usize,
    /// Running jobs stopped because their completion window ended.
    pub window_stops: usize,
    /// Waiting jobs recorded EXPIRED because their start window ended.
    pub expired: usize,
    pub started: usize,
    pub moved_to_cold: usize,
    pub deleted: usize,
}

/// What one time travel did: the answer of `POST /_coffer/clock`.
#[derive(Debug, Clone, Serialize)]
pub struct Travelled {
    /// Where the clock was.
    pub from: DateTime<Utc>,
    /// Where it is now (the target).
    pub now: DateTime<Utc>,
    /// How many times the clock stopped on the way (events, the start and the target).
    pub steps: usize,
    /// Rule firings carried out.
    pub firings: usize,
    /// Jobs that ended during the travel, by kind and final state (`{"backup":
    /// {"COMPLETED": 8}}`), whether they ran or expired waiting.
    pub jobs: BTreeMap<&'static str, BTreeMap<String, usize>>,
    /// Jobs started during the travel and still running at its end (waiting jobs).
    pub still_running: usize,
    /// Recovery points moved to cold storage.
    pub moved_to_cold: usize,
    /// Recovery points deleted at the end of their lifecycle.
    pub deleted: usize,
    /// Scheduled runs of restore testing plans carried out.
    pub restore_test_runs: usize,
    /// Restore tests whose scratch data was deleted.
    pub restore_tests_deleted: usize,
}

impl Travelled {
    fn count(&mut self, kind: JobKind, state: &str) {
        *self
            .jobs
            .entry(kind.tag())
            .or_default()
            .entry(state.to_string())
            .or_default() += 1;
    }
}

/// Lets the clock run with the system time again, however the travel ends.
struct Release<'a>(&'a Clock);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Moves the clock to `to`, step by step (see the module comment). `observe` sees each step.
pub(crate) async fn travel(
    scheduler: &Scheduler,
    plane: &Executor,
    runner: &Runner,
    to: Destination,
    observe: &mut (dyn FnMut(&Step) + Send),
) -> std::result::Result<Travelled, TravelError> {
    let _no_worker_firings = scheduler.lock_pass().await;
    let held = runner.hold().await;
    let clock = plane.clock();
    let from = clock.hold().map_err(TravelError::Refused)?;
    let _release = Release(clock);
    let target = match to {
        Destination::Advance(d) if d < Duration::zero() => {
            return Err(TravelError::Refused(
                "the clock never moves backwards".into(),
            ));
        }
        Destination::Advance(d) => from.checked_add_signed(d).ok_or_else(|| {
            TravelError::Refused(format!(
                "advancing {}s goes past the last time Coffer can represent",
                d.num_seconds()
            ))
        })?,
        Destination::At(t) if t < from => {
            return Err(TravelError::Refused(format!(
                "the clock never moves backwards: {t} is before now ({from})"
            )));
        }
        Destination::At(t) => t,
    };
    let mut out = Travelled {
        from,
        now: target,
        steps: 0,
        firings: 0,
        jobs: BTreeMap::new(),
        still_running: 0,
        moved_to_cold: 0,
        deleted: 0,
        restore_test_runs: 0,
        restore_tests_deleted: 0,
    };
    let fail = TravelError::Failed;
    let mut in_flight = Vec::new();
    let (mut at, mut logged) = (from, std::time::Instant::now());
    loop {
        let (step, lifecycle_next) = run_step(plane, runner, &held, at, &mut in_flight, &mut out)
            .await
            .map_err(|e| fail(e.0))?;
        out.steps += 1;
        observe(&step);
        if logged.elapsed() >= std::time::Duration::from_secs(5) {
            tracing::info!(at = %at, target = %target, steps = out.steps, firings = out.firings, "time travel under way");
            logged = std::time::Instant::now();
        }
        let again = step.firings > 0;
        let next = next_event(plane, at, again, lifecycle_next)
            .await
            .map_err(|e| fail(e.0))?;
        if at >= target && next.is_none_or(|n| n > at) {
            break;
        }
        at = next.map_or(target, |n| n.min(target));
        clock.set(at).map_err(TravelError::Refused)?;
    }
    out.still_running = in_flight.len();
    // History that the skipped days made old is pruned as the worker would have.
    history::prune_history(plane).await.map_err(|e| fail(e.0))?;
    tracing::info!(from = %from, now = %target, steps = out.steps, firings = out.firings, jobs = ?out.jobs, moved_to_cold = out.moved_to_cold, deleted = out.deleted, "clock moved: the skipped time ran");
    Ok(out)
}

/// Carries out everything due at `at` (the clock is held there): firings, completion window
/// ends, the runner's passes until every job has ended or waits, then the lifecycle sweep.
/// Returns the step and the sweep's next lifecycle transition.
async fn run_step(
    plane: &Executor,
    runner: &Runner,
    held: &RunnerHeld<'_>,
    at: DateTime<Utc>,
    in_flight: &mut Vec<(JobKind, String)>,
    out: &mut Travelled,
) -> Result<(Step, Option<DateTime<Utc>>)> {
    let mut step = Step {
        at,
        ..Step::default()
    };
    let mut fired = CatchUp::default();
    scheduler::fire_due(plane, at, &mut fired).await?;
    step.firings = fired.firings;
    out.firings += fired.firings;
    for _ in 0..fired.expired_backup_jobs {
        out.count(JobKind::Backup, "EXPIRED");
    }
    step.window_stops = plane.running().stop_past_window(at);
    let tests = restore_testing::run_due(plane, at).await?;
    run_jobs(plane, runner, held, &mut step, in_flight).await?;
    // The restore tests that just ended without a validation window are deleted at once.
    let after = restore_testing::run_due(plane, at).await?;
    out.restore_test_runs += tests.runs + after.runs;
    out.restore_tests_deleted += tests.deleted + after.deleted;
    let swept = lifecycle::sweep_lifecycle(plane, at).await?;
    // Reports are made after the step's jobs and sweep, so a report at `at` shows them.
    reports::run_due(plane, at).await?;
    step.moved_to_cold = swept.moved_to_cold;
    step.deleted = swept.deleted;
    out.moved_to_cold += swept.moved_to_cold;
    out.deleted += swept.deleted;
    if swept.deleted > 0 {
        // The runner's pass carries out the queued removals of the deleted points' data.
        run_jobs(plane, runner, held, &mut step, in_flight).await?;
    }
    for _ in 0..step.expired {
        out.count(JobKind::Backup, "EXPIRED");
    }
    count_ended(plane, in_flight, out).await?;
    Ok((step, swept.next))
}

/// Runner passes until one starts nothing, waiting after each until every job running here
/// has ended or waits (copy jobs that a completed backup created run in the next pass).
async fn run_jobs(
    plane: &Executor,
    runner: &Runner,
    held: &RunnerHeld<'_>,
    step: &mut Step,
    in_flight: &mut Vec<(JobKind, String)>,
) -> Result<()> {
    loop {
        plane.running().settled().await;
        let passed = runner.pass_held(held, plane).await?;
        step.expired += passed.expired;
        step.started += passed.started.len();
        let started_none = passed.started.is_empty();
        in_flight.extend(passed.started);
        plane.running().settled().await;
        if started_none {
            return Ok(());
        }
    }
}

/// Counts the jobs of `in_flight` that have ended by their final state, and forgets them.
async fn count_ended(
    plane: &Executor,
    in_flight: &mut Vec<(JobKind, String)>,
    out: &mut Travelled,
) -> Result<()> {
    let (ended, running): (Vec<_>, Vec<_>) = std::mem::take(in_flight)
        .into_iter()
        .partition(|(_, key)| !plane.running().is_running(key));
    *in_flight = running;
    if ended.is_empty() {
        return Ok(());
    }
    let states = plane
        .store()
        .read(move |tx| -> Result<Vec<(JobKind, String)>> {
            let mut states = Vec::with_capacity(ended.len());
            for (kind, key) in ended {
                if let Some(j) = load_job(tx, kind, &key)? {
                    states.push((kind, j.state.as_str().to_string()));
                }
            }
            Ok(states)
        })
        .await?;
    for (kind, state) in states {
        out.count(kind, &state);
    }
    Ok(())
}

/// The time of the next event after `at`: a rule's next firing (at `at` itself when `again`,
/// the last step fired and another firing of the same time may be due), the next lifecycle
/// transition, the next StartBy of a waiting job or end of a running job's completion
/// window. `None` when nothing is scheduled.
async fn next_event(
    plane: &Executor,
    at: DateTime<Utc>,
    again: bool,
    lifecycle_next: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>> {
    let firing = scheduler::next_firing(plane)
        .await?
        .filter(|t| *t > at || (again && *t == at));
    let waiting = plane.store().write(move |tx| next_start_by(tx, at)).await?;
    let report = reports::next_due(plane).await?.filter(|t| *t > at);
    let restore_tests = restore_testing::next_due(plane, at).await?;
    let candidates = [
        firing,
        restore_tests,
        lifecycle_next,
        waiting,
        plane.running().next_window_end(at),
        report,
    ];
    Ok(candidates.into_iter().flatten().filter(|t| *t >= at).min())
}

/// How many queued jobs of each account [`next_start_by`] looks at: the head of the queue,
/// as the runner's passes do.
const QUEUE_HEAD: usize = 64;

/// The earliest StartBy after `at` among the jobs waiting at the head of each account's queue.
fn next_start_by(
    tx: &mut dyn coffer_store::Txn,
    at: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>> {
    let mut next: Option<DateTime<Utc>> = None;
    for account in queue::accounts(tx, 10_000)? {
        for (_, entry) in queue::head(tx, &account, QUEUE_HEAD)? {
            let Some(job) = load_job(tx, entry.kind, &entry.job_key).ok().flatten() else {
                continue;
            };
            if job.is_terminal() || !job.state.is_waiting() {
                continue;
            }
            if let Some(s) = job.start_by.filter(|s| *s > at) {
                next = Some(next.map_or(s, |n| n.min(s)));
            }
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::jobs::all_jobs;
    use crate::model::recovery_points::{self, RecoveryPointRecord};
    use crate::model::states::{JobState, RecoveryPointStatus, StorageClass};
    use crate::model::{arn, vaults};
    use crate::{Coffer, DataPlane, ResourceEntry, VaultStorage};
    use chrono::DurationRound;
    use coffer_api::types::*;
    use coffer_api::{BackupService, RequestContext};
    use coffer_store::StoreHandle;

    const ACCOUNT: &str = "111122223333";
    const REGION: &str = "eu-west-1";

    fn node(store: &StoreHandle, clock: &Clock, dir: &std::path::Path) -> Coffer {
        let inventory = crate::Inventory::default();
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("src/a.txt"), b"hello").unwrap();
        inventory.replace(&[ResourceEntry {
            members: Vec::new(),
            arn: format!("arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:file-system/fs-1"),
            source: dir.join("src"),
            name: None,
            resource_type: None,
            tags: Default::default(),
            account: None,
            region: None,
            s3: None,
            url: None,
            password_env: None,
        }]);
        Coffer::with_data_plane(
            store.clone(),
            clock.clone(),
            DataPlane {
                storage: VaultStorage::open(&dir.join("vaults")).unwrap(),
                inventory,
                node_id: "n".into(),
                max_concurrent_jobs: 1,
                history_retention_days: crate::model::history::DEFAULT_RETENTION_DAYS,
                job_lease_secs: None,
            },
        )
    }

    /// A recovery point of vault `v` created at `at`, deleted after one day.
    fn point(vault: &vaults::VaultRecord, at: DateTime<Utc>) -> RecoveryPointRecord {
        RecoveryPointRecord {
            id: "p-old".into(),
            arn: arn::recovery_point(REGION, ACCOUNT, "p-old"),
            account: ACCOUNT.into(),
            region: REGION.into(),
            vault_name: vault.name.clone(),
            vault_arn: vault.arn.clone(),
            vault_uid: vault.uid.clone(),
            snapshot: coffer_engine::SnapshotRef("snap-p-old".into()),
            resource_arn: format!("arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:file-system/fs-1"),
            resource_type: "EFS".into(),
            resource_name: None,
            creation_date: at,
            initiation_date: None,
            completion_date: at,
            backup_size: 1,
            iam_role_arn: None,
            lifecycle: Some(Lifecycle {
                delete_after_days: Some(1),
                ..Default::default()
            }),
            created_by: None,
            source_vault_arn: None,
            encryption_key_arn: String::new(),
            status: RecoveryPointStatus::Completed,
            storage_class: StorageClass::Warm,
            last_restore_time: None,
            source_path: None,
            composite: Default::default(),
            tier: None,
            continuous: None,
        }
    }

    /// Vault `v` and a plan whose rule backs up every resource into it daily at 05:00.
    async fn daily_plan(c: &Coffer, ctx: &RequestContext) {
        c.create_backup_vault(
            ctx,
            CreateBackupVaultInput {
                backup_vault_name: "v".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let plan = c
            .create_backup_plan(
                ctx,
                CreateBackupPlanInput {
                    backup_plan: BackupPlanInput {
                        backup_plan_name: "daily".into(),
                        rules: vec![BackupRuleInput {
                            rule_name: "r".into(),
                            target_backup_vault_name: "v".into(),
                            schedule_expression: Some("cron(0 5 ? * * *)".into()),
                            start_window_minutes: Some(60),
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        c.create_backup_selection(
            ctx,
            CreateBackupSelectionInput {
                backup_plan_id: plan.backup_plan_id.unwrap(),
                backup_selection: BackupSelection {
                    selection_name: "all".into(),
                    iam_role_arn: format!("arn:aws:iam::{ACCOUNT}:role/backup"),
                    resources: Some(vec!["*".into()]),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }

    /// With the clock held and the only job slot taken by a job that waits, a travel from
    /// midnight to 13:00 stops at the firing (05:00), at the end of the start window of the
    /// job it created (06:00: EXPIRED then, not later) and at a point's lifecycle deletion
    /// (12:00), in that order, then at the target; each at its own time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn steps_go_from_firing_to_window_end_to_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("meta.db").to_str().unwrap()).unwrap();
        let clock = Clock::movable();
        let c = node(&store, &clock, dir.path());
        let t0 = clock.now().duration_trunc(Duration::days(1)).unwrap() + Duration::days(1);
        clock.hold().unwrap();
        clock.set(t0).unwrap();
        let ctx = RequestContext::new(ACCOUNT, REGION);
        daily_plan(&c, &ctx).await;
        store
            .write(move |tx| -> Result<()> {
                let vault = vaults::load(tx, &vaults::key(ACCOUNT, REGION, "v"), "v")?;
                recovery_points::insert(
                    tx,
                    &point(&vault, t0 - Duration::hours(12)),
                    &Default::default(),
                )
            })
            .await
            .unwrap();
        // The only slot is taken by a job that waits for something outside it.
        let busy = c.plane().running().register("busy", None);
        busy.set_waiting(true);

        let mut steps = Vec::new();
        let done = travel(
            &c.inner.scheduler,
            c.plane(),
            &c.inner.runner,
            Destination::At(t0 + Duration::hours(13)),
            &mut |s: &Step| steps.push(s.clone()),
        )
        .await
        .unwrap();
        let at = |h: i64| t0 + Duration::hours(h);
        let seen: Vec<_> = steps
            .iter()
            .map(|s| (s.at, s.firings, s.started, s.expired, s.deleted))
            .collect();
        assert_eq!(
            seen,
            vec![
                (at(0), 0, 0, 0, 0),
                (at(5), 1, 0, 0, 0),
                (at(6), 0, 0, 1, 0),
                (at(12), 0, 0, 0, 1),
                (at(13), 0, 0, 0, 0),
            ]
        );
        assert_eq!(done.steps, 5);
        assert_eq!(done.firings, 1);
        assert_eq!(done.deleted, 1);
        assert_eq!(done.jobs["backup"]["EXPIRED"], 1);
        let jobs = all_jobs(c.plane(), ACCOUNT, REGION, JobKind::Backup)
            .await
            .unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].state, JobState::Expired);
        assert_eq!(jobs[0].creation_date, at(5));
        assert_eq!(
            jobs[0].completion_date,
            Some(at(6)),
            "expired at its StartBy"
        );
        // Released: the clock runs on from the target.
        assert!(clock.now() >= at(13) && clock.now() < at(13) + Duration::minutes(1));
        c.plane().running().unregister("busy");
    }

    /// Without the busy slot, the jobs really run at each day's firing: a three-day travel
    /// gives three COMPLETED jobs created, started and completed at 05:00 of their day.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_at_their_simulated_times() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("meta.db").to_str().unwrap()).unwrap();
        let clock = Clock::movable();
        let c = node(&store, &clock, dir.path());
        let t0 = clock.now().duration_trunc(Duration::days(1)).unwrap() + Duration::days(1);
        clock.hold().unwrap();
        clock.set(t0).unwrap();
        let ctx = RequestContext::new(ACCOUNT, REGION);
        daily_plan(&c, &ctx).await;
        let done = c
            .travel(Destination::Advance(Duration::days(3)))
            .await
            .unwrap();
        assert_eq!(done.firings, 3);
        assert_eq!(done.jobs["backup"]["COMPLETED"], 3, "{done:?}");
        let mut jobs = all_jobs(c.plane(), ACCOUNT, REGION, JobKind::Backup)
            .await
            .unwrap();
        jobs.sort_by_key(|j| j.creation_date);
        for (i, j) in jobs.iter().enumerate() {
            let five = t0 + Duration::days(i as i64) + Duration::hours(5);
            assert_eq!(j.state, JobState::Completed, "{:?}", j.status_message);
            assert_eq!(j.creation_date, five);
            assert_eq!(j.started_at, Some(five));
            assert_eq!(j.completion_date, Some(five));
        }
        assert!(matches!(
            c.travel(Destination::At(t0)).await,
            Err(TravelError::Refused(_))
        ));
    }
}
