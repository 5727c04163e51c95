//! The AWS Backup Search operations: search jobs (start, get, list, stop, their recovery
//! points and results), exports of their results, and tags on both. The records and the filter
//! rules are `model::search`; running jobs and writing exports is `dataplane::search`, woken
//! through the runner.

use std::collections::BTreeMap;

use coffer_api::search::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};

use crate::dataplane::Executor;
use crate::model::error::Result;
use crate::model::search::{self, ExportJob, ExportStatus, JobStatus, ResultRow, SearchJob};
use crate::model::{Meta, paging, tags};

fn job_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Search job {id} does not exist in this account and Region."
    ))
    .with_member("resourceId", id)
    .with_member("resourceType", "SearchJob")
}

fn export_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Search result export job {id} does not exist in this account and Region."
    ))
    .with_member("resourceId", id)
    .with_member("resourceType", "SearchResultExportJob")
}

async fn job(meta: &Meta, ctx: &RequestContext, id: &str) -> Result<SearchJob> {
    let (a, r, i) = (ctx.account_id.clone(), ctx.region.clone(), id.to_string());
    meta.store()
        .read(move |tx| search::get_job(tx, &a, &r, &i))
        .await?
        .ok_or_else(|| job_not_found(id).into())
}

pub(crate) async fn start_search_job(
    plane: &Executor,
    ctx: &RequestContext,
    input: StartSearchJobInput,
) -> Result<StartSearchJobOutput> {
    let filters = input.item_filters.clone().unwrap_or_default();
    search::check_request(&input.search_scope, &filters)?;
    let tags_given = input.tags.clone().unwrap_or_default();
    tags::check_initial(&tags_given)?;
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let now = plane.clock().now();
    let id = uuid::Uuid::new_v4().to_string();
    let job = plane
        .store()
        .write(move |tx| -> Result<SearchJob> {
            if let Some(token) = &input.client_token
                && let Some(existing) = search::token_job(tx, &a, &r, token)?
                && let Some(job) = search::get_job(tx, &a, &r, &existing)?
            {
                return Ok(job);
            }
            let points = search::points_in_scope(tx, &a, &r, &input.search_scope)?;
            let empty = points.is_empty();
            let job = SearchJob {
                arn: search::job_arn(&r, &a, &id),
                account: a.clone(),
                region: r.clone(),
                id: id.clone(),
                name: input.name.clone(),
                status: if empty {
                    JobStatus::Completed
                } else {
                    JobStatus::Running
                },
                message: None,
                scope: input.search_scope.clone(),
                filters,
                encryption_key_arn: input.encryption_key_arn.clone(),
                creation: now,
                completion: empty.then_some(now),
                points,
                point: 0,
                after: None,
                items_scanned: 0,
                items_matched: 0,
                token: input.client_token.clone(),
            };
            search::save_job(tx, &job)?;
            tags::set(tx, &job.arn, &tags_given)?;
            if let Some(token) = &input.client_token {
                search::remember_token(tx, &a, &r, token, &id)?;
            }
            Ok(job)
        })
        .await?;
    tracing::info!(search_job = %job.id, recovery_points = job.points.len(), "search job started");
    plane.running().wake();
    Ok(StartSearchJobOutput {
        creation_time: Some(Timestamp(job.creation)),
        search_job_arn: Some(job.arn),
        search_job_identifier: Some(job.id),
    })
}

fn scope_summary(job: &SearchJob) -> SearchScopeSummary {
    SearchScopeSummary {
        total_items_to_scan_count: Some(job.items_to_scan()),
        total_recovery_points_to_scan_count: Some(job.points.len() as i32),
    }
}

pub(crate) async fn get_search_job(
    meta: &Meta,
    ctx: &RequestContext,
    input: GetSearchJobInput,
) -> Result<GetSearchJobOutput> {
    let job = job(meta, ctx, &input.search_job_identifier).await?;
    Ok(GetSearchJobOutput {
        completion_time: job.completion.map(Timestamp),
        creation_time: Timestamp(job.creation),
        current_search_progress: Some(CurrentSearchProgress {
            items_matched_count: Some(job.items_matched),
            items_scanned_count: Some(job.items_scanned),
            recovery_points_scanned_count: Some(job.point.min(job.points.len()) as i32),
        }),
        encryption_key_arn: job.encryption_key_arn.clone(),
        item_filters: job.filters.clone(),
        name: job.name.clone(),
        search_job_arn: job.arn.clone(),
        search_job_identifier: job.id.clone(),
        search_scope: job.scope.clone(),
        search_scope_summary: Some(scope_summary(&job)),
        status: job.status.wire(),
        status_message: job.message.clone(),
    })
}

pub(crate) async fn list_search_jobs(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListSearchJobsInput,
) -> Result<ListSearchJobsOutput> {
    let prefix = format!("{}:{}:", ctx.account_id, ctx.region);
    let (page, next) = meta
        .store()
        .read(move |tx| {
            paging::scan_page(
                tx,
                search::JOBS,
                &prefix,
                input.next_token.as_deref(),
                input.max_results,
                |_, v| {
                    let job: SearchJob = serde_json::from_slice(v)?;
                    if input
                        .by_status
                        .as_ref()
                        .is_some_and(|s| *s != job.status.wire())
                    {
                        return Ok(None);
                    }
                    Ok(Some(SearchJobSummary {
                        completion_time: job.completion.map(Timestamp),
                        creation_time: Some(Timestamp(job.creation)),
                        name: job.name.clone(),
                        search_job_arn: Some(job.arn.clone()),
                        search_job_identifier: Some(job.id.clone()),
                        search_scope_summary: Some(scope_summary(&job)),
                        status: Some(job.status.wire()),
                        status_message: job.message.clone(),
                    }))
                },
            )
        })
        .await?;
    Ok(ListSearchJobsOutput {
        next_token: next,
        search_jobs: page,
    })
}

/// StopSearchJob: a RUNNING job becomes STOPPING; the data plane ends it STOPPED at its next
/// step, keeping the results found so far. A job that has ended, or is stopping, is refused.
pub(crate) async fn stop_search_job(
    plane: &Executor,
    ctx: &RequestContext,
    input: StopSearchJobInput,
) -> Result<StopSearchJobOutput> {
    let (a, r, id) = (
        ctx.account_id.clone(),
        ctx.region.clone(),
        input.search_job_identifier.clone(),
    );
    plane
        .store()
        .write(move |tx| -> Result<()> {
            let mut job = search::get_job(tx, &a, &r, &id)?.ok_or_else(|| job_not_found(&id))?;
            if job.status != JobStatus::Running {
                return Err(ApiError::conflict(format!(
                    "Search job {id} is {}; only a RUNNING search job can be stopped.",
                    job.status.wire().as_str()
                ))
                .with_member("resourceId", id.as_str())
                .with_member("resourceType", "SearchJob")
                .into());
            }
            job.status = JobStatus::Stopping;
            search::save_job(tx, &job)
        })
        .await?;
    plane.running().wake();
    Ok(StopSearchJobOutput {})
}

pub(crate) async fn list_search_job_backups(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListSearchJobBackupsInput,
) -> Result<ListSearchJobBackupsOutput> {
    let job = job(meta, ctx, &input.search_job_identifier).await?;
    let items: Vec<(usize, SearchJobBackupsResult)> = job
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let status = if i < job.point {
                SearchJobState::Completed
            } else if job.status.is_active() {
                SearchJobState::Running
            } else {
                job.status.wire()
            };
            let r = SearchJobBackupsResult {
                backup_creation_time: Some(Timestamp(p.backup_creation)),
                backup_resource_arn: Some(p.rp_arn.clone()),
                index_creation_time: Some(Timestamp(p.index_creation)),
                resource_type: Some(ResourceType::Ebs),
                source_resource_arn: Some(p.resource_arn.clone()),
                status: Some(status),
                status_message: None,
            };
            (i, r)
        })
        .collect();
    let (page, next) = paging::page(
        items,
        |(i, _)| format!("{i:08}"),
        input.next_token.as_deref(),
        input.max_results,
    )?;
    Ok(ListSearchJobBackupsOutput {
        next_token: next,
        results: page.into_iter().map(|(_, r)| r).collect(),
    })
}

pub(crate) async fn list_search_job_results(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListSearchJobResultsInput,
) -> Result<ListSearchJobResultsOutput> {
    job(meta, ctx, &input.search_job_identifier).await?;
    let prefix = search::results_prefix(&ctx.account_id, &ctx.region, &input.search_job_identifier);
    let (page, next) = meta
        .store()
        .read(move |tx| {
            paging::scan_page(
                tx,
                search::RESULTS,
                &prefix,
                input.next_token.as_deref(),
                input.max_results,
                |_, v| {
                    let row: ResultRow = serde_json::from_slice(v)?;
                    Ok(Some(row.item()))
                },
            )
        })
        .await?;
    Ok(ListSearchJobResultsOutput {
        next_token: next,
        results: page,
    })
}

/// The checked destination of an export: a configured bucket and a prefix without `..`.
fn destination(plane: &Executor, spec: &ExportSpecification) -> Result<(String, Option<String>)> {
    let s3 = spec.s3_export_specification.as_ref().ok_or_else(|| {
        ApiError::invalid_parameter(
            "ExportSpecification must give s3ExportSpecification (DestinationBucket, and optionally DestinationPrefix).",
        )
    })?;
    if plane
        .report_buckets()
        .directory(&s3.destination_bucket)
        .is_none()
    {
        return Err(ApiError::invalid_parameter(format!(
            "Bucket {} is not configured on this Coffer server: add it to [[report_buckets]] (bucket and local directory) in the configuration file.",
            s3.destination_bucket
        ))
        .into());
    }
    if let Some(p) = &s3.destination_prefix
        && p.split('/').any(|c| c == ".." || c == ".")
    {
        return Err(ApiError::invalid_parameter(format!(
            "DestinationPrefix '{p}' must not contain '.' or '..' path segments."
        ))
        .into());
    }
    Ok((s3.destination_bucket.clone(), s3.destination_prefix.clone()))
}

pub(crate) async fn start_export(
    plane: &Executor,
    ctx: &RequestContext,
    input: StartSearchResultExportJobInput,
) -> Result<StartSearchResultExportJobOutput> {
    let (bucket, prefix) = destination(plane, &input.export_specification)?;
    let tags_given = input.tags.clone().unwrap_or_default();
    tags::check_initial(&tags_given)?;
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let now = plane.clock().now();
    let id = uuid::Uuid::new_v4().to_string();
    let exp = plane
        .store()
        .write(move |tx| -> Result<ExportJob> {
            let sid = input.search_job_identifier.clone();
            if let Some(token) = &input.client_token
                && let Some(existing) = search::token_job(tx, &a, &r, &format!("export:{token}"))?
                && let Some(exp) = search::get_export(tx, &a, &r, &existing)?
            {
                return Ok(exp);
            }
            let job = search::get_job(tx, &a, &r, &sid)?.ok_or_else(|| job_not_found(&sid))?;
            if job.status.is_active() {
                return Err(ApiError::conflict(format!(
                    "Search job {sid} is {}; export its results once it has ended (COMPLETED or STOPPED).",
                    job.status.wire().as_str()
                ))
                .with_member("resourceId", sid.as_str())
                .with_member("resourceType", "SearchJob")
                .into());
            }
            let exp = ExportJob {
                arn: search::export_arn(&r, &a, &id),
                account: a.clone(),
                region: r.clone(),
                id: id.clone(),
                search_job_id: job.id.clone(),
                search_job_arn: job.arn.clone(),
                bucket,
                prefix,
                role_arn: input.role_arn.clone(),
                status: ExportStatus::Running,
                message: None,
                creation: now,
                completion: None,
                token: input.client_token.clone(),
            };
            search::save_export(tx, &exp)?;
            tags::set(tx, &exp.arn, &tags_given)?;
            if let Some(token) = &input.client_token {
                search::remember_token(tx, &a, &r, &format!("export:{token}"), &id)?;
            }
            Ok(exp)
        })
        .await?;
    plane.running().wake();
    Ok(StartSearchResultExportJobOutput {
        export_job_arn: Some(exp.arn),
        export_job_identifier: exp.id,
    })
}

fn export_status(s: ExportStatus) -> ExportJobStatus {
    match s {
        ExportStatus::Running => ExportJobStatus::Running,
        ExportStatus::Completed => ExportJobStatus::Completed,
        ExportStatus::Failed => ExportJobStatus::Failed,
    }
}

pub(crate) async fn get_export(
    meta: &Meta,
    ctx: &RequestContext,
    input: GetSearchResultExportJobInput,
) -> Result<GetSearchResultExportJobOutput> {
    let (a, r, id) = (
        ctx.account_id.clone(),
        ctx.region.clone(),
        input.export_job_identifier.clone(),
    );
    let exp = meta
        .store()
        .read(move |tx| search::get_export(tx, &a, &r, &id))
        .await?
        .ok_or_else(|| export_not_found(&input.export_job_identifier))?;
    Ok(GetSearchResultExportJobOutput {
        completion_time: exp.completion.map(Timestamp),
        creation_time: Some(Timestamp(exp.creation)),
        export_job_arn: Some(exp.arn.clone()),
        export_job_identifier: exp.id.clone(),
        export_specification: Some(ExportSpecification {
            s3_export_specification: Some(S3ExportSpecification {
                destination_bucket: exp.bucket.clone(),
                destination_prefix: exp.prefix.clone(),
            }),
        }),
        search_job_arn: Some(exp.search_job_arn.clone()),
        status: Some(export_status(exp.status)),
        status_message: exp.message.clone(),
    })
}

pub(crate) async fn list_exports(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListSearchResultExportJobsInput,
) -> Result<ListSearchResultExportJobsOutput> {
    if let Some(sid) = &input.search_job_identifier {
        job(meta, ctx, sid).await?;
    }
    let prefix = format!("{}:{}:", ctx.account_id, ctx.region);
    let (page, next) = meta
        .store()
        .read(move |tx| {
            paging::scan_page(
                tx,
                search::EXPORTS,
                &prefix,
                input.next_token.as_deref(),
                input.max_results,
                |_, v| {
                    let exp: ExportJob = serde_json::from_slice(v)?;
                    let status = export_status(exp.status);
                    if input.status.as_ref().is_some_and(|s| *s != status)
                        || input
                            .search_job_identifier
                            .as_ref()
                            .is_some_and(|s| *s != exp.search_job_id)
                    {
                        return Ok(None);
                    }
                    Ok(Some(ExportJobSummary {
                        completion_time: exp.completion.map(Timestamp),
                        creation_time: Some(Timestamp(exp.creation)),
                        export_job_arn: Some(exp.arn.clone()),
                        export_job_identifier: exp.id.clone(),
                        search_job_arn: Some(exp.search_job_arn.clone()),
                        status: Some(status),
                        status_message: exp.message.clone(),
                    }))
                },
            )
        })
        .await?;
    Ok(ListSearchResultExportJobsOutput {
        export_jobs: page,
        next_token: next,
    })
}

/// Checks that `arn` names a search job or an export job of the caller's account and Region.
fn check_taggable(tx: &mut dyn coffer_store::Txn, ctx: &RequestContext, arn: &str) -> Result<()> {
    let (a, r) = (&ctx.account_id, &ctx.region);
    let found = if let Some(id) = arn.strip_prefix(&search::job_arn(r, a, "")) {
        search::get_job(tx, a, r, id)?.is_some()
    } else if let Some(id) = arn.strip_prefix(&search::export_arn(r, a, "")) {
        search::get_export(tx, a, r, id)?.is_some()
    } else {
        false
    };
    if found {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "{arn} is not a search job or search result export job of this account and Region."
        ))
        .with_member("resourceId", arn)
        .with_member("resourceType", "Resource")
        .into())
    }
}

pub(crate) async fn tag_resource(
    meta: &Meta,
    ctx: &RequestContext,
    input: TagResourceRequest,
) -> Result<TagResourceResponse> {
    tags::check_tags(&input.tags)?;
    let ctx = ctx.clone();
    meta.store()
        .write(move |tx| -> Result<()> {
            check_taggable(tx, &ctx, &input.resource_arn)?;
            let mut have = tags::get(tx, &input.resource_arn)?;
            have.extend(input.tags.clone());
            if have.len() > tags::MAX_TAGS {
                return Err(ApiError::invalid_parameter(format!(
                    "A resource can carry at most {} tags.",
                    tags::MAX_TAGS
                ))
                .into());
            }
            Ok(tags::set(tx, &input.resource_arn, &have)?)
        })
        .await?;
    Ok(TagResourceResponse {})
}

pub(crate) async fn untag_resource(
    meta: &Meta,
    ctx: &RequestContext,
    input: UntagResourceRequest,
) -> Result<UntagResourceResponse> {
    let ctx = ctx.clone();
    meta.store()
        .write(move |tx| -> Result<()> {
            check_taggable(tx, &ctx, &input.resource_arn)?;
            let mut have = tags::get(tx, &input.resource_arn)?;
            for k in &input.tag_keys {
                have.remove(k);
            }
            Ok(tags::set(tx, &input.resource_arn, &have)?)
        })
        .await?;
    Ok(UntagResourceResponse {})
}

pub(crate) async fn list_tags(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListTagsForResourceRequest,
) -> Result<ListTagsForResourceResponse> {
    let ctx = ctx.clone();
    let have: BTreeMap<String, String> = meta
        .store()
        .read(move |tx| -> Result<_> {
            check_taggable(tx, &ctx, &input.resource_arn)?;
            Ok(tags::get(tx, &input.resource_arn)?)
        })
        .await?;
    Ok(ListTagsForResourceResponse { tags: Some(have) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::search::{STEP, run_job, step};
    use crate::model::clock::Clock;
    use crate::model::indexes::{self, IndexRecord, Status};
    use crate::model::inventory::Inventory;
    use coffer_engine::CatalogEntry;
    use coffer_store::StoreHandle;

    const A: &str = "111122223333";
    const R: &str = "us-east-1";

    fn ctx() -> RequestContext {
        RequestContext::new(A, R)
    }

    /// An ACTIVE index of `rp_id` holding `files` (path, size).
    async fn indexed(plane: &Executor, rp_id: &str, files: Vec<(String, u64)>) {
        let now = plane.clock().now();
        let rec = IndexRecord {
            account: A.into(),
            region: R.into(),
            rp_id: rp_id.into(),
            rp_arn: crate::model::arn::recovery_point(R, A, rp_id),
            vault_name: "v".into(),
            vault_arn: crate::model::arn::backup_vault(R, A, "v"),
            resource_arn: format!("arn:aws:elasticfilesystem:{R}:{A}:file-system/fs-{rp_id}"),
            resource_type: "EFS".into(),
            backup_creation_date: now,
            iam_role_arn: None,
            status: Status::Pending,
            message: None,
            creation_date: now,
            completion_date: Some(now),
            deletion_date: None,
            total_items: Some(files.len() as i64),
        };
        plane
            .store()
            .write(move |tx| -> Result<()> {
                let mut rec = indexes::insert_pending(tx, rec)?;
                let rows: Vec<CatalogEntry> = files
                    .iter()
                    .map(|(p, s)| CatalogEntry {
                        path: p.clone(),
                        size: *s,
                        modified_ms: Some(1_000),
                        content_hash: "h".into(),
                    })
                    .collect();
                indexes::put_rows(tx, &rec.key(), &rows)?;
                rec.status = Status::Active;
                indexes::save(tx, &rec)
            })
            .await
            .unwrap();
    }

    fn plane() -> (tempfile::TempDir, Executor) {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        let plane = Executor::new(
            Meta::new(store, Clock::system()),
            Inventory::default(),
            None,
        );
        (dir, plane)
    }

    fn txt_search() -> StartSearchJobInput {
        StartSearchJobInput {
            item_filters: Some(ItemFilters {
                ebs_item_filters: Some(vec![EBSItemFilter {
                    file_paths: Some(vec![StringCondition {
                        operator: Some(StringConditionOperator::EndsWith),
                        value: ".txt".into(),
                    }]),
                    ..Default::default()
                }]),
                s3_item_filters: None,
            }),
            search_scope: SearchScope {
                backup_resource_types: vec![ResourceType::Ebs],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// A catalogue an earlier version wrote (JSON rows) is converted to the compact form: the
    /// same files in the same order, the rows gone, and nothing left to convert afterwards.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_earlier_versions_catalogue_is_converted_to_the_compact_form() {
        let (_dir, plane) = plane();
        let many: Vec<(String, u64)> = (0..STEP * 2 + 10)
            .map(|i| (format!("d/{i:06}.txt"), i as u64))
            .collect();
        indexed(&plane, "rp1", many.clone()).await;
        let before = plane
            .store()
            .read(|tx| indexes::scan_catalog(tx, A, R, "rp1", None, usize::MAX))
            .await
            .unwrap();
        assert_eq!(before.len(), many.len());
        let converted = crate::dataplane::indexes::convert_legacy(&plane)
            .await
            .unwrap();
        assert_eq!(converted, 1);
        let (after, dir, rows) = plane
            .store()
            .read(|tx| -> Result<_> {
                Ok((
                    indexes::scan_catalog(tx, A, R, "rp1", None, usize::MAX)?,
                    crate::model::catalog::get_directory(tx, A, R, "rp1")?,
                    indexes::scan_legacy(tx, A, R, "rp1", None, 10)?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(after, before);
        assert_eq!(dir.unwrap().parts.len(), 3);
        assert!(rows.is_empty(), "the JSON rows are deleted");
        let again = crate::dataplane::indexes::convert_legacy(&plane)
            .await
            .unwrap();
        assert_eq!(again, 0);
    }

    /// A running job found matches after its first step, stops at its next step once
    /// StopSearchJob has marked it (keeping what it found), and cannot be stopped twice; a
    /// second job runs to the end over both recovery points and pages its results.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_search_runs_in_steps_stops_on_request_and_pages_its_results() {
        let (_dir, plane) = plane();
        let many: Vec<(String, u64)> = (0..STEP * 2 + 10)
            .map(|i| {
                (
                    format!("d/{i:06}.{}", if i % 2 == 0 { "txt" } else { "bin" }),
                    i as u64,
                )
            })
            .collect();
        indexed(&plane, "rp1", many).await;
        indexed(
            &plane,
            "rp2",
            vec![("only.txt".into(), 1), ("x.bin".into(), 2)],
        )
        .await;

        let started = start_search_job(&plane, &ctx(), txt_search())
            .await
            .unwrap();
        let id = started.search_job_identifier.unwrap();
        let key = search::key(A, R, &id);
        let mut cursor = None;
        assert!(!step(&plane, &key, &mut cursor).await.unwrap());
        let got = get_search_job(
            &plane,
            &ctx(),
            GetSearchJobInput {
                search_job_identifier: id.clone(),
            },
        )
        .await
        .unwrap();
        assert_eq!(got.status, SearchJobState::Running);
        let progress = got.current_search_progress.unwrap();
        assert_eq!(progress.items_scanned_count, Some(STEP as i64));
        assert_eq!(progress.items_matched_count, Some(STEP as i64 / 2));
        assert_eq!(
            got.search_scope_summary
                .unwrap()
                .total_recovery_points_to_scan_count,
            Some(2)
        );

        stop_search_job(
            &plane,
            &ctx(),
            StopSearchJobInput {
                search_job_identifier: id.clone(),
            },
        )
        .await
        .unwrap();
        assert!(step(&plane, &key, &mut cursor).await.unwrap());
        let got = get_search_job(
            &plane,
            &ctx(),
            GetSearchJobInput {
                search_job_identifier: id.clone(),
            },
        )
        .await
        .unwrap();
        assert_eq!(got.status, SearchJobState::Stopped);
        assert_eq!(
            got.current_search_progress.unwrap().items_matched_count,
            Some(STEP as i64 / 2)
        );
        let again = stop_search_job(
            &plane,
            &ctx(),
            StopSearchJobInput {
                search_job_identifier: id,
            },
        )
        .await
        .unwrap_err();
        assert_eq!(again.0.code(), "ConflictException");

        let started = start_search_job(&plane, &ctx(), txt_search())
            .await
            .unwrap();
        let id = started.search_job_identifier.unwrap();
        run_job(&plane, &search::key(A, R, &id)).await.unwrap();
        let got = get_search_job(
            &plane,
            &ctx(),
            GetSearchJobInput {
                search_job_identifier: id.clone(),
            },
        )
        .await
        .unwrap();
        assert_eq!(got.status, SearchJobState::Completed);
        let expected = (STEP + 5) as i64 + 1;
        assert_eq!(
            got.current_search_progress.unwrap().items_matched_count,
            Some(expected)
        );
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let page = list_search_job_results(
                &plane,
                &ctx(),
                ListSearchJobResultsInput {
                    max_results: Some(1000),
                    next_token: token.clone(),
                    search_job_identifier: id.clone(),
                },
            )
            .await
            .unwrap();
            seen.extend(
                page.results
                    .into_iter()
                    .map(|r| r.ebs_result_item.unwrap().file_path.unwrap()),
            );
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(seen.len() as i64, expected);
        assert!(
            seen.iter()
                .all(|p| p.starts_with('/') && p.ends_with(".txt"))
        );
        assert!(seen.contains(&"/only.txt".to_string()));
        let unique: std::collections::HashSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "no file is reported twice");
    }

    /// Another account sees neither the job nor its results, and its recovery points are not
    /// searched by this one's jobs.
    #[tokio::test(flavor = "multi_thread")]
    async fn search_jobs_belong_to_their_account() {
        let (_dir, plane) = plane();
        indexed(&plane, "rp1", vec![("a.txt".into(), 1)]).await;
        let id = start_search_job(&plane, &ctx(), txt_search())
            .await
            .unwrap()
            .search_job_identifier
            .unwrap();
        let other = RequestContext::new("444455556666", R);
        let e = get_search_job(
            &plane,
            &other,
            GetSearchJobInput {
                search_job_identifier: id,
            },
        )
        .await
        .unwrap_err();
        assert_eq!(e.0.code(), "ResourceNotFoundException");
        let theirs = start_search_job(&plane, &other, txt_search())
            .await
            .unwrap();
        let got = get_search_job(
            &plane,
            &other,
            GetSearchJobInput {
                search_job_identifier: theirs.search_job_identifier.unwrap(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            got.status,
            SearchJobState::Completed,
            "nothing of theirs to read"
        );
        assert_eq!(
            got.search_scope_summary
                .unwrap()
                .total_recovery_points_to_scan_count,
            Some(0)
        );
    }
}
