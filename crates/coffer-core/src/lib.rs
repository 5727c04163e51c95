//! Coffer's domain layer: what the AWS Backup API means, independent of HTTP and of the
//! storage backend.
//!
//! [`Coffer`] implements the generated [`BackupService`] trait. Each area of the API lives in
//! its own module (vaults and their policy, notifications and lock; settings; ...) and keeps its records in the metadata store, scoped by
//! (account, region). Operations not built yet keep the trait's default answer, a plain
//! "not implemented" error, so the coverage table can be read off the code (see
//! [`coverage`]).

pub mod arn;
pub mod clock;
pub mod coverage;
mod error;
mod paging;
mod settings;
mod tags;
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
}
