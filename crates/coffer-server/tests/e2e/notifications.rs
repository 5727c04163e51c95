//! Vault notifications end to end: a webhook receiver on 127.0.0.1 records what Coffer posts.
//! A backup, a copy, a restore, a recovery point change and a plan produce exactly the
//! subscribed events with the SNS envelope; a receiver that comes up late and a server killed
//! between the state change and the delivery still get every event, once; an SNS endpoint gets
//! signed Publish calls while another topic's dead target backs off.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_backup::Client;
use aws_sdk_backup::types::{BackupJobState, BackupVaultEvent, CopyJobState, RestoreJobStatus};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::harness::*;

const EFS_ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-notes";
/// A resource whose source does not exist: its backups fail.
const MISSING_ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-gone";
const ROLE: &str = "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole";
const TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:backup-events";
const UNCONFIGURED_TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:nobody-listens";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    path: String,
    headers: HashMap<String, String>,
    pub(crate) body: serde_json::Value,
}

/// A webhook receiver recording every request.
pub(crate) struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub(crate) async fn start(addr: SocketAddr) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let g = got.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let g = g.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let g = g.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                                })
                                .collect();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let body = serde_json::from_slice(&body).unwrap_or_else(|_| {
                                serde_json::Value::String(String::from_utf8_lossy(&body).into())
                            });
                            g.lock().unwrap().push(Received {
                                path,
                                headers,
                                body,
                            });
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from_static(b"ok"),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { got }
    }

    pub(crate) fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived and the server's outbox is down to `pending`
    /// messages (those meant for other targets). A message leaves the outbox only once its
    /// target answered, and this receiver records a request before answering it, so by then
    /// every delivery the server made has been recorded: what is returned is all there is,
    /// and the callers assert its exact count and content.
    async fn wait_for(&self, server: &Server, n: usize, pending: usize) -> Vec<Received> {
        let what = format!("{n} notifications delivered with {pending} left in the outbox");
        wait_until(&what, 30, || async move {
            if self.got().len() < n {
                return None;
            }
            (counts(server).await["pending"] == pending).then(|| self.got())
        })
        .await
    }
}

/// A free port on 127.0.0.1 (bound and released).
pub(crate) fn reserve_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn write_config(dir: &Path, source: &Path, hook: SocketAddr) -> PathBuf {
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

[[resources]]
arn = "{MISSING_ARN}"
source = "{}"

[[notification_targets]]
topic_arn = "{TOPIC}"
webhook = "http://{hook}/hook"
"#,
            source.display(),
            source.with_file_name("missing").display()
        ),
    )
    .unwrap();
    path
}

async fn start(dir: &Path) -> Server {
    let data = dir.join("data");
    let cfg = dir.join("coffer.toml");
    Server::start(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ])
    .await
}

/// Like [`start`], with the server's log (at its default level) in `log`.
async fn start_logging(dir: &Path, log: &Path) -> Server {
    let data = dir.join("data");
    let cfg = dir.join("coffer.toml");
    Server::start_logging(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ],
        Some(log),
    )
    .await
}

fn tiny_tree(root: &Path) {
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::write(root.join("d/a.txt"), b"notify me\n").unwrap();
}

async fn subscribe(c: &Client, vault: &str, topic: &str, events: &[BackupVaultEvent]) {
    c.put_backup_vault_notifications()
        .backup_vault_name(vault)
        .sns_topic_arn(topic)
        .set_backup_vault_events(Some(events.to_vec()))
        .send()
        .await
        .unwrap();
}

async fn backup(c: &Client, vault: &str) -> (String, String) {
    let out = c
        .start_backup_job()
        .backup_vault_name(vault)
        .resource_arn(EFS_ARN)
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap();
    let id = out.backup_job_id().unwrap().to_string();
    for _ in 0..600 {
        let j = c
            .describe_backup_job()
            .backup_job_id(&id)
            .send()
            .await
            .unwrap();
        match j.state() {
            Some(BackupJobState::Completed) => {
                return (id, j.recovery_point_arn().unwrap().to_string());
            }
            Some(BackupJobState::Created | BackupJobState::Running) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => panic!("backup ended {other:?}: {:?}", j.status_message()),
        }
    }
    panic!("backup {id} did not end");
}

pub(crate) async fn counts(server: &Server) -> serde_json::Value {
    let (status, _, body) = server.raw("GET", "/_coffer/notifications", &[], b"").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// (EventType, State, Id) of each notification, in arrival order.
fn summary(got: &[Received]) -> Vec<(String, String, String)> {
    got.iter()
        .map(|r| {
            let a = &r.body["MessageAttributes"];
            (
                a["EventType"]["Value"].as_str().unwrap_or("").to_string(),
                a["State"]["Value"].as_str().unwrap_or("").to_string(),
                a["Id"]["Value"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn t(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.to_string(), b.to_string(), c.to_string())
}

#[tokio::test]
async fn jobs_recovery_points_and_plans_publish_exactly_the_subscribed_events() {
    let dir = temp_dir();
    let src = dir.path().join("src");
    tiny_tree(&src);
    let hook = reserve_port();
    let receiver = Receiver::start(hook).await;
    write_config(dir.path(), &src, hook);
    let server = start(dir.path()).await;
    let c = server.client();
    for v in ["primary", "secondary", "elsewhere"] {
        c.create_backup_vault()
            .backup_vault_name(v)
            .send()
            .await
            .unwrap();
    }
    subscribe(
        &c,
        "primary",
        TOPIC,
        &[
            BackupVaultEvent::BackupJobStarted,
            BackupVaultEvent::BackupJobSuccessful,
            BackupVaultEvent::BackupJobFailed,
            BackupVaultEvent::CopyJobSuccessful,
            BackupVaultEvent::RestoreJobSuccessful,
            BackupVaultEvent::RecoveryPointModified,
            BackupVaultEvent::BackupPlanCreated,
        ],
    )
    .await;
    // A vault whose topic has no target: its events become dead letters.
    subscribe(
        &c,
        "elsewhere",
        UNCONFIGURED_TOPIC,
        &[BackupVaultEvent::BackupPlanCreated],
    )
    .await;

    let (backup_id, rp) = backup(&c, "primary").await;
    // A backup that fails.
    let failed_id = c
        .start_backup_job()
        .backup_vault_name("primary")
        .resource_arn(MISSING_ARN)
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap()
        .backup_job_id()
        .unwrap()
        .to_string();
    loop {
        let j = c
            .describe_backup_job()
            .backup_job_id(&failed_id)
            .send()
            .await
            .unwrap();
        match j.state() {
            Some(BackupJobState::Failed) => break,
            Some(BackupJobState::Created | BackupJobState::Running) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => panic!("backup ended {other:?}: {:?}", j.status_message()),
        }
    }
    // Into a vault without a subscription: nothing is sent.
    backup(&c, "secondary").await;

    let secondary_arn = c
        .describe_backup_vault()
        .backup_vault_name("secondary")
        .send()
        .await
        .unwrap()
        .backup_vault_arn()
        .unwrap()
        .to_string();
    let copy_id = c
        .start_copy_job()
        .recovery_point_arn(&rp)
        .source_backup_vault_name("primary")
        .destination_backup_vault_arn(&secondary_arn)
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap()
        .copy_job_id()
        .unwrap()
        .to_string();
    loop {
        let j = c
            .describe_copy_job()
            .copy_job_id(&copy_id)
            .send()
            .await
            .unwrap()
            .copy_job
            .unwrap();
        match j.state() {
            Some(CopyJobState::Completed) => break,
            Some(CopyJobState::Created | CopyJobState::Running) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => panic!("copy ended {other:?}: {:?}", j.status_message()),
        }
    }

    let target = dir.path().join("restored");
    let restore_id = c
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
    loop {
        let j = c
            .describe_restore_job()
            .restore_job_id(&restore_id)
            .send()
            .await
            .unwrap();
        match j.status() {
            Some(RestoreJobStatus::Completed) => break,
            Some(RestoreJobStatus::Pending | RestoreJobStatus::Running) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => panic!("restore ended {other:?}: {:?}", j.status_message()),
        }
    }

    c.tag_resource()
        .resource_arn(&rp)
        .tags("reviewed", "yes")
        .send()
        .await
        .unwrap();
    let rp_id = rp.rsplit(':').next().unwrap().to_string();

    let plan_id = c
        .create_backup_plan()
        .backup_plan(crate::plans::plan(
            "notified",
            vec![
                crate::plans::rule("a", "primary"),
                crate::plans::rule("b", "elsewhere"),
            ],
        ))
        .send()
        .await
        .unwrap()
        .backup_plan_id()
        .unwrap()
        .to_string();

    let got = receiver.wait_for(&server, 8, 0).await;
    assert_eq!(got.len(), 8, "{got:#?}");
    let mut events = summary(&got);
    events.sort();
    let mut expected = vec![
        t("BACKUP_JOB", "RUNNING", &backup_id),
        t("BACKUP_JOB", "COMPLETED", &backup_id),
        t("BACKUP_JOB", "RUNNING", &failed_id),
        t("BACKUP_JOB", "FAILED", &failed_id),
        t("COPY_JOB", "COMPLETED", &copy_id),
        t("RESTORE_JOB", "COMPLETED", &restore_id),
        t("RECOVERY_POINT", "MODIFIED", &rp_id),
        t("BACKUP_PLAN", "CREATED", &plan_id),
    ];
    expected.sort();
    assert_eq!(events, expected, "{got:#?}");

    // The envelope and headers of the backup's completion.
    let done = got
        .iter()
        .find(|r| {
            r.body["MessageAttributes"]["EventType"]["Value"] == "BACKUP_JOB"
                && r.body["MessageAttributes"]["State"]["Value"] == "COMPLETED"
        })
        .unwrap();
    assert_eq!(done.path, "/hook");
    let b = &done.body;
    assert_eq!(b["Type"], "Notification");
    assert_eq!(b["TopicArn"], TOPIC);
    assert_eq!(b["Subject"], "Notification from AWS Backup");
    let message = b["Message"].as_str().unwrap();
    assert!(
        message.starts_with("An AWS Backup job was completed successfully.")
            && message.contains(&rp)
            && message.contains(EFS_ARN)
            && message.contains(&backup_id),
        "{message}"
    );
    assert!(b["Timestamp"].as_str().unwrap().ends_with('Z'));
    let attrs = &b["MessageAttributes"];
    assert_eq!(attrs["AccountId"]["Value"], ACCOUNT);
    assert_eq!(attrs["AccountId"]["Type"], "String");
    assert!(attrs["StartTime"]["Value"].as_str().unwrap().ends_with('Z'));
    let id = b["MessageId"].as_str().unwrap();
    assert_eq!(done.headers["x-amz-sns-message-type"], "Notification");
    assert_eq!(done.headers["x-amz-sns-topic-arn"], TOPIC);
    assert_eq!(done.headers["x-amz-sns-message-id"], id);
    let failed = got
        .iter()
        .find(|r| r.body["MessageAttributes"]["State"]["Value"] == "FAILED")
        .unwrap();
    let message = failed.body["Message"].as_str().unwrap();
    assert!(
        message.starts_with("An AWS Backup job failed.")
            && message.contains(MISSING_ARN)
            && message.contains(&failed_id)
            && message.contains("Status message"),
        "{message}"
    );
    // Every message is distinct.
    let mut ids: Vec<&str> = got
        .iter()
        .map(|r| r.body["MessageId"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), got.len());

    let n = counts(&server).await;
    assert_eq!(n, serde_json::json!({"pending": 0, "failed": 1}));
}

#[tokio::test]
async fn events_survive_a_receiver_that_is_down_and_a_server_crash() {
    let dir = temp_dir();
    let src = dir.path().join("src");
    tiny_tree(&src);
    let hook = reserve_port();
    write_config(dir.path(), &src, hook);
    let server = start(dir.path()).await;
    let c = server.client();
    c.create_backup_vault()
        .backup_vault_name("watched")
        .send()
        .await
        .unwrap();
    subscribe(
        &c,
        "watched",
        TOPIC,
        &[
            BackupVaultEvent::BackupJobStarted,
            BackupVaultEvent::BackupJobCompleted,
        ],
    )
    .await;
    let (first, _) = backup(&c, "watched").await;
    // Nobody listens yet: the events wait in the outbox.
    let n = counts(&server).await;
    assert_eq!(n["pending"], 2, "{n}");
    // Killed between the state change and the delivery.
    server.kill().await;

    let log = dir.path().join("restarted.log");
    let server = start_logging(dir.path(), &log).await;
    let c = server.client();
    let (second, _) = backup(&c, "watched").await;
    // Delivery is tried and fails (nobody listens); every event stays in the outbox.
    wait_for_log(&log, "notification not delivered yet").await;
    assert_eq!(counts(&server).await["pending"], 4);

    // The receiver comes up late, on the port it was promised.
    let receiver = Receiver::start(hook).await;
    let got = receiver.wait_for(&server, 4, 0).await;
    let events = summary(&got);
    assert_eq!(
        events,
        vec![
            t("BACKUP_JOB", "RUNNING", &first),
            t("BACKUP_JOB", "COMPLETED", &first),
            t("BACKUP_JOB", "RUNNING", &second),
            t("BACKUP_JOB", "COMPLETED", &second),
        ],
        "in order, each once"
    );
    assert_eq!(
        counts(&server).await,
        serde_json::json!({"pending": 0, "failed": 0})
    );
}

/// Decodes a form body (`+` is a space).
fn form(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let d = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .to_string()
            };
            (d(k), d(v))
        })
        .collect()
}

#[tokio::test]
async fn sns_publish_target_gets_signed_publish_calls() {
    use coffer_api::sigv4::{AuthMode, Credential, SignedParts, SigningKeyCache, authenticate};

    let dir = temp_dir();
    let src = dir.path().join("src");
    tiny_tree(&src);
    let sns = reserve_port();
    let receiver = Receiver::start(sns).await;
    write_config(dir.path(), &src, reserve_port());
    let topic = "arn:aws:sns:eu-west-1:111122223333:ops";
    let mut cfg = std::fs::read_to_string(dir.path().join("coffer.toml")).unwrap();
    cfg.push_str(&format!(
        r#"
[[notification_targets]]
topic_arn = "{topic}"
sns_endpoint = "http://{sns}/"
access_key_id = "AKIDSNSPUBLISHER0001"
secret_access_key = "sns-secret"
"#
    ));
    std::fs::write(dir.path().join("coffer.toml"), cfg).unwrap();
    let server = start(dir.path()).await;
    let c = server.client();
    c.create_backup_vault()
        .backup_vault_name("ops-vault")
        .send()
        .await
        .unwrap();
    subscribe(
        &c,
        "ops-vault",
        topic,
        &[
            BackupVaultEvent::BackupPlanCreated,
            BackupVaultEvent::BackupPlanModified,
        ],
    )
    .await;
    // Another vault's topic goes to a webhook nobody listens on: its message backs off without
    // holding up the SNS topic.
    c.create_backup_vault()
        .backup_vault_name("stuck-vault")
        .send()
        .await
        .unwrap();
    subscribe(
        &c,
        "stuck-vault",
        TOPIC,
        &[BackupVaultEvent::BackupPlanCreated],
    )
    .await;
    let created = c
        .create_backup_plan()
        .backup_plan(crate::plans::plan(
            "ops",
            vec![
                crate::plans::rule("r", "ops-vault"),
                crate::plans::rule("s", "stuck-vault"),
            ],
        ))
        .send()
        .await
        .unwrap();
    let plan_id = created.backup_plan_id().unwrap().to_string();
    let plan_arn = created.backup_plan_arn().unwrap().to_string();
    c.update_backup_plan()
        .backup_plan_id(&plan_id)
        .backup_plan(crate::plans::plan(
            "ops",
            vec![
                crate::plans::rule("r", "ops-vault"),
                crate::plans::rule("s", "stuck-vault"),
                crate::plans::rule("r2", "ops-vault"),
            ],
        ))
        .send()
        .await
        .unwrap();

    // The stuck vault's message stays in the outbox, backing off.
    let got = receiver.wait_for(&server, 2, 1).await;
    assert_eq!(got.len(), 2, "{got:#?}");
    let mut creds = std::collections::HashMap::new();
    creds.insert(
        "AKIDSNSPUBLISHER0001".to_string(),
        Credential {
            access_key_id: "AKIDSNSPUBLISHER0001".into(),
            secret_access_key: "sns-secret".into(),
            account_id: ACCOUNT.into(),
        },
    );
    let mode = AuthMode::SigV4(Arc::new(creds));
    for (r, state) in got.iter().zip(["CREATED", "MODIFIED"]) {
        let body = r.body.as_str().unwrap().to_string();
        let f = form(&body);
        assert_eq!(f["Action"], "Publish");
        assert_eq!(f["TopicArn"], topic);
        assert_eq!(f["Subject"], "Notification from AWS Backup");
        assert!(f["Message"].contains(&plan_arn), "{}", f["Message"]);
        let attrs: HashMap<&str, &str> = (1..=5)
            .map(|n| {
                assert_eq!(
                    f[&format!("MessageAttributes.entry.{n}.Value.DataType")],
                    "String"
                );
                (
                    f[&format!("MessageAttributes.entry.{n}.Name")].as_str(),
                    f[&format!("MessageAttributes.entry.{n}.Value.StringValue")].as_str(),
                )
            })
            .collect();
        assert_eq!(attrs["EventType"], "BACKUP_PLAN");
        assert_eq!(attrs["State"], state);
        assert_eq!(attrs["Id"], plan_id);
        assert_eq!(attrs["AccountId"], ACCOUNT);
        // The signature verifies, for service sns in the topic's region.
        let mut headers = http::HeaderMap::new();
        for (k, v) in &r.headers {
            headers.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let caller = authenticate(
            &mode,
            &SigningKeyCache::default(),
            &SignedParts {
                method: "POST",
                raw_path: &r.path,
                raw_query: "",
                headers: &headers,
                body: body.as_bytes(),
            },
            &coffer_api::sigv4::ScopePolicy::new("sns", "us-east-1"),
            chrono::Utc::now(),
        )
        .unwrap_or_else(|e| panic!("signature: {e:?}"));
        assert_eq!(
            (caller.service.as_str(), caller.region.as_str()),
            ("sns", "eu-west-1")
        );
    }
    let n = counts(&server).await;
    assert_eq!(
        n,
        serde_json::json!({"pending": 1, "failed": 0}),
        "the stuck topic's message waits"
    );
}

const OTHER_AKID: &str = "AKIDCOFFEROTHER00001";
const OTHER_SECRET: &str = "coffer-other-secret-0000000000000000001";

/// Sends a request to an admin endpoint signed (SigV4, service `backup`) with `akid`.
pub async fn signed(
    server: &Server,
    method: &str,
    path: &str,
    body: &[u8],
    akid: &str,
    secret: &str,
) -> (u16, String, serde_json::Value) {
    let addr = server.endpoint.trim_start_matches("http://").to_string();
    let mut h = http::HeaderMap::new();
    h.insert("host", addr.parse().unwrap());
    coffer_api::sigv4::sign(
        coffer_api::sigv4::OutgoingRequest {
            method,
            raw_path: path,
            raw_query: "",
            headers: &mut h,
            body,
        },
        akid,
        secret,
        "us-east-1",
        "backup",
        chrono::Utc::now(),
    )
    .unwrap();
    let headers: Vec<(String, String)> = h
        .iter()
        .filter(|(k, _)| k.as_str() != "host")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, head, text) = server.raw(method, path, &refs, body).await;
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, head, json)
}

async fn wait_for_counts(server: &Server, want: serde_json::Value) {
    for _ in 0..100 {
        if counts(server).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("counts stayed {} (wanted {want})", counts(server).await);
}

fn cli(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn a_target_added_while_running_gets_the_replayed_dead_letters() {
    let dir = temp_dir();
    let src = dir.path().join("src");
    tiny_tree(&src);
    let hook = reserve_port();
    let cfg = write_config(dir.path(), &src, hook);
    let full = std::fs::read_to_string(&cfg).unwrap();
    let other = format!(
        "\n[[credentials]]\naccess_key_id = \"{OTHER_AKID}\"\nsecret_access_key = \"{OTHER_SECRET}\"\naccount_id = \"444455556666\"\n"
    );
    let (without_target, _) = full.split_once("[[notification_targets]]").unwrap();
    std::fs::write(&cfg, format!("{without_target}{other}")).unwrap();
    let server = start(dir.path()).await;
    let c = server.client();
    c.create_backup_vault()
        .backup_vault_name("watched")
        .send()
        .await
        .unwrap();
    subscribe(
        &c,
        "watched",
        TOPIC,
        &[BackupVaultEvent::BackupJobSuccessful],
    )
    .await;
    let (job, _) = backup(&c, "watched").await;
    // The topic has no target: the event becomes a dead letter.
    wait_for_counts(&server, serde_json::json!({"pending": 0, "failed": 1})).await;

    let path = "/_coffer/notifications/dead-letters";
    let (status, head, _) = server.raw("GET", path, &[], b"").await;
    assert_eq!(
        status, 403,
        "unsigned listing refused with authentication on"
    );
    assert!(
        head.contains("missingauthenticationtokenexception"),
        "{head}"
    );
    let (status, _, theirs) = signed(&server, "GET", path, b"", OTHER_AKID, OTHER_SECRET).await;
    assert_eq!(
        (status, &theirs["count"]),
        (200, &serde_json::json!(0)),
        "{theirs}"
    );
    let (status, _, mine) = signed(&server, "GET", path, b"", AKID, SECRET).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["count"], 1, "{mine}");
    let dead = &mine["dead_letters"][0];
    assert_eq!(dead["event"], "BACKUP_JOB_SUCCESSFUL");
    assert_eq!(dead["vault"], "watched");
    assert_eq!(dead["reason"], "no target configured for topic");
    assert!(dead["message"].as_str().unwrap().contains(&job), "{dead}");
    let id = dead["id"].as_str().unwrap().to_string();

    // The CLI sees it too, next to the running server, and can send it round again (still no
    // target: it comes back).
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    // The same store the server uses (its PostgreSQL database when the suite runs there).
    let store = crate::harness::store_location(data);
    let (ok, out) = cli(&[
        "notifications",
        "dead-letters",
        "--data-dir",
        data,
        "--store",
        &store,
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&id) && out.contains("reason: no target configured"),
        "{out}"
    );
    let (ok, out) = cli(&[
        "notifications",
        "replay",
        "--all",
        "--data-dir",
        data,
        "--store",
        &store,
    ]);
    assert!(
        ok && out.starts_with("1 notification back in the outbox"),
        "{out}"
    );
    wait_for_counts(&server, serde_json::json!({"pending": 0, "failed": 1})).await;

    // Another account's replay touches nothing.
    let replay = format!("{path}/replay");
    let (status, _, r) = signed(&server, "POST", &replay, b"{}", OTHER_AKID, OTHER_SECRET).await;
    assert_eq!(
        (status, &r["replayed"]),
        (200, &serde_json::json!(0)),
        "{r}"
    );

    // The target is added to the running server's file; after SIGHUP, a replay delivers.
    let receiver = Receiver::start(hook).await;
    std::fs::write(&cfg, format!("{full}{other}")).unwrap();
    server.hup();
    let body = serde_json::json!({ "ids": [id] }).to_string();
    for _ in 0..40 {
        let (status, _, r) = signed(&server, "POST", &replay, body.as_bytes(), AKID, SECRET).await;
        assert_eq!(status, 200, "{r}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        if !receiver.got().is_empty() {
            break;
        }
    }
    let got = receiver.wait_for(&server, 1, 0).await;
    assert_eq!(
        summary(&got),
        vec![t("BACKUP_JOB", "COMPLETED", &job)],
        "delivered once"
    );
    assert_eq!(
        counts(&server).await,
        serde_json::json!({"pending": 0, "failed": 0})
    );
}
