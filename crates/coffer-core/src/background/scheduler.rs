//! The scheduler: what makes backup plans run on their own.
//!
//! It exists so that everything time-driven happens in one place, at the times the Coffer
//! clock says, and exactly once however many nodes share the store:
//!
//! - **Firings.** Every rule of every active plan fires at the times its ScheduleExpression and
//!   ScheduleExpressionTimezone give (`coffer-cron`). A firing resolves the plan's selections
//!   against the inventory as it is then and creates one backup job per resource in the rule's
//!   vault, carrying CreatedBy, the rule's lifecycle, tags, copy actions and windows counted
//!   from the scheduled time. A firing whose start window already ended (Coffer was down) is
//!   recorded as EXPIRED jobs instead of running.
//! - **One firing, one set of jobs.** Each firing is claimed with `insert_new` on a key per
//!   (account, region, plan, rule, scheduled time) in table `sched_firing`, in the same
//!   transaction that creates its jobs; `sched_rule` keeps each rule's next firing so a restart
//!   neither refires old times nor forgets missed ones.
//! - **By due time.** A pass reads the queue `sched_due` (`model::due`: each rule's next
//!   firing, in time order, kept by the plan writes and by each firing) from its head and
//!   stops at the first rule not due, so an idle pass reads O(1) records however many plans
//!   exist. A store written before the queue existed gets it built once ([`build_queue`]).
//! - **Restore testing.** Restore testing plans run at their scheduled times and restore
//!   tests' scratch data is deleted when due (`background::restore_testing`), on the same
//!   ticks.
//! - **Lifecycle.** Recovery points move to COLD at MoveToColdStorageAfterDays and are deleted at
//!   DeleteAfterDays, never before their vault lock's MinRetentionDays.
//!
//! [`Scheduler::catch_up`] (what `Coffer::catch_up` calls) does all of it up to the clock's
//! now, then one runner pass (which expires jobs whose start window ended). The loop started
//! by `Coffer::start_workers` fires what is due every second and whenever a plan or selection
//! changes, reading the clock only once it holds the pass lock; in development mode the clock
//! endpoint runs the skipped time step by step instead (`background::time_travel`, which
//! holds the same lock and uses [`fire_due`] and [`next_firing`] at each step).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use coffer_api::ApiError;
use coffer_api::types::RecoveryPointCreator;
use coffer_cron::Schedule;
use coffer_store::Txn;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Notify};

use crate::background::lifecycle;
use crate::background::restore_testing;
use crate::background::runner::Runner;
use crate::background::worker::{PassSkip, Worker};
use crate::dataplane::Executor;
use crate::model::error::Result;
use crate::model::history::{self, FIRINGS};
use crate::model::inventory::Inventory;
use crate::model::jobs::BackupJobSpec;
use crate::model::plan_rules::{DEFAULT_COMPLETION_WINDOW_MINUTES, DEFAULT_START_WINDOW_MINUTES};
use crate::model::{arn, due, jobs, plan_rules, plans, selections};
use async_trait::async_trait;

/// At most this many firings of one rule per pass (the next pass carries on).
const MAX_FIRINGS_PER_RULE_PER_PASS: usize = 10_000;
/// At most this many due rules are read in one transaction of a pass.
const DUE_BATCH: usize = 1_000;
/// Plans read per transaction while the queue is built for an older store.
const BACKFILL_BATCH: usize = 500;

/// What a claimed firing did.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FiringRecord {
    scheduled: DateTime<Utc>,
    fired_at: DateTime<Utc>,
    backup_job_ids: Vec<String>,
}

/// What one catch-up did (the clock endpoint answers with it).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CatchUp {
    /// Firings claimed and carried out by this node.
    pub firings: usize,
    /// Backup jobs created to run.
    pub backup_jobs: usize,
    /// Backup jobs recorded EXPIRED because their start window had already ended.
    pub expired_backup_jobs: usize,
    /// Recovery points moved to cold storage.
    pub moved_to_cold: usize,
    /// Recovery points deleted at the end of their lifecycle.
    pub deleted: usize,
}

/// The scheduler of this process: its wake-up signal and the lock that keeps its passes one
/// at a time.
pub struct Scheduler {
    notify: Notify,
    pass: Arc<Mutex<()>>,
    /// A plan or selection changed since the worker's last pass.
    changed: AtomicBool,
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler {
            notify: Notify::new(),
            pass: Arc::new(Mutex::new(())),
            changed: AtomicBool::new(true),
        }
    }
}

impl Scheduler {
    /// Makes the loop look at the plans now (a plan or selection changed).
    pub fn wake(&self) {
        self.changed.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// The lock that keeps scheduler and lifecycle passes one at a time in this process.
    pub(crate) async fn lock_pass(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.pass.lock().await
    }

    /// The pass lock itself, for the lifecycle worker.
    pub(crate) fn pass_lock(&self) -> Arc<Mutex<()>> {
        self.pass.clone()
    }

    /// Does all the scheduled work due up to the clock's now, in order: every due firing of
    /// every rule (one per scheduled time, however far the clock moved), the lifecycle sweep,
    /// then one runner pass (expirations and claims). Returns once all of it has been started.
    pub(crate) async fn catch_up(
        &self,
        plane: &Executor,
        runner: &Runner,
    ) -> std::result::Result<CatchUp, ApiError> {
        let _one_at_a_time = self.pass.lock().await;
        let now = plane.clock().now();
        let mut done = CatchUp::default();
        fire_due(plane, now, &mut done).await?;
        restore_testing::run_due(plane, now).await?;
        let swept = lifecycle::sweep_lifecycle(plane, now).await?;
        done.moved_to_cold += swept.moved_to_cold;
        done.deleted += swept.deleted;
        runner.pass(plane).await?;
        Ok(done)
    }
}

/// The scheduler as a [`Worker`]: each tick fires the rules that are due (woken at once when
/// a plan or selection changes); the runner, woken, claims the jobs.
///
/// A pass reads the head of the due queue; the worker still skips ticks until the earliest
/// firing the last pass saw is due, a plan or selection of this node changed, or
/// [`RESCAN`](crate::background::worker::RESCAN) went by (for plans changed by another node
/// sharing the store, and restore testing runs, which are found by the same pass).
pub(crate) struct SchedulerWorker {
    pub scheduler: Arc<Scheduler>,
    pub plane: Executor,
    pub skip: PassSkip,
}

#[async_trait]
impl Worker for SchedulerWorker {
    fn name(&self) -> &'static str {
        "scheduler"
    }

    async fn tick(&self) -> std::result::Result<(), String> {
        let _one_at_a_time = self.scheduler.lock_pass().await;
        let now = self.plane.clock().now();
        let changed = self.scheduler.changed.swap(false, Ordering::SeqCst);
        if !changed && self.skip.skip(now) {
            return Ok(());
        }
        let next = fire_due(&self.plane, now, &mut CatchUp::default())
            .await
            .map_err(|e| e.0.message().to_string())?;
        restore_testing::run_due(&self.plane, now)
            .await
            .map_err(|e| e.0.message().to_string())?;
        self.skip.passed(next);
        Ok(())
    }

    async fn woken(&self) {
        self.scheduler.notify.notified().await
    }
}

fn firing_key(rule_key: &str, at: DateTime<Utc>) -> String {
    format!(
        "{rule_key}:{}",
        at.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

/// One scheduled time of one rule, due now.
#[derive(Debug, Clone)]
struct Due {
    account: String,
    region: String,
    plan_id: String,
    rule_id: String,
    expression: String,
    timezone: String,
    at: DateTime<Utc>,
}

/// Builds the scheduler's queue (`model::due`) once for a store written before it existed:
/// every rule of every active plan gets its `sched_rule` state (a rule seen for the first
/// time starts from the time its plan version was written) and its queue entry, a bounded
/// batch of plans per transaction. Afterwards this is one read.
pub(crate) async fn build_queue(plane: &Executor) -> Result<()> {
    // The plan-document index (`model::plans::same_document`) is built in the same walk.
    let (sched, docs) = plane
        .store()
        .read(|tx| {
            Ok::<_, crate::model::error::Error>((
                due::needs_backfill(tx, "sched")?,
                due::needs_backfill(tx, plans::DOC_BUILT)?,
            ))
        })
        .await?;
    if !sched && !docs {
        return Ok(());
    }
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor.take();
        let last = plane
            .store()
            .write(move |tx| -> Result<Option<String>> {
                let (active, last) =
                    plans::active_plans_page(tx, after.as_deref(), BACKFILL_BATCH)?;
                for ap in &active {
                    if sched {
                        queue_plan(tx, ap)?;
                    }
                    if docs {
                        plans::index_document(tx, ap)?;
                    }
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
        .write(move |tx| {
            due::backfilled(tx, "sched", now)?;
            due::backfilled(tx, plans::DOC_BUILT, now)
        })
        .await
}

/// Puts the rules of `ap` on the queue, keeping a stored next firing of an unchanged schedule.
fn queue_plan(tx: &mut dyn Txn, ap: &plans::ActivePlan) -> Result<()> {
    let scope = (
        ap.plan.account.as_str(),
        ap.plan.region.as_str(),
        ap.plan.id.as_str(),
    );
    let rules = &ap.version.document.rules;
    due::schedule_rules(tx, scope, ap.version.creation_date, rules, &[])?;
    for rule in rules {
        let Some(id) = &rule.rule_id else { continue };
        let rk = due::rule_key(scope.0, scope.1, scope.2, id);
        if let Some(state) = due::load_rule(tx, &rk)? {
            due::set_rule(tx, &rk, None, &state)?;
        }
    }
    Ok(())
}

/// The due firings of the rules at the head of the queue (at most [`DUE_BATCH`] rules), up to
/// `now`, oldest first; the earliest firing after those, of the rules it read and the first
/// rule not due; and whether more rules are due. An entry its rule no longer agrees with is
/// dropped.
fn due_firings(
    tx: &mut dyn Txn,
    now: DateTime<Utc>,
) -> Result<(Vec<Due>, Option<DateTime<Utc>>, bool)> {
    let scan = due::due_entries(tx, due::SCHED_DUE, now, None, DUE_BATCH)?;
    let mut due = Vec::new();
    let mut after = scan.next;
    for (key, rk) in scan.entries {
        let parts: Vec<&str> = rk.splitn(4, ':').collect();
        let state = due::load_rule(tx, &rk)?;
        let Some(state) = state.filter(|s| s.next.is_some() && s.next == due::due_time(&key))
        else {
            tx.delete(due::SCHED_DUE, &key)?;
            continue;
        };
        let [account, region, plan_id, rule_id] = parts[..] else {
            tx.delete(due::SCHED_DUE, &key)?;
            continue;
        };
        let schedule = match Schedule::parse(&state.expression, &state.timezone) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(plan = %plan_id, rule = %rule_id, error = %e, "a stored schedule no longer parses; the rule stops firing until its plan is updated");
                let stopped = due::RuleState {
                    next: None,
                    ..state.clone()
                };
                due::set_rule(tx, &rk, Some(&state), &stopped)?;
                continue;
            }
        };
        let mut next = state.next;
        let mut n = 0;
        while let Some(at) = next
            && at <= now
            && n < MAX_FIRINGS_PER_RULE_PER_PASS
        {
            due.push(Due {
                account: account.to_string(),
                region: region.to_string(),
                plan_id: plan_id.to_string(),
                rule_id: rule_id.to_string(),
                expression: state.expression.clone(),
                timezone: state.timezone.clone(),
                at,
            });
            next = schedule.next_after(at);
            n += 1;
        }
        if let Some(n) = next {
            after = Some(after.map_or(n, |a| a.min(n)));
        }
    }
    due.sort_by(|a, b| (a.at, &a.plan_id, &a.rule_id).cmp(&(b.at, &b.plan_id, &b.rule_id)));
    Ok((due, after, scan.more))
}

/// The earliest next firing of any rule of any active plan (time travel steps to it): the
/// head of the queue.
pub(crate) async fn next_firing(plane: &Executor) -> Result<Option<DateTime<Utc>>> {
    build_queue(plane).await?;
    plane
        .store()
        .read(|tx| due::first_due(tx, due::SCHED_DUE))
        .await
}

/// Carries out every firing due up to `now`, oldest first, adding what they did to `done`.
/// Returns the earliest firing after them, of the rules it saw.
pub(crate) async fn fire_due(
    plane: &Executor,
    now: DateTime<Utc>,
    done: &mut CatchUp,
) -> Result<Option<DateTime<Utc>>> {
    build_queue(plane).await?;
    loop {
        let (due, after, more) = plane.store().write(move |tx| due_firings(tx, now)).await?;
        fire_all(plane, due, now, done).await?;
        if !more {
            if done.backup_jobs > 0 {
                plane.running().wake();
            }
            return Ok(after);
        }
    }
}

/// Carries out `due`, in order, adding what the firings did to `done`.
async fn fire_all(
    plane: &Executor,
    due: Vec<Due>,
    now: DateTime<Utc>,
    done: &mut CatchUp,
) -> Result<()> {
    for d in due {
        let inventory = plane.inventory().clone();
        let (plan, rule, at) = (d.plan_id.clone(), d.rule_id.clone(), d.at);
        let fired = plane
            .store()
            .write(move |tx| fire(tx, &d, now, &inventory))
            .await?;
        if let Some((created, expired)) = fired {
            crate::model::telemetry::plan_fired(
                (now - at).num_milliseconds().max(0) as f64 / 1000.0,
            );
            tracing::info!(plan = %plan, rule = %rule, scheduled = %at.to_rfc3339_opts(SecondsFormat::Secs, true), jobs = created, expired, "backup plan fired");
            done.firings += 1;
            done.backup_jobs += created;
            done.expired_backup_jobs += expired;
        }
    }
    Ok(())
}

/// What every backup job of one firing of `rule` shares: its vault, its windows counted from
/// the scheduled time (or the message that it expired, when its start window already ended),
/// CreatedBy, lifecycle, tags and copy actions. The resource fields are left to fill.
fn job_template(
    ap: &plans::ActivePlan,
    rule: &coffer_api::types::BackupRule,
    d: &Due,
    now: DateTime<Utc>,
) -> BackupJobSpec {
    let start_by = d.at
        + Duration::minutes(
            rule.start_window_minutes
                .unwrap_or(DEFAULT_START_WINDOW_MINUTES),
        );
    let complete_by = d.at
        + Duration::minutes(
            rule.completion_window_minutes
                .unwrap_or(DEFAULT_COMPLETION_WINDOW_MINUTES),
        );
    let expired_message = (start_by <= now).then(|| {
        format!(
            "The backup plan's run scheduled for {} could not start within its start window (it had to start by {}): Coffer was not running then, or its clock was moved past the window.",
            d.at.to_rfc3339_opts(SecondsFormat::Secs, true),
            start_by.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    });
    BackupJobSpec {
        account: d.account.clone(),
        region: d.region.clone(),
        vault_name: rule.target_backup_vault_name.clone(),
        vault_arn: arn::backup_vault(&d.region, &d.account, &rule.target_backup_vault_name),
        resource_arn: String::new(),
        resource_type: String::new(),
        resource_name: None,
        iam_role_arn: String::new(),
        idempotency_token: None,
        creation_date: d.at,
        start_by,
        complete_by,
        lifecycle: rule.lifecycle.clone(),
        recovery_point_tags: rule.recovery_point_tags.clone().unwrap_or_default(),
        created_by: Some(RecoveryPointCreator {
            backup_plan_arn: Some(ap.plan.arn.clone()),
            backup_plan_id: Some(ap.plan.id.clone()),
            backup_plan_name: Some(ap.version.document.backup_plan_name.clone()),
            backup_plan_version: Some(ap.version.version_id.clone()),
            backup_rule_id: Some(d.rule_id.clone()),
            backup_rule_name: Some(rule.rule_name.clone()),
            backup_rule_cron: Some(d.expression.clone()),
            backup_rule_timezone: Some(d.timezone.clone()),
        }),
        copy_actions: plan_rules::rule_copy_actions(rule),
        index_resource_types: rule
            .index_actions
            .iter()
            .flatten()
            .flat_map(|a| a.resource_types.iter().flatten().cloned())
            .collect(),
        continuous: rule.enable_continuous_backup == Some(true),
        expired_message,
    }
}

/// Carries out one firing in one transaction: claims it, moves the rule's next firing on,
/// resolves the selections and creates the jobs. `None` when another node (or an earlier
/// pass) already claimed it; otherwise how many jobs were created to run and how many were
/// recorded EXPIRED.
fn fire(
    tx: &mut dyn Txn,
    d: &Due,
    now: DateTime<Utc>,
    inventory: &Inventory,
) -> Result<Option<(usize, usize)>> {
    let rk = due::rule_key(&d.account, &d.region, &d.plan_id, &d.rule_id);
    // The rule's next firing moves past this one whatever happens below.
    if let Some(old) = due::load_rule(tx, &rk)? {
        let mut s = old.clone();
        if s.expression == d.expression
            && s.timezone == d.timezone
            && s.next.is_some_and(|n| n <= d.at)
        {
            s.next = match Schedule::parse(&d.expression, &d.timezone) {
                Ok(sch) => sch.next_after(d.at),
                Err(e) => {
                    // Validated when the plan was saved, so this is a damaged rule: say so
                    // instead of letting the rule fall silent.
                    tracing::error!(plan = %d.plan_id, rule = %d.rule_id, expression = %d.expression, error = %e, "a stored schedule no longer parses; the rule stops firing until its plan is updated");
                    None
                }
            };
            due::set_rule(tx, &rk, Some(&old), &s)?;
        }
    }
    let fk = firing_key(&rk, d.at);
    if !tx.insert_new(FIRINGS, &fk, b"{}")? {
        return Ok(None);
    }
    history::record(tx, d.at, &[(FIRINGS.to_string(), fk.clone())])?;
    let mut record = FiringRecord {
        scheduled: d.at,
        fired_at: now,
        backup_job_ids: Vec::new(),
    };
    let Some(ap) = plans::current_version(tx, &d.account, &d.region, &d.plan_id)? else {
        tx.put(FIRINGS, &fk, &serde_json::to_vec(&record)?)?;
        return Ok(Some((0, 0)));
    };
    let Some(rule) = ap
        .version
        .document
        .rules
        .iter()
        .find(|r| r.rule_id.as_deref() == Some(d.rule_id.as_str()))
        .filter(|r| due::rule_schedule(r) == (d.expression.clone(), d.timezone.clone()))
    else {
        tx.put(FIRINGS, &fk, &serde_json::to_vec(&record)?)?;
        return Ok(Some((0, 0)));
    };
    let plan_selections = selections::of_plan(tx, &d.account, &d.region, &d.plan_id)?;
    let selected = selections::resolve(tx, &d.account, &d.region, &plan_selections, inventory)?;
    let template = job_template(&ap, rule, d, now);
    let expired = template.expired_message.is_some();
    for (resource, role) in selected {
        let job = jobs::create_backup_job(
            tx,
            BackupJobSpec {
                resource_arn: resource.arn.clone(),
                resource_type: resource.resource_type.clone(),
                resource_name: Some(resource.name.clone()),
                iam_role_arn: role,
                ..template.clone()
            },
        )?;
        // events: BACKUP_JOB_STARTED (or BACKUP_JOB_EXPIRED when the start window ended).
        record.backup_job_ids.push(job.id);
    }
    let n = record.backup_job_ids.len();
    let (created, expired) = if expired { (0, n) } else { (n, 0) };
    if !record.backup_job_ids.is_empty() {
        plans::record_execution(tx, &d.account, &d.region, &d.plan_id, d.at)?;
    }
    tx.put(FIRINGS, &fk, &serde_json::to_vec(&record)?)?;
    Ok(Some((created, expired)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_skips_passes_until_the_next_event_it_saw() {
        let skip = PassSkip::default();
        let now = Utc::now();
        assert!(!skip.skip(now), "the first tick always passes");
        skip.passed(Some(now + Duration::seconds(10)));
        assert!(skip.skip(now));
        assert!(skip.skip(now + Duration::seconds(9)));
        assert!(!skip.skip(now + Duration::seconds(10)), "due at the event");
        skip.passed(None);
        assert!(
            skip.skip(now + Duration::days(365)),
            "nothing coming: wait for the rescan"
        );
    }
    use crate::model::jobs::{JobKind, all_jobs};
    use crate::model::recovery_points::{self, RecoveryPointRecord};
    use crate::model::states::{RecoveryPointStatus, StorageClass};

    use crate::model::vaults;
    use crate::{Clock, Coffer, DataPlane, ResourceEntry, VaultStorage};
    use coffer_api::types::*;
    use coffer_api::{BackupService, RequestContext};
    use coffer_store::StoreHandle;

    const ACCOUNT: &str = "111122223333";
    const REGION: &str = "eu-west-1";

    fn node(store: &StoreHandle, clock: &Clock, dir: &std::path::Path, name: &str) -> Coffer {
        let inventory = Inventory::default();
        std::fs::create_dir_all(dir.join("src")).unwrap();
        inventory.replace(&[ResourceEntry {
            members: Vec::new(),
            arn: format!("arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:file-system/fs-1"),
            source: dir.join("src"),
            name: None,
            resource_type: None,
            tags: [("backup".to_string(), "daily".to_string())].into(),
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
                storage: VaultStorage::open(&dir.join(name)).unwrap(),
                inventory,
                node_id: name.into(),
                max_concurrent_jobs: 1,
                history_retention_days: crate::model::history::DEFAULT_RETENTION_DAYS,
                job_lease_secs: None,
            },
        )
    }

    /// Two nodes catching up at once on one store, after "downtime": each scheduled time gets
    /// exactly one job; the ones whose start window ended are EXPIRED with a message; a node
    /// started later (a restart) fires nothing old again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_schedulers_on_one_store_create_each_job_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("meta.db").to_str().unwrap()).unwrap();
        let clock = Clock::movable();
        let a = node(&store, &clock, dir.path(), "a");
        let b = node(&store, &clock, dir.path(), "b");
        let ctx = RequestContext::new(ACCOUNT, REGION);
        a.create_backup_vault(
            &ctx,
            CreateBackupVaultInput {
                backup_vault_name: "v".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let plan = a
            .create_backup_plan(
                &ctx,
                CreateBackupPlanInput {
                    backup_plan: BackupPlanInput {
                        backup_plan_name: "daily".into(),
                        rules: vec![BackupRuleInput {
                            rule_name: "r".into(),
                            target_backup_vault_name: "v".into(),
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
        let plan_id = plan.backup_plan_id.unwrap();
        let created = clock.now();
        b.create_backup_selection(
            &ctx,
            CreateBackupSelectionInput {
                backup_plan_id: plan_id.clone(),
                backup_selection: BackupSelection {
                    selection_name: "all".into(),
                    iam_role_arn: format!("arn:aws:iam::{ACCOUNT}:role/backup"),
                    resources: Some(vec!["*".into()]),
                    list_of_tags: Some(vec![Condition {
                        condition_key: "backup".into(),
                        condition_type: ConditionType::Stringequals,
                        condition_value: "daily".into(),
                    }]),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
        // Nobody catches up for ten days: the "downtime".
        clock.advance(Duration::days(10)).unwrap();
        let (ra, rb) = tokio::join!(a.catch_up(), b.catch_up());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let now = clock.now();
        let expected = Schedule::parse(Schedule::DEFAULT_EXPRESSION, Schedule::DEFAULT_TIMEZONE)
            .unwrap()
            .upcoming(created, 20);
        let expected: Vec<_> = expected.into_iter().filter(|t| *t <= now).collect();
        assert_eq!(ra.firings + rb.firings, expected.len(), "{ra:?} {rb:?}");
        let jobs = all_jobs(a.plane(), ACCOUNT, REGION, JobKind::Backup)
            .await
            .unwrap();
        let mut times: Vec<_> = jobs.iter().map(|j| j.creation_date).collect();
        times.sort();
        assert_eq!(
            times, expected,
            "one job per scheduled time, selected twice"
        );
        for j in &jobs {
            let c = j.created_by.as_ref().unwrap();
            assert_eq!(c.backup_plan_id.as_deref(), Some(plan_id.as_str()));
            assert_eq!(c.backup_rule_name.as_deref(), Some("r"));
            assert_eq!(
                c.backup_rule_cron.as_deref(),
                Some(Schedule::DEFAULT_EXPRESSION)
            );
            assert_eq!(j.start_by, Some(j.creation_date + Duration::minutes(60)));
            if j.start_by.unwrap() < now {
                assert_eq!(j.state.as_str(), "EXPIRED");
                assert!(
                    j.status_message
                        .as_deref()
                        .unwrap()
                        .contains("start window"),
                    "{:?}",
                    j.status_message
                );
            } else {
                assert_ne!(j.state.as_str(), "EXPIRED");
            }
        }
        // A restart (a new node on the same store) does not fire old times again.
        let c = node(&store, &clock, dir.path(), "c");
        assert_eq!(c.catch_up().await.unwrap().firings, 0);
        assert_eq!(b.catch_up().await.unwrap().firings, 0);
        // The next day fires once more, and LastExecutionDate follows.
        clock.advance(Duration::days(1)).unwrap();
        let (rb, rc) = tokio::join!(b.catch_up(), c.catch_up());
        assert_eq!(rb.unwrap().firings + rc.unwrap().firings, 1);
        let jobs = all_jobs(a.plane(), ACCOUNT, REGION, JobKind::Backup)
            .await
            .unwrap();
        assert_eq!(jobs.len(), expected.len() + 1);
        let last = jobs.iter().map(|j| j.creation_date).max().unwrap();
        let out = a
            .get_backup_plan(
                &ctx,
                GetBackupPlanInput {
                    backup_plan_id: plan_id,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(out.last_execution_date.map(|t| t.0), Some(last));
    }

    use crate::model::job_index::Counting;

    fn daily_plan_input(name: &str, expression: Option<&str>) -> BackupPlanInput {
        BackupPlanInput {
            backup_plan_name: name.into(),
            rules: vec![BackupRuleInput {
                rule_name: "r".into(),
                target_backup_vault_name: "v".into(),
                schedule_expression: expression.map(Into::into),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// The scheduler's queue, in order: (time, rule key).
    async fn queue(store: &StoreHandle) -> Vec<(DateTime<Utc>, String)> {
        store
            .read(|tx| -> Result<Vec<(DateTime<Utc>, String)>> {
                Ok(tx
                    .scan(due::SCHED_DUE, "", None, usize::MAX)?
                    .into_iter()
                    .map(|(k, v)| (due::due_time(&k).unwrap(), String::from_utf8(v).unwrap()))
                    .collect())
            })
            .await
            .unwrap()
    }

    /// With many plans and nothing due, a pass reads a constant number of records; the queue
    /// follows plan creation, updates and deletion; and a store written before the queue
    /// existed gets it built from its plans, keeping each rule's next firing.
    #[tokio::test]
    async fn an_idle_pass_reads_the_head_of_the_queue_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("meta.db").to_str().unwrap()).unwrap();
        let clock = Clock::movable();
        let c = node(&store, &clock, dir.path(), "a");
        let ctx = RequestContext::new(ACCOUNT, REGION);
        c.create_backup_vault(
            &ctx,
            CreateBackupVaultInput {
                backup_vault_name: "v".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let mut ids = Vec::new();
        for i in 0..200 {
            let out = c
                .create_backup_plan(
                    &ctx,
                    CreateBackupPlanInput {
                        backup_plan: daily_plan_input(&format!("p{i}"), None),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            ids.push(out.backup_plan_id.unwrap());
        }
        let q = queue(&store).await;
        assert_eq!(q.len(), 200, "one entry per rule");
        let first = q[0].0;
        assert!(q.iter().all(|(t, _)| *t == first), "all fire at 05:00 next");
        assert_eq!(next_firing(c.plane()).await.unwrap(), Some(first));

        // An idle pass: nothing due, two records read (the marker, the queue's head).
        let now = clock.now();
        assert!(now < first);
        let (needs, due, after, more, reads) = store
            .write(move |tx| -> Result<_> {
                let mut counting = Counting {
                    inner: tx,
                    reads: 0,
                };
                let needs = due::needs_backfill(&mut counting, "sched")?;
                let (due, after, more) = due_firings(&mut counting, now)?;
                Ok((needs, due, after, more, counting.reads))
            })
            .await
            .unwrap();
        assert!(!needs, "next_firing built the queue");
        assert!(due.is_empty() && !more);
        assert_eq!(after, Some(first));
        assert!(reads <= 3, "an idle pass read {reads} records");

        // UpdateBackupPlan with another schedule moves the rule's entry; DeleteBackupPlan
        // takes it off the queue.
        c.update_backup_plan(
            &ctx,
            UpdateBackupPlanInput {
                backup_plan_id: ids[0].clone(),
                backup_plan: daily_plan_input("p0", Some("cron(0 12 * * ? *)")),
            },
        )
        .await
        .unwrap();
        c.delete_backup_plan(
            &ctx,
            DeleteBackupPlanInput {
                backup_plan_id: ids[1].clone(),
            },
        )
        .await
        .unwrap();
        let q = queue(&store).await;
        assert_eq!(q.len(), 199);
        assert!(!q.iter().any(|(_, rk)| rk.contains(&ids[1])));
        let moved: Vec<_> = q.iter().filter(|(_, rk)| rk.contains(&ids[0])).collect();
        assert_eq!(moved.len(), 1);
        let expected = Schedule::parse("cron(0 12 * * ? *)", "Etc/UTC")
            .unwrap()
            .next_after(clock.now());
        assert_eq!(Some(moved[0].0), expected);

        // Fire the first due time: the entries move to the next day, once each.
        clock.advance(Duration::days(1)).unwrap();
        let done = c.catch_up().await.unwrap();
        assert_eq!(done.firings, 199, "each rule left fires once");
        let after_firing = queue(&store).await;
        assert_eq!(after_firing.len(), 199);
        assert!(after_firing.iter().all(|(t, _)| *t > clock.now()));

        // An older store: no queue, no marker. Built again from the plans, it holds the same
        // entries (the rules' stored next firings are kept).
        store
            .write(|tx| -> Result<()> {
                for (k, _) in tx.scan(due::SCHED_DUE, "", None, usize::MAX)? {
                    tx.delete(due::SCHED_DUE, &k)?;
                }
                tx.delete(due::BACKFILL, "sched")?;
                Ok(())
            })
            .await
            .unwrap();
        assert!(queue(&store).await.is_empty());
        build_queue(c.plane()).await.unwrap();
        assert_eq!(queue(&store).await, after_firing);
        assert_eq!(c.catch_up().await.unwrap().firings, 0, "nothing refired");
    }

    fn point(
        vault: &vaults::VaultRecord,
        id: &str,
        at: DateTime<Utc>,
        cold: Option<i64>,
        delete: i64,
    ) -> RecoveryPointRecord {
        RecoveryPointRecord {
            id: id.into(),
            arn: arn::recovery_point(REGION, ACCOUNT, id),
            account: ACCOUNT.into(),
            region: REGION.into(),
            vault_name: vault.name.clone(),
            vault_arn: vault.arn.clone(),
            vault_uid: vault.uid.clone(),
            snapshot: coffer_engine::SnapshotRef(format!("snap-{id}")),
            resource_arn: format!("arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:file-system/fs-1"),
            resource_type: "EFS".into(),
            resource_name: None,
            creation_date: at,
            initiation_date: None,
            completion_date: at,
            backup_size: 1,
            iam_role_arn: None,
            lifecycle: Some(Lifecycle {
                delete_after_days: Some(delete),
                move_to_cold_storage_after_days: cold,
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

    /// The lifecycle queue: (time, recovery point key), in order.
    async fn lifecycle_queue(store: &StoreHandle) -> Vec<(DateTime<Utc>, String)> {
        store
            .read(|tx| -> Result<Vec<(DateTime<Utc>, String)>> {
                Ok(tx
                    .scan(due::LIFECYCLE_DUE, "", None, usize::MAX)?
                    .into_iter()
                    .map(|(k, v)| (due::due_time(&k).unwrap(), String::from_utf8(v).unwrap()))
                    .collect())
            })
            .await
            .unwrap()
    }

    /// Each point is queued at its next lifecycle date when saved; the queue follows
    /// UpdateRecoveryPointLifecycle, cold moves and deletions; a sweep with nothing due reads
    /// O(1) records however many points exist; an older store's queue is built from its points.
    #[tokio::test]
    async fn the_lifecycle_queue_follows_the_points() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("meta.db").to_str().unwrap()).unwrap();
        let clock = Clock::movable();
        let c = node(&store, &clock, dir.path(), "a");
        let ctx = RequestContext::new(ACCOUNT, REGION);
        c.create_backup_vault(
            &ctx,
            CreateBackupVaultInput {
                backup_vault_name: "v".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let created = chrono::SubsecRound::trunc_subsecs(clock.now(), 0);
        store
            .write(move |tx| -> Result<()> {
                let vault = vaults::load(tx, &vaults::key(ACCOUNT, REGION, "v"), "v")?;
                for i in 0..300 {
                    let p = point(&vault, &format!("p{i:03}"), created, None, 100);
                    recovery_points::insert(tx, &p, &Default::default())?;
                }
                let p = point(&vault, "cold", created, Some(1), 100);
                recovery_points::insert(tx, &p, &Default::default())?;
                Ok(())
            })
            .await
            .unwrap();
        let q = lifecycle_queue(&store).await;
        assert_eq!(q.len(), 301);
        assert_eq!(
            q[0],
            (
                created + Duration::days(1),
                recovery_points::key(ACCOUNT, REGION, "v", "cold")
            )
        );
        assert!(
            q[1..]
                .iter()
                .all(|(t, _)| *t == created + Duration::days(100))
        );

        // Nothing due: the sweep's read of the queue reads its head only.
        let now = clock.now();
        let (scan, reads) = store
            .read(move |tx| -> Result<_> {
                let mut counting = Counting {
                    inner: tx,
                    reads: 0,
                };
                let scan = due::due_entries(&mut counting, due::LIFECYCLE_DUE, now, None, 256)?;
                Ok((scan, counting.reads))
            })
            .await
            .unwrap();
        assert!(scan.entries.is_empty() && !scan.more);
        assert_eq!(scan.next, Some(created + Duration::days(1)));
        assert!(reads <= 2, "an idle sweep read {reads} records");

        // A shorter lifecycle moves the point's entry forward.
        let rp_arn = arn::recovery_point(REGION, ACCOUNT, "p007");
        c.update_recovery_point_lifecycle(
            &ctx,
            UpdateRecoveryPointLifecycleInput {
                backup_vault_name: "v".into(),
                recovery_point_arn: rp_arn.clone(),
                lifecycle: Some(Lifecycle {
                    delete_after_days: Some(2),
                    ..Default::default()
                }),
            },
        )
        .await
        .unwrap();
        let q = lifecycle_queue(&store).await;
        assert_eq!(
            q[1],
            (
                created + Duration::days(2),
                recovery_points::key(ACCOUNT, REGION, "v", "p007")
            )
        );

        // An older store: built again from the points, the queue is the same.
        store
            .write(|tx| -> Result<()> {
                for t in [due::LIFECYCLE_DUE, due::LIFECYCLE_DUE_OF] {
                    for (k, _) in tx.scan(t, "", None, usize::MAX)? {
                        tx.delete(t, &k)?;
                    }
                }
                for t in [recovery_points::BY_VAULT, recovery_points::BY_RESOURCE] {
                    for (k, _) in tx.scan(t, "", None, usize::MAX)? {
                        tx.delete(t, &k)?;
                    }
                }
                tx.delete(due::BACKFILL, "recovery_points")?;
                Ok(())
            })
            .await
            .unwrap();
        lifecycle::build_queue(c.plane()).await.unwrap();
        assert_eq!(lifecycle_queue(&store).await, q);

        // Three days on: one point goes cold (queued again at its deletion), one is deleted
        // (off the queue), the others stay where they were.
        clock.advance(Duration::days(3)).unwrap();
        let done = c.catch_up().await.unwrap();
        assert_eq!((done.moved_to_cold, done.deleted), (1, 1), "{done:?}");
        let q = lifecycle_queue(&store).await;
        assert_eq!(q.len(), 300);
        assert!(q.iter().all(|(t, _)| *t == created + Duration::days(100)));
        assert!(!q.iter().any(|(_, k)| k.ends_with(":p007")));
    }

    /// The recovery point indexes: ListRecoveryPointsByBackupVault filtered by resource and
    /// ListRecoveryPointsByResource page newest first; the parent of the next backup and
    /// DescribeProtectedResource find a resource's newest point, and follow deletions.
    #[tokio::test]
    async fn recovery_points_are_read_by_index_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("meta.db").to_str().unwrap()).unwrap();
        let clock = Clock::movable();
        let c = node(&store, &clock, dir.path(), "a");
        let ctx = RequestContext::new(ACCOUNT, REGION);
        for v in ["v", "w"] {
            c.create_backup_vault(
                &ctx,
                CreateBackupVaultInput {
                    backup_vault_name: v.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        let res =
            |n: usize| format!("arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:file-system/fs-{n}");
        let t0 = chrono::SubsecRound::trunc_subsecs(clock.now(), 0);
        store
            .write(move |tx| -> Result<()> {
                for v in ["v", "w"] {
                    let vault = vaults::load(tx, &vaults::key(ACCOUNT, REGION, v), v)?;
                    for i in 0..60 {
                        let mut p = point(
                            &vault,
                            &format!("{v}{i:03}"),
                            t0 + Duration::seconds(i),
                            None,
                            100,
                        );
                        p.resource_arn = res((i % 3) as usize);
                        recovery_points::insert(tx, &p, &Default::default())?;
                    }
                }
                let vault = vaults::load(tx, &vaults::key(ACCOUNT, REGION, "w"), "w")?;
                let mut p = point(&vault, "w900", t0, None, 100);
                p.resource_arn = res(9);
                recovery_points::insert(tx, &p, &Default::default())?;
                Ok(())
            })
            .await
            .unwrap();
        // Vault v, resource fs-1: 20 points (i = 1, 4, ..., 58), pages of 7, newest first.
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let out = c
                .list_recovery_points_by_backup_vault(
                    &ctx,
                    ListRecoveryPointsByBackupVaultInput {
                        backup_vault_name: "v".into(),
                        by_resource_arn: Some(res(1)),
                        max_results: Some(7),
                        next_token: token.clone(),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let page = out.recovery_points.unwrap();
            assert!(page.len() <= 7);
            for p in &page {
                assert_eq!(p.resource_arn.as_deref(), Some(res(1).as_str()));
                assert_eq!(p.backup_vault_name.as_deref(), Some("v"));
                seen.push(p.recovery_point_arn.clone().unwrap());
            }
            token = out.next_token;
            if token.is_none() {
                break;
            }
        }
        let expected: Vec<String> = (0..60)
            .rev()
            .filter(|i| i % 3 == 1)
            .map(|i| arn::recovery_point(REGION, ACCOUNT, &format!("v{i:03}")))
            .collect();
        assert_eq!(seen, expected);
        // A creation window (exclusive at both ends) bounds the walk of the vault's index,
        // with and without a resource, across pages of 4: points 11..=19 of vault v.
        for by_resource in [None, Some(res(1))] {
            let mut seen = Vec::new();
            let mut token = None;
            loop {
                let out = c
                    .list_recovery_points_by_backup_vault(
                        &ctx,
                        ListRecoveryPointsByBackupVaultInput {
                            backup_vault_name: "v".into(),
                            by_resource_arn: by_resource.clone(),
                            by_created_after: Some(coffer_api::Timestamp(
                                t0 + Duration::seconds(10),
                            )),
                            by_created_before: Some(coffer_api::Timestamp(
                                t0 + Duration::seconds(20),
                            )),
                            max_results: Some(4),
                            next_token: token.clone(),
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                seen.extend(
                    out.recovery_points
                        .unwrap()
                        .into_iter()
                        .map(|p| p.recovery_point_arn.unwrap()),
                );
                token = out.next_token;
                if token.is_none() {
                    break;
                }
            }
            let expected: Vec<String> = (11..20)
                .rev()
                .filter(|i| by_resource.is_none() || i % 3 == 1)
                .map(|i| arn::recovery_point(REGION, ACCOUNT, &format!("v{i:03}")))
                .collect();
            assert_eq!(seen, expected, "{by_resource:?}");
        }
        // By resource: both vaults, newest first (ties: v before w).
        let out = c
            .list_recovery_points_by_resource(
                &ctx,
                ListRecoveryPointsByResourceInput {
                    resource_arn: res(2),
                    max_results: Some(4),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let names: Vec<_> = out
            .recovery_points
            .unwrap()
            .into_iter()
            .map(|p| p.recovery_point_arn.unwrap())
            .collect();
        let rp = |id: &str| arn::recovery_point(REGION, ACCOUNT, id);
        assert_eq!(names, vec![rp("v059"), rp("w059"), rp("v056"), rp("w056")]);
        assert!(out.next_token.is_some());
        // The parent of fs-2's next backup in w, and the protected resource, follow deletions.
        let latest = recovery_points::latest_for_resource(c.plane(), ACCOUNT, REGION, "w", &res(2))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(latest.id, "w059");
        c.delete_recovery_point(
            &ctx,
            DeleteRecoveryPointInput {
                backup_vault_name: "w".into(),
                recovery_point_arn: rp("w059"),
            },
        )
        .await
        .unwrap();
        let latest = recovery_points::latest_for_resource(c.plane(), ACCOUNT, REGION, "w", &res(2))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(latest.id, "w056");
        let described = c
            .describe_protected_resource(
                &ctx,
                DescribeProtectedResourceInput {
                    resource_arn: res(2),
                },
            )
            .await
            .unwrap();
        assert_eq!(described.last_recovery_point_arn, Some(rp("v059")));
        // ListProtectedResources pages the resources in ARN order, each with its newest point;
        // a resource whose last point is deleted leaves the list.
        let list = |token: Option<String>, max: Option<i32>| {
            c.list_protected_resources(
                &ctx,
                ListProtectedResourcesInput {
                    max_results: max,
                    next_token: token,
                },
            )
        };
        let first = list(None, Some(2)).await.unwrap();
        let second = list(first.next_token.clone(), Some(2)).await.unwrap();
        assert!(second.next_token.is_none());
        let all: Vec<_> = first
            .results
            .unwrap()
            .into_iter()
            .chain(second.results.unwrap())
            .map(|p| (p.resource_arn.unwrap(), p.last_recovery_point_arn.unwrap()))
            .collect();
        assert_eq!(
            all,
            vec![
                (res(0), rp("v057")),
                (res(1), rp("v058")),
                (res(2), rp("v059")),
                (res(9), rp("w900")),
            ]
        );
        c.delete_recovery_point(
            &ctx,
            DeleteRecoveryPointInput {
                backup_vault_name: "w".into(),
                recovery_point_arn: rp("w900"),
            },
        )
        .await
        .unwrap();
        let left = list(None, None).await.unwrap().results.unwrap();
        assert_eq!(left.len(), 3);
        assert!(left.iter().all(|p| p.resource_arn != Some(res(9))));
        assert_eq!(
            described.last_backup_time.map(|t| t.0),
            Some(t0 + Duration::seconds(59))
        );
    }

    /// Points go cold and are deleted on their lifecycle's days, but a vault lock's
    /// MinRetentionDays holds a deletion back until the lock allows it.
    #[tokio::test]
    async fn the_lifecycle_sweep_respects_the_vault_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("meta.db").to_str().unwrap()).unwrap();
        let clock = Clock::movable();
        let c = node(&store, &clock, dir.path(), "a");
        let ctx = RequestContext::new(ACCOUNT, REGION);
        for v in ["free", "locked"] {
            c.create_backup_vault(
                &ctx,
                CreateBackupVaultInput {
                    backup_vault_name: v.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        c.put_backup_vault_lock_configuration(
            &ctx,
            PutBackupVaultLockConfigurationInput {
                backup_vault_name: "locked".into(),
                min_retention_days: Some(10),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let now = clock.now();
        store
            .write(move |tx| -> Result<()> {
                for (v, id, cold, delete) in [
                    ("free", "p-cold", Some(1), 100),
                    ("free", "p-gone", None, 2),
                    ("locked", "p-held", None, 2),
                ] {
                    let vault = vaults::load(tx, &vaults::key(ACCOUNT, REGION, v), v)?;
                    recovery_points::insert(
                        tx,
                        &point(&vault, id, now, cold, delete),
                        &Default::default(),
                    )?;
                }
                Ok(())
            })
            .await
            .unwrap();
        let class = |id: &'static str| {
            let store = store.clone();
            async move {
                store
                    .read(move |tx| -> Result<Option<String>> {
                        let rp = recovery_points::find(
                            tx,
                            ACCOUNT,
                            REGION,
                            &arn::recovery_point(REGION, ACCOUNT, id),
                        );
                        // Only "not found" means gone; a store failure fails the test.
                        match rp {
                            Ok(r) => Ok(Some(r.storage_class.as_str().to_string())),
                            Err(e) if e.is_client_error() => Ok(None),
                            Err(e) => Err(e),
                        }
                    })
                    .await
                    .unwrap()
            }
        };
        clock.advance(Duration::days(3)).unwrap();
        let done = c.catch_up().await.unwrap();
        assert_eq!((done.moved_to_cold, done.deleted), (1, 1), "{done:?}");
        assert_eq!(class("p-cold").await.as_deref(), Some("COLD"));
        assert_eq!(class("p-gone").await, None);
        assert_eq!(
            class("p-held").await.as_deref(),
            Some("WARM"),
            "held by the lock"
        );
        clock.advance(Duration::days(7)).unwrap();
        assert_eq!(
            c.catch_up().await.unwrap().deleted,
            1,
            "deleted once the lock allows"
        );
        assert_eq!(class("p-held").await, None);
    }
}
