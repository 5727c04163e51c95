//! Vault Lock: the retention bounds a vault imposes on its recovery points, and the rule that
//! makes the lock itself immutable.
//!
//! Without `ChangeableForDays` a lock is in governance mode: it can be changed or removed at
//! any time. With it, the lock is in compliance mode: `LockDate` is the Coffer clock's now plus
//! that many days; until then the lock can still be changed or removed, afterwards neither
//! (InvalidRequestException), and the vault can only be deleted once it is empty. The lock is
//! part of the vault's record, so it changes in the same transaction as the vault. A
//! logically air-gapped vault's retention bounds are a lock that can never be changed.

use chrono::{DateTime, Duration, Utc};
use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext};

use crate::model::error::{Error, Result};
use crate::model::vault_lock::*;
use crate::model::vaults::VaultRecord;
use crate::model::{Meta, vaults};

/// Validates the input and builds the lock it asks for, dated from `now`.
fn lock_from_input(
    input: &PutBackupVaultLockConfigurationInput,
    now: DateTime<Utc>,
) -> Result<VaultLock> {
    let bad = |m: String| -> Error { ApiError::invalid_parameter(m).into() };
    if let Some(min) = input.min_retention_days
        && !(1..=MAX_RETENTION_DAYS).contains(&min)
    {
        return Err(bad(format!(
            "MinRetentionDays must be between 1 and {MAX_RETENTION_DAYS} days; got {min}."
        )));
    }
    if let Some(max) = input.max_retention_days
        && !(1..=MAX_RETENTION_DAYS).contains(&max)
    {
        return Err(bad(format!(
            "MaxRetentionDays must be between 1 and {MAX_RETENTION_DAYS} days; got {max}."
        )));
    }
    if let (Some(min), Some(max)) = (input.min_retention_days, input.max_retention_days)
        && min > max
    {
        return Err(bad(format!(
            "MinRetentionDays ({min}) cannot be greater than MaxRetentionDays ({max})."
        )));
    }
    let lock_date = match input.changeable_for_days {
        None => None,
        Some(days) if (MIN_CHANGEABLE_FOR_DAYS..=MAX_CHANGEABLE_FOR_DAYS).contains(&days) => {
            Some(now + Duration::days(days))
        }
        Some(days) => {
            return Err(bad(format!(
                "ChangeableForDays must be between {MIN_CHANGEABLE_FOR_DAYS} and {MAX_CHANGEABLE_FOR_DAYS} days; got {days}. Omit it for a governance-mode lock."
            )));
        }
    };
    Ok(VaultLock {
        min_retention_days: input.min_retention_days,
        max_retention_days: input.max_retention_days,
        lock_date,
        changeable_for_days: input.changeable_for_days,
    })
}

fn immutable(name: &str, lock_date: Option<DateTime<Utc>>) -> ApiError {
    let since = lock_date
        .map(|d| format!(" since {}", d.to_rfc3339()))
        .unwrap_or_default();
    ApiError::invalid_request(format!(
        "Backup vault '{name}' is locked in compliance mode{since}; its lock configuration can no longer be changed or removed."
    ))
}

/// Applies `change` to the lock of a vault of the caller's scope, unless the current lock is
/// immutable. One transaction: read, check, write.
async fn change_lock(
    meta: &Meta,
    ctx: &RequestContext,
    name: String,
    change: impl FnOnce(&mut VaultRecord) + Send + 'static,
) -> Result<()> {
    let k = vaults::key(&ctx.account_id, &ctx.region, &name);
    let clock = meta.clock().clone();
    meta.store()
        .write(move |tx| -> Result<()> {
            let mut v = vaults::read(tx, &k, &name)?;
            // Read the clock inside the transaction, so that no write can slip past a lock
            // date reached while it waited.
            let now = clock.now();
            if v.air_gapped {
                return Err(ApiError::invalid_request(format!(
                    "Backup vault '{name}' is a logically air-gapped backup vault: its retention bounds (MinRetentionDays, MaxRetentionDays) were fixed at its creation and cannot be changed or removed."
                ))
                .into());
            }
            if let Some(l) = &v.lock
                && l.is_immutable(now)
            {
                return Err(immutable(&name, l.lock_date).into());
            }
            change(&mut v);
            vaults::write(tx, &k, &v)?;
            Ok(())
        })
        .await
}

pub(crate) async fn put(
    meta: &Meta,
    ctx: &RequestContext,
    input: PutBackupVaultLockConfigurationInput,
) -> Result<()> {
    let lock = lock_from_input(&input, meta.clock().now())?;
    change_lock(meta, ctx, input.backup_vault_name, move |v| {
        v.lock = Some(lock)
    })
    .await
}

pub(crate) async fn delete(
    meta: &Meta,
    ctx: &RequestContext,
    input: DeleteBackupVaultLockConfigurationInput,
) -> Result<()> {
    change_lock(meta, ctx, input.backup_vault_name, |v| v.lock = None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(
        min: Option<i64>,
        max: Option<i64>,
        changeable: Option<i64>,
    ) -> PutBackupVaultLockConfigurationInput {
        PutBackupVaultLockConfigurationInput {
            backup_vault_name: "v".into(),
            changeable_for_days: changeable,
            max_retention_days: max,
            min_retention_days: min,
        }
    }

    fn err(i: PutBackupVaultLockConfigurationInput) -> String {
        lock_from_input(&i, Utc::now())
            .unwrap_err()
            .0
            .message()
            .to_string()
    }

    #[test]
    fn bounds_are_checked_with_messages_naming_the_field() {
        assert!(err(input(Some(0), None, None)).contains("MinRetentionDays"));
        assert!(err(input(None, Some(36_501), None)).contains("MaxRetentionDays"));
        assert!(err(input(Some(10), Some(5), None)).contains("cannot be greater"));
        assert!(err(input(Some(1), None, Some(2))).contains("ChangeableForDays"));
        assert!(err(input(Some(1), None, Some(36_501))).contains("ChangeableForDays"));
    }

    #[test]
    fn lock_date_follows_changeable_for_days() {
        let now = Utc::now();
        let g = lock_from_input(&input(Some(1), Some(30), None), now).unwrap();
        assert_eq!(g.lock_date, None, "governance mode");
        assert!(!g.is_immutable(now + Duration::days(10_000)));
        let c = lock_from_input(&input(Some(1), Some(30), Some(3)), now).unwrap();
        assert_eq!(c.lock_date, Some(now + Duration::days(3)));
        assert!(!c.is_immutable(now + Duration::days(3) - Duration::seconds(1)));
        assert!(c.is_immutable(now + Duration::days(3)));
    }

    #[test]
    fn retention_is_checked_against_the_bounds() {
        let l = VaultLock {
            min_retention_days: Some(7),
            max_retention_days: Some(30),
            lock_date: None,
            changeable_for_days: None,
        };
        assert!(l.check_retention(Some(7)).is_ok());
        assert!(l.check_retention(Some(30)).is_ok());
        assert!(l.check_retention(Some(6)).unwrap_err().contains("minimum"));
        assert!(l.check_retention(Some(31)).unwrap_err().contains("maximum"));
        assert!(l.check_retention(None).is_err());
        let open = VaultLock {
            max_retention_days: None,
            ..l
        };
        assert!(open.check_retention(None).is_ok());
    }
}
