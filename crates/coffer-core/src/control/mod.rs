//! The control-plane layer: the API's operations, one module per area.
//!
//! Each function here answers one AWS Backup operation (or a family of them) for the caller's
//! account and region: it checks the input against the model's rules, reads and writes
//! records through the model layer in one transaction, and builds the output. A handler gets
//! only what it needs: [`Meta`](crate::model::Meta) (the store and the clock) for most areas,
//! an [`Executor`](crate::dataplane::Executor) when it starts or stops jobs (the inventory and
//! the runner's signals). This layer imports the model and data-plane layers, never the
//! workers (background) or the service wiring above it.

pub(crate) mod access_points;
pub(crate) mod airgap;
pub(crate) mod frameworks;
pub(crate) mod indexes;
pub(crate) mod jobs;
pub(crate) mod legal_holds;
pub(crate) mod plans;
pub(crate) mod protected;
pub(crate) mod recovery_points;
pub(crate) mod reports;
pub(crate) mod restore_access;
pub(crate) mod restore_testing;
pub(crate) mod restore_testing_selections;
pub(crate) mod scans;
pub(crate) mod selections;
pub(crate) mod settings;
pub(crate) mod tags;
pub(crate) mod templates;
pub(crate) mod tiering;
pub(crate) mod vault_lock;
pub(crate) mod vault_notifications;
pub(crate) mod vault_policy;
pub(crate) mod vaults;
