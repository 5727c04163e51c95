//! Coffer's own endpoints beside the AWS API, under `/_coffer/`.
//!
//! - `GET /_coffer/health` answers `{"status":"ok"}` (always on).
//! - `GET /_coffer/notifications` answers `{"pending": N, "failed": N}`: notifications waiting
//!   in the outbox and dead letters (always on; see docs/notifications.md).
//! - Development mode only: `POST /_coffer/reset` (also `POST /moto-api/reset`, for suites
//!   written against moto's server mode) wipes all state; `GET /_coffer/clock` answers
//!   `{"now": "<RFC 3339>"}` and `POST /_coffer/clock` with `{"advance_seconds": N}` or
//!   `{"set": "<RFC 3339>"}` moves the clock forward, running the time it skips as if Coffer
//!   had been up (each firing, window end and lifecycle transition at its own time, the jobs
//!   run at each step), and answers once the target time is reached with a summary of what
//!   ran (see docs/scheduler.md, "Time travel").
//!
//! - `GET /_coffer/notifications/dead-letters` lists the notifications given up on, with the
//!   reason; `POST /_coffer/notifications/dead-letters/replay` (body `{}` for all, or
//!   `{"ids": [...]}`) puts them back in the outbox. With authentication on, these two need a
//!   SigV4-signed request (service `backup`, a region it knows) and see only the caller's account;
//!   with it off, a signed request sees its account and an unsigned one every account.
//!
//! - `GET /_coffer/deletions` lists the removals of deleted recovery points' data that are
//!   still queued (with their attempts, last error and next attempt) and those given up after
//!   their last attempt (`deletion_failed`, see docs/jobs.md); signed like the dead-letter
//!   endpoints, and scoped to the caller's account the same way.
//!
//! - `GET /_coffer/approvals` and `POST /_coffer/approvals/approve`: approval sessions and
//!   approvals by the members of approval teams, SigV4-signed (see `approvals.rs`).
//!
//! Outside development mode the development endpoints answer 403.

use bytes::Bytes;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use coffer_api::sigv4::{self, AuthMode, ScopePolicy, SignedParts, SigningKeyCache};
use coffer_core::{Coffer, Destination, OutboxMessage, TravelError};
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::json;

/// How many dead letters one listing returns at most.
const MAX_LISTED: usize = 1000;

/// What the admin endpoints need besides the domain: how to tell who is calling.
pub struct Admin {
    pub coffer: Coffer,
    pub dev: bool,
    pub auth: AuthMode,
    /// Which credential scopes are accepted (service `backup`, known regions).
    pub policy: ScopePolicy,
    pub keys: SigningKeyCache,
}

impl Admin {
    pub async fn handle(&self, parts: &http::request::Parts, body: &[u8]) -> Response<Full<Bytes>> {
        let path = parts.uri.path().trim_end_matches('/');
        if path.starts_with("/_coffer/notifications/dead-letters") {
            return self.dead_letters(parts, path, body).await;
        }
        if path == "/_coffer/approvals" || path.starts_with("/_coffer/approvals/") {
            return crate::approvals::handle(self, parts, path, body).await;
        }
        if path == "/_coffer/deletions" && parts.method == Method::GET {
            return self.deletions(parts, body).await;
        }
        handle(
            &self.coffer,
            self.dev,
            &parts.method,
            parts.uri.path(),
            body,
        )
        .await
    }

    /// The account whose dead letters the caller sees (`None`: every account).
    fn scope(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> Result<Option<String>, coffer_api::error::ApiError> {
        if matches!(self.auth, AuthMode::None { .. })
            && !parts.headers.contains_key(http::header::AUTHORIZATION)
        {
            return Ok(None);
        }
        sigv4::authenticate(
            &self.auth,
            &self.keys,
            &SignedParts {
                method: parts.method.as_str(),
                raw_path: parts.uri.path(),
                raw_query: parts.uri.query().unwrap_or(""),
                headers: &parts.headers,
                body,
            },
            &self.policy,
            Utc::now(),
        )
        .map(|caller| Some(caller.account_id))
    }

    /// `GET /_coffer/deletions`: the caller's recovery point data removals still queued and
    /// those given up (see docs/jobs.md).
    async fn deletions(&self, parts: &http::request::Parts, body: &[u8]) -> Response<Full<Bytes>> {
        let account = match self.scope(parts, body) {
            Ok(a) => a,
            Err(e) => return coffer_api::http::error_response(&e),
        };
        match self.coffer.deletions(account, MAX_LISTED).await {
            Ok((pending, failed)) => reply(
                StatusCode::OK,
                json!({"pending": pending, "failed": failed}),
            ),
            Err(e) => {
                tracing::error!(error = %coffer_api::error_chain(&e.0), "listing recovery point removals failed");
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "the metadata store is not available"}),
                )
            }
        }
    }

    async fn dead_letters(
        &self,
        parts: &http::request::Parts,
        path: &str,
        body: &[u8],
    ) -> Response<Full<Bytes>> {
        let account = match self.scope(parts, body) {
            Ok(a) => a,
            Err(e) => return coffer_api::http::error_response(&e),
        };
        let outbox = self.coffer.outbox();
        match (&parts.method, path) {
            (&Method::GET, "/_coffer/notifications/dead-letters") => {
                match outbox.dead_letters(usize::MAX).await {
                    Ok(all) => {
                        let mine: Vec<_> = all
                            .iter()
                            .filter(|m| account.as_ref().is_none_or(|a| *a == m.account))
                            .collect();
                        let listed: Vec<_> = mine
                            .iter()
                            .take(MAX_LISTED)
                            .map(|m| dead_letter(m))
                            .collect();
                        reply(
                            StatusCode::OK,
                            json!({"count": mine.len(), "dead_letters": listed}),
                        )
                    }
                    Err(e) => store_unavailable("listing dead letters", &e),
                }
            }
            (&Method::POST, "/_coffer/notifications/dead-letters/replay") => {
                let ids = match parse_replay(body) {
                    Ok(ids) => ids,
                    Err(e) => return reply(StatusCode::BAD_REQUEST, json!({"error": e})),
                };
                match outbox.replay_dead(account.as_deref(), ids.as_deref()).await {
                    Ok(replayed) => {
                        for m in &replayed {
                            tracing::info!(topic = %m.topic_arn, event = %m.event, id = %m.id, "dead letter replayed");
                        }
                        let ids: Vec<_> = replayed.iter().map(|m| m.id.clone()).collect();
                        reply(StatusCode::OK, json!({"replayed": ids.len(), "ids": ids}))
                    }
                    Err(e) => store_unavailable("replaying dead letters", &e),
                }
            }
            _ => reply(
                StatusCode::NOT_FOUND,
                json!({"error": format!("no admin endpoint {} {path}; use GET /_coffer/notifications/dead-letters or POST /_coffer/notifications/dead-letters/replay", parts.method)}),
            ),
        }
    }
}

/// The replay body: empty or `{}` replays every dead letter, `{"ids": [...]}` those named.
pub fn parse_replay(body: &[u8]) -> Result<Option<Vec<String>>, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Replay {
        ids: Option<Vec<String>>,
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice::<Replay>(body)
        .map(|r| r.ids)
        .map_err(|e| {
            format!("expected {{}} (replay all) or {{\"ids\": [\"MESSAGE ID\", ...]}}: {e}")
        })
}

/// One dead letter as the endpoint and the CLI show it.
pub fn dead_letter(m: &OutboxMessage) -> serde_json::Value {
    json!({
        "id": m.id,
        "topic_arn": m.topic_arn,
        "account": m.account,
        "region": m.region,
        "vault": m.vault_name,
        "event": m.event,
        "message": m.message,
        "timestamp": rfc3339(m.timestamp),
        "attempts": m.attempts,
        "last_error": m.last_error,
        "reason": m.dead_reason,
    })
}

fn store_unavailable(what: &str, e: &coffer_store::StoreError) -> Response<Full<Bytes>> {
    tracing::error!(error = %coffer_api::error_chain(e), "{what} failed");
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": "the metadata store is not available"}),
    )
}

pub fn is_admin_path(path: &str) -> bool {
    path.starts_with("/_coffer/") || path == "/moto-api/reset"
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockMove {
    advance_seconds: Option<i64>,
    set: Option<String>,
}

pub async fn handle(
    coffer: &Coffer,
    dev: bool,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let path = path.trim_end_matches('/');
    if path == "/_coffer/health" && method == Method::GET {
        return reply(StatusCode::OK, json!({"status": "ok"}));
    }
    if path == "/_coffer/notifications" && method == Method::GET {
        return match coffer.outbox().counts().await {
            Ok(c) => reply(
                StatusCode::OK,
                json!({"pending": c.pending, "failed": c.failed}),
            ),
            Err(e) => {
                tracing::error!(error = %e, "counting notifications failed");
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "the metadata store is not available"}),
                )
            }
        };
    }
    if !dev {
        return reply(
            StatusCode::FORBIDDEN,
            json!({"error": "this endpoint exists only in development mode (coffer serve --dev)"}),
        );
    }
    match (method, path) {
        (&Method::POST, "/_coffer/reset") | (&Method::POST, "/moto-api/reset") => {
            match coffer.reset().await {
                Ok(()) => {
                    tracing::info!("development reset: all state wiped");
                    reply(StatusCode::OK, json!({"reset": true}))
                }
                Err(e) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": e.message()}),
                ),
            }
        }
        (&Method::GET, "/_coffer/clock") => reply(
            StatusCode::OK,
            json!({"now": rfc3339(coffer.clock().now())}),
        ),
        (&Method::POST, "/_coffer/clock") => {
            let m: ClockMove = match serde_json::from_slice(body) {
                Ok(m) => m,
                Err(e) => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        json!({"error": format!("expected {{\"advance_seconds\": N}} or {{\"set\": \"RFC 3339\"}}: {e}")}),
                    );
                }
            };
            let to = match (m.advance_seconds, m.set) {
                (Some(s), None) => match Duration::try_seconds(s) {
                    Some(d) => Ok(Destination::Advance(d)),
                    None => Err(format!("advance_seconds {s} is out of range")),
                },
                (None, Some(t)) => match DateTime::parse_from_rfc3339(&t) {
                    Ok(t) => Ok(Destination::At(t.with_timezone(&Utc))),
                    Err(e) => Err(format!("'{t}' is not an RFC 3339 time: {e}")),
                },
                _ => Err("give exactly one of advance_seconds and set".into()),
            };
            let to = match to {
                Ok(to) => to,
                Err(e) => return reply(StatusCode::BAD_REQUEST, json!({"error": e})),
            };
            // Answer only once the skipped time has run up to the target.
            match coffer.travel(to).await {
                Ok(done) => {
                    let mut answer = json!(done);
                    answer["from"] = json!(rfc3339(done.from));
                    answer["now"] = json!(rfc3339(done.now));
                    reply(StatusCode::OK, answer)
                }
                Err(TravelError::Refused(e)) => reply(StatusCode::BAD_REQUEST, json!({"error": e})),
                Err(TravelError::Failed(e)) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"now": rfc3339(coffer.clock().now()), "error": e.message()}),
                ),
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no admin endpoint {method} {path}")}),
        ),
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
