//! Where a vault's repository lives, and the storage layer Coffer puts between `rustic_core` and
//! the backend.
//!
//! The layer exists for two reasons. First, crash safety: `rustic_backend`'s local backend writes
//! files in place (a process killed mid-write leaves a truncated or zero-filled index or snapshot
//! file that breaks the vault), so on local disk every file is written to a temporary file in
//! `<vault>/.coffer-tmp/`, synced, and renamed into place; a reader sees a whole file or none.
//! (S3 PUTs are already all-or-nothing.) Second, cancellation: every read and write checks the
//! operation's [`crate::CancelToken`], so a cancelled operation stops at its next storage access
//! and, crucially, never writes its snapshot.

use std::{
    collections::BTreeMap,
    fs,
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use bytes::Bytes;
use rustic_core::{
    BytesList, ErrorKind, FileType, Id, ReadBackend, RusticError, RusticResult, WriteBackend,
};

use crate::{Error, Result, progress::ProgressSink};

const TMP_DIR: &str = ".coffer-tmp";

/// Where a vault's repository is stored.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum VaultLocation {
    /// A directory on a local (or locally mounted) file system.
    Local {
        /// The repository directory.
        path: PathBuf,
    },
    /// A bucket (and prefix) on an S3-compatible object store. Needs the `s3` cargo feature.
    S3 {
        /// Endpoint URL, e.g. `http://127.0.0.1:3900`.
        endpoint: String,
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket for this vault (e.g. `vaults/<id>`).
        root: String,
        /// Region name the store expects (e.g. `garage`, `us-east-1`).
        region: String,
        /// Access key id.
        access_key_id: String,
        /// Secret access key.
        secret_access_key: String,
        /// Local cache of the repository's small files, inside Coffer's data directory.
        /// `None` disables the cache.
        cache_dir: Option<PathBuf>,
    },
}

impl std::fmt::Debug for VaultLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.restic_repository())
    }
}

impl VaultLocation {
    /// A local directory vault.
    pub fn local(path: impl Into<PathBuf>) -> Self {
        Self::Local { path: path.into() }
    }

    /// The repository string plain `restic -r` takes for this location.
    #[must_use]
    pub fn restic_repository(&self) -> String {
        match self {
            Self::Local { path } => path.display().to_string(),
            Self::S3 {
                endpoint,
                bucket,
                root,
                ..
            } => {
                let host = endpoint.trim_end_matches('/');
                let root = root.trim_matches('/');
                format!("s3:{host}/{bucket}/{root}")
            }
        }
    }

    pub(crate) fn cache_dir(&self) -> Option<&Path> {
        match self {
            Self::Local { .. } => None,
            Self::S3 { cache_dir, .. } => cache_dir.as_deref(),
        }
    }

    /// A key identifying the repository within this process (for the per-vault lock).
    pub(crate) fn lock_key(&self) -> String {
        match self {
            Self::Local { path } => fs::canonicalize(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string(),
            Self::S3 { .. } => self.restic_repository(),
        }
    }

    /// Build the raw backend for this location.
    pub(crate) fn backend(&self) -> Result<Arc<dyn WriteBackend>> {
        match self {
            Self::Local { path } => {
                let s = path.to_str().ok_or_else(|| {
                    Error::InvalidInput(format!("vault path is not UTF-8: {}", path.display()))
                })?;
                let be = rustic_backend::local::LocalBackend::new(s, BTreeMap::new())
                    .map_err(|e| Error::from_rustic("open vault storage", &e))?;
                Ok(Arc::new(be))
            }
            #[cfg(feature = "s3")]
            Self::S3 {
                endpoint,
                bucket,
                root,
                region,
                access_key_id,
                secret_access_key,
                ..
            } => {
                let options: BTreeMap<String, String> = [
                    ("endpoint", endpoint.as_str()),
                    ("bucket", bucket.as_str()),
                    ("root", root.as_str()),
                    ("region", region.as_str()),
                    ("access_key_id", access_key_id.as_str()),
                    ("secret_access_key", secret_access_key.as_str()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
                let be = rustic_backend::OpenDALBackend::new("s3", options)
                    .map_err(|e| Error::from_rustic("open vault storage", &e))?;
                Ok(Arc::new(be))
            }
            #[cfg(not(feature = "s3"))]
            Self::S3 { .. } => Err(Error::InvalidInput(
                "S3 vault storage needs coffer-engine built with the `s3` feature".into(),
            )),
        }
    }

    /// Removes the whole repository at this location (the data of a deleted vault): every
    /// snapshot, index, pack, key and the config, in that order, so an interrupted removal
    /// leaves a repository that still opens or none. Removing an absent repository is no error.
    /// Returns how many files were removed.
    ///
    /// # Errors
    /// Storage errors (the removal can simply be run again).
    pub fn remove_repository(&self) -> Result<usize> {
        if let Some(root) = self.local_root() {
            return match fs::remove_dir_all(root) {
                Ok(()) => Ok(1),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(e) => Err(Error::io("remove vault", root, e)),
            };
        }
        let be = self.backend()?;
        let mut removed = 0;
        for tpe in [
            FileType::Snapshot,
            FileType::Index,
            FileType::Pack,
            FileType::Key,
            FileType::Config,
        ] {
            let ids = be
                .list(tpe)
                .map_err(|e| Error::from_rustic("remove vault", &e))?;
            for id in ids {
                be.remove(tpe, &id, false)
                    .map_err(|e| Error::from_rustic("remove vault", &e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub(crate) fn local_root(&self) -> Option<&Path> {
        match self {
            Self::Local { path } => Some(path),
            Self::S3 { .. } => None,
        }
    }
}

/// Storage wrapper used for every repository opened by the engine (see the module docs).
pub(crate) struct VaultStorage {
    inner: Arc<dyn WriteBackend>,
    local_root: Option<PathBuf>,
    sink: Arc<ProgressSink>,
}

impl VaultStorage {
    pub(crate) fn wrap(
        inner: Arc<dyn WriteBackend>,
        local_root: Option<PathBuf>,
        sink: Arc<ProgressSink>,
    ) -> Arc<dyn WriteBackend> {
        Arc::new(Self {
            inner,
            local_root,
            sink,
        })
    }

    fn cancelled() -> Box<RusticError> {
        RusticError::new(ErrorKind::Other, "operation cancelled")
    }

    fn check(&self) -> RusticResult<()> {
        if self.sink.cancel.is_cancelled() {
            Err(Self::cancelled())
        } else {
            Ok(())
        }
    }

    fn local_path(root: &Path, tpe: FileType, id: &Id) -> PathBuf {
        let hex = id.to_hex();
        match tpe {
            FileType::Config => root.join("config"),
            FileType::Pack => root.join("data").join(&hex[0..2]).join(&hex[..]),
            _ => root.join(tpe.dirname()).join(&hex[..]),
        }
    }

    fn write_atomic(root: &Path, tpe: FileType, id: &Id, content: &BytesList) -> RusticResult<()> {
        let io_err = |what: &str, path: &Path, err: std::io::Error| {
            RusticError::with_source(ErrorKind::InputOutput, "Failed to {what} `{path}`.", err)
                .attach_context("what", what.to_string())
                .attach_context("path", path.display().to_string())
        };
        let target = Self::local_path(root, tpe, id);
        let tmp_dir = root.join(TMP_DIR);
        fs::create_dir_all(&tmp_dir).map_err(|e| io_err("create", &tmp_dir, e))?;
        let mut nonce = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let tmp = tmp_dir.join(format!("{}-{}", id.to_hex().as_str(), hex::encode(nonce)));
        let result = (|| {
            let mut f = fs::File::create(&tmp).map_err(|e| io_err("create", &tmp, e))?;
            for chunk in content.slice() {
                f.write_all(chunk).map_err(|e| io_err("write", &tmp, e))?;
            }
            f.sync_all().map_err(|e| io_err("sync", &tmp, e))?;
            drop(f);
            let dir = target.parent().unwrap_or(root);
            if !dir.exists() {
                fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
            }
            fs::rename(&tmp, &target).map_err(|e| io_err("rename into", &target, e))?;
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// Remove temporary files left by a process that died while writing. Only files older than an
/// hour are removed, so a concurrent writer's file in progress is never touched.
pub(crate) fn sweep_tmp(root: &Path) {
    let Ok(entries) = fs::read_dir(root.join(TMP_DIR)) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 3600);
        if old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

impl ReadBackend for VaultStorage {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        self.check()?;
        self.inner.list_with_size(tpe)
    }

    fn list(&self, tpe: FileType) -> RusticResult<Vec<Id>> {
        self.check()?;
        self.inner.list(tpe)
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        self.check()?;
        self.inner.read_full(tpe, id)
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        self.check()?;
        self.inner.read_partial(tpe, id, cacheable, offset, length)
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        self.inner.warmup_path(tpe, id)
    }

    fn needs_warm_up(&self) -> bool {
        self.inner.needs_warm_up()
    }

    fn warm_up(&self, tpe: FileType, id: &Id) -> RusticResult<()> {
        self.inner.warm_up(tpe, id)
    }
}

impl WriteBackend for VaultStorage {
    fn create(&self) -> RusticResult<()> {
        self.inner.create()
    }

    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        self.check()?;
        match &self.local_root {
            Some(root) => Self::write_atomic(root, tpe, id, &content),
            None => self.inner.write_bytes(tpe, id, cacheable, content),
        }
    }

    fn remove(&self, tpe: FileType, id: &Id, cacheable: bool) -> RusticResult<()> {
        self.inner.remove(tpe, id, cacheable)
    }
}
