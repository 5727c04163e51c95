//! Composite recovery points: a resource that groups others (a CloudFormation stack declared
//! in the inventory with `members = [ARN, ...]`) is backed up as one parent recovery point
//! (IsParent) with one nested child point per member (ParentRecoveryPointArn,
//! CompositeMemberIdentifier), all in the parent's vault, recorded in one transaction.
//!
//! The parent holds no data of its own (no snapshot); its children hold the members' data. A
//! child that belongs to a parent follows the parent: the lifecycle sweep skips it and deletes
//! it with its parent, DeleteRecoveryPoint refuses it on its own, and deleting the parent
//! deletes every child it still has (refused as a whole when any of them is held).
//! DisassociateRecoveryPointFromParent detaches a child, which then stands on its own with its
//! own lifecycle. See docs/jobs.md.

use chrono::{DateTime, Utc};
use coffer_api::ApiError;
use coffer_store::Txn;

use crate::model::error::Result;
use crate::model::paging;
use crate::model::recovery_points::{self, RecoveryPointRecord, TABLE, VaultField};
use crate::model::{events, retention, vaults};

/// The children that `parent` still has, in its vault: read from the vault's parent index
/// ([`recovery_points::BY_VAULT_FIELD`]) once it is built, from every point of the vault before.
pub(crate) fn children(
    tx: &mut dyn Txn,
    parent: &RecoveryPointRecord,
) -> Result<Vec<RecoveryPointRecord>> {
    let (a, r, v) = (&parent.account, &parent.region, &parent.vault_name);
    let is_child =
        |rp: &RecoveryPointRecord| rp.composite.parent_arn.as_deref() == Some(parent.arn.as_str());
    let mut out = Vec::new();
    if recovery_points::by_field_built(tx)? {
        let prefix =
            recovery_points::by_vault_field_prefix(a, r, v, VaultField::Parent, &parent.arn);
        for (_, entry) in paging::scan_all(tx, recovery_points::BY_VAULT_FIELD, &prefix)? {
            if let Some(rp) = recovery_points::load_key(tx, &entry)?
                && is_child(&rp)
            {
                out.push(rp);
            }
        }
    } else {
        for (_, value) in paging::scan_all(tx, TABLE, &format!("{a}:{r}:{v}:"))? {
            let rp: RecoveryPointRecord = serde_json::from_slice(&value)?;
            if is_child(&rp) {
                out.push(rp);
            }
        }
    }
    out.sort_by(|a, b| a.composite.member_id.cmp(&b.composite.member_id));
    Ok(out)
}

/// Why `rp` cannot be deleted on its own: it is a nested point of a parent.
pub(crate) fn nested_refusal(rp: &RecoveryPointRecord) -> Option<String> {
    let parent = rp.composite.parent_arn.as_ref()?;
    Some(format!(
        "Recovery point {} is nested in composite recovery point {parent}; delete the parent (which deletes its nested points), or detach this one first (DisassociateRecoveryPointFromParent).",
        rp.arn
    ))
}

/// Deletes `rp` as DeleteRecoveryPoint and the lifecycle sweep do: a parent with every child
/// it still has, an ordinary point alone. `Ok(Err(why))` when something holds it (or one of
/// the children), and nothing is deleted then. `what` says why, for the events.
pub(crate) fn delete(
    tx: &mut dyn Txn,
    vault: &mut vaults::VaultRecord,
    rp: &RecoveryPointRecord,
    now: DateTime<Utc>,
) -> Result<std::result::Result<usize, String>> {
    let mut doomed = vec![rp.clone()];
    if rp.composite.is_parent {
        doomed.extend(children(tx, rp)?);
    }
    for p in &doomed {
        if let Some(why) = retention::removal_blocker(tx, vault, p, now)? {
            return Ok(Err(why));
        }
    }
    for p in &doomed {
        recovery_points::remove(tx, vault, p, now)?;
        events::recovery_point_modified(tx, p, now, "deleted")?;
    }
    Ok(Ok(doomed.len()))
}

/// Detaches nested point `rp_arn` of vault `vault` from its parent.
pub(crate) fn disassociate(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    vault: &str,
    rp_arn: &str,
    now: DateTime<Utc>,
) -> Result<RecoveryPointRecord> {
    let mut rp = recovery_points::find_in_vault(tx, account, region, vault, rp_arn)?;
    if rp.composite.parent_arn.is_none() {
        return Err(ApiError::invalid_request(format!(
            "Recovery point {rp_arn} is not nested in a composite recovery point; there is no parent to disassociate it from."
        ))
        .into());
    }
    rp.composite.parent_arn = None;
    recovery_points::save(tx, &rp)?;
    events::recovery_point_modified(tx, &rp, now, "disassociated from its parent")?;
    Ok(rp)
}
