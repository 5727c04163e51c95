//! The HTTP entry point: one request in, one response out.
//!
//! [`ApiHandler::handle`] reads the body, authenticates the caller, routes to an operation,
//! assembles the operation's input from the body and the bound URI labels and query
//! parameters, dispatches it to the [`BackupService`] and encodes the answer. It is independent
//! of any web framework: the server feeds it `http::Request`s from hyper.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::generated::operations::{BackupService, dispatch};
use crate::operation::{Location, ScalarKind};
use crate::request::RequestContext;
use crate::router::Router;
use crate::sigv4::{self, AuthMode, SignedParts, SigningKeyCache};
use crate::timestamp::Timestamp;

/// The largest request body accepted (AWS Backup's documents are small).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Put in a response's extensions: the operation the request was routed to (absent when it
/// was refused before routing), for the server's metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutedOperation(pub &'static str);

/// Answers AWS Backup API requests on behalf of a [`BackupService`].
pub struct ApiHandler<S: ?Sized> {
    service: Arc<S>,
    router: Router,
    auth: AuthMode,
    keys: SigningKeyCache,
    default_region: String,
}

impl<S: BackupService + ?Sized> ApiHandler<S> {
    pub fn new(service: Arc<S>, auth: AuthMode, default_region: &str) -> Self {
        ApiHandler {
            service,
            router: Router::new(),
            auth,
            keys: SigningKeyCache::default(),
            default_region: default_region.to_string(),
        }
    }

    /// Handles one request; never fails: every error becomes an AWS-style error response.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: http_body::Body + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let request_id = uuid::Uuid::new_v4().to_string();
        let (parts, body) = req.into_parts();
        let method = parts.method.as_str().to_string();
        let path = parts.uri.path().to_string();
        let mut routed = None;
        let result = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => {
                let body = collected.to_bytes();
                self.respond(&parts, &body, &request_id, &mut routed).await
            }
            Err(e) => Err(ApiError::serialization(format!(
                "The request body could not be read (at most {MAX_BODY_BYTES} bytes are accepted): {e}"
            ))),
        };
        let mut response = match result {
            Ok((status, body)) => {
                let mut r = Response::new(Full::new(Bytes::from(body)));
                *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                r
            }
            Err(err) => {
                if err.status() >= 500 && !err.is_not_implemented() {
                    tracing::warn!(request_id, %method, %path, error = %err, "request failed");
                } else {
                    tracing::debug!(request_id, %method, %path, error = %err, "request refused");
                }
                error_response(&err)
            }
        };
        if let Some(op) = routed {
            response.extensions_mut().insert(RoutedOperation(op));
        }
        with_common_headers(response, &request_id)
    }

    async fn respond(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        request_id: &str,
        routed: &mut Option<&'static str>,
    ) -> Result<(u16, Vec<u8>), ApiError> {
        let raw_path = parts.uri.path();
        let raw_query = parts.uri.query().unwrap_or("");
        let caller = sigv4::authenticate(
            &self.auth,
            &self.keys,
            &SignedParts {
                method: parts.method.as_str(),
                raw_path,
                raw_query,
                headers: &parts.headers,
                body,
            },
            &self.default_region,
            chrono::Utc::now(),
        )?;
        let query = sigv4::canonical::decode_query_form(raw_query);
        let keys: Vec<&str> = query.iter().map(|(k, _)| k.as_str()).collect();
        let route = self.router.route(parts.method.as_str(), raw_path, &keys)?;
        let spec = route.operation.spec();
        *routed = Some(spec.name);

        let mut input = if spec.has_input && !body.iter().all(u8::is_ascii_whitespace) {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => map,
                Ok(_) => {
                    return Err(ApiError::serialization(
                        "The request body must be a JSON object.",
                    ));
                }
                Err(e) => {
                    return Err(ApiError::serialization(format!(
                        "The request body is not valid JSON: {e}"
                    )));
                }
            }
        } else {
            Map::new()
        };
        for binding in spec.bindings {
            let text = match binding.location {
                Location::Uri => route
                    .labels
                    .iter()
                    .find(|(name, _)| *name == binding.wire)
                    .map(|(_, v)| v.as_str()),
                Location::Query => query
                    .iter()
                    .find(|(k, _)| k == binding.wire)
                    .map(|(_, v)| v.as_str()),
            };
            let Some(text) = text else { continue };
            input.insert(
                binding.member.to_string(),
                scalar(binding.member, binding.kind, text)?,
            );
        }
        let ctx = RequestContext {
            account_id: caller.account_id,
            region: caller.region,
            access_key_id: caller.access_key_id,
            request_id: request_id.to_string(),
        };
        let out = dispatch(&*self.service, &ctx, route.operation, Value::Object(input)).await?;
        Ok((spec.success_status, out))
    }
}

/// Converts the text of a URI label or query parameter to the JSON value of its member type.
fn scalar(member: &str, kind: ScalarKind, text: &str) -> Result<Value, ApiError> {
    let bad = |what: &str| {
        ApiError::invalid_parameter(format!(
            "Invalid value '{text}' for parameter {member}: expected {what}."
        ))
    };
    Ok(match kind {
        ScalarKind::String => Value::String(text.to_string()),
        ScalarKind::Integer => Value::from(text.parse::<i32>().map_err(|_| bad("an integer"))?),
        ScalarKind::Long => Value::from(text.parse::<i64>().map_err(|_| bad("an integer"))?),
        ScalarKind::Boolean => match text {
            "true" | "True" | "TRUE" => Value::Bool(true),
            "false" | "False" | "FALSE" => Value::Bool(false),
            _ => return Err(bad("true or false")),
        },
        ScalarKind::Timestamp => {
            let t = Timestamp::parse_query(text)
                .ok_or_else(|| bad("an ISO 8601 timestamp such as 2024-01-01T00:00:00Z"))?;
            serde_json::to_value(t).map_err(ApiError::internal)?
        }
    })
}

/// The HTTP response for an error, as the SDKs parse it.
pub fn error_response(err: &ApiError) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(err.body())));
    *r.status_mut() =
        StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(err.code()) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

/// Adds the headers every answer carries: request id and JSON content type.
pub fn with_common_headers(
    mut r: Response<Full<Bytes>>,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
