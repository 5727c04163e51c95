//! AWS Backup Search on the same endpoint as AWS Backup.
//!
//! A request whose SigV4 credential scope names the signing name `backup-search` is Backup
//! Search's (see `model/backupsearch/service-2.json`, generated into
//! [`crate::generated::search`]): routed with that service's own table and dispatched to a
//! [`BackupSearchService`]. Both services speak `rest-json` and share accounts, regions,
//! credentials and the error body, but Backup Search names its errors differently: what AWS
//! Backup answers with InvalidParameterValueException, Backup Search answers with
//! ValidationException, and its not-found, conflict and internal errors carry their own HTTP
//! statuses. [`search_error`] turns the domain's errors into the Backup Search spelling at this
//! boundary, so the domain keeps one set of errors for both services.

use crate::error::ApiError;
pub use crate::generated::search::operations::{
    BackupSearchService, OPERATIONS, Operation, call_with_default_input, dispatch,
};
pub use crate::generated::search::types;

/// The SigV4 signing name of AWS Backup Search (`metadata.signingName`).
pub const SIGNING_NAME: &str = "backup-search";

/// An error in the spelling AWS Backup Search's clients parse: the model's exception names
/// and statuses (ValidationException 400, ResourceNotFoundException 404, ConflictException 409,
/// ServiceQuotaExceededException 402, InternalServerException 500). Errors of the protocol
/// itself (signatures, unknown operations, 501) are common to both services and pass unchanged.
pub fn search_error(err: ApiError) -> ApiError {
    let (status, code) = match err.code() {
        "InvalidParameterValueException"
        | "MissingParameterValueException"
        | "InvalidRequestException"
        | "SerializationException" => (400, "ValidationException"),
        "ResourceNotFoundException" => (404, "ResourceNotFoundException"),
        "ConflictException" | "AlreadyExistsException" | "InvalidResourceStateException" => {
            (409, "ConflictException")
        }
        "LimitExceededException" => (402, "ServiceQuotaExceededException"),
        "ServiceUnavailableException" | "DependencyFailureException" => {
            (500, "InternalServerException")
        }
        _ => return err,
    };
    err.respelled(status, code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_errors_take_the_search_spelling() {
        let e = search_error(ApiError::invalid_parameter("bad"));
        assert_eq!(
            (e.status(), e.code(), e.message()),
            (400, "ValidationException", "bad")
        );
        let e = search_error(ApiError::not_found("gone").with_member("resourceId", "x"));
        assert_eq!((e.status(), e.code()), (404, "ResourceNotFoundException"));
        assert!(
            String::from_utf8(e.body())
                .unwrap()
                .contains("\"resourceId\":\"x\"")
        );
        let e = search_error(ApiError::conflict("busy"));
        assert_eq!((e.status(), e.code()), (409, "ConflictException"));
        let e = search_error(ApiError::internal("disk"));
        assert_eq!((e.status(), e.code()), (500, "InternalServerException"));
        assert!(!e.message().contains("disk"));
        let e = search_error(ApiError::not_implemented("StopSearchJob"));
        assert_eq!(e.status(), 501);
    }

    /// The generated table is what the vendored model says (codegen read this copy): every
    /// operation with its method, URI and status, and the signing name dispatch relies on.
    #[test]
    fn the_table_is_the_vendored_model() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../model/backupsearch/service-2.json"
        ))
        .expect("vendored Backup Search model");
        let model: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(model["metadata"]["signingName"], SIGNING_NAME);
        assert_eq!(model["metadata"]["protocol"], "rest-json");
        let ops = model["operations"].as_object().unwrap();
        assert_eq!(ops.len(), OPERATIONS.len());
        for spec in OPERATIONS {
            let op = &ops[spec.name]["http"];
            assert_eq!(op["method"], spec.method, "{}", spec.name);
            assert_eq!(op["requestUri"], spec.uri, "{}", spec.name);
            assert_eq!(
                op["responseCode"].as_u64().unwrap_or(200),
                u64::from(spec.success_status)
            );
        }
    }

    #[test]
    fn the_table_has_the_twelve_operations() {
        assert_eq!(OPERATIONS.len(), 12);
        let untag = Operation::UntagResource.spec();
        assert_eq!(untag.method, "DELETE");
        assert!(
            untag
                .bindings
                .iter()
                .any(|b| b.wire == "tagKeys" && b.kind == crate::operation::ScalarKind::StringList)
        );
    }
}
