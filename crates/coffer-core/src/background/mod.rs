//! The background layer: the workers that make things happen without a request.
//!
//! The job runner claims queued jobs and hands them to the data plane; the scheduler fires
//! plan rules at their scheduled times and sweeps recovery-point lifecycles. Both get an
//! [`Executor`](crate::dataplane::Executor) and their own state; they import the model and
//! data-plane layers, never the API handlers (control) or the service wiring above them.

pub mod runner;
pub mod scheduler;
