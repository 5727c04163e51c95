//! A restore cut off by `kill -9` finishes after the restart: the real `coffer` is killed while
//! a restore job is writing files into a new target, started again on the same data directory,
//! and the job must then complete with the target equal to the source byte for byte (and no
//! trace of Coffer's own bookkeeping left in it).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_backup::Client;
use aws_sdk_backup::types::{BackupJobState, RestoreJobStatus};
use sha2::{Digest, Sha256};

use crate::harness::*;
use crate::jobs::big_tree;

const ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-crash";
const ROLE: &str = "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole";

/// Size, mode, mtime and content hash of every entry under `root`.
pub(crate) fn tree(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let desc = if m.is_dir() {
                stack.push(p.clone());
                format!("dir {:o}", m.mode() & 0o7777)
            } else {
                let hash: String = Sha256::digest(std::fs::read(&p).unwrap())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                format!(
                    "file {:o} {} {} {hash}",
                    m.mode() & 0o7777,
                    m.len(),
                    m.mtime()
                )
            };
            out.insert(rel, desc);
        }
    }
    out
}

/// Bytes in regular files under `root` (0 when it does not exist yet).
fn bytes_under(root: &Path) -> u64 {
    tree_bytes(root).unwrap_or(0)
}

fn tree_bytes(root: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(root)? {
        let e = e?;
        let m = e.metadata()?;
        if m.is_dir() {
            total += tree_bytes(&e.path())?;
        } else if m.is_file() {
            total += m.len();
        }
    }
    Ok(total)
}

async fn start(dir: &Path) -> Server {
    let cfg = dir.join("coffer.toml");
    let data = dir.join("data");
    Server::start(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ])
    .await
}

async fn describe(
    c: &Client,
    id: &str,
) -> aws_sdk_backup::operation::describe_restore_job::DescribeRestoreJobOutput {
    c.describe_restore_job()
        .restore_job_id(id)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_restore_killed_midway_completes_after_restart() {
    let dir = temp_dir();
    let src = dir.path().join("src");
    big_tree(&src, 48);
    std::fs::write(
        dir.path().join("coffer.toml"),
        format!(
            r#"
[[credentials]]
access_key_id = "{AKID}"
secret_access_key = "{SECRET}"
account_id = "{ACCOUNT}"

[[resources]]
arn = "{ARN}"
source = "{}"
"#,
            src.display()
        ),
    )
    .unwrap();
    let server = start(dir.path()).await;
    let c = server.client();
    c.create_backup_vault()
        .backup_vault_name("crash")
        .send()
        .await
        .unwrap();
    let b = c
        .start_backup_job()
        .backup_vault_name("crash")
        .resource_arn(ARN)
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap();
    let bid = b.backup_job_id().unwrap();
    let rp = loop {
        let j = c
            .describe_backup_job()
            .backup_job_id(bid)
            .send()
            .await
            .unwrap();
        match j.state() {
            Some(BackupJobState::Completed) => break j.recovery_point_arn().unwrap().to_string(),
            Some(BackupJobState::Created | BackupJobState::Pending | BackupJobState::Running) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("backup ended {other:?}: {:?}", j.status_message()),
        }
    };

    let target = dir.path().join("restored");
    let id = c
        .start_restore_job()
        .recovery_point_arn(&rp)
        .iam_role_arn(ROLE)
        .metadata("targetPath", target.to_str().unwrap())
        .send()
        .await
        .unwrap()
        .restore_job_id()
        .unwrap()
        .to_string();
    // Kill it once the job runs and has written file content into the target.
    let total = bytes_under(&src);
    let mut polls = 0;
    loop {
        let j = describe(&c, &id).await;
        assert!(
            matches!(
                j.status(),
                Some(RestoreJobStatus::Pending | RestoreJobStatus::Running)
            ),
            "the restore ended before it could be interrupted: {:?} {:?}",
            j.status(),
            j.status_message()
        );
        if j.status() == Some(&RestoreJobStatus::Running) && bytes_under(&target) > 0 {
            break;
        }
        polls += 1;
        assert!(polls < 6000, "the restore wrote nothing within 60 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill().await;
    let partial = bytes_under(&target);
    assert!(
        partial > 0 && partial < total,
        "killed with {partial} of {total} bytes in the target"
    );

    let server = start(dir.path()).await;
    let c = server.client();
    let mut polls = 0;
    let j = loop {
        let j = describe(&c, &id).await;
        if !matches!(
            j.status(),
            Some(RestoreJobStatus::Pending | RestoreJobStatus::Running)
        ) {
            break j;
        }
        polls += 1;
        assert!(
            polls < 1200,
            "the restore did not end within 120 s of the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        j.status(),
        Some(&RestoreJobStatus::Completed),
        "{:?}",
        j.status_message()
    );
    assert_eq!(j.percent_done(), Some("100.0"));
    assert_eq!(
        tree(&target),
        tree(&src),
        "the target must equal the source, with nothing else in it"
    );

    // The restored target is the user's now: a new restore into it without overwrite is
    // refused when it is started, and leaves it as it is.
    let err = c
        .start_restore_job()
        .recovery_point_arn(&rp)
        .iam_role_arn(ROLE)
        .metadata("targetPath", target.to_str().unwrap())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_value_exception(), "{err:?}");
    assert!(
        err.meta()
            .message()
            .unwrap_or_default()
            .contains("overwrite=true"),
        "{err:?}"
    );
    assert_eq!(tree(&target), tree(&src));
    server.kill().await;
}
