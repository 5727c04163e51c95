//! The recovery point operations: Describe, ListByBackupVault, ListByResource, Delete,
//! UpdateRecoveryPointLifecycle and Disassociate. Records and their rules are in
//! `model::recovery_points`.

use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext};

use crate::dataplane::Executor;
use crate::model::error::Result;
use crate::model::jobs::within;
use crate::model::paging::{Ahead, KeyRange, scan_page_ahead};
use crate::model::recovery_points::RecoveryPointRecord;
use crate::model::recovery_points::*;
use crate::model::rp_keys::read_entry;
use crate::model::states::StorageClass;
use crate::model::{
    Meta, composite, events, indexes, restore_access, retention, vault_policy, vaults,
};

pub(crate) async fn describe(
    meta: &Meta,
    ctx: &RequestContext,
    input: DescribeRecoveryPointInput,
) -> Result<DescribeRecoveryPointOutput> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    // One transaction for the vault, the point and its index record (on PostgreSQL each
    // transaction costs two more round trips).
    let (rp, index) = meta
        .store()
        .read(move |tx| -> Result<_> {
            let name = &input.backup_vault_name;
            vaults::load(tx, &vaults::key(&a, &r, name), name)?;
            let rp = find_in_vault(
                tx,
                &a,
                &r,
                &input.backup_vault_name,
                &input.recovery_point_arn,
            )?;
            let index = indexes::get(tx, &a, &r, &rp.id)?;
            Ok((rp, index))
        })
        .await?;
    let mut out = rp.describe();
    if let Some(i) = index {
        out.index_status = Some(i.status.wire());
        out.index_status_message = i.message;
    }
    Ok(out)
}

/// The vault whose points ListRecoveryPointsByBackupVault lists: a restore access vault lists
/// its source's points; another account's shared vault is named by BackupVaultAccountId
/// (`model::restore_access`).
async fn readable_vault(
    meta: &Meta,
    ctx: &RequestContext,
    input: &ListRecoveryPointsByBackupVaultInput,
) -> Result<vaults::VaultRecord> {
    let (a, r, name, owner) = (
        ctx.account_id.clone(),
        ctx.region.clone(),
        input.backup_vault_name.clone(),
        input.backup_vault_account_id.clone(),
    );
    let now = meta.clock().now();
    meta.store()
        .read(move |tx| restore_access::readable_vault(tx, &a, &r, &name, owner.as_deref(), now))
        .await
}

/// Whether `rp` is one of vault `vault`'s points that ListRecoveryPointsByBackupVault's
/// filters let through.
fn passes(
    rp: &RecoveryPointRecord,
    vault: &str,
    input: &ListRecoveryPointsByBackupVaultInput,
) -> bool {
    rp.vault_name == vault
        && input
            .by_resource_arn
            .as_ref()
            .is_none_or(|x| x == &rp.resource_arn)
        && input
            .by_resource_type
            .as_ref()
            .is_none_or(|x| x == &rp.resource_type)
        && input.by_backup_plan_id.as_ref().is_none_or(|x| {
            rp.created_by
                .as_ref()
                .and_then(|c| c.backup_plan_id.as_ref())
                == Some(x)
        })
        && within(
            Some(rp.creation_date),
            input.by_created_after.as_ref(),
            input.by_created_before.as_ref(),
        )
        && input
            .by_parent_recovery_point_arn
            .as_ref()
            .is_none_or(|p| rp.composite.parent_arn.as_ref() == Some(p))
}

/// The index ListRecoveryPointsByBackupVault reads for `input` in vault `source`, and the
/// prefix of its entries: the vault's points with the most selective value the filters give
/// (parent, resource, backup plan, resource type), or all the vault's points. Every one is
/// newest first; the filters not read through the index are checked on each point.
fn index_for(
    source: &vaults::VaultRecord,
    input: &ListRecoveryPointsByBackupVaultInput,
) -> (&'static str, String) {
    let field = [
        (VaultField::Parent, &input.by_parent_recovery_point_arn),
        (VaultField::Resource, &input.by_resource_arn),
        (VaultField::Plan, &input.by_backup_plan_id),
        (VaultField::ResourceType, &input.by_resource_type),
    ]
    .into_iter()
    .find_map(|(f, v)| v.as_ref().map(|v| (f, v)));
    let (a, r, v) = (&source.account, &source.region, &source.name);
    match field {
        Some((f, value)) => (BY_VAULT_FIELD, by_vault_field_prefix(a, r, v, f, value)),
        None => (BY_VAULT, by_vault_prefix(a, r, v)),
    }
}

pub(crate) async fn list_by_vault(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListRecoveryPointsByBackupVaultInput,
) -> Result<ListRecoveryPointsByBackupVaultOutput> {
    let source = readable_vault(meta, ctx, &input).await?;
    build_indexes(meta).await?;
    let (page, next) = meta
        .store()
        .read(move |tx| page_by_vault(tx, &source, &input))
        .await?;
    let points = page
        .into_iter()
        .map(|(p, s)| RecoveryPointByBackupVault {
            index_status: s,
            ..p.by_vault()
        })
        .collect();
    Ok(ListRecoveryPointsByBackupVaultOutput {
        next_token: next,
        recovery_points: Some(points),
    })
}

/// What a page of point index entries (values: the points' keys) reads ahead: the points,
/// and with `with_index` their file index records.
fn points_ahead(rows: &[(String, Vec<u8>)], with_index: bool) -> Ahead {
    let keys: Vec<String> = rows.iter().map(|(_, v)| read_entry(v).0).collect();
    let mut ahead = Vec::new();
    if with_index {
        // A point's key is `ACCOUNT:REGION:VAULT:ID`; its index record's `ACCOUNT:REGION:ID`.
        let of_index = keys
            .iter()
            .filter_map(|k| match k.splitn(4, ':').collect::<Vec<_>>()[..] {
                [a, r, _, id] => Some(indexes::key(a, r, id)),
                _ => None,
            })
            .collect();
        ahead.push((indexes::TABLE, of_index));
    }
    ahead.push((TABLE, keys));
    ahead
}

/// A page of ListRecoveryPointsByBackupVault.
type VaultPage = (
    Vec<(RecoveryPointRecord, Option<IndexStatus>)>,
    Option<String>,
);

/// One page of ListRecoveryPointsByBackupVault of vault `source`: each point with the status
/// of its file index, and the token of the next page. It walks the index [`index_for`] picks
/// from the token's position, reading each entry's point; the vault's own index carries the
/// index status in its entries (`model::rp_keys`), so a page of it reads one record per point,
/// the indexes by field read the point's index record as well.
pub(crate) fn page_by_vault(
    tx: &mut dyn coffer_store::Txn,
    source: &vaults::VaultRecord,
    input: &ListRecoveryPointsByBackupVaultInput,
) -> Result<VaultPage> {
    let (table, prefix) = index_for(source, input);
    // The index is newest first: ByCreatedBefore skips the newer entries, ByCreatedAfter
    // ends the walk after the older ones begin. The bounds keep the boundary's own
    // microsecond in the walk; `passes` decides it exactly (both bounds are exclusive).
    let range = KeyRange {
        after: input
            .by_created_before
            .as_ref()
            .map(|b| format!("{prefix}{}", newest_first(b.0))),
        before: input
            .by_created_after
            .as_ref()
            .map(|a| format!("{prefix}{};", newest_first(a.0))),
    };
    let token = input.next_token.as_deref();
    scan_page_ahead(
        tx,
        table,
        &prefix,
        &range,
        token,
        input.max_results,
        |rows| points_ahead(rows, table != BY_VAULT),
        |tx, v| {
            let Some(rp) = load_key(tx, v)? else {
                return Ok(None);
            };
            if !passes(&rp, &source.name, input) {
                return Ok(None);
            }
            let status = match table {
                BY_VAULT => read_entry(v).1.map(IndexStatus::from),
                _ => indexes::get(tx, &rp.account, &rp.region, &rp.id)?.map(|i| i.status.wire()),
            };
            Ok(Some((rp, status)))
        },
    )
}

pub(crate) async fn list_by_resource(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListRecoveryPointsByResourceInput,
) -> Result<ListRecoveryPointsByResourceOutput> {
    build_indexes(meta).await?;
    let prefix = by_resource_prefix(&ctx.account_id, &ctx.region, &input.resource_arn);
    let (page, next) = meta
        .store()
        .read(move |tx| {
            scan_page_ahead(
                tx,
                BY_RESOURCE,
                &prefix,
                &KeyRange::default(),
                input.next_token.as_deref(),
                input.max_results,
                |rows| points_ahead(rows, false),
                |tx, v| load_key(tx, v),
            )
        })
        .await?;
    Ok(ListRecoveryPointsByResourceOutput {
        next_token: next,
        recovery_points: Some(page.iter().map(RecoveryPointRecord::by_resource).collect()),
    })
}

pub(crate) async fn delete(
    plane: &Executor,
    ctx: &RequestContext,
    input: DeleteRecoveryPointInput,
) -> Result<()> {
    let target = Target {
        action: "backup:DeleteRecoveryPoint",
        vault_name: input.backup_vault_name,
        rp_arn: input.recovery_point_arn,
        continuous_only: false,
    };
    remove_point(plane, ctx, target).await
}

/// What DeleteRecoveryPoint or DisassociateRecoveryPoint removes.
struct Target {
    /// The IAM action a vault access policy is checked for.
    action: &'static str,
    vault_name: String,
    rp_arn: String,
    /// Disassociate: only a continuous point may go this way.
    continuous_only: bool,
}

/// Removes a recovery point after every check that guards it (shared points, restore access
/// vaults, the vault's access policy, composites, vault lock and legal holds in
/// `composite::delete`). Its data (and a continuous point's replication slot) go with the
/// queued removal the runner carries out.
async fn remove_point(plane: &Executor, ctx: &RequestContext, t: Target) -> Result<()> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let now = plane.clock().now();
    plane
        .store()
        .write(move |tx| -> Result<()> {
            refuse_shared_delete(&a, &t.rp_arn)?;
            let vkey = vaults::key(&a, &r, &t.vault_name);
            let mut vault = vaults::load(tx, &vkey, &t.vault_name)?;
            if vault.mpa.restore_access.is_some() {
                return Err(restore_access::access_denied(
                    &a,
                    t.action,
                    &t.rp_arn,
                    "A restore access backup vault is read-only: its recovery points can be restored, never deleted.",
                )
                .into());
            }
            vault_policy::check_not_denied(tx, &vkey, t.action, &[&t.rp_arn, &vault.arn], &a)?;
            let rp = find_in_vault(tx, &a, &r, &t.vault_name, &t.rp_arn)?;
            if t.continuous_only && rp.continuous.is_none() {
                return Err(ApiError::invalid_request(format!(
                    "Recovery point {} is a snapshot recovery point; only continuous backup recovery points can be disassociated. Use DeleteRecoveryPoint to delete it.",
                    rp.arn
                ))
                .into());
            }
            if let Some(why) = composite::nested_refusal(&rp) {
                return Err(ApiError::invalid_request(why).into());
            }
            // A composite parent goes with its nested points, or not at all.
            if let Err(why) = composite::delete(tx, &mut vault, &rp, now)? {
                return Err(ApiError::invalid_request(why).into());
            }
            Ok(())
        })
        .await?;
    plane.running().wake();
    Ok(())
}

/// Refuses deleting another account's recovery point: what is shared with this account
/// (through a restore access vault or a vault's access policy) is restored, never deleted.
fn refuse_shared_delete(caller: &str, rp_arn: &str) -> Result<()> {
    match crate::model::arn::parse(rp_arn) {
        Some(a) if a.service == "backup" && a.account != caller => {
            Err(restore_access::access_denied(
                caller,
                "backup:DeleteRecoveryPoint",
                rp_arn,
                "Recovery points shared with this account can be restored, never deleted.",
            )
            .into())
        }
        _ => Ok(()),
    }
}

pub(crate) async fn update_lifecycle(
    meta: &Meta,
    ctx: &RequestContext,
    input: UpdateRecoveryPointLifecycleInput,
) -> Result<UpdateRecoveryPointLifecycleOutput> {
    if let Some(l) = &input.lifecycle {
        crate::model::lifecycle::check_given(l)?;
    }
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let now = meta.clock().now();
    let rp = meta
        .store()
        .write(move |tx| -> Result<RecoveryPointRecord> {
            let vkey = vaults::key(&a, &r, &input.backup_vault_name);
            let vault = vaults::load(tx, &vkey, &input.backup_vault_name)?;
            vault_policy::check_not_denied(tx, &vkey, "backup:UpdateRecoveryPointLifecycle", &[&input.recovery_point_arn, &vault.arn], &a)?;
            // A locked (or air-gapped) vault keeps its points within its bounds.
            if let Some(why) = retention::admission_blocker(&vault, input.lifecycle.as_ref()) {
                return Err(ApiError::invalid_request(why).into());
            }
            let mut rp = find_in_vault(tx, &a, &r, &input.backup_vault_name, &input.recovery_point_arn)?;
            if rp.storage_class == StorageClass::Cold
                && let Some(l) = &input.lifecycle
                    && l.move_to_cold_storage_after_days.is_some_and(|d| Some(d) != rp.lifecycle.as_ref().and_then(|x| x.move_to_cold_storage_after_days)) {
                        return Err(ApiError::invalid_request("The recovery point is already in cold storage; MoveToColdStorageAfterDays cannot change.").into());
                    }
            rp.lifecycle = input.lifecycle;
            crate::model::recovery_points::save(tx, &rp)?;
            events::recovery_point_modified(tx, &rp, now, "lifecycle")?;
            Ok(rp)
        })
        .await?;
    Ok(UpdateRecoveryPointLifecycleOutput {
        backup_vault_arn: Some(rp.vault_arn.clone()),
        calculated_lifecycle: rp.calculated(),
        lifecycle: rp.lifecycle.clone(),
        recovery_point_arn: Some(rp.arn.clone()),
    })
}

/// DisassociateRecoveryPoint: a continuous point leaves Coffer as AWS describes it, "deleted
/// from AWS Backup, control released to the source service": the point and its base backup
/// and WAL go, and its replication slot is dropped on the database server. The next
/// continuous backup of the database starts a new point. A snapshot point is refused.
pub(crate) async fn disassociate(
    plane: &Executor,
    ctx: &RequestContext,
    input: DisassociateRecoveryPointInput,
) -> Result<()> {
    let target = Target {
        action: "backup:DisassociateRecoveryPoint",
        vault_name: input.backup_vault_name,
        rp_arn: input.recovery_point_arn,
        continuous_only: true,
    };
    remove_point(plane, ctx, target).await
}

/// DisassociateRecoveryPointFromParent: the nested point stands on its own from now on, with
/// its own lifecycle (see `model::composite`).
pub(crate) async fn disassociate_from_parent(
    meta: &Meta,
    ctx: &RequestContext,
    input: DisassociateRecoveryPointFromParentInput,
) -> Result<()> {
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let now = meta.clock().now();
    let rp = meta
        .store()
        .write(move |tx| {
            let vkey = vaults::key(&a, &r, &input.backup_vault_name);
            vaults::load(tx, &vkey, &input.backup_vault_name)?;
            composite::disassociate(
                tx,
                &a,
                &r,
                &input.backup_vault_name,
                &input.recovery_point_arn,
                now,
            )
        })
        .await?;
    tracing::info!(recovery_point = %rp.arn, "a nested recovery point was disassociated from its parent");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::clock::Clock;
    use crate::model::job_index::Counting;
    use crate::model::states::RecoveryPointStatus;
    use crate::model::{arn, due, rp_keys};
    use chrono::{DateTime, Duration, TimeZone, Utc};
    use coffer_store::StoreHandle;

    const A: &str = "111122223333";
    const R: &str = "us-east-1";
    const POINTS: usize = 120;

    fn res(n: usize) -> String {
        format!("arn:aws:elasticfilesystem:{R}:{A}:file-system/fs-{n}")
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
    }

    /// Point `i` of vault `vault`: created `i` seconds after t0, on resource `fs-{i % 4}`, of
    /// type EFS / EBS / S3 in turn, made by plan `plan-{i % 5}` when `i` is even; points
    /// 100..110 are nested in point 99, a composite parent.
    fn point(vault: &vaults::VaultRecord, i: usize) -> RecoveryPointRecord {
        let id = format!("{}{i:03}", vault.name);
        RecoveryPointRecord {
            arn: arn::recovery_point(R, A, &id),
            id,
            account: A.into(),
            region: R.into(),
            vault_name: vault.name.clone(),
            vault_arn: vault.arn.clone(),
            vault_uid: vault.uid.clone(),
            snapshot: coffer_engine::SnapshotRef(format!("snap-{i}")),
            resource_arn: res(i % 4),
            resource_type: ["EFS", "EBS", "S3"][i % 3].into(),
            resource_name: None,
            creation_date: t0() + Duration::seconds(i as i64),
            initiation_date: None,
            completion_date: t0() + Duration::seconds(i as i64),
            backup_size: 1,
            iam_role_arn: None,
            lifecycle: None,
            created_by: i.is_multiple_of(2).then(|| RecoveryPointCreator {
                backup_plan_id: Some(format!("plan-{}", i % 5)),
                ..Default::default()
            }),
            source_vault_arn: None,
            encryption_key_arn: String::new(),
            status: RecoveryPointStatus::Completed,
            storage_class: StorageClass::Warm,
            last_restore_time: None,
            source_path: None,
            composite: crate::model::recovery_points::Membership {
                is_parent: i == 99,
                parent_arn: (100..110)
                    .contains(&i)
                    .then(|| arn::recovery_point(R, A, &format!("{}099", vault.name))),
                member_id: None,
            },
            tier: None,
            continuous: None,
        }
    }

    /// The status point `i`'s file index has: every 7th has one, ACTIVE when it is a 14th.
    fn index_status(i: usize) -> Option<IndexStatus> {
        match i {
            _ if i.is_multiple_of(14) => Some(IndexStatus::Active),
            _ if i.is_multiple_of(7) => Some(IndexStatus::Pending),
            _ => None,
        }
    }

    /// A store with vaults `v` (points 0..120) and `w` (points 0..30), with their indexes.
    async fn seeded() -> (tempfile::TempDir, Meta) {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        let meta = Meta::new(store.clone(), Clock::system());
        let ctx = RequestContext::new(A, R);
        for v in ["v", "w"] {
            let input = CreateBackupVaultInput {
                backup_vault_name: v.into(),
                ..Default::default()
            };
            crate::control::vaults::create(&meta, &ctx, input)
                .await
                .unwrap();
        }
        let now = t0();
        store
            .write(move |tx| -> Result<()> {
                for (v, n) in [("v", POINTS), ("w", 30)] {
                    let vault = vaults::load(tx, &vaults::key(A, R, v), v)?;
                    for i in 0..n {
                        let p = point(&vault, i);
                        insert(tx, &p, &Default::default())?;
                        if index_status(i).is_some() {
                            let mut rec = indexes::insert_pending(tx, p.new_index(None, now))?;
                            if index_status(i) == Some(IndexStatus::Active) {
                                rec.status = indexes::Status::Active;
                                indexes::save(tx, &rec)?;
                            }
                        }
                    }
                }
                Ok(())
            })
            .await
            .unwrap();
        (dir, meta)
    }

    /// Every page of vault `v`'s listing for `input`, pages of `max`: (point number, index
    /// status) in order.
    async fn list_all(
        meta: &Meta,
        input: &ListRecoveryPointsByBackupVaultInput,
        max: i32,
    ) -> Vec<(usize, Option<IndexStatus>)> {
        let ctx = RequestContext::new(A, R);
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = list_by_vault(
                meta,
                &ctx,
                ListRecoveryPointsByBackupVaultInput {
                    next_token: token,
                    max_results: Some(max),
                    ..input.clone()
                },
            )
            .await
            .unwrap();
            let points = page.recovery_points.unwrap();
            assert!(points.len() <= max as usize);
            for p in points {
                assert_eq!(p.backup_vault_name.as_deref(), Some("v"));
                let arn = p.recovery_point_arn.unwrap();
                out.push((arn[arn.len() - 3..].parse().unwrap(), p.index_status));
            }
            token = page.next_token;
            if token.is_none() {
                return out;
            }
        }
    }

    fn by(
        f: impl Fn(&mut ListRecoveryPointsByBackupVaultInput),
    ) -> ListRecoveryPointsByBackupVaultInput {
        let mut input = ListRecoveryPointsByBackupVaultInput {
            backup_vault_name: "v".into(),
            ..Default::default()
        };
        f(&mut input);
        input
    }

    /// A listing's input and which point numbers it lets through.
    type Filter = (ListRecoveryPointsByBackupVaultInput, fn(usize) -> bool);

    /// Each filter (and pairs of them) with what it lets through, by point number.
    fn filters() -> Vec<Filter> {
        let parent = arn::recovery_point(R, A, "v099");
        let at = |s: i64| Some(coffer_api::Timestamp(t0() + Duration::seconds(s)));
        vec![
            (by(|_| {}), |_| true),
            (by(|i| i.by_resource_arn = Some(res(1))), |i| i % 4 == 1),
            (by(|i| i.by_resource_type = Some("EBS".into())), |i| {
                i % 3 == 1
            }),
            (by(|i| i.by_backup_plan_id = Some("plan-3".into())), |i| {
                i % 2 == 0 && i % 5 == 3
            }),
            (
                by(|i| i.by_parent_recovery_point_arn = Some(parent.clone())),
                |i| (100..110).contains(&i),
            ),
            (
                by(|i| {
                    i.by_resource_type = Some("S3".into());
                    i.by_backup_plan_id = Some("plan-0".into());
                }),
                |i| i % 3 == 2 && i % 10 == 0,
            ),
            (
                by(|i| {
                    i.by_resource_arn = Some(res(2));
                    i.by_created_after = at(10);
                    i.by_created_before = at(70);
                }),
                |i| i % 4 == 2 && i > 10 && i < 70,
            ),
        ]
    }

    fn expected(keep: fn(usize) -> bool) -> Vec<(usize, Option<IndexStatus>)> {
        (0..POINTS)
            .rev()
            .filter(|&i| keep(i))
            .map(|i| (i, index_status(i)))
            .collect()
    }

    #[tokio::test]
    async fn every_filter_pages_through_its_points_newest_first_with_their_index_status() {
        let (_dir, meta) = seeded().await;
        for (input, keep) in filters() {
            let want = expected(keep);
            assert!(!want.is_empty());
            for max in [1, 3, 1000] {
                assert_eq!(list_all(&meta, &input, max).await, want, "{input:?}");
            }
        }
    }

    /// The records one page reads, through a counting transaction.
    async fn first_page_reads(meta: &Meta, input: ListRecoveryPointsByBackupVaultInput) -> usize {
        let (a, r) = (A.to_string(), R.to_string());
        meta.store()
            .read(move |tx| -> Result<usize> {
                let source = vaults::load(tx, &vaults::key(&a, &r, "v"), "v")?;
                let mut c = Counting {
                    inner: tx,
                    reads: 0,
                };
                let (page, _) = page_by_vault(&mut c, &source, &input)?;
                assert_eq!(page.len(), 5);
                Ok(c.reads)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_page_reads_its_points_and_not_the_vault() {
        let (_dir, meta) = seeded().await;
        let page = |f: &dyn Fn(&mut ListRecoveryPointsByBackupVaultInput)| {
            by(|i| {
                f(i);
                i.max_results = Some(5);
            })
        };
        // The vault's index: one scan of six entries, one read per point (the sixth says
        // another page follows); the index status comes with the entry.
        let all = first_page_reads(&meta, page(&|_| {})).await;
        assert!(all <= 1 + 6 + 6, "{all} records read");
        // Each filter reads its own entries: the same, plus the index record of each point
        // read.
        for f in [
            &|i: &mut ListRecoveryPointsByBackupVaultInput| i.by_resource_type = Some("S3".into()),
            &|i: &mut ListRecoveryPointsByBackupVaultInput| {
                i.by_backup_plan_id = Some("plan-1".into())
            },
            &|i: &mut ListRecoveryPointsByBackupVaultInput| {
                i.by_parent_recovery_point_arn = Some(arn::recovery_point(R, A, "v099"))
            },
        ] as [&dyn Fn(&mut ListRecoveryPointsByBackupVaultInput); 3]
        {
            let n = first_page_reads(&meta, page(f)).await;
            assert!(n <= 1 + 6 + 6 + 6, "{n} records read");
        }
    }

    #[tokio::test]
    async fn index_status_and_parents_follow_their_changes() {
        let (_dir, meta) = seeded().await;
        let now = t0();
        meta.store()
            .write(move |tx| -> Result<()> {
                // An index that fails, one that is disabled, and a nested point disassociated.
                let mut rec = indexes::get(tx, A, R, "v007")?.unwrap();
                rec.status = indexes::Status::Failed;
                indexes::save(tx, &rec)?;
                indexes::mark_deleting(tx, A, R, "v014", now)?;
                indexes::forget(tx, &indexes::key(A, R, "v028"))?;
                let p105 = arn::recovery_point(R, A, "v105");
                crate::model::composite::disassociate(tx, A, R, "v", &p105, now)?;
                Ok(())
            })
            .await
            .unwrap();
        let got = list_all(&meta, &by(|_| {}), 50).await;
        let status = |n: usize| got.iter().find(|(i, _)| *i == n).unwrap().1.clone();
        assert_eq!(status(7), Some(IndexStatus::Failed));
        assert_eq!(status(14), Some(IndexStatus::Deleting));
        assert_eq!(status(28), None);
        assert_eq!(status(21), Some(IndexStatus::Pending));
        let parent = arn::recovery_point(R, A, "v099");
        let nested = list_all(
            &meta,
            &by(|i| i.by_parent_recovery_point_arn = Some(parent.clone())),
            4,
        )
        .await;
        let ids: Vec<usize> = nested.iter().map(|(i, _)| *i).collect();
        assert_eq!(ids, vec![109, 108, 107, 106, 104, 103, 102, 101, 100]);
    }

    #[tokio::test]
    async fn a_store_built_before_the_field_indexes_lists_the_same_after_its_backfill() {
        let (_dir, meta) = seeded().await;
        let mut before = Vec::new();
        for (input, _) in filters() {
            before.push(list_all(&meta, &input, 4).await);
        }
        // As an earlier Coffer left it: no entries by field, vault entries of keys alone, the
        // first indexes recorded built.
        meta.store()
            .write(|tx| -> Result<()> {
                for t in [BY_VAULT_FIELD, PROTECTED_IN_VAULT] {
                    for (k, _) in tx.scan(t, "", None, usize::MAX)? {
                        tx.delete(t, &k)?;
                    }
                }
                for (k, v) in tx.scan(BY_VAULT, "", None, usize::MAX)? {
                    let (key, _) = rp_keys::read_entry(&v);
                    tx.put(BY_VAULT, &k, key.as_bytes())?;
                }
                tx.delete(due::BACKFILL, "recovery_points_by_field")?;
                Ok(())
            })
            .await
            .unwrap();
        // A Coffer started on that store (a process that has not seen its indexes built).
        let meta = Meta::new(meta.store().clone(), meta.clock().clone());
        for ((input, _), old) in filters().into_iter().zip(&before) {
            assert_eq!(&list_all(&meta, &input, 4).await, old, "{input:?}");
        }
        let built = meta
            .store()
            .read(|tx| due::needs_backfill(tx, "recovery_points_by_field"))
            .await
            .unwrap();
        assert!(!built, "the marker is written once the indexes are built");
    }

    /// ListProtectedResourcesByBackupVault: the vault's resources in ARN order, each with its
    /// newest point in that vault, in pages; a resource whose last point in the vault goes
    /// leaves that vault's list only.
    #[tokio::test]
    async fn protected_resources_by_vault_page_the_vault_index() {
        let (_dir, meta) = seeded().await;
        let ctx = RequestContext::new(A, R);
        let list = |vault: &'static str| {
            let (meta, ctx) = (meta.clone(), ctx.clone());
            async move {
                let mut out = Vec::new();
                let mut token = None;
                loop {
                    let page = crate::control::protected::list_by_vault(
                        &meta,
                        &ctx,
                        ListProtectedResourcesByBackupVaultInput {
                            backup_vault_name: vault.into(),
                            max_results: Some(1),
                            next_token: token,
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                    for p in page.results.unwrap() {
                        out.push((p.resource_arn.unwrap(), p.last_recovery_point_arn.unwrap()));
                    }
                    token = page.next_token;
                    if token.is_none() {
                        return out;
                    }
                }
            }
        };
        let newest = |vault: &str, n: usize, last: usize| {
            let i = (0..last).rev().find(|i| i % 4 == n).unwrap();
            (res(n), arn::recovery_point(R, A, &format!("{vault}{i:03}")))
        };
        let v: Vec<_> = (0..4).map(|n| newest("v", n, POINTS)).collect();
        assert_eq!(list("v").await, v);
        let w: Vec<_> = (0..4).map(|n| newest("w", n, 30)).collect();
        assert_eq!(list("w").await, w);
        // Every point of fs-1 in vault v goes.
        let now = t0();
        meta.store()
            .write(move |tx| -> Result<()> {
                let mut vault = vaults::load(tx, &vaults::key(A, R, "v"), "v")?;
                for i in (1..POINTS).step_by(4) {
                    let rp = find_in_vault(
                        tx,
                        A,
                        R,
                        "v",
                        &arn::recovery_point(R, A, &format!("v{i:03}")),
                    )?;
                    remove(tx, &mut vault, &rp, now)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        let v_left: Vec<_> = v.into_iter().filter(|(r, _)| r != &res(1)).collect();
        assert_eq!(list("v").await, v_left);
        assert_eq!(list("w").await, w);
    }

    /// A legal hold's selection reads the indexes of the vaults and resources it names, and
    /// covers exactly the points a check of every point would.
    #[tokio::test]
    async fn legal_hold_selections_read_the_indexes_they_name() {
        use crate::model::legal_holds::{covers, resolve};
        let (_dir, meta) = seeded().await;
        let range = |from: i64, to: i64| DateRange {
            from_date: coffer_api::Timestamp(t0() + Duration::seconds(from)),
            to_date: coffer_api::Timestamp(t0() + Duration::seconds(to)),
        };
        let names = |l: &[&str]| Some(l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let selections = [
            None,
            Some(RecoveryPointSelection {
                date_range: Some(range(5, 25)),
                ..Default::default()
            }),
            Some(RecoveryPointSelection {
                vault_names: names(&["w"]),
                ..Default::default()
            }),
            Some(RecoveryPointSelection {
                vault_names: names(&["v", "w"]),
                date_range: Some(range(20, 40)),
                ..Default::default()
            }),
            Some(RecoveryPointSelection {
                resource_identifiers: names(&[&res(1), &res(2)]),
                ..Default::default()
            }),
            Some(RecoveryPointSelection {
                resource_identifiers: names(&[&res(3)]),
                vault_names: names(&["w"]),
                date_range: Some(range(3, 19)),
            }),
        ];
        for (n, sel) in selections.into_iter().enumerate() {
            let (got, every, reads) = meta
                .store()
                .read(move |tx| -> Result<_> {
                    let mut c = Counting {
                        inner: tx,
                        reads: 0,
                    };
                    let got = resolve(&mut c, A, R, sel.as_ref())?;
                    let reads = c.reads;
                    let every: Vec<RecoveryPointRecord> = resolve(tx, A, R, None)?
                        .into_iter()
                        .filter(|rp| covers(sel.as_ref(), rp))
                        .collect();
                    Ok((got, every, reads))
                })
                .await
                .unwrap();
            let keys = |l: &[RecoveryPointRecord]| l.iter().map(|p| p.key()).collect::<Vec<_>>();
            assert!(!got.is_empty(), "selection {n}");
            assert_eq!(keys(&got), keys(&every), "selection {n}");
            if n >= 2 {
                // A named vault or resource reads its own points (an entry and the point
                // each) and at most a batch of entries past the range, never the scope's 150.
                assert!(
                    reads <= 2 * got.len() + 2 * 33 + 8,
                    "selection {n}: {reads} records read"
                );
            }
        }
    }
}
