//! Logically air-gapped backup vaults (CreateLogicallyAirGappedBackupVault).
//!
//! An air-gapped vault is a vault record like any other (so Describe, List, Delete, tags,
//! policies, notifications, recovery point and restore operations all take it) with two
//! differences: its retention bounds are a vault lock fixed at creation, whose lock date is the
//! creation date (so every lock rule, `model::retention` included, applies to it unchanged and
//! the lock can never be changed or removed), and recovery points reach it only by copy
//! (StartBackupJob into it is refused; a backup job aimed at it fails). See docs/vaults.md.

use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};

use crate::control::vaults::{encryption_key, new_record, store_new};
use crate::model::Meta;
use crate::model::error::Result;
use crate::model::vault_lock::{MAX_RETENTION_DAYS, VaultLock};

/// The shortest MinRetentionDays of an air-gapped vault.
pub(crate) const MIN_AIR_GAPPED_RETENTION_DAYS: i64 = 7;

/// Checks the retention bounds of a new air-gapped vault, with a message naming the field.
fn check_bounds(min: i64, max: i64) -> Result<()> {
    let bad = |m: String| Err(ApiError::invalid_parameter(m).into());
    if !(MIN_AIR_GAPPED_RETENTION_DAYS..=MAX_RETENTION_DAYS).contains(&min) {
        return bad(format!(
            "MinRetentionDays must be between {MIN_AIR_GAPPED_RETENTION_DAYS} and {MAX_RETENTION_DAYS} days for a logically air-gapped backup vault; got {min}."
        ));
    }
    if !(1..=MAX_RETENTION_DAYS).contains(&max) {
        return bad(format!(
            "MaxRetentionDays must be between 1 and {MAX_RETENTION_DAYS} days; got {max}."
        ));
    }
    if min > max {
        return bad(format!(
            "MinRetentionDays ({min}) cannot be greater than MaxRetentionDays ({max})."
        ));
    }
    Ok(())
}

pub(crate) async fn create(
    meta: &Meta,
    ctx: &RequestContext,
    input: CreateLogicallyAirGappedBackupVaultInput,
) -> Result<CreateLogicallyAirGappedBackupVaultOutput> {
    check_bounds(input.min_retention_days, input.max_retention_days)?;
    let key = encryption_key(ctx, input.encryption_key_arn)?;
    let now = meta.clock().now();
    let mut record = new_record(
        ctx,
        &input.backup_vault_name,
        input.creator_request_id,
        key,
        now,
    );
    record.air_gapped = true;
    record.lock = Some(VaultLock {
        min_retention_days: Some(input.min_retention_days),
        max_retention_days: Some(input.max_retention_days),
        lock_date: Some(now),
        changeable_for_days: None,
    });
    let stored = store_new(meta, record, input.backup_vault_tags.unwrap_or_default()).await?;
    // Nothing is left to provision: the vault's repository is created on its first copy
    // (with the source's chunking, like every vault's), so the vault is AVAILABLE as soon as
    // it is stored.
    Ok(CreateLogicallyAirGappedBackupVaultOutput {
        backup_vault_arn: Some(stored.arn),
        backup_vault_name: Some(stored.name),
        creation_date: Some(Timestamp(stored.creation_date)),
        vault_state: Some(VaultState::Available),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(min: i64, max: i64) -> String {
        check_bounds(min, max).unwrap_err().0.message().to_string()
    }

    #[test]
    fn bounds_are_checked_with_messages_naming_the_field() {
        assert!(check_bounds(7, 7).is_ok());
        assert!(check_bounds(7, 36_500).is_ok());
        assert!(message(6, 30).contains("MinRetentionDays must be between 7"));
        assert!(message(7, 36_501).contains("MaxRetentionDays"));
        assert!(message(7, 0).contains("MaxRetentionDays"));
        assert!(message(30, 7).contains("cannot be greater"));
    }
}
