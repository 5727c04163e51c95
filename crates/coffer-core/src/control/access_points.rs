//! The backup access point operations (Create, Describe, Delete, List, ListByRecoveryPoint,
//! ListByResource) and what the S3 endpoint asks to serve one ([`served`]). Records and rules
//! are in `model::access_points`; see docs/access-points.md.

use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext};
use coffer_engine::{SnapshotRef, VaultRepo};

use crate::dataplane::{Executor, tiers};
use crate::model::access_points::{self, AccessPointRecord};
use crate::model::error::Result;
use crate::model::paging::page;
use crate::model::recovery_points::{self, RecoveryPointRecord};
use crate::model::states::RecoveryPointStatus;
use crate::model::{Meta, tags, vaults};

/// The metadata key AWS uses for a continuous backup's point in time; Coffer's recovery points
/// are snapshots, for which AWS refuses it.
const POINT_IN_TIME_KEY: &str = "AccessPointInTime";

pub(crate) async fn create(
    meta: &Meta,
    ctx: &RequestContext,
    input: CreateBackupAccessPointRequest,
) -> Result<CreateBackupAccessPointResponse> {
    let metadata = input.access_point_metadata.unwrap_or_default();
    if metadata.contains_key(POINT_IN_TIME_KEY) {
        return Err(ApiError::invalid_parameter(
            "AccessPointInTime applies to continuous backups only; Coffer's recovery points are snapshots: leave it out of AccessPointMetadata.",
        )
        .into());
    }
    if metadata.contains_key(access_points::ALIAS_METADATA_KEY) {
        return Err(ApiError::invalid_parameter(
            "AccessPointAlias is chosen by Coffer (it is the bucket name on the S3 endpoint): leave it out of AccessPointMetadata.",
        )
        .into());
    }
    if let Some(p) = &input.access_point_policy {
        access_points::check_policy(p)?;
    }
    let initial_tags = input.tags.unwrap_or_default();
    tags::check_initial(&initial_tags)?;
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let now = meta.clock().now();
    let uid = uuid::Uuid::new_v4().simple().to_string();
    let ap = meta
        .store()
        .write(move |tx| -> Result<AccessPointRecord> {
            let rp = recovery_points::find(tx, &a, &r, &input.recovery_point_arn)?;
            if rp.composite.is_parent {
                return Err(ApiError::invalid_request(format!(
                    "Recovery point {} is a composite recovery point, which holds no files of its own; create the access point on one of its nested recovery points.",
                    rp.arn
                ))
                .into());
            }
            if rp.status != RecoveryPointStatus::Completed {
                return Err(ApiError::invalid_request(format!(
                    "Recovery point {} is not COMPLETED; an access point serves a completed recovery point only.",
                    rp.arn
                ))
                .into());
            }
            let ap = AccessPointRecord::new(
                &rp,
                &input.name,
                &uid,
                metadata,
                input.access_point_policy,
                now,
            );
            access_points::insert(tx, &ap)?;
            tags::set(tx, &ap.arn, &initial_tags)?;
            Ok(ap)
        })
        .await?;
    tracing::info!(access_point = %ap.arn, alias = %ap.alias, recovery_point = %ap.rp_arn, "backup access point created");
    Ok(CreateBackupAccessPointResponse {
        access_point_arn: ap.arn,
        status: AccessPointStatus::Available,
    })
}

pub(crate) async fn describe(
    meta: &Meta,
    ctx: &RequestContext,
    input: DescribeBackupAccessPointInput,
) -> Result<DescribeBackupAccessPointResponse> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let ap = meta
        .store()
        .read(move |tx| access_points::find(tx, &a, &r, &input.access_point_arn))
        .await?;
    Ok(ap.describe())
}

pub(crate) async fn delete(
    meta: &Meta,
    ctx: &RequestContext,
    input: DeleteBackupAccessPointInput,
) -> Result<()> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let ap = meta
        .store()
        .write(move |tx| -> Result<AccessPointRecord> {
            let ap = access_points::find(tx, &a, &r, &input.access_point_arn)?;
            access_points::remove(tx, &ap)?;
            Ok(ap)
        })
        .await?;
    tracing::info!(access_point = %ap.arn, recovery_point = %ap.rp_arn, "backup access point deleted");
    Ok(())
}

/// The caller's access points that `keep` keeps, one page in name order.
async fn list_where(
    meta: &Meta,
    ctx: &RequestContext,
    next_token: Option<String>,
    max_results: Option<i32>,
    keep: impl Fn(&AccessPointRecord) -> bool + Send + 'static,
) -> Result<(Vec<ListAccessPointsMember>, Option<String>)> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let all = meta
        .store()
        .read(move |tx| access_points::all(tx, &a, &r))
        .await?;
    let kept: Vec<AccessPointRecord> = all.into_iter().filter(|ap| keep(ap)).collect();
    let (items, next) = page(
        kept,
        |ap| ap.name.clone(),
        next_token.as_deref(),
        max_results,
    )?;
    Ok((items.iter().map(AccessPointRecord::member).collect(), next))
}

pub(crate) async fn list(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListBackupAccessPointsRequest,
) -> Result<ListBackupAccessPointsResponse> {
    let (items, next) =
        list_where(meta, ctx, input.next_token, input.max_results, |_| true).await?;
    Ok(ListBackupAccessPointsResponse {
        backup_access_points: items,
        next_token: next,
    })
}

pub(crate) async fn list_by_recovery_point(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListBackupAccessPointsByRecoveryPointRequest,
) -> Result<ListBackupAccessPointsByRecoveryPointResponse> {
    // A malformed or foreign ARN is refused like everywhere else.
    recovery_points::id_of(&ctx.account_id, &ctx.region, &input.recovery_point_arn)?;
    let rp_arn = input.recovery_point_arn;
    let (items, next) = list_where(meta, ctx, input.next_token, input.max_results, move |ap| {
        ap.rp_arn == rp_arn
    })
    .await?;
    Ok(ListBackupAccessPointsByRecoveryPointResponse {
        backup_access_points: items,
        next_token: next,
    })
}

pub(crate) async fn list_by_resource(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListBackupAccessPointsByResourceRequest,
) -> Result<ListBackupAccessPointsByResourceResponse> {
    let arn = input.resource_arn;
    let (items, next) = list_where(meta, ctx, input.next_token, input.max_results, move |ap| {
        ap.resource_arn == arn
    })
    .await?;
    Ok(ListBackupAccessPointsByResourceResponse {
        backup_access_points: items,
        next_token: next,
    })
}

/// An access point as the S3 endpoint serves it: who owns it, what it may let a caller do,
/// and the recovery point's snapshot in its vault's repository.
#[derive(Debug, Clone)]
pub struct ServedAccessPoint {
    /// The owning account and the region of the access point.
    pub account: String,
    pub region: String,
    pub arn: String,
    pub alias: String,
    /// The vault repository holding the recovery point, and its snapshot.
    pub repo: VaultRepo,
    pub snapshot: SnapshotRef,
    record: AccessPointRecord,
}

impl ServedAccessPoint {
    /// Whether a caller of `account` may perform S3 `action` (`s3:GetObject`,
    /// `s3:ListBucket`) on `resource` (an `arn:aws:s3:::ALIAS[/KEY]`) through this access
    /// point: its owner unless the policy denies it, another account only when the policy
    /// grants it.
    #[must_use]
    pub fn allows(&self, account: &str, action: &str, resource: &str) -> bool {
        access_points::read_allowed(&self.record, account, action, resource)
    }
}

/// The access point whose alias is `alias`, ready to read (`None` when there is none).
pub(crate) async fn served(plane: &Executor, alias: &str) -> Result<Option<ServedAccessPoint>> {
    let alias = alias.to_string();
    let found = plane
        .store()
        .read(
            move |tx| -> Result<Option<(AccessPointRecord, RecoveryPointRecord)>> {
                let Some(ap) = access_points::by_alias(tx, &alias)? else {
                    return Ok(None);
                };
                let rp = recovery_points::find(tx, &ap.account, &ap.region, &ap.rp_arn)?;
                Ok(Some((ap, rp)))
            },
        )
        .await?;
    let Some((ap, rp)) = found else {
        return Ok(None);
    };
    let vault = vaults::get(plane, &ap.account, &ap.region, &ap.vault_name).await?;
    let repo = tiers::repo_holding(plane, &vault, &rp).await?;
    Ok(Some(ServedAccessPoint {
        account: ap.account.clone(),
        region: ap.region.clone(),
        arn: ap.arn.clone(),
        alias: ap.alias.clone(),
        repo,
        snapshot: rp.snapshot,
        record: ap,
    }))
}
