//! Coffer's domain layer: what the AWS Backup API means, independent of HTTP and of the
//! storage backend.
//!
//! [`Coffer`] implements the generated [`BackupService`] trait. Each area of the API lives in
//! its own module (vaults, plans, selections, templates, ...) and keeps its records in the metadata store, scoped by
//! (account, region). Operations not built yet keep the trait's default answer, a plain
//! "not implemented" error, so the coverage table can be read off the code (see
//! [`coverage`]).

pub mod arn;
pub mod clock;
pub mod coverage;
mod error;
mod paging;
mod plan_rules;
mod plans;
mod selections;
mod tags;
mod templates;
mod vaults;

use std::sync::Arc;

use async_trait::async_trait;
use coffer_api::types::*;
use coffer_api::{ApiError, BackupService, RequestContext};
use coffer_store::StoreHandle;

pub use clock::Clock;
pub use error::Error;

/// The Coffer service: domain state behind the AWS Backup API.
#[derive(Clone)]
pub struct Coffer {
    inner: Arc<Inner>,
}

struct Inner {
    store: StoreHandle,
    clock: Clock,
}

impl Coffer {
    pub fn new(store: StoreHandle, clock: Clock) -> Self {
        Coffer {
            inner: Arc::new(Inner { store, clock }),
        }
    }

    pub fn store(&self) -> &StoreHandle {
        &self.inner.store
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Wipes all state (development mode's reset).
    pub async fn reset(&self) -> Result<(), ApiError> {
        self.inner.store.clear().await.map_err(ApiError::internal)
    }
}

#[async_trait]
impl BackupService for Coffer {
    async fn create_backup_vault(
        &self,
        ctx: &RequestContext,
        input: CreateBackupVaultInput,
    ) -> Result<CreateBackupVaultOutput, ApiError> {
        Ok(vaults::create(self, ctx, input).await?)
    }

    async fn describe_backup_vault(
        &self,
        ctx: &RequestContext,
        input: DescribeBackupVaultInput,
    ) -> Result<DescribeBackupVaultOutput, ApiError> {
        Ok(vaults::describe(self, ctx, input).await?)
    }

    async fn list_backup_vaults(
        &self,
        ctx: &RequestContext,
        input: ListBackupVaultsInput,
    ) -> Result<ListBackupVaultsOutput, ApiError> {
        Ok(vaults::list(self, ctx, input).await?)
    }

    async fn delete_backup_vault(
        &self,
        ctx: &RequestContext,
        input: DeleteBackupVaultInput,
    ) -> Result<(), ApiError> {
        Ok(vaults::delete(self, ctx, input).await?)
    }

    async fn tag_resource(
        &self,
        ctx: &RequestContext,
        input: TagResourceInput,
    ) -> Result<(), ApiError> {
        Ok(tags::tag_resource(self, ctx, input).await?)
    }

    async fn untag_resource(
        &self,
        ctx: &RequestContext,
        input: UntagResourceInput,
    ) -> Result<(), ApiError> {
        Ok(tags::untag_resource(self, ctx, input).await?)
    }

    async fn list_tags(
        &self,
        ctx: &RequestContext,
        input: ListTagsInput,
    ) -> Result<ListTagsOutput, ApiError> {
        Ok(tags::list_tags(self, ctx, input).await?)
    }

    async fn create_backup_plan(
        &self,
        ctx: &RequestContext,
        input: CreateBackupPlanInput,
    ) -> Result<CreateBackupPlanOutput, ApiError> {
        Ok(plans::create(self, ctx, input).await?)
    }

    async fn get_backup_plan(
        &self,
        ctx: &RequestContext,
        input: GetBackupPlanInput,
    ) -> Result<GetBackupPlanOutput, ApiError> {
        Ok(plans::get(self, ctx, input).await?)
    }

    async fn update_backup_plan(
        &self,
        ctx: &RequestContext,
        input: UpdateBackupPlanInput,
    ) -> Result<UpdateBackupPlanOutput, ApiError> {
        Ok(plans::update(self, ctx, input).await?)
    }

    async fn delete_backup_plan(
        &self,
        ctx: &RequestContext,
        input: DeleteBackupPlanInput,
    ) -> Result<DeleteBackupPlanOutput, ApiError> {
        Ok(plans::delete(self, ctx, input).await?)
    }

    async fn list_backup_plans(
        &self,
        ctx: &RequestContext,
        input: ListBackupPlansInput,
    ) -> Result<ListBackupPlansOutput, ApiError> {
        Ok(plans::list(self, ctx, input).await?)
    }

    async fn list_backup_plan_versions(
        &self,
        ctx: &RequestContext,
        input: ListBackupPlanVersionsInput,
    ) -> Result<ListBackupPlanVersionsOutput, ApiError> {
        Ok(plans::list_versions(self, ctx, input).await?)
    }

    async fn export_backup_plan_template(
        &self,
        ctx: &RequestContext,
        input: ExportBackupPlanTemplateInput,
    ) -> Result<ExportBackupPlanTemplateOutput, ApiError> {
        Ok(templates::export(self, ctx, input).await?)
    }

    async fn get_backup_plan_from_json(
        &self,
        _ctx: &RequestContext,
        input: GetBackupPlanFromJSONInput,
    ) -> Result<GetBackupPlanFromJSONOutput, ApiError> {
        Ok(templates::from_json(input).await?)
    }

    async fn get_backup_plan_from_template(
        &self,
        _ctx: &RequestContext,
        input: GetBackupPlanFromTemplateInput,
    ) -> Result<GetBackupPlanFromTemplateOutput, ApiError> {
        Ok(templates::get(input).await?)
    }

    async fn list_backup_plan_templates(
        &self,
        _ctx: &RequestContext,
        input: ListBackupPlanTemplatesInput,
    ) -> Result<ListBackupPlanTemplatesOutput, ApiError> {
        Ok(templates::list(input).await?)
    }

    async fn create_backup_selection(
        &self,
        ctx: &RequestContext,
        input: CreateBackupSelectionInput,
    ) -> Result<CreateBackupSelectionOutput, ApiError> {
        Ok(selections::create(self, ctx, input).await?)
    }

    async fn get_backup_selection(
        &self,
        ctx: &RequestContext,
        input: GetBackupSelectionInput,
    ) -> Result<GetBackupSelectionOutput, ApiError> {
        Ok(selections::get(self, ctx, input).await?)
    }

    async fn delete_backup_selection(
        &self,
        ctx: &RequestContext,
        input: DeleteBackupSelectionInput,
    ) -> Result<(), ApiError> {
        Ok(selections::delete(self, ctx, input).await?)
    }

    async fn list_backup_selections(
        &self,
        ctx: &RequestContext,
        input: ListBackupSelectionsInput,
    ) -> Result<ListBackupSelectionsOutput, ApiError> {
        Ok(selections::list(self, ctx, input).await?)
    }
}
