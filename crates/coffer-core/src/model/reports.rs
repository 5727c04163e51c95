//! Report plans and report jobs (AWS Backup Audit Manager's reports): their records, the
//! rules their input obeys, and what a report holds.
//!
//! A report plan (table `report_plan`, key `ACCOUNT:REGION:NAME`) names a report template, the
//! formats (CSV, JSON) and a delivery channel: an S3 bucket name and key prefix. Coffer has no
//! S3 of its own to write to, so the operator maps bucket names to local directories in the
//! configuration (`[[report_buckets]]`, held here as [`ReportBuckets`]); a report is written
//! under that directory at the object key AWS would use. A report job (table `report_job`,
//! key `ACCOUNT:REGION:ID`) is recorded once, with its outcome, after its files were written
//! or failed to be, so no job is ever seen half made. Every report plan runs once every 24
//! hours on Coffer's clock; a job and its token are entered for history retention
//! (`model::history`) as they are recorded. Table `report_due` (key `DUE:ACCOUNT:REGION:NAME`, the due time
//! first so the earliest sorts first) is what the scheduler reads.
//!
//! The rows of the job reports are built here from the job records (pure functions); the
//! compliance reports' rows come from `model::frameworks`; writing the files is the data
//! plane's (`dataplane::reports`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use coffer_api::ApiError;
use coffer_api::types::{ReportDeliveryChannel, ReportSetting};
use coffer_store::Txn;
use serde::{Deserialize, Serialize};

use crate::model::error::Result;
use crate::model::frameworks::{self, Compliance, Evaluation, FrameworkRecord, State};
use crate::model::jobs::{JobKind, JobRecord};

pub(crate) const PLANS: &str = "report_plan";
/// IdempotencyToken of CreateReportPlan -> plan name: key `ACCOUNT:REGION:TOKEN`.
pub(crate) const PLAN_TOKENS: &str = "report_plan_token";
pub(crate) const JOBS: &str = "report_job";
/// IdempotencyToken of StartReportJob -> job id: key `ACCOUNT:REGION:TOKEN`.
pub(crate) const JOB_TOKENS: &str = "report_job_token";
/// The next scheduled run of each plan: key `DUE:ACCOUNT:REGION:NAME`.
pub(crate) const DUE: &str = "report_due";
/// How often a report plan runs by itself.
pub(crate) const PERIOD_HOURS: i64 = 24;
/// AWS's quota of report plans per account and region.
pub(crate) const MAX_PLANS: usize = 20;

/// The report templates Coffer builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Template {
    BackupJobs,
    CopyJobs,
    RestoreJobs,
    ControlCompliance,
    ResourceCompliance,
}

impl Template {
    pub(crate) const NAMES: &'static str = "BACKUP_JOB_REPORT, COPY_JOB_REPORT, RESTORE_JOB_REPORT, CONTROL_COMPLIANCE_REPORT, RESOURCE_COMPLIANCE_REPORT";

    pub(crate) fn parse(s: &str) -> Result<Template> {
        Ok(match s {
            "BACKUP_JOB_REPORT" => Template::BackupJobs,
            "COPY_JOB_REPORT" => Template::CopyJobs,
            "RESTORE_JOB_REPORT" => Template::RestoreJobs,
            "CONTROL_COMPLIANCE_REPORT" => Template::ControlCompliance,
            "RESOURCE_COMPLIANCE_REPORT" => Template::ResourceCompliance,
            "SCAN_JOB_REPORT" => {
                return Err(ApiError::invalid_parameter(
                    "ReportSetting.ReportTemplate SCAN_JOB_REPORT: Coffer does not build scan job reports yet (its scan jobs are read with ListScanJobs and ListScanJobSummaries). Use one of BACKUP_JOB_REPORT, COPY_JOB_REPORT, RESTORE_JOB_REPORT, CONTROL_COMPLIANCE_REPORT, RESOURCE_COMPLIANCE_REPORT.",
                )
                .into());
            }
            other => {
                return Err(ApiError::invalid_parameter(format!(
                    "ReportSetting.ReportTemplate '{other}' is not a report template; use one of {}.",
                    Template::NAMES
                ))
                .into());
            }
        })
    }

    pub(crate) fn is_compliance(self) -> bool {
        matches!(
            self,
            Template::ControlCompliance | Template::ResourceCompliance
        )
    }

    /// The job kind a job report lists.
    pub(crate) fn job_kind(self) -> Option<JobKind> {
        match self {
            Template::BackupJobs => Some(JobKind::Backup),
            Template::CopyJobs => Some(JobKind::Copy),
            Template::RestoreJobs => Some(JobKind::Restore),
            _ => None,
        }
    }
}

/// A report plan as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReportPlanRecord {
    pub account: String,
    pub region: String,
    pub name: String,
    pub arn: String,
    pub description: Option<String>,
    /// Formats filled in (`["CSV"]` when none were given).
    pub channel: ReportDeliveryChannel,
    pub setting: ReportSetting,
    pub creation_time: DateTime<Utc>,
    pub last_attempted: Option<DateTime<Utc>>,
    pub last_successful: Option<DateTime<Utc>>,
    /// When it runs by itself next.
    pub next_run: DateTime<Utc>,
}

/// Where a report job stands (AWS: CREATED | RUNNING | COMPLETED | FAILED; Coffer records a
/// job once it has ended, so only the last two are ever seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum ReportJobStatus {
    Completed,
    Failed,
}

impl ReportJobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportJobStatus::Completed => "COMPLETED",
            ReportJobStatus::Failed => "FAILED",
        }
    }
}

/// Enters a recorded report job, and the ClientToken that started it (if any), for deletion
/// once the history retention has passed since it ended. Its report files stay where they
/// were written.
pub(crate) fn enter_history(
    tx: &mut dyn Txn,
    job: &ReportJobRecord,
    token: Option<&str>,
) -> Result<()> {
    let (a, r) = (&job.account, &job.region);
    let mut items = vec![(JOBS.to_string(), key(a, r, &job.id))];
    if let Some(t) = token {
        items.push((JOB_TOKENS.to_string(), key(a, r, t)));
    }
    crate::model::history::record(tx, job.completion_time, &items)
}

/// Enters a report job recorded before report jobs were pruned (its token, not kept in the
/// record, stays).
pub(crate) fn enter_finished(tx: &mut dyn Txn, value: &[u8]) -> Result<()> {
    let job: ReportJobRecord = serde_json::from_slice(value)?;
    enter_history(tx, &job, None)
}

/// A report job as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReportJobRecord {
    pub id: String,
    pub account: String,
    pub region: String,
    pub plan_name: String,
    pub plan_arn: String,
    pub template: String,
    pub status: ReportJobStatus,
    pub status_message: Option<String>,
    pub creation_time: DateTime<Utc>,
    pub completion_time: DateTime<Utc>,
    pub bucket: String,
    pub keys: Vec<String>,
}

pub(crate) fn key(account: &str, region: &str, name: &str) -> String {
    format!("{account}:{region}:{name}")
}

/// The `report_due` key of a plan due at `at`: a fixed-width UTC time sorts as it compares.
pub(crate) fn due_key(at: DateTime<Utc>, account: &str, region: &str, name: &str) -> String {
    format!(
        "{}:{account}:{region}:{name}",
        at.format("%Y-%m-%dT%H:%M:%S%.6fZ")
    )
}

/// A new plan's first run: a day after its creation, to the microsecond (what a
/// `report_due` key keeps).
pub(crate) fn first_run(created: DateTime<Utc>) -> DateTime<Utc> {
    let t = created + Duration::hours(PERIOD_HOURS);
    t - Duration::nanoseconds(i64::from(t.timestamp_subsec_nanos() % 1000))
}

/// A report plan's name: a letter, then letters, digits and underscores, 1 to 256.
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 256;
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(format!(
            "{what} '{name}' is not valid: it must start with a letter and hold only letters, digits and underscores (1 to 256 characters)."
        ))
        .into())
    }
}

/// Loads a report plan.
pub(crate) fn find(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    name: &str,
) -> Result<Option<ReportPlanRecord>> {
    match tx.get(PLANS, &key(account, region, name))? {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

/// Writes a plan and moves its `report_due` row from `old_due` (if any) to its `next_run`.
pub(crate) fn save(
    tx: &mut dyn Txn,
    plan: &ReportPlanRecord,
    old_due: Option<DateTime<Utc>>,
) -> Result<()> {
    let (a, r, n) = (&plan.account, &plan.region, &plan.name);
    if let Some(old) = old_due {
        tx.delete(DUE, &due_key(old, a, r, n))?;
    }
    tx.put(DUE, &due_key(plan.next_run, a, r, n), b"")?;
    tx.put(PLANS, &key(a, r, n), &serde_json::to_vec(plan)?)?;
    Ok(())
}

/// Removes a plan and its schedule row.
pub(crate) fn remove(tx: &mut dyn Txn, plan: &ReportPlanRecord) -> Result<()> {
    let (a, r, n) = (&plan.account, &plan.region, &plan.name);
    tx.delete(DUE, &due_key(plan.next_run, a, r, n))?;
    tx.delete(PLANS, &key(a, r, n))?;
    Ok(())
}

/// The earliest scheduled run of any report plan, with the plan's key.
pub(crate) fn earliest_due(tx: &mut dyn Txn) -> Result<Option<(DateTime<Utc>, String)>> {
    let Some((k, _)) = tx.scan(DUE, "", None, 1)?.into_iter().next() else {
        return Ok(None);
    };
    let (time, plan_key) = k.split_at(k.find("Z:").map_or(k.len(), |i| i + 1));
    let at = DateTime::parse_from_rfc3339(time)
        .map_err(|e| ApiError::internal(format!("report_due key '{k}': {e}")))?
        .with_timezone(&Utc);
    Ok(Some((at, plan_key.trim_start_matches(':').to_string())))
}

/// The configured mapping of S3 bucket names to local directories (`[[report_buckets]]`),
/// replaceable while Coffer runs. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ReportBuckets(Arc<RwLock<Buckets>>);

#[derive(Debug, Default)]
struct Buckets {
    configured: BTreeMap<String, PathBuf>,
    /// Development mode: a bucket that is not configured is the directory of its name here.
    fallback: Option<PathBuf>,
}

/// Whether `name` follows S3's bucket naming rules (3 to 63 of lowercase letters, digits,
/// '.' and '-', starting and ending with a letter or digit, no '..'): only such a name may
/// become a directory under the fallback root.
fn is_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
}

/// One entry of the `[[report_buckets]]` list in the configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReportBucketEntry {
    /// The S3BucketName report plans name.
    pub bucket: String,
    /// The directory the bucket's objects are written under.
    pub directory: PathBuf,
}

impl ReportBuckets {
    /// Replaces the mapping.
    pub fn replace(&self, entries: &[ReportBucketEntry]) {
        let map = entries
            .iter()
            .map(|e| (e.bucket.clone(), e.directory.clone()))
            .collect();
        self.0.write().unwrap_or_else(|e| e.into_inner()).configured = map;
    }

    /// Development mode: a bucket that is not configured is `root/BUCKET` (when its name
    /// follows S3's naming rules), so report plans work without configuration, as suites
    /// written against other emulators expect.
    pub fn set_fallback(&self, root: PathBuf) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).fallback = Some(root);
    }

    /// The directory of `bucket`: the configured one, or in development mode the fallback.
    pub fn directory(&self, bucket: &str) -> Option<PathBuf> {
        let b = self.0.read().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = b.configured.get(bucket) {
            return Some(d.clone());
        }
        b.fallback
            .as_ref()
            .filter(|_| is_bucket_name(bucket))
            .map(|root| root.join(bucket))
    }
}

/// The refusal of a bucket that is not configured.
pub(crate) fn unconfigured(bucket: &str) -> String {
    format!(
        "S3 bucket '{bucket}' is not configured in Coffer: map it to a local directory with a [[report_buckets]] entry (bucket = \"{bucket}\", directory = \"/path\") in the configuration file."
    )
}

/// Checks a delivery channel (the bucket is known, the formats are CSV and/or JSON, listed
/// once each). The key prefix becomes a path under the bucket's directory, so it may not
/// climb out of it.
pub(crate) fn check_channel(c: &mut ReportDeliveryChannel, buckets: &ReportBuckets) -> Result<()> {
    if buckets.directory(&c.s3_bucket_name).is_none() {
        return Err(ApiError::invalid_parameter(format!(
            "ReportDeliveryChannel.S3BucketName: {}",
            unconfigured(&c.s3_bucket_name)
        ))
        .into());
    }
    if let Some(p) = &c.s3_key_prefix
        && (p.starts_with('/') || p.split('/').any(|s| s == ".." || s == "."))
    {
        return Err(ApiError::invalid_parameter(format!(
            "ReportDeliveryChannel.S3KeyPrefix '{p}' may not start with '/' or hold '.' or '..' segments."
        ))
        .into());
    }
    // Kept as sent (Describe answers what was given); no format means CSV when written.
    let Some(formats) = c.formats.as_mut() else {
        return Ok(());
    };
    for f in formats.iter() {
        if f != "CSV" && f != "JSON" {
            return Err(ApiError::invalid_parameter(format!(
                "ReportDeliveryChannel.Formats: '{f}' is not a report format; use CSV and/or JSON."
            ))
            .into());
        }
    }
    let mut seen = Vec::new();
    formats.retain(|f| {
        !seen.contains(f) && {
            seen.push(f.clone());
            true
        }
    });
    Ok(())
}

/// The object key of one report file, in AWS's layout:
/// `PREFIX/Backup/ACCOUNT/REGION/YYYY/MM/DD/PLAN/TEMPLATE_JOBID.EXT`.
pub(crate) fn object_key(
    plan: &ReportPlanRecord,
    job_id: &str,
    at: DateTime<Utc>,
    ext: &str,
) -> String {
    let prefix = plan
        .channel
        .s3_key_prefix
        .as_deref()
        .map(|p| p.trim_end_matches('/'))
        .filter(|p| !p.is_empty())
        .map(|p| format!("{p}/"))
        .unwrap_or_default();
    format!(
        "{prefix}Backup/{}/{}/{}/{}/{}_{job_id}.{ext}",
        plan.account,
        plan.region,
        at.format("%Y/%m/%d"),
        plan.name,
        plan.setting.report_template,
    )
}

/// The regions a report covers: ReportSetting.Regions (`*`: every region), else the plan's.
pub(crate) fn regions(plan: &ReportPlanRecord) -> Option<Vec<String>> {
    match plan.setting.regions.as_deref() {
        None | Some([]) => Some(vec![plan.region.clone()]),
        Some(list) if list.iter().any(|r| r == "*") => None,
        Some(list) => Some(list.to_vec()),
    }
}

/// A report: its columns and rows of text, the same for every format.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Report {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

impl Report {
    /// RFC 4180 CSV with a header line.
    pub(crate) fn csv(&self) -> Vec<u8> {
        fn field(s: &str) -> String {
            if s.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        }
        let mut out = self.columns.join(",");
        out.push_str("\r\n");
        for row in &self.rows {
            let line: Vec<String> = row.iter().map(|s| field(s)).collect();
            out.push_str(&line.join(","));
            out.push_str("\r\n");
        }
        out.into_bytes()
    }

    /// `{"reportItems": [{COLUMN: VALUE, ...}, ...]}`; empty values are left out.
    pub(crate) fn json(&self) -> Result<Vec<u8>> {
        let items: Vec<serde_json::Map<String, serde_json::Value>> = self
            .rows
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .zip(row)
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(c, v)| (c.to_string(), serde_json::Value::String(v.clone())))
                    .collect()
            })
            .collect();
        Ok(serde_json::to_vec_pretty(
            &serde_json::json!({ "reportItems": items }),
        )?)
    }
}

/// Formats a time as the reports show it.
pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map(time).unwrap_or_default()
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

/// The period a report made at `at` covers: the 24 hours before it.
pub(crate) fn period(at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (at - Duration::hours(PERIOD_HOURS), at)
}

/// Whether a job report of `period` lists `j`: jobs that ended in the period, and jobs
/// still under way at its end (AWS: "jobs finished in the last 24 hours and all active jobs").
pub(crate) fn in_period(j: &JobRecord, (start, end): (DateTime<Utc>, DateTime<Utc>)) -> bool {
    if j.creation_date >= end {
        return false;
    }
    if !j.is_terminal() {
        return true;
    }
    let ended = j.completion_date.unwrap_or(j.creation_date);
    start <= ended && ended < end
}

const COMMON: [&str; 4] = [
    "reportTimePeriodStart",
    "reportTimePeriodEnd",
    "accountId",
    "region",
];

const BACKUP_COLUMNS: [&str; 22] = [
    "backupJobId",
    "jobStatus",
    "statusMessage",
    "messageCategory",
    "resourceType",
    "resourceArn",
    "resourceName",
    "backupPlanArn",
    "backupPlanId",
    "backupPlanVersion",
    "backupRuleId",
    "backupVaultName",
    "backupVaultArn",
    "recoveryPointArn",
    "iamRoleArn",
    "initiationDate",
    "startDate",
    "completionDate",
    "backupSizeInBytes",
    "bytesTransferred",
    "deleteAfterDays",
    "moveToColdStorageAfterDays",
];

const COPY_COLUMNS: [&str; 18] = [
    "copyJobId",
    "jobStatus",
    "statusMessage",
    "messageCategory",
    "resourceType",
    "resourceArn",
    "sourceBackupVaultArn",
    "sourceRecoveryPointArn",
    "destinationBackupVaultArn",
    "destinationRecoveryPointArn",
    "backupPlanArn",
    "backupRuleId",
    "createdByBackupJobId",
    "iamRoleArn",
    "initiationDate",
    "completionDate",
    "backupSizeInBytes",
    "deleteAfterDays",
];

const RESTORE_COLUMNS: [&str; 13] = [
    "restoreJobId",
    "jobStatus",
    "statusMessage",
    "resourceType",
    "sourceResourceArn",
    "recoveryPointArn",
    "backupVaultArn",
    "createdResourceArn",
    "iamRoleArn",
    "initiationDate",
    "completionDate",
    "backupSizeInBytes",
    "validationStatus",
];

fn lifecycle_days(j: &JobRecord, cold: bool) -> String {
    j.lifecycle
        .as_ref()
        .and_then(|l| {
            if cold {
                l.move_to_cold_storage_after_days
            } else {
                l.delete_after_days
            }
        })
        .map(|d| d.to_string())
        .unwrap_or_default()
}

fn backup_row(j: &JobRecord) -> Vec<String> {
    let by = j.created_by.as_ref();
    let by_field = |f: fn(&coffer_api::types::RecoveryPointCreator) -> &Option<String>| {
        by.and_then(|b| f(b).clone()).unwrap_or_default()
    };
    vec![
        j.id.clone(),
        j.state.as_str().to_string(),
        opt(&j.status_message),
        opt(&j.message_category),
        j.resource_type.clone(),
        j.resource_arn.clone(),
        opt(&j.resource_name),
        by_field(|b| &b.backup_plan_arn),
        by_field(|b| &b.backup_plan_id),
        by_field(|b| &b.backup_plan_version),
        by_field(|b| &b.backup_rule_id),
        j.vault_name.clone(),
        j.vault_arn.clone(),
        opt(&j.recovery_point_arn),
        opt(&j.iam_role_arn),
        time(j.creation_date),
        opt_time(j.started_at),
        opt_time(j.completion_date),
        j.backup_size.to_string(),
        j.bytes_transferred.to_string(),
        lifecycle_days(j, false),
        lifecycle_days(j, true),
    ]
}

fn copy_row(j: &JobRecord) -> Vec<String> {
    let by = j.created_by.as_ref();
    vec![
        j.id.clone(),
        j.state.as_str().to_string(),
        opt(&j.status_message),
        opt(&j.message_category),
        j.resource_type.clone(),
        j.resource_arn.clone(),
        j.vault_arn.clone(),
        opt(&j.recovery_point_arn),
        opt(&j.dest_vault_arn),
        opt(&j.dest_recovery_point_arn),
        by.and_then(|b| b.backup_plan_arn.clone())
            .unwrap_or_default(),
        by.and_then(|b| b.backup_rule_id.clone())
            .unwrap_or_default(),
        opt(&j.created_by_backup_job_id),
        opt(&j.iam_role_arn),
        time(j.creation_date),
        opt_time(j.completion_date),
        j.backup_size.to_string(),
        lifecycle_days(j, false),
    ]
}

fn restore_row(j: &JobRecord) -> Vec<String> {
    vec![
        j.id.clone(),
        j.state.as_str().to_string(),
        opt(&j.status_message),
        j.resource_type.clone(),
        j.resource_arn.clone(),
        opt(&j.recovery_point_arn),
        j.vault_arn.clone(),
        opt(&j.created_resource_arn),
        opt(&j.iam_role_arn),
        time(j.creation_date),
        opt_time(j.completion_date),
        j.backup_size.to_string(),
        j.validation_status
            .as_ref()
            .map(|v| v.as_str().to_string())
            .unwrap_or_default(),
    ]
}

/// How one job becomes one row.
type RowOf = fn(&JobRecord) -> Vec<String>;

/// The job report of `kind` over `jobs` (already filtered to the report's scope and
/// period), oldest first.
pub(crate) fn job_report(
    kind: JobKind,
    jobs: &[JobRecord],
    (start, end): (DateTime<Utc>, DateTime<Utc>),
) -> Report {
    let (columns, row): (&[&'static str], RowOf) = match kind {
        JobKind::Backup => (&BACKUP_COLUMNS, backup_row),
        JobKind::Copy => (&COPY_COLUMNS, copy_row),
        JobKind::Restore => (&RESTORE_COLUMNS, restore_row),
    };
    let mut report = Report {
        columns: COMMON.iter().chain(columns).copied().collect(),
        rows: Vec::with_capacity(jobs.len()),
    };
    for j in jobs {
        let mut r = vec![time(start), time(end), j.account.clone(), j.region.clone()];
        r.extend(row(j));
        report.rows.push(r);
    }
    report
}

const CONTROL_COLUMNS: [&str; 10] = [
    "evaluationTime",
    "accountId",
    "region",
    "frameworkName",
    "frameworkArn",
    "controlName",
    "controlComplianceStatus",
    "compliantResourceCount",
    "nonCompliantResourceCount",
    "evaluatedResourceCount",
];

const RESOURCE_COLUMNS: [&str; 10] = [
    "evaluationTime",
    "accountId",
    "region",
    "frameworkName",
    "frameworkArn",
    "controlName",
    "resourceArn",
    "resourceType",
    "complianceStatus",
    "complianceReason",
];

/// A control's status from its evaluations: NON_COMPLIANT when any is, COMPLIANT when every
/// one is, NOT_APPLICABLE when nothing was in its scope.
fn control_status(evals: &[Evaluation]) -> &'static str {
    if evals.is_empty() {
        "NOT_APPLICABLE"
    } else if evals.iter().any(|e| e.status == Compliance::NonCompliant) {
        Compliance::NonCompliant.as_str()
    } else {
        Compliance::Compliant.as_str()
    }
}

/// A compliance report over `frameworks`, each control evaluated against `state`.
pub(crate) fn compliance_report(
    template: Template,
    frameworks: &[FrameworkRecord],
    state: &State,
    account: &str,
    region: &str,
) -> Report {
    let resources = template == Template::ResourceCompliance;
    let mut report = Report {
        columns: if resources {
            RESOURCE_COLUMNS.to_vec()
        } else {
            CONTROL_COLUMNS.to_vec()
        },
        rows: Vec::new(),
    };
    let head = |f: &FrameworkRecord, control: &str| {
        vec![
            time(state.now),
            account.to_string(),
            region.to_string(),
            f.name.clone(),
            f.arn.clone(),
            control.to_string(),
        ]
    };
    for f in frameworks {
        for c in &f.controls {
            let evals = frameworks::evaluate(state, c);
            if resources {
                for e in &evals {
                    let mut row = head(f, &c.control_name);
                    row.extend([
                        e.resource_arn.clone(),
                        e.resource_type.clone(),
                        e.status.as_str().to_string(),
                        e.reason.clone(),
                    ]);
                    report.rows.push(row);
                }
                continue;
            }
            let compliant = evals
                .iter()
                .filter(|e| e.status == Compliance::Compliant)
                .count();
            let mut row = head(f, &c.control_name);
            row.extend([
                control_status(&evals).to_string(),
                compliant.to_string(),
                (evals.len() - compliant).to_string(),
                evals.len().to_string(),
            ]);
            report.rows.push(row);
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_model_pattern() {
        for ok in ["a", "Report_1", &format!("r{}", "x".repeat(255))] {
            assert!(check_name("ReportPlanName", ok).is_ok(), "{ok}");
        }
        for bad in ["", "1abc", "_a", "a-b", "a b", &"x".repeat(257)] {
            let e = check_name("ReportPlanName", bad).unwrap_err();
            assert_eq!(e.0.code(), "InvalidParameterValueException", "{bad}");
        }
    }

    #[test]
    fn development_mode_maps_unconfigured_buckets_under_its_root() {
        let buckets = ReportBuckets::default();
        buckets.replace(&[ReportBucketEntry {
            bucket: "mapped".into(),
            directory: "/srv/mapped".into(),
        }]);
        assert_eq!(buckets.directory("other-bucket"), None);
        buckets.set_fallback("/data/report-buckets".into());
        assert_eq!(buckets.directory("mapped"), Some("/srv/mapped".into()));
        assert_eq!(
            buckets.directory("my.bucket-1"),
            Some("/data/report-buckets/my.bucket-1".into())
        );
        // Only S3 bucket names become directories: nothing climbs out of the root.
        for bad in [
            "..", "a/../b", "../etc", "UPPER", "ab", "-ab", "a..b", "a/b",
        ] {
            assert_eq!(buckets.directory(bad), None, "{bad}");
        }
    }

    #[test]
    fn delivery_channels_are_checked() {
        let buckets = ReportBuckets::default();
        buckets.replace(&[ReportBucketEntry {
            bucket: "b".into(),
            directory: "/srv/b".into(),
        }]);
        let channel = |bucket: &str, prefix: Option<&str>, formats: Option<Vec<&str>>| {
            ReportDeliveryChannel {
                s3_bucket_name: bucket.into(),
                s3_key_prefix: prefix.map(String::from),
                formats: formats.map(|f| f.into_iter().map(String::from).collect()),
            }
        };
        // No format is kept as sent (CSV when written).
        let mut c = channel("b", None, None);
        check_channel(&mut c, &buckets).unwrap();
        assert_eq!(c.formats, None);
        let mut c = channel("b", Some("x/"), Some(vec!["JSON", "CSV", "JSON"]));
        check_channel(&mut c, &buckets).unwrap();
        assert_eq!(c.formats, Some(vec!["JSON".to_string(), "CSV".to_string()]));
        for (mut bad, word) in [
            (channel("other", None, None), "[[report_buckets]]"),
            (channel("b", Some("a/../../etc"), None), ".."),
            (channel("b", Some("/abs"), None), "'/'"),
            (channel("b", None, Some(vec!["PDF"])), "PDF"),
        ] {
            let e = check_channel(&mut bad, &buckets).unwrap_err();
            assert_eq!(e.0.code(), "InvalidParameterValueException");
            assert!(e.0.message().contains(word), "{}", e.0.message());
        }
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let r = Report {
            columns: vec!["a", "b"],
            rows: vec![vec!["x,y".into(), "say \"hi\"".into()]],
        };
        assert_eq!(
            String::from_utf8(r.csv()).unwrap(),
            "a,b\r\n\"x,y\",\"say \"\"hi\"\"\"\r\n"
        );
    }

    #[test]
    fn due_keys_sort_by_time() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let a = due_key(t0, "1", "r", "z");
        let b = due_key(t0 + Duration::microseconds(1), "0", "r", "a");
        assert!(a < b);
    }
}
