//! Backup plans end to end: create / get / update / versions / delete / list, every field of a
//! rule round-tripping, defaults, idempotency, identical documents, validation, the scheduled
//! runs preview and tags on plan ARNs.

use std::collections::HashMap;

use aws_sdk_backup::error::ProvideErrorMetadata;
use aws_sdk_backup::types::{
    AdvancedBackupSetting, BackupPlanInput, BackupRule, BackupRuleInput, CopyAction, IndexAction,
    Lifecycle, RuleExecutionType,
};

use crate::harness::*;

pub async fn vault(c: &aws_sdk_backup::Client, name: &str) {
    c.create_backup_vault()
        .backup_vault_name(name)
        .send()
        .await
        .unwrap();
}

pub fn rule(name: &str, vault: &str) -> BackupRuleInput {
    BackupRuleInput::builder()
        .rule_name(name)
        .target_backup_vault_name(vault)
        .build()
        .unwrap()
}

pub fn plan(name: &str, rules: Vec<BackupRuleInput>) -> BackupPlanInput {
    BackupPlanInput::builder()
        .backup_plan_name(name)
        .set_rules(Some(rules))
        .build()
        .unwrap()
}

/// Creates plan `name` with one default rule into `vault`; returns its id.
pub async fn simple_plan(c: &aws_sdk_backup::Client, name: &str, vault: &str) -> String {
    c.create_backup_plan()
        .backup_plan(plan(name, vec![rule("daily", vault)]))
        .send()
        .await
        .unwrap()
        .backup_plan_id()
        .unwrap()
        .to_string()
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, ch)| match i {
            8 | 13 | 18 | 23 => ch == '-',
            _ => ch.is_ascii_digit() || ('a'..='f').contains(&ch),
        })
}

#[tokio::test]
async fn create_get_update_versions_delete_and_list() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    vault(&c, "v1").await;

    let created = c
        .create_backup_plan()
        .backup_plan(plan("nightly", vec![rule("daily", "v1")]))
        .creator_request_id("req-1")
        .send()
        .await
        .unwrap();
    let id = created.backup_plan_id().unwrap().to_string();
    assert!(is_uuid(&id), "{id}");
    assert_eq!(
        created.backup_plan_arn(),
        Some(format!("arn:aws:backup:us-east-1:{ACCOUNT}:backup-plan:{id}").as_str())
    );
    let v1 = created.version_id().unwrap().to_string();
    assert_eq!(v1.len(), 48);

    // Defaults are filled in.
    let got = c
        .get_backup_plan()
        .backup_plan_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(got.version_id(), Some(v1.as_str()));
    assert_eq!(got.creator_request_id(), Some("req-1"));
    assert!(got.deletion_date().is_none());
    assert!(got.last_execution_date().is_none());
    assert!(got.scheduled_runs_preview().is_empty());
    let doc = got.backup_plan().unwrap();
    assert_eq!(doc.backup_plan_name(), "nightly");
    let r = &doc.rules()[0];
    assert_eq!(r.schedule_expression(), Some("cron(0 5 ? * * *)"));
    assert_eq!(r.schedule_expression_timezone(), Some("Etc/UTC"));
    assert_eq!(r.start_window_minutes(), Some(480));
    assert_eq!(r.completion_window_minutes(), Some(10080));
    assert_eq!(r.target_backup_vault_name(), "v1");
    let daily_id = r.rule_id().unwrap().to_string();
    assert!(is_uuid(&daily_id));

    // Update: a new version; the rule that keeps its name keeps its id.
    let mut changed = rule("daily", "v1");
    changed.schedule_expression = Some("cron(0 2 ? * * *)".into());
    let updated = c
        .update_backup_plan()
        .backup_plan_id(&id)
        .backup_plan(plan("nightly", vec![changed, rule("weekly", "v1")]))
        .send()
        .await
        .unwrap();
    let v2 = updated.version_id().unwrap().to_string();
    assert_ne!(v1, v2);
    assert_eq!(v2.len(), 48);
    let got = c
        .get_backup_plan()
        .backup_plan_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(got.version_id(), Some(v2.as_str()));
    let rules = got.backup_plan().unwrap().rules();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].rule_id(), Some(daily_id.as_str()));
    assert_eq!(rules[0].schedule_expression(), Some("cron(0 2 ? * * *)"));
    assert_ne!(rules[1].rule_id(), Some(daily_id.as_str()));

    // The first version stays readable.
    let old = c
        .get_backup_plan()
        .backup_plan_id(&id)
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(old.version_id(), Some(v1.as_str()));
    assert_eq!(old.backup_plan().unwrap().rules().len(), 1);
    assert_eq!(
        old.backup_plan().unwrap().rules()[0].schedule_expression(),
        Some("cron(0 5 ? * * *)")
    );
    let err = c
        .get_backup_plan()
        .backup_plan_id(&id)
        .version_id("bm90LWEtdmVyc2lvbg==")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());

    let versions = c
        .list_backup_plan_versions()
        .backup_plan_id(&id)
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = versions
        .backup_plan_versions_list()
        .iter()
        .map(|v| v.version_id().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec![v1.clone(), v2.clone()]);
    let page = c
        .list_backup_plan_versions()
        .backup_plan_id(&id)
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(page.backup_plan_versions_list().len(), 1);
    let rest = c
        .list_backup_plan_versions()
        .backup_plan_id(&id)
        .next_token(page.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        rest.backup_plan_versions_list()[0].version_id(),
        Some(v2.as_str())
    );
    assert!(rest.next_token().is_none());

    let list = c.list_backup_plans().send().await.unwrap();
    assert_eq!(list.backup_plans_list().len(), 1);
    let member = &list.backup_plans_list()[0];
    assert_eq!(member.backup_plan_id(), Some(id.as_str()));
    assert_eq!(member.backup_plan_name(), Some("nightly"));
    assert_eq!(member.version_id(), Some(v2.as_str()));
    assert_eq!(member.creator_request_id(), Some("req-1"));

    // Delete: the plan disappears, its versions stay readable by id with the DeletionDate.
    let deleted = c
        .delete_backup_plan()
        .backup_plan_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.version_id(), Some(v2.as_str()));
    let deletion_date = deleted.deletion_date().unwrap().secs();
    let err = c
        .get_backup_plan()
        .backup_plan_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
    let old = c
        .get_backup_plan()
        .backup_plan_id(&id)
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(old.deletion_date().unwrap().secs(), deletion_date);
    assert!(
        c.list_backup_plans()
            .send()
            .await
            .unwrap()
            .backup_plans_list()
            .is_empty()
    );
    let with_deleted = c
        .list_backup_plans()
        .include_deleted(true)
        .send()
        .await
        .unwrap();
    assert_eq!(with_deleted.backup_plans_list().len(), 1);
    assert_eq!(
        with_deleted.backup_plans_list()[0]
            .deletion_date()
            .unwrap()
            .secs(),
        deletion_date
    );
    let err = c
        .update_backup_plan()
        .backup_plan_id(&id)
        .backup_plan(plan("nightly", vec![rule("daily", "v1")]))
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
    let err = c
        .delete_backup_plan()
        .backup_plan_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());

    // Another region of the same account sees nothing.
    let other = server.client_as(AKID, SECRET, "eu-west-1");
    let err = other
        .get_backup_plan()
        .backup_plan_id(&id)
        .version_id(&v1)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
}

#[tokio::test]
async fn every_field_of_a_rule_round_trips_exactly() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    vault(&c, "primary").await;

    let lifecycle = Lifecycle::builder()
        .move_to_cold_storage_after_days(30)
        .delete_after_days(365)
        .opt_in_to_archive_for_supported_resources(true)
        .build();
    let copy = CopyAction::builder()
        .destination_backup_vault_arn("arn:aws:backup:eu-west-1:444455556666:backup-vault:offsite")
        .lifecycle(Lifecycle::builder().delete_after_days(100).build())
        .build()
        .unwrap();
    let full = BackupRuleInput::builder()
        .rule_name("everything")
        .target_backup_vault_name("primary")
        .schedule_expression("cron(15 3 ? * MON-FRI *)")
        .schedule_expression_timezone("Europe/Paris")
        .start_window_minutes(120)
        .completion_window_minutes(720)
        .lifecycle(lifecycle.clone())
        .recovery_point_tags("team", "web")
        .recovery_point_tags("env", "prod")
        .copy_actions(copy.clone())
        .enable_continuous_backup(false)
        .index_actions(IndexAction::builder().resource_types("EBS").build())
        .build()
        .unwrap();
    let continuous = BackupRuleInput::builder()
        .rule_name("continuous")
        .target_backup_vault_name("primary")
        .enable_continuous_backup(true)
        .build()
        .unwrap();
    let settings = AdvancedBackupSetting::builder()
        .resource_type("EC2")
        .backup_options("WindowsVSS", "enabled")
        .build();
    let input = BackupPlanInput::builder()
        .backup_plan_name("full.plan_1")
        .rules(full)
        .rules(continuous)
        .advanced_backup_settings(settings.clone())
        .build()
        .unwrap();
    let created = c
        .create_backup_plan()
        .backup_plan(input)
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.advanced_backup_settings(),
        std::slice::from_ref(&settings)
    );

    let got = c
        .get_backup_plan()
        .backup_plan_id(created.backup_plan_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.advanced_backup_settings(),
        std::slice::from_ref(&settings)
    );
    let doc = got.backup_plan().unwrap();
    assert_eq!(doc.backup_plan_name(), "full.plan_1");
    assert_eq!(doc.advanced_backup_settings(), &[settings]);
    let rules = doc.rules();
    let expected_full = BackupRule::builder()
        .rule_name("everything")
        .rule_id(rules[0].rule_id().unwrap())
        .target_backup_vault_name("primary")
        .schedule_expression("cron(15 3 ? * MON-FRI *)")
        .schedule_expression_timezone("Europe/Paris")
        .start_window_minutes(120)
        .completion_window_minutes(720)
        .lifecycle(lifecycle)
        .set_recovery_point_tags(Some(HashMap::from([
            ("team".to_string(), "web".to_string()),
            ("env".to_string(), "prod".to_string()),
        ])))
        .copy_actions(copy)
        .enable_continuous_backup(false)
        .index_actions(IndexAction::builder().resource_types("EBS").build())
        .build()
        .unwrap();
    assert_eq!(rules[0], expected_full);
    let expected_continuous = BackupRule::builder()
        .rule_name("continuous")
        .rule_id(rules[1].rule_id().unwrap())
        .target_backup_vault_name("primary")
        .schedule_expression("cron(0 5 ? * * *)")
        .schedule_expression_timezone("Etc/UTC")
        .start_window_minutes(480)
        .completion_window_minutes(10080)
        .enable_continuous_backup(true)
        // Sent without a Lifecycle: the 35-day retention AWS applies is recorded.
        .lifecycle(Lifecycle::builder().delete_after_days(35).build())
        .build()
        .unwrap();
    assert_eq!(rules[1], expected_continuous);
}

#[tokio::test]
async fn creator_request_id_and_identical_documents() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    vault(&c, "v1").await;

    let first = c
        .create_backup_plan()
        .backup_plan(plan("p", vec![rule("daily", "v1")]))
        .creator_request_id("same-request")
        .send()
        .await
        .unwrap();
    // A retry with the same CreatorRequestId returns the plan created the first time.
    let retry = c
        .create_backup_plan()
        .backup_plan(plan("p", vec![rule("daily", "v1")]))
        .creator_request_id("same-request")
        .send()
        .await
        .unwrap();
    assert_eq!(retry.backup_plan_id(), first.backup_plan_id());
    assert_eq!(retry.version_id(), first.version_id());

    // The same document under another request id is refused...
    let err = c
        .create_backup_plan()
        .backup_plan(plan("p", vec![rule("daily", "v1")]))
        .send()
        .await
        .unwrap_err();
    let err = err.into_service_error();
    assert!(err.is_already_exists_exception(), "{err:?}");
    assert_eq!(
        err.message(),
        Some("Backup plan with the same plan document already exists")
    );
    // ... as is one that only spells out the defaults.
    let mut explicit = rule("daily", "v1");
    explicit.start_window_minutes = Some(480);
    explicit.schedule_expression_timezone = Some("Etc/UTC".into());
    let err = c
        .create_backup_plan()
        .backup_plan(plan("p", vec![explicit]))
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_already_exists_exception());

    // Plans may share a name when their documents differ.
    let mut other = rule("daily", "v1");
    other.start_window_minutes = Some(60);
    c.create_backup_plan()
        .backup_plan(plan("p", vec![other]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        c.list_backup_plans()
            .send()
            .await
            .unwrap()
            .backup_plans_list()
            .len(),
        2
    );

    // Once deleted, the document can be created again.
    c.delete_backup_plan()
        .backup_plan_id(first.backup_plan_id().unwrap())
        .send()
        .await
        .unwrap();
    c.create_backup_plan()
        .backup_plan(plan("p", vec![rule("daily", "v1")]))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn invalid_documents_are_refused_with_the_rule_and_member_named() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    vault(&c, "v1").await;

    let with = |f: &dyn Fn(&mut BackupRuleInput)| {
        let mut r = rule("R1", "v1");
        f(&mut r);
        plan("p", vec![r])
    };
    let lifecycle = |d: Option<i64>, cold: Option<i64>| {
        Lifecycle::builder()
            .set_delete_after_days(d)
            .set_move_to_cold_storage_after_days(cold)
            .build()
    };
    let cases: Vec<(BackupPlanInput, &str)> = vec![
        (
            plan("p", vec![rule("R1", "absent")]),
            "Error in rule R1 : TargetBackupVaultName 'absent'",
        ),
        (
            with(&|r| r.start_window_minutes = Some(59)),
            "Error in rule R1 : StartWindowMinutes",
        ),
        (
            with(&|r| r.start_window_minutes = Some(52_560_001)),
            "Error in rule R1 : StartWindowMinutes",
        ),
        (
            with(&|r| {
                r.start_window_minutes = Some(120);
                r.completion_window_minutes = Some(150);
            }),
            "Error in rule R1 : CompletionWindowMinutes",
        ),
        (
            with(&|r| r.lifecycle = Some(lifecycle(Some(100), Some(30)))),
            "Error in rule R1 : Invalid lifecycle. DeleteAfterDays cannot be less than 90 days apart from MoveToColdStorageAfterDays",
        ),
        (
            with(&|r| r.lifecycle = Some(lifecycle(Some(36_501), None))),
            "Error in rule R1 : Invalid lifecycle. DeleteAfterDays cannot be less than 1 or more than 36500 days",
        ),
        (
            with(&|r| r.lifecycle = Some(lifecycle(Some(0), None))),
            "DeleteAfterDays cannot be less than 1",
        ),
        (
            with(&|r| {
                r.enable_continuous_backup = Some(true);
                r.lifecycle = Some(lifecycle(Some(20), Some(5)));
            }),
            "Error in rule R1 : Invalid lifecycle. MoveToColdStorageAfterDays is unavailable",
        ),
        (
            with(&|r| {
                r.enable_continuous_backup = Some(true);
                r.lifecycle = Some(lifecycle(Some(36), None));
            }),
            "Error in rule R1 : Invalid lifecycle. Continuous backups",
        ),
        (
            with(&|r| {
                r.copy_actions = Some(vec![
                    CopyAction::builder()
                        .destination_backup_vault_arn("arn:aws:s3:::bucket")
                        .build()
                        .unwrap(),
                ])
            }),
            "Error in rule R1 : CopyActions[0].DestinationBackupVaultArn",
        ),
        (
            with(&|r| r.schedule_expression = Some("cron(0/30 * ? * * *)".into())),
            "Error in rule R1 : ",
        ),
        (
            with(&|r| r.schedule_expression = Some("rate(1 day)".into())),
            "Error in rule R1 : Invalid ScheduleExpression rate(1 day)",
        ),
        (
            with(&|r| r.schedule_expression_timezone = Some("Mars/Base".into())),
            "Error in rule R1 : Invalid ScheduleExpressionTimezone Mars/Base",
        ),
        (
            with(&|r| {
                r.index_actions = Some(vec![IndexAction::builder().resource_types("RDS").build()])
            }),
            "Error in rule R1 : IndexActions[0].ResourceTypes",
        ),
        (plan("bad name", vec![rule("R1", "v1")]), "BackupPlanName"),
        (
            plan("p", vec![rule("R1", "v1"), rule("R1", "v1")]),
            "Error in rule R1 : RuleName must be unique",
        ),
        (plan("p", vec![]), "at least one rule"),
        (
            BackupPlanInput::builder()
                .backup_plan_name("p")
                .rules(rule("R1", "v1"))
                .advanced_backup_settings(
                    AdvancedBackupSetting::builder()
                        .resource_type("RDS")
                        .backup_options("WindowsVSS", "enabled")
                        .build(),
                )
                .build()
                .unwrap(),
            "AdvancedBackupSettings[0]: ResourceType 'RDS'",
        ),
        (
            BackupPlanInput::builder()
                .backup_plan_name("p")
                .rules(rule("R1", "v1"))
                .advanced_backup_settings(
                    AdvancedBackupSetting::builder()
                        .resource_type("EC2")
                        .backup_options("WindowsVSS", "sometimes")
                        .build(),
                )
                .build()
                .unwrap(),
            "BackupOptions WindowsVSS must be 'enabled' or 'disabled'",
        ),
    ];
    for (input, expected) in cases {
        let err = c
            .create_backup_plan()
            .backup_plan(input.clone())
            .send()
            .await
            .unwrap_err();
        let err = err.into_service_error();
        assert!(
            err.is_invalid_parameter_value_exception(),
            "{expected}: {err:?}"
        );
        let message = err.message().unwrap_or_default();
        assert!(
            message.contains(expected),
            "expected '{expected}' in '{message}'"
        );
    }
    // Nothing was created, and a refused update leaves the plan as it was.
    assert!(
        c.list_backup_plans()
            .include_deleted(true)
            .send()
            .await
            .unwrap()
            .backup_plans_list()
            .is_empty()
    );
    let id = simple_plan(&c, "p", "v1").await;
    let err = c
        .update_backup_plan()
        .backup_plan_id(&id)
        .backup_plan(with(&|r| r.start_window_minutes = Some(10)))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.into_service_error()
            .is_invalid_parameter_value_exception()
    );
    let versions = c
        .list_backup_plan_versions()
        .backup_plan_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(versions.backup_plan_versions_list().len(), 1);
    // An id that is not a plan's.
    let err = c
        .get_backup_plan()
        .backup_plan_id("not-a-plan")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
}

#[tokio::test]
async fn scheduled_runs_preview_follows_the_rules_and_the_clock() {
    use chrono::{Datelike, TimeZone, Utc};
    let server = Server::start(&["--dev"]).await;
    // 10 January, noon UTC, two years ahead (the clock never moves back); Paris is on CET then.
    let base = Utc
        .with_ymd_and_hms(Utc::now().year() + 2, 1, 10, 0, 0, 0)
        .unwrap()
        .timestamp();
    let set = format!(
        r#"{{"set": "{}"}}"#,
        Utc.timestamp_opt(base + 12 * 3600, 0).unwrap().to_rfc3339()
    );
    let (status, _, body) = server
        .raw(
            "POST",
            "/_coffer/clock",
            &[("content-type", "application/json")],
            set.as_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let c = server.client_as("test", "test", "us-east-1");
    vault(&c, "v1").await;
    let utc = rule("utc", "v1"); // cron(0 5 ? * * *) in Etc/UTC
    let mut paris = rule("paris", "v1");
    paris.schedule_expression = Some("cron(0 3 ? * * *)".into());
    paris.schedule_expression_timezone = Some("Europe/Paris".into()); // 02:00 UTC in January (CET)
    let id = c
        .create_backup_plan()
        .backup_plan(plan("preview", vec![utc, paris]))
        .send()
        .await
        .unwrap()
        .backup_plan_id()
        .unwrap()
        .to_string();
    let got = c
        .get_backup_plan()
        .backup_plan_id(&id)
        .max_scheduled_runs_preview(5)
        .send()
        .await
        .unwrap();
    let rules = got.backup_plan().unwrap().rules();
    let (utc_id, paris_id) = (rules[0].rule_id().unwrap(), rules[1].rule_id().unwrap());
    let day = |d: i64, h: i64| base + (d - 10) * 86_400 + h * 3600;
    let expected = vec![
        (day(11, 2), paris_id),
        (day(11, 5), utc_id),
        (day(12, 2), paris_id),
        (day(12, 5), utc_id),
        (day(13, 2), paris_id),
    ];
    let runs: Vec<(i64, &str)> = got
        .scheduled_runs_preview()
        .iter()
        .map(|r| {
            assert_eq!(r.rule_execution_type(), Some(&RuleExecutionType::Snapshots));
            (r.execution_time().unwrap().secs(), r.rule_id().unwrap())
        })
        .collect();
    assert_eq!(runs, expected);

    let none = c
        .get_backup_plan()
        .backup_plan_id(&id)
        .max_scheduled_runs_preview(0)
        .send()
        .await
        .unwrap();
    assert!(none.scheduled_runs_preview().is_empty());
    let err = c
        .get_backup_plan()
        .backup_plan_id(&id)
        .max_scheduled_runs_preview(11)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.into_service_error()
            .is_invalid_parameter_value_exception()
    );
}

#[tokio::test]
async fn tags_on_a_plan_arn() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    vault(&c, "v1").await;
    let created = c
        .create_backup_plan()
        .backup_plan(plan("tagged", vec![rule("daily", "v1")]))
        .backup_plan_tags("team", "web")
        .send()
        .await
        .unwrap();
    let arn = created.backup_plan_arn().unwrap().to_string();
    let tags = c.list_tags().resource_arn(&arn).send().await.unwrap();
    assert_eq!(
        tags.tags().unwrap(),
        &HashMap::from([("team".to_string(), "web".to_string())])
    );
    c.tag_resource()
        .resource_arn(&arn)
        .tags("env", "prod")
        .send()
        .await
        .unwrap();
    c.untag_resource()
        .resource_arn(&arn)
        .tag_key_list("team")
        .send()
        .await
        .unwrap();
    let tags = c.list_tags().resource_arn(&arn).send().await.unwrap();
    assert_eq!(
        tags.tags().unwrap(),
        &HashMap::from([("env".to_string(), "prod".to_string())])
    );
    let err = c
        .create_backup_plan()
        .backup_plan(plan("tagged2", vec![rule("daily", "v1")]))
        .backup_plan_tags("aws:reserved", "x")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.into_service_error()
            .is_invalid_parameter_value_exception()
    );

    c.delete_backup_plan()
        .backup_plan_id(created.backup_plan_id().unwrap())
        .send()
        .await
        .unwrap();
    let err = c.list_tags().resource_arn(&arn).send().await.unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
}

#[tokio::test]
async fn list_backup_plans_pages_through_every_plan_once() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    vault(&c, "v1").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(simple_plan(&c, &format!("plan-{i}"), "v1").await);
    }
    c.delete_backup_plan()
        .backup_plan_id(&ids[2])
        .send()
        .await
        .unwrap();
    for (include_deleted, expected) in [(false, 4), (true, 5)] {
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let page = c
                .list_backup_plans()
                .include_deleted(include_deleted)
                .max_results(2)
                .set_next_token(token)
                .send()
                .await
                .unwrap();
            assert!(page.backup_plans_list().len() <= 2);
            seen.extend(
                page.backup_plans_list()
                    .iter()
                    .map(|p| p.backup_plan_id().unwrap().to_string()),
            );
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), expected, "include_deleted={include_deleted}");
        assert_eq!(seen.contains(&ids[2]), include_deleted);
    }
}

#[tokio::test]
async fn plans_versions_and_selections_survive_a_crash() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    vault(&c, "v1").await;
    let id = simple_plan(&c, "durable", "v1").await;
    let mut second = rule("daily", "v1");
    second.start_window_minutes = Some(60);
    let v2 = c
        .update_backup_plan()
        .backup_plan_id(&id)
        .backup_plan(plan("durable", vec![second]))
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_string();
    let selection = aws_sdk_backup::types::BackupSelection::builder()
        .selection_name("all")
        .iam_role_arn("arn:aws:iam::111122223333:role/backup")
        .resources("*")
        .build()
        .unwrap();
    let selection_id = c
        .create_backup_selection()
        .backup_plan_id(&id)
        .backup_selection(selection.clone())
        .send()
        .await
        .unwrap()
        .selection_id()
        .unwrap()
        .to_string();
    server.kill().await;

    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    let got = c
        .get_backup_plan()
        .backup_plan_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(got.version_id(), Some(v2.as_str()));
    assert_eq!(
        got.backup_plan().unwrap().rules()[0].start_window_minutes(),
        Some(60)
    );
    let versions = c
        .list_backup_plan_versions()
        .backup_plan_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(versions.backup_plan_versions_list().len(), 2);
    let got = c
        .get_backup_selection()
        .backup_plan_id(&id)
        .selection_id(&selection_id)
        .send()
        .await
        .unwrap();
    assert_eq!(got.backup_selection(), Some(&selection));
}

#[tokio::test]
async fn accounts_never_see_each_others_plans() {
    let server = Server::start(&["--dev"]).await;
    let a = server.client_as("222233334444", "x", "us-east-1");
    let b = server.client_as("333344445555", "x", "us-east-1");
    vault(&a, "v1").await;
    vault(&b, "v1").await;
    let id = simple_plan(&a, "mine", "v1").await;
    let err = b
        .get_backup_plan()
        .backup_plan_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
    assert!(
        b.list_backup_plans()
            .include_deleted(true)
            .send()
            .await
            .unwrap()
            .backup_plans_list()
            .is_empty()
    );
    let err = b
        .delete_backup_plan()
        .backup_plan_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
    // The same document in another account is no duplicate.
    simple_plan(&b, "mine", "v1").await;
}
