//! Backup, copy and restore jobs moving real data: a fixture tree is backed up, restored
//! elsewhere and compared byte for byte and metadata for metadata; copied to another vault and
//! restored from the copy; jobs listed and filtered; stopped; and a crash mid-backup ends in a
//! defined state.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_backup::Client;
use aws_sdk_backup::types::{BackupJobState, CopyJobState, RestoreJobStatus};
use sha2::{Digest, Sha256};

use crate::harness::*;

const EFS_ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-docs";
const EBS_ARN: &str = "arn:aws:ec2:us-east-1:111122223333:volume/vol-disk";
const ROLE: &str = "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole";

/// A tree with the kinds of entries a backup must keep.
pub(crate) fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("docs/deep/er")).unwrap();
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    std::fs::write(root.join("docs/a.txt"), b"hello coffer\n").unwrap();
    std::fs::write(root.join("docs/empty"), b"").unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(root.join("docs/deep/er/big.bin"), &big).unwrap();
    std::fs::write(root.join("unicode-é-名前.txt"), "naïve".as_bytes()).unwrap();
    symlink("docs/a.txt", root.join("link-to-a")).unwrap();
    let script = root.join("run.sh");
    std::fs::write(&script, b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o750)).unwrap();
}

/// Every entry under `root`: kind, mode, mtime (regular files and dirs), content hash or link.
pub(crate) fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let desc = if m.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                stack.push(p.clone());
                format!("dir {:o}", m.mode() & 0o7777)
            } else {
                let hash = hex(&Sha256::digest(std::fs::read(&p).unwrap()));
                format!(
                    "file {:o} {} mtime {} {}",
                    m.mode() & 0o7777,
                    m.len(),
                    m.mtime(),
                    hash
                )
            };
            out.insert(rel, desc);
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn config(dir: &Path, efs_source: &Path, ebs_source: &Path) -> PathBuf {
    let path = dir.join("coffer.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[[credentials]]
access_key_id = "{AKID}"
secret_access_key = "{SECRET}"
account_id = "{ACCOUNT}"

[[resources]]
arn = "{EFS_ARN}"
source = "{}"
name = "docs"
tags = {{ team = "web", backup = "daily" }}

[[resources]]
arn = "{EBS_ARN}"
source = "{}"
"#,
            efs_source.display(),
            ebs_source.display()
        ),
    )
    .unwrap();
    path
}

async fn start(dir: &Path, extra: &[&str]) -> Server {
    start_with_env(dir, extra, &[]).await
}

async fn start_with_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let data = dir.join("data");
    let cfg = dir.join("coffer.toml");
    let mut args = vec![
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Server::start_with_env(&args, env).await
}

/// Makes backup jobs wait, once running, until they are cancelled (see the data plane's
/// `COFFER_TEST_PAUSE_AT` hook): a test can stop, kill or shut down a running backup without
/// racing its end.
const PAUSE_BACKUPS: (&str, &str) = ("COFFER_TEST_PAUSE_AT", "backup");

/// Backs `arn` up into `vault` and waits: the recovery point's ARN (the job must complete).
pub(crate) async fn backup(c: &Client, vault: &str, arn: &str) -> String {
    let out = c
        .start_backup_job()
        .backup_vault_name(vault)
        .resource_arn(arn)
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap();
    let j = wait_backup(c, out.backup_job_id().unwrap()).await;
    assert_eq!(
        j.state(),
        Some(&BackupJobState::Completed),
        "{:?}",
        j.status_message()
    );
    j.recovery_point_arn().unwrap().to_string()
}

async fn restore(
    c: &Client,
    rp: &str,
    target: &Path,
) -> aws_sdk_backup::operation::describe_restore_job::DescribeRestoreJobOutput {
    let out = c
        .start_restore_job()
        .recovery_point_arn(rp)
        .iam_role_arn(ROLE)
        .metadata("targetPath", target.to_str().unwrap())
        .send()
        .await
        .unwrap();
    wait_restore(c, out.restore_job_id().unwrap()).await
}

#[tokio::test]
async fn backup_restore_copy_round_trip_byte_for_byte() {
    let dir = temp_dir();
    let src = dir.path().join("src");
    make_tree(&src);
    let disk = dir.path().join("disk.img");
    std::fs::write(&disk, vec![7u8; 1 << 20]).unwrap();
    config(dir.path(), &src, &disk);
    let server = start(dir.path(), &[]).await;
    let c = server.client();
    c.create_backup_vault()
        .backup_vault_name("primary")
        .send()
        .await
        .unwrap();
    c.create_backup_vault()
        .backup_vault_name("secondary")
        .send()
        .await
        .unwrap();

    // Back up.
    let started = c
        .start_backup_job()
        .backup_vault_name("primary")
        .resource_arn(EFS_ARN)
        .iam_role_arn(ROLE)
        .idempotency_token("first-backup")
        .recovery_point_tags("purpose", "test")
        .send()
        .await
        .unwrap();
    let job_id = started.backup_job_id().unwrap().to_string();
    let again = c
        .start_backup_job()
        .backup_vault_name("primary")
        .resource_arn(EFS_ARN)
        .iam_role_arn(ROLE)
        .idempotency_token("first-backup")
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.backup_job_id(),
        Some(job_id.as_str()),
        "same idempotency token, same job"
    );
    let job = wait_backup(&c, &job_id).await;
    assert_eq!(
        job.state(),
        Some(&BackupJobState::Completed),
        "{:?}",
        job.status_message()
    );
    assert_eq!(job.percent_done(), Some("100.0"));
    assert_eq!(job.resource_type(), Some("EFS"));
    assert_eq!(job.resource_name(), Some("docs"));
    assert!(job.backup_size_in_bytes().unwrap() >= 3_000_000);
    let rp = job.recovery_point_arn().unwrap().to_string();
    assert!(rp.starts_with("arn:aws:backup:us-east-1:111122223333:recovery-point:"));

    let d = c
        .describe_recovery_point()
        .backup_vault_name("primary")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap();
    assert_eq!(d.status().map(|s| s.as_str()), Some("COMPLETED"));
    assert_eq!(d.resource_arn(), Some(EFS_ARN));
    assert_eq!(d.storage_class().map(|s| s.as_str()), Some("WARM"));
    let tags = c.list_tags().resource_arn(&rp).send().await.unwrap();
    assert_eq!(
        tags.tags().unwrap().get("purpose").map(String::as_str),
        Some("test")
    );
    let vault = c
        .describe_backup_vault()
        .backup_vault_name("primary")
        .send()
        .await
        .unwrap();
    assert_eq!(vault.number_of_recovery_points(), 1);
    let err = c
        .delete_backup_vault()
        .backup_vault_name("primary")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_invalid_request_exception()
    );

    // Restore elsewhere and compare everything.
    let target = dir.path().join("restored");
    let r = restore(&c, &rp, &target).await;
    assert_eq!(
        r.status(),
        Some(&RestoreJobStatus::Completed),
        "{:?}",
        r.status_message()
    );
    assert_eq!(snapshot(&target), snapshot(&src));

    // A non-empty target is refused when the restore is started, unless asked to overwrite,
    // and the message names the way out.
    let err = c
        .start_restore_job()
        .recovery_point_arn(&rp)
        .iam_role_arn(ROLE)
        .metadata("targetPath", target.to_str().unwrap())
        .send()
        .await
        .unwrap_err();
    let err = err.into_service_error();
    assert!(err.is_invalid_parameter_value_exception(), "{err:?}");
    let msg = err.meta().message().unwrap_or_default().to_string();
    assert!(
        msg.contains("is not empty") && msg.contains("overwrite=true"),
        "{msg}"
    );
    assert_eq!(snapshot(&target), snapshot(&src));
    // A file where the target directory should be is refused the same way.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"mine").unwrap();
    let err = c
        .start_restore_job()
        .recovery_point_arn(&rp)
        .iam_role_arn(ROLE)
        .metadata("targetPath", file.to_str().unwrap())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_value_exception(), "{err:?}");
    assert!(
        err.meta()
            .message()
            .unwrap_or_default()
            .contains("is a file"),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");

    // A retried Start call (same idempotency token) gets its job back, although the job has
    // filled its target since.
    let retried = dir.path().join("retried");
    let start = || {
        c.start_restore_job()
            .recovery_point_arn(&rp)
            .iam_role_arn(ROLE)
            .idempotency_token("restore-retried-1")
            .metadata("targetPath", retried.to_str().unwrap())
            .send()
    };
    let first = start().await.unwrap();
    let done = wait_restore(&c, first.restore_job_id().unwrap()).await;
    assert_eq!(done.status(), Some(&RestoreJobStatus::Completed));
    let again = start().await.unwrap();
    assert_eq!(again.restore_job_id(), first.restore_job_id());

    // Item-level restore.
    let items = dir.path().join("items");
    let out = c
        .start_restore_job()
        .recovery_point_arn(&rp)
        .iam_role_arn(ROLE)
        .metadata("targetPath", items.to_str().unwrap())
        .metadata("ItemsToRestore", r#"["docs/a.txt"]"#)
        .send()
        .await
        .unwrap();
    let r = wait_restore(&c, out.restore_job_id().unwrap()).await;
    assert_eq!(
        r.status(),
        Some(&RestoreJobStatus::Completed),
        "{:?}",
        r.status_message()
    );
    assert_eq!(
        std::fs::read(items.join("docs/a.txt")).unwrap(),
        b"hello coffer\n"
    );
    assert!(!items.join("docs/deep").exists());

    // Copy to the second vault, restore from the copy.
    let secondary_arn = "arn:aws:backup:us-east-1:111122223333:backup-vault:secondary";
    let cj = c
        .start_copy_job()
        .recovery_point_arn(&rp)
        .source_backup_vault_name("primary")
        .destination_backup_vault_arn(secondary_arn)
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap();
    let copy = wait_copy(&c, cj.copy_job_id().unwrap()).await;
    assert_eq!(
        copy.state(),
        Some(&CopyJobState::Completed),
        "{:?}",
        copy.status_message()
    );
    let copied_rp = copy.destination_recovery_point_arn().unwrap().to_string();
    let listed = c
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("secondary")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.recovery_points().len(), 1);
    let only = &listed.recovery_points()[0];
    assert_eq!(only.recovery_point_arn(), Some(copied_rp.as_str()));
    assert_eq!(
        only.source_backup_vault_arn(),
        Some("arn:aws:backup:us-east-1:111122223333:backup-vault:primary")
    );
    assert_eq!(
        only.creation_date(),
        d.creation_date(),
        "a copy keeps the source's creation date"
    );
    let from_copy = dir.path().join("from-copy");
    let r = restore(&c, &copied_rp, &from_copy).await;
    assert_eq!(
        r.status(),
        Some(&RestoreJobStatus::Completed),
        "{:?}",
        r.status_message()
    );
    assert_eq!(snapshot(&from_copy), snapshot(&src));

    // Jobs are listed and filtered.
    let copies = c
        .list_copy_jobs()
        .by_destination_vault_arn(secondary_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(copies.copy_jobs().len(), 1);
    let done = c
        .list_backup_jobs()
        .by_state(BackupJobState::Completed)
        .send()
        .await
        .unwrap();
    assert_eq!(done.backup_jobs().len(), 1);
    let none = c
        .list_backup_jobs()
        .by_resource_arn(EBS_ARN)
        .send()
        .await
        .unwrap();
    assert!(none.backup_jobs().is_empty());
    // A state with a vault (read through their paired index): the job in its vault only.
    for (vault, n) in [("primary", 1), ("secondary", 0)] {
        let jobs = c
            .list_backup_jobs()
            .by_state(BackupJobState::Completed)
            .by_backup_vault_name(vault)
            .send()
            .await
            .unwrap();
        assert_eq!(jobs.backup_jobs().len(), n, "{vault}");
        if n == 1 {
            assert_eq!(
                jobs.backup_jobs()[0].recovery_point_arn(),
                Some(rp.as_str())
            );
        }
    }
    for (state, n) in [(CopyJobState::Completed, 1), (CopyJobState::Failed, 0)] {
        let copies = c
            .list_copy_jobs()
            .by_destination_vault_arn(secondary_arn)
            .by_state(state.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(copies.copy_jobs().len(), n, "{state:?}");
    }
    // A vault's points of a resource type, and its protected resources, each with its own
    // point in that vault.
    for (vault, kind, point) in [
        ("primary", "EFS", Some(&rp)),
        ("primary", "EBS", None),
        ("secondary", "EFS", Some(&copied_rp)),
    ] {
        let listed = c
            .list_recovery_points_by_backup_vault()
            .backup_vault_name(vault)
            .by_resource_type(kind)
            .send()
            .await
            .unwrap();
        let arns: Vec<_> = listed
            .recovery_points()
            .iter()
            .map(|p| p.recovery_point_arn().unwrap().to_string())
            .collect();
        assert_eq!(
            arns,
            point.into_iter().cloned().collect::<Vec<_>>(),
            "{vault} {kind}"
        );
    }
    for (vault, point) in [("primary", &rp), ("secondary", &copied_rp)] {
        let p = c
            .list_protected_resources_by_backup_vault()
            .backup_vault_name(vault)
            .send()
            .await
            .unwrap();
        assert_eq!(p.results().len(), 1, "{vault}");
        assert_eq!(p.results()[0].resource_arn(), Some(EFS_ARN));
        assert_eq!(
            p.results()[0].last_recovery_point_arn(),
            Some(point.as_str()),
            "{vault}"
        );
    }
    // Four restores completed (to a new target, the retried one, item-level, from the
    // copy); the one refused at StartRestoreJob never became a job.
    for (status, n) in [
        (RestoreJobStatus::Completed, 4),
        (RestoreJobStatus::Failed, 0),
    ] {
        let restores = c
            .list_restore_jobs()
            .by_status(status.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(restores.restore_jobs().len(), n, "{status:?}");
    }

    // Protected resources.
    let p = c
        .describe_protected_resource()
        .resource_arn(EFS_ARN)
        .send()
        .await
        .unwrap();
    assert_eq!(p.resource_type(), Some("EFS"));
    // The newest point of the resource (ListRecoveryPointsByResource lists newest first) and
    // the newest of the completed restores (every restore here is of this resource).
    let newest = c
        .list_recovery_points_by_resource()
        .resource_arn(EFS_ARN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        p.last_recovery_point_arn(),
        newest.recovery_points()[0].recovery_point_arn()
    );
    assert_eq!(
        p.last_backup_time(),
        newest.recovery_points()[0].creation_date()
    );
    let completed = c
        .list_restore_jobs()
        .by_status(RestoreJobStatus::Completed)
        .send()
        .await
        .unwrap();
    let latest_restore = completed
        .restore_jobs()
        .iter()
        .filter_map(|j| j.creation_date())
        .max_by_key(|d| (d.secs(), d.subsec_nanos()));
    assert!(latest_restore.is_some());
    assert_eq!(p.latest_restore_job_creation_date(), latest_restore);
    assert!(p.latest_restore_recovery_point_creation_date().is_some());
    let all = c.list_protected_resources().send().await.unwrap();
    assert_eq!(all.results().len(), 1);

    // The next day: an incremental backup sees the change; its restore matches the new state.
    std::fs::write(src.join("docs/a.txt"), b"hello again\n").unwrap();
    std::fs::write(src.join("docs/new.txt"), b"new file\n").unwrap();
    std::fs::remove_file(src.join("docs/empty")).unwrap();
    let rp2 = backup(&c, "primary", EFS_ARN).await;
    let second = dir.path().join("second");
    let r = restore(&c, &rp2, &second).await;
    assert_eq!(
        r.status(),
        Some(&RestoreJobStatus::Completed),
        "{:?}",
        r.status_message()
    );
    assert_eq!(snapshot(&second), snapshot(&src));
    let by_resource = c
        .list_recovery_points_by_resource()
        .resource_arn(EFS_ARN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_resource.recovery_points().len(),
        3,
        "two in primary, one copy in secondary"
    );

    // Deleting a recovery point.
    c.delete_recovery_point()
        .backup_vault_name("primary")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap();
    let err = c
        .describe_recovery_point()
        .backup_vault_name("primary")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );
    let vault = c
        .describe_backup_vault()
        .backup_vault_name("primary")
        .send()
        .await
        .unwrap();
    assert_eq!(vault.number_of_recovery_points(), 1);
    // The remaining point still restores after the delete removed the other's data.
    let third = dir.path().join("third");
    let r = restore(&c, &rp2, &third).await;
    assert_eq!(
        r.status(),
        Some(&RestoreJobStatus::Completed),
        "{:?}",
        r.status_message()
    );
    assert_eq!(snapshot(&third), snapshot(&src));

    // A disk image (EBS) as one stream.
    let rp_disk = backup(&c, "secondary", EBS_ARN).await;
    let disk_target = dir.path().join("disk-restore");
    let r = restore(&c, &rp_disk, &disk_target).await;
    assert_eq!(
        r.status(),
        Some(&RestoreJobStatus::Completed),
        "{:?}",
        r.status_message()
    );
    let restored: Vec<PathBuf> = walk_files(&disk_target);
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert_eq!(
        std::fs::read(&restored[0]).unwrap(),
        std::fs::read(&disk).unwrap()
    );
}

fn walk_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn job_requests_are_validated() {
    let dir = temp_dir();
    let src = dir.path().join("src");
    make_tree(&src);
    config(dir.path(), &src, &dir.path().join("no-such-disk"));
    let server = start(dir.path(), &[]).await;
    let c = server.client();
    c.create_backup_vault()
        .backup_vault_name("vv")
        .send()
        .await
        .unwrap();

    let err = c
        .start_backup_job()
        .backup_vault_name("vv")
        .resource_arn("arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-unknown")
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap_err();
    let se = err.as_service_error().unwrap();
    assert!(se.is_invalid_parameter_value_exception(), "{se:?}");
    assert!(se.meta().message().unwrap().contains("inventory"));
    // A kind Coffer cannot back up: the message names the kinds it can.
    let err = c
        .start_backup_job()
        .backup_vault_name("vv")
        .resource_arn("arn:aws:dynamodb:us-east-1:111122223333:table/photos")
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap_err();
    let se = err.as_service_error().unwrap();
    assert!(se.is_invalid_parameter_value_exception(), "{se:?}");
    let m = se.meta().message().unwrap();
    assert!(
        m.contains("not a kind of resource Coffer can back up")
            && m.contains("EFS file systems")
            && m.contains("EBS volumes"),
        "{m}"
    );

    let err = c
        .start_backup_job()
        .backup_vault_name("absent")
        .resource_arn(EFS_ARN)
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );

    // A resource whose source is missing: the job fails and says why.
    let out = c
        .start_backup_job()
        .backup_vault_name("vv")
        .resource_arn(EBS_ARN)
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap();
    let j = wait_backup(&c, out.backup_job_id().unwrap()).await;
    assert_eq!(j.state(), Some(&BackupJobState::Failed));
    assert!(
        j.status_message().unwrap().contains("no-such-disk"),
        "{:?}",
        j.status_message()
    );

    let rp = backup(&c, "vv", EFS_ARN).await;
    let err = c
        .start_restore_job()
        .recovery_point_arn(&rp)
        .metadata("overwrite", "true")
        .send()
        .await
        .unwrap_err();
    let se = err.as_service_error().unwrap();
    assert!(se.is_invalid_parameter_value_exception(), "{se:?}");
    assert!(se.meta().message().unwrap().contains("targetPath"));
    let err = c
        .start_restore_job()
        .recovery_point_arn(&rp)
        .metadata("targetPath", "relative/dir")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_invalid_parameter_value_exception()
    );
    let err = c
        .start_restore_job()
        .recovery_point_arn("arn:aws:backup:us-east-1:111122223333:recovery-point:nope")
        .metadata("targetPath", "/tmp/x")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );
    let err = c
        .describe_backup_job()
        .backup_job_id("NOPE")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );
    let err = c
        .start_copy_job()
        .recovery_point_arn(&rp)
        .source_backup_vault_name("vv")
        .destination_backup_vault_arn("not-an-arn")
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_invalid_parameter_value_exception()
    );

    // Summaries: one failed EBS backup and one completed EFS backup today.
    let s = c.list_backup_job_summaries().send().await.unwrap();
    let mut rows: Vec<(String, String, i32)> = s
        .backup_job_summaries()
        .iter()
        .map(|r| {
            (
                r.state().unwrap().as_str().to_string(),
                r.resource_type().unwrap().to_string(),
                r.count(),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            ("COMPLETED".to_string(), "EFS".to_string(), 1),
            ("FAILED".to_string(), "EBS".to_string(), 1)
        ]
    );
    let all = c
        .list_backup_job_summaries()
        .state(aws_sdk_backup::types::BackupJobStatus::AggregateAll)
        .resource_type("AGGREGATE_ALL")
        .message_category("AGGREGATE_ALL")
        .aggregation_period(aws_sdk_backup::types::AggregationPeriod::SevenDays)
        .send()
        .await
        .unwrap();
    assert_eq!(all.backup_job_summaries().len(), 1);
    assert_eq!(all.backup_job_summaries()[0].count(), 2);

    let types = c.get_supported_resource_types().send().await.unwrap();
    // Every type AWS Backup lists, Coffer's own two among them.
    let types = types.resource_types();
    for t in [
        "Aurora",
        "DynamoDB",
        "EBS",
        "EC2",
        "EFS",
        "FSx",
        "RDS",
        "S3",
        "Storage Gateway",
    ] {
        assert!(types.iter().any(|x| x == t), "{t} missing from {types:?}");
    }
    assert_eq!(types.len(), 17, "{types:?}");
}

/// A big source so that a backup runs long enough to be stopped or interrupted.
pub(crate) fn big_tree(root: &Path, mib: usize) {
    std::fs::create_dir_all(root).unwrap();
    let mut seed = 0x9E3779B97F4A7C15u64;
    for f in 0..mib {
        let mut data = vec![0u8; 1 << 20];
        for chunk in data.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
        }
        std::fs::write(root.join(format!("f{f:04}.bin")), &data).unwrap();
    }
}

/// Creates vault `vv`, starts a backup of the EFS resource into it and returns its id once it
/// is RUNNING (it must not end before that: the source is big).
async fn start_backup_and_wait_until_running(c: &Client) -> String {
    c.create_backup_vault()
        .backup_vault_name("vv")
        .send()
        .await
        .unwrap();
    let out = c
        .start_backup_job()
        .backup_vault_name("vv")
        .resource_arn(EFS_ARN)
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap();
    let id = out.backup_job_id().unwrap().to_string();
    loop {
        let j = c
            .describe_backup_job()
            .backup_job_id(&id)
            .send()
            .await
            .unwrap();
        if j.state() == Some(&BackupJobState::Running) {
            return id;
        }
        assert_eq!(
            j.state(),
            Some(&BackupJobState::Created),
            "{:?}",
            j.status_message()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A backup caught in the middle of its transfer (the `progress` pause point holds the
/// engine after its first bytes) reports its progress through DescribeBackupJob and
/// ListBackupJobs: RUNNING, some bytes transferred, a PercentDone strictly between 0 and 100.
#[tokio::test]
async fn a_running_backup_reports_its_progress() {
    let dir = temp_dir();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // Incompressible data in several files, so the transfer reports as it goes.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..8 {
        let bytes: Vec<u8> = (0..2_000_000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        std::fs::write(src.join(format!("f{i}.bin")), bytes).unwrap();
    }
    config(dir.path(), &src, &dir.path().join("disk"));
    let server = start_with_env(dir.path(), &[], &[("COFFER_TEST_PAUSE_AT", "progress")]).await;
    let c = server.client();
    let id = start_backup_and_wait_until_running(&c).await;
    let j = wait_until(
        "the running backup reports bytes and a percentage",
        60,
        || async {
            let j = c
                .describe_backup_job()
                .backup_job_id(&id)
                .send()
                .await
                .unwrap();
            let pct: f64 = j.percent_done().unwrap_or("0").parse().unwrap();
            (j.bytes_transferred().unwrap_or(0) > 0 && pct > 0.0).then_some(j)
        },
    )
    .await;
    assert_eq!(j.state(), Some(&BackupJobState::Running));
    let pct: f64 = j.percent_done().unwrap().parse().unwrap();
    assert!(pct > 0.0 && pct < 100.0, "{pct}");
    assert!(j.bytes_transferred().unwrap() < 16_000_000);
    let listed = c.list_backup_jobs().send().await.unwrap();
    let row = &listed.backup_jobs()[0];
    assert_eq!(row.backup_job_id(), Some(id.as_str()));
    assert!(row.bytes_transferred().unwrap() > 0);
    // Stopped where it was held: no recovery point.
    c.stop_backup_job().backup_job_id(&id).send().await.unwrap();
    let j = wait_backup(&c, &id).await;
    assert_eq!(j.state(), Some(&BackupJobState::Aborted));
}

#[tokio::test]
async fn a_running_backup_can_be_stopped() {
    let dir = temp_dir();
    let src = dir.path().join("src");
    make_tree(&src);
    config(dir.path(), &src, &dir.path().join("disk"));
    let server = start_with_env(dir.path(), &[], &[PAUSE_BACKUPS]).await;
    let c = server.client();
    let id = start_backup_and_wait_until_running(&c).await;
    c.stop_backup_job().backup_job_id(&id).send().await.unwrap();
    let j = wait_backup(&c, &id).await;
    assert_eq!(
        j.state(),
        Some(&BackupJobState::Aborted),
        "{:?}",
        j.status_message()
    );
    assert!(j.status_message().unwrap().contains("StopBackupJob"));
    let rps = c
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("vv")
        .send()
        .await
        .unwrap();
    assert!(
        rps.recovery_points().is_empty(),
        "a stopped backup leaves no recovery point"
    );
    let err = c
        .stop_backup_job()
        .backup_job_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_invalid_request_exception()
    );
}

#[tokio::test]
async fn a_crash_mid_backup_ends_in_a_defined_state() {
    let dir = temp_dir();
    let src = dir.path().join("src");
    big_tree(&src, 8);
    config(dir.path(), &src, &dir.path().join("disk"));
    let server = start_with_env(dir.path(), &[], &[PAUSE_BACKUPS]).await;
    let c = server.client();
    let id = start_backup_and_wait_until_running(&c).await;
    server.kill().await;

    let server = start(dir.path(), &[]).await;
    let c = server.client();
    let j = wait_backup(&c, &id).await;
    assert_eq!(
        j.state(),
        Some(&BackupJobState::Completed),
        "{:?}",
        j.status_message()
    );
    assert!(
        j.status_message()
            .unwrap_or_default()
            .contains("interrupted")
            || j.status_message().is_none()
    );
    let target = dir.path().join("restored");
    let r = restore(&c, j.recovery_point_arn().unwrap(), &target).await;
    assert_eq!(
        r.status(),
        Some(&RestoreJobStatus::Completed),
        "{:?}",
        r.status_message()
    );
    assert_eq!(snapshot(&target), snapshot(&src));
}

#[tokio::test]
async fn sigterm_during_a_backup_hands_it_back_and_the_next_start_completes_it() {
    let dir = temp_dir();
    let src = dir.path().join("src");
    big_tree(&src, 8);
    config(dir.path(), &src, &dir.path().join("disk"));
    let server = start_with_env(dir.path(), &["--shutdown-timeout", "20"], &[PAUSE_BACKUPS]).await;
    let c = server.client();
    let id = start_backup_and_wait_until_running(&c).await;
    let status = server.terminate(Duration::from_secs(60)).await;
    assert!(
        status.success(),
        "coffer exits cleanly on SIGTERM: {status:?}"
    );

    // Stopped, not lost: the job is waiting again, saying why, with no lease and no attempt
    // counted against it.
    let data = dir.path().join("data");
    let store =
        coffer_store::StoreHandle::open(&crate::harness::store_location(data.to_str().unwrap()))
            .unwrap();
    let key = format!("111122223333:us-east-1:{id}");
    let job: serde_json::Value = store
        .read(move |tx| tx.get("backup_job", &key))
        .await
        .unwrap()
        .map(|v| serde_json::from_slice(&v).unwrap())
        .expect("the job is still recorded");
    assert_eq!(job["state"], "CREATED", "{job}");
    assert_eq!(job["lease_owner"], serde_json::Value::Null, "{job}");
    assert_eq!(job["attempts"], 0, "{job}");
    assert!(
        job["status_message"]
            .as_str()
            .unwrap()
            .contains("runs again when Coffer starts"),
        "{job}"
    );
    drop(store);

    let server = start(dir.path(), &[]).await;
    let c = server.client();
    let j = wait_backup(&c, &id).await;
    assert_eq!(
        j.state(),
        Some(&BackupJobState::Completed),
        "{:?}",
        j.status_message()
    );
    let target = dir.path().join("restored");
    let r = restore(&c, j.recovery_point_arn().unwrap(), &target).await;
    assert_eq!(
        r.status(),
        Some(&RestoreJobStatus::Completed),
        "{:?}",
        r.status_message()
    );
    assert_eq!(snapshot(&target), snapshot(&src), "nothing is lost");
}

#[tokio::test]
async fn plain_restic_opens_a_vault_with_the_exported_key() {
    if std::process::Command::new("restic")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED: the restic binary is not installed (apt-get install restic; CI installs it)"
        );
        return;
    }
    let dir = temp_dir();
    let src = dir.path().join("src");
    make_tree(&src);
    config(dir.path(), &src, &dir.path().join("disk"));
    let server = start(dir.path(), &[]).await;
    let c = server.client();
    c.create_backup_vault()
        .backup_vault_name("exported")
        .send()
        .await
        .unwrap();
    backup(&c, "exported", EFS_ARN).await;

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args([
            "vault-key",
            "export",
            "--vault",
            "exported",
            "--account-id",
            ACCOUNT,
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(store_args(&[
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
        ]))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("{name} missing in {text}"))
    };
    let (repo, password) = (field("repository:"), field("password:"));

    let restic = |args: &[&str]| {
        let o = std::process::Command::new("restic")
            .arg("-r")
            .arg(&repo)
            .args(args)
            .env("RESTIC_PASSWORD", &password)
            .env("RESTIC_CACHE_DIR", dir.path().join("restic-cache"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "restic {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let snapshots: serde_json::Value =
        serde_json::from_str(&restic(&["snapshots", "--json"])).unwrap();
    assert_eq!(snapshots.as_array().unwrap().len(), 1);
    restic(&["check", "--read-data"]);
    let target = dir.path().join("restic-restore");
    restic(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let inside = target.join(src.strip_prefix("/").unwrap());
    assert_eq!(snapshot(&inside), snapshot(&src));
}

#[tokio::test]
async fn copies_reach_another_account_only_when_its_vault_policy_allows() {
    let dir = temp_dir();
    let src = dir.path().join("src");
    make_tree(&src);
    let cfg = config(dir.path(), &src, &dir.path().join("disk"));
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(
        r#"
[[credentials]]
access_key_id = "AKIDOTHERACCOUNT0001"
secret_access_key = "other-secret"
account_id = "444455556666"
"#,
    );
    std::fs::write(&cfg, text).unwrap();
    let server = start(dir.path(), &[]).await;
    let a = server.client();
    let b = server.client_as("AKIDOTHERACCOUNT0001", "other-secret", "us-east-1");
    a.create_backup_vault()
        .backup_vault_name("source")
        .send()
        .await
        .unwrap();
    let shared = b
        .create_backup_vault()
        .backup_vault_name("shared-in")
        .send()
        .await
        .unwrap();
    let shared_arn = shared.backup_vault_arn().unwrap().to_string();
    let rp = backup(&a, "source", EFS_ARN).await;

    let copy = || {
        a.start_copy_job()
            .recovery_point_arn(&rp)
            .source_backup_vault_name("source")
            .destination_backup_vault_arn(&shared_arn)
            .iam_role_arn(ROLE)
            .send()
    };
    let err = copy().await.unwrap_err();
    let se = err.as_service_error().unwrap();
    assert!(se.is_invalid_request_exception(), "{se:?}");
    assert!(
        se.meta()
            .message()
            .unwrap()
            .contains("isCrossAccountBackupEnabled")
    );

    a.update_global_settings()
        .global_settings("isCrossAccountBackupEnabled", "true")
        .send()
        .await
        .unwrap();
    let err = copy().await.unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .meta()
            .message()
            .unwrap()
            .contains("access policy")
    );

    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"backup:CopyIntoBackupVault","Resource":"*"}}]}}"#
    );
    b.put_backup_vault_access_policy()
        .backup_vault_name("shared-in")
        .policy(policy)
        .send()
        .await
        .unwrap();
    let started = copy().await.unwrap();
    let job = wait_copy(&a, started.copy_job_id().unwrap()).await;
    assert_eq!(
        job.state(),
        Some(&CopyJobState::Completed),
        "{:?}",
        job.status_message()
    );
    let dest_rp = job.destination_recovery_point_arn().unwrap();
    assert!(dest_rp.starts_with("arn:aws:backup:us-east-1:444455556666:recovery-point:"));

    let listed = b
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("shared-in")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.recovery_points().len(), 1);
    let target = dir.path().join("restored-by-b");
    let r = restore(&b, dest_rp, &target).await;
    assert_eq!(
        r.status(),
        Some(&RestoreJobStatus::Completed),
        "{:?}",
        r.status_message()
    );
    assert_eq!(snapshot(&target), snapshot(&src));
    assert!(
        a.list_recovery_points_by_backup_vault()
            .backup_vault_name("source")
            .send()
            .await
            .unwrap()
            .recovery_points()
            .len()
            == 1
    );
}

#[tokio::test]
async fn deleting_points_and_the_vault_removes_its_data() {
    let dir = temp_dir();
    let src = dir.path().join("src");
    make_tree(&src);
    config(dir.path(), &src, &dir.path().join("disk"));
    let server = start(dir.path(), &[]).await;
    let c = server.client();
    c.create_backup_vault()
        .backup_vault_name("short-lived")
        .send()
        .await
        .unwrap();
    let rp = backup(&c, "short-lived", EFS_ARN).await;
    let vaults_dir = dir.path().join("data/vaults");
    assert_eq!(
        std::fs::read_dir(&vaults_dir).unwrap().count(),
        1,
        "the first backup created the repository"
    );

    let err = c
        .disassociate_recovery_point()
        .backup_vault_name("short-lived")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_invalid_request_exception()
    );

    c.delete_recovery_point()
        .backup_vault_name("short-lived")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap();
    c.delete_backup_vault()
        .backup_vault_name("short-lived")
        .send()
        .await
        .unwrap();
    for _ in 0..100 {
        if std::fs::read_dir(&vaults_dir).unwrap().count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the deleted vault's repository is still on disk");
}

/// The removals of deleted recovery points as `GET /_coffer/deletions` lists them to a
/// signed request (the caller's account only).
async fn deletions(server: &Server) -> serde_json::Value {
    // Development mode: no authentication, and a numeric access key is the account.
    let (status, _, body) =
        crate::notifications::signed(server, "GET", "/_coffer/deletions", b"", ACCOUNT, "x").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A recovery point deleted from a vault whose repository has gone (its directory replaced
/// by a file): the removal of its data fails, is listed with its attempts and last error, is
/// tried again only when its backoff has passed on the Coffer clock (1 minute, doubling to an
/// hour), and after the tenth failure is listed as failed.
#[tokio::test]
async fn a_removal_that_keeps_failing_backs_off_and_is_given_up() {
    let dir = temp_dir();
    let src = dir.path().join("src");
    make_tree(&src);
    config(dir.path(), &src, &dir.path().join("disk"));
    let server = start(dir.path(), &["--dev"]).await;
    let c = server.client_as(ACCOUNT, "x", "us-east-1");
    c.create_backup_vault()
        .backup_vault_name("fragile")
        .send()
        .await
        .unwrap();
    let out = c
        .start_backup_job()
        .backup_vault_name("fragile")
        .resource_arn(EFS_ARN)
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap();
    let j = wait_backup(&c, out.backup_job_id().unwrap()).await;
    assert_eq!(j.state(), Some(&BackupJobState::Completed));
    let rp = j.recovery_point_arn().unwrap().to_string();
    let unlisted = deletions(&server).await;
    assert_eq!(
        unlisted,
        serde_json::json!({"pending": [], "failed": []}),
        "nothing queued yet"
    );

    // The vault's repository goes away: its directory becomes a file.
    let vaults_dir = dir.path().join("data").join("vaults");
    let repo = std::fs::read_dir(&vaults_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("the vault's repository");
    std::fs::remove_dir_all(&repo).unwrap();
    std::fs::write(&repo, b"not a repository").unwrap();
    c.delete_recovery_point()
        .backup_vault_name("fragile")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap();

    let attempts_of = |v: &serde_json::Value| v["pending"][0]["attempts"].as_u64();
    let s = &server;
    let first = wait_until("the first attempt at the removal", 30, || async move {
        let v = deletions(s).await;
        (attempts_of(&v) == Some(1)).then_some(v)
    })
    .await;
    let pending = &first["pending"][0];
    assert_eq!(pending["vault_name"], "fragile");
    assert_eq!(pending["recovery_point_id"], rp.rsplit(':').next().unwrap());
    let error = pending["last_error"].as_str().unwrap();
    assert!(error.starts_with("vault not found: "), "{error}");
    assert!(pending["next_attempt"].is_string(), "{pending}");

    let mut wait_minutes = 1;
    for attempt in 2..=10u64 {
        // Just short of the backoff: a catch-up pass leaves the removal alone.
        server.advance_clock(wait_minutes * 60 - 20).await;
        assert_eq!(attempts_of(&deletions(&server).await), Some(attempt - 1));
        // Past it: the next pass tries again.
        server.move_clock("{\"advance_seconds\": 20}").await;
        let now = wait_until(&format!("attempt {attempt}"), 30, || async move {
            let v = deletions(s).await;
            let done = if attempt < 10 {
                attempts_of(&v) == Some(attempt)
            } else {
                v["failed"][0]["attempts"].as_u64() == Some(10)
            };
            done.then_some(v)
        })
        .await;
        if attempt == 10 {
            assert_eq!(now["pending"], serde_json::json!([]), "{now}");
            let failed = &now["failed"][0];
            assert!(failed["failed_at"].is_string(), "{failed}");
            assert!(
                failed["last_error"]
                    .as_str()
                    .unwrap()
                    .starts_with("vault not found: "),
                "{failed}"
            );
        }
        wait_minutes = (wait_minutes * 2).min(60);
    }
}
