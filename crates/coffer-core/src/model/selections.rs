//! Selection records and the rule that turns them into resources: [`selects`] matches one
//! resource (ARNs with `*` wildcards, tag conditions), [`resolve`] picks a plan's resources at
//! one moment for the scheduler. The API operations are in `control::selections`.

use chrono::{DateTime, Utc};
use coffer_api::ApiError;
use coffer_api::types::*;
use coffer_store::{StoreError, Txn};
use serde::{Deserialize, Serialize};

use crate::model::error::Result;
use crate::model::inventory::{Inventory, Resource};
use crate::model::paging::scan_all;
use crate::model::{plans, settings};

pub(crate) const TABLE: &str = "selection";

pub(crate) const REQUEST_TABLE: &str = "selection_request";

/// A selection as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SelectionRecord {
    pub plan_id: String,
    pub selection_id: String,
    pub creation_date: DateTime<Utc>,
    pub creator_request_id: Option<String>,
    pub selection: BackupSelection,
}

pub(crate) fn prefix(account: &str, region: &str, plan_id: &str) -> String {
    format!("{}{plan_id}:", plans::scope(account, region))
}

pub(crate) fn key(account: &str, region: &str, plan_id: &str, selection_id: &str) -> String {
    format!("{}{selection_id}", prefix(account, region, plan_id))
}

pub(crate) fn not_found(plan_id: &str, selection_id: &str) -> ApiError {
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
pub(crate) fn of_plan(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    plan_id: &str,
) -> Result<Vec<SelectionRecord>> {
    scan_all(tx, TABLE, &prefix(account, region, plan_id))?
        .into_iter()
        .map(|(_, v)| Ok(serde_json::from_slice(&v)?))
        .collect()
}

/// Whether `pattern` matches `text`, where `*` stands for any run of characters (possibly
/// empty) and everything else is compared exactly (case-sensitive, as AWS).
pub(crate) fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// The tag a condition key names: `aws:ResourceTag/KEY` is tag KEY; a bare key (as ListOfTags
/// usually carries) is the tag itself.
pub(crate) fn tag_of(condition_key: &str) -> &str {
    condition_key
        .strip_prefix("aws:ResourceTag/")
        .unwrap_or(condition_key)
}

/// Whether selection `sel` picks resource `r` (of the selection's account and region):
/// (an entry of Resources matches the ARN, or a ListOfTags condition holds), then every
/// condition of Conditions holds, and no NotResources entry matches.
pub(crate) fn selects(sel: &BackupSelection, r: &Resource) -> bool {
    let tag = |key: &str| r.tags.get(tag_of(key)).map(String::as_str);
    let by_arn = sel
        .resources
        .iter()
        .flatten()
        .any(|p| wildcard_match(p, &r.arn));
    let by_tag = sel.list_of_tags.iter().flatten().any(|c| {
        c.condition_type == ConditionType::Stringequals
            && tag(&c.condition_key) == Some(c.condition_value.as_str())
    });
    if !(by_arn || by_tag) {
        return false;
    }
    if let Some(c) = &sel.conditions {
        let params = |l: &Option<Vec<ConditionParameter>>| -> Vec<(String, String)> {
            l.iter()
                .flatten()
                .map(|p| {
                    (
                        p.condition_key.clone().unwrap_or_default(),
                        p.condition_value.clone().unwrap_or_default(),
                    )
                })
                .collect()
        };
        let all = params(&c.string_equals)
            .iter()
            .all(|(k, v)| tag(k) == Some(v.as_str()))
            && params(&c.string_not_equals)
                .iter()
                .all(|(k, v)| tag(k) != Some(v.as_str()))
            && params(&c.string_like)
                .iter()
                .all(|(k, v)| tag(k).is_some_and(|t| wildcard_match(v, t)))
            && params(&c.string_not_like)
                .iter()
                .all(|(k, v)| !tag(k).is_some_and(|t| wildcard_match(v, t)));
        if !all {
            return false;
        }
    }
    !sel.not_resources
        .iter()
        .flatten()
        .any(|p| wildcard_match(p, &r.arn))
}

/// The resources a plan's selections pick in `account`/`region` right now, each once (with
/// the IAM role of the first selection that picked it), in ARN order. Resource types the
/// region has not opted in to (UpdateRegionSettings) are left out.
pub(crate) fn resolve(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    selections: &[SelectionRecord],
    inventory: &Inventory,
) -> Result<Vec<(Resource, String)>> {
    let mut resources = inventory.in_scope(account, region);
    resources.sort_by(|a, b| a.arn.cmp(&b.arn));
    let mut out: Vec<(Resource, String)> = Vec::new();
    for r in resources {
        let Some(sel) = selections.iter().find(|s| selects(&s.selection, &r)) else {
            continue;
        };
        if !settings::resource_type_opted_in(tx, account, region, &r.resource_type)? {
            continue;
        }
        let role = sel.selection.iam_role_arn.clone();
        out.push((r, role));
    }
    Ok(out)
}
