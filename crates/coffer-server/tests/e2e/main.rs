//! End-to-end tests: the real `coffer` binary on 127.0.0.1, driven by the official
//! `aws-sdk-backup` client (and raw HTTP where a malformed request is the point).

mod harness;

mod jobs;
mod metrics;

mod auth;
mod console;
mod coverage;
mod notifications;
mod ops;
mod plans;
mod protocol;
mod scheduler;
mod selections;
mod settings;
mod tags;
mod templates;
mod vault_extras;
mod vaults;
