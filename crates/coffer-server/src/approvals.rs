//! Approvals by the members of an approval team: the endpoint and the CLI command.
//!
//! Why: a restore access request and a change of a vault's approval team wait until enough
//! members of the vault's team approve them (docs/vaults.md, "Restore access and approval
//! teams"). A member is a configured credential, so a member approves by signing a request
//! with their own key; the key that signed is the approval.
//!
//! - `GET /_coffer/approvals` answers `{"sessions": [...]}`: the sessions of every team the
//!   signing key is a member of (PENDING, APPROVED and FAILED), oldest first.
//! - `POST /_coffer/approvals/approve` with `{"sessionArn": "..."}` records the signing key's
//!   approval and answers `{"session": {...}}` as it stands afterwards.
//!
//! Both need a SigV4-signed request (service `backup`, a region Coffer knows). With
//! `auth = none` (development only) the key id is taken from the request unverified.
//! `coffer approvals list|approve` sends these requests, signed with the key of
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (or the flags).

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use chrono::Utc;
use coffer_api::error::ApiError;
use coffer_api::sigv4::{self, SignedParts};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::json;

use crate::admin::Admin;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ApproveBody {
    session_arn: String,
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The access key id that signed the request.
fn signer(admin: &Admin, parts: &http::request::Parts, body: &[u8]) -> Result<String, ApiError> {
    let caller = sigv4::authenticate(
        &admin.auth,
        &admin.keys,
        &SignedParts {
            method: parts.method.as_str(),
            raw_path: parts.uri.path(),
            raw_query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            body,
        },
        &admin.policy,
        Utc::now(),
    )?;
    caller
        .access_key_id
        .ok_or_else(ApiError::missing_authentication)
}

/// `/_coffer/approvals...`.
pub async fn handle(
    admin: &Admin,
    parts: &http::request::Parts,
    path: &str,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let akid = match signer(admin, parts, body) {
        Ok(k) => k,
        Err(e) => return coffer_api::http::error_response(&e),
    };
    match (&parts.method, path) {
        (&Method::GET, "/_coffer/approvals") => match admin.coffer.approval_sessions(&akid).await {
            Ok(sessions) => reply(StatusCode::OK, json!({ "sessions": sessions })),
            Err(e) => coffer_api::http::error_response(&e),
        },
        (&Method::POST, "/_coffer/approvals/approve") => {
            let b: ApproveBody = match serde_json::from_slice(body) {
                Ok(b) => b,
                Err(e) => {
                    return coffer_api::http::error_response(&ApiError::invalid_parameter(
                        format!(
                            "The body must be {{\"sessionArn\": \"arn:aws:mpa:...:session/TEAM/ID\"}}: {e}"
                        ),
                    ));
                }
            };
            match admin.coffer.approve_session(&akid, &b.session_arn).await {
                Ok(session) => reply(StatusCode::OK, json!({ "session": session })),
                Err(e) => coffer_api::http::error_response(&e),
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            json!({"error": "use GET /_coffer/approvals or POST /_coffer/approvals/approve"}),
        ),
    }
}

/// `coffer approvals ...`
#[derive(Debug, clap::Subcommand)]
pub enum ApprovalsCommand {
    /// List the approval sessions of the teams the key is a member of.
    List {
        #[command(flatten)]
        conn: Connection,
        /// Print the JSON answer instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Approve a session as the member whose key signs the request.
    Approve {
        #[command(flatten)]
        conn: Connection,
        /// The session's ARN (from `coffer approvals list`, or the vault's MpaSessionArn).
        #[arg(long, value_name = "ARN")]
        session_arn: String,
    },
}

/// Where the server is and whose key signs.
#[derive(Debug, clap::Args)]
pub struct Connection {
    /// The server's URL.
    #[arg(long, env = "COFFER_ENDPOINT", default_value = "http://127.0.0.1:9191")]
    pub endpoint: String,
    /// The member's access key id.
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    pub access_key_id: String,
    /// The member's secret access key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_access_key: String,
    /// The region to sign for.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
}

/// Sends one signed request to `path`; answers the JSON body or fails with the server's error.
async fn call(
    conn: &Connection,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<serde_json::Value> {
    let base = conn.endpoint.trim_end_matches('/');
    let url = reqwest::Url::parse(&format!("{base}{path}"))
        .with_context(|| format!("'{}' is not a URL", conn.endpoint))?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => bail!("'{}' has no host", conn.endpoint),
    };
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_str(&host)?);
    if !body.is_empty() {
        headers.insert("content-type", HeaderValue::from_static("application/json"));
    }
    sigv4::sign(
        sigv4::OutgoingRequest {
            method,
            raw_path: url.path(),
            raw_query: "",
            headers: &mut headers,
            body,
        },
        &conn.access_key_id,
        &conn.secret_access_key,
        &conn.region,
        "backup",
        Utc::now(),
    )
    .map_err(|e| anyhow::anyhow!("signing the request: {}", e.message()))?;
    headers.remove("host");
    let client = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes())?;
    let answer = client
        .request(method, url)
        .headers(headers)
        .body(body.to_vec())
        .send()
        .await
        .with_context(|| format!("calling {}", conn.endpoint))?;
    let status = answer.status();
    let text = answer.text().await?;
    if !status.is_success() {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let message = v
            .get("message")
            .or_else(|| v.get("Message"))
            .and_then(|m| m.as_str())
            .unwrap_or(&text);
        bail!("{status}: {message}");
    }
    serde_json::from_str(&text).context("the server's answer is not JSON")
}

pub async fn run(cmd: ApprovalsCommand) -> Result<()> {
    match cmd {
        ApprovalsCommand::List { conn, json } => {
            let v = call(&conn, "GET", "/_coffer/approvals", b"").await?;
            if json {
                println!("{v}");
                return Ok(());
            }
            let sessions = v["sessions"].as_array().cloned().unwrap_or_default();
            if sessions.is_empty() {
                println!(
                    "No approval sessions for the teams of {}.",
                    conn.access_key_id
                );
            }
            for s in sessions {
                println!(
                    "{}  {}  {}  {}  approvals {}/{}  requested by {}  expires {}",
                    s["status"].as_str().unwrap_or(""),
                    s["operation"].as_str().unwrap_or(""),
                    s["backupVaultArn"].as_str().unwrap_or(""),
                    s["sessionArn"].as_str().unwrap_or(""),
                    s["approvedBy"].as_array().map_or(0, |a| a.len()),
                    s["approvalsRequired"],
                    s["requesterAccount"].as_str().unwrap_or(""),
                    s["expiryDate"].as_str().unwrap_or(""),
                );
            }
            Ok(())
        }
        ApprovalsCommand::Approve { conn, session_arn } => {
            let body = serde_json::to_vec(&json!({ "sessionArn": session_arn }))?;
            let v = call(&conn, "POST", "/_coffer/approvals/approve", &body).await?;
            let s = &v["session"];
            println!(
                "{}: {} ({} of {} approvals)",
                s["sessionArn"].as_str().unwrap_or(""),
                s["status"].as_str().unwrap_or(""),
                s["approvedBy"].as_array().map_or(0, |a| a.len()),
                s["approvalsRequired"],
            );
            Ok(())
        }
    }
}
