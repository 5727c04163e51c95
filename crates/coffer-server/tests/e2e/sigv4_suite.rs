//! The SigV4 negative suite: every tampering a client or an attacker can do to a signed
//! request is refused with 403 and the error code AWS gives, and the request has no effect.
//! Requests are signed by aws-sdk-rust's signer (`aws-sigv4`) and tampered with afterwards;
//! each case has an untampered twin that succeeds, so a refusal is the tampering's doing.

use std::time::{Duration, SystemTime};

use crate::harness::*;
use crate::signer::{ToSign, hand_sign};

const INVALID: &str = "InvalidSignatureException";
const INCOMPLETE: &str = "IncompleteSignatureException";
const UNRECOGNIZED: &str = "UnrecognizedClientException";

/// Creating a vault is the probe: refused means the vault does not exist afterwards.
fn create(name: &str) -> ToSign {
    ToSign::new("PUT", &format!("/backup-vaults/{name}")).body(b"{}")
}

async fn vault_exists(server: &Server, name: &str) -> bool {
    server
        .client()
        .describe_backup_vault()
        .backup_vault_name(name)
        .send()
        .await
        .is_ok()
}

/// Sends `signed` and checks the refusal: 403, `code` in header and body, no vault `name`.
async fn refused(
    server: &Server,
    signed: &crate::signer::Signed,
    name: &str,
    code: &str,
) -> String {
    let a = signed.send(server).await;
    assert_eq!(a.status, 403, "{name}: {a:?}");
    assert_eq!(a.code().as_deref(), Some(code), "{name}: {a:?}");
    assert!(
        !a.message().is_empty(),
        "{name}: an error says what is wrong"
    );
    assert!(!vault_exists(server, name).await, "{name} was created");
    a.message()
}

#[tokio::test]
async fn tampered_requests_are_refused_and_have_no_effect() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;

    // The untampered request works.
    let good = create("control").sign(&server);
    let a = good.send(&server).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(vault_exists(&server, "control").await);

    // One byte of the signature.
    let mut s = create("sigbyte").sign(&server);
    s.flip_signature_char();
    refused(&server, &s, "sigbyte", INVALID).await;

    // The body, with and without a declared payload hash.
    let mut s = create("body1").sign(&server);
    s.body = br#"{"BackupVaultTags":{"x":"y"}}"#.to_vec();
    refused(&server, &s, "body1", INVALID).await;
    let mut t = create("body2");
    t.content_sha256 = true;
    let mut s = t.sign(&server);
    s.body = br#"{"BackupVaultTags":{"x":"y"}}"#.to_vec();
    let m = refused(&server, &s, "body2", INVALID).await;
    assert!(m.contains("x-amz-content-sha256"), "{m}");

    // The path: signed for one vault, sent for another.
    let mut s = create("pathsigned").sign(&server);
    s.target = "/backup-vaults/pathsent".into();
    refused(&server, &s, "pathsent", INVALID).await;
    assert!(!vault_exists(&server, "pathsigned").await);

    // The query: a parameter added after signing.
    let mut s = create("query").sign(&server);
    s.target.push_str("?x=1");
    refused(&server, &s, "query", INVALID).await;

    // The method: a GET of the control vault, sent as a DELETE.
    let mut s = ToSign::new("GET", "/backup-vaults/control").sign(&server);
    s.method = "DELETE".into();
    let a = s.send(&server).await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (403, Some(INVALID)),
        "{a:?}"
    );
    assert!(vault_exists(&server, "control").await, "the DELETE ran");

    // A signed header changed.
    let mut s = create("header").sign(&server);
    *s.header("content-type") = "application/x-amz-json-1.1".into();
    refused(&server, &s, "header", INVALID).await;
    // A signed header removed.
    let mut s = create("header2").sign(&server);
    s.headers.retain(|(k, _)| k != "content-type");
    refused(&server, &s, "header2", INVALID).await;

    // Unknown key, wrong secret.
    let mut t = create("unknownkey");
    t.akid = "AKIDUNKNOWN000000000".into();
    refused(&server, &t.sign(&server), "unknownkey", UNRECOGNIZED).await;
    let mut t = create("wrongsecret");
    t.secret = "not-the-secret".into();
    refused(&server, &t.sign(&server), "wrongsecret", INVALID).await;

    // Clock skew both ways, just outside 15 minutes; just inside works.
    let mut t = create("past");
    t.time = SystemTime::now() - Duration::from_secs(16 * 60);
    let m = refused(&server, &t.sign(&server), "past", INVALID).await;
    assert!(m.contains("expired"), "{m}");
    let mut t = create("future");
    t.time = SystemTime::now() + Duration::from_secs(16 * 60);
    let m = refused(&server, &t.sign(&server), "future", INVALID).await;
    assert!(m.contains("not yet current"), "{m}");
    let mut t = create("nearfuture");
    t.time = SystemTime::now() + Duration::from_secs(10 * 60);
    assert_eq!(t.sign(&server).send(&server).await.status, 200);

    // The credential scope: another service, an unknown region, another date. A request
    // signed for `s3` is the access points' S3 endpoint's (docs/access-points.md): it never
    // reaches the Backup API, and the S3 endpoint refuses it.
    let mut t = create("services3");
    t.service = "s3".into();
    let signed = t.sign(&server);
    let headers: Vec<(&str, &str)> = signed
        .headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, _, body) = server
        .raw(&signed.method, &signed.target, &headers, &signed.body)
        .await;
    assert!((400..500).contains(&status), "{status}: {body}");
    assert!(body.contains("<Error><Code>"), "an S3 error: {body}");
    assert!(
        !vault_exists(&server, "services3").await,
        "services3 was created"
    );
    let mut t = create("fakeregion");
    t.region = "zz-fake-9".into();
    let m = refused(&server, &t.sign(&server), "fakeregion", INVALID).await;
    assert!(m.contains("valid region, not 'zz-fake-9'"), "{m}");
    let fake = server.client_as(AKID, SECRET, "zz-fake-9");
    assert!(
        fake.list_backup_vaults().send().await.is_err(),
        "the SDK in a fake region is refused too"
    );
    let mut s = create("scopedate").sign(&server);
    let auth = s.header("authorization");
    let today = auth.split('/').nth(1).unwrap().to_string();
    *auth = auth.replacen(&format!("/{today}/"), "/20200101/", 1);
    refused(&server, &s, "scopedate", INVALID).await;

    // SignedHeaders without host (a correct signature over what it names).
    let headers = hand_sign(
        &server,
        "GET",
        "/backup-vaults/",
        &["x-amz-date"],
        SystemTime::now(),
    );
    let s = crate::signer::Signed {
        method: "GET".into(),
        target: "/backup-vaults/".into(),
        headers,
        body: Vec::new(),
    };
    let a = s.send(&server).await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (403, Some(INVALID)),
        "{a:?}"
    );
    assert!(a.message().contains("'Host'"), "{a:?}");
    // ...while the same hand signer with host is accepted: the refusal is about host alone.
    let mut ok = s.clone();
    ok.headers = hand_sign(
        &server,
        "GET",
        "/backup-vaults/",
        &["host", "x-amz-date"],
        SystemTime::now(),
    );
    assert_eq!(ok.send(&server).await.status, 200);

    // UNSIGNED-PAYLOAD: the body could be swapped after signing, so it is refused outright.
    let mut t = create("unsigned");
    t.content_sha256 = true;
    t.unsigned = true;
    let s = t.sign(&server);
    assert_eq!(
        s.headers
            .iter()
            .find(|(k, _)| k == "x-amz-content-sha256")
            .map(|(_, v)| v.as_str()),
        Some("UNSIGNED-PAYLOAD")
    );
    let m = refused(&server, &s, "unsigned", INVALID).await;
    assert!(m.contains("UNSIGNED-PAYLOAD"), "{m}");

    // Two Authorization headers (even two good ones).
    let mut s = create("twoauth").sign(&server);
    let auth = s.header("authorization").clone();
    s.headers.push(("authorization".into(), auth));
    refused(&server, &s, "twoauth", INCOMPLETE).await;

    // Session tokens: Coffer issues none, so none is valid.
    let mut t = create("session");
    t.session_token = Some("FQoGZXIvYXdzEBogus".into());
    let s = t.sign(&server);
    assert!(s.headers.iter().any(|(k, _)| k == "x-amz-security-token"));
    refused(&server, &s, "session", UNRECOGNIZED).await;

    // Header and presigned query at once.
    let mut s = create("both").sign(&server);
    let p = ToSign {
        presign: Some(Duration::from_secs(60)),
        ..create("both")
    }
    .sign(&server);
    s.target = p.target;
    refused(&server, &s, "both", INCOMPLETE).await;
}

#[tokio::test]
async fn presigned_urls_expire_and_cannot_be_dated_ahead() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let list = |expires: u64, at: SystemTime| ToSign {
        presign: Some(Duration::from_secs(expires)),
        time: at,
        ..ToSign::new("GET", "/backup-vaults/")
    };

    // A good presigned URL works, with its query alone.
    let s = list(300, SystemTime::now()).sign(&server);
    assert!(s.target.contains("X-Amz-Signature="), "{}", s.target);
    assert!(!s.headers.iter().any(|(k, _)| k == "authorization"));
    let a = s.send(&server).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.body["BackupVaultList"].is_array(), "{a:?}");

    // Expired.
    let s = list(60, SystemTime::now() - Duration::from_secs(120)).sign(&server);
    let a = s.send(&server).await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (403, Some(INVALID)),
        "{a:?}"
    );
    assert!(a.message().contains("expired"), "{a:?}");

    // Dated a year ahead with X-Amz-Expires=1: not yet valid (it would otherwise stay usable
    // for a year).
    let s = list(1, SystemTime::now() + Duration::from_secs(365 * 86400)).sign(&server);
    let a = s.send(&server).await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (403, Some(INVALID)),
        "{a:?}"
    );
    assert!(a.message().contains("not yet current"), "{a:?}");

    // More than 7 days of validity.
    let s = list(604_801, SystemTime::now()).sign(&server);
    let a = s.send(&server).await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (403, Some(INCOMPLETE)),
        "{a:?}"
    );
    assert!(a.message().contains("604800"), "{a:?}");
    // Exactly 7 days is allowed.
    let s = list(604_800, SystemTime::now()).sign(&server);
    assert_eq!(s.send(&server).await.status, 200);

    // A presigned URL with its query tampered with.
    let mut s = list(300, SystemTime::now()).sign(&server);
    s.target = s
        .target
        .replacen("/backup-vaults/?", "/backup-vaults/?maxResults=1&", 1);
    let a = s.send(&server).await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (403, Some(INVALID)),
        "{a:?}"
    );

    // A presigned URL carrying a session token.
    let s = ToSign {
        session_token: Some("FQoGZXIvYXdzEBogus".into()),
        ..list(300, SystemTime::now())
    }
    .sign(&server);
    assert!(s.target.contains("X-Amz-Security-Token="), "{}", s.target);
    let a = s.send(&server).await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (403, Some(UNRECOGNIZED)),
        "{a:?}"
    );
}

/// Configured regions are accepted besides AWS's own; others still are not.
#[tokio::test]
async fn configured_regions_are_accepted() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let server = Server::start(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--access-key-id",
        AKID,
        "--secret-access-key",
        SECRET,
        "--account-id",
        ACCOUNT,
        "--region",
        "lab-west-1",
    ])
    .await;
    let lab = server.client_as(AKID, SECRET, "lab-west-1");
    let out = lab
        .create_backup_vault()
        .backup_vault_name("in-the-lab")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.backup_vault_arn(),
        Some("arn:aws:backup:lab-west-1:111122223333:backup-vault:in-the-lab")
    );
    let other = server.client_as(AKID, SECRET, "lab-east-1");
    let err = other.list_backup_vaults().send().await.unwrap_err();
    use aws_sdk_backup::error::ProvideErrorMetadata;
    assert_eq!(err.code(), Some(INVALID));
}
