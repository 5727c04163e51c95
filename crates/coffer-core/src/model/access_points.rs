//! Backup access points: read-only windows onto one recovery point, served by Coffer's
//! S3-compatible endpoint (the access point's alias is the bucket name), so a backup can be
//! read with S3 tools without restoring it.
//!
//! A record lives in table `access_point` (key `ACCOUNT:REGION:NAME`), with two indexes in the
//! same transaction: `access_point_alias` (alias -> record key: what the S3 endpoint resolves a
//! bucket name with) and `access_point_rp` (`ACCOUNT:REGION:RPID:NAME`: the access points of
//! one recovery point, one scan). While a recovery point has an access point its deletion is
//! refused and its lifecycle waits (`model::retention` asks [`on_recovery_point`]).
//!
//! The access point's policy (AccessPointPolicy, an IAM policy document) is evaluated with the
//! vault policy's rules by [`read_allowed`]: the owning account reads unless a Deny names it;
//! another account reads only when an Allow statement (without Condition) grants it the action
//! and no Deny does.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use coffer_api::types::*;
use coffer_api::{ApiError, Timestamp};
use coffer_store::Txn;
use serde::{Deserialize, Serialize};

use crate::model::error::Result;
use crate::model::recovery_points::RecoveryPointRecord;
use crate::model::vault_policy;

pub(crate) const TABLE: &str = "access_point";
pub(crate) const BY_ALIAS: &str = "access_point_alias";
pub(crate) const BY_RP: &str = "access_point_rp";

/// The metadata key under which Describe and List answer the access point's alias (the
/// bucket name on Coffer's S3 endpoint).
pub const ALIAS_METADATA_KEY: &str = "AccessPointAlias";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccessPointRecord {
    pub account: String,
    pub region: String,
    pub name: String,
    pub arn: String,
    pub alias: String,
    pub rp_id: String,
    pub rp_arn: String,
    pub vault_name: String,
    pub vault_arn: String,
    pub resource_arn: String,
    pub resource_type: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub policy: Option<String>,
    pub creation_time: DateTime<Utc>,
}

pub(crate) fn key(account: &str, region: &str, name: &str) -> String {
    format!("{account}:{region}:{name}")
}

fn rp_key(account: &str, region: &str, rp_id: &str, name: &str) -> String {
    format!("{account}:{region}:{rp_id}:{name}")
}

/// The name inside an access point ARN of the caller's scope.
pub(crate) fn name_of(account: &str, region: &str, ap_arn: &str) -> Result<String> {
    let bad = || {
        ApiError::invalid_parameter(format!(
            "'{ap_arn}' is not a backup access point ARN (arn:aws:backup:REGION:ACCOUNT:accesspoint/NAME)."
        ))
    };
    let a = crate::model::arn::parse(ap_arn).ok_or_else(bad)?;
    let name = a.resource.strip_prefix("accesspoint/").ok_or_else(bad)?;
    if a.service != "backup" || name.is_empty() {
        return Err(bad().into());
    }
    if a.account != account || a.region != region {
        return Err(not_found(ap_arn).into());
    }
    Ok(name.to_string())
}

fn not_found(ap_arn: &str) -> ApiError {
    ApiError::not_found(format!(
        "Backup access point {ap_arn} does not exist in this account and region."
    ))
}

impl AccessPointRecord {
    /// A new access point `name` on recovery point `rp`; its alias is unique (`uid` is fresh).
    pub(crate) fn new(
        rp: &RecoveryPointRecord,
        name: &str,
        uid: &str,
        metadata: BTreeMap<String, String>,
        policy: Option<String>,
        now: DateTime<Utc>,
    ) -> Self {
        AccessPointRecord {
            account: rp.account.clone(),
            region: rp.region.clone(),
            name: name.to_string(),
            arn: format!(
                "arn:aws:backup:{}:{}:accesspoint/{name}",
                rp.region, rp.account
            ),
            alias: format!("{name}-{}-s3alias", &uid[..uid.len().min(12)]),
            rp_id: rp.id.clone(),
            rp_arn: rp.arn.clone(),
            vault_name: rp.vault_name.clone(),
            vault_arn: rp.vault_arn.clone(),
            resource_arn: rp.resource_arn.clone(),
            resource_type: rp.resource_type.clone(),
            metadata,
            policy,
            creation_time: now,
        }
    }

    pub(crate) fn key(&self) -> String {
        key(&self.account, &self.region, &self.name)
    }

    /// The caller's metadata with the alias added.
    fn shown_metadata(&self) -> BTreeMap<String, String> {
        let mut m = self.metadata.clone();
        m.insert(ALIAS_METADATA_KEY.to_string(), self.alias.clone());
        m
    }

    pub(crate) fn describe(&self) -> DescribeBackupAccessPointResponse {
        DescribeBackupAccessPointResponse {
            access_point_arn: self.arn.clone(),
            access_point_metadata: Some(self.shown_metadata()),
            backup_vault_arn: Some(self.vault_arn.clone()),
            backup_vault_name: self.vault_name.clone(),
            creation_time: Timestamp(self.creation_time),
            name: self.name.clone(),
            recovery_point_arn: self.rp_arn.clone(),
            resource_arn: self.resource_arn.clone(),
            resource_type: self.resource_type.clone(),
            status: AccessPointStatus::Available,
            status_message: None,
        }
    }

    pub(crate) fn member(&self) -> ListAccessPointsMember {
        let d = self.describe();
        ListAccessPointsMember {
            access_point_arn: d.access_point_arn,
            access_point_metadata: d.access_point_metadata.unwrap_or_default(),
            backup_vault_arn: d.backup_vault_arn,
            backup_vault_name: d.backup_vault_name,
            creation_time: d.creation_time,
            name: d.name,
            recovery_point_arn: d.recovery_point_arn,
            resource_arn: d.resource_arn,
            resource_type: d.resource_type,
            status: d.status,
            status_message: d.status_message,
        }
    }
}

/// Records a new access point; `AlreadyExistsException` when the name is taken.
pub(crate) fn insert(tx: &mut dyn Txn, ap: &AccessPointRecord) -> Result<()> {
    if !tx.insert_new(TABLE, &ap.key(), &serde_json::to_vec(ap)?)? {
        return Err(ApiError::already_exists(format!(
            "A backup access point named '{}' already exists in this account and region; choose another name or delete it first (DeleteBackupAccessPoint).",
            ap.name
        ))
        .into());
    }
    tx.put(BY_ALIAS, &ap.alias, ap.key().as_bytes())?;
    tx.put(
        BY_RP,
        &rp_key(&ap.account, &ap.region, &ap.rp_id, &ap.name),
        b"",
    )?;
    Ok(())
}

/// The access point named by `ap_arn` in the caller's scope.
pub(crate) fn find(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    ap_arn: &str,
) -> Result<AccessPointRecord> {
    let name = name_of(account, region, ap_arn)?;
    match tx.get(TABLE, &key(account, region, &name))? {
        Some(v) => Ok(serde_json::from_slice(&v)?),
        None => Err(not_found(ap_arn).into()),
    }
}

/// The access point whose alias is `alias` (any account: the S3 endpoint checks the caller).
pub(crate) fn by_alias(tx: &mut dyn Txn, alias: &str) -> Result<Option<AccessPointRecord>> {
    let Some(k) = tx.get(BY_ALIAS, alias)? else {
        return Ok(None);
    };
    let k = String::from_utf8_lossy(&k).to_string();
    match tx.get(TABLE, &k)? {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

/// Removes an access point and its indexes.
pub(crate) fn remove(tx: &mut dyn Txn, ap: &AccessPointRecord) -> Result<()> {
    tx.delete(TABLE, &ap.key())?;
    tx.delete(BY_ALIAS, &ap.alias)?;
    tx.delete(BY_RP, &rp_key(&ap.account, &ap.region, &ap.rp_id, &ap.name))?;
    crate::model::tags::remove_all(tx, &ap.arn)?;
    Ok(())
}

/// The names of the access points on recovery point `rp_id`, in name order.
pub(crate) fn on_recovery_point(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    rp_id: &str,
) -> Result<Vec<String>> {
    let prefix = format!("{account}:{region}:{rp_id}:");
    Ok(tx
        .scan(BY_RP, &prefix, None, usize::MAX)?
        .into_iter()
        .map(|(k, _)| k[prefix.len()..].to_string())
        .collect())
}

/// Every access point of the caller's scope, in name order.
pub(crate) fn all(tx: &mut dyn Txn, account: &str, region: &str) -> Result<Vec<AccessPointRecord>> {
    let prefix = format!("{account}:{region}:");
    tx.scan(TABLE, &prefix, None, usize::MAX)?
        .iter()
        .map(|(_, v)| serde_json::from_slice(v).map_err(Into::into))
        .collect()
}

/// Checks an AccessPointPolicy when it is given: a JSON object with statements.
pub(crate) fn check_policy(policy: &str) -> Result<()> {
    let bad = |why: String| {
        ApiError::invalid_parameter(format!(
            "AccessPointPolicy is not a valid policy document: {why}"
        ))
    };
    let top = match serde_json::from_str::<serde_json::Value>(policy) {
        Ok(serde_json::Value::Object(top)) => top,
        Ok(_) => return Err(bad("it must be a JSON object.".into()).into()),
        Err(e) => return Err(bad(format!("{e}.")).into()),
    };
    vault_policy::statements(&top).map_err(bad)?;
    Ok(())
}

/// Whether a caller of `account` may perform S3 `action` (`s3:GetObject`, `s3:ListBucket`)
/// on `resource` through `ap` (see the module comment).
pub(crate) fn read_allowed(
    ap: &AccessPointRecord,
    account: &str,
    action: &str,
    resource: &str,
) -> bool {
    let owner = account == ap.account;
    let Some(policy) = &ap.policy else {
        return owner;
    };
    let Ok(serde_json::Value::Object(top)) = serde_json::from_str::<serde_json::Value>(policy)
    else {
        return owner;
    };
    let Ok(statements) = vault_policy::statements(&top) else {
        return owner;
    };
    let resources = [resource, ap.arn.as_str()];
    let mut allowed = owner;
    for st in statements {
        match vault_policy::effect(st) {
            Some(true) if vault_policy::applies(st, action, &resources, account) => return false,
            Some(false)
                if !st.contains_key("Condition")
                    && vault_policy::applies(st, action, &resources, account) =>
            {
                allowed = true
            }
            _ => {}
        }
    }
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ap(policy: Option<&str>) -> AccessPointRecord {
        AccessPointRecord {
            account: "111122223333".into(),
            region: "us-east-1".into(),
            name: "reader".into(),
            arn: "arn:aws:backup:us-east-1:111122223333:accesspoint/reader".into(),
            alias: "reader-abc-s3alias".into(),
            rp_id: "rp".into(),
            rp_arn: "arn:aws:backup:us-east-1:111122223333:recovery-point:rp".into(),
            vault_name: "v".into(),
            vault_arn: "arn:aws:backup:us-east-1:111122223333:backup-vault:v".into(),
            resource_arn: "r".into(),
            resource_type: "EFS".into(),
            metadata: BTreeMap::new(),
            policy: policy.map(str::to_string),
            creation_time: Utc::now(),
        }
    }

    #[test]
    fn the_owner_reads_and_others_need_an_allow() {
        let res = "arn:aws:s3:::reader-abc-s3alias/a.txt";
        assert!(read_allowed(&ap(None), "111122223333", "s3:GetObject", res));
        assert!(!read_allowed(
            &ap(None),
            "444455556666",
            "s3:GetObject",
            res
        ));
        let grant = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"s3:GetObject","Resource":"*"}]}"#;
        assert!(read_allowed(
            &ap(Some(grant)),
            "444455556666",
            "s3:GetObject",
            res
        ));
        assert!(!read_allowed(
            &ap(Some(grant)),
            "444455556666",
            "s3:ListBucket",
            res
        ));
        assert!(!read_allowed(
            &ap(Some(grant)),
            "777788889999",
            "s3:GetObject",
            res
        ));
        let deny =
            r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"}]}"#;
        assert!(!read_allowed(
            &ap(Some(deny)),
            "111122223333",
            "s3:GetObject",
            res
        ));
        assert!(check_policy("[1]").is_err());
        assert!(check_policy(grant).is_ok());
    }
}
