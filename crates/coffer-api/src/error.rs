//! Errors as the AWS SDKs parse them.
//!
//! Every failure leaves Coffer as a JSON body `{"__type": NAME, "Message": TEXT, ...}` with the
//! `x-amzn-ErrorType` header naming the exception, so botocore, the Rust SDK and the Go SDK all
//! raise the modelled exception type. Internal failures become ServiceUnavailableException with
//! a generic message; their cause is kept (the error's `source()`, for the code that handles
//! it) and its whole chain goes to the log, inside the request's span and so with the request
//! id (see `http.rs`), never to the client.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

/// The cause an internal error keeps.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// An error answer of the API: HTTP status, exception name, message and modelled members, and
/// for an internal failure the error that caused it (never sent to the client).
#[derive(Debug, Clone)]
pub struct ApiError {
    status: u16,
    code: Cow<'static, str>,
    message: String,
    members: Map<String, Value>,
    cause: Option<Cause>,
}

/// Two errors are equal when they give the same answer; the cause is not compared.
impl PartialEq for ApiError {
    fn eq(&self, other: &Self) -> bool {
        self.status == other.status
            && self.code == other.code
            && self.message == other.message
            && self.members == other.members
    }
}

/// An error and every cause below it, one after the other:
/// `"outer; caused by: inner; caused by: innermost"`.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let line = cause.to_string();
        // Some errors repeat their cause in their own message; say each thing once.
        if !text.ends_with(&line) {
            text.push_str("; caused by: ");
            text.push_str(&line);
        }
        next = cause.source();
    }
    text
}

impl ApiError {
    /// An error with an explicit status and exception name.
    pub fn new(
        status: u16,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            members: Map::new(),
            cause: None,
        }
    }

    /// Adds a modelled member to the error body (e.g. `Arn`, `CreatorRequestId`).
    pub fn with_member(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.members.insert(name.to_string(), value.into());
        self
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidParameterValueException", message)
    }
    pub fn missing_parameter(message: impl Into<String>) -> Self {
        Self::new(400, "MissingParameterValueException", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(400, "ResourceNotFoundException", message)
    }
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidRequestException", message)
    }
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(400, "AlreadyExistsException", message)
    }
    pub fn limit_exceeded(message: impl Into<String>) -> Self {
        Self::new(400, "LimitExceededException", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(400, "ConflictException", message)
    }
    pub fn invalid_resource_state(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidResourceStateException", message)
    }
    /// A request body that is not valid JSON (AWS answers SerializationException).
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(400, "SerializationException", message)
    }
    /// The generic answer to an internal failure: nothing about the cause leaks to the client.
    pub fn service_unavailable() -> Self {
        Self::new(
            500,
            "ServiceUnavailableException",
            "The service is temporarily unable to handle the request; retry later.",
        )
    }
    pub fn dependency_failure(message: impl Into<String>) -> Self {
        Self::new(500, "DependencyFailureException", message)
    }
    /// An internal failure: answered as ServiceUnavailableException, with `cause` kept as the
    /// error's source and logged at ERROR with its whole chain (inside a request, the log line
    /// carries the request's span and so its request id).
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        let cause: Cause = Arc::from(cause.into());
        tracing::error!(error = %error_chain(&*cause), "internal error");
        let mut e = Self::service_unavailable();
        e.cause = Some(cause);
        e
    }

    /// ServiceUnavailableException caused by `cause`, kept as the source but not logged: for
    /// a caller that logs the failure itself (a background retry that logs each attempt).
    pub fn unavailable_because(
        cause: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        let mut e = Self::service_unavailable();
        e.cause = Some(Arc::from(cause.into()));
        e
    }

    /// The same error under another status and exception name (message, members and cause
    /// kept): how a service answers a shared domain error in its own spelling.
    pub fn respelled(mut self, status: u16, code: &'static str) -> Self {
        self.status = status;
        self.code = Cow::Borrowed(code);
        self
    }

    /// The internal failure behind this error, when it is one.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.cause.as_deref()
    }
    /// An operation of the model that Coffer does not provide yet (HTTP 501).
    pub fn not_implemented(operation: &str) -> Self {
        Self::new(
            501,
            "NotImplementedException",
            format!("Coffer does not implement the {operation} operation yet."),
        )
        .with_member("Operation", operation)
    }
    /// A request that matches no operation of the API (HTTP 404).
    pub fn unknown_operation(method: &str, path: &str) -> Self {
        Self::new(
            404,
            "UnknownOperationException",
            format!(
                "No AWS Backup operation matches {method} {}.",
                shorten(path, 200)
            ),
        )
    }
    pub fn missing_authentication() -> Self {
        Self::new(
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token: sign the request with AWS Signature Version 4.",
        )
    }
    pub fn unrecognized_client(access_key_id: &str) -> Self {
        Self::new(
            403,
            "UnrecognizedClientException",
            format!(
                "The security token included in the request is invalid: unknown access key id {access_key_id}."
            ),
        )
    }
    /// A session token was sent: Coffer issues none, so none is valid.
    pub fn unrecognized_client_token() -> Self {
        Self::new(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid: Coffer does not issue session tokens; sign with a configured access key and no X-Amz-Security-Token.",
        )
    }
    /// A request body larger than any operation accepts (HTTP 413).
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLargeException",
            format!("The request body is larger than the {limit} bytes this operation accepts."),
        )
    }
    /// A request line or headers too large to read (HTTP 414 / 431).
    pub fn too_large(status: u16, what: &str) -> Self {
        Self::new(
            status,
            if status == 414 {
                "RequestURITooLongException"
            } else {
                "RequestHeaderFieldsTooLargeException"
            },
            what.to_string(),
        )
    }
    pub fn invalid_signature(message: impl Into<String>) -> Self {
        Self::new(403, "InvalidSignatureException", message)
    }
    pub fn incomplete_signature(message: impl Into<String>) -> Self {
        Self::new(403, "IncompleteSignatureException", message)
    }

    pub fn status(&self) -> u16 {
        self.status
    }
    pub fn code(&self) -> &str {
        &self.code
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    pub fn is_not_implemented(&self) -> bool {
        self.status == 501
    }

    /// The JSON body of the error answer.
    pub fn body(&self) -> Vec<u8> {
        let mut body = Map::new();
        body.insert("__type".into(), Value::String(self.code.to_string()));
        body.insert("Message".into(), Value::String(self.message.clone()));
        for (k, v) in &self.members {
            body.insert(k.clone(), v.clone());
        }
        serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
    }
}

/// Caller-supplied text echoed in a message, cut to `max` characters.
fn shorten(text: &str, max: usize) -> String {
    let mut s: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        s.push_str("...");
    }
    s
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_names_the_exception_and_carries_members() {
        let e = ApiError::already_exists("Backup vault with the same name already exists")
            .with_member(
                "Arn",
                "arn:aws:backup:us-east-1:000000000000:backup-vault:v1",
            );
        let v: Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["__type"], "AlreadyExistsException");
        assert_eq!(
            v["Message"],
            "Backup vault with the same name already exists"
        );
        assert_eq!(
            v["Arn"],
            "arn:aws:backup:us-east-1:000000000000:backup-vault:v1"
        );
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let e = ApiError::internal("disk I/O error at /var/lib/coffer/meta.db");
        assert_eq!(e.code(), "ServiceUnavailableException");
        assert!(!e.message().contains("/var/lib"));
        assert!(!String::from_utf8(e.body()).unwrap().contains("/var/lib"));
        assert_eq!(e.status(), 500);
    }

    /// An error with a cause of its own, to build chains.
    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);
    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn internal_errors_keep_their_cause_chain() {
        let chain = Layer(
            "reading vault v",
            Some(Box::new(Layer(
                "metadata store unavailable",
                Some(Box::new(Layer("disk I/O error", None))),
            ))),
        );
        let e = ApiError::internal(chain);
        let cause = std::error::Error::source(&e).expect("the cause is kept");
        assert_eq!(cause.to_string(), "reading vault v");
        assert_eq!(
            error_chain(&e),
            "ServiceUnavailableException: The service is temporarily unable to handle the \
             request; retry later.; caused by: reading vault v; caused by: metadata store \
             unavailable; caused by: disk I/O error"
        );
        assert!(e.cause().unwrap().downcast_ref::<Layer>().is_some());
        assert_eq!(
            e,
            ApiError::service_unavailable(),
            "same answer to the client"
        );
    }
}
