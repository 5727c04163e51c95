//! Backup selections end to end: stored and returned exactly (Terraform's empty `Conditions`
//! and lists included), idempotent creation, listing, validation, and the rule that a plan with
//! selections cannot be deleted.

use aws_sdk_backup::error::ProvideErrorMetadata;
use aws_sdk_backup::types::{
    BackupSelection, Condition, ConditionParameter, ConditionType, Conditions,
};

use crate::harness::*;
use crate::plans::{simple_plan, vault};

const ROLE: &str = "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole";

fn param(key: &str, value: &str) -> ConditionParameter {
    ConditionParameter::builder()
        .condition_key(key)
        .condition_value(value)
        .build()
}

#[tokio::test]
async fn selections_are_stored_and_returned_exactly() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    vault(&c, "v1").await;
    let plan_id = simple_plan(&c, "p", "v1").await;

    // As Terraform sends it: empty Conditions and empty lists, explicitly.
    let terraform_style = BackupSelection::builder()
        .selection_name("tf-selection")
        .iam_role_arn(ROLE)
        .resources("arn:aws:ec2:*:*:volume/*")
        .resources("arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-1")
        .set_not_resources(Some(vec![]))
        .set_list_of_tags(Some(vec![]))
        .conditions(Conditions::builder().build())
        .build()
        .unwrap();
    let full = BackupSelection::builder()
        .selection_name("by-tags")
        .iam_role_arn(ROLE)
        .resources("*")
        .not_resources("arn:aws:ec2:us-east-1:111122223333:volume/vol-0scratch")
        .list_of_tags(
            Condition::builder()
                .condition_type(ConditionType::Stringequals)
                .condition_key("backup")
                .condition_value("daily")
                .build()
                .unwrap(),
        )
        .conditions(
            Conditions::builder()
                .string_equals(param("aws:ResourceTag/env", "prod"))
                .string_not_equals(param("aws:ResourceTag/tier", "scratch"))
                .string_like(param("aws:ResourceTag/team", "web-*"))
                .string_not_like(param("aws:ResourceTag/name", "*tmp*"))
                .build(),
        )
        .build()
        .unwrap();

    let mut ids = Vec::new();
    for selection in [&terraform_style, &full] {
        let created = c
            .create_backup_selection()
            .backup_plan_id(&plan_id)
            .backup_selection(selection.clone())
            .creator_request_id(selection.selection_name())
            .send()
            .await
            .unwrap();
        assert_eq!(created.backup_plan_id(), Some(plan_id.as_str()));
        let id = created.selection_id().unwrap().to_string();
        let got = c
            .get_backup_selection()
            .backup_plan_id(&plan_id)
            .selection_id(&id)
            .send()
            .await
            .unwrap();
        assert_eq!(got.backup_selection(), Some(selection));
        assert_eq!(got.selection_id(), Some(id.as_str()));
        assert_eq!(got.creator_request_id(), Some(selection.selection_name()));
        assert_eq!(
            got.creation_date().unwrap().secs(),
            created.creation_date().unwrap().secs()
        );
        ids.push(id);
    }

    // A retried create (same CreatorRequestId) returns the selection already made.
    let retry = c
        .create_backup_selection()
        .backup_plan_id(&plan_id)
        .backup_selection(full.clone())
        .creator_request_id("by-tags")
        .send()
        .await
        .unwrap();
    assert_eq!(retry.selection_id(), Some(ids[1].as_str()));

    let list = c
        .list_backup_selections()
        .backup_plan_id(&plan_id)
        .send()
        .await
        .unwrap();
    let mut listed: Vec<_> = list
        .backup_selections_list()
        .iter()
        .map(|s| {
            assert_eq!(s.iam_role_arn(), Some(ROLE));
            assert_eq!(s.backup_plan_id(), Some(plan_id.as_str()));
            (
                s.selection_id().unwrap().to_string(),
                s.selection_name().unwrap().to_string(),
            )
        })
        .collect();
    listed.sort();
    let mut expected = vec![
        (ids[0].clone(), "tf-selection".to_string()),
        (ids[1].clone(), "by-tags".to_string()),
    ];
    expected.sort();
    assert_eq!(listed, expected);
    let page = c
        .list_backup_selections()
        .backup_plan_id(&plan_id)
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(page.backup_selections_list().len(), 1);
    let rest = c
        .list_backup_selections()
        .backup_plan_id(&plan_id)
        .next_token(page.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.backup_selections_list().len(), 1);
    assert!(rest.next_token().is_none());

    // A plan with selections cannot be deleted.
    let err = c
        .delete_backup_plan()
        .backup_plan_id(&plan_id)
        .send()
        .await
        .unwrap_err();
    let err = err.into_service_error();
    assert!(err.is_invalid_request_exception(), "{err:?}");
    assert_eq!(
        err.message(),
        Some("Related backup plan selections must be deleted prior to backup plan deletion.")
    );

    for id in &ids {
        c.delete_backup_selection()
            .backup_plan_id(&plan_id)
            .selection_id(id)
            .send()
            .await
            .unwrap();
    }
    let err = c
        .get_backup_selection()
        .backup_plan_id(&plan_id)
        .selection_id(&ids[0])
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
    let err = c
        .delete_backup_selection()
        .backup_plan_id(&plan_id)
        .selection_id(&ids[0])
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
    c.delete_backup_plan()
        .backup_plan_id(&plan_id)
        .send()
        .await
        .unwrap();

    // Selections need a plan that exists and is not deleted.
    let err = c
        .create_backup_selection()
        .backup_plan_id(&plan_id)
        .backup_selection(full.clone())
        .send()
        .await
        .unwrap_err();
    let err = err.into_service_error();
    assert!(err.is_invalid_parameter_value_exception(), "{err:?}");
    assert!(err.message().unwrap().contains("BackupPlanId"));
    let err = c
        .list_backup_selections()
        .backup_plan_id("00000000-0000-4000-8000-000000000000")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
}

#[tokio::test]
async fn invalid_selections_are_refused() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    vault(&c, "v1").await;
    let plan_id = simple_plan(&c, "p", "v1").await;
    let base = || {
        BackupSelection::builder()
            .selection_name("s")
            .iam_role_arn(ROLE)
            .resources("*")
    };
    let cases = vec![
        (
            base()
                .iam_role_arn("arn:aws:s3:::not-a-role")
                .build()
                .unwrap(),
            "IamRoleArn",
        ),
        (
            base().resources("volume-1").build().unwrap(),
            "Resources[1]",
        ),
        (
            base().not_resources("vol-*").build().unwrap(),
            "NotResources[0]",
        ),
        (
            base()
                .conditions(
                    Conditions::builder()
                        .string_like(
                            ConditionParameter::builder()
                                .condition_key("aws:ResourceTag/x")
                                .build(),
                        )
                        .build(),
                )
                .build()
                .unwrap(),
            "Conditions.StringLike[0]",
        ),
        (
            base().selection_name("has spaces").build().unwrap(),
            "SelectionName",
        ),
    ];
    for (selection, expected) in cases {
        let err = c
            .create_backup_selection()
            .backup_plan_id(&plan_id)
            .backup_selection(selection)
            .send()
            .await
            .unwrap_err();
        let err = err.into_service_error();
        assert!(
            err.is_invalid_parameter_value_exception(),
            "{expected}: {err:?}"
        );
        let message = err.message().unwrap_or_default();
        assert!(message.contains(expected), "'{expected}' in '{message}'");
    }
    assert!(
        c.list_backup_selections()
            .backup_plan_id(&plan_id)
            .send()
            .await
            .unwrap()
            .backup_selections_list()
            .is_empty()
    );
}

/// The bodies Terraform's provider sends (Go SDK: no trailing slashes, every rule field and
/// empty values spelled out), read back byte for byte as JSON.
#[tokio::test]
async fn terraform_shaped_requests_read_back_exactly() {
    let server = Server::start(&["--dev"]).await;
    let json = |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap();
    let (status, _, body) = server
        .raw("PUT", "/backup-vaults/tf-vault", &[], b"{}")
        .await;
    assert_eq!(status, 200, "{body}");
    let rule = serde_json::json!({
        "RuleName": "tf_rule",
        "TargetBackupVaultName": "tf-vault",
        "ScheduleExpression": "cron(0 12 * * ? *)",
        "ScheduleExpressionTimezone": "Etc/UTC",
        "StartWindowMinutes": 60,
        "CompletionWindowMinutes": 180,
        "EnableContinuousBackup": false,
        "Lifecycle": {"DeleteAfterDays": 14, "OptInToArchiveForSupportedResources": false},
        "RecoveryPointTags": {},
        "CopyActions": []
    });
    let create = serde_json::json!({
        "BackupPlan": {"BackupPlanName": "tf_plan", "Rules": [rule]},
        "BackupPlanTags": {"Name": "tf_plan"}
    });
    let (status, _, body) = server
        .raw("PUT", "/backup/plans", &[], create.to_string().as_bytes())
        .await;
    assert_eq!(status, 200, "{body}");
    let plan_id = json(&body)["BackupPlanId"].as_str().unwrap().to_string();
    let (status, _, body) = server
        .raw("GET", &format!("/backup/plans/{plan_id}"), &[], b"")
        .await;
    assert_eq!(status, 200, "{body}");
    let mut got = json(&body)["BackupPlan"]["Rules"][0].clone();
    assert!(got["RuleId"].is_string());
    got.as_object_mut().unwrap().remove("RuleId");
    assert_eq!(got, rule);

    let selection = serde_json::json!({
        "SelectionName": "tf_selection",
        "IamRoleArn": "arn:aws:iam::000000000000:role/tf-backup",
        "Resources": ["arn:aws:ec2:*:*:volume/*"],
        "NotResources": [],
        "ListOfTags": [],
        "Conditions": {}
    });
    let (status, _, body) = server
        .raw(
            "PUT",
            &format!("/backup/plans/{plan_id}/selections"),
            &[],
            serde_json::json!({"BackupSelection": selection, "CreatorRequestId": "tf-1"})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let selection_id = json(&body)["SelectionId"].as_str().unwrap().to_string();
    let (status, _, body) = server
        .raw(
            "GET",
            &format!("/backup/plans/{plan_id}/selections/{selection_id}/"),
            &[],
            b"",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["BackupSelection"], selection);

    // Terraform retries DeleteBackupPlan on this wording while selections remain.
    let (status, headers, body) = server
        .raw("DELETE", &format!("/backup/plans/{plan_id}"), &[], b"")
        .await;
    assert_eq!(status, 400);
    assert!(headers.contains("x-amzn-errortype: invalidrequestexception"));
    assert!(body.contains("Related backup plan selections must be deleted prior to backup"));
}
