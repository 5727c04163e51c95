//! Building and removing recovery point indexes (the records are `model::indexes`).
//!
//! Each runner pass looks for PENDING indexes and builds each one in its own task: the
//! recovery point's snapshot tree is read from the vault (`VaultRepo::catalog_from`, no file
//! content is read), incrementally from the catalogue of the latest earlier recovery point of
//! the same resource in the same vault whose index is ACTIVE (normally the backup's parent):
//! directories whose tree is unchanged take their rows from it unread. The compact catalogue
//! (`model::catalog`) is written a part per transaction, then its directory and the index
//! ACTIVE with its item count in one, or the index FAILED with the reason. An index left
//! PENDING by a crash is simply built again at the next pass after the restart (parts are
//! keyed by number, so writing them again is harmless). DELETING indexes (disabled, or their
//! recovery point deleted) lose their catalogue in batches, then their record.
//!
//! Catalogues written by earlier versions (JSON rows, one per file) stay readable; the first
//! pass of each process also converts them to the compact form (`convert_legacy`), one
//! index at a time, a part per transaction.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use coffer_engine::{CancelToken, CatalogBase, CatalogEntry};

use crate::dataplane::{Executor, tiers};
use crate::model::catalog::{self, Directory, PART_FILES};
use crate::model::error::Result;
use crate::model::indexes::{self, IndexRecord, Status};
use crate::model::recovery_points::{self, RecoveryPointRecord};
use crate::model::vaults;

/// JSON catalogue rows (of earlier versions) read or deleted per transaction.
const BATCH: usize = 500;
/// Compact catalogue parts deleted per transaction.
const PART_BATCH: usize = 16;

/// The indexes being built by this process (by record key), so a pass never starts a second
/// build of one.
fn building() -> &'static Mutex<HashSet<String>> {
    static B: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    B.get_or_init(Default::default)
}

/// Starts a build of every PENDING index not being built, and removes DELETING ones.
pub(crate) async fn process_indexes(plane: &Executor) -> Result<()> {
    start_conversion(plane);
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

/// Removes an index's catalogue in batches: its compact parts and directory, and any JSON
/// rows of an earlier version.
async fn remove_catalogue(plane: &Executor, rec: &IndexRecord) -> Result<()> {
    let (a, r, id) = (&rec.account, &rec.region, &rec.rp_id);
    let (parts, dir) = (catalog::parts_prefix(a, r, id), catalog::key(a, r, id));
    loop {
        let (p, d) = (parts.clone(), dir.clone());
        let n = plane
            .store()
            .write(move |tx| catalog::delete_parts(tx, &p, &d, PART_BATCH))
            .await?;
        if n < PART_BATCH {
            break;
        }
    }
    remove_legacy_rows(plane, rec).await
}

/// Deletes the JSON catalogue rows an earlier version wrote for `rec`, in batches.
async fn remove_legacy_rows(plane: &Executor, rec: &IndexRecord) -> Result<()> {
    let prefix = indexes::catalog_prefix(&rec.account, &rec.region, &rec.rp_id);
    loop {
        let p = prefix.clone();
        let n = plane
            .store()
            .write(move |tx| indexes::delete_rows(tx, &p, BATCH))
            .await?;
        if n == 0 {
            return Ok(());
        }
    }
}

/// Removes a DELETING index's catalogue in batches, then its record.
async fn remove(plane: &Executor, rec: &IndexRecord) -> Result<()> {
    remove_catalogue(plane, rec).await?;
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

/// Reads a whole catalogue (compact or JSON rows) with its content hashes, a part or
/// [`BATCH`] rows per transaction.
pub(crate) async fn load_catalogue(
    plane: &Executor,
    account: &str,
    region: &str,
    rp_id: &str,
) -> Result<Vec<CatalogEntry>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (a, r, id, at) = (
            account.to_string(),
            region.to_string(),
            rp_id.to_string(),
            after.clone(),
        );
        let chunk = plane
            .store()
            .read(move |tx| {
                let all = |_: &str, _: &str| true;
                indexes::read_chunk(tx, (&a, &r, &id), at.as_deref(), &all, true, BATCH)
            })
            .await?;
        out.extend(chunk.entries);
        if chunk.done {
            return Ok(out);
        }
        after = chunk.next;
    }
}

/// The catalogue to build `rp`'s from: that of the latest earlier recovery point of the same
/// resource in the same vault whose index is ACTIVE.
async fn base_for(plane: &Executor, rp: &RecoveryPointRecord) -> Result<Option<CatalogBase>> {
    let prefix = format!("{}:{}:{}:", rp.account, rp.region, rp.vault_name);
    let (uid, arn, before, tier) = (
        rp.vault_uid.clone(),
        rp.resource_arn.clone(),
        rp.creation_date,
        rp.tier,
    );
    let base = plane
        .store()
        .read(move |tx| -> Result<Option<RecoveryPointRecord>> {
            let mut best: Option<RecoveryPointRecord> = None;
            for (_, v) in tx.scan(recovery_points::TABLE, &prefix, None, usize::MAX)? {
                let p: RecoveryPointRecord = serde_json::from_slice(&v)?;
                // The base's trees are read from the same repository: the same tier.
                let candidate = p.vault_uid == uid
                    && p.tier == tier
                    && p.resource_arn == arn
                    && p.creation_date < before
                    && best
                        .as_ref()
                        .is_none_or(|b| p.creation_date > b.creation_date)
                    && indexes::get(tx, &p.account, &p.region, &p.id)?
                        .is_some_and(|i| i.status == Status::Active);
                if candidate {
                    best = Some(p);
                }
            }
            Ok(best)
        })
        .await?;
    let Some(b) = base else { return Ok(None) };
    let entries = load_catalogue(plane, &b.account, &b.region, &b.id).await?;
    Ok(Some(CatalogBase {
        snapshot: b.snapshot,
        entries,
    }))
}

/// Builds one index: reads the catalogue from the vault (from an earlier point's catalogue
/// when there is one), writes it, ends ACTIVE or FAILED. A store failure is returned (the
/// index stays PENDING and the next pass tries again).
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
    // Timed from here: loading the base's catalogue is part of an incremental build.
    let started = std::time::Instant::now();
    let base = base_for(plane, &rp).await?;
    let incremental = base.is_some();
    let built = match repo
        .catalog_from_async(rp.snapshot.clone(), base, CancelToken::new())
        .await
    {
        Ok(c) => c,
        Err(e) => {
            let message = format!(
                "The recovery point's files could not be read: {}",
                e.status_message()
            );
            return fail(plane, rec, message).await;
        }
    };
    let read_ms = started.elapsed().as_millis() as u64;
    if !write_catalogue(plane, &rec.key(), &built.entries).await? {
        return Ok(());
    }
    let dir = Directory::of(&built.entries);
    let (key, now) = (rec.key(), plane.clock().now());
    let active = plane
        .store()
        .write(move |tx| indexes::activate(tx, &key, &dir, now))
        .await?;
    if active {
        tracing::info!(
            index = %rec.key(),
            files = built.entries.len(),
            incremental,
            trees_read = built.trees_read,
            files_reused = built.files_reused,
            read_ms,
            total_ms = started.elapsed().as_millis() as u64,
            "recovery point index built"
        );
    }
    Ok(())
}

/// Writes `entries` as compact parts, one per transaction, while the index `key` names is
/// still PENDING; returns whether it was throughout.
async fn write_catalogue(plane: &Executor, key: &str, entries: &[CatalogEntry]) -> Result<bool> {
    for (seq, chunk) in entries.chunks(PART_FILES).enumerate() {
        let part = catalog::encode(chunk)?;
        let k = key.to_string();
        let still = plane
            .store()
            .write(move |tx| indexes::put_part(tx, &k, seq, &part))
            .await?;
        if !still {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Ends a PENDING index FAILED with `message`, and removes what was written of its catalogue.
async fn fail(plane: &Executor, rec: &IndexRecord, message: String) -> Result<()> {
    let now = plane.clock().now();
    let key = rec.key();
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
            r.status = Status::Failed;
            r.message = Some(message);
            r.completion_date = Some(now);
            indexes::save(tx, &r)
        })
        .await?;
    remove_catalogue(plane, rec).await
}

/// Whether this process has started converting earlier versions' catalogues.
fn conversion_started() -> &'static std::sync::atomic::AtomicBool {
    static S: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    &S
}

/// Starts, once per process, the conversion of catalogues written by earlier versions.
fn start_conversion(plane: &Executor) {
    use std::sync::atomic::Ordering;
    if conversion_started().swap(true, Ordering::SeqCst) {
        return;
    }
    let plane = plane.clone();
    tokio::spawn(async move {
        if let Err(e) = convert_legacy(&plane).await {
            // Left as JSON rows, they are still read; the next start tries again.
            tracing::warn!(error = %coffer_api::error_chain(&e.0), "converting earlier catalogues to the compact form failed");
        }
    });
}

/// Converts every ACTIVE index whose catalogue is JSON rows (written by an earlier version)
/// to the compact form: reads its rows, writes the parts (a transaction each), then the
/// directory, from which moment searches read the compact form; then deletes the rows in
/// batches. Also deletes rows left beside a compact catalogue (an earlier version's build
/// interrupted, then finished by this one). Index records are read a page at a time.
pub(crate) async fn convert_legacy(plane: &Executor) -> Result<usize> {
    let mut converted = 0;
    let mut after: Option<String> = None;
    loop {
        let at = after.clone();
        let page = plane
            .store()
            .read(move |tx| -> Result<_> { Ok(tx.scan(indexes::TABLE, "", at.as_deref(), 200)?) })
            .await?;
        for (k, v) in &page {
            let rec: IndexRecord = serde_json::from_slice(v)?;
            if rec.status == Status::Active && convert_one(plane, &rec).await? {
                converted += 1;
            }
            after = Some(k.clone());
        }
        if page.len() < 200 {
            return Ok(converted);
        }
    }
}

/// Converts one ACTIVE index's JSON rows, if it has any; returns whether it did.
async fn convert_one(plane: &Executor, rec: &IndexRecord) -> Result<bool> {
    let (a, r, id) = (rec.account.clone(), rec.region.clone(), rec.rp_id.clone());
    let (has_dir, has_rows) = plane
        .store()
        .read(move |tx| -> Result<(bool, bool)> {
            let dir = catalog::get_directory(tx, &a, &r, &id)?.is_some();
            let rows = !indexes::scan_legacy(tx, &a, &r, &id, None, 1)?.is_empty();
            Ok((dir, rows))
        })
        .await?;
    if !has_rows {
        return Ok(false);
    }
    if !has_dir {
        let entries = load_catalogue(plane, &rec.account, &rec.region, &rec.rp_id).await?;
        let (a, r, id) = (&rec.account, &rec.region, &rec.rp_id);
        for (seq, chunk) in entries.chunks(PART_FILES).enumerate() {
            let part = catalog::encode(chunk)?;
            let (key, k) = (rec.key(), catalog::part_key(a, r, id, seq));
            let still = plane
                .store()
                .write(move |tx| -> Result<bool> {
                    // Disabled or deleted meanwhile: its removal deletes what was written.
                    if indexes::get_by_key(tx, &key)?.is_none_or(|c| c.status != Status::Active) {
                        return Ok(false);
                    }
                    tx.put(catalog::PARTS, &k, &part)?;
                    Ok(true)
                })
                .await?;
            if !still {
                return Ok(false);
            }
        }
        let dir = Directory::of(&entries);
        let key = rec.key();
        let written = plane
            .store()
            .write(move |tx| -> Result<bool> {
                let Some(cur) = indexes::get_by_key(tx, &key)? else {
                    return Ok(false);
                };
                if cur.status != Status::Active {
                    return Ok(false);
                }
                catalog::put_directory(tx, &cur.account, &cur.region, &cur.rp_id, &dir)?;
                Ok(true)
            })
            .await?;
        if !written {
            // Disabled or deleted meanwhile: its removal deletes what was written.
            return Ok(false);
        }
        tracing::info!(index = %rec.key(), files = entries.len(), "converted an index's catalogue to the compact form");
    }
    remove_legacy_rows(plane, rec).await?;
    Ok(true)
}
