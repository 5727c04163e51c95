//! Carrying out queued recovery point deletions: the snapshot of a deleted recovery point is
//! removed from its vault's repository (the record went in the deleting transaction).
//!
//! A removal that fails is tried again after a backoff on the Coffer clock and given up after
//! `model::deletions::MAX_ATTEMPTS` attempts (kept, with its last error, for an operator); a
//! removal waiting out its backoff never holds up the others (see `model::deletions`).

use coffer_api::error_chain;

use crate::dataplane::{Executor, pitr, storage, tiers};
use crate::model::deletions::{self, AfterFailure, Deletion};
use crate::model::error::{Error, Result};
use crate::model::vaults;

/// How many due removals one pass carries out at most.
const PER_PASS: usize = 16;

/// Carries out the removals that are due; returns how many were done. One that fails is
/// queued again for later (or given up) and never stops the others, nor the runner's claims.
pub(crate) async fn process_deletions(plane: &Executor) -> Result<usize> {
    let now = plane.clock().now();
    let due = plane
        .store()
        .write(move |tx| deletions::due(tx, now, PER_PASS))
        .await?;
    let mut done = 0;
    for (key, d) in due {
        match carry_out(plane, &d).await {
            Ok(()) => {
                plane
                    .store()
                    .write(move |tx| deletions::done(tx, &key))
                    .await?;
                done += 1;
            }
            Err(e) => record_failure(plane, key, &d, &e).await?,
        }
    }
    Ok(done)
}

/// Records a failed attempt: the removal is queued again after its backoff, or given up.
async fn record_failure(plane: &Executor, key: String, d: &Deletion, e: &Error) -> Result<()> {
    let now = plane.clock().now();
    let message = e.operator_message();
    let m = message.clone();
    let after = plane
        .store()
        .write(move |tx| deletions::failed(tx, &key, now, &m))
        .await?;
    let chain = error_chain(&e.0);
    match after {
        AfterFailure::RetryAt(at) => tracing::warn!(
            vault = %d.vault_name, recovery_point = %d.rp_key, attempt = d.attempts + 1,
            next_attempt = %at, error = %chain,
            "removing a deleted recovery point's data failed; will retry"
        ),
        AfterFailure::GaveUp(attempts) => tracing::error!(
            vault = %d.vault_name, recovery_point = %d.rp_key, attempts, error = %chain,
            "removing a deleted recovery point's data failed {attempts} times; giving up \
             (listed by GET /_coffer/deletions; its data stays in the vault's repository)"
        ),
        AfterFailure::Gone => {}
    }
    Ok(())
}

/// Removes one deleted recovery point's snapshot, then drops the replication slot a
/// continuous point kept on its database server.
async fn carry_out(plane: &Executor, d: &Deletion) -> Result<()> {
    remove_data(plane, d).await?;
    if let Some(release) = &d.release_slot {
        pitr::release_slot(plane, &release.resource_arn, &release.slot).await?;
    }
    Ok(())
}

/// Removes one deleted recovery point's snapshot. A vault that is gone (or was deleted and
/// created again) has nothing left to remove.
async fn remove_data(plane: &Executor, d: &Deletion) -> Result<()> {
    // A store failure is an error (the removal is tried again), never "vault gone".
    let vault = vaults::find(plane, &d.account, &d.region, &d.vault_name)
        .await?
        .filter(|v| v.uid == d.vault_uid);
    let Some(vault) = vault else {
        return Ok(());
    };
    // The repository of the tier that holds the snapshot (none recorded: nothing to remove).
    let repo = match d.tier {
        None if vault.repo.is_none() => return Ok(()),
        None => storage::repo_for(plane, &vault, None).await?,
        Some(tier) => match tiers::recorded_tier_repo(plane, &vault, tier).await? {
            Some(r) => r,
            None => return Ok(()),
        },
    };
    match storage::remove_snapshot(plane, &repo, d.snapshot.clone()).await {
        Ok(_) | Err(coffer_engine::Error::RecoveryPointNotFound(_)) => Ok(()),
        // Logged by `record_failure`, with the attempt and what happens next.
        Err(e) => Err(coffer_api::ApiError::unavailable_because(e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Meta;
    use crate::model::clock::Clock;
    use crate::model::clock::backoff;
    use crate::model::deletions::{FAILED, MAX_ATTEMPTS, QUEUE};
    use crate::model::vaults::VaultRecord;
    use chrono::{DateTime, Duration, Utc};
    use coffer_engine::{CancelToken, SnapshotRef, SourceSpec};
    use coffer_store::StoreHandle;

    const ACCOUNT: &str = "111122223333";
    const REGION: &str = "us-east-1";

    /// A vault whose repository exists (created through the data plane).
    async fn vault(plane: &Executor, name: &str) -> VaultRecord {
        let record = VaultRecord {
            account: ACCOUNT.into(),
            region: REGION.into(),
            name: name.into(),
            arn: format!("arn:aws:backup:{REGION}:{ACCOUNT}:backup-vault:{name}"),
            creation_date: chrono::Utc::now(),
            creator_request_id: None,
            encryption_key_arn: format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/aws/backup"),
            encryption_key_type: "AWS_OWNED_KMS_KEY".into(),
            recovery_points: 0,
            uid: format!("{name}-uid"),
            repo: None,
            lock: None,
            air_gapped: false,
            mpa: Default::default(),
        };
        let saved = record.clone();
        plane
            .store()
            .write(move |tx| vaults::save(tx, &saved))
            .await
            .unwrap();
        storage::repo_for(plane, &record, None).await.unwrap();
        vaults::get(plane, ACCOUNT, REGION, name).await.unwrap()
    }

    /// Queues the removal of `snapshot` from `vault`, as deleting its recovery point does.
    async fn queue_removal(plane: &Executor, vault: &VaultRecord, id: &str, snapshot: &str) {
        let d = Deletion {
            account: ACCOUNT.into(),
            region: REGION.into(),
            vault_name: vault.name.clone(),
            vault_uid: vault.uid.clone(),
            snapshot: SnapshotRef(snapshot.into()),
            rp_key: format!("{ACCOUNT}:{REGION}:{}:{id}", vault.name),
            tier: None,
            attempts: 0,
            last_error: None,
            next_attempt: None,
            failed_at: None,
            release_slot: None,
        };
        plane
            .store()
            .write(move |tx| deletions::enqueue(tx, &d))
            .await
            .unwrap();
    }

    async fn queued_and_failed(plane: &Executor) -> (Vec<Deletion>, Vec<Deletion>) {
        plane
            .store()
            .read(|tx| deletions::list(tx, 100))
            .await
            .unwrap()
    }

    /// Passes until every removal of the broken vault has failed `attempts` times (or ten
    /// passes went by); returns the Coffer clock before and after.
    async fn fail_all(plane: &Executor, attempts: u32) -> (DateTime<Utc>, DateTime<Utc>) {
        let before = plane.clock().now();
        for _ in 0..10 {
            process_deletions(plane).await.unwrap();
            let (q, f) = queued_and_failed(plane).await;
            if q.iter().chain(f.iter()).all(|d| d.attempts >= attempts) {
                return (before, plane.clock().now());
            }
        }
        panic!("the removals did not reach {attempts} attempts in ten passes");
    }

    /// Twenty removals from a vault whose repository is broken (its directory replaced by a
    /// file) sit at the head of the queue; a healthy vault's removal queued after them is
    /// carried out all the same (each pass moves the failing ones it tried behind it). The
    /// broken ones are tried again only once their backoff on the Coffer clock has passed
    /// (1 minute, then 2, 4, ... at most an hour), and after the tenth failure they leave the
    /// queue for `deletion_failed` with their last error.
    #[tokio::test(flavor = "multi_thread")]
    async fn failing_removals_back_off_never_block_the_others_and_end_failed() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        let clock = Clock::movable();
        let plane = Executor::new(
            Meta::new(store, clock.clone()),
            Default::default(),
            Some(storage::VaultStorage::open(dir.path()).unwrap()),
        );
        let broken = vault(&plane, "broken").await;
        let healthy = vault(&plane, "healthy").await;

        // A real recovery point in the healthy vault.
        let source = dir.path().join("source");
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("f"), b"data").unwrap();
        let repo = storage::repo_for(&plane, &healthy, None).await.unwrap();
        let outcome = repo
            .backup_async(
                SourceSpec::Directory(source),
                "rp-healthy".into(),
                None,
                vec![],
                |_: &coffer_engine::Progress| {},
                CancelToken::new(),
            )
            .await
            .unwrap();

        // Break the other vault's repository: its directory becomes a file.
        let broken_dir = dir.path().join("vaults").join(&broken.uid);
        std::fs::remove_dir_all(&broken_dir).unwrap();
        std::fs::write(&broken_dir, b"not a repository").unwrap();
        for i in 0..20 {
            queue_removal(&plane, &broken, &format!("rp-{i:02}"), &"ab".repeat(32)).await;
        }
        queue_removal(&plane, &healthy, "rp-healthy", &outcome.snapshot.0).await;

        let (before, after) = fail_all(&plane, 1).await;
        let left = repo.list_snapshots_async().await.unwrap();
        assert!(
            left.is_empty(),
            "the healthy vault's snapshot is removed: {left:?}"
        );
        let (queued, failed) = queued_and_failed(&plane).await;
        assert_eq!(queued.len(), 20, "only the broken vault's removals wait");
        assert!(failed.is_empty());
        for d in &queued {
            assert_eq!(d.attempts, 1, "{d:?}");
            let next = d.next_attempt.unwrap();
            assert!(
                next >= before + backoff(1) && next <= after + backoff(1),
                "{d:?}"
            );
            let error = d.last_error.as_deref().unwrap_or_default();
            assert_eq!(
                error,
                format!("vault not found: {}", broken_dir.display()),
                "the last error names the cause"
            );
        }

        for attempt in 1..MAX_ATTEMPTS {
            // Not due before its backoff has passed: a pass leaves them alone.
            clock
                .advance(backoff(attempt) - Duration::seconds(30))
                .unwrap();
            process_deletions(&plane).await.unwrap();
            let (queued, _) = queued_and_failed(&plane).await;
            assert!(
                queued.iter().all(|d| d.attempts == attempt),
                "retried early"
            );

            clock.advance(Duration::seconds(30)).unwrap();
            let (before, after) = fail_all(&plane, attempt + 1).await;
            let (queued, failed) = queued_and_failed(&plane).await;
            if attempt + 1 < MAX_ATTEMPTS {
                assert!(failed.is_empty(), "given up after {} attempts", attempt + 1);
                assert_eq!(queued.len(), 20);
                let wait = backoff(attempt + 1);
                for d in &queued {
                    assert_eq!(d.attempts, attempt + 1);
                    let next = d.next_attempt.unwrap();
                    assert!(next >= before + wait && next <= after + wait, "{d:?}");
                }
            } else {
                // The tenth failure: all twenty end in deletion_failed, with their last error.
                assert!(queued.is_empty());
                assert_eq!(failed.len(), 20);
                for d in &failed {
                    assert_eq!(d.attempts, MAX_ATTEMPTS);
                    let at = d.failed_at.unwrap();
                    assert!(at >= before && at <= after, "{d:?}");
                    assert!(d.last_error.is_some());
                }
            }
        }
        let rows = plane
            .store()
            .read(|tx| {
                Ok::<_, Error>((
                    tx.scan(QUEUE, "", None, 10)?,
                    tx.scan(FAILED, "", None, 100)?,
                ))
            })
            .await
            .unwrap();
        assert!(rows.0.is_empty());
        assert_eq!(rows.1.len(), 20);
    }

    /// A removal queued before the due-time queue (table `rp_deletion`) is moved into it and
    /// carried out.
    #[tokio::test(flavor = "multi_thread")]
    async fn removals_queued_before_the_due_time_queue_are_carried_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        let plane = Executor::new(
            Meta::new(store, Clock::movable()),
            Default::default(),
            Some(storage::VaultStorage::open(dir.path()).unwrap()),
        );
        let v = vault(&plane, "v").await;
        let legacy = serde_json::json!({
            "account": ACCOUNT, "region": REGION, "vault_name": "v",
            "vault_uid": v.uid, "snapshot": "cd".repeat(32),
        });
        plane
            .store()
            .write(move |tx| {
                tx.put(
                    "rp_deletion",
                    "111122223333:us-east-1:v:rp-1",
                    legacy.to_string().as_bytes(),
                )
            })
            .await
            .unwrap();
        assert_eq!(process_deletions(&plane).await.unwrap(), 1);
        let left = plane
            .store()
            .read(|tx| {
                Ok::<_, Error>((
                    tx.scan("rp_deletion", "", None, 10)?,
                    tx.scan(QUEUE, "", None, 10)?,
                ))
            })
            .await
            .unwrap();
        assert!(left.0.is_empty() && left.1.is_empty(), "{left:?}");
    }
}
