//! Vaults whose repositories live in a bucket of an S3-compatible server (`[vault_storage]`),
//! through the `coffer` process, against the S3 server `.ci/s3` starts on 127.0.0.1: a backup
//! into an S3 vault lands in the bucket (not on local disk) and restores byte for byte; copies
//! from a local vault into the S3 vault and from the S3 vault into the local one restore byte
//! for byte; plain `restic` opens the S3 vault with the key `coffer vault-key export` prints;
//! deleting the points and the vault empties its prefix in the bucket. Without the server the
//! test says it skipped; under `CI=true` it fails.

use std::path::{Path, PathBuf};

use aws_sdk_backup::Client;
use aws_sdk_backup::types::{CopyJobState, RestoreJobStatus};
use coffer_engine::S3Endpoint;

use crate::bucket_source::{ROLE, s3, s3_endpoint};
use crate::harness::*;
use crate::jobs::{backup, make_tree, snapshot};

const EFS_ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-cloud";
const EFS2_ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-other";
/// The variable the configuration names for the bucket's secret key.
pub const SECRET_ENV: &str = "COFFER_E2E_VAULT_S3_SECRET";

/// The test bucket (`.ci/s3` creates it).
pub fn test_bucket() -> String {
    std::env::var("COFFER_TEST_S3_BUCKET").unwrap_or_else(|_| "coffer-test".into())
}

/// The `[vault_storage]` table for the test bucket under `prefix`: S3 by default, vaults named
/// `local-*` on local disk.
pub fn vault_storage_toml(ep: &S3Endpoint, prefix: &str) -> String {
    format!(
        r#"
[vault_storage]
default = "s3"

[vault_storage.s3]
endpoint = "{}"
bucket = "{}"
prefix = "{prefix}"
region = "us-east-1"
access_key_id = "{}"
secret_access_key_env = "{SECRET_ENV}"

[[vault_storage.vaults]]
name = "local-*"
location = "local"
"#,
        ep.endpoint,
        test_bucket(),
        ep.access_key_id
    )
}

fn config(dir: &Path, ep: &S3Endpoint, prefix: &str) -> PathBuf {
    let path = dir.join("coffer.toml");
    let text = format!(
        r#"
[[credentials]]
access_key_id = "{AKID}"
secret_access_key = "{SECRET}"
account_id = "{ACCOUNT}"

[[resources]]
arn = "{EFS_ARN}"
source = "{}"

[[resources]]
arn = "{EFS2_ARN}"
source = "{}"
{}"#,
        dir.join("src").display(),
        dir.join("src2").display(),
        vault_storage_toml(ep, prefix)
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Every object key under `prefix` in the test bucket.
pub async fn objects_under(ep: &S3Endpoint, prefix: &str) -> Vec<String> {
    let (bucket, prefix) = (test_bucket(), prefix.to_string());
    s3(ep, move |c| {
        let mut keys = Vec::new();
        let mut levels = vec![prefix];
        while let Some(level) = levels.pop() {
            let mut token = None;
            loop {
                let (objects, prefixes, next) =
                    c.list_level(&bucket, &level, token.as_deref()).unwrap();
                keys.extend(objects.into_iter().map(|o| o.key));
                levels.extend(prefixes);
                match next {
                    Some(t) => token = Some(t),
                    None => break,
                }
            }
        }
        keys
    })
    .await
}

async fn copy(c: &Client, rp: &str, from: &str, to_arn: &str) -> String {
    let out = c
        .start_copy_job()
        .recovery_point_arn(rp)
        .source_backup_vault_name(from)
        .destination_backup_vault_arn(to_arn)
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap();
    let j = wait_copy(c, out.copy_job_id().unwrap()).await;
    assert_eq!(
        j.state(),
        Some(&CopyJobState::Completed),
        "{:?}",
        j.status_message()
    );
    j.destination_recovery_point_arn().unwrap().to_string()
}

/// Restores `rp` into `target` and checks it holds exactly `src`.
async fn restore_same(c: &Client, rp: &str, target: &Path, src: &Path) {
    let out = c
        .start_restore_job()
        .recovery_point_arn(rp)
        .iam_role_arn(ROLE)
        .metadata("targetPath", target.to_str().unwrap())
        .send()
        .await
        .unwrap();
    let r = wait_restore(c, out.restore_job_id().unwrap()).await;
    assert_eq!(
        r.status(),
        Some(&RestoreJobStatus::Completed),
        "{:?}",
        r.status_message()
    );
    assert_eq!(snapshot(target), snapshot(src), "restore of {rp}");
}

async fn create_vault(c: &Client, name: &str) -> String {
    c.create_backup_vault()
        .backup_vault_name(name)
        .send()
        .await
        .unwrap()
        .backup_vault_arn()
        .unwrap()
        .to_string()
}

/// `coffer vault-key export` for `vault`: (repository, password).
fn export_key(dir: &Path, cfg: &Path, vault: &str, secret: &str) -> (String, String) {
    let data = dir.join("data");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args([
            "vault-key",
            "export",
            "--vault",
            vault,
            "--account-id",
            ACCOUNT,
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--config")
        .arg(cfg)
        .args(store_args(&["--data-dir", data.to_str().unwrap()]))
        .env(SECRET_ENV, secret)
        .env_remove("COFFER_STORE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains(secret),
        "the export never prints the bucket's secret key"
    );
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("{name} missing in {text}"))
    };
    (field("repository:"), field("password:"))
}

#[tokio::test]
async fn s3_vaults_back_up_copy_restore_export_and_delete_through_coffer() {
    let Some(ep) = s3_endpoint() else { return };
    let dir = temp_dir();
    let (src, src2) = (dir.path().join("src"), dir.path().join("src2"));
    make_tree(&src);
    make_tree(&src2);
    std::fs::write(src2.join("only-in-two.txt"), b"the local vault's data\n").unwrap();
    let prefix = format!("e2e-{}", uuid::Uuid::new_v4().simple());
    let cfg = config(dir.path(), &ep, &prefix);
    let data = dir.path().join("data");
    let server = Server::start_with_env(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ],
        &[(SECRET_ENV, ep.secret_access_key.as_str())],
    )
    .await;
    let c = server.client();
    let cloud_arn = create_vault(&c, "cloud").await;
    let local_arn = create_vault(&c, "local-disk").await;

    // A backup into the S3 vault writes into the bucket under the prefix, nothing locally.
    let rp = backup(&c, "cloud", EFS_ARN).await;
    let keys = objects_under(&ep, &format!("{prefix}/")).await;
    assert!(
        keys.iter().any(|k| k.ends_with("/config")) && keys.iter().any(|k| k.contains("/data/")),
        "the S3 vault's repository is in the bucket: {keys:?}"
    );
    let local_vaults = || {
        std::fs::read_dir(data.join("vaults"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(local_vaults(), 0, "no local repository for an S3 vault");
    restore_same(&c, &rp, &dir.path().join("r1"), &src).await;

    // Local -> S3 and S3 -> local copies, each restored byte for byte.
    let rp_local = backup(&c, "local-disk", EFS2_ARN).await;
    assert_eq!(local_vaults(), 1, "the local-* vault is on local disk");
    let into_s3 = copy(&c, &rp_local, "local-disk", &cloud_arn).await;
    restore_same(&c, &into_s3, &dir.path().join("r2"), &src2).await;
    let out_of_s3 = copy(&c, &rp, "cloud", &local_arn).await;
    restore_same(&c, &out_of_s3, &dir.path().join("r3"), &src).await;

    restic_reads_the_s3_vault(dir.path(), &cfg, &ep, &src).await;

    // Deleting the points and the vault removes its repository from the bucket.
    for point in [&rp, &into_s3] {
        c.delete_recovery_point()
            .backup_vault_name("cloud")
            .recovery_point_arn(point)
            .send()
            .await
            .unwrap();
    }
    wait_until("the S3 vault's points are deleted", 60, || async {
        let n = c
            .list_recovery_points_by_backup_vault()
            .backup_vault_name("cloud")
            .send()
            .await
            .unwrap()
            .recovery_points()
            .len();
        (n == 0).then_some(())
    })
    .await;
    c.delete_backup_vault()
        .backup_vault_name("cloud")
        .send()
        .await
        .unwrap();
    let prefix_slash = format!("{prefix}/");
    wait_until("the deleted S3 vault's objects are gone", 60, || async {
        objects_under(&ep, &prefix_slash)
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    // The local vault and its copy are untouched.
    restore_same(&c, &out_of_s3, &dir.path().join("r4"), &src).await;
}

/// Plain `restic` lists the S3 vault's snapshots and restores the first backup with the
/// exported key and the bucket's credentials.
async fn restic_reads_the_s3_vault(dir: &Path, cfg: &Path, ep: &S3Endpoint, src: &Path) {
    if std::process::Command::new("restic")
        .arg("version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but restic is not installed"
        );
        eprintln!("skipped the restic part: restic is not installed");
        return;
    }
    let (repo, password) = export_key(dir, cfg, "cloud", &ep.secret_access_key);
    assert!(repo.starts_with("s3:http://127.0.0.1:"), "{repo}");
    let restic = |args: &[&str]| {
        let o = std::process::Command::new("restic")
            .arg("-r")
            .arg(&repo)
            .args(args)
            .env("RESTIC_PASSWORD", &password)
            .env("AWS_ACCESS_KEY_ID", &ep.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &ep.secret_access_key)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("RESTIC_CACHE_DIR", dir.join("restic-cache"))
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
    let list = snapshots.as_array().unwrap();
    assert_eq!(list.len(), 2, "the backup and the copy: {snapshots}");
    let first = list
        .iter()
        .find(|s| s["paths"][0].as_str() == src.to_str())
        .unwrap_or_else(|| panic!("no snapshot of {}: {snapshots}", src.display()));
    let target = dir.join("restic-restore");
    restic(&[
        "restore",
        first["id"].as_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
    ]);
    let inside = target.join(src.strip_prefix("/").unwrap());
    assert_eq!(snapshot(&inside), snapshot(src), "restic's restore");
}
