//! The background layer: the workers that make things happen without a request.
//!
//! Each is a [`worker::Worker`] (one shape: start, tick, stop): the job runner claims queued
//! jobs and hands them to the data plane, the scheduler fires plan rules at their scheduled
//! times, the lifecycle sweep moves and deletes recovery points as their lifecycles say, and
//! `reports` runs report plans every 24 hours, `history` prunes finished jobs, firings and
//! dead letters after their retention;
//! `time_travel` runs the time a development clock move skips, step by step. Each gets an
//! [`Executor`](crate::dataplane::Executor) and their own state; they import the model and
//! data-plane layers, never the API handlers (control) or the service wiring above them.

pub(crate) mod history;
pub(crate) mod lifecycle;
pub(crate) mod reports;
pub(crate) mod restore_testing;
pub mod runner;
pub mod scheduler;
pub(crate) mod tiering;
pub mod time_travel;
pub mod worker;
