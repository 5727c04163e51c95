//! Progress reporting and cancellation for long operations.
//!
//! `rustic_core` reports progress through its `ProgressBars` trait; [`ProgressSink`] implements
//! it and turns every bar into updates of one [`Progress`] value that goes to the caller's
//! callback (throttled to a few calls a second, plus one at each phase change and at the end).
//! Cancellation is cooperative: a [`CancelToken`] is checked while reading source files, between
//! source entries, and on every repository write and read, so an operation stops within about
//! one file read buffer or one pack write of the request.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use rustic_core::{ProgressBars, ProgressType, RusticProgress};

/// Asks a running operation to stop. Clones share the same flag.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that has not been cancelled.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the operation(s) holding this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether cancellation was asked for.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What an operation is doing now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Phase {
    /// Reading indexes, listing snapshots, scanning the source.
    #[default]
    Preparing,
    /// Moving data: backing up, restoring, copying or reading packs to verify.
    Transferring,
    /// Writing indexes and the snapshot, pruning, cleaning up.
    Finishing,
    /// Done.
    Done,
}

/// A progress report. Totals are `None` until known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Current phase.
    pub phase: Phase,
    /// What the repository library says it is doing (e.g. "backing up...").
    pub activity: String,
    /// Bytes processed so far in the transfer phase.
    pub bytes_done: u64,
    /// Bytes to process in the transfer phase, when known.
    pub bytes_total: Option<u64>,
    /// Files processed so far (backup of a source; restore).
    pub files_done: u64,
    /// Files to process, when known.
    pub files_total: Option<u64>,
}

impl Progress {
    /// Percentage done (0-100) when the total is known.
    #[must_use]
    pub fn percent(&self) -> Option<f64> {
        match (self.phase, self.bytes_total) {
            (Phase::Done, _) => Some(100.0),
            (_, Some(0)) => None,
            #[allow(clippy::cast_precision_loss)]
            (_, Some(t)) => Some((self.bytes_done.min(t) as f64) * 100.0 / t as f64),
            _ => None,
        }
    }
}

pub(crate) type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Collects progress from every source for one operation and forwards it to the callback.
pub(crate) struct ProgressSink {
    state: Mutex<(Progress, Instant)>,
    callback: ProgressFn,
    pub(crate) cancel: CancelToken,
}

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressSink")
    }
}

const MIN_INTERVAL: Duration = Duration::from_millis(200);

impl ProgressSink {
    pub(crate) fn new(callback: ProgressFn, cancel: CancelToken) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new((Progress::default(), Instant::now())),
            callback,
            cancel,
        })
    }

    /// A sink that reports nowhere and is never cancelled.
    pub(crate) fn silent() -> Arc<Self> {
        Self::new(Arc::new(|_: &Progress| {}), CancelToken::new())
    }

    /// Apply `f` to the progress; report if `force` or enough time passed.
    pub(crate) fn update(&self, force: bool, f: impl FnOnce(&mut Progress)) {
        let snapshot = {
            let mut guard = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut guard.0);
            if !force && guard.1.elapsed() < MIN_INTERVAL {
                return;
            }
            guard.1 = Instant::now();
            guard.0.clone()
        };
        (self.callback)(&snapshot);
    }

    pub(crate) fn phase(&self, phase: Phase, activity: &str) {
        self.update(true, |p| {
            p.phase = phase;
            activity.clone_into(&mut p.activity);
        });
    }

    pub(crate) fn check_cancel(&self) -> crate::Result<()> {
        if self.cancel.is_cancelled() {
            Err(crate::Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// `rustic_core`'s progress interface, backed by a [`ProgressSink`].
#[derive(Debug, Clone)]
pub(crate) struct SinkBars(pub(crate) Arc<ProgressSink>);

impl ProgressBars for SinkBars {
    fn progress(&self, progress_type: ProgressType, prefix: &str) -> rustic_core::Progress {
        // Once the engine has entered its finishing phase, rustic's remaining byte bars (e.g.
        // the metadata pass of a restore) must not reset the transfer figures.
        let finishing = self
            .0
            .state
            .lock()
            .map(|g| g.0.phase == Phase::Finishing)
            .unwrap_or(false);
        let is_bytes = matches!(progress_type, ProgressType::Bytes) && !finishing;
        if is_bytes {
            self.0.update(true, |p| {
                p.phase = Phase::Transferring;
                prefix.clone_into(&mut p.activity);
                p.bytes_done = 0;
                p.bytes_total = None;
            });
        } else if !prefix.is_empty() {
            self.0.update(false, |p| prefix.clone_into(&mut p.activity));
        }
        rustic_core::Progress::new(SinkBar {
            sink: self.0.clone(),
            is_bytes,
        })
    }
}

#[derive(Debug)]
struct SinkBar {
    sink: Arc<ProgressSink>,
    is_bytes: bool,
}

impl RusticProgress for SinkBar {
    fn is_hidden(&self) -> bool {
        // Not hidden: rustic then computes totals (e.g. the backup source size) for us.
        !self.is_bytes
    }

    fn set_length(&self, len: u64) {
        if self.is_bytes {
            self.sink.update(true, |p| p.bytes_total = Some(len));
        }
    }

    fn set_title(&self, title: &str) {
        self.sink
            .update(false, |p| title.clone_into(&mut p.activity));
    }

    fn inc(&self, inc: u64) {
        if self.is_bytes {
            self.sink.update(false, |p| p.bytes_done += inc);
        }
    }

    fn finish(&self) {
        if self.is_bytes {
            self.sink.update(true, |_| {});
        }
    }
}
