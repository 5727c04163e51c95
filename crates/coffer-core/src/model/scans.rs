//! Malware scan jobs over recovery points: their records, states and the rules they obey.
//!
//! A scan job (StartScanJob, or a plan rule's ScanActions after the backup the rule made) is a
//! record in table `scan_job` (key `ACCOUNT:REGION:ID`). While it waits (CREATED) or runs
//! (RUNNING) its key is also in `scan_work`, so a runner pass reads only those; the data plane
//! (`dataplane::scans`) claims a waiting job under a lease, evaluates the rules over the
//! recovery point's files and ends it COMPLETED with a ScanResult, or FAILED with the reason.
//! A RUNNING job whose lease belongs to an earlier run of Coffer (a crash, a restart) is run
//! again, at most [`MAX_ATTEMPTS`] times in all. Table `scan_last` keeps, per vault and
//! resource, the latest recovery point a scan completed on: the base of a rule's incremental
//! scans.

use chrono::{DateTime, Utc};
use coffer_api::types::{
    MalwareScanner, ScanAction, ScanJob, ScanJobCreator, ScanJobStatus, ScanMode, ScanResourceType,
    ScanResultInfo, ScanResultStatus, ScanSetting, ScanState,
};
use coffer_api::{ApiError, Timestamp};
use coffer_engine::ScanReport;
use coffer_store::Txn;
use serde::{Deserialize, Serialize};

use crate::model::error::Result;
use crate::model::jobs::JobRecord;
use crate::model::plans;
use crate::model::recovery_points::RecoveryPointRecord;

pub(crate) const TABLE: &str = "scan_job";
const WORK: &str = "scan_work";
const TOKENS: &str = "scan_token";
const LAST: &str = "scan_last";

/// Runs of one job, interrupted ones included.
pub(crate) const MAX_ATTEMPTS: u32 = 3;
/// At most this many findings are named in a job's StatusMessage (the record keeps them all).
const SHOWN_FINDINGS: usize = 10;

/// The resource types Coffer scans: AWS's (EBS, EC2, S3) and Coffer's directory trees (EFS).
pub(crate) const SCANNABLE_RESOURCE_TYPES: &[&str] = &["EBS", "EC2", "EFS", "S3"];

/// A scan job's state (ScanState).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum State {
    Canceled,
    Completed,
    CompletedWithIssues,
    Created,
    Failed,
    Running,
}

impl State {
    pub(crate) fn wire(self) -> ScanState {
        match self {
            State::Canceled => ScanState::Canceled,
            State::Completed => ScanState::Completed,
            State::CompletedWithIssues => ScanState::CompletedWithIssues,
            State::Created => ScanState::Created,
            State::Failed => ScanState::Failed,
            State::Running => ScanState::Running,
        }
    }

    pub(crate) fn summary(self) -> ScanJobStatus {
        match self {
            State::Canceled => ScanJobStatus::Canceled,
            State::Completed => ScanJobStatus::Completed,
            State::CompletedWithIssues => ScanJobStatus::CompletedWithIssues,
            State::Created => ScanJobStatus::Created,
            State::Failed => ScanJobStatus::Failed,
            State::Running => ScanJobStatus::Running,
        }
    }

    pub(crate) fn is_terminal(self) -> bool {
        !matches!(self, State::Created | State::Running)
    }

    /// The one transition table: claimed, ended, or back to waiting after a crash.
    pub(crate) fn may_become(self, next: State) -> bool {
        use State::*;
        self == next
            || match self {
                Created => matches!(next, Running | Failed | Canceled),
                Running => matches!(
                    next,
                    Completed | CompletedWithIssues | Failed | Canceled | Created
                ),
                _ => false,
            }
    }
}

/// The plan rule that started a scan job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Creator {
    pub plan_arn: String,
    pub plan_id: String,
    pub plan_version: String,
    pub rule_id: String,
}

/// One scan job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScanJobRecord {
    pub account: String,
    pub region: String,
    pub id: String,
    pub vault_name: String,
    pub vault_arn: String,
    pub rp_arn: String,
    pub resource_arn: String,
    pub resource_name: String,
    pub resource_type: String,
    pub iam_role_arn: String,
    pub scanner_role_arn: String,
    pub mode: ScanMode,
    pub base_rp_arn: Option<String>,
    pub created_by: Option<Creator>,
    pub creation_date: DateTime<Utc>,
    pub completion_date: Option<DateTime<Utc>>,
    pub state: State,
    pub status_message: Option<String>,
    pub result: Option<ScanResultStatus>,
    /// What the scan read and found (when it ended).
    pub report: Option<ScanReport>,
    /// The id of the current or last run of the scanner.
    pub scan_id: Option<String>,
    pub attempts: u32,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    /// The ClientToken that started the job, pruned with it (absent from older records).
    #[serde(default)]
    pub token: Option<String>,
}

pub(crate) fn key(account: &str, region: &str, id: &str) -> String {
    format!("{account}:{region}:{id}")
}

fn last_key(account: &str, region: &str, vault: &str, resource_arn: &str) -> String {
    format!("{account}:{region}:{vault}:{resource_arn}")
}

impl ScanJobRecord {
    pub(crate) fn key(&self) -> String {
        key(&self.account, &self.region, &self.id)
    }

    /// The job as the API shows it. `CreatedBy` is required by the model: a job started by
    /// StartScanJob (no plan) shows it with empty members.
    pub(crate) fn listed(&self) -> ScanJob {
        let by = self.created_by.clone().unwrap_or(Creator {
            plan_arn: String::new(),
            plan_id: String::new(),
            plan_version: String::new(),
            rule_id: String::new(),
        });
        ScanJob {
            account_id: self.account.clone(),
            backup_vault_arn: self.vault_arn.clone(),
            backup_vault_name: self.vault_name.clone(),
            completion_date: self.completion_date.map(Timestamp),
            continuous_scan_end_time: None,
            continuous_scan_start_time: None,
            created_by: ScanJobCreator {
                backup_plan_arn: by.plan_arn,
                backup_plan_id: by.plan_id,
                backup_plan_version: by.plan_version,
                backup_rule_id: by.rule_id,
            },
            creation_date: Timestamp(self.creation_date),
            iam_role_arn: self.iam_role_arn.clone(),
            malware_scanner: MalwareScanner::Guardduty,
            recovery_point_arn: self.rp_arn.clone(),
            resource_arn: self.resource_arn.clone(),
            resource_name: self.resource_name.clone(),
            resource_type: ScanResourceType::from(self.resource_type.clone()),
            scan_base_recovery_point_arn: self.base_rp_arn.clone(),
            scan_id: self.scan_id.clone(),
            scan_job_id: self.id.clone(),
            scan_mode: self.mode.clone(),
            scan_result: self.result.clone().map(|s| ScanResultInfo {
                scan_result_status: s,
            }),
            scanner_role_arn: self.scanner_role_arn.clone(),
            state: Some(self.state.wire()),
            status_message: self.status_message.clone(),
        }
    }

    /// Ends the job with what the scan found: COMPLETED with THREATS_FOUND (the files and
    /// rules named in the StatusMessage) or NO_THREATS_FOUND, and what it read.
    pub(crate) fn complete(&mut self, report: ScanReport, now: DateTime<Utc>) {
        let read = format!(
            "Scanned {} files ({} bytes)",
            report.files_scanned, report.bytes_scanned
        );
        let skipped = if self.base_rp_arn.is_some() {
            format!(
                "; skipped {} unchanged files ({} bytes)",
                report.files_skipped, report.bytes_skipped
            )
        } else {
            String::new()
        };
        let found = if report.findings.is_empty() {
            self.result = Some(ScanResultStatus::NoThreatsFound);
            "No threats found.".to_string()
        } else {
            self.result = Some(ScanResultStatus::ThreatsFound);
            let mut named: Vec<String> = report
                .findings
                .iter()
                .take(SHOWN_FINDINGS)
                .map(|f| format!("{} ({})", f.path, f.rules.join(", ")))
                .collect();
            if report.findings.len() > SHOWN_FINDINGS {
                named.push(format!(
                    "and {} more",
                    report.findings.len() - SHOWN_FINDINGS
                ));
            }
            format!(
                "Threats found in {} files: {}.",
                report.findings.len(),
                named.join("; ")
            )
        };
        self.status_message = Some(format!("{read}{skipped}. {found}"));
        self.state = State::Completed;
        self.report = Some(report);
        self.end(now);
    }

    /// Ends the job FAILED with `message`.
    pub(crate) fn fail(&mut self, message: String, now: DateTime<Utc>) {
        self.state = State::Failed;
        self.status_message = Some(message);
        self.end(now);
    }

    fn end(&mut self, now: DateTime<Utc>) {
        self.completion_date = Some(now);
        self.lease_owner = None;
        self.lease_until = None;
    }
}

pub(crate) fn get(tx: &mut dyn Txn, key: &str) -> Result<Option<ScanJobRecord>> {
    match tx.get(TABLE, key)? {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

/// Stores `job`, refusing a move the transition table does not allow, and keeps the work list
/// (and, for a completed scan, the resource's latest scanned point) in step.
pub(crate) fn save(tx: &mut dyn Txn, job: &ScanJobRecord) -> Result<()> {
    let key = job.key();
    if let Some(before) = get(tx, &key)?
        && !before.state.may_become(job.state)
    {
        return Err(ApiError::internal(format!(
            "scan job {key} may not go from {:?} to {:?}",
            before.state, job.state
        ))
        .into());
    }
    tx.put(TABLE, &key, &serde_json::to_vec(job)?)?;
    if job.state.is_terminal() {
        tx.delete(WORK, &key)?;
    } else {
        tx.put(WORK, &key, b"")?;
    }
    if job.state.is_terminal()
        && let Some(ended) = job.completion_date
    {
        enter_history(tx, job, ended)?;
    }
    if job.state == State::Completed {
        let k = last_key(
            &job.account,
            &job.region,
            &job.vault_name,
            &job.resource_arn,
        );
        tx.put(LAST, &k, job.rp_arn.as_bytes())?;
    }
    Ok(())
}

/// Enters an ended job, and its token, for deletion once the history retention has passed
/// since it ended (`model::history`; entering it again is harmless). Table `scan_last` keeps
/// its point: it stays the base of the resource's next incremental scan.
fn enter_history(tx: &mut dyn Txn, job: &ScanJobRecord, ended: DateTime<Utc>) -> Result<()> {
    let mut items = vec![(TABLE.to_string(), job.key())];
    if let Some(t) = &job.token {
        items.push((TOKENS.to_string(), key(&job.account, &job.region, t)));
    }
    crate::model::history::record(tx, ended, &items)
}

/// Enters a job written before scan jobs were pruned, if it has ended.
pub(crate) fn enter_finished(tx: &mut dyn Txn, value: &[u8]) -> Result<()> {
    let job: ScanJobRecord = serde_json::from_slice(value)?;
    if job.state.is_terminal()
        && let Some(ended) = job.completion_date
    {
        enter_history(tx, &job, ended)?;
    }
    Ok(())
}

/// Records a new CREATED job, or answers the job an earlier call with the same idempotency
/// token made.
pub(crate) fn insert(
    tx: &mut dyn Txn,
    job: ScanJobRecord,
    token: Option<&str>,
) -> Result<ScanJobRecord> {
    if let Some(t) = token {
        let tk = key(&job.account, &job.region, t);
        if let Some(id) = tx.get(TOKENS, &tk)? {
            let id = String::from_utf8_lossy(&id).to_string();
            if let Some(existing) = get(tx, &key(&job.account, &job.region, &id))? {
                return Ok(existing);
            }
        }
        tx.put(TOKENS, &tk, job.id.as_bytes())?;
    }
    let job = ScanJobRecord {
        token: token.map(str::to_string),
        ..job
    };
    save(tx, &job)?;
    Ok(job)
}

/// The jobs waiting or running, in every scope.
pub(crate) fn work(tx: &mut dyn Txn) -> Result<Vec<ScanJobRecord>> {
    let mut out = Vec::new();
    for (key, _) in crate::model::paging::scan_all(tx, WORK, "")? {
        if let Some(j) = get(tx, &key)? {
            out.push(j);
        }
    }
    Ok(out)
}

/// Every scan job of the scope, newest first.
pub(crate) fn all(tx: &mut dyn Txn, account: &str, region: &str) -> Result<Vec<ScanJobRecord>> {
    let mut out: Vec<ScanJobRecord> = Vec::new();
    for (_, v) in crate::model::paging::scan_all(tx, TABLE, &format!("{account}:{region}:"))? {
        out.push(serde_json::from_slice(&v)?);
    }
    out.sort_by(|a, b| {
        b.creation_date
            .cmp(&a.creation_date)
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(out)
}

/// The refusal for a scanner other than Coffer's.
pub(crate) fn check_scanner(scanner: &MalwareScanner, what: &str) -> Result<()> {
    if *scanner == MalwareScanner::Guardduty {
        return Ok(());
    }
    Err(ApiError::invalid_parameter(format!(
        "{what} '{scanner}' is not a malware scanner Coffer has; use GUARDDUTY (Coffer's YARA rule scanner)."
    ))
    .into())
}

/// The refusal for a resource type Coffer does not scan.
pub(crate) fn check_scannable(resource_type: &str) -> std::result::Result<(), ApiError> {
    if SCANNABLE_RESOURCE_TYPES.contains(&resource_type) {
        return Ok(());
    }
    Err(ApiError::invalid_parameter(format!(
        "Recovery points of resource type {resource_type} cannot be scanned; Coffer scans {} recovery points.",
        SCANNABLE_RESOURCE_TYPES.join(", ")
    )))
}

/// Checks a plan's ScanSettings and its rules' ScanActions: each action names a scanner and a
/// mode, and the plan has a ScanSetting with a ScannerRoleArn for that scanner. Returns the
/// message for InvalidParameterValueException.
pub(crate) fn check_plan(
    settings: Option<&[ScanSetting]>,
    actions: &[(String, &[ScanAction])],
) -> std::result::Result<(), String> {
    for (i, s) in settings.unwrap_or_default().iter().enumerate() {
        if s.malware_scanner.as_ref() != Some(&MalwareScanner::Guardduty) {
            return Err(format!(
                "ScanSettings[{i}].MalwareScanner must be GUARDDUTY (Coffer's YARA rule scanner)."
            ));
        }
        if s.scanner_role_arn.as_deref().is_none_or(str::is_empty) {
            return Err(format!("ScanSettings[{i}].ScannerRoleArn is required."));
        }
        for t in s.resource_types.iter().flatten() {
            if t != "ALL" && !SCANNABLE_RESOURCE_TYPES.contains(&t.as_str()) {
                return Err(format!(
                    "ScanSettings[{i}].ResourceTypes: {t} cannot be scanned; use ALL or any of {}.",
                    SCANNABLE_RESOURCE_TYPES.join(", ")
                ));
            }
        }
    }
    for (rule, list) in actions {
        for (i, a) in list.iter().enumerate() {
            if a.malware_scanner.as_ref() != Some(&MalwareScanner::Guardduty) {
                return Err(format!(
                    "Rule '{rule}': ScanActions[{i}].MalwareScanner must be GUARDDUTY."
                ));
            }
            if a.scan_mode.is_none() {
                return Err(format!(
                    "Rule '{rule}': ScanActions[{i}].ScanMode is required (FULL_SCAN or INCREMENTAL_SCAN)."
                ));
            }
            if settings.unwrap_or_default().is_empty() {
                return Err(format!(
                    "Rule '{rule}' has ScanActions but the plan has no ScanSettings: add a ScanSetting with MalwareScanner GUARDDUTY and a ScannerRoleArn."
                ));
            }
        }
    }
    Ok(())
}

/// The scan jobs a plan's backup starts, in the backup's final transaction: one per ScanAction
/// of the rule that made it (as the plan has it now) whose plan has a ScanSetting covering the
/// resource's type. An INCREMENTAL_SCAN action is based on the latest recovery point of the
/// resource in the vault that a scan completed on; with none yet it scans in full.
pub(crate) fn after_backup(
    tx: &mut dyn Txn,
    backup: &JobRecord,
    rp: &RecoveryPointRecord,
    now: DateTime<Utc>,
) -> Result<()> {
    let Some(by) = &backup.created_by else {
        return Ok(());
    };
    let (Some(plan_id), Some(rule_id)) = (&by.backup_plan_id, &by.backup_rule_id) else {
        return Ok(());
    };
    let Some(ap) = plans::current_version(tx, &rp.account, &rp.region, plan_id)? else {
        return Ok(());
    };
    let doc = &ap.version.document;
    let Some(rule) = doc
        .rules
        .iter()
        .find(|r| r.rule_id.as_deref() == Some(rule_id.as_str()))
    else {
        return Ok(());
    };
    let setting = doc.scan_settings.iter().flatten().find(|s| {
        s.resource_types
            .iter()
            .flatten()
            .any(|t| t == "ALL" || *t == rp.resource_type)
    });
    let (Some(setting), true) = (setting, check_scannable(&rp.resource_type).is_ok()) else {
        return Ok(());
    };
    for action in rule.scan_actions.iter().flatten() {
        let mut mode = action.scan_mode.clone().unwrap_or(ScanMode::FullScan);
        let mut base = None;
        if mode == ScanMode::IncrementalScan {
            let k = last_key(&rp.account, &rp.region, &rp.vault_name, &rp.resource_arn);
            base = tx
                .get(LAST, &k)?
                .map(|v| String::from_utf8_lossy(&v).to_string());
            if base.is_none() {
                mode = ScanMode::FullScan;
            }
        }
        let mut job = new_job(rp, backup.iam_role_arn.clone(), now);
        job.scanner_role_arn = setting.scanner_role_arn.clone().unwrap_or_default();
        job.mode = mode;
        job.base_rp_arn = base;
        job.created_by = Some(Creator {
            plan_arn: by.backup_plan_arn.clone().unwrap_or_default(),
            plan_id: plan_id.clone(),
            plan_version: ap.version.version_id.clone(),
            rule_id: rule_id.clone(),
        });
        save(tx, &job)?;
    }
    Ok(())
}

/// A new CREATED full scan of `rp` (callers set the mode, base, roles and creator).
pub(crate) fn new_job(
    rp: &RecoveryPointRecord,
    iam_role_arn: Option<String>,
    now: DateTime<Utc>,
) -> ScanJobRecord {
    ScanJobRecord {
        account: rp.account.clone(),
        region: rp.region.clone(),
        id: uuid::Uuid::new_v4().to_string().to_uppercase(),
        vault_name: rp.vault_name.clone(),
        vault_arn: rp.vault_arn.clone(),
        rp_arn: rp.arn.clone(),
        resource_arn: rp.resource_arn.clone(),
        resource_name: rp.resource_name.clone().unwrap_or_else(|| {
            rp.resource_arn
                .rsplit(['/', ':'])
                .next()
                .unwrap_or_default()
                .to_string()
        }),
        resource_type: rp.resource_type.clone(),
        iam_role_arn: iam_role_arn.unwrap_or_default(),
        scanner_role_arn: String::new(),
        mode: ScanMode::FullScan,
        base_rp_arn: None,
        created_by: None,
        creation_date: now,
        completion_date: None,
        state: State::Created,
        status_message: None,
        result: None,
        report: None,
        scan_id: None,
        attempts: 0,
        lease_owner: None,
        lease_until: None,
        token: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_the_table() {
        use State::*;
        assert!(Created.may_become(Running));
        assert!(Running.may_become(Completed));
        assert!(Running.may_become(Created));
        assert!(!Completed.may_become(Running));
        assert!(!Failed.may_become(Created));
        assert!(!Created.may_become(Completed));
    }

    #[test]
    fn plan_checks_name_what_to_fix() {
        let action = ScanAction {
            malware_scanner: Some(MalwareScanner::Guardduty),
            scan_mode: Some(ScanMode::FullScan),
        };
        let actions = [("daily".to_string(), std::slice::from_ref(&action))];
        let e = check_plan(None, &actions).unwrap_err();
        assert!(e.contains("no ScanSettings"), "{e}");
        let setting = ScanSetting {
            malware_scanner: Some(MalwareScanner::Guardduty),
            resource_types: Some(vec!["EFS".into()]),
            scanner_role_arn: Some("arn:aws:iam::111122223333:role/scan".into()),
        };
        assert!(check_plan(Some(std::slice::from_ref(&setting)), &actions).is_ok());
        let bad = ScanSetting {
            resource_types: Some(vec!["RDS".into()]),
            ..setting
        };
        let e = check_plan(Some(&[bad]), &actions).unwrap_err();
        assert!(e.contains("RDS cannot be scanned"), "{e}");
    }
}
