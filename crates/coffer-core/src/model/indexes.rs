//! Recovery point indexes: a catalogue of every file of a recovery point, and its record.
//!
//! A recovery point made with Index ENABLED (StartBackupJob's Index, a plan rule's
//! IndexActions, or UpdateRecoveryPointIndexSettings afterwards) gets an index record in table
//! `rp_index_record` (key `ACCOUNT:REGION:RPID`), PENDING until the data plane has read the
//! snapshot tree (`dataplane::indexes`), then ACTIVE with its item count, or FAILED with a
//! message. The catalogue itself is stored compact (`model::catalog`: a directory and parts of
//! a few thousand files each, in path order); catalogues written by earlier versions are JSON
//! rows in table `rp_catalog`, one per file keyed `ACCOUNT:REGION:RPID:PATH`. [`read_chunk`]
//! and [`scan_catalog`] read either. Disabling an index, or deleting its recovery point, marks
//! it DELETING; the runner then removes its catalogue in batches and finally the record.

use chrono::{DateTime, Utc};
use coffer_api::types::{IndexStatus, IndexedRecoveryPoint};
use coffer_api::{ApiError, Timestamp};
use coffer_engine::CatalogEntry;
use coffer_store::Txn;
use serde::{Deserialize, Serialize};

use crate::model::catalog::{self, Directory};
use crate::model::error::Result;
use crate::model::rp_keys;

pub(crate) const TABLE: &str = "rp_index_record";
pub(crate) const CATALOG: &str = "rp_catalog";
/// The keys of the indexes the runner has work on (PENDING or DELETING), so that a pass reads
/// only those, however many ACTIVE indexes there are.
const WORK: &str = "rp_index_work";

/// The resource types whose recovery points can be indexed: AWS's (EBS, S3) and Coffer's
/// directory trees (EFS).
pub(crate) const INDEXABLE_RESOURCE_TYPES: &[&str] = &["EBS", "EFS", "S3"];

/// The refusal for a resource type that cannot be indexed.
pub(crate) fn check_indexable(resource_type: &str) -> std::result::Result<(), ApiError> {
    if INDEXABLE_RESOURCE_TYPES.contains(&resource_type) {
        return Ok(());
    }
    Err(ApiError::invalid_parameter(format!(
        "Resource type {resource_type} cannot be indexed; indexes are supported for {} recovery points.",
        INDEXABLE_RESOURCE_TYPES.join(", ")
    )))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Status {
    Pending,
    Active,
    Failed,
    Deleting,
}

impl Status {
    pub(crate) fn wire(self) -> IndexStatus {
        match self {
            Status::Pending => IndexStatus::Pending,
            Status::Active => IndexStatus::Active,
            Status::Failed => IndexStatus::Failed,
            Status::Deleting => IndexStatus::Deleting,
        }
    }

    pub(crate) fn from_wire(s: &IndexStatus) -> Option<Status> {
        match s {
            IndexStatus::Pending => Some(Status::Pending),
            IndexStatus::Active => Some(Status::Active),
            IndexStatus::Failed => Some(Status::Failed),
            IndexStatus::Deleting => Some(Status::Deleting),
            IndexStatus::Unknown(_) => None,
        }
    }
}

/// One recovery point's index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IndexRecord {
    pub account: String,
    pub region: String,
    pub rp_id: String,
    pub rp_arn: String,
    pub vault_name: String,
    pub vault_arn: String,
    pub resource_arn: String,
    pub resource_type: String,
    pub backup_creation_date: DateTime<Utc>,
    pub iam_role_arn: Option<String>,
    pub status: Status,
    pub message: Option<String>,
    pub creation_date: DateTime<Utc>,
    pub completion_date: Option<DateTime<Utc>>,
    pub deletion_date: Option<DateTime<Utc>>,
    pub total_items: Option<i64>,
}

pub(crate) fn key(account: &str, region: &str, rp_id: &str) -> String {
    format!("{account}:{region}:{rp_id}")
}

/// The prefix of a recovery point's catalogue rows.
pub(crate) fn catalog_prefix(account: &str, region: &str, rp_id: &str) -> String {
    format!("{account}:{region}:{rp_id}:")
}

impl IndexRecord {
    pub(crate) fn key(&self) -> String {
        key(&self.account, &self.region, &self.rp_id)
    }

    pub(crate) fn listed(&self) -> IndexedRecoveryPoint {
        IndexedRecoveryPoint {
            backup_creation_date: Some(Timestamp(self.backup_creation_date)),
            backup_vault_arn: Some(self.vault_arn.clone()),
            iam_role_arn: self.iam_role_arn.clone(),
            index_creation_date: Some(Timestamp(self.creation_date)),
            index_status: Some(self.status.wire()),
            index_status_message: self.message.clone(),
            recovery_point_arn: Some(self.rp_arn.clone()),
            resource_type: Some(self.resource_type.clone()),
            source_resource_arn: Some(self.resource_arn.clone()),
        }
    }
}

pub(crate) fn get(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    rp_id: &str,
) -> Result<Option<IndexRecord>> {
    match tx.get(TABLE, &key(account, region, rp_id))? {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

/// The index record stored under `key` (see [`key`]).
pub(crate) fn get_by_key(tx: &mut dyn Txn, key: &str) -> Result<Option<IndexRecord>> {
    match tx.get(TABLE, key)? {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

/// Stores `rec`, keeping the runner's work list (`rp_index_work`) and the status its point's
/// vault entry carries (`model::rp_keys`) in step with its status.
pub(crate) fn save(tx: &mut dyn Txn, rec: &IndexRecord) -> Result<()> {
    let key = rec.key();
    tx.put(TABLE, &key, &serde_json::to_vec(rec)?)?;
    point_status(tx, rec, Some(rec.status.wire().as_str()))?;
    match rec.status {
        Status::Pending | Status::Deleting => tx.put(WORK, &key, b"")?,
        Status::Active | Status::Failed => {
            tx.delete(WORK, &key)?;
        }
    }
    Ok(())
}

/// Keeps `status` (`None`: no index) in the vault entry of `rec`'s point.
fn point_status(tx: &mut dyn Txn, rec: &IndexRecord, status: Option<&str>) -> Result<()> {
    let scope = (
        rec.account.as_str(),
        rec.region.as_str(),
        rec.vault_name.as_str(),
    );
    rp_keys::set_index_status(tx, scope, rec.backup_creation_date, &rec.rp_id, status)
}

/// Removes the record `key` names (a DELETING index whose rows are gone).
pub(crate) fn forget(tx: &mut dyn Txn, key: &str) -> Result<()> {
    if let Some(rec) = get_by_key(tx, key)? {
        point_status(tx, &rec, None)?;
    }
    tx.delete(TABLE, key)?;
    tx.delete(WORK, key)?;
    Ok(())
}

/// Records `rec` (a new PENDING index, replacing a FAILED one) in the caller's transaction;
/// the runner builds it.
pub(crate) fn insert_pending(tx: &mut dyn Txn, rec: IndexRecord) -> Result<IndexRecord> {
    save(tx, &rec)?;
    Ok(rec)
}

/// Marks `rp`'s index (if any) DELETING, in the caller's transaction: the runner removes its
/// catalogue and then the record.
pub(crate) fn mark_deleting(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    rp_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<IndexRecord>> {
    let Some(mut rec) = get(tx, account, region, rp_id)? else {
        return Ok(None);
    };
    rec.status = Status::Deleting;
    rec.deletion_date = Some(now);
    rec.message = None;
    save(tx, &rec)?;
    Ok(Some(rec))
}

/// The indexes the runner has work on (PENDING or DELETING, all scopes), read through the
/// work list.
pub(crate) fn work(tx: &mut dyn Txn) -> Result<Vec<IndexRecord>> {
    let mut out = Vec::new();
    for (key, _) in crate::model::paging::scan_all(tx, WORK, "")? {
        if let Some(v) = tx.get(TABLE, &key)? {
            out.push(serde_json::from_slice(&v)?);
        }
    }
    Ok(out)
}

/// The index `rec_key` names, when it is still PENDING (a DISABLED or deleted index takes no
/// more of its catalogue).
fn pending(tx: &mut dyn Txn, rec_key: &str) -> Result<Option<IndexRecord>> {
    let Some(v) = tx.get(TABLE, rec_key)? else {
        return Ok(None);
    };
    let rec: IndexRecord = serde_json::from_slice(&v)?;
    Ok(Some(rec).filter(|r| r.status == Status::Pending))
}

/// Writes a batch of catalogue rows in the format of earlier versions (JSON, one per file),
/// only while the index is still PENDING; returns whether it was. Only tests write them now.
#[cfg(test)]
pub(crate) fn put_rows(tx: &mut dyn Txn, rec_key: &str, rows: &[CatalogEntry]) -> Result<bool> {
    let Some(rec) = pending(tx, rec_key)? else {
        return Ok(false);
    };
    let prefix = catalog_prefix(&rec.account, &rec.region, &rec.rp_id);
    for row in rows {
        tx.put(
            CATALOG,
            &format!("{prefix}{}", row.path),
            &serde_json::to_vec(row)?,
        )?;
    }
    Ok(true)
}

/// Writes part `seq` of the index `rec_key` names (`part`, encoded by
/// [`catalog::encode`]), only while it is still PENDING; returns whether it was.
pub(crate) fn put_part(tx: &mut dyn Txn, rec_key: &str, seq: usize, part: &[u8]) -> Result<bool> {
    let Some(rec) = pending(tx, rec_key)? else {
        return Ok(false);
    };
    tx.put(
        catalog::PARTS,
        &catalog::part_key(&rec.account, &rec.region, &rec.rp_id, seq),
        part,
    )?;
    Ok(true)
}

/// Deletes up to `limit` catalogue rows under `prefix`; returns how many.
pub(crate) fn delete_rows(tx: &mut dyn Txn, prefix: &str, limit: usize) -> Result<usize> {
    let rows = tx.scan(CATALOG, prefix, None, limit)?;
    for (k, _) in &rows {
        tx.delete(CATALOG, k)?;
    }
    Ok(rows.len())
}

/// A stretch of a recovery point's catalogue, as a search reads it.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    /// Files read, in path order.
    pub entries: Vec<CatalogEntry>,
    /// Files passed over unread: parts whose path range the caller said cannot match.
    pub passed: u64,
    /// The last path this chunk covers (the cursor to read on from).
    pub next: Option<String>,
    /// Whether the catalogue ends with this chunk.
    pub done: bool,
}

/// The next stretch of a recovery point's catalogue after `after` (from the start when
/// `None`): from a compact catalogue, the rest of one part, passing over the parts for which
/// `may_match(first, last)` is false; from JSON rows, at most `legacy_limit` rows. Content
/// hashes are read only when `hashes`.
pub(crate) fn read_chunk(
    tx: &mut dyn Txn,
    (account, region, rp_id): (&str, &str, &str),
    after: Option<&str>,
    may_match: &dyn Fn(&str, &str) -> bool,
    hashes: bool,
    legacy_limit: usize,
) -> Result<Chunk> {
    let Some(dir) = catalog::get_directory(tx, account, region, rp_id)? else {
        let entries = scan_legacy(tx, account, region, rp_id, after, legacy_limit)?;
        let done = entries.len() < legacy_limit;
        let next = entries
            .last()
            .map(|e| e.path.clone())
            .or(after.map(Into::into));
        return Ok(Chunk {
            entries,
            passed: 0,
            next,
            done,
        });
    };
    let mut i = dir.first_after(after);
    let mut passed = 0;
    while let Some(p) = dir.parts.get(i) {
        let cursor_inside = after.is_some_and(|a| a >= p.first.as_str());
        if cursor_inside || may_match(&p.first, &p.last) {
            break;
        }
        passed += p.files;
        i += 1;
    }
    let Some(p) = dir.parts.get(i) else {
        let next = dir
            .parts
            .last()
            .map(|p| p.last.clone())
            .or(after.map(Into::into));
        return Ok(Chunk {
            entries: Vec::new(),
            passed,
            next,
            done: true,
        });
    };
    let mut entries = catalog::read_part(tx, account, region, rp_id, i, hashes)?;
    if let Some(a) = after {
        entries.retain(|e| e.path.as_str() > a);
    }
    Ok(Chunk {
        entries,
        passed,
        next: Some(p.last.clone()),
        done: i + 1 == dir.parts.len(),
    })
}

/// One page of a recovery point's catalogue in path order: at most `limit` files whose path
/// comes strictly after `after` (all from the first when `None`), with their content hashes.
pub(crate) fn scan_catalog(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    rp_id: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<CatalogEntry>> {
    let mut out = Vec::new();
    let mut after = after.map(str::to_string);
    while out.len() < limit {
        let left = limit - out.len();
        let point = (account, region, rp_id);
        let c = read_chunk(tx, point, after.as_deref(), &|_, _| true, true, left)?;
        out.extend(c.entries.into_iter().take(left));
        if c.done {
            break;
        }
        after = c.next;
    }
    Ok(out)
}

/// The JSON rows of a catalogue written by an earlier version.
pub(crate) fn scan_legacy(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    rp_id: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<CatalogEntry>> {
    let prefix = catalog_prefix(account, region, rp_id);
    let start = after.map(|a| format!("{prefix}{a}"));
    tx.scan(CATALOG, &prefix, start.as_deref(), limit)?
        .iter()
        .map(|(_, v)| serde_json::from_slice(v).map_err(Into::into))
        .collect()
}

/// Records the compact catalogue of a PENDING index complete (its directory) and makes the
/// index ACTIVE with its file count, in the caller's transaction; false when the index is no
/// longer PENDING.
pub(crate) fn activate(
    tx: &mut dyn Txn,
    rec_key: &str,
    dir: &Directory,
    now: DateTime<Utc>,
) -> Result<bool> {
    let Some(mut r) = pending(tx, rec_key)? else {
        return Ok(false);
    };
    catalog::put_directory(tx, &r.account, &r.region, &r.rp_id, dir)?;
    r.status = Status::Active;
    r.total_items = Some(dir.files as i64);
    r.completion_date = Some(now);
    save(tx, &r)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_store::StoreHandle;

    fn record(status: Status) -> IndexRecord {
        let now = Utc::now();
        IndexRecord {
            account: "111122223333".into(),
            region: "us-east-1".into(),
            rp_id: "rp1".into(),
            rp_arn: "arn:aws:backup:us-east-1:111122223333:recovery-point:rp1".into(),
            vault_name: "v".into(),
            vault_arn: "arn:aws:backup:us-east-1:111122223333:backup-vault:v".into(),
            resource_arn: "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs".into(),
            resource_type: "EFS".into(),
            backup_creation_date: now,
            iam_role_arn: None,
            status,
            message: None,
            creation_date: now,
            completion_date: None,
            deletion_date: None,
            total_items: None,
        }
    }

    fn entry(path: &str) -> CatalogEntry {
        CatalogEntry {
            path: path.into(),
            size: path.len() as u64,
            modified_ms: Some(1),
            content_hash: "h".into(),
        }
    }

    /// Rows go in while the index is PENDING, are read back in path order a page at a time
    /// (another point's rows never mixed in), and are refused once the index is DELETING.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_catalogue_is_written_paged_in_path_order_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        let paths = ["b/z.txt", "a.txt", "b/a.txt", "c", "a/b/c.txt"];
        store
            .write(move |tx| -> Result<()> {
                let rec = insert_pending(tx, record(Status::Pending))?;
                let rows: Vec<_> = paths.iter().map(|p| entry(p)).collect();
                assert!(put_rows(tx, &rec.key(), &rows)?);
                // Another recovery point whose id extends this one's.
                let mut other = record(Status::Pending);
                other.rp_id = "rp10".into();
                save(tx, &other)?;
                assert!(put_rows(tx, &other.key(), &[entry("0-first")])?);
                Ok(())
            })
            .await
            .unwrap();
        let (a, r) = ("111122223333", "us-east-1");
        let mut got = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .read({
                    let after = after.clone();
                    move |tx| scan_catalog(tx, a, r, "rp1", after.as_deref(), 2)
                })
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 2);
            after = page.last().map(|e| e.path.clone());
            got.extend(page.into_iter().map(|e| e.path));
        }
        assert_eq!(got, ["a.txt", "a/b/c.txt", "b/a.txt", "b/z.txt", "c"]);

        store
            .write(move |tx| -> Result<()> {
                mark_deleting(tx, a, r, "rp1", Utc::now())?;
                let key = key(a, r, "rp1");
                assert!(
                    !put_rows(tx, &key, &[entry("late")])?,
                    "a DELETING index takes no rows"
                );
                assert_eq!(delete_rows(tx, &catalog_prefix(a, r, "rp1"), 3)?, 3);
                assert_eq!(delete_rows(tx, &catalog_prefix(a, r, "rp1"), 3)?, 2);
                assert_eq!(delete_rows(tx, &catalog_prefix(a, r, "rp1"), 3)?, 0);
                Ok(())
            })
            .await
            .unwrap();
        // The work list holds the DELETING index and the other PENDING one; once the other is
        // ACTIVE and this one forgotten, it is empty.
        let keys = |w: Vec<IndexRecord>| w.iter().map(IndexRecord::key).collect::<Vec<_>>();
        let w = store.read(work).await.unwrap();
        assert_eq!(keys(w), [key(a, r, "rp1"), key(a, r, "rp10")]);
        store
            .write(move |tx| -> Result<()> {
                let mut other = get(tx, a, r, "rp10")?.unwrap();
                other.status = Status::Active;
                save(tx, &other)?;
                forget(tx, &key(a, r, "rp1"))
            })
            .await
            .unwrap();
        assert!(store.read(work).await.unwrap().is_empty());
        let left = store
            .read(move |tx| scan_catalog(tx, a, r, "rp10", None, 10))
            .await
            .unwrap();
        assert_eq!(left, vec![entry("0-first")]);
    }

    /// A compact catalogue is written a part at a time while PENDING and becomes readable
    /// with its directory; a read passes over the parts the caller rules out (counting their
    /// files) and resumes after any path; the JSON rows of an earlier version, beside it, are
    /// ignored once the directory exists.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_compact_catalogue_is_read_in_parts_and_skipped_where_nothing_can_match() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        let n = catalog::PART_FILES * 3 + 5;
        let rows: Vec<CatalogEntry> = (0..n)
            .map(|i| CatalogEntry {
                path: format!("d{:02}/f{i:06}", i / 1000),
                size: i as u64,
                modified_ms: Some(i as i64),
                content_hash: format!("{i:064x}"),
            })
            .collect();
        let (a, r) = ("111122223333", "us-east-1");
        let all = rows.clone();
        store
            .write(move |tx| -> Result<()> {
                let rec = insert_pending(tx, record(Status::Pending))?;
                // An earlier version's row, left behind: never read beside a compact catalogue.
                assert!(put_rows(tx, &rec.key(), &[entry("d00/f000000x")])?);
                for (seq, chunk) in all.chunks(catalog::PART_FILES).enumerate() {
                    assert!(put_part(tx, &rec.key(), seq, &catalog::encode(chunk)?)?);
                }
                assert!(activate(tx, &rec.key(), &Directory::of(&all), Utc::now())?);
                assert_eq!(get(tx, a, r, "rp1")?.unwrap().total_items, Some(n as i64));
                assert!(
                    !put_part(tx, &rec.key(), 9, b"late")?,
                    "an ACTIVE index takes no parts"
                );
                Ok(())
            })
            .await
            .unwrap();
        let point = (a, r, "rp1");
        // Everything, with hashes, page by page.
        let got = store
            .read(move |tx| scan_catalog(tx, a, r, "rp1", None, usize::MAX))
            .await
            .unwrap();
        assert_eq!(got, rows);
        let mid = rows[catalog::PART_FILES + 7].path.clone();
        let page = store
            .read(move |tx| scan_catalog(tx, a, r, "rp1", Some(&mid), 3))
            .await
            .unwrap();
        assert_eq!(
            page,
            rows[catalog::PART_FILES + 8..catalog::PART_FILES + 11]
        );
        // A needle in the last part: the first three are passed over unread.
        let needle = rows[n - 2].path.clone();
        let c = store
            .read(move |tx| {
                let may = |f: &str, l: &str| f <= needle.as_str() && needle.as_str() <= l;
                read_chunk(tx, point, None, &may, false, 10)
            })
            .await
            .unwrap();
        assert_eq!(c.passed, (catalog::PART_FILES * 3) as u64);
        assert_eq!(c.entries.len(), 5);
        assert!(c.done);
        assert!(c.entries.iter().all(|e| e.content_hash.is_empty()));
        // Resuming inside a part reads the rest of that part, whatever the caller rules out.
        let inside = rows[10].path.clone();
        let c = store
            .read(move |tx| read_chunk(tx, point, Some(&inside), &|_, _| false, false, 10))
            .await
            .unwrap();
        assert_eq!(c.entries.len(), catalog::PART_FILES - 11);
        assert_eq!(
            c.next.as_deref(),
            Some(rows[catalog::PART_FILES - 1].path.as_str())
        );
        assert!(!c.done);
        // Nothing can match: one read passes over everything.
        let c = store
            .read(move |tx| read_chunk(tx, point, None, &|_, _| false, false, 10))
            .await
            .unwrap();
        assert_eq!((c.entries.len(), c.passed, c.done), (0, n as u64, true));
    }
}
