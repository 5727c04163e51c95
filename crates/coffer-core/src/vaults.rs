//! Backup vaults: named containers of recovery points, one namespace per account and region.

use chrono::{DateTime, Utc};
use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};
use coffer_store::Txn;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::storage::RepoRecord;
use crate::{Coffer, arn, paging, tags, vault_notifications, vault_policy};

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
    pub encryption_key_type: String,
    #[serde(default)]
    pub recovery_points: i64,
    /// A fresh id per vault: names its repository directory.
    #[serde(default)]
    pub uid: String,
    /// The vault's repository, once created (on first use).
    #[serde(default)]
    pub repo: Option<RepoRecord>,
    #[serde(default)]
    pub lock: Option<VaultLock>,
}

pub(crate) use crate::vault_lock::VaultLock;

/// The store key of a vault: account and region first, so a scan by prefix lists one scope.
pub(crate) fn key(account: &str, region: &str, name: &str) -> String {
    format!("{}{name}", scope(account, region))
}

pub(crate) fn scope(account: &str, region: &str) -> String {
    format!("{account}:{region}:")
}

fn not_found(name: &str) -> ApiError {
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
    fn locked(&self) -> bool {
        self.lock.is_some()
    }

    fn describe(&self) -> DescribeBackupVaultOutput {
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
            vault_state: Some("AVAILABLE".into()),
            vault_type: Some("BACKUP_VAULT".into()),
            ..Default::default()
        }
    }

    fn list_member(&self) -> BackupVaultListMember {
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

pub(crate) async fn create(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: CreateBackupVaultInput,
) -> Result<CreateBackupVaultOutput> {
    let now = coffer.clock().now();
    let (customer_key, encryption_key_arn) = match input.encryption_key_arn {
        Some(k) => {
            if arn::parse(&k).is_none_or(|a| a.service != "kms") {
                return Err(ApiError::invalid_parameter(format!(
                    "EncryptionKeyArn '{k}' is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."
                ))
                .into());
            }
            (true, k)
        }
        None => (
            false,
            arn::default_encryption_key(&ctx.region, &ctx.account_id),
        ),
    };
    let record = VaultRecord {
        account: ctx.account_id.clone(),
        region: ctx.region.clone(),
        name: input.backup_vault_name.clone(),
        arn: arn::backup_vault(&ctx.region, &ctx.account_id, &input.backup_vault_name),
        creation_date: now,
        creator_request_id: input.creator_request_id.clone(),
        encryption_key_arn,
        encryption_key_type: if customer_key {
            "CUSTOMER_MANAGED_KMS_KEY"
        } else {
            "AWS_OWNED_KMS_KEY"
        }
        .into(),
        recovery_points: 0,
        uid: uuid::Uuid::new_v4().to_string(),
        repo: None,
        lock: None,
    };
    let k = key(&ctx.account_id, &ctx.region, &record.name);
    let initial_tags = input.backup_vault_tags.unwrap_or_default();
    tags::check_initial(&initial_tags)?;
    let stored = coffer
        .store()
        .write(move |tx| -> Result<VaultRecord> {
            if let Some(existing) = tx.get(TABLE, &k)? {
                let existing: VaultRecord = serde_json::from_slice(&existing)?;
                if existing.creator_request_id.is_some()
                    && existing.creator_request_id == record.creator_request_id
                {
                    return Ok(existing);
                }
                return Err(ApiError::already_exists(
                    "Backup vault with the same name already exists",
                )
                .with_member("Arn", existing.arn.clone())
                .with_member(
                    "CreatorRequestId",
                    existing.creator_request_id.clone().unwrap_or_default(),
                )
                .into());
            }
            tx.put(TABLE, &k, &serde_json::to_vec(&record)?)?;
            tags::set(tx, &record.arn, &initial_tags)?;
            Ok(record)
        })
        .await?;
    Ok(CreateBackupVaultOutput {
        backup_vault_arn: Some(stored.arn),
        backup_vault_name: Some(stored.name),
        creation_date: Some(Timestamp(stored.creation_date)),
    })
}

/// Reads a vault of the caller's scope (through the store's read cache).
pub(crate) async fn get(
    coffer: &Coffer,
    account: &str,
    region: &str,
    name: &str,
) -> Result<VaultRecord> {
    match coffer
        .store()
        .get_cached(TABLE, &key(account, region, name))
        .await?
    {
        Some(v) => Ok(serde_json::from_slice(&v)?),
        None => Err(not_found(name).into()),
    }
}

pub(crate) async fn describe(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: DescribeBackupVaultInput,
) -> Result<DescribeBackupVaultOutput> {
    if let Some(other) = &input.backup_vault_account_id
        && other != &ctx.account_id
    {
        return Err(not_found(&input.backup_vault_name).into());
    }
    let v = get(
        coffer,
        &ctx.account_id,
        &ctx.region,
        &input.backup_vault_name,
    )
    .await?;
    Ok(v.describe())
}

pub(crate) async fn list(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: ListBackupVaultsInput,
) -> Result<ListBackupVaultsOutput> {
    let prefix = scope(&ctx.account_id, &ctx.region);
    if input.by_shared == Some(true) {
        // No vault of another account is shared with this one.
        return Ok(ListBackupVaultsOutput {
            backup_vault_list: Some(Vec::new()),
            next_token: None,
        });
    }
    if let Some(t) = &input.by_vault_type
        && t != "BACKUP_VAULT"
    {
        return Ok(ListBackupVaultsOutput {
            backup_vault_list: Some(Vec::new()),
            next_token: None,
        });
    }
    let start = match &input.next_token {
        Some(t) => Some(paging::decode(t, &prefix)?),
        None => None,
    };
    let limit = paging::page_size(input.max_results);
    let rows = coffer
        .store()
        .scan_cached(TABLE, &prefix, start.as_deref(), limit + 1)
        .await?;
    let more = rows.len() > limit;
    let mut list = Vec::new();
    let mut last = None;
    for (k, v) in rows.iter().take(limit) {
        let v: VaultRecord = serde_json::from_slice(v)?;
        list.push(v.list_member());
        last = Some(k.as_str());
    }
    Ok(ListBackupVaultsOutput {
        backup_vault_list: Some(list),
        next_token: if more { last.map(paging::encode) } else { None },
    })
}

pub(crate) async fn delete(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: DeleteBackupVaultInput,
) -> Result<()> {
    let k = key(&ctx.account_id, &ctx.region, &input.backup_vault_name);
    let name = input.backup_vault_name.clone();
    coffer
        .store()
        .write(move |tx| -> Result<()> {
            let Some(v) = tx.get(TABLE, &k)? else {
                return Err(not_found(&name).into());
            };
            let v: VaultRecord = serde_json::from_slice(&v)?;
            if v.recovery_points > 0 {
                return Err(ApiError::invalid_request(
                    "Backup vault cannot be deleted because it contains recovery points.",
                )
                .into());
            }
            tx.delete(TABLE, &k)?;
            tags::remove_all(tx, &v.arn)?;
            vault_policy::remove(tx, &k)?;
            vault_notifications::remove(tx, &k)?;
            if let Some(repo) = &v.repo {
                crate::storage::queue_removal(tx, &v.uid, repo)?;
            }
            Ok(())
        })
        .await
}

/// Records a vault's newly created repository.
pub(crate) async fn set_repo(coffer: &Coffer, vault: &VaultRecord, repo: RepoRecord) -> Result<()> {
    let k = key(&vault.account, &vault.region, &vault.name);
    let (uid, name) = (vault.uid.clone(), vault.name.clone());
    coffer
        .store()
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
