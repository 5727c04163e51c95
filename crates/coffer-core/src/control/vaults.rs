//! Backup vaults: named containers of recovery points, one namespace per account and region.

use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};

use crate::model::error::Result;
use crate::model::vaults::VaultRecord;
use crate::model::vaults::*;
use crate::model::{Meta, arn, paging, restore_access, tags, vault_notifications, vault_policy};

/// The encryption key a new vault names: the given KMS key ARN, or the account's default.
pub(crate) fn encryption_key(
    ctx: &RequestContext,
    given: Option<String>,
) -> Result<(EncryptionKeyType, String)> {
    match given {
        Some(k) => {
            if arn::parse(&k).is_none_or(|a| a.service != "kms") {
                return Err(ApiError::invalid_parameter(format!(
                    "EncryptionKeyArn '{k}' is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."
                ))
                .into());
            }
            Ok((EncryptionKeyType::CustomerManagedKmsKey, k))
        }
        None => Ok((
            EncryptionKeyType::AwsOwnedKmsKey,
            arn::default_encryption_key(&ctx.region, &ctx.account_id),
        )),
    }
}

/// A new vault of the caller's scope, before it is stored.
pub(crate) fn new_record(
    ctx: &RequestContext,
    name: &str,
    creator_request_id: Option<String>,
    key: (EncryptionKeyType, String),
    now: chrono::DateTime<chrono::Utc>,
) -> VaultRecord {
    VaultRecord {
        account: ctx.account_id.clone(),
        region: ctx.region.clone(),
        name: name.to_string(),
        arn: arn::backup_vault(&ctx.region, &ctx.account_id, name),
        creation_date: now,
        creator_request_id,
        encryption_key_arn: key.1,
        encryption_key_type: key.0,
        recovery_points: 0,
        uid: uuid::Uuid::new_v4().to_string(),
        repo: None,
        lock: None,
        air_gapped: false,
        mpa: Default::default(),
    }
}

/// Stores a new vault with its tags in one transaction. A vault of that name made by the same
/// CreatorRequestId (and of the same type) is the answer to a retried request and is returned
/// as it is; any other vault of that name is AlreadyExistsException.
pub(crate) async fn store_new(
    meta: &Meta,
    record: VaultRecord,
    initial_tags: tags::Tags,
) -> Result<VaultRecord> {
    tags::check_initial(&initial_tags)?;
    let k = key(&record.account, &record.region, &record.name);
    meta.store()
        .write(move |tx| -> Result<VaultRecord> {
            if let Some(existing) = tx.get(TABLE, &k)? {
                let existing: VaultRecord = serde_json::from_slice(&existing)?;
                if existing.creator_request_id.is_some()
                    && existing.creator_request_id == record.creator_request_id
                    && existing.vault_type() == record.vault_type()
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
        .await
}

pub(crate) async fn create(
    meta: &Meta,
    ctx: &RequestContext,
    input: CreateBackupVaultInput,
) -> Result<CreateBackupVaultOutput> {
    let key = encryption_key(ctx, input.encryption_key_arn)?;
    let record = new_record(
        ctx,
        &input.backup_vault_name,
        input.creator_request_id,
        key,
        meta.clock().now(),
    );
    let stored = store_new(meta, record, input.backup_vault_tags.unwrap_or_default()).await?;
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
    Ok(v.describe_at(meta.clock().now()))
}

pub(crate) async fn list(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListBackupVaultsInput,
) -> Result<ListBackupVaultsOutput> {
    let prefix = scope(&ctx.account_id, &ctx.region);
    if input.by_shared == Some(true) {
        return list_shared(meta, ctx, input).await;
    }
    let wanted = input.by_vault_type.clone();
    let mut after = match &input.next_token {
        Some(t) => Some(paging::decode(t, &prefix)?),
        None => None,
    };
    let limit = paging::page_size(input.max_results);
    let now = meta.clock().now();
    // Read through the store's cache (the hot path: no transaction, no thread hop), a batch
    // at a time, until the page is full or the vaults run out; ByVaultType filters as it goes.
    let mut list = Vec::new();
    let mut last_listed: Option<String> = None;
    loop {
        let rows = meta
            .store()
            .scan_cached(TABLE, &prefix, after.as_deref(), limit + 1)
            .await?;
        for (k, v) in rows.iter() {
            let v: VaultRecord = serde_json::from_slice(v)?;
            if wanted.as_ref().is_none_or(|t| *t == v.vault_type()) {
                if list.len() == limit {
                    return Ok(ListBackupVaultsOutput {
                        backup_vault_list: Some(list),
                        next_token: last_listed.as_deref().map(paging::encode),
                    });
                }
                list.push(v.list_member_at(now));
                last_listed = Some(k.clone());
            }
            after = Some(k.clone());
        }
        if rows.len() <= limit {
            return Ok(ListBackupVaultsOutput {
                backup_vault_list: Some(list),
                next_token: None,
            });
        }
    }
}

/// ListBackupVaults ByShared=true: the air-gapped vaults of other accounts whose access policy
/// shares them with the caller (see `model::restore_access`).
async fn list_shared(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListBackupVaultsInput,
) -> Result<ListBackupVaultsOutput> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let mut shared = meta
        .store()
        .read(move |tx| restore_access::shared_with(tx, &a, &r))
        .await?;
    shared.retain(|v| {
        input
            .by_vault_type
            .as_ref()
            .is_none_or(|t| *t == v.vault_type())
    });
    shared.sort_by(|x, y| x.arn.cmp(&y.arn));
    let (page, next_token) = paging::page(
        shared,
        |v| v.arn.clone(),
        input.next_token.as_deref(),
        input.max_results,
    )?;
    let now = meta.clock().now();
    Ok(ListBackupVaultsOutput {
        backup_vault_list: Some(page.iter().map(|v| v.list_member_at(now)).collect()),
        next_token,
    })
}

pub(crate) async fn delete(
    meta: &Meta,
    ctx: &RequestContext,
    input: DeleteBackupVaultInput,
) -> Result<()> {
    let k = key(&ctx.account_id, &ctx.region, &input.backup_vault_name);
    let name = input.backup_vault_name.clone();
    let account = ctx.account_id.clone();
    meta.store()
        .write(move |tx| -> Result<()> {
            let Some(v) = tx.get(TABLE, &k)? else {
                return Err(not_found(&name).into());
            };
            let v: VaultRecord = serde_json::from_slice(&v)?;
            vault_policy::check_not_denied(
                tx,
                &k,
                "backup:DeleteBackupVault",
                &[&v.arn],
                &account,
            )?;
            if v.recovery_points > 0 {
                return Err(ApiError::invalid_request(
                    "Backup vault cannot be deleted because it contains recovery points.",
                )
                .into());
            }
            tx.delete(TABLE, &k)?;
            restore_access::unlink(tx, &v)?;
            restore_access::reindex_shares(tx, &v, None)?;
            tags::remove_all(tx, &v.arn)?;
            vault_policy::remove(tx, &k)?;
            vault_notifications::remove(tx, &k)?;
            if let Some(repo) = &v.repo {
                queue_removal(tx, &v.uid, repo)?;
            }
            crate::model::tier_moves::queue_tier_removals(tx, &v.uid)?;
            Ok(())
        })
        .await
}
