//! Backup selections: which resources a plan protects, by ARN (with `*` wildcards) and by tag.
//!
//! A selection is stored exactly as the client sent it (empty lists and `"Conditions": {}`
//! included), because Terraform reads it back with GetBackupSelection and treats any difference
//! as drift. Records live in table `selection` under `ACCOUNT:REGION:PLANID:SELECTIONID`;
//! `selection_request` maps `ACCOUNT:REGION:PLANID:CREATORREQUESTID` to the selection it created.
//! [`resolve`] turns a plan's selections into the resources they name at one moment: the
//! scheduler calls it at every firing, against the inventory as it is then.

use chrono::{DateTime, Utc};
use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};
use coffer_store::{StoreError, Txn};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::inventory::{Inventory, Resource};
use crate::{Coffer, arn, paging, plans, settings};

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
fn tag_of(condition_key: &str) -> &str {
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
        c.condition_type.eq_ignore_ascii_case("STRINGEQUALS")
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn resource(arn: &str, tags: &[(&str, &str)]) -> Resource {
        Resource {
            arn: arn.into(),
            account: "111122223333".into(),
            region: "us-east-1".into(),
            resource_type: "EFS".into(),
            kind: crate::inventory::SourceKind::Directory,
            name: "n".into(),
            source: "/x".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn param(k: &str, v: &str) -> ConditionParameter {
        ConditionParameter {
            condition_key: Some(k.into()),
            condition_value: Some(v.into()),
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match(
            "arn:aws:ec2:*:*:volume/*",
            "arn:aws:ec2:us-east-1:1:volume/v-1"
        ));
        assert!(!wildcard_match(
            "arn:aws:ec2:*:*:volume/*",
            "arn:aws:ec2:us-east-1:1:instance/i"
        ));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXbYY"));
        assert!(wildcard_match("pro*", "prod"));
        assert!(!wildcard_match("Prod", "prod"));
    }

    #[test]
    fn resources_tags_conditions_and_exclusions_combine() {
        let web = resource(
            "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/web",
            &[("team", "web"), ("env", "prod")],
        );
        let db = resource(
            "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/db",
            &[("team", "db"), ("env", "dev")],
        );
        let bare = resource(
            "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/bare",
            &[],
        );
        let mut sel = BackupSelection {
            resources: Some(vec!["arn:aws:elasticfilesystem:*:*:file-system/*".into()]),
            ..Default::default()
        };
        assert!(selects(&sel, &web) && selects(&sel, &db) && selects(&sel, &bare));
        sel.not_resources = Some(vec!["*:file-system/db".into()]);
        assert!(selects(&sel, &web) && !selects(&sel, &db));
        sel.conditions = Some(Conditions {
            string_like: Some(vec![param("aws:ResourceTag/env", "pr*")]),
            string_not_equals: Some(vec![param("aws:ResourceTag/team", "db")]),
            ..Default::default()
        });
        assert!(selects(&sel, &web) && !selects(&sel, &bare));
        let by_tag = BackupSelection {
            list_of_tags: Some(vec![
                Condition {
                    condition_key: "team".into(),
                    condition_type: "STRINGEQUALS".into(),
                    condition_value: "db".into(),
                },
                Condition {
                    condition_key: "aws:ResourceTag/env".into(),
                    condition_type: "STRINGEQUALS".into(),
                    condition_value: "prod".into(),
                },
            ]),
            conditions: Some(Conditions {
                string_not_like: Some(vec![param("aws:ResourceTag/team", "w*")]),
                string_equals: Some(vec![]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(selects(&by_tag, &db));
        assert!(
            !selects(&by_tag, &web),
            "StringNotLike team=w* excludes web"
        );
        assert!(!selects(&by_tag, &bare));
        assert!(
            !selects(&BackupSelection::default(), &web),
            "an empty selection picks nothing"
        );
    }
}
