//! Coffer's domain: what the AWS Backup API means, independent of HTTP and of the storage
//! backend.
//!
//! The domain is built in layers, each a folder, with dependencies pointing one way (the rule
//! is in docs/architecture.md and checked by `tests/layers.rs`):
//!
//! - [`model`]: records, keys, states and the pure rules; transaction-level reads and writes.
//! - [`dataplane`]: carrying jobs out against the vault repositories; queued removals.
//! - [`control`]: the API operations, one module per area.
//! - [`background`]: the workers (job runner, scheduler with the lifecycle sweep, report
//!   plans).
//!
//! This file is the wiring on top: [`Coffer`] holds the handles and implements the generated
//! [`BackupService`] trait by handing each operation to its control module with only the
//! handle it needs. Operations not built yet keep the trait's default answer, a plain "not
//! implemented" error, so the coverage table can be read off the code (see [`coverage`]).

pub mod background;
pub mod control;
pub mod coverage;
pub mod dataplane;
pub mod model;
mod search_service;
pub mod seed;

use std::sync::Arc;

use async_trait::async_trait;
use coffer_api::types::*;
use coffer_api::{ApiError, BackupService, RequestContext};
use coffer_store::StoreHandle;

use background::history::HistoryWorker;
use background::lifecycle::LifecycleWorker;
use background::reports::ReportWorker;
use background::runner::{Runner, RunnerWorker};
use background::scheduler::Scheduler;
use background::scheduler::SchedulerWorker;
use background::worker::{self, PassSkip, Worker, WorkerHandle};
use control::jobs::{backup, copy, restore, summaries};
use control::{
    airgap, frameworks, indexes, legal_holds, plans, protected, recovery_points, reports,
    restore_access, restore_testing, restore_testing_selections, scans, selections, settings, tags,
    templates, tiering, vault_lock, vault_notifications, vault_policy, vaults,
};
use dataplane::Executor;
use model::Meta;

pub use background::scheduler::CatchUp;
pub use background::time_travel::{Destination, TravelError, Travelled};
pub use dataplane::placement::{Placement, PlacementRule, S3VaultBucket, StorageKind};
pub use dataplane::scans::ScanRuleSet;
pub use dataplane::storage::{TierDirs, VaultStorage, export_vault_key};
pub use model::approvals::{ApprovalTeamEntry, ApprovalTeams, SessionView};
pub use model::arn;
pub use model::clock::{self, Clock};
pub use model::deletions::RemovalStatus;
pub use model::error::Error;
pub use model::events::{self, Claimed, Outbox, OutboxClaim, OutboxCounts, OutboxMessage, Sending};
pub use model::inventory::{self, Inventory, ResourceEntry};
pub use model::reports::{ReportBucketEntry, ReportBuckets};
pub use model::telemetry::{self, Telemetry};
// Access points and composite recovery points
pub use control::access_points::ServedAccessPoint;

/// The Coffer service: domain state behind the AWS Backup API.
#[derive(Clone)]
pub struct Coffer {
    inner: Arc<Inner>,
}

struct Inner {
    plane: Executor,
    runner: Arc<Runner>,
    scheduler: Arc<Scheduler>,
    /// The started workers, in the order they stop: scheduler, lifecycle sweep, report plans,
    /// history pruner, runner.
    workers: std::sync::Mutex<Vec<WorkerHandle>>,
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
    /// How many days finished jobs, idempotency tokens, firings and dead letters are kept
    /// ([`model::history::DEFAULT_RETENTION_DAYS`] unless configured).
    pub history_retention_days: u32,
    /// Seconds a running job's lease holds without renewal: how long after a node dies
    /// another node takes its jobs over (`None`: a minute).
    pub job_lease_secs: Option<u32>,
}

impl Coffer {
    /// A control-plane-only instance: jobs are refused with a clear error.
    pub fn new(store: StoreHandle, clock: Clock) -> Self {
        Coffer {
            inner: Arc::new(Inner {
                plane: Executor::new(Meta::new(store, clock), Inventory::default(), None),
                runner: Arc::new(Runner::new("control-plane-only", 1)),
                scheduler: Arc::default(),
                workers: std::sync::Mutex::default(),
            }),
        }
    }

    /// A full instance that moves data. Call [`Coffer::start_workers`] to run jobs.
    pub fn with_data_plane(store: StoreHandle, clock: Clock, data: DataPlane) -> Self {
        Coffer {
            inner: Arc::new(Inner {
                plane: Executor::new(Meta::new(store, clock), data.inventory, Some(data.storage))
                    .with_history_retention(data.history_retention_days),
                runner: Arc::new(match data.job_lease_secs {
                    Some(secs) => {
                        Runner::new(&data.node_id, data.max_concurrent_jobs).with_lease(secs)
                    }
                    None => Runner::new(&data.node_id, data.max_concurrent_jobs),
                }),
                scheduler: Arc::default(),
                workers: std::sync::Mutex::default(),
            }),
        }
    }

    /// Starts the scheduler, the lifecycle sweep, the report plans' daily runs, the history
    /// pruner and the job runner (needs a tokio runtime).
    pub fn start_workers(&self) {
        if !self.inner.plane.has_storage() {
            return;
        }
        let (plane, scheduler) = (&self.inner.plane, &self.inner.scheduler);
        let workers: [Arc<dyn Worker>; 5] = [
            Arc::new(SchedulerWorker {
                scheduler: scheduler.clone(),
                plane: plane.clone(),
                skip: PassSkip::default(),
            }),
            Arc::new(LifecycleWorker {
                pass: scheduler.pass_lock(),
                plane: plane.clone(),
                skip: PassSkip::default(),
            }),
            Arc::new(ReportWorker {
                pass: scheduler.pass_lock(),
                plane: plane.clone(),
            }),
            Arc::new(HistoryWorker {
                plane: plane.clone(),
            }),
            Arc::new(RunnerWorker {
                runner: self.inner.runner.clone(),
                plane: plane.clone(),
            }),
        ];
        let mut started = self.inner.workers.lock().unwrap_or_else(|e| e.into_inner());
        started.extend(workers.into_iter().map(worker::start));
    }

    /// Stops the workers within `budget`: no plan fires and no job is claimed any more, and
    /// every running job stops at its next checkpoint and goes back to the queue (the next
    /// start runs it again). Returns whether everything stopped in time.
    pub async fn shutdown(&self, budget: std::time::Duration) -> bool {
        let started = tokio::time::Instant::now();
        let workers: Vec<WorkerHandle> =
            std::mem::take(&mut *self.inner.workers.lock().unwrap_or_else(|e| e.into_inner()));
        let mut all = true;
        for w in workers {
            all &= w.stop(budget.saturating_sub(started.elapsed())).await;
        }
        all
    }

    /// Does all the scheduled work due up to the clock's now (see [`Scheduler::catch_up`]).
    pub async fn catch_up(&self) -> Result<CatchUp, ApiError> {
        self.inner
            .scheduler
            .catch_up(&self.inner.plane, &self.inner.runner)
            .await
    }

    /// Moves the development clock to `to`, running the time it skips as if Coffer had been up
    /// (see `background::time_travel`); answers once the target time is reached.
    pub async fn travel(&self, to: Destination) -> Result<Travelled, TravelError> {
        background::time_travel::travel(
            &self.inner.scheduler,
            &self.inner.plane,
            &self.inner.runner,
            to,
            &mut |_| {},
        )
        .await
    }

    fn meta(&self) -> &Meta {
        self.inner.plane.meta()
    }

    /// One page of a recovery point's catalogue (see `model::indexes::scan_catalog`): at most
    /// `limit` files in path order after `after`. What a search reads, page by page.
    pub async fn catalog_page(
        &self,
        account: &str,
        region: &str,
        recovery_point_id: &str,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<coffer_engine::CatalogEntry>, Error> {
        let (a, r, id) = (
            account.to_string(),
            region.to_string(),
            recovery_point_id.to_string(),
        );
        self.meta()
            .store()
            .read(move |tx| model::indexes::scan_catalog(tx, &a, &r, &id, after.as_deref(), limit))
            .await
    }

    /// The rules malware scans evaluate (`scan_rules` in the configuration); load new ones
    /// into it when the configuration is re-read (docs/scans.md).
    pub fn scan_rules(&self) -> &ScanRuleSet {
        self.inner.plane.scan_rules()
    }

    // Access points and composite recovery points
    /// The backup access point whose alias is `alias`, ready for the S3 endpoint to read
    /// (`None` when no access point has that alias).
    pub async fn served_access_point(
        &self,
        alias: &str,
    ) -> Result<Option<ServedAccessPoint>, ApiError> {
        Ok(control::access_points::served(self.plane(), alias).await?)
    }

    pub(crate) fn plane(&self) -> &Executor {
        &self.inner.plane
    }

    pub fn inventory(&self) -> &Inventory {
        self.inner.plane.inventory()
    }

    /// Where report plans' S3 buckets are on this machine (`[[report_buckets]]`); replace it
    /// when the configuration is read.
    pub fn report_buckets(&self) -> &ReportBuckets {
        self.inner.plane.report_buckets()
    }

    /// The approval teams (`[[approval_teams]]`); replace them when the configuration is read.
    pub fn approval_teams(&self) -> &ApprovalTeams {
        self.inner.plane.approval_teams()
    }

    /// Approves the approval session `session_arn` as the member signing with
    /// `access_key_id` (see `control::restore_access::approve`).
    pub async fn approve_session(
        &self,
        access_key_id: &str,
        session_arn: &str,
    ) -> Result<SessionView, ApiError> {
        Ok(restore_access::approve(self.plane(), access_key_id, session_arn).await?)
    }

    /// The approval sessions of the teams `access_key_id` is a member of.
    pub async fn approval_sessions(
        &self,
        access_key_id: &str,
    ) -> Result<Vec<SessionView>, ApiError> {
        Ok(restore_access::sessions(self.plane(), access_key_id).await?)
    }

    /// The notification outbox, for the delivery worker.
    pub fn outbox(&self) -> Outbox {
        Outbox::new(self.store().clone())
    }

    pub fn store(&self) -> &StoreHandle {
        self.meta().store()
    }

    pub fn clock(&self) -> &Clock {
        self.meta().clock()
    }

    /// Wipes all state (development mode's reset).
    /// Recovery point data removals still queued and those given up after their last
    /// attempt (see `model::deletions`), at most `limit` of each, of `account` (every
    /// account when `None`).
    pub async fn deletions(
        &self,
        account: Option<String>,
        limit: usize,
    ) -> Result<(Vec<RemovalStatus>, Vec<RemovalStatus>), Error> {
        self.store()
            .read(move |tx| model::deletions::report(tx, account.as_deref(), limit))
            .await
    }

    pub async fn reset(&self) -> Result<(), ApiError> {
        self.store().clear().await.map_err(ApiError::internal)?;
        self.meta().forget_built();
        Ok(())
    }
}

#[async_trait]
impl BackupService for Coffer {
    async fn create_backup_vault(
        &self,
        ctx: &RequestContext,
        input: CreateBackupVaultInput,
    ) -> Result<CreateBackupVaultOutput, ApiError> {
        Ok(vaults::create(self.meta(), ctx, input).await?)
    }

    async fn describe_backup_vault(
        &self,
        ctx: &RequestContext,
        input: DescribeBackupVaultInput,
    ) -> Result<DescribeBackupVaultOutput, ApiError> {
        Ok(vaults::describe(self.meta(), ctx, input).await?)
    }

    async fn list_backup_vaults(
        &self,
        ctx: &RequestContext,
        input: ListBackupVaultsInput,
    ) -> Result<ListBackupVaultsOutput, ApiError> {
        Ok(vaults::list(self.meta(), ctx, input).await?)
    }

    async fn delete_backup_vault(
        &self,
        ctx: &RequestContext,
        input: DeleteBackupVaultInput,
    ) -> Result<(), ApiError> {
        Ok(vaults::delete(self.meta(), ctx, input).await?)
    }

    // Air-gapped vaults and tiering

    async fn create_logically_air_gapped_backup_vault(
        &self,
        ctx: &RequestContext,
        input: CreateLogicallyAirGappedBackupVaultInput,
    ) -> Result<CreateLogicallyAirGappedBackupVaultOutput, ApiError> {
        Ok(airgap::create(self.meta(), ctx, input).await?)
    }

    // Restore access vaults and approval teams

    async fn create_restore_access_backup_vault(
        &self,
        ctx: &RequestContext,
        input: CreateRestoreAccessBackupVaultInput,
    ) -> Result<CreateRestoreAccessBackupVaultOutput, ApiError> {
        Ok(restore_access::create(self.plane(), ctx, input).await?)
    }

    async fn list_restore_access_backup_vaults(
        &self,
        ctx: &RequestContext,
        input: ListRestoreAccessBackupVaultsInput,
    ) -> Result<ListRestoreAccessBackupVaultsOutput, ApiError> {
        Ok(restore_access::list(self.meta(), ctx, input).await?)
    }

    async fn revoke_restore_access_backup_vault(
        &self,
        ctx: &RequestContext,
        input: RevokeRestoreAccessBackupVaultInput,
    ) -> Result<(), ApiError> {
        Ok(restore_access::revoke(self.plane(), ctx, input).await?)
    }

    async fn associate_backup_vault_mpa_approval_team(
        &self,
        ctx: &RequestContext,
        input: AssociateBackupVaultMpaApprovalTeamInput,
    ) -> Result<(), ApiError> {
        Ok(restore_access::associate(self.plane(), ctx, input).await?)
    }

    async fn disassociate_backup_vault_mpa_approval_team(
        &self,
        ctx: &RequestContext,
        input: DisassociateBackupVaultMpaApprovalTeamInput,
    ) -> Result<(), ApiError> {
        Ok(restore_access::disassociate(self.plane(), ctx, input).await?)
    }

    async fn create_tiering_configuration(
        &self,
        ctx: &RequestContext,
        input: CreateTieringConfigurationInput,
    ) -> Result<CreateTieringConfigurationOutput, ApiError> {
        Ok(tiering::create(self.meta(), ctx, input).await?)
    }

    async fn get_tiering_configuration(
        &self,
        ctx: &RequestContext,
        input: GetTieringConfigurationInput,
    ) -> Result<GetTieringConfigurationOutput, ApiError> {
        Ok(tiering::get(self.meta(), ctx, input).await?)
    }

    async fn update_tiering_configuration(
        &self,
        ctx: &RequestContext,
        input: UpdateTieringConfigurationInput,
    ) -> Result<UpdateTieringConfigurationOutput, ApiError> {
        Ok(tiering::update(self.meta(), ctx, input).await?)
    }

    async fn list_tiering_configurations(
        &self,
        ctx: &RequestContext,
        input: ListTieringConfigurationsInput,
    ) -> Result<ListTieringConfigurationsOutput, ApiError> {
        Ok(tiering::list(self.meta(), ctx, input).await?)
    }

    async fn delete_tiering_configuration(
        &self,
        ctx: &RequestContext,
        input: DeleteTieringConfigurationInput,
    ) -> Result<DeleteTieringConfigurationOutput, ApiError> {
        tiering::delete(self.meta(), ctx, input).await?;
        Ok(DeleteTieringConfigurationOutput {})
    }

    async fn tag_resource(
        &self,
        ctx: &RequestContext,
        input: TagResourceInput,
    ) -> Result<(), ApiError> {
        Ok(tags::tag_resource(self.meta(), ctx, input).await?)
    }

    async fn untag_resource(
        &self,
        ctx: &RequestContext,
        input: UntagResourceInput,
    ) -> Result<(), ApiError> {
        Ok(tags::untag_resource(self.meta(), ctx, input).await?)
    }

    async fn list_tags(
        &self,
        ctx: &RequestContext,
        input: ListTagsInput,
    ) -> Result<ListTagsOutput, ApiError> {
        Ok(tags::list_tags(self.meta(), ctx, input).await?)
    }

    // Audit: frameworks and report plans

    async fn create_framework(
        &self,
        ctx: &RequestContext,
        input: CreateFrameworkInput,
    ) -> Result<CreateFrameworkOutput, ApiError> {
        Ok(frameworks::create(self.meta(), ctx, input).await?)
    }

    async fn describe_framework(
        &self,
        ctx: &RequestContext,
        input: DescribeFrameworkInput,
    ) -> Result<DescribeFrameworkOutput, ApiError> {
        Ok(frameworks::describe(self.meta(), ctx, input).await?)
    }

    async fn list_frameworks(
        &self,
        ctx: &RequestContext,
        input: ListFrameworksInput,
    ) -> Result<ListFrameworksOutput, ApiError> {
        Ok(frameworks::list(self.meta(), ctx, input).await?)
    }

    async fn update_framework(
        &self,
        ctx: &RequestContext,
        input: UpdateFrameworkInput,
    ) -> Result<UpdateFrameworkOutput, ApiError> {
        Ok(frameworks::update(self.meta(), ctx, input).await?)
    }

    async fn delete_framework(
        &self,
        ctx: &RequestContext,
        input: DeleteFrameworkInput,
    ) -> Result<(), ApiError> {
        Ok(frameworks::delete(self.meta(), ctx, input).await?)
    }

    async fn create_report_plan(
        &self,
        ctx: &RequestContext,
        input: CreateReportPlanInput,
    ) -> Result<CreateReportPlanOutput, ApiError> {
        Ok(reports::create(self.plane(), ctx, input).await?)
    }

    async fn describe_report_plan(
        &self,
        ctx: &RequestContext,
        input: DescribeReportPlanInput,
    ) -> Result<DescribeReportPlanOutput, ApiError> {
        Ok(reports::describe(self.meta(), ctx, input).await?)
    }

    async fn list_report_plans(
        &self,
        ctx: &RequestContext,
        input: ListReportPlansInput,
    ) -> Result<ListReportPlansOutput, ApiError> {
        Ok(reports::list(self.meta(), ctx, input).await?)
    }

    async fn update_report_plan(
        &self,
        ctx: &RequestContext,
        input: UpdateReportPlanInput,
    ) -> Result<UpdateReportPlanOutput, ApiError> {
        Ok(reports::update(self.plane(), ctx, input).await?)
    }

    async fn delete_report_plan(
        &self,
        ctx: &RequestContext,
        input: DeleteReportPlanInput,
    ) -> Result<(), ApiError> {
        Ok(reports::delete(self.meta(), ctx, input).await?)
    }

    async fn start_report_job(
        &self,
        ctx: &RequestContext,
        input: StartReportJobInput,
    ) -> Result<StartReportJobOutput, ApiError> {
        Ok(reports::start_job(self.plane(), ctx, input).await?)
    }

    async fn describe_report_job(
        &self,
        ctx: &RequestContext,
        input: DescribeReportJobInput,
    ) -> Result<DescribeReportJobOutput, ApiError> {
        Ok(reports::describe_job(self.meta(), ctx, input).await?)
    }

    async fn list_report_jobs(
        &self,
        ctx: &RequestContext,
        input: ListReportJobsInput,
    ) -> Result<ListReportJobsOutput, ApiError> {
        Ok(reports::list_jobs(self.meta(), ctx, input).await?)
    }

    async fn start_backup_job(
        &self,
        ctx: &RequestContext,
        input: StartBackupJobInput,
    ) -> Result<StartBackupJobOutput, ApiError> {
        Ok(backup::start_backup_job(self.plane(), ctx, input).await?)
    }

    async fn describe_backup_job(
        &self,
        ctx: &RequestContext,
        input: DescribeBackupJobInput,
    ) -> Result<DescribeBackupJobOutput, ApiError> {
        Ok(backup::describe_backup_job(self.meta(), ctx, input).await?)
    }

    async fn list_backup_jobs(
        &self,
        ctx: &RequestContext,
        input: ListBackupJobsInput,
    ) -> Result<ListBackupJobsOutput, ApiError> {
        Ok(backup::list_backup_jobs(self.meta(), ctx, input).await?)
    }

    async fn stop_backup_job(
        &self,
        ctx: &RequestContext,
        input: StopBackupJobInput,
    ) -> Result<(), ApiError> {
        Ok(backup::stop_backup_job(self.plane(), ctx, input).await?)
    }

    async fn start_copy_job(
        &self,
        ctx: &RequestContext,
        input: StartCopyJobInput,
    ) -> Result<StartCopyJobOutput, ApiError> {
        Ok(copy::start_copy_job(self.plane(), ctx, input).await?)
    }

    async fn describe_copy_job(
        &self,
        ctx: &RequestContext,
        input: DescribeCopyJobInput,
    ) -> Result<DescribeCopyJobOutput, ApiError> {
        Ok(copy::describe_copy_job(self.meta(), ctx, input).await?)
    }

    async fn list_copy_jobs(
        &self,
        ctx: &RequestContext,
        input: ListCopyJobsInput,
    ) -> Result<ListCopyJobsOutput, ApiError> {
        Ok(copy::list_copy_jobs(self.meta(), ctx, input).await?)
    }

    async fn start_restore_job(
        &self,
        ctx: &RequestContext,
        input: StartRestoreJobInput,
    ) -> Result<StartRestoreJobOutput, ApiError> {
        Ok(restore::start_restore_job(self.plane(), ctx, input).await?)
    }

    async fn describe_restore_job(
        &self,
        ctx: &RequestContext,
        input: DescribeRestoreJobInput,
    ) -> Result<DescribeRestoreJobOutput, ApiError> {
        Ok(restore::describe_restore_job(self.meta(), ctx, input).await?)
    }

    async fn list_restore_jobs(
        &self,
        ctx: &RequestContext,
        input: ListRestoreJobsInput,
    ) -> Result<ListRestoreJobsOutput, ApiError> {
        Ok(restore::list_restore_jobs(self.meta(), ctx, input).await?)
    }

    async fn list_restore_jobs_by_protected_resource(
        &self,
        ctx: &RequestContext,
        input: ListRestoreJobsByProtectedResourceInput,
    ) -> Result<ListRestoreJobsByProtectedResourceOutput, ApiError> {
        Ok(restore::list_restore_jobs_by_protected_resource(self.meta(), ctx, input).await?)
    }

    async fn get_restore_job_metadata(
        &self,
        ctx: &RequestContext,
        input: GetRestoreJobMetadataInput,
    ) -> Result<GetRestoreJobMetadataOutput, ApiError> {
        Ok(restore::get_restore_job_metadata(self.meta(), ctx, input).await?)
    }

    async fn put_restore_validation_result(
        &self,
        ctx: &RequestContext,
        input: PutRestoreValidationResultInput,
    ) -> Result<(), ApiError> {
        Ok(restore::put_restore_validation_result(self.meta(), ctx, input).await?)
    }

    // Restore testing

    async fn create_restore_testing_plan(
        &self,
        ctx: &RequestContext,
        input: CreateRestoreTestingPlanInput,
    ) -> Result<CreateRestoreTestingPlanOutput, ApiError> {
        let out = restore_testing::create_plan(self.meta(), ctx, input).await?;
        self.inner.scheduler.wake();
        Ok(out)
    }

    async fn get_restore_testing_plan(
        &self,
        ctx: &RequestContext,
        input: GetRestoreTestingPlanInput,
    ) -> Result<GetRestoreTestingPlanOutput, ApiError> {
        Ok(restore_testing::get_plan(self.meta(), ctx, input).await?)
    }

    async fn update_restore_testing_plan(
        &self,
        ctx: &RequestContext,
        input: UpdateRestoreTestingPlanInput,
    ) -> Result<UpdateRestoreTestingPlanOutput, ApiError> {
        let out = restore_testing::update_plan(self.meta(), ctx, input).await?;
        self.inner.scheduler.wake();
        Ok(out)
    }

    async fn list_restore_testing_plans(
        &self,
        ctx: &RequestContext,
        input: ListRestoreTestingPlansInput,
    ) -> Result<ListRestoreTestingPlansOutput, ApiError> {
        Ok(restore_testing::list_plans(self.meta(), ctx, input).await?)
    }

    async fn delete_restore_testing_plan(
        &self,
        ctx: &RequestContext,
        input: DeleteRestoreTestingPlanInput,
    ) -> Result<(), ApiError> {
        Ok(restore_testing::delete_plan(self.meta(), ctx, input).await?)
    }

    async fn create_restore_testing_selection(
        &self,
        ctx: &RequestContext,
        input: CreateRestoreTestingSelectionInput,
    ) -> Result<CreateRestoreTestingSelectionOutput, ApiError> {
        Ok(restore_testing_selections::create(self.meta(), ctx, input).await?)
    }

    async fn get_restore_testing_selection(
        &self,
        ctx: &RequestContext,
        input: GetRestoreTestingSelectionInput,
    ) -> Result<GetRestoreTestingSelectionOutput, ApiError> {
        Ok(restore_testing_selections::get(self.meta(), ctx, input).await?)
    }

    async fn update_restore_testing_selection(
        &self,
        ctx: &RequestContext,
        input: UpdateRestoreTestingSelectionInput,
    ) -> Result<UpdateRestoreTestingSelectionOutput, ApiError> {
        Ok(restore_testing_selections::update(self.meta(), ctx, input).await?)
    }

    async fn list_restore_testing_selections(
        &self,
        ctx: &RequestContext,
        input: ListRestoreTestingSelectionsInput,
    ) -> Result<ListRestoreTestingSelectionsOutput, ApiError> {
        Ok(restore_testing_selections::list(self.meta(), ctx, input).await?)
    }

    async fn delete_restore_testing_selection(
        &self,
        ctx: &RequestContext,
        input: DeleteRestoreTestingSelectionInput,
    ) -> Result<(), ApiError> {
        Ok(restore_testing_selections::delete(self.meta(), ctx, input).await?)
    }

    async fn get_restore_testing_inferred_metadata(
        &self,
        ctx: &RequestContext,
        input: GetRestoreTestingInferredMetadataInput,
    ) -> Result<GetRestoreTestingInferredMetadataOutput, ApiError> {
        Ok(restore_testing::inferred_metadata(self.meta(), ctx, input).await?)
    }

    async fn get_recovery_point_restore_metadata(
        &self,
        ctx: &RequestContext,
        input: GetRecoveryPointRestoreMetadataInput,
    ) -> Result<GetRecoveryPointRestoreMetadataOutput, ApiError> {
        Ok(restore::get_recovery_point_restore_metadata(self.meta(), ctx, input).await?)
    }

    async fn describe_recovery_point(
        &self,
        ctx: &RequestContext,
        input: DescribeRecoveryPointInput,
    ) -> Result<DescribeRecoveryPointOutput, ApiError> {
        Ok(recovery_points::describe(self.meta(), ctx, input).await?)
    }

    async fn list_recovery_points_by_backup_vault(
        &self,
        ctx: &RequestContext,
        input: ListRecoveryPointsByBackupVaultInput,
    ) -> Result<ListRecoveryPointsByBackupVaultOutput, ApiError> {
        Ok(recovery_points::list_by_vault(self.meta(), ctx, input).await?)
    }

    async fn list_recovery_points_by_resource(
        &self,
        ctx: &RequestContext,
        input: ListRecoveryPointsByResourceInput,
    ) -> Result<ListRecoveryPointsByResourceOutput, ApiError> {
        Ok(recovery_points::list_by_resource(self.meta(), ctx, input).await?)
    }

    async fn delete_recovery_point(
        &self,
        ctx: &RequestContext,
        input: DeleteRecoveryPointInput,
    ) -> Result<(), ApiError> {
        Ok(recovery_points::delete(self.plane(), ctx, input).await?)
    }

    // Scan jobs
    async fn start_scan_job(
        &self,
        ctx: &RequestContext,
        input: StartScanJobInput,
    ) -> Result<StartScanJobOutput, ApiError> {
        Ok(scans::start(self.plane(), ctx, input).await?)
    }

    async fn describe_scan_job(
        &self,
        ctx: &RequestContext,
        input: DescribeScanJobInput,
    ) -> Result<DescribeScanJobOutput, ApiError> {
        Ok(scans::describe(self.meta(), ctx, input).await?)
    }

    async fn list_scan_jobs(
        &self,
        ctx: &RequestContext,
        input: ListScanJobsInput,
    ) -> Result<ListScanJobsOutput, ApiError> {
        Ok(scans::list(self.meta(), ctx, input).await?)
    }

    async fn list_scan_job_summaries(
        &self,
        ctx: &RequestContext,
        input: ListScanJobSummariesInput,
    ) -> Result<ListScanJobSummariesOutput, ApiError> {
        Ok(scans::summaries(self.meta(), ctx, input).await?)
    }

    async fn get_pitr_malware_scan_results(
        &self,
        ctx: &RequestContext,
        input: GetPITRMalwareScanResultsInput,
    ) -> Result<GetPITRMalwareScanResultsOutput, ApiError> {
        Ok(scans::pitr_results(self.meta(), ctx, input).await?)
    }

    // Recovery point indexes
    async fn get_recovery_point_index_details(
        &self,
        ctx: &RequestContext,
        input: GetRecoveryPointIndexDetailsInput,
    ) -> Result<GetRecoveryPointIndexDetailsOutput, ApiError> {
        Ok(indexes::get_details(self.meta(), ctx, input).await?)
    }

    async fn list_indexed_recovery_points(
        &self,
        ctx: &RequestContext,
        input: ListIndexedRecoveryPointsInput,
    ) -> Result<ListIndexedRecoveryPointsOutput, ApiError> {
        Ok(indexes::list(self.meta(), ctx, input).await?)
    }

    async fn update_recovery_point_index_settings(
        &self,
        ctx: &RequestContext,
        input: UpdateRecoveryPointIndexSettingsInput,
    ) -> Result<UpdateRecoveryPointIndexSettingsOutput, ApiError> {
        Ok(indexes::update_settings(self.plane(), ctx, input).await?)
    }

    async fn create_legal_hold(
        &self,
        ctx: &RequestContext,
        input: CreateLegalHoldInput,
    ) -> Result<CreateLegalHoldOutput, ApiError> {
        Ok(legal_holds::create(self.meta(), ctx, input).await?)
    }

    async fn get_legal_hold(
        &self,
        ctx: &RequestContext,
        input: GetLegalHoldInput,
    ) -> Result<GetLegalHoldOutput, ApiError> {
        Ok(legal_holds::get(self.meta(), ctx, input).await?)
    }

    async fn list_legal_holds(
        &self,
        ctx: &RequestContext,
        input: ListLegalHoldsInput,
    ) -> Result<ListLegalHoldsOutput, ApiError> {
        Ok(legal_holds::list(self.meta(), ctx, input).await?)
    }

    async fn cancel_legal_hold(
        &self,
        ctx: &RequestContext,
        input: CancelLegalHoldInput,
    ) -> Result<CancelLegalHoldOutput, ApiError> {
        legal_holds::cancel(self.meta(), ctx, input).await?;
        Ok(CancelLegalHoldOutput {})
    }

    async fn list_recovery_points_by_legal_hold(
        &self,
        ctx: &RequestContext,
        input: ListRecoveryPointsByLegalHoldInput,
    ) -> Result<ListRecoveryPointsByLegalHoldOutput, ApiError> {
        Ok(legal_holds::list_recovery_points(self.meta(), ctx, input).await?)
    }

    async fn update_recovery_point_lifecycle(
        &self,
        ctx: &RequestContext,
        input: UpdateRecoveryPointLifecycleInput,
    ) -> Result<UpdateRecoveryPointLifecycleOutput, ApiError> {
        Ok(recovery_points::update_lifecycle(self.meta(), ctx, input).await?)
    }

    async fn list_protected_resources(
        &self,
        ctx: &RequestContext,
        input: ListProtectedResourcesInput,
    ) -> Result<ListProtectedResourcesOutput, ApiError> {
        Ok(protected::list(self.meta(), ctx, input).await?)
    }

    async fn list_protected_resources_by_backup_vault(
        &self,
        ctx: &RequestContext,
        input: ListProtectedResourcesByBackupVaultInput,
    ) -> Result<ListProtectedResourcesByBackupVaultOutput, ApiError> {
        Ok(protected::list_by_vault(self.meta(), ctx, input).await?)
    }

    async fn describe_protected_resource(
        &self,
        ctx: &RequestContext,
        input: DescribeProtectedResourceInput,
    ) -> Result<DescribeProtectedResourceOutput, ApiError> {
        Ok(protected::describe(self.meta(), ctx, input).await?)
    }

    async fn get_supported_resource_types(
        &self,
        _ctx: &RequestContext,
    ) -> Result<GetSupportedResourceTypesOutput, ApiError> {
        Ok(GetSupportedResourceTypesOutput {
            // Every type AWS Backup protects, as AWS lists them (scripts and Terraform check
            // against this list); which of them Coffer can back up today is said by the
            // refusal of a job for another (see docs/jobs.md).
            resource_types: Some(
                model::settings::OPT_IN_DEFAULTS
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
        Ok(vault_policy::put(self.meta(), ctx, input).await?)
    }

    async fn get_backup_vault_access_policy(
        &self,
        ctx: &RequestContext,
        input: GetBackupVaultAccessPolicyInput,
    ) -> Result<GetBackupVaultAccessPolicyOutput, ApiError> {
        Ok(vault_policy::describe(self.meta(), ctx, input).await?)
    }

    async fn delete_backup_vault_access_policy(
        &self,
        ctx: &RequestContext,
        input: DeleteBackupVaultAccessPolicyInput,
    ) -> Result<(), ApiError> {
        Ok(vault_policy::delete(self.meta(), ctx, input).await?)
    }

    async fn put_backup_vault_notifications(
        &self,
        ctx: &RequestContext,
        input: PutBackupVaultNotificationsInput,
    ) -> Result<(), ApiError> {
        Ok(vault_notifications::put(self.meta(), ctx, input).await?)
    }

    async fn get_backup_vault_notifications(
        &self,
        ctx: &RequestContext,
        input: GetBackupVaultNotificationsInput,
    ) -> Result<GetBackupVaultNotificationsOutput, ApiError> {
        Ok(vault_notifications::describe(self.meta(), ctx, input).await?)
    }

    async fn delete_backup_vault_notifications(
        &self,
        ctx: &RequestContext,
        input: DeleteBackupVaultNotificationsInput,
    ) -> Result<(), ApiError> {
        Ok(vault_notifications::delete(self.meta(), ctx, input).await?)
    }

    async fn put_backup_vault_lock_configuration(
        &self,
        ctx: &RequestContext,
        input: PutBackupVaultLockConfigurationInput,
    ) -> Result<(), ApiError> {
        Ok(vault_lock::put(self.meta(), ctx, input).await?)
    }

    async fn delete_backup_vault_lock_configuration(
        &self,
        ctx: &RequestContext,
        input: DeleteBackupVaultLockConfigurationInput,
    ) -> Result<(), ApiError> {
        Ok(vault_lock::delete(self.meta(), ctx, input).await?)
    }

    async fn describe_region_settings(
        &self,
        ctx: &RequestContext,
        input: DescribeRegionSettingsInput,
    ) -> Result<DescribeRegionSettingsOutput, ApiError> {
        Ok(settings::describe_region(self.meta(), ctx, input).await?)
    }

    async fn update_region_settings(
        &self,
        ctx: &RequestContext,
        input: UpdateRegionSettingsInput,
    ) -> Result<(), ApiError> {
        Ok(settings::update_region(self.meta(), ctx, input).await?)
    }

    async fn describe_global_settings(
        &self,
        ctx: &RequestContext,
        input: DescribeGlobalSettingsInput,
    ) -> Result<DescribeGlobalSettingsOutput, ApiError> {
        Ok(settings::describe_global(self.meta(), ctx, input).await?)
    }

    async fn update_global_settings(
        &self,
        ctx: &RequestContext,
        input: UpdateGlobalSettingsInput,
    ) -> Result<(), ApiError> {
        Ok(settings::update_global(self.meta(), ctx, input).await?)
    }

    async fn create_backup_plan(
        &self,
        ctx: &RequestContext,
        input: CreateBackupPlanInput,
    ) -> Result<CreateBackupPlanOutput, ApiError> {
        let out = plans::create(self.meta(), ctx, input).await?;
        self.inner.scheduler.wake();
        Ok(out)
    }

    async fn get_backup_plan(
        &self,
        ctx: &RequestContext,
        input: GetBackupPlanInput,
    ) -> Result<GetBackupPlanOutput, ApiError> {
        Ok(plans::get(self.meta(), ctx, input).await?)
    }

    async fn update_backup_plan(
        &self,
        ctx: &RequestContext,
        input: UpdateBackupPlanInput,
    ) -> Result<UpdateBackupPlanOutput, ApiError> {
        let out = plans::update(self.meta(), ctx, input).await?;
        self.inner.scheduler.wake();
        Ok(out)
    }

    async fn delete_backup_plan(
        &self,
        ctx: &RequestContext,
        input: DeleteBackupPlanInput,
    ) -> Result<DeleteBackupPlanOutput, ApiError> {
        let out = plans::delete(self.meta(), ctx, input).await?;
        self.inner.scheduler.wake();
        Ok(out)
    }

    async fn list_backup_plans(
        &self,
        ctx: &RequestContext,
        input: ListBackupPlansInput,
    ) -> Result<ListBackupPlansOutput, ApiError> {
        Ok(plans::list(self.meta(), ctx, input).await?)
    }

    async fn list_backup_plan_versions(
        &self,
        ctx: &RequestContext,
        input: ListBackupPlanVersionsInput,
    ) -> Result<ListBackupPlanVersionsOutput, ApiError> {
        Ok(plans::list_versions(self.meta(), ctx, input).await?)
    }

    async fn export_backup_plan_template(
        &self,
        ctx: &RequestContext,
        input: ExportBackupPlanTemplateInput,
    ) -> Result<ExportBackupPlanTemplateOutput, ApiError> {
        Ok(templates::export(self.meta(), ctx, input).await?)
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
        let out = selections::create(self.meta(), ctx, input).await?;
        self.inner.scheduler.wake();
        Ok(out)
    }

    async fn get_backup_selection(
        &self,
        ctx: &RequestContext,
        input: GetBackupSelectionInput,
    ) -> Result<GetBackupSelectionOutput, ApiError> {
        Ok(selections::get(self.meta(), ctx, input).await?)
    }

    async fn delete_backup_selection(
        &self,
        ctx: &RequestContext,
        input: DeleteBackupSelectionInput,
    ) -> Result<(), ApiError> {
        let out = selections::delete(self.meta(), ctx, input).await?;
        self.inner.scheduler.wake();
        Ok(out)
    }

    async fn list_backup_selections(
        &self,
        ctx: &RequestContext,
        input: ListBackupSelectionsInput,
    ) -> Result<ListBackupSelectionsOutput, ApiError> {
        Ok(selections::list(self.meta(), ctx, input).await?)
    }

    async fn list_backup_job_summaries(
        &self,
        ctx: &RequestContext,
        input: ListBackupJobSummariesInput,
    ) -> Result<ListBackupJobSummariesOutput, ApiError> {
        Ok(summaries::list_backup_job_summaries(self.meta(), ctx, input).await?)
    }

    async fn list_copy_job_summaries(
        &self,
        ctx: &RequestContext,
        input: ListCopyJobSummariesInput,
    ) -> Result<ListCopyJobSummariesOutput, ApiError> {
        Ok(summaries::list_copy_job_summaries(self.meta(), ctx, input).await?)
    }

    async fn list_restore_job_summaries(
        &self,
        ctx: &RequestContext,
        input: ListRestoreJobSummariesInput,
    ) -> Result<ListRestoreJobSummariesOutput, ApiError> {
        Ok(summaries::list_restore_job_summaries(self.meta(), ctx, input).await?)
    }

    async fn disassociate_recovery_point(
        &self,
        ctx: &RequestContext,
        input: DisassociateRecoveryPointInput,
    ) -> Result<(), ApiError> {
        Ok(recovery_points::disassociate(self.plane(), ctx, input).await?)
    }

    // Access points and composite recovery points
    async fn create_backup_access_point(
        &self,
        ctx: &RequestContext,
        input: CreateBackupAccessPointRequest,
    ) -> Result<CreateBackupAccessPointResponse, ApiError> {
        Ok(control::access_points::create(self.meta(), ctx, input).await?)
    }

    async fn describe_backup_access_point(
        &self,
        ctx: &RequestContext,
        input: DescribeBackupAccessPointInput,
    ) -> Result<DescribeBackupAccessPointResponse, ApiError> {
        Ok(control::access_points::describe(self.meta(), ctx, input).await?)
    }

    async fn delete_backup_access_point(
        &self,
        ctx: &RequestContext,
        input: DeleteBackupAccessPointInput,
    ) -> Result<(), ApiError> {
        Ok(control::access_points::delete(self.meta(), ctx, input).await?)
    }

    async fn list_backup_access_points(
        &self,
        ctx: &RequestContext,
        input: ListBackupAccessPointsRequest,
    ) -> Result<ListBackupAccessPointsResponse, ApiError> {
        Ok(control::access_points::list(self.meta(), ctx, input).await?)
    }

    async fn list_backup_access_points_by_recovery_point(
        &self,
        ctx: &RequestContext,
        input: ListBackupAccessPointsByRecoveryPointRequest,
    ) -> Result<ListBackupAccessPointsByRecoveryPointResponse, ApiError> {
        Ok(control::access_points::list_by_recovery_point(self.meta(), ctx, input).await?)
    }

    async fn list_backup_access_points_by_resource(
        &self,
        ctx: &RequestContext,
        input: ListBackupAccessPointsByResourceRequest,
    ) -> Result<ListBackupAccessPointsByResourceResponse, ApiError> {
        Ok(control::access_points::list_by_resource(self.meta(), ctx, input).await?)
    }

    async fn disassociate_recovery_point_from_parent(
        &self,
        ctx: &RequestContext,
        input: DisassociateRecoveryPointFromParentInput,
    ) -> Result<(), ApiError> {
        Ok(recovery_points::disassociate_from_parent(self.meta(), ctx, input).await?)
    }
}
