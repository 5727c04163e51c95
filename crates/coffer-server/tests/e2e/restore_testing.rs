//! Restore testing end to end: a restore testing plan run over several days of the
//! development clock restores each day's newest recovery point into a scratch directory,
//! checks every file against the recovery point, and deletes the scratch data when the
//! validation window ends; a damaged vault makes the restore test fail and say why. The
//! plan and selection operations return every field as sent, with AWS's defaults.

use std::path::{Path, PathBuf};

use aws_sdk_backup::Client;
use aws_sdk_backup::error::ProvideErrorMetadata;
use aws_sdk_backup::types::{
    BackupPlanInput, BackupRuleInput, KeyValue, ProtectedResourceConditions, RestoreDeletionStatus,
    RestoreJobStatus, RestoreJobsListMember, RestoreTestingPlanForCreate,
    RestoreTestingPlanForUpdate, RestoreTestingRecoveryPointSelection,
    RestoreTestingRecoveryPointSelectionAlgorithm, RestoreTestingRecoveryPointType,
    RestoreTestingSelectionForCreate, RestoreValidationStatus,
};

use crate::harness::*;

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
const ROLE: &str = "arn:aws:iam::111122223333:role/restore-testing";
const DOCS_ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-docs";

/// The source files: a small text file and a larger binary one in a subdirectory.
fn write_docs(docs: &Path) {
    std::fs::create_dir_all(docs.join("sub")).unwrap();
    std::fs::write(docs.join("a.txt"), b"hello restore testing\n").unwrap();
    let big: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(docs.join("sub").join("big.bin"), big).unwrap();
}

/// A development server on `dir/data` with the tagged directory `dir/docs` in its inventory,
/// its clock at the next midnight (returned).
async fn server(dir: &Path) -> (Server, Client, i64) {
    let docs = dir.join("docs");
    write_docs(&docs);
    let cfg = dir.join("coffer.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[resources]]\narn = \"{DOCS_ARN}\"\nsource = \"{}\"\ntags = {{ team = \"docs\" }}\n",
            docs.display()
        ),
    )
    .unwrap();
    let data = dir.join("data");
    let server = Server::start(&[
        "--dev",
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ])
    .await;
    let c = server.client_as(ACCOUNT, "anything", "us-east-1");
    let t0 = (server.clock_secs().await / DAY + 1) * DAY;
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0)))
        .await;
    c.create_backup_vault()
        .backup_vault_name("main")
        .send()
        .await
        .unwrap();
    (server, c, t0)
}

/// A backup plan backing the docs up daily at 05:00 into `main`.
async fn daily_backups(c: &Client) {
    let plan = c
        .create_backup_plan()
        .backup_plan(
            BackupPlanInput::builder()
                .backup_plan_name("daily")
                .rules(
                    BackupRuleInput::builder()
                        .rule_name("daily")
                        .target_backup_vault_name("main")
                        .schedule_expression("cron(0 5 ? * * *)")
                        .start_window_minutes(60)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    c.create_backup_selection()
        .backup_plan_id(plan.backup_plan_id().unwrap())
        .backup_selection(
            aws_sdk_backup::types::BackupSelection::builder()
                .selection_name("docs")
                .iam_role_arn(ROLE)
                .resources(DOCS_ARN)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

fn point_selection() -> RestoreTestingRecoveryPointSelection {
    RestoreTestingRecoveryPointSelection::builder()
        .algorithm(RestoreTestingRecoveryPointSelectionAlgorithm::LatestWithinWindow)
        .include_vaults("*")
        .recovery_point_types(RestoreTestingRecoveryPointType::Snapshot)
        .selection_window_days(7)
        .build()
}

/// Restore testing plan `name`, daily at 07:00 UTC with a two-hour start window.
async fn testing_plan(c: &Client, name: &str) -> String {
    let out = c
        .create_restore_testing_plan()
        .restore_testing_plan(
            RestoreTestingPlanForCreate::builder()
                .restore_testing_plan_name(name)
                .schedule_expression("cron(0 7 ? * * *)")
                .start_window_hours(2)
                .recovery_point_selection(point_selection())
                .build()
                .unwrap(),
        )
        .creator_request_id(format!("{name}-request"))
        .tags("owner", "ops")
        .send()
        .await
        .unwrap();
    assert_eq!(out.restore_testing_plan_name(), name);
    out.restore_testing_plan_arn().to_string()
}

async fn test_jobs(c: &Client, plan_arn: &str) -> Vec<RestoreJobsListMember> {
    let mut jobs = c
        .list_restore_jobs()
        .by_restore_testing_plan_arn(plan_arn)
        .send()
        .await
        .unwrap()
        .restore_jobs()
        .to_vec();
    jobs.sort_by_key(|j| j.creation_date().unwrap().secs());
    jobs
}

fn scratch(dir: &Path, job_id: &str) -> PathBuf {
    dir.join("data").join("restore-tests").join(job_id)
}

/// Create, get, update, list and delete, with AWS's defaults and members returned as sent.
#[tokio::test]
async fn plans_and_selections_read_back_as_sent() {
    let dir = temp_dir();
    let (server, c, _) = server(dir.path()).await;
    let arn = testing_plan(&c, "weekly_check").await;
    assert!(arn.contains(":restore-testing-plan:weekly_check-"), "{arn}");
    // The same CreatorRequestId answers with the same plan.
    assert_eq!(testing_plan(&c, "weekly_check").await, arn);
    let dup = c
        .create_restore_testing_plan()
        .restore_testing_plan(
            RestoreTestingPlanForCreate::builder()
                .restore_testing_plan_name("weekly_check")
                .schedule_expression("cron(0 7 ? * * *)")
                .recovery_point_selection(point_selection())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Some("AlreadyExistsException"), "{dup:?}");
    let bad = c
        .create_restore_testing_plan()
        .restore_testing_plan(
            RestoreTestingPlanForCreate::builder()
                .restore_testing_plan_name("has-dash")
                .schedule_expression("cron(0 7 ? * * *)")
                .recovery_point_selection(point_selection())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some("InvalidParameterValueException"));
    assert!(
        bad.message()
            .unwrap()
            .contains("letters, digits and underscores")
    );

    let got = c
        .get_restore_testing_plan()
        .restore_testing_plan_name("weekly_check")
        .send()
        .await
        .unwrap();
    let p = got.restore_testing_plan().unwrap();
    assert_eq!(p.restore_testing_plan_arn(), arn);
    assert_eq!(p.schedule_expression(), "cron(0 7 ? * * *)");
    assert_eq!(p.start_window_hours(), 2);
    assert_eq!(p.creator_request_id(), Some("weekly_check-request"));
    let s = p.recovery_point_selection().unwrap();
    assert_eq!(s.include_vaults(), ["*"]);
    assert_eq!(s.exclude_vaults(), Vec::<String>::new().as_slice());
    assert!(
        s.exclude_vaults.is_some(),
        "ExcludeVaults is returned, empty"
    );
    assert_eq!(s.selection_window_days(), 7);
    let tags = c.list_tags().resource_arn(&arn).send().await.unwrap();
    assert_eq!(
        tags.tags().unwrap().get("owner").map(String::as_str),
        Some("ops")
    );

    c.update_restore_testing_plan()
        .restore_testing_plan_name("weekly_check")
        .restore_testing_plan(
            RestoreTestingPlanForUpdate::builder()
                .schedule_expression("cron(0 8 ? * 2 *)")
                .start_window_hours(5)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let p = c
        .get_restore_testing_plan()
        .restore_testing_plan_name("weekly_check")
        .send()
        .await
        .unwrap()
        .restore_testing_plan
        .unwrap();
    assert_eq!(p.schedule_expression(), "cron(0 8 ? * 2 *)");
    assert_eq!(p.start_window_hours(), 5);
    assert!(p.last_update_time().is_some());

    c.create_restore_testing_selection()
        .restore_testing_plan_name("weekly_check")
        .restore_testing_selection(
            RestoreTestingSelectionForCreate::builder()
                .restore_testing_selection_name("by_tag")
                .protected_resource_type("EFS")
                .iam_role_arn(ROLE)
                .protected_resource_conditions(
                    ProtectedResourceConditions::builder()
                        .string_equals(
                            KeyValue::builder()
                                .key("team")
                                .value("docs")
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let sel = c
        .get_restore_testing_selection()
        .restore_testing_plan_name("weekly_check")
        .restore_testing_selection_name("by_tag")
        .send()
        .await
        .unwrap()
        .restore_testing_selection
        .unwrap();
    assert_eq!(sel.protected_resource_type(), "EFS");
    assert_eq!(sel.iam_role_arn(), ROLE);
    assert!(
        sel.protected_resource_arns
            .as_ref()
            .is_some_and(Vec::is_empty)
    );
    assert!(
        sel.restore_metadata_overrides
            .as_ref()
            .is_some_and(|m| m.is_empty())
    );
    assert_eq!(sel.validation_window_hours(), 0);
    let cond = sel.protected_resource_conditions().unwrap();
    assert_eq!(cond.string_equals()[0].key(), "team");
    let reserved = c
        .create_restore_testing_selection()
        .restore_testing_plan_name("weekly_check")
        .restore_testing_selection(
            RestoreTestingSelectionForCreate::builder()
                .restore_testing_selection_name("elsewhere")
                .protected_resource_type("EFS")
                .iam_role_arn(ROLE)
                .protected_resource_arns("*")
                .restore_metadata_overrides("targetPath", "/tmp/x")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert!(
        reserved.message().unwrap().contains("targetPath"),
        "{reserved:?}"
    );

    // A plan with a selection is not deleted.
    let refused = c
        .delete_restore_testing_plan()
        .restore_testing_plan_name("weekly_check")
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("InvalidRequestException"));
    let listed = c
        .list_restore_testing_selections()
        .restore_testing_plan_name("weekly_check")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.restore_testing_selections().len(), 1);
    c.delete_restore_testing_selection()
        .restore_testing_plan_name("weekly_check")
        .restore_testing_selection_name("by_tag")
        .send()
        .await
        .unwrap();
    c.delete_restore_testing_plan()
        .restore_testing_plan_name("weekly_check")
        .send()
        .await
        .unwrap();
    let plans = c.list_restore_testing_plans().send().await.unwrap();
    assert!(plans.restore_testing_plans().is_empty());
    let gone = c
        .get_restore_testing_plan()
        .restore_testing_plan_name("weekly_check")
        .send()
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Some("ResourceNotFoundException"));
    drop(server);
}

/// Four days of daily backups at 05:00 and restore tests at 07:00 with a two-hour validation
/// window: every test restores that day's point, validates it, and its scratch data is gone
/// once the window has ended.
#[tokio::test]
async fn a_plan_run_over_days_restores_validates_and_cleans_up() {
    let dir = temp_dir();
    let (server, c, t0) = server(dir.path()).await;
    daily_backups(&c).await;
    let plan_arn = testing_plan(&c, "nightly_check").await;
    c.create_restore_testing_selection()
        .restore_testing_plan_name("nightly_check")
        .restore_testing_selection(
            RestoreTestingSelectionForCreate::builder()
                .restore_testing_selection_name("docs")
                .protected_resource_type("EFS")
                .iam_role_arn(ROLE)
                .protected_resource_arns(DOCS_ARN)
                .validation_window_hours(2)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // Day one, 07:30: the test ran at 07:00 and validated; its data waits for the window.
    let moved = server
        .move_clock(&format!(
            "{{\"set\": \"{}\"}}",
            rfc3339(t0 + 7 * HOUR + 1800)
        ))
        .await;
    assert_eq!(moved["restore_test_runs"], 1, "{moved}");
    let jobs = test_jobs(&c, &plan_arn).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let first = &jobs[0];
    let id = first.restore_job_id().unwrap();
    assert_eq!(
        first.status(),
        Some(&RestoreJobStatus::Completed),
        "{first:?}"
    );
    assert_eq!(first.creation_date().unwrap().secs(), t0 + 7 * HOUR);
    assert_eq!(
        first.recovery_point_creation_date().unwrap().secs(),
        t0 + 5 * HOUR
    );
    assert_eq!(
        first.created_by().unwrap().restore_testing_plan_arn(),
        Some(plan_arn.as_str())
    );
    assert_eq!(
        first.validation_status(),
        Some(&RestoreValidationStatus::Successful)
    );
    let msg = first.validation_status_message().unwrap();
    assert!(msg.contains("compared the 2 restored files"), "{msg}");
    assert_eq!(first.deletion_status(), None);
    let restored = scratch(dir.path(), id);
    assert_eq!(
        std::fs::read(restored.join("sub/big.bin")).unwrap(),
        std::fs::read(dir.path().join("docs/sub/big.bin")).unwrap()
    );
    // While the window is open a client's result is honoured.
    c.put_restore_validation_result()
        .restore_job_id(id)
        .validation_status(RestoreValidationStatus::Successful)
        .validation_status_message("checked by the application team")
        .send()
        .await
        .unwrap();
    let d = c
        .describe_restore_job()
        .restore_job_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.validation_status_message(),
        Some("checked by the application team")
    );

    // 10:00: the window ended at 09:00, the scratch data is gone and says so.
    let moved = server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0 + 10 * HOUR)))
        .await;
    assert_eq!(moved["restore_tests_deleted"], 1, "{moved}");
    assert!(!restored.exists(), "{} is still there", restored.display());
    let d = c
        .describe_restore_job()
        .restore_job_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.deletion_status(),
        Some(&RestoreDeletionStatus::Successful)
    );
    assert!(d.deletion_status_message().unwrap().contains("deleted"));
    let late = c
        .put_restore_validation_result()
        .restore_job_id(id)
        .validation_status(RestoreValidationStatus::Failed)
        .send()
        .await
        .unwrap_err();
    assert_eq!(late.code(), Some("InvalidRequestException"), "{late:?}");

    // Three more days in one move: one test a day, each of that day's point.
    server
        .move_clock(&format!(
            "{{\"set\": \"{}\"}}",
            rfc3339(t0 + 3 * DAY + 10 * HOUR)
        ))
        .await;
    let jobs = test_jobs(&c, &plan_arn).await;
    assert_eq!(jobs.len(), 4, "{jobs:?}");
    for (day, j) in jobs.iter().enumerate() {
        let day = day as i64;
        assert_eq!(j.status(), Some(&RestoreJobStatus::Completed), "{j:?}");
        assert_eq!(j.creation_date().unwrap().secs(), t0 + day * DAY + 7 * HOUR);
        assert_eq!(
            j.recovery_point_creation_date().unwrap().secs(),
            t0 + day * DAY + 5 * HOUR
        );
        assert_eq!(
            j.validation_status(),
            Some(&RestoreValidationStatus::Successful)
        );
        assert_eq!(
            j.deletion_status(),
            Some(&RestoreDeletionStatus::Successful)
        );
        assert!(!scratch(dir.path(), j.restore_job_id().unwrap()).exists());
    }
    let p = c
        .get_restore_testing_plan()
        .restore_testing_plan_name("nightly_check")
        .send()
        .await
        .unwrap()
        .restore_testing_plan
        .unwrap();
    assert_eq!(
        p.last_execution_time().unwrap().secs(),
        t0 + 3 * DAY + 7 * HOUR
    );
    // Restores of other origins are not listed as the plan's.
    let all = c.list_restore_jobs().send().await.unwrap();
    assert_eq!(all.restore_jobs().len(), 4);
}

/// Every pack file of the vault's repository, with a run of bytes in its middle flipped.
fn damage_packs(data: &Path) -> usize {
    let mut damaged = 0;
    let mut stack = vec![data.join("vaults")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .parent()
                .and_then(|q| q.parent())
                .and_then(Path::file_name)
                == Some(std::ffi::OsStr::new("data"))
            {
                let mut bytes = std::fs::read(&p).unwrap();
                let mid = bytes.len() / 2;
                let end = (mid + 64).min(bytes.len());
                for b in &mut bytes[mid.saturating_sub(64)..end] {
                    *b ^= 0xA5;
                }
                std::fs::write(&p, bytes).unwrap();
                damaged += 1;
            }
        }
    }
    damaged
}

/// A damaged pack makes the restore test fail with a message saying what failed, and its
/// scratch data is removed at once.
#[tokio::test]
async fn a_damaged_pack_fails_the_restore_test() {
    let dir = temp_dir();
    let (server, c, t0) = server(dir.path()).await;
    daily_backups(&c).await;
    let plan_arn = testing_plan(&c, "damaged_check").await;
    c.create_restore_testing_selection()
        .restore_testing_plan_name("damaged_check")
        .restore_testing_selection(
            RestoreTestingSelectionForCreate::builder()
                .restore_testing_selection_name("all_efs")
                .protected_resource_type("EFS")
                .iam_role_arn(ROLE)
                .protected_resource_arns("*")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0 + 6 * HOUR)))
        .await;
    assert!(damage_packs(&dir.path().join("data")) > 0, "no pack found");

    // The test's start window (two hours) leaves room for the runner's retries.
    server
        .move_clock(&format!(
            "{{\"set\": \"{}\"}}",
            rfc3339(t0 + 9 * HOUR + 1800)
        ))
        .await;
    let jobs = test_jobs(&c, &plan_arn).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let j = &jobs[0];
    assert_eq!(j.status(), Some(&RestoreJobStatus::Failed), "{j:?}");
    let msg = j.status_message().unwrap_or_default();
    assert!(msg.contains("vault damaged"), "{msg}");
    assert!(msg.contains("cannot be read"), "{msg}");
    assert_ne!(
        j.validation_status(),
        Some(&RestoreValidationStatus::Successful)
    );
    assert_eq!(
        j.deletion_status(),
        Some(&RestoreDeletionStatus::Successful),
        "{j:?}"
    );
    assert!(!scratch(dir.path(), j.restore_job_id().unwrap()).exists());
}

/// A recovery point whose snapshot is gone from the vault makes the restore test fail saying
/// the recovery point is not found.
#[tokio::test]
async fn a_missing_snapshot_fails_the_restore_test() {
    let dir = temp_dir();
    let (server, c, t0) = server(dir.path()).await;
    daily_backups(&c).await;
    let plan_arn = testing_plan(&c, "missing_check").await;
    c.create_restore_testing_selection()
        .restore_testing_plan_name("missing_check")
        .restore_testing_selection(
            RestoreTestingSelectionForCreate::builder()
                .restore_testing_selection_name("docs")
                .protected_resource_type("EFS")
                .iam_role_arn(ROLE)
                .protected_resource_arns(DOCS_ARN)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0 + 6 * HOUR)))
        .await;
    let mut removed = 0;
    for vault in std::fs::read_dir(dir.path().join("data/vaults")).unwrap() {
        let snapshots = vault.unwrap().path().join("snapshots");
        for s in std::fs::read_dir(&snapshots).into_iter().flatten() {
            std::fs::remove_file(s.unwrap().path()).unwrap();
            removed += 1;
        }
    }
    assert_eq!(removed, 1, "one snapshot");
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0 + 8 * HOUR)))
        .await;
    let jobs = test_jobs(&c, &plan_arn).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let j = &jobs[0];
    assert_eq!(j.status(), Some(&RestoreJobStatus::Failed), "{j:?}");
    let msg = j.status_message().unwrap_or_default();
    assert!(msg.contains("recovery point not found"), "{msg}");
    assert_eq!(
        j.deletion_status(),
        Some(&RestoreDeletionStatus::Successful),
        "{j:?}"
    );
}
