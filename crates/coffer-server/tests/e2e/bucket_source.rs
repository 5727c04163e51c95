//! S3-compatible buckets as resources, against the S3 server `.ci/s3` starts on 127.0.0.1
//! (its `COFFER_TEST_S3_*` exports): a bucket backed up and restored into a new bucket, compared
//! object by object (bytes, content type, user metadata); an incremental second backup that
//! uploads only the changed objects (the job's counts); item-level restore of chosen keys; a
//! missing bucket and refused credentials failing the job with what to fix; and a plan whose
//! tag selection spans a bucket, an EFS directory and a SQLite database. Without the server
//! the tests say they skipped; under `CI=true` they fail.

use std::collections::BTreeMap;
use std::path::Path;

use aws_sdk_backup::Client;
use aws_sdk_backup::types::{
    BackupJobState, BackupPlanInput, BackupRuleInput, BackupSelection, Condition, ConditionType,
    Lifecycle, RestoreJobStatus,
};
use coffer_engine::{ObjectMeta, S3Client, S3Endpoint};

use crate::harness::*;

pub const ROLE: &str = "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole";

/// The test S3 server, or `None` (after saying so) when none runs; under `CI=true` a missing
/// server fails the test.
pub fn s3_endpoint() -> Option<S3Endpoint> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        get("COFFER_TEST_S3_ENDPOINT"),
        get("COFFER_TEST_S3_ACCESS_KEY"),
        get("COFFER_TEST_S3_SECRET_KEY"),
    ) {
        (Some(endpoint), Some(access_key_id), Some(secret_access_key)) => Some(S3Endpoint {
            endpoint,
            region: "us-east-1".into(),
            access_key_id,
            secret_access_key,
        }),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but no S3 server: run `eval \"$(.ci/s3 start DIR)\"` before the tests"
            );
            eprintln!("skipped: no S3 server (start one with `eval \"$(.ci/s3 start /tmp/s3)\"`)");
            None
        }
    }
}

/// Runs blocking S3 calls off the test's async threads.
pub async fn s3<T: Send + 'static>(
    ep: &S3Endpoint,
    f: impl FnOnce(&S3Client) -> T + Send + 'static,
) -> T {
    let ep = ep.clone();
    tokio::task::spawn_blocking(move || f(&S3Client::new(&ep).unwrap()))
        .await
        .unwrap()
}

/// A bucket name no other test uses.
pub fn unique_bucket(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::new_v4().simple())[..30].to_string()
}

fn meta(ct: &str, user: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        content_type: Some(ct.into()),
        user_metadata: user
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        tags: BTreeMap::new(),
    }
}

pub async fn put(ep: &S3Endpoint, bucket: &str, key: &str, body: Vec<u8>, m: ObjectMeta) {
    let (b, k) = (bucket.to_string(), key.to_string());
    s3(ep, move |c| {
        let len = body.len() as u64;
        c.put(&b, &k, &m, std::io::Cursor::new(body), len).unwrap()
    })
    .await;
}

/// Every object of `bucket`: key -> (bytes, content type, user metadata).
pub async fn read_bucket(
    ep: &S3Endpoint,
    bucket: &str,
) -> BTreeMap<String, (Vec<u8>, Option<String>, BTreeMap<String, String>)> {
    let b = bucket.to_string();
    s3(ep, move |c| {
        let mut out = BTreeMap::new();
        let mut prefixes = vec![String::new()];
        while let Some(p) = prefixes.pop() {
            let mut token = None;
            loop {
                let (objects, more, next) = c.list_level(&b, &p, token.as_deref()).unwrap();
                prefixes.extend(more);
                for o in objects {
                    let mut bytes = Vec::new();
                    std::io::Read::read_to_end(&mut c.get(&b, &o.key).unwrap(), &mut bytes)
                        .unwrap();
                    let m = c.head(&b, &o.key).unwrap();
                    out.insert(o.key, (bytes, m.content_type, m.user_metadata));
                }
                token = next;
                if token.is_none() {
                    break;
                }
            }
        }
        out
    })
    .await
}

/// A `[[resources]]` entry for `bucket` on `ep` with `tags`.
pub fn bucket_entry(ep: &S3Endpoint, bucket: &str, tags: &str) -> String {
    format!(
        "[[resources]]\narn = \"arn:aws:s3:::{bucket}\"\ntags = {{ {tags} }}\n\n\
         [resources.s3]\nendpoint = \"{}\"\nregion = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n\n",
        ep.endpoint, ep.region, ep.access_key_id, ep.secret_access_key
    )
}

/// Starts a development server with `config` as its configuration file and a vault `vault`.
pub async fn start(dir: &Path, config: &str) -> (Server, Client) {
    let cfg = dir.join("coffer.toml");
    std::fs::write(&cfg, config).unwrap();
    let server = Server::start(&[
        "--dev",
        "--account-id",
        ACCOUNT,
        "--config",
        cfg.to_str().unwrap(),
    ])
    .await;
    let c = server.client_as(ACCOUNT, "anything", "us-east-1");
    c.create_backup_vault()
        .backup_vault_name("vault")
        .send()
        .await
        .unwrap();
    (server, c)
}

/// A finished backup job: (state, status message, size, bytes transferred, recovery point).
pub struct Ended {
    pub state: BackupJobState,
    pub message: String,
    pub size: i64,
    pub transferred: i64,
    pub recovery_point: Option<String>,
}

pub async fn wait_backup(c: &Client, id: &str) -> Ended {
    let j = wait_until("the backup job to end", 180, || async {
        let j = c
            .describe_backup_job()
            .backup_job_id(id)
            .send()
            .await
            .unwrap();
        matches!(
            j.state(),
            Some(BackupJobState::Completed | BackupJobState::Failed | BackupJobState::Aborted)
        )
        .then_some(j)
    })
    .await;
    Ended {
        state: j.state().unwrap().clone(),
        message: j.status_message().unwrap_or_default().to_string(),
        size: j.backup_size_in_bytes().unwrap_or_default(),
        transferred: j.bytes_transferred().unwrap_or_default(),
        recovery_point: j.recovery_point_arn().map(str::to_string),
    }
}

pub async fn backup(c: &Client, arn: &str) -> Ended {
    let out = c
        .start_backup_job()
        .backup_vault_name("vault")
        .resource_arn(arn)
        .iam_role_arn(ROLE)
        .lifecycle(Lifecycle::builder().delete_after_days(40).build())
        .send()
        .await
        .unwrap();
    wait_backup(c, out.backup_job_id().unwrap()).await
}

/// Restores `rp` with `metadata`; returns the job's status and message.
pub async fn restore(
    c: &Client,
    rp: &str,
    metadata: &[(&str, &str)],
) -> (RestoreJobStatus, String, Option<String>) {
    let mut req = c
        .start_restore_job()
        .recovery_point_arn(rp)
        .iam_role_arn(ROLE);
    for (k, v) in metadata {
        req = req.metadata(*k, *v);
    }
    let id = req
        .send()
        .await
        .unwrap()
        .restore_job_id()
        .unwrap()
        .to_string();
    let j = wait_until("the restore job to end", 180, || async {
        let j = c
            .describe_restore_job()
            .restore_job_id(&id)
            .send()
            .await
            .unwrap();
        matches!(
            j.status(),
            Some(
                RestoreJobStatus::Completed | RestoreJobStatus::Failed | RestoreJobStatus::Aborted
            )
        )
        .then_some(j)
    })
    .await;
    (
        j.status().unwrap().clone(),
        j.status_message().unwrap_or_default().to_string(),
        j.created_resource_arn().map(str::to_string),
    )
}

/// A bucket is backed up and restored into a new bucket object by object; a second backup
/// uploads only what changed; chosen keys are restored alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_is_backed_up_incrementally_and_restored_into_new_buckets() {
    let Some(ep) = s3_endpoint() else { return };
    let dir = temp_dir();
    let src = unique_bucket("src");
    s3(&ep, {
        let b = src.clone();
        move |c| c.create_bucket(&b).unwrap()
    })
    .await;
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let objects: Vec<(&str, Vec<u8>, ObjectMeta)> = vec![
        (
            "a.txt",
            b"hello bucket\n".to_vec(),
            meta("text/plain", &[("owner", "alice")]),
        ),
        (
            "dir/b.json",
            b"{\"b\": 1}".to_vec(),
            meta("application/json", &[]),
        ),
        // Sorts before `dir/...` in S3's listing, after the directory `dir` in a tree.
        (
            "dir-x.txt",
            b"dash".to_vec(),
            meta("text/plain", &[("k", "v")]),
        ),
        (
            "dir/sub/c.bin",
            big.clone(),
            meta("application/octet-stream", &[]),
        ),
        ("empty", Vec::new(), meta("text/plain", &[])),
    ];
    for (k, body, m) in &objects {
        put(&ep, &src, k, body.clone(), m.clone()).await;
    }
    let arn = format!("arn:aws:s3:::{src}");
    let (_server, c) = start(dir.path(), &bucket_entry(&ep, &src, "team = \"photos\"")).await;

    let first = backup(&c, &arn).await;
    assert_eq!(first.state, BackupJobState::Completed, "{}", first.message);
    let total: usize = objects.iter().map(|o| o.1.len()).sum();
    assert_eq!(first.size, total as i64);
    assert!(
        first
            .message
            .contains("Backed up 5 objects (5 new, 0 changed, 0 unchanged)"),
        "{}",
        first.message
    );
    let rp1 = first.recovery_point.unwrap();

    // Restore everything into a new bucket: every object equal in bytes and metadata.
    let dst = unique_bucket("dst");
    let (status, message, created) = restore(
        &c,
        &rp1,
        &[("DestinationBucketName", &dst), ("NewBucket", "true")],
    )
    .await;
    assert_eq!(status, RestoreJobStatus::Completed, "{message}");
    assert_eq!(
        created.as_deref(),
        Some(format!("arn:aws:s3:::{dst}").as_str())
    );
    let original = read_bucket(&ep, &src).await;
    let restored = read_bucket(&ep, &dst).await;
    assert_eq!(original.len(), 5);
    assert_eq!(restored, original);
    assert_eq!(restored["dir/sub/c.bin"].0, big);
    assert_eq!(
        restored["a.txt"].2.get("owner").map(String::as_str),
        Some("alice")
    );
    assert_eq!(
        restored["dir/b.json"].1.as_deref(),
        Some("application/json")
    );

    // Into a bucket that exists with NewBucket=true: refused by the job, saying why.
    let (status, message, _) = restore(
        &c,
        &rp1,
        &[("DestinationBucketName", &dst), ("NewBucket", "true")],
    )
    .await;
    assert_eq!(status, RestoreJobStatus::Failed);
    assert!(message.contains("already exists"), "{message}");

    // One object changes, one is added: the second backup uploads only those.
    put(
        &ep,
        &src,
        "a.txt",
        b"hello again, bucket\n".to_vec(),
        meta("text/plain", &[]),
    )
    .await;
    put(
        &ep,
        &src,
        "new.txt",
        b"new object".to_vec(),
        meta("text/csv", &[]),
    )
    .await;
    let second = backup(&c, &arn).await;
    assert_eq!(
        second.state,
        BackupJobState::Completed,
        "{}",
        second.message
    );
    assert!(
        second
            .message
            .contains("Backed up 6 objects (1 new, 1 changed, 4 unchanged)"),
        "{}",
        second.message
    );
    // The 300 kB object is not uploaded again: only the two small objects and the trees.
    assert!(
        second.transferred > 0 && second.transferred < 20_000,
        "{}",
        second.transferred
    );
    let rp2 = second.recovery_point.unwrap();

    // Item-level restore of chosen keys, under a prefix, into another new bucket.
    let items = unique_bucket("items");
    let chosen = format!("[\"s3://{src}/dir/b.json\", \"new.txt\"]");
    let (status, message, _) = restore(
        &c,
        &rp2,
        &[
            ("DestinationBucketName", &items),
            ("NewBucket", "true"),
            ("DestinationPrefix", "restored/"),
            ("ItemsToRestore", &chosen),
        ],
    )
    .await;
    assert_eq!(status, RestoreJobStatus::Completed, "{message}");
    let got = read_bucket(&ep, &items).await;
    assert_eq!(
        got.keys().cloned().collect::<Vec<_>>(),
        vec![
            "restored/dir/b.json".to_string(),
            "restored/new.txt".to_string()
        ]
    );
    assert_eq!(got["restored/new.txt"].0, b"new object");
    assert_eq!(got["restored/new.txt"].1.as_deref(), Some("text/csv"));
}

/// A bucket that does not exist, and credentials the server refuses, fail the backup with
/// what to fix.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_bucket_or_refused_credentials_fail_the_job() {
    let Some(ep) = s3_endpoint() else { return };
    let dir = temp_dir();
    let missing = unique_bucket("missing");
    let guarded = unique_bucket("guarded");
    s3(&ep, {
        let b = guarded.clone();
        move |c| c.create_bucket(&b).unwrap()
    })
    .await;
    let wrong = S3Endpoint {
        secret_access_key: "not-the-secret".into(),
        ..ep.clone()
    };
    let config = format!(
        "{}{}",
        bucket_entry(&ep, &missing, ""),
        bucket_entry(&wrong, &guarded, "")
    );
    let (_server, c) = start(dir.path(), &config).await;

    let gone = backup(&c, &format!("arn:aws:s3:::{missing}")).await;
    assert_eq!(gone.state, BackupJobState::Failed);
    assert!(
        gone.message.contains(&missing) && gone.message.contains("create it"),
        "{}",
        gone.message
    );
    let refused = backup(&c, &format!("arn:aws:s3:::{guarded}")).await;
    assert_eq!(refused.state, BackupJobState::Failed);
    assert!(
        refused.message.contains("refused the credentials")
            && refused.message.contains("secret_access_key")
            && !refused.message.contains("not-the-secret"),
        "{}",
        refused.message
    );
}

/// One plan, one tag selection, three kinds of resource: a bucket, an EFS directory and a
/// SQLite database are each backed up by the rule's run, and each recovery point restores.
#[tokio::test(flavor = "multi_thread")]
async fn a_tag_selection_backs_up_a_bucket_a_directory_and_a_database() {
    let Some(ep) = s3_endpoint() else { return };
    let dir = temp_dir();
    let bucket = unique_bucket("mixed");
    s3(&ep, {
        let b = bucket.clone();
        move |c| c.create_bucket(&b).unwrap()
    })
    .await;
    put(
        &ep,
        &bucket,
        "k/v.txt",
        b"object".to_vec(),
        meta("text/plain", &[]),
    )
    .await;
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("a.txt"), "file").unwrap();
    let db = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE t(v TEXT); INSERT INTO t VALUES ('row');")
        .unwrap();
    drop(conn);
    let efs = format!("arn:aws:elasticfilesystem:us-east-1:{ACCOUNT}:file-system/fs-docs");
    let sqlite = format!("arn:aws:sqlite:us-east-1:{ACCOUNT}:database/app");
    let config = format!(
        "{}[[resources]]\narn = \"{efs}\"\nsource = \"{}\"\ntags = {{ backup = \"nightly\" }}\n\n\
         [[resources]]\narn = \"{sqlite}\"\nsource = \"{}\"\ntags = {{ backup = \"nightly\" }}\n\n\
         [[resources]]\narn = \"arn:aws:elasticfilesystem:us-east-1:{ACCOUNT}:file-system/fs-other\"\nsource = \"{}\"\n",
        bucket_entry(&ep, &bucket, "backup = \"nightly\""),
        docs.display(),
        db.display(),
        docs.display(),
    );
    let (server, c) = start(dir.path(), &config).await;
    let t0 = (server.clock_secs().await / 86_400 + 1) * 86_400;
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0)))
        .await;
    // As in AWS, plans select buckets only once the region opts in to S3.
    c.update_region_settings()
        .resource_type_opt_in_preference("S3", true)
        .send()
        .await
        .unwrap();
    let plan = c
        .create_backup_plan()
        .backup_plan(
            BackupPlanInput::builder()
                .backup_plan_name("nightly")
                .rules(
                    BackupRuleInput::builder()
                        .rule_name("at-five")
                        .target_backup_vault_name("vault")
                        .schedule_expression("cron(0 5 ? * * *)")
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
                .selection_name("tagged")
                .iam_role_arn(ROLE)
                .list_of_tags(
                    Condition::builder()
                        .condition_type(ConditionType::Stringequals)
                        .condition_key("backup")
                        .condition_value("nightly")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0 + 5 * 3600 + 30)))
        .await;
    let jobs = wait_until("the rule's three backups to end", 180, || async {
        let jobs = c.list_backup_jobs().send().await.unwrap();
        let jobs = jobs.backup_jobs().to_vec();
        let ended = jobs
            .iter()
            .filter(|j| {
                matches!(
                    j.state(),
                    Some(BackupJobState::Completed | BackupJobState::Failed)
                )
            })
            .count();
        (ended == 3).then_some(jobs)
    })
    .await;
    for j in &jobs {
        assert_eq!(
            j.state(),
            Some(&BackupJobState::Completed),
            "{:?}: {:?}",
            j.resource_arn(),
            j.status_message()
        );
    }
    let mut arns: Vec<String> = jobs
        .iter()
        .map(|j| j.resource_arn().unwrap().to_string())
        .collect();
    arns.sort();
    let mut want = vec![
        format!("arn:aws:s3:::{bucket}"),
        efs.clone(),
        sqlite.clone(),
    ];
    want.sort();
    assert_eq!(arns, want, "the untagged directory is not selected");
    let types: BTreeMap<String, String> = jobs
        .iter()
        .map(|j| {
            (
                j.resource_arn().unwrap().to_string(),
                j.resource_type().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(types[&format!("arn:aws:s3:::{bucket}")], "S3");
    assert_eq!(types[&sqlite], "SQLite");
    assert_eq!(types[&efs], "EFS");
    // The database's recovery point restores to a file holding the row.
    let rp = jobs
        .iter()
        .find(|j| j.resource_arn() == Some(sqlite.as_str()))
        .and_then(|j| j.recovery_point_arn())
        .unwrap()
        .to_string();
    let target = dir.path().join("restored-db");
    let (status, message, _) = restore(&c, &rp, &[("targetPath", target.to_str().unwrap())]).await;
    assert_eq!(status, RestoreJobStatus::Completed, "{message}");
    let conn = rusqlite::Connection::open(target.join("app.db")).unwrap();
    let v: String = conn.query_row("SELECT v FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(v, "row");
}

/// The benchmark of docs/benchmarks.md ("Bucket resources"): a bucket of `COFFER_BENCH_OBJECTS`
/// (default 100,000) small objects in 100 prefixes, backed up in full, backed up again
/// unchanged, and restored into a new bucket; prints the times. Run by hand:
/// `cargo test --release -p coffer-server --test e2e bench_bucket -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark, run by hand"]
async fn bench_bucket() {
    let Some(ep) = s3_endpoint() else { return };
    let n: usize = std::env::var("COFFER_BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = temp_dir();
    let bucket = unique_bucket("bench");
    s3(&ep, {
        let b = bucket.clone();
        move |c| c.create_bucket(&b).unwrap()
    })
    .await;
    let t = std::time::Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (ep, b) = (ep.clone(), bucket.clone());
            std::thread::spawn(move || {
                let c = S3Client::new(&ep).unwrap();
                for i in (w..n).step_by(8) {
                    let body: Vec<u8> = format!("object {i} ").repeat(1 + i % 200).into_bytes();
                    let len = body.len() as u64;
                    let key = format!("d{:02}/obj-{i:06}.txt", i % 100);
                    c.put(
                        &b,
                        &key,
                        &meta("text/plain", &[]),
                        std::io::Cursor::new(body),
                        len,
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    eprintln!(
        "bench: {n} objects put in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let arn = format!("arn:aws:s3:::{bucket}");
    let (_server, c) = start(dir.path(), &bucket_entry(&ep, &bucket, "")).await;
    for run in ["full", "unchanged"] {
        let t = std::time::Instant::now();
        let e = backup(&c, &arn).await;
        assert_eq!(e.state, BackupJobState::Completed, "{}", e.message);
        eprintln!(
            "bench: {run} backup {:.1} s, {} bytes, {} uploaded: {}",
            t.elapsed().as_secs_f64(),
            e.size,
            e.transferred,
            e.message
        );
    }
    let rp = c
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("vault")
        .send()
        .await
        .unwrap()
        .recovery_points()[0]
        .recovery_point_arn()
        .unwrap()
        .to_string();
    let dst = unique_bucket("benchdst");
    let t = std::time::Instant::now();
    let (status, message, _) = restore(
        &c,
        &rp,
        &[("DestinationBucketName", &dst), ("NewBucket", "true")],
    )
    .await;
    assert_eq!(status, RestoreJobStatus::Completed, "{message}");
    eprintln!(
        "bench: restore into a new bucket {:.1} s",
        t.elapsed().as_secs_f64()
    );
    eprintln!("bench: bucket {bucket}");
}
