//! The domain's error type: an API error, or a store failure on its way to becoming one.

use coffer_api::ApiError;
use coffer_store::StoreError;

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

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error(ApiError::internal(format!("record encoding: {e}")))
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        e.0
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
