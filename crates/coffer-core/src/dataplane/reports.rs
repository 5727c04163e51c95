//! Carrying out a report job: building the report of a report plan from the state it covers,
//! writing its files where the plan's S3 bucket is configured to be, and recording the job.
//!
//! StartReportJob and the scheduler's daily runs both come here. A file is written to a
//! temporary name beside its final one, synced and renamed into place, so a reader (or a
//! crash) never sees half a report. The job is recorded once, in one transaction with the
//! plan's LastAttempted/LastSuccessfulExecutionTime, after its files were written or failed
//! to be: COMPLETED with the object keys, or FAILED with a message that says what to fix.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use coffer_store::Txn;

use crate::dataplane::Executor;
use crate::model::error::Result;
use crate::model::frameworks::{self, FrameworkRecord};
use crate::model::jobs::{JobKind, JobRecord};
use crate::model::paging::scan_all;
use crate::model::reports::*;

/// The jobs of `kind` a report of `plan` covers (its regions), oldest first.
fn jobs_in_scope(
    tx: &mut dyn Txn,
    plan: &ReportPlanRecord,
    kind: JobKind,
) -> Result<Vec<JobRecord>> {
    let prefixes: Vec<String> = match regions(plan) {
        Some(list) => list
            .iter()
            .map(|r| format!("{}:{r}:", plan.account))
            .collect(),
        None => vec![format!("{}:", plan.account)],
    };
    let mut jobs = Vec::new();
    for prefix in prefixes {
        for (_, v) in scan_all(tx, kind.table(), &prefix)? {
            jobs.push(serde_json::from_slice::<JobRecord>(&v)?);
        }
    }
    jobs.sort_by(|a, b| a.creation_date.cmp(&b.creation_date).then(a.id.cmp(&b.id)));
    Ok(jobs)
}

/// The frameworks a compliance report names (all of them when it names none), or why the
/// report cannot be made.
fn frameworks_of(
    tx: &mut dyn Txn,
    plan: &ReportPlanRecord,
) -> Result<std::result::Result<Vec<FrameworkRecord>, String>> {
    let mut all = Vec::new();
    let prefix = format!("{}:{}:", plan.account, plan.region);
    for (_, v) in scan_all(tx, frameworks::TABLE, &prefix)? {
        all.push(serde_json::from_slice::<FrameworkRecord>(&v)?);
    }
    let named = plan.setting.framework_arns.as_deref().unwrap_or_default();
    if named.is_empty() {
        // No FrameworkArns: every framework of the account and region.
        return Ok(Ok(all));
    }
    let mut out = Vec::new();
    for arn in named {
        match all.iter().find(|f| &f.arn == arn) {
            Some(f) => out.push(f.clone()),
            None => {
                return Ok(Err(format!(
                    "Framework {arn} no longer exists; update the report plan's FrameworkArns."
                )));
            }
        }
    }
    Ok(Ok(out))
}

/// Builds the report of `plan` made at `at`: `Err` inside says why it cannot be made.
pub(crate) async fn build(
    plane: &Executor,
    plan: &ReportPlanRecord,
    at: DateTime<Utc>,
) -> Result<std::result::Result<Report, String>> {
    let template = match Template::parse(&plan.setting.report_template) {
        Ok(t) => t,
        Err(e) => return Ok(Err(e.0.message().to_string())),
    };
    let plan = plan.clone();
    let inventory = plane.inventory().clone();
    plane
        .store()
        .read(move |tx| {
            if let Some(kind) = template.job_kind() {
                let p = period(at);
                let jobs: Vec<JobRecord> = jobs_in_scope(tx, &plan, kind)?
                    .into_iter()
                    .filter(|j| in_period(j, p))
                    .collect();
                return Ok(Ok(job_report(kind, &jobs, p)));
            }
            let fws = match frameworks_of(tx, &plan)? {
                Ok(f) => f,
                Err(why) => return Ok(Err(why)),
            };
            let controls: Vec<_> = fws.iter().flat_map(|f| f.controls.clone()).collect();
            let state =
                frameworks::read_state(tx, &plan.account, &plan.region, &inventory, &controls, at)?;
            Ok(Ok(compliance_report(
                template,
                &fws,
                &state,
                &plan.account,
                &plan.region,
            )))
        })
        .await
}

/// Writes `data` at `path` atomically: a temporary file beside it, synced, then renamed.
fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// How many times a delivery is tried before the job ends FAILED, and the wait before the
/// second try (doubling after it): a full disk or a directory being remounted may pass.
const DELIVERY_ATTEMPTS: u32 = 3;
const DELIVERY_RETRY_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// [`deliver`], tried again after a short wait while attempts are left; the last failure's
/// message says how many attempts were made.
async fn deliver_retried(
    root: PathBuf,
    bucket: String,
    files: Vec<(String, Vec<u8>)>,
) -> std::result::Result<Vec<String>, String> {
    let (mut wait, mut attempt) = (DELIVERY_RETRY_WAIT, 1);
    loop {
        match deliver(root.clone(), bucket.clone(), files.clone()).await {
            Ok(keys) => return Ok(keys),
            Err(why) if attempt >= DELIVERY_ATTEMPTS => {
                return Err(format!("{why} ({DELIVERY_ATTEMPTS} attempts)"));
            }
            Err(why) => {
                tracing::info!(%bucket, attempt, %why, "report delivery failed; trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
        }
    }
}

/// Writes the files of one report: `(object key, bytes)` under the bucket's directory.
/// Returns the keys written, or what went wrong.
async fn deliver(
    root: PathBuf,
    bucket: String,
    files: Vec<(String, Vec<u8>)>,
) -> std::result::Result<Vec<String>, String> {
    tokio::task::spawn_blocking(move || {
        let mut keys = Vec::new();
        for (key, data) in files {
            let path = root.join(&key);
            write_atomic(&path, &data).map_err(|e| {
                format!(
                    "Writing s3://{bucket}/{key} to {} failed: {e}. Check that the directory configured for bucket '{bucket}' in [[report_buckets]] exists and Coffer may write to it.",
                    path.display()
                )
            })?;
            keys.push(key);
        }
        Ok(keys)
    })
    .await
    .unwrap_or_else(|e| Err(format!("writing the report stopped: {e}")))
}

/// Renders a report in each of the plan's formats, with its object key.
fn render(
    plan: &ReportPlanRecord,
    job_id: &str,
    at: DateTime<Utc>,
    report: &Report,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    let default = vec!["CSV".to_string()];
    let formats = match plan.channel.formats.as_ref() {
        Some(f) if !f.is_empty() => f,
        _ => &default,
    };
    for format in formats {
        let (ext, data) = match format.as_str() {
            "JSON" => ("json", report.json()?),
            _ => ("csv", report.csv()),
        };
        files.push((object_key(plan, job_id, at, ext), data));
    }
    Ok(files)
}

/// Runs one report job of `plan` made at `at` (see the module comment) and returns its record.
/// `token` is StartReportJob's IdempotencyToken, recorded with the job.
pub(crate) async fn run(
    plane: &Executor,
    plan: &ReportPlanRecord,
    at: DateTime<Utc>,
    token: Option<String>,
) -> Result<ReportJobRecord> {
    let id = uuid::Uuid::new_v4().to_string();
    let bucket = plan.channel.s3_bucket_name.clone();
    let outcome = match build(plane, plan, at).await? {
        Err(why) => Err(why),
        Ok(report) => match plane.report_buckets().directory(&bucket) {
            None => Err(unconfigured(&bucket)),
            Some(root) => {
                deliver_retried(root, bucket.clone(), render(plan, &id, at, &report)?).await
            }
        },
    };
    let done = plane.clock().now().max(at);
    let (status, status_message, keys) = match outcome {
        Ok(keys) => (ReportJobStatus::Completed, None, keys),
        Err(why) => (ReportJobStatus::Failed, Some(why), Vec::new()),
    };
    match &status_message {
        None => tracing::info!(plan = %plan.name, job = %id, keys = ?keys, "report written"),
        Some(why) => tracing::warn!(plan = %plan.name, job = %id, %why, "report failed"),
    }
    let job = ReportJobRecord {
        id,
        account: plan.account.clone(),
        region: plan.region.clone(),
        plan_name: plan.name.clone(),
        plan_arn: plan.arn.clone(),
        template: plan.setting.report_template.clone(),
        status,
        status_message,
        creation_time: at,
        completion_time: done,
        bucket,
        keys,
    };
    record(plane, job, token).await
}

/// Records a finished job, its token, and the plan's execution times (if it still exists).
async fn record(
    plane: &Executor,
    job: ReportJobRecord,
    token: Option<String>,
) -> Result<ReportJobRecord> {
    plane
        .store()
        .write(move |tx| {
            let (a, r) = (job.account.clone(), job.region.clone());
            tx.put(JOBS, &key(&a, &r, &job.id), &serde_json::to_vec(&job)?)?;
            if let Some(t) = &token {
                tx.put(JOB_TOKENS, &key(&a, &r, t), job.id.as_bytes())?;
            }
            crate::model::reports::enter_history(tx, &job, token.as_deref())?;
            if let Some(mut p) = find(tx, &a, &r, &job.plan_name)?
                && p.arn == job.plan_arn
            {
                p.last_attempted = Some(job.creation_time);
                if job.status == ReportJobStatus::Completed {
                    p.last_successful = Some(job.creation_time);
                }
                tx.put(PLANS, &key(&a, &r, &p.name), &serde_json::to_vec(&p)?)?;
            }
            Ok::<_, crate::model::error::Error>(job)
        })
        .await
}
