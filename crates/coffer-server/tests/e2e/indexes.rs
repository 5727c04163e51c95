//! Recovery point indexes end to end: a backup with Index ENABLED of a real directory tree
//! gets an index that reaches ACTIVE with one item per file and survives a restart;
//! DISABLED removes it and ENABLED builds it again; a plan rule's IndexActions index its
//! points; ListIndexedRecoveryPoints filters and pages; wrong types and unknown points are
//! refused.

use std::path::Path;

use aws_sdk_backup::Client;
use aws_sdk_backup::types::{
    BackupJobState, BackupPlanInput, BackupRuleInput, BackupSelection, Index, IndexAction,
    IndexStatus,
};

use crate::harness::*;

const EFS_ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-idx";
const EBS_ARN: &str = "arn:aws:ec2:us-east-1:111122223333:volume/vol-idx";
const ROLE: &str = "arn:aws:iam::111122223333:role/backup";

/// A tree of `n` files in nested directories (and one empty directory, which is no item).
fn make_tree(root: &Path, n: usize) {
    std::fs::create_dir_all(root.join("empty")).unwrap();
    for i in 0..n {
        let d = root.join(format!("d{}", i % 3)).join("sub");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join(format!("f{i}.txt")),
            format!("file {i}\n").repeat(i + 1),
        )
        .unwrap();
    }
}

fn write_config(dir: &Path, credentials: bool) {
    let src = dir.join("src");
    make_tree(&src, 7);
    let disk = dir.join("disk.img");
    std::fs::write(&disk, vec![7u8; 10_000]).unwrap();
    let creds = if credentials {
        format!(
            "[[credentials]]\naccess_key_id = \"{AKID}\"\nsecret_access_key = \"{SECRET}\"\naccount_id = \"{ACCOUNT}\"\n"
        )
    } else {
        String::new()
    };
    std::fs::write(
        dir.join("coffer.toml"),
        format!(
            "{creds}[[resources]]\narn = \"{EFS_ARN}\"\nsource = \"{}\"\ntags = {{ backup = \"daily\" }}\n\n[[resources]]\narn = \"{EBS_ARN}\"\nsource = \"{}\"\n",
            src.display(),
            disk.display()
        ),
    )
    .unwrap();
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

/// Backs `arn` up into `vault` (Index ENABLED when `index`), waits for the job; the point.
async fn backup(c: &Client, vault: &str, arn: &str, index: bool) -> String {
    let mut req = c
        .start_backup_job()
        .backup_vault_name(vault)
        .resource_arn(arn)
        .iam_role_arn(ROLE);
    if index {
        req = req.index(Index::Enabled);
    }
    let job = req.send().await.unwrap();
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

/// Waits until the point's index is ACTIVE; its details.
async fn wait_active(
    c: &Client,
    vault: &str,
    rp: &str,
) -> aws_sdk_backup::operation::get_recovery_point_index_details::GetRecoveryPointIndexDetailsOutput
{
    wait_until("the index to be ACTIVE", 60, || {
        let c = c.clone();
        async move {
            let d = c
                .get_recovery_point_index_details()
                .backup_vault_name(vault)
                .recovery_point_arn(rp)
                .send()
                .await
                .unwrap();
            assert_ne!(
                d.index_status(),
                Some(&IndexStatus::Failed),
                "{:?}",
                d.index_status_message()
            );
            (d.index_status() == Some(&IndexStatus::Active)).then_some(d)
        }
    })
    .await
}

fn code<E: aws_sdk_backup::error::ProvideErrorMetadata>(e: &E) -> String {
    format!("{}: {}", e.code().unwrap_or("?"), e.message().unwrap_or(""))
}

#[tokio::test]
async fn an_indexed_backup_catalogues_every_file_survives_restart_and_can_be_disabled() {
    let dir = temp_dir();
    write_config(dir.path(), true);
    let server = start(dir.path()).await;
    let c = server.client();
    c.create_backup_vault()
        .backup_vault_name("iv")
        .send()
        .await
        .unwrap();
    let rp = backup(&c, "iv", EFS_ARN, true).await;
    let d = wait_active(&c, "iv", &rp).await;
    assert_eq!(
        d.total_items_indexed(),
        Some(7),
        "one item per regular file"
    );
    assert_eq!(d.source_resource_arn(), Some(EFS_ARN));
    assert_eq!(d.recovery_point_arn(), Some(rp.as_str()));
    assert!(d.index_completion_date().is_some());
    let desc = c
        .describe_recovery_point()
        .backup_vault_name("iv")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap();
    assert_eq!(desc.index_status(), Some(&IndexStatus::Active));
    let by_vault = c
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("iv")
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_vault.recovery_points()[0].index_status(),
        Some(&IndexStatus::Active)
    );

    // An un-indexed point answers ResourceNotFound.
    let plain = backup(&c, "iv", EFS_ARN, false).await;
    let e = c
        .get_recovery_point_index_details()
        .backup_vault_name("iv")
        .recovery_point_arn(&plain)
        .send()
        .await
        .unwrap_err();
    assert!(
        code(&e).starts_with("ResourceNotFoundException"),
        "{}",
        code(&e)
    );

    // The index survives a restart.
    server.terminate(std::time::Duration::from_secs(20)).await;
    let server = start(dir.path()).await;
    let c = server.client();
    let again = wait_active(&c, "iv", &rp).await;
    assert_eq!(again.total_items_indexed(), Some(7));

    // DISABLED deletes it; ENABLED on the un-indexed point builds it again.
    let up = c
        .update_recovery_point_index_settings()
        .backup_vault_name("iv")
        .recovery_point_arn(&rp)
        .index(Index::Disabled)
        .send()
        .await
        .unwrap();
    assert_eq!(up.index_status(), Some(&IndexStatus::Deleting));
    wait_until("the index to be gone", 60, || {
        let c = c.clone();
        let rp = rp.clone();
        async move {
            c.get_recovery_point_index_details()
                .backup_vault_name("iv")
                .recovery_point_arn(rp)
                .send()
                .await
                .err()
                .map(|e| {
                    assert!(
                        code(&e).starts_with("ResourceNotFoundException"),
                        "{}",
                        code(&e)
                    )
                })
        }
    })
    .await;
    let desc = c
        .describe_recovery_point()
        .backup_vault_name("iv")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap();
    assert_eq!(desc.index_status(), None);
    let up = c
        .update_recovery_point_index_settings()
        .backup_vault_name("iv")
        .recovery_point_arn(&plain)
        .index(Index::Enabled)
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap();
    assert_eq!(up.index_status(), Some(&IndexStatus::Pending));
    assert_eq!(
        wait_active(&c, "iv", &plain).await.total_items_indexed(),
        Some(7)
    );

    // Refusals: an unknown point; DISABLED where there is no index.
    let unknown = rp.replace(
        rp.rsplit(':').next().unwrap(),
        "00000000-0000-0000-0000-000000000000",
    );
    let e = c
        .update_recovery_point_index_settings()
        .backup_vault_name("iv")
        .recovery_point_arn(&unknown)
        .index(Index::Enabled)
        .send()
        .await
        .unwrap_err();
    assert!(
        code(&e).starts_with("ResourceNotFoundException"),
        "{}",
        code(&e)
    );
    let e = c
        .update_recovery_point_index_settings()
        .backup_vault_name("iv")
        .recovery_point_arn(&rp)
        .index(Index::Disabled)
        .send()
        .await
        .unwrap_err();
    assert!(
        code(&e).starts_with("ResourceNotFoundException"),
        "{}",
        code(&e)
    );

    // Deleting the recovery point deletes its index.
    c.delete_recovery_point()
        .backup_vault_name("iv")
        .recovery_point_arn(&plain)
        .send()
        .await
        .unwrap();
    wait_until("the deleted point's index to leave the list", 60, || {
        let c = c.clone();
        async move {
            let l = c.list_indexed_recovery_points().send().await.unwrap();
            l.indexed_recovery_points().is_empty().then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn plan_rules_index_their_points_and_the_list_filters_and_pages() {
    let dir = temp_dir();
    write_config(dir.path(), false);
    let cfg = dir.path().join("coffer.toml");
    let server = Server::start(&["--dev", "--config", cfg.to_str().unwrap()]).await;
    let c = server.client_as(ACCOUNT, "anything", "us-east-1");
    c.create_backup_vault()
        .backup_vault_name("main")
        .send()
        .await
        .unwrap();

    // A type that cannot be indexed is refused, naming what can.
    let bad = c
        .create_backup_plan()
        .backup_plan(
            BackupPlanInput::builder()
                .backup_plan_name("bad")
                .rules(
                    BackupRuleInput::builder()
                        .rule_name("r")
                        .target_backup_vault_name("main")
                        .index_actions(IndexAction::builder().resource_types("RDS").build())
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    let m = code(&bad);
    assert!(
        m.starts_with("InvalidParameterValueException") && m.contains("EBS, EFS, S3"),
        "{m}"
    );

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
                        .index_actions(IndexAction::builder().resource_types("EFS").build())
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
    for _ in 0..3 {
        server.move_clock("{\"advance_seconds\": 86400}").await;
    }
    // Three EFS points indexed by the rule; the EBS points are not (the rule names EFS).
    let listed = wait_until("three ACTIVE indexes", 60, || {
        let c = c.clone();
        async move {
            let l = c.list_indexed_recovery_points().send().await.unwrap();
            let pts = l.indexed_recovery_points().to_vec();
            (pts.len() == 3
                && pts
                    .iter()
                    .all(|p| p.index_status() == Some(&IndexStatus::Active)))
            .then_some(pts)
        }
    })
    .await;
    assert!(
        listed
            .iter()
            .all(|p| p.source_resource_arn() == Some(EFS_ARN)
                && p.resource_type() == Some("EFS")
                && p.iam_role_arn() == Some(ROLE))
    );
    // An EBS point indexed by StartBackupJob: its catalogue is its one file.
    let ebs = backup(&c, "main", EBS_ARN, true).await;
    assert_eq!(
        wait_active(&c, "main", &ebs).await.total_items_indexed(),
        Some(1)
    );

    let l = c
        .list_indexed_recovery_points()
        .resource_type("EBS")
        .send()
        .await
        .unwrap();
    assert_eq!(l.indexed_recovery_points().len(), 1);
    assert_eq!(
        l.indexed_recovery_points()[0].recovery_point_arn(),
        Some(ebs.as_str())
    );
    let l = c
        .list_indexed_recovery_points()
        .source_resource_arn(EFS_ARN)
        .send()
        .await
        .unwrap();
    assert_eq!(l.indexed_recovery_points().len(), 3);
    let l = c
        .list_indexed_recovery_points()
        .index_status(IndexStatus::Pending)
        .send()
        .await
        .unwrap();
    assert!(l.indexed_recovery_points().is_empty());
    let l = c
        .list_indexed_recovery_points()
        .index_status(IndexStatus::Active)
        .send()
        .await
        .unwrap();
    assert_eq!(l.indexed_recovery_points().len(), 4);

    let mut dates: Vec<_> = listed
        .iter()
        .map(|p| *p.backup_creation_date().unwrap())
        .collect();
    dates.sort_by_key(|d| d.secs());
    let l = c
        .list_indexed_recovery_points()
        .created_after(dates[0])
        .resource_type("EFS")
        .send()
        .await
        .unwrap();
    assert_eq!(
        l.indexed_recovery_points().len(),
        2,
        "strictly after the first"
    );
    let l = c
        .list_indexed_recovery_points()
        .created_before(dates[2])
        .resource_type("EFS")
        .send()
        .await
        .unwrap();
    assert_eq!(
        l.indexed_recovery_points().len(),
        2,
        "strictly before the last"
    );

    // Pages of one, every point once.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let p = c
            .list_indexed_recovery_points()
            .max_results(1)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        assert!(p.indexed_recovery_points().len() <= 1);
        seen.extend(
            p.indexed_recovery_points()
                .iter()
                .map(|x| x.recovery_point_arn().unwrap().to_string()),
        );
        token = p.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4);
}

/// Every directory named `name` under `root`.
fn dirs_named(root: &Path, name: &str, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == name) {
                out.push(p.clone());
            }
            dirs_named(&p, name, out);
        }
    }
}

#[tokio::test]
async fn an_index_of_a_point_the_vault_cannot_read_fails_with_the_reason_and_can_be_retried() {
    let dir = temp_dir();
    write_config(dir.path(), true);
    let server = start(dir.path()).await;
    let c = server.client();
    c.create_backup_vault()
        .backup_vault_name("broken")
        .send()
        .await
        .unwrap();
    let rp = backup(&c, "broken", EFS_ARN, false).await;
    // The snapshot file disappears from the vault's repository.
    let mut snaps = Vec::new();
    dirs_named(&dir.path().join("data"), "snapshots", &mut snaps);
    assert!(
        !snaps.is_empty(),
        "the vault repository has a snapshots directory"
    );
    let mut removed = 0;
    for d in snaps {
        for e in std::fs::read_dir(d).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
            removed += 1;
        }
    }
    assert_eq!(removed, 1);
    let enable = || {
        c.update_recovery_point_index_settings()
            .backup_vault_name("broken")
            .recovery_point_arn(&rp)
            .index(Index::Enabled)
            .send()
    };
    assert_eq!(
        enable().await.unwrap().index_status(),
        Some(&IndexStatus::Pending)
    );
    let wait_failed = || {
        wait_until("the index to be FAILED", 60, || {
            let c = c.clone();
            let rp = rp.clone();
            async move {
                let d = c
                    .get_recovery_point_index_details()
                    .backup_vault_name("broken")
                    .recovery_point_arn(rp)
                    .send()
                    .await
                    .unwrap();
                assert_ne!(d.index_status(), Some(&IndexStatus::Active));
                (d.index_status() == Some(&IndexStatus::Failed)).then_some(d)
            }
        })
    };
    let d = wait_failed().await;
    let m = d.index_status_message().unwrap_or_default();
    assert!(m.contains("could not be read"), "{m}");
    assert_eq!(d.total_items_indexed(), None);
    let desc = c
        .describe_recovery_point()
        .backup_vault_name("broken")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap();
    assert_eq!(desc.index_status(), Some(&IndexStatus::Failed));
    assert_eq!(desc.index_status_message(), Some(m));
    // ENABLED on a FAILED index tries again.
    assert_eq!(
        enable().await.unwrap().index_status(),
        Some(&IndexStatus::Pending)
    );
    wait_failed().await;
}
