//! Vault notifications: which events of a vault are published to which SNS topic.
//!
//! One subscription per vault (table `vault_notifications`, keyed like the vault): an SNS
//! topic ARN and the set of `BackupVaultEvent`s, stored and returned as given (duplicates
//! dropped, order kept). Delivery belongs to the notification outbox; it finds a vault's
//! subscription with [`subscription`].

use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext};

use crate::model::error::Result;
use crate::model::vault_notifications::*;
use crate::model::{Meta, arn};

/// Checks `arn:PARTITION:sns:REGION:ACCOUNT:NAME`; the error says what is wrong.
fn check_topic_arn(topic: &str) -> Result<(), String> {
    let bad = |why: &str| {
        format!(
            "SNSTopicArn '{topic}' is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC): {why}."
        )
    };
    let Some(a) = arn::parse(topic) else {
        return Err(bad("it does not have the six parts of an ARN"));
    };
    if !matches!(a.partition, "aws" | "aws-cn" | "aws-us-gov") {
        return Err(bad("unknown partition"));
    }
    if a.service != "sns" {
        return Err(bad("the service is not sns"));
    }
    let region_ok = !a.region.is_empty()
        && a.region.split('-').all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && a.region.contains('-');
    if !region_ok {
        return Err(bad("the region is missing or malformed"));
    }
    if a.account.len() != 12 || !a.account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the account must be 12 digits"));
    }
    let name = a.resource;
    let name_ok = !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !name_ok {
        return Err(bad(
            "the topic name must be 1 to 256 letters, digits, hyphens, underscores or dots",
        ));
    }
    Ok(())
}

pub(crate) async fn put(
    meta: &Meta,
    ctx: &RequestContext,
    input: PutBackupVaultNotificationsInput,
) -> Result<()> {
    check_topic_arn(&input.sns_topic_arn).map_err(ApiError::invalid_parameter)?;
    if input.backup_vault_events.is_empty() {
        return Err(ApiError::invalid_parameter(
            "BackupVaultEvents is empty; name at least one event (e.g. BACKUP_JOB_COMPLETED).",
        )
        .into());
    }
    let mut events: Vec<BackupVaultEvent> = Vec::new();
    for e in input.backup_vault_events {
        if !events.contains(&e) {
            events.push(e);
        }
    }
    let record = VaultSubscription {
        sns_topic_arn: input.sns_topic_arn,
        events,
        updated: meta.clock().now(),
    };
    SUBSCRIPTION
        .put(meta, ctx, input.backup_vault_name, record)
        .await
}

pub(crate) async fn describe(
    meta: &Meta,
    ctx: &RequestContext,
    input: GetBackupVaultNotificationsInput,
) -> Result<GetBackupVaultNotificationsOutput> {
    SUBSCRIPTION
        .describe(
            meta,
            ctx,
            input.backup_vault_name,
            |v, s: VaultSubscription| GetBackupVaultNotificationsOutput {
                backup_vault_arn: Some(v.arn),
                backup_vault_events: Some(s.events),
                backup_vault_name: Some(v.name),
                sns_topic_arn: Some(s.sns_topic_arn),
            },
        )
        .await
}

pub(crate) async fn delete(
    meta: &Meta,
    ctx: &RequestContext,
    input: DeleteBackupVaultNotificationsInput,
) -> Result<()> {
    SUBSCRIPTION
        .delete(meta, ctx, input.backup_vault_name)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_arns_are_checked() {
        assert!(check_topic_arn("arn:aws:sns:us-east-1:111122223333:backup-events").is_ok());
        assert!(check_topic_arn("arn:aws:sns:eu-west-1:111122223333:t.fifo").is_ok());
        for (bad, why) in [
            ("topic", "six parts"),
            ("arn:aws:sqs:us-east-1:111122223333:q", "service"),
            ("arn:aws:sns::111122223333:t", "region"),
            ("arn:aws:sns:us-east-1:1234:t", "12 digits"),
            ("arn:aws:sns:us-east-1:111122223333:", "topic name"),
            ("arn:aws:sns:us-east-1:111122223333:a/b", "topic name"),
            ("arn:foo:sns:us-east-1:111122223333:t", "partition"),
        ] {
            let e = check_topic_arn(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}

#[cfg(test)]
mod lookup_tests {
    use super::*;
    use crate::Clock;
    use crate::model::vaults;
    use coffer_store::StoreError;
    use coffer_store::StoreHandle;

    #[tokio::test(flavor = "multi_thread")]
    async fn subscription_and_policy_are_found_by_vault_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("meta.db").to_str().unwrap()).unwrap();
        let meta = crate::model::Meta::new(store, Clock::movable());
        let ctx = RequestContext::new("111122223333", "us-east-1");
        crate::control::vaults::create(
            &meta,
            &ctx,
            CreateBackupVaultInput {
                backup_vault_name: "v".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        put(
            &meta,
            &ctx,
            PutBackupVaultNotificationsInput {
                backup_vault_events: vec![
                    BackupVaultEvent::BackupJobFailed,
                    BackupVaultEvent::BackupJobFailed,
                    BackupVaultEvent::CopyJobFailed,
                ],
                backup_vault_name: "v".into(),
                sns_topic_arn: "arn:aws:sns:us-east-1:111122223333:t".into(),
            },
        )
        .await
        .unwrap();
        let policy = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":"backup:CopyIntoBackupVault","Resource":"*"}}"#;
        crate::control::vault_policy::put(
            &meta,
            &ctx,
            PutBackupVaultAccessPolicyInput {
                backup_vault_name: "v".into(),
                policy: Some(policy.into()),
            },
        )
        .await
        .unwrap();
        let k = vaults::key("111122223333", "us-east-1", "v");
        let (s, p) = meta
            .store()
            .read(move |tx| -> Result<_, StoreError> {
                Ok((
                    subscription(tx, &k)?,
                    crate::model::vault_policy::get(tx, &k)?,
                ))
            })
            .await
            .unwrap();
        let s = s.unwrap();
        assert_eq!(
            s.events,
            [
                BackupVaultEvent::BackupJobFailed,
                BackupVaultEvent::CopyJobFailed
            ]
        );
        assert!(
            s.wants(&BackupVaultEvent::CopyJobFailed)
                && !s.wants(&BackupVaultEvent::BackupJobCompleted)
        );
        let p = p.unwrap();
        assert!(crate::model::vault_policy::copy_allowed(
            &p,
            "arn:aws:backup:us-east-1:111122223333:backup-vault:v",
            "444455556666"
        ));
    }
}
