//! The worker pool that runs queued jobs.
//!
//! One loop per process: every second, or at once when woken, it carries out queued recovery
//! point deletions, expires jobs whose start window has passed, and claims as many waiting jobs
//! as it has free slots, each under a lease (`node/incarnation`, one minute on the wall clock,
//! renewed by the job's heartbeat). A job whose lease belongs to an earlier incarnation of this
//! node, or has run out, was cut off by a crash: it is queued again (at most three attempts in
//! all) or ends FAILED / ABORTED with a message saying so.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};

use crate::dataplane::jobs::JobControl;
use crate::dataplane::{self, Executor};
use crate::model::error::Result;
use crate::model::jobs::QUEUE;
use crate::model::jobs::{JobKind, JobRecord, load_job, save_job};

const LEASE: i64 = 60;
const MAX_ATTEMPTS: u32 = 3;

/// The job runner of this process: its identity for leases, its slots, and the lock that
/// keeps its passes one at a time.
pub struct Runner {
    node: String,
    incarnation: String,
    slots: usize,
    /// One pass over the queue at a time in this process (the loop and the clock endpoint's
    /// catch-up both run passes), so free slots are never handed out twice.
    pass: tokio::sync::Mutex<()>,
}

impl Runner {
    pub fn new(node: &str, slots: usize) -> Self {
        Runner {
            node: node.to_string(),
            incarnation: uuid::Uuid::new_v4().to_string(),
            slots: slots.max(1),
            pass: tokio::sync::Mutex::new(()),
        }
    }

    fn owner(&self) -> String {
        format!("{}/{}", self.node, self.incarnation)
    }

    /// One pass now: queued deletions, expirations, claims (what the loop does each second).
    pub(crate) async fn pass(&self, plane: &Executor) -> Result<()> {
        let _one_at_a_time = self.pass.lock().await;
        tick(self, plane).await
    }

    /// Runs the loop until the process ends.
    pub(crate) fn start(self: &Arc<Self>, plane: &Executor) {
        let (runner, plane) = (self.clone(), plane.clone());
        tokio::spawn(async move {
            loop {
                if let Err(e) = runner.pass(&plane).await {
                    tracing::warn!(error = %e.0, "job runner pass failed; retrying");
                }
                tokio::select! {
                    _ = plane.running().woken() => {}
                    _ = tokio::time::sleep(StdDuration::from_secs(1)) => {}
                }
            }
        });
    }
}

async fn tick(runner: &Runner, plane: &Executor) -> Result<()> {
    dataplane::deletions::process_deletions(plane).await?;
    dataplane::storage::process_removals(plane).await?;
    let free = runner.slots.saturating_sub(plane.running().count());
    let now = plane.clock().now();
    let wall = Utc::now();
    let owner = runner.owner();
    let node_prefix = format!("{}/", runner.node);
    let claimed = plane
        .store()
        .write(move |tx| -> Result<Vec<JobRecord>> {
            let mut claimed = Vec::new();
            for (qkey, _) in tx.scan(QUEUE, "", None, 1000)? {
                let Some((tag, jkey)) = qkey.split_once(':') else {
                    tx.delete(QUEUE, &qkey)?;
                    continue;
                };
                let kind = match tag {
                    "backup" => JobKind::Backup,
                    "copy" => JobKind::Copy,
                    "restore" => JobKind::Restore,
                    _ => {
                        tx.delete(QUEUE, &qkey)?;
                        continue;
                    }
                };
                let Some(mut job) = load_job(tx, kind, jkey)? else {
                    tx.delete(QUEUE, &qkey)?;
                    continue;
                };
                if job.is_terminal() {
                    tx.delete(QUEUE, &qkey)?;
                    continue;
                }
                let waiting = job.state == kind.waiting_state();
                if !waiting {
                    // RUNNING or ABORTING: is its worker gone?
                    let orphaned = match (&job.lease_owner, job.lease_until) {
                        (Some(o), _) if o == &owner => false,
                        (Some(o), _) if o.starts_with(&node_prefix) => true,
                        (_, Some(until)) => until < wall,
                        _ => true,
                    };
                    if !orphaned {
                        continue;
                    }
                    job.lease_owner = None;
                    job.lease_until = None;
                    if job.state == "ABORTING" {
                        job.state = "ABORTED".into();
                        job.status_message = Some("Coffer stopped while the job was being stopped.".into());
                        job.completion_date = Some(now);
                    } else if job.attempts >= MAX_ATTEMPTS {
                        job.state = "FAILED".into();
                        job.status_message = Some(format!(
                            "Coffer was interrupted while running this job {} times; giving up.",
                            job.attempts
                        ));
                        job.message_category = Some("INTERRUPTED".into());
                        job.completion_date = Some(now);
                    } else {
                        job.state = kind.waiting_state().into();
                        job.status_message = Some(format!(
                            "Coffer was interrupted while running this job; it runs again (attempt {} of {MAX_ATTEMPTS}).",
                            job.attempts + 1
                        ));
                        job.percent_done = 0.0;
                    }
                    save_job(tx, &job)?;
                    if job.is_terminal() {
                        continue;
                    }
                }
                if job.start_by.is_some_and(|s| s < now) {
                    job.state = "EXPIRED".into();
                    job.status_message = Some(format!(
                        "The job did not start within its start window (it had to start by {}).",
                        job.start_by.map(|s| s.to_rfc3339()).unwrap_or_default()
                    ));
                    job.completion_date = Some(now);
                    save_job(tx, &job)?;
                    continue;
                }
                if claimed.len() >= free {
                    continue;
                }
                job.state = "RUNNING".into();
                job.attempts += 1;
                job.started_at = Some(now);
                job.lease_owner = Some(owner.clone());
                job.lease_until = Some(wall + Duration::seconds(LEASE));
                save_job(tx, &job)?;
                claimed.push(job);
            }
            Ok(claimed)
        })
        .await?;
    for job in claimed {
        let control = plane.running().register(&job.key());
        let plane = plane.clone();
        let owner = runner.owner();
        tokio::spawn(async move {
            let key = job.key();
            let heartbeat = tokio::spawn(heartbeat(
                plane.clone(),
                owner,
                job.clone(),
                control.clone(),
            ));
            match job.kind {
                JobKind::Backup => dataplane::backup::run(&plane, job, &control).await,
                JobKind::Copy => dataplane::copy::run(&plane, job, &control).await,
                JobKind::Restore => dataplane::restore::run(&plane, job, &control).await,
            }
            heartbeat.abort();
            plane.running().unregister(&key);
            plane.running().wake();
        });
    }
    Ok(())
}

/// While a job runs: writes its progress, renews its lease, and cancels it when a stop was
/// requested or its completion window ended.
async fn heartbeat(plane: Executor, owner: String, job: JobRecord, control: JobControl) {
    loop {
        tokio::time::sleep(StdDuration::from_millis(500)).await;
        let progress = control
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let now = plane.clock().now();
        let key = job.key();
        let kind = job.kind;
        let owner = owner.clone();
        let state = plane
            .store()
            .write(
                move |tx| -> Result<Option<(String, Option<chrono::DateTime<Utc>>)>> {
                    let Some(mut j) = load_job(tx, kind, &key)? else {
                        return Ok(None);
                    };
                    if j.is_terminal() || j.lease_owner.as_deref() != Some(owner.as_str()) {
                        return Ok(None);
                    }
                    if let Some(p) = progress.percent() {
                        j.percent_done = p.min(99.0);
                    }
                    j.bytes_transferred = progress.bytes_done as i64;
                    j.lease_until = Some(Utc::now() + Duration::seconds(LEASE));
                    save_job(tx, &j)?;
                    Ok(Some((j.state.clone(), j.complete_by)))
                },
            )
            .await;
        match state {
            Ok(Some((state, complete_by))) => {
                if state == "ABORTING" {
                    control.cancel_with("The job was stopped by a StopBackupJob request.");
                }
                if complete_by.is_some_and(|c| now > c) {
                    control.cancel_with(
                        "The job did not complete within its completion window and was stopped.",
                    );
                }
            }
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e.0, "writing job progress failed"),
        }
    }
}
