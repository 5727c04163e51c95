//! A vault's lock configuration as stored, and the retention bounds it imposes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::error::Result;

pub(crate) use crate::model::lifecycle::MAX_RETENTION_DAYS;

/// The shortest cooling-off period of a compliance lock (72 hours).
pub(crate) const MIN_CHANGEABLE_FOR_DAYS: i64 = 3;

/// The longest cooling-off period Coffer accepts: a lock date more than 100 years away is a
/// mistake, not a policy.
pub(crate) const MAX_CHANGEABLE_FOR_DAYS: i64 = 36_500;

/// A vault's lock configuration as stored in its [`VaultRecord`]: compliance mode when it has
/// a lock date, governance mode otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VaultLock {
    pub min_retention_days: Option<i64>,
    pub max_retention_days: Option<i64>,
    /// When the lock becomes immutable (compliance mode only).
    pub lock_date: Option<DateTime<Utc>>,
    /// The cooling-off period it was put with (compliance mode only).
    #[serde(default)]
    pub changeable_for_days: Option<i64>,
}

impl VaultLock {
    /// Whether the lock can no longer be changed or removed: a compliance lock whose lock date
    /// has passed.
    pub(crate) fn is_immutable(&self, now: DateTime<Utc>) -> bool {
        self.lock_date.is_some_and(|d| d <= now)
    }

    /// Checks a recovery point's retention (`None`: kept forever) against the lock's bounds;
    /// the message says which bound is violated. For the backup and copy jobs that write into
    /// the vault.
    pub(crate) fn check_retention(&self, retention_days: Option<i64>) -> Result<(), String> {
        match (
            retention_days,
            self.min_retention_days,
            self.max_retention_days,
        ) {
            (Some(d), Some(min), _) if d < min => Err(format!(
                "The retention period of {d} days is shorter than the vault lock's minimum retention of {min} days."
            )),
            (Some(d), _, Some(max)) if d > max => Err(format!(
                "The retention period of {d} days is longer than the vault lock's maximum retention of {max} days."
            )),
            (None, _, Some(max)) => Err(format!(
                "Recovery points without a retention period cannot be stored in a vault whose lock sets a maximum retention of {max} days."
            )),
            _ => Ok(()),
        }
    }
}
