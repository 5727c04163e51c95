//! Vault records (table `vault`, key `ACCOUNT:REGION:NAME`), their repository record, and the
//! queue of repositories of deleted vaults to remove (`repo_removal`).

use chrono::{DateTime, Utc};
use coffer_api::types::*;
use coffer_api::{ApiError, Timestamp};
use coffer_store::Txn;
use serde::{Deserialize, Serialize};

use crate::model::Meta;
use crate::model::error::Result;
use crate::model::vault_lock::VaultLock;
use coffer_engine::{SealedVaultKey, VaultLocation};

pub(crate) const TABLE: &str = "vault";

/// A vault as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VaultRecord {
    pub account: String,
    pub region: String,
    pub name: String,
    pub arn: String,
    pub creation_date: DateTime<Utc>,
    pub creator_request_id: Option<String>,
    pub encryption_key_arn: String,
    pub encryption_key_type: EncryptionKeyType,
    #[serde(default)]
    pub recovery_points: i64,
    /// A fresh id per vault: names its repository directory.
    #[serde(default)]
    pub uid: String,
    /// The vault's repository, once created (on first use).
    #[serde(default)]
    pub repo: Option<RepoRecord>,
    /// The lock configuration; an air-gapped vault's retention bounds are a lock from its
    /// creation on (lock date = creation date), so every lock rule applies to it unchanged.
    #[serde(default)]
    pub lock: Option<VaultLock>,
    /// A logically air-gapped vault (CreateLogicallyAirGappedBackupVault): recovery points
    /// arrive only by copy, and its retention bounds can never be changed.
    #[serde(default)]
    pub air_gapped: bool,
}

/// The store key of a vault: account and region first, so a scan by prefix lists one scope.
pub(crate) fn key(account: &str, region: &str, name: &str) -> String {
    format!("{}{name}", scope(account, region))
}

pub(crate) fn scope(account: &str, region: &str) -> String {
    format!("{account}:{region}:")
}

pub(crate) fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "Backup vault '{name}' does not exist in this account and region."
    ))
}

/// Reads the vault stored under `k` inside a transaction; absent is ResourceNotFoundException.
pub(crate) fn read(tx: &mut dyn Txn, k: &str, name: &str) -> Result<VaultRecord> {
    match tx.get(TABLE, k)? {
        Some(v) => Ok(serde_json::from_slice(&v)?),
        None => Err(not_found(name).into()),
    }
}

/// Stores a vault record under `k` inside a transaction.
pub(crate) fn write(tx: &mut dyn Txn, k: &str, v: &VaultRecord) -> Result<()> {
    tx.put(TABLE, k, &serde_json::to_vec(v)?)?;
    Ok(())
}

impl VaultRecord {
    /// Whether Vault Lock protects the vault: any lock configuration does, in governance
    /// mode and in compliance mode alike, from the moment it is put (its retention bounds
    /// apply at once; the lock date only ends the time in which the lock can be changed).
    pub(crate) fn locked(&self) -> bool {
        self.lock.is_some()
    }

    /// The vault's type as the API reports it.
    pub(crate) fn vault_type(&self) -> VaultType {
        if self.air_gapped {
            VaultType::LogicallyAirGappedBackupVault
        } else {
            VaultType::BackupVault
        }
    }

    /// What kind of vault this is, for messages.
    pub(crate) fn kind_noun(&self) -> &'static str {
        if self.air_gapped {
            "logically air-gapped backup vault"
        } else {
            "backup vault"
        }
    }

    pub(crate) fn describe(&self) -> DescribeBackupVaultOutput {
        DescribeBackupVaultOutput {
            backup_vault_arn: Some(self.arn.clone()),
            backup_vault_name: Some(self.name.clone()),
            creation_date: Some(Timestamp(self.creation_date)),
            creator_request_id: self.creator_request_id.clone(),
            encryption_key_arn: Some(self.encryption_key_arn.clone()),
            encryption_key_type: Some(self.encryption_key_type.clone()),
            locked: Some(self.locked()),
            lock_date: self.lock.as_ref().and_then(|l| l.lock_date).map(Timestamp),
            min_retention_days: self.lock.as_ref().and_then(|l| l.min_retention_days),
            max_retention_days: self.lock.as_ref().and_then(|l| l.max_retention_days),
            number_of_recovery_points: Some(self.recovery_points),
            vault_state: Some(VaultState::Available),
            vault_type: Some(self.vault_type()),
            ..Default::default()
        }
    }

    pub(crate) fn list_member(&self) -> BackupVaultListMember {
        let d = self.describe();
        BackupVaultListMember {
            backup_vault_arn: d.backup_vault_arn,
            backup_vault_name: d.backup_vault_name,
            creation_date: d.creation_date,
            creator_request_id: d.creator_request_id,
            encryption_key_arn: d.encryption_key_arn,
            encryption_key_type: d.encryption_key_type,
            lock_date: d.lock_date,
            locked: d.locked,
            max_retention_days: d.max_retention_days,
            min_retention_days: d.min_retention_days,
            number_of_recovery_points: d.number_of_recovery_points,
            vault_state: d.vault_state,
            vault_type: d.vault_type,
        }
    }
}

/// Reads a vault of a scope (through the store's read cache); `None` when it does not exist.
/// A store failure is an error, never "not found".
pub(crate) async fn find(
    meta: &Meta,
    account: &str,
    region: &str,
    name: &str,
) -> Result<Option<VaultRecord>> {
    match meta
        .store()
        .get_cached(TABLE, &key(account, region, name))
        .await?
    {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

/// Reads a vault of the caller's scope (through the store's read cache).
pub(crate) async fn get(
    meta: &Meta,
    account: &str,
    region: &str,
    name: &str,
) -> Result<VaultRecord> {
    match meta
        .store()
        .get_cached(TABLE, &key(account, region, name))
        .await?
    {
        Some(v) => Ok(serde_json::from_slice(&v)?),
        None => Err(not_found(name).into()),
    }
}

/// Records a vault's newly created repository.
pub(crate) async fn set_repo(meta: &Meta, vault: &VaultRecord, repo: RepoRecord) -> Result<()> {
    let k = key(&vault.account, &vault.region, &vault.name);
    let (uid, name) = (vault.uid.clone(), vault.name.clone());
    meta.store()
        .write(move |tx| -> Result<()> {
            let mut v = load(tx, &k, &name)?;
            if v.uid != uid {
                return Err(not_found(&name).into());
            }
            v.repo = Some(repo);
            tx.put(TABLE, &k, &serde_json::to_vec(&v)?)?;
            Ok(())
        })
        .await
}

/// Reads a vault inside a transaction.
pub(crate) fn load(tx: &mut dyn coffer_store::Txn, key: &str, name: &str) -> Result<VaultRecord> {
    match tx.get(TABLE, key)? {
        Some(v) => Ok(serde_json::from_slice(&v)?),
        None => Err(not_found(name).into()),
    }
}

/// Writes a vault inside a transaction.
pub(crate) fn save(tx: &mut dyn coffer_store::Txn, v: &VaultRecord) -> Result<()> {
    tx.put(
        TABLE,
        &key(&v.account, &v.region, &v.name),
        &serde_json::to_vec(v)?,
    )?;
    Ok(())
}

/// How a vault's repository is reached, as stored in the vault's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RepoRecord {
    pub location: VaultLocation,
    pub sealed_key: SealedVaultKey,
}

pub(crate) const REMOVALS: &str = "repo_removal";

/// Queues the removal of a deleted vault's repository (inside the deleting transaction).
pub(crate) fn queue_removal(
    tx: &mut dyn coffer_store::Txn,
    uid: &str,
    repo: &RepoRecord,
) -> Result<()> {
    tx.put(REMOVALS, uid, &serde_json::to_vec(&repo.location)?)?;
    Ok(())
}
