//! STS `GetCallerIdentity` on Coffer's endpoint, driven by the official `aws-sdk-sts` client:
//! the caller's account and identity, SigV4 checked like every call, other actions refused,
//! and a request signed for one service never answered by the other.

use aws_sdk_backup::config::retry::RetryConfig;
use aws_sdk_backup::config::{BehaviorVersion, Credentials, Region};

use crate::harness::{ACCOUNT, AKID, SECRET, Server, temp_dir};
use crate::signer::ToSign;

fn sts_client(server: &Server, secret: &str) -> aws_sdk_sts::Client {
    let conf = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&server.endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(AKID, secret, None, None, "coffer-tests"))
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_sts::Client::from_conf(conf)
}

#[tokio::test]
async fn get_caller_identity_names_the_account_of_the_signing_key() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let who = sts_client(&server, SECRET)
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");
    assert_eq!(who.account(), Some(ACCOUNT));
    assert_eq!(
        who.arn(),
        Some(format!("arn:aws:iam::{ACCOUNT}:root").as_str())
    );
    assert_eq!(who.user_id(), Some(ACCOUNT));

    // A wrong secret is refused with STS's own error code, parsed by the SDK from the XML.
    let err = sts_client(&server, "not-the-secret")
        .get_caller_identity()
        .send()
        .await
        .expect_err("a wrong secret must be refused");
    let code = err.into_service_error().meta().code().map(str::to_string);
    assert_eq!(code.as_deref(), Some("SignatureDoesNotMatch"));
}

#[tokio::test]
async fn other_sts_actions_are_refused_and_services_never_cross() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;

    // Signed for STS, asking for an action Coffer does not answer.
    let mut req = ToSign::new("POST", "/");
    req.service = "sts".into();
    req.body =
        b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fx".to_vec();
    req.headers.push((
        "content-type".into(),
        "application/x-www-form-urlencoded".into(),
    ));
    let signed = req.sign(&server);
    let headers: Vec<(&str, &str)> = signed
        .headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, head, body) = server
        .raw("POST", &signed.target, &headers, &signed.body)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(head.contains("content-type: text/xml"), "{head}");
    assert!(body.contains("<Code>InvalidAction</Code>"), "{body}");
    assert!(body.contains("GetCallerIdentity"), "{body}");

    // Signed for STS but aimed at a Backup path: STS answers (no Action), the vault is never
    // created.
    let mut req = ToSign::new("PUT", "/backup-vaults/sts-scoped");
    req.service = "sts".into();
    let signed = req.sign(&server);
    let headers: Vec<(&str, &str)> = signed
        .headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, _, body) = server
        .raw("PUT", &signed.target, &headers, &signed.body)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>MissingAction</Code>"), "{body}");
    let vaults = server.client().list_backup_vaults().send().await.unwrap();
    assert!(vaults.backup_vault_list().is_empty(), "{vaults:?}");

    // Signed for Backup, shaped like an STS call: Backup has no such route.
    let answer = ToSign::new("POST", "/")
        .body(b"Action=GetCallerIdentity&Version=2011-06-15")
        .sign(&server)
        .send(&server)
        .await;
    assert_eq!(answer.status, 404, "{answer:?}");

    // Unsigned STS calls are refused like any unsigned call, in STS's shape.
    let (status, _, body) = server
        .raw(
            "POST",
            "/",
            &[("content-type", "application/x-www-form-urlencoded")],
            b"Action=GetCallerIdentity&Version=2011-06-15",
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("<Code>MissingAuthenticationToken</Code>"),
        "{body}"
    );
}

#[tokio::test]
async fn with_authentication_off_the_default_account_answers() {
    let server = Server::start(&["--dev"]).await;
    let (status, _, body) = server
        .raw(
            "POST",
            "/",
            &[("content-type", "application/x-www-form-urlencoded")],
            b"Action=GetCallerIdentity&Version=2011-06-15",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<Account>000000000000</Account>"), "{body}");
}
