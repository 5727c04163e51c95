//! Telemetry: what the domain tells the server's metrics as it works.
//!
//! Why: an operator graphs job durations and bytes, how late plans fire, what the lifecycle
//! did and how long the metadata store takes, and those facts are known only where the work
//! happens (a job's end is saved in `model::jobs`, a firing in `background::scheduler`).
//! Like `tracing`, the hook is one per process: the server installs its metrics with
//! [`install`]; without it (unit tests, tools) every report is a no-op. It sits in the bottom
//! layer so every layer may report.

use std::sync::{Arc, OnceLock};

/// Where the domain's reports go (the server's Prometheus metrics).
pub trait Telemetry: Send + Sync {
    /// A job reached a final state after running `seconds` on the Coffer clock (from its
    /// start to its end; 0 for one that never started), having moved `bytes`.
    fn job_ended(&self, kind: &'static str, state: &'static str, seconds: f64, bytes: u64);
    /// A plan's rule fired `lag_seconds` after its scheduled time (on the Coffer clock).
    fn plan_fired(&self, lag_seconds: f64);
    /// The lifecycle carried out `action` (`move_to_cold` or `delete`) on a recovery point.
    fn lifecycle_action(&self, action: &'static str);
    /// A metadata store transaction (a write when `write`) took `seconds`.
    fn store_transaction(&self, write: bool, seconds: f64);
}

static HOOK: OnceLock<Arc<dyn Telemetry>> = OnceLock::new();

/// Installs the process's telemetry (and the store's latency hook feeding it); `false` when
/// one is already installed.
pub fn install(t: Arc<dyn Telemetry>) -> bool {
    let store_side = t.clone();
    let installed = HOOK.set(t).is_ok();
    if installed {
        coffer_store::set_latency_hook(Arc::new(move |write, took| {
            store_side.store_transaction(write, took.as_secs_f64())
        }));
    }
    installed
}

pub(crate) fn job_ended(kind: &'static str, state: &'static str, seconds: f64, bytes: u64) {
    if let Some(t) = HOOK.get() {
        t.job_ended(kind, state, seconds, bytes);
    }
}

pub(crate) fn plan_fired(lag_seconds: f64) {
    if let Some(t) = HOOK.get() {
        t.plan_fired(lag_seconds);
    }
}

pub(crate) fn lifecycle_action(action: &'static str) {
    if let Some(t) = HOOK.get() {
        t.lifecycle_action(action);
    }
}
