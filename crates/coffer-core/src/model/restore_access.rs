//! Who besides its owner may read an air-gapped vault's recovery points, and what an approved
//! (or failed) approval session changes in the vaults.
//!
//! Two ways lead another account to an air-gapped vault's points, both restore-only:
//! - a restore access backup vault of that account (CreateRestoreAccessBackupVault), opened
//!   once the source vault's approval team approved it (`model::approvals`); its records are
//!   indexed by source in `ra_by_source` (key `SOURCE_UID:ACCOUNT:REGION:NAME`, value the
//!   restore access vault's key), so ListRestoreAccessBackupVaults and every access check are
//!   one prefix scan;
//! - the vault's access policy sharing it: an Allow of `backup:ListRecoveryPointsByBackupVault`
//!   to an account named in the policy lists the vault in that account's
//!   `ListBackupVaults ByShared=true` and lets it list the points; an Allow of
//!   `backup:StartRestoreJob` lets it restore them. The accounts are indexed in `vault_share`
//!   (key `GRANTEE:REGION:OWNER:NAME`), rebuilt in the transaction that changes the policy.
//!
//! Deleting is never allowed this way (AccessDeniedException), whatever a policy says.

use chrono::{DateTime, Utc};
use coffer_api::ApiError;
use coffer_api::types::{MpaSessionStatus, VaultState};
use coffer_store::Txn;

use crate::model::approvals::{Request, SessionRecord};
use crate::model::error::Result;
use crate::model::recovery_points::{self, RecoveryPointRecord};
use crate::model::vaults::{self, VaultRecord};
use crate::model::{arn, vault_policy};

pub(crate) const BY_SOURCE: &str = "ra_by_source";
pub(crate) const SHARES: &str = "vault_share";
/// The grantees indexed for each shared vault (key: the vault's key), to remove them again.
pub(crate) const SHARED_WITH: &str = "vault_shared_with";

/// The action that shares a vault's listing with another account.
pub(crate) const LIST_ACTION: &str = "backup:ListRecoveryPointsByBackupVault";
/// The action that lets another account restore a shared vault's points.
pub(crate) const RESTORE_ACTION: &str = "backup:StartRestoreJob";

/// AccessDeniedException for `account` calling `action` on `resource`, as IAM words it.
pub(crate) fn access_denied(account: &str, action: &str, resource: &str, why: &str) -> ApiError {
    ApiError::new(
        403,
        "AccessDeniedException",
        format!(
            "User: arn:aws:iam::{account}:root is not authorized to perform: {action} on resource: {resource}. {why}"
        ),
    )
}

fn by_source_key(source_uid: &str, v: &VaultRecord) -> String {
    format!("{source_uid}:{}:{}:{}", v.account, v.region, v.name)
}

/// Indexes a new restore access vault under its source.
pub(crate) fn link(tx: &mut dyn Txn, ra: &VaultRecord) -> Result<()> {
    if let Some(l) = &ra.mpa.restore_access {
        let k = vaults::key(&ra.account, &ra.region, &ra.name);
        tx.put(BY_SOURCE, &by_source_key(&l.source_uid, ra), k.as_bytes())?;
    }
    Ok(())
}

/// Removes a restore access vault from its source's index (revoked or deleted).
pub(crate) fn unlink(tx: &mut dyn Txn, ra: &VaultRecord) -> Result<()> {
    if let Some(l) = &ra.mpa.restore_access {
        tx.delete(BY_SOURCE, &by_source_key(&l.source_uid, ra))?;
    }
    Ok(())
}

/// The restore access vaults of the source vault `source_uid` (of `account` when given).
pub(crate) fn of_source(
    tx: &mut dyn Txn,
    source_uid: &str,
    account: Option<&str>,
) -> Result<Vec<VaultRecord>> {
    let prefix = match account {
        Some(a) => format!("{source_uid}:{a}:"),
        None => format!("{source_uid}:"),
    };
    let mut out = Vec::new();
    for (_, k) in tx.scan(BY_SOURCE, &prefix, None, usize::MAX)?.iter() {
        if let Some(v) = tx.get(vaults::TABLE, &String::from_utf8_lossy(k))? {
            out.push(serde_json::from_slice(&v)?);
        }
    }
    Ok(out)
}

fn share_key(grantee: &str, v: &VaultRecord) -> String {
    format!("{grantee}:{}:{}:{}", v.region, v.account, v.name)
}

/// Rebuilds the accounts `vault` is shared with from `policy` (none: not shared). Only an
/// air-gapped vault is shared; an account is a grantee when the policy names it and allows it
/// `backup:ListRecoveryPointsByBackupVault` on the vault.
pub(crate) fn reindex_shares(
    tx: &mut dyn Txn,
    vault: &VaultRecord,
    policy: Option<&str>,
) -> Result<()> {
    let vkey = vaults::key(&vault.account, &vault.region, &vault.name);
    if let Some(old) = tx.get(SHARED_WITH, &vkey)? {
        let old: Vec<String> = serde_json::from_slice(&old)?;
        for g in old {
            tx.delete(SHARES, &share_key(&g, vault))?;
        }
        tx.delete(SHARED_WITH, &vkey)?;
    }
    let Some(policy) = policy.filter(|_| vault.air_gapped) else {
        return Ok(());
    };
    let grantees: Vec<String> = vault_policy::named_accounts(policy)
        .into_iter()
        .filter(|a| {
            *a != vault.account && vault_policy::allowed(policy, LIST_ACTION, &[&vault.arn], a)
        })
        .collect();
    for g in &grantees {
        tx.put(SHARES, &share_key(g, vault), vkey.as_bytes())?;
    }
    if !grantees.is_empty() {
        tx.put(SHARED_WITH, &vkey, &serde_json::to_vec(&grantees)?)?;
    }
    Ok(())
}

/// The vaults of other accounts shared with `account` in `region`.
pub(crate) fn shared_with(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
) -> Result<Vec<VaultRecord>> {
    let mut out = Vec::new();
    let rows = tx.scan(SHARES, &format!("{account}:{region}:"), None, usize::MAX)?;
    for (_, k) in rows.iter() {
        if let Some(v) = tx.get(vaults::TABLE, &String::from_utf8_lossy(k))? {
            out.push(serde_json::from_slice(&v)?);
        }
    }
    Ok(out)
}

/// The vault whose recovery points `caller` sees under `name`: its own vault; for a restore
/// access vault, the source vault once access is approved; with `owner` naming another
/// account, that account's air-gapped vault if its policy shares it with `caller`.
pub(crate) fn readable_vault(
    tx: &mut dyn Txn,
    caller: &str,
    region: &str,
    name: &str,
    owner: Option<&str>,
    now: DateTime<Utc>,
) -> Result<VaultRecord> {
    if let Some(owner) = owner.filter(|o| *o != caller) {
        let target = arn::backup_vault(region, owner, name);
        let shared = match tx.get(vaults::TABLE, &vaults::key(owner, region, name))? {
            Some(v) => {
                let v: VaultRecord = serde_json::from_slice(&v)?;
                let k = vaults::key(owner, region, name);
                let policy = vault_policy::get(tx, &k)?;
                let ok = v.air_gapped
                    && policy
                        .is_some_and(|p| vault_policy::allowed(&p, LIST_ACTION, &[&v.arn], caller));
                ok.then_some(v)
            }
            None => None,
        };
        return shared.ok_or_else(|| {
            access_denied(
                caller,
                LIST_ACTION,
                &target,
                "The vault's access policy does not share it with this account.",
            )
            .into()
        });
    }
    let v = vaults::read(tx, &vaults::key(caller, region, name), name)?;
    match &v.mpa.restore_access {
        None => Ok(v),
        Some(_) => source_of(tx, &v, now),
    }
}

/// The source vault an AVAILABLE restore access vault reads; an error saying why otherwise.
pub(crate) fn source_of(
    tx: &mut dyn Txn,
    ra: &VaultRecord,
    now: DateTime<Utc>,
) -> Result<VaultRecord> {
    let Some(l) = &ra.mpa.restore_access else {
        return Ok(ra.clone());
    };
    match l.state_at(now) {
        VaultState::Available => {}
        VaultState::Creating => {
            return Err(ApiError::invalid_request(format!(
                "Restore access backup vault '{}' is awaiting approval (session {}); its recovery points can be read once the source vault's approval team approves it.",
                ra.name, l.session_arn
            ))
            .into());
        }
        _ => {
            return Err(ApiError::invalid_request(format!(
                "Restore access backup vault '{}' was not approved (session {} failed); request access again with CreateRestoreAccessBackupVault.",
                ra.name, l.session_arn
            ))
            .into());
        }
    }
    let k = vaults::key(&l.source_account, &l.source_region, &l.source_name);
    if let Some(v) = tx.get(vaults::TABLE, &k)? {
        let v: VaultRecord = serde_json::from_slice(&v)?;
        if v.uid == l.source_uid {
            return Ok(v);
        }
    }
    Err(ApiError::invalid_request(format!(
        "The source vault {} of restore access backup vault '{}' no longer exists.",
        l.source_arn, ra.name
    ))
    .into())
}

/// Refuses `caller` restoring `rp` unless the point is its own, or it reaches the point's vault
/// through an AVAILABLE restore access vault or the vault's access policy
/// (`backup:StartRestoreJob`; air-gapped vaults only). AccessDeniedException otherwise.
pub(crate) fn check_restore(
    tx: &mut dyn Txn,
    caller: &str,
    rp: &RecoveryPointRecord,
    now: DateTime<Utc>,
) -> Result<()> {
    if rp.account == caller {
        return Ok(());
    }
    let denied = || {
        access_denied(
            caller,
            RESTORE_ACTION,
            &rp.arn,
            "Restoring another account's recovery point needs an approved restore access backup vault (CreateRestoreAccessBackupVault) or the vault's access policy sharing it.",
        )
    };
    let vkey = vaults::key(&rp.account, &rp.region, &rp.vault_name);
    let Some(v) = tx.get(vaults::TABLE, &vkey)? else {
        return Err(denied().into());
    };
    let vault: VaultRecord = serde_json::from_slice(&v)?;
    if vault.uid != rp.vault_uid {
        return Err(denied().into());
    }
    let through_ra = of_source(tx, &vault.uid, Some(caller))?.iter().any(|ra| {
        ra.region == rp.region
            && ra
                .mpa
                .restore_access
                .as_ref()
                .is_some_and(|l| l.state_at(now) == VaultState::Available)
    });
    if through_ra {
        return Ok(());
    }
    let shared = vault.air_gapped
        && vault_policy::get(tx, &vkey)?.is_some_and(|p| {
            vault_policy::allowed(&p, RESTORE_ACTION, &[&rp.arn, &vault.arn], caller)
        });
    if shared {
        return Ok(());
    }
    Err(denied().into())
}

/// Brings the vault a session is about in line with the session's status (called whenever the
/// status changes): an approved restore access vault becomes AVAILABLE, a failed one FAILED; an
/// approved team change is applied; the vault's LatestMpaApprovalTeamUpdate follows. Answers
/// the vault as written (`None` when it is gone, e.g. revoked).
pub(crate) fn settle(
    tx: &mut dyn Txn,
    s: &SessionRecord,
    now: DateTime<Utc>,
) -> Result<Option<VaultRecord>> {
    let vault_key = match &s.request {
        Request::RestoreAccess { vault_key }
        | Request::Associate { vault_key, .. }
        | Request::Disassociate { vault_key } => vault_key,
    };
    let Some(v) = tx.get(vaults::TABLE, vault_key)? else {
        return Ok(None);
    };
    let mut v: VaultRecord = serde_json::from_slice(&v)?;
    let approved = s.status == MpaSessionStatus::Approved;
    match &s.request {
        Request::RestoreAccess { .. } => {
            let Some(l) = v
                .mpa
                .restore_access
                .as_mut()
                .filter(|l| l.session_arn == s.arn)
            else {
                return Ok(None);
            };
            match s.status {
                MpaSessionStatus::Approved => {
                    l.state = VaultState::Available;
                    l.approval_date = Some(now);
                }
                MpaSessionStatus::Failed => l.state = VaultState::Failed,
                _ => {}
            }
        }
        Request::Associate { team_arn, .. } => {
            if approved {
                v.mpa.team_arn = Some(team_arn.clone());
            }
        }
        Request::Disassociate { .. } => {
            if approved {
                v.mpa.team_arn = None;
            }
        }
    }
    if let Some(u) = v
        .mpa
        .latest_update
        .as_mut()
        .filter(|u| u.session_arn.as_deref() == Some(&s.arn))
    {
        u.status = s.status.clone();
        u.message = s.status_message.clone();
    }
    vaults::write(tx, vault_key, &v)?;
    Ok(Some(v))
}

/// The recovery point `rp_arn` names, for a restore by `caller` in `region`: its own, or
/// another account's that `caller` may restore ([`check_restore`]). Another account's point
/// that does not exist is refused like one that is not shared, so nothing is learnt of it.
pub(crate) fn find_restorable(
    tx: &mut dyn Txn,
    caller: &str,
    region: &str,
    rp_arn: &str,
    now: DateTime<Utc>,
) -> Result<RecoveryPointRecord> {
    let owner = arn::parse(rp_arn)
        .filter(|a| a.service == "backup" && a.account != caller && !a.account.is_empty())
        .map(|a| a.account.to_string());
    let Some(owner) = owner else {
        return recovery_points::find(tx, caller, region, rp_arn);
    };
    match recovery_points::find(tx, &owner, region, rp_arn) {
        Ok(rp) => {
            check_restore(tx, caller, &rp, now)?;
            Ok(rp)
        }
        Err(e) if e.0.code() == "ResourceNotFoundException" => Err(access_denied(
            caller,
            RESTORE_ACTION,
            rp_arn,
            "Restoring another account's recovery point needs an approved restore access backup vault (CreateRestoreAccessBackupVault) or the vault's access policy sharing it.",
        )
        .into()),
        Err(e) => Err(e),
    }
}
