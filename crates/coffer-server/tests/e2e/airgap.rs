//! Vault lock on jobs and logically air-gapped vaults, with real data: a backup or copy whose
//! retention breaks the destination's lock ends FAILED and leaves no recovery point; an
//! air-gapped vault is created, described, listed, takes recovery points only by copy, keeps
//! them for its minimum retention, and a restore from it gives back the bytes backed up;
//! tiering configurations are validated, recorded, listed, updated, deleted and kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_sdk_backup::Client;
use aws_sdk_backup::error::ProvideErrorMetadata;
use aws_sdk_backup::types::{
    BackupJobState, CopyJob, CopyJobState, Lifecycle, ResourceSelection, RestoreJobStatus,
    TieringConfigurationInputForCreate, TieringConfigurationInputForUpdate, VaultState, VaultType,
};

use crate::harness::*;

const EFS_ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-gap";
const ROLE: &str = "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole";

fn vault_arn(name: &str) -> String {
    format!("arn:aws:backup:us-east-1:{ACCOUNT}:backup-vault:{name}")
}

/// A small tree with a file large enough to span several chunks.
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("a.txt"), b"air gap\n").unwrap();
    let big: Vec<u8> = (0..2_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(root.join("sub/deeper/big.bin"), big).unwrap();
    std::fs::write(root.join("sub/empty"), b"").unwrap();
}

/// Every regular file under `root` (relative path -> bytes).
fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

async fn start(dir: &Path) -> (Server, PathBuf) {
    let src = dir.join("src");
    make_tree(&src);
    let cfg = dir.join("coffer.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[[credentials]]
access_key_id = "{AKID}"
secret_access_key = "{SECRET}"
account_id = "{ACCOUNT}"

[[resources]]
arn = "{EFS_ARN}"
source = "{}"
name = "gap"
"#,
            src.display()
        ),
    )
    .unwrap();
    let data = dir.join("data");
    // Development mode (a movable clock) with SigV4 kept on, so the test's account is used.
    let server = Server::start(&[
        "--dev",
        "--auth",
        "sigv4",
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ])
    .await;
    (server, src)
}

fn keep(days: i64) -> Lifecycle {
    Lifecycle::builder().delete_after_days(days).build()
}

async fn create_vault(c: &Client, name: &str) {
    c.create_backup_vault()
        .backup_vault_name(name)
        .send()
        .await
        .unwrap();
}

/// Starts a backup of the fixture tree into `vault` kept `days`, waits for its end.
async fn backup(
    c: &Client,
    vault: &str,
    days: i64,
) -> aws_sdk_backup::operation::describe_backup_job::DescribeBackupJobOutput {
    let id = c
        .start_backup_job()
        .backup_vault_name(vault)
        .resource_arn(EFS_ARN)
        .iam_role_arn(ROLE)
        .lifecycle(keep(days))
        .send()
        .await
        .unwrap()
        .backup_job_id
        .unwrap();
    wait_until(&format!("backup job {id}"), 120, || async {
        let j = c
            .describe_backup_job()
            .backup_job_id(&id)
            .send()
            .await
            .unwrap();
        let ended = !matches!(
            j.state(),
            Some(BackupJobState::Created | BackupJobState::Running | BackupJobState::Pending)
        );
        ended.then_some(j)
    })
    .await
}

/// Copies `rp` from `from` into `to` kept `days`, waits for the copy job's end.
async fn copy(c: &Client, from: &str, rp: &str, to: &str, days: i64) -> CopyJob {
    let id = c
        .start_copy_job()
        .source_backup_vault_name(from)
        .recovery_point_arn(rp)
        .destination_backup_vault_arn(vault_arn(to))
        .iam_role_arn(ROLE)
        .lifecycle(keep(days))
        .send()
        .await
        .unwrap()
        .copy_job_id
        .unwrap();
    wait_until(&format!("copy job {id}"), 120, || async {
        let j = c
            .describe_copy_job()
            .copy_job_id(&id)
            .send()
            .await
            .unwrap()
            .copy_job
            .unwrap();
        let ended = !matches!(
            j.state(),
            Some(CopyJobState::Created | CopyJobState::Running)
        );
        ended.then_some(j)
    })
    .await
}

/// Waits until restore job `id` ends and checks it COMPLETED.
async fn restore_completes(c: &Client, id: &str, what: &str) {
    let done = wait_until(what, 120, || async {
        let j = c
            .describe_restore_job()
            .restore_job_id(id)
            .send()
            .await
            .unwrap();
        let ended = !matches!(
            j.status(),
            Some(RestoreJobStatus::Pending | RestoreJobStatus::Running)
        );
        ended.then_some(j)
    })
    .await;
    assert_eq!(
        done.status(),
        Some(&RestoreJobStatus::Completed),
        "{:?}",
        done.status_message()
    );
}

async fn points_in(c: &Client, vault: &str) -> Vec<String> {
    c.list_recovery_points_by_backup_vault()
        .backup_vault_name(vault)
        .send()
        .await
        .unwrap()
        .recovery_points()
        .iter()
        .map(|p| p.recovery_point_arn().unwrap().to_string())
        .collect()
}

async fn count_in(c: &Client, vault: &str) -> i64 {
    c.describe_backup_vault()
        .backup_vault_name(vault)
        .send()
        .await
        .unwrap()
        .number_of_recovery_points()
}

#[tokio::test]
async fn jobs_whose_retention_breaks_the_vault_lock_fail_and_leave_no_point() {
    let dir = temp_dir();
    let (server, _src) = start(dir.path()).await;
    let c = server.client();
    create_vault(&c, "plain").await;
    create_vault(&c, "locked").await;
    c.put_backup_vault_lock_configuration()
        .backup_vault_name("locked")
        .min_retention_days(7)
        .max_retention_days(30)
        .send()
        .await
        .unwrap();

    // A backup kept 1 day into a vault locked at a 7-day minimum fails.
    let j = backup(&c, "locked", 1).await;
    assert_eq!(j.state(), Some(&BackupJobState::Failed));
    let m = j.status_message().unwrap_or_default();
    assert!(m.contains("'locked'"), "{m}");
    assert!(
        m.contains("retention period of 1 days is shorter than the vault lock's minimum retention of 7 days"),
        "{m}"
    );
    assert!(m.contains("DeleteAfterDays"), "{m}");
    assert!(points_in(&c, "locked").await.is_empty());
    assert_eq!(count_in(&c, "locked").await, 0);
    // The recovery point the job announced does not exist.
    let err = c
        .describe_recovery_point()
        .backup_vault_name("locked")
        .recovery_point_arn(j.recovery_point_arn().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    // Kept longer than the maximum: fails too, naming the maximum.
    let j = backup(&c, "locked", 31).await;
    assert_eq!(j.state(), Some(&BackupJobState::Failed));
    assert!(
        j.status_message()
            .unwrap()
            .contains("maximum retention of 30 days"),
        "{:?}",
        j.status_message()
    );
    assert!(points_in(&c, "locked").await.is_empty());

    // Within the bounds the backup completes and its point is kept.
    let ok = backup(&c, "locked", 7).await;
    assert_eq!(
        ok.state(),
        Some(&BackupJobState::Completed),
        "{:?}",
        ok.status_message()
    );
    assert_eq!(
        points_in(&c, "locked").await,
        vec![ok.recovery_point_arn().unwrap().to_string()]
    );

    // A copy into the locked vault is held to the same bounds.
    let src = backup(&c, "plain", 40).await;
    assert_eq!(src.state(), Some(&BackupJobState::Completed));
    let rp = src.recovery_point_arn().unwrap();
    let bad = copy(&c, "plain", rp, "locked", 3).await;
    assert_eq!(bad.state(), Some(&CopyJobState::Failed));
    let m = bad.status_message().unwrap_or_default();
    assert!(
        m.contains("shorter than the vault lock's minimum retention of 7 days"),
        "{m}"
    );
    assert_eq!(points_in(&c, "locked").await.len(), 1);
    let good = copy(&c, "plain", rp, "locked", 14).await;
    assert_eq!(
        good.state(),
        Some(&CopyJobState::Completed),
        "{:?}",
        good.status_message()
    );
    assert_eq!(points_in(&c, "locked").await.len(), 2);
    assert_eq!(count_in(&c, "locked").await, 2);
}

#[tokio::test]
async fn air_gapped_vaults_are_created_described_and_listed() {
    let dir = temp_dir();
    let (server, _src) = start(dir.path()).await;
    let c = server.client();
    create_vault(&c, "plain").await;

    // Bad retention bounds are refused, naming the field.
    for (min, max, says) in [
        (6, 30, "MinRetentionDays must be between 7"),
        (7, 36_501, "MaxRetentionDays"),
        (30, 7, "cannot be greater"),
    ] {
        let err = c
            .create_logically_air_gapped_backup_vault()
            .backup_vault_name("gap")
            .min_retention_days(min)
            .max_retention_days(max)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidParameterValueException"), "{says}");
        assert!(err.message().unwrap().contains(says), "{:?}", err.message());
    }
    let err = c
        .describe_backup_vault()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    let created = c
        .create_logically_air_gapped_backup_vault()
        .backup_vault_name("gap")
        .min_retention_days(7)
        .max_retention_days(30)
        .creator_request_id("req-1")
        .backup_vault_tags("team", "vault")
        .send()
        .await
        .unwrap();
    assert_eq!(created.backup_vault_arn(), Some(vault_arn("gap").as_str()));
    assert_eq!(created.vault_state(), Some(&VaultState::Available));
    // A retried request (same CreatorRequestId) answers the same vault; another is refused.
    let again = c
        .create_logically_air_gapped_backup_vault()
        .backup_vault_name("gap")
        .min_retention_days(7)
        .max_retention_days(30)
        .creator_request_id("req-1")
        .send()
        .await
        .unwrap();
    assert_eq!(again.creation_date(), created.creation_date());
    let err = c
        .create_logically_air_gapped_backup_vault()
        .backup_vault_name("gap")
        .min_retention_days(7)
        .max_retention_days(30)
        .creator_request_id("req-2")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AlreadyExistsException"));
    let err = c
        .create_backup_vault()
        .backup_vault_name("gap")
        .creator_request_id("req-1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AlreadyExistsException"));

    let d = c
        .describe_backup_vault()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.vault_type(),
        Some(&VaultType::LogicallyAirGappedBackupVault)
    );
    assert_eq!(d.vault_state(), Some(&VaultState::Available));
    assert_eq!(d.locked(), Some(true));
    assert_eq!(d.min_retention_days(), Some(7));
    assert_eq!(d.max_retention_days(), Some(30));
    assert_eq!(d.lock_date(), created.creation_date());
    assert_eq!(d.creator_request_id(), Some("req-1"));
    assert_eq!(d.number_of_recovery_points(), 0);
    let tags = c
        .list_tags()
        .resource_arn(vault_arn("gap"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags.tags().unwrap().get("team").map(String::as_str),
        Some("vault")
    );

    // ListBackupVaults: all types by default, one type when asked, none shared.
    let names = |l: &aws_sdk_backup::operation::list_backup_vaults::ListBackupVaultsOutput| {
        l.backup_vault_list()
            .iter()
            .map(|v| v.backup_vault_name().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let all = c.list_backup_vaults().send().await.unwrap();
    assert_eq!(names(&all), ["gap", "plain"]);
    let gapped = c
        .list_backup_vaults()
        .by_vault_type(VaultType::LogicallyAirGappedBackupVault)
        .send()
        .await
        .unwrap();
    assert_eq!(names(&gapped), ["gap"]);
    assert_eq!(
        gapped.backup_vault_list()[0].vault_type(),
        Some(&VaultType::LogicallyAirGappedBackupVault)
    );
    assert_eq!(gapped.backup_vault_list()[0].min_retention_days(), Some(7));
    let plain = c
        .list_backup_vaults()
        .by_vault_type(VaultType::BackupVault)
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(names(&plain), ["plain"]);
    assert_eq!(plain.next_token(), None);
    let shared = c.list_backup_vaults().by_shared(true).send().await.unwrap();
    assert!(shared.backup_vault_list().is_empty());

    // Its retention bounds cannot be changed or removed.
    let err = c
        .put_backup_vault_lock_configuration()
        .backup_vault_name("gap")
        .min_retention_days(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert!(
        err.message().unwrap().contains("air-gapped"),
        "{:?}",
        err.message()
    );
    let err = c
        .delete_backup_vault_lock_configuration()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    let d = c
        .describe_backup_vault()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (d.min_retention_days(), d.max_retention_days()),
        (Some(7), Some(30))
    );

    // An empty air-gapped vault can be deleted.
    c.delete_backup_vault()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap();
    let all = c.list_backup_vaults().send().await.unwrap();
    assert_eq!(names(&all), ["plain"]);
}

#[tokio::test]
async fn air_gapped_vaults_take_copies_only_keep_them_and_restore_them() {
    let dir = temp_dir();
    let (server, src) = start(dir.path()).await;
    let c = server.client();
    create_vault(&c, "plain").await;
    c.create_logically_air_gapped_backup_vault()
        .backup_vault_name("gap")
        .min_retention_days(7)
        .max_retention_days(30)
        .send()
        .await
        .unwrap();

    // StartBackupJob straight into it is refused; nothing is created.
    let err = c
        .start_backup_job()
        .backup_vault_name("gap")
        .resource_arn(EFS_ARN)
        .iam_role_arn(ROLE)
        .lifecycle(keep(10))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert!(
        err.message().unwrap().contains("copy"),
        "{:?}",
        err.message()
    );
    let jobs = c
        .list_backup_jobs()
        .by_backup_vault_name("gap")
        .send()
        .await
        .unwrap();
    assert!(jobs.backup_jobs().is_empty());

    // Back up into a backup vault, copy into the air-gapped one.
    let b = backup(&c, "plain", 10).await;
    assert_eq!(
        b.state(),
        Some(&BackupJobState::Completed),
        "{:?}",
        b.status_message()
    );
    let rp = b.recovery_point_arn().unwrap();
    let short = copy(&c, "plain", rp, "gap", 1).await;
    assert_eq!(short.state(), Some(&CopyJobState::Failed));
    let m = short.status_message().unwrap_or_default();
    assert!(m.contains("logically air-gapped backup vault 'gap'"), "{m}");
    assert!(m.contains("minimum retention of 7 days"), "{m}");
    assert!(points_in(&c, "gap").await.is_empty());

    let j = copy(&c, "plain", rp, "gap", 10).await;
    assert_eq!(
        j.state(),
        Some(&CopyJobState::Completed),
        "{:?}",
        j.status_message()
    );
    assert_eq!(
        j.destination_vault_type(),
        Some("LOGICALLY_AIR_GAPPED_BACKUP_VAULT")
    );
    let copied = j.destination_recovery_point_arn().unwrap().to_string();
    assert_eq!(points_in(&c, "gap").await, vec![copied.clone()]);
    assert_eq!(count_in(&c, "gap").await, 1);

    // The original is deleted: the copy alone holds the data, and restores byte for byte.
    c.delete_recovery_point()
        .backup_vault_name("plain")
        .recovery_point_arn(rp)
        .send()
        .await
        .unwrap();
    let target = dir.path().join("restored");
    let r = c
        .start_restore_job()
        .recovery_point_arn(&copied)
        .iam_role_arn(ROLE)
        .metadata("targetPath", target.to_str().unwrap())
        .send()
        .await
        .unwrap();
    let id = r.restore_job_id().unwrap().to_string();
    restore_completes(&c, &id, "the restore from the air-gapped vault").await;
    let restored = files(&target);
    assert_eq!(restored.len(), 3);
    assert_eq!(restored, files(&src));

    // Its retention cannot be shortened below the vault's minimum afterwards.
    let err = c
        .update_recovery_point_lifecycle()
        .backup_vault_name("gap")
        .recovery_point_arn(&copied)
        .lifecycle(keep(2))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert!(
        err.message()
            .unwrap()
            .contains("minimum retention of 7 days"),
        "{:?}",
        err.message()
    );
    let d = c
        .describe_recovery_point()
        .backup_vault_name("gap")
        .recovery_point_arn(&copied)
        .send()
        .await
        .unwrap();
    assert_eq!(d.lifecycle().and_then(|l| l.delete_after_days()), Some(10));

    // Nothing leaves before its minimum retention: not the point, not the vault.
    let err = c
        .delete_recovery_point()
        .backup_vault_name("gap")
        .recovery_point_arn(&copied)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert!(
        err.message().unwrap().contains("MinRetentionDays 7"),
        "{:?}",
        err.message()
    );
    let err = c
        .delete_backup_vault()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert_eq!(points_in(&c, "gap").await, vec![copied.clone()]);

    // Eight days on, the point may go, and then the vault.
    server
        .move_clock(&format!(
            "{{\"set\": \"{}\"}}",
            rfc3339(server.clock_secs().await + 8 * 86_400)
        ))
        .await;
    c.delete_recovery_point()
        .backup_vault_name("gap")
        .recovery_point_arn(&copied)
        .send()
        .await
        .unwrap();
    wait_until("the air-gapped vault to be empty", 30, || async {
        (count_in(&c, "gap").await == 0).then_some(())
    })
    .await;
    c.delete_backup_vault()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap();
    let err = c
        .describe_backup_vault()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
}

fn s3_selection(resources: &[&str], days: i32) -> ResourceSelection {
    let mut b = ResourceSelection::builder()
        .resource_type("S3")
        .tiering_down_settings_in_days(days);
    for r in resources {
        b = b.resources(*r);
    }
    b.build().unwrap()
}

fn tiering(name: &str, vault: &str, sel: ResourceSelection) -> TieringConfigurationInputForCreate {
    TieringConfigurationInputForCreate::builder()
        .tiering_configuration_name(name)
        .backup_vault_name(vault)
        .resource_selection(sel)
        .build()
        .unwrap()
}

#[tokio::test]
async fn tiering_configurations_are_validated_recorded_and_kept() {
    let dir = temp_dir();
    let (server, _src) = start(dir.path()).await;
    let c = server.client();
    create_vault(&c, "plain").await;
    create_vault(&c, "other").await;

    // Refusals name what to fix; none stores anything.
    let bucket = "arn:aws:s3:::my-bucket";
    for (conf, code, says) in [
        (
            tiering("t1", "missing", s3_selection(&["*"], 60)),
            "InvalidParameterValueException",
            "missing",
        ),
        (
            tiering("t1", "plain", s3_selection(&["*"], 59)),
            "InvalidParameterValueException",
            "",
        ),
        (
            tiering("t1", "plain", s3_selection(&["*", bucket], 60)),
            "InvalidParameterValueException",
            "Resources",
        ),
        (
            tiering(
                "t1",
                "plain",
                s3_selection(&["arn:aws:ec2:us-east-1:111122223333:volume/v"], 60),
            ),
            "InvalidParameterValueException",
            "not an S3 bucket ARN",
        ),
    ] {
        let err = c
            .create_tiering_configuration()
            .tiering_configuration(conf)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(code), "{says}: {:?}", err.message());
        assert!(
            err.message().unwrap_or_default().contains(says),
            "{:?}",
            err.message()
        );
    }
    let mut ebs = s3_selection(&["*"], 60);
    ebs.resource_type = "EBS".into();
    let err = c
        .create_tiering_configuration()
        .tiering_configuration(tiering("t1", "plain", ebs))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.message().unwrap().contains("ResourceType must be S3"),
        "{:?}",
        err.message()
    );
    let listed = c.list_tiering_configurations().send().await.unwrap();
    assert!(listed.tiering_configurations().is_empty());

    // One for every vault, with tags, retried safely.
    let all = c
        .create_tiering_configuration()
        .tiering_configuration(tiering("every_vault", "*", s3_selection(&["*"], 90)))
        .creator_request_id("req-1")
        .tiering_configuration_tags("owner", "ops")
        .send()
        .await
        .unwrap();
    let all_arn = format!("arn:aws:backup:us-east-1:{ACCOUNT}:tiering-configuration:every_vault");
    assert_eq!(all.tiering_configuration_arn(), Some(all_arn.as_str()));
    let again = c
        .create_tiering_configuration()
        .tiering_configuration(tiering("every_vault", "*", s3_selection(&["*"], 90)))
        .creator_request_id("req-1")
        .send()
        .await
        .unwrap();
    assert_eq!(again.creation_time(), all.creation_time());
    let err = c
        .create_tiering_configuration()
        .tiering_configuration(tiering("every_vault", "plain", s3_selection(&["*"], 90)))
        .creator_request_id("req-2")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AlreadyExistsException"));
    let err = c
        .create_tiering_configuration()
        .tiering_configuration(tiering("second_all", "*", s3_selection(&["*"], 90)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ConflictException"));
    assert!(
        err.message().unwrap().contains("every_vault"),
        "{:?}",
        err.message()
    );

    c.create_tiering_configuration()
        .tiering_configuration(tiering(
            "buckets",
            "plain",
            s3_selection(&[bucket, "arn:aws:s3:::logs"], 120),
        ))
        .send()
        .await
        .unwrap();
    let got = c
        .get_tiering_configuration()
        .tiering_configuration_name("buckets")
        .send()
        .await
        .unwrap()
        .tiering_configuration
        .unwrap();
    assert_eq!(got.backup_vault_name(), "plain");
    assert_eq!(got.resource_selection().len(), 1);
    assert_eq!(
        got.resource_selection()[0].resources(),
        [bucket, "arn:aws:s3:::logs"]
    );
    assert_eq!(
        got.resource_selection()[0].tiering_down_settings_in_days(),
        120
    );
    // The SDK fills in a CreatorRequestId (an idempotency token) when none is given.
    assert!(got.creator_request_id().is_some_and(|id| !id.is_empty()));
    let tags = c.list_tags().resource_arn(&all_arn).send().await.unwrap();
    assert_eq!(
        tags.tags().unwrap().get("owner").map(String::as_str),
        Some("ops")
    );

    // Listed by name, page by page.
    let first = c
        .list_tiering_configurations()
        .max_results(1)
        .send()
        .await
        .unwrap();
    let second = c
        .list_tiering_configurations()
        .max_results(1)
        .next_token(first.next_token().unwrap())
        .send()
        .await
        .unwrap();
    let names: Vec<_> = first
        .tiering_configurations()
        .iter()
        .chain(second.tiering_configurations())
        .map(|t| {
            (
                t.tiering_configuration_name().unwrap().to_string(),
                t.backup_vault_name().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("buckets".to_string(), "plain".to_string()),
            ("every_vault".to_string(), "*".to_string())
        ]
    );
    assert_eq!(second.next_token(), None);

    // Updated: another vault and period; a vault another configuration has is refused.
    let err = c
        .update_tiering_configuration()
        .tiering_configuration_name("buckets")
        .tiering_configuration(
            TieringConfigurationInputForUpdate::builder()
                .backup_vault_name("*")
                .resource_selection(s3_selection(&["*"], 60))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ConflictException"));
    let updated = c
        .update_tiering_configuration()
        .tiering_configuration_name("buckets")
        .tiering_configuration(
            TieringConfigurationInputForUpdate::builder()
                .backup_vault_name("other")
                .resource_selection(s3_selection(&[bucket], 365))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(updated.last_updated_time().unwrap().secs() >= updated.creation_time().unwrap().secs());
    let err = c
        .update_tiering_configuration()
        .tiering_configuration_name("nope")
        .tiering_configuration(
            TieringConfigurationInputForUpdate::builder()
                .backup_vault_name("plain")
                .resource_selection(s3_selection(&["*"], 60))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    // "plain" is free again: a new configuration may take it.
    c.create_tiering_configuration()
        .tiering_configuration(tiering("plain_again", "plain", s3_selection(&["*"], 60)))
        .send()
        .await
        .unwrap();

    // Deleted with its tags.
    c.delete_tiering_configuration()
        .tiering_configuration_name("every_vault")
        .send()
        .await
        .unwrap();
    let err = c
        .get_tiering_configuration()
        .tiering_configuration_name("every_vault")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    let err = c
        .delete_tiering_configuration()
        .tiering_configuration_name("every_vault")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    let err = c
        .list_tags()
        .resource_arn(&all_arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    // Kept across a restart.
    server.terminate(std::time::Duration::from_secs(20)).await;
    let data = dir.path().join("data");
    let cfg = dir.path().join("coffer.toml");
    let server = Server::start(&[
        "--dev",
        "--auth",
        "sigv4",
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ])
    .await;
    let c = server.client();
    let got = c
        .get_tiering_configuration()
        .tiering_configuration_name("buckets")
        .send()
        .await
        .unwrap()
        .tiering_configuration
        .unwrap();
    assert_eq!(got.backup_vault_name(), "other");
    assert_eq!(got.resource_selection()[0].resources(), [bucket]);
    assert_eq!(
        got.resource_selection()[0].tiering_down_settings_in_days(),
        365
    );
    let listed = c.list_tiering_configurations().send().await.unwrap();
    assert_eq!(listed.tiering_configurations().len(), 2);
}

#[tokio::test]
async fn a_rule_targeting_an_air_gapped_vault_copies_each_backup_into_it() {
    use aws_sdk_backup::types::{BackupPlanInput, BackupRuleInput, BackupSelection};
    const DAY: i64 = 86_400;
    let dir = temp_dir();
    let (server, src) = start(dir.path()).await;
    let c = server.client();
    create_vault(&c, "plain").await;
    c.create_logically_air_gapped_backup_vault()
        .backup_vault_name("gap")
        .min_retention_days(7)
        .max_retention_days(30)
        .send()
        .await
        .unwrap();
    let plan = c
        .create_backup_plan()
        .backup_plan(
            BackupPlanInput::builder()
                .backup_plan_name("daily")
                .rules(
                    BackupRuleInput::builder()
                        .rule_name("daily")
                        .target_backup_vault_name("plain")
                        .target_logically_air_gapped_backup_vault_arn(vault_arn("gap"))
                        .schedule_expression("cron(0 5 ? * * *)")
                        .lifecycle(keep(10))
                        .build()
                        .unwrap(),
                )
                // A rule backing up straight into the air-gapped vault: its jobs fail.
                .rules(
                    BackupRuleInput::builder()
                        .rule_name("direct")
                        .target_backup_vault_name("gap")
                        .schedule_expression("cron(0 5 ? * * *)")
                        .lifecycle(keep(10))
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
            BackupSelection::builder()
                .selection_name("gap-source")
                .iam_role_arn(ROLE)
                .resources(EFS_ARN)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // To 06:00 after the next midnight: the rule fires at every 05:00 on the way (once or
    // twice, depending on the hour the test starts), and each backup is copied.
    let midnight = (server.clock_secs().await / DAY + 1) * DAY;
    server
        .move_clock(&format!(
            "{{\"set\": \"{}\"}}",
            rfc3339(midnight + 6 * 3600)
        ))
        .await;
    let jobs = wait_until(
        "the rule's copies into the air-gapped vault",
        120,
        || async {
            let backups = c
                .list_backup_jobs()
                .by_backup_vault_name("plain")
                .send()
                .await
                .unwrap();
            let copies = c.list_copy_jobs().send().await.unwrap();
            let ended = !copies.copy_jobs().is_empty()
                && copies.copy_jobs().len() == backups.backup_jobs().len()
                && copies.copy_jobs().iter().all(|j| {
                    !matches!(
                        j.state(),
                        Some(CopyJobState::Created | CopyJobState::Running)
                    )
                });
            ended.then(|| copies.copy_jobs().to_vec())
        },
    )
    .await;
    let mut copied = Vec::new();
    for job in &jobs {
        assert_eq!(
            job.state(),
            Some(&CopyJobState::Completed),
            "{:?}",
            job.status_message()
        );
        assert_eq!(
            job.destination_backup_vault_arn(),
            Some(vault_arn("gap").as_str())
        );
        assert_eq!(
            job.destination_recovery_point_lifecycle()
                .and_then(|l| l.delete_after_days()),
            Some(10)
        );
        copied.push(job.destination_recovery_point_arn().unwrap().to_string());
    }
    let mut in_gap = points_in(&c, "gap").await;
    in_gap.sort();
    copied.sort();
    assert_eq!(in_gap, copied);
    assert_eq!(points_in(&c, "plain").await.len(), jobs.len());
    let copied = copied[0].clone();
    let direct = wait_until("the direct rule's jobs to end", 60, || async {
        let jobs = c
            .list_backup_jobs()
            .by_backup_vault_name("gap")
            .send()
            .await
            .unwrap();
        let ended = jobs.backup_jobs().len() == in_gap.len()
            && jobs.backup_jobs().iter().all(|j| {
                !matches!(
                    j.state(),
                    Some(BackupJobState::Created | BackupJobState::Running)
                )
            });
        ended.then(|| jobs.backup_jobs().to_vec())
    })
    .await;
    for j in &direct {
        assert_eq!(j.state(), Some(&BackupJobState::Failed));
        let m = j.status_message().unwrap_or_default();
        assert!(m.contains("logically air-gapped backup vault"), "{m}");
        assert!(m.contains("only by copy"), "{m}");
    }
    assert_eq!(count_in(&c, "gap").await, in_gap.len() as i64);

    // The copy holds the data.
    let target = dir.path().join("restored");
    let id = c
        .start_restore_job()
        .recovery_point_arn(&copied)
        .iam_role_arn(ROLE)
        .metadata("targetPath", target.to_str().unwrap())
        .send()
        .await
        .unwrap()
        .restore_job_id
        .unwrap();
    restore_completes(&c, &id, "the restore").await;
    assert_eq!(files(&target), files(&src));
}
