//! The one lifecycle validator: what a Lifecycle (DeleteAfterDays, MoveToColdStorageAfterDays)
//! may say, for plan rules, copy actions, StartBackupJob, StartCopyJob and
//! UpdateRecoveryPointLifecycle alike, with the retention bounds every other rule uses.

use coffer_api::ApiError;
use coffer_api::types::Lifecycle;

use crate::model::error::Result;

/// Retention bounds of a lifecycle (and of a vault lock), in days: 100 years.
pub(crate) const MAX_RETENTION_DAYS: i64 = 36_500;
/// Recovery points stay at least this many days in cold storage before deletion.
pub(crate) const MIN_COLD_STORAGE_DAYS: i64 = 90;
/// The longest retention of continuous backups, in days.
pub(crate) const MAX_CONTINUOUS_RETENTION_DAYS: i64 = 35;

/// Checks `l`. `continuous`: the lifecycle of a continuous backup rule. `member`: where a plan
/// document holds it (`Lifecycle`, `CopyActions[0].Lifecycle`), named in the message; `None`
/// for a lifecycle given to an operation directly. The error is the message to show.
pub(crate) fn check(l: &Lifecycle, continuous: bool, member: Option<&str>) -> Result<(), String> {
    let at = |detail: String| member.map(|_| format!(" ({detail})")).unwrap_or_default();
    let m = member.unwrap_or_default();
    if let Some(d) = l.delete_after_days
        && !(1..=MAX_RETENTION_DAYS).contains(&d)
    {
        return Err(format!(
            "Invalid lifecycle. DeleteAfterDays cannot be less than 1 or more than {MAX_RETENTION_DAYS} days{}",
            at(format!("{m}.DeleteAfterDays is {d}"))
        ));
    }
    if let Some(c) = l.move_to_cold_storage_after_days
        && !(1..=MAX_RETENTION_DAYS).contains(&c)
    {
        return Err(format!(
            "Invalid lifecycle. MoveToColdStorageAfterDays cannot be less than 1 or more than {MAX_RETENTION_DAYS} days{}",
            at(format!("{m}.MoveToColdStorageAfterDays is {c}"))
        ));
    }
    if continuous {
        if l.move_to_cold_storage_after_days.is_some() {
            return Err(format!(
                "Invalid lifecycle. MoveToColdStorageAfterDays is unavailable ({m}: continuous backups stay in warm storage)"
            ));
        }
        match l.delete_after_days {
            Some(d) if d <= MAX_CONTINUOUS_RETENTION_DAYS => {}
            _ => {
                return Err(format!(
                    "Invalid lifecycle. Continuous backups are kept 1 to {MAX_CONTINUOUS_RETENTION_DAYS} days: {m}.DeleteAfterDays must be set within that range"
                ));
            }
        }
    }
    if let (Some(d), Some(c)) = (l.delete_after_days, l.move_to_cold_storage_after_days)
        && d < c + MIN_COLD_STORAGE_DAYS
    {
        return Err(format!(
            "Invalid lifecycle. DeleteAfterDays cannot be less than {MIN_COLD_STORAGE_DAYS} days apart from MoveToColdStorageAfterDays{}",
            at(format!("{m}: {d} and {c}"))
        ));
    }
    Ok(())
}

/// Checks a Lifecycle given to StartBackupJob, StartCopyJob or UpdateRecoveryPointLifecycle.
pub(crate) fn check_given(l: &Lifecycle) -> Result<()> {
    check(l, false, None).map_err(|m| ApiError::invalid_parameter(m).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(delete: Option<i64>, cold: Option<i64>) -> Lifecycle {
        Lifecycle {
            delete_after_days: delete,
            move_to_cold_storage_after_days: cold,
            ..Default::default()
        }
    }

    #[test]
    fn one_rule_for_plans_and_operations() {
        assert!(check(&l(Some(120), Some(30)), false, None).is_ok());
        assert_eq!(
            check(&l(Some(100), Some(30)), false, None).unwrap_err(),
            "Invalid lifecycle. DeleteAfterDays cannot be less than 90 days apart from MoveToColdStorageAfterDays"
        );
        assert_eq!(
            check(&l(Some(100), Some(30)), false, Some("Lifecycle")).unwrap_err(),
            "Invalid lifecycle. DeleteAfterDays cannot be less than 90 days apart from MoveToColdStorageAfterDays (Lifecycle: 100 and 30)"
        );
        assert_eq!(
            check(&l(Some(0), None), false, None).unwrap_err(),
            "Invalid lifecycle. DeleteAfterDays cannot be less than 1 or more than 36500 days"
        );
        assert!(check(&l(None, Some(36_501)), false, None).is_err());
        assert!(check(&l(Some(35), None), true, Some("Lifecycle")).is_ok());
        assert!(check(&l(Some(36), None), true, Some("Lifecycle")).is_err());
    }
}
