//! The catalogue of a recovery point: every file it holds, read from the snapshot tree.
//!
//! A recovery point index (and a search over it) needs to know what files a recovery point
//! holds without restoring it. [`VaultRepo::catalog`](crate::VaultRepo::catalog) walks the
//! snapshot's tree in the repository (the same walk restore comparison uses) and lists each
//! regular file with its size, modification time and a content hash. The hash is the SHA-256
//! of the file's content blob ids (the ids of its content-defined chunks, in order): two files
//! with equal content in one vault have equal hashes, and no file content is read to get it.
//!
//! [`VaultRepo::catalog_from`](crate::VaultRepo::catalog_from) builds the same catalogue
//! incrementally from the catalogue of an earlier recovery point of the vault (the base):
//! restic trees are content-addressed, so a directory whose tree id is the same in both
//! snapshots holds the same files with the same metadata, and its rows are taken from the
//! base's catalogue without reading the tree; only directories whose tree differs are read.

use std::collections::HashMap;

use rustic_core::{
    IndexedFull, Repository,
    repofile::{Node, SnapshotFile},
};
use sha2::{Digest, Sha256};

use crate::{Error, Result, compare::walk_files, progress::ProgressSink, restore::unreadable_root};

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
    let path = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    entry_at(path, node)
}

fn entry_at(path: String, node: &Node) -> CatalogEntry {
    let mut h = Sha256::new();
    for id in node.content.iter().flatten() {
        h.update(id.to_hex().as_bytes());
    }
    CatalogEntry {
        path,
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

/// The catalogue of an earlier recovery point of the same vault, to build a new one from.
#[derive(Clone, Debug)]
pub struct CatalogBase {
    /// The earlier recovery point's snapshot.
    pub snapshot: crate::SnapshotRef,
    /// Its complete catalogue, in path order.
    pub entries: Vec<CatalogEntry>,
}

/// A catalogue and how it was built.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// Every regular file, in path order.
    pub entries: Vec<CatalogEntry>,
    /// Directory trees read from the vault (of this snapshot and of the base's).
    pub trees_read: u64,
    /// Files taken from the base's catalogue (their directory's tree was unchanged).
    pub files_reused: u64,
}

/// Every regular file of `snap`, in path order, taking the rows of directories unchanged since
/// `base` from its catalogue (all read from the tree when there is no base).
pub(crate) fn catalog_with_base<S: IndexedFull>(
    repo: &Repository<S>,
    snap: &SnapshotFile,
    base: Option<(&SnapshotFile, &[CatalogEntry])>,
    sink: &ProgressSink,
) -> Result<Catalog> {
    let root_dir = |s: &SnapshotFile| -> Result<Option<rustic_core::TreeId>> {
        let root =
            s.paths.iter().next().cloned().ok_or_else(|| {
                Error::VaultDamaged("recovery point records no source path".into())
            })?;
        let node = repo
            .node_from_snapshot_and_path(s, &root)
            .map_err(|e| unreadable_root(&root, &e))?;
        Ok(node.subtree.filter(|_| node.is_dir()))
    };
    let Some(tree) = root_dir(snap)? else {
        // A recovery point of one file: its catalogue is that file.
        let entries = catalog_snapshot(repo, snap, sink)?;
        return Ok(Catalog {
            entries,
            ..Catalog::default()
        });
    };
    let base = match base {
        Some((b, rows)) => root_dir(b)?.map(|t| (t, rows)),
        None => None,
    };
    let mut walk = Walk {
        repo,
        sink,
        rows: base.map_or(&[][..], |(_, r)| r),
        out: Catalog::default(),
    };
    walk.dir(tree, base.map(|(t, _)| t), "")?;
    let mut out = walk.out;
    out.entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The incremental walk: this snapshot's trees beside the base's.
struct Walk<'a, S: IndexedFull> {
    repo: &'a Repository<S>,
    sink: &'a ProgressSink,
    /// The base's catalogue, in path order.
    rows: &'a [CatalogEntry],
    out: Catalog,
}

impl<S: IndexedFull> Walk<'_, S> {
    /// Catalogues the directory `tree` at `prefix` (`""` for the root, else `a/b/`), whose
    /// tree at the same path in the base is `base`.
    fn dir(
        &mut self,
        tree: rustic_core::TreeId,
        base: Option<rustic_core::TreeId>,
        prefix: &str,
    ) -> Result<()> {
        self.sink.check_cancel()?;
        if base == Some(tree) {
            self.reuse(prefix);
            return Ok(());
        }
        let read = |id| {
            self.repo
                .get_tree(&id)
                .map_err(|e| Error::from_rustic("read a directory of the recovery point", &e))
        };
        let nodes = read(tree)?.nodes;
        let mut base_dirs: HashMap<std::ffi::OsString, rustic_core::TreeId> = HashMap::new();
        if let Some(b) = base {
            for n in read(b)?.nodes {
                if let (true, Some(t)) = (n.is_dir(), n.subtree) {
                    base_dirs.insert(n.name().into_owned(), t);
                }
            }
            self.out.trees_read += 1;
        }
        self.out.trees_read += 1;
        for node in &nodes {
            let name = node.name();
            let path = format!("{prefix}{}", name.to_string_lossy());
            if node.is_file() {
                self.out.entries.push(entry_at(path, node));
            } else if let (true, Some(sub)) = (node.is_dir(), node.subtree) {
                let b = base_dirs.get::<std::ffi::OsStr>(name.as_ref()).copied();
                self.dir(sub, b, &format!("{path}/"))?;
            }
        }
        Ok(())
    }

    /// Takes every row under `prefix` from the base's catalogue.
    fn reuse(&mut self, prefix: &str) {
        let from = self.rows.partition_point(|e| e.path.as_str() < prefix);
        let same = self.rows[from..]
            .iter()
            .take_while(|e| e.path.starts_with(prefix));
        let before = self.out.entries.len();
        self.out.entries.extend(same.cloned());
        self.out.files_reused += (self.out.entries.len() - before) as u64;
    }
}
