//! The report plan and report job operations: CreateReportPlan, DescribeReportPlan,
//! ListReportPlans, UpdateReportPlan, DeleteReportPlan, StartReportJob, DescribeReportJob and
//! ListReportJobs. The records and what a report holds are in `model::reports`; a report job is
//! carried out by `dataplane::reports`, here for StartReportJob and in the scheduler for the
//! daily runs.

use chrono::{DateTime, Utc};
use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};
use coffer_store::Txn;

use crate::dataplane::{Executor, reports as run};
use crate::model::error::Result;
use crate::model::paging::{self, scan_all};
use crate::model::reports::*;
use crate::model::{Meta, arn, frameworks, tags};

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "Report plan '{name}' does not exist in this account and region."
    ))
}

/// Checks a report setting against the caller's scope: a known template; the frameworks a
/// compliance report names exist in this account and region; reports cover the caller's
/// account.
fn check_setting(tx: &mut dyn Txn, ctx: &RequestContext, s: &ReportSetting) -> Result<()> {
    let template = Template::parse(&s.report_template)?;
    let arns = s.framework_arns.as_deref().unwrap_or_default();
    // A compliance report without FrameworkArns covers every framework of the account and
    // region at the time it is made (the model does not require them).
    if template.is_compliance() {
        let prefix = format!("{}:{}:", ctx.account_id, ctx.region);
        let known: Vec<String> = scan_all(tx, frameworks::TABLE, &prefix)?
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice::<frameworks::FrameworkRecord>(&v).ok())
            .map(|f| f.arn)
            .collect();
        if let Some(missing) = arns.iter().find(|a| !known.contains(a)) {
            return Err(ApiError::invalid_parameter(format!(
                "ReportSetting.FrameworkArns: framework {missing} does not exist in this account and region."
            ))
            .into());
        }
    }
    if let Some(other) = s.accounts.iter().flatten().find(|a| **a != ctx.account_id) {
        return Err(ApiError::invalid_parameter(format!(
            "ReportSetting.Accounts: Coffer reports on the caller's own account only ({}), not on '{other}'.",
            ctx.account_id
        ))
        .into());
    }
    if s.organization_units.as_ref().is_some_and(|o| !o.is_empty()) {
        return Err(ApiError::invalid_parameter(
            "ReportSetting.OrganizationUnits: Coffer has no AWS Organizations; leave it out.",
        )
        .into());
    }
    Ok(())
}

/// The setting as answered: as it was sent, with NumberOfFrameworks counted when
/// FrameworkArns were given. Lists that were not sent stay absent (clients such as moto's
/// suite compare the setting with what they sent; Terraform's provider reads an absent list
/// as empty, so neither sees drift).
fn shown_setting(s: &ReportSetting) -> ReportSetting {
    ReportSetting {
        accounts: s.accounts.clone(),
        number_of_frameworks: s.framework_arns.as_ref().map(|a| a.len() as i32),
        framework_arns: s.framework_arns.clone(),
        organization_units: s.organization_units.clone(),
        regions: s.regions.clone(),
        report_template: s.report_template.clone(),
    }
}

fn shown_plan(p: &ReportPlanRecord) -> ReportPlan {
    ReportPlan {
        creation_time: Some(Timestamp(p.creation_time)),
        deployment_status: Some("COMPLETED".into()),
        last_attempted_execution_time: p.last_attempted.map(Timestamp),
        last_successful_execution_time: p.last_successful.map(Timestamp),
        report_delivery_channel: Some(p.channel.clone()),
        report_plan_arn: Some(p.arn.clone()),
        report_plan_description: p.description.clone(),
        report_plan_name: Some(p.name.clone()),
        report_setting: Some(shown_setting(&p.setting)),
    }
}

/// The name a repeated IdempotencyToken created a plan under, if that plan still exists.
fn by_token(
    tx: &mut dyn Txn,
    ctx: &RequestContext,
    token: Option<&str>,
) -> Result<Option<ReportPlanRecord>> {
    let Some(t) = token else { return Ok(None) };
    let Some(name) = tx.get(PLAN_TOKENS, &key(&ctx.account_id, &ctx.region, t))? else {
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
    plane: &Executor,
    ctx: &RequestContext,
    input: CreateReportPlanInput,
) -> Result<CreateReportPlanOutput> {
    check_name("ReportPlanName", &input.report_plan_name)?;
    let initial_tags = input.report_plan_tags.clone().unwrap_or_default();
    tags::check_initial(&initial_tags)?;
    let mut channel = input.report_delivery_channel;
    check_channel(&mut channel, plane.report_buckets())?;
    let now = plane.clock().now();
    let name = input.report_plan_name;
    let plan = ReportPlanRecord {
        account: ctx.account_id.clone(),
        region: ctx.region.clone(),
        arn: arn::report_plan(
            &ctx.region,
            &ctx.account_id,
            &name,
            &uuid::Uuid::new_v4().to_string(),
        ),
        name,
        description: input.report_plan_description,
        channel,
        setting: input.report_setting,
        creation_time: now,
        last_attempted: None,
        last_successful: None,
        next_run: first_run(now),
    };
    let (ctx, token) = (ctx.clone(), input.idempotency_token);
    let stored = plane
        .store()
        .write(move |tx| -> Result<ReportPlanRecord> {
            if let Some(existing) = by_token(tx, &ctx, token.as_deref())? {
                return Ok(existing);
            }
            if find(tx, &ctx.account_id, &ctx.region, &plan.name)?.is_some() {
                return Err(ApiError::already_exists(format!(
                    "A report plan named '{}' already exists in this account and region.",
                    plan.name
                ))
                .into());
            }
            check_setting(tx, &ctx, &plan.setting)?;
            let count = scan_all(tx, PLANS, &format!("{}:{}:", ctx.account_id, ctx.region))?.len();
            if count >= MAX_PLANS {
                return Err(ApiError::limit_exceeded(format!(
                    "This account already has {MAX_PLANS} report plans in this region, the most it may have; delete one first."
                ))
                .into());
            }
            save(tx, &plan, None)?;
            if let Some(t) = &token {
                tx.put(PLAN_TOKENS, &key(&ctx.account_id, &ctx.region, t), plan.name.as_bytes())?;
            }
            tags::set(tx, &plan.arn, &initial_tags)?;
            Ok(plan)
        })
        .await?;
    Ok(CreateReportPlanOutput {
        creation_time: Some(Timestamp(stored.creation_time)),
        report_plan_arn: Some(stored.arn),
        report_plan_name: Some(stored.name),
    })
}

async fn load(meta: &Meta, ctx: &RequestContext, name: String) -> Result<ReportPlanRecord> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    meta.store()
        .read(move |tx| -> Result<ReportPlanRecord> {
            find(tx, &a, &r, &name)?.ok_or_else(|| not_found(&name).into())
        })
        .await
}

pub(crate) async fn describe(
    meta: &Meta,
    ctx: &RequestContext,
    input: DescribeReportPlanInput,
) -> Result<DescribeReportPlanOutput> {
    let plan = load(meta, ctx, input.report_plan_name).await?;
    Ok(DescribeReportPlanOutput {
        report_plan: Some(shown_plan(&plan)),
    })
}

pub(crate) async fn list(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListReportPlansInput,
) -> Result<ListReportPlansOutput> {
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
                |_, v| Ok(Some(shown_plan(&serde_json::from_slice(v)?))),
            )
        })
        .await?;
    Ok(ListReportPlansOutput {
        next_token,
        report_plans: Some(plans),
    })
}

pub(crate) async fn update(
    plane: &Executor,
    ctx: &RequestContext,
    input: UpdateReportPlanInput,
) -> Result<UpdateReportPlanOutput> {
    let mut channel = input.report_delivery_channel;
    if let Some(c) = channel.as_mut() {
        check_channel(c, plane.report_buckets())?;
    }
    let ctx = ctx.clone();
    let plan = plane
        .store()
        .write(move |tx| -> Result<ReportPlanRecord> {
            let name = input.report_plan_name;
            let mut plan =
                find(tx, &ctx.account_id, &ctx.region, &name)?.ok_or_else(|| not_found(&name))?;
            if let Some(s) = input.report_setting {
                check_setting(tx, &ctx, &s)?;
                plan.setting = s;
            }
            if let Some(c) = channel {
                plan.channel = c;
            }
            if input.report_plan_description.is_some() {
                plan.description = input.report_plan_description;
            }
            save(tx, &plan, Some(plan.next_run))?;
            Ok(plan)
        })
        .await?;
    Ok(UpdateReportPlanOutput {
        creation_time: Some(Timestamp(plan.creation_time)),
        report_plan_arn: Some(plan.arn),
        report_plan_name: Some(plan.name),
    })
}

pub(crate) async fn delete(
    meta: &Meta,
    ctx: &RequestContext,
    input: DeleteReportPlanInput,
) -> Result<()> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    meta.store()
        .write(move |tx| -> Result<()> {
            let name = input.report_plan_name;
            let plan = find(tx, &a, &r, &name)?.ok_or_else(|| not_found(&name))?;
            remove(tx, &plan)?;
            tags::remove_all(tx, &plan.arn)?;
            Ok(())
        })
        .await
}

pub(crate) async fn start_job(
    plane: &Executor,
    ctx: &RequestContext,
    input: StartReportJobInput,
) -> Result<StartReportJobOutput> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let token = input.idempotency_token.clone();
    let name = input.report_plan_name;
    let (plan, earlier) = plane
        .store()
        .read(move |tx| -> Result<(ReportPlanRecord, Option<String>)> {
            let plan = find(tx, &a, &r, &name)?.ok_or_else(|| not_found(&name))?;
            let earlier = match &token {
                Some(t) => tx
                    .get(JOB_TOKENS, &key(&a, &r, t))?
                    .map(|id| String::from_utf8_lossy(&id).to_string()),
                None => None,
            };
            Ok((plan, earlier))
        })
        .await?;
    if let Some(id) = earlier {
        return Ok(StartReportJobOutput {
            report_job_id: Some(id),
        });
    }
    let now = plane.clock().now();
    let job = run::run(plane, &plan, now, input.idempotency_token).await?;
    Ok(StartReportJobOutput {
        report_job_id: Some(job.id),
    })
}

fn shown_job(j: &ReportJobRecord) -> ReportJob {
    ReportJob {
        completion_time: Some(Timestamp(j.completion_time)),
        creation_time: Some(Timestamp(j.creation_time)),
        report_destination: Some(ReportDestination {
            s3_bucket_name: Some(j.bucket.clone()),
            s3_keys: Some(j.keys.clone()),
        }),
        report_job_id: Some(j.id.clone()),
        report_plan_arn: Some(j.plan_arn.clone()),
        report_template: Some(j.template.clone()),
        status: Some(j.status.as_str().into()),
        status_message: j.status_message.clone(),
    }
}

pub(crate) async fn describe_job(
    meta: &Meta,
    ctx: &RequestContext,
    input: DescribeReportJobInput,
) -> Result<DescribeReportJobOutput> {
    let k = key(&ctx.account_id, &ctx.region, &input.report_job_id);
    let id = input.report_job_id;
    let job = meta
        .store()
        .read(move |tx| -> Result<ReportJobRecord> {
            match tx.get(JOBS, &k)? {
                Some(v) => Ok(serde_json::from_slice(&v)?),
                None => Err(ApiError::not_found(format!(
                    "Report job {id} does not exist in this account and region."
                ))
                .into()),
            }
        })
        .await?;
    Ok(DescribeReportJobOutput {
        report_job: Some(shown_job(&job)),
    })
}

const STATUSES: [&str; 4] = ["CREATED", "RUNNING", "COMPLETED", "FAILED"];

fn after(t: DateTime<Utc>, bound: Option<&Timestamp>, later: bool) -> bool {
    bound.is_none_or(|b| if later { t > b.0 } else { t < b.0 })
}

pub(crate) async fn list_jobs(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListReportJobsInput,
) -> Result<ListReportJobsOutput> {
    if let Some(s) = &input.by_status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::invalid_parameter(format!(
            "ByStatus '{s}' is not a report job status; use one of {}.",
            STATUSES.join(", ")
        ))
        .into());
    }
    let prefix = format!("{}:{}:", ctx.account_id, ctx.region);
    let rows = meta
        .store()
        .read(move |tx| Ok::<_, crate::model::error::Error>(scan_all(tx, JOBS, &prefix)?))
        .await?;
    let mut jobs = Vec::with_capacity(rows.len());
    for (_, v) in rows {
        let j: ReportJobRecord = serde_json::from_slice(&v)?;
        let keep = input
            .by_report_plan_name
            .as_ref()
            .is_none_or(|n| *n == j.plan_name)
            && input
                .by_status
                .as_ref()
                .is_none_or(|s| s == j.status.as_str())
            && after(j.creation_time, input.by_creation_after.as_ref(), true)
            && after(j.creation_time, input.by_creation_before.as_ref(), false);
        if keep {
            jobs.push(j);
        }
    }
    jobs.sort_by(|a, b| a.creation_time.cmp(&b.creation_time).then(a.id.cmp(&b.id)));
    let (page, next_token) = paging::page(
        jobs,
        |j| j.id.clone(),
        input.next_token.as_deref(),
        input.max_results,
    )?;
    Ok(ListReportJobsOutput {
        next_token,
        report_jobs: Some(page.iter().map(shown_job).collect()),
    })
}
