//! Sources beyond the file system: S3-compatible buckets and SQLite database files (and, from
//! other modules, database dumps). Each implements [`crate::Source`].

pub mod bucket;
pub(crate) mod s3;
pub mod sqlite;
