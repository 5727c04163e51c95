//! Malware scan jobs end to end: the EICAR test file planted in one backup of a real
//! directory tree and not in a clean one is found in the one (naming the file) and not in the
//! other; an incremental scan based on the clean point reads only the changed files (the job's
//! counts say so); an operator's rule file finds its own string; a plan rule's ScanActions scan
//! the backups the rule makes; ListScanJobs filters, ListScanJobSummaries counts; every refusal
//! answers its AWS error code; a rule file added is used after SIGHUP.

use std::path::Path;

use aws_sdk_backup::Client;
use aws_sdk_backup::types::{
    AggregationPeriod, BackupJobState, BackupPlanInput, BackupRuleInput, BackupSelection,
    MalwareScanner, ScanAction, ScanJobStatus, ScanMode, ScanResultStatus, ScanSetting, ScanState,
};

use crate::harness::*;

const EFS_ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-scan";
const EBS_ARN: &str = "arn:aws:ec2:us-east-1:111122223333:volume/vol-scan";
const ROLE: &str = "arn:aws:iam::111122223333:role/backup";
const SCANNER_ROLE: &str = "arn:aws:iam::111122223333:role/scanner";

/// The EICAR anti-malware test string, put together here so this source file is not itself
/// the test file.
fn eicar() -> String {
    [
        "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
        "EICAR-STANDARD-",
        "ANTIVIRUS-TEST-FILE!$H+H*",
    ]
    .concat()
}

/// A development-mode server for ACCOUNT on the configuration [`setup`] wrote in `dir`.
async fn dev_server(dir: &Path) -> Server {
    let cfg = dir.join("coffer.toml");
    Server::start(&[
        "--dev",
        "--account-id",
        ACCOUNT,
        "--config",
        cfg.to_str().unwrap(),
    ])
    .await
}

/// A clean tree of three files, an EBS image, a rule file and the configuration naming them.
fn setup(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("docs")).unwrap();
    std::fs::write(src.join("a.txt"), "alpha\n".repeat(100)).unwrap();
    std::fs::write(src.join("b.txt"), "bravo\n".repeat(100)).unwrap();
    std::fs::write(src.join("docs/c.txt"), "charlie\n".repeat(100)).unwrap();
    let disk = dir.join("disk.img");
    std::fs::write(&disk, vec![3u8; 8192]).unwrap();
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("custom.yar"),
        "rule Coffer_Custom_Marker {\n  strings:\n    $m = \"coffer-custom-marker-7f3a\"\n  condition:\n    $m\n}\n",
    )
    .unwrap();
    let cfg = dir.join("coffer.toml");
    std::fs::write(
        &cfg,
        format!(
            "scan_rules = [\"{}/*.yar\"]\n\n[[resources]]\narn = \"{EFS_ARN}\"\nsource = \"{}\"\n\n[[resources]]\narn = \"{EBS_ARN}\"\nsource = \"{}\"\n",
            rules.display(),
            src.display(),
            disk.display()
        ),
    )
    .unwrap();
    src
}

async fn backup(c: &Client, arn: &str) -> String {
    let job = c
        .start_backup_job()
        .backup_vault_name("main")
        .resource_arn(arn)
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap();
    let id = job.backup_job_id().unwrap().to_string();
    wait_until("the backup job to complete", 60, || {
        let (c, id) = (c.clone(), id.clone());
        async move {
            let d = c
                .describe_backup_job()
                .backup_job_id(id)
                .send()
                .await
                .unwrap();
            assert_ne!(d.state(), Some(&BackupJobState::Failed));
            (d.state() == Some(&BackupJobState::Completed)).then_some(())
        }
    })
    .await;
    job.recovery_point_arn().unwrap().to_string()
}

/// Starts a scan of `rp` (incremental when `base` is given).
async fn start_scan(
    c: &Client,
    rp: &str,
    base: Option<&str>,
) -> Result<
    String,
    aws_sdk_backup::error::SdkError<aws_sdk_backup::operation::start_scan_job::StartScanJobError>,
> {
    c.start_scan_job()
        .backup_vault_name("main")
        .recovery_point_arn(rp)
        .iam_role_arn(ROLE)
        .scanner_role_arn(SCANNER_ROLE)
        .malware_scanner(MalwareScanner::Guardduty)
        .scan_mode(if base.is_some() {
            ScanMode::IncrementalScan
        } else {
            ScanMode::FullScan
        })
        .set_scan_base_recovery_point_arn(base.map(str::to_string))
        .send()
        .await
        .map(|o| o.scan_job_id().to_string())
}

/// Waits for scan job `id` to end COMPLETED; its description.
async fn completed(
    c: &Client,
    id: &str,
) -> aws_sdk_backup::operation::describe_scan_job::DescribeScanJobOutput {
    wait_until("the scan job to complete", 60, || {
        let c = c.clone();
        async move {
            let d = c.describe_scan_job().scan_job_id(id).send().await.unwrap();
            assert_ne!(d.state(), &ScanState::Failed, "{:?}", d.status_message());
            (d.state() == &ScanState::Completed).then_some(d)
        }
    })
    .await
}

fn result(
    d: &aws_sdk_backup::operation::describe_scan_job::DescribeScanJobOutput,
) -> Option<&ScanResultStatus> {
    d.scan_result().map(|r| r.scan_result_status())
}

fn code<E: aws_sdk_backup::error::ProvideErrorMetadata>(e: &E) -> String {
    format!("{}: {}", e.code().unwrap_or("?"), e.message().unwrap_or(""))
}

#[tokio::test]
async fn scans_find_eicar_and_custom_rules_and_incremental_scans_read_only_changes() {
    let dir = temp_dir();
    let src = setup(dir.path());
    let server = dev_server(dir.path()).await;
    let c = server.client_as(ACCOUNT, "anything", "us-east-1");
    c.create_backup_vault()
        .backup_vault_name("main")
        .send()
        .await
        .unwrap();

    // The clean point: every file read, nothing found.
    let clean = backup(&c, EFS_ARN).await;
    let id = start_scan(&c, &clean, None).await.unwrap();
    let d = completed(&c, &id).await;
    assert_eq!(result(&d), Some(&ScanResultStatus::NoThreatsFound));
    let m = d.status_message().unwrap();
    assert!(m.starts_with("Scanned 3 files (2000 bytes)"), "{m}");
    assert_eq!(d.scan_mode(), &ScanMode::FullScan);
    assert_eq!(d.resource_arn(), EFS_ARN);
    assert_eq!(d.recovery_point_arn(), clean.as_str());
    assert!(d.scan_id().is_some() && d.completion_date().is_some());

    // EICAR planted, one file changed: the full scan names the file and the rule.
    std::fs::write(src.join("docs/eicar.com"), eicar()).unwrap();
    std::fs::write(src.join("b.txt"), "bravo two\n".repeat(100)).unwrap();
    let infected = backup(&c, EFS_ARN).await;
    let full = completed(&c, &start_scan(&c, &infected, None).await.unwrap()).await;
    assert_eq!(result(&full), Some(&ScanResultStatus::ThreatsFound));
    let m = full.status_message().unwrap();
    assert!(m.starts_with("Scanned 4 files"), "{m}");
    assert!(m.contains("docs/eicar.com (EICAR_Test_File)"), "{m}");
    assert!(!m.contains("b.txt"), "{m}");

    // Incremental from the clean point: only the two changed files are read.
    let inc_id = start_scan(&c, &infected, Some(&clean)).await.unwrap();
    let inc = completed(&c, &inc_id).await;
    assert_eq!(result(&inc), Some(&ScanResultStatus::ThreatsFound));
    assert_eq!(inc.scan_mode(), &ScanMode::IncrementalScan);
    assert_eq!(inc.scan_base_recovery_point_arn(), Some(clean.as_str()));
    let m = inc.status_message().unwrap();
    let changed = 1000 + eicar().len();
    assert!(
        m.starts_with(&format!(
            "Scanned 2 files ({changed} bytes); skipped 2 unchanged files (1400 bytes)."
        )),
        "{m}"
    );
    assert!(m.contains("docs/eicar.com"), "{m}");

    // The operator's rule file finds its own string.
    std::fs::remove_file(src.join("docs/eicar.com")).unwrap();
    std::fs::write(src.join("notes.txt"), "x coffer-custom-marker-7f3a y").unwrap();
    let marked = backup(&c, EFS_ARN).await;
    let custom = completed(&c, &start_scan(&c, &marked, None).await.unwrap()).await;
    assert_eq!(result(&custom), Some(&ScanResultStatus::ThreatsFound));
    let m = custom.status_message().unwrap();
    assert!(m.contains("notes.txt (Coffer_Custom_Marker)"), "{m}");
    assert!(!m.contains("eicar"), "{m}");

    // ListScanJobs and its filters.
    let all = c.list_scan_jobs().send().await.unwrap();
    assert_eq!(all.scan_jobs().len(), 4);
    let of_infected = c
        .list_scan_jobs()
        .by_recovery_point_arn(&infected)
        .send()
        .await
        .unwrap();
    let mut ids: Vec<_> = of_infected
        .scan_jobs()
        .iter()
        .map(|j| j.scan_job_id().to_string())
        .collect();
    ids.sort();
    let mut want = vec![full.scan_job_id().to_string(), inc_id.clone()];
    want.sort();
    assert_eq!(ids, want);
    let clean_only = c
        .list_scan_jobs()
        .by_scan_result_status(ScanResultStatus::NoThreatsFound)
        .send()
        .await
        .unwrap();
    assert_eq!(clean_only.scan_jobs().len(), 1);
    assert_eq!(clean_only.scan_jobs()[0].scan_job_id(), id);
    let paged = c.list_scan_jobs().max_results(3).send().await.unwrap();
    assert_eq!(paged.scan_jobs().len(), 3);
    let rest = c
        .list_scan_jobs()
        .max_results(3)
        .next_token(paged.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.scan_jobs().len(), 1);
    assert!(rest.next_token().is_none());

    // Summaries: three jobs found threats and one did not, all COMPLETED, of type EFS.
    let s = c
        .list_scan_job_summaries()
        .aggregation_period(AggregationPeriod::SevenDays)
        .send()
        .await
        .unwrap();
    let mut rows: Vec<_> = s
        .scan_job_summaries()
        .iter()
        .map(|r| {
            (
                r.state().cloned(),
                r.scan_result_status().cloned(),
                r.resource_type().map(str::to_string),
                r.count(),
            )
        })
        .collect();
    rows.sort_by_key(|r| r.3);
    assert_eq!(
        rows,
        vec![
            (
                Some(ScanJobStatus::Completed),
                Some(ScanResultStatus::NoThreatsFound),
                Some("EFS".to_string()),
                1
            ),
            (
                Some(ScanJobStatus::Completed),
                Some(ScanResultStatus::ThreatsFound),
                Some("EFS".to_string()),
                3
            ),
        ]
    );
    let threats = c
        .list_scan_job_summaries()
        .aggregation_period(AggregationPeriod::SevenDays)
        .scan_result_status(ScanResultStatus::ThreatsFound)
        .send()
        .await
        .unwrap();
    assert_eq!(threats.scan_job_summaries().len(), 1);
    assert_eq!(threats.scan_job_summaries()[0].count(), 3);

    // Refusals.
    let missing = clean.replace(&clean[clean.len() - 12..], "000000000000");
    let e = start_scan(&c, &missing, None).await.unwrap_err();
    assert!(
        code(&e).starts_with("ResourceNotFoundException"),
        "{}",
        code(&e)
    );
    let e = c
        .start_scan_job()
        .backup_vault_name("main")
        .recovery_point_arn(&clean)
        .iam_role_arn(ROLE)
        .scanner_role_arn(SCANNER_ROLE)
        .malware_scanner(MalwareScanner::from("CLAMAV"))
        .scan_mode(ScanMode::FullScan)
        .send()
        .await
        .unwrap_err();
    assert!(
        code(&e).starts_with("InvalidParameterValueException") && code(&e).contains("GUARDDUTY"),
        "{}",
        code(&e)
    );
    let e = c
        .start_scan_job()
        .backup_vault_name("main")
        .recovery_point_arn(&infected)
        .iam_role_arn(ROLE)
        .scanner_role_arn(SCANNER_ROLE)
        .malware_scanner(MalwareScanner::Guardduty)
        .scan_mode(ScanMode::IncrementalScan)
        .send()
        .await
        .unwrap_err();
    assert!(
        code(&e).starts_with("InvalidParameterValueException")
            && code(&e).contains("ScanBaseRecoveryPointArn"),
        "{}",
        code(&e)
    );
    let disk = backup(&c, EBS_ARN).await;
    let e = start_scan(&c, &infected, Some(&disk)).await.unwrap_err();
    assert!(
        code(&e).starts_with("InvalidParameterValueException")
            && code(&e).contains("same resource"),
        "{}",
        code(&e)
    );
    let e = c
        .describe_scan_job()
        .scan_job_id("NO-SUCH-JOB")
        .send()
        .await
        .unwrap_err();
    assert!(
        code(&e).starts_with("ResourceNotFoundException"),
        "{}",
        code(&e)
    );
    // No continuous backups in Coffer: no point-in-time results, as for a point without them.
    // (The pinned SDK has no GetPITRMalwareScanResults yet: the request is sent as it would.)
    let query = format!(
        "/scan/pitr-malware-scan-results?RecoveryPointArn={}&BackupVaultName=main&ScanEndTime=2026-01-01T00%3A00%3A00Z&MalwareScanner=GUARDDUTY",
        clean.replace(':', "%3A")
    );
    let (status, headers, body) = server.raw("GET", &query, &[], b"").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        headers.contains("x-amzn-errortype: resourcenotfoundexception"),
        "{headers}"
    );
    assert!(body.contains("continuous"), "{body}");
    // Refusals made no jobs.
    assert_eq!(
        c.list_scan_jobs().send().await.unwrap().scan_jobs().len(),
        4
    );

    // A rule file added, then SIGHUP: the rules are compiled again and the next scans use it.
    std::fs::write(
        dir.path().join("rules/second.yar"),
        "rule Second_Rule { strings: $s = \"alpha\" condition: $s }\n",
    )
    .unwrap();
    server.hup();
    let m = wait_until("a scan with the reloaded rules", 30, || {
        let (c, clean) = (c.clone(), clean.clone());
        async move {
            let d = completed(&c, &start_scan(&c, &clean, None).await.unwrap()).await;
            let m = d.status_message().unwrap().to_string();
            m.contains("Second_Rule").then_some(m)
        }
    })
    .await;
    assert!(
        m.contains("Threats found in 1 files: a.txt (Second_Rule)."),
        "{m}"
    );
}

#[tokio::test]
async fn a_rule_with_scan_actions_scans_the_backups_it_makes() {
    let dir = temp_dir();
    let src = setup(dir.path());
    std::fs::write(src.join("docs/eicar.com"), eicar()).unwrap();
    let server = dev_server(dir.path()).await;
    let c = server.client_as(ACCOUNT, "anything", "us-east-1");
    c.create_backup_vault()
        .backup_vault_name("main")
        .send()
        .await
        .unwrap();
    let rule = || {
        BackupRuleInput::builder()
            .rule_name("daily")
            .target_backup_vault_name("main")
            .schedule_expression("cron(0 5 ? * * *)")
            .scan_actions(
                ScanAction::builder()
                    .malware_scanner(MalwareScanner::Guardduty)
                    .scan_mode(ScanMode::FullScan)
                    .build(),
            )
            .build()
            .unwrap()
    };
    // ScanActions without the plan's ScanSettings are refused.
    let e = c
        .create_backup_plan()
        .backup_plan(
            BackupPlanInput::builder()
                .backup_plan_name("bad")
                .rules(rule())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert!(
        code(&e).starts_with("InvalidParameterValueException") && code(&e).contains("ScanSettings"),
        "{}",
        code(&e)
    );
    let plan = c
        .create_backup_plan()
        .backup_plan(
            BackupPlanInput::builder()
                .backup_plan_name("scanned")
                .rules(rule())
                .scan_settings(
                    ScanSetting::builder()
                        .malware_scanner(MalwareScanner::Guardduty)
                        .resource_types("EFS")
                        .scanner_role_arn(SCANNER_ROLE)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let plan_id = plan.backup_plan_id().unwrap().to_string();
    c.create_backup_selection()
        .backup_plan_id(&plan_id)
        .backup_selection(
            BackupSelection::builder()
                .selection_name("both")
                .iam_role_arn(ROLE)
                .resources(EFS_ARN)
                .resources(EBS_ARN)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    server.move_clock("{\"advance_seconds\": 86400}").await;
    // The EFS backup is scanned (the plan's ScanSetting names EFS); the EBS one is not.
    let job = wait_until("the rule's scan to complete", 60, || {
        let c = c.clone();
        async move {
            let l = c.list_scan_jobs().send().await.unwrap();
            let j = l.scan_jobs().first().cloned()?;
            (j.state() == Some(&ScanState::Completed)).then_some(j)
        }
    })
    .await;
    assert_eq!(job.resource_arn(), EFS_ARN);
    assert_eq!(job.scanner_role_arn(), SCANNER_ROLE);
    let by = job.created_by().unwrap();
    assert_eq!(by.backup_plan_id(), plan_id);
    assert!(!by.backup_rule_id().is_empty());
    assert_eq!(
        job.scan_result().map(|r| r.scan_result_status()),
        Some(&ScanResultStatus::ThreatsFound)
    );
    assert!(
        job.status_message()
            .unwrap()
            .contains("docs/eicar.com (EICAR_Test_File)"),
        "{:?}",
        job.status_message()
    );
    wait_until("both backups of the firing", 60, || {
        let c = c.clone();
        async move {
            let points = c
                .list_recovery_points_by_backup_vault()
                .backup_vault_name("main")
                .send()
                .await
                .unwrap();
            (points.recovery_points().len() == 2).then_some(())
        }
    })
    .await;
    assert_eq!(
        c.list_scan_jobs().send().await.unwrap().scan_jobs().len(),
        1
    );
}

#[tokio::test]
async fn scan_jobs_survive_a_kill_and_run_after_the_restart() {
    let dir = temp_dir();
    let src = setup(dir.path());
    std::fs::write(src.join("docs/eicar.com"), eicar()).unwrap();
    let cfg = dir.path().join("coffer.toml");
    let data = dir.path().join("data");
    let args = [
        "--dev",
        "--account-id",
        ACCOUNT,
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ];
    let server = Server::start(&args).await;
    let c = server.client_as(ACCOUNT, "anything", "us-east-1");
    c.create_backup_vault()
        .backup_vault_name("main")
        .send()
        .await
        .unwrap();
    let rp = backup(&c, EFS_ARN).await;
    // More jobs than run at once, killed (SIGKILL) straight after: whatever state each was
    // in, the restarted Coffer carries every one to its end.
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(start_scan(&c, &rp, None).await.unwrap());
    }
    server.kill().await;
    let server = Server::start(&args).await;
    let c = server.client_as(ACCOUNT, "anything", "us-east-1");
    for id in &ids {
        let d = completed(&c, id).await;
        assert_eq!(result(&d), Some(&ScanResultStatus::ThreatsFound));
        assert!(
            d.status_message()
                .unwrap()
                .contains("docs/eicar.com (EICAR_Test_File)"),
            "{:?}",
            d.status_message()
        );
    }
    assert_eq!(
        c.list_scan_jobs().send().await.unwrap().scan_jobs().len(),
        4
    );
}

/// History retention: an ended scan job and the idempotency token that started it are
/// forgotten once it ended longer ago than the retention (30 days by default); the token then
/// starts a new scan, and the recovery point scanned stays.
#[tokio::test]
async fn ended_scan_jobs_are_forgotten_after_the_retention() {
    const DAY: i64 = 86_400;
    let dir = temp_dir();
    setup(dir.path());
    let server = dev_server(dir.path()).await;
    let c = server.client();
    c.create_backup_vault()
        .backup_vault_name("main")
        .send()
        .await
        .unwrap();
    let rp = backup(&c, EFS_ARN).await;
    let start = |token: &'static str| {
        let (c, rp) = (c.clone(), rp.clone());
        async move {
            c.start_scan_job()
                .backup_vault_name("main")
                .recovery_point_arn(rp)
                .iam_role_arn(ROLE)
                .scanner_role_arn(SCANNER_ROLE)
                .malware_scanner(MalwareScanner::Guardduty)
                .scan_mode(ScanMode::FullScan)
                .idempotency_token(token)
                .send()
                .await
                .unwrap()
                .scan_job_id()
                .to_string()
        }
    };
    let id = start("scan-token").await;
    assert_eq!(
        result(&completed(&c, &id).await),
        Some(&ScanResultStatus::NoThreatsFound)
    );
    assert_eq!(start("scan-token").await, id, "the token answers its job");

    server.advance_clock(29 * DAY).await;
    c.describe_scan_job().scan_job_id(&id).send().await.unwrap();

    server.advance_clock(2 * DAY).await;
    let e = c
        .describe_scan_job()
        .scan_job_id(&id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    let listed = c.list_scan_jobs().send().await.unwrap();
    assert!(listed.scan_jobs().is_empty(), "{listed:?}");
    let again = start("scan-token").await;
    assert_ne!(again, id, "the token went with its job");
    assert_eq!(
        result(&completed(&c, &again).await),
        Some(&ScanResultStatus::NoThreatsFound)
    );
    c.describe_recovery_point()
        .backup_vault_name("main")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap();
}
