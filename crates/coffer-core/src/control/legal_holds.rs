//! The legal hold operations: CreateLegalHold, GetLegalHold, ListLegalHolds, CancelLegalHold
//! and ListRecoveryPointsByLegalHold (the records and the rule they enforce are in
//! `model::legal_holds` and `model::retention`).

use chrono::{DateTime, Utc};
use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};
use coffer_store::Txn;

use crate::model::error::Result;
use crate::model::legal_holds::*;
use crate::model::recovery_points::{self, RecoveryPointRecord};
use crate::model::{Meta, arn, paging, tags, vaults};

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Legal hold {id} does not exist in this account and region."
    ))
}

/// Refuses a selection that cannot select anything meaningful: a reversed date range, or a
/// vault that does not exist.
fn check_selection(
    tx: &mut dyn Txn,
    ctx: &RequestContext,
    selection: Option<&RecoveryPointSelection>,
) -> Result<()> {
    let Some(s) = selection else {
        return Ok(());
    };
    if let Some(d) = &s.date_range
        && d.from_date.0 > d.to_date.0
    {
        return Err(ApiError::invalid_parameter(format!(
            "RecoveryPointSelection.DateRange: FromDate ({}) is after ToDate ({}).",
            d.from_date.0.to_rfc3339(),
            d.to_date.0.to_rfc3339()
        ))
        .into());
    }
    for name in s.vault_names.iter().flatten() {
        if tx
            .get(
                vaults::TABLE,
                &vaults::key(&ctx.account_id, &ctx.region, name),
            )?
            .is_none()
        {
            return Err(ApiError::invalid_parameter(format!(
                "RecoveryPointSelection.VaultNames: backup vault '{name}' does not exist in this account and region."
            ))
            .into());
        }
    }
    Ok(())
}

fn create_output(rec: &LegalHoldRecord) -> CreateLegalHoldOutput {
    CreateLegalHoldOutput {
        creation_date: Some(Timestamp(rec.creation_date)),
        description: Some(rec.description.clone()),
        legal_hold_arn: Some(rec.arn.clone()),
        legal_hold_id: Some(rec.id.clone()),
        recovery_point_selection: rec.selection.clone(),
        status: Some(rec.status.as_str().into()),
        title: Some(rec.title.clone()),
    }
}

/// The hold a repeated IdempotencyToken created, if it still exists.
fn by_token(
    tx: &mut dyn Txn,
    ctx: &RequestContext,
    token: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<LegalHoldRecord>> {
    let Some(token) = token else {
        return Ok(None);
    };
    let Some(id) = tx.get(TOKENS, &key(&ctx.account_id, &ctx.region, token))? else {
        return Ok(None);
    };
    let id = String::from_utf8_lossy(&id).to_string();
    find(tx, &ctx.account_id, &ctx.region, &id, now)
}

pub(crate) async fn create(
    meta: &Meta,
    ctx: &RequestContext,
    input: CreateLegalHoldInput,
) -> Result<CreateLegalHoldOutput> {
    let initial_tags = input.tags.clone().unwrap_or_default();
    tags::check_initial(&initial_tags)?;
    // The hold's selection is resolved through the recovery point indexes.
    crate::model::recovery_points::build_indexes(meta).await?;
    let now = meta.clock().now();
    let id = uuid::Uuid::new_v4().to_string();
    let rec = LegalHoldRecord {
        arn: arn::legal_hold(&ctx.region, &ctx.account_id, &id),
        id,
        account: ctx.account_id.clone(),
        region: ctx.region.clone(),
        title: input.title,
        description: input.description,
        selection: input.recovery_point_selection,
        status: HoldStatus::Active,
        creation_date: now,
        cancellation_date: None,
        cancel_description: None,
        retain_record_until: None,
    };
    let ctx = ctx.clone();
    let token = input.idempotency_token;
    let stored = meta
        .store()
        .write(move |tx| -> Result<LegalHoldRecord> {
            if let Some(existing) = by_token(tx, &ctx, token.as_deref(), now)? {
                return Ok(existing);
            }
            check_selection(tx, &ctx, rec.selection.as_ref())?;
            if count_active(tx, &ctx.account_id, &ctx.region)? >= MAX_ACTIVE_HOLDS {
                return Err(ApiError::limit_exceeded(format!(
                    "This account already has {MAX_ACTIVE_HOLDS} active legal holds, the most it may have; cancel one first."
                ))
                .into());
            }
            let points = resolve(tx, &ctx.account_id, &ctx.region, rec.selection.as_ref())?;
            insert(tx, &rec, &points)?;
            if let Some(token) = &token {
                tx.put(
                    TOKENS,
                    &key(&ctx.account_id, &ctx.region, token),
                    rec.id.as_bytes(),
                )?;
            }
            tags::set(tx, &rec.arn, &initial_tags)?;
            Ok(rec)
        })
        .await?;
    Ok(create_output(&stored))
}

pub(crate) async fn get(
    meta: &Meta,
    ctx: &RequestContext,
    input: GetLegalHoldInput,
) -> Result<GetLegalHoldOutput> {
    let (a, r, id) = (
        ctx.account_id.clone(),
        ctx.region.clone(),
        input.legal_hold_id,
    );
    let now = meta.clock().now();
    let rec = meta
        .store()
        .read(move |tx| -> Result<LegalHoldRecord> {
            find(tx, &a, &r, &id, now)?.ok_or_else(|| not_found(&id).into())
        })
        .await?;
    Ok(GetLegalHoldOutput {
        cancel_description: rec.cancel_description,
        cancellation_date: rec.cancellation_date.map(Timestamp),
        creation_date: Some(Timestamp(rec.creation_date)),
        description: Some(rec.description),
        legal_hold_arn: Some(rec.arn),
        legal_hold_id: Some(rec.id),
        recovery_point_selection: rec.selection,
        retain_record_until: rec.retain_record_until.map(Timestamp),
        status: Some(rec.status.as_str().into()),
        title: Some(rec.title),
    })
}

pub(crate) async fn list(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListLegalHoldsInput,
) -> Result<ListLegalHoldsOutput> {
    let prefix = format!("{}:{}:", ctx.account_id, ctx.region);
    let now = meta.clock().now();
    let (holds, next_token) = meta
        .store()
        .read(move |tx| {
            paging::scan_page(
                tx,
                TABLE,
                &prefix,
                input.next_token.as_deref(),
                input.max_results,
                |_, v| {
                    let rec: LegalHoldRecord = serde_json::from_slice(v)?;
                    Ok(rec.visible_at(now).then(|| LegalHold {
                        cancellation_date: rec.cancellation_date.map(Timestamp),
                        creation_date: Some(Timestamp(rec.creation_date)),
                        description: Some(rec.description),
                        legal_hold_arn: Some(rec.arn),
                        legal_hold_id: Some(rec.id),
                        status: Some(rec.status.as_str().into()),
                        title: Some(rec.title),
                    }))
                },
            )
        })
        .await?;
    Ok(ListLegalHoldsOutput {
        legal_holds: Some(holds),
        next_token,
    })
}

pub(crate) async fn cancel(
    meta: &Meta,
    ctx: &RequestContext,
    input: CancelLegalHoldInput,
) -> Result<()> {
    if let Some(days) = input.retain_record_in_days
        && days < 0
    {
        return Err(ApiError::invalid_parameter(format!(
            "RetainRecordInDays must be 0 or more; got {days}."
        ))
        .into());
    }
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let now = meta.clock().now();
    meta.store()
        .write(move |tx| -> Result<()> {
            let id = input.legal_hold_id;
            let mut rec = find(tx, &a, &r, &id, now)?.ok_or_else(|| not_found(&id))?;
            if rec.status == HoldStatus::Canceled {
                return Err(ApiError::invalid_resource_state(format!(
                    "Legal hold {id} is already cancelled."
                ))
                .into());
            }
            crate::model::legal_holds::cancel(
                tx,
                &mut rec,
                input.cancel_description,
                input.retain_record_in_days,
                now,
            )
        })
        .await
}

fn point_member(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    v: &[u8],
) -> Result<Option<RecoveryPointMember>> {
    let held: HeldPoint = serde_json::from_slice(v)?;
    let rp_key = recovery_points::key(account, region, &held.vault_name, &held.rp_id);
    // A point deleted after its hold was cancelled is no longer listed.
    let Some(v) = tx.get(recovery_points::TABLE, &rp_key)? else {
        return Ok(None);
    };
    let rp: RecoveryPointRecord = serde_json::from_slice(&v)?;
    Ok(Some(RecoveryPointMember {
        backup_vault_name: Some(rp.vault_name),
        recovery_point_arn: Some(rp.arn),
        resource_arn: Some(rp.resource_arn),
        resource_type: Some(rp.resource_type),
    }))
}

pub(crate) async fn list_recovery_points(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListRecoveryPointsByLegalHoldInput,
) -> Result<ListRecoveryPointsByLegalHoldOutput> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let now = meta.clock().now();
    let (points, next_token) = meta
        .store()
        .read(move |tx| {
            let id = &input.legal_hold_id;
            if find(tx, &a, &r, id, now)?.is_none() {
                // The model gives this operation no ResourceNotFoundException.
                return Err(ApiError::invalid_parameter(format!(
                    "Legal hold {id} does not exist in this account and region."
                ))
                .into());
            }
            paging::scan_page(
                tx,
                POINTS,
                &format!("{a}:{r}:{id}:"),
                input.next_token.as_deref(),
                input.max_results,
                |tx, v| point_member(tx, &a, &r, v),
            )
        })
        .await?;
    Ok(ListRecoveryPointsByLegalHoldOutput {
        next_token,
        recovery_points: Some(points),
    })
}
