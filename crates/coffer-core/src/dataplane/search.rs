//! Carrying out AWS Backup Search: running search jobs over catalogues, and writing exports.
//!
//! Each runner pass reads the search work list (`model::search::work`) and starts, in its own
//! task, every search job or export this process is not already carrying on. A search job
//! advances in steps: one read of the catalogue after the job's cursor (the rest of one
//! compact part, a few thousand files, skipping the parts whose path range the filters rule
//! out; or up to [`STEP`] JSON rows of a catalogue an earlier version wrote), the filters
//! applied in memory, then one write transaction that stores the matches, moves the
//! cursor and the counts, or, when StopSearchJob has marked the job STOPPING, ends it STOPPED
//! instead. Results are therefore readable after the first step (a fraction of a second),
//! however many files there are, and a job interrupted by a restart resumes at its cursor.
//! An export reads a job's results in pages and writes `results.csv` and `results.json` under
//! the bucket's directory (`[[report_buckets]]`), then ends COMPLETED, or FAILED with the
//! reason.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use std::io::Write;

use crate::dataplane::Executor;
use crate::model::error::Result;
use crate::model::indexes;
use crate::model::search::{
    self, ExportJob, ExportStatus, JobStatus, RESULTS, ResultRow, SearchJob, Work,
};

/// JSON catalogue rows (of earlier versions) read per step of a search job.
pub(crate) const STEP: usize = 5000;
/// Result rows read per page of an export.
const EXPORT_PAGE: usize = 1000;

/// The searches and exports this process is carrying on (by work key).
fn active() -> &'static Mutex<HashSet<String>> {
    static A: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    A.get_or_init(Default::default)
}

/// Starts every search job and export of the work list not already being carried on here.
pub(crate) async fn process_search(plane: &Executor) -> Result<()> {
    for w in plane.store().read(search::work).await? {
        let id = format!("{w:?}");
        let fresh = active()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone());
        if !fresh {
            continue;
        }
        let plane = plane.clone();
        tokio::spawn(async move {
            let outcome = match &w {
                Work::Search(k) => run_job(&plane, k).await,
                Work::Export(k) => run_export(&plane, k).await,
            };
            if let Err(e) = outcome {
                tracing::warn!(work = %id, error = %coffer_api::error_chain(&e.0), "a search or export failed to advance; will retry");
            }
            active()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        });
    }
    Ok(())
}

/// Runs a search job step by step until it has ended.
pub(crate) async fn run_job(plane: &Executor, key: &str) -> Result<()> {
    let mut cursor = None;
    while !step(plane, key, &mut cursor).await? {
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// Where this process has read a job to, ahead of what is saved: steps that match nothing
/// only move this cursor, and it is saved with the next match, at the latest after
/// [`SAVE_EVERY`] (a restart reads those rows again, finding nothing in them again).
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    point: usize,
    after: Option<String>,
    unsaved_scanned: i64,
    saved: (usize, Option<String>),
    saved_at: std::time::Instant,
}

/// How long a job's progress may go unsaved while its steps find nothing.
const SAVE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// One step of a search job; returns whether the job has ended.
pub(crate) async fn step(plane: &Executor, key: &str, cursor: &mut Option<Cursor>) -> Result<bool> {
    let (job, chunk, from) = read_page(plane, key, cursor.clone()).await?;
    let Some(job) = job else { return Ok(true) };
    if !job.status.is_active() {
        return Ok(true);
    }
    let matcher = search::Matcher::new(&job.filters);
    let mut buf = String::new();
    let rows: Vec<ResultRow> = match job.points.get(from.0) {
        Some(p) => chunk
            .entries
            .iter()
            .filter(|e| matcher.matches(e, &mut buf))
            .map(|e| ResultRow {
                rp_arn: p.rp_arn.clone(),
                vault_name: p.vault_name.clone(),
                resource_arn: p.resource_arn.clone(),
                path: e.path.clone(),
                size: e.size,
                modified_ms: e.modified_ms,
            })
            .collect(),
        None => Vec::new(),
    };
    let next = if from.0 >= job.points.len() {
        from.clone()
    } else if chunk.done {
        (from.0 + 1, None)
    } else {
        (from.0, chunk.next.clone())
    };
    let saved = (job.point, job.after.clone());
    let ours = cursor.as_ref().filter(|c| c.saved == saved);
    let scanned =
        ours.map_or(0, |c| c.unsaved_scanned) + (chunk.entries.len() as u64 + chunk.passed) as i64;
    let quiet = rows.is_empty()
        && job.status == JobStatus::Running
        && next.0 < job.points.len()
        && ours.is_some_and(|c| c.saved_at.elapsed() < SAVE_EVERY);
    if quiet {
        let c = cursor.as_mut().expect("checked above");
        (c.point, c.after, c.unsaved_scanned) = (next.0, next.1, scanned);
        return Ok(false);
    }
    let step = Step {
        saved,
        from: from.0,
        next: next.clone(),
        rows,
        scanned,
    };
    match save_step(plane, key, step).await? {
        None => {
            *cursor = None;
            Ok(false)
        }
        Some(ended) => {
            *cursor = Some(Cursor {
                point: next.0,
                after: next.1.clone(),
                unsaved_scanned: 0,
                saved: next,
                saved_at: std::time::Instant::now(),
            });
            Ok(ended)
        }
    }
}

/// Reads the job and the next stretch of catalogue from `cursor` (this process's, while the
/// saved cursor is where it left it; the saved one otherwise): the rest of one compact part
/// (passing over the parts the filters rule out), or [`STEP`] JSON rows of an earlier version.
async fn read_page(
    plane: &Executor,
    key: &str,
    ahead: Option<Cursor>,
) -> Result<(Option<SearchJob>, indexes::Chunk, (usize, Option<String>))> {
    let k = key.to_string();
    plane
        .store()
        .read(move |tx| -> Result<_> {
            let Some(job) = search::get_job_by_key(tx, &k)? else {
                return Ok((None, indexes::Chunk::default(), (0, None)));
            };
            let from = match ahead {
                Some(c) if c.saved == (job.point, job.after.clone()) => (c.point, c.after),
                _ => (job.point, job.after.clone()),
            };
            if job.status != JobStatus::Running || from.0 >= job.points.len() {
                return Ok((Some(job), indexes::Chunk::default(), from));
            }
            let p = &job.points[from.0];
            let matcher = search::Matcher::new(&job.filters);
            let may = |first: &str, last: &str| matcher.may_match_between(first, last);
            let point = (job.account.as_str(), job.region.as_str(), p.rp_id.as_str());
            let chunk = indexes::read_chunk(tx, point, from.1.as_deref(), &may, false, STEP)?;
            Ok((Some(job), chunk, from))
        })
        .await
}

/// What one step saves.
struct Step {
    /// The cursor the step started from, as saved.
    saved: (usize, Option<String>),
    /// The point read, and the cursor after the step.
    from: usize,
    next: (usize, Option<String>),
    rows: Vec<ResultRow>,
    scanned: i64,
}

/// Saves a step: the matches, the cursor and counts; or ends the job (STOPPED when asked to
/// stop, COMPLETED past its last point). `None` when another runner moved the saved cursor.
async fn save_step(plane: &Executor, key: &str, step: Step) -> Result<Option<bool>> {
    let now = plane.clock().now();
    let k = key.to_string();
    plane
        .store()
        .write(move |tx| -> Result<Option<bool>> {
            let Some(mut cur) = search::get_job_by_key(tx, &k)? else {
                return Ok(Some(true));
            };
            if !cur.status.is_active() {
                return Ok(Some(true));
            }
            if cur.status == JobStatus::Stopping {
                return finish(tx, cur, JobStatus::Stopped, now).map(Some);
            }
            if (cur.point, cur.after.clone()) != step.saved {
                return Ok(None);
            }
            if step.from >= cur.points.len() {
                return finish(tx, cur, JobStatus::Completed, now).map(Some);
            }
            search::put_results(tx, &cur, cur.items_matched, &step.rows)?;
            cur.items_matched += step.rows.len() as i64;
            cur.items_scanned += step.scanned;
            (cur.point, cur.after) = step.next;
            search::save_job(tx, &cur)?;
            Ok(Some(false))
        })
        .await
}

fn finish(
    tx: &mut dyn coffer_store::Txn,
    mut job: SearchJob,
    status: JobStatus,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool> {
    job.status = status;
    job.completion = Some(now);
    search::save_job(tx, &job)?;
    tracing::info!(search_job = %job.id, status = ?status, matched = job.items_matched, scanned = job.items_scanned, "search job ended");
    Ok(true)
}

/// Writes an export's files, then ends it COMPLETED, or FAILED with the reason.
async fn run_export(plane: &Executor, key: &str) -> Result<()> {
    let k = key.to_string();
    let Some(exp) = plane
        .store()
        .read(move |tx| search::get_export_by_key(tx, &k))
        .await?
    else {
        return Ok(());
    };
    if exp.status != ExportStatus::Running {
        return Ok(());
    }
    let outcome = match plane.report_buckets().directory(&exp.bucket) {
        None => Err(format!(
            "Bucket {} is not configured: add it to [[report_buckets]] in Coffer's configuration.",
            exp.bucket
        )),
        Some(dir) => {
            let target = export_directory(&dir, &exp);
            write_export(plane, &exp, &target).await
        }
    };
    let now = plane.clock().now();
    let k = key.to_string();
    plane
        .store()
        .write(move |tx| -> Result<()> {
            let Some(mut cur) = search::get_export_by_key(tx, &k)? else {
                return Ok(());
            };
            if cur.status != ExportStatus::Running {
                return Ok(());
            }
            match outcome {
                Ok(()) => cur.status = ExportStatus::Completed,
                Err(m) => {
                    cur.status = ExportStatus::Failed;
                    cur.message = Some(m);
                }
            }
            cur.completion = Some(now);
            search::save_export(tx, &cur)
        })
        .await
}

/// Where an export's files go: `DIR/PREFIX/EXPORT_ID/` (the prefix's `/`-separated parts as
/// directories; it was checked when the export started).
pub(crate) fn export_directory(bucket_dir: &Path, exp: &ExportJob) -> PathBuf {
    let mut d = bucket_dir.to_path_buf();
    for part in exp
        .prefix
        .as_deref()
        .unwrap_or_default()
        .split('/')
        .filter(|p| !p.is_empty())
    {
        d.push(part);
    }
    d.push(&exp.id);
    d
}

/// Writes `results.csv` and `results.json` (written under temporary names, then renamed).
async fn write_export(
    plane: &Executor,
    exp: &ExportJob,
    dir: &Path,
) -> std::result::Result<(), String> {
    let io = |e: std::io::Error| format!("Writing the export under {} failed: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(io)?;
    let (csv_tmp, json_tmp) = (dir.join(".results.csv.tmp"), dir.join(".results.json.tmp"));
    let mut csv = std::io::BufWriter::new(std::fs::File::create(&csv_tmp).map_err(io)?);
    let mut json = std::io::BufWriter::new(std::fs::File::create(&json_tmp).map_err(io)?);
    csv.write_all(
        b"FilePath,FileSize,LastModifiedTime,BackupResourceArn,SourceResourceArn,BackupVaultName\n",
    )
    .map_err(io)?;
    json.write_all(b"[").map_err(io)?;
    let prefix = search::results_prefix(&exp.account, &exp.region, &exp.search_job_id);
    let mut after: Option<String> = None;
    let mut first = true;
    loop {
        let (p, a) = (prefix.clone(), after.clone());
        let rows = plane
            .store()
            .read(move |tx| Ok(tx.scan(RESULTS, &p, a.as_deref(), EXPORT_PAGE)?))
            .await
            .map_err(|e: crate::model::error::Error| e.operator_message())?;
        for (k, v) in &rows {
            let row: ResultRow = serde_json::from_slice(v)
                .map_err(|e| format!("A stored result is unreadable: {e}"))?;
            csv.write_all(csv_line(&row).as_bytes()).map_err(io)?;
            let item = serde_json::json!({
                "FilePath": row.file_path(),
                "FileSize": row.size,
                "LastModifiedTime": row.modified().map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                "BackupResourceArn": row.rp_arn,
                "SourceResourceArn": row.resource_arn,
                "BackupVaultName": row.vault_name,
            });
            let sep = if first { "\n" } else { ",\n" };
            first = false;
            json.write_all(format!("{sep}{item}").as_bytes())
                .map_err(io)?;
            after = Some(k.clone());
        }
        if rows.len() < EXPORT_PAGE {
            break;
        }
    }
    json.write_all(b"\n]\n").map_err(io)?;
    for f in [csv, json] {
        f.into_inner()
            .map_err(|e| io(e.into_error()))?
            .sync_all()
            .map_err(io)?;
    }
    std::fs::rename(&csv_tmp, dir.join("results.csv")).map_err(io)?;
    std::fs::rename(&json_tmp, dir.join("results.json")).map_err(io)?;
    Ok(())
}

/// One CSV line (RFC 4180 quoting where a field needs it).
fn csv_line(row: &ResultRow) -> String {
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let modified = row
        .modified()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    format!(
        "{},{},{},{},{},{}\n",
        field(&row.file_path()),
        row.size,
        modified,
        field(&row.rp_arn),
        field(&row.resource_arn),
        field(&row.vault_name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        let row = ResultRow {
            rp_arn: "arn:rp".into(),
            vault_name: "v".into(),
            resource_arn: "arn:fs".into(),
            path: "a,\"b\".txt".into(),
            size: 3,
            modified_ms: Some(0),
        };
        assert_eq!(
            csv_line(&row),
            "\"/a,\"\"b\"\".txt\",3,1970-01-01T00:00:00.000Z,arn:rp,arn:fs,v\n"
        );
    }
}
