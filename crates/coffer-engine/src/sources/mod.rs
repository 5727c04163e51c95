//! Sources that are not files on this machine: each reads its data through the tools or the
//! protocol of the system that holds it (PostgreSQL's pg_dump, S3-compatible buckets, SQLite's
//! online backup API) and hands the engine what the [`crate::Source`] trait expects.

pub mod bucket;
pub mod postgres;
pub mod postgres_pitr;
pub(crate) mod s3;
pub mod sqlite;
