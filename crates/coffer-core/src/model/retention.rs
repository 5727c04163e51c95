//! The one place that decides whether a recovery point may be removed now, and whether one
//! may enter a vault at all.
//!
//! Every path that deletes a recovery point (DeleteRecoveryPoint, the lifecycle sweep) asks
//! [`removal_blocker`] inside its deleting transaction, so the vault lock's MinRetentionDays
//! and legal holds are enforced the same way everywhere. Every job that writes a recovery
//! point into a vault (backup, copy) asks [`admission_blocker`] when it starts and again in
//! the transaction that records the point, so a retention outside the vault lock's bounds
//! (or an air-gapped vault's, which are a lock from its creation) fails the job. A recovery
//! point with a backup access point is held too: its deletion is refused naming the access
//! point, and the lifecycle sweep waits (it asks [`lifecycle_paused`] before a cold move).

use chrono::{DateTime, Utc};
use coffer_api::types::Lifecycle;

use crate::model::error::Result;
use crate::model::recovery_points::{self, RecoveryPointRecord};
use crate::model::{access_points, legal_holds, vaults};
use coffer_store::Txn;

/// Why `rp` cannot be removed at `now`, as a message for the caller; `None` when it can.
pub(crate) fn removal_blocker(
    tx: &mut dyn Txn,
    vault: &vaults::VaultRecord,
    rp: &RecoveryPointRecord,
    now: DateTime<Utc>,
) -> Result<Option<String>> {
    if let Some(why) = lifecycle_paused(tx, rp)? {
        return Ok(Some(why));
    }
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

/// Why `rp`'s lifecycle is paused (no cold move, no deletion): it has a backup access point,
/// as a message naming it; `None` when it has none.
pub(crate) fn lifecycle_paused(
    tx: &mut dyn Txn,
    rp: &RecoveryPointRecord,
) -> Result<Option<String>> {
    let names = access_points::on_recovery_point(tx, &rp.account, &rp.region, &rp.id)?;
    if names.is_empty() {
        return Ok(None);
    }
    let arns: Vec<String> = names
        .iter()
        .map(|n| {
            format!(
                "arn:aws:backup:{}:{}:accesspoint/{n}",
                rp.region, rp.account
            )
        })
        .collect();
    Ok(Some(format!(
        "Recovery point {} has an active backup access point ({}); delete it first (DeleteBackupAccessPoint).",
        rp.arn,
        arns.join(", ")
    )))
}

/// Why a recovery point kept as `lifecycle` says (`DeleteAfterDays`; none: kept forever)
/// cannot enter (or stay so in) `vault`, as the message a failed backup or copy job or a
/// refused UpdateRecoveryPointLifecycle shows; `None` when it can.
pub(crate) fn admission_blocker(
    vault: &vaults::VaultRecord,
    lifecycle: Option<&Lifecycle>,
) -> Option<String> {
    if vault.mpa.restore_access.is_some() {
        return Some(format!(
            "The restore access backup vault '{}' is read-only: it gives access to the recovery points of {} and takes none of its own. Back up or copy into another vault.",
            vault.name,
            vault
                .mpa
                .restore_access
                .as_ref()
                .map_or("", |l| l.source_arn.as_str())
        ));
    }
    let lock = vault.lock.as_ref()?;
    let days = lifecycle.and_then(|l| l.delete_after_days);
    let why = lock.check_retention(days).err()?;
    Some(format!(
        "The {} '{}' does not accept this recovery point's retention: {why} Change the lifecycle (DeleteAfterDays) to fit between the vault's MinRetentionDays and MaxRetentionDays, or use another vault.",
        vault.kind_noun(),
        vault.name,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::vault_lock::VaultLock;

    fn vault(lock: Option<VaultLock>) -> vaults::VaultRecord {
        vaults::VaultRecord {
            account: "111122223333".into(),
            region: "us-east-1".into(),
            name: "locked".into(),
            arn: "arn:aws:backup:us-east-1:111122223333:backup-vault:locked".into(),
            creation_date: Utc::now(),
            creator_request_id: None,
            encryption_key_arn: String::new(),
            encryption_key_type: coffer_api::types::EncryptionKeyType::AwsOwnedKmsKey,
            recovery_points: 0,
            uid: "u".into(),
            repo: None,
            lock,
            air_gapped: false,
            mpa: Default::default(),
        }
    }

    fn keep(days: i64) -> Lifecycle {
        Lifecycle {
            delete_after_days: Some(days),
            ..Default::default()
        }
    }

    #[test]
    fn a_retention_outside_the_lock_is_not_admitted() {
        let lock = VaultLock {
            min_retention_days: Some(7),
            max_retention_days: Some(30),
            lock_date: None,
            changeable_for_days: None,
        };
        let v = vault(Some(lock));
        let short = admission_blocker(&v, Some(&keep(1))).unwrap();
        assert!(short.contains("'locked'"), "{short}");
        assert!(short.contains("1 days is shorter"), "{short}");
        assert!(short.contains("minimum retention of 7 days"), "{short}");
        assert!(
            admission_blocker(&v, Some(&keep(31)))
                .unwrap()
                .contains("maximum")
        );
        assert!(
            admission_blocker(&v, None)
                .unwrap()
                .contains("without a retention")
        );
        assert_eq!(admission_blocker(&v, Some(&keep(7))), None);
        assert_eq!(admission_blocker(&v, Some(&keep(30))), None);
        assert_eq!(admission_blocker(&vault(None), Some(&keep(1))), None);
        assert_eq!(admission_blocker(&vault(None), None), None);
    }
}
