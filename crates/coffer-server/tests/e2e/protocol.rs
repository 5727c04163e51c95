//! Wire behaviour: error encoding, unimplemented operations, malformed input.

use aws_sdk_backup::error::ProvideErrorMetadata;

use crate::harness::*;

#[tokio::test]
async fn unimplemented_operations_say_so_with_501() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let err = server
        .client()
        .list_restore_access_backup_vaults()
        .backup_vault_name("vault1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NotImplementedException"));
    assert!(
        err.message()
            .unwrap()
            .contains("ListRestoreAccessBackupVaults")
    );
    let raw = err.raw_response().unwrap();
    assert_eq!(raw.status().as_u16(), 501);
    assert!(raw.headers().get("x-amzn-requestid").is_some());
}

#[tokio::test]
async fn malformed_requests_are_400_not_500() {
    let server = Server::start(&["--dev"]).await;
    let (status, headers, body) = server
        .raw("PUT", "/backup-vaults/v1", &[], b"{not json")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        headers.contains("x-amzn-errortype: serializationexception"),
        "{headers}"
    );
    assert!(headers.contains("x-amzn-requestid:"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["__type"], "SerializationException");

    let (status, headers, body) = server
        .raw(
            "PUT",
            "/backup-vaults/v1",
            &[],
            br#"{"BackupVaultTags": 5}"#,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(headers.contains("x-amzn-errortype: invalidparametervalueexception"));
    assert!(body.contains("BackupVaultTags"), "{body}");

    let (status, _, body) = server
        .raw("GET", "/backup-vaults/?maxResults=lots", &[], b"")
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("MaxResults"), "{body}");

    let (status, headers, _) = server.raw("GET", "/definitely/not/an/api", &[], b"").await;
    assert_eq!(status, 404);
    assert!(headers.contains("x-amzn-errortype: unknownoperationexception"));
}

#[tokio::test]
async fn typed_errors_reach_the_sdk() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();

    let err = c
        .create_backup_vault()
        .backup_vault_name("no spaces")
        .send()
        .await
        .unwrap_err();
    let se = err.as_service_error().unwrap();
    assert!(se.is_invalid_parameter_value_exception(), "{se:?}");
    assert!(se.message().unwrap().contains("BackupVaultName"));

    c.create_backup_vault()
        .backup_vault_name("twice")
        .send()
        .await
        .unwrap();
    let err = c
        .create_backup_vault()
        .backup_vault_name("twice")
        .send()
        .await
        .unwrap_err();
    let se = err.as_service_error().unwrap();
    assert!(se.is_already_exists_exception(), "{se:?}");

    let err = c
        .describe_backup_vault()
        .backup_vault_name("absent")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );

    let err = c
        .list_backup_vaults()
        .next_token("garbage-token")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_invalid_parameter_value_exception()
    );

    let err = c
        .list_backup_vaults()
        .by_vault_type("NOT_A_TYPE".into())
        .send()
        .await
        .unwrap_err();
    let se = err.as_service_error().unwrap();
    assert!(se.is_invalid_parameter_value_exception(), "{se:?}");
}
