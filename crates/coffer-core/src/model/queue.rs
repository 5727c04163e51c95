//! The job queue: one entry for every job that has not ended, in table `job_queue`.
//!
//! An entry's key is `ACCOUNT:CREATED:KIND:REGION:ID` (`CREATED` in zero-padded microseconds),
//! so one account's entries sit together in creation order and the runner can read the head
//! of each account's queue without reading the others': that is what lets it share the slots
//! fairly between accounts (see `background::runner`). Entries written before this layout
//! (`KIND:ACCOUNT:REGION:ID`) are rewritten by `jobs::migrate_legacy_queue` on the runner's
//! passes.

use coffer_store::Txn;

use chrono::{DateTime, Utc};

use crate::model::error::Result;
use crate::model::states::JobKind;

pub(crate) const QUEUE: &str = "job_queue";

/// The key of a job in its kind's table: account and region first, so a scan by prefix lists
/// one scope.
pub(crate) fn job_key(account: &str, region: &str, id: &str) -> String {
    format!("{account}:{region}:{id}")
}

/// The queue key of a job (see `JobRecord::queue_key`).
pub(crate) fn key(
    account: &str,
    created: DateTime<Utc>,
    kind: JobKind,
    region: &str,
    id: &str,
) -> String {
    format!(
        "{account}:{:020}:{}:{region}:{id}",
        created.timestamp_micros().max(0),
        kind.tag()
    )
}

/// What a queue key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub kind: JobKind,
    /// The job's key in its kind's table.
    pub job_key: String,
}

/// Reads a queue key; `None` for one that names no job (it is removed).
pub(crate) fn parse(key: &str) -> Option<Entry> {
    let mut parts = key.splitn(5, ':');
    let (account, _created, tag, region, id) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    Some(Entry {
        kind: JobKind::from_tag(tag)?,
        job_key: job_key(account, region, id),
    })
}

/// The first key after every entry of `account`.
fn after_account(account: &str) -> String {
    format!("{account};")
}

/// The accounts with queued jobs, in key order, at most `max`.
pub(crate) fn accounts(tx: &mut dyn Txn, max: usize) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    while out.len() < max {
        let after = out.last().map(|a| after_account(a));
        let Some((k, _)) = tx.scan(QUEUE, "", after.as_deref(), 1)?.pop() else {
            break;
        };
        let account = k.split(':').next().unwrap_or_default().to_string();
        out.push(account);
    }
    Ok(out)
}

/// The first `n` entries of `account`'s queue (oldest first), with their keys.
pub(crate) fn head(tx: &mut dyn Txn, account: &str, n: usize) -> Result<Vec<(String, Entry)>> {
    let mut out = Vec::new();
    for (k, _) in tx.scan(QUEUE, &format!("{account}:"), None, n)? {
        match parse(&k) {
            Some(e) => out.push((k, e)),
            None => {
                tx.delete(QUEUE, &k)?;
            }
        }
    }
    Ok(out)
}
