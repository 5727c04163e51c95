//! Errors as the AWS SDKs parse them.
//!
//! Every failure leaves Coffer as a JSON body `{"__type": NAME, "Message": TEXT, ...}` with the
//! `x-amzn-ErrorType` header naming the exception, so botocore, the Rust SDK and the Go SDK all
//! raise the modelled exception type. Internal failures become ServiceUnavailableException with
//! a generic message; their detail goes to the log with the request id, never to the client.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};

/// An error answer of the API: HTTP status, exception name, message and modelled members.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    status: u16,
    code: Cow<'static, str>,
    message: String,
    members: Map<String, Value>,
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
    /// An internal failure: logged with its detail, answered as ServiceUnavailableException.
    pub fn internal(detail: impl fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::service_unavailable()
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

impl std::error::Error for ApiError {}

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
        assert_eq!(e.status(), 500);
    }
}
