//! Coffer's domain layer: what the AWS Backup API means, independent of HTTP and of the
//! storage backend.
//!
//! [`Coffer`] implements the generated [`BackupService`] trait. Each area of the API lives in
//! its own module (vaults and their policy, notifications and lock; settings; plans, selections
//! and templates; jobs, recovery points and protected resources) and keeps its records in the
//! metadata store, scoped by
//! (account, region). The `scheduler` makes plans run on their own: firings, lifecycle, and
//! the catch-up the development clock waits for. Operations not built yet keep the trait's default answer, a plain
//! "not implemented" error, so the coverage table can be read off the code (see
//! [`coverage`]).

pub mod arn;
pub mod clock;
pub mod coverage;
mod error;
pub mod events;
pub mod inventory;
mod jobs;
mod paging;
mod plan_rules;
mod plans;
mod protected;
mod recovery_points;
mod scheduler;
mod selections;
mod settings;
mod storage;
mod tags;
mod templates;
mod vault_lock;
mod vault_notifications;
mod vault_policy;
mod vaults;

use std::sync::Arc;

use async_trait::async_trait;
use coffer_api::types::*;
use coffer_api::{ApiError, BackupService, RequestContext};
use coffer_store::StoreHandle;

pub use clock::Clock;
pub use error::Error;
pub use events::{Outbox, OutboxCounts, OutboxMessage};
pub use inventory::{Inventory, ResourceEntry};
pub use jobs::Runner;
pub use scheduler::{CatchUp, Scheduler};
pub use storage::{VaultStorage, export_vault_key};

/// The Coffer service: domain state behind the AWS Backup API.
#[derive(Clone)]
pub struct Coffer {
    inner: Arc<Inner>,
}

struct Inner {
    store: StoreHandle,
    clock: Clock,
    inventory: Inventory,
    storage: Option<Arc<VaultStorage>>,
    runner: Runner,
    scheduler: Scheduler,
}

/// How the data plane runs.
pub struct DataPlane {
    /// Vault repositories and the master key live here.
    pub storage: VaultStorage,
    /// The resources that can be backed up.
    pub inventory: Inventory,
    /// This node's id (kept in the data directory), for job leases.
    pub node_id: String,
    /// How many jobs run at once; the rest wait in CREATED.
    pub max_concurrent_jobs: usize,
}

impl Coffer {
    /// A control-plane-only instance: jobs are refused with a clear error.
    pub fn new(store: StoreHandle, clock: Clock) -> Self {
        Coffer {
            inner: Arc::new(Inner {
                store,
                clock,
                inventory: Inventory::default(),
                storage: None,
                runner: Runner::new("control-plane-only", 1),
                scheduler: Scheduler::default(),
            }),
        }
    }

    /// A full instance that moves data. Call [`Coffer::start_workers`] to run jobs.
    pub fn with_data_plane(store: StoreHandle, clock: Clock, data: DataPlane) -> Self {
        Coffer {
            inner: Arc::new(Inner {
                store,
                clock,
                inventory: data.inventory,
                storage: Some(Arc::new(data.storage)),
                runner: Runner::new(&data.node_id, data.max_concurrent_jobs),
                scheduler: Scheduler::default(),
            }),
        }
    }

    /// Starts the job runner and the scheduler (needs a tokio runtime).
    pub fn start_workers(&self) {
        if self.inner.storage.is_some() {
            Runner::start(self);
            Scheduler::start(self);
        }
    }

    pub(crate) fn scheduler(&self) -> &Scheduler {
        &self.inner.scheduler
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inner.inventory
    }

    pub(crate) fn runner(&self) -> &Runner {
        &self.inner.runner
    }

    pub(crate) fn storage(&self) -> Result<&VaultStorage, ApiError> {
        self.inner.storage.as_deref().ok_or_else(|| {
            ApiError::invalid_request("This Coffer instance has no data plane; jobs cannot run.")
        })
    }

    /// The notification outbox, for the delivery worker.
    pub fn outbox(&self) -> Outbox {
        Outbox::new(self.inner.store.clone())
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

    async fn start_backup_job(
        &self,
        ctx: &RequestContext,
        input: StartBackupJobInput,
    ) -> Result<StartBackupJobOutput, ApiError> {
        Ok(jobs::start_backup_job(self, ctx, input).await?)
    }

    async fn describe_backup_job(
        &self,
        ctx: &RequestContext,
        input: DescribeBackupJobInput,
    ) -> Result<DescribeBackupJobOutput, ApiError> {
        Ok(jobs::describe_backup_job(self, ctx, input).await?)
    }

    async fn list_backup_jobs(
        &self,
        ctx: &RequestContext,
        input: ListBackupJobsInput,
    ) -> Result<ListBackupJobsOutput, ApiError> {
        Ok(jobs::list_backup_jobs(self, ctx, input).await?)
    }

    async fn stop_backup_job(
        &self,
        ctx: &RequestContext,
        input: StopBackupJobInput,
    ) -> Result<(), ApiError> {
        Ok(jobs::stop_backup_job(self, ctx, input).await?)
    }

    async fn start_copy_job(
        &self,
        ctx: &RequestContext,
        input: StartCopyJobInput,
    ) -> Result<StartCopyJobOutput, ApiError> {
        Ok(jobs::start_copy_job(self, ctx, input).await?)
    }

    async fn describe_copy_job(
        &self,
        ctx: &RequestContext,
        input: DescribeCopyJobInput,
    ) -> Result<DescribeCopyJobOutput, ApiError> {
        Ok(jobs::describe_copy_job(self, ctx, input).await?)
    }

    async fn list_copy_jobs(
        &self,
        ctx: &RequestContext,
        input: ListCopyJobsInput,
    ) -> Result<ListCopyJobsOutput, ApiError> {
        Ok(jobs::list_copy_jobs(self, ctx, input).await?)
    }

    async fn start_restore_job(
        &self,
        ctx: &RequestContext,
        input: StartRestoreJobInput,
    ) -> Result<StartRestoreJobOutput, ApiError> {
        Ok(jobs::start_restore_job(self, ctx, input).await?)
    }

    async fn describe_restore_job(
        &self,
        ctx: &RequestContext,
        input: DescribeRestoreJobInput,
    ) -> Result<DescribeRestoreJobOutput, ApiError> {
        Ok(jobs::describe_restore_job(self, ctx, input).await?)
    }

    async fn list_restore_jobs(
        &self,
        ctx: &RequestContext,
        input: ListRestoreJobsInput,
    ) -> Result<ListRestoreJobsOutput, ApiError> {
        Ok(jobs::list_restore_jobs(self, ctx, input).await?)
    }

    async fn list_restore_jobs_by_protected_resource(
        &self,
        ctx: &RequestContext,
        input: ListRestoreJobsByProtectedResourceInput,
    ) -> Result<ListRestoreJobsByProtectedResourceOutput, ApiError> {
        Ok(jobs::list_restore_jobs_by_protected_resource(self, ctx, input).await?)
    }

    async fn get_restore_job_metadata(
        &self,
        ctx: &RequestContext,
        input: GetRestoreJobMetadataInput,
    ) -> Result<GetRestoreJobMetadataOutput, ApiError> {
        Ok(jobs::get_restore_job_metadata(self, ctx, input).await?)
    }

    async fn put_restore_validation_result(
        &self,
        ctx: &RequestContext,
        input: PutRestoreValidationResultInput,
    ) -> Result<(), ApiError> {
        Ok(jobs::put_restore_validation_result(self, ctx, input).await?)
    }

    async fn get_recovery_point_restore_metadata(
        &self,
        ctx: &RequestContext,
        input: GetRecoveryPointRestoreMetadataInput,
    ) -> Result<GetRecoveryPointRestoreMetadataOutput, ApiError> {
        Ok(jobs::get_recovery_point_restore_metadata(self, ctx, input).await?)
    }

    async fn describe_recovery_point(
        &self,
        ctx: &RequestContext,
        input: DescribeRecoveryPointInput,
    ) -> Result<DescribeRecoveryPointOutput, ApiError> {
        Ok(recovery_points::describe(self, ctx, input).await?)
    }

    async fn list_recovery_points_by_backup_vault(
        &self,
        ctx: &RequestContext,
        input: ListRecoveryPointsByBackupVaultInput,
    ) -> Result<ListRecoveryPointsByBackupVaultOutput, ApiError> {
        Ok(recovery_points::list_by_vault(self, ctx, input).await?)
    }

    async fn list_recovery_points_by_resource(
        &self,
        ctx: &RequestContext,
        input: ListRecoveryPointsByResourceInput,
    ) -> Result<ListRecoveryPointsByResourceOutput, ApiError> {
        Ok(recovery_points::list_by_resource(self, ctx, input).await?)
    }

    async fn delete_recovery_point(
        &self,
        ctx: &RequestContext,
        input: DeleteRecoveryPointInput,
    ) -> Result<(), ApiError> {
        Ok(recovery_points::delete(self, ctx, input).await?)
    }

    async fn update_recovery_point_lifecycle(
        &self,
        ctx: &RequestContext,
        input: UpdateRecoveryPointLifecycleInput,
    ) -> Result<UpdateRecoveryPointLifecycleOutput, ApiError> {
        Ok(recovery_points::update_lifecycle(self, ctx, input).await?)
    }

    async fn list_protected_resources(
        &self,
        ctx: &RequestContext,
        input: ListProtectedResourcesInput,
    ) -> Result<ListProtectedResourcesOutput, ApiError> {
        Ok(protected::list(self, ctx, input).await?)
    }

    async fn list_protected_resources_by_backup_vault(
        &self,
        ctx: &RequestContext,
        input: ListProtectedResourcesByBackupVaultInput,
    ) -> Result<ListProtectedResourcesByBackupVaultOutput, ApiError> {
        Ok(protected::list_by_vault(self, ctx, input).await?)
    }

    async fn describe_protected_resource(
        &self,
        ctx: &RequestContext,
        input: DescribeProtectedResourceInput,
    ) -> Result<DescribeProtectedResourceOutput, ApiError> {
        Ok(protected::describe(self, ctx, input).await?)
    }

    async fn get_supported_resource_types(
        &self,
        _ctx: &RequestContext,
    ) -> Result<GetSupportedResourceTypesOutput, ApiError> {
        Ok(GetSupportedResourceTypesOutput {
            resource_types: Some(
                inventory::SUPPORTED_TYPES
                    .iter()
                    .map(|(t, _)| t.to_string())
                    .collect(),
            ),
        })
    }

    async fn put_backup_vault_access_policy(
        &self,
        ctx: &RequestContext,
        input: PutBackupVaultAccessPolicyInput,
    ) -> Result<(), ApiError> {
        Ok(vault_policy::put(self, ctx, input).await?)
    }

    async fn get_backup_vault_access_policy(
        &self,
        ctx: &RequestContext,
        input: GetBackupVaultAccessPolicyInput,
    ) -> Result<GetBackupVaultAccessPolicyOutput, ApiError> {
        Ok(vault_policy::describe(self, ctx, input).await?)
    }

    async fn delete_backup_vault_access_policy(
        &self,
        ctx: &RequestContext,
        input: DeleteBackupVaultAccessPolicyInput,
    ) -> Result<(), ApiError> {
        Ok(vault_policy::delete(self, ctx, input).await?)
    }

    async fn put_backup_vault_notifications(
        &self,
        ctx: &RequestContext,
        input: PutBackupVaultNotificationsInput,
    ) -> Result<(), ApiError> {
        Ok(vault_notifications::put(self, ctx, input).await?)
    }

    async fn get_backup_vault_notifications(
        &self,
        ctx: &RequestContext,
        input: GetBackupVaultNotificationsInput,
    ) -> Result<GetBackupVaultNotificationsOutput, ApiError> {
        Ok(vault_notifications::describe(self, ctx, input).await?)
    }

    async fn delete_backup_vault_notifications(
        &self,
        ctx: &RequestContext,
        input: DeleteBackupVaultNotificationsInput,
    ) -> Result<(), ApiError> {
        Ok(vault_notifications::delete(self, ctx, input).await?)
    }

    async fn put_backup_vault_lock_configuration(
        &self,
        ctx: &RequestContext,
        input: PutBackupVaultLockConfigurationInput,
    ) -> Result<(), ApiError> {
        Ok(vault_lock::put(self, ctx, input).await?)
    }

    async fn delete_backup_vault_lock_configuration(
        &self,
        ctx: &RequestContext,
        input: DeleteBackupVaultLockConfigurationInput,
    ) -> Result<(), ApiError> {
        Ok(vault_lock::delete(self, ctx, input).await?)
    }

    async fn describe_region_settings(
        &self,
        ctx: &RequestContext,
        input: DescribeRegionSettingsInput,
    ) -> Result<DescribeRegionSettingsOutput, ApiError> {
        Ok(settings::describe_region(self, ctx, input).await?)
    }

    async fn update_region_settings(
        &self,
        ctx: &RequestContext,
        input: UpdateRegionSettingsInput,
    ) -> Result<(), ApiError> {
        Ok(settings::update_region(self, ctx, input).await?)
    }

    async fn describe_global_settings(
        &self,
        ctx: &RequestContext,
        input: DescribeGlobalSettingsInput,
    ) -> Result<DescribeGlobalSettingsOutput, ApiError> {
        Ok(settings::describe_global(self, ctx, input).await?)
    }

    async fn update_global_settings(
        &self,
        ctx: &RequestContext,
        input: UpdateGlobalSettingsInput,
    ) -> Result<(), ApiError> {
        Ok(settings::update_global(self, ctx, input).await?)
    }

    async fn create_backup_plan(
        &self,
        ctx: &RequestContext,
        input: CreateBackupPlanInput,
    ) -> Result<CreateBackupPlanOutput, ApiError> {
        let out = plans::create(self, ctx, input).await?;
        self.scheduler().wake();
        Ok(out)
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
        let out = plans::update(self, ctx, input).await?;
        self.scheduler().wake();
        Ok(out)
    }

    async fn delete_backup_plan(
        &self,
        ctx: &RequestContext,
        input: DeleteBackupPlanInput,
    ) -> Result<DeleteBackupPlanOutput, ApiError> {
        let out = plans::delete(self, ctx, input).await?;
        self.scheduler().wake();
        Ok(out)
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
        let out = selections::create(self, ctx, input).await?;
        self.scheduler().wake();
        Ok(out)
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
        let out = selections::delete(self, ctx, input).await?;
        self.scheduler().wake();
        Ok(out)
    }

    async fn list_backup_selections(
        &self,
        ctx: &RequestContext,
        input: ListBackupSelectionsInput,
    ) -> Result<ListBackupSelectionsOutput, ApiError> {
        Ok(selections::list(self, ctx, input).await?)
    }

    async fn list_backup_job_summaries(
        &self,
        ctx: &RequestContext,
        input: ListBackupJobSummariesInput,
    ) -> Result<ListBackupJobSummariesOutput, ApiError> {
        Ok(jobs::list_backup_job_summaries(self, ctx, input).await?)
    }

    async fn list_copy_job_summaries(
        &self,
        ctx: &RequestContext,
        input: ListCopyJobSummariesInput,
    ) -> Result<ListCopyJobSummariesOutput, ApiError> {
        Ok(jobs::list_copy_job_summaries(self, ctx, input).await?)
    }

    async fn list_restore_job_summaries(
        &self,
        ctx: &RequestContext,
        input: ListRestoreJobSummariesInput,
    ) -> Result<ListRestoreJobSummariesOutput, ApiError> {
        Ok(jobs::list_restore_job_summaries(self, ctx, input).await?)
    }

    async fn disassociate_recovery_point(
        &self,
        ctx: &RequestContext,
        input: DisassociateRecoveryPointInput,
    ) -> Result<(), ApiError> {
        Ok(recovery_points::disassociate(self, ctx, input).await?)
    }
}
