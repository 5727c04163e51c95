//! The one place that decides whether a recovery point may be removed now.
//!
//! Every path that deletes a recovery point (DeleteRecoveryPoint, the lifecycle sweep) asks
//! [`removal_blocker`] inside its deleting transaction, so the vault lock's MinRetentionDays
//! and legal holds are enforced the same way everywhere.

use chrono::{DateTime, Utc};

use crate::model::error::Result;
use crate::model::recovery_points::{self, RecoveryPointRecord};
use crate::model::{legal_holds, vaults};
use coffer_store::Txn;

/// Why `rp` cannot be removed at `now`, as a message for the caller; `None` when it can.
pub(crate) fn removal_blocker(
    tx: &mut dyn Txn,
    vault: &vaults::VaultRecord,
    rp: &RecoveryPointRecord,
    now: DateTime<Utc>,
) -> Result<Option<String>> {
    let holds = legal_holds::holds_on(tx, rp)?;
    if !holds.is_empty() {
        return Ok(Some(format!(
            "Recovery point {} is under legal hold {}; it cannot be deleted until the hold is cancelled (CancelLegalHold).",
            rp.arn,
            holds.join(", ")
        )));
    }
    if let Some(until) = recovery_points::locked_until(vault, rp).filter(|u| now < *u) {
        let min = vault
            .lock
            .as_ref()
            .and_then(|l| l.min_retention_days)
            .unwrap_or_default();
        return Ok(Some(format!(
            "Recovery point {} is protected by the vault lock of '{}' (MinRetentionDays {min}) until {}.",
            rp.arn,
            vault.name,
            until.to_rfc3339()
        )));
    }
    Ok(None)
}
