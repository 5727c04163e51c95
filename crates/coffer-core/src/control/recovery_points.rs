//! The recovery point operations: Describe, ListByBackupVault, ListByResource, Delete,
//! UpdateRecoveryPointLifecycle and Disassociate. Records and their rules are in
//! `model::recovery_points`.

use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext};

use crate::dataplane::Executor;
use crate::model::error::Result;
use crate::model::jobs::within;
use crate::model::paging::{KeyRange, scan_page, scan_page_within};
use crate::model::recovery_points::RecoveryPointRecord;
use crate::model::recovery_points::*;
use crate::model::states::StorageClass;
use crate::model::{
    Meta, composite, events, indexes, restore_access, retention, vault_policy, vaults,
};

pub(crate) async fn describe(
    meta: &Meta,
    ctx: &RequestContext,
    input: DescribeRecoveryPointInput,
) -> Result<DescribeRecoveryPointOutput> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    vaults::get(meta, &a, &r, &input.backup_vault_name).await?;
    let (rp, index) = meta
        .store()
        .read(move |tx| -> Result<_> {
            let rp = find_in_vault(
                tx,
                &a,
                &r,
                &input.backup_vault_name,
                &input.recovery_point_arn,
            )?;
            let index = indexes::get(tx, &a, &r, &rp.id)?;
            Ok((rp, index))
        })
        .await?;
    let mut out = rp.describe();
    if let Some(i) = index {
        out.index_status = Some(i.status.wire());
        out.index_status_message = i.message;
    }
    Ok(out)
}

/// The vault whose points ListRecoveryPointsByBackupVault lists: a restore access vault lists
/// its source's points; another account's shared vault is named by BackupVaultAccountId
/// (`model::restore_access`).
async fn readable_vault(
    meta: &Meta,
    ctx: &RequestContext,
    input: &ListRecoveryPointsByBackupVaultInput,
) -> Result<vaults::VaultRecord> {
    let (a, r, name, owner) = (
        ctx.account_id.clone(),
        ctx.region.clone(),
        input.backup_vault_name.clone(),
        input.backup_vault_account_id.clone(),
    );
    let now = meta.clock().now();
    meta.store()
        .read(move |tx| restore_access::readable_vault(tx, &a, &r, &name, owner.as_deref(), now))
        .await
}

/// Whether `rp` is one of vault `vault`'s points that ListRecoveryPointsByBackupVault's
/// filters let through.
fn passes(
    rp: &RecoveryPointRecord,
    vault: &str,
    input: &ListRecoveryPointsByBackupVaultInput,
) -> bool {
    rp.vault_name == vault
        && input
            .by_resource_arn
            .as_ref()
            .is_none_or(|x| x == &rp.resource_arn)
        && input
            .by_resource_type
            .as_ref()
            .is_none_or(|x| x == &rp.resource_type)
        && input.by_backup_plan_id.as_ref().is_none_or(|x| {
            rp.created_by
                .as_ref()
                .and_then(|c| c.backup_plan_id.as_ref())
                == Some(x)
        })
        && within(
            Some(rp.creation_date),
            input.by_created_after.as_ref(),
            input.by_created_before.as_ref(),
        )
        && input
            .by_parent_recovery_point_arn
            .as_ref()
            .is_none_or(|p| rp.composite.parent_arn.as_ref() == Some(p))
}

pub(crate) async fn list_by_vault(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListRecoveryPointsByBackupVaultInput,
) -> Result<ListRecoveryPointsByBackupVaultOutput> {
    let source = readable_vault(meta, ctx, &input).await?;
    build_indexes(meta).await?;
    // Filtered by resource: that resource's index (in every vault); otherwise the vault's.
    // Both are newest first, so a page reads its points and the ones the filters pass over.
    let (table, prefix) = match &input.by_resource_arn {
        Some(arn) => (
            BY_RESOURCE,
            by_resource_prefix(&source.account, &source.region, arn),
        ),
        None => (
            BY_VAULT,
            by_vault_prefix(&source.account, &source.region, &source.name),
        ),
    };
    // The index is newest first: ByCreatedBefore skips the newer entries, ByCreatedAfter
    // ends the walk after the older ones begin. The bounds keep the boundary's own
    // microsecond in the walk; `passes` decides it exactly (both bounds are exclusive).
    let range = KeyRange {
        after: input
            .by_created_before
            .as_ref()
            .map(|b| format!("{prefix}{}", newest_first(b.0))),
        before: input
            .by_created_after
            .as_ref()
            .map(|a| format!("{prefix}{};", newest_first(a.0))),
    };
    let vault_name = source.name.clone();
    let (page, next) = meta
        .store()
        .read(move |tx| {
            scan_page_within(
                tx,
                table,
                &prefix,
                &range,
                input.next_token.as_deref(),
                input.max_results,
                |tx, v| {
                    let Some(rp) = load_key(tx, v)? else {
                        return Ok(None);
                    };
                    Ok(passes(&rp, &vault_name, &input).then_some(rp))
                },
            )
        })
        .await?;
    let (a, r) = (source.account.clone(), source.region.clone());
    let ids: Vec<String> = page.iter().map(|p| p.id.clone()).collect();
    let statuses = meta
        .store()
        .read(move |tx| -> Result<Vec<_>> {
            ids.iter()
                .map(|id| Ok(indexes::get(tx, &a, &r, id)?.map(|i| i.status.wire())))
                .collect()
        })
        .await?;
    let points = page
        .iter()
        .zip(statuses)
        .map(|(p, s)| RecoveryPointByBackupVault {
            index_status: s,
            ..p.by_vault()
        })
        .collect();
    Ok(ListRecoveryPointsByBackupVaultOutput {
        next_token: next,
        recovery_points: Some(points),
    })
}

pub(crate) async fn list_by_resource(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListRecoveryPointsByResourceInput,
) -> Result<ListRecoveryPointsByResourceOutput> {
    build_indexes(meta).await?;
    let prefix = by_resource_prefix(&ctx.account_id, &ctx.region, &input.resource_arn);
    let (page, next) = meta
        .store()
        .read(move |tx| {
            scan_page(
                tx,
                BY_RESOURCE,
                &prefix,
                input.next_token.as_deref(),
                input.max_results,
                |tx, v| load_key(tx, v),
            )
        })
        .await?;
    Ok(ListRecoveryPointsByResourceOutput {
        next_token: next,
        recovery_points: Some(page.iter().map(RecoveryPointRecord::by_resource).collect()),
    })
}

pub(crate) async fn delete(
    plane: &Executor,
    ctx: &RequestContext,
    input: DeleteRecoveryPointInput,
) -> Result<()> {
    let target = Target {
        action: "backup:DeleteRecoveryPoint",
        vault_name: input.backup_vault_name,
        rp_arn: input.recovery_point_arn,
        continuous_only: false,
    };
    remove_point(plane, ctx, target).await
}

/// What DeleteRecoveryPoint or DisassociateRecoveryPoint removes.
struct Target {
    /// The IAM action a vault access policy is checked for.
    action: &'static str,
    vault_name: String,
    rp_arn: String,
    /// Disassociate: only a continuous point may go this way.
    continuous_only: bool,
}

/// Removes a recovery point after every check that guards it (shared points, restore access
/// vaults, the vault's access policy, composites, vault lock and legal holds in
/// `composite::delete`). Its data (and a continuous point's replication slot) go with the
/// queued removal the runner carries out.
async fn remove_point(plane: &Executor, ctx: &RequestContext, t: Target) -> Result<()> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let now = plane.clock().now();
    plane
        .store()
        .write(move |tx| -> Result<()> {
            refuse_shared_delete(&a, &t.rp_arn)?;
            let vkey = vaults::key(&a, &r, &t.vault_name);
            let mut vault = vaults::load(tx, &vkey, &t.vault_name)?;
            if vault.mpa.restore_access.is_some() {
                return Err(restore_access::access_denied(
                    &a,
                    t.action,
                    &t.rp_arn,
                    "A restore access backup vault is read-only: its recovery points can be restored, never deleted.",
                )
                .into());
            }
            vault_policy::check_not_denied(tx, &vkey, t.action, &[&t.rp_arn, &vault.arn], &a)?;
            let rp = find_in_vault(tx, &a, &r, &t.vault_name, &t.rp_arn)?;
            if t.continuous_only && rp.continuous.is_none() {
                return Err(ApiError::invalid_request(format!(
                    "Recovery point {} is a snapshot recovery point; only continuous backup recovery points can be disassociated. Use DeleteRecoveryPoint to delete it.",
                    rp.arn
                ))
                .into());
            }
            if let Some(why) = composite::nested_refusal(&rp) {
                return Err(ApiError::invalid_request(why).into());
            }
            // A composite parent goes with its nested points, or not at all.
            if let Err(why) = composite::delete(tx, &mut vault, &rp, now)? {
                return Err(ApiError::invalid_request(why).into());
            }
            Ok(())
        })
        .await?;
    plane.running().wake();
    Ok(())
}

/// Refuses deleting another account's recovery point: what is shared with this account
/// (through a restore access vault or a vault's access policy) is restored, never deleted.
fn refuse_shared_delete(caller: &str, rp_arn: &str) -> Result<()> {
    match crate::model::arn::parse(rp_arn) {
        Some(a) if a.service == "backup" && a.account != caller => {
            Err(restore_access::access_denied(
                caller,
                "backup:DeleteRecoveryPoint",
                rp_arn,
                "Recovery points shared with this account can be restored, never deleted.",
            )
            .into())
        }
        _ => Ok(()),
    }
}

pub(crate) async fn update_lifecycle(
    meta: &Meta,
    ctx: &RequestContext,
    input: UpdateRecoveryPointLifecycleInput,
) -> Result<UpdateRecoveryPointLifecycleOutput> {
    if let Some(l) = &input.lifecycle {
        crate::model::lifecycle::check_given(l)?;
    }
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let now = meta.clock().now();
    let rp = meta
        .store()
        .write(move |tx| -> Result<RecoveryPointRecord> {
            let vkey = vaults::key(&a, &r, &input.backup_vault_name);
            let vault = vaults::load(tx, &vkey, &input.backup_vault_name)?;
            vault_policy::check_not_denied(tx, &vkey, "backup:UpdateRecoveryPointLifecycle", &[&input.recovery_point_arn, &vault.arn], &a)?;
            // A locked (or air-gapped) vault keeps its points within its bounds.
            if let Some(why) = retention::admission_blocker(&vault, input.lifecycle.as_ref()) {
                return Err(ApiError::invalid_request(why).into());
            }
            let mut rp = find_in_vault(tx, &a, &r, &input.backup_vault_name, &input.recovery_point_arn)?;
            if rp.storage_class == StorageClass::Cold
                && let Some(l) = &input.lifecycle
                    && l.move_to_cold_storage_after_days.is_some_and(|d| Some(d) != rp.lifecycle.as_ref().and_then(|x| x.move_to_cold_storage_after_days)) {
                        return Err(ApiError::invalid_request("The recovery point is already in cold storage; MoveToColdStorageAfterDays cannot change.").into());
                    }
            rp.lifecycle = input.lifecycle;
            crate::model::recovery_points::save(tx, &rp)?;
            events::recovery_point_modified(tx, &rp, now, "lifecycle")?;
            Ok(rp)
        })
        .await?;
    Ok(UpdateRecoveryPointLifecycleOutput {
        backup_vault_arn: Some(rp.vault_arn.clone()),
        calculated_lifecycle: rp.calculated(),
        lifecycle: rp.lifecycle.clone(),
        recovery_point_arn: Some(rp.arn.clone()),
    })
}

/// DisassociateRecoveryPoint: a continuous point leaves Coffer as AWS describes it, "deleted
/// from AWS Backup, control released to the source service": the point and its base backup
/// and WAL go, and its replication slot is dropped on the database server. The next
/// continuous backup of the database starts a new point. A snapshot point is refused.
pub(crate) async fn disassociate(
    plane: &Executor,
    ctx: &RequestContext,
    input: DisassociateRecoveryPointInput,
) -> Result<()> {
    let target = Target {
        action: "backup:DisassociateRecoveryPoint",
        vault_name: input.backup_vault_name,
        rp_arn: input.recovery_point_arn,
        continuous_only: true,
    };
    remove_point(plane, ctx, target).await
}

/// DisassociateRecoveryPointFromParent: the nested point stands on its own from now on, with
/// its own lifecycle (see `model::composite`).
pub(crate) async fn disassociate_from_parent(
    meta: &Meta,
    ctx: &RequestContext,
    input: DisassociateRecoveryPointFromParentInput,
) -> Result<()> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let now = meta.clock().now();
    let rp = meta
        .store()
        .write(move |tx| {
            let vkey = vaults::key(&a, &r, &input.backup_vault_name);
            vaults::load(tx, &vkey, &input.backup_vault_name)?;
            composite::disassociate(
                tx,
                &a,
                &r,
                &input.backup_vault_name,
                &input.recovery_point_arn,
                now,
            )
        })
        .await?;
    tracing::info!(recovery_point = %rp.arn, "a nested recovery point was disassociated from its parent");
    Ok(())
}
