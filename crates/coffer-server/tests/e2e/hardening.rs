//! Regression tests for the hardening findings: empty path labels never reach another
//! operation, odd paths and queries signed by the SDKs verify, non-ASCII paging tokens get an
//! answer, and oversized URIs, headers and bodies get AWS-shaped errors without being buffered.

use aws_sdk_backup::error::ProvideErrorMetadata;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;
use crate::signer::ToSign;

async fn create_vault(server: &Server, name: &str) {
    server
        .client()
        .create_backup_vault()
        .backup_vault_name(name)
        .send()
        .await
        .unwrap();
}

/// A correctly signed request with an empty vault name is that operation's validation error:
/// it neither deletes the vault named `access-policy` nor creates one named `mpaApprovalTeam`.
#[tokio::test]
async fn empty_labels_are_validation_errors_never_another_operation() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    create_vault(&server, "access-policy").await;
    let c = server.client();

    let a = ToSign::new("DELETE", "/backup-vaults//access-policy")
        .sign(&server)
        .send(&server)
        .await;
    assert_eq!(a.status, 400, "{a:?}");
    assert_eq!(a.code().as_deref(), Some("InvalidParameterValueException"));
    assert!(a.message().contains("BackupVaultName"), "{a:?}");
    c.describe_backup_vault()
        .backup_vault_name("access-policy")
        .send()
        .await
        .expect("the vault named access-policy is still there");

    let a = ToSign::new("PUT", "/backup-vaults//mpaApprovalTeam")
        .body(br#"{"MpaApprovalTeamArn":"arn:aws:mpa:us-east-1:111122223333:approval-team/t"}"#)
        .sign(&server)
        .send(&server)
        .await;
    assert_eq!(a.status, 400, "{a:?}");
    assert_eq!(a.code().as_deref(), Some("InvalidParameterValueException"));
    let err = c
        .describe_backup_vault()
        .backup_vault_name("mpaApprovalTeam")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    // An empty job id: DescribeBackupJob's validation error, not a job list.
    let a = ToSign::new("GET", "/backup-jobs//")
        .sign(&server)
        .send(&server)
        .await;
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.message().contains("BackupJobId"), "{a:?}");
    assert!(a.body.get("BackupJobs").is_none(), "{a:?}");

    // `..` as a label: refused, not resolved.
    let a = ToSign::new("DELETE", "/backup-vaults/%2E%2E/access-policy")
        .sign(&server)
        .send(&server)
        .await;
    assert_eq!(a.status, 400, "{a:?}");
    assert_eq!(a.code().as_deref(), Some("InvalidParameterValueException"));
    assert_eq!(
        c.list_backup_vaults()
            .send()
            .await
            .unwrap()
            .backup_vault_list()
            .len(),
        1
    );
}

/// Paths and queries the SDKs sign in normalised form (`//`, `..`, bad percent escapes, spaces,
/// unicode, reserved characters) verify: the answer is the operation's own, never a 403.
#[tokio::test]
async fn odd_paths_and_queries_signed_by_the_sdks_verify() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    create_vault(&server, "v1").await;

    for (method, target, status, code) in [
        // Normalised away by the signer, routed as sent: no such operation.
        (
            "GET",
            "/backup-vaults/x/../v1",
            404,
            Some("UnknownOperationException"),
        ),
        (
            "GET",
            "/backup-vaults/./v1",
            404,
            Some("UnknownOperationException"),
        ),
        (
            "GET",
            "//backup-vaults/v1",
            404,
            Some("UnknownOperationException"),
        ),
        // A bad escape in the query reaches the operation, which refuses the token.
        (
            "GET",
            "/backup-vaults/?nextToken=%zz",
            400,
            Some("InvalidParameterValueException"),
        ),
        ("GET", "/backup-vaults/?maxResults=1", 200, None),
        // Spaces, unicode and reserved characters in a label.
        (
            "GET",
            "/tags/arn%3Aaws%3Abackup%3Aus-east-1%3A111122223333%3Abackup-vault%3Av%20%E2%82%AC%21%2A%27%28%29",
            400,
            Some("ResourceNotFoundException"),
        ),
        ("GET", "/backup-vaults/v1", 200, None),
    ] {
        let a = ToSign::new(method, target)
            .sign(&server)
            .send(&server)
            .await;
        assert_eq!(a.status, status, "{method} {target}: {a:?}");
        if let Some(code) = code {
            assert_eq!(a.code().as_deref(), Some(code), "{method} {target}: {a:?}");
        }
    }

    // The SDK client itself, with a resource ARN full of characters it must encode.
    let err = server
        .client()
        .list_tags()
        .resource_arn("arn:aws:backup:us-east-1:111122223333:backup-vault:a b/€?#[]@!$&'()*+,;=")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"), "{err:?}");
}

/// A NextToken with multi-byte characters is refused with an answer on every list operation
/// (it used to end the connection).
#[tokio::test]
async fn non_ascii_paging_tokens_get_an_answer() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    let crab = "\u{1F980}";
    let errors = [
        c.list_backup_vaults()
            .next_token(crab)
            .send()
            .await
            .unwrap_err()
            .code()
            .map(str::to_string),
        c.list_backup_plans()
            .next_token(crab)
            .send()
            .await
            .unwrap_err()
            .code()
            .map(str::to_string),
        c.list_protected_resources()
            .next_token(crab)
            .send()
            .await
            .unwrap_err()
            .code()
            .map(str::to_string),
        c.list_copy_jobs()
            .next_token(crab)
            .send()
            .await
            .unwrap_err()
            .code()
            .map(str::to_string),
        c.list_backup_jobs()
            .next_token(format!("0{crab}0"))
            .send()
            .await
            .unwrap_err()
            .code()
            .map(str::to_string),
    ];
    for e in errors {
        assert_eq!(e.as_deref(), Some("InvalidParameterValueException"));
    }
    // The raw request of the finding, on one connection.
    let a = ToSign::new("GET", "/backup-vaults/?nextToken=%F0%9F%A6%80")
        .sign(&server)
        .send(&server)
        .await;
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.message().contains("NextToken"), "{a:?}");
}

/// Sends a request head (and `body_bytes` of body, ignoring write errors) on a fresh
/// connection and returns what came back.
async fn send_head(server: &Server, head: &str, body_bytes: usize) -> (u16, String, String) {
    let addr = server.endpoint.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    if body_bytes > 0 {
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = body_bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            if s.write_all(&chunk[..n]).await.is_err() {
                break;
            }
            left -= n;
        }
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_string())
}

fn aws_error(status: u16, head: &str, body: &str, code: &str) {
    assert!(
        head.contains(&format!("x-amzn-errortype: {}", code.to_lowercase())),
        "{status} {head}"
    );
    assert!(head.contains("x-amzn-requestid: "), "{head}");
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["__type"], code);
    assert!(!v["Message"].as_str().unwrap().is_empty());
}

/// A URI past hyper's 65,534-byte limit, and too many headers, get AWS-shaped answers.
#[tokio::test]
async fn oversized_uris_and_headers_get_aws_errors() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let long = "a".repeat(70 * 1024);
    let (status, head, body) = send_head(
        &server,
        &format!("GET /backup-vaults/{long} HTTP/1.1\r\nHost: x\r\n\r\n"),
        0,
    )
    .await;
    assert_eq!(status, 414, "{head}");
    aws_error(status, &head, &body, "RequestURITooLongException");

    let mut many = String::from("GET /backup-vaults/ HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        many.push_str(&format!("x-filler-{i}: {i}\r\n"));
    }
    many.push_str("\r\n");
    let (status, head, body) = send_head(&server, &many, 0).await;
    assert_eq!(status, 431, "{head}");
    aws_error(status, &head, &body, "RequestHeaderFieldsTooLargeException");

    let (status, head, body) = send_head(&server, "GET /\u{1}x HTTP/1.1\r\n\r\n", 0).await;
    assert_eq!(status, 400, "{head}");
    aws_error(status, &head, &body, "BadRequestException");

    // The server still answers.
    server.client().list_backup_vaults().send().await.unwrap();
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Bodies past the cap are refused with 413 before they are buffered, whether announced by
/// Content-Length or streamed; memory does not grow with them.
#[tokio::test]
async fn oversized_bodies_are_refused_before_buffering() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let signed = ToSign::new("PUT", "/backup-vaults/big").sign(&server);
    let mut head = "PUT /backup-vaults/big HTTP/1.1\r\nHost: x\r\n".to_string();
    for (k, v) in &signed.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let announced = format!("{head}Content-Length: {}\r\n\r\n", 6 * 1024 * 1024);
    let (status, h, body) = send_head(&server, &announced, 0).await;
    assert_eq!(status, 413, "{h}");
    aws_error(status, &h, &body, "RequestEntityTooLargeException");
    assert!(body.contains("2097152"), "{body}");

    // Streamed without a length: reading stops at the cap.
    let chunked = format!("{head}Transfer-Encoding: chunked\r\n\r\n");
    let addr = server.endpoint.trim_start_matches("http://");
    let (mut r, mut w) = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap()
        .into_split();
    let writer = tokio::spawn(async move {
        w.write_all(chunked.as_bytes()).await.unwrap();
        let chunk = format!("{:x}\r\n{}\r\n", 256 * 1024, "x".repeat(256 * 1024));
        for _ in 0..12 {
            if w.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
        }
        w
    });
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4096];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    drop(writer.await.unwrap());
    let text = String::from_utf8_lossy(&out).to_string();
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.to_lowercase()
            .contains("x-amzn-errortype: requestentitytoolargeexception"),
        "{text}"
    );

    // A few hundred 5-9 MiB bodies: refused on their length, never buffered.
    let pid = server.pid();
    let before = rss_kb(pid);
    for i in 0..300usize {
        let len = (5 + i % 5) * 1024 * 1024;
        let (status, _, _) = send_head(
            &server,
            &format!(
                "PUT /backup-vaults/big{i} HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n"
            ),
            len,
        )
        .await;
        assert!(status == 413 || status == 0, "{status}");
    }
    let after = rss_kb(pid);
    assert!(
        after < before + 20 * 1024,
        "RSS grew from {before} kB to {after} kB"
    );
    assert!(
        server
            .client()
            .describe_backup_vault()
            .backup_vault_name("big")
            .send()
            .await
            .is_err()
    );
    server.client().list_backup_vaults().send().await.unwrap();
}
