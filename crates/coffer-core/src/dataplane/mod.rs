//! The data-plane layer: carrying jobs out and keeping the vault repositories.
//!
//! A backup, copy or restore job claimed by the runner is executed here against the vault's
//! repository (`coffer-engine`), and its outcome recorded through the model layer in one
//! transaction; queued removals of deleted recovery points and vaults are carried out here
//! too, report jobs write their files here, and malware scan jobs run here. Code of this layer gets an [`Executor`]: the
//! metadata ([`Meta`]), the inventory, the report buckets, the vault storage and the registry
//! of running jobs. It imports only the model layer; the API
//! handlers (control) and the workers (background) sit above it.

pub(crate) mod backup;
pub(crate) mod composite;
pub(crate) mod copy;
pub(crate) mod deletions;
pub(crate) mod indexes;
pub(crate) mod jobs;
pub(crate) mod pitr;
pub mod placement;
pub(crate) mod postgres;
pub(crate) mod reports;
pub(crate) mod restore;
pub(crate) mod restore_testing;
pub mod scans;
pub(crate) mod search;
pub mod storage;
pub(crate) mod tiers;

use std::ops::Deref;
use std::sync::Arc;

use coffer_api::ApiError;

use crate::model::Meta;
use crate::model::approvals::ApprovalTeams;
use crate::model::inventory::Inventory;
use crate::model::reports::ReportBuckets;
use jobs::Running;
use storage::VaultStorage;

/// What carrying out jobs needs. An executor is a [`Meta`] (it derefs to one) plus the data
/// plane. Cheap to clone.
#[derive(Clone)]
pub struct Executor {
    meta: Meta,
    inventory: Inventory,
    /// Where report plans' S3 buckets are on this machine.
    report_buckets: ReportBuckets,
    /// The approval teams of the configuration (`[[approval_teams]]`).
    approval_teams: ApprovalTeams,
    storage: Option<Arc<VaultStorage>>,
    running: Arc<Running>,
    /// How many days finished jobs, firings and dead letters are kept (`model::history`).
    history_retention_days: u32,
    /// The rules malware scans evaluate (`scan_rules` in the configuration).
    scan_rules: scans::ScanRuleSet,
}

impl Deref for Executor {
    type Target = Meta;
    fn deref(&self) -> &Meta {
        &self.meta
    }
}

impl Executor {
    /// `storage` is `None` on a control-plane-only instance: jobs are then refused.
    pub(crate) fn new(meta: Meta, inventory: Inventory, storage: Option<VaultStorage>) -> Self {
        Executor {
            meta,
            inventory,
            report_buckets: ReportBuckets::default(),
            approval_teams: ApprovalTeams::default(),
            storage: storage.map(Arc::new),
            running: Arc::default(),
            history_retention_days: crate::model::history::DEFAULT_RETENTION_DAYS,
            scan_rules: scans::ScanRuleSet::default(),
        }
    }

    /// Keeps finished history `days` days (see `model::history`).
    pub(crate) fn with_history_retention(mut self, days: u32) -> Self {
        self.history_retention_days = days;
        self
    }

    pub(crate) fn history_retention_days(&self) -> u32 {
        self.history_retention_days
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    pub fn report_buckets(&self) -> &ReportBuckets {
        &self.report_buckets
    }

    pub fn approval_teams(&self) -> &ApprovalTeams {
        &self.approval_teams
    }

    pub fn scan_rules(&self) -> &scans::ScanRuleSet {
        &self.scan_rules
    }

    /// The jobs running in this process, and the runner's wake-up signal.
    pub(crate) fn running(&self) -> &Running {
        &self.running
    }

    pub(crate) fn has_storage(&self) -> bool {
        self.storage.is_some()
    }

    pub(crate) fn storage(&self) -> Result<&VaultStorage, ApiError> {
        self.storage.as_deref().ok_or_else(|| {
            ApiError::invalid_request("This Coffer instance has no data plane; jobs cannot run.")
        })
    }
}
