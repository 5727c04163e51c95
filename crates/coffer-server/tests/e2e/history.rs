//! History retention end to end: a finished job, and the idempotency token that made it, are
//! forgotten once they are older than the retention (30 days by default, as AWS lists jobs of
//! the last 30 days), while a newer job stays; the same token then starts a new job.

use aws_sdk_backup::Client;
use aws_sdk_backup::types::BackupJobState;

use crate::harness::*;

const ROLE: &str = "arn:aws:iam::111122223333:role/backup";
const DOCS_ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-docs";
const DAY: i64 = 86_400;

/// Starts a backup with `token` and waits for it to complete; returns its id.
async fn backup(c: &Client, token: &str) -> String {
    let id = c
        .start_backup_job()
        .backup_vault_name("main")
        .resource_arn(DOCS_ARN)
        .iam_role_arn(ROLE)
        .idempotency_token(token)
        .send()
        .await
        .unwrap()
        .backup_job_id()
        .unwrap()
        .to_string();
    let state = wait_until(&format!("backup job {id} to complete"), 120, || async {
        let j = c
            .describe_backup_job()
            .backup_job_id(&id)
            .send()
            .await
            .unwrap();
        match j.state() {
            Some(BackupJobState::Completed) => Some(BackupJobState::Completed),
            Some(
                s @ (BackupJobState::Failed | BackupJobState::Aborted | BackupJobState::Expired),
            ) => Some(s.clone()),
            _ => None,
        }
    })
    .await;
    assert_eq!(state, BackupJobState::Completed);
    id
}

async fn listed(c: &Client) -> Vec<String> {
    let page = c.list_backup_jobs().send().await.unwrap();
    assert!(page.next_token().is_none());
    let mut ids: Vec<String> = page
        .backup_jobs()
        .iter()
        .map(|j| j.backup_job_id().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn finished_jobs_and_their_tokens_are_forgotten_after_the_retention() {
    let dir = temp_dir();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("a.txt"), b"hello\n").unwrap();
    let cfg = dir.path().join("coffer.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[resources]]\narn = \"{DOCS_ARN}\"\nsource = \"{}\"\n",
            docs.display()
        ),
    )
    .unwrap();
    let server = Server::start(&[
        "--dev",
        "--account-id",
        ACCOUNT,
        "--config",
        cfg.to_str().unwrap(),
    ])
    .await;
    let c = server.client();
    c.create_backup_vault()
        .backup_vault_name("main")
        .send()
        .await
        .unwrap();

    let old = backup(&c, "token-old").await;
    server.advance_clock(20 * DAY).await;
    let new = backup(&c, "token-new").await;
    let mut both = vec![old.clone(), new.clone()];
    both.sort();
    assert_eq!(listed(&c).await, both, "20 days on, both jobs are listed");

    // 31 days after the first job: it is gone, the one 11 days old stays.
    server.advance_clock(11 * DAY).await;
    assert_eq!(listed(&c).await, vec![new.clone()]);
    let err = c
        .describe_backup_job()
        .backup_job_id(&old)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    c.describe_backup_job()
        .backup_job_id(&new)
        .send()
        .await
        .unwrap();

    // The old token was forgotten with its job: it starts a new job; the newer token still
    // answers with its own job.
    let again = backup(&c, "token-old").await;
    assert_ne!(again, old);
    let same = c
        .start_backup_job()
        .backup_vault_name("main")
        .resource_arn(DOCS_ARN)
        .iam_role_arn(ROLE)
        .idempotency_token("token-new")
        .send()
        .await
        .unwrap();
    assert_eq!(same.backup_job_id(), Some(new.as_str()));
    // The recovery points are not history: the first backup's point is still there.
    let points = c
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("main")
        .send()
        .await
        .unwrap();
    assert_eq!(points.recovery_points().len(), 3);
}

#[tokio::test]
async fn a_zero_day_retention_is_refused_by_config_check() {
    let dir = temp_dir();
    let cfg = dir.path().join("coffer.toml");
    std::fs::write(&cfg, "history_retention_days = 0\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["config", "check", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("history_retention_days must be at least 1"),
        "{text}"
    );
}
