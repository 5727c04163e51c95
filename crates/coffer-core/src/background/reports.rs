//! Report plans that are due: every report plan runs once every 24 hours on Coffer's clock,
//! counted from its creation (AWS runs its plans daily too).
//!
//! The next run of each plan is a row of `report_due`, keyed by the due time first, so the
//! earliest is one read. A run is claimed by moving the plan's due row on in a write
//! transaction that first checks it is still the row it read, so two nodes (or the worker and
//! a time travel) never run the same day twice. After downtime a plan runs once, for the
//! latest day it missed, not once per missed day. The report job itself is the data plane's
//! (`dataplane::reports::run`), the same StartReportJob uses. The worker ticks every second
//! under the scheduler's pass lock; time travel runs due plans at each step and steps to the
//! next due time.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::background::worker::Worker;
use crate::dataplane::{Executor, reports as run};
use crate::model::error::Result;
use crate::model::reports::{self, PERIOD_HOURS, ReportPlanRecord};

/// The runs of due report plans as a [`Worker`], one at a time with the scheduler's passes.
pub(crate) struct ReportWorker {
    pub pass: Arc<tokio::sync::Mutex<()>>,
    pub plane: Executor,
}

#[async_trait]
impl Worker for ReportWorker {
    fn name(&self) -> &'static str {
        "report plans"
    }

    async fn tick(&self) -> std::result::Result<(), String> {
        let _one_at_a_time = self.pass.lock().await;
        let now = self.plane.clock().now();
        run_due(&self.plane, now)
            .await
            .map(|_| ())
            .map_err(|e| coffer_api::error_chain(&e.0))
    }
}

/// When the next report plan is due, if any plan exists.
pub(crate) async fn next_due(plane: &Executor) -> Result<Option<DateTime<Utc>>> {
    Ok(plane
        .store()
        .read(reports::earliest_due)
        .await?
        .map(|(at, _)| at))
}

/// A claimed plan and the time its report is made at.
type Claimed = (ReportPlanRecord, DateTime<Utc>);

/// Claims the earliest plan if it is due at `now`: moves its next run past `now` and returns
/// the plan with the time its report is made at (the latest due time not after `now`).
async fn claim(plane: &Executor, now: DateTime<Utc>) -> Result<Option<Claimed>> {
    let claimed = plane
        .store()
        .write(move |tx| -> Result<Option<Option<Claimed>>> {
            let Some((due, plan_key)) = reports::earliest_due(tx)? else {
                return Ok(None);
            };
            if due > now {
                return Ok(None);
            }
            let mut parts = plan_key.splitn(3, ':');
            let (a, r, n) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            // Compared as keys: a key keeps microseconds, a record the clock's nanoseconds.
            let row = reports::due_key(due, a, r, n);
            let current = |p: &ReportPlanRecord| reports::due_key(p.next_run, a, r, n) == row;
            let Some(mut plan) = reports::find(tx, a, r, n)?.filter(current) else {
                // A row left behind by a plan that changed: drop it.
                tx.delete(reports::DUE, &row)?;
                return Ok(Some(None));
            };
            let period = Duration::hours(PERIOD_HOURS);
            let missed = (now - due).num_seconds() / period.num_seconds();
            let at = due + Duration::seconds(missed * period.num_seconds());
            plan.next_run = at + period;
            reports::save(tx, &plan, Some(due))?;
            Ok(Some(Some((plan, at))))
        })
        .await?;
    // `Some(None)`: a stale row was dropped; the caller looks again.
    Ok(claimed.flatten())
}

/// Runs every report plan due at `now`; returns how many reports were made.
pub(crate) async fn run_due(plane: &Executor, now: DateTime<Utc>) -> Result<usize> {
    let mut made = 0;
    // Bounded so a store that keeps answering the same stale row cannot spin forever.
    for _ in 0..10_000 {
        let Some(due) = next_due(plane).await? else {
            break;
        };
        if due > now {
            break;
        }
        if let Some((plan, at)) = claim(plane, now).await? {
            run::run(plane, &plan, at, None).await?;
            made += 1;
        }
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Coffer;
    use crate::model::clock::Clock;
    use crate::model::reports::{JOBS, ReportBucketEntry, ReportJobRecord};
    use chrono::DurationRound;
    use coffer_api::types::*;
    use coffer_api::{BackupService, RequestContext};
    use coffer_store::StoreHandle;

    const ACCOUNT: &str = "111122223333";
    const REGION: &str = "eu-west-1";

    fn node(store: &StoreHandle, clock: &Clock, reports: &std::path::Path) -> Coffer {
        let c = Coffer::new(store.clone(), clock.clone());
        c.report_buckets().replace(&[ReportBucketEntry {
            bucket: "reports".into(),
            directory: reports.to_path_buf(),
        }]);
        c
    }

    async fn jobs(store: &StoreHandle) -> Vec<ReportJobRecord> {
        store
            .read(|tx| {
                let rows = tx.scan(JOBS, "", None, 1000)?;
                Ok::<_, crate::model::error::Error>(
                    rows.iter()
                        .map(|(_, v)| serde_json::from_slice(v).unwrap())
                        .collect(),
                )
            })
            .await
            .unwrap()
    }

    /// Two nodes on one store pass the plan's due time together: one report is made, for
    /// the day that was due, and the plan's next run moves a day on. After three days of
    /// downtime the plan runs once, for the latest day it missed.
    #[tokio::test]
    async fn a_due_plan_runs_once_per_day_whatever_runs_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("meta.db").to_str().unwrap()).unwrap();
        let clock = Clock::movable();
        clock.hold().unwrap();
        let next_second = (clock.now() + Duration::days(1)).duration_trunc(Duration::seconds(1));
        let t0 = clock.set(next_second.unwrap()).unwrap();
        let root = dir.path().join("reports");
        let (a, b) = (node(&store, &clock, &root), node(&store, &clock, &root));
        let ctx = RequestContext::new(ACCOUNT, REGION);
        a.create_report_plan(
            &ctx,
            CreateReportPlanInput {
                report_plan_name: "daily".into(),
                report_delivery_channel: ReportDeliveryChannel {
                    s3_bucket_name: "reports".into(),
                    ..Default::default()
                },
                report_setting: ReportSetting {
                    report_template: "BACKUP_JOB_REPORT".into(),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            next_due(a.plane()).await.unwrap(),
            Some(t0 + Duration::hours(24))
        );
        let t1 = t0 + Duration::hours(24) + Duration::minutes(5);
        let (ra, rb) = tokio::join!(run_due(a.plane(), t1), run_due(b.plane(), t1));
        assert_eq!(ra.unwrap() + rb.unwrap(), 1);
        let made = jobs(&store).await;
        assert_eq!(made.len(), 1);
        assert_eq!(made[0].creation_time, t0 + Duration::hours(24));
        assert_eq!(made[0].keys.len(), 1);
        assert!(root.join(&made[0].keys[0]).is_file());
        assert_eq!(
            next_due(a.plane()).await.unwrap(),
            Some(t0 + Duration::hours(48))
        );

        let t4 = t0 + Duration::hours(24 * 4 + 3);
        assert_eq!(run_due(b.plane(), t4).await.unwrap(), 1);
        let made = jobs(&store).await;
        assert_eq!(made.len(), 2);
        assert!(
            made.iter()
                .any(|j| j.creation_time == t0 + Duration::hours(96))
        );
        assert_eq!(
            next_due(a.plane()).await.unwrap(),
            Some(t0 + Duration::hours(120))
        );
    }
}
