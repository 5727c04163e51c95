//! What a running job shares with the runner, and how a job ends.
//!
//! [`Running`] is the registry of the jobs this process runs (so StopBackupJob can cancel one
//! and the runner can count its free slots) and the runner's wake-up signal. [`JobControl`]
//! carries a job's cancellation, progress and the reason it was stopped. [`finish`] records
//! a job's end; [`engine_end`] reads the engine's error as a state and a message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use coffer_engine::{CancelToken, Progress};
use tokio::sync::Notify;

use crate::model::Meta;
use crate::model::error::Result;
use crate::model::jobs::{JobRecord, load_job, save_job};

/// Ends a job with `state` and `message`, unless it already ended.
pub(crate) async fn finish(
    meta: &Meta,
    job: &JobRecord,
    state: &str,
    message: Option<String>,
    category: &str,
) {
    let now = meta.clock().now();
    let key = job.key();
    let kind = job.kind;
    let (state, category) = (state.to_string(), category.to_string());
    let r = meta
        .store()
        .write(move |tx| -> Result<()> {
            if let Some(mut j) = load_job(tx, kind, &key)? {
                if j.is_terminal() {
                    return Ok(());
                }
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
        tracing::error!(job = %job.id, error = %e.0, "could not record the end of a job");
    }
}

/// The state and message for a job the engine stopped with `e`.
pub(crate) fn engine_end(
    control: &JobControl,
    e: &coffer_engine::Error,
) -> (&'static str, String, &'static str) {
    match e {
        coffer_engine::Error::Cancelled => (
            "ABORTED",
            control
                .reason()
                .unwrap_or_else(|| "The job was stopped.".into()),
            "ABORTED",
        ),
        coffer_engine::Error::SourceNotFound(_) => {
            ("FAILED", e.status_message(), "SOURCE_NOT_FOUND")
        }
        coffer_engine::Error::PermissionDenied(_) => {
            ("FAILED", e.status_message(), "ACCESS_DENIED")
        }
        _ => ("FAILED", e.status_message(), "FAILED"),
    }
}

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

/// The jobs running in this process and the runner's wake-up signal.
#[derive(Default)]
pub(crate) struct Running {
    notify: Notify,
    jobs: Mutex<HashMap<String, JobControl>>,
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

    /// Registers a job that starts running here; returns its control.
    pub(crate) fn register(&self, job_key: &str) -> JobControl {
        let control = JobControl::new();
        self.jobs().insert(job_key.to_string(), control.clone());
        control
    }

    /// Forgets a job that ended.
    pub(crate) fn unregister(&self, job_key: &str) {
        self.jobs().remove(job_key);
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
