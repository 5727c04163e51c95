//! Backup selections: which resources a plan protects, by ARN (with `*` wildcards) and by tag.
//!
//! A selection is stored exactly as the client sent it (empty lists and `"Conditions": {}`
//! included), because Terraform reads it back with GetBackupSelection and treats any difference
//! as drift. Records live in table `selection` under `ACCOUNT:REGION:PLANID:SELECTIONID`;
//! `selection_request` maps `ACCOUNT:REGION:PLANID:CREATORREQUESTID` to the selection it created.
//! [`resolve`] turns a plan's selections into the resources they name at one moment: the
//! scheduler calls it at every firing, against the inventory as it is then.

use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};

use crate::model::error::Result;
use crate::model::paging::scan_page;
use crate::model::selections::*;
use crate::model::{Meta, arn, paging, plans};

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
    meta: &Meta,
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
        creation_date: meta.clock().now(),
        creator_request_id: input.creator_request_id,
        selection: input.backup_selection,
    };
    let stored = meta
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
    meta: &Meta,
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
    let r = meta
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
    meta: &Meta,
    ctx: &RequestContext,
    input: DeleteBackupSelectionInput,
) -> Result<()> {
    plans::check_plan_id(&input.backup_plan_id)?;
    check_selection_id(&input.backup_plan_id, &input.selection_id)?;
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    meta.store()
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
    meta: &Meta,
    ctx: &RequestContext,
    input: ListBackupSelectionsInput,
) -> Result<ListBackupSelectionsOutput> {
    plans::check_plan_id(&input.backup_plan_id)?;
    let p = prefix(&ctx.account_id, &ctx.region, &input.backup_plan_id);
    if let Some(t) = &input.next_token {
        paging::decode(t, &p)?;
    }
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    let (list, next) = meta
        .store()
        .read(move |tx| {
            plans::load_active(tx, &account, &region, &input.backup_plan_id)?;
            scan_page(
                tx,
                TABLE,
                &p,
                input.next_token.as_deref(),
                input.max_results,
                |_, v| {
                    let r: SelectionRecord = serde_json::from_slice(v)?;
                    Ok(Some(BackupSelectionsListMember {
                        backup_plan_id: Some(r.plan_id),
                        creation_date: Some(Timestamp(r.creation_date)),
                        creator_request_id: r.creator_request_id,
                        iam_role_arn: Some(r.selection.iam_role_arn),
                        selection_id: Some(r.selection_id),
                        selection_name: Some(r.selection.selection_name),
                    }))
                },
            )
        })
        .await?;
    Ok(ListBackupSelectionsOutput {
        backup_selections_list: Some(list),
        next_token: next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::inventory::Resource;
    use std::collections::BTreeMap;

    fn resource(arn: &str, tags: &[(&str, &str)]) -> Resource {
        Resource {
            members: Vec::new(),
            arn: arn.into(),
            account: "111122223333".into(),
            region: "us-east-1".into(),
            resource_type: "EFS".into(),
            kind: crate::model::inventory::SourceKind::Directory,
            name: "n".into(),
            source: "/x".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            s3: None,
            database: None,
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
                    condition_type: ConditionType::Stringequals,
                    condition_value: "db".into(),
                },
                Condition {
                    condition_key: "aws:ResourceTag/env".into(),
                    condition_type: ConditionType::Stringequals,
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
