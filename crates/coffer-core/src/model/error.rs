//! The domain's error type: an API error, or a store failure on its way to becoming one.

use coffer_api::ApiError;
use coffer_store::{ErrorKind, StoreError};

/// An error of a domain operation. Store failures are logged in full and reach the client
/// as ServiceUnavailableException.
#[derive(Debug)]
pub struct Error(pub ApiError);

impl Error {
    /// Whether this is the caller's mistake (a 4xx: not found, invalid input), as opposed to
    /// Coffer failing (a store or encoding failure), which must never pass for "not found".
    pub fn is_client_error(&self) -> bool {
        self.0.status() < 500
    }

    /// The store failure behind this error, when it is one.
    pub fn store_error(&self) -> Option<&StoreError> {
        self.0.cause()?.downcast_ref::<StoreError>()
    }

    /// The engine failure behind this error, when it is one.
    pub fn engine_error(&self) -> Option<&coffer_engine::Error> {
        self.0.cause()?.downcast_ref::<coffer_engine::Error>()
    }

    /// Whether this is a stored record that cannot be read (the store said so, or the record
    /// did not decode): the same read fails the same way however often it is retried.
    pub fn is_corrupt_record(&self) -> bool {
        self.store_error()
            .is_some_and(|e| e.kind() == ErrorKind::Corrupt)
    }

    /// Whether the metadata store failed in a way a later retry can mend (see
    /// [`StoreError::is_retryable`]).
    pub fn is_retryable_store_failure(&self) -> bool {
        self.store_error().is_some_and(StoreError::is_retryable)
    }

    /// A one-line description for an operator: the client's message for an API error; for an
    /// internal failure what failed, without the detail that stays in the log (for a store
    /// failure its kind, for a vault storage failure the engine's one-line message).
    pub fn operator_message(&self) -> String {
        if let Some(e) = self.engine_error() {
            return e.status_message();
        }
        if let Some(e) = self.store_error() {
            return format!("Coffer's metadata store failed ({}).", e.kind());
        }
        self.0.message().to_string()
    }
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error(e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error(ApiError::internal(e))
    }
}

/// A record that does not decode (or encode) is a corrupt record: a store failure of kind
/// `Corrupt`, with serde's error as its cause.
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error(ApiError::internal(StoreError::corrupt(
            "record encoding",
            e,
        )))
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        e.0
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
