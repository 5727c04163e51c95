//! Building and removing recovery point indexes (the records are `model::indexes`).
//!
//! Each runner pass looks for PENDING indexes and builds each one in its own task: the
//! recovery point's snapshot tree is read from the vault (`VaultRepo::catalog`, no file content
//! is read) and the catalogue written in bounded batches, each in its own transaction, then the
//! index is made ACTIVE with its item count, or FAILED with the reason. An index left PENDING by
//! a crash is simply built again at the next pass after the restart (the rows are keyed by
//! path, so writing them again is harmless). DELETING indexes (disabled, or their recovery
//! point deleted) lose their rows in batches, then their record.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use coffer_engine::CancelToken;

use crate::dataplane::{Executor, tiers};
use crate::model::error::Result;
use crate::model::indexes::{self, IndexRecord, Status};
use crate::model::{recovery_points, vaults};

/// Catalogue rows written per transaction.
const BATCH: usize = 500;

/// The indexes being built by this process (by record key), so a pass never starts a second
/// build of one.
fn building() -> &'static Mutex<HashSet<String>> {
    static B: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    B.get_or_init(Default::default)
}

/// Starts a build of every PENDING index not being built, and removes DELETING ones.
pub(crate) async fn process_indexes(plane: &Executor) -> Result<()> {
    let (pending, deleting): (Vec<_>, Vec<_>) = plane
        .store()
        .read(indexes::work)
        .await?
        .into_iter()
        .partition(|r| r.status == Status::Pending);
    for rec in deleting {
        remove(plane, &rec).await?;
    }
    for rec in pending {
        let fresh = building()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(rec.key());
        if fresh {
            let plane = plane.clone();
            tokio::spawn(async move {
                let key = rec.key();
                if let Err(e) = build(&plane, &rec).await {
                    tracing::warn!(index = %key, error = %coffer_api::error_chain(&e.0), "building a recovery point index failed; will retry");
                }
                building()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
            });
        }
    }
    Ok(())
}

/// Removes a DELETING index's catalogue in batches, then its record.
async fn remove(plane: &Executor, rec: &IndexRecord) -> Result<()> {
    let prefix = indexes::catalog_prefix(&rec.account, &rec.region, &rec.rp_id);
    loop {
        let p = prefix.clone();
        let n = plane
            .store()
            .write(move |tx| indexes::delete_rows(tx, &p, BATCH))
            .await?;
        if n == 0 {
            break;
        }
    }
    let key = rec.key();
    plane
        .store()
        .write(move |tx| -> Result<()> {
            if let Some(v) = tx.get(indexes::TABLE, &key)? {
                let r: IndexRecord = serde_json::from_slice(&v)?;
                if r.status == Status::Deleting {
                    indexes::forget(tx, &key)?;
                }
            }
            Ok(())
        })
        .await
}

/// Builds one index: reads the catalogue from the vault, writes it, ends ACTIVE or FAILED.
/// A store failure is returned (the index stays PENDING and the next pass tries again).
async fn build(plane: &Executor, rec: &IndexRecord) -> Result<()> {
    let (a, r, arn) = (rec.account.clone(), rec.region.clone(), rec.rp_arn.clone());
    let rp = plane
        .store()
        .read(move |tx| recovery_points::find(tx, &a, &r, &arn))
        .await;
    let rp = match rp {
        Ok(rp) => rp,
        // The point is gone: its deletion marks the index DELETING.
        Err(e) if e.is_client_error() => return Ok(()),
        Err(e) => return Err(e),
    };
    let Some(vault) = vaults::find(plane, &rec.account, &rec.region, &rp.vault_name).await? else {
        return Ok(());
    };
    let repo = tiers::repo_holding(plane, &vault, &rp).await?;
    let entries = match repo
        .catalog_async(rp.snapshot.clone(), CancelToken::new())
        .await
    {
        Ok(e) => e,
        Err(e) => {
            let message = format!(
                "The recovery point's files could not be read: {}",
                e.status_message()
            );
            return end(plane, rec, Err(message)).await;
        }
    };
    let key = rec.key();
    for chunk in entries.chunks(BATCH) {
        let (k, rows) = (key.clone(), chunk.to_vec());
        let still = plane
            .store()
            .write(move |tx| indexes::put_rows(tx, &k, &rows))
            .await?;
        if !still {
            return Ok(());
        }
    }
    end(plane, rec, Ok(entries.len() as i64)).await
}

/// Ends a PENDING index ACTIVE with its count, or FAILED with a message (its rows removed).
async fn end(
    plane: &Executor,
    rec: &IndexRecord,
    outcome: std::result::Result<i64, String>,
) -> Result<()> {
    let now = plane.clock().now();
    let key = rec.key();
    let failed = outcome.is_err();
    plane
        .store()
        .write(move |tx| -> Result<()> {
            let Some(v) = tx.get(indexes::TABLE, &key)? else {
                return Ok(());
            };
            let mut r: IndexRecord = serde_json::from_slice(&v)?;
            if r.status != Status::Pending {
                return Ok(());
            }
            match outcome {
                Ok(n) => {
                    r.status = Status::Active;
                    r.total_items = Some(n);
                }
                Err(m) => {
                    r.status = Status::Failed;
                    r.message = Some(m);
                }
            }
            r.completion_date = Some(now);
            indexes::save(tx, &r)
        })
        .await?;
    if failed {
        let prefix = indexes::catalog_prefix(&rec.account, &rec.region, &rec.rp_id);
        loop {
            let p = prefix.clone();
            if plane
                .store()
                .write(move |tx| indexes::delete_rows(tx, &p, BATCH))
                .await?
                == 0
            {
                break;
            }
        }
    }
    Ok(())
}
