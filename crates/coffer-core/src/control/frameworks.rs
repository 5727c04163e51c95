//! The framework operations: CreateFramework, DescribeFramework, ListFrameworks,
//! UpdateFramework and DeleteFramework. The records, the controls AWS defines and how Coffer
//! evaluates them are in `model::frameworks`; the compliance reports that show the results are
//! report plans' (`control::reports`).

use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};
use coffer_store::Txn;

use crate::model::error::Result;
use crate::model::frameworks::*;
use crate::model::paging::{self, scan_all};
use crate::model::reports::{self, ReportPlanRecord};
use crate::model::{Meta, arn, tags};

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "Framework '{name}' does not exist in this account and region."
    ))
}

/// The framework a repeated IdempotencyToken created, if it still exists.
fn by_token(
    tx: &mut dyn Txn,
    ctx: &RequestContext,
    token: Option<&str>,
) -> Result<Option<FrameworkRecord>> {
    let Some(t) = token else { return Ok(None) };
    let Some(name) = tx.get(TOKENS, &key(&ctx.account_id, &ctx.region, t))? else {
        return Ok(None);
    };
    find(
        tx,
        &ctx.account_id,
        &ctx.region,
        &String::from_utf8_lossy(&name),
    )
}

pub(crate) async fn create(
    meta: &Meta,
    ctx: &RequestContext,
    input: CreateFrameworkInput,
) -> Result<CreateFrameworkOutput> {
    reports::check_name("FrameworkName", &input.framework_name)?;
    check_controls(&input.framework_controls)?;
    let initial_tags = input.framework_tags.clone().unwrap_or_default();
    tags::check_initial(&initial_tags)?;
    let name = input.framework_name;
    let rec = FrameworkRecord {
        account: ctx.account_id.clone(),
        region: ctx.region.clone(),
        arn: arn::framework(
            &ctx.region,
            &ctx.account_id,
            &name,
            &uuid::Uuid::new_v4().to_string(),
        ),
        name,
        description: input.framework_description,
        controls: input.framework_controls,
        creation_time: meta.clock().now(),
        idempotency_token: input.idempotency_token,
    };
    let ctx = ctx.clone();
    let stored = meta
        .store()
        .write(move |tx| -> Result<FrameworkRecord> {
            if let Some(existing) = by_token(tx, &ctx, rec.idempotency_token.as_deref())? {
                return Ok(existing);
            }
            if find(tx, &ctx.account_id, &ctx.region, &rec.name)?.is_some() {
                return Err(ApiError::already_exists(format!(
                    "A framework named '{}' already exists in this account and region.",
                    rec.name
                ))
                .into());
            }
            let prefix = format!("{}:{}:", ctx.account_id, ctx.region);
            if scan_all(tx, TABLE, &prefix)?.len() >= MAX_FRAMEWORKS {
                return Err(ApiError::limit_exceeded(format!(
                    "This account already has {MAX_FRAMEWORKS} frameworks in this region, the most it may have; delete one first."
                ))
                .into());
            }
            tx.put(TABLE, &key(&rec.account, &rec.region, &rec.name), &serde_json::to_vec(&rec)?)?;
            if let Some(t) = &rec.idempotency_token {
                tx.put(TOKENS, &key(&ctx.account_id, &ctx.region, t), rec.name.as_bytes())?;
            }
            tags::set(tx, &rec.arn, &initial_tags)?;
            Ok(rec)
        })
        .await?;
    Ok(CreateFrameworkOutput {
        framework_arn: Some(stored.arn),
        framework_name: Some(stored.name),
    })
}

/// A control as answered: its parameters and scope present even when empty.
fn shown_control(c: &FrameworkControl) -> FrameworkControl {
    let scope = c.control_scope.clone().unwrap_or_default();
    FrameworkControl {
        control_input_parameters: Some(c.control_input_parameters.clone().unwrap_or_default()),
        control_name: c.control_name.clone(),
        control_scope: Some(ControlScope {
            compliance_resource_ids: scope.compliance_resource_ids,
            compliance_resource_types: Some(scope.compliance_resource_types.unwrap_or_default()),
            tags: Some(scope.tags.unwrap_or_default()),
        }),
    }
}

async fn load(meta: &Meta, ctx: &RequestContext, name: String) -> Result<FrameworkRecord> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    meta.store()
        .read(move |tx| -> Result<FrameworkRecord> {
            find(tx, &a, &r, &name)?.ok_or_else(|| not_found(&name).into())
        })
        .await
}

pub(crate) async fn describe(
    meta: &Meta,
    ctx: &RequestContext,
    input: DescribeFrameworkInput,
) -> Result<DescribeFrameworkOutput> {
    let f = load(meta, ctx, input.framework_name).await?;
    Ok(DescribeFrameworkOutput {
        creation_time: Some(Timestamp(f.creation_time)),
        deployment_status: Some("COMPLETED".into()),
        framework_arn: Some(f.arn.clone()),
        framework_controls: Some(f.controls.iter().map(shown_control).collect()),
        framework_description: f.description.clone(),
        framework_name: Some(f.name.clone()),
        framework_status: Some("ACTIVE".into()),
        idempotency_token: f.idempotency_token.clone(),
    })
}

pub(crate) async fn list(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListFrameworksInput,
) -> Result<ListFrameworksOutput> {
    let prefix = format!("{}:{}:", ctx.account_id, ctx.region);
    let (frameworks, next_token) = meta
        .store()
        .read(move |tx| {
            paging::scan_page(
                tx,
                TABLE,
                &prefix,
                input.next_token.as_deref(),
                input.max_results,
                |_, v| {
                    let f: FrameworkRecord = serde_json::from_slice(v)?;
                    Ok(Some(Framework {
                        creation_time: Some(Timestamp(f.creation_time)),
                        deployment_status: Some("COMPLETED".into()),
                        framework_arn: Some(f.arn),
                        framework_description: f.description,
                        framework_name: Some(f.name),
                        number_of_controls: Some(f.controls.len() as i32),
                    }))
                },
            )
        })
        .await?;
    Ok(ListFrameworksOutput {
        frameworks: Some(frameworks),
        next_token,
    })
}

pub(crate) async fn update(
    meta: &Meta,
    ctx: &RequestContext,
    input: UpdateFrameworkInput,
) -> Result<UpdateFrameworkOutput> {
    if let Some(c) = &input.framework_controls {
        check_controls(c)?;
    }
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let f = meta
        .store()
        .write(move |tx| -> Result<FrameworkRecord> {
            let name = input.framework_name;
            let mut f = find(tx, &a, &r, &name)?.ok_or_else(|| not_found(&name))?;
            if let Some(c) = input.framework_controls {
                f.controls = c;
            }
            if input.framework_description.is_some() {
                f.description = input.framework_description;
            }
            tx.put(TABLE, &key(&a, &r, &f.name), &serde_json::to_vec(&f)?)?;
            Ok(f)
        })
        .await?;
    Ok(UpdateFrameworkOutput {
        creation_time: Some(Timestamp(f.creation_time)),
        framework_arn: Some(f.arn),
        framework_name: Some(f.name),
    })
}

pub(crate) async fn delete(
    meta: &Meta,
    ctx: &RequestContext,
    input: DeleteFrameworkInput,
) -> Result<()> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    meta.store()
        .write(move |tx| -> Result<()> {
            let name = input.framework_name;
            let f = find(tx, &a, &r, &name)?.ok_or_else(|| not_found(&name))?;
            for (_, v) in scan_all(tx, reports::PLANS, &format!("{a}:{r}:"))? {
                let plan: ReportPlanRecord = serde_json::from_slice(&v)?;
                if plan.setting.framework_arns.iter().flatten().any(|x| *x == f.arn) {
                    return Err(ApiError::conflict(format!(
                        "Framework '{name}' is used by report plan '{}'; remove it from that plan's FrameworkArns (or delete the plan) first.",
                        plan.name
                    ))
                    .into());
                }
            }
            tx.delete(TABLE, &key(&a, &r, &name))?;
            tags::remove_all(tx, &f.arn)?;
            Ok(())
        })
        .await
}
