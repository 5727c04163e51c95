//! Audit Manager through the official SDK: report plans whose report jobs write CSV and JSON
//! files into the directory configured for their S3 bucket (rows read back and compared with
//! the jobs that really ran), the daily run on Coffer's clock, delivery failures, and
//! frameworks whose controls are evaluated against real state (a resource turns
//! non-compliant when its last recovery point is deleted). Also each refusal's error code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use aws_sdk_backup::Client;
use aws_sdk_backup::error::ProvideErrorMetadata;
use aws_sdk_backup::types::{
    BackupJobState, BackupPlanInput, BackupRuleInput, BackupSelection, ControlInputParameter,
    ControlScope, CopyJobState, FrameworkControl, Lifecycle, ReportDeliveryChannel, ReportJob,
    ReportSetting, RestoreJobStatus,
};

use crate::harness::*;

const DAY: i64 = 86_400;
const ROLE: &str = "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole";
const DOCS: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-docs";
const GONE: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-gone";

/// A configuration with the two resources (`fs-gone`'s source does not exist) and two report
/// buckets: `audit-reports` in `reports`, and `broken`, whose directory cannot be made
/// (its parent is a regular file).
fn write_config(dir: &Path) -> (PathBuf, PathBuf) {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("a.txt"), "hello audit\n").unwrap();
    std::fs::write(dir.join("not-a-dir"), "x").unwrap();
    let reports = dir.join("reports");
    let cfg = dir.join("coffer.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[resources]]\narn = \"{DOCS}\"\nsource = \"{}\"\n\n[[resources]]\narn = \"{GONE}\"\nsource = \"{}\"\n\n\
             [[report_buckets]]\nbucket = \"audit-reports\"\ndirectory = \"{}\"\n\n\
             [[report_buckets]]\nbucket = \"broken\"\ndirectory = \"{}\"\n",
            docs.display(),
            dir.join("no-such-source").display(),
            reports.display(),
            dir.join("not-a-dir").join("reports").display(),
        ),
    )
    .unwrap();
    (cfg, reports)
}

async fn start(dir: &Path) -> (Server, Client, PathBuf) {
    let (cfg, reports) = write_config(dir);
    let server = Server::start(&[
        "--dev",
        "--account-id",
        ACCOUNT,
        "--config",
        cfg.to_str().unwrap(),
    ])
    .await;
    let c = server.client_as(ACCOUNT, "anything", "us-east-1");
    let t0 = (server.clock_secs().await / DAY + 1) * DAY + 3600;
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0)))
        .await;
    for v in ["primary", "secondary"] {
        c.create_backup_vault()
            .backup_vault_name(v)
            .send()
            .await
            .unwrap();
    }
    (server, c, reports)
}

/// Starts a backup of `arn` into `vault` and waits until it ends; returns (job id, state,
/// recovery point ARN).
async fn backup(c: &Client, vault: &str, arn: &str) -> (String, BackupJobState, Option<String>) {
    let out = c
        .start_backup_job()
        .backup_vault_name(vault)
        .resource_arn(arn)
        .iam_role_arn(ROLE)
        .lifecycle(Lifecycle::builder().delete_after_days(40).build())
        .send()
        .await
        .unwrap();
    let id = out.backup_job_id().unwrap().to_string();
    let j = wait_until("the backup job to end", 120, || async {
        let j = c
            .describe_backup_job()
            .backup_job_id(&id)
            .send()
            .await
            .unwrap();
        matches!(
            j.state(),
            Some(BackupJobState::Completed | BackupJobState::Failed)
        )
        .then_some(j)
    })
    .await;
    (
        id,
        j.state().unwrap().clone(),
        j.recovery_point_arn().map(String::from),
    )
}

fn channel(bucket: &str, prefix: &str, formats: &[&str]) -> ReportDeliveryChannel {
    ReportDeliveryChannel::builder()
        .s3_bucket_name(bucket)
        .s3_key_prefix(prefix)
        .set_formats(Some(formats.iter().map(|f| f.to_string()).collect()))
        .build()
        .unwrap()
}

fn setting(template: &str, frameworks: &[&str]) -> ReportSetting {
    ReportSetting::builder()
        .report_template(template)
        .set_framework_arns(
            (!frameworks.is_empty()).then(|| frameworks.iter().map(|f| f.to_string()).collect()),
        )
        .build()
        .unwrap()
}

async fn create_plan(c: &Client, name: &str, ch: ReportDeliveryChannel, s: ReportSetting) {
    c.create_report_plan()
        .report_plan_name(name)
        .report_delivery_channel(ch)
        .report_setting(s)
        .send()
        .await
        .unwrap();
}

/// Starts a report job of `plan` and returns it as DescribeReportJob shows it.
async fn report(c: &Client, plan: &str) -> ReportJob {
    let id = c
        .start_report_job()
        .report_plan_name(plan)
        .send()
        .await
        .unwrap()
        .report_job_id()
        .unwrap()
        .to_string();
    wait_until("the report job to end", 60, || async {
        let j = c
            .describe_report_job()
            .report_job_id(&id)
            .send()
            .await
            .unwrap()
            .report_job()
            .cloned()
            .unwrap();
        matches!(j.status(), Some("COMPLETED" | "FAILED")).then_some(j)
    })
    .await
}

/// A small RFC 4180 reader: rows of fields, quotes and doubled quotes understood.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(ch) = chars.next() {
        match (quoted, ch) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, _) => field.push(ch),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, _) => field.push(ch),
        }
    }
    rows
}

/// The rows of a CSV report as maps from column to value.
fn csv_items(path: &Path) -> Vec<BTreeMap<String, String>> {
    let rows = parse_csv(&std::fs::read_to_string(path).unwrap());
    let (head, body) = rows.split_first().expect("a header line");
    body.iter()
        .map(|r| head.iter().cloned().zip(r.iter().cloned()).collect())
        .collect()
}

/// The items of a JSON report as maps from column to value.
fn json_items(path: &Path) -> Vec<BTreeMap<String, String>> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["reportItems"]
        .as_array()
        .expect("reportItems")
        .iter()
        .map(|i| {
            i.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .collect()
}

/// The report's items read back from the file of its key ending in `ext`.
fn items(root: &Path, job: &ReportJob, ext: &str) -> Vec<BTreeMap<String, String>> {
    let keys = job.report_destination().unwrap().s3_keys();
    let key = keys
        .iter()
        .find(|k| k.ends_with(ext))
        .unwrap_or_else(|| panic!("no {ext} key in {keys:?}"));
    let path = root.join(key);
    if ext == ".csv" {
        csv_items(&path)
    } else {
        json_items(&path)
    }
}

fn pairs(items: &[BTreeMap<String, String>], id: &str, state: &str) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|i| (i[id].clone(), i[state].clone()))
        .collect()
}

async fn code_of<T, E: ProvideErrorMetadata>(
    r: Result<T, aws_sdk_backup::error::SdkError<E>>,
) -> (String, String) {
    match r {
        Ok(_) => panic!("the call succeeded; a refusal was expected"),
        Err(e) => (
            e.code().unwrap_or_default().to_string(),
            e.message().unwrap_or_default().to_string(),
        ),
    }
}

#[tokio::test]
async fn report_jobs_write_the_jobs_that_ran_as_csv_and_json() {
    let dir = temp_dir();
    let (server, c, root) = start(dir.path()).await;
    let (ok_id, ok_state, rp) = backup(&c, "primary", DOCS).await;
    assert_eq!(ok_state, BackupJobState::Completed);
    let (failed_id, failed_state, _) = backup(&c, "primary", GONE).await;
    assert_eq!(failed_state, BackupJobState::Failed);
    let rp = rp.unwrap();
    let secondary = c
        .describe_backup_vault()
        .backup_vault_name("secondary")
        .send()
        .await
        .unwrap()
        .backup_vault_arn()
        .unwrap()
        .to_string();
    let copy_id = c
        .start_copy_job()
        .recovery_point_arn(&rp)
        .source_backup_vault_name("primary")
        .destination_backup_vault_arn(&secondary)
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap()
        .copy_job_id()
        .unwrap()
        .to_string();
    wait_until("the copy job to end", 120, || async {
        let j = c
            .describe_copy_job()
            .copy_job_id(&copy_id)
            .send()
            .await
            .unwrap();
        (j.copy_job().unwrap().state() == Some(&CopyJobState::Completed)).then_some(())
    })
    .await;
    let target = dir.path().join("restored");
    let restore_id = restore_completes(&c, &rp, target.to_str().unwrap()).await;

    create_plan(
        &c,
        "backup_jobs",
        channel("audit-reports", "team/audit", &["CSV", "JSON"]),
        setting("BACKUP_JOB_REPORT", &[]),
    )
    .await;
    create_plan(
        &c,
        "copy_jobs",
        channel("audit-reports", "", &["CSV"]),
        setting("COPY_JOB_REPORT", &[]),
    )
    .await;
    create_plan(
        &c,
        "restore_jobs",
        channel("audit-reports", "r/", &["JSON"]),
        setting("RESTORE_JOB_REPORT", &[]),
    )
    .await;

    // The backup job report: both formats, at AWS's key layout, rows = the jobs that ran.
    let job = report(&c, "backup_jobs").await;
    assert_eq!(
        job.status(),
        Some("COMPLETED"),
        "{:?}",
        job.status_message()
    );
    assert_eq!(job.report_template(), Some("BACKUP_JOB_REPORT"));
    let keys = job.report_destination().unwrap().s3_keys().to_vec();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let day = chrono_day(server.clock_secs().await);
    for k in &keys {
        let want = format!(
            "team/audit/Backup/{ACCOUNT}/us-east-1/{day}/backup_jobs/BACKUP_JOB_REPORT_{}",
            job.report_job_id().unwrap()
        );
        assert!(k.starts_with(&want), "{k} does not start with {want}");
        assert!(root.join(k).is_file(), "{k} was not written");
    }
    let listed: BTreeSet<(String, String)> = c
        .list_backup_jobs()
        .send()
        .await
        .unwrap()
        .backup_jobs()
        .iter()
        .map(|j| {
            (
                j.backup_job_id().unwrap().to_string(),
                j.state().unwrap().as_str().to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        (ok_id.clone(), "COMPLETED".to_string()),
        (failed_id.clone(), "FAILED".to_string()),
    ]
    .into();
    assert_eq!(listed, want);
    let csv = items(&root, &job, ".csv");
    let json = items(&root, &job, ".json");
    assert_eq!(pairs(&csv, "backupJobId", "jobStatus"), want);
    assert_eq!(pairs(&json, "backupJobId", "jobStatus"), want);
    let ok_row = csv.iter().find(|i| i["backupJobId"] == ok_id).unwrap();
    assert_eq!(ok_row["recoveryPointArn"], rp);
    assert_eq!(ok_row["resourceArn"], DOCS);
    assert_eq!(ok_row["backupVaultName"], "primary");
    assert_eq!(ok_row["deleteAfterDays"], "40");
    assert_eq!(ok_row["accountId"], ACCOUNT);
    let failed_row = json.iter().find(|i| i["backupJobId"] == failed_id).unwrap();
    assert!(
        failed_row["statusMessage"].contains("source not found"),
        "{failed_row:?}"
    );

    // Copy and restore job reports.
    let job = report(&c, "copy_jobs").await;
    assert_eq!(
        job.status(),
        Some("COMPLETED"),
        "{:?}",
        job.status_message()
    );
    let rows = items(&root, &job, ".csv");
    assert_eq!(
        pairs(&rows, "copyJobId", "jobStatus"),
        [(copy_id.clone(), "COMPLETED".to_string())].into()
    );
    assert_eq!(rows[0]["sourceRecoveryPointArn"], rp);
    assert_eq!(rows[0]["destinationBackupVaultArn"], secondary);
    assert!(
        job.report_destination().unwrap().s3_keys()[0]
            .starts_with(&format!("Backup/{ACCOUNT}/us-east-1/"))
    );
    let job = report(&c, "restore_jobs").await;
    assert_eq!(
        job.status(),
        Some("COMPLETED"),
        "{:?}",
        job.status_message()
    );
    let rows = items(&root, &job, ".json");
    assert_eq!(
        pairs(&rows, "restoreJobId", "jobStatus"),
        [(restore_id.clone(), "COMPLETED".to_string())].into()
    );
    assert!(job.report_destination().unwrap().s3_keys()[0].starts_with("r/Backup/"));

    // The plan records its runs; every list member is there, empty or not.
    let plan = c
        .describe_report_plan()
        .report_plan_name("backup_jobs")
        .send()
        .await
        .unwrap();
    let plan = plan.report_plan().unwrap();
    assert!(plan.last_successful_execution_time().is_some());
    assert_eq!(plan.deployment_status(), Some("COMPLETED"));
    assert_eq!(
        plan.report_delivery_channel().unwrap().formats(),
        ["CSV", "JSON"]
    );
    // The setting is answered as it was sent (no list it did not name).
    let raw = server
        .raw("GET", "/audit/report-plans/backup_jobs", &[], b"")
        .await
        .2;
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        v["ReportPlan"]["ReportSetting"],
        serde_json::json!({"ReportTemplate": "BACKUP_JOB_REPORT"}),
        "{raw}"
    );

    // A repeated IdempotencyToken answers with the job it started.
    let first = c
        .start_report_job()
        .report_plan_name("copy_jobs")
        .idempotency_token("tok-1")
        .send()
        .await
        .unwrap();
    let again = c
        .start_report_job()
        .report_plan_name("copy_jobs")
        .idempotency_token("tok-1")
        .send()
        .await
        .unwrap();
    assert_eq!(first.report_job_id(), again.report_job_id());
    let copy_runs = c
        .list_report_jobs()
        .by_report_plan_name("copy_jobs")
        .send()
        .await
        .unwrap();
    assert_eq!(copy_runs.report_jobs().len(), 2);

    // Every 24 hours on Coffer's clock, each plan runs by itself.
    let before = c
        .list_report_jobs()
        .send()
        .await
        .unwrap()
        .report_jobs()
        .len();
    server.advance_clock(DAY + 60).await;
    let jobs = c
        .list_report_jobs()
        .by_report_plan_name("backup_jobs")
        .send()
        .await
        .unwrap();
    let scheduled: Vec<_> = jobs
        .report_jobs()
        .iter()
        .filter(|j| j.creation_time() != jobs.report_jobs()[0].creation_time())
        .collect();
    assert_eq!(scheduled.len(), 1, "{:?}", jobs.report_jobs());
    assert_eq!(scheduled[0].status(), Some("COMPLETED"));
    let created = plan.creation_time().unwrap().secs();
    assert_eq!(scheduled[0].creation_time().unwrap().secs(), created + DAY);
    for k in scheduled[0].report_destination().unwrap().s3_keys() {
        assert!(root.join(k).is_file(), "{k}");
    }
    let after = c
        .list_report_jobs()
        .send()
        .await
        .unwrap()
        .report_jobs()
        .len();
    assert_eq!(after, before + 3, "one scheduled run per plan");
}

/// `YYYY/MM/DD` of an epoch second.
fn chrono_day(secs: i64) -> String {
    let t = rfc3339(secs);
    format!("{}/{}/{}", &t[0..4], &t[5..7], &t[8..10])
}

#[tokio::test]
async fn report_plans_refuse_bad_input_and_failed_deliveries_say_why() {
    let dir = temp_dir();
    let (_server, c, _root) = start(dir.path()).await;
    // In development mode an unconfigured bucket with an S3 name is a directory of the data
    // directory; a name S3 would refuse cannot be one, and is refused saying how to map it.
    let (code, message) = code_of(
        c.create_report_plan()
            .report_plan_name("nowhere")
            .report_delivery_channel(channel("Not_Configured", "", &["CSV"]))
            .report_setting(setting("BACKUP_JOB_REPORT", &[]))
            .send()
            .await,
    )
    .await;
    assert_eq!(code, "InvalidParameterValueException");
    assert!(
        message.contains("Not_Configured") && message.contains("[[report_buckets]]"),
        "{message}"
    );
    for bad in ["1plan", "has-dash"] {
        let (code, _) = code_of(
            c.create_report_plan()
                .report_plan_name(bad)
                .report_delivery_channel(channel("audit-reports", "", &["CSV"]))
                .report_setting(setting("BACKUP_JOB_REPORT", &[]))
                .send()
                .await,
        )
        .await;
        assert_eq!(code, "InvalidParameterValueException", "{bad}");
    }
    let no_framework = "arn:aws:backup:us-east-1:111122223333:framework:gone-0000";
    for (template, frameworks, word) in [
        ("SCAN_JOB_REPORT", &[][..], "scan"),
        ("NO_SUCH_REPORT", &[], "NO_SUCH_REPORT"),
        (
            "CONTROL_COMPLIANCE_REPORT",
            &[no_framework],
            "does not exist",
        ),
    ] {
        let (code, message) = code_of(
            c.create_report_plan()
                .report_plan_name("p")
                .report_delivery_channel(channel("audit-reports", "", &["CSV"]))
                .report_setting(setting(template, frameworks))
                .send()
                .await,
        )
        .await;
        assert_eq!(code, "InvalidParameterValueException", "{template}");
        assert!(message.contains(word), "{template}: {message}");
    }
    assert!(
        c.list_report_plans()
            .send()
            .await
            .unwrap()
            .report_plans()
            .is_empty()
    );

    // A bucket whose directory cannot be written: the job ends FAILED, saying why.
    create_plan(
        &c,
        "broken_plan",
        channel("broken", "x", &["CSV"]),
        setting("BACKUP_JOB_REPORT", &[]),
    )
    .await;
    let job = report(&c, "broken_plan").await;
    assert_eq!(job.status(), Some("FAILED"));
    let why = job.status_message().unwrap_or_default();
    assert!(
        why.contains("broken") && why.contains("[[report_buckets]]") && why.contains("3 attempts"),
        "{why}"
    );
    assert!(job.report_destination().unwrap().s3_keys().is_empty());
    let plan = c
        .describe_report_plan()
        .report_plan_name("broken_plan")
        .send()
        .await
        .unwrap();
    assert!(
        plan.report_plan()
            .unwrap()
            .last_attempted_execution_time()
            .is_some()
    );
    assert!(
        plan.report_plan()
            .unwrap()
            .last_successful_execution_time()
            .is_none()
    );
    let failed = c
        .list_report_jobs()
        .by_status("FAILED")
        .send()
        .await
        .unwrap();
    assert_eq!(failed.report_jobs().len(), 1);

    // UpdateReportPlan changes what the next job writes; tags work on the plan's ARN.
    c.update_report_plan()
        .report_plan_name("broken_plan")
        .report_delivery_channel(channel("audit-reports", "moved", &["JSON"]))
        .report_plan_description("now deliverable")
        .send()
        .await
        .unwrap();
    let job = report(&c, "broken_plan").await;
    assert_eq!(
        job.status(),
        Some("COMPLETED"),
        "{:?}",
        job.status_message()
    );
    let keys = job.report_destination().unwrap().s3_keys();
    assert!(
        keys.len() == 1 && keys[0].starts_with("moved/Backup/") && keys[0].ends_with(".json"),
        "{keys:?}"
    );
    let plan = c
        .describe_report_plan()
        .report_plan_name("broken_plan")
        .send()
        .await
        .unwrap();
    let plan = plan.report_plan().unwrap();
    assert_eq!(plan.report_plan_description(), Some("now deliverable"));
    let plan_arn = plan.report_plan_arn().unwrap().to_string();
    c.tag_resource()
        .resource_arn(&plan_arn)
        .tags("team", "audit")
        .send()
        .await
        .unwrap();
    let tags = c.list_tags().resource_arn(&plan_arn).send().await.unwrap();
    assert_eq!(
        tags.tags().unwrap().get("team").map(String::as_str),
        Some("audit")
    );
    let (code, _) = code_of(
        c.update_report_plan()
            .report_plan_name("broken_plan")
            .report_delivery_channel(channel("Not_Configured", "", &["CSV"]))
            .send()
            .await,
    )
    .await;
    assert_eq!(code, "InvalidParameterValueException");

    // Duplicate names, unknown plans, deletion.
    let (code, _) = code_of(
        c.create_report_plan()
            .report_plan_name("broken_plan")
            .report_delivery_channel(channel("audit-reports", "", &["CSV"]))
            .report_setting(setting("BACKUP_JOB_REPORT", &[]))
            .send()
            .await,
    )
    .await;
    assert_eq!(code, "AlreadyExistsException");
    c.delete_report_plan()
        .report_plan_name("broken_plan")
        .send()
        .await
        .unwrap();
    let (code, _) = code_of(
        c.describe_report_plan()
            .report_plan_name("broken_plan")
            .send()
            .await,
    )
    .await;
    assert_eq!(code, "ResourceNotFoundException");
    let (code, _) = code_of(
        c.start_report_job()
            .report_plan_name("broken_plan")
            .send()
            .await,
    )
    .await;
    assert_eq!(code, "ResourceNotFoundException");
}

fn control(name: &str, params: &[(&str, &str)]) -> FrameworkControl {
    FrameworkControl::builder()
        .control_name(name)
        .set_control_input_parameters(Some(
            params
                .iter()
                .map(|(n, v)| {
                    ControlInputParameter::builder()
                        .parameter_name(*n)
                        .parameter_value(*v)
                        .build()
                })
                .collect(),
        ))
        .build()
        .unwrap()
}

/// Restores `rp` into `target`, waits until the restore job is COMPLETED and returns its id.
async fn restore_completes(c: &Client, rp: &str, target: &str) -> String {
    let restore_id = c
        .start_restore_job()
        .recovery_point_arn(rp)
        .iam_role_arn(ROLE)
        .metadata("targetPath", target)
        .send()
        .await
        .unwrap()
        .restore_job_id()
        .unwrap()
        .to_string();
    wait_until("the restore job to end", 120, || async {
        let j = c
            .describe_restore_job()
            .restore_job_id(&restore_id)
            .send()
            .await
            .unwrap();
        (j.status() == Some(&RestoreJobStatus::Completed)).then_some(())
    })
    .await;
    restore_id
}

/// Waits until copy job `id` is COMPLETED (failing the test if it fails).
async fn copy_completes(c: &Client, id: &str) {
    wait_until("the copy job to end", 120, || async {
        let j = c.describe_copy_job().copy_job_id(id).send().await.unwrap();
        let state = j.copy_job().unwrap().state().cloned();
        assert_ne!(state, Some(CopyJobState::Failed), "{j:?}");
        (state == Some(CopyJobState::Completed)).then_some(())
    })
    .await;
}

/// `(control, resource)` -> compliance status, from a resource compliance report's items.
fn statuses(items: &[BTreeMap<String, String>]) -> BTreeMap<(String, String), String> {
    items
        .iter()
        .map(|i| {
            (
                (i["controlName"].clone(), i["resourceArn"].clone()),
                i["complianceStatus"].clone(),
            )
        })
        .collect()
}

/// Creates backup plan `daily` (05:00 every day into `primary`, points kept
/// `delete_after_days`) selecting `fs-docs`; returns its id.
async fn daily_plan(c: &Client, delete_after_days: Option<i64>) -> String {
    let rule = BackupRuleInput::builder()
        .rule_name("daily")
        .target_backup_vault_name("primary")
        .schedule_expression("cron(0 5 ? * * *)")
        .set_lifecycle(delete_after_days.map(|d| Lifecycle::builder().delete_after_days(d).build()))
        .build()
        .unwrap();
    let plan = BackupPlanInput::builder()
        .backup_plan_name("daily")
        .rules(rule)
        .build()
        .unwrap();
    let created = c
        .create_backup_plan()
        .backup_plan(plan)
        .send()
        .await
        .unwrap();
    let plan_id = created.backup_plan_id().unwrap().to_string();
    let selection = BackupSelection::builder()
        .selection_name("docs")
        .iam_role_arn(ROLE)
        .resources(DOCS)
        .build()
        .unwrap();
    c.create_backup_selection()
        .backup_plan_id(&plan_id)
        .backup_selection(selection)
        .send()
        .await
        .unwrap();
    plan_id
}

#[tokio::test]
async fn a_framework_sees_a_resource_turn_non_compliant() {
    let dir = temp_dir();
    let (server, c, root) = start(dir.path()).await;
    let plan_id = daily_plan(&c, Some(40)).await;
    let (_, state, rp) = backup(&c, "primary", DOCS).await;
    assert_eq!(state, BackupJobState::Completed);
    let rp = rp.unwrap();
    // A copy in another region, and a restore.
    let west = server.client_as(ACCOUNT, "anything", "us-west-2");
    let west_vault = west
        .create_backup_vault()
        .backup_vault_name("west")
        .send()
        .await
        .unwrap()
        .backup_vault_arn()
        .unwrap()
        .to_string();
    let copy_id = c
        .start_copy_job()
        .recovery_point_arn(&rp)
        .source_backup_vault_name("primary")
        .destination_backup_vault_arn(&west_vault)
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap()
        .copy_job_id()
        .unwrap()
        .to_string();
    copy_completes(&c, &copy_id).await;
    restore_completes(&c, &rp, dir.path().join("restored").to_str().unwrap()).await;

    // Refusals name what is wrong.
    let cases: [(&str, Vec<FrameworkControl>, &str); 5] = [
        (
            "bad_regions",
            vec![control(
                "BACKUP_RESOURCES_PROTECTED_BY_CROSS_REGION",
                &[("crossRegionList", "Mars!")],
            )],
            "Mars!",
        ),
        (
            "bad_control",
            vec![control("BACKUP_EVERYTHING_ALWAYS", &[])],
            "BACKUP_EVERYTHING_ALWAYS",
        ),
        (
            "bad_param",
            vec![control(
                "BACKUP_RECOVERY_POINT_MINIMUM_RETENTION_CHECK",
                &[("retentionDays", "35")],
            )],
            "retentionDays",
        ),
        (
            "bad_value",
            vec![control(
                "BACKUP_LAST_RECOVERY_POINT_CREATED",
                &[("recoveryPointAgeUnit", "fortnights")],
            )],
            "fortnights",
        ),
        (
            "9lives",
            vec![control("BACKUP_RECOVERY_POINT_ENCRYPTED", &[])],
            "",
        ),
    ];
    for (name, controls, word) in cases {
        let (code, message) = code_of(
            c.create_framework()
                .framework_name(name)
                .set_framework_controls(Some(controls))
                .send()
                .await,
        )
        .await;
        assert_eq!(code, "InvalidParameterValueException", "{name}");
        assert!(message.contains(word), "{name}: {message}");
    }

    let fw = c
        .create_framework()
        .framework_name("backup_basics")
        .framework_description("what we promise")
        .idempotency_token("fw-token")
        .framework_tags("owner", "audit")
        .framework_controls(control("BACKUP_RESOURCES_PROTECTED_BY_BACKUP_PLAN", &[]))
        .framework_controls(control(
            "BACKUP_LAST_RECOVERY_POINT_CREATED",
            &[
                ("recoveryPointAgeUnit", "days"),
                ("recoveryPointAgeValue", "1"),
            ],
        ))
        .framework_controls(control(
            "BACKUP_RECOVERY_POINT_MINIMUM_RETENTION_CHECK",
            &[("requiredRetentionDays", "35")],
        ))
        .framework_controls(control("BACKUP_RECOVERY_POINT_ENCRYPTED", &[]))
        .framework_controls(control(
            "BACKUP_PLAN_MIN_FREQUENCY_AND_MIN_RETENTION_CHECK",
            &[
                ("requiredFrequencyUnit", "hours"),
                ("requiredFrequencyValue", "24"),
                ("requiredRetentionDays", "35"),
            ],
        ))
        .framework_controls(control(
            "BACKUP_RESOURCES_PROTECTED_BY_CROSS_REGION",
            &[("crossRegionList", "us-west-2")],
        ))
        .framework_controls(control(
            "BACKUP_RESOURCES_PROTECTED_BY_CROSS_ACCOUNT",
            &[("crossAccountList", "444455556666")],
        ))
        .framework_controls(control(
            "RESTORE_TIME_FOR_RESOURCES_MEET_TARGET",
            &[("maxRestoreTime", "60")],
        ))
        .framework_controls(
            FrameworkControl::builder()
                .control_name("BACKUP_RESOURCES_PROTECTED_BY_BACKUP_VAULT_LOCK")
                .control_scope(
                    ControlScope::builder()
                        .compliance_resource_types("EFS")
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let fw_arn = fw.framework_arn().unwrap().to_string();
    assert!(
        fw_arn.starts_with(&format!(
            "arn:aws:backup:us-east-1:{ACCOUNT}:framework:backup_basics-"
        )),
        "{fw_arn}"
    );
    let again = c
        .create_framework()
        .framework_name("backup_basics")
        .idempotency_token("fw-token")
        .framework_controls(control("BACKUP_RECOVERY_POINT_ENCRYPTED", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(again.framework_arn(), Some(fw_arn.as_str()));
    let (code, _) = code_of(
        c.create_framework()
            .framework_name("backup_basics")
            .framework_controls(control("BACKUP_RECOVERY_POINT_ENCRYPTED", &[]))
            .send()
            .await,
    )
    .await;
    assert_eq!(code, "AlreadyExistsException");
    let d = c
        .describe_framework()
        .framework_name("backup_basics")
        .send()
        .await
        .unwrap();
    assert_eq!(d.framework_status(), Some("ACTIVE"));
    assert_eq!(d.deployment_status(), Some("COMPLETED"));
    assert_eq!(d.framework_controls().len(), 9);
    assert_eq!(d.idempotency_token(), Some("fw-token"));
    let listed = c.list_frameworks().send().await.unwrap();
    assert_eq!(listed.frameworks()[0].number_of_controls(), 9);
    let tags = c.list_tags().resource_arn(&fw_arn).send().await.unwrap();
    assert_eq!(
        tags.tags().unwrap().get("owner").map(String::as_str),
        Some("audit")
    );

    create_plan(
        &c,
        "resources",
        channel("audit-reports", "compliance", &["JSON", "CSV"]),
        setting("RESOURCE_COMPLIANCE_REPORT", &[&fw_arn]),
    )
    .await;
    create_plan(
        &c,
        "controls",
        channel("audit-reports", "compliance", &["CSV"]),
        setting("CONTROL_COMPLIANCE_REPORT", &[&fw_arn]),
    )
    .await;
    let job = report(&c, "resources").await;
    assert_eq!(
        job.status(),
        Some("COMPLETED"),
        "{:?}",
        job.status_message()
    );
    let before = statuses(&items(&root, &job, ".json"));
    assert_eq!(before, statuses(&items(&root, &job, ".csv")));
    let plan_arn = format!("arn:aws:backup:us-east-1:{ACCOUNT}:backup-plan:{plan_id}");
    let want: BTreeMap<(String, String), String> = [
        (
            ("BACKUP_RESOURCES_PROTECTED_BY_BACKUP_PLAN", DOCS),
            "COMPLIANT",
        ),
        (
            ("BACKUP_RESOURCES_PROTECTED_BY_BACKUP_PLAN", GONE),
            "NON_COMPLIANT",
        ),
        (("BACKUP_LAST_RECOVERY_POINT_CREATED", DOCS), "COMPLIANT"),
        (
            ("BACKUP_LAST_RECOVERY_POINT_CREATED", GONE),
            "NON_COMPLIANT",
        ),
        (
            ("BACKUP_RECOVERY_POINT_MINIMUM_RETENTION_CHECK", rp.as_str()),
            "COMPLIANT",
        ),
        (
            ("BACKUP_RECOVERY_POINT_ENCRYPTED", rp.as_str()),
            "COMPLIANT",
        ),
        (
            (
                "BACKUP_PLAN_MIN_FREQUENCY_AND_MIN_RETENTION_CHECK",
                plan_arn.as_str(),
            ),
            "COMPLIANT",
        ),
        (
            ("BACKUP_RESOURCES_PROTECTED_BY_BACKUP_VAULT_LOCK", DOCS),
            "NON_COMPLIANT",
        ),
        (
            ("BACKUP_RESOURCES_PROTECTED_BY_BACKUP_VAULT_LOCK", GONE),
            "NON_COMPLIANT",
        ),
        (
            ("BACKUP_RESOURCES_PROTECTED_BY_CROSS_REGION", DOCS),
            "COMPLIANT",
        ),
        (
            ("BACKUP_RESOURCES_PROTECTED_BY_CROSS_REGION", GONE),
            "NON_COMPLIANT",
        ),
        (
            ("BACKUP_RESOURCES_PROTECTED_BY_CROSS_ACCOUNT", DOCS),
            "NON_COMPLIANT",
        ),
        (
            ("BACKUP_RESOURCES_PROTECTED_BY_CROSS_ACCOUNT", GONE),
            "NON_COMPLIANT",
        ),
        (
            ("RESTORE_TIME_FOR_RESOURCES_MEET_TARGET", DOCS),
            "COMPLIANT",
        ),
    ]
    .into_iter()
    .map(|((c, r), s)| ((c.to_string(), r.to_string()), s.to_string()))
    .collect();
    assert_eq!(before, want);

    // The resource's last recovery point goes: it is no longer compliant.
    c.delete_recovery_point()
        .backup_vault_name("primary")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap();
    let job = report(&c, "resources").await;
    let after = statuses(&items(&root, &job, ".json"));
    let key = (
        "BACKUP_LAST_RECOVERY_POINT_CREATED".to_string(),
        DOCS.to_string(),
    );
    assert_eq!(after[&key], "NON_COMPLIANT", "{after:?}");
    assert!(
        !after.keys().any(|(_, r)| *r == rp),
        "the deleted point is still evaluated: {after:?}"
    );
    let job = report(&c, "controls").await;
    assert_eq!(
        job.status(),
        Some("COMPLETED"),
        "{:?}",
        job.status_message()
    );
    let controls: BTreeMap<String, BTreeMap<String, String>> = items(&root, &job, ".csv")
        .into_iter()
        .map(|i| (i["controlName"].clone(), i))
        .collect();
    let last = &controls["BACKUP_LAST_RECOVERY_POINT_CREATED"];
    assert_eq!(last["controlComplianceStatus"], "NON_COMPLIANT");
    assert_eq!(last["compliantResourceCount"], "0");
    assert_eq!(last["nonCompliantResourceCount"], "2");
    assert_eq!(
        controls["BACKUP_RECOVERY_POINT_ENCRYPTED"]["controlComplianceStatus"],
        "NOT_APPLICABLE"
    );
    assert_eq!(
        controls["BACKUP_PLAN_MIN_FREQUENCY_AND_MIN_RETENTION_CHECK"]["controlComplianceStatus"],
        "COMPLIANT"
    );

    // A new recovery point in a vault whose lock meets the control: compliant again on both.
    c.put_backup_vault_lock_configuration()
        .backup_vault_name("secondary")
        .min_retention_days(7)
        .max_retention_days(365)
        .send()
        .await
        .unwrap();
    let (_, state, locked_rp) = backup(&c, "secondary", DOCS).await;
    assert_eq!(state, BackupJobState::Completed);
    let job = report(&c, "resources").await;
    let now = statuses(&items(&root, &job, ".json"));
    for control in [
        "BACKUP_LAST_RECOVERY_POINT_CREATED",
        "BACKUP_RESOURCES_PROTECTED_BY_BACKUP_VAULT_LOCK",
    ] {
        assert_eq!(
            now[&(control.to_string(), DOCS.to_string())],
            "COMPLIANT",
            "{control}: {now:?}"
        );
    }
    let locked = (
        "BACKUP_RECOVERY_POINT_MINIMUM_RETENTION_CHECK".to_string(),
        locked_rp.unwrap(),
    );
    assert_eq!(now[&locked], "COMPLIANT");

    // A framework in use cannot be deleted; once its plans are gone it can.
    let (code, message) = code_of(
        c.delete_framework()
            .framework_name("backup_basics")
            .send()
            .await,
    )
    .await;
    assert_eq!(code, "ConflictException");
    assert!(
        message.contains("resources") || message.contains("controls"),
        "{message}"
    );
    c.update_framework()
        .framework_name("backup_basics")
        .framework_controls(control("BACKUP_RECOVERY_POINT_ENCRYPTED", &[]))
        .send()
        .await
        .unwrap();
    let d = c
        .describe_framework()
        .framework_name("backup_basics")
        .send()
        .await
        .unwrap();
    assert_eq!(d.framework_controls().len(), 1);
    for p in ["resources", "controls"] {
        c.delete_report_plan()
            .report_plan_name(p)
            .send()
            .await
            .unwrap();
    }
    c.delete_framework()
        .framework_name("backup_basics")
        .send()
        .await
        .unwrap();
    let (code, _) = code_of(
        c.describe_framework()
            .framework_name("backup_basics")
            .send()
            .await,
    )
    .await;
    assert_eq!(code, "ResourceNotFoundException");
}

/// Moving the clock two days runs the day as it would have passed: the plan's backups fire at
/// 05:00 and each daily report (at 01:00) lists the one backup of the 24 hours before it.
#[tokio::test]
async fn daily_reports_follow_the_moved_clock_day_by_day() {
    let dir = temp_dir();
    let (server, c, root) = start(dir.path()).await;
    daily_plan(&c, None).await;
    create_plan(
        &c,
        "nightly",
        channel("audit-reports", "", &["CSV"]),
        setting("BACKUP_JOB_REPORT", &[]),
    )
    .await;
    let start_secs = server.clock_secs().await;
    server.advance_clock(2 * DAY + 60).await;

    let backups: BTreeSet<(String, String)> = c
        .list_backup_jobs()
        .send()
        .await
        .unwrap()
        .backup_jobs()
        .iter()
        .map(|j| {
            (
                j.backup_job_id().unwrap().to_string(),
                j.state().unwrap().as_str().to_string(),
            )
        })
        .collect();
    assert_eq!(backups.len(), 2, "{backups:?}");
    let jobs = c
        .list_report_jobs()
        .by_report_plan_name("nightly")
        .send()
        .await
        .unwrap();
    assert_eq!(jobs.report_jobs().len(), 2, "{:?}", jobs.report_jobs());
    let mut seen = BTreeSet::new();
    for (day, job) in jobs.report_jobs().iter().enumerate() {
        assert_eq!(
            job.status(),
            Some("COMPLETED"),
            "{:?}",
            job.status_message()
        );
        let at = job.creation_time().unwrap().secs();
        assert!(
            (at - start_secs - (day as i64 + 1) * DAY).abs() < 5,
            "report {day} at {at}"
        );
        let rows = pairs(&items(&root, job, ".csv"), "backupJobId", "jobStatus");
        assert_eq!(rows.len(), 1, "report {day}: {rows:?}");
        seen.extend(rows);
    }
    assert_eq!(seen, backups);
    assert!(seen.iter().all(|(_, s)| s == "COMPLETED"), "{seen:?}");
}

/// A vault access policy that denies deleting recovery points is enforced (DeleteRecoveryPoint,
/// and removing the policy itself, answer AccessDeniedException and change nothing), and
/// BACKUP_RECOVERY_POINT_MANUAL_DELETION_DISABLED sees the vault turn compliant while the
/// vault without such a policy stays non-compliant.
#[tokio::test]
async fn a_vault_policy_that_denies_deletion_is_enforced_and_audited() {
    let dir = temp_dir();
    let (_server, c, root) = start(dir.path()).await;
    let (_, state, rp) = backup(&c, "primary", DOCS).await;
    assert_eq!(state, BackupJobState::Completed);
    let rp = rp.unwrap();
    let fw_arn = c
        .create_framework()
        .framework_name("no_manual_deletion")
        .framework_controls(control(
            "BACKUP_RECOVERY_POINT_MANUAL_DELETION_DISABLED",
            &[("principalArnList", "arn:aws:iam::111122223333:role/admin")],
        ))
        .send()
        .await
        .unwrap()
        .framework_arn()
        .unwrap()
        .to_string();
    create_plan(
        &c,
        "deletion",
        channel("audit-reports", "deletion", &["JSON"]),
        setting("RESOURCE_COMPLIANCE_REPORT", &[&fw_arn]),
    )
    .await;
    let vault_arn = |v: &str| format!("arn:aws:backup:us-east-1:{ACCOUNT}:backup-vault:{v}");
    let control_of = |items: &[BTreeMap<String, String>], v: &str| {
        statuses(items)
            .get(&(
                "BACKUP_RECOVERY_POINT_MANUAL_DELETION_DISABLED".to_string(),
                vault_arn(v),
            ))
            .cloned()
    };
    let job = report(&c, "deletion").await;
    let before = items(&root, &job, "json");
    assert_eq!(
        control_of(&before, "primary").as_deref(),
        Some("NON_COMPLIANT")
    );

    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "no-manual-deletion",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": ["backup:DeleteRecoveryPoint", "backup:DeleteBackupVaultAccessPolicy"],
            "Resource": "*",
            "Condition": {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/admin"}}
        }]
    });
    c.put_backup_vault_access_policy()
        .backup_vault_name("primary")
        .policy(policy.to_string())
        .send()
        .await
        .unwrap();
    let err = c
        .delete_recovery_point()
        .backup_vault_name("primary")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 403);
    let (code, message) = (
        err.code().unwrap_or_default().to_string(),
        err.message().unwrap_or_default().to_string(),
    );
    assert_eq!(code, "AccessDeniedException", "{message}");
    assert!(
        message.contains("backup:DeleteRecoveryPoint") && message.contains("explicit deny"),
        "{message}"
    );
    let still = c
        .describe_recovery_point()
        .backup_vault_name("primary")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap();
    assert_eq!(still.recovery_point_arn(), Some(rp.as_str()));
    let (code, _) = code_of(
        c.delete_backup_vault_access_policy()
            .backup_vault_name("primary")
            .send()
            .await,
    )
    .await;
    assert_eq!(code, "AccessDeniedException");
    assert!(
        c.get_backup_vault_access_policy()
            .backup_vault_name("primary")
            .send()
            .await
            .is_ok()
    );
    // What the policy does not deny still works.
    c.update_recovery_point_lifecycle()
        .backup_vault_name("primary")
        .recovery_point_arn(&rp)
        .lifecycle(Lifecycle::builder().delete_after_days(60).build())
        .send()
        .await
        .unwrap();

    let job = report(&c, "deletion").await;
    let after = items(&root, &job, "json");
    assert_eq!(control_of(&after, "primary").as_deref(), Some("COMPLIANT"));
    assert_eq!(
        control_of(&after, "secondary").as_deref(),
        Some("NON_COMPLIANT")
    );
}

/// RESOURCES_IN_LOGICALLY_AIR_GAPPED_VAULT: a resource backed up only into an ordinary vault is
/// non-compliant; once a copy of its point reaches a logically air-gapped vault it is
/// compliant; a day-old requirement is not met two days later.
#[tokio::test]
async fn the_air_gapped_control_follows_real_copies() {
    let dir = temp_dir();
    let (server, c, root) = start(dir.path()).await;
    let gap_arn = c
        .create_logically_air_gapped_backup_vault()
        .backup_vault_name("gap")
        .min_retention_days(7)
        .max_retention_days(100)
        .send()
        .await
        .unwrap()
        .backup_vault_arn()
        .unwrap()
        .to_string();
    let (_, state, rp) = backup(&c, "primary", DOCS).await;
    assert_eq!(state, BackupJobState::Completed);
    let fw_arn = c
        .create_framework()
        .framework_name("air_gapped")
        .framework_controls(control(
            "RESOURCES_IN_LOGICALLY_AIR_GAPPED_VAULT",
            &[
                ("recoveryPointAgeUnit", "days"),
                ("recoveryPointAgeValue", "1"),
            ],
        ))
        .send()
        .await
        .unwrap()
        .framework_arn()
        .unwrap()
        .to_string();
    create_plan(
        &c,
        "gapped",
        channel("audit-reports", "gapped", &["JSON"]),
        setting("RESOURCE_COMPLIANCE_REPORT", &[&fw_arn]),
    )
    .await;
    let status = |items: &[BTreeMap<String, String>]| {
        statuses(items)
            .get(&(
                "RESOURCES_IN_LOGICALLY_AIR_GAPPED_VAULT".to_string(),
                DOCS.to_string(),
            ))
            .cloned()
    };
    let job = report(&c, "gapped").await;
    assert_eq!(
        status(&items(&root, &job, "json")).as_deref(),
        Some("NON_COMPLIANT")
    );

    let copy_id = c
        .start_copy_job()
        .recovery_point_arn(rp.unwrap())
        .source_backup_vault_name("primary")
        .destination_backup_vault_arn(&gap_arn)
        .iam_role_arn(ROLE)
        .lifecycle(Lifecycle::builder().delete_after_days(30).build())
        .send()
        .await
        .unwrap()
        .copy_job_id()
        .unwrap()
        .to_string();
    copy_completes(&c, &copy_id).await;
    let job = report(&c, "gapped").await;
    assert_eq!(
        status(&items(&root, &job, "json")).as_deref(),
        Some("COMPLIANT")
    );

    // Two days later the copy is older than the one day the control asks for.
    server.move_clock("{\"advance_seconds\": 172800}").await;
    let job = report(&c, "gapped").await;
    assert_eq!(
        status(&items(&root, &job, "json")).as_deref(),
        Some("NON_COMPLIANT")
    );
}

/// History retention: a report job is forgotten once it ended longer ago than the retention
/// (30 days by default), its report files stay; the plan's daily jobs of the last 30 days stay
/// listed.
#[tokio::test]
async fn report_jobs_are_forgotten_after_the_retention_and_their_files_stay() {
    let dir = temp_dir();
    let (server, c, root) = start(dir.path()).await;
    create_plan(
        &c,
        "kept",
        channel("audit-reports", "", &["CSV"]),
        setting("BACKUP_JOB_REPORT", &[]),
    )
    .await;
    let first = report(&c, "kept").await;
    assert_eq!(first.status(), Some("COMPLETED"));
    let id = first.report_job_id().unwrap().to_string();
    let keys = first.report_destination().unwrap().s3_keys().to_vec();
    assert!(!keys.is_empty());

    server.advance_clock(29 * DAY).await;
    c.describe_report_job()
        .report_job_id(&id)
        .send()
        .await
        .unwrap();

    server.advance_clock(2 * DAY).await;
    let e = c
        .describe_report_job()
        .report_job_id(&id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    let now = server.clock_secs().await;
    let mut listed = Vec::new();
    let mut token = None;
    loop {
        let page = c
            .list_report_jobs()
            .by_report_plan_name("kept")
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        listed.extend(page.report_jobs().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert!(
        listed.len() >= 28,
        "the daily jobs of the last 30 days stay: {}",
        listed.len()
    );
    for j in &listed {
        assert_ne!(j.report_job_id(), Some(id.as_str()));
        let ended = j.completion_time().unwrap().secs();
        assert!(
            now - ended <= 30 * DAY,
            "a job {} s old is listed",
            now - ended
        );
    }
    for k in &keys {
        assert!(root.join(k).is_file(), "{k} stays");
    }
}
