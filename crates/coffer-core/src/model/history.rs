//! History retention: what is finished is forgotten after a while, in bounded batches.
//!
//! Finished jobs (backup, copy and restore jobs, and the report, scan, search and search
//! export jobs), their idempotency tokens and tags, a search's result rows, the scheduler's
//! firing claims and the notification dead letters are only history once they end: nothing refers to them any more
//! except the operator reading lists. Without pruning they grow for ever and every list that
//! filters them grows with them. AWS shows a job for 30 days (ListBackupJobs "for the last 30
//! days"), so Coffer keeps this history for a configurable number of days (30 by default,
//! `history_retention_days`), then deletes it.
//!
//! So that pruning never scans what it keeps, each thing is entered, in the same transaction
//! that finishes it, into table `history` under a key that starts with the time it finished
//! (`MICROS:TABLE:KEY`, the micros zero-padded so keys sort by time); the value lists every
//! record to delete with it (a job and its token), or every record under a key prefix (a
//! search's result rows, [`PREFIX`]). [`prune`] reads that table from its
//! beginning up to the cutoff, one batch per transaction. Records written before this table
//! existed are entered once by [`backfill`], one batch per transaction, behind a cursor kept
//! in table `history_meta` (one cursor per list of tables, so tables added later get a pass of
//! their own). Dead letters need no entry: their keys already start with the
//! (wall-clock) time they were queued, so `events::prune_dead` reads them in that order.

use chrono::{DateTime, Utc};
use coffer_store::Txn;
use serde::{Deserialize, Serialize};

use crate::model::error::Result;
use crate::model::job_index;

pub(crate) const TABLE: &str = "history";
const META: &str = "history_meta";
/// The backfill cursor of the first tables entered: the backup, copy and restore jobs and
/// the firing claims.
pub(crate) const BACKFILL_JOBS: &str = "backfill";
/// The backfill cursor of the report, scan, search and search export jobs.
pub(crate) const BACKFILL_OTHER_JOBS: &str = "backfill_other_jobs";

/// How long history is kept when the configuration does not say (AWS lists jobs of the last
/// 30 days).
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

/// At most this many history entries are removed, or records backfilled, per transaction.
pub(crate) const BATCH: usize = 500;

/// One record to delete when its history entry is due: `(table, key)`; or, when the table
/// starts with [`PREFIX`], every record of that table whose key starts with `key`.
pub(crate) type Item = (String, String);

/// Marks an [`Item`] that stands for every key under a prefix (table names never hold ':').
pub(crate) const PREFIX: &str = "prefix:";

/// The item for every record of `table` whose key starts with `prefix`.
pub(crate) fn prefix_item(table: &str, prefix: &str) -> Item {
    (format!("{PREFIX}{table}"), prefix.to_string())
}

/// Enters `items` for deletion `retention` after `finished`.
pub(crate) fn record(tx: &mut dyn Txn, finished: DateTime<Utc>, items: &[Item]) -> Result<()> {
    let Some((table, key)) = items.first() else {
        return Ok(());
    };
    let micros = finished.timestamp_micros().max(0);
    let hkey = format!("{micros:020}:{table}:{key}");
    tx.put(TABLE, &hkey, &serde_json::to_vec(items)?)?;
    Ok(())
}

/// What one prune pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// History entries that came due.
    pub entries: usize,
    /// Records deleted with them (jobs, tokens, firings, result rows).
    pub records: usize,
    /// Whether the pass stopped at an entry whose prefix holds more records than one
    /// transaction deletes (the next pass goes on with it).
    pub more: bool,
}

/// Deletes at most `limit` entries finished at or before `cutoff`, with their records, and at
/// most `limit` records under prefixes. Returns what it removed; fewer than `limit` entries,
/// and not `more`, means nothing older is left.
pub(crate) fn prune(tx: &mut dyn Txn, cutoff: DateTime<Utc>, limit: usize) -> Result<Pruned> {
    // ';' sorts right after ':', so every key of the cutoff's own microsecond is within.
    let bound = format!("{:020};", cutoff.timestamp_micros().max(0));
    let mut done = Pruned::default();
    let mut budget = limit;
    for (hkey, value) in tx.scan(TABLE, "", None, limit)? {
        // Keys sort by time: the first one after the cutoff ends the pass.
        if hkey.as_str() > bound.as_str() {
            break;
        }
        let items: Vec<Item> = serde_json::from_slice(&value)?;
        for (table, key) in &items {
            if let Some(table) = table.strip_prefix(PREFIX) {
                let rows = tx.scan(table, key, None, budget + 1)?;
                for (k, _) in rows.iter().take(budget) {
                    tx.delete(table, k)?;
                    done.records += 1;
                }
                if rows.len() > budget {
                    // More than this transaction may delete: the entry stays for the next.
                    done.more = true;
                }
                budget -= rows.len().min(budget);
                continue;
            }
            job_index::unindex(tx, table, key)?;
            if tx.delete(table, key)? {
                done.records += 1;
            }
        }
        if done.more {
            break;
        }
        tx.delete(TABLE, &hkey)?;
        done.entries += 1;
    }
    Ok(done)
}

/// Where the backfill of records written before the history table stands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Backfill {
    /// Index into the list of tables being backfilled.
    table: usize,
    /// The last key read in it.
    after: Option<String>,
    done: bool,
}

/// The scheduler's firing claims (see `background::scheduler`): key
/// `ACCOUNT:REGION:PLANID:RULEID:SCHEDULED-TIME`.
pub(crate) const FIRINGS: &str = "sched_firing";

/// How the backfill enters one existing record of a table: `(tx, table, key, value)`.
pub(crate) type Enter<'a> = &'a dyn Fn(&mut dyn Txn, &str, &str, &[u8]) -> Result<()>;

/// Enters up to `limit` records of `tables` (read in that order) that were finished before
/// the history table existed, each through `enter`, behind the cursor named `cursor`;
/// returns whether the backfill is complete.
/// Cheap once complete (one read).
pub(crate) fn backfill(
    tx: &mut dyn Txn,
    cursor: &str,
    tables: &[&str],
    limit: usize,
    enter: Enter,
) -> Result<bool> {
    let mut state: Backfill = match tx.get(META, cursor)? {
        Some(v) => serde_json::from_slice(&v)?,
        None => Backfill::default(),
    };
    if state.done {
        return Ok(true);
    }
    if let Some(&table) = tables.get(state.table) {
        let rows = tx.scan(table, "", state.after.as_deref(), limit)?;
        for (key, value) in &rows {
            enter(tx, table, key, value)?;
        }
        match rows.last() {
            Some((last, _)) if rows.len() == limit => state.after = Some(last.clone()),
            _ => {
                state.table += 1;
                state.after = None;
            }
        }
    }
    state.done = state.table >= tables.len();
    tx.put(META, cursor, &serde_json::to_vec(&state)?)?;
    Ok(state.done)
}

/// The time a firing claim was made.
#[derive(Deserialize)]
struct FiringTime {
    scheduled: DateTime<Utc>,
}

/// Enters an existing firing claim by its scheduled time (a claim still holding the
/// placeholder of an unfinished firing has none, and is left to be entered when it fires).
pub(crate) fn enter_firing(tx: &mut dyn Txn, key: &str, value: &[u8]) -> Result<()> {
    if let Ok(f) = serde_json::from_slice::<FiringTime>(value) {
        record(tx, f.scheduled, &[(FIRINGS.to_string(), key.to_string())])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::jobs::{JobKind, JobRecord, JobState, TOKENS, save_job};
    use chrono::{Duration, TimeZone};
    use coffer_store::StoreHandle;

    fn job(id: &str, token: Option<&str>, at: DateTime<Utc>) -> JobRecord {
        let mut j = JobRecord::new(
            JobKind::Backup,
            "111122223333",
            "us-east-1",
            at,
            "arn:r".into(),
            "EFS".into(),
        );
        j.id = id.to_string();
        j.idempotency_token = token.map(str::to_string);
        j
    }

    fn tables() -> [&'static str; 2] {
        [JobKind::Backup.table(), FIRINGS]
    }

    fn enter(tx: &mut dyn Txn, table: &str, key: &str, value: &[u8]) -> Result<()> {
        if table == FIRINGS {
            enter_firing(tx, key, value)
        } else {
            crate::model::jobs::enter_finished(tx, value)
        }
    }

    fn store() -> (tempfile::TempDir, StoreHandle) {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_finished_job_and_its_token_go_after_the_cutoff_and_not_before() {
        let (_dir, store) = store();
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        store
            .write(move |tx| -> Result<()> {
                for (i, at) in [t0, t0 + Duration::days(10)].into_iter().enumerate() {
                    let mut j = job(&format!("j{i}"), Some(&format!("tok{i}")), at);
                    crate::model::jobs::enqueue(tx, &j)?;
                    j.state = JobState::Running;
                    save_job(tx, &j)?;
                    j.state = JobState::Completed;
                    j.completion_date = Some(at + Duration::hours(1));
                    save_job(tx, &j)?;
                    // Saving a finished job again does not enter it twice.
                    save_job(tx, &j)?;
                }
                // A job still running is never entered.
                let mut r = job("running", None, t0);
                crate::model::jobs::enqueue(tx, &r)?;
                r.state = JobState::Running;
                save_job(tx, &r)?;
                Ok(())
            })
            .await
            .unwrap();
        let count = |store: StoreHandle, table: &'static str| async move {
            store
                .read(move |tx| -> Result<usize> { Ok(tx.scan(table, "", None, 100)?.len()) })
                .await
                .unwrap()
        };
        assert_eq!(count(store.clone(), TABLE).await, 2);
        // One second before the first job's end: nothing is due.
        let early = t0 + Duration::hours(1) - Duration::seconds(1);
        let p = store.write(move |tx| prune(tx, early, 10)).await.unwrap();
        assert_eq!(p, Pruned::default());
        // At its end: the first job and its token go; the second stays.
        let cut = t0 + Duration::hours(1);
        let p = store.write(move |tx| prune(tx, cut, 10)).await.unwrap();
        assert_eq!(
            p,
            Pruned {
                entries: 1,
                records: 2,
                more: false
            }
        );
        assert_eq!(count(store.clone(), JobKind::Backup.table()).await, 2);
        assert_eq!(count(store.clone(), TOKENS).await, 1);
        // Batches are bounded: a limit of 1 removes one entry even when more are due.
        let late = t0 + Duration::days(100);
        let p = store.write(move |tx| prune(tx, late, 1)).await.unwrap();
        assert_eq!(p.entries, 1);
        assert_eq!(
            count(store.clone(), JobKind::Backup.table()).await,
            1,
            "the running job stays"
        );
        assert_eq!(count(store.clone(), TABLE).await, 0);
    }

    #[tokio::test]
    async fn rows_under_a_prefix_go_with_their_entry_a_bounded_number_per_pass() {
        let (_dir, store) = store();
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        store
            .write(move |tx| -> Result<()> {
                tx.put("search_job", "a:r:s1", b"{}")?;
                for i in 0..5 {
                    tx.put("search_result", &format!("a:r:s1:{i:012}"), b"{}")?;
                }
                // Another job's rows, and a key that only starts like the prefix's table.
                tx.put("search_result", "a:r:s10:000000000000", b"{}")?;
                tx.put("search_result", "a:r:s2:000000000000", b"{}")?;
                record(
                    tx,
                    t0,
                    &[
                        ("search_job".into(), "a:r:s1".into()),
                        prefix_item("search_result", "a:r:s1:"),
                    ],
                )
            })
            .await
            .unwrap();
        let cut = t0 + Duration::days(1);
        let mut passes = Vec::new();
        loop {
            let p = store.write(move |tx| prune(tx, cut, 2)).await.unwrap();
            passes.push(p);
            if p.entries < 2 && !p.more {
                break;
            }
            assert!(passes.len() < 10, "the prune does not end");
        }
        assert_eq!(
            passes,
            [
                Pruned {
                    entries: 0,
                    records: 3,
                    more: true
                },
                Pruned {
                    entries: 0,
                    records: 2,
                    more: true
                },
                Pruned {
                    entries: 1,
                    records: 1,
                    more: false
                },
            ],
            "the job and 2 rows, then 2 rows, then the last row and the entry"
        );
        let left = store
            .read(|tx| -> Result<Vec<String>> {
                let mut keys: Vec<String> = tx
                    .scan("search_result", "", None, 100)?
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect();
                keys.extend(
                    tx.scan("search_job", "", None, 100)?
                        .into_iter()
                        .map(|(k, _)| k),
                );
                keys.extend(tx.scan(TABLE, "", None, 100)?.into_iter().map(|(k, _)| k));
                Ok(keys)
            })
            .await
            .unwrap();
        assert_eq!(left, ["a:r:s10:000000000000", "a:r:s2:000000000000"]);
    }

    #[tokio::test]
    async fn the_backfill_enters_finished_records_written_before_the_table_in_batches() {
        let (_dir, store) = store();
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        store
            .write(move |tx| -> Result<()> {
                for i in 0..5 {
                    let mut j = job(&format!("old{i}"), None, t0);
                    j.state = if i == 4 { JobState::Running } else { JobState::Completed };
                    j.completion_date = (i != 4).then_some(t0);
                    // Written as an older Coffer did: no history entry.
                    tx.put(JobKind::Backup.table(), &j.key(), &serde_json::to_vec(&j)?)?;
                }
                tx.put(FIRINGS, "a:r:p:rule:2026-01-01T05:00:00Z", br#"{"scheduled":"2026-01-01T05:00:00Z","fired_at":"2026-01-01T05:00:00Z","backup_job_ids":[]}"#)?;
                Ok(())
            })
            .await
            .unwrap();
        let mut passes = 0;
        while !store
            .write(|tx| backfill(tx, BACKFILL_JOBS, &tables(), 2, &enter))
            .await
            .unwrap()
        {
            passes += 1;
            assert!(passes < 20, "the backfill does not end");
        }
        assert!(passes >= 3, "batches of 2 over 5 jobs take several passes");
        let cut = t0 + Duration::days(1);
        let p = store.write(move |tx| prune(tx, cut, 100)).await.unwrap();
        assert_eq!(
            p,
            Pruned {
                entries: 5,
                records: 5,
                more: false
            },
            "4 finished jobs and the firing"
        );
        let left = store
            .read(|tx| -> Result<usize> {
                Ok(tx.scan(JobKind::Backup.table(), "", None, 100)?.len())
            })
            .await
            .unwrap();
        assert_eq!(left, 1, "the running job stays");
        // Once complete, the backfill does nothing more.
        assert!(
            store
                .write(|tx| backfill(tx, BACKFILL_JOBS, &tables(), 2, &enter))
                .await
                .unwrap()
        );
    }
}
