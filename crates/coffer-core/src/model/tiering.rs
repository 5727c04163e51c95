//! Tiering configurations as stored (table `tiering`, key `ACCOUNT:REGION:NAME`), the index
//! of the vault each one applies to (table `tiering_vault`, key `ACCOUNT:REGION:VAULT`, `*`
//! for every vault), and the rules a configuration must follow.
//!
//! A configuration says after how many days the S3 backups of some resources in a vault (or
//! in every vault) may move to a lower-cost warm tier. Coffer records configurations and
//! answers for them; it has no lower-cost tier of its own, so no data moves because of one
//! (docs/tiering.md).

use chrono::{DateTime, Utc};
use coffer_api::Timestamp;
use coffer_api::types::{ResourceSelection, TieringConfiguration, TieringConfigurationsListMember};
use coffer_store::Txn;
use serde::{Deserialize, Serialize};

use crate::model::error::Result;

pub(crate) const TABLE: &str = "tiering";
pub(crate) const BY_VAULT: &str = "tiering_vault";

/// The vault name that makes a configuration apply to every vault of its account and region.
pub(crate) const ALL_VAULTS: &str = "*";
/// The one resource type tiering applies to.
pub(crate) const RESOURCE_TYPE: &str = "S3";
/// At most this many resource selections per configuration.
pub(crate) const MAX_SELECTIONS: usize = 5;
/// At most this many resource ARNs per configuration, over all its selections.
pub(crate) const MAX_RESOURCES: usize = 100;
/// The bounds of TieringDownSettingsInDays.
pub(crate) const MIN_DAYS: i32 = 60;
pub(crate) const MAX_DAYS: i32 = 36_500;

/// A tiering configuration as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TieringRecord {
    pub account: String,
    pub region: String,
    pub name: String,
    pub arn: String,
    pub vault_name: String,
    pub selections: Vec<ResourceSelection>,
    pub creator_request_id: Option<String>,
    pub creation_time: DateTime<Utc>,
    pub last_updated_time: DateTime<Utc>,
}

pub(crate) fn scope(account: &str, region: &str) -> String {
    format!("{account}:{region}:")
}

pub(crate) fn key(account: &str, region: &str, name: &str) -> String {
    format!("{}{name}", scope(account, region))
}

/// `arn:aws:backup:REGION:ACCOUNT:tiering-configuration:NAME`
pub(crate) fn arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:backup:{region}:{account}:tiering-configuration:{name}")
}

/// Checks a configuration's name: letters, digits and underscores, 1 to 200 of them.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=200).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "TieringConfigurationName '{name}' must be 1 to 200 letters, digits or underscores."
        ))
    }
}

/// Whether `s` is an S3 bucket ARN (`arn:PARTITION:s3:::BUCKET`).
fn is_bucket_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && !parts[1].is_empty()
        && parts[2] == "s3"
        && parts[3].is_empty()
        && parts[4].is_empty()
        && !parts[5].is_empty()
        && !parts[5].contains('/')
}

/// Checks a configuration's resource selections; the error names the member to fix.
pub(crate) fn check_selections(selections: &[ResourceSelection]) -> Result<(), String> {
    if selections.is_empty() || selections.len() > MAX_SELECTIONS {
        return Err(format!(
            "ResourceSelection must hold 1 to {MAX_SELECTIONS} selections; got {}.",
            selections.len()
        ));
    }
    let mut specific = 0;
    for (i, s) in selections.iter().enumerate() {
        if s.resource_type != RESOURCE_TYPE {
            return Err(format!(
                "ResourceSelection[{i}].ResourceType must be {RESOURCE_TYPE} (tiering applies to S3 backups only); got '{}'.",
                s.resource_type
            ));
        }
        if !(MIN_DAYS..=MAX_DAYS).contains(&s.tiering_down_settings_in_days) {
            return Err(format!(
                "ResourceSelection[{i}].TieringDownSettingsInDays must be between {MIN_DAYS} and {MAX_DAYS}; got {}.",
                s.tiering_down_settings_in_days
            ));
        }
        let wildcard = s.resources.iter().any(|r| r == "*");
        if s.resources.is_empty() || (wildcard && s.resources.len() > 1) {
            return Err(format!(
                "ResourceSelection[{i}].Resources must be [\"*\"] (every S3 resource) or a list of S3 bucket ARNs."
            ));
        }
        if let Some(bad) = s.resources.iter().find(|r| *r != "*" && !is_bucket_arn(r)) {
            return Err(format!(
                "ResourceSelection[{i}].Resources: '{bad}' is not an S3 bucket ARN (arn:aws:s3:::BUCKET)."
            ));
        }
        if !wildcard {
            specific += s.resources.len();
        }
    }
    if specific > MAX_RESOURCES {
        return Err(format!(
            "A tiering configuration names at most {MAX_RESOURCES} resources; this one names {specific}."
        ));
    }
    Ok(())
}

impl TieringRecord {
    pub(crate) fn key(&self) -> String {
        key(&self.account, &self.region, &self.name)
    }

    pub(crate) fn vault_key(&self) -> String {
        key(&self.account, &self.region, &self.vault_name)
    }

    pub(crate) fn to_api(&self) -> TieringConfiguration {
        TieringConfiguration {
            backup_vault_name: self.vault_name.clone(),
            creation_time: Some(Timestamp(self.creation_time)),
            creator_request_id: self.creator_request_id.clone(),
            last_updated_time: Some(Timestamp(self.last_updated_time)),
            resource_selection: self.selections.clone(),
            tiering_configuration_arn: Some(self.arn.clone()),
            tiering_configuration_name: self.name.clone(),
        }
    }

    pub(crate) fn list_member(&self) -> TieringConfigurationsListMember {
        TieringConfigurationsListMember {
            backup_vault_name: Some(self.vault_name.clone()),
            creation_time: Some(Timestamp(self.creation_time)),
            last_updated_time: Some(Timestamp(self.last_updated_time)),
            tiering_configuration_arn: Some(self.arn.clone()),
            tiering_configuration_name: Some(self.name.clone()),
        }
    }
}

/// The configuration stored under `k`, if any.
pub(crate) fn load(tx: &mut dyn Txn, k: &str) -> Result<Option<TieringRecord>> {
    match tx.get(TABLE, k)? {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

/// The name of the configuration that applies to the vault under `vault_key` (`*`: to every
/// vault), if any.
pub(crate) fn for_vault(tx: &mut dyn Txn, vault_key: &str) -> Result<Option<String>> {
    Ok(tx
        .get(BY_VAULT, vault_key)?
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// Stores `r` and its vault index entry (dropping `old_vault_key`'s when the vault changed).
pub(crate) fn save(tx: &mut dyn Txn, r: &TieringRecord, old_vault_key: Option<&str>) -> Result<()> {
    if let Some(old) = old_vault_key
        && old != r.vault_key()
    {
        tx.delete(BY_VAULT, old)?;
    }
    tx.put(TABLE, &r.key(), &serde_json::to_vec(r)?)?;
    tx.put(BY_VAULT, &r.vault_key(), r.name.as_bytes())?;
    Ok(())
}

/// Removes `r` and its vault index entry.
pub(crate) fn remove(tx: &mut dyn Txn, r: &TieringRecord) -> Result<()> {
    tx.delete(TABLE, &r.key())?;
    tx.delete(BY_VAULT, &r.vault_key())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(kind: &str, resources: &[&str], days: i32) -> ResourceSelection {
        ResourceSelection {
            resource_type: kind.into(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
            tiering_down_settings_in_days: days,
        }
    }

    #[test]
    fn selections_follow_the_rules() {
        assert!(check_selections(&[sel("S3", &["*"], 60)]).is_ok());
        assert!(
            check_selections(&[sel("S3", &["arn:aws:s3:::a", "arn:aws:s3:::b"], 36_500)]).is_ok()
        );
        let e = |s: &[ResourceSelection]| check_selections(s).unwrap_err();
        assert!(e(&[]).contains("1 to 5"));
        assert!(e(&vec![sel("S3", &["*"], 60); 6]).contains("1 to 5"));
        assert!(e(&[sel("EBS", &["*"], 60)]).contains("ResourceType must be S3"));
        assert!(e(&[sel("S3", &["*"], 59)]).contains("TieringDownSettingsInDays"));
        assert!(e(&[sel("S3", &["*"], 36_501)]).contains("TieringDownSettingsInDays"));
        assert!(e(&[sel("S3", &[], 60)]).contains("Resources"));
        assert!(e(&[sel("S3", &["*", "arn:aws:s3:::a"], 60)]).contains("Resources"));
        assert!(
            e(&[sel("S3", &["arn:aws:ec2:us-east-1:1:volume/v"], 60)])
                .contains("not an S3 bucket ARN")
        );
        let many: Vec<String> = (0..101).map(|i| format!("arn:aws:s3:::b{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(e(&[sel("S3", &many, 60)]).contains("at most 100"));
    }

    #[test]
    fn names_follow_the_pattern() {
        assert!(check_name("Tier_1").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("has-dash").is_err());
        assert!(check_name(&"a".repeat(201)).is_err());
    }
}
