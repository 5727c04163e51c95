//! Plan templates and JSON plan documents end to end: the built-in catalogue, a template turned
//! into a real plan, and ExportBackupPlanTemplate read back by GetBackupPlanFromJSON.

use aws_sdk_backup::error::ProvideErrorMetadata;
use aws_sdk_backup::types::{BackupPlanInput, BackupRuleInput, CopyAction, Lifecycle};

use crate::harness::*;
use crate::plans::{rule, vault};

const DAILY_35: &str = "87c0c1ef-254d-4180-8fef-2e76a2c38aaa";

#[tokio::test]
async fn the_catalogue_lists_and_pages_and_templates_become_plans() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();

    let all = c.list_backup_plan_templates().send().await.unwrap();
    let names: Vec<_> = all
        .backup_plan_templates_list()
        .iter()
        .map(|t| {
            (
                t.backup_plan_template_id().unwrap().to_string(),
                t.backup_plan_template_name().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(names.len(), 4);
    assert_eq!(
        names[0],
        (DAILY_35.to_string(), "Daily-35day-Retention".to_string())
    );
    for expected in [
        "Daily-Monthly-1yr-Retention",
        "Daily-Weekly-Monthly-5yr-Retention",
        "Daily-Weekly-Monthly-7yr-Retention",
    ] {
        assert!(names.iter().any(|(_, n)| n == expected), "{expected}");
    }
    // One at a time, every template once.
    let mut paged = Vec::new();
    let mut token = None;
    loop {
        let page = c
            .list_backup_plan_templates()
            .max_results(1)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        paged.extend(
            page.backup_plan_templates_list()
                .iter()
                .map(|t| t.backup_plan_template_id().unwrap().to_string()),
        );
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(
        paged,
        names.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>()
    );

    let doc = c
        .get_backup_plan_from_template()
        .backup_plan_template_id(DAILY_35)
        .send()
        .await
        .unwrap();
    let doc = doc.backup_plan_document().unwrap();
    assert_eq!(doc.backup_plan_name(), "Daily-35day-Retention");
    assert_eq!(doc.rules().len(), 1);
    let r = &doc.rules()[0];
    assert_eq!(r.rule_name(), "DailyBackups");
    assert_eq!(r.schedule_expression(), Some("cron(0 5 ? * * *)"));
    assert_eq!(r.start_window_minutes(), Some(480));
    assert_eq!(r.lifecycle().unwrap().delete_after_days(), Some(35));
    assert_eq!(r.target_backup_vault_name(), "");

    let err = c
        .get_backup_plan_from_template()
        .backup_plan_template_id("00000000-0000-4000-8000-000000000000")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());

    // Every template, given a vault, is a plan CreateBackupPlan accepts.
    vault(&c, "Default").await;
    for (id, _) in &names {
        let doc = c
            .get_backup_plan_from_template()
            .backup_plan_template_id(id)
            .send()
            .await
            .unwrap();
        let doc = doc.backup_plan_document().unwrap();
        let rules = doc
            .rules()
            .iter()
            .map(|r| {
                BackupRuleInput::builder()
                    .rule_name(r.rule_name())
                    .target_backup_vault_name("Default")
                    .set_schedule_expression(r.schedule_expression().map(str::to_string))
                    .set_start_window_minutes(r.start_window_minutes())
                    .set_lifecycle(r.lifecycle().cloned())
                    .build()
                    .unwrap()
            })
            .collect();
        c.create_backup_plan()
            .backup_plan(
                BackupPlanInput::builder()
                    .backup_plan_name(doc.backup_plan_name())
                    .set_rules(Some(rules))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn export_then_get_backup_plan_from_json_round_trips() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    vault(&c, "v1").await;
    let mut detailed = rule("detailed", "v1");
    detailed.schedule_expression = Some("cron(30 1 ? * SUN *)".into());
    detailed.schedule_expression_timezone = Some("America/New_York".into());
    detailed.lifecycle = Some(
        Lifecycle::builder()
            .move_to_cold_storage_after_days(10)
            .delete_after_days(120)
            .build(),
    );
    detailed.copy_actions = Some(vec![
        CopyAction::builder()
            .destination_backup_vault_arn("arn:aws:backup:us-west-2:111122223333:backup-vault:dr")
            .build()
            .unwrap(),
    ]);
    let id = c
        .create_backup_plan()
        .backup_plan(
            BackupPlanInput::builder()
                .backup_plan_name("exported")
                .rules(rule("plain", "v1"))
                .rules(detailed)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .backup_plan_id()
        .unwrap()
        .to_string();

    let json = c
        .export_backup_plan_template()
        .backup_plan_id(&id)
        .send()
        .await
        .unwrap()
        .backup_plan_template_json()
        .unwrap()
        .to_string();
    assert!(!json.contains("RuleId"), "{json}");
    let parsed = c
        .get_backup_plan_from_json()
        .backup_plan_template_json(&json)
        .send()
        .await
        .unwrap();
    let parsed = parsed.backup_plan().unwrap();

    let stored = c
        .get_backup_plan()
        .backup_plan_id(&id)
        .send()
        .await
        .unwrap();
    let mut stored = stored.backup_plan().unwrap().clone();
    stored.rules = stored
        .rules
        .into_iter()
        .map(|mut r| {
            r.rule_id = None;
            r
        })
        .collect();
    assert_eq!(parsed, &stored);

    // Documents that are not plans, or not valid ones, are refused.
    for (bad, expected) in [
        ("not json", "BackupPlanTemplateJson"),
        (r#"{"Rules": []}"#, "BackupPlanTemplateJson"),
        (
            r#"{"BackupPlanName": "p", "Rules": [{"RuleName": "r", "TargetBackupVaultName": "v1", "Lifecycle": {"DeleteAfterDays": 40, "MoveToColdStorageAfterDays": 10}}]}"#,
            "Error in rule r : Invalid lifecycle. DeleteAfterDays cannot be less than 90 days apart",
        ),
        (
            r#"{"BackupPlanName": "p", "Rules": [{"RuleName": "bad name", "TargetBackupVaultName": "v1"}]}"#,
            "RuleName",
        ),
    ] {
        let err = c
            .get_backup_plan_from_json()
            .backup_plan_template_json(bad)
            .send()
            .await
            .unwrap_err();
        let err = err.into_service_error();
        assert!(err.is_invalid_parameter_value_exception(), "{bad}: {err:?}");
        let message = err.message().unwrap_or_default();
        assert!(message.contains(expected), "'{expected}' in '{message}'");
    }

    // A deleted plan cannot be exported.
    c.delete_backup_plan()
        .backup_plan_id(&id)
        .send()
        .await
        .unwrap();
    let err = c
        .export_backup_plan_template()
        .backup_plan_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
}
