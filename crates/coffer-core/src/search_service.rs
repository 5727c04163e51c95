//! The wiring of AWS Backup Search: [`Coffer`] implements the generated
//! [`BackupSearchService`] by handing each operation to `control::search` with only the
//! handle it needs (kept apart from `lib.rs`, which wires AWS Backup).

use async_trait::async_trait;
use coffer_api::search::BackupSearchService;
use coffer_api::search::types::*;
use coffer_api::{ApiError, RequestContext};

use crate::Coffer;
use crate::control::search;

#[async_trait]
impl BackupSearchService for Coffer {
    async fn start_search_job(
        &self,
        ctx: &RequestContext,
        input: StartSearchJobInput,
    ) -> Result<StartSearchJobOutput, ApiError> {
        Ok(search::start_search_job(self.plane(), ctx, input).await?)
    }

    async fn get_search_job(
        &self,
        ctx: &RequestContext,
        input: GetSearchJobInput,
    ) -> Result<GetSearchJobOutput, ApiError> {
        Ok(search::get_search_job(self.plane(), ctx, input).await?)
    }

    async fn list_search_jobs(
        &self,
        ctx: &RequestContext,
        input: ListSearchJobsInput,
    ) -> Result<ListSearchJobsOutput, ApiError> {
        Ok(search::list_search_jobs(self.plane(), ctx, input).await?)
    }

    async fn stop_search_job(
        &self,
        ctx: &RequestContext,
        input: StopSearchJobInput,
    ) -> Result<StopSearchJobOutput, ApiError> {
        Ok(search::stop_search_job(self.plane(), ctx, input).await?)
    }

    async fn list_search_job_backups(
        &self,
        ctx: &RequestContext,
        input: ListSearchJobBackupsInput,
    ) -> Result<ListSearchJobBackupsOutput, ApiError> {
        Ok(search::list_search_job_backups(self.plane(), ctx, input).await?)
    }

    async fn list_search_job_results(
        &self,
        ctx: &RequestContext,
        input: ListSearchJobResultsInput,
    ) -> Result<ListSearchJobResultsOutput, ApiError> {
        Ok(search::list_search_job_results(self.plane(), ctx, input).await?)
    }

    async fn start_search_result_export_job(
        &self,
        ctx: &RequestContext,
        input: StartSearchResultExportJobInput,
    ) -> Result<StartSearchResultExportJobOutput, ApiError> {
        Ok(search::start_export(self.plane(), ctx, input).await?)
    }

    async fn get_search_result_export_job(
        &self,
        ctx: &RequestContext,
        input: GetSearchResultExportJobInput,
    ) -> Result<GetSearchResultExportJobOutput, ApiError> {
        Ok(search::get_export(self.plane(), ctx, input).await?)
    }

    async fn list_search_result_export_jobs(
        &self,
        ctx: &RequestContext,
        input: ListSearchResultExportJobsInput,
    ) -> Result<ListSearchResultExportJobsOutput, ApiError> {
        Ok(search::list_exports(self.plane(), ctx, input).await?)
    }

    async fn tag_resource(
        &self,
        ctx: &RequestContext,
        input: TagResourceRequest,
    ) -> Result<TagResourceResponse, ApiError> {
        Ok(search::tag_resource(self.plane(), ctx, input).await?)
    }

    async fn untag_resource(
        &self,
        ctx: &RequestContext,
        input: UntagResourceRequest,
    ) -> Result<UntagResourceResponse, ApiError> {
        Ok(search::untag_resource(self.plane(), ctx, input).await?)
    }

    async fn list_tags_for_resource(
        &self,
        ctx: &RequestContext,
        input: ListTagsForResourceRequest,
    ) -> Result<ListTagsForResourceResponse, ApiError> {
        Ok(search::list_tags(self.plane(), ctx, input).await?)
    }
}
