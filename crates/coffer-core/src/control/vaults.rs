//! Backup vaults: named containers of recovery points, one namespace per account and region.

use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};

use crate::model::error::Result;
use crate::model::vaults::VaultRecord;
use crate::model::vaults::*;
use crate::model::{Meta, arn, paging, tags, vault_notifications, vault_policy};

pub(crate) async fn create(
    meta: &Meta,
    ctx: &RequestContext,
    input: CreateBackupVaultInput,
) -> Result<CreateBackupVaultOutput> {
    let now = meta.clock().now();
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
            EncryptionKeyType::CustomerManagedKmsKey
        } else {
            EncryptionKeyType::AwsOwnedKmsKey
        },
        recovery_points: 0,
        uid: uuid::Uuid::new_v4().to_string(),
        repo: None,
        lock: None,
    };
    let k = key(&ctx.account_id, &ctx.region, &record.name);
    let initial_tags = input.backup_vault_tags.unwrap_or_default();
    tags::check_initial(&initial_tags)?;
    let stored = meta
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

pub(crate) async fn describe(
    meta: &Meta,
    ctx: &RequestContext,
    input: DescribeBackupVaultInput,
) -> Result<DescribeBackupVaultOutput> {
    if let Some(other) = &input.backup_vault_account_id
        && other != &ctx.account_id
    {
        return Err(not_found(&input.backup_vault_name).into());
    }
    let v = get(meta, &ctx.account_id, &ctx.region, &input.backup_vault_name).await?;
    Ok(v.describe())
}

pub(crate) async fn list(
    meta: &Meta,
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
        && *t != VaultType::BackupVault
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
    let rows = meta
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
    meta: &Meta,
    ctx: &RequestContext,
    input: DeleteBackupVaultInput,
) -> Result<()> {
    let k = key(&ctx.account_id, &ctx.region, &input.backup_vault_name);
    let name = input.backup_vault_name.clone();
    meta.store()
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
                queue_removal(tx, &v.uid, repo)?;
            }
            Ok(())
        })
        .await
}
