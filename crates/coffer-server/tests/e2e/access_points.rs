//! Backup access points end to end: an access point on a real backup of a directory tree is
//! read through Coffer's S3 endpoint with the official `aws-sdk-s3` client (a whole file
//! compared byte for byte, a ranged GET, HeadObject, ListObjectsV2 with a prefix and a
//! delimiter and paging); a wrong secret and another account are refused, and the other account
//! reads once the access point's policy grants it; while the access point exists, deleting its
//! recovery point is refused naming it, and after DeleteBackupAccessPoint deletion works.
//!
//! The pinned `aws-sdk-backup` (1.106, the newest whose Rust version the workspace allows)
//! predates the six access point operations, so they are sent as requests signed by the SDK's
//! own SigV4 signer (`signer.rs`) with the model's JSON shapes; everything S3 goes through the
//! official `aws-sdk-s3` client, and the recovery points through `aws-sdk-backup`.

use std::path::Path;

use aws_sdk_backup::Client;
use aws_sdk_backup::types::BackupJobState;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use crate::harness::*;
use crate::signer::{Answer, ToSign};

const EFS_ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-ap";
const ROLE: &str = "arn:aws:iam::111122223333:role/backup";
const OTHER_AKID: &str = "AKIDOTHERACCOUNT0001";
const OTHER_SECRET: &str = "other-secret";
const OTHER_ACCOUNT: &str = "444455556666";

/// A tree with nested directories and one file of a few MiB with varied bytes (several blobs).
fn make_tree(root: &Path) -> Vec<u8> {
    std::fs::create_dir_all(root.join("docs/2024")).unwrap();
    std::fs::create_dir_all(root.join("docs/2025")).unwrap();
    std::fs::write(root.join("readme.txt"), b"hello from the backup\n").unwrap();
    std::fs::write(root.join("docs/index.md"), b"# index\n").unwrap();
    std::fs::write(root.join("docs/2024/a.txt"), b"a 2024\n").unwrap();
    std::fs::write(root.join("docs/2025/b.txt"), b"b 2025\n").unwrap();
    let mut big = Vec::with_capacity(5 << 20);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while big.len() < (5 << 20) + 12_345 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(root.join("docs/big.bin"), &big).unwrap();
    big
}

fn write_config(dir: &Path) -> Vec<u8> {
    let src = dir.join("src");
    let big = make_tree(&src);
    std::fs::write(
        dir.join("coffer.toml"),
        format!(
            "[[credentials]]\naccess_key_id = \"{AKID}\"\nsecret_access_key = \"{SECRET}\"\naccount_id = \"{ACCOUNT}\"\n\n\
             [[credentials]]\naccess_key_id = \"{OTHER_AKID}\"\nsecret_access_key = \"{OTHER_SECRET}\"\naccount_id = \"{OTHER_ACCOUNT}\"\n\n\
             [[resources]]\narn = \"{EFS_ARN}\"\nsource = \"{}\"\n",
            src.display()
        ),
    )
    .unwrap();
    big
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

fn s3(server: &Server, akid: &str, secret: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&server.endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(akid, secret, None, None, "coffer-tests"))
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// One access point operation, signed for the Backup API.
async fn call(server: &Server, method: &str, target: &str, body: Option<Value>) -> Answer {
    let mut req = ToSign::new(method, target);
    if let Some(b) = body {
        req = req.body(b.to_string().as_bytes());
    }
    req.sign(server).send(server).await
}

fn label(arn: &str) -> String {
    utf8_percent_encode(arn, NON_ALPHANUMERIC).to_string()
}

fn names(a: &Answer) -> Vec<String> {
    a.body["BackupAccessPoints"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| p["Name"].as_str().unwrap().to_string())
        .collect()
}

async fn body(out: aws_sdk_s3::operation::get_object::GetObjectOutput) -> Vec<u8> {
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

fn s3_code<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn an_access_point_serves_a_backup_over_s3_and_holds_its_recovery_point() {
    let dir = temp_dir();
    let big = write_config(dir.path());
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
        .backup_vault_name("ap")
        .send()
        .await
        .unwrap();
    let rp = backup(&c, "ap", EFS_ARN).await;

    // Create, describe, list.
    let created = call(
        &server,
        "PUT",
        "/backup-access-point/create",
        Some(json!({"Name": "reader", "RecoveryPointArn": rp})),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let ap_arn = created.body["AccessPointArn"].as_str().unwrap().to_string();
    assert_eq!(
        ap_arn,
        "arn:aws:backup:us-east-1:111122223333:accesspoint/reader"
    );
    assert_eq!(created.body["Status"], "AVAILABLE");
    let d = call(
        &server,
        "GET",
        &format!("/backup-access-point/{}", label(&ap_arn)),
        None,
    )
    .await;
    assert_eq!(d.status, 200, "{:?}", d.body);
    assert_eq!(d.body["RecoveryPointArn"], rp.as_str());
    assert_eq!(d.body["ResourceArn"], EFS_ARN);
    assert_eq!(d.body["BackupVaultName"], "ap");
    let alias = d.body["AccessPointMetadata"]["AccessPointAlias"]
        .as_str()
        .expect("the alias is in the metadata")
        .to_string();
    assert!(
        alias.starts_with("reader-") && alias.ends_with("-s3alias"),
        "{alias}"
    );
    let dup = call(
        &server,
        "PUT",
        "/backup-access-point/create",
        Some(json!({"Name": "reader", "RecoveryPointArn": rp})),
    )
    .await;
    assert_eq!(dup.code().as_deref(), Some("AlreadyExistsException"));
    let listed = [
        call(&server, "GET", "/backup-access-point", None).await,
        call(
            &server,
            "POST",
            &format!("/backup-access-point/recovery-point/{}", label(&rp)),
            None,
        )
        .await,
        call(
            &server,
            "POST",
            &format!("/backup-access-point/resource/{}", label(EFS_ARN)),
            None,
        )
        .await,
    ];
    for l in &listed {
        assert_eq!(names(l), ["reader"], "{:?}", l.body);
    }
    let none = call(
        &server,
        "POST",
        &format!(
            "/backup-access-point/resource/{}",
            label("arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-none")
        ),
        None,
    )
    .await;
    assert!(names(&none).is_empty());

    // Read through the S3 endpoint.
    let s = s3(&server, AKID, SECRET);
    let whole = s
        .get_object()
        .bucket(&alias)
        .key("docs/big.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(whole.content_length(), Some(big.len() as i64));
    assert!(body(whole).await == big, "the file read back differs");
    let ranged = s
        .get_object()
        .bucket(&alias)
        .key("docs/big.bin")
        .range("bytes=1048000-3145999")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ranged.content_range(),
        Some(format!("bytes 1048000-3145999/{}", big.len()).as_str())
    );
    assert!(body(ranged).await == big[1_048_000..3_146_000]);
    let tail = s
        .get_object()
        .bucket(&alias)
        .key("readme.txt")
        .range("bytes=-6")
        .send()
        .await
        .unwrap();
    assert_eq!(body(tail).await, b"ackup\n");
    let head = s
        .head_object()
        .bucket(&alias)
        .key("docs/2024/a.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(7));
    let missing = s
        .get_object()
        .bucket(&alias)
        .key("docs/nothing.txt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(s3_code(&missing), "NoSuchKey");
    let nowhere = s
        .get_object()
        .bucket("nobody-000000000000-s3alias")
        .key("readme.txt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(s3_code(&nowhere), "NoSuchBucket");

    let listed = s
        .list_objects_v2()
        .bucket(&alias)
        .prefix("docs/")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["docs/big.bin", "docs/index.md"]);
    let prefixes: Vec<_> = listed
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["docs/2024/", "docs/2025/"]);
    let sizes: Vec<_> = listed.contents().iter().filter_map(|o| o.size()).collect();
    assert_eq!(sizes, [big.len() as i64, 8]);
    // Paging one key at a time visits every file once, in order.
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let page = s
            .list_objects_v2()
            .bucket(&alias)
            .max_keys(1)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        all.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(
        all,
        [
            "docs/2024/a.txt",
            "docs/2025/b.txt",
            "docs/big.bin",
            "docs/index.md",
            "readme.txt"
        ]
    );

    // A wrong secret and another account are refused; the policy can grant the other account.
    let forged = s3(&server, AKID, "not-the-secret")
        .get_object()
        .bucket(&alias)
        .key("readme.txt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(s3_code(&forged), "SignatureDoesNotMatch");
    let other = s3(&server, OTHER_AKID, OTHER_SECRET);
    let refused = other
        .get_object()
        .bucket(&alias)
        .key("readme.txt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(s3_code(&refused), "AccessDenied");
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OTHER_ACCOUNT}:root"}},"Action":"s3:GetObject","Resource":"*"}}]}}"#
    );
    let shared = call(
        &server,
        "PUT",
        "/backup-access-point/create",
        Some(json!({"Name": "shared", "RecoveryPointArn": rp, "AccessPointPolicy": policy})),
    )
    .await;
    let shared_arn = shared.body["AccessPointArn"].as_str().unwrap().to_string();
    let shared_alias = call(
        &server,
        "GET",
        &format!("/backup-access-point/{}", label(&shared_arn)),
        None,
    )
    .await
    .body["AccessPointMetadata"]["AccessPointAlias"]
        .as_str()
        .unwrap()
        .to_string();
    let granted = other
        .get_object()
        .bucket(&shared_alias)
        .key("readme.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(body(granted).await, b"hello from the backup\n");
    let not_listed = other
        .list_objects_v2()
        .bucket(&shared_alias)
        .send()
        .await
        .unwrap_err();
    assert_eq!(s3_code(&not_listed), "AccessDenied");

    // The recovery point is held while an access point exists.
    let held = c
        .delete_recovery_point()
        .backup_vault_name("ap")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap_err();
    let msg = held
        .as_service_error()
        .and_then(|e| e.meta().message())
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        held.as_service_error().and_then(|e| e.meta().code()),
        Some("InvalidRequestException")
    );
    assert!(
        msg.contains(&ap_arn) && msg.contains("DeleteBackupAccessPoint"),
        "{msg}"
    );
    for arn in [&ap_arn, &shared_arn] {
        let deleted = call(
            &server,
            "DELETE",
            &format!("/backup-access-point/delete/{}", label(arn)),
            None,
        )
        .await;
        assert_eq!(deleted.status, 204, "{:?}", deleted.body);
    }
    let gone = call(
        &server,
        "GET",
        &format!("/backup-access-point/{}", label(&ap_arn)),
        None,
    )
    .await;
    assert_eq!(gone.code().as_deref(), Some("ResourceNotFoundException"));
    let unserved = s
        .get_object()
        .bucket(&alias)
        .key("readme.txt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(s3_code(&unserved), "NoSuchBucket");
    c.delete_recovery_point()
        .backup_vault_name("ap")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap();
    let after = c
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("ap")
        .send()
        .await
        .unwrap();
    assert!(after.recovery_points().is_empty());
}
