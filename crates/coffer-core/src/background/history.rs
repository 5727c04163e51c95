//! The history pruner: deletes finished jobs (with their index entries), their idempotency
//! tokens, report, scan and search jobs (with a search's result rows), plan firings, restore
//! testing run claims and
//! notification dead letters once they are older than the
//! configured retention (`model::history`), in bounded batches, one transaction each, so a
//! large backlog never holds the store's writer for long. It runs as its own worker every
//! minute (its first pass at start), and once at the end of a development-clock time travel.
//! Its first pass also indexes the jobs of a store written before the job indexes
//! (`model::job_index`), the same way.

use async_trait::async_trait;
use chrono::{Duration, Utc};

use crate::background::worker::Worker;
use crate::dataplane::Executor;
use crate::model::error::Result;
use crate::model::history::{self, BATCH, FIRINGS, Pruned};
use crate::model::{events, job_index, jobs, reports, restore_testing, scans, search};
use coffer_store::Txn;

/// The pruner as a [`Worker`].
pub(crate) struct HistoryWorker {
    pub plane: Executor,
}

#[async_trait]
impl Worker for HistoryWorker {
    fn name(&self) -> &'static str {
        "history pruner"
    }

    fn period(&self) -> std::time::Duration {
        std::time::Duration::from_secs(60)
    }

    async fn tick(&self) -> std::result::Result<(), String> {
        prune_history(&self.plane)
            .await
            .map(|_| ())
            .map_err(|e| coffer_api::error_chain(&e.0))
    }
}

/// The tables whose records written before the history table are entered once.
const BACKFILLED: [&str; 4] = ["backup_job", "copy_job", "restore_job", FIRINGS];

/// The tables entered once by a later backfill of their own (they were pruned from a later
/// version on; the restore testing run claims are entered by their scheduled time).
const BACKFILLED_LATER: [&str; 5] = [
    reports::JOBS,
    scans::TABLE,
    search::JOBS,
    search::EXPORTS,
    restore_testing::RUNS,
];

/// Enters one record of [`BACKFILLED`] or [`BACKFILLED_LATER`] that was written before the
/// history table (or before its table was pruned).
fn enter_existing(tx: &mut dyn Txn, table: &str, key: &str, value: &[u8]) -> Result<()> {
    match table {
        FIRINGS => history::enter_firing(tx, key, value),
        reports::JOBS => reports::enter_finished(tx, value),
        scans::TABLE => scans::enter_finished(tx, value),
        search::JOBS => search::enter_finished_job(tx, value),
        search::EXPORTS => search::enter_finished_export(tx, value),
        restore_testing::RUNS => restore_testing::enter_run(tx, key),
        _ => jobs::enter_finished(tx, value),
    }
}

/// Indexes the jobs a store written before the job indexes holds (once per store, in
/// batches of [`BATCH`], one transaction each; `model::job_index`). It runs before any
/// pruning, so a pruned job always takes its entries with it. Cheap once done (one read).
async fn index_existing_jobs(plane: &Executor) -> Result<()> {
    let store = plane.store();
    let mut batches = 0usize;
    while !store.write(|tx| job_index::backfill(tx, BATCH)).await? {
        batches += 1;
        tokio::task::yield_now().await;
    }
    if batches > 0 {
        tracing::info!(batches, "indexed the jobs written before the job indexes");
    }
    Ok(())
}

/// What a whole pruning pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PrunePass {
    pub history: Pruned,
    pub dead_letters: usize,
}

/// Enters any records older than the history table (once per store), then deletes
/// everything finished longer ago than the retention: jobs, tokens and firings by Coffer's
/// clock, dead letters by the wall clock they were queued on.
pub(crate) async fn prune_history(plane: &Executor) -> Result<PrunePass> {
    let store = plane.store();
    index_existing_jobs(plane).await?;
    for (cursor, tables) in [
        (history::BACKFILL_JOBS, &BACKFILLED[..]),
        (history::BACKFILL_OTHER_JOBS, &BACKFILLED_LATER[..]),
    ] {
        while !store
            .write(move |tx| history::backfill(tx, cursor, tables, BATCH, &enter_existing))
            .await?
        {
            tokio::task::yield_now().await;
        }
    }
    let days = Duration::days(i64::from(plane.history_retention_days()));
    let mut pass = PrunePass::default();
    let cutoff = plane.clock().now() - days;
    loop {
        let batch = store
            .write(move |tx| history::prune(tx, cutoff, BATCH))
            .await?;
        pass.history.entries += batch.entries;
        pass.history.records += batch.records;
        if batch.entries < BATCH && !batch.more {
            break;
        }
        tokio::task::yield_now().await;
    }
    let wall_cutoff = Utc::now() - days;
    loop {
        let n = store
            .write(move |tx| -> Result<usize> { Ok(events::prune_dead(tx, wall_cutoff, BATCH)?) })
            .await?;
        pass.dead_letters += n;
        if n < BATCH {
            break;
        }
        tokio::task::yield_now().await;
    }
    if pass != PrunePass::default() {
        tracing::info!(
            history_entries = pass.history.entries,
            records = pass.history.records,
            dead_letters = pass.dead_letters,
            retention_days = days.num_days(),
            "pruned finished history"
        );
    }
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::jobs::JobKind;

    #[tokio::test]
    async fn older_restore_testing_run_claims_are_entered_by_their_time_and_pruned() {
        use chrono::TimeZone;
        let dir = tempfile::tempdir().unwrap();
        let store =
            coffer_store::StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        let old = "111122223333:us-east-1:nightly:2026-01-01T05:00:00Z";
        let newer = "111122223333:us-east-1:nightly:2026-02-01T05:00:00Z";
        store
            .write(move |tx| -> Result<()> {
                // Written as an older Coffer did: no history entry.
                tx.put(restore_testing::RUNS, old, b"[]")?;
                tx.put(restore_testing::RUNS, newer, b"[]")?;
                Ok(())
            })
            .await
            .unwrap();
        while !store
            .write(|tx| {
                history::backfill(
                    tx,
                    history::BACKFILL_OTHER_JOBS,
                    &BACKFILLED_LATER,
                    BATCH,
                    &enter_existing,
                )
            })
            .await
            .unwrap()
        {}
        let cut = Utc.with_ymd_and_hms(2026, 1, 15, 0, 0, 0).unwrap();
        let p = store
            .write(move |tx| history::prune(tx, cut, BATCH))
            .await
            .unwrap();
        assert_eq!((p.entries, p.records), (1, 1));
        let left: Vec<String> = store
            .read(|tx| -> Result<Vec<String>> {
                Ok(tx
                    .scan(restore_testing::RUNS, "", None, 10)?
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect())
            })
            .await
            .unwrap();
        assert_eq!(left, [newer]);
    }

    #[test]
    fn the_backfill_reads_every_job_table() {
        for kind in [JobKind::Backup, JobKind::Copy, JobKind::Restore] {
            assert!(
                BACKFILLED.contains(&kind.table()),
                "{} missing",
                kind.table()
            );
        }
    }
}
