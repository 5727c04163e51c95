//! The HTTP entry point: one request in, one response out.
//!
//! [`ApiHandler::handle`] reads the body, authenticates the caller, routes to an operation,
//! assembles the operation's input from the body and the bound URI labels and query
//! parameters, dispatches it to the [`BackupService`] and encodes the answer. A request signed
//! for `backup-search` goes the same way to the [`BackupSearchService`] given with
//! [`ApiHandler::with_search`] (see [`crate::search`]). It is independent of any web framework:
//! the server feeds it `http::Request`s from hyper.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Map, Value};
use tracing::Instrument;

use crate::error::ApiError;
use crate::generated::operations::{BackupService, dispatch};
use crate::operation::{Binding, Location, ScalarKind};
use crate::request::RequestContext;
use crate::router::Router;
use crate::search::{self, BackupSearchService};
use crate::sigv4::{self, AuthMode, ScopePolicy, SignedParts, SigningKeyCache};
use crate::sts;
use crate::timestamp::Timestamp;

/// The largest request body accepted. The largest member the model bounds is a policy document
/// (`AccessPointPolicy`, at most 200,000 characters); JSON-escaped as `\uXXXX` pairs that is at
/// most 1.2 MB, so 2 MiB holds any legitimate request with room to spare. Bodies are refused
/// on their Content-Length before any byte is read, and reading stops at the cap otherwise.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

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
    policy: ScopePolicy,
    sts_policy: ScopePolicy,
    search: Option<SearchEndpoint>,
    search_policy: ScopePolicy,
    failures: FailedSignIns,
}

/// The AWS Backup Search side of the endpoint: its service and its routing table.
struct SearchEndpoint {
    service: Arc<dyn BackupSearchService>,
    router: Router<search::Operation>,
}

impl<S: BackupService + ?Sized> ApiHandler<S> {
    pub fn new(service: Arc<S>, auth: AuthMode, default_region: &str) -> Self {
        ApiHandler {
            service,
            router: Router::new(),
            auth,
            keys: SigningKeyCache::default(),
            policy: ScopePolicy::new("backup", default_region),
            sts_policy: ScopePolicy::new(sts::SIGNING_NAME, default_region),
            search: None,
            search_policy: ScopePolicy::new(search::SIGNING_NAME, default_region),
            failures: FailedSignIns::default(),
        }
    }

    /// Answers AWS Backup Search requests (signed for `backup-search`) with `service`.
    pub fn with_search(mut self, service: Arc<dyn BackupSearchService>) -> Self {
        self.search = Some(SearchEndpoint {
            service,
            router: Router::for_table(search::OPERATIONS),
        });
        self
    }

    /// Accepts these regions in credential scopes besides AWS's own (see [`ScopePolicy`]).
    pub fn with_regions(mut self, regions: impl IntoIterator<Item = String>) -> Self {
        let regions: Vec<String> = regions.into_iter().collect();
        self.policy = self.policy.with_regions(regions.clone());
        self.sts_policy = self.sts_policy.with_regions(regions.clone());
        self.search_policy = self.search_policy.with_regions(regions);
        self
    }

    /// Handles one request; never fails: every error becomes an AWS-style error response.
    ///
    /// The request runs inside a `request` span carrying the `request_id` it is answered with
    /// (`x-amzn-RequestId`), so every log line written while it is handled, an internal
    /// error's cause chain included, names the request a client can quote.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: http_body::Body + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let request_id = uuid::Uuid::new_v4().to_string();
        let span = tracing::info_span!("request", request_id = %request_id);
        self.handle_request(req, request_id).instrument(span).await
    }

    async fn handle_request<B>(&self, req: Request<B>, request_id: String) -> Response<Full<Bytes>>
    where
        B: http_body::Body + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let mut routed = None;
        let result = if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            Err(ApiError::payload_too_large(MAX_BODY_BYTES))
        } else {
            match Limited::new(body, MAX_BODY_BYTES).collect().await {
                Ok(collected) => {
                    let body = collected.to_bytes();
                    if self.is_sts(&parts, &body) {
                        return self.answer_sts(&parts, &body, &request_id);
                    }
                    match &self.search {
                        Some(endpoint) if self.is_search(&parts, &body, endpoint) => self
                            .respond_search(endpoint, &parts, &body, &request_id, &mut routed)
                            .await
                            .map_err(search::search_error),
                        _ => self.respond(&parts, &body, &request_id, &mut routed).await,
                    }
                }
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    Err(ApiError::payload_too_large(MAX_BODY_BYTES))
                }
                Err(e) => Err(ApiError::serialization(format!(
                    "The request body could not be read: {e}"
                ))),
            }
        };
        let mut response = match result {
            Ok((status, body)) => {
                let mut r = Response::new(Full::new(Bytes::from(body)));
                *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                r
            }
            Err(err) => {
                let (method, path) = (parts.method.as_str(), parts.uri.path());
                if err.status() >= 500 && !err.is_not_implemented() {
                    let error = crate::error::error_chain(&err);
                    tracing::warn!(request_id, %method, %path, %error, "request failed");
                } else {
                    tracing::debug!(request_id, %method, %path, error = %err, "request refused");
                }
                let mut r = error_response(&err);
                if err.status() == 413 {
                    // The rest of the body is never read: end the connection after answering.
                    r.headers_mut()
                        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                }
                r
            }
        };
        if let Some(op) = routed {
            response.extensions_mut().insert(RoutedOperation(op));
        }
        with_common_headers(response, &request_id)
    }

    /// Whether a request is STS's: its credential scope names `sts`, or it is an unsigned
    /// query call (`POST /` with an `Action`).
    fn is_sts(&self, parts: &http::request::Parts, body: &[u8]) -> bool {
        let raw_path = parts.uri.path();
        let raw_query = parts.uri.query().unwrap_or("");
        let signed = SignedParts {
            method: parts.method.as_str(),
            raw_path,
            raw_query,
            headers: &parts.headers,
            body,
        };
        match sigv4::scope_service(&signed) {
            Some(service) => service == sts::SIGNING_NAME,
            None => {
                !parts.headers.contains_key(http::header::AUTHORIZATION)
                    && sts::is_unsigned_query_call(parts.method.as_str(), raw_path, raw_query, body)
            }
        }
    }

    /// Whether a request is AWS Backup Search's: its credential scope names `backup-search`,
    /// or (unsigned, authentication off) its path is one only Backup Search routes.
    fn is_search(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        endpoint: &SearchEndpoint,
    ) -> bool {
        let signed = SignedParts {
            method: parts.method.as_str(),
            raw_path: parts.uri.path(),
            raw_query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            body,
        };
        match sigv4::scope_service(&signed) {
            Some(service) => service == search::SIGNING_NAME,
            None => {
                let method = parts.method.as_str();
                let path = parts.uri.path();
                self.router.route(method, path, &[]).is_err()
                    && endpoint.router.route(method, path, &[]).is_ok()
            }
        }
    }

    /// Answers an STS call (see [`sts`]): authenticated like every call, answered in XML.
    fn answer_sts(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        request_id: &str,
    ) -> Response<Full<Bytes>> {
        let raw_query = parts.uri.query().unwrap_or("");
        let result = sigv4::authenticate(
            &self.auth,
            &self.keys,
            &SignedParts {
                method: parts.method.as_str(),
                raw_path: parts.uri.path(),
                raw_query,
                headers: &parts.headers,
                body,
            },
            &self.sts_policy,
            chrono::Utc::now(),
        )
        .inspect_err(|e| self.failures.record(e, parts, request_id))
        .and_then(|caller| {
            let params = sts::parameters(raw_query, body)?;
            sts::answer(&params, &caller.account_id, request_id)
        });
        let (status, xml) = match result {
            Ok(xml) => (StatusCode::OK, xml),
            Err(err) => (
                StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST),
                sts::error_body(&err, request_id),
            ),
        };
        let mut r = Response::new(Full::new(Bytes::from(xml)));
        *r.status_mut() = status;
        r.extensions_mut()
            .insert(RoutedOperation("sts:GetCallerIdentity"));
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert("x-amzn-requestid", v);
        }
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml"),
        );
        r
    }

    /// Authenticates a request against one service's scope policy.
    fn authenticate(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        policy: &ScopePolicy,
        request_id: &str,
    ) -> Result<RequestContext, ApiError> {
        let caller = sigv4::authenticate(
            &self.auth,
            &self.keys,
            &SignedParts {
                method: parts.method.as_str(),
                raw_path: parts.uri.path(),
                raw_query: parts.uri.query().unwrap_or(""),
                headers: &parts.headers,
                body,
            },
            policy,
            chrono::Utc::now(),
        )
        .inspect_err(|e| self.failures.record(e, parts, request_id))?;
        Ok(RequestContext {
            account_id: caller.account_id,
            region: caller.region,
            access_key_id: caller.access_key_id,
            request_id: request_id.to_string(),
        })
    }

    async fn respond(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        request_id: &str,
        routed: &mut Option<&'static str>,
    ) -> Result<(u16, Vec<u8>), ApiError> {
        let ctx = self.authenticate(parts, body, &self.policy, request_id)?;
        let query = sigv4::canonical::decode_query_form(parts.uri.query().unwrap_or(""));
        let keys: Vec<&str> = query.iter().map(|(k, _)| k.as_str()).collect();
        let route = self
            .router
            .route(parts.method.as_str(), parts.uri.path(), &keys)?;
        let spec = route.operation.spec();
        *routed = Some(spec.name);
        let input = operation_input(spec.has_input, spec.bindings, &route.labels, &query, body)?;
        let out = dispatch(&*self.service, &ctx, route.operation, input).await?;
        Ok((spec.success_status, out))
    }

    /// [`Self::respond`] for AWS Backup Search: its scope, its table, its service.
    async fn respond_search(
        &self,
        endpoint: &SearchEndpoint,
        parts: &http::request::Parts,
        body: &[u8],
        request_id: &str,
        routed: &mut Option<&'static str>,
    ) -> Result<(u16, Vec<u8>), ApiError> {
        let ctx = self.authenticate(parts, body, &self.search_policy, request_id)?;
        let query = sigv4::canonical::decode_query_form(parts.uri.query().unwrap_or(""));
        let keys: Vec<&str> = query.iter().map(|(k, _)| k.as_str()).collect();
        let route = endpoint
            .router
            .route(parts.method.as_str(), parts.uri.path(), &keys)?;
        let spec = route.operation.spec();
        *routed = Some(spec.name);
        let input = operation_input(spec.has_input, spec.bindings, &route.labels, &query, body)?;
        let out = search::dispatch(&*endpoint.service, &ctx, route.operation, input).await?;
        Ok((spec.success_status, out))
    }
}

/// An operation's input in its JSON form: the body's members, plus the members bound to URI
/// labels and query parameters (a list member from every repetition of its parameter).
fn operation_input(
    has_input: bool,
    bindings: &[Binding],
    labels: &[(&'static str, String)],
    query: &[(String, String)],
    body: &[u8],
) -> Result<Value, ApiError> {
    let mut input = if has_input && !body.iter().all(u8::is_ascii_whitespace) {
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
    for binding in bindings {
        if binding.kind == ScalarKind::StringList {
            let values: Vec<Value> = query
                .iter()
                .filter(|(k, _)| k == binding.wire)
                .map(|(_, v)| Value::String(v.clone()))
                .collect();
            if !values.is_empty() {
                input.insert(binding.member.to_string(), Value::Array(values));
            }
            continue;
        }
        let text = match binding.location {
            Location::Uri => labels
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
    Ok(Value::Object(input))
}

/// Failed sign-ins are logged at DEBUG with the request id and the reason, at most
/// [`FailedSignIns::PER_MINUTE`] lines a minute (the rest are counted and reported with the
/// next line), naming the access key id but never a secret or a signature. The operator's WARN
/// line (one a minute per key, with the peer) is the server's (`coffer-server` `logging`).
#[derive(Default)]
struct FailedSignIns {
    window: std::sync::Mutex<(i64, u32, u64)>,
}

impl FailedSignIns {
    const PER_MINUTE: u32 = 20;

    fn record(&self, err: &ApiError, parts: &http::request::Parts, request_id: &str) {
        let minute = chrono::Utc::now().timestamp() / 60;
        let suppressed = {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            if w.0 != minute {
                *w = (minute, 0, w.2);
            }
            w.1 += 1;
            if w.1 > Self::PER_MINUTE {
                w.2 += 1;
                return;
            }
            std::mem::take(&mut w.2)
        };
        let access_key_id = access_key_of(&parts.headers, parts.uri.query().unwrap_or(""));
        tracing::debug!(
            request_id,
            access_key_id = access_key_id.as_deref().unwrap_or("-"),
            code = err.code(),
            reason = err.message(),
            suppressed_before = suppressed,
            "sign-in refused"
        );
    }
}

/// The access key id named by an Authorization header or a presigned URL's X-Amz-Credential,
/// if it looks like one (at most 128 letters and digits: anything else is not echoed into the
/// log).
fn access_key_of(headers: &http::HeaderMap, raw_query: &str) -> Option<String> {
    let credential = match headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(auth) => auth.split("Credential=").nth(1)?.to_string(),
        None => {
            sigv4::canonical::decode_query(raw_query)
                .into_iter()
                .find(|(k, _)| k == "X-Amz-Credential")?
                .1
        }
    };
    let akid = credential.split('/').next()?;
    (akid.len() <= 128 && akid.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| akid.into())
}

/// Converts the text of a URI label or query parameter to the JSON value of its member type.
fn scalar(member: &str, kind: ScalarKind, text: &str) -> Result<Value, ApiError> {
    let bad = |what: &str| {
        ApiError::invalid_parameter(format!(
            "Invalid value '{text}' for parameter {member}: expected {what}."
        ))
    };
    Ok(match kind {
        ScalarKind::String | ScalarKind::StringList => Value::String(text.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generated::types::{ListBackupVaultsInput, ListBackupVaultsOutput};
    use std::sync::Mutex;

    /// An error with a cause, as a store failure under a domain failure.
    #[derive(Debug)]
    struct Wrapped(&'static str, std::io::Error);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    /// A service whose one operation fails inside.
    struct Failing;

    #[async_trait::async_trait]
    impl BackupService for Failing {
        async fn list_backup_vaults(
            &self,
            _ctx: &RequestContext,
            _input: ListBackupVaultsInput,
        ) -> Result<ListBackupVaultsOutput, ApiError> {
            let disk = std::io::Error::other("disk I/O error at /var/lib/coffer/meta.db");
            Err(ApiError::internal(Wrapped("listing vaults", disk)))
        }
    }

    #[derive(Clone, Default)]
    struct LogBuffer(Arc<Mutex<Vec<u8>>>);

    /// The log of this test process: one global subscriber writing into a buffer, installed by
    /// the first test that needs it. Global, not per test: tracing caches per call site whether
    /// anyone listens, and a test running beside another on a thread with no subscriber (the
    /// search error test calls `ApiError::internal`) could otherwise turn the ERROR line or the
    /// request span off for the test that looks for them. Tests find their own lines by
    /// request id.
    fn process_logs() -> LogBuffer {
        static LOGS: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = LogBuffer::default();
            let writer = logs.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other test sets a global subscriber");
            logs
        })
        .clone()
    }
    impl std::io::Write for LogBuffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// An operation a service does not implement answers 501 NotImplementedException naming
    /// it, with a request id: never a fake success. (Coffer itself implements every operation,
    /// so this is checked on a service that implements one.)
    #[tokio::test]
    async fn an_operation_not_built_answers_501_naming_it() {
        // The process-wide subscriber keeps the request span on (see `process_logs`).
        let _ = process_logs();
        let handler = ApiHandler::new(
            Arc::new(Failing),
            AuthMode::None {
                default_account: "111122223333".into(),
            },
            "us-east-1",
        );
        let req = Request::get("/backup-vaults/vault1")
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = handler.handle(req).await;
        assert_eq!(response.status(), 501);
        assert!(response.headers().contains_key("x-amzn-requestid"));
        assert_eq!(
            response.headers()["x-amzn-errortype"].to_str().unwrap(),
            "NotImplementedException"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("DescribeBackupVault"), "{body}");
    }

    /// An internal failure: the client gets ServiceUnavailableException and nothing of the
    /// cause; the log's ERROR line names the request id the client got and every level of the
    /// cause chain.
    #[tokio::test]
    async fn an_internal_error_is_logged_with_its_chain_and_the_request_id() {
        let logs = process_logs();

        let handler = ApiHandler::new(
            Arc::new(Failing),
            AuthMode::None {
                default_account: "111122223333".into(),
            },
            "us-east-1",
        );
        let req = Request::get("/backup-vaults/")
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = handler.handle(req).await;
        assert_eq!(response.status(), 500);
        let request_id = response.headers()["x-amzn-requestid"]
            .to_str()
            .unwrap()
            .to_string();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("ServiceUnavailableException"), "{body}");
        assert!(
            !body.contains("listing vaults") && !body.contains("/var/lib"),
            "{body}"
        );

        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let line = logs
            .lines()
            .find(|l| {
                l.contains("ERROR")
                    && l.contains("internal error")
                    && l.contains(&format!("request_id={request_id}"))
            })
            .unwrap_or_else(|| panic!("no ERROR line for the internal error in:\n{logs}"));
        assert!(line.contains(&format!("request_id={request_id}")), "{line}");
        assert!(
            line.contains("listing vaults; caused by: disk I/O error at /var/lib/coffer/meta.db"),
            "{line}"
        );
    }
}
