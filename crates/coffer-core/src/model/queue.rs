//! The job queue: one entry for every job that has not ended, in table `job_queue`.
//!
//! An entry's key is `ACCOUNT:CREATED:KIND:REGION:ID` (`CREATED` in zero-padded microseconds),
//! so one account's entries sit together in creation order and the runner can read the head
//! of each account's queue without reading the others': that is what lets it share the slots
//! fairly between accounts (see `background::runner`). Entries written before this layout
//! (`KIND:ACCOUNT:REGION:ID`) are rewritten by [`migrate_legacy`] on the runner's passes.

use coffer_store::Txn;

use crate::model::error::Result;
use crate::model::jobs::{JobKind, JobRecord, job_key, load_job};

pub(crate) const QUEUE: &str = "job_queue";

/// The queue key of `job`.
pub(crate) fn key(job: &JobRecord) -> String {
    format!(
        "{}:{:020}:{}:{}:{}",
        job.account,
        job.creation_date.timestamp_micros().max(0),
        job.kind.tag(),
        job.region,
        job.id
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

/// Rewrites up to `max` entries of the earlier layout `KIND:ACCOUNT:REGION:ID`; returns how
/// many it found.
pub(crate) fn migrate_legacy(tx: &mut dyn Txn, max: usize) -> Result<usize> {
    let mut found = 0;
    for kind in [JobKind::Backup, JobKind::Copy, JobKind::Restore] {
        let prefix = format!("{}:", kind.tag());
        for (k, _) in tx.scan(QUEUE, &prefix, None, max)? {
            found += 1;
            tx.delete(QUEUE, &k)?;
            if let Some(job) = load_job(tx, kind, &k[prefix.len()..])?
                && !job.is_terminal()
            {
                tx.put(QUEUE, &key(&job), b"")?;
            }
        }
    }
    Ok(found)
}
