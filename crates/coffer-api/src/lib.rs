//! Coffer's protocol layer: AWS Backup's `rest-json` wire protocol, AWS Backup Search's (see
//! [`search`]), and STS's `GetCallerIdentity` (see [`sts`]) that clients call first, all on
//! the same endpoint.
//!
//! Everything the service model states (types, routes, bindings, status codes, constraints) is
//! generated from it into [`generated`] by `scripts/codegen.py`; the hand-written modules here
//! hold the protocol behaviour the model does not spell out: error encoding as the SDKs parse
//! it, SigV4 verification, URI routing and the HTTP entry point. Nothing in this crate knows
//! about backup plans or vaults beyond their shapes: the domain implements [`BackupService`]
//! and [`search::BackupSearchService`].

pub mod error;
pub mod generated;
pub mod http;
pub mod model_enum;
pub mod operation;
pub mod request;
pub mod router;
pub mod search;
pub mod sigv4;
pub mod sts;
pub mod timestamp;
pub mod validate;

pub use error::{ApiError, error_chain};
pub use generated::operations::{BackupService, OPERATIONS, Operation, dispatch};
pub use generated::types;
pub use model_enum::ModelEnum;
pub use request::RequestContext;
pub use timestamp::Timestamp;
