//! Backup vaults end to end: create, describe, list with pagination, delete, idempotency,
//! durability across a crash.

use aws_sdk_backup::types::VaultType;

use crate::harness::*;

#[tokio::test]
async fn create_describe_list_delete() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();

    let created = c
        .create_backup_vault()
        .backup_vault_name("Prod_vault-1")
        .backup_vault_tags("team", "web")
        .creator_request_id("req-1")
        .send()
        .await
        .unwrap();
    assert_eq!(created.backup_vault_name(), Some("Prod_vault-1"));
    let created_at = created.creation_date().unwrap().secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - created_at).abs() < 60,
        "creation date {created_at} vs now {now}"
    );

    let d = c
        .describe_backup_vault()
        .backup_vault_name("Prod_vault-1")
        .send()
        .await
        .unwrap();
    assert_eq!(d.backup_vault_arn(), created.backup_vault_arn());
    assert_eq!(d.creator_request_id(), Some("req-1"));
    assert_eq!(d.number_of_recovery_points(), 0);
    assert_eq!(d.vault_type(), Some(&VaultType::BackupVault));
    assert_eq!(d.locked(), Some(false));
    assert_eq!(
        d.encryption_key_arn(),
        Some("arn:aws:kms:us-east-1:111122223333:alias/aws/backup")
    );
    assert_eq!(d.creation_date().unwrap().secs(), created_at);

    // Same CreatorRequestId: the SDK's retry of the same call succeeds with the same vault.
    let again = c
        .create_backup_vault()
        .backup_vault_name("Prod_vault-1")
        .creator_request_id("req-1")
        .send()
        .await
        .unwrap();
    assert_eq!(again.creation_date().unwrap().secs(), created_at);

    // Names are case-sensitive.
    c.create_backup_vault()
        .backup_vault_name("prod_vault-1")
        .send()
        .await
        .unwrap();

    c.delete_backup_vault()
        .backup_vault_name("Prod_vault-1")
        .send()
        .await
        .unwrap();
    let err = c
        .describe_backup_vault()
        .backup_vault_name("Prod_vault-1")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );
    let names: Vec<_> = c
        .list_backup_vaults()
        .send()
        .await
        .unwrap()
        .backup_vault_list()
        .iter()
        .map(|v| v.backup_vault_name().unwrap().to_string())
        .collect();
    assert_eq!(names, ["prod_vault-1"]);
}

#[tokio::test]
async fn pagination_returns_every_vault_once() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    let mut expected = Vec::new();
    for i in 0..7 {
        let name = format!("vault-{i:02}");
        c.create_backup_vault()
            .backup_vault_name(&name)
            .send()
            .await
            .unwrap();
        expected.push(name);
    }
    let first = c.list_backup_vaults().max_results(3).send().await.unwrap();
    assert_eq!(first.backup_vault_list().len(), 3);
    assert!(first.next_token().is_some());

    let mut seen = Vec::new();
    let mut pages = 0;
    let mut stream = c
        .list_backup_vaults()
        .max_results(3)
        .into_paginator()
        .send();
    while let Some(page) = stream.next().await {
        let page = page.unwrap();
        pages += 1;
        seen.extend(
            page.backup_vault_list()
                .iter()
                .map(|v| v.backup_vault_name().unwrap().to_string()),
        );
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn state_survives_a_crash_and_restart() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    server
        .client()
        .create_backup_vault()
        .backup_vault_name("durable")
        .backup_vault_tags("k", "v")
        .send()
        .await
        .unwrap();
    // SIGKILL right after the answer: what the client was told must already be committed.
    server.kill().await;

    let server = Server::with_credential(dir.path()).await;
    let d = server
        .client()
        .describe_backup_vault()
        .backup_vault_name("durable")
        .send()
        .await
        .unwrap();
    assert_eq!(d.backup_vault_name(), Some("durable"));
}
