//! Storage tiers that move data (docs/tiering.md): a server with `[tiers]` directories moves a
//! recovery point's snapshot into the cold tier at MoveToColdStorageAfterDays (StorageClass
//! COLD, the warm copy pruned, restores and copies reading it from the cold tier, compared
//! byte for byte), moves S3 points into the low-cost tier when a tiering configuration says
//! so, and finishes a move that a `kill -9` cut off at a chosen step: after the restart the
//! point is readable, its data in exactly one tier, and it is listed once.

use std::path::{Path, PathBuf};

use aws_sdk_backup::Client;
use aws_sdk_backup::types::{
    BackupJobState, CopyJobState, Lifecycle, ResourceSelection, RestoreJobStatus, StorageClass,
    TieringConfigurationInputForCreate,
};

use crate::bucket_source;
use crate::crash_restore::tree;
use crate::harness::*;

const ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-tiers";
const ROLE: &str = "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole";
const DAY: i64 = 86_400;

/// Snapshot files of every repository under `root` (one per recovery point held there).
fn snapshots(root: &Path) -> usize {
    let Ok(dirs) = std::fs::read_dir(root) else {
        return 0;
    };
    dirs.map(|d| d.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| {
            std::fs::read_dir(p.join("snapshots"))
                .map(|s| s.count())
                .unwrap_or(0)
        })
        .sum()
}

struct Layout {
    src: PathBuf,
    data: PathBuf,
    cold: PathBuf,
    low_cost: PathBuf,
    cfg: PathBuf,
}

impl Layout {
    fn warm(&self) -> PathBuf {
        self.data.join("vaults")
    }
}

/// A source tree and a configuration with both tiers (and `extra` entries).
fn layout(dir: &Path, extra: &str) -> Layout {
    let l = Layout {
        src: dir.join("src"),
        data: dir.join("data"),
        cold: dir.join("cold"),
        low_cost: dir.join("low-cost"),
        cfg: dir.join("coffer.toml"),
    };
    crate::jobs::big_tree(&l.src, 3);
    std::fs::write(l.src.join("small.txt"), b"kept in the cold tier\n").unwrap();
    std::fs::write(
        &l.cfg,
        format!(
            "[tiers]\ncold = \"{}\"\nlow_cost = \"{}\"\n\n[[resources]]\narn = \"{ARN}\"\nsource = \"{}\"\n\n{extra}",
            l.cold.display(),
            l.low_cost.display(),
            l.src.display()
        ),
    )
    .unwrap();
    l
}

async fn start(l: &Layout, env: &[(&str, &str)]) -> (Server, Client) {
    let server = Server::start_with_env(
        &[
            "--dev",
            "--account-id",
            ACCOUNT,
            "--data-dir",
            l.data.to_str().unwrap(),
            "--config",
            l.cfg.to_str().unwrap(),
        ],
        env,
    )
    .await;
    let c = server.client_as(ACCOUNT, "anything", "us-east-1");
    (server, c)
}

async fn vault(c: &Client, name: &str) {
    c.create_backup_vault()
        .backup_vault_name(name)
        .send()
        .await
        .unwrap();
}

/// Backs `ARN` up into `v`, cold after one day; returns the recovery point ARN.
async fn backup_cold_after_a_day(c: &Client, v: &str) -> String {
    let out = c
        .start_backup_job()
        .backup_vault_name(v)
        .resource_arn(ARN)
        .iam_role_arn(ROLE)
        .lifecycle(
            Lifecycle::builder()
                .move_to_cold_storage_after_days(1)
                .build(),
        )
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

async fn storage_class(c: &Client, v: &str, rp: &str) -> StorageClass {
    c.describe_recovery_point()
        .backup_vault_name(v)
        .recovery_point_arn(rp)
        .send()
        .await
        .unwrap()
        .storage_class()
        .cloned()
        .unwrap()
}

/// Restores `rp` into `target` and checks it equals `src` byte for byte.
async fn restore_equals(c: &Client, rp: &str, target: &Path, src: &Path) {
    let id = c
        .start_restore_job()
        .recovery_point_arn(rp)
        .iam_role_arn(ROLE)
        .metadata("targetPath", target.to_str().unwrap())
        .send()
        .await
        .unwrap()
        .restore_job_id()
        .unwrap()
        .to_string();
    let j = wait_restore(c, &id).await;
    assert_eq!(
        j.status(),
        Some(&RestoreJobStatus::Completed),
        "{:?}",
        j.status_message()
    );
    assert_eq!(tree(target), tree(src), "the restore equals the source");
}

/// Waits until the point's data is in the cold tier only.
async fn wait_only_in_cold(l: &Layout) {
    wait_until("the warm copy to be pruned", 60, || async {
        (snapshots(&l.warm()) == 0).then_some(())
    })
    .await;
    assert_eq!(snapshots(&l.cold), 1, "the cold tier holds the point");
    assert_eq!(snapshots(&l.low_cost), 0);
}

#[tokio::test]
async fn a_cold_move_moves_the_data_and_restores_and_copies_read_it_there() {
    let dir = temp_dir();
    let l = layout(dir.path(), "");
    let (server, c) = start(&l, &[]).await;
    vault(&c, "tiered").await;
    vault(&c, "dest").await;
    let rp = backup_cold_after_a_day(&c, "tiered").await;
    assert_eq!(storage_class(&c, "tiered", &rp).await, StorageClass::Warm);
    assert_eq!((snapshots(&l.warm()), snapshots(&l.cold)), (1, 0));

    let answer = server.advance_clock(2 * DAY).await;
    assert_eq!(answer["moved_to_cold"], 1, "{answer}");
    assert_eq!(storage_class(&c, "tiered", &rp).await, StorageClass::Cold);
    wait_only_in_cold(&l).await;

    // A restore reads the point from the cold tier.
    restore_equals(&c, &rp, &dir.path().join("restored"), &l.src).await;

    // So does a copy; the copy is a warm point of its own vault.
    let copy = c
        .start_copy_job()
        .recovery_point_arn(&rp)
        .source_backup_vault_name("tiered")
        .destination_backup_vault_arn(format!(
            "arn:aws:backup:us-east-1:{ACCOUNT}:backup-vault:dest"
        ))
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap();
    let j = wait_copy(&c, copy.copy_job_id().unwrap()).await;
    assert_eq!(
        j.state(),
        Some(&CopyJobState::Completed),
        "{:?}",
        j.status_message()
    );
    let copied = j.destination_recovery_point_arn().unwrap().to_string();
    assert_eq!(storage_class(&c, "dest", &copied).await, StorageClass::Warm);
    restore_equals(&c, &copied, &dir.path().join("from-copy"), &l.src).await;
    assert_eq!(
        snapshots(&l.cold),
        1,
        "the copy left the cold point in place"
    );

    // Deleting the cold point removes its data from the cold tier.
    c.delete_recovery_point()
        .backup_vault_name("tiered")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap();
    wait_until("the cold copy to be removed", 60, || async {
        (snapshots(&l.cold) == 0).then_some(())
    })
    .await;
}

/// Kills the server while a cold move stands at `step`, restarts it and checks the point.
async fn killed_at(step: &str) {
    let dir = temp_dir();
    let l = layout(dir.path(), "");
    let (server, c) = start(&l, &[("COFFER_TEST_PAUSE_AT", step)]).await;
    vault(&c, "tiered").await;
    let rp = backup_cold_after_a_day(&c, "tiered").await;
    let reached = async {
        wait_until(&format!("the tier move to reach {step}"), 120, || async {
            let there = match step {
                "tier-copied" => snapshots(&l.cold) == 1,
                _ => storage_class(&c, "tiered", &rp).await == StorageClass::Cold,
            };
            there.then_some(())
        })
        .await
    };
    // The clock move runs the sweep, which stops at the step for good.
    let two_days = format!("{{\"advance_seconds\": {}}}", 2 * DAY);
    tokio::select! {
        answer = server.move_clock(&two_days) => {
            panic!("the clock move ended although the tier move was paused: {answer}")
        }
        () = reached => {}
    }
    if step == "tier-copied" {
        assert_eq!(
            snapshots(&l.warm()),
            1,
            "nothing warm is removed before the record"
        );
    }
    assert_eq!(snapshots(&l.cold), 1);
    server.kill().await;

    let (server, c) = start(&l, &[]).await;
    wait_until("the interrupted move to be finished", 120, || async {
        (storage_class(&c, "tiered", &rp).await == StorageClass::Cold).then_some(())
    })
    .await;
    wait_only_in_cold(&l).await;
    let listed = c
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("tiered")
        .send()
        .await
        .unwrap();
    let arns: Vec<_> = listed
        .recovery_points()
        .iter()
        .filter_map(|p| p.recovery_point_arn())
        .collect();
    assert_eq!(arns, vec![rp.as_str()], "the point is listed once");
    restore_equals(&c, &rp, &dir.path().join("restored"), &l.src).await;
    drop(server);
}

#[tokio::test]
async fn a_cold_move_killed_after_the_copy_is_finished_after_restart() {
    killed_at("tier-copied").await;
}

#[tokio::test]
async fn a_cold_move_killed_after_it_was_recorded_is_finished_after_restart() {
    killed_at("tier-recorded").await;
}

#[tokio::test]
async fn a_tiering_configuration_moves_s3_points_to_the_low_cost_tier() {
    let Some(ep) = bucket_source::s3_endpoint() else {
        return;
    };
    let bucket = bucket_source::unique_bucket("tiers");
    let b = bucket.clone();
    bucket_source::s3(&ep, move |s| s.create_bucket(&b).unwrap()).await;
    let meta = coffer_engine::ObjectMeta {
        content_type: Some("text/plain".into()),
        ..Default::default()
    };
    for (k, body) in [
        ("a.txt", b"first object".to_vec()),
        ("dir/b.bin", vec![7u8; 300_000]),
    ] {
        bucket_source::put(&ep, &bucket, k, body, meta.clone()).await;
    }
    let dir = temp_dir();
    let l = layout(
        dir.path(),
        &bucket_source::bucket_entry(&ep, &bucket, "team = \"t\""),
    );
    let (server, c) = start(&l, &[]).await;
    vault(&c, "tiered").await;
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    let out = c
        .start_backup_job()
        .backup_vault_name("tiered")
        .resource_arn(&bucket_arn)
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap();
    let j = wait_backup(&c, out.backup_job_id().unwrap()).await;
    assert_eq!(
        j.state(),
        Some(&BackupJobState::Completed),
        "{:?}",
        j.status_message()
    );
    let rp = j.recovery_point_arn().unwrap().to_string();
    c.create_tiering_configuration()
        .tiering_configuration(
            TieringConfigurationInputForCreate::builder()
                .tiering_configuration_name("after_60_days")
                .backup_vault_name("tiered")
                .resource_selection(
                    ResourceSelection::builder()
                        .resource_type("S3")
                        .resources(&bucket_arn)
                        .tiering_down_settings_in_days(60)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    server.advance_clock(59 * DAY).await;
    assert_eq!(snapshots(&l.low_cost), 0, "not due before 60 days");
    server.advance_clock(2 * DAY).await;
    assert_eq!(snapshots(&l.low_cost), 1, "moved at 60 days");
    wait_until("the warm copy to be pruned", 60, || async {
        (snapshots(&l.warm()) == 0).then_some(())
    })
    .await;
    // The low-cost tier is a warm tier in AWS's terms.
    assert_eq!(storage_class(&c, "tiered", &rp).await, StorageClass::Warm);
    let restored = bucket_source::unique_bucket("tiers-back");
    let (status, message, _) = bucket_source::restore(
        &c,
        &rp,
        &[("DestinationBucketName", &restored), ("NewBucket", "true")],
    )
    .await;
    assert_eq!(status, RestoreJobStatus::Completed, "{message}");
    assert_eq!(
        bucket_source::read_bucket(&ep, &restored).await,
        bucket_source::read_bucket(&ep, &bucket).await,
        "the restore from the low-cost tier equals the bucket"
    );
}
