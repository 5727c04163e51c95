//! Legal holds: records that keep recovery points from being deleted, whatever their
//! lifecycle or the caller asks, until the hold is cancelled.
//!
//! A hold is a record in table `legal_hold` (key `ACCOUNT:REGION:ID`). The recovery points it
//! covers are resolved once, in the transaction that creates it, from its
//! RecoveryPointSelection (vault names, resource identifiers, a creation date range): each is
//! a row of `legal_hold_rp` (key `ACCOUNT:REGION:HOLD:RP`, what ListRecoveryPointsByLegalHold
//! pages through) and of `rp_legal_hold` (key `ACCOUNT:REGION:RP:HOLD`, what every deleting
//! path reads to know whether a point is held). Cancelling a hold removes its `rp_legal_hold`
//! rows in the same transaction, so a point is held exactly while an uncancelled hold covers
//! it. Because the selection is resolved in the creating transaction, a hold is ACTIVE as soon
//! as CreateLegalHold answers (Coffer never shows CREATING), and CANCELED as soon as
//! CancelLegalHold answers.

use chrono::{DateTime, Duration, Utc};
use coffer_api::types::RecoveryPointSelection;
use coffer_store::{StoreError, Txn};
use serde::{Deserialize, Serialize};

use crate::model::error::Result;
use crate::model::paging::scan_all;
use crate::model::recovery_points::{self, RecoveryPointRecord, VaultField};
use std::collections::BTreeMap;

pub(crate) const TABLE: &str = "legal_hold";
/// The points of one hold: key `ACCOUNT:REGION:HOLD:RP`, value a [`HeldPoint`].
pub(crate) const POINTS: &str = "legal_hold_rp";
/// The uncancelled holds on one point: key `ACCOUNT:REGION:RP:HOLD`.
pub(crate) const BY_POINT: &str = "rp_legal_hold";
/// IdempotencyToken -> hold id: key `ACCOUNT:REGION:TOKEN`.
pub(crate) const TOKENS: &str = "legal_hold_token";
/// AWS's quota of active legal holds per account.
pub(crate) const MAX_ACTIVE_HOLDS: usize = 50;

/// Where a hold stands (the model's LegalHoldStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum HoldStatus {
    Active,
    Canceled,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Active => "ACTIVE",
            HoldStatus::Canceled => "CANCELED",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LegalHoldRecord {
    pub id: String,
    pub arn: String,
    pub account: String,
    pub region: String,
    pub title: String,
    pub description: String,
    pub selection: Option<RecoveryPointSelection>,
    pub status: HoldStatus,
    pub creation_date: DateTime<Utc>,
    pub cancellation_date: Option<DateTime<Utc>>,
    pub cancel_description: Option<String>,
    /// After this a cancelled hold's record is gone (CancelLegalHold's RetainRecordInDays).
    pub retain_record_until: Option<DateTime<Utc>>,
}

/// One recovery point a hold covers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HeldPoint {
    pub vault_name: String,
    pub rp_id: String,
}

pub(crate) fn key(account: &str, region: &str, id: &str) -> String {
    format!("{account}:{region}:{id}")
}

impl LegalHoldRecord {
    /// Whether the record still exists at `now` (a cancelled hold's record is kept until
    /// RetainRecordUntil, forever without one).
    pub fn visible_at(&self, now: DateTime<Utc>) -> bool {
        self.retain_record_until.is_none_or(|until| now < until)
    }
}

/// Whether `selection` covers `rp`: every criterion given must match (an absent or empty one
/// matches every point); the date range includes both ends.
pub(crate) fn covers(selection: Option<&RecoveryPointSelection>, rp: &RecoveryPointRecord) -> bool {
    let Some(s) = selection else {
        return true;
    };
    let in_list = |list: &Option<Vec<String>>, v: &str| {
        list.as_ref()
            .is_none_or(|l| l.is_empty() || l.iter().any(|x| x == v))
    };
    let in_range = s
        .date_range
        .as_ref()
        .is_none_or(|d| d.from_date.0 <= rp.creation_date && rp.creation_date <= d.to_date.0);
    in_list(&s.vault_names, &rp.vault_name)
        && in_list(&s.resource_identifiers, &rp.resource_arn)
        && in_range
}

/// Loads a hold that exists at `now`.
pub(crate) fn find(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<LegalHoldRecord>> {
    let Some(v) = tx.get(TABLE, &key(account, region, id))? else {
        return Ok(None);
    };
    let rec: LegalHoldRecord = serde_json::from_slice(&v)?;
    Ok(rec.visible_at(now).then_some(rec))
}

/// How many holds of the scope are active.
pub(crate) fn count_active(tx: &mut dyn Txn, account: &str, region: &str) -> Result<usize> {
    let mut n = 0;
    for (_, v) in scan_all(tx, TABLE, &format!("{account}:{region}:"))? {
        let rec: LegalHoldRecord = serde_json::from_slice(&v)?;
        n += usize::from(rec.status == HoldStatus::Active);
    }
    Ok(n)
}

/// Every recovery point of the scope that `selection` covers, oldest first. Resources named
/// read their own index entries (in each vault named, or in every vault), vaults named alone
/// their vault's, within the date range when one is given; only a selection of neither
/// reads the scope's points.
pub(crate) fn resolve(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    selection: Option<&RecoveryPointSelection>,
) -> Result<Vec<RecoveryPointRecord>> {
    let named = |l: Option<&Vec<String>>| l.filter(|l| !l.is_empty()).cloned();
    let vaults = named(selection.and_then(|s| s.vault_names.as_ref()));
    let resources = named(selection.and_then(|s| s.resource_identifiers.as_ref()));
    let range = selection
        .and_then(|s| s.date_range.as_ref())
        .map(|d| (Some(d.from_date.0), Some(d.to_date.0)));
    let walks: Vec<(&str, String)> = match (&vaults, &resources) {
        (Some(vs), Some(rs)) => vs
            .iter()
            .flat_map(|v| rs.iter().map(move |r| (v, r)))
            .map(|(v, r)| {
                let prefix = recovery_points::by_vault_field_prefix(
                    account,
                    region,
                    v,
                    VaultField::Resource,
                    r,
                );
                (recovery_points::BY_VAULT_FIELD, prefix)
            })
            .collect(),
        (None, Some(rs)) => rs
            .iter()
            .map(|r| {
                let prefix = recovery_points::by_resource_prefix(account, region, r);
                (recovery_points::BY_RESOURCE, prefix)
            })
            .collect(),
        (Some(vs), None) if range.is_some() => vs
            .iter()
            .map(|v| {
                let prefix = recovery_points::by_vault_prefix(account, region, v);
                (recovery_points::BY_VAULT, prefix)
            })
            .collect(),
        (Some(vs), None) => vs
            .iter()
            .map(|v| ("", format!("{account}:{region}:{v}:")))
            .collect(),
        (None, None) => vec![("", format!("{account}:{region}:"))],
    };
    let mut found: BTreeMap<String, RecoveryPointRecord> = BTreeMap::new();
    for (table, prefix) in walks {
        let points = if table.is_empty() {
            let rows = scan_all(tx, recovery_points::TABLE, &prefix)?;
            let decoded: std::result::Result<Vec<RecoveryPointRecord>, _> = rows
                .iter()
                .map(|(_, v)| serde_json::from_slice(v))
                .collect();
            decoded?
        } else {
            recovery_points::created_within(tx, table, &prefix, range.unwrap_or_default())?
        };
        for rp in points.into_iter().filter(|rp| covers(selection, rp)) {
            found.insert(rp.key(), rp);
        }
    }
    let mut out: Vec<RecoveryPointRecord> = found.into_values().collect();
    out.sort_by_key(|rp| rp.creation_date);
    Ok(out)
}

/// Writes a new active hold and the rows of the points it covers.
pub(crate) fn insert(
    tx: &mut dyn Txn,
    rec: &LegalHoldRecord,
    points: &[RecoveryPointRecord],
) -> Result<()> {
    tx.put(
        TABLE,
        &key(&rec.account, &rec.region, &rec.id),
        &serde_json::to_vec(rec)?,
    )?;
    let scope = format!("{}:{}", rec.account, rec.region);
    for rp in points {
        let held = HeldPoint {
            vault_name: rp.vault_name.clone(),
            rp_id: rp.id.clone(),
        };
        tx.put(
            POINTS,
            &format!("{scope}:{}:{}", rec.id, rp.id),
            &serde_json::to_vec(&held)?,
        )?;
        tx.put(BY_POINT, &format!("{scope}:{}:{}", rp.id, rec.id), b"")?;
    }
    Ok(())
}

/// Marks a hold cancelled at `now` and releases its points, in the caller's transaction.
pub(crate) fn cancel(
    tx: &mut dyn Txn,
    rec: &mut LegalHoldRecord,
    description: String,
    retain_days: Option<i64>,
    now: DateTime<Utc>,
) -> Result<()> {
    rec.status = HoldStatus::Canceled;
    rec.cancellation_date = Some(now);
    rec.cancel_description = Some(description);
    rec.retain_record_until = retain_days.map(|d| now + Duration::days(d));
    let scope = format!("{}:{}", rec.account, rec.region);
    for (_, v) in scan_all(tx, POINTS, &format!("{scope}:{}:", rec.id))? {
        let held: HeldPoint = serde_json::from_slice(&v)?;
        tx.delete(BY_POINT, &format!("{scope}:{}:{}", held.rp_id, rec.id))?;
    }
    tx.put(
        TABLE,
        &key(&rec.account, &rec.region, &rec.id),
        &serde_json::to_vec(rec)?,
    )?;
    Ok(())
}

/// The ids of the holds that keep `rp` from being deleted (empty: none does).
pub(crate) fn holds_on(
    tx: &mut dyn Txn,
    rp: &RecoveryPointRecord,
) -> Result<Vec<String>, StoreError> {
    let prefix = format!("{}:{}:{}:", rp.account, rp.region, rp.id);
    Ok(scan_all(tx, BY_POINT, &prefix)?
        .into_iter()
        .map(|(k, _)| k[prefix.len()..].to_string())
        .collect())
}
