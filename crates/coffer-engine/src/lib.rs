//! Coffer's data plane.
//!
//! A vault is a restic-format repository, written and read with `rustic_core`, so that an
//! operator who holds a vault's exported key can open it with the plain `restic` or `rustic`
//! tools. This crate creates and opens vaults, backs sources up into them as recovery points,
//! restores, copies, deletes, verifies and scans those recovery points for malware, and knows nothing of HTTP or of
//! the metadata store: the jobs layer persists what this crate hands back (the sealed vault key,
//! snapshot ids) and calls in again with it.
//!
//! The API is blocking, like `rustic_core` underneath it (which also uses rayon's global pool).
//! Async callers use the `*_async` entry points on [`VaultRepo`], which run the blocking work in
//! `tokio::task::spawn_blocking`, or call the blocking methods from their own blocking pool.

mod catalog;
mod compare;
mod error;
mod keys;
mod logging;
mod progress;
mod read;
mod restore;
mod scan;
mod source;
pub mod sources;
mod storage;
mod vault;

pub use catalog::{Catalog, CatalogBase, CatalogEntry};
pub use compare::CompareReport;
pub use error::{Error, Result};

/// The `rustic_core` types a [`Source`] implementation needs to describe entries.
pub mod rustic {
    pub use rustic_core::repofile::{Metadata, Node, NodeType};
}
pub use keys::{ExportedVaultKey, MasterKey, SealedVaultKey};
pub use logging::bridge_log_to_tracing;
pub use progress::{CancelToken, Phase, Progress};
pub use read::{OpenedFile, SnapshotReader};
pub use restore::{RestoreOptions, release_restore_claim};
pub use scan::{EICAR_RULE, ScanFinding, ScanReport, ScanRules};
pub use source::{DirectorySource, Source, SourceEntry, SourceSpec, StreamSource};
pub use sources::bucket::{BucketSource, BucketTarget, bucket_snapshot_path};
pub use sources::s3::{Listing, ObjectMeta, ObjectSummary, S3Client, S3Endpoint};
pub use sources::sqlite::SqliteSource;
pub use storage::VaultLocation;
pub use vault::{
    BackupOutcome, DeleteOutcome, RECOVERY_POINT_TAG_PREFIX, RecoveryPointInfo, RestoreOutcome,
    SnapshotRef, VaultRepo, VerifyReport,
};
