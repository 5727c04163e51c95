//! The worker pool that runs queued jobs.
//!
//! One loop per process: every second, or at once when woken, it carries out queued recovery
//! point deletions, expires jobs whose start window has passed, and claims as many waiting jobs
//! as it has free slots, each under a lease (`node/incarnation`, one minute on the wall clock,
//! renewed by the job's heartbeat). A job whose lease belongs to an earlier incarnation of this
//! node, or has run out, was cut off by a crash: it is queued again (at most three attempts in
//! all) or ends FAILED / ABORTED with a message saying so.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use coffer_engine::{CancelToken, Progress};
use tokio::sync::Notify;

use super::{JobKind, JobRecord, QUEUE, load_job, save_job};
use crate::Coffer;
use crate::error::Result;

const LEASE: i64 = 60;
const MAX_ATTEMPTS: u32 = 3;

/// What the runner and a running job share.
#[derive(Clone)]
pub(crate) struct JobControl {
    pub cancel: CancelToken,
    pub progress: Arc<Mutex<Progress>>,
    /// Why the job was cancelled (stop request, completion window).
    pub reason: Arc<Mutex<Option<String>>>,
}

impl JobControl {
    fn new() -> Self {
        JobControl {
            cancel: CancelToken::new(),
            progress: Arc::default(),
            reason: Arc::default(),
        }
    }

    pub fn cancel_with(&self, reason: &str) {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(|| reason.to_string());
        self.cancel.cancel();
    }

    pub fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn observer(&self) -> impl Fn(&Progress) + Send + Sync + 'static {
        let p = self.progress.clone();
        move |now: &Progress| *p.lock().unwrap_or_else(|e| e.into_inner()) = now.clone()
    }
}

/// The job runner of this process.
pub struct Runner {
    node: String,
    incarnation: String,
    slots: usize,
    notify: Notify,
    running: Mutex<HashMap<String, JobControl>>,
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
            notify: Notify::new(),
            running: Mutex::default(),
            pass: tokio::sync::Mutex::new(()),
        }
    }

    fn owner(&self) -> String {
        format!("{}/{}", self.node, self.incarnation)
    }

    /// Makes the loop look at the queue now.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Cancels a job running in this process; returns whether it was running here.
    pub(crate) fn cancel(&self, job_key: &str, reason: &str) -> bool {
        match self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(job_key)
        {
            Some(c) => {
                c.cancel_with(reason);
                true
            }
            None => false,
        }
    }

    /// One pass now: queued deletions, expirations, claims (what the loop does each second).
    pub(crate) async fn pass(coffer: &Coffer) -> Result<()> {
        let _one_at_a_time = coffer.runner().pass.lock().await;
        tick(coffer).await
    }

    /// Runs the loop until the process ends.
    pub fn start(coffer: &Coffer) {
        let coffer = coffer.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = Runner::pass(&coffer).await {
                    tracing::warn!(error = %e.0, "job runner pass failed; retrying");
                }
                let runner = coffer.runner();
                tokio::select! {
                    _ = runner.notify.notified() => {}
                    _ = tokio::time::sleep(StdDuration::from_secs(1)) => {}
                }
            }
        });
    }
}

async fn tick(coffer: &Coffer) -> Result<()> {
    crate::recovery_points::process_deletions(coffer).await?;
    crate::storage::process_removals(coffer).await?;
    let runner = coffer.runner();
    let free = runner.slots.saturating_sub(
        runner
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len(),
    );
    let now = coffer.clock().now();
    let wall = Utc::now();
    let owner = runner.owner();
    let node_prefix = format!("{}/", runner.node);
    let claimed = coffer
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
        let control = JobControl::new();
        runner
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.key(), control.clone());
        let coffer = coffer.clone();
        tokio::spawn(async move {
            let key = job.key();
            let heartbeat = tokio::spawn(heartbeat(coffer.clone(), job.clone(), control.clone()));
            match job.kind {
                JobKind::Backup => super::backup::run(&coffer, job, &control).await,
                JobKind::Copy => super::copy::run(&coffer, job, &control).await,
                JobKind::Restore => super::restore::run(&coffer, job, &control).await,
            }
            heartbeat.abort();
            coffer
                .runner()
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
            coffer.runner().wake();
        });
    }
    Ok(())
}

/// While a job runs: writes its progress, renews its lease, and cancels it when a stop was
/// requested or its completion window ended.
async fn heartbeat(coffer: Coffer, job: JobRecord, control: JobControl) {
    let owner = coffer.runner().owner();
    loop {
        tokio::time::sleep(StdDuration::from_millis(500)).await;
        let progress = control
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let now = coffer.clock().now();
        let key = job.key();
        let kind = job.kind;
        let owner = owner.clone();
        let state = coffer
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
