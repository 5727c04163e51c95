//! The restore testing selection operations: CreateRestoreTestingSelection,
//! GetRestoreTestingSelection, UpdateRestoreTestingSelection, ListRestoreTestingSelections
//! and DeleteRestoreTestingSelection (records and rules in `model::restore_testing`).

use chrono::{DateTime, Utc};
use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};
use coffer_store::Txn;

use super::restore_testing::plan_not_found;
use crate::model::error::Result;
use crate::model::restore_testing::*;
use crate::model::{Meta, paging};

fn not_found(plan: &str, name: &str) -> ApiError {
    ApiError::not_found(format!(
        "Restore testing selection {name} does not exist in restore testing plan {plan}."
    ))
}

/// Checks a selection as it would be stored.
fn check(s: &SelectionRecord) -> Result<()> {
    check_name("RestoreTestingSelectionName", &s.name)?;
    check_resources(
        &s.protected_resource_type,
        &s.protected_resource_arns,
        s.protected_resource_conditions.as_ref(),
    )?;
    check_overrides(&s.restore_metadata_overrides)?;
    validation_window(Some(s.validation_window_hours))?;
    Ok(())
}

fn new_selection(
    ctx: &RequestContext,
    plan: String,
    s: RestoreTestingSelectionForCreate,
    token: Option<String>,
    now: DateTime<Utc>,
) -> Result<SelectionRecord> {
    let rec = SelectionRecord {
        plan_name: plan,
        name: s.restore_testing_selection_name,
        account: ctx.account_id.clone(),
        region: ctx.region.clone(),
        creator_request_id: token,
        creation_time: now,
        last_update_time: None,
        iam_role_arn: s.iam_role_arn,
        protected_resource_type: s.protected_resource_type,
        protected_resource_arns: s.protected_resource_arns.unwrap_or_default(),
        protected_resource_conditions: s.protected_resource_conditions,
        restore_metadata_overrides: s.restore_metadata_overrides.unwrap_or_default(),
        validation_window_hours: validation_window(s.validation_window_hours)?,
    };
    check(&rec)?;
    Ok(rec)
}

fn by_token(tx: &mut dyn Txn, rec: &SelectionRecord) -> Result<Option<SelectionRecord>> {
    let Some(token) = &rec.creator_request_id else {
        return Ok(None);
    };
    let tk = selection_key(&rec.account, &rec.region, &rec.plan_name, token);
    let Some(name) = tx.get(SELECTION_TOKENS, &tk)? else {
        return Ok(None);
    };
    let name = String::from_utf8_lossy(&name).to_string();
    find_selection(tx, &rec.account, &rec.region, &rec.plan_name, &name)
}

pub(crate) async fn create(
    meta: &Meta,
    ctx: &RequestContext,
    input: CreateRestoreTestingSelectionInput,
) -> Result<CreateRestoreTestingSelectionOutput> {
    let now = meta.clock().now();
    let rec = new_selection(
        ctx,
        input.restore_testing_plan_name,
        input.restore_testing_selection,
        input.creator_request_id,
        now,
    )?;
    let (stored, plan) = meta
        .store()
        .write(move |tx| -> Result<(SelectionRecord, PlanRecord)> {
            let (a, r, pn) = (&rec.account, &rec.region, &rec.plan_name);
            let plan = find_plan(tx, a, r, pn)?.ok_or_else(|| plan_not_found(pn))?;
            if let Some(existing) = by_token(tx, &rec)? {
                return Ok((existing, plan));
            }
            if find_selection(tx, a, r, pn, &rec.name)?.is_some() {
                return Err(ApiError::already_exists(format!(
                    "Restore testing selection {} already exists in restore testing plan {pn}.",
                    rec.name
                ))
                .into());
            }
            if selections_of(tx, a, r, pn)?.len() >= MAX_SELECTIONS_PER_PLAN {
                return Err(ApiError::limit_exceeded(format!(
                    "Restore testing plan {pn} already has {MAX_SELECTIONS_PER_PLAN} selections, the most it may have."
                ))
                .into());
            }
            put_selection(tx, &rec)?;
            if let Some(token) = &rec.creator_request_id {
                tx.put(
                    SELECTION_TOKENS,
                    &selection_key(a, r, pn, token),
                    rec.name.as_bytes(),
                )?;
            }
            Ok((rec, plan))
        })
        .await?;
    Ok(CreateRestoreTestingSelectionOutput {
        creation_time: Timestamp(stored.creation_time),
        restore_testing_plan_arn: plan.arn,
        restore_testing_plan_name: plan.name,
        restore_testing_selection_name: stored.name,
    })
}

pub(crate) async fn get(
    meta: &Meta,
    ctx: &RequestContext,
    input: GetRestoreTestingSelectionInput,
) -> Result<GetRestoreTestingSelectionOutput> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let s = meta
        .store()
        .read(move |tx| -> Result<SelectionRecord> {
            let (pn, sn) = (
                &input.restore_testing_plan_name,
                &input.restore_testing_selection_name,
            );
            find_plan(tx, &a, &r, pn)?.ok_or_else(|| plan_not_found(pn))?;
            find_selection(tx, &a, &r, pn, sn)?.ok_or_else(|| not_found(pn, sn).into())
        })
        .await?;
    Ok(GetRestoreTestingSelectionOutput {
        restore_testing_selection: RestoreTestingSelectionForGet {
            creation_time: Timestamp(s.creation_time),
            creator_request_id: s.creator_request_id,
            iam_role_arn: s.iam_role_arn,
            protected_resource_arns: Some(s.protected_resource_arns),
            protected_resource_conditions: s.protected_resource_conditions,
            protected_resource_type: s.protected_resource_type,
            restore_metadata_overrides: Some(s.restore_metadata_overrides),
            restore_testing_plan_name: s.plan_name,
            restore_testing_selection_name: s.name,
            validation_window_hours: Some(s.validation_window_hours),
        },
    })
}

/// Applies an update: the members given replace the selection's; giving the resources one
/// way (ARNs or conditions) drops the other.
fn apply_update(
    s: &mut SelectionRecord,
    u: RestoreTestingSelectionForUpdate,
    now: DateTime<Utc>,
) -> Result<()> {
    if let Some(role) = u.iam_role_arn {
        s.iam_role_arn = role;
    }
    match (u.protected_resource_arns, u.protected_resource_conditions) {
        (Some(arns), None) => {
            s.protected_resource_arns = arns;
            s.protected_resource_conditions = None;
        }
        (None, Some(c)) => {
            s.protected_resource_arns = Vec::new();
            s.protected_resource_conditions = Some(c);
        }
        (Some(arns), Some(c)) => {
            s.protected_resource_arns = arns;
            s.protected_resource_conditions = Some(c);
        }
        (None, None) => {}
    }
    if let Some(o) = u.restore_metadata_overrides {
        s.restore_metadata_overrides = o;
    }
    if let Some(h) = u.validation_window_hours {
        s.validation_window_hours = h;
    }
    s.last_update_time = Some(now);
    check(s)
}

pub(crate) async fn update(
    meta: &Meta,
    ctx: &RequestContext,
    input: UpdateRestoreTestingSelectionInput,
) -> Result<UpdateRestoreTestingSelectionOutput> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let now = meta.clock().now();
    let (s, plan) = meta
        .store()
        .write(move |tx| -> Result<(SelectionRecord, PlanRecord)> {
            let (pn, sn) = (
                &input.restore_testing_plan_name,
                &input.restore_testing_selection_name,
            );
            let plan = find_plan(tx, &a, &r, pn)?.ok_or_else(|| plan_not_found(pn))?;
            let mut s = find_selection(tx, &a, &r, pn, sn)?.ok_or_else(|| not_found(pn, sn))?;
            apply_update(&mut s, input.restore_testing_selection, now)?;
            put_selection(tx, &s)?;
            Ok((s, plan))
        })
        .await?;
    Ok(UpdateRestoreTestingSelectionOutput {
        creation_time: Timestamp(s.creation_time),
        restore_testing_plan_arn: plan.arn,
        restore_testing_plan_name: plan.name,
        restore_testing_selection_name: s.name,
        update_time: Timestamp(now),
    })
}

pub(crate) async fn list(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListRestoreTestingSelectionsInput,
) -> Result<ListRestoreTestingSelectionsOutput> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let (selections, next_token) = meta
        .store()
        .read(move |tx| {
            let pn = &input.restore_testing_plan_name;
            find_plan(tx, &a, &r, pn)?.ok_or_else(|| plan_not_found(pn))?;
            paging::scan_page(
                tx,
                SELECTIONS,
                &format!("{a}:{r}:{pn}:"),
                input.next_token.as_deref(),
                input.max_results,
                |_, v| {
                    let s: SelectionRecord = serde_json::from_slice(v)?;
                    Ok(Some(RestoreTestingSelectionForList {
                        creation_time: Timestamp(s.creation_time),
                        iam_role_arn: s.iam_role_arn,
                        protected_resource_type: s.protected_resource_type,
                        restore_testing_plan_name: s.plan_name,
                        restore_testing_selection_name: s.name,
                        validation_window_hours: Some(s.validation_window_hours),
                    }))
                },
            )
        })
        .await?;
    Ok(ListRestoreTestingSelectionsOutput {
        next_token,
        restore_testing_selections: selections,
    })
}

pub(crate) async fn delete(
    meta: &Meta,
    ctx: &RequestContext,
    input: DeleteRestoreTestingSelectionInput,
) -> Result<()> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    meta.store()
        .write(move |tx| -> Result<()> {
            let (pn, sn) = (
                &input.restore_testing_plan_name,
                &input.restore_testing_selection_name,
            );
            let s = find_selection(tx, &a, &r, pn, sn)?.ok_or_else(|| not_found(pn, sn))?;
            tx.delete(SELECTIONS, &selection_key(&a, &r, pn, sn))?;
            if let Some(token) = &s.creator_request_id {
                tx.delete(SELECTION_TOKENS, &selection_key(&a, &r, pn, token))?;
            }
            Ok(())
        })
        .await
}
