//! What a backup plan document may say, and what AWS Backup fills in when it says nothing.
//!
//! CreateBackupPlan, UpdateBackupPlan and GetBackupPlanFromJSON all pass the plan document
//! through [`normalise`], so a document accepted by one is accepted by the others and every
//! stored rule carries its defaults and its RuleId. The model's own constraints (name patterns,
//! enums) are checked by the generated validation before this runs; here live the semantic rules:
//! windows, lifecycles, continuous backup, copy actions, advanced settings and the schedule
//! (through `meta-cron`). Every message names the rule and the member at fault.
//! docs/plans.md lists the decisions taken where AWS Backup does not document its behaviour.

use std::collections::{BTreeMap, BTreeSet};

use coffer_api::ApiError;
use coffer_api::types::*;
use coffer_cron::Schedule;

use crate::model::error::Result;
use crate::model::lifecycle::{self, MAX_CONTINUOUS_RETENTION_DAYS};
use crate::model::{arn, tags};

/// StartWindowMinutes when a rule has none.
pub(crate) const DEFAULT_START_WINDOW_MINUTES: i64 = 480;
/// CompletionWindowMinutes when a rule has none (raised to StartWindowMinutes + 60 when the
/// start window is longer).
pub(crate) const DEFAULT_COMPLETION_WINDOW_MINUTES: i64 = 10_080;
/// The shortest start window AWS Backup accepts.
pub(crate) const MIN_START_WINDOW_MINUTES: i64 = 60;
/// The longest start or completion window (100 years).
pub(crate) const MAX_WINDOW_MINUTES: i64 = 52_560_000;
/// How much longer than the start window the completion window must be.
pub(crate) const MIN_COMPLETION_AFTER_START_MINUTES: i64 = 60;
/// A lifecycle value meaning "clear this setting".
const CLEARED: i64 = -1;

/// The advanced backup settings Coffer knows: resource type, then each option with its values.
const ADVANCED_SETTINGS: &[(&str, &[&str])] = &[
    ("EC2", &["WindowsVSS"]),
    ("S3", &["BackupACLs", "BackupObjectTags"]),
];
const ADVANCED_SETTING_VALUES: &[&str] = &["enabled", "disabled"];

use crate::model::indexes::INDEXABLE_RESOURCE_TYPES;

fn invalid(message: String) -> ApiError {
    ApiError::invalid_parameter(message)
}

/// Checks a plan name: 1 to 50 letters, digits, `-`, `_` and `.`.
pub(crate) fn check_plan_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=50).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "Invalid BackupPlanName '{}': use 1 to 50 letters, digits, '-', '_' and '.'.",
            shown(name)
        )))
    }
}

/// Long input shortened for messages.
fn shown(text: &str) -> String {
    if text.chars().count() <= 100 {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(100).collect::<String>())
    }
}

/// Checks `input` and returns the document to store: defaults filled in, `-1` lifecycle values
/// cleared, and a RuleId on every rule. A rule whose name appears in `previous_rule_ids` (the
/// version being replaced) keeps its id; other rules get a new one.
pub(crate) fn normalise(
    input: BackupPlanInput,
    previous_rule_ids: &BTreeMap<String, String>,
) -> Result<BackupPlan, ApiError> {
    check_plan_name(&input.backup_plan_name)?;
    if input.rules.is_empty() {
        return Err(invalid(
            "Invalid BackupPlan: a backup plan needs at least one rule in Rules.".into(),
        ));
    }
    let mut names = BTreeSet::new();
    for r in &input.rules {
        if !names.insert(r.rule_name.as_str()) {
            return Err(invalid(format!(
                "Error in rule {} : RuleName must be unique within a backup plan.",
                r.rule_name
            )));
        }
    }
    if let Some(settings) = &input.advanced_backup_settings {
        check_advanced_settings(settings)?;
    }
    let scan_actions: Vec<_> = (input.rules.iter())
        .map(|r| {
            (
                r.rule_name.clone(),
                r.scan_actions.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    crate::model::scans::check_plan(input.scan_settings.as_deref(), &scan_actions)
        .map_err(|m| invalid(format!("Invalid BackupPlan: {m}")))?;
    let rules = input
        .rules
        .into_iter()
        .map(|r| {
            let id = previous_rule_ids
                .get(&r.rule_name)
                .cloned()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            rule(r, Some(id))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(BackupPlan {
        advanced_backup_settings: input.advanced_backup_settings,
        backup_plan_name: input.backup_plan_name,
        rules,
        scan_settings: input.scan_settings,
    })
}

/// A rule's StartWindowMinutes and CompletionWindowMinutes, checked, with the defaults filled
/// in (the completion window is raised to the start window plus an hour when that is longer).
fn windows(start: Option<i64>, completion: Option<i64>) -> Result<(i64, i64), String> {
    let start = start.unwrap_or(DEFAULT_START_WINDOW_MINUTES);
    if !(MIN_START_WINDOW_MINUTES..=MAX_WINDOW_MINUTES).contains(&start) {
        return Err(format!(
            "StartWindowMinutes must be at least {MIN_START_WINDOW_MINUTES} and at most {MAX_WINDOW_MINUTES}, not {start}."
        ));
    }
    let completion = match completion {
        Some(c) => {
            if c > MAX_WINDOW_MINUTES {
                return Err(format!(
                    "CompletionWindowMinutes must be at most {MAX_WINDOW_MINUTES}, not {c}."
                ));
            }
            if c < start + MIN_COMPLETION_AFTER_START_MINUTES {
                return Err(format!(
                    "CompletionWindowMinutes ({c}) must be at least {MIN_COMPLETION_AFTER_START_MINUTES} minutes greater than StartWindowMinutes ({start})."
                ));
            }
            c
        }
        None => DEFAULT_COMPLETION_WINDOW_MINUTES.max(start + MIN_COMPLETION_AFTER_START_MINUTES),
    };
    Ok((start, completion))
}

/// Checks one rule and fills in its defaults.
/// A rule's lifecycle: the one it gives, checked, or for a continuous backup rule without one,
/// the longest retention AWS allows (recorded, so GetBackupPlan and the jobs show what applies).
fn rule_lifecycle(given: Option<Lifecycle>, continuous: bool) -> Result<Option<Lifecycle>, String> {
    match given {
        Some(l) => Ok(Some(check_lifecycle(l, continuous, "Lifecycle")?)),
        None if continuous => Ok(Some(Lifecycle {
            delete_after_days: Some(MAX_CONTINUOUS_RETENTION_DAYS),
            ..Default::default()
        })),
        None => Ok(None),
    }
}

fn rule(input: BackupRuleInput, rule_id: Option<String>) -> Result<BackupRule, ApiError> {
    let name = input.rule_name.clone();
    let err = |m: String| invalid(format!("Error in rule {name} : {m}"));

    let expression = input
        .schedule_expression
        .unwrap_or_else(|| Schedule::DEFAULT_EXPRESSION.to_string());
    let timezone = input
        .schedule_expression_timezone
        .unwrap_or_else(|| Schedule::DEFAULT_TIMEZONE.to_string());
    Schedule::parse_for_backup_rule(&expression, &timezone).map_err(|e| err(e.to_string()))?;

    let (start, completion) =
        windows(input.start_window_minutes, input.completion_window_minutes).map_err(err)?;

    let continuous = input.enable_continuous_backup == Some(true);
    let lifecycle = rule_lifecycle(input.lifecycle, continuous).map_err(err)?;

    let copy_actions = match input.copy_actions {
        Some(actions) => Some(
            actions
                .into_iter()
                .enumerate()
                .map(|(i, a)| check_copy_action(a, i).map_err(err))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };

    if let Some(a) = &input.target_logically_air_gapped_backup_vault_arn
        && !is_backup_vault_arn(a)
    {
        return Err(err(format!(
            "TargetLogicallyAirGappedBackupVaultArn '{}' is not a backup vault ARN (arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME).",
            shown(a)
        )));
    }

    if let Some(actions) = &input.index_actions {
        for (i, a) in actions.iter().enumerate() {
            let types = a.resource_types.as_deref().unwrap_or_default();
            if types.len() != 1 || !INDEXABLE_RESOURCE_TYPES.contains(&types[0].as_str()) {
                return Err(err(format!(
                    "IndexActions[{i}].ResourceTypes must name exactly one of {}.",
                    INDEXABLE_RESOURCE_TYPES.join(", ")
                )));
            }
        }
    }

    if let Some(t) = &input.recovery_point_tags {
        tags::check_initial(t).map_err(|e| err(format!("RecoveryPointTags: {}", e.0.message())))?;
    }

    Ok(BackupRule {
        completion_window_minutes: Some(completion),
        copy_actions,
        enable_continuous_backup: input.enable_continuous_backup,
        index_actions: input.index_actions,
        lifecycle,
        recovery_point_tags: input.recovery_point_tags,
        rule_id,
        rule_name: input.rule_name,
        scan_actions: input.scan_actions,
        schedule_expression: Some(expression),
        schedule_expression_timezone: Some(timezone),
        start_window_minutes: Some(start),
        target_backup_vault_name: input.target_backup_vault_name,
        target_logically_air_gapped_backup_vault_arn: input
            .target_logically_air_gapped_backup_vault_arn,
    })
}

/// The copies a rule's backups make: its copy actions, and a copy into its
/// TargetLogicallyAirGappedBackupVaultArn with the rule's lifecycle. Coffer's resources are
/// not of the types AWS backs up straight into an air-gapped vault, so, as AWS does for those,
/// the backup lands in the rule's TargetBackupVaultName and is copied from there.
pub(crate) fn rule_copy_actions(rule: &BackupRule) -> Vec<CopyAction> {
    let mut actions = rule.copy_actions.clone().unwrap_or_default();
    if let Some(target) = &rule.target_logically_air_gapped_backup_vault_arn
        && !actions
            .iter()
            .any(|a| &a.destination_backup_vault_arn == target)
    {
        actions.push(CopyAction {
            destination_backup_vault_arn: target.clone(),
            lifecycle: rule.lifecycle.clone(),
        });
    }
    actions
}

/// Checks a lifecycle (of a rule, or of one of its copy actions, named by `member`).
/// A plan document's lifecycle: `-1` clears a value, then the one lifecycle rule applies.
fn check_lifecycle(mut l: Lifecycle, continuous: bool, member: &str) -> Result<Lifecycle, String> {
    if l.delete_after_days == Some(CLEARED) {
        l.delete_after_days = None;
    }
    if l.move_to_cold_storage_after_days == Some(CLEARED) {
        l.move_to_cold_storage_after_days = None;
    }
    lifecycle::check(&l, continuous, Some(member))?;
    Ok(l)
}

fn check_copy_action(mut a: CopyAction, i: usize) -> Result<CopyAction, String> {
    if !is_backup_vault_arn(&a.destination_backup_vault_arn) {
        return Err(format!(
            "CopyActions[{i}].DestinationBackupVaultArn '{}' is not a backup vault ARN (arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME)",
            shown(&a.destination_backup_vault_arn)
        ));
    }
    if let Some(l) = a.lifecycle.take() {
        a.lifecycle = Some(check_lifecycle(
            l,
            false,
            &format!("CopyActions[{i}].Lifecycle"),
        )?);
    }
    Ok(a)
}

/// `arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME` with a valid vault name.
pub(crate) fn is_backup_vault_arn(text: &str) -> bool {
    let Some(a) = arn::parse(text) else {
        return false;
    };
    let Some(name) = a.resource.strip_prefix("backup-vault:") else {
        return false;
    };
    a.partition.starts_with("aws")
        && a.service == "backup"
        && !a.region.is_empty()
        && a.account.len() == 12
        && a.account.bytes().all(|b| b.is_ascii_digit())
        && (2..=50).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

fn check_advanced_settings(settings: &[AdvancedBackupSetting]) -> Result<(), ApiError> {
    let supported = || {
        ADVANCED_SETTINGS
            .iter()
            .map(|(t, o)| format!("{t} ({})", o.join(", ")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut seen = BTreeSet::new();
    for (i, s) in settings.iter().enumerate() {
        let member = format!("AdvancedBackupSettings[{i}]");
        let Some(rt) = s.resource_type.as_deref() else {
            return Err(invalid(format!(
                "Invalid {member}: ResourceType is required."
            )));
        };
        let Some((_, options)) = ADVANCED_SETTINGS.iter().find(|(t, _)| *t == rt) else {
            return Err(invalid(format!(
                "Invalid {member}: ResourceType '{}' has no advanced backup settings; supported: {}.",
                shown(rt),
                supported()
            )));
        };
        if !seen.insert(rt) {
            return Err(invalid(format!(
                "Invalid {member}: ResourceType '{rt}' appears more than once."
            )));
        }
        let given = s.backup_options.as_ref().filter(|o| !o.is_empty());
        let Some(given) = given else {
            return Err(invalid(format!(
                "Invalid {member}: BackupOptions is required for ResourceType '{rt}' ({}).",
                options.join(", ")
            )));
        };
        for (k, v) in given {
            if !options.contains(&k.as_str()) {
                return Err(invalid(format!(
                    "Invalid {member}: BackupOptions key '{}' does not apply to ResourceType '{rt}'; use {}.",
                    shown(k),
                    options.join(", ")
                )));
            }
            if !ADVANCED_SETTING_VALUES.contains(&v.as_str()) {
                return Err(invalid(format!(
                    "Invalid {member}: BackupOptions {k} must be 'enabled' or 'disabled', not '{}'.",
                    shown(v)
                )));
            }
        }
    }
    Ok(())
}

/// The document without its RuleIds, for comparing two plans' contents.
pub(crate) fn without_rule_ids(plan: &BackupPlan) -> BackupPlan {
    let mut p = plan.clone();
    for r in &mut p.rules {
        r.rule_id = None;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_input(name: &str) -> BackupRuleInput {
        BackupRuleInput {
            rule_name: name.into(),
            target_backup_vault_name: "vault".into(),
            ..Default::default()
        }
    }

    fn plan_input(rules: Vec<BackupRuleInput>) -> BackupPlanInput {
        BackupPlanInput {
            backup_plan_name: "plan".into(),
            rules,
            ..Default::default()
        }
    }

    fn message(input: BackupPlanInput) -> String {
        normalise(input, &BTreeMap::new())
            .unwrap_err()
            .message()
            .to_string()
    }

    #[test]
    fn defaults_are_filled_in_and_given_values_kept() {
        let mut given = rule_input("given");
        given.schedule_expression = Some("cron(0 1 ? * MON *)".into());
        given.schedule_expression_timezone = Some("Europe/Paris".into());
        given.start_window_minutes = Some(60);
        given.completion_window_minutes = Some(120);
        let p = normalise(
            plan_input(vec![rule_input("plain"), given]),
            &BTreeMap::new(),
        )
        .unwrap();
        let plain = &p.rules[0];
        assert_eq!(
            plain.schedule_expression.as_deref(),
            Some("cron(0 5 ? * * *)")
        );
        assert_eq!(
            plain.schedule_expression_timezone.as_deref(),
            Some("Etc/UTC")
        );
        assert_eq!(plain.start_window_minutes, Some(480));
        assert_eq!(plain.completion_window_minutes, Some(10_080));
        let given = &p.rules[1];
        assert_eq!(
            given.schedule_expression.as_deref(),
            Some("cron(0 1 ? * MON *)")
        );
        assert_eq!(
            given.schedule_expression_timezone.as_deref(),
            Some("Europe/Paris")
        );
        assert_eq!(given.start_window_minutes, Some(60));
        assert_eq!(given.completion_window_minutes, Some(120));
        assert_ne!(plain.rule_id, given.rule_id);
    }

    #[test]
    fn rule_ids_are_kept_by_name() {
        let previous = BTreeMap::from([("a".to_string(), "id-a".to_string())]);
        let p = normalise(
            plan_input(vec![rule_input("a"), rule_input("b")]),
            &previous,
        )
        .unwrap();
        assert_eq!(p.rules[0].rule_id.as_deref(), Some("id-a"));
        assert!(uuid::Uuid::parse_str(p.rules[1].rule_id.as_deref().unwrap()).is_ok());
    }

    #[test]
    fn windows_are_bounded() {
        let mut r = rule_input("r");
        r.start_window_minutes = Some(59);
        assert!(message(plan_input(vec![r])).starts_with("Error in rule r : StartWindowMinutes"));
        let mut r = rule_input("r");
        r.start_window_minutes = Some(120);
        r.completion_window_minutes = Some(150);
        assert!(message(plan_input(vec![r])).contains("CompletionWindowMinutes (150)"));
        // A long start window raises the default completion window.
        let mut r = rule_input("r");
        r.start_window_minutes = Some(20_000);
        let p = normalise(plan_input(vec![r]), &BTreeMap::new()).unwrap();
        assert_eq!(p.rules[0].completion_window_minutes, Some(20_060));
    }

    #[test]
    fn lifecycles_are_checked() {
        let with = |l: Lifecycle, continuous: bool| {
            let mut r = rule_input("R");
            r.lifecycle = Some(l);
            r.enable_continuous_backup = Some(continuous);
            normalise(plan_input(vec![r]), &BTreeMap::new())
        };
        let l = |d: Option<i64>, c: Option<i64>| Lifecycle {
            delete_after_days: d,
            move_to_cold_storage_after_days: c,
            ..Default::default()
        };
        assert_eq!(
            with(l(Some(100), Some(30)), false).unwrap_err().message(),
            "Error in rule R : Invalid lifecycle. DeleteAfterDays cannot be less than 90 days apart from MoveToColdStorageAfterDays (Lifecycle: 100 and 30)"
        );
        assert!(with(l(Some(120), Some(30)), false).is_ok());
        assert!(with(l(Some(0), None), false).is_err());
        assert!(with(l(Some(36_501), None), false).is_err());
        assert!(with(l(Some(35), None), true).is_ok());
        assert!(with(l(Some(36), None), true).is_err());
        assert!(
            with(l(Some(20), Some(1)), true)
                .unwrap_err()
                .message()
                .contains("MoveToColdStorageAfterDays is unavailable")
        );
        let cleared = with(l(Some(-1), Some(-1)), false).unwrap();
        assert_eq!(cleared.rules[0].lifecycle, Some(Lifecycle::default()));
        // A continuous rule without a lifecycle gets the 35-day retention AWS applies.
        let mut r = rule_input("R");
        r.enable_continuous_backup = Some(true);
        let p = normalise(plan_input(vec![r]), &BTreeMap::new()).unwrap();
        assert_eq!(
            p.rules[0].lifecycle,
            Some(Lifecycle {
                delete_after_days: Some(35),
                ..Default::default()
            })
        );
    }

    #[test]
    fn schedules_go_through_coffer_cron() {
        let mut r = rule_input("R");
        r.schedule_expression = Some("cron(0/30 * ? * * *)".into());
        assert!(message(plan_input(vec![r])).starts_with("Error in rule R : "));
        let mut r = rule_input("R");
        r.schedule_expression_timezone = Some("Mars/Base".into());
        assert!(message(plan_input(vec![r])).contains("Mars/Base"));
    }

    #[test]
    fn advanced_settings_copy_actions_and_names() {
        let mut p = plan_input(vec![rule_input("R")]);
        p.advanced_backup_settings = Some(vec![AdvancedBackupSetting {
            resource_type: Some("EC2".into()),
            backup_options: Some(BTreeMap::from([("WindowsVSS".into(), "enabled".into())])),
        }]);
        assert!(normalise(p.clone(), &BTreeMap::new()).is_ok());
        p.advanced_backup_settings = Some(vec![AdvancedBackupSetting {
            resource_type: Some("RDS".into()),
            backup_options: Some(BTreeMap::from([("WindowsVSS".into(), "enabled".into())])),
        }]);
        assert!(message(p).contains("'RDS'"));

        let mut r = rule_input("R");
        r.copy_actions = Some(vec![CopyAction {
            destination_backup_vault_arn: "arn:aws:s3:::bucket".into(),
            lifecycle: None,
        }]);
        assert!(message(plan_input(vec![r])).contains("CopyActions[0].DestinationBackupVaultArn"));

        assert!(message(plan_input(vec![rule_input("R"), rule_input("R")])).contains("unique"));
        assert!(message(plan_input(vec![])).contains("at least one rule"));
        let mut p = plan_input(vec![rule_input("R")]);
        p.backup_plan_name = "no spaces".into();
        assert!(message(p).contains("BackupPlanName"));
    }
}
