//! Account settings as stored, with their defaults in one place: what UpdateRegionSettings and
//! UpdateGlobalSettings chose, merged over the defaults below. The selection resolver asks
//! [`resource_type_opted_in`], copy jobs [`cross_account_backup_enabled`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use coffer_store::{StoreError, Txn};
use serde::{Deserialize, Serialize};

use crate::model::error::Result;

pub(crate) const TABLE: &str = "settings";

/// Resource types of ResourceTypeOptInPreference, with Coffer's default opt-in. As in AWS
/// Backup, the long-standing types are opted in and the ones AWS added later (which AWS
/// requires an explicit opt-in for) are not.
pub(crate) const OPT_IN_DEFAULTS: &[(&str, bool)] = &[
    ("Aurora", true),
    ("CloudFormation", false),
    ("DocumentDB", true),
    ("DynamoDB", true),
    ("EBS", true),
    ("EC2", true),
    ("EFS", true),
    ("EKS", false),
    ("FSx", true),
    ("Neptune", true),
    ("RDS", true),
    ("Redshift", false),
    ("S3", false),
    ("SAP HANA on Amazon EC2", false),
    ("Storage Gateway", true),
    ("Timestream", false),
    ("VirtualMachine", true),
];

/// Resource types of ResourceTypeManagementPreference (those AWS Backup can fully manage),
/// with their defaults: full management on, as for accounts created since advanced DynamoDB
/// backup became the default.
pub(crate) const MANAGEMENT_DEFAULTS: &[(&str, bool)] = &[("DynamoDB", true), ("EFS", true)];

/// Global settings and their defaults (every option off until the account turns it on).
pub(crate) const GLOBAL_DEFAULTS: &[(&str, &str)] = &[
    ("isCrossAccountBackupEnabled", "false"),
    ("isDelegatedAdministratorEnabled", "false"),
    ("isMpaEnabled", "false"),
];

/// What UpdateRegionSettings set in one account and region.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RegionRecord {
    #[serde(default)]
    pub(crate) opt_in: BTreeMap<String, bool>,
    #[serde(default)]
    pub(crate) management: BTreeMap<String, bool>,
    #[serde(default)]
    pub(crate) opt_in_incremental: BTreeMap<String, bool>,
    pub(crate) updated: Option<DateTime<Utc>>,
}

/// What UpdateGlobalSettings set in one account.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct GlobalRecord {
    #[serde(default)]
    pub(crate) settings: BTreeMap<String, String>,
    pub(crate) updated: Option<DateTime<Utc>>,
}

pub(crate) fn region_key(account: &str, region: &str) -> String {
    format!("{account}:{region}:region")
}

pub(crate) fn global_key(account: &str) -> String {
    format!("{account}::global")
}

pub(crate) fn load<T: for<'de> Deserialize<'de> + Default>(
    tx: &mut dyn Txn,
    key: &str,
) -> Result<T, StoreError> {
    match tx.get(TABLE, key)? {
        Some(v) => serde_json::from_slice(&v)
            .map_err(|e| StoreError::corrupt(format!("settings {key}"), e)),
        None => Ok(T::default()),
    }
}

pub(crate) fn with_defaults<V: Clone>(
    defaults: &[(&str, V)],
    set: &BTreeMap<String, V>,
) -> BTreeMap<String, V> {
    defaults
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                set.get(*k).cloned().unwrap_or_else(|| v.clone()),
            )
        })
        .collect()
}

/// Every global setting: what the account set, else the default.
pub(crate) fn global_with_defaults(set: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    GLOBAL_DEFAULTS
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                set.get(*k).cloned().unwrap_or_else(|| v.to_string()),
            )
        })
        .collect()
}

/// Whether `resource_type` is opted in for the account and region (unknown types are not).
pub(crate) fn resource_type_opted_in(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    resource_type: &str,
) -> Result<bool, StoreError> {
    let r: RegionRecord = load(tx, &region_key(account, region))?;
    // A type AWS does not list (Coffer's own, such as SQLite) has no opt-in: always in.
    Ok(with_defaults(OPT_IN_DEFAULTS, &r.opt_in)
        .get(resource_type)
        .copied()
        .unwrap_or(true))
}

/// Whether the account turned on cross-account backup (isCrossAccountBackupEnabled).
#[allow(dead_code)] // used by the copy jobs (jobs issue)
pub(crate) fn cross_account_backup_enabled(
    tx: &mut dyn Txn,
    account: &str,
) -> Result<bool, StoreError> {
    let g: GlobalRecord = load(tx, &global_key(account))?;
    Ok(global_with_defaults(&g.settings)
        .get("isCrossAccountBackupEnabled")
        .is_some_and(|v| v == "true"))
}
