//! The malware scan operations: StartScanJob, DescribeScanJob, ListScanJobs,
//! ListScanJobSummaries and GetPITRMalwareScanResults. The records are `model::scans`; running
//! a scan is `dataplane::scans` (docs/scans.md).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};

use crate::dataplane::Executor;
use crate::model::error::Result;
use crate::model::recovery_points::{self, RecoveryPointRecord};
use crate::model::scans::{self, ScanJobRecord};
use crate::model::{Meta, paging, vaults};

/// Checks what StartScanJob asks for against the recovery point (and its base).
fn check_start(
    input: &StartScanJobInput,
    rp: &RecoveryPointRecord,
    base: Option<&RecoveryPointRecord>,
) -> std::result::Result<(), ApiError> {
    scans::check_scannable(&rp.resource_type)?;
    match (&input.scan_mode, base) {
        (ScanMode::IncrementalScan, None) => Err(ApiError::invalid_parameter(
            "ScanMode INCREMENTAL_SCAN needs ScanBaseRecoveryPointArn: the earlier recovery point of the same resource to compare with. Give one, or use FULL_SCAN.",
        )),
        (ScanMode::FullScan, Some(_)) => Err(ApiError::invalid_parameter(
            "ScanBaseRecoveryPointArn is only for ScanMode INCREMENTAL_SCAN; leave it out of a FULL_SCAN.",
        )),
        (_, Some(b)) if b.resource_arn != rp.resource_arn => {
            Err(ApiError::invalid_parameter(format!(
                "The base recovery point {} is of resource {}, not of {}, the resource of {}: an incremental scan compares two recovery points of the same resource.",
                b.arn, b.resource_arn, rp.resource_arn, rp.arn
            )))
        }
        (_, Some(b)) if b.id == rp.id || b.creation_date > rp.creation_date => {
            Err(ApiError::invalid_parameter(format!(
                "The base recovery point {} must be older than {}, the recovery point to scan.",
                b.arn, rp.arn
            )))
        }
        _ => Ok(()),
    }
}

pub(crate) async fn start(
    plane: &Executor,
    ctx: &RequestContext,
    input: StartScanJobInput,
) -> Result<StartScanJobOutput> {
    scans::check_scanner(&input.malware_scanner, "MalwareScanner")?;
    if input.continuous_scan_end_time.is_some() {
        return Err(ApiError::invalid_parameter(
            "ContinuousScanEndTime applies to continuous backups; Coffer's recovery points are snapshots, so leave it out.",
        )
        .into());
    }
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    vaults::get(plane, &a, &r, &input.backup_vault_name).await?;
    plane.storage()?;
    let now = plane.clock().now();
    let job = plane
        .store()
        .write(move |tx| -> Result<ScanJobRecord> {
            let rp = recovery_points::find_in_vault(
                tx,
                &a,
                &r,
                &input.backup_vault_name,
                &input.recovery_point_arn,
            )?;
            let base = match &input.scan_base_recovery_point_arn {
                Some(b) => Some(recovery_points::find(tx, &a, &r, b)?),
                None => None,
            };
            check_start(&input, &rp, base.as_ref())?;
            let mut job = scans::new_job(&rp, Some(input.iam_role_arn.clone()), now);
            job.scanner_role_arn = input.scanner_role_arn.clone();
            job.mode = input.scan_mode.clone();
            job.base_rp_arn = base.map(|b| b.arn);
            scans::insert(tx, job, input.idempotency_token.as_deref())
        })
        .await?;
    plane.running().wake();
    Ok(StartScanJobOutput {
        creation_date: Timestamp(job.creation_date),
        scan_job_id: job.id,
    })
}

pub(crate) async fn describe(
    meta: &Meta,
    ctx: &RequestContext,
    input: DescribeScanJobInput,
) -> Result<DescribeScanJobOutput> {
    let key = scans::key(&ctx.account_id, &ctx.region, &input.scan_job_id);
    let job = meta
        .store()
        .read(move |tx| scans::get(tx, &key))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("Scan job {} does not exist.", input.scan_job_id))
        })?;
    let j = job.listed();
    Ok(DescribeScanJobOutput {
        account_id: j.account_id,
        backup_vault_arn: j.backup_vault_arn,
        backup_vault_name: j.backup_vault_name,
        completion_date: j.completion_date,
        continuous_scan_end_time: j.continuous_scan_end_time,
        continuous_scan_start_time: j.continuous_scan_start_time,
        created_by: j.created_by,
        creation_date: j.creation_date,
        iam_role_arn: j.iam_role_arn,
        malware_scanner: j.malware_scanner,
        recovery_point_arn: j.recovery_point_arn,
        resource_arn: j.resource_arn,
        resource_name: j.resource_name,
        resource_type: j.resource_type,
        scan_base_recovery_point_arn: j.scan_base_recovery_point_arn,
        scan_id: j.scan_id,
        scan_job_id: j.scan_job_id,
        scan_mode: j.scan_mode,
        scan_result: j.scan_result,
        scanner_role_arn: j.scanner_role_arn,
        state: j.state.unwrap_or(ScanState::Created),
        status_message: j.status_message,
    })
}

/// Whether `j` passes ListScanJobs' filters.
fn listed_by(j: &ScanJobRecord, f: &ListScanJobsInput) -> bool {
    let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
    eq(&f.by_backup_vault_name, &j.vault_name)
        && eq(&f.by_recovery_point_arn, &j.rp_arn)
        && eq(&f.by_resource_arn, &j.resource_arn)
        && f.by_resource_type
            .as_ref()
            .is_none_or(|t| t.as_str() == j.resource_type)
        && f.by_state.as_ref().is_none_or(|s| *s == j.state.wire())
        && f.by_scan_result_status
            .as_ref()
            .is_none_or(|s| j.result.as_ref() == Some(s))
        && f.by_complete_after
            .as_ref()
            .is_none_or(|t| j.completion_date.is_some_and(|c| c > t.0))
        && f.by_complete_before
            .as_ref()
            .is_none_or(|t| j.completion_date.is_some_and(|c| c < t.0))
}

pub(crate) async fn list(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListScanJobsInput,
) -> Result<ListScanJobsOutput> {
    if let Some(s) = &input.by_malware_scanner {
        scans::check_scanner(s, "ByMalwareScanner")?;
    }
    let other_account = input
        .by_account_id
        .as_deref()
        .is_some_and(|id| id != ctx.account_id);
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let jobs = if other_account {
        Vec::new()
    } else {
        meta.store().read(move |tx| scans::all(tx, &a, &r)).await?
    };
    let jobs: Vec<ScanJobRecord> = jobs.into_iter().filter(|j| listed_by(j, &input)).collect();
    let (page, next) = paging::page(
        jobs,
        |j| j.id.clone(),
        input.next_token.as_deref(),
        input.max_results,
    )?;
    Ok(ListScanJobsOutput {
        next_token: next,
        scan_jobs: page.iter().map(ScanJobRecord::listed).collect(),
    })
}

/// A summary dimension: each value apart (`None`, `ANY`), folded (`AGGREGATE_ALL`) or one.
fn dimension(filter: Option<&str>, value: &str) -> Option<String> {
    match filter {
        None | Some("ANY") => Some(value.to_string()),
        Some("AGGREGATE_ALL") => Some("AGGREGATE_ALL".to_string()),
        Some(f) if f == value => Some(value.to_string()),
        Some(_) => None,
    }
}

/// The windows of an aggregation period ending at `now`: one per UTC day for the prior 14
/// days (`ONE_DAY`, the default), or one of 7 or 14 days.
fn windows(period: &AggregationPeriod, now: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    match period {
        AggregationPeriod::SevenDays => vec![(now - Duration::days(7), now)],
        AggregationPeriod::FourteenDays => vec![(now - Duration::days(14), now)],
        _ => {
            let today = now
                .date_naive()
                .and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .and_utc();
            (0..14)
                .rev()
                .map(|d| {
                    let start = today - Duration::days(d);
                    (start, (start + Duration::days(1)).min(now))
                })
                .collect()
        }
    }
}

/// (window start, state, resource type, result status).
type SummaryKey = (DateTime<Utc>, String, String, String);

/// Counts `jobs` into summary rows: by window, state, resource type and result status, as
/// the filters of `input` fold or select them.
fn group(
    jobs: &[ScanJobRecord],
    wins: &[(DateTime<Utc>, DateTime<Utc>)],
    input: &ListScanJobSummariesInput,
) -> BTreeMap<SummaryKey, (DateTime<Utc>, i32)> {
    let state_filter = input.state.as_ref().map(ScanJobStatus::as_str);
    let result_filter = input
        .scan_result_status
        .as_ref()
        .map(ScanResultStatus::as_str);
    let mut groups: BTreeMap<SummaryKey, (DateTime<Utc>, i32)> = BTreeMap::new();
    for j in jobs {
        let Some(&(start, end)) = wins
            .iter()
            .find(|(s, e)| j.creation_date >= *s && j.creation_date < *e)
        else {
            continue;
        };
        let result = j.result.as_ref().map_or("", ScanResultStatus::as_str);
        let (Some(state), Some(rtype)) = (
            dimension(state_filter, j.state.summary().as_str()),
            dimension(input.resource_type.as_deref(), &j.resource_type),
        ) else {
            continue;
        };
        if result_filter.is_some_and(|f| f != result) {
            continue;
        }
        let entry = groups
            .entry((start, state, rtype, result.to_string()))
            .or_insert((end, 0));
        entry.1 += 1;
    }
    groups
}

pub(crate) async fn summaries(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListScanJobSummariesInput,
) -> Result<ListScanJobSummariesOutput> {
    if let Some(s) = &input.malware_scanner {
        scans::check_scanner(s, "MalwareScanner")?;
    }
    let period = input
        .aggregation_period
        .clone()
        .unwrap_or(AggregationPeriod::OneDay);
    let other_account = input
        .account_id
        .as_deref()
        .is_some_and(|id| id != ctx.account_id && id != "ANY" && id != "AGGREGATE_ALL");
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let jobs = if other_account {
        Vec::new()
    } else {
        meta.store().read(move |tx| scans::all(tx, &a, &r)).await?
    };
    let groups = group(&jobs, &windows(&period, meta.clock().now()), &input);
    let rows: Vec<(SummaryKey, (DateTime<Utc>, i32))> = groups.into_iter().collect();
    let (page, next) = paging::page(
        rows,
        |((s, st, t, res), _)| format!("{}|{st}|{t}|{res}", s.timestamp()),
        input.next_token.as_deref(),
        input.max_results,
    )?;
    Ok(ListScanJobSummariesOutput {
        aggregation_period: Some(period.to_string()),
        next_token: next,
        scan_job_summaries: Some(
            page.into_iter()
                .map(
                    |((start, state, rtype, result), (end, count))| ScanJobSummary {
                        account_id: Some(ctx.account_id.clone()),
                        count: Some(count),
                        end_time: Some(Timestamp(end)),
                        malware_scanner: Some(MalwareScanner::Guardduty),
                        region: Some(ctx.region.clone()),
                        resource_type: Some(rtype),
                        scan_result_status: (!result.is_empty()).then(|| result.into()),
                        start_time: Some(Timestamp(start)),
                        state: Some(state.into()),
                    },
                )
                .collect(),
        ),
    })
}

/// GetPITRMalwareScanResults: results of scans of a continuous backup at a point in time.
/// Coffer scans the files of snapshot recovery points only (its continuous points, of
/// PostgreSQL databases, hold no files to scan), so no point has such results: the answer is
/// ResourceNotFoundException, as for a point never scanned that way (its scan jobs are read
/// with DescribeScanJob / ListScanJobs).
pub(crate) async fn pitr_results(
    meta: &Meta,
    ctx: &RequestContext,
    input: GetPITRMalwareScanResultsInput,
) -> Result<GetPITRMalwareScanResultsOutput> {
    scans::check_scanner(&input.malware_scanner, "MalwareScanner")?;
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    vaults::get(meta, &a, &r, &input.backup_vault_name).await?;
    let (vault, arn) = (
        input.backup_vault_name.clone(),
        input.recovery_point_arn.clone(),
    );
    meta.store()
        .read(move |tx| recovery_points::find_in_vault(tx, &a, &r, &vault, &arn))
        .await?;
    Err(ApiError::not_found(format!(
        "Recovery point {} has no point-in-time malware scan results: Coffer scans snapshot recovery points and does not scan continuous backups. Its scan jobs are listed by ListScanJobs with ByRecoveryPointArn.",
        input.recovery_point_arn
    ))
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_dimensions_fold_or_filter() {
        assert_eq!(dimension(None, "EBS").as_deref(), Some("EBS"));
        assert_eq!(
            dimension(Some("AGGREGATE_ALL"), "EBS").as_deref(),
            Some("AGGREGATE_ALL")
        );
        assert_eq!(dimension(Some("EFS"), "EBS"), None);
        let now = Utc::now();
        assert_eq!(windows(&AggregationPeriod::OneDay, now).len(), 14);
        assert_eq!(windows(&AggregationPeriod::SevenDays, now).len(), 1);
    }
}
