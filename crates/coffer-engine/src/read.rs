//! Reading a recovery point in place: its files listed and their bytes read by range, straight
//! from the vault's repository, without restoring anything to disk.
//!
//! Coffer's backup access points serve a recovery point read-only over an S3-compatible
//! endpoint (ListObjectsV2, HeadObject, ranged GetObject). A [`SnapshotReader`] is what such a
//! reader holds: the repository opened once with its index, the snapshot, and the catalogue of
//! its regular files (the same walk as [`VaultRepo::catalog`](crate::VaultRepo::catalog)).
//! [`SnapshotReader::read_at`] reads one range of one file blob by blob through
//! `rustic_core`'s `OpenFile`, so a caller can stream a file of any size a piece at a time.
//! Only files the catalogue lists can be opened: a path is never resolved against the tree
//! from caller-supplied text, so `..` or an absolute path reaches nothing.

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use rustic_core::{IndexedFullStatus, Repository, repofile::SnapshotFile, vfs::OpenFile};

use crate::{
    CatalogEntry, Error, Result, SnapshotRef, VaultRepo, catalog::catalog_snapshot,
    progress::ProgressSink, restore::unreadable_root,
};

/// An open, read-only view of one recovery point (cheap to clone, safe to share).
#[derive(Clone)]
pub struct SnapshotReader {
    inner: Arc<Inner>,
}

struct Inner {
    vault: VaultRepo,
    repo: Repository<IndexedFullStatus>,
    snap: SnapshotFile,
    /// The snapshot's source path; its files are below it (or it is the one file).
    root: String,
    root_is_file: bool,
    files: Vec<CatalogEntry>,
    by_path: HashMap<String, usize>,
}

impl std::fmt::Debug for SnapshotReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReader")
            .field("root", &self.inner.root)
            .field("files", &self.inner.files.len())
            .finish_non_exhaustive()
    }
}

/// One file of a recovery point, opened for reading.
pub struct OpenedFile {
    /// The file as the catalogue lists it (path, size, modification time, content hash).
    pub entry: CatalogEntry,
    file: OpenFile,
}

impl std::fmt::Debug for OpenedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedFile")
            .field("entry", &self.entry)
            .finish_non_exhaustive()
    }
}

impl VaultRepo {
    /// Opens recovery point `snapshot` for reading in place (blocking: it reads the vault's
    /// index and walks the snapshot's tree once).
    ///
    /// # Errors
    /// [`Error::RecoveryPointNotFound`], damaged vault data or storage errors.
    pub fn open_reader(&self, snapshot: &SnapshotRef) -> Result<SnapshotReader> {
        let sink = ProgressSink::silent();
        let _guard = self.shared();
        let repo = self
            .open_repo(&sink)?
            .to_indexed()
            .map_err(|e| Error::from_rustic("read vault index", &e))?;
        let snap = Self::load_snapshot(&repo, snapshot)?;
        let root =
            snap.paths.iter().next().cloned().ok_or_else(|| {
                Error::VaultDamaged("recovery point records no source path".into())
            })?;
        let node = repo
            .node_from_snapshot_and_path(&snap, &root)
            .map_err(|e| unreadable_root(&root, &e))?;
        let files = catalog_snapshot(&repo, &snap, &sink)?;
        let by_path = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.path.clone(), i))
            .collect();
        Ok(SnapshotReader {
            inner: Arc::new(Inner {
                vault: self.clone(),
                repo,
                snap,
                root,
                root_is_file: node.is_file(),
                files,
                by_path,
            }),
        })
    }

    /// [`VaultRepo::open_reader`] on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`VaultRepo::open_reader`].
    pub async fn open_reader_async(&self, snapshot: SnapshotRef) -> Result<SnapshotReader> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.open_reader(&snapshot))
            .await
            .map_err(|e| Error::Engine(format!("engine task failed: {e}")))?
    }
}

impl SnapshotReader {
    /// Every regular file of the recovery point, in path order (`/`-separated paths relative
    /// to the recovery point's root; for a recovery point of one file, its name).
    #[must_use]
    pub fn files(&self) -> &[CatalogEntry] {
        &self.inner.files
    }

    /// The file at `path` (as [`SnapshotReader::files`] names it), if the recovery point has
    /// one (blocking: it reads the tree nodes on the way).
    ///
    /// # Errors
    /// Damaged vault data or storage errors.
    pub fn open(&self, path: &str) -> Result<Option<OpenedFile>> {
        let Some(&i) = self.inner.by_path.get(path) else {
            return Ok(None);
        };
        let entry = self.inner.files[i].clone();
        let full = if self.inner.root_is_file {
            self.inner.root.clone()
        } else {
            format!("{}/{}", self.inner.root.trim_end_matches('/'), entry.path)
        };
        let _guard = self.inner.vault.shared();
        let node = self
            .inner
            .repo
            .node_from_snapshot_and_path(&self.inner.snap, &full)
            .map_err(|e| Error::from_rustic("read recovery point", &e))?;
        let file = self
            .inner
            .repo
            .open_file(&node)
            .map_err(|e| Error::from_rustic("read recovery point", &e))?;
        Ok(Some(OpenedFile { entry, file }))
    }

    /// At most `len` bytes of `file` from `offset` (fewer at the end of the file; none past
    /// it), read blob by blob (blocking).
    ///
    /// # Errors
    /// Damaged vault data or storage errors.
    pub fn read_at(&self, file: &OpenedFile, offset: u64, len: usize) -> Result<Bytes> {
        let offset = usize::try_from(offset)
            .map_err(|_| Error::InvalidInput("offset out of range".into()))?;
        let _guard = self.inner.vault.shared();
        self.inner
            .repo
            .read_file_at(&file.file, offset, len)
            .map_err(|e| Error::from_rustic("read recovery point", &e))
    }
}
