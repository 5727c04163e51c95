//! Region settings (service opt-in, full management) and global settings: defaults, merging
//! updates, refusals, and isolation between accounts and regions.

use aws_sdk_backup::error::ProvideErrorMetadata;

use crate::harness::*;

#[tokio::test]
async fn region_settings_defaults_then_merged_updates() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();

    let d = c.describe_region_settings().send().await.unwrap();
    let opt_in = d.resource_type_opt_in_preference().unwrap();
    assert_eq!(opt_in.len(), 17, "{opt_in:?}");
    assert!(opt_in["EBS"]);
    assert!(opt_in["EFS"]);
    assert!(opt_in["Storage Gateway"]);
    assert!(!opt_in["S3"]);
    assert!(!opt_in["SAP HANA on Amazon EC2"]);
    let management = d.resource_type_management_preference().unwrap();
    assert_eq!(management.len(), 2);
    assert!(management["DynamoDB"]);
    assert!(management["EFS"]);

    c.update_region_settings()
        .resource_type_opt_in_preference("S3", true)
        .resource_type_opt_in_preference("Storage Gateway", false)
        .send()
        .await
        .unwrap();
    c.update_region_settings()
        .resource_type_opt_in_preference("EBS", false)
        .resource_type_management_preference("DynamoDB", false)
        .send()
        .await
        .unwrap();
    let d = c.describe_region_settings().send().await.unwrap();
    let opt_in = d.resource_type_opt_in_preference().unwrap();
    assert_eq!(opt_in.len(), 17);
    // Both updates are kept: an update merges the keys it names.
    assert!(opt_in["S3"]);
    assert!(!opt_in["Storage Gateway"]);
    assert!(!opt_in["EBS"]);
    assert!(opt_in["EC2"]);
    let management = d.resource_type_management_preference().unwrap();
    assert!(!management["DynamoDB"]);
    assert!(management["EFS"]);
}

#[tokio::test]
async fn region_settings_refuse_unknown_resource_types() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    let err = c
        .update_region_settings()
        .resource_type_opt_in_preference("S3", true)
        .resource_type_opt_in_preference("Floppy", true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValueException"));
    let m = err.message().unwrap();
    assert!(m.contains("'Floppy'") && m.contains("'DynamoDB'"), "{m}");
    let err = c
        .update_region_settings()
        .resource_type_management_preference("EBS", true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValueException"));
    assert!(err.message().unwrap().contains("'EFS'"));
    let err = c.update_region_settings().send().await.unwrap_err();
    assert_eq!(err.code(), Some("MissingParameterValueException"));
    // The refused update changed nothing (S3 was in it too).
    let d = c.describe_region_settings().send().await.unwrap();
    assert!(!d.resource_type_opt_in_preference().unwrap()["S3"]);
}

#[tokio::test]
async fn global_settings_defaults_update_and_last_update_time() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();

    let d = c.describe_global_settings().send().await.unwrap();
    let g = d.global_settings().unwrap();
    assert_eq!(g.len(), 3, "{g:?}");
    assert_eq!(g["isCrossAccountBackupEnabled"], "false");
    assert_eq!(g["isMpaEnabled"], "false");
    assert_eq!(g["isDelegatedAdministratorEnabled"], "false");
    assert!(d.last_update_time().is_none());

    c.update_global_settings()
        .global_settings("isCrossAccountBackupEnabled", "true")
        .send()
        .await
        .unwrap();
    let d = c.describe_global_settings().send().await.unwrap();
    let g = d.global_settings().unwrap();
    assert_eq!(g["isCrossAccountBackupEnabled"], "true");
    assert_eq!(g["isMpaEnabled"], "false");
    let updated = d.last_update_time().unwrap().secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - updated).abs() < 60, "{updated} vs {now}");

    for (k, v, says) in [
        (
            "isCrossAccountBackupEnabled",
            "yes",
            "\"true\" or \"false\"",
        ),
        ("isTimeTravelEnabled", "true", "isCrossAccountBackupEnabled"),
    ] {
        let err = c
            .update_global_settings()
            .global_settings(k, v)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidParameterValueException"));
        assert!(err.message().unwrap().contains(says), "{:?}", err.message());
    }
    let err = c.update_global_settings().send().await.unwrap_err();
    assert_eq!(err.code(), Some("MissingParameterValueException"));
    let d = c.describe_global_settings().send().await.unwrap();
    assert_eq!(
        d.global_settings().unwrap()["isCrossAccountBackupEnabled"],
        "true"
    );
}

#[tokio::test]
async fn settings_belong_to_one_account_and_region() {
    let server = Server::start(&["--dev"]).await;
    let a = server.client_as("111111111111", "dev", "us-east-1");
    let a_west = server.client_as("111111111111", "dev", "eu-west-1");
    let b = server.client_as("222222222222", "dev", "us-east-1");

    a.update_region_settings()
        .resource_type_opt_in_preference("S3", true)
        .send()
        .await
        .unwrap();
    a.update_global_settings()
        .global_settings("isCrossAccountBackupEnabled", "true")
        .send()
        .await
        .unwrap();

    let opt_in =
        |d: &aws_sdk_backup::operation::describe_region_settings::DescribeRegionSettingsOutput| {
            d.resource_type_opt_in_preference().unwrap()["S3"]
        };
    assert!(opt_in(&a.describe_region_settings().send().await.unwrap()));
    // Region settings are per region; global settings span the account's regions.
    assert!(!opt_in(
        &a_west.describe_region_settings().send().await.unwrap()
    ));
    assert_eq!(
        a_west
            .describe_global_settings()
            .send()
            .await
            .unwrap()
            .global_settings()
            .unwrap()["isCrossAccountBackupEnabled"],
        "true"
    );
    // Another account sees only defaults.
    assert!(!opt_in(&b.describe_region_settings().send().await.unwrap()));
    let g = b.describe_global_settings().send().await.unwrap();
    assert_eq!(
        g.global_settings().unwrap()["isCrossAccountBackupEnabled"],
        "false"
    );
    assert!(g.last_update_time().is_none());
}
