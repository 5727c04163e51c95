//! `GET /metrics`: scraped before and after a backup, the counters and gauges move as the
//! requests, the job and the vault say they should; a metrics token is enforced.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_backup::types::BackupJobState;

use crate::harness::*;

const EFS: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-metered";

/// The samples of a scrape: `name{labels}` as written, to its value.
pub(crate) fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

async fn scrape(server: &Server, headers: &[(&str, &str)]) -> (u16, String, HashMap<String, f64>) {
    let (status, head, body) = server.raw("GET", "/metrics", headers, b"").await;
    let s = samples(&body);
    (status, head, s)
}

pub(crate) fn value(s: &HashMap<String, f64>, key: &str) -> f64 {
    s.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_move_with_requests_jobs_and_vaults() {
    let dir = temp_dir();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.bin"), vec![7u8; 100_000]).unwrap();
    let cfg = dir.path().join("coffer.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[credentials]]\naccess_key_id = \"{AKID}\"\nsecret_access_key = \"{SECRET}\"\naccount_id = \"{ACCOUNT}\"\n\n[[resources]]\narn = \"{EFS}\"\nsource = \"{}\"\n",
            src.display()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ])
    .await;

    let (status, head, before) = scrape(&server, &[]).await;
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    assert_eq!(value(&before, "coffer_store_up"), 1.0);
    let started = r#"coffer_api_requests_total{operation="StartBackupJob",status="200"}"#;
    let job_done =
        r#"coffer_jobs{account="111122223333",region="us-east-1",kind="backup",state="COMPLETED"}"#;
    let points = r#"coffer_vault_recovery_points{account="111122223333",region="us-east-1",vault="metered"}"#;
    let bytes =
        r#"coffer_vault_size_bytes{account="111122223333",region="us-east-1",vault="metered"}"#;
    assert_eq!(value(&before, started), 0.0);
    assert_eq!(value(&before, job_done), 0.0);

    let c = server.client();
    c.create_backup_vault()
        .backup_vault_name("metered")
        .send()
        .await
        .unwrap();
    let job = c
        .start_backup_job()
        .backup_vault_name("metered")
        .resource_arn(EFS)
        .iam_role_arn("arn:aws:iam::111122223333:role/backup")
        .send()
        .await
        .unwrap()
        .backup_job_id
        .unwrap();
    let mut describes = 0;
    for i in 0.. {
        let j = c
            .describe_backup_job()
            .backup_job_id(&job)
            .send()
            .await
            .unwrap();
        describes += 1;
        if j.state() == Some(&BackupJobState::Completed) {
            break;
        }
        assert!(i < 300, "the backup did not end: {j:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One refused request: counted as a sign-in failure and as an unrouted 403.
    let _ = c.list_backup_vaults().send().await.unwrap();
    let refused = server
        .client_as(AKID, "wrong-secret-wrong-secret-wrong-secret0", "us-east-1")
        .list_backup_vaults()
        .send()
        .await;
    assert!(refused.is_err());

    let (status, _, after) = scrape(&server, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(value(&after, started), 1.0, "{after:#?}");
    assert_eq!(
        value(
            &after,
            r#"coffer_api_requests_total{operation="DescribeBackupJob",status="200"}"#
        ),
        describes as f64
    );
    assert_eq!(
        value(
            &after,
            r#"coffer_api_request_duration_seconds_count{operation="CreateBackupVault"}"#
        ),
        1.0
    );
    assert!(
        value(
            &after,
            r#"coffer_api_request_duration_seconds_sum{operation="StartBackupJob"}"#
        ) > 0.0
    );
    assert_eq!(
        value(
            &after,
            r#"coffer_api_requests_total{operation="unrouted",status="403"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            r#"coffer_sign_in_failures_total{error="InvalidSignatureException"}"#
        ),
        1.0
    );
    assert_eq!(value(&after, job_done), 1.0, "{after:#?}");
    // What the domain reported as the job ran: its end, duration, bytes, and the store's
    // transactions.
    let ended = r#"{kind="backup",state="COMPLETED"}"#;
    assert_eq!(
        value(&after, &format!("coffer_jobs_ended_total{ended}")),
        1.0,
        "{after:#?}"
    );
    assert_eq!(
        value(&after, &format!("coffer_job_duration_seconds_count{ended}")),
        1.0
    );
    let transferred = c
        .describe_backup_job()
        .backup_job_id(&job)
        .send()
        .await
        .unwrap()
        .bytes_transferred
        .unwrap();
    assert!(transferred > 0);
    assert_eq!(
        value(
            &after,
            r#"coffer_job_transferred_bytes_total{kind="backup"}"#
        ),
        transferred as f64
    );
    for kind in ["read", "write"] {
        let n = value(
            &after,
            &format!(r#"coffer_store_transaction_duration_seconds_count{{kind="{kind}"}}"#),
        );
        assert!(n >= 1.0, "{kind}: {after:#?}");
    }
    assert_eq!(value(&after, points), 1.0);
    assert!(value(&after, bytes) >= 100_000.0, "{after:#?}");
    assert_eq!(value(&after, "coffer_notifications_pending"), 0.0);
    assert!(after.contains_key("coffer_notifications_dead_letters"));
    // Nothing secret in the text.
    let (_, _, body) = server.raw("GET", "/metrics", &[], b"").await;
    assert!(!body.contains(SECRET) && !body.contains(AKID), "{body}");

    // Deleting the point: the vault's gauge follows at the next scrape.
    let rp = c
        .describe_backup_job()
        .backup_job_id(&job)
        .send()
        .await
        .unwrap()
        .recovery_point_arn
        .unwrap();
    c.delete_recovery_point()
        .backup_vault_name("metered")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap();
    let (_, _, later) = scrape(&server, &[]).await;
    assert_eq!(value(&later, points), 0.0, "{later:#?}");
}

#[tokio::test]
async fn a_metrics_token_is_required_when_set() {
    let server = Server::start(&["--dev", "--metrics-token", "scrape-me"]).await;
    let (status, _, _) = scrape(&server, &[]).await;
    assert_eq!(status, 401);
    let (status, _, _) = scrape(&server, &[("authorization", "Bearer wrong")]).await;
    assert_eq!(status, 401);
    let (status, _, s) = scrape(&server, &[("authorization", "Bearer scrape-me")]).await;
    assert_eq!(status, 200);
    assert_eq!(value(&s, "coffer_store_up"), 1.0);
}
