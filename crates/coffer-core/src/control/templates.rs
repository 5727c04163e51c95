//! Backup plan templates and plan documents as JSON.
//!
//! AWS Backup offers a few ready-made plans (ListBackupPlanTemplates, GetBackupPlanFromTemplate);
//! Coffer has the same four, built in, with stable ids (docs/plans.md lists their contents). A
//! template names no vault: the caller adds one before CreateBackupPlan. ExportBackupPlanTemplate
//! writes a plan's current document as JSON that GetBackupPlanFromJSON reads back, checked by
//! the same rules as CreateBackupPlan (except that the vaults need not exist yet).

use std::collections::BTreeMap;

use coffer_api::types::*;
use coffer_api::validate::Validate;
use coffer_api::{ApiError, RequestContext};
use coffer_cron::Schedule;

use crate::model::error::Result;
use crate::model::{Meta, paging, plan_rules};

/// One built-in template.
struct Template {
    id: &'static str,
    name: &'static str,
    /// (rule name, schedule, days to cold storage, days to deletion)
    rules: &'static [(&'static str, &'static str, Option<i64>, i64)],
}

const DAILY: &str = Schedule::DEFAULT_EXPRESSION;
const WEEKLY: &str = "cron(0 5 ? * SAT *)";
const MONTHLY: &str = "cron(0 5 1 * ? *)";

/// The catalogue, in the order ListBackupPlanTemplates returns it. Ids never change.
const TEMPLATES: &[Template] = &[
    Template {
        id: "87c0c1ef-254d-4180-8fef-2e76a2c38aaa",
        name: "Daily-35day-Retention",
        rules: &[("DailyBackups", DAILY, None, 35)],
    },
    Template {
        id: "453cebde-78fb-4169-baa2-a77240c450c3",
        name: "Daily-Monthly-1yr-Retention",
        rules: &[
            ("DailyBackups", DAILY, None, 35),
            ("MonthlyBackups", MONTHLY, Some(30), 365),
        ],
    },
    Template {
        id: "4f6bfa91-9cef-4237-8517-b0edeaac6e2e",
        name: "Daily-Weekly-Monthly-5yr-Retention",
        rules: &[
            ("DailyBackups", DAILY, None, 35),
            ("WeeklyBackups", WEEKLY, None, 90),
            ("MonthlyBackups", MONTHLY, Some(30), 1825),
        ],
    },
    Template {
        id: "646e8c2e-e7d8-4f35-ba1b-9793bd1c0c89",
        name: "Daily-Weekly-Monthly-7yr-Retention",
        rules: &[
            ("DailyBackups", DAILY, None, 35),
            ("WeeklyBackups", WEEKLY, None, 90),
            ("MonthlyBackups", MONTHLY, Some(30), 2555),
        ],
    },
];

impl Template {
    fn document(&self) -> BackupPlan {
        BackupPlan {
            backup_plan_name: self.name.to_string(),
            rules: self
                .rules
                .iter()
                .map(|(name, schedule, cold, delete)| BackupRule {
                    rule_name: name.to_string(),
                    schedule_expression: Some(schedule.to_string()),
                    start_window_minutes: Some(plan_rules::DEFAULT_START_WINDOW_MINUTES),
                    lifecycle: Some(Lifecycle {
                        delete_after_days: Some(*delete),
                        move_to_cold_storage_after_days: *cold,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }
}

pub(crate) async fn list(
    input: ListBackupPlanTemplatesInput,
) -> Result<ListBackupPlanTemplatesOutput> {
    let (page, next) = paging::page(
        TEMPLATES.iter().collect(),
        |t: &&Template| t.id.to_string(),
        input.next_token.as_deref(),
        input.max_results,
    )?;
    Ok(ListBackupPlanTemplatesOutput {
        backup_plan_templates_list: Some(
            page.iter()
                .map(|t| BackupPlanTemplatesListMember {
                    backup_plan_template_id: Some(t.id.to_string()),
                    backup_plan_template_name: Some(t.name.to_string()),
                })
                .collect(),
        ),
        next_token: next,
    })
}

pub(crate) async fn get(
    input: GetBackupPlanFromTemplateInput,
) -> Result<GetBackupPlanFromTemplateOutput> {
    let Some(t) = TEMPLATES
        .iter()
        .find(|t| t.id == input.backup_plan_template_id)
    else {
        return Err(ApiError::not_found(format!(
            "Backup plan template {} does not exist.",
            input.backup_plan_template_id
        ))
        .into());
    };
    Ok(GetBackupPlanFromTemplateOutput {
        backup_plan_document: Some(t.document()),
    })
}

/// The exported form of a plan: its document without RuleIds (they belong to the plan, not
/// to the document), which GetBackupPlanFromJSON and CreateBackupPlan accept as is.
pub(crate) async fn export(
    meta: &Meta,
    ctx: &RequestContext,
    input: ExportBackupPlanTemplateInput,
) -> Result<ExportBackupPlanTemplateOutput> {
    let document = super::plans::current_document(meta, ctx, &input.backup_plan_id).await?;
    let json = serde_json::to_string(&plan_rules::without_rule_ids(&document))?;
    Ok(ExportBackupPlanTemplateOutput {
        backup_plan_template_json: Some(json),
    })
}

pub(crate) async fn from_json(
    input: GetBackupPlanFromJSONInput,
) -> Result<GetBackupPlanFromJSONOutput> {
    let document: BackupPlanInput = serde_json::from_str(&input.backup_plan_template_json)
        .map_err(|e| {
            ApiError::invalid_parameter(format!(
                "BackupPlanTemplateJson is not a backup plan document ({{\"BackupPlanName\": ..., \"Rules\": [...]}}): {e}"
            ))
        })?;
    document.validate_at("BackupPlanTemplateJson")?;
    let plan = plan_rules::normalise(document, &BTreeMap::new())?;
    Ok(GetBackupPlanFromJSONOutput {
        backup_plan: Some(plan_rules::without_rule_ids(&plan)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_is_a_valid_plan_once_given_a_vault() {
        for t in TEMPLATES {
            let mut doc = t.document();
            for r in &mut doc.rules {
                r.target_backup_vault_name = "Default".into();
            }
            let json = serde_json::to_string(&doc).unwrap();
            let input: BackupPlanInput = serde_json::from_str(&json).unwrap();
            input.validate().unwrap();
            plan_rules::normalise(input, &BTreeMap::new()).unwrap();
            assert!(uuid::Uuid::parse_str(t.id).is_ok());
        }
    }
}
