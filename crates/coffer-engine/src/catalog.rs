//! The catalogue of a recovery point: every file it holds, read from the snapshot tree.
//!
//! A recovery point index (and a search over it) needs to know what files a recovery point
//! holds without restoring it. [`VaultRepo::catalog`](crate::VaultRepo::catalog) walks the
//! snapshot's tree in the repository (the same walk restore comparison uses) and lists each
//! regular file with its size, modification time and a content hash. The hash is the SHA-256
//! of the file's content blob ids (the ids of its content-defined chunks, in order): two files
//! with equal content in one vault have equal hashes, and no file content is read to get it.

use rustic_core::{IndexedFull, Repository, repofile::Node, repofile::SnapshotFile};
use sha2::{Digest, Sha256};

use crate::{Result, compare::walk_files, progress::ProgressSink};

/// One file of a recovery point.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CatalogEntry {
    /// The path relative to the recovery point's root, `/`-separated (for a recovery point of
    /// one file, its name).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time, in milliseconds since the Unix epoch, when recorded.
    pub modified_ms: Option<i64>,
    /// SHA-256 (hex) over the file's content blob ids.
    pub content_hash: String,
}

fn entry(path: &std::path::Path, node: &Node) -> CatalogEntry {
    let mut h = Sha256::new();
    for id in node.content.iter().flatten() {
        h.update(id.to_hex().as_bytes());
    }
    CatalogEntry {
        path: path
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
        size: node.meta.size,
        modified_ms: node.meta.mtime.map(|t| t.as_millisecond()),
        content_hash: hex::encode(h.finalize()),
    }
}

/// Every regular file of `snap`, in path order.
pub(crate) fn catalog_snapshot<S: IndexedFull>(
    repo: &Repository<S>,
    snap: &SnapshotFile,
    sink: &ProgressSink,
) -> Result<Vec<CatalogEntry>> {
    let mut out = Vec::new();
    walk_files(repo, snap, sink, |rel, n| {
        out.push(entry(rel, n));
        Ok(())
    })?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
