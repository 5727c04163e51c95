//! Queued removals of deleted recovery points' snapshots, with retries that back off and a
//! final state an operator can see.
//!
//! Deleting a recovery point removes its record at once and queues the removal of its
//! snapshot from the vault's repository, in the same transaction; the job runner carries the
//! removals out (`dataplane::deletions`). A removal can fail (a vault whose storage is gone
//! or damaged), so the queue is ordered by when each removal is due, not by what it removes:
//!
//! - table `rp_deletion_queue`, key `DUE:RP_KEY` (`DUE` in zero-padded microseconds of the
//!   Coffer clock; a new removal is due at once, `DUE` = 0). A pass reads the head of the
//!   queue up to the first entry not yet due, so removals waiting out their backoff sit
//!   behind every due one and never hold it up, and no pass reads more than it carries out;
//! - a failed attempt moves the entry to its next due time: one minute after the first
//!   failure, doubling to at most an hour (`clock::backoff`);
//! - after [`MAX_ATTEMPTS`] failures the removal leaves the queue for table `deletion_failed`
//!   (key `RP_KEY`) with its last error, is logged at ERROR and listed by the admin endpoint
//!   `GET /_coffer/deletions` (docs/jobs.md). The snapshot stays in the repository until an
//!   operator mends the vault and retries it.
//!
//! Removals queued before this layout (table `rp_deletion`, key `RP_KEY`) are moved into the
//! queue, a bounded batch per pass.

use chrono::{DateTime, Utc};
use coffer_engine::SnapshotRef;
use coffer_store::{StoreError, Txn};
use serde::{Deserialize, Serialize};

use crate::model::clock::backoff;
use crate::model::error::Result;

/// Removals waiting to be carried out, keyed by due time.
pub(crate) const QUEUE: &str = "rp_deletion_queue";
/// Removals that failed [`MAX_ATTEMPTS`] times.
pub(crate) const FAILED: &str = "deletion_failed";
/// Removals queued before the due-time queue (moved into it by [`due`]).
const LEGACY: &str = "rp_deletion";

/// Attempts at one removal before it is given up and kept in [`FAILED`].
pub(crate) const MAX_ATTEMPTS: u32 = 10;
/// How many legacy removals one pass moves into the queue.
const LEGACY_BATCH: usize = 64;

/// A pending removal of a snapshot from a vault repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Deletion {
    pub account: String,
    pub region: String,
    pub vault_name: String,
    pub vault_uid: String,
    pub snapshot: SnapshotRef,
    /// The deleted recovery point's key (`ACCOUNT:REGION:VAULT:ID`).
    #[serde(default)]
    pub rp_key: String,
    /// The storage tier whose repository holds the snapshot; `None`: the vault's own.
    #[serde(default)]
    pub tier: Option<crate::model::states::Tier>,
    /// Failed attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Why the last attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the next attempt is due (Coffer clock); `None` means at once.
    #[serde(default)]
    pub next_attempt: Option<DateTime<Utc>>,
    /// When it was given up (in [`FAILED`] only).
    #[serde(default)]
    pub failed_at: Option<DateTime<Utc>>,
    /// A continuous point's base backup: the replication slot on the source server to drop
    /// with it, so the server stops keeping WAL for Coffer.
    #[serde(default)]
    pub release_slot: Option<SlotRelease>,
}

/// A replication slot Coffer made for a continuous backup, to drop when its point goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SlotRelease {
    /// The protected database (its connection comes from the inventory).
    pub resource_arn: String,
    pub slot: String,
}

/// The queue key of a removal due at `due` (`None`: at once).
fn queue_key(due: Option<DateTime<Utc>>, rp_key: &str) -> String {
    let micros = due.map_or(0, |d| d.timestamp_micros().max(0));
    format!("{micros:020}:{rp_key}")
}

/// When a queue key is due, in microseconds (`None` for a key of another shape).
fn due_micros(key: &str) -> Option<i64> {
    key.split_once(':')?.0.parse().ok()
}

/// Queues the removal of a deleted recovery point's snapshot, due at once.
pub(crate) fn enqueue(tx: &mut dyn Txn, d: &Deletion) -> Result<()> {
    tx.put(QUEUE, &queue_key(None, &d.rp_key), &serde_json::to_vec(d)?)?;
    Ok(())
}

/// The removals due at `now`, oldest due first, at most `limit`: the head of the queue up to
/// the first that is not due yet. Moves a batch of legacy removals into the queue first.
pub(crate) fn due(
    tx: &mut dyn Txn,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<(String, Deletion)>> {
    migrate_legacy(tx)?;
    let now_micros = now.timestamp_micros();
    let mut out = Vec::new();
    for (key, v) in tx.scan(QUEUE, "", None, limit)? {
        match due_micros(&key) {
            Some(at) if at > now_micros => break,
            Some(_) => {}
            None => {
                tracing::error!(
                    key,
                    "a removal queue entry has a malformed key; it is dropped"
                );
                tx.delete(QUEUE, &key)?;
                continue;
            }
        }
        match serde_json::from_slice::<Deletion>(&v) {
            Ok(d) => out.push((key, d)),
            Err(e) => {
                // An entry that does not decode names nothing to remove: keep it out of the
                // queue's way, but keep it (as it was) for an operator.
                tracing::error!(key, error = %e, "a queued recovery point removal cannot be read; it is set aside as failed");
                tx.delete(QUEUE, &key)?;
                let rp_key = key.split_once(':').map_or(key.as_str(), |(_, k)| k);
                tx.put(FAILED, rp_key, &v)?;
            }
        }
    }
    Ok(out)
}

fn migrate_legacy(tx: &mut dyn Txn) -> Result<()> {
    for (rp_key, v) in tx.scan(LEGACY, "", None, LEGACY_BATCH)? {
        tx.delete(LEGACY, &rp_key)?;
        let mut d: Deletion = serde_json::from_slice(&v)
            .map_err(|e| StoreError::corrupt(format!("recovery point removal {rp_key}"), e))?;
        d.rp_key = rp_key;
        enqueue(tx, &d)?;
    }
    Ok(())
}

/// The removal under `key` was carried out: it leaves the queue.
pub(crate) fn done(tx: &mut dyn Txn, key: &str) -> Result<()> {
    tx.delete(QUEUE, key)?;
    Ok(())
}

/// What became of a removal after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Queued again, due at this time.
    RetryAt(DateTime<Utc>),
    /// Given up after this many attempts: kept in [`FAILED`].
    GaveUp(u32),
    /// The entry was no longer queued (carried out or given up by another node).
    Gone,
}

/// Records a failed attempt at the removal under `key` at `now`: queued again after its
/// backoff, or after [`MAX_ATTEMPTS`] moved to [`FAILED`] with `error`.
pub(crate) fn failed(
    tx: &mut dyn Txn,
    key: &str,
    now: DateTime<Utc>,
    error: &str,
) -> Result<AfterFailure> {
    let Some(v) = tx.get(QUEUE, key)? else {
        return Ok(AfterFailure::Gone);
    };
    let mut d: Deletion = serde_json::from_slice(&v)?;
    tx.delete(QUEUE, key)?;
    d.attempts += 1;
    d.last_error = Some(error.to_string());
    if d.attempts >= MAX_ATTEMPTS {
        d.next_attempt = None;
        d.failed_at = Some(now);
        tx.put(FAILED, &d.rp_key, &serde_json::to_vec(&d)?)?;
        return Ok(AfterFailure::GaveUp(d.attempts));
    }
    let at = now + backoff(d.attempts);
    d.next_attempt = Some(at);
    tx.put(
        QUEUE,
        &queue_key(Some(at), &d.rp_key),
        &serde_json::to_vec(&d)?,
    )?;
    Ok(AfterFailure::RetryAt(at))
}

/// Removals in the queue (oldest due first) and given up, at most `limit` of each.
pub(crate) fn list(tx: &mut dyn Txn, limit: usize) -> Result<(Vec<Deletion>, Vec<Deletion>)> {
    let decode = |rows: Vec<(String, Vec<u8>)>| -> Result<Vec<Deletion>> {
        rows.into_iter()
            .map(|(_, v)| Ok(serde_json::from_slice(&v)?))
            .collect()
    };
    let pending = decode(tx.scan(QUEUE, "", None, limit)?)?;
    let failed = decode(tx.scan(FAILED, "", None, limit)?)?;
    Ok((pending, failed))
}

/// One queued or given-up removal, as an operator sees it (`GET /_coffer/deletions`).
#[derive(Debug, Clone, Serialize)]
pub struct RemovalStatus {
    pub account: String,
    pub region: String,
    pub vault_name: String,
    /// The deleted recovery point's id.
    pub recovery_point_id: String,
    /// The snapshot still in the vault's repository.
    pub snapshot: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
}

impl From<Deletion> for RemovalStatus {
    fn from(d: Deletion) -> Self {
        RemovalStatus {
            recovery_point_id: d.rp_key.rsplit(':').next().unwrap_or_default().to_string(),
            account: d.account,
            region: d.region,
            vault_name: d.vault_name,
            snapshot: d.snapshot.0,
            attempts: d.attempts,
            last_error: d.last_error,
            next_attempt: d.next_attempt,
            failed_at: d.failed_at,
        }
    }
}

/// The removals an operator looks at: those waiting (oldest due first) and those given up,
/// at most `limit` of each before filtering by `account` (all accounts when `None`).
pub(crate) fn report(
    tx: &mut dyn Txn,
    account: Option<&str>,
    limit: usize,
) -> Result<(Vec<RemovalStatus>, Vec<RemovalStatus>)> {
    let (pending, failed) = list(tx, limit)?;
    let keep = |d: &Deletion| account.is_none_or(|a| d.account == a);
    let status = |v: Vec<Deletion>| -> Vec<RemovalStatus> {
        v.into_iter()
            .filter(keep)
            .map(RemovalStatus::from)
            .collect()
    };
    Ok((status(pending), status(failed)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn queue_keys_sort_by_due_time() {
        let t = Utc::now();
        let now = queue_key(None, "b");
        let soon = queue_key(Some(t), "a");
        let later = queue_key(Some(t + Duration::minutes(1)), "0");
        assert!(now < soon && soon < later);
        assert_eq!(due_micros(&soon), Some(t.timestamp_micros()));
        assert_eq!(due_micros(&now), Some(0));
    }
}
