//! Coffer's own endpoints beside the AWS API, under `/_coffer/`.
//!
//! - `GET /_coffer/health` answers `{"status":"ok"}` (always on).
//! - `GET /_coffer/notifications` answers `{"pending": N, "failed": N}`: notifications waiting
//!   in the outbox and dead letters (always on; see docs/notifications.md).
//! - Development mode only: `POST /_coffer/reset` (also `POST /moto-api/reset`, for suites
//!   written against moto's server mode) wipes all state; `GET /_coffer/clock` answers
//!   `{"now": "<RFC 3339>"}` and `POST /_coffer/clock` with `{"advance_seconds": N}` or
//!   `{"set": "<RFC 3339>"}` moves the clock forward, then answers only once the scheduler
//!   has caught up with the new time (every due firing fired, the lifecycle swept, one runner
//!   pass done; see docs/scheduler.md), with what it did under `caught_up`.
//!
//! Outside development mode the development endpoints answer 403.

use bytes::Bytes;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use coffer_core::Coffer;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::json;

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
            let moved = match (m.advance_seconds, m.set) {
                (Some(s), None) => coffer.clock().advance(Duration::seconds(s)),
                (None, Some(t)) => match DateTime::parse_from_rfc3339(&t) {
                    Ok(t) => coffer.clock().set(t.with_timezone(&Utc)),
                    Err(e) => Err(format!("'{t}' is not an RFC 3339 time: {e}")),
                },
                _ => Err("give exactly one of advance_seconds and set".into()),
            };
            let now = match moved {
                Ok(now) => now,
                Err(e) => return reply(StatusCode::BAD_REQUEST, json!({"error": e})),
            };
            // Answer only once the work due up to the new time has been started.
            match coffer.catch_up().await {
                Ok(done) => reply(
                    StatusCode::OK,
                    json!({"now": rfc3339(now), "caught_up": done}),
                ),
                Err(e) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"now": rfc3339(now), "error": e.message()}),
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
