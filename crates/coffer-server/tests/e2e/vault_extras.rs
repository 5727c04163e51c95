//! What hangs off a vault: its access policy, its notification subscription and its lock
//! (governance and compliance mode, the latter with the development clock moved past the
//! lock date), and their removal with the vault.

use aws_sdk_backup::error::ProvideErrorMetadata;
use aws_sdk_backup::types::BackupVaultEvent;

use crate::harness::*;

const CROSS_ACCOUNT_POLICY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "AllowCopyFromProduction",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
      "Action": "backup:CopyIntoBackupVault",
      "Resource": "*"
    }
  ]
}"#;

async fn vault(c: &aws_sdk_backup::Client, name: &str) -> String {
    c.create_backup_vault()
        .backup_vault_name(name)
        .send()
        .await
        .unwrap()
        .backup_vault_arn()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn access_policy_put_get_delete() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    let arn = vault(&c, "shared").await;

    let err = c
        .get_backup_vault_access_policy()
        .backup_vault_name("shared")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    c.put_backup_vault_access_policy()
        .backup_vault_name("shared")
        .policy(CROSS_ACCOUNT_POLICY)
        .send()
        .await
        .unwrap();
    let got = c
        .get_backup_vault_access_policy()
        .backup_vault_name("shared")
        .send()
        .await
        .unwrap();
    assert_eq!(got.backup_vault_name(), Some("shared"));
    assert_eq!(got.backup_vault_arn(), Some(arn.as_str()));
    // Exactly as sent, whitespace included.
    assert_eq!(got.policy(), Some(CROSS_ACCOUNT_POLICY));

    // A second put replaces the first.
    let deny_all = r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Principal":"*","Action":"backup:DeleteRecoveryPoint","Resource":"*"}}"#;
    c.put_backup_vault_access_policy()
        .backup_vault_name("shared")
        .policy(deny_all)
        .send()
        .await
        .unwrap();
    let got = c
        .get_backup_vault_access_policy()
        .backup_vault_name("shared")
        .send()
        .await
        .unwrap();
    assert_eq!(got.policy(), Some(deny_all));

    c.delete_backup_vault_access_policy()
        .backup_vault_name("shared")
        .send()
        .await
        .unwrap();
    let err = c
        .get_backup_vault_access_policy()
        .backup_vault_name("shared")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    // Deleting what is not there is fine; a vault that is not there is not.
    c.delete_backup_vault_access_policy()
        .backup_vault_name("shared")
        .send()
        .await
        .unwrap();
    let err = c
        .put_backup_vault_access_policy()
        .backup_vault_name("missing")
        .policy(CROSS_ACCOUNT_POLICY)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
}

#[tokio::test]
async fn invalid_policies_are_refused_and_nothing_is_stored() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    vault(&c, "strict").await;
    for (doc, says) in [
        ("{not json", "not valid JSON"),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
            "no Version",
        ),
        (r#"{"Version":"2012-10-17","Statement":[]}"#, "empty"),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}"#,
            "Effect",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
            "Action",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Principal":{"Robot":"x"}}]}"#,
            "principal type",
        ),
    ] {
        let err = c
            .put_backup_vault_access_policy()
            .backup_vault_name("strict")
            .policy(doc)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidParameterValueException"), "{doc}");
        assert!(
            err.message().unwrap().contains(says),
            "{doc}: {:?}",
            err.message()
        );
    }
    let err = c
        .get_backup_vault_access_policy()
        .backup_vault_name("strict")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
}

#[tokio::test]
async fn notifications_put_get_delete() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    let arn = vault(&c, "watched").await;
    let topic = "arn:aws:sns:us-east-1:111122223333:backup-events";

    let err = c
        .get_backup_vault_notifications()
        .backup_vault_name("watched")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    c.put_backup_vault_notifications()
        .backup_vault_name("watched")
        .sns_topic_arn(topic)
        .backup_vault_events(BackupVaultEvent::BackupJobCompleted)
        .backup_vault_events(BackupVaultEvent::BackupJobFailed)
        .backup_vault_events(BackupVaultEvent::RestoreJobCompleted)
        .send()
        .await
        .unwrap();
    let got = c
        .get_backup_vault_notifications()
        .backup_vault_name("watched")
        .send()
        .await
        .unwrap();
    assert_eq!(got.backup_vault_name(), Some("watched"));
    assert_eq!(got.backup_vault_arn(), Some(arn.as_str()));
    assert_eq!(got.sns_topic_arn(), Some(topic));
    assert_eq!(
        got.backup_vault_events(),
        [
            BackupVaultEvent::BackupJobCompleted,
            BackupVaultEvent::BackupJobFailed,
            BackupVaultEvent::RestoreJobCompleted
        ]
    );

    // A put replaces the whole subscription.
    let other = "arn:aws:sns:us-east-1:111122223333:copies";
    c.put_backup_vault_notifications()
        .backup_vault_name("watched")
        .sns_topic_arn(other)
        .backup_vault_events(BackupVaultEvent::CopyJobFailed)
        .send()
        .await
        .unwrap();
    let got = c
        .get_backup_vault_notifications()
        .backup_vault_name("watched")
        .send()
        .await
        .unwrap();
    assert_eq!(got.sns_topic_arn(), Some(other));
    assert_eq!(got.backup_vault_events(), [BackupVaultEvent::CopyJobFailed]);

    c.delete_backup_vault_notifications()
        .backup_vault_name("watched")
        .send()
        .await
        .unwrap();
    let err = c
        .get_backup_vault_notifications()
        .backup_vault_name("watched")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
}

#[tokio::test]
async fn notifications_refuse_bad_topics_and_events() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    vault(&c, "watched").await;
    for topic in [
        "backup-events",
        "arn:aws:sqs:us-east-1:111122223333:queue",
        "arn:aws:sns:us-east-1:42:topic",
        "arn:aws:sns:us-east-1:111122223333:",
    ] {
        let err = c
            .put_backup_vault_notifications()
            .backup_vault_name("watched")
            .sns_topic_arn(topic)
            .backup_vault_events(BackupVaultEvent::BackupJobCompleted)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some("InvalidParameterValueException"),
            "{topic}"
        );
        assert!(err.message().unwrap().contains("SNSTopicArn"), "{topic}");
    }
    let topic = "arn:aws:sns:us-east-1:111122223333:backup-events";
    let err = c
        .put_backup_vault_notifications()
        .backup_vault_name("watched")
        .sns_topic_arn(topic)
        .backup_vault_events(BackupVaultEvent::from("BACKUP_JOB_EXPLODED"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValueException"));
    assert!(err.message().unwrap().contains("BackupVaultEvents"));
    let err = c
        .put_backup_vault_notifications()
        .backup_vault_name("watched")
        .sns_topic_arn(topic)
        .set_backup_vault_events(Some(Vec::new()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValueException"));
    // Nothing was stored by the refused calls.
    let err = c
        .get_backup_vault_notifications()
        .backup_vault_name("watched")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
}

#[tokio::test]
async fn governance_lock_can_be_changed_and_removed() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    vault(&c, "governed").await;

    c.put_backup_vault_lock_configuration()
        .backup_vault_name("governed")
        .min_retention_days(7)
        .max_retention_days(365)
        .send()
        .await
        .unwrap();
    let d = c
        .describe_backup_vault()
        .backup_vault_name("governed")
        .send()
        .await
        .unwrap();
    assert_eq!(d.locked(), Some(true));
    assert_eq!(d.min_retention_days(), Some(7));
    assert_eq!(d.max_retention_days(), Some(365));
    assert_eq!(d.lock_date(), None);

    // Changed: the new bounds replace the old ones.
    c.put_backup_vault_lock_configuration()
        .backup_vault_name("governed")
        .min_retention_days(30)
        .send()
        .await
        .unwrap();
    let listed = c.list_backup_vaults().send().await.unwrap();
    let v = &listed.backup_vault_list()[0];
    assert_eq!(v.locked(), Some(true));
    assert_eq!(v.min_retention_days(), Some(30));
    assert_eq!(v.max_retention_days(), None);

    // Invalid configurations are refused and change nothing.
    for (min, max, changeable, says) in [
        (Some(0), None, None, "MinRetentionDays"),
        (None, Some(36_501), None, "MaxRetentionDays"),
        (Some(10), Some(5), None, "MaxRetentionDays"),
        (Some(1), None, Some(2), "ChangeableForDays"),
    ] {
        let err = c
            .put_backup_vault_lock_configuration()
            .backup_vault_name("governed")
            .set_min_retention_days(min)
            .set_max_retention_days(max)
            .set_changeable_for_days(changeable)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidParameterValueException"), "{says}");
        assert!(err.message().unwrap().contains(says), "{:?}", err.message());
    }
    let d = c
        .describe_backup_vault()
        .backup_vault_name("governed")
        .send()
        .await
        .unwrap();
    assert_eq!(d.min_retention_days(), Some(30));

    c.delete_backup_vault_lock_configuration()
        .backup_vault_name("governed")
        .send()
        .await
        .unwrap();
    let d = c
        .describe_backup_vault()
        .backup_vault_name("governed")
        .send()
        .await
        .unwrap();
    assert_eq!(d.locked(), Some(false));
    assert_eq!(d.min_retention_days(), None);

    let err = c
        .put_backup_vault_lock_configuration()
        .backup_vault_name("missing")
        .min_retention_days(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
}

#[tokio::test]
async fn compliance_lock_becomes_immutable_at_its_lock_date() {
    let server = Server::start(&["--dev"]).await;
    let c = server.client_as("111122223333", "dev", "us-east-1");
    vault(&c, "compliant").await;

    // Inside the cooling-off period the lock can still be changed and removed.
    c.put_backup_vault_lock_configuration()
        .backup_vault_name("compliant")
        .min_retention_days(1)
        .max_retention_days(30)
        .changeable_for_days(3)
        .send()
        .await
        .unwrap();
    c.delete_backup_vault_lock_configuration()
        .backup_vault_name("compliant")
        .send()
        .await
        .unwrap();

    let (_, _, body) = server.raw("GET", "/_coffer/clock", &[], b"").await;
    let before: serde_json::Value = serde_json::from_str(&body).unwrap();
    c.put_backup_vault_lock_configuration()
        .backup_vault_name("compliant")
        .min_retention_days(7)
        .max_retention_days(90)
        .changeable_for_days(5)
        .send()
        .await
        .unwrap();
    let d = c
        .describe_backup_vault()
        .backup_vault_name("compliant")
        .send()
        .await
        .unwrap();
    let lock_date = d
        .lock_date()
        .expect("a compliance lock has a lock date")
        .secs();
    let now = chrono::DateTime::parse_from_rfc3339(before["now"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert!(
        (lock_date - (now + 5 * 86_400)).abs() < 60,
        "lock date {lock_date} is not now ({now}) + 5 days"
    );
    c.put_backup_vault_lock_configuration()
        .backup_vault_name("compliant")
        .min_retention_days(7)
        .max_retention_days(90)
        .changeable_for_days(5)
        .send()
        .await
        .unwrap();
    let lock_date = c
        .describe_backup_vault()
        .backup_vault_name("compliant")
        .send()
        .await
        .unwrap()
        .lock_date()
        .unwrap()
        .secs();

    // Move Coffer's clock past the lock date.
    let (status, _, body) = server
        .raw(
            "POST",
            "/_coffer/clock",
            &[("content-type", "application/json")],
            format!("{{\"advance_seconds\": {}}}", 6 * 86_400).as_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let err = c
        .put_backup_vault_lock_configuration()
        .backup_vault_name("compliant")
        .min_retention_days(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert!(
        err.message().unwrap().contains("compliance mode"),
        "{:?}",
        err.message()
    );
    let err = c
        .delete_backup_vault_lock_configuration()
        .backup_vault_name("compliant")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));

    let d = c
        .describe_backup_vault()
        .backup_vault_name("compliant")
        .send()
        .await
        .unwrap();
    assert_eq!(d.locked(), Some(true));
    assert_eq!(d.lock_date().unwrap().secs(), lock_date);
    assert_eq!(d.min_retention_days(), Some(7));
    assert_eq!(d.max_retention_days(), Some(90));

    // An empty vault can still be deleted.
    c.delete_backup_vault()
        .backup_vault_name("compliant")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn deleting_a_vault_removes_its_policy_and_notifications() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    vault(&c, "ephemeral").await;
    c.put_backup_vault_access_policy()
        .backup_vault_name("ephemeral")
        .policy(CROSS_ACCOUNT_POLICY)
        .send()
        .await
        .unwrap();
    c.put_backup_vault_notifications()
        .backup_vault_name("ephemeral")
        .sns_topic_arn("arn:aws:sns:us-east-1:111122223333:t")
        .backup_vault_events(BackupVaultEvent::BackupJobStarted)
        .send()
        .await
        .unwrap();
    c.delete_backup_vault()
        .backup_vault_name("ephemeral")
        .send()
        .await
        .unwrap();
    // A new vault of the same name starts without them.
    vault(&c, "ephemeral").await;
    let err = c
        .get_backup_vault_access_policy()
        .backup_vault_name("ephemeral")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    let err = c
        .get_backup_vault_notifications()
        .backup_vault_name("ephemeral")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
}
