//! Protected resources: resources with at least one recovery point, read off the recovery
//! points themselves (the latest one gives LastBackupTime, LastBackupVaultArn and
//! LastRecoveryPointArn), so they can never disagree with what the vaults hold.
//! ListProtectedResources pages the scope's `rp_protected` entries,
//! ListProtectedResourcesByBackupVault the vault's `rp_protected_in_vault` entries; each entry
//! holds what the listing shows of its resource's newest point (`recovery_points::Protected`,
//! kept with every write and removal of a point), so a page reads no point. An entry of an
//! earlier Coffer (the ARN alone, until `build_indexes` has rewritten it) is answered from the
//! first point of the resource's index. DescribeProtectedResource reads the resource's entry
//! in `rp_protected` the same way, and its newest completed restore from the restore jobs'
//! resource index.

use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};

use crate::model::error::Result;
use crate::model::job_index::{self, Field};
use crate::model::jobs::{JobKind, JobRecord};
use crate::model::paging::{scan_all, scan_page};
use crate::model::recovery_points::{Protected, RecoveryPointRecord};
use crate::model::states::JobState;
use crate::model::{Meta, recovery_points, vaults};

fn from_entry(p: Protected) -> ProtectedResource {
    ProtectedResource {
        last_backup_time: Some(Timestamp(p.created)),
        last_backup_vault_arn: Some(p.vault_arn),
        last_recovery_point_arn: Some(p.point_arn),
        resource_arn: Some(p.resource_arn),
        resource_name: p.resource_name,
        resource_type: Some(p.resource_type),
    }
}

fn protected(p: &RecoveryPointRecord) -> ProtectedResource {
    ProtectedResource {
        last_backup_time: Some(Timestamp(p.creation_date)),
        last_backup_vault_arn: Some(p.vault_arn.clone()),
        last_recovery_point_arn: Some(p.arn.clone()),
        resource_arn: Some(p.resource_arn.clone()),
        resource_name: p.resource_name.clone(),
        resource_type: Some(p.resource_type.clone()),
    }
}

pub(crate) async fn list(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListProtectedResourcesInput,
) -> Result<ListProtectedResourcesOutput> {
    // The scope's protected resources in ARN order, each with its newest point.
    recovery_points::build_indexes(meta).await?;
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let prefix = format!("{a}:{r}:");
    let (page, next) = meta
        .store()
        .read(move |tx| {
            scan_page(
                tx,
                recovery_points::PROTECTED,
                &prefix,
                input.next_token.as_deref(),
                input.max_results,
                |tx, v| {
                    if let Some(p) = Protected::read(v) {
                        return Ok(Some(from_entry(p)));
                    }
                    let arn = String::from_utf8_lossy(v);
                    let newest = recovery_points::newest_of_resource(tx, &a, &r, &arn)?;
                    Ok(newest.as_ref().map(protected))
                },
            )
        })
        .await?;
    Ok(ListProtectedResourcesOutput {
        next_token: next,
        results: Some(page),
    })
}

pub(crate) async fn list_by_vault(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListProtectedResourcesByBackupVaultInput,
) -> Result<ListProtectedResourcesByBackupVaultOutput> {
    if input
        .backup_vault_account_id
        .as_ref()
        .is_some_and(|a| a != &ctx.account_id)
    {
        return Err(ApiError::not_found(format!(
            "Backup vault '{}' does not exist in this account and region.",
            input.backup_vault_name
        ))
        .into());
    }
    vaults::get(meta, &ctx.account_id, &ctx.region, &input.backup_vault_name).await?;
    // The vault's protected resources in ARN order, each with its newest point there.
    recovery_points::build_indexes(meta).await?;
    let (a, r, v) = (
        ctx.account_id.clone(),
        ctx.region.clone(),
        input.backup_vault_name.clone(),
    );
    let prefix = format!("{a}:{r}:{v}:");
    let (page, next) = meta
        .store()
        .read(move |tx| {
            scan_page(
                tx,
                recovery_points::PROTECTED_IN_VAULT,
                &prefix,
                input.next_token.as_deref(),
                input.max_results,
                |tx, value| {
                    if let Some(p) = Protected::read(value) {
                        return Ok(Some(from_entry(p)));
                    }
                    let arn = String::from_utf8_lossy(value);
                    let newest = recovery_points::newest_in_vault(tx, &a, &r, &v, &arn)?;
                    Ok(newest.as_ref().map(protected))
                },
            )
        })
        .await?;
    Ok(ListProtectedResourcesByBackupVaultOutput {
        next_token: next,
        results: Some(page),
    })
}

/// The newest completed restore job of a resource: read from the newest end of the restore
/// jobs' resource index (`model::job_index`), a batch of jobs at a time, or, while a store
/// written by an earlier Coffer is being indexed (`indexed` false), from every restore job of
/// the scope.
fn latest_completed_restore(
    tx: &mut dyn coffer_store::Txn,
    (account, region): (&str, &str),
    resource: &str,
    indexed: bool,
) -> Result<Option<JobRecord>> {
    let kind = JobKind::Restore;
    let completed = |j: &JobRecord| j.resource_arn == resource && j.state == JobState::Completed;
    if !indexed {
        let prefix = format!("{account}:{region}:");
        let mut latest: Option<JobRecord> = None;
        for (_, v) in scan_all(tx, kind.table(), &prefix)? {
            let j: JobRecord = serde_json::from_slice(&v)?;
            let newer = latest
                .as_ref()
                .is_none_or(|l| (j.creation_date, &j.id) >= (l.creation_date, &l.id));
            if completed(&j) && newer {
                latest = Some(j);
            }
        }
        return Ok(latest);
    }
    let mut keys = job_index::job_keys(tx, kind, account, region, Field::Resource, resource)?;
    keys.reverse();
    for batch in keys.chunks(RESTORES_AT_A_TIME) {
        for value in tx.get_many(kind.table(), batch)?.into_iter().flatten() {
            let j: JobRecord = serde_json::from_slice(&value)?;
            if completed(&j) {
                return Ok(Some(j));
            }
        }
    }
    Ok(None)
}

/// Restore jobs read at once, newest first, while looking for a resource's latest completed
/// one (on PostgreSQL a batch is one round trip).
const RESTORES_AT_A_TIME: usize = 16;

pub(crate) async fn describe(
    meta: &Meta,
    ctx: &RequestContext,
    input: DescribeProtectedResourceInput,
) -> Result<DescribeProtectedResourceOutput> {
    // The resource's newest point: the first entry of its index.
    recovery_points::build_indexes(meta).await?;
    let (a, r, arn) = (
        ctx.account_id.clone(),
        ctx.region.clone(),
        input.resource_arn.clone(),
    );
    // The newest point (the resource's protected entry) and the newest completed restore,
    // in one transaction.
    let seen = job_index::Passes::seen(meta);
    let (latest, restore, passes) = meta
        .store()
        .read(move |tx| -> Result<_> {
            let passes = seen.read(tx)?;
            let Some(p) = recovery_points::protected_of(tx, &a, &r, &arn)? else {
                return Ok((None, None, passes));
            };
            let restore = latest_completed_restore(tx, (&a, &r), &arn, passes.indexed)?;
            Ok((Some(p), restore, passes))
        })
        .await?;
    passes.note(meta);
    let Some(p) = latest else {
        return Err(ApiError::not_found(format!(
            "Resource {} has no recovery point in this account and region.",
            input.resource_arn
        ))
        .into());
    };
    Ok(DescribeProtectedResourceOutput {
        last_backup_time: Some(Timestamp(p.created)),
        last_backup_vault_arn: Some(p.vault_arn.clone()),
        last_recovery_point_arn: Some(p.point_arn.clone()),
        latest_restore_execution_time_minutes: restore
            .as_ref()
            .and_then(|j| Some((j.completion_date? - j.started_at?).num_minutes())),
        latest_restore_job_creation_date: restore.as_ref().map(|j| Timestamp(j.creation_date)),
        latest_restore_recovery_point_creation_date: restore
            .as_ref()
            .and_then(|j| j.recovery_point_creation_date.map(Timestamp)),
        resource_arn: Some(p.resource_arn.clone()),
        resource_name: p.resource_name.clone(),
        resource_type: Some(p.resource_type.clone()),
    })
}
