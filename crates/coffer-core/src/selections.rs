//! Backup selections: which resources a plan protects, by ARN (with `*` wildcards) and by tag.
//!
//! A selection is stored exactly as the client sent it (empty lists and `"Conditions": {}`
//! included), because Terraform reads it back with GetBackupSelection and treats any difference
//! as drift. Records live in table `selection` under `ACCOUNT:REGION:PLANID:SELECTIONID`;
//! `selection_request` maps `ACCOUNT:REGION:PLANID:CREATORREQUESTID` to the selection it created.
//! Resolving a selection against the inventory happens at each run, elsewhere.

use chrono::{DateTime, Utc};
use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};
use coffer_store::{StoreError, Txn};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::{Coffer, arn, paging, plans};

pub(crate) const TABLE: &str = "selection";
const REQUEST_TABLE: &str = "selection_request";

/// A selection as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SelectionRecord {
    pub plan_id: String,
    pub selection_id: String,
    pub creation_date: DateTime<Utc>,
    pub creator_request_id: Option<String>,
    pub selection: BackupSelection,
}

fn prefix(account: &str, region: &str, plan_id: &str) -> String {
    format!("{}{plan_id}:", plans::scope(account, region))
}

fn key(account: &str, region: &str, plan_id: &str, selection_id: &str) -> String {
    format!("{}{selection_id}", prefix(account, region, plan_id))
}

fn not_found(plan_id: &str, selection_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Backup selection {selection_id} of backup plan {plan_id} does not exist."
    ))
}

/// Whether plan `plan_id` has any selection.
pub(crate) fn any(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    plan_id: &str,
) -> Result<bool, StoreError> {
    Ok(!tx
        .scan(TABLE, &prefix(account, region, plan_id), None, 1)?
        .is_empty())
}

/// Every selection of plan `plan_id`, in id order (for the scheduler's resolution at each run).
#[allow(dead_code, reason = "read by the scheduler (issue #6)")]
pub(crate) fn of_plan(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    plan_id: &str,
) -> Result<Vec<SelectionRecord>> {
    plans::scan_all(tx, TABLE, &prefix(account, region, plan_id))?
        .into_iter()
        .map(|(_, v)| Ok(serde_json::from_slice(&v)?))
        .collect()
}

fn check_arn_pattern(member: &str, value: &str) -> Result<()> {
    if value == "*" || (value.starts_with("arn:") && value.split(':').count() >= 6) {
        return Ok(());
    }
    Err(ApiError::invalid_parameter(format!(
        "Invalid {member} '{value}': expected a resource ARN, optionally with '*' wildcards (arn:aws:ec2:*:*:volume/*), or '*' alone."
    ))
    .into())
}

/// The checks the model cannot state: an IAM role ARN, ARN patterns, complete conditions.
fn check(selection: &BackupSelection) -> Result<()> {
    let role_ok = arn::parse(&selection.iam_role_arn).is_some_and(|a| {
        a.service == "iam" && a.resource.starts_with("role/") && a.resource.len() > 5
    });
    if !role_ok {
        return Err(ApiError::invalid_parameter(format!(
            "Invalid IamRoleArn '{}': expected an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME).",
            selection.iam_role_arn
        ))
        .into());
    }
    for (member, list) in [
        ("Resources", &selection.resources),
        ("NotResources", &selection.not_resources),
    ] {
        for (i, r) in list.iter().flatten().enumerate() {
            check_arn_pattern(&format!("{member}[{i}]"), r)?;
        }
    }
    for (i, t) in selection.list_of_tags.iter().flatten().enumerate() {
        if t.condition_key.is_empty() {
            return Err(ApiError::invalid_parameter(format!(
                "Invalid ListOfTags[{i}]: ConditionKey must not be empty."
            ))
            .into());
        }
    }
    if let Some(c) = &selection.conditions {
        for (name, list) in [
            ("StringEquals", &c.string_equals),
            ("StringNotEquals", &c.string_not_equals),
            ("StringLike", &c.string_like),
            ("StringNotLike", &c.string_not_like),
        ] {
            for (i, p) in list.iter().flatten().enumerate() {
                if p.condition_key.as_deref().is_none_or(str::is_empty)
                    || p.condition_value.is_none()
                {
                    return Err(ApiError::invalid_parameter(format!(
                        "Invalid Conditions.{name}[{i}]: ConditionKey and ConditionValue are both required."
                    ))
                    .into());
                }
            }
        }
    }
    Ok(())
}

pub(crate) async fn create(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: CreateBackupSelectionInput,
) -> Result<CreateBackupSelectionOutput> {
    // CreateBackupSelection has no ResourceNotFoundException in the model: a plan that does not
    // exist (or is deleted) is an invalid BackupPlanId.
    let no_plan = |plan_id: &str| {
        ApiError::invalid_parameter(format!(
            "Invalid BackupPlanId '{plan_id}': no backup plan with this id exists in this account and region."
        ))
    };
    if plans::check_plan_id(&input.backup_plan_id).is_err() {
        return Err(no_plan(&input.backup_plan_id).into());
    }
    check(&input.backup_selection)?;
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    let record = SelectionRecord {
        plan_id: input.backup_plan_id,
        selection_id: uuid::Uuid::new_v4().to_string(),
        creation_date: coffer.clock().now(),
        creator_request_id: input.creator_request_id,
        selection: input.backup_selection,
    };
    let stored = coffer
        .store()
        .write(move |tx| -> Result<SelectionRecord> {
            if !plans::is_active(tx, &account, &region, &record.plan_id)? {
                return Err(no_plan(&record.plan_id).into());
            }
            let request_key = record
                .creator_request_id
                .as_ref()
                .map(|r| format!("{}{r}", prefix(&account, &region, &record.plan_id)));
            if let Some(rk) = &request_key
                && let Some(id) = tx.get(REQUEST_TABLE, rk)?
            {
                let id = String::from_utf8_lossy(&id).to_string();
                if let Some(v) = tx.get(TABLE, &key(&account, &region, &record.plan_id, &id))? {
                    return Ok(serde_json::from_slice(&v)?);
                }
            }
            tx.put(
                TABLE,
                &key(&account, &region, &record.plan_id, &record.selection_id),
                &serde_json::to_vec(&record)?,
            )?;
            if let Some(rk) = &request_key {
                tx.put(REQUEST_TABLE, rk, record.selection_id.as_bytes())?;
            }
            Ok(record)
        })
        .await?;
    Ok(CreateBackupSelectionOutput {
        backup_plan_id: Some(stored.plan_id),
        creation_date: Some(Timestamp(stored.creation_date)),
        selection_id: Some(stored.selection_id),
    })
}

fn check_selection_id(plan_id: &str, selection_id: &str) -> Result<()> {
    match uuid::Uuid::parse_str(selection_id) {
        Ok(u) if u.hyphenated().to_string() == selection_id => Ok(()),
        _ => Err(not_found(plan_id, selection_id).into()),
    }
}

pub(crate) async fn get(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: GetBackupSelectionInput,
) -> Result<GetBackupSelectionOutput> {
    plans::check_plan_id(&input.backup_plan_id)?;
    check_selection_id(&input.backup_plan_id, &input.selection_id)?;
    let k = key(
        &ctx.account_id,
        &ctx.region,
        &input.backup_plan_id,
        &input.selection_id,
    );
    let r = coffer
        .store()
        .read(move |tx| -> Result<SelectionRecord> {
            match tx.get(TABLE, &k)? {
                Some(v) => Ok(serde_json::from_slice(&v)?),
                None => Err(not_found(&input.backup_plan_id, &input.selection_id).into()),
            }
        })
        .await?;
    Ok(GetBackupSelectionOutput {
        backup_plan_id: Some(r.plan_id),
        backup_selection: Some(r.selection),
        creation_date: Some(Timestamp(r.creation_date)),
        creator_request_id: r.creator_request_id,
        selection_id: Some(r.selection_id),
    })
}

pub(crate) async fn delete(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: DeleteBackupSelectionInput,
) -> Result<()> {
    plans::check_plan_id(&input.backup_plan_id)?;
    check_selection_id(&input.backup_plan_id, &input.selection_id)?;
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    coffer
        .store()
        .write(move |tx| -> Result<()> {
            let k = key(
                &account,
                &region,
                &input.backup_plan_id,
                &input.selection_id,
            );
            let Some(v) = tx.get(TABLE, &k)? else {
                return Err(not_found(&input.backup_plan_id, &input.selection_id).into());
            };
            let r: SelectionRecord = serde_json::from_slice(&v)?;
            tx.delete(TABLE, &k)?;
            if let Some(request_id) = &r.creator_request_id {
                let rk = format!("{}{request_id}", prefix(&account, &region, &r.plan_id));
                tx.delete(REQUEST_TABLE, &rk)?;
            }
            Ok(())
        })
        .await
}

pub(crate) async fn list(
    coffer: &Coffer,
    ctx: &RequestContext,
    input: ListBackupSelectionsInput,
) -> Result<ListBackupSelectionsOutput> {
    plans::check_plan_id(&input.backup_plan_id)?;
    let p = prefix(&ctx.account_id, &ctx.region, &input.backup_plan_id);
    let start = match &input.next_token {
        Some(t) => Some(paging::decode(t, &p)?),
        None => None,
    };
    let limit = paging::page_size(input.max_results);
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    let (list, next) = coffer
        .store()
        .read(
            move |tx| -> Result<(Vec<BackupSelectionsListMember>, Option<String>)> {
                plans::load_active(tx, &account, &region, &input.backup_plan_id)?;
                let rows = tx.scan(TABLE, &p, start.as_deref(), limit + 1)?;
                let more = rows.len() > limit;
                let mut list = Vec::new();
                let mut last = None;
                for (k, v) in rows.into_iter().take(limit) {
                    let r: SelectionRecord = serde_json::from_slice(&v)?;
                    list.push(BackupSelectionsListMember {
                        backup_plan_id: Some(r.plan_id),
                        creation_date: Some(Timestamp(r.creation_date)),
                        creator_request_id: r.creator_request_id,
                        iam_role_arn: Some(r.selection.iam_role_arn),
                        selection_id: Some(r.selection_id),
                        selection_name: Some(r.selection.selection_name),
                    });
                    last = Some(k);
                }
                Ok((
                    list,
                    if more {
                        last.map(|k| paging::encode(&k))
                    } else {
                        None
                    },
                ))
            },
        )
        .await?;
    Ok(ListBackupSelectionsOutput {
        backup_selections_list: Some(list),
        next_token: next,
    })
}
