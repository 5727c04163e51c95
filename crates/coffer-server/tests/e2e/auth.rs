//! SigV4 and accounts: good, wrong secret, unknown key, stale date, isolation, generated keys.

use std::time::{Duration, SystemTime};

use aws_sdk_backup::error::ProvideErrorMetadata;

use crate::harness::*;

#[tokio::test]
async fn signed_requests_succeed_and_bad_ones_get_403_with_the_right_code() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;

    let out = server
        .client()
        .create_backup_vault()
        .backup_vault_name("signed")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.backup_vault_arn(),
        Some("arn:aws:backup:us-east-1:111122223333:backup-vault:signed")
    );

    let wrong = server.client_as(AKID, "not-the-secret", "us-east-1");
    let err = wrong.list_backup_vaults().send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidSignatureException"));
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 403);

    let unknown = server.client_as("AKIDUNKNOWN000000000", SECRET, "us-east-1");
    let err = unknown.list_backup_vaults().send().await.unwrap_err();
    assert_eq!(err.code(), Some("UnrecognizedClientException"));
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 403);

    let stale = server.client_with_clock(SystemTime::now() - Duration::from_secs(20 * 60));
    let err = stale.list_backup_vaults().send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidSignatureException"));
    assert!(
        err.message().unwrap().contains("clock skew"),
        "{:?}",
        err.message()
    );

    // Within the 15-minute window is fine.
    let skewed = server.client_with_clock(SystemTime::now() - Duration::from_secs(10 * 60));
    skewed.list_backup_vaults().send().await.unwrap();

    // No signature at all.
    let (status, headers, body) = server.raw("GET", "/backup-vaults/", &[], b"").await;
    assert_eq!(status, 403);
    assert!(headers.contains("x-amzn-errortype: missingauthenticationtokenexception"));
    assert!(body.contains("Missing Authentication Token"));
}

#[tokio::test]
async fn accounts_and_regions_never_see_each_other() {
    let dir = temp_dir();
    let config = dir.path().join("coffer.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[credentials]]
access_key_id = "{AKID}"
secret_access_key = "{SECRET}"
account_id = "{ACCOUNT}"

[[credentials]]
access_key_id = "AKIDOTHERACCOUNT0001"
secret_access_key = "other-secret"
account_id = "444455556666"
"#
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ])
    .await;
    let a = server.client();
    let b = server.client_as("AKIDOTHERACCOUNT0001", "other-secret", "us-east-1");
    let a_west = server.client_as(AKID, SECRET, "eu-west-1");

    a.create_backup_vault()
        .backup_vault_name("payroll")
        .send()
        .await
        .unwrap();

    assert!(
        b.list_backup_vaults()
            .send()
            .await
            .unwrap()
            .backup_vault_list()
            .is_empty()
    );
    let err = b
        .describe_backup_vault()
        .backup_vault_name("payroll")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );
    let err = b
        .delete_backup_vault()
        .backup_vault_name("payroll")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );
    assert!(
        a_west
            .list_backup_vaults()
            .send()
            .await
            .unwrap()
            .backup_vault_list()
            .is_empty()
    );

    // The same name is free in the other account, with that account's ARN.
    let out = b
        .create_backup_vault()
        .backup_vault_name("payroll")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.backup_vault_arn(),
        Some("arn:aws:backup:us-east-1:444455556666:backup-vault:payroll")
    );
    let out = a_west
        .create_backup_vault()
        .backup_vault_name("payroll")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.backup_vault_arn(),
        Some("arn:aws:backup:eu-west-1:111122223333:backup-vault:payroll")
    );
    let mine = a
        .describe_backup_vault()
        .backup_vault_name("payroll")
        .send()
        .await
        .unwrap();
    assert_eq!(
        mine.backup_vault_arn(),
        Some("arn:aws:backup:us-east-1:111122223333:backup-vault:payroll")
    );
}

#[tokio::test]
async fn without_credentials_serve_generates_one_and_keeps_it() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let server = Server::start(&["--data-dir", data.to_str().unwrap()]).await;
    let find = |banner: &str, var: &str| {
        banner
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(&format!("export {var}="))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| panic!("{var} not printed in:\n{banner}"))
    };
    let akid = find(&server.banner, "AWS_ACCESS_KEY_ID");
    let secret = find(&server.banner, "AWS_SECRET_ACCESS_KEY");
    let client = server.client_as(&akid, &secret, "us-east-1");
    client
        .create_backup_vault()
        .backup_vault_name("generated")
        .send()
        .await
        .unwrap();

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("credentials.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "credentials must be owner-only");

    server.kill().await;
    let server = Server::start(&["--data-dir", data.to_str().unwrap()]).await;
    assert_eq!(find(&server.banner, "AWS_ACCESS_KEY_ID"), akid);
    let client = server.client_as(&akid, &secret, "us-east-1");
    let out = client
        .describe_backup_vault()
        .backup_vault_name("generated")
        .send()
        .await
        .unwrap();
    assert_eq!(out.backup_vault_name(), Some("generated"));
}

#[tokio::test]
async fn dev_mode_takes_the_account_from_a_numeric_key_and_resets() {
    let server = Server::start(&["--dev"]).await;
    let numeric = server.client_as("222233334444", "anything", "ap-southeast-2");
    let out = numeric
        .create_backup_vault()
        .backup_vault_name("dev-vault")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.backup_vault_arn(),
        Some("arn:aws:backup:ap-southeast-2:222233334444:backup-vault:dev-vault")
    );
    let plain = server.client_as("test", "test", "us-east-1");
    let out = plain
        .create_backup_vault()
        .backup_vault_name("dev-vault")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.backup_vault_arn(),
        Some("arn:aws:backup:us-east-1:000000000000:backup-vault:dev-vault")
    );

    let (status, _, body) = server.raw("POST", "/moto-api/reset", &[], b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        plain
            .list_backup_vaults()
            .send()
            .await
            .unwrap()
            .backup_vault_list()
            .is_empty()
    );
    plain
        .create_backup_vault()
        .backup_vault_name("again")
        .send()
        .await
        .unwrap();
    let (status, _, _) = server.raw("POST", "/_coffer/reset", &[], b"").await;
    assert_eq!(status, 200);
    assert!(
        plain
            .list_backup_vaults()
            .send()
            .await
            .unwrap()
            .backup_vault_list()
            .is_empty()
    );
}

#[tokio::test]
async fn admin_endpoints_are_refused_outside_dev_mode() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let (status, _, _) = server.raw("POST", "/_coffer/reset", &[], b"").await;
    assert_eq!(status, 403);
    let (status, _, body) = server.raw("GET", "/_coffer/health", &[], b"").await;
    assert_eq!(status, 200);
    assert!(body.contains("ok"));
}
