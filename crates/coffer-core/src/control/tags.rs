//! Tags of taggable resources (vaults, plans, recovery points, legal holds, frameworks,
//! report plans), stored apart from the
//! resources themselves in table `tags`, keyed by the resource's ARN. Keeping them in one place
//! lets TagResource / UntagResource / ListTags work the same way for every resource type, and
//! lets each resource module set the tags given at creation in the same transaction.

use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext};
use coffer_store::Txn;

use crate::model::error::Result;
use crate::model::tags::*;
use crate::model::{
    Meta, arn, events, frameworks, legal_holds, paging, plans, recovery_points, reports,
    restore_testing, tiering, vaults,
};

/// Checks that `arn` names an existing taggable resource of the caller's account and region.
/// Each resource type that can be tagged is recognised here by its ARN's resource part.
fn check_resource(
    tx: &mut dyn Txn,
    ctx: &RequestContext,
    resource_arn: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let not_found = || {
        ApiError::not_found(format!(
            "Resource {resource_arn} does not exist in this account and region."
        ))
    };
    let Some(a) = arn::parse(resource_arn) else {
        return Err(ApiError::invalid_parameter(format!(
            "ResourceArn '{resource_arn}' is not an ARN (arn:aws:backup:REGION:ACCOUNT:TYPE:ID)."
        ))
        .into());
    };
    if a.service != "backup" {
        return Err(ApiError::invalid_parameter(format!(
            "ResourceArn '{resource_arn}' does not name an AWS Backup resource: tags apply to backup vaults, plans, recovery points, legal holds, tiering configurations, frameworks, report plans and restore testing plans."
        ))
        .into());
    }
    if a.account != ctx.account_id || a.region != ctx.region {
        return Err(not_found().into());
    }
    let (kind, id) = a.resource.split_once(':').unwrap_or((a.resource, ""));
    let exists = match kind {
        "backup-vault" => tx
            .get(
                vaults::TABLE,
                &vaults::key(&ctx.account_id, &ctx.region, id),
            )?
            .is_some(),
        "backup-plan" => {
            plans::check_plan_id(id).is_ok()
                && plans::is_active(tx, &ctx.account_id, &ctx.region, id)?
        }
        "legal-hold" => legal_holds::find(tx, &ctx.account_id, &ctx.region, id, now)?.is_some(),
        "tiering-configuration" => {
            tiering::load(tx, &tiering::key(&ctx.account_id, &ctx.region, id))?.is_some()
        }
        // NAME-UUID: names hold no '-', so the name is what precedes the first one.
        "framework" => {
            let name = id.split('-').next().unwrap_or_default();
            frameworks::find(tx, &ctx.account_id, &ctx.region, name)?
                .is_some_and(|f| f.arn == resource_arn)
        }
        "report-plan" => {
            let name = id.split('-').next().unwrap_or_default();
            reports::find(tx, &ctx.account_id, &ctx.region, name)?
                .is_some_and(|p| p.arn == resource_arn)
        }
        "restore-testing-plan" => {
            restore_testing::plan_by_arn(tx, &ctx.account_id, &ctx.region, resource_arn)?.is_some()
        }
        "recovery-point" => {
            match recovery_points::find(tx, &ctx.account_id, &ctx.region, resource_arn) {
                Ok(_) => true,
                Err(e) if e.is_client_error() => false,
                Err(e) => return Err(e),
            }
        }
        _ => {
            return Err(ApiError::invalid_parameter(format!(
                "ResourceArn '{resource_arn}' names a '{kind}', which cannot be tagged in Coffer; tags apply to backup vaults, plans, recovery points, legal holds, tiering configurations, frameworks, report plans and restore testing plans."
            ))
            .into());
        }
    };
    if exists {
        Ok(())
    } else {
        Err(not_found().into())
    }
}

/// A recovery point's tags changed: RECOVERY_POINT_MODIFIED for its vault.
fn rp_tags_changed(
    tx: &mut dyn Txn,
    ctx: &RequestContext,
    resource_arn: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    if let Some(a) = arn::parse(resource_arn)
        && a.resource.starts_with("recovery-point:")
    {
        let rp = recovery_points::find(tx, &ctx.account_id, &ctx.region, resource_arn)?;
        events::recovery_point_modified(tx, &rp, now, "tags")?;
    }
    Ok(())
}

pub(crate) async fn tag_resource(
    meta: &Meta,
    ctx: &RequestContext,
    input: TagResourceInput,
) -> Result<()> {
    check_tags(&input.tags)?;
    let now = meta.clock().now();
    let ctx = ctx.clone();
    meta.store()
        .write(move |tx| -> Result<()> {
            check_resource(tx, &ctx, &input.resource_arn, now)?;
            let mut tags = get(tx, &input.resource_arn)?;
            tags.extend(input.tags);
            if tags.len() > MAX_TAGS {
                return Err(ApiError::limit_exceeded(format!(
                    "A resource can carry at most {MAX_TAGS} tags."
                ))
                .into());
            }
            set(tx, &input.resource_arn, &tags)?;
            rp_tags_changed(tx, &ctx, &input.resource_arn, now)?;
            Ok(())
        })
        .await
}

pub(crate) async fn untag_resource(
    meta: &Meta,
    ctx: &RequestContext,
    input: UntagResourceInput,
) -> Result<()> {
    let now = meta.clock().now();
    let ctx = ctx.clone();
    meta.store()
        .write(move |tx| -> Result<()> {
            check_resource(tx, &ctx, &input.resource_arn, now)?;
            let mut tags = get(tx, &input.resource_arn)?;
            for k in &input.tag_key_list {
                tags.remove(k);
            }
            set(tx, &input.resource_arn, &tags)?;
            rp_tags_changed(tx, &ctx, &input.resource_arn, now)?;
            Ok(())
        })
        .await
}

pub(crate) async fn list_tags(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListTagsInput,
) -> Result<ListTagsOutput> {
    let ctx = ctx.clone();
    let now = meta.clock().now();
    let limit = paging::page_size(input.max_results);
    let start = match &input.next_token {
        Some(t) => Some(paging::decode(t, "")?),
        None => None,
    };
    let all = meta
        .store()
        .read(move |tx| -> Result<Tags> {
            check_resource(tx, &ctx, &input.resource_arn, now)?;
            Ok(get(tx, &input.resource_arn)?)
        })
        .await?;
    let mut page = Tags::new();
    let mut next = None;
    for (k, v) in all
        .into_iter()
        .filter(|(k, _)| start.as_ref().is_none_or(|s| k > s))
    {
        if page.len() == limit {
            next = page.keys().next_back().map(|k| paging::encode(k));
            break;
        }
        page.insert(k, v);
    }
    Ok(ListTagsOutput {
        next_token: next,
        tags: Some(page),
    })
}
