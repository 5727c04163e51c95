//! Composite recovery points end to end: a CloudFormation stack declared in the inventory with
//! a directory tree and a volume as members is backed up as a parent point (IsParent) with one
//! nested point per member; ByParentRecoveryPointArn lists the nested points; restoring the
//! parent restores each member into its own subdirectory of the target, compared byte for
//! byte; a nested point cannot be deleted on its own until DisassociateRecoveryPointFromParent
//! detaches it; deleting the parent deletes the nested points it still has.

use std::collections::BTreeMap;
use std::path::Path;

use aws_sdk_backup::Client;
use aws_sdk_backup::types::{BackupJobState, RestoreJobStatus};

use crate::harness::*;

const STACK_ARN: &str = "arn:aws:cloudformation:us-east-1:111122223333:stack/app/0f1e2d3c";
const FS_ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-app";
const VOL_ARN: &str = "arn:aws:ec2:us-east-1:111122223333:volume/vol-app";
const ROLE: &str = "arn:aws:iam::111122223333:role/backup";

/// Every file under `root`, by relative path, with its bytes.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn write_config(dir: &Path) {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("conf")).unwrap();
    std::fs::write(src.join("app.txt"), b"the application\n").unwrap();
    std::fs::write(src.join("conf/settings.toml"), b"level = 3\n").unwrap();
    let disk = dir.join("disk.img");
    let image: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&disk, image).unwrap();
    std::fs::write(
        dir.join("coffer.toml"),
        format!(
            "[[credentials]]\naccess_key_id = \"{AKID}\"\nsecret_access_key = \"{SECRET}\"\naccount_id = \"{ACCOUNT}\"\n\n\
             [[resources]]\narn = \"{FS_ARN}\"\nsource = \"{}\"\n\n\
             [[resources]]\narn = \"{VOL_ARN}\"\nsource = \"{}\"\n\n\
             [[resources]]\narn = \"{STACK_ARN}\"\nname = \"app\"\nmembers = [\"{FS_ARN}\", \"{VOL_ARN}\"]\n",
            src.display(),
            disk.display()
        ),
    )
    .unwrap();
}

async fn backup(c: &Client, vault: &str, arn: &str) -> String {
    let job = c
        .start_backup_job()
        .backup_vault_name(vault)
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
            assert_ne!(
                d.state(),
                Some(&BackupJobState::Failed),
                "{:?}",
                d.status_message()
            );
            (d.state() == Some(&BackupJobState::Completed)).then_some(())
        }
    })
    .await;
    job.recovery_point_arn().unwrap().to_string()
}

async fn restore(c: &Client, rp: &str, target: &Path) {
    let r = c
        .start_restore_job()
        .recovery_point_arn(rp)
        .iam_role_arn(ROLE)
        .metadata("targetPath", target.to_str().unwrap())
        .send()
        .await
        .unwrap();
    let id = r.restore_job_id().unwrap().to_string();
    let done = wait_until("the restore to end", 120, || async {
        let j = c
            .describe_restore_job()
            .restore_job_id(&id)
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

fn code<E: aws_sdk_backup::error::ProvideErrorMetadata, R>(
    e: &aws_sdk_backup::error::SdkError<E, R>,
) -> (String, String) {
    let s = e.as_service_error().expect("a service error");
    (
        s.code().unwrap_or_default().to_string(),
        s.message().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn a_stack_backs_up_as_a_composite_and_restores_every_member() {
    let dir = temp_dir();
    write_config(dir.path());
    let data = dir.path().join("data");
    let cfg = dir.path().join("coffer.toml");
    let server = Server::start(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ])
    .await;
    let c = server.client();
    c.create_backup_vault()
        .backup_vault_name("stacks")
        .send()
        .await
        .unwrap();
    let parent = backup(&c, "stacks", STACK_ARN).await;

    let d = c
        .describe_recovery_point()
        .backup_vault_name("stacks")
        .recovery_point_arn(&parent)
        .send()
        .await
        .unwrap();
    assert!(d.is_parent());
    assert_eq!(d.resource_type(), Some("CloudFormation"));
    assert_eq!(d.parent_recovery_point_arn(), None);
    let all = c
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("stacks")
        .send()
        .await
        .unwrap();
    assert_eq!(all.recovery_points().len(), 3);
    let nested = c
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("stacks")
        .by_parent_recovery_point_arn(&parent)
        .send()
        .await
        .unwrap();
    let mut members: Vec<(String, String, String)> = nested
        .recovery_points()
        .iter()
        .map(|p| {
            assert_eq!(p.parent_recovery_point_arn(), Some(parent.as_str()));
            assert!(!p.is_parent());
            (
                p.composite_member_identifier().unwrap().to_string(),
                p.resource_arn().unwrap().to_string(),
                p.recovery_point_arn().unwrap().to_string(),
            )
        })
        .collect();
    members.sort();
    assert_eq!(
        members
            .iter()
            .map(|m| (m.0.as_str(), m.1.as_str()))
            .collect::<Vec<_>>(),
        [("fs-app", FS_ARN), ("vol-app", VOL_ARN)]
    );
    let (fs_child, vol_child) = (members[0].2.clone(), members[1].2.clone());

    // Restoring the parent restores every member into its own subdirectory.
    let target = dir.path().join("restored");
    restore(&c, &parent, &target).await;
    assert_eq!(
        files(&target.join("fs-app")),
        files(&dir.path().join("src"))
    );
    assert_eq!(
        std::fs::read(target.join("vol-app/disk.img")).unwrap(),
        std::fs::read(dir.path().join("disk.img")).unwrap()
    );

    // A nested point is deleted with its parent, not alone; disassociated, it stands alone.
    let refused = c
        .delete_recovery_point()
        .backup_vault_name("stacks")
        .recovery_point_arn(&vol_child)
        .send()
        .await
        .unwrap_err();
    let (kind, msg) = code(&refused);
    assert_eq!(kind, "InvalidRequestException");
    assert!(msg.contains("DisassociateRecoveryPointFromParent"), "{msg}");
    c.disassociate_recovery_point_from_parent()
        .backup_vault_name("stacks")
        .recovery_point_arn(&vol_child)
        .send()
        .await
        .unwrap();
    let alone = c
        .describe_recovery_point()
        .backup_vault_name("stacks")
        .recovery_point_arn(&vol_child)
        .send()
        .await
        .unwrap();
    assert_eq!(alone.parent_recovery_point_arn(), None);
    let again = c
        .disassociate_recovery_point_from_parent()
        .backup_vault_name("stacks")
        .recovery_point_arn(&vol_child)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&again).0, "InvalidRequestException");
    let left = c
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("stacks")
        .by_parent_recovery_point_arn(&parent)
        .send()
        .await
        .unwrap();
    let left: Vec<_> = left
        .recovery_points()
        .iter()
        .filter_map(|p| p.recovery_point_arn())
        .collect();
    assert_eq!(left, [fs_child.as_str()]);

    // Deleting the parent deletes the nested point it still has; the detached one stays.
    c.delete_recovery_point()
        .backup_vault_name("stacks")
        .recovery_point_arn(&parent)
        .send()
        .await
        .unwrap();
    let after = c
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("stacks")
        .send()
        .await
        .unwrap();
    let after: Vec<_> = after
        .recovery_points()
        .iter()
        .filter_map(|p| p.recovery_point_arn())
        .collect();
    assert_eq!(after, [vol_child.as_str()]);
    let alone_target = dir.path().join("alone");
    restore(&c, &vol_child, &alone_target).await;
    assert_eq!(
        std::fs::read(alone_target.join("disk.img")).unwrap(),
        std::fs::read(dir.path().join("disk.img")).unwrap()
    );
    c.delete_recovery_point()
        .backup_vault_name("stacks")
        .recovery_point_arn(&vol_child)
        .send()
        .await
        .unwrap();
}
