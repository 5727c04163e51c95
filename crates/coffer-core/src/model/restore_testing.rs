//! Restore testing: plans that restore recovery points on a schedule and check the result.
//!
//! A restore testing plan (table `rt_plan`, key `ACCOUNT:REGION:NAME`) has a schedule, a start
//! window and a RecoveryPointSelection (how to pick a recovery point per resource); its
//! selections (table `rt_selection`, key `ACCOUNT:REGION:PLAN:SELECTION`) say which protected
//! resources it tests, with which role, restore metadata overrides and validation window.
//! CreatorRequestId makes creation idempotent (`rt_plan_token`, `rt_selection_token`).
//!
//! Each scheduled run is claimed once (`rt_run`, key `ACCOUNT:REGION:PLAN:TIME`, with
//! `insert_new`; pruned after the history retention like the plans' firings) in the transaction that moves the plan's next run on and creates the run's
//! restore jobs: one per selected resource that has a recovery point the plan's selection
//! accepts, restoring into a scratch directory Coffer owns, CreatedBy naming the plan. Each
//! such job has a [`TestRecord`] (`rt_test`, keyed like the job) until its scratch data is
//! deleted: at once when the job did not complete or the selection has no validation window,
//! otherwise when the window ends (see docs/restore-testing.md).
//!
//! Each plan's next run is also an entry of the queue `rt_due` (key `TIME:ACCOUNT:REGION:NAME`,
//! `model::due`), kept by [`put_plan`] and [`remove_plan`], so the scheduler's pass reads the
//! plans that are due and not every plan.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use coffer_api::ApiError;
use coffer_api::types::*;
use coffer_cron::Schedule;
use coffer_store::Txn;
use serde::{Deserialize, Serialize};

use crate::model::due;
use crate::model::error::Result;
use crate::model::inventory::{Inventory, Resource, SUPPORTED_TYPES};
use crate::model::jobs::{JobKind, JobRecord, enqueue};
use crate::model::paging::scan_all;
use crate::model::recovery_points::{self, RecoveryPointRecord};
use crate::model::states::RecoveryPointStatus;

pub(crate) const PLANS: &str = "rt_plan";
pub(crate) const SELECTIONS: &str = "rt_selection";
pub(crate) const PLAN_TOKENS: &str = "rt_plan_token";
pub(crate) const SELECTION_TOKENS: &str = "rt_selection_token";
/// Claimed runs: key `ACCOUNT:REGION:PLAN:SCHEDULED-TIME`.
pub(crate) const RUNS: &str = "rt_run";
/// The restore tests whose scratch data is not deleted yet: key `ACCOUNT:REGION:JOBID`.
pub(crate) const TESTS: &str = "rt_test";

/// Enters a run claim written before the claims were pruned, by the scheduled time its key
/// ends with (`ACCOUNT:REGION:PLAN:TIME`; neither the account, the region nor a plan name
/// holds a `:`).
pub(crate) fn enter_run(tx: &mut dyn Txn, key: &str) -> Result<()> {
    if let Some(time) = key.splitn(4, ':').nth(3)
        && let Ok(at) = DateTime::parse_from_rfc3339(time)
    {
        let claim = (RUNS.to_string(), key.to_string());
        crate::model::history::record(tx, at.with_timezone(&Utc), &[claim])?;
    }
    Ok(())
}

pub(crate) const DEFAULT_SELECTION_WINDOW_DAYS: i32 = 30;
pub(crate) const MAX_SELECTION_WINDOW_DAYS: i32 = 365;
pub(crate) const DEFAULT_START_WINDOW_HOURS: i32 = 24;
pub(crate) const MAX_WINDOW_HOURS: i32 = 168;
/// AWS's quota of selections per restore testing plan.
pub(crate) const MAX_SELECTIONS_PER_PLAN: usize = 30;
/// Restore metadata keys a selection may not override: a restore test always restores the
/// whole recovery point into its scratch directory.
pub(crate) const RESERVED_METADATA: &[&str] =
    &["targetPath", "inPlace", "overwrite", "ItemsToRestore"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PlanRecord {
    pub name: String,
    pub arn: String,
    pub account: String,
    pub region: String,
    pub creator_request_id: Option<String>,
    pub creation_time: DateTime<Utc>,
    pub last_update_time: Option<DateTime<Utc>>,
    pub last_execution_time: Option<DateTime<Utc>>,
    pub schedule_expression: String,
    pub schedule_expression_timezone: Option<String>,
    pub start_window_hours: i32,
    /// As given, with AWS's defaults filled in.
    pub selection: RestoreTestingRecoveryPointSelection,
    /// The next scheduled run not yet claimed (`None`: the schedule never runs again).
    pub next_run: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SelectionRecord {
    pub plan_name: String,
    pub name: String,
    pub account: String,
    pub region: String,
    pub creator_request_id: Option<String>,
    pub creation_time: DateTime<Utc>,
    pub last_update_time: Option<DateTime<Utc>>,
    pub iam_role_arn: String,
    pub protected_resource_type: String,
    pub protected_resource_arns: Vec<String>,
    pub protected_resource_conditions: Option<ProtectedResourceConditions>,
    pub restore_metadata_overrides: BTreeMap<String, String>,
    pub validation_window_hours: i32,
}

/// A restore test whose scratch data is not deleted yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TestRecord {
    pub job_key: String,
    pub plan_arn: String,
    pub plan_name: String,
    pub selection_name: String,
    pub scratch: PathBuf,
    pub validation_window_hours: i32,
}

pub(crate) fn plan_key(account: &str, region: &str, name: &str) -> String {
    format!("{account}:{region}:{name}")
}

pub(crate) fn selection_key(account: &str, region: &str, plan: &str, name: &str) -> String {
    format!("{account}:{region}:{plan}:{name}")
}

/// `arn:aws:backup:REGION:ACCOUNT:restore-testing-plan:NAME-SUFFIX`, as AWS names them.
pub(crate) fn plan_arn(region: &str, account: &str, name: &str) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "arn:aws:backup:{region}:{account}:restore-testing-plan:{name}-{}",
        &suffix[..8]
    )
}

/// AWS's rule for plan and selection names: 1 to 50 letters, digits and underscores.
pub(crate) fn check_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 50
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        return Ok(());
    }
    Err(ApiError::invalid_parameter(format!(
        "{field} '{name}' is not valid: use 1 to 50 letters, digits and underscores."
    ))
    .into())
}

fn check_hours(field: &str, v: i32, min: i32) -> Result<()> {
    if (min..=MAX_WINDOW_HOURS).contains(&v) {
        return Ok(());
    }
    Err(ApiError::invalid_parameter(format!(
        "{field} must be between {min} and {MAX_WINDOW_HOURS} hours; got {v}."
    ))
    .into())
}

pub(crate) fn start_window(v: Option<i32>) -> Result<i32> {
    let v = v.unwrap_or(DEFAULT_START_WINDOW_HOURS);
    check_hours("StartWindowHours", v, 1)?;
    Ok(v)
}

pub(crate) fn validation_window(v: Option<i32>) -> Result<i32> {
    let v = v.unwrap_or(0);
    check_hours("ValidationWindowHours", v, 0)?;
    Ok(v)
}

/// Parses a plan's schedule (AWS Backup's cron dialect, in the plan's time zone, UTC when
/// none is given).
pub(crate) fn schedule(expression: &str, timezone: Option<&str>) -> Result<Schedule> {
    Schedule::parse(expression, timezone.unwrap_or(Schedule::DEFAULT_TIMEZONE)).map_err(|e| {
        ApiError::invalid_parameter(format!("ScheduleExpression is not valid: {e}")).into()
    })
}

/// The plan's RecoveryPointSelection checked, with AWS's defaults filled in (what Get returns).
pub(crate) fn recovery_point_selection(
    s: RestoreTestingRecoveryPointSelection,
) -> Result<RestoreTestingRecoveryPointSelection> {
    let days = s
        .selection_window_days
        .unwrap_or(DEFAULT_SELECTION_WINDOW_DAYS);
    if !(1..=MAX_SELECTION_WINDOW_DAYS).contains(&days) {
        return Err(ApiError::invalid_parameter(format!(
            "RecoveryPointSelection.SelectionWindowDays must be between 1 and {MAX_SELECTION_WINDOW_DAYS}; got {days}."
        ))
        .into());
    }
    let include = s.include_vaults.unwrap_or_default();
    if include.is_empty() {
        return Err(ApiError::invalid_parameter(
            "RecoveryPointSelection.IncludeVaults must name at least one vault ARN, or \"*\" for every vault.",
        )
        .into());
    }
    let types = s.recovery_point_types.unwrap_or_default();
    if types.is_empty() {
        return Err(ApiError::invalid_parameter(
            "RecoveryPointSelection.RecoveryPointTypes must list SNAPSHOT, CONTINUOUS or both.",
        )
        .into());
    }
    Ok(RestoreTestingRecoveryPointSelection {
        algorithm: Some(s.algorithm.ok_or_else(|| {
            ApiError::invalid_parameter(
                "RecoveryPointSelection.Algorithm is required: LATEST_WITHIN_WINDOW or RANDOM_WITHIN_WINDOW.",
            )
        })?),
        exclude_vaults: Some(s.exclude_vaults.unwrap_or_default()),
        include_vaults: Some(include),
        recovery_point_types: Some(types),
        selection_window_days: Some(days),
    })
}

/// Checks what selects a selection's resources: either ProtectedResourceArns (`["*"]` for
/// every resource of the type) or ProtectedResourceConditions, not both.
pub(crate) fn check_resources(
    resource_type: &str,
    arns: &[String],
    conditions: Option<&ProtectedResourceConditions>,
) -> Result<()> {
    if !SUPPORTED_TYPES.iter().any(|(t, _)| *t == resource_type) {
        let known: Vec<&str> = SUPPORTED_TYPES.iter().map(|(t, _)| *t).collect();
        return Err(ApiError::invalid_parameter(format!(
            "ProtectedResourceType '{resource_type}' is not a type Coffer can restore; use one of {known:?}."
        ))
        .into());
    }
    let has_conditions = conditions.is_some_and(|c| {
        c.string_equals.as_ref().is_some_and(|v| !v.is_empty())
            || c.string_not_equals.as_ref().is_some_and(|v| !v.is_empty())
    });
    match (arns.is_empty(), has_conditions) {
        (false, true) => Err(ApiError::invalid_parameter(
            "Give either ProtectedResourceArns or ProtectedResourceConditions, not both.",
        )
        .into()),
        (true, false) => Err(ApiError::invalid_parameter(
            "Give ProtectedResourceArns (a list of resource ARNs, or [\"*\"] for every resource of the type) or ProtectedResourceConditions.",
        )
        .into()),
        _ => Ok(()),
    }
}

pub(crate) fn check_overrides(overrides: &BTreeMap<String, String>) -> Result<()> {
    if let Some(k) = RESERVED_METADATA
        .iter()
        .find(|k| overrides.contains_key(**k))
    {
        return Err(ApiError::invalid_parameter(format!(
            "RestoreMetadataOverrides may not set '{k}': a restore test always restores the whole recovery point into a scratch directory Coffer owns."
        ))
        .into());
    }
    Ok(())
}

pub(crate) fn find_plan(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    name: &str,
) -> Result<Option<PlanRecord>> {
    Ok(match tx.get(PLANS, &plan_key(account, region, name))? {
        Some(v) => Some(serde_json::from_slice(&v)?),
        None => None,
    })
}

/// The queue of the plans' next runs.
pub(crate) const DUE: &str = "rt_due";

/// Writes plan `p` and moves its entry in the queue [`DUE`] to its next run.
pub(crate) fn put_plan(tx: &mut dyn Txn, p: &PlanRecord) -> Result<()> {
    let key = plan_key(&p.account, &p.region, &p.name);
    if let Some(old) = tx.get(PLANS, &key)? {
        let old: PlanRecord = serde_json::from_slice(&old)?;
        if let Some(at) = old.next_run.filter(|t| Some(*t) != p.next_run) {
            tx.delete(DUE, &due::due_key(at, &key))?;
        }
    }
    tx.put(PLANS, &key, &serde_json::to_vec(p)?)?;
    queue_plan(tx, p)
}

/// Puts plan `p`'s next run on the queue [`DUE`] (building the queue of an older store).
pub(crate) fn queue_plan(tx: &mut dyn Txn, p: &PlanRecord) -> Result<()> {
    let key = plan_key(&p.account, &p.region, &p.name);
    if let Some(at) = p.next_run {
        tx.put(DUE, &due::due_key(at, &key), key.as_bytes())?;
    }
    Ok(())
}

/// Removes plan `p` and its queue entry.
pub(crate) fn remove_plan(tx: &mut dyn Txn, p: &PlanRecord) -> Result<()> {
    let key = plan_key(&p.account, &p.region, &p.name);
    if let Some(at) = p.next_run {
        tx.delete(DUE, &due::due_key(at, &key))?;
    }
    tx.delete(PLANS, &key)?;
    Ok(())
}

pub(crate) fn find_selection(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    plan: &str,
    name: &str,
) -> Result<Option<SelectionRecord>> {
    Ok(
        match tx.get(SELECTIONS, &selection_key(account, region, plan, name))? {
            Some(v) => Some(serde_json::from_slice(&v)?),
            None => None,
        },
    )
}

pub(crate) fn put_selection(tx: &mut dyn Txn, s: &SelectionRecord) -> Result<()> {
    tx.put(
        SELECTIONS,
        &selection_key(&s.account, &s.region, &s.plan_name, &s.name),
        &serde_json::to_vec(s)?,
    )?;
    Ok(())
}

pub(crate) fn selections_of(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    plan: &str,
) -> Result<Vec<SelectionRecord>> {
    scan_all(tx, SELECTIONS, &format!("{account}:{region}:{plan}:"))?
        .into_iter()
        .map(|(_, v)| Ok(serde_json::from_slice(&v)?))
        .collect()
}

/// The plan whose ARN is `arn`, in the scope.
pub(crate) fn plan_by_arn(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    arn: &str,
) -> Result<Option<PlanRecord>> {
    let name = arn
        .rsplit_once(":restore-testing-plan:")
        .and_then(|(_, rest)| rest.rsplit_once('-'))
        .map(|(name, _)| name.to_string());
    let Some(name) = name else {
        return Ok(None);
    };
    Ok(find_plan(tx, account, region, &name)?.filter(|p| p.arn == arn))
}

/// Whether `pattern` (a vault ARN, `*` for any, or ending in `*`) matches `vault_arn`.
fn vault_matches(pattern: &str, vault_arn: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => vault_arn.starts_with(prefix),
        None => pattern == vault_arn,
    }
}

/// Whether the plan's selection accepts `rp` for a run at `at`.
fn accepts(
    s: &RestoreTestingRecoveryPointSelection,
    rp: &RecoveryPointRecord,
    at: DateTime<Utc>,
) -> bool {
    let days = s
        .selection_window_days
        .unwrap_or(DEFAULT_SELECTION_WINDOW_DAYS);
    let in_window = rp.creation_date <= at && rp.creation_date >= at - Duration::days(days.into());
    let included = s
        .include_vaults
        .iter()
        .flatten()
        .any(|p| vault_matches(p, &rp.vault_arn));
    let excluded = s
        .exclude_vaults
        .iter()
        .flatten()
        .any(|p| vault_matches(p, &rp.vault_arn));
    // A continuous recovery point (of a PostgreSQL database) is CONTINUOUS; any other SNAPSHOT.
    let kind = if rp.continuous.is_some() {
        RestoreTestingRecoveryPointType::Continuous
    } else {
        RestoreTestingRecoveryPointType::Snapshot
    };
    let of_kind = s.recovery_point_types.iter().flatten().any(|t| *t == kind);
    in_window && included && !excluded && of_kind && rp.status == RecoveryPointStatus::Completed
}

/// The recovery point of `resource_arn` the plan's selection picks for a run at `at`, if any
/// (the recovery point indexes are built: `recovery_points::build_indexes`).
pub(crate) fn pick_point(
    tx: &mut dyn Txn,
    plan: &PlanRecord,
    resource_arn: &str,
    at: DateTime<Utc>,
) -> Result<Option<RecoveryPointRecord>> {
    // The resource's points created within the selection window, from its index (newest
    // first), never the scope's other points.
    let days = plan
        .selection
        .selection_window_days
        .unwrap_or(DEFAULT_SELECTION_WINDOW_DAYS);
    let window = (Some(at - Duration::days(days.into())), Some(at));
    let prefix = recovery_points::by_resource_prefix(&plan.account, &plan.region, resource_arn);
    let mut candidates: Vec<RecoveryPointRecord> =
        recovery_points::created_within(tx, recovery_points::BY_RESOURCE, &prefix, window)?
            .into_iter()
            .filter(|rp| accepts(&plan.selection, rp, at))
            .collect();
    candidates.sort_by(|a, b| (a.creation_date, &a.id).cmp(&(b.creation_date, &b.id)));
    let random = plan.selection.algorithm
        == Some(RestoreTestingRecoveryPointSelectionAlgorithm::RandomWithinWindow);
    if random && !candidates.is_empty() {
        let n = (uuid::Uuid::new_v4().as_u128() % candidates.len() as u128) as usize;
        return Ok(Some(candidates.swap_remove(n)));
    }
    Ok(candidates.pop())
}

/// Whether `resource` is one `sel` tests.
fn selects(sel: &SelectionRecord, resource: &Resource) -> bool {
    if resource.resource_type != sel.protected_resource_type {
        return false;
    }
    if !sel.protected_resource_arns.is_empty() {
        return sel
            .protected_resource_arns
            .iter()
            .any(|a| a == "*" || a == &resource.arn);
    }
    let Some(c) = &sel.protected_resource_conditions else {
        return false;
    };
    let has = |kv: &KeyValue| resource.tags.get(&kv.key) == Some(&kv.value);
    c.string_equals.iter().flatten().all(has) && !c.string_not_equals.iter().flatten().any(has)
}

/// One run of a plan: the restore jobs it starts (resource, job) into `scratch_root`.
pub(crate) struct RunSpec<'a> {
    pub plan: &'a PlanRecord,
    pub at: DateTime<Utc>,
    pub inventory: &'a Inventory,
    pub scratch_root: &'a Path,
}

/// Creates the restore jobs of one run, in the caller's transaction; returns their ids.
pub(crate) fn start_run(tx: &mut dyn Txn, run: &RunSpec<'_>) -> Result<Vec<String>> {
    let plan = run.plan;
    let resources = run.inventory.in_scope(&plan.account, &plan.region);
    let mut ids = Vec::new();
    for sel in selections_of(tx, &plan.account, &plan.region, &plan.name)? {
        for resource in resources.iter().filter(|r| selects(&sel, r)) {
            let Some(rp) = pick_point(tx, plan, &resource.arn, run.at)? else {
                tracing::info!(plan = %plan.name, resource = %resource.arn, "no recovery point within the restore testing plan's window");
                continue;
            };
            let job = test_job(plan, &sel, &rp, run);
            let stored = enqueue(tx, &job)?;
            let test = TestRecord {
                job_key: stored.key(),
                plan_arn: plan.arn.clone(),
                plan_name: plan.name.clone(),
                selection_name: sel.name.clone(),
                scratch: run.scratch_root.join(&stored.id),
                validation_window_hours: sel.validation_window_hours,
            };
            tx.put(TESTS, &test.job_key, &serde_json::to_vec(&test)?)?;
            ids.push(stored.id);
        }
    }
    Ok(ids)
}

/// The restore job of one restore test: the whole recovery point into its own scratch
/// directory, with the selection's overrides, to start within the plan's start window.
fn test_job(
    plan: &PlanRecord,
    sel: &SelectionRecord,
    rp: &RecoveryPointRecord,
    run: &RunSpec<'_>,
) -> JobRecord {
    let mut job = JobRecord {
        backup_size: rp.backup_size,
        iam_role_arn: Some(sel.iam_role_arn.clone()),
        resource_name: rp.resource_name.clone(),
        vault_name: rp.vault_name.clone(),
        vault_arn: rp.vault_arn.clone(),
        recovery_point_id: Some(rp.id.clone()),
        recovery_point_arn: Some(rp.arn.clone()),
        recovery_point_creation_date: Some(rp.creation_date),
        start_by: Some(run.at + Duration::hours(plan.start_window_hours.into())),
        restore_testing_plan_arn: Some(plan.arn.clone()),
        ..JobRecord::new(
            JobKind::Restore,
            &plan.account,
            &plan.region,
            run.at,
            rp.resource_arn.clone(),
            rp.resource_type.clone(),
        )
    };
    let mut metadata = sel.restore_metadata_overrides.clone();
    metadata.insert(
        "targetPath".into(),
        run.scratch_root.join(&job.id).display().to_string(),
    );
    job.metadata = metadata;
    job
}

/// When a restore test's scratch data is due for deletion: once its job ended, at once
/// unless it completed with a validation window, then when the window ends. `None` while the
/// job has not ended.
pub(crate) fn deletion_due(test: &TestRecord, job: &JobRecord) -> Option<DateTime<Utc>> {
    let ended = job.completion_date.filter(|_| job.is_terminal())?;
    if job.state == crate::model::states::JobState::Completed {
        Some(ended + Duration::hours(test.validation_window_hours.into()))
    } else {
        Some(ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::inventory::SourceKind;

    #[test]
    fn names_follow_aws_rules() {
        assert!(check_name("N", "nightly_check_2").is_ok());
        for bad in ["", "has-dash", "with space", &"x".repeat(51), "é"] {
            let e = check_name("RestoreTestingPlanName", bad).unwrap_err();
            assert!(
                e.0.message().contains("letters, digits and underscores"),
                "{bad}"
            );
        }
    }

    #[test]
    fn selection_defaults_are_filled_and_bounds_checked() {
        let s = recovery_point_selection(RestoreTestingRecoveryPointSelection {
            algorithm: Some(RestoreTestingRecoveryPointSelectionAlgorithm::LatestWithinWindow),
            include_vaults: Some(vec!["*".into()]),
            recovery_point_types: Some(vec![RestoreTestingRecoveryPointType::Snapshot]),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.selection_window_days, Some(DEFAULT_SELECTION_WINDOW_DAYS));
        assert_eq!(s.exclude_vaults, Some(vec![]));
        let too_long = RestoreTestingRecoveryPointSelection {
            selection_window_days: Some(366),
            ..s.clone()
        };
        assert!(recovery_point_selection(too_long).is_err());
        let no_vaults = RestoreTestingRecoveryPointSelection {
            include_vaults: Some(vec![]),
            ..s
        };
        assert!(recovery_point_selection(no_vaults).is_err());
        assert_eq!(start_window(None).unwrap(), 24);
        assert!(start_window(Some(0)).is_err());
        assert!(start_window(Some(169)).is_err());
        assert_eq!(validation_window(None).unwrap(), 0);
        assert!(validation_window(Some(-1)).is_err());
    }

    fn resource(arn: &str, tags: &[(&str, &str)]) -> Resource {
        Resource {
            members: Vec::new(),
            arn: arn.into(),
            account: "1".into(),
            region: "r".into(),
            resource_type: "EFS".into(),
            kind: SourceKind::Directory,
            name: "n".into(),
            source: PathBuf::from("/srv"),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            s3: None,
            database: None,
        }
    }

    #[test]
    fn selections_pick_by_arn_or_by_tags() {
        let kv = |k: &str, v: &str| KeyValue {
            key: k.into(),
            value: v.into(),
        };
        let mut sel = SelectionRecord {
            plan_name: "p".into(),
            name: "s".into(),
            account: "1".into(),
            region: "r".into(),
            creator_request_id: None,
            creation_time: Utc::now(),
            last_update_time: None,
            iam_role_arn: "role".into(),
            protected_resource_type: "EFS".into(),
            protected_resource_arns: vec!["*".into()],
            protected_resource_conditions: None,
            restore_metadata_overrides: BTreeMap::new(),
            validation_window_hours: 0,
        };
        let a = resource("arn:a", &[("team", "docs"), ("env", "prod")]);
        let b = resource("arn:b", &[("team", "docs"), ("env", "test")]);
        assert!(selects(&sel, &a) && selects(&sel, &b));
        sel.protected_resource_arns = vec!["arn:b".into()];
        assert!(!selects(&sel, &a) && selects(&sel, &b));
        sel.protected_resource_arns = vec![];
        sel.protected_resource_conditions = Some(ProtectedResourceConditions {
            string_equals: Some(vec![kv("team", "docs")]),
            string_not_equals: Some(vec![kv("env", "test")]),
        });
        assert!(selects(&sel, &a) && !selects(&sel, &b));
        sel.protected_resource_type = "EBS".into();
        assert!(!selects(&sel, &a));
    }

    #[test]
    fn vault_patterns() {
        let v = "arn:aws:backup:r:1:backup-vault:main";
        assert!(vault_matches("*", v));
        assert!(vault_matches("arn:aws:backup:r:1:backup-vault:ma*", v));
        assert!(vault_matches(v, v));
        assert!(!vault_matches("arn:aws:backup:r:1:backup-vault:other", v));
    }
}
