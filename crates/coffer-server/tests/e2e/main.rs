//! End-to-end tests: the real `coffer` binary on 127.0.0.1, driven by the official
//! `aws-sdk-backup` client (and raw HTTP where a malformed request is the point).

mod harness;
mod signer;

mod jobs;
mod metrics;

mod access_points;
mod airgap;
mod audit;
mod auth;
mod bucket_source;
mod cluster;
mod composite;
mod console;
mod coverage;
mod crash_restore;
mod hardening;
mod history;
mod indexes;
mod legal_holds;
mod notifications;
mod ops;
mod plans;
mod postgres_pitr;
mod postgres_source;
mod protocol;
mod restore_access;
mod restore_testing;
mod s3_vault;
mod scans;
mod scheduler;
mod search;
mod selections;
mod settings;
mod sigv4_suite;
mod sqlite_source;
mod store;
mod sts;
mod tags;
mod templates;
mod tiers;
mod time_travel;
mod vault_extras;
mod vaults;
