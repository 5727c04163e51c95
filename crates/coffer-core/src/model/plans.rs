//! Plan records: a plan (table `plan`, key `ACCOUNT:REGION:PLANID`) points at its current
//! version; every version stays in `plan_version` (key `ACCOUNT:REGION:PLANID:NNNNNNNN`) and
//! `plan_version_id` maps a VersionId to its sequence; `plan_request` maps a CreatorRequestId
//! to the plan it made. The scheduler reads [`current_version`] and writes [`record_execution`];
//! [`put_version`] and [`unschedule`] keep its queue of next firings (`model::due`) and the
//! index of plan documents (`plan_doc`, key `ACCOUNT:REGION:HASH:PLANID`, HASH the SHA-256 of
//! the current document without its RuleIds), which lets CreateBackupPlan find a plan with the
//! same document without reading every plan ([`same_document`]); the API operations are in
//! `control::plans`.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use coffer_api::ApiError;
use coffer_api::types::*;
use coffer_store::Txn;
use serde::{Deserialize, Serialize};

use crate::model::error::Result;
use crate::model::paging::scan_all;
use crate::model::{due, events, vaults};

pub(crate) const TABLE: &str = "plan";

pub(crate) const VERSION_TABLE: &str = "plan_version";

pub(crate) const VERSION_ID_TABLE: &str = "plan_version_id";

pub(crate) const REQUEST_TABLE: &str = "plan_request";

/// Active plans by the hash of their current document (see the module comment).
pub(crate) const DOC_TABLE: &str = "plan_doc";

/// The `due_backfill` marker saying [`DOC_TABLE`] was built for every plan of the store.
pub(crate) const DOC_BUILT: &str = "plan_doc";

/// A backup plan as stored: identity, dates and a pointer to its current version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PlanRecord {
    pub account: String,
    pub region: String,
    pub id: String,
    pub arn: String,
    pub creation_date: DateTime<Utc>,
    pub creator_request_id: Option<String>,
    pub deletion_date: Option<DateTime<Utc>>,
    pub last_execution_date: Option<DateTime<Utc>>,
    pub current_sequence: u32,
    pub current_version_id: String,
}

/// One version of a plan's document, as written by CreateBackupPlan or UpdateBackupPlan. The
/// document holds every rule with its defaults and RuleId.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PlanVersionRecord {
    pub plan_id: String,
    pub sequence: u32,
    pub version_id: String,
    pub creation_date: DateTime<Utc>,
    pub document: BackupPlan,
}

pub(crate) fn scope(account: &str, region: &str) -> String {
    format!("{account}:{region}:")
}

pub(crate) fn key(account: &str, region: &str, plan_id: &str) -> String {
    format!("{}{plan_id}", scope(account, region))
}

pub(crate) fn version_prefix(account: &str, region: &str, plan_id: &str) -> String {
    format!("{}{plan_id}:", scope(account, region))
}

pub(crate) fn version_key(account: &str, region: &str, plan_id: &str, sequence: u32) -> String {
    format!("{}{sequence:08}", version_prefix(account, region, plan_id))
}

pub(crate) fn version_id_key(
    account: &str,
    region: &str,
    plan_id: &str,
    version_id: &str,
) -> String {
    format!("{}{version_id}", version_prefix(account, region, plan_id))
}

pub(crate) fn request_key(account: &str, region: &str, request_id: &str) -> String {
    format!("{}{request_id}", scope(account, region))
}

/// A new VersionId: the base64 encoding of a lowercase UUID string (48 characters), as AWS's.
pub(crate) fn new_version_id() -> String {
    base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().to_string())
}

pub(crate) fn not_found(plan_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Backup plan {plan_id} does not exist in this account and region."
    ))
}

/// Plan ids are lowercase UUIDs; anything else names no plan (and never reaches a key).
pub(crate) fn check_plan_id(plan_id: &str) -> Result<()> {
    match uuid::Uuid::parse_str(plan_id) {
        Ok(u) if u.hyphenated().to_string() == plan_id => Ok(()),
        _ => Err(not_found(plan_id).into()),
    }
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Ok(serde_json::from_slice(bytes)?)
}

pub(crate) fn load_plan(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    plan_id: &str,
) -> Result<PlanRecord> {
    match tx.get(TABLE, &key(account, region, plan_id))? {
        Some(v) => decode(&v),
        None => Err(not_found(plan_id).into()),
    }
}

pub(crate) fn load_version(
    tx: &mut dyn Txn,
    plan: &PlanRecord,
    sequence: u32,
) -> Result<PlanVersionRecord> {
    let k = version_key(&plan.account, &plan.region, &plan.id, sequence);
    match tx.get(VERSION_TABLE, &k)? {
        Some(v) => decode(&v),
        None => Err(ApiError::internal(format!("plan version {k} is missing")).into()),
    }
}

/// The plan `plan_id` of the scope if it exists and is not deleted (ResourceNotFoundException
/// otherwise).
pub(crate) fn load_active(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    plan_id: &str,
) -> Result<PlanRecord> {
    let plan = load_plan(tx, account, region, plan_id)?;
    if plan.deletion_date.is_some() {
        return Err(not_found(plan_id).into());
    }
    Ok(plan)
}

/// Whether plan `plan_id` exists in the scope and is not deleted.
pub(crate) fn is_active(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    plan_id: &str,
) -> Result<bool> {
    Ok(match tx.get(TABLE, &key(account, region, plan_id))? {
        Some(v) => decode::<PlanRecord>(&v)?.deletion_date.is_none(),
        None => false,
    })
}

/// A plan that is not deleted, with its current version: what the scheduler runs.
#[derive(Debug, Clone)]
pub(crate) struct ActivePlan {
    pub plan: PlanRecord,
    pub version: PlanVersionRecord,
}

/// The current version of plan `plan_id`, or `None` when it does not exist or is deleted.
pub(crate) fn current_version(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    plan_id: &str,
) -> Result<Option<ActivePlan>> {
    let Some(v) = tx.get(TABLE, &key(account, region, plan_id))? else {
        return Ok(None);
    };
    let plan: PlanRecord = decode(&v)?;
    if plan.deletion_date.is_some() {
        return Ok(None);
    }
    let version = load_version(tx, &plan, plan.current_sequence)?;
    Ok(Some(ActivePlan { plan, version }))
}

/// At most `limit` plans of every account and region after key `start_after`: those not
/// deleted with their current version, and the key to carry on after (`None`: no more).
/// For work done once over every plan in bounded batches (building the scheduler's queue).
pub(crate) fn active_plans_page(
    tx: &mut dyn Txn,
    start_after: Option<&str>,
    limit: usize,
) -> Result<(Vec<ActivePlan>, Option<String>)> {
    let rows = tx.scan(TABLE, "", start_after, limit)?;
    let last = (rows.len() == limit)
        .then(|| rows.last().map(|(k, _)| k.clone()))
        .flatten();
    let mut out = Vec::new();
    for (_, v) in rows {
        let plan: PlanRecord = decode(&v)?;
        if plan.deletion_date.is_none() {
            let version = load_version(tx, &plan, plan.current_sequence)?;
            out.push(ActivePlan { plan, version });
        }
    }
    Ok((out, last))
}

/// A document as CreateBackupPlan compares documents: without its RuleIds. (The same as
/// `plan_rules::without_rule_ids`, which this layer's plan records cannot import: plan_rules
/// reaches back here through the scans' rules.)
fn without_rule_ids(doc: &BackupPlan) -> BackupPlan {
    let mut d = doc.clone();
    for r in &mut d.rules {
        r.rule_id = None;
    }
    d
}

/// The hash of a plan document as CreateBackupPlan compares documents: without RuleIds.
fn doc_hash(doc: &BackupPlan) -> Result<String> {
    use sha2::Digest as _;
    let bytes = serde_json::to_vec(&without_rule_ids(doc))?;
    Ok(hex::encode(sha2::Sha256::digest(&bytes)))
}

/// The `plan_doc` entry of `plan` with document `doc`.
fn doc_key(plan: &PlanRecord, doc: &BackupPlan) -> Result<String> {
    Ok(format!(
        "{}{}:{}",
        scope(&plan.account, &plan.region),
        doc_hash(doc)?,
        plan.id
    ))
}

/// Enters an active plan of a store written before `plan_doc` existed (its one-time build).
pub(crate) fn index_document(tx: &mut dyn Txn, ap: &ActivePlan) -> Result<()> {
    tx.put(DOC_TABLE, &doc_key(&ap.plan, &ap.version.document)?, b"")?;
    Ok(())
}

/// An active plan of the scope whose current document equals `doc` without RuleIds (what
/// makes CreateBackupPlan answer AlreadyExistsException). Reads the `plan_doc` entries of the
/// document's hash, checking each against the plan's current version; on a store whose index
/// is not built yet (the scheduler builds it at start) it reads every plan of the scope.
pub(crate) fn same_document(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    doc: &BackupPlan,
) -> Result<Option<PlanRecord>> {
    let content = without_rule_ids(doc);
    let candidates: Vec<String> = if due::needs_backfill(tx, DOC_BUILT)? {
        scan_all(tx, TABLE, &scope(account, region))?
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    } else {
        let prefix = format!("{}{}:", scope(account, region), doc_hash(doc)?);
        scan_all(tx, DOC_TABLE, &prefix)?
            .into_iter()
            .map(|(k, _)| format!("{}{}", scope(account, region), &k[prefix.len()..]))
            .collect()
    };
    for k in candidates {
        let Some(v) = tx.get(TABLE, &k)? else {
            continue;
        };
        let other: PlanRecord = decode(&v)?;
        if other.deletion_date.is_some() {
            continue;
        }
        let other_version = load_version(tx, &other, other.current_sequence)?;
        if without_rule_ids(&other_version.document) == content {
            return Ok(Some(other));
        }
    }
    Ok(None)
}

/// Takes the rules of `plan` (being deleted) off the scheduler's queue.
pub(crate) fn unschedule(tx: &mut dyn Txn, plan: &PlanRecord) -> Result<()> {
    let version = load_version(tx, plan, plan.current_sequence)?;
    tx.delete(DOC_TABLE, &doc_key(plan, &version.document)?)?;
    due::unschedule_rules(
        tx,
        (&plan.account, &plan.region, &plan.id),
        &version.document.rules,
    )
}

/// Records that a job ran for plan `plan_id` at `at` (its LastExecutionDate). Never moves the
/// date backwards; a missing plan is not an error (it may have been deleted meanwhile).
pub(crate) fn record_execution(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    plan_id: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    let k = key(account, region, plan_id);
    let Some(v) = tx.get(TABLE, &k)? else {
        return Ok(());
    };
    let mut plan: PlanRecord = decode(&v)?;
    if plan.last_execution_date.is_none_or(|d| d < at) {
        plan.last_execution_date = Some(at);
        tx.put(TABLE, &k, &serde_json::to_vec(&plan)?)?;
    }
    Ok(())
}

/// Refuses a document whose rules target a vault missing from the scope.
pub(crate) fn check_target_vaults(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    document: &BackupPlan,
) -> Result<()> {
    for r in &document.rules {
        let k = vaults::key(account, region, &r.target_backup_vault_name);
        if tx.get(vaults::TABLE, &k)?.is_none() {
            return Err(ApiError::invalid_parameter(format!(
                "Error in rule {} : TargetBackupVaultName '{}' does not name a backup vault of this account and region.",
                r.rule_name, r.target_backup_vault_name
            ))
            .into());
        }
    }
    Ok(())
}

/// Writes version `version` of `plan` and its VersionId index entry, and queues its rules'
/// next firings for the scheduler (`model::due`).
pub(crate) fn put_version(
    tx: &mut dyn Txn,
    plan: &PlanRecord,
    version: &PlanVersionRecord,
) -> Result<()> {
    let previous_doc = match version.sequence {
        0 | 1 => None,
        n => match tx.get(
            VERSION_TABLE,
            &version_key(&plan.account, &plan.region, &plan.id, n - 1),
        )? {
            Some(v) => Some(decode::<PlanVersionRecord>(&v)?.document),
            None => None,
        },
    };
    if let Some(old) = &previous_doc {
        tx.delete(DOC_TABLE, &doc_key(plan, old)?)?;
    }
    tx.put(DOC_TABLE, &doc_key(plan, &version.document)?, b"")?;
    let previous = previous_doc.map(|d| d.rules).unwrap_or_default();
    due::schedule_rules(
        tx,
        (&plan.account, &plan.region, &plan.id),
        version.creation_date,
        &version.document.rules,
        &previous,
    )?;
    tx.put(
        VERSION_TABLE,
        &version_key(&plan.account, &plan.region, &plan.id, version.sequence),
        &serde_json::to_vec(version)?,
    )?;
    tx.put(
        VERSION_ID_TABLE,
        &version_id_key(&plan.account, &plan.region, &plan.id, &version.version_id),
        version.sequence.to_string().as_bytes(),
    )?;
    // A new plan or a new version of one: BACKUP_PLAN_CREATED / _MODIFIED to its target vaults.
    let targets: Vec<String> = version
        .document
        .rules
        .iter()
        .map(|r| r.target_backup_vault_name.clone())
        .collect();
    events::plan_changed(
        tx,
        &plan.account,
        &plan.region,
        version.sequence == 1,
        &plan.id,
        &plan.arn,
        &version.version_id,
        &targets,
        version.creation_date,
    )?;
    Ok(())
}
