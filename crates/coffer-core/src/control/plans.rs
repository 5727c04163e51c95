//! Backup plans and their versions: what runs, when, into which vault and for how long.
//!
//! A plan is one record in table `plan` (key `ACCOUNT:REGION:PLANID`) that points at its current
//! version; every version ever written stays in table `plan_version` (key
//! `ACCOUNT:REGION:PLANID:NNNNNNNN`, a zero-padded sequence so versions list in order) with its
//! whole document, and `plan_version_id` maps a VersionId back to its sequence. Deleting a plan
//! only sets its DeletionDate, so old versions stay readable by VersionId.
//! `plan_request` maps a CreatorRequestId to the plan it created, which makes retries of
//! CreateBackupPlan return the same plan.
//!
//! The scheduler and the jobs use [`current_version`] and
//! [`record_execution`] rather than the API operations.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};
use coffer_cron::Schedule;

use crate::model::error::Result;
use crate::model::paging::scan_page;
use crate::model::plans::*;
use crate::model::{Meta, arn, paging, plan_rules, selections, tags};

fn create_output(plan: &PlanRecord, version: &PlanVersionRecord) -> CreateBackupPlanOutput {
    CreateBackupPlanOutput {
        advanced_backup_settings: version.document.advanced_backup_settings.clone(),
        backup_plan_arn: Some(plan.arn.clone()),
        backup_plan_id: Some(plan.id.clone()),
        creation_date: Some(Timestamp(version.creation_date)),
        version_id: Some(version.version_id.clone()),
    }
}

pub(crate) async fn create(
    meta: &Meta,
    ctx: &RequestContext,
    input: CreateBackupPlanInput,
) -> Result<CreateBackupPlanOutput> {
    let now = meta.clock().now();
    let initial_tags = input.backup_plan_tags.unwrap_or_default();
    tags::check_initial(&initial_tags)?;
    let document = plan_rules::normalise(input.backup_plan, &BTreeMap::new())?;
    let plan_id = uuid::Uuid::new_v4().to_string();
    let plan = PlanRecord {
        account: ctx.account_id.clone(),
        region: ctx.region.clone(),
        arn: arn::backup_plan(&ctx.region, &ctx.account_id, &plan_id),
        id: plan_id,
        creation_date: now,
        creator_request_id: input.creator_request_id,
        deletion_date: None,
        last_execution_date: None,
        current_sequence: 1,
        current_version_id: new_version_id(),
    };
    let version = PlanVersionRecord {
        plan_id: plan.id.clone(),
        sequence: 1,
        version_id: plan.current_version_id.clone(),
        creation_date: now,
        document,
    };
    meta.store()
        .write(move |tx| -> Result<CreateBackupPlanOutput> {
            let (account, region) = (plan.account.clone(), plan.region.clone());
            if let Some(request_id) = &plan.creator_request_id
                && let Some(id) =
                    tx.get(REQUEST_TABLE, &request_key(&account, &region, request_id))?
            {
                let id = String::from_utf8_lossy(&id).to_string();
                let first = load_plan(tx, &account, &region, &id)?;
                let first_version = load_version(tx, &first, 1)?;
                return Ok(create_output(&first, &first_version));
            }
            check_target_vaults(tx, &account, &region, &version.document)?;
            if let Some(other) = same_document(tx, &account, &region, &version.document)? {
                return Err(ApiError::already_exists(
                    "Backup plan with the same plan document already exists",
                )
                .with_member("Arn", other.arn.clone())
                .with_member(
                    "CreatorRequestId",
                    other.creator_request_id.clone().unwrap_or_default(),
                )
                .into());
            }
            tx.put(
                TABLE,
                &key(&account, &region, &plan.id),
                &serde_json::to_vec(&plan)?,
            )?;
            put_version(tx, &plan, &version)?;
            if let Some(request_id) = &plan.creator_request_id {
                tx.put(
                    REQUEST_TABLE,
                    &request_key(&account, &region, request_id),
                    plan.id.as_bytes(),
                )?;
            }
            tags::set(tx, &plan.arn, &initial_tags)?;
            Ok(create_output(&plan, &version))
        })
        .await
}

/// The next `n` runs of the plan's rules, merged in time order.
fn scheduled_runs(
    document: &BackupPlan,
    now: DateTime<Utc>,
    n: usize,
) -> Vec<ScheduledPlanExecutionMember> {
    let mut runs: Vec<(DateTime<Utc>, usize, ScheduledPlanExecutionMember)> = Vec::new();
    for (i, r) in document.rules.iter().enumerate() {
        let expression = r
            .schedule_expression
            .as_deref()
            .unwrap_or(Schedule::DEFAULT_EXPRESSION);
        let timezone = r
            .schedule_expression_timezone
            .as_deref()
            .unwrap_or(Schedule::DEFAULT_TIMEZONE);
        let Ok(schedule) = Schedule::parse(expression, timezone) else {
            continue;
        };
        let kind = if r.enable_continuous_backup == Some(true) {
            RuleExecutionType::ContinuousAndSnapshots
        } else {
            RuleExecutionType::Snapshots
        };
        for at in schedule.upcoming(now, n) {
            runs.push((
                at,
                i,
                ScheduledPlanExecutionMember {
                    execution_time: Some(Timestamp(at)),
                    rule_execution_type: Some(kind.clone()),
                    rule_id: r.rule_id.clone(),
                },
            ));
        }
    }
    runs.sort_by_key(|(at, i, _)| (*at, *i));
    runs.into_iter().take(n).map(|(_, _, m)| m).collect()
}

pub(crate) async fn get(
    meta: &Meta,
    ctx: &RequestContext,
    input: GetBackupPlanInput,
) -> Result<GetBackupPlanOutput> {
    check_plan_id(&input.backup_plan_id)?;
    let now = meta.clock().now();
    let preview = input.max_scheduled_runs_preview.unwrap_or(0).clamp(0, 10) as usize;
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    let (plan, version) = meta
        .store()
        .read(move |tx| -> Result<(PlanRecord, PlanVersionRecord)> {
            let plan = load_plan(tx, &account, &region, &input.backup_plan_id)?;
            let sequence = match &input.version_id {
                None if plan.deletion_date.is_some() => {
                    return Err(not_found(&input.backup_plan_id).into());
                }
                None => plan.current_sequence,
                Some(v) => {
                    let k = version_id_key(&account, &region, &plan.id, v);
                    let Some(s) = tx.get(VERSION_ID_TABLE, &k)? else {
                        return Err(ApiError::not_found(format!(
                            "Version {v} of backup plan {} does not exist.",
                            plan.id
                        ))
                        .into());
                    };
                    String::from_utf8_lossy(&s)
                        .parse::<u32>()
                        .map_err(|e| ApiError::internal(format!("plan version index {k}: {e}")))?
                }
            };
            let version = load_version(tx, &plan, sequence)?;
            Ok((plan, version))
        })
        .await?;
    let previewed = preview > 0 && plan.deletion_date.is_none();
    let scheduled_runs_preview = if previewed {
        // Older versions no longer run: only the current one has upcoming runs.
        Some(if version.sequence == plan.current_sequence {
            scheduled_runs(&version.document, now, preview)
        } else {
            Vec::new()
        })
    } else {
        None
    };
    Ok(GetBackupPlanOutput {
        advanced_backup_settings: version.document.advanced_backup_settings.clone(),
        backup_plan: Some(version.document),
        backup_plan_arn: Some(plan.arn),
        backup_plan_id: Some(plan.id),
        creation_date: Some(Timestamp(version.creation_date)),
        creator_request_id: plan.creator_request_id,
        deletion_date: plan.deletion_date.map(Timestamp),
        last_execution_date: plan.last_execution_date.map(Timestamp),
        scheduled_runs_preview,
        version_id: Some(version.version_id),
    })
}

pub(crate) async fn update(
    meta: &Meta,
    ctx: &RequestContext,
    input: UpdateBackupPlanInput,
) -> Result<UpdateBackupPlanOutput> {
    check_plan_id(&input.backup_plan_id)?;
    let now = meta.clock().now();
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    let version_id = new_version_id();
    meta.store()
        .write(move |tx| -> Result<UpdateBackupPlanOutput> {
            let mut plan = load_active(tx, &account, &region, &input.backup_plan_id)?;
            let current = load_version(tx, &plan, plan.current_sequence)?;
            let previous_rule_ids = current
                .document
                .rules
                .iter()
                .filter_map(|r| Some((r.rule_name.clone(), r.rule_id.clone()?)))
                .collect();
            let document = plan_rules::normalise(input.backup_plan, &previous_rule_ids)?;
            check_target_vaults(tx, &account, &region, &document)?;
            let version = PlanVersionRecord {
                plan_id: plan.id.clone(),
                sequence: plan.current_sequence.checked_add(1).ok_or_else(|| {
                    ApiError::limit_exceeded(format!(
                        "Backup plan {} has reached the maximum number of versions.",
                        plan.id
                    ))
                })?,
                version_id,
                creation_date: now,
                document,
            };
            plan.current_sequence = version.sequence;
            plan.current_version_id = version.version_id.clone();
            tx.put(
                TABLE,
                &key(&account, &region, &plan.id),
                &serde_json::to_vec(&plan)?,
            )?;
            put_version(tx, &plan, &version)?;
            Ok(UpdateBackupPlanOutput {
                advanced_backup_settings: version.document.advanced_backup_settings.clone(),
                backup_plan_arn: Some(plan.arn),
                backup_plan_id: Some(plan.id),
                creation_date: Some(Timestamp(version.creation_date)),
                scan_settings: version.document.scan_settings.clone(),
                version_id: Some(version.version_id),
            })
        })
        .await
}

pub(crate) async fn delete(
    meta: &Meta,
    ctx: &RequestContext,
    input: DeleteBackupPlanInput,
) -> Result<DeleteBackupPlanOutput> {
    check_plan_id(&input.backup_plan_id)?;
    let now = meta.clock().now();
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    meta.store()
        .write(move |tx| -> Result<DeleteBackupPlanOutput> {
            let mut plan = load_active(tx, &account, &region, &input.backup_plan_id)?;
            if selections::any(tx, &account, &region, &plan.id)? {
                return Err(ApiError::invalid_request(
                    "Related backup plan selections must be deleted prior to backup plan deletion.",
                )
                .into());
            }
            plan.deletion_date = Some(now);
            unschedule(tx, &plan)?;
            tx.put(
                TABLE,
                &key(&account, &region, &plan.id),
                &serde_json::to_vec(&plan)?,
            )?;
            tags::remove_all(tx, &plan.arn)?;
            Ok(DeleteBackupPlanOutput {
                backup_plan_arn: Some(plan.arn),
                backup_plan_id: Some(plan.id),
                deletion_date: Some(Timestamp(now)),
                version_id: Some(plan.current_version_id),
            })
        })
        .await
}

fn list_member(plan: &PlanRecord, version: &PlanVersionRecord) -> BackupPlansListMember {
    BackupPlansListMember {
        advanced_backup_settings: version.document.advanced_backup_settings.clone(),
        backup_plan_arn: Some(plan.arn.clone()),
        backup_plan_id: Some(plan.id.clone()),
        backup_plan_name: Some(version.document.backup_plan_name.clone()),
        creation_date: Some(Timestamp(version.creation_date)),
        creator_request_id: plan.creator_request_id.clone(),
        deletion_date: plan.deletion_date.map(Timestamp),
        last_execution_date: plan.last_execution_date.map(Timestamp),
        version_id: Some(version.version_id.clone()),
    }
}

pub(crate) async fn list(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListBackupPlansInput,
) -> Result<ListBackupPlansOutput> {
    let prefix = scope(&ctx.account_id, &ctx.region);
    let include_deleted = input.include_deleted == Some(true);
    let (list, next) = meta
        .store()
        .read(move |tx| {
            // Each plan's current version, read ahead for the whole batch.
            let ahead = |rows: &[(String, Vec<u8>)]| -> paging::Ahead {
                let keys = rows
                    .iter()
                    .filter_map(|(_, v)| decode::<PlanRecord>(v).ok())
                    .filter(|p| include_deleted || p.deletion_date.is_none())
                    .map(|p| version_key(&p.account, &p.region, &p.id, p.current_sequence))
                    .collect();
                vec![(VERSION_TABLE, keys)]
            };
            paging::scan_page_ahead(
                tx,
                TABLE,
                &prefix,
                &paging::KeyRange::default(),
                input.next_token.as_deref(),
                input.max_results,
                ahead,
                |tx, v| {
                    let plan: PlanRecord = decode(v)?;
                    if plan.deletion_date.is_some() && !include_deleted {
                        return Ok(None);
                    }
                    let version = load_version(tx, &plan, plan.current_sequence)?;
                    Ok(Some(list_member(&plan, &version)))
                },
            )
        })
        .await?;
    Ok(ListBackupPlansOutput {
        backup_plans_list: Some(list),
        next_token: next,
    })
}

pub(crate) async fn list_versions(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListBackupPlanVersionsInput,
) -> Result<ListBackupPlanVersionsOutput> {
    check_plan_id(&input.backup_plan_id)?;
    let prefix = version_prefix(&ctx.account_id, &ctx.region, &input.backup_plan_id);
    if let Some(t) = &input.next_token {
        paging::decode(t, &prefix)?;
    }
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    let (list, next) = meta
        .store()
        .read(move |tx| {
            let plan = load_plan(tx, &account, &region, &input.backup_plan_id)?;
            scan_page(
                tx,
                VERSION_TABLE,
                &prefix,
                input.next_token.as_deref(),
                input.max_results,
                |_, v| Ok(Some(list_member(&plan, &decode(v)?))),
            )
        })
        .await?;
    Ok(ListBackupPlanVersionsOutput {
        backup_plan_versions_list: Some(list),
        next_token: next,
    })
}

/// The current document of an active plan (ExportBackupPlanTemplate).
pub(crate) async fn current_document(
    meta: &Meta,
    ctx: &RequestContext,
    plan_id: &str,
) -> Result<BackupPlan> {
    check_plan_id(plan_id)?;
    let (account, region, plan_id) = (
        ctx.account_id.clone(),
        ctx.region.clone(),
        plan_id.to_string(),
    );
    meta.store()
        .read(move |tx| -> Result<BackupPlan> {
            let plan = load_active(tx, &account, &region, &plan_id)?;
            Ok(load_version(tx, &plan, plan.current_sequence)?.document)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Clock;
    use coffer_store::StoreHandle;

    async fn meta(dir: &tempfile::TempDir) -> crate::model::Meta {
        let store = StoreHandle::open(dir.path().join("meta.db").to_str().unwrap()).unwrap();
        crate::model::Meta::new(store, Clock::system())
    }

    #[tokio::test]
    async fn the_scheduler_sees_active_plans_and_jobs_record_executions() {
        let dir = tempfile::tempdir().unwrap();
        let c = meta(&dir).await;
        let ctx = RequestContext::new("111122223333", "eu-west-1");
        crate::control::vaults::create(
            &c,
            &ctx,
            CreateBackupVaultInput {
                backup_vault_name: "v1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let mut ids = Vec::new();
        for name in ["a", "b"] {
            let out = create(
                &c,
                &ctx,
                CreateBackupPlanInput {
                    backup_plan: BackupPlanInput {
                        backup_plan_name: name.into(),
                        rules: vec![BackupRuleInput {
                            rule_name: "r".into(),
                            target_backup_vault_name: "v1".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            ids.push(out.backup_plan_id.unwrap());
        }
        delete(
            &c,
            &ctx,
            DeleteBackupPlanInput {
                backup_plan_id: ids[1].clone(),
            },
        )
        .await
        .unwrap();
        let at = Utc::now();
        let id = ids[0].clone();
        let (active, current, gone, queued) = c
            .store()
            .write(move |tx| -> Result<_> {
                record_execution(tx, "111122223333", "eu-west-1", &id, at)?;
                let active = active_plans_page(tx, None, 100)?.0;
                let queued = tx.scan(crate::model::due::SCHED_DUE, "", None, 100)?;
                let current = current_version(tx, "111122223333", "eu-west-1", &id)?;
                let gone = current_version(tx, "111122223333", "eu-west-1", "nope")?;
                Ok((active, current, gone, queued))
            })
            .await
            .unwrap();
        assert_eq!(active.len(), 1);
        // Only the plan left has its rule on the scheduler's queue.
        assert_eq!(queued.len(), 1, "{queued:?}");
        let rule_id = active[0].version.document.rules[0].rule_id.clone().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&queued[0].1),
            format!("111122223333:eu-west-1:{}:{rule_id}", ids[0])
        );
        assert_eq!(active[0].plan.id, ids[0]);
        assert_eq!(active[0].plan.last_execution_date, Some(at));
        assert_eq!(active[0].version.document.rules[0].rule_name, "r");
        assert_eq!(current.unwrap().plan.id, ids[0]);
        assert!(gone.is_none());
    }

    fn doc(name: &str, window: i64) -> BackupPlanInput {
        BackupPlanInput {
            backup_plan_name: name.into(),
            rules: vec![BackupRuleInput {
                rule_name: "r".into(),
                target_backup_vault_name: "v1".into(),
                start_window_minutes: Some(window),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    async fn create_doc(c: &Meta, ctx: &RequestContext, d: BackupPlanInput) -> Result<String> {
        let input = CreateBackupPlanInput {
            backup_plan: d,
            ..Default::default()
        };
        Ok(create(c, ctx, input).await?.backup_plan_id.unwrap())
    }

    fn is_duplicate(r: Result<String>) -> bool {
        matches!(r, Err(e) if e.0.code() == "AlreadyExistsException")
    }

    #[tokio::test]
    async fn duplicate_documents_are_found_by_the_document_index_and_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let c = meta(&dir).await;
        let ctx = RequestContext::new("111122223333", "eu-west-1");
        let v = CreateBackupVaultInput {
            backup_vault_name: "v1".into(),
            ..Default::default()
        };
        crate::control::vaults::create(&c, &ctx, v).await.unwrap();
        // A new store: the scheduler's first start records the (empty) index as built.
        c.store()
            .write(|tx| crate::model::due::backfilled(tx, DOC_BUILT, Utc::now()))
            .await
            .unwrap();
        let a = create_doc(&c, &ctx, doc("a", 60)).await.unwrap();
        assert!(is_duplicate(create_doc(&c, &ctx, doc("a", 60)).await));
        // A's document changes: its old document is free, its new one is taken.
        let input = UpdateBackupPlanInput {
            backup_plan_id: a.clone(),
            backup_plan: doc("a", 120),
        };
        update(&c, &ctx, input).await.unwrap();
        let b = create_doc(&c, &ctx, doc("a", 60)).await.unwrap();
        assert!(is_duplicate(create_doc(&c, &ctx, doc("a", 120)).await));
        // Another account or region never collides.
        let other = RequestContext::new("111122223333", "us-west-2");
        let v = CreateBackupVaultInput {
            backup_vault_name: "v1".into(),
            ..Default::default()
        };
        crate::control::vaults::create(&c, &other, v).await.unwrap();
        create_doc(&c, &other, doc("a", 120)).await.unwrap();
        // A deleted plan's document is free again.
        let input = DeleteBackupPlanInput {
            backup_plan_id: a.clone(),
        };
        delete(&c, &ctx, input).await.unwrap();
        let a2 = create_doc(&c, &ctx, doc("a", 120)).await.unwrap();
        // One entry per active plan, each under its current document.
        let entries = c
            .store()
            .read(|tx| tx.scan(DOC_TABLE, "", None, 100))
            .await
            .unwrap();
        let mut ids: Vec<String> = entries
            .iter()
            .filter(|(k, _)| k.starts_with("111122223333:eu-west-1:"))
            .map(|(k, _)| k.rsplit(':').next().unwrap().to_string())
            .collect();
        ids.sort();
        let mut want = vec![b.clone(), a2.clone()];
        want.sort();
        assert_eq!(ids, want, "{entries:?}");
        // A store whose index is not built yet reads every plan, with the same answers.
        c.store()
            .write(move |tx| {
                tx.delete(crate::model::due::BACKFILL, DOC_BUILT)?;
                for (k, _) in entries.iter() {
                    tx.delete(DOC_TABLE, k)?;
                }
                Ok::<_, coffer_store::StoreError>(())
            })
            .await
            .unwrap();
        assert!(is_duplicate(create_doc(&c, &ctx, doc("a", 60)).await));
        assert!(is_duplicate(create_doc(&c, &ctx, doc("a", 120)).await));
    }
}
