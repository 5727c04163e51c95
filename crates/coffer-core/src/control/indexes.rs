//! The recovery point index operations: GetRecoveryPointIndexDetails,
//! ListIndexedRecoveryPoints and UpdateRecoveryPointIndexSettings. The records and the
//! catalogue are `model::indexes`; building and removing them is `dataplane::indexes`.

use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};

use crate::dataplane::Executor;
use crate::model::error::Result;
use crate::model::indexes::{self, IndexRecord, Status};
use crate::model::recovery_points::{self, RecoveryPointRecord};
use crate::model::states::RecoveryPointStatus;
use crate::model::{Meta, paging, vaults};

fn no_index(arn: &str) -> ApiError {
    ApiError::not_found(format!(
        "Recovery point {arn} has no backup index. Create one with UpdateRecoveryPointIndexSettings (Index ENABLED)."
    ))
}

pub(crate) async fn get_details(
    meta: &Meta,
    ctx: &RequestContext,
    input: GetRecoveryPointIndexDetailsInput,
) -> Result<GetRecoveryPointIndexDetailsOutput> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    vaults::get(meta, &a, &r, &input.backup_vault_name).await?;
    let rec = meta
        .store()
        .read(move |tx| -> Result<IndexRecord> {
            let rp = recovery_points::find_in_vault(
                tx,
                &a,
                &r,
                &input.backup_vault_name,
                &input.recovery_point_arn,
            )?;
            indexes::get(tx, &a, &r, &rp.id)?
                .ok_or_else(|| no_index(&input.recovery_point_arn).into())
        })
        .await?;
    Ok(GetRecoveryPointIndexDetailsOutput {
        backup_vault_arn: Some(rec.vault_arn.clone()),
        index_completion_date: rec.completion_date.map(Timestamp),
        index_creation_date: Some(Timestamp(rec.creation_date)),
        index_deletion_date: rec.deletion_date.map(Timestamp),
        index_status: Some(rec.status.wire()),
        index_status_message: rec.message.clone(),
        recovery_point_arn: Some(rec.rp_arn.clone()),
        source_resource_arn: Some(rec.resource_arn.clone()),
        total_items_indexed: rec.total_items,
    })
}

pub(crate) async fn list(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListIndexedRecoveryPointsInput,
) -> Result<ListIndexedRecoveryPointsOutput> {
    let status = match &input.index_status {
        Some(s) => Some(Status::from_wire(s).ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "IndexStatus '{}' is not one of PENDING, ACTIVE, FAILED, DELETING.",
                s.as_str()
            ))
        })?),
        None => None,
    };
    let prefix = format!("{}:{}:", ctx.account_id, ctx.region);
    let (page, next) = meta
        .store()
        .read(move |tx| {
            paging::scan_page(
                tx,
                indexes::TABLE,
                &prefix,
                input.next_token.as_deref(),
                input.max_results,
                |_, v| {
                    let rec: IndexRecord = serde_json::from_slice(v)?;
                    let keep = status.is_none_or(|s| s == rec.status)
                        && input
                            .source_resource_arn
                            .as_ref()
                            .is_none_or(|x| x == &rec.resource_arn)
                        && input
                            .resource_type
                            .as_ref()
                            .is_none_or(|x| x == &rec.resource_type)
                        && input
                            .created_after
                            .as_ref()
                            .is_none_or(|t| rec.backup_creation_date > t.0)
                        && input
                            .created_before
                            .as_ref()
                            .is_none_or(|t| rec.backup_creation_date < t.0);
                    Ok(keep.then(|| rec.listed()))
                },
            )
        })
        .await?;
    Ok(ListIndexedRecoveryPointsOutput {
        indexed_recovery_points: Some(page),
        next_token: next,
    })
}

/// Checks that `rp` can be indexed now.
fn check_eligible(rp: &RecoveryPointRecord) -> Result<()> {
    indexes::check_indexable(&rp.resource_type)?;
    if rp.status != RecoveryPointStatus::Completed {
        return Err(ApiError::invalid_request(format!(
            "Recovery point {} is not COMPLETED; only completed recovery points can be indexed.",
            rp.arn
        ))
        .into());
    }
    Ok(())
}

pub(crate) async fn update_settings(
    plane: &Executor,
    ctx: &RequestContext,
    input: UpdateRecoveryPointIndexSettingsInput,
) -> Result<UpdateRecoveryPointIndexSettingsOutput> {
    if !input.index.is_known() {
        return Err(ApiError::invalid_parameter(format!(
            "Index '{}' is not one of ENABLED, DISABLED.",
            input.index.as_str()
        ))
        .into());
    }
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    vaults::get(plane, &a, &r, &input.backup_vault_name).await?;
    let now = plane.clock().now();
    let index = input.index.clone();
    let vault_name = input.backup_vault_name.clone();
    let rp_arn = input.recovery_point_arn.clone();
    let status = plane
        .store()
        .write(move |tx| -> Result<Status> {
            let rp = recovery_points::find_in_vault(tx, &a, &r, &vault_name, &rp_arn)?;
            let current = indexes::get(tx, &a, &r, &rp.id)?;
            match (index, current) {
                (Index::Enabled, Some(c)) if c.status == Status::Deleting => {
                    Err(ApiError::invalid_request(format!(
                        "The backup index of recovery point {rp_arn} is being deleted; enable it again once GetRecoveryPointIndexDetails no longer finds it."
                    ))
                    .into())
                }
                (Index::Enabled, Some(c)) if c.status != Status::Failed => Ok(c.status),
                (Index::Enabled, _) => {
                    check_eligible(&rp)?;
                    Ok(indexes::insert_pending(tx, rp.new_index(input.iam_role_arn, now))?.status)
                }
                (_, Some(_)) => Ok(indexes::mark_deleting(tx, &a, &r, &rp.id, now)?
                    .map_or(Status::Deleting, |c| c.status)),
                (_, None) => Err(no_index(&rp_arn).into()),
            }
        })
        .await?;
    plane.running().wake();
    Ok(UpdateRecoveryPointIndexSettingsOutput {
        backup_vault_name: Some(input.backup_vault_name),
        index: Some(input.index),
        index_status: Some(status.wire()),
        recovery_point_arn: Some(input.recovery_point_arn),
    })
}
