//! Coffer's domain layer: what the AWS Backup API means, independent of HTTP and of the
//! storage backend.
//!
//! [`Coffer`] implements the generated [`BackupService`] trait. Each area of the API lives in
//! its own module (vaults, ...) and keeps its records in the metadata store, scoped by
//! (account, region). Operations not built yet keep the trait's default answer, a plain
//! "not implemented" error, so the coverage table can be read off the code (see
//! [`coverage`]).

pub mod arn;
pub mod clock;
pub mod coverage;
mod error;
mod paging;
mod tags;
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
}
