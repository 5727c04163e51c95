//! Vault records (table `vault`, key `ACCOUNT:REGION:NAME`), their repository record, and the
//! queue of repositories of deleted vaults to remove (`repo_removal`).

use chrono::{DateTime, Utc};
use coffer_api::types::*;
use coffer_api::{ApiError, Timestamp};
use coffer_store::Txn;
use serde::{Deserialize, Serialize};

use crate::model::Meta;
use crate::model::error::Result;
use crate::model::vault_lock::VaultLock;
use coffer_engine::{SealedVaultKey, VaultLocation};

pub(crate) const TABLE: &str = "vault";

/// A vault as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VaultRecord {
    pub account: String,
    pub region: String,
    pub name: String,
    pub arn: String,
    pub creation_date: DateTime<Utc>,
    pub creator_request_id: Option<String>,
    pub encryption_key_arn: String,
    pub encryption_key_type: EncryptionKeyType,
    #[serde(default)]
    pub recovery_points: i64,
    /// A fresh id per vault: names its repository directory.
    #[serde(default)]
    pub uid: String,
    /// The vault's repository, once created (on first use).
    #[serde(default)]
    pub repo: Option<RepoRecord>,
    /// The lock configuration; an air-gapped vault's retention bounds are a lock from its
    /// creation on (lock date = creation date), so every lock rule applies to it unchanged.
    #[serde(default)]
    pub lock: Option<VaultLock>,
    /// A logically air-gapped vault (CreateLogicallyAirGappedBackupVault): recovery points
    /// arrive only by copy, and its retention bounds can never be changed.
    #[serde(default)]
    pub air_gapped: bool,
    /// Approval teams and restore access (see `model::restore_access`): the team associated
    /// with an air-gapped vault, its latest change, and for a restore access backup vault the
    /// vault it gives access to.
    #[serde(default)]
    pub mpa: VaultMpa,
}

/// What multi-party approval adds to a vault record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct VaultMpa {
    /// The approval team associated with this (air-gapped) vault.
    #[serde(default)]
    pub team_arn: Option<String>,
    /// The latest association or disassociation of a team, approved or awaiting approval.
    #[serde(default)]
    pub latest_update: Option<TeamUpdate>,
    /// Set on a restore access backup vault: the air-gapped vault it reads.
    #[serde(default)]
    pub restore_access: Option<RestoreAccessLink>,
}

/// A change of a vault's approval team (LatestMpaApprovalTeamUpdate).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TeamUpdate {
    pub session_arn: Option<String>,
    pub status: MpaSessionStatus,
    pub initiated: DateTime<Utc>,
    pub expires: Option<DateTime<Utc>>,
    pub message: Option<String>,
}

/// A restore access backup vault's source and the approval that opens it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RestoreAccessLink {
    pub source_arn: String,
    pub source_account: String,
    pub source_region: String,
    pub source_name: String,
    /// The source vault's uid when the access was requested: a source deleted and made again
    /// under the same name is another vault, and this access does not reach it.
    pub source_uid: String,
    pub session_arn: String,
    /// CREATING while the request awaits approval, AVAILABLE once approved, FAILED when the
    /// request expired unapproved.
    pub state: VaultState,
    pub approval_date: Option<DateTime<Utc>>,
    /// When the request expires if it is not approved by then.
    pub expires: DateTime<Utc>,
}

impl RestoreAccessLink {
    /// The state at `now`: a request still awaiting approval after its expiry has failed.
    pub(crate) fn state_at(&self, now: DateTime<Utc>) -> VaultState {
        if self.state == VaultState::Creating && now >= self.expires {
            VaultState::Failed
        } else {
            self.state.clone()
        }
    }
}

impl TeamUpdate {
    /// The status at `now`: an update still awaiting approval after its expiry has failed.
    pub(crate) fn status_at(&self, now: DateTime<Utc>) -> MpaSessionStatus {
        match (&self.status, self.expires) {
            (MpaSessionStatus::Pending, Some(e)) if now >= e => MpaSessionStatus::Failed,
            (s, _) => s.clone(),
        }
    }
}

/// The store key of a vault: account and region first, so a scan by prefix lists one scope.
pub(crate) fn key(account: &str, region: &str, name: &str) -> String {
    format!("{}{name}", scope(account, region))
}

pub(crate) fn scope(account: &str, region: &str) -> String {
    format!("{account}:{region}:")
}

pub(crate) fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "Backup vault '{name}' does not exist in this account and region."
    ))
}

/// Reads the vault stored under `k` inside a transaction; absent is ResourceNotFoundException.
pub(crate) fn read(tx: &mut dyn Txn, k: &str, name: &str) -> Result<VaultRecord> {
    match tx.get(TABLE, k)? {
        Some(v) => Ok(serde_json::from_slice(&v)?),
        None => Err(not_found(name).into()),
    }
}

/// Stores a vault record under `k` inside a transaction.
pub(crate) fn write(tx: &mut dyn Txn, k: &str, v: &VaultRecord) -> Result<()> {
    tx.put(TABLE, k, &serde_json::to_vec(v)?)?;
    Ok(())
}

impl VaultRecord {
    /// Whether Vault Lock protects the vault: any lock configuration does, in governance
    /// mode and in compliance mode alike, from the moment it is put (its retention bounds
    /// apply at once; the lock date only ends the time in which the lock can be changed).
    pub(crate) fn locked(&self) -> bool {
        self.lock.is_some()
    }

    /// The vault's type as the API reports it.
    pub(crate) fn vault_type(&self) -> VaultType {
        if self.mpa.restore_access.is_some() {
            VaultType::RestoreAccessBackupVault
        } else if self.air_gapped {
            VaultType::LogicallyAirGappedBackupVault
        } else {
            VaultType::BackupVault
        }
    }

    /// What kind of vault this is, for messages.
    pub(crate) fn kind_noun(&self) -> &'static str {
        if self.mpa.restore_access.is_some() {
            "restore access backup vault"
        } else if self.air_gapped {
            "logically air-gapped backup vault"
        } else {
            "backup vault"
        }
    }

    /// The vault as DescribeBackupVault shows it at `now` (a request awaiting approval past
    /// its expiry shows as failed).
    pub(crate) fn describe_at(&self, now: DateTime<Utc>) -> DescribeBackupVaultOutput {
        let ra = self.mpa.restore_access.as_ref();
        let update = self
            .mpa
            .latest_update
            .as_ref()
            .map(|u| LatestMpaApprovalTeamUpdate {
                expiry_date: u.expires.map(Timestamp),
                initiation_date: Some(Timestamp(u.initiated)),
                mpa_session_arn: u.session_arn.clone(),
                status: Some(u.status_at(now)),
                status_message: u.message.clone(),
            });
        DescribeBackupVaultOutput {
            vault_state: Some(ra.map_or(VaultState::Available, |r| r.state_at(now))),
            source_backup_vault_arn: ra.map(|r| r.source_arn.clone()),
            mpa_session_arn: ra.map(|r| r.session_arn.clone()),
            mpa_approval_team_arn: self.mpa.team_arn.clone(),
            latest_mpa_approval_team_update: update,
            ..self.describe()
        }
    }

    pub(crate) fn describe(&self) -> DescribeBackupVaultOutput {
        DescribeBackupVaultOutput {
            backup_vault_arn: Some(self.arn.clone()),
            backup_vault_name: Some(self.name.clone()),
            creation_date: Some(Timestamp(self.creation_date)),
            creator_request_id: self.creator_request_id.clone(),
            encryption_key_arn: Some(self.encryption_key_arn.clone()),
            encryption_key_type: Some(self.encryption_key_type.clone()),
            locked: Some(self.locked()),
            lock_date: self.lock.as_ref().and_then(|l| l.lock_date).map(Timestamp),
            min_retention_days: self.lock.as_ref().and_then(|l| l.min_retention_days),
            max_retention_days: self.lock.as_ref().and_then(|l| l.max_retention_days),
            number_of_recovery_points: Some(self.recovery_points),
            vault_state: Some(VaultState::Available),
            vault_type: Some(self.vault_type()),
            ..Default::default()
        }
    }

    /// The vault as ListBackupVaults shows it at `now`.
    pub(crate) fn list_member_at(&self, now: DateTime<Utc>) -> BackupVaultListMember {
        let d = self.describe_at(now);
        BackupVaultListMember {
            backup_vault_arn: d.backup_vault_arn,
            backup_vault_name: d.backup_vault_name,
            creation_date: d.creation_date,
            creator_request_id: d.creator_request_id,
            encryption_key_arn: d.encryption_key_arn,
            encryption_key_type: d.encryption_key_type,
            lock_date: d.lock_date,
            locked: d.locked,
            max_retention_days: d.max_retention_days,
            min_retention_days: d.min_retention_days,
            number_of_recovery_points: d.number_of_recovery_points,
            vault_state: d.vault_state,
            vault_type: d.vault_type,
        }
    }
}

/// Reads a vault of a scope (through the store's read cache); `None` when it does not exist.
/// A store failure is an error, never "not found".
pub(crate) async fn find(
    meta: &Meta,
    account: &str,
    region: &str,
    name: &str,
) -> Result<Option<VaultRecord>> {
    match meta
        .store()
        .get_cached(TABLE, &key(account, region, name))
        .await?
    {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

/// Reads a vault of the caller's scope (through the store's read cache).
pub(crate) async fn get(
    meta: &Meta,
    account: &str,
    region: &str,
    name: &str,
) -> Result<VaultRecord> {
    match meta
        .store()
        .get_cached(TABLE, &key(account, region, name))
        .await?
    {
        Some(v) => Ok(serde_json::from_slice(&v)?),
        None => Err(not_found(name).into()),
    }
}

/// Reads a vault inside a transaction.
pub(crate) fn load(tx: &mut dyn coffer_store::Txn, key: &str, name: &str) -> Result<VaultRecord> {
    match tx.get(TABLE, key)? {
        Some(v) => Ok(serde_json::from_slice(&v)?),
        None => Err(not_found(name).into()),
    }
}

/// Writes a vault inside a transaction.
pub(crate) fn save(tx: &mut dyn coffer_store::Txn, v: &VaultRecord) -> Result<()> {
    tx.put(
        TABLE,
        &key(&v.account, &v.region, &v.name),
        &serde_json::to_vec(v)?,
    )?;
    Ok(())
}

/// How a vault's repository is reached, as stored in the vault's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RepoRecord {
    pub location: VaultLocation,
    pub sealed_key: SealedVaultKey,
}

pub(crate) const REMOVALS: &str = "repo_removal";

/// Queues the removal of a deleted vault's repository (inside the deleting transaction).
pub(crate) fn queue_removal(
    tx: &mut dyn coffer_store::Txn,
    uid: &str,
    repo: &RepoRecord,
) -> Result<()> {
    tx.put(REMOVALS, uid, &serde_json::to_vec(&repo.location)?)?;
    Ok(())
}

/// Table of repository creations under way, keyed by vault uid: which process creates the
/// vault's repository, until when. Several nodes may want a vault's repository at once (two
/// jobs into a new vault, on two nodes); the one whose claim is written creates it, the others
/// wait for the vault record to name it. A claim whose holder died runs out and is taken over.
pub(crate) const REPO_CLAIMS: &str = "repo_claim";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RepoClaim {
    holder: String,
    until: DateTime<Utc>,
}

/// What [`claim_repo_creation`] found.
#[derive(Debug)]
pub(crate) enum RepoCreation {
    /// The vault's repository exists (another node created it): open this one.
    Exists(RepoRecord),
    /// The caller holds the claim: create the repository, then [`record_created_repo`].
    Claimed,
    /// Another process is creating it; look again later.
    Busy,
}

/// In one write transaction: the vault's recorded repository, or the claim to create it for
/// `holder` until `until` (wall clock), or `Busy` while another holder's claim runs.
pub(crate) fn claim_repo_creation(
    tx: &mut dyn Txn,
    vault: &VaultRecord,
    holder: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<RepoCreation> {
    let current = load(
        tx,
        &key(&vault.account, &vault.region, &vault.name),
        &vault.name,
    )?;
    if current.uid != vault.uid {
        return Err(
            ApiError::not_found(format!("Backup vault '{}' was deleted.", vault.name)).into(),
        );
    }
    if let Some(repo) = current.repo {
        return Ok(RepoCreation::Exists(repo));
    }
    if let Some(v) = tx.get(REPO_CLAIMS, &vault.uid)? {
        let claim: RepoClaim = serde_json::from_slice(&v)?;
        if claim.holder != holder && claim.until > now {
            return Ok(RepoCreation::Busy);
        }
    }
    let claim = RepoClaim {
        holder: holder.to_string(),
        until,
    };
    tx.put(REPO_CLAIMS, &vault.uid, &serde_json::to_vec(&claim)?)?;
    Ok(RepoCreation::Claimed)
}

/// Records the repository `holder` created, if its claim still stands (a claim that ran out
/// may have been taken over: then the other holder's repository is the vault's, and this
/// answers `false` so the caller drops its own). Removes the claim.
pub(crate) fn record_created_repo(
    tx: &mut dyn Txn,
    vault: &VaultRecord,
    holder: &str,
    repo: &RepoRecord,
) -> Result<bool> {
    let k = key(&vault.account, &vault.region, &vault.name);
    let mut current = load(tx, &k, &vault.name)?;
    let held = match tx.get(REPO_CLAIMS, &vault.uid)? {
        Some(v) => serde_json::from_slice::<RepoClaim>(&v)?.holder == holder,
        None => false,
    };
    if current.uid != vault.uid || current.repo.is_some() || !held {
        return Ok(false);
    }
    current.repo = Some(repo.clone());
    tx.put(TABLE, &k, &serde_json::to_vec(&current)?)?;
    tx.delete(REPO_CLAIMS, &vault.uid)?;
    Ok(true)
}
