//! The restore testing plan operations: CreateRestoreTestingPlan, GetRestoreTestingPlan,
//! UpdateRestoreTestingPlan, ListRestoreTestingPlans, DeleteRestoreTestingPlan and
//! GetRestoreTestingInferredMetadata (the selections are in `restore_testing_selections`; the
//! records, the rules and the runs are in `model::restore_testing`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};
use coffer_store::Txn;

use crate::model::error::Result;
use crate::model::restore_testing::*;
use crate::model::{Meta, paging, recovery_points, tags, vaults};

pub(crate) fn plan_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "Restore testing plan {name} does not exist in this account and region."
    ))
}

/// The plan a repeated CreatorRequestId created, if it still exists.
fn by_token(
    tx: &mut dyn Txn,
    ctx: &RequestContext,
    token: Option<&str>,
) -> Result<Option<PlanRecord>> {
    let Some(token) = token else {
        return Ok(None);
    };
    let Some(name) = tx.get(PLAN_TOKENS, &plan_key(&ctx.account_id, &ctx.region, token))? else {
        return Ok(None);
    };
    let name = String::from_utf8_lossy(&name).to_string();
    find_plan(tx, &ctx.account_id, &ctx.region, &name)
}

fn new_plan(
    ctx: &RequestContext,
    p: RestoreTestingPlanForCreate,
    token: Option<String>,
    now: DateTime<Utc>,
) -> Result<PlanRecord> {
    check_name("RestoreTestingPlanName", &p.restore_testing_plan_name)?;
    let sched = schedule(
        &p.schedule_expression,
        p.schedule_expression_timezone.as_deref(),
    )?;
    Ok(PlanRecord {
        arn: plan_arn(&ctx.region, &ctx.account_id, &p.restore_testing_plan_name),
        name: p.restore_testing_plan_name,
        account: ctx.account_id.clone(),
        region: ctx.region.clone(),
        creator_request_id: token,
        creation_time: now,
        last_update_time: None,
        last_execution_time: None,
        schedule_expression: p.schedule_expression,
        schedule_expression_timezone: p.schedule_expression_timezone,
        start_window_hours: start_window(p.start_window_hours)?,
        selection: recovery_point_selection(p.recovery_point_selection)?,
        next_run: sched.next_after(now),
    })
}

pub(crate) async fn create_plan(
    meta: &Meta,
    ctx: &RequestContext,
    input: CreateRestoreTestingPlanInput,
) -> Result<CreateRestoreTestingPlanOutput> {
    let initial_tags = input.tags.clone().unwrap_or_default();
    tags::check_initial(&initial_tags)?;
    let now = meta.clock().now();
    let token = input.creator_request_id;
    let rec = new_plan(ctx, input.restore_testing_plan, token.clone(), now)?;
    let ctx = ctx.clone();
    let stored = meta
        .store()
        .write(move |tx| -> Result<PlanRecord> {
            if let Some(existing) = by_token(tx, &ctx, token.as_deref())? {
                return Ok(existing);
            }
            if find_plan(tx, &ctx.account_id, &ctx.region, &rec.name)?.is_some() {
                return Err(ApiError::already_exists(format!(
                    "Restore testing plan {} already exists in this account and region.",
                    rec.name
                ))
                .into());
            }
            put_plan(tx, &rec)?;
            if let Some(token) = &token {
                tx.put(
                    PLAN_TOKENS,
                    &plan_key(&ctx.account_id, &ctx.region, token),
                    rec.name.as_bytes(),
                )?;
            }
            tags::set(tx, &rec.arn, &initial_tags)?;
            Ok(rec)
        })
        .await?;
    Ok(CreateRestoreTestingPlanOutput {
        creation_time: Timestamp(stored.creation_time),
        restore_testing_plan_arn: stored.arn,
        restore_testing_plan_name: stored.name,
    })
}

async fn load(meta: &Meta, ctx: &RequestContext, name: String) -> Result<PlanRecord> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    meta.store()
        .read(move |tx| -> Result<PlanRecord> {
            find_plan(tx, &a, &r, &name)?.ok_or_else(|| plan_not_found(&name).into())
        })
        .await
}

pub(crate) async fn get_plan(
    meta: &Meta,
    ctx: &RequestContext,
    input: GetRestoreTestingPlanInput,
) -> Result<GetRestoreTestingPlanOutput> {
    let p = load(meta, ctx, input.restore_testing_plan_name).await?;
    Ok(GetRestoreTestingPlanOutput {
        restore_testing_plan: RestoreTestingPlanForGet {
            creation_time: Timestamp(p.creation_time),
            creator_request_id: p.creator_request_id,
            last_execution_time: p.last_execution_time.map(Timestamp),
            last_update_time: p.last_update_time.map(Timestamp),
            recovery_point_selection: p.selection,
            restore_testing_plan_arn: p.arn,
            restore_testing_plan_name: p.name,
            schedule_expression: p.schedule_expression,
            schedule_expression_timezone: p.schedule_expression_timezone,
            start_window_hours: Some(p.start_window_hours),
        },
    })
}

/// Applies an update to `p` at `now`: the members given replace the plan's; a changed
/// schedule starts counting from now.
fn apply_update(
    p: &mut PlanRecord,
    u: RestoreTestingPlanForUpdate,
    now: DateTime<Utc>,
) -> Result<()> {
    if let Some(s) = u.recovery_point_selection {
        p.selection = recovery_point_selection(s)?;
    }
    if let Some(h) = u.start_window_hours {
        p.start_window_hours = start_window(Some(h))?;
    }
    let expression = u
        .schedule_expression
        .unwrap_or_else(|| p.schedule_expression.clone());
    let timezone = u
        .schedule_expression_timezone
        .or_else(|| p.schedule_expression_timezone.clone());
    let sched = schedule(&expression, timezone.as_deref())?;
    if expression != p.schedule_expression || timezone != p.schedule_expression_timezone {
        p.next_run = sched.next_after(now);
    }
    p.schedule_expression = expression;
    p.schedule_expression_timezone = timezone;
    p.last_update_time = Some(now);
    Ok(())
}

pub(crate) async fn update_plan(
    meta: &Meta,
    ctx: &RequestContext,
    input: UpdateRestoreTestingPlanInput,
) -> Result<UpdateRestoreTestingPlanOutput> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let now = meta.clock().now();
    let p = meta
        .store()
        .write(move |tx| -> Result<PlanRecord> {
            let name = input.restore_testing_plan_name;
            let mut p = find_plan(tx, &a, &r, &name)?.ok_or_else(|| plan_not_found(&name))?;
            apply_update(&mut p, input.restore_testing_plan, now)?;
            put_plan(tx, &p)?;
            Ok(p)
        })
        .await?;
    Ok(UpdateRestoreTestingPlanOutput {
        creation_time: Timestamp(p.creation_time),
        restore_testing_plan_arn: p.arn,
        restore_testing_plan_name: p.name,
        update_time: Timestamp(now),
    })
}

pub(crate) async fn list_plans(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListRestoreTestingPlansInput,
) -> Result<ListRestoreTestingPlansOutput> {
    let prefix = format!("{}:{}:", ctx.account_id, ctx.region);
    let (plans, next_token) = meta
        .store()
        .read(move |tx| {
            paging::scan_page(
                tx,
                PLANS,
                &prefix,
                input.next_token.as_deref(),
                input.max_results,
                |_, v| {
                    let p: PlanRecord = serde_json::from_slice(v)?;
                    Ok(Some(RestoreTestingPlanForList {
                        creation_time: Timestamp(p.creation_time),
                        last_execution_time: p.last_execution_time.map(Timestamp),
                        last_update_time: p.last_update_time.map(Timestamp),
                        restore_testing_plan_arn: p.arn,
                        restore_testing_plan_name: p.name,
                        schedule_expression: p.schedule_expression,
                        schedule_expression_timezone: p.schedule_expression_timezone,
                        start_window_hours: Some(p.start_window_hours),
                    }))
                },
            )
        })
        .await?;
    Ok(ListRestoreTestingPlansOutput {
        next_token,
        restore_testing_plans: plans,
    })
}

pub(crate) async fn delete_plan(
    meta: &Meta,
    ctx: &RequestContext,
    input: DeleteRestoreTestingPlanInput,
) -> Result<()> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    meta.store()
        .write(move |tx| -> Result<()> {
            let name = input.restore_testing_plan_name;
            let p = find_plan(tx, &a, &r, &name)?.ok_or_else(|| plan_not_found(&name))?;
            let n = selections_of(tx, &a, &r, &name)?.len();
            if n > 0 {
                return Err(ApiError::invalid_request(format!(
                    "Restore testing plan {name} has {n} restore testing selection(s); delete them before the plan."
                ))
                .into());
            }
            remove_plan(tx, &p)?;
            if let Some(token) = &p.creator_request_id {
                tx.delete(PLAN_TOKENS, &plan_key(&a, &r, token))?;
            }
            tags::remove_all(tx, &p.arn)?;
            Ok(())
        })
        .await
}

/// What a restore test of the recovery point would use as restore metadata: the whole point
/// into a scratch directory Coffer owns (the directory is named per restore job when a run
/// starts it), never in place.
pub(crate) async fn inferred_metadata(
    meta: &Meta,
    ctx: &RequestContext,
    input: GetRestoreTestingInferredMetadataInput,
) -> Result<GetRestoreTestingInferredMetadataOutput> {
    if let Some(acct) = &input.backup_vault_account_id
        && acct != &ctx.account_id
    {
        return Err(ApiError::invalid_parameter(format!(
            "BackupVaultAccountId {acct} is not this account ({}); Coffer tests restores of the caller's own vaults.",
            ctx.account_id
        ))
        .into());
    }
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    vaults::get(meta, &a, &r, &input.backup_vault_name).await?;
    let rp = meta
        .store()
        .read(move |tx| {
            recovery_points::find_in_vault(
                tx,
                &a,
                &r,
                &input.backup_vault_name,
                &input.recovery_point_arn,
            )
        })
        .await?;
    let mut inferred = BTreeMap::new();
    inferred.insert("inPlace".to_string(), "false".to_string());
    inferred.insert("overwrite".to_string(), "false".to_string());
    inferred.insert("ItemsToRestore".to_string(), "[]".to_string());
    if let Some(p) = &rp.source_path {
        inferred.insert("sourcePath".to_string(), p.clone());
    }
    Ok(GetRestoreTestingInferredMetadataOutput {
        inferred_metadata: inferred,
    })
}
