//! What a running job shares with the runner, and how a job ends.
//!
//! [`Running`] is the registry of the jobs this process runs (so StopBackupJob can cancel one,
//! the runner can count its free slots, and the development clock's time travel can wait
//! until every running job has ended or is waiting) and the runner's wake-up signal. [`JobControl`]
//! carries a job's cancellation, progress and the reason it was stopped. [`finish`] records
//! a job's end; [`engine_end`] reads the engine's error as a state and a message; [`failed`]
//! decides whether a failed run is tried again after a backoff or ends the job FAILED.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use coffer_engine::{CancelToken, Progress};
use tokio::sync::Notify;

use crate::model::Meta;
use crate::model::clock::backoff;
use crate::model::error::{Error, Result};
use crate::model::jobs::{JobRecord, MAX_ATTEMPTS, load_held, save_job};
use crate::model::states::JobState;

/// Ends a job with `state` and `message`, unless it already ended.
pub(crate) async fn finish(
    meta: &Meta,
    job: &JobRecord,
    state: JobState,
    message: Option<String>,
    category: &str,
) {
    let now = meta.clock().now();
    let run = job.run();
    let category = category.to_string();
    let r = meta
        .store()
        .write(move |tx| -> Result<()> {
            if let Some(mut j) = load_held(tx, &run)? {
                j.state = state;
                j.status_message = message;
                j.message_category = Some(category);
                j.completion_date = Some(now);
                j.lease_owner = None;
                j.lease_until = None;
                save_job(tx, &j)?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = r {
        tracing::error!(job = %job.id, error = %coffer_api::error_chain(&e.0), "could not record the end of a job");
    }
}

/// Whether the engine failed for a reason that can pass: the vault's storage (disk, bucket)
/// failed, or the repository Coffer recorded for the vault is not where it was (an unmounted
/// disk, a bucket that is not reachable), as opposed to a missing source, a refused
/// permission, damaged data, a bad request or a file-system error on the source or the
/// restore target, which fail the same way until someone changes them.
fn engine_transient(e: &coffer_engine::Error) -> bool {
    matches!(
        e,
        coffer_engine::Error::Storage(_) | coffer_engine::Error::VaultNotFound(_)
    )
}

/// Whether a failed run is worth another attempt: the metadata store was unavailable or in
/// conflict, or the vault's storage failed (see [`engine_transient`]).
pub(crate) fn is_transient(e: &Error) -> bool {
    e.is_retryable_store_failure() || e.engine_error().is_some_and(engine_transient)
}

/// Ends a run that failed with `e` (see [`end_failed_run`]).
pub(crate) async fn failed(meta: &Meta, job: &JobRecord, e: &Error) {
    tracing::warn!(job = %job.id, attempt = job.attempts, error = %coffer_api::error_chain(&e.0), "a job's run failed");
    end_failed_run(meta, job, e.operator_message(), is_transient(e)).await;
}

/// Ends a failed run. A failure that can pass (`transient`) sends the job back to wait for
/// its next attempt, [`backoff`] after now on the Coffer clock, while it has attempts left
/// (at most [`MAX_ATTEMPTS`] runs) and the next attempt falls within its start window. Any
/// other failure, or the last attempt's, ends the job FAILED with a message naming the error
/// (and how many runs failed).
async fn end_failed_run(meta: &Meta, job: &JobRecord, message: String, transient: bool) {
    let now = meta.clock().now();
    let next = now + backoff(job.attempts);
    let may_retry =
        transient && job.attempts < MAX_ATTEMPTS && job.start_by.is_none_or(|s| next <= s);
    if may_retry {
        let (run, kind) = (job.run(), job.kind);
        let status = format!(
            "Attempt {} of {MAX_ATTEMPTS} failed: {}. Coffer tries again at {}.",
            job.attempts,
            message.trim_end_matches('.'),
            next.to_rfc3339()
        );
        let r = meta
            .store()
            .write(move |tx| -> Result<bool> {
                let Some(mut j) = load_held(tx, &run)? else {
                    return Ok(false);
                };
                if j.state != JobState::Running {
                    return Ok(false);
                }
                j.state = kind.waiting_state();
                j.status_message = Some(status);
                j.lease_owner = None;
                j.lease_until = None;
                j.percent_done = 0.0;
                j.next_attempt = Some(next);
                save_job(tx, &j)?;
                Ok(true)
            })
            .await;
        match r {
            Ok(true) => {
                tracing::info!(job = %job.id, attempt = job.attempts, next_attempt = %next, "the job runs again after its backoff");
                return;
            }
            Ok(false) => return,
            Err(e) => {
                tracing::error!(job = %job.id, error = %coffer_api::error_chain(&e.0), "could not queue a failed job again; ending it");
            }
        }
    }
    let message = if job.attempts > 1 {
        format!(
            "The job failed {} times; the last error: {message}",
            job.attempts
        )
    } else {
        message
    };
    finish(meta, job, JobState::Failed, Some(message), "FAILED").await;
}

/// The environment variable naming a point where jobs wait (a test hook): with
/// `COFFER_TEST_PAUSE_AT=backup`, a backup job that starts running waits before it reads
/// anything (with `progress`, any job waits in the middle of its transfer, see
/// [`JobControl::observer`]) until it is cancelled (StopBackupJob, its completion window, shutdown), so tests
/// can act on a running job without racing it. Unset in production.
pub(crate) const PAUSE_ENV: &str = "COFFER_TEST_PAUSE_AT";

/// Waits at `point` until the job is cancelled when [`PAUSE_ENV`] names `point`; returns
/// whether it waited (the job was then cancelled).
pub(crate) async fn pause_point(point: &str, control: &JobControl) -> bool {
    if std::env::var(PAUSE_ENV).ok().as_deref() != Some(point) {
        return false;
    }
    tracing::warn!(point, "job paused by {PAUSE_ENV} until it is cancelled");
    control.set_waiting(true);
    while !control.cancel.is_cancelled() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    control.set_waiting(false);
    true
}

/// Records how a job the engine stopped with `e` ended: back in the queue when Coffer is
/// shutting down (a later start runs it again), otherwise ended with the state and message
/// [`engine_end`] gives (`aborted_as` replaces ABORTED for kinds that have no such state).
pub(crate) async fn engine_stopped(
    meta: &Meta,
    job: &JobRecord,
    control: &JobControl,
    e: &coffer_engine::Error,
    aborted_as: JobState,
) {
    if control.is_shutdown() && matches!(e, coffer_engine::Error::Cancelled) {
        hand_back(meta, job).await;
        return;
    }
    if !control.cancel.is_cancelled() && engine_transient(e) {
        tracing::warn!(job = %job.id, attempt = job.attempts, error = %e, "a job's run failed");
        end_failed_run(meta, job, e.status_message(), true).await;
        return;
    }
    let (state, message, category) = engine_end(control, e);
    let state = if state == JobState::Aborted {
        aborted_as
    } else {
        state
    };
    finish(meta, job, state, Some(message), category).await;
}

/// Puts a job that was stopped by shutdown back in the queue (the attempt does not count
/// against its interruptions); a job being stopped by StopBackupJob ends ABORTED instead.
pub(crate) async fn hand_back(meta: &Meta, job: &JobRecord) {
    let (run, kind, now) = (job.run(), job.kind, meta.clock().now());
    let r = meta
        .store()
        .write(move |tx| -> Result<()> {
            let Some(mut j) = load_held(tx, &run)? else {
                return Ok(());
            };
            j.lease_owner = None;
            j.lease_until = None;
            match j.state {
                JobState::Running => {
                    j.state = kind.waiting_state();
                    j.attempts = j.attempts.saturating_sub(1);
                    j.percent_done = 0.0;
                    j.status_message = Some(
                        "Coffer stopped while this job ran; it runs again when Coffer starts."
                            .into(),
                    );
                }
                JobState::Aborting => {
                    j.state = JobState::Aborted;
                    j.status_message =
                        Some("The job was stopped by a StopBackupJob request.".into());
                    j.completion_date = Some(now);
                }
                _ => return Ok(()),
            }
            save_job(tx, &j)
        })
        .await;
    match r {
        Ok(()) => tracing::info!(job = %job.id, "job handed back to the queue for the next start"),
        Err(e) => {
            tracing::error!(job = %job.id, error = %coffer_api::error_chain(&e.0), "could not hand a job back; the next start finds it by its lease")
        }
    }
}

/// The state and message for a job the engine stopped with `e`.
pub(crate) fn engine_end(
    control: &JobControl,
    e: &coffer_engine::Error,
) -> (JobState, String, &'static str) {
    match e {
        coffer_engine::Error::Cancelled => (
            JobState::Aborted,
            control
                .reason()
                .unwrap_or_else(|| "The job was stopped.".into()),
            "ABORTED",
        ),
        coffer_engine::Error::SourceNotFound(_) => {
            (JobState::Failed, e.status_message(), "SOURCE_NOT_FOUND")
        }
        coffer_engine::Error::PermissionDenied(_) => {
            (JobState::Failed, e.status_message(), "ACCESS_DENIED")
        }
        _ => (JobState::Failed, e.status_message(), "FAILED"),
    }
}

/// The status message of a job stopped at the end of its completion window.
pub(crate) const COMPLETION_WINDOW_ENDED: &str =
    "The job did not complete within its completion window and was stopped.";

/// What the runner and a running job share.
#[derive(Clone)]
pub(crate) struct JobControl {
    pub cancel: CancelToken,
    pub progress: Arc<Mutex<Progress>>,
    /// Why the job was cancelled (stop request, completion window).
    pub reason: Arc<Mutex<Option<String>>>,
    /// Cancelled because Coffer is shutting down: the job goes back to the queue.
    shutdown: Arc<AtomicBool>,
    /// The job waits for something outside it (the test pause point): it would not end by
    /// itself, so time travel moves on without it.
    waiting: Arc<AtomicBool>,
    /// When its completion window ends, if it has one.
    complete_by: Option<DateTime<Utc>>,
    /// Told when the job starts or stops waiting (the registry's signal).
    changed: Arc<Notify>,
}

impl JobControl {
    fn new(complete_by: Option<DateTime<Utc>>, changed: Arc<Notify>) -> Self {
        JobControl {
            cancel: CancelToken::new(),
            progress: Arc::default(),
            reason: Arc::default(),
            shutdown: Arc::default(),
            waiting: Arc::default(),
            complete_by,
            changed,
        }
    }

    /// Marks the job as waiting (or working again).
    pub fn set_waiting(&self, waiting: bool) {
        self.waiting.store(waiting, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// Waiting, and not cancelled (a cancelled job ends by itself: it is working again).
    fn is_waiting(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) && !self.cancel.is_cancelled()
    }

    /// Whether the job was cancelled because Coffer is shutting down.
    pub fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
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

    /// The engine's progress callback: keeps the latest progress for the heartbeat to save.
    /// With [`PAUSE_ENV`] `=progress` (a test hook), the first report with bytes done that is
    /// not the end holds the engine there until the job is cancelled, so a test can read
    /// the progress of a job caught mid-transfer.
    pub fn observer(&self) -> impl Fn(&Progress) + Send + Sync + 'static {
        let p = self.progress.clone();
        let hold = std::env::var(PAUSE_ENV).ok().as_deref() == Some("progress");
        let (cancel, waiting, changed) = (
            self.cancel.clone(),
            self.waiting.clone(),
            self.changed.clone(),
        );
        move |now: &Progress| {
            *p.lock().unwrap_or_else(|e| e.into_inner()) = now.clone();
            let mid_transfer = now.bytes_done > 0 && now.percent().is_some_and(|x| x < 100.0);
            if hold && mid_transfer && !cancel.is_cancelled() {
                // The engine calls this on its blocking thread: waiting here holds the job.
                waiting.store(true, Ordering::SeqCst);
                changed.notify_waiters();
                while !cancel.is_cancelled() {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                waiting.store(false, Ordering::SeqCst);
                changed.notify_waiters();
            }
        }
    }
}

/// The jobs running in this process and the runner's wake-up signal.
#[derive(Default)]
pub(crate) struct Running {
    notify: Notify,
    jobs: Mutex<HashMap<String, JobControl>>,
    shutting_down: AtomicBool,
    /// Told when a job ends or starts or stops waiting.
    changed: Arc<Notify>,
}

impl Running {
    /// Makes the runner look at the queue now.
    pub(crate) fn wake(&self) {
        self.notify.notify_one();
    }

    /// Waits until [`Running::wake`] is called.
    pub(crate) async fn woken(&self) {
        self.notify.notified().await
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, JobControl>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many jobs run in this process now.
    pub(crate) fn count(&self) -> usize {
        self.jobs().len()
    }

    /// Registers a job that starts running here, whose completion window ends at
    /// `complete_by`; returns its control.
    pub(crate) fn register(&self, job_key: &str, complete_by: Option<DateTime<Utc>>) -> JobControl {
        let control = JobControl::new(complete_by, self.changed.clone());
        self.jobs().insert(job_key.to_string(), control.clone());
        control
    }

    /// Forgets a job that ended.
    pub(crate) fn unregister(&self, job_key: &str) {
        self.jobs().remove(job_key);
        self.changed.notify_waiters();
    }

    /// Whether the job with this key runs here now.
    pub(crate) fn is_running(&self, job_key: &str) -> bool {
        self.jobs().contains_key(job_key)
    }

    /// How many jobs running here are working (not waiting for something outside them).
    pub(crate) fn working(&self) -> usize {
        self.jobs().values().filter(|c| !c.is_waiting()).count()
    }

    /// Resolves once every job running here has ended or is waiting.
    pub(crate) async fn settled(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.working() == 0 {
                return;
            }
            changed.await;
        }
    }

    /// The earliest end of a completion window, after `after`, among the jobs running here.
    pub(crate) fn next_window_end(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.jobs()
            .values()
            .filter_map(|c| c.complete_by)
            .filter(|c| *c > after)
            .min()
    }

    /// Stops every job running here whose completion window has ended by `now` (what the
    /// heartbeat does within half a second; time travel does it at the window's end). Returns
    /// how many were stopped.
    pub(crate) fn stop_past_window(&self, now: DateTime<Utc>) -> usize {
        let jobs = self.jobs();
        let mut n = 0;
        for c in jobs
            .values()
            .filter(|c| c.complete_by.is_some_and(|e| e <= now))
        {
            c.cancel_with(COMPLETION_WINDOW_ENDED);
            n += 1;
        }
        n
    }

    /// Asks every job running here to stop at its next checkpoint and go back to the queue
    /// (shutdown); no job is claimed after this. Returns how many were running.
    pub(crate) fn shut_down(&self) -> usize {
        self.shutting_down.store(true, Ordering::SeqCst);
        let jobs = self.jobs();
        for c in jobs.values() {
            c.shutdown.store(true, Ordering::SeqCst);
            c.cancel_with("Coffer is shutting down.");
        }
        jobs.len()
    }

    /// Whether [`Running::shut_down`] was called.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Resolves once no job runs here.
    pub(crate) async fn all_ended(&self) {
        while self.count() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Cancels a job running in this process; returns whether it was running here.
    pub(crate) fn cancel(&self, job_key: &str, reason: &str) -> bool {
        match self.jobs().get(job_key) {
            Some(c) => {
                c.cancel_with(reason);
                true
            }
            None => false,
        }
    }
}
