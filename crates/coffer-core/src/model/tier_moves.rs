//! Storage tiers: where a recovery point's data may live besides its vault's own repository,
//! and the journal that makes a move between them crash-safe.
//!
//! A server may configure a cold tier and a low-cost tier (a directory each). A vault gets
//! its own repository in each tier on first use (table `tier_repo`, key `VAULT_UID:TIER`),
//! and a recovery point records which tier holds its data (`RecoveryPointRecord::tier`;
//! none: the vault's own, warm repository). A move copies the snapshot into the tier's
//! repository, verifies it there, and only then, in one transaction, points the record at
//! the new snapshot, flips StorageClass and queues the old snapshot's removal
//! (`model::deletions`). The journal entry (table `tier_move`, key the point's key) is written
//! before the copy and dropped in that same transaction, so after a crash an entry names a
//! move whose copy may exist in the tier but is not recorded: the next sweep finishes or undoes
//! it, and a point is always recorded in exactly one place that holds its data.

use chrono::{DateTime, Duration, Utc};
use coffer_engine::SnapshotRef;
use coffer_store::Txn;
use serde::{Deserialize, Serialize};

use crate::model::error::Result;
use crate::model::recovery_points::RecoveryPointRecord;
use crate::model::states::{StorageClass, Tier};
use crate::model::{tiering, vaults};

pub(crate) const JOURNAL: &str = "tier_move";
pub(crate) const REPOS: &str = "tier_repo";

/// Where a point's data is, for messages: a tier's name or `warm`.
pub(crate) fn place(tier: Option<Tier>) -> &'static str {
    tier.map_or("warm", Tier::as_str)
}

/// The key of a vault's repository in `tier`.
pub(crate) fn repo_key(vault_uid: &str, tier: Tier) -> String {
    format!("{vault_uid}:{}", tier.as_str())
}

/// The repository of the vault `vault_uid` in `tier`, if one was made.
pub(crate) fn tier_repo(
    tx: &mut dyn Txn,
    vault_uid: &str,
    tier: Tier,
) -> Result<Option<vaults::RepoRecord>> {
    match tx.get(REPOS, &repo_key(vault_uid, tier))? {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

/// Queues the removal of a deleted vault's tier repositories (inside the deleting
/// transaction), as its own repository's.
pub(crate) fn queue_tier_removals(tx: &mut dyn Txn, vault_uid: &str) -> Result<()> {
    for tier in [Tier::Cold, Tier::LowCost] {
        if let Some(repo) = tier_repo(tx, vault_uid, tier)? {
            let k = repo_key(vault_uid, tier);
            vaults::queue_removal(tx, &k, &repo)?;
            tx.delete(REPOS, &k)?;
        }
    }
    Ok(())
}

/// A move under way: written before the copy into the tier, dropped when the point is
/// recorded there (or the move is undone).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TierMove {
    pub rp_key: String,
    pub rp_id: String,
    pub account: String,
    pub region: String,
    pub vault_name: String,
    pub vault_uid: String,
    pub from: Option<Tier>,
    pub to: Tier,
    /// The snapshot being moved (where `from` holds it).
    pub snapshot: SnapshotRef,
    pub started: DateTime<Utc>,
}

/// May `rp` move to `to` now? A composite parent holds no data; a point is never moved to the
/// tier it is in; the low-cost tier takes warm points only (a cold point stays cold).
pub(crate) fn may_move(rp: &RecoveryPointRecord, to: Tier) -> bool {
    if rp.composite.is_parent || rp.tier == Some(to) {
        return false;
    }
    match to {
        Tier::Cold => true,
        Tier::LowCost => rp.storage_class == StorageClass::Warm,
    }
}

/// Journals the move of `rp` to `to` (replacing an earlier entry for it).
pub(crate) fn begin(
    tx: &mut dyn Txn,
    rp: &RecoveryPointRecord,
    to: Tier,
    now: DateTime<Utc>,
) -> Result<TierMove> {
    let m = TierMove {
        rp_key: rp.key(),
        rp_id: rp.id.clone(),
        account: rp.account.clone(),
        region: rp.region.clone(),
        vault_name: rp.vault_name.clone(),
        vault_uid: rp.vault_uid.clone(),
        from: rp.tier,
        to,
        snapshot: rp.snapshot.clone(),
        started: now,
    };
    tx.put(JOURNAL, &m.rp_key, &serde_json::to_vec(&m)?)?;
    Ok(m)
}

/// Every journaled move (a bounded batch).
pub(crate) fn journaled(tx: &mut dyn Txn) -> Result<Vec<TierMove>> {
    let mut out = Vec::new();
    for (_, v) in tx.scan(JOURNAL, "", None, 256)? {
        out.push(serde_json::from_slice(&v)?);
    }
    Ok(out)
}

/// Is `m` still the move under way for its point (not ended, not replaced)?
pub(crate) fn is_current(tx: &mut dyn Txn, m: &TierMove) -> Result<bool> {
    Ok(match tx.get(JOURNAL, &m.rp_key)? {
        Some(v) => serde_json::from_slice::<TierMove>(&v)?.started == m.started,
        None => false,
    })
}

pub(crate) fn end(tx: &mut dyn Txn, rp_key: &str) -> Result<()> {
    tx.delete(JOURNAL, rp_key)?;
    Ok(())
}

/// When the tiering configuration of `rp`'s vault (or the one for every vault) sends it to
/// the low-cost tier: the earliest TieringDownSettingsInDays of the S3 selections that name
/// its resource, counted from its creation date. `None` when none applies.
pub(crate) fn low_cost_due(
    tx: &mut dyn Txn,
    rp: &RecoveryPointRecord,
) -> Result<Option<DateTime<Utc>>> {
    if rp.resource_type != tiering::RESOURCE_TYPE || rp.tier.is_some() {
        return Ok(None);
    }
    let specific = tiering::key(&rp.account, &rp.region, &rp.vault_name);
    let every = tiering::key(&rp.account, &rp.region, tiering::ALL_VAULTS);
    let name = match tiering::for_vault(tx, &specific)? {
        Some(n) => Some(n),
        None => tiering::for_vault(tx, &every)?,
    };
    let Some(name) = name else {
        return Ok(None);
    };
    let Some(config) = tiering::load(tx, &tiering::key(&rp.account, &rp.region, &name))? else {
        return Ok(None);
    };
    let days = config
        .selections
        .iter()
        .filter(|s| s.resource_type == tiering::RESOURCE_TYPE)
        .filter(|s| {
            s.resources
                .iter()
                .any(|r| r == "*" || *r == rp.resource_arn)
        })
        .map(|s| s.tiering_down_settings_in_days)
        .min();
    Ok(days.map(|d| rp.creation_date + Duration::days(i64::from(d))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_are_stored_by_their_setting_names() {
        assert_eq!(serde_json::to_string(&Tier::Cold).unwrap(), "\"cold\"");
        assert_eq!(
            serde_json::to_string(&Tier::LowCost).unwrap(),
            "\"low_cost\""
        );
        assert_eq!(repo_key("u1", Tier::LowCost), "u1:low_cost");
        assert_eq!(place(None), "warm");
    }
}
