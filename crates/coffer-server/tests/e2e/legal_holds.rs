//! Legal holds through the official SDK: a hold selects recovery points by vault, resource and
//! creation date; while it is active nothing deletes them (DeleteRecoveryPoint, the lifecycle
//! sweep, vault deletion); once cancelled the sweep deletes what its lifecycle says, and the
//! cancelled record goes after RetainRecordInDays. Also: idempotency tokens, tags on holds, the
//! quota of 50 active holds, and each refusal's error code.

use std::path::Path;
use std::time::Duration;

use aws_sdk_backup::Client;
use aws_sdk_backup::error::ProvideErrorMetadata;
use aws_sdk_backup::primitives::DateTime;
use aws_sdk_backup::types::{
    BackupJobState, DateRange, LegalHoldStatus, Lifecycle, RecoveryPointSelection,
};

use crate::harness::*;

const DAY: i64 = 86_400;
const ROLE: &str = "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole";
const DOCS: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-docs";
const LOGS: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-logs";

fn write_config(path: &Path, docs: &Path, logs: &Path) {
    std::fs::write(
        path,
        format!(
            "[[resources]]\narn = \"{DOCS}\"\nsource = \"{}\"\n\n[[resources]]\narn = \"{LOGS}\"\nsource = \"{}\"\n",
            docs.display(),
            logs.display()
        ),
    )
    .unwrap();
}

/// Backs `arn` up into `vault` (with `delete_after_days`, if any) and returns the point's ARN.
async fn backup(c: &Client, vault: &str, arn: &str, delete_after_days: Option<i64>) -> String {
    let out = c
        .start_backup_job()
        .backup_vault_name(vault)
        .resource_arn(arn)
        .iam_role_arn(ROLE)
        .set_lifecycle(delete_after_days.map(|d| Lifecycle::builder().delete_after_days(d).build()))
        .send()
        .await
        .unwrap();
    let id = out.backup_job_id().unwrap().to_string();
    for _ in 0..1200 {
        let j = c
            .describe_backup_job()
            .backup_job_id(&id)
            .send()
            .await
            .unwrap();
        match j.state() {
            Some(BackupJobState::Completed) => return j.recovery_point_arn().unwrap().into(),
            Some(BackupJobState::Failed | BackupJobState::Expired | BackupJobState::Aborted) => {
                panic!(
                    "backup of {arn} ended {:?}: {:?}",
                    j.state(),
                    j.status_message()
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("backup of {arn} did not end within 120 s");
}

async fn exists(c: &Client, vault: &str, rp: &str) -> bool {
    match c
        .describe_recovery_point()
        .backup_vault_name(vault)
        .recovery_point_arn(rp)
        .send()
        .await
    {
        Ok(_) => true,
        Err(e) if e.code() == Some("ResourceNotFoundException") => false,
        Err(e) => panic!("DescribeRecoveryPoint failed: {e:?}"),
    }
}

async fn held_points(c: &Client, hold: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = c
            .list_recovery_points_by_legal_hold()
            .legal_hold_id(hold)
            .max_results(1)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        out.extend(
            page.recovery_points()
                .iter()
                .map(|p| p.recovery_point_arn().unwrap().to_string()),
        );
        token = page.next_token().map(String::from);
        if token.is_none() {
            out.sort();
            return out;
        }
    }
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
async fn a_legal_hold_keeps_its_points_until_cancelled() {
    let dir = temp_dir();
    let (docs, logs) = (dir.path().join("docs"), dir.path().join("logs"));
    for (d, text) in [(&docs, "docs"), (&logs, "logs")] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("a.txt"), format!("hello {text}\n")).unwrap();
    }
    let cfg = dir.path().join("coffer.toml");
    write_config(&cfg, &docs, &logs);
    let server = Server::start(&["--dev", "--config", cfg.to_str().unwrap()]).await;
    let c = server.client_as(ACCOUNT, "anything", "us-east-1");
    let t0 = (server.clock_secs().await / DAY + 1) * DAY;
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0)))
        .await;
    for v in ["held", "free"] {
        c.create_backup_vault()
            .backup_vault_name(v)
            .send()
            .await
            .unwrap();
    }
    // Two points in "held" (one whose lifecycle deletes it after a day), one in "free".
    let expiring = backup(&c, "held", DOCS, Some(1)).await;
    let kept = backup(&c, "held", LOGS, None).await;
    let other = backup(&c, "free", DOCS, None).await;

    let hold = c
        .create_legal_hold()
        .title("litigation-1")
        .description("keep everything in held")
        .idempotency_token("token-1")
        .recovery_point_selection(
            RecoveryPointSelection::builder()
                .vault_names("held")
                .build(),
        )
        .tags("case", "42")
        .send()
        .await
        .unwrap();
    assert_eq!(hold.status(), Some(&LegalHoldStatus::Active));
    let hold_id = hold.legal_hold_id().unwrap().to_string();
    let hold_arn = hold.legal_hold_arn().unwrap().to_string();
    assert_eq!(
        hold_arn,
        format!("arn:aws:backup:us-east-1:{ACCOUNT}:legal-hold:{hold_id}")
    );
    // The same token answers with the same hold, and creates no second one.
    let again = c
        .create_legal_hold()
        .title("litigation-1")
        .description("keep everything in held")
        .idempotency_token("token-1")
        .send()
        .await
        .unwrap();
    assert_eq!(again.legal_hold_id(), Some(hold_id.as_str()));
    assert_eq!(
        c.list_legal_holds()
            .send()
            .await
            .unwrap()
            .legal_holds()
            .len(),
        1
    );

    let mut want = vec![expiring.clone(), kept.clone()];
    want.sort();
    assert_eq!(held_points(&c, &hold_id).await, want);
    let tags = c.list_tags().resource_arn(&hold_arn).send().await.unwrap();
    assert_eq!(
        tags.tags().unwrap().get("case").map(String::as_str),
        Some("42")
    );

    // DeleteRecoveryPoint is refused, naming the hold; a point outside the hold goes.
    let (code, message) = code_of(
        c.delete_recovery_point()
            .backup_vault_name("held")
            .recovery_point_arn(&kept)
            .send()
            .await,
    )
    .await;
    assert_eq!(code, "InvalidRequestException");
    assert!(message.contains(&hold_id), "{message}");
    c.delete_recovery_point()
        .backup_vault_name("free")
        .recovery_point_arn(&other)
        .send()
        .await
        .unwrap();
    assert!(!exists(&c, "free", &other).await);

    // Two days on, the lifecycle would delete `expiring`: the hold keeps it.
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0 + 2 * DAY)))
        .await;
    assert!(exists(&c, "held", &expiring).await);
    let (code, _) = code_of(
        c.delete_backup_vault()
            .backup_vault_name("held")
            .send()
            .await,
    )
    .await;
    assert_eq!(code, "InvalidRequestException");

    // Cancel: the record says so; a second cancel is refused.
    c.cancel_legal_hold()
        .legal_hold_id(&hold_id)
        .cancel_description("case closed")
        .retain_record_in_days(1)
        .send()
        .await
        .unwrap();
    let got = c
        .get_legal_hold()
        .legal_hold_id(&hold_id)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), Some(&LegalHoldStatus::Canceled));
    assert_eq!(got.cancel_description(), Some("case closed"));
    assert_eq!(got.title(), Some("litigation-1"));
    assert_eq!(
        got.retain_record_until().map(|d| d.secs()),
        got.cancellation_date().map(|d| d.secs() + DAY)
    );
    let (code, _) = code_of(
        c.cancel_legal_hold()
            .legal_hold_id(&hold_id)
            .cancel_description("again")
            .send()
            .await,
    )
    .await;
    assert_eq!(code, "InvalidResourceStateException");

    // Released: the next sweep deletes `expiring`, and `kept` can be deleted.
    server.move_clock("{\"advance_seconds\": 60}").await;
    assert!(!exists(&c, "held", &expiring).await);
    c.delete_recovery_point()
        .backup_vault_name("held")
        .recovery_point_arn(&kept)
        .send()
        .await
        .unwrap();
    assert!(!exists(&c, "held", &kept).await);

    // After RetainRecordInDays the cancelled record is gone.
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0 + 4 * DAY)))
        .await;
    let (code, _) = code_of(c.get_legal_hold().legal_hold_id(&hold_id).send().await).await;
    assert_eq!(code, "ResourceNotFoundException");
    assert!(
        c.list_legal_holds()
            .send()
            .await
            .unwrap()
            .legal_holds()
            .is_empty()
    );
}

#[tokio::test]
async fn legal_hold_selections_and_refusals() {
    let dir = temp_dir();
    let (docs, logs) = (dir.path().join("docs"), dir.path().join("logs"));
    for d in [&docs, &logs] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("a.txt"), b"x\n").unwrap();
    }
    let cfg = dir.path().join("coffer.toml");
    write_config(&cfg, &docs, &logs);
    let server = Server::start(&["--dev", "--config", cfg.to_str().unwrap()]).await;
    let c = server.client_as(ACCOUNT, "anything", "us-east-1");
    let t0 = (server.clock_secs().await / DAY + 1) * DAY;
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0)))
        .await;
    c.create_backup_vault()
        .backup_vault_name("vv")
        .send()
        .await
        .unwrap();
    let early_docs = backup(&c, "vv", DOCS, None).await;
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0 + DAY)))
        .await;
    let late_docs = backup(&c, "vv", DOCS, None).await;
    let late_logs = backup(&c, "vv", LOGS, None).await;

    let range = |from: i64, to: i64| {
        DateRange::builder()
            .from_date(DateTime::from_secs(from))
            .to_date(DateTime::from_secs(to))
            .build()
            .unwrap()
    };
    let create = |selection: RecoveryPointSelection| {
        c.create_legal_hold()
            .title("t")
            .description("d")
            .recovery_point_selection(selection)
            .send()
    };
    // By resource: both docs points; by resource and date: only the later one.
    let by_resource = create(
        RecoveryPointSelection::builder()
            .resource_identifiers(DOCS)
            .build(),
    )
    .await
    .unwrap();
    let mut want = vec![early_docs.clone(), late_docs.clone()];
    want.sort();
    assert_eq!(
        held_points(&c, by_resource.legal_hold_id().unwrap()).await,
        want
    );
    let by_date = create(
        RecoveryPointSelection::builder()
            .resource_identifiers(DOCS)
            .date_range(range(t0 + DAY - 60, t0 + 2 * DAY))
            .build(),
    )
    .await
    .unwrap();
    assert_eq!(
        held_points(&c, by_date.legal_hold_id().unwrap()).await,
        vec![late_docs.clone()]
    );
    // Nothing in the range: a hold over nothing, which blocks nothing.
    let empty = create(
        RecoveryPointSelection::builder()
            .date_range(range(0, 60))
            .build(),
    )
    .await
    .unwrap();
    assert!(
        held_points(&c, empty.legal_hold_id().unwrap())
            .await
            .is_empty()
    );
    c.delete_recovery_point()
        .backup_vault_name("vv")
        .recovery_point_arn(&late_logs)
        .send()
        .await
        .unwrap();

    // Refusals, each with its code.
    let (code, message) = code_of(
        create(
            RecoveryPointSelection::builder()
                .vault_names("nope")
                .build(),
        )
        .await,
    )
    .await;
    assert_eq!(code, "InvalidParameterValueException");
    assert!(message.contains("nope"), "{message}");
    let (code, message) = code_of(
        create(
            RecoveryPointSelection::builder()
                .date_range(range(t0, t0 - 1))
                .build(),
        )
        .await,
    )
    .await;
    assert_eq!(code, "InvalidParameterValueException");
    assert!(message.contains("FromDate"), "{message}");
    let (code, _) = code_of(
        c.get_legal_hold()
            .legal_hold_id("no-such-hold")
            .send()
            .await,
    )
    .await;
    assert_eq!(code, "ResourceNotFoundException");
    let (code, _) = code_of(
        c.cancel_legal_hold()
            .legal_hold_id("no-such-hold")
            .cancel_description("x")
            .send()
            .await,
    )
    .await;
    assert_eq!(code, "ResourceNotFoundException");
    let (code, _) = code_of(
        c.list_recovery_points_by_legal_hold()
            .legal_hold_id("no-such-hold")
            .send()
            .await,
    )
    .await;
    assert_eq!(code, "InvalidParameterValueException");
    let (code, _) = code_of(
        c.cancel_legal_hold()
            .legal_hold_id(by_date.legal_hold_id().unwrap())
            .cancel_description("x")
            .retain_record_in_days(-1)
            .send()
            .await,
    )
    .await;
    assert_eq!(code, "InvalidParameterValueException");

    // The quota: 50 active holds (3 exist); the 51st is refused; a cancelled one frees a slot.
    for _ in 3..50 {
        create(RecoveryPointSelection::builder().vault_names("vv").build())
            .await
            .unwrap();
    }
    let (code, _) = code_of(create(RecoveryPointSelection::builder().build()).await).await;
    assert_eq!(code, "LimitExceededException");
    c.cancel_legal_hold()
        .legal_hold_id(empty.legal_hold_id().unwrap())
        .cancel_description("done")
        .send()
        .await
        .unwrap();
    create(RecoveryPointSelection::builder().build())
        .await
        .unwrap();
    // Listing pages through all 51 records (50 active, 1 cancelled and kept).
    let mut n = 0;
    let mut token = None;
    loop {
        let page = c
            .list_legal_holds()
            .max_results(20)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        n += page.legal_holds().len();
        token = page.next_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(n, 51);
    // The held docs points still cannot be deleted.
    let (code, _) = code_of(
        c.delete_recovery_point()
            .backup_vault_name("vv")
            .recovery_point_arn(&early_docs)
            .send()
            .await,
    )
    .await;
    assert_eq!(code, "InvalidRequestException");
}
