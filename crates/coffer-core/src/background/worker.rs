//! The one shape of a background worker: start, tick, stop.
//!
//! The job runner, the scheduler (firings and the lifecycle sweep) and the server's
//! notification delivery are each a [`Worker`]: a `tick` that does one pass of work, run
//! every `period` or at once when the worker is woken, until it is told to stop. [`start`]
//! runs the loop and returns a [`WorkerHandle`]; [`WorkerHandle::stop`] ends the loop after
//! the tick under way (no new tick starts), then lets the worker `drain` (hand back what it
//! holds) within the time it is given. Shutdown, tests and the development clock all go
//! through these three calls, so no worker has a loop of its own.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A background worker.
#[async_trait]
pub trait Worker: Send + Sync + 'static {
    /// Its name in logs.
    fn name(&self) -> &'static str;

    /// How long the loop waits between ticks when nothing wakes it.
    fn period(&self) -> Duration {
        Duration::from_secs(1)
    }

    /// One pass of work. An error is logged and the next tick tries again.
    async fn tick(&self) -> Result<(), String>;

    /// Resolves when the worker should tick before its period is up (new work arrived).
    async fn woken(&self) {
        std::future::pending::<()>().await
    }

    /// Called once after the loop stopped: hand back or finish what the worker holds, within
    /// `budget`.
    async fn drain(&self, budget: Duration) {
        let _ = budget;
    }
}

/// The longest a worker goes without a full pass while nothing it knows of is due.
pub(crate) const RESCAN: Duration = Duration::from_secs(15);

/// When a worker's next full pass is due: at the earliest event its last pass saw, or
/// [`RESCAN`] after that pass, whichever is first.
#[derive(Default)]
pub(crate) struct PassSkip {
    last: std::sync::Mutex<Option<(std::time::Instant, Option<chrono::DateTime<chrono::Utc>>)>>,
}

impl PassSkip {
    /// Whether a pass at `now` (Coffer's clock) may be skipped.
    pub(crate) fn skip(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            Some((at, next)) => at.elapsed() < RESCAN && next.is_none_or(|n| now < n),
            None => false,
        }
    }

    /// Records a full pass that saw `next` as its earliest coming event.
    pub(crate) fn passed(&self, next: Option<chrono::DateTime<chrono::Utc>>) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), next));
    }
}

/// A started worker: stop it to end its loop.
pub struct WorkerHandle {
    name: &'static str,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    worker: Arc<dyn Worker>,
}

/// Runs `worker`'s loop on the tokio runtime until its handle is stopped.
pub fn start(worker: Arc<dyn Worker>) -> WorkerHandle {
    let (stop, mut stopped) = watch::channel(false);
    let w = worker.clone();
    let task = tokio::spawn(async move {
        loop {
            if *stopped.borrow() {
                return;
            }
            if let Err(e) = w.tick().await {
                tracing::warn!(worker = w.name(), error = %e, "worker pass failed; retrying");
            }
            tokio::select! {
                _ = stopped.changed() => return,
                _ = w.woken() => {}
                _ = tokio::time::sleep(w.period()) => {}
            }
        }
    });
    WorkerHandle {
        name: worker.name(),
        stop,
        task,
        worker,
    }
}

impl WorkerHandle {
    /// Stops the loop (the tick under way finishes, no new one starts), then drains the
    /// worker within `budget`. Returns whether it all ended in time.
    pub async fn stop(self, budget: Duration) -> bool {
        let started = tokio::time::Instant::now();
        let _ = self.stop.send(true);
        let task = self.task;
        let stopped = tokio::time::timeout(budget, task).await.is_ok();
        let left = budget.saturating_sub(started.elapsed());
        let drained = tokio::time::timeout(left, self.worker.drain(left))
            .await
            .is_ok();
        if !(stopped && drained) {
            tracing::warn!(
                worker = self.name,
                "worker did not stop within its shutdown budget"
            );
        }
        stopped && drained
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Notify;

    struct Counter {
        ticks: AtomicUsize,
        wake: Notify,
        drained: AtomicUsize,
    }

    #[async_trait]
    impl Worker for Counter {
        fn name(&self) -> &'static str {
            "counter"
        }
        fn period(&self) -> Duration {
            Duration::from_secs(3600)
        }
        async fn tick(&self) -> Result<(), String> {
            self.ticks.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        async fn woken(&self) {
            self.wake.notified().await
        }
        async fn drain(&self, _: Duration) {
            self.drained.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn ticks_when_woken_and_stops_with_one_drain() {
        let w = Arc::new(Counter {
            ticks: AtomicUsize::new(0),
            wake: Notify::new(),
            drained: AtomicUsize::new(0),
        });
        let h = start(w.clone());
        while w.ticks.load(Ordering::SeqCst) < 1 {
            tokio::task::yield_now().await;
        }
        w.wake.notify_one();
        while w.ticks.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        assert!(h.stop(Duration::from_secs(5)).await);
        let ticks = w.ticks.load(Ordering::SeqCst);
        w.wake.notify_one();
        tokio::task::yield_now().await;
        assert_eq!(w.ticks.load(Ordering::SeqCst), ticks, "no tick after stop");
        assert_eq!(w.drained.load(Ordering::SeqCst), 1);
    }
}
