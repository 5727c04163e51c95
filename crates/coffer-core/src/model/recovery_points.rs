//! Recovery points: what a completed backup or copy leaves in a vault.
//!
//! Each is a record in table `recovery_point` (key `ACCOUNT:REGION:VAULT:ID`, so one vault's
//! points are one scan) pointing at its snapshot in the vault's repository, with an index from
//! id to vault (`rp_index`). A recovery point is recorded only once its snapshot is complete,
//! so no half-made point is ever visible. Deleting one removes the record and queues the
//! snapshot's removal from the repository (`model::deletions`) in the same transaction; the
//! runner carries the removal out, after a restart too, retrying with backoff.

use chrono::{DateTime, Duration, Utc};
use coffer_api::types::*;
use coffer_api::{ApiError, Timestamp};
use coffer_engine::SnapshotRef;
use coffer_store::Txn;
use serde::{Deserialize, Serialize};

use crate::model::error::Result;
pub(crate) use crate::model::rp_keys::{BY_VAULT, by_vault_prefix, newest_first};
use crate::model::states::{RecoveryPointStatus, StorageClass};
use crate::model::{Meta, arn, deletions, due, indexes, rp_keys, tags, vaults};

pub(crate) const TABLE: &str = "recovery_point";
pub(crate) const INDEX: &str = "rp_index";
/// A resource's points in every vault, newest first: key `ACCOUNT:REGION:LEN:ARN:NEWEST:ID`
/// (LEN the ARN's length, so one ARN's prefix is never another's), value the point's key.
pub(crate) const BY_RESOURCE: &str = "rp_by_resource";

/// The resources of a scope with at least one recovery point: key `ACCOUNT:REGION:ARN`, value
/// a [`Protected`] naming the resource's newest point (what ListProtectedResources pages).
pub(crate) const PROTECTED: &str = "rp_protected";

/// A vault's points by one more value ([`VaultField`]: what ListRecoveryPointsByBackupVault
/// filters on), newest first: key `ACCOUNT:REGION:VAULT:FIELD:LEN:VALUE:NEWEST:ID` (LEN the
/// value's length, as in [`BY_RESOURCE`]), value the point's key.
pub(crate) const BY_VAULT_FIELD: &str = "rp_by_vault_field";

/// The resources with at least one recovery point in a vault: key `ACCOUNT:REGION:VAULT:ARN`,
/// value a [`Protected`] naming the resource's newest point in the vault (what
/// ListProtectedResourcesByBackupVault pages).
pub(crate) const PROTECTED_IN_VAULT: &str = "rp_protected_in_vault";

/// A value of a point that [`BY_VAULT_FIELD`] orders a vault's points by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VaultField {
    Resource,
    ResourceType,
    /// The backup plan that made it (`CreatedBy.BackupPlanId`).
    Plan,
    /// The composite point it is nested in.
    Parent,
}

impl VaultField {
    const ALL: [VaultField; 4] = [
        VaultField::Resource,
        VaultField::ResourceType,
        VaultField::Plan,
        VaultField::Parent,
    ];

    fn name(self) -> &'static str {
        match self {
            VaultField::Resource => "resource",
            VaultField::ResourceType => "type",
            VaultField::Plan => "plan",
            VaultField::Parent => "parent",
        }
    }

    /// `rp`'s value of this field, if it has one.
    fn of(self, rp: &RecoveryPointRecord) -> Option<&str> {
        match self {
            VaultField::Resource => Some(&rp.resource_arn),
            VaultField::ResourceType => Some(&rp.resource_type),
            VaultField::Plan => rp.created_by.as_ref()?.backup_plan_id.as_deref(),
            VaultField::Parent => rp.composite.parent_arn.as_deref(),
        }
    }
}

/// The value of a [`PROTECTED`] or [`PROTECTED_IN_VAULT`] entry: what ListProtectedResources
/// shows of a resource, taken from its newest recovery point (in the scope, or in the vault),
/// so a page of them reads no recovery point. Kept by every write and removal of a point.
/// A store written before it held the ARN alone there; [`build_indexes`] rewrites those.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Protected {
    pub resource_arn: String,
    pub resource_type: String,
    #[serde(default)]
    pub resource_name: Option<String>,
    /// The newest point's key, ARN, vault ARN and creation date.
    pub point_key: String,
    pub point_arn: String,
    pub vault_arn: String,
    pub created: DateTime<Utc>,
}

impl Protected {
    fn of(rp: &RecoveryPointRecord) -> Protected {
        Protected {
            resource_arn: rp.resource_arn.clone(),
            resource_type: rp.resource_type.clone(),
            resource_name: rp.resource_name.clone(),
            point_key: rp.key(),
            point_arn: rp.arn.clone(),
            vault_arn: rp.vault_arn.clone(),
            created: rp.creation_date,
        }
    }

    /// The entry a stored value holds; `None` for an entry of an earlier Coffer (the ARN).
    pub(crate) fn read(value: &[u8]) -> Option<Protected> {
        serde_json::from_slice(value).ok()
    }
}

/// The prefix of the entries of vault `vault`'s points whose `field` is `value` in
/// [`BY_VAULT_FIELD`].
pub(crate) fn by_vault_field_prefix(
    account: &str,
    region: &str,
    vault: &str,
    field: VaultField,
    value: &str,
) -> String {
    format!(
        "{account}:{region}:{vault}:{}:{}:{value}:",
        field.name(),
        value.len()
    )
}

/// The prefix of resource `resource_arn`'s entries in [`BY_RESOURCE`].
pub(crate) fn by_resource_prefix(account: &str, region: &str, resource_arn: &str) -> String {
    format!("{account}:{region}:{}:{resource_arn}:", resource_arn.len())
}

/// Every index entry of `rp`: `(table, key)`.
fn index_keys(rp: &RecoveryPointRecord) -> Vec<(&'static str, String)> {
    let tail = format!("{}:{}", newest_first(rp.creation_date), rp.id);
    let (a, r, v) = (&rp.account, &rp.region, &rp.vault_name);
    let mut out = vec![
        (BY_VAULT, format!("{}{tail}", by_vault_prefix(a, r, v))),
        (
            BY_RESOURCE,
            format!("{}{tail}", by_resource_prefix(a, r, &rp.resource_arn)),
        ),
    ];
    for field in VaultField::ALL {
        if let Some(value) = field.of(rp) {
            let prefix = by_vault_field_prefix(a, r, v, field, value);
            out.push((BY_VAULT_FIELD, format!("{prefix}{tail}")));
        }
    }
    out
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RecoveryPointRecord {
    pub id: String,
    pub arn: String,
    pub account: String,
    pub region: String,
    pub vault_name: String,
    pub vault_arn: String,
    pub vault_uid: String,
    pub snapshot: SnapshotRef,
    pub resource_arn: String,
    pub resource_type: String,
    pub resource_name: Option<String>,
    pub creation_date: DateTime<Utc>,
    pub initiation_date: Option<DateTime<Utc>>,
    pub completion_date: DateTime<Utc>,
    pub backup_size: i64,
    pub iam_role_arn: Option<String>,
    pub lifecycle: Option<Lifecycle>,
    pub created_by: Option<RecoveryPointCreator>,
    pub source_vault_arn: Option<String>,
    pub encryption_key_arn: String,
    pub status: RecoveryPointStatus,
    pub storage_class: StorageClass,
    #[serde(default)]
    pub last_restore_time: Option<DateTime<Utc>>,
    /// The source path the snapshot holds (restore metadata needs it).
    #[serde(default)]
    pub source_path: Option<String>,
    /// Its place in a composite recovery point, if any (`model::composite`).
    #[serde(default)]
    pub composite: Membership,
    /// The storage tier that holds its data; `None`: the vault's own repository
    /// (`model::tier_moves`).
    #[serde(default)]
    pub tier: Option<crate::model::states::Tier>,
    /// A continuous backup (a PostgreSQL base backup, `snapshot`, plus its WAL); `None` for a
    /// snapshot recovery point.
    #[serde(default)]
    pub continuous: Option<Continuous>,
}

/// What a continuous recovery point holds beyond its base backup: the WAL received so far and
/// the range of moments it can be restored to (times from the database server's clock, the
/// one its commit timestamps use).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Continuous {
    /// The physical replication slot on the source server that holds WAL for Coffer.
    pub slot: String,
    /// The database restores take from the recovered server.
    pub database: String,
    /// One snapshot per sync with the WAL segments it received, oldest first.
    pub wal: Vec<SnapshotRef>,
    pub earliest_restorable: DateTime<Utc>,
    pub latest_restorable: DateTime<Utc>,
}

/// The id of a new continuous recovery point of database `name`: AWS names these
/// `continuous:db-NAME-SUFFIX`, so their ARNs say what they are.
pub(crate) fn continuous_id(name: &str) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("continuous:db-{name}-{}", &suffix[..8])
}

/// Where a recovery point stands in a composite (nothing, for an ordinary point).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Membership {
    /// A parent (composite) point: it groups children and holds no snapshot.
    #[serde(default)]
    pub is_parent: bool,
    /// The parent of a nested point, while it belongs to one.
    #[serde(default)]
    pub parent_arn: Option<String>,
    /// Which member of the composite resource a nested point holds (the member's name).
    #[serde(default)]
    pub member_id: Option<String>,
}

pub(crate) fn key(account: &str, region: &str, vault: &str, id: &str) -> String {
    format!("{account}:{region}:{vault}:{id}")
}

/// The id inside a recovery point ARN of the caller's scope.
pub(crate) fn id_of(ctx_account: &str, ctx_region: &str, rp_arn: &str) -> Result<String> {
    let bad = || {
        ApiError::invalid_parameter(format!(
            "'{rp_arn}' is not a recovery point ARN (arn:aws:backup:REGION:ACCOUNT:recovery-point:ID)."
        ))
    };
    let a = arn::parse(rp_arn).ok_or_else(bad)?;
    let id = a.resource.strip_prefix("recovery-point:").ok_or_else(bad)?;
    if a.service != "backup" || id.is_empty() {
        return Err(bad().into());
    }
    if a.account != ctx_account || a.region != ctx_region {
        return Err(ApiError::not_found(format!(
            "Recovery point {rp_arn} does not exist in this account and region."
        ))
        .into());
    }
    Ok(id.to_string())
}

impl RecoveryPointRecord {
    pub fn key(&self) -> String {
        key(&self.account, &self.region, &self.vault_name, &self.id)
    }

    pub(crate) fn calculated(&self) -> Option<CalculatedLifecycle> {
        let l = self.lifecycle.as_ref()?;
        let at = |d: Option<i64>| d.map(|d| Timestamp(self.creation_date + Duration::days(d)));
        Some(CalculatedLifecycle {
            delete_at: at(l.delete_after_days),
            move_to_cold_storage_at: at(l.move_to_cold_storage_after_days),
        })
    }

    pub fn describe(&self) -> DescribeRecoveryPointOutput {
        DescribeRecoveryPointOutput {
            backup_size_in_bytes: Some(self.backup_size),
            backup_vault_arn: Some(self.vault_arn.clone()),
            backup_vault_name: Some(self.vault_name.clone()),
            calculated_lifecycle: self.calculated(),
            completion_date: Some(Timestamp(self.completion_date)),
            created_by: self.created_by.clone(),
            creation_date: Some(Timestamp(self.creation_date)),
            encryption_key_arn: Some(self.encryption_key_arn.clone()),
            encryption_key_type: Some(EncryptionKeyType::AwsOwnedKmsKey),
            iam_role_arn: self.iam_role_arn.clone(),
            initiation_date: self.initiation_date.map(Timestamp),
            is_encrypted: Some(true),
            is_parent: Some(self.composite.is_parent),
            parent_recovery_point_arn: self.composite.parent_arn.clone(),
            composite_member_identifier: self.composite.member_id.clone(),
            last_restore_time: self.last_restore_time.map(Timestamp),
            lifecycle: self.lifecycle.clone(),
            recovery_point_arn: Some(self.arn.clone()),
            resource_arn: Some(self.resource_arn.clone()),
            resource_name: self.resource_name.clone(),
            resource_type: Some(self.resource_type.clone()),
            source_backup_vault_arn: self.source_vault_arn.clone(),
            status: Some(self.status.into()),
            storage_class: Some(self.storage_class.into()),
            vault_type: Some(VaultType::BackupVault),
            ..Default::default()
        }
    }

    pub(crate) fn by_vault(&self) -> RecoveryPointByBackupVault {
        let d = self.describe();
        RecoveryPointByBackupVault {
            backup_size_in_bytes: d.backup_size_in_bytes,
            backup_vault_arn: d.backup_vault_arn,
            backup_vault_name: d.backup_vault_name,
            calculated_lifecycle: d.calculated_lifecycle,
            completion_date: d.completion_date,
            created_by: d.created_by,
            creation_date: d.creation_date,
            encryption_key_arn: d.encryption_key_arn,
            encryption_key_type: d.encryption_key_type,
            iam_role_arn: d.iam_role_arn,
            initiation_date: d.initiation_date,
            is_encrypted: d.is_encrypted,
            is_parent: d.is_parent,
            parent_recovery_point_arn: d.parent_recovery_point_arn,
            composite_member_identifier: d.composite_member_identifier,
            last_restore_time: d.last_restore_time,
            lifecycle: d.lifecycle,
            recovery_point_arn: d.recovery_point_arn,
            resource_arn: d.resource_arn,
            resource_name: d.resource_name,
            resource_type: d.resource_type,
            source_backup_vault_arn: d.source_backup_vault_arn,
            status: d.status,
            vault_type: d.vault_type,
            ..Default::default()
        }
    }

    /// A new PENDING index of this point (IamRoleArn the given one, else the backup's).
    pub(crate) fn new_index(
        &self,
        iam_role_arn: Option<String>,
        now: DateTime<Utc>,
    ) -> indexes::IndexRecord {
        indexes::IndexRecord {
            account: self.account.clone(),
            region: self.region.clone(),
            rp_id: self.id.clone(),
            rp_arn: self.arn.clone(),
            vault_name: self.vault_name.clone(),
            vault_arn: self.vault_arn.clone(),
            resource_arn: self.resource_arn.clone(),
            resource_type: self.resource_type.clone(),
            backup_creation_date: self.creation_date,
            iam_role_arn: iam_role_arn.or_else(|| self.iam_role_arn.clone()),
            status: indexes::Status::Pending,
            message: None,
            creation_date: now,
            completion_date: None,
            deletion_date: None,
            total_items: None,
        }
    }

    pub(crate) fn by_resource(&self) -> RecoveryPointByResource {
        RecoveryPointByResource {
            backup_size_bytes: Some(self.backup_size),
            backup_vault_name: Some(self.vault_name.clone()),
            creation_date: Some(Timestamp(self.creation_date)),
            encryption_key_arn: Some(self.encryption_key_arn.clone()),
            encryption_key_type: Some(EncryptionKeyType::AwsOwnedKmsKey),
            is_parent: Some(self.composite.is_parent),
            parent_recovery_point_arn: self.composite.parent_arn.clone(),
            recovery_point_arn: Some(self.arn.clone()),
            resource_name: self.resource_name.clone(),
            status: Some(self.status.into()),
            vault_type: Some(VaultType::BackupVault),
            ..Default::default()
        }
    }
}

/// Records a new recovery point in its vault (inside the job's final transaction).
pub(crate) fn insert(
    tx: &mut dyn Txn,
    rp: &RecoveryPointRecord,
    rp_tags: &tags::Tags,
) -> Result<()> {
    let vkey = vaults::key(&rp.account, &rp.region, &rp.vault_name);
    let mut vault = vaults::load(tx, &vkey, &rp.vault_name)?;
    if vault.uid != rp.vault_uid {
        return Err(ApiError::not_found(format!(
            "Backup vault '{}' was deleted while the job ran.",
            rp.vault_name
        ))
        .into());
    }
    vault.recovery_points += 1;
    vaults::save(tx, &vault)?;
    save(tx, rp)?;
    tx.put(
        INDEX,
        &format!("{}:{}:{}", rp.account, rp.region, rp.id),
        rp.vault_name.as_bytes(),
    )?;
    tags::set(tx, &rp.arn, rp_tags)?;
    Ok(())
}

/// Writes `rp` (new or changed) and keeps what follows it in the same transaction: its entry in
/// the lifecycle queue (`model::due`) and its entries in the indexes by vault, by resource and
/// by vault and field ([`BY_VAULT`], [`BY_RESOURCE`], [`BY_VAULT_FIELD`]; an entry the change
/// makes stale, such as a parent a nested point leaves, is deleted). Every write of a recovery
/// point record goes through here or [`insert`].
pub(crate) fn save(tx: &mut dyn Txn, rp: &RecoveryPointRecord) -> Result<()> {
    let key = rp.key();
    let fresh = index_keys(rp);
    let old = tx.get(TABLE, &key)?;
    if let Some(old) = old.and_then(|v| serde_json::from_slice::<RecoveryPointRecord>(&v).ok()) {
        for (table, k) in index_keys(&old) {
            if !fresh.iter().any(|(t, f)| *t == table && *f == k) {
                tx.delete(table, &k)?;
            }
        }
    }
    tx.put(TABLE, &key, &serde_json::to_vec(rp)?)?;
    put_entries(tx, rp, &key, &fresh)?;
    due::queue_lifecycle(tx, &key, lifecycle_due(rp, None))
}

/// Writes `rp`'s index `entries` (its key `key`): the vault's entry with the status of the
/// point's file index (`model::rp_keys`), the others with the key alone.
fn put_entries(
    tx: &mut dyn Txn,
    rp: &RecoveryPointRecord,
    key: &str,
    entries: &[(&'static str, String)],
) -> Result<()> {
    let index = indexes::get(tx, &rp.account, &rp.region, &rp.id)?;
    let status = index.map(|i| i.status.wire());
    for (table, k) in entries {
        let value = match *table {
            BY_VAULT => rp_keys::entry(key, status.as_ref().map(|s| s.as_str())),
            _ => key.as_bytes().to_vec(),
        };
        tx.put(table, k, &value)?;
    }
    mark_protected(tx, rp)
}

/// Brings `rp`'s resource's entries in [`PROTECTED`] and [`PROTECTED_IN_VAULT`] up to date
/// after `rp`'s index entries were written (or deleted): each names the newest point its
/// index holds for the resource, and goes when none is left.
fn mark_protected(tx: &mut dyn Txn, rp: &RecoveryPointRecord) -> Result<()> {
    let (a, r, v, arn) = (&rp.account, &rp.region, &rp.vault_name, &rp.resource_arn);
    let in_scope = (
        PROTECTED,
        format!("{a}:{r}:{arn}"),
        BY_RESOURCE,
        by_resource_prefix(a, r, arn),
    );
    let in_vault = (
        PROTECTED_IN_VAULT,
        format!("{a}:{r}:{v}:{arn}"),
        BY_VAULT_FIELD,
        by_vault_field_prefix(a, r, v, VaultField::Resource, arn),
    );
    for (table, key, index, prefix) in [in_scope, in_vault] {
        refresh_protected(tx, table, &key, index, &prefix)?;
    }
    Ok(())
}

/// Sets the entry `key` of `table` to the newest point the entries of `index` under `prefix`
/// name, or deletes it when they name none; writes nothing when it is already so.
fn refresh_protected(
    tx: &mut dyn Txn,
    table: &str,
    key: &str,
    index: &str,
    prefix: &str,
) -> Result<()> {
    let stored = tx.get(table, key)?;
    match first_of(tx, index, prefix)? {
        Some(newest) => {
            let fresh = Protected::of(&newest);
            if stored.as_deref().and_then(Protected::read).as_ref() != Some(&fresh) {
                tx.put(table, key, &serde_json::to_vec(&fresh)?)?;
            }
        }
        None if stored.is_some() => {
            tx.delete(table, key)?;
        }
        None => {}
    }
    Ok(())
}

/// The first point an index's entries under `prefix` name that still exists (the newest,
/// for the newest-first indexes).
fn first_of(tx: &mut dyn Txn, table: &str, prefix: &str) -> Result<Option<RecoveryPointRecord>> {
    let mut cursor = None;
    loop {
        let rows = tx.scan(table, prefix, cursor.as_deref(), 1)?;
        let Some((k, v)) = rows.into_iter().next() else {
            return Ok(None);
        };
        if let Some(rp) = load_key(tx, &v)? {
            return Ok(Some(rp));
        }
        cursor = Some(k);
    }
}

/// The newest recovery point of `resource_arn` in vault `vault`: the first entry of its
/// [`BY_VAULT_FIELD`] entries.
pub(crate) fn newest_in_vault(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    vault: &str,
    resource_arn: &str,
) -> Result<Option<RecoveryPointRecord>> {
    let prefix = by_vault_field_prefix(account, region, vault, VaultField::Resource, resource_arn);
    first_of(tx, BY_VAULT_FIELD, &prefix)
}

/// The newest recovery point of `resource_arn` in the scope, in any vault: the first entry of
/// its index.
/// What ListProtectedResources shows of `resource_arn`, from its [`PROTECTED`] entry (one
/// read); an entry of an earlier Coffer (the ARN alone) is answered from the resource's index.
/// `None` when the resource has no recovery point. Call [`build_indexes`] first.
pub(crate) fn protected_of(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    resource_arn: &str,
) -> Result<Option<Protected>> {
    let Some(value) = tx.get(PROTECTED, &format!("{account}:{region}:{resource_arn}"))? else {
        return Ok(None);
    };
    if let Some(p) = Protected::read(&value) {
        return Ok(Some(p));
    }
    Ok(newest_of_resource(tx, account, region, resource_arn)?
        .as_ref()
        .map(Protected::of))
}

pub(crate) fn newest_of_resource(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    resource_arn: &str,
) -> Result<Option<RecoveryPointRecord>> {
    let prefix = by_resource_prefix(account, region, resource_arn);
    first_of(tx, BY_RESOURCE, &prefix)
}

/// The points whose entries of the newest-first index `table` are under `prefix` and that
/// were created within `[from, to]` (an end `None` is open), newest first: the walk starts at
/// `to`'s entries and stops after `from`'s. The stamps are whole microseconds, so a point a
/// fraction of one outside the range may be among them: the caller checks its dates.
pub(crate) fn created_within(
    tx: &mut dyn Txn,
    table: &str,
    prefix: &str,
    (from, to): (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
) -> Result<Vec<RecoveryPointRecord>> {
    let mut cursor = to.map(|t| format!("{prefix}{}", newest_first(t)));
    let stop = from.map(|f| format!("{prefix}{};", newest_first(f)));
    let mut out = Vec::new();
    // Rows read at a time: few at first (a narrow range ends soon), more as it goes on.
    let mut batch = 32;
    loop {
        let rows = tx.scan(table, prefix, cursor.as_deref(), batch)?;
        let exhausted = rows.len() < batch;
        batch = (batch * 2).min(1000);
        for (k, v) in rows {
            if stop.as_ref().is_some_and(|s| &k >= s) {
                return Ok(out);
            }
            out.extend(load_key(tx, &v)?);
            cursor = Some(k);
        }
        if exhausted {
            return Ok(out);
        }
    }
}

/// When `rp`'s lifecycle next asks something of it: its cold move (while WARM) or its
/// deletion, the deletion no earlier than `held` (its vault lock's date, when known). `None`
/// for a nested point (it follows its parent) or one without a lifecycle. The time may be
/// past: the point is due.
pub(crate) fn lifecycle_due(
    rp: &RecoveryPointRecord,
    held: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    if rp.composite.parent_arn.is_some() {
        return None;
    }
    let l = rp.lifecycle.as_ref()?;
    let cold = l
        .move_to_cold_storage_after_days
        .filter(|_| rp.storage_class == StorageClass::Warm)
        .map(|d| rp.creation_date + Duration::days(d));
    let delete = l
        .delete_after_days
        .map(|d| rp.creation_date + Duration::days(d))
        .map(|d| held.map_or(d, |h| d.max(h)));
    [cold, delete].into_iter().flatten().min()
}

/// Puts the points of a page of table `recovery_point` (at most `limit` after key
/// `start_after`) on the lifecycle queue; the key to carry on after, `None` at the end. For
/// building the queue of a store written before it existed.
pub(crate) fn queue_page(
    tx: &mut dyn Txn,
    start_after: Option<&str>,
    limit: usize,
) -> Result<Option<String>> {
    let rows = tx.scan(TABLE, "", start_after, limit)?;
    let last = (rows.len() == limit)
        .then(|| rows.last().map(|(k, _)| k.clone()))
        .flatten();
    for (k, v) in rows {
        let rp: RecoveryPointRecord = serde_json::from_slice(&v)?;
        put_entries(tx, &rp, &k, &index_keys(&rp))?;
        due::queue_lifecycle(tx, &k, lifecycle_due(&rp, None))?;
    }
    Ok(last)
}

/// Builds the lifecycle queue and the recovery point indexes once for a store written before
/// they existed (or before [`BY_VAULT_FIELD`] and [`PROTECTED_IN_VAULT`] did), and rewrites
/// the protected resources' entries of a store written before they were [`Protected`]s,
/// [`BUILD_BATCH`] records per transaction. Afterwards this is three reads; every reader of
/// the indexes calls it first.
pub(crate) async fn build_indexes(meta: &Meta) -> Result<()> {
    if meta.seen_built(BUILT_PROTECTED) {
        return Ok(());
    }
    let (points, entries) = meta
        .store()
        .read(|tx| -> Result<(bool, bool)> {
            Ok((
                due::needs_backfill(tx, BUILT)? || due::needs_backfill(tx, BUILT_BY_FIELD)?,
                due::needs_backfill(tx, BUILT_PROTECTED)?,
            ))
        })
        .await?;
    if !points && !entries {
        meta.note_built(BUILT_PROTECTED);
        return Ok(());
    }
    // Rewriting every point's entries rewrites the protected resources' too; a store whose
    // points are indexed only has its protected resources' entries rewritten.
    type Page = fn(&mut dyn Txn, Option<&str>) -> Result<Option<String>>;
    let pages: Vec<Page> = if points {
        vec![|tx, after| queue_page(tx, after, BUILD_BATCH)]
    } else {
        vec![
            |tx, after| protected_page(tx, PROTECTED, after, BUILD_BATCH),
            |tx, after| protected_page(tx, PROTECTED_IN_VAULT, after, BUILD_BATCH),
        ]
    };
    for page in pages {
        let mut cursor: Option<String> = None;
        loop {
            let after = cursor.take();
            let last = meta
                .store()
                .write(move |tx| page(tx, after.as_deref()))
                .await?;
            match last {
                Some(k) => cursor = Some(k),
                None => break,
            }
        }
    }
    let now = meta.clock().now();
    meta.store()
        .write(move |tx| -> Result<()> {
            due::backfilled(tx, BUILT, now)?;
            due::backfilled(tx, BUILT_BY_FIELD, now)?;
            due::backfilled(tx, BUILT_PROTECTED, now)
        })
        .await?;
    meta.note_built(BUILT_PROTECTED);
    Ok(())
}

/// Rewrites the entries of a page of `table` ([`PROTECTED`] or [`PROTECTED_IN_VAULT`], at
/// most `limit` after key `start_after`) that an earlier Coffer wrote (the ARN alone) as
/// [`Protected`] entries; the key to carry on after, `None` at the end.
fn protected_page(
    tx: &mut dyn Txn,
    table: &str,
    start_after: Option<&str>,
    limit: usize,
) -> Result<Option<String>> {
    let rows = tx.scan(table, "", start_after, limit)?;
    let last = (rows.len() == limit)
        .then(|| rows.last().map(|(k, _)| k.clone()))
        .flatten();
    for (k, v) in rows {
        if Protected::read(&v).is_some() {
            continue;
        }
        let arn = String::from_utf8_lossy(&v).to_string();
        // The key is `ACCOUNT:REGION:ARN`, or `ACCOUNT:REGION:VAULT:ARN` in a vault's table:
        // none of account, region and vault name holds a `:`.
        let mut parts = k.splitn(4, ':');
        let (a, r) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (index, prefix) = if table == PROTECTED {
            (BY_RESOURCE, by_resource_prefix(a, r, &arn))
        } else {
            let v = parts.next().unwrap_or("");
            let prefix = by_vault_field_prefix(a, r, v, VaultField::Resource, &arn);
            (BY_VAULT_FIELD, prefix)
        };
        refresh_protected(tx, table, &k, index, &prefix)?;
    }
    Ok(last)
}

/// The `due_backfill` key recording that the recovery point indexes and queue were built.
const BUILT: &str = "recovery_points";
/// The `due_backfill` key recording that [`BY_VAULT_FIELD`] and [`PROTECTED_IN_VAULT`] were
/// built (a store built before they existed has [`BUILT`] only).
const BUILT_BY_FIELD: &str = "recovery_points_by_field";
/// The `due_backfill` key recording that every [`PROTECTED`] and [`PROTECTED_IN_VAULT`] entry
/// is a [`Protected`].
const BUILT_PROTECTED: &str = "recovery_points_protected";
/// Points read per transaction while the indexes are built for an older store.
const BUILD_BATCH: usize = 500;

/// Whether [`BY_VAULT_FIELD`] holds every point's entries (a store written before it has them
/// only once [`build_indexes`] has run).
pub(crate) fn by_field_built(tx: &mut dyn Txn) -> Result<bool> {
    Ok(!due::needs_backfill(tx, BUILT)? && !due::needs_backfill(tx, BUILT_BY_FIELD)?)
}

/// The record an index entry's value (a point's key, and in [`BY_VAULT`] its index's status)
/// names, if it still exists.
pub(crate) fn load_key(tx: &mut dyn Txn, value: &[u8]) -> Result<Option<RecoveryPointRecord>> {
    match tx.get(TABLE, &rp_keys::read_entry(value).0)? {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

/// Finds a recovery point by ARN in the caller's scope (any vault).
pub(crate) fn find(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    rp_arn: &str,
) -> Result<RecoveryPointRecord> {
    let id = id_of(account, region, rp_arn)?;
    let not_found = || ApiError::not_found(format!("Recovery point {rp_arn} does not exist."));
    let Some(vault) = tx.get(INDEX, &format!("{account}:{region}:{id}"))? else {
        return Err(not_found().into());
    };
    let vault = String::from_utf8_lossy(&vault).to_string();
    match tx.get(TABLE, &key(account, region, &vault, &id))? {
        Some(v) => Ok(serde_json::from_slice(&v)?),
        None => Err(not_found().into()),
    }
}

/// Finds a recovery point by vault name and ARN.
pub(crate) fn find_in_vault(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    vault: &str,
    rp_arn: &str,
) -> Result<RecoveryPointRecord> {
    let id = id_of(account, region, rp_arn)?;
    match tx.get(TABLE, &key(account, region, vault, &id))? {
        Some(v) => Ok(serde_json::from_slice(&v)?),
        None => Err(ApiError::not_found(format!(
            "Recovery point {rp_arn} does not exist in backup vault '{vault}'."
        ))
        .into()),
    }
}

/// The latest completed recovery point of a resource in a vault: the parent of its next backup.
/// Reads the resource's index newest first and stops at the first match.
pub(crate) async fn latest_for_resource(
    meta: &Meta,
    account: &str,
    region: &str,
    vault: &str,
    resource_arn: &str,
) -> Result<Option<RecoveryPointRecord>> {
    build_indexes(meta).await?;
    let prefix = by_vault_field_prefix(account, region, vault, VaultField::Resource, resource_arn);
    meta.store()
        .read(move |tx| -> Result<Option<RecoveryPointRecord>> {
            let mut cursor: Option<String> = None;
            loop {
                let rows = tx.scan(BY_VAULT_FIELD, &prefix, cursor.as_deref(), 64)?;
                let done = rows.len() < 64;
                for (k, v) in rows {
                    cursor = Some(k);
                    if let Some(rp) = load_key(tx, &v)?
                        && rp.status == RecoveryPointStatus::Completed
                    {
                        return Ok(Some(rp));
                    }
                }
                if done {
                    return Ok(None);
                }
            }
        })
        .await
}

/// Every recovery point of the caller's scope.
pub(crate) async fn all(
    meta: &Meta,
    account: &str,
    region: &str,
) -> Result<Vec<RecoveryPointRecord>> {
    let prefix = format!("{account}:{region}:");
    let rows = meta
        .store()
        .read(move |tx| tx.scan(TABLE, &prefix, None, usize::MAX))
        .await?;
    rows.iter()
        .map(|(_, v)| serde_json::from_slice(v).map_err(Into::into))
        .collect()
}

/// When the vault's lock lets `rp` be deleted (its MinRetentionDays counted from the creation
/// date); `None` when nothing holds it.
pub(crate) fn locked_until(
    vault: &vaults::VaultRecord,
    rp: &RecoveryPointRecord,
) -> Option<DateTime<Utc>> {
    vault
        .lock
        .as_ref()
        .and_then(|l| l.min_retention_days)
        .map(|min| rp.creation_date + Duration::days(min))
}

/// Removes `rp` from `vault` (record, id index, tags, the vault's count; its file index is
/// marked DELETING for the runner to remove) and queues its
/// snapshot's removal from the repository, in the caller's transaction. DeleteRecoveryPoint
/// and the lifecycle sweep both delete here; the caller checks the vault lock first.
pub(crate) fn remove(
    tx: &mut dyn Txn,
    vault: &mut vaults::VaultRecord,
    rp: &RecoveryPointRecord,
    now: DateTime<Utc>,
) -> Result<()> {
    tx.delete(TABLE, &rp.key())?;
    for (table, k) in index_keys(rp) {
        tx.delete(table, &k)?;
    }
    // The resource's entries now name its next newest point, or go with its last one.
    mark_protected(tx, rp)?;
    due::queue_lifecycle(tx, &rp.key(), None)?;
    tx.delete(INDEX, &format!("{}:{}:{}", rp.account, rp.region, rp.id))?;
    tags::remove_all(tx, &rp.arn)?;
    indexes::mark_deleting(tx, &rp.account, &rp.region, &rp.id, now)?;
    vault.recovery_points = (vault.recovery_points - 1).max(0);
    vaults::save(tx, vault)?;
    if rp.composite.is_parent {
        // A composite parent holds no snapshot: its children hold the data.
        return Ok(());
    }
    let d = deletions::Deletion {
        account: rp.account.clone(),
        region: rp.region.clone(),
        vault_name: vault.name.clone(),
        vault_uid: vault.uid.clone(),
        snapshot: rp.snapshot.clone(),
        rp_key: rp.key(),
        tier: rp.tier,
        attempts: 0,
        last_error: None,
        next_attempt: None,
        failed_at: None,
        release_slot: None,
    };
    deletions::enqueue(
        tx,
        &deletions::Deletion {
            release_slot: rp.continuous.as_ref().map(|c| deletions::SlotRelease {
                resource_arn: rp.resource_arn.clone(),
                slot: c.slot.clone(),
            }),
            ..d.clone()
        },
    )?;
    // A continuous point's WAL snapshots go with it, each its own removal.
    for (i, wal) in rp.continuous.iter().flat_map(|c| &c.wal).enumerate() {
        deletions::enqueue(
            tx,
            &deletions::Deletion {
                snapshot: wal.clone(),
                rp_key: format!("{}#wal{i}", rp.key()),
                ..d.clone()
            },
        )?;
    }
    Ok(())
}
