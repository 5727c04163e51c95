//! A vault: one restic-format repository and the operations on its recovery points.
//!
//! Every operation opens its own `rustic_core` repository handle with the vault's repository
//! key (no key derivation, so opening costs two small reads) wired to that operation's progress
//! sink and cancel token, so operations on one or many vaults run concurrently without sharing
//! mutable state.
//!
//! Locking: within one process, every vault has a reader-writer lock keyed by its location.
//! Backups, restores, copies and verifies hold it shared; pruning (the part of deleting a
//! recovery point that removes pack files) holds it exclusively, because packs that a running
//! backup deduplicates against must not vanish under it. Deleting a recovery point removes its
//! snapshot at once and prunes only if the lock is free; otherwise the space is reclaimed by the
//! next delete or [`VaultRepo::prune`]. Several processes writing one vault must serialise
//! pruning themselves (the jobs layer holds a per-vault lease); see docs/engine.md.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    str::FromStr,
    sync::{Arc, Mutex, OnceLock, RwLock, Weak},
};

use rustic_core::{
    BackupOptions, CheckOptions, ConfigOptions, Credentials, KeyOptions, OpenStatus, ParentOptions,
    PruneOptions, Repository, RepositoryBackends, RepositoryOptions, SnapshotGroupCriterion,
    SnapshotOptions,
    repofile::{ConfigFile, KeyId, SnapshotFile, SnapshotId},
};

use crate::{
    CompareReport, Error, ExportedVaultKey, MasterKey, Result, SealedVaultKey, SourceSpec,
    VaultLocation,
    catalog::{Catalog, CatalogBase, CatalogEntry, catalog_snapshot, catalog_with_base},
    compare::compare_snapshot,
    keys::{VaultSecrets, random_password},
    progress::{CancelToken, Phase, Progress, ProgressFn, ProgressSink, SinkBars},
    restore::{RestoreOptions, restore_snapshot},
    scan::{ScanReport, ScanRules, scan_snapshot},
    source::{Warnings, WatchedSource},
    storage::{VaultStorage, sweep_tmp},
};

/// Tag prefix marking a snapshot as the recovery point with the id that follows.
pub const RECOVERY_POINT_TAG_PREFIX: &str = "coffer-rp:";
/// Host name recorded in every snapshot Coffer writes.
const SNAPSHOT_HOST: &str = "coffer";

/// A snapshot in a vault, by its full (64 hex digit) id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SnapshotRef(pub String);

impl std::fmt::Display for SnapshotRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A recovery point as listed from a vault.
#[derive(Clone, Debug)]
pub struct RecoveryPointInfo {
    /// The snapshot.
    pub snapshot: SnapshotRef,
    /// The recovery point id from the snapshot's tag, if Coffer wrote it.
    pub recovery_point_id: Option<String>,
    /// Other tags.
    pub tags: Vec<String>,
    /// When the backup started (RFC 3339).
    pub time: String,
    /// The source path recorded.
    pub paths: Vec<String>,
    /// Bytes of the source.
    pub total_bytes: u64,
    /// Files in the source.
    pub files: u64,
}

/// What a backup did.
#[derive(Clone, Debug)]
pub struct BackupOutcome {
    /// The new snapshot.
    pub snapshot: SnapshotRef,
    /// Bytes of new data (before compression) this backup added to the vault.
    pub bytes_added: u64,
    /// Bytes this backup added to the vault as stored (compressed, encrypted).
    pub bytes_stored: u64,
    /// Bytes of the source.
    pub total_bytes: u64,
    /// Files in the source.
    pub files: u64,
    /// Files new since the parent.
    pub files_new: u64,
    /// Files changed since the parent.
    pub files_changed: u64,
    /// Files taken unchanged from the parent without reading them.
    pub files_unmodified: u64,
    /// Files that changed or vanished while being read, and entries that could not be read.
    pub warnings: Vec<String>,
}

/// What a restore did.
#[derive(Clone, Debug, Default)]
pub struct RestoreOutcome {
    /// Files written.
    pub files_restored: u64,
    /// Files already identical in the target.
    pub files_unchanged: u64,
    /// Bytes written.
    pub bytes_restored: u64,
}

/// What a delete did.
#[derive(Clone, Debug)]
pub struct DeleteOutcome {
    /// Whether unused data was pruned now (false: another operation held the vault; the space
    /// is reclaimed by a later delete or prune).
    pub pruned: bool,
}

/// The result of verifying a vault.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    /// Problems that affect the integrity of recovery points.
    pub errors: Vec<String>,
    /// Oddities that do not (e.g. packs left by an interrupted backup).
    pub warnings: Vec<String>,
}

impl VerifyReport {
    /// True when no error was found.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// An open vault. Cheap to clone; safe to share between threads.
#[derive(Clone)]
pub struct VaultRepo {
    location: VaultLocation,
    key: rustic_core::repofile::MasterKey,
    lock: Arc<RwLock<()>>,
}

impl std::fmt::Debug for VaultRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultRepo")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

fn vault_lock(key: String) -> Arc<RwLock<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Weak<RwLock<()>>>>> = OnceLock::new();
    let mut map = LOCKS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(l) = map.get(&key).and_then(Weak::upgrade) {
        return l;
    }
    map.retain(|_, w| w.strong_count() > 0);
    let l = Arc::new(RwLock::new(()));
    map.insert(key, Arc::downgrade(&l));
    l
}

fn rustic_err(what: &'static str) -> impl Fn(Box<rustic_core::RusticError>) -> Error {
    move |e| Error::from_rustic(what, &e)
}

fn repo_options(location: &VaultLocation) -> RepositoryOptions {
    match location.cache_dir() {
        Some(dir) => RepositoryOptions::default().cache_dir(dir.to_path_buf()),
        None => RepositoryOptions::default().no_cache(true),
    }
}

fn backends(location: &VaultLocation, sink: &Arc<ProgressSink>) -> Result<RepositoryBackends> {
    let raw = location.backend()?;
    let be = VaultStorage::wrap(
        raw,
        location.local_root().map(Path::to_path_buf),
        sink.clone(),
    );
    Ok(RepositoryBackends::new(be, None))
}

pub(crate) fn callback(progress: impl Fn(&Progress) + Send + Sync + 'static) -> ProgressFn {
    Arc::new(progress)
}

fn check_tag(what: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.contains(',') || s.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!(
            "{what} must be non-empty without commas or control characters: {s:?}"
        )));
    }
    Ok(())
}

fn recovery_point_of(snap: &SnapshotFile) -> Option<String> {
    snap.tags
        .iter()
        .find_map(|t| t.strip_prefix(RECOVERY_POINT_TAG_PREFIX))
        .map(str::to_string)
}

impl VaultRepo {
    /// Create a new vault at `location` with a fresh repository key (repository format 2,
    /// compressed), and return it with its key sealed under `master` for the metadata store.
    ///
    /// # Errors
    /// [`Error::VaultExists`] if a repository is already there; storage errors.
    pub fn create(location: VaultLocation, master: &MasterKey) -> Result<(Self, SealedVaultKey)> {
        Self::create_inner(location, master, None)
    }

    /// Create a new vault that chunks data exactly like `like` (same chunker parameters, own
    /// id and keys), so that recovery points copied between the two deduplicate against each
    /// other's later backups. Use it for copy destinations.
    ///
    /// # Errors
    /// As [`VaultRepo::create`].
    pub fn create_like(
        location: VaultLocation,
        master: &MasterKey,
        like: &VaultRepo,
    ) -> Result<(Self, SealedVaultKey)> {
        let config = like.open_repo(&ProgressSink::silent())?.config().clone();
        Self::create_inner(location, master, Some(config))
    }

    fn create_inner(
        location: VaultLocation,
        master: &MasterKey,
        like: Option<ConfigFile>,
    ) -> Result<(Self, SealedVaultKey)> {
        if let Some(root) = location.local_root() {
            std::fs::create_dir_all(root).map_err(|e| Error::io("create vault", root, e))?;
        }
        let sink = ProgressSink::silent();
        let repo = Repository::new(&repo_options(&location), &backends(&location, &sink)?)
            .map_err(rustic_err("create vault"))?;
        if repo
            .config_id()
            .map_err(rustic_err("create vault"))?
            .is_some()
        {
            return Err(Error::VaultExists(location.restic_repository()));
        }
        let password = random_password();
        let repo_key = rustic_core::repofile::MasterKey::new();
        let creds = Credentials::Masterkey(repo_key.clone());
        let key_opts = KeyOptions::default()
            .hostname(Some(SNAPSHOT_HOST.to_string()))
            .username(Some("coffer".to_string()));
        let repo = match like {
            None => repo.init(&creds, &key_opts, &ConfigOptions::default()),
            Some(mut config) => {
                config.id = rustic_core::Id::random().into();
                config.is_hot = None;
                config.append_only = None;
                repo.init_with_config(&creds, &key_opts, config)
            }
        }
        .map_err(rustic_err("create vault"))?;
        drop(repo);
        let secrets = VaultSecrets { repo_key, password };
        let sealed = SealedVaultKey::seal(&secrets, master)?;
        let lock = vault_lock(location.lock_key());
        Ok((
            Self {
                location,
                key: secrets.repo_key,
                lock,
            },
            sealed,
        ))
    }

    /// Open an existing vault with its sealed key.
    ///
    /// # Errors
    /// [`Error::KeyRejected`] when the key does not fit, [`Error::VaultNotFound`] when no
    /// repository is there.
    pub fn open(
        location: VaultLocation,
        sealed: &SealedVaultKey,
        master: &MasterKey,
    ) -> Result<Self> {
        let secrets = sealed.open(master)?;
        let vault = Self {
            lock: vault_lock(location.lock_key()),
            location,
            key: secrets.repo_key,
        };
        vault.open_repo(&ProgressSink::silent())?;
        if let Some(root) = vault.location.local_root() {
            sweep_tmp(root);
        }
        Ok(vault)
    }

    /// What an operator needs to open the vault with plain `restic` or `rustic`: the
    /// repository string and its password (this is what `coffer vault-key export` prints). The
    /// first export writes the repository's restic key file for that password (one scrypt key
    /// derivation, ~0.4 s), so it needs write access to the vault.
    ///
    /// # Errors
    /// [`Error::KeyRejected`] when the sealed key does not open with `master`; storage errors.
    pub fn export_key(
        location: VaultLocation,
        sealed: &SealedVaultKey,
        master: &MasterKey,
    ) -> Result<ExportedVaultKey> {
        let secrets = sealed.open(master)?;
        let vault = Self::open(location, sealed, master)?;
        let repo = vault.open_repo(&ProgressSink::silent())?;
        let has_key = repo
            .list::<KeyId>()
            .map_err(rustic_err("export vault key"))?
            .next()
            .is_some();
        if !has_key {
            let key_opts = KeyOptions::default()
                .hostname(Some(SNAPSHOT_HOST.to_string()))
                .username(Some("coffer".to_string()));
            repo.add_key(&secrets.password, &key_opts)
                .map_err(rustic_err("export vault key"))?;
        }
        Ok(ExportedVaultKey {
            repository: vault.location.restic_repository(),
            password: secrets.password,
        })
    }

    /// Where this vault is stored.
    #[must_use]
    pub fn location(&self) -> &VaultLocation {
        &self.location
    }

    pub(crate) fn open_repo(&self, sink: &Arc<ProgressSink>) -> Result<Repository<OpenStatus>> {
        let repo = Repository::new_with_progress(
            &repo_options(&self.location),
            &backends(&self.location, sink)?,
            SinkBars(sink.clone()),
        )
        .map_err(rustic_err("open vault"))?;
        if repo
            .config_id()
            .map_err(rustic_err("open vault"))?
            .is_none()
        {
            return Err(Error::VaultNotFound(self.location.restic_repository()));
        }
        repo.open(&Credentials::Masterkey(self.key.clone()))
            .map_err(|e| match Error::from_rustic("open vault", &e) {
                Error::VaultDamaged(m) | Error::Engine(m) | Error::Storage(m)
                    if m.contains("decrypt") || m.contains("Crypto") || m.contains("MAC") =>
                {
                    Error::KeyRejected(m)
                }
                other => other,
            })
    }

    pub(crate) fn shared(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.lock
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn finish<T>(sink: &ProgressSink, r: Result<T>) -> Result<T> {
        match r {
            Err(_) if sink.cancel.is_cancelled() => Err(Error::Cancelled),
            Ok(v) => {
                sink.phase(Phase::Done, "done");
                Ok(v)
            }
            Err(e) => Err(e),
        }
    }

    /// All snapshots in the vault, oldest first.
    ///
    /// # Errors
    /// Storage errors.
    pub fn list_snapshots(&self) -> Result<Vec<RecoveryPointInfo>> {
        let repo = self.open_repo(&ProgressSink::silent())?;
        let mut snaps = repo
            .get_all_snapshots()
            .map_err(rustic_err("list recovery points"))?;
        snaps.sort_by(|a, b| a.time.cmp(&b.time));
        Ok(snaps
            .into_iter()
            .map(|s| RecoveryPointInfo {
                recovery_point_id: recovery_point_of(&s),
                snapshot: SnapshotRef(s.id.to_hex().to_string()),
                tags: s
                    .tags
                    .iter()
                    .filter(|t| !t.starts_with(RECOVERY_POINT_TAG_PREFIX))
                    .cloned()
                    .collect(),
                time: s.time.timestamp().to_string(),
                paths: s.paths.iter().cloned().collect(),
                total_bytes: s.summary.as_ref().map_or(0, |x| x.total_bytes_processed),
                files: s.summary.as_ref().map_or(0, |x| x.total_files_processed),
            })
            .collect())
    }

    /// The snapshot holding recovery point `recovery_point_id`, if any.
    ///
    /// # Errors
    /// Storage errors.
    pub fn find_recovery_point(&self, recovery_point_id: &str) -> Result<Option<SnapshotRef>> {
        Ok(self
            .list_snapshots()?
            .into_iter()
            .find(|i| i.recovery_point_id.as_deref() == Some(recovery_point_id))
            .map(|i| i.snapshot))
    }

    pub(crate) fn load_snapshot<S: rustic_core::Open>(
        repo: &Repository<S>,
        snapshot: &SnapshotRef,
    ) -> Result<SnapshotFile> {
        let id = SnapshotId::from_str(&snapshot.0)
            .map_err(|_| Error::RecoveryPointNotFound(snapshot.0.clone()))?;
        repo.get_file::<SnapshotFile>(&id)
            .map(|mut s| {
                s.id = id;
                s
            })
            .map_err(|e| {
                tracing::debug!("loading snapshot {snapshot}: {}", e.display_log());
                Error::RecoveryPointNotFound(snapshot.0.clone())
            })
    }

    /// Back `source` up as recovery point `recovery_point_id`.
    ///
    /// With `parent` (the resource's previous recovery point), files whose metadata did not
    /// change are taken from it without being read or stored again. `tags` are added to the
    /// snapshot. Files that change or vanish while being read are reported in
    /// [`BackupOutcome::warnings`]. When cancelled, no snapshot is written and
    /// [`Error::Cancelled`] is returned; data written so far stays as unreferenced packs that the
    /// next prune removes.
    ///
    /// # Errors
    /// [`Error::SourceNotFound`], [`Error::PermissionDenied`], [`Error::Cancelled`], storage
    /// errors.
    pub fn backup(
        &self,
        source: &SourceSpec,
        recovery_point_id: &str,
        parent: Option<&SnapshotRef>,
        tags: &[String],
        progress: impl Fn(&Progress) + Send + Sync + 'static,
        cancel: CancelToken,
    ) -> Result<BackupOutcome> {
        let sink = ProgressSink::new(callback(progress), cancel);
        let r = self.backup_inner(source, recovery_point_id, parent, tags, &sink);
        Self::finish(&sink, r)
    }

    fn backup_inner(
        &self,
        source: &SourceSpec,
        recovery_point_id: &str,
        parent: Option<&SnapshotRef>,
        tags: &[String],
        sink: &Arc<ProgressSink>,
    ) -> Result<BackupOutcome> {
        check_tag("recovery point id", recovery_point_id)?;
        for t in tags {
            check_tag("tag", t)?;
        }
        let src = source.to_source()?;
        src.check()?;
        let _guard = self.shared();
        sink.phase(Phase::Preparing, "reading index");
        let repo = self
            .open_repo(sink)?
            .to_indexed_ids()
            .map_err(rustic_err("read vault index"))?;
        sink.check_cancel()?;

        let mut snap_opts = SnapshotOptions::default()
            .host(SNAPSHOT_HOST.to_string())
            .add_tags(&format!("{RECOVERY_POINT_TAG_PREFIX}{recovery_point_id}"))
            .map_err(rustic_err("backup"))?;
        for t in tags {
            snap_opts = snap_opts.add_tags(t).map_err(rustic_err("backup"))?;
        }
        let snap = snap_opts.to_snapshot().map_err(rustic_err("backup"))?;

        let mut parent_opts =
            ParentOptions::default().group_by(SnapshotGroupCriterion::from_str("").ok());
        match parent {
            Some(p) if src.trust_metadata() => parent_opts = parent_opts.parents(vec![p.0.clone()]),
            _ => parent_opts = parent_opts.force(true),
        }
        let opts = BackupOptions::default().parent_opts(parent_opts);

        let warnings = Arc::new(Warnings::default());
        let watched = WatchedSource {
            inner: src.clone(),
            sink: sink.clone(),
            warnings: warnings.clone(),
        };
        let snap = match repo.archive(&opts, &watched, snap, &[src.snapshot_path()]) {
            Ok(snap) => snap,
            Err(e) => return Err(src.failure().unwrap_or_else(|| rustic_err("backup")(e))),
        };
        let summary = snap.summary.clone().unwrap_or_default();
        Ok(BackupOutcome {
            snapshot: SnapshotRef(snap.id.to_hex().to_string()),
            bytes_added: summary.data_added,
            bytes_stored: summary.data_added_packed,
            total_bytes: summary.total_bytes_processed,
            files: summary.total_files_processed,
            files_new: summary.files_new,
            files_changed: summary.files_changed,
            files_unmodified: summary.files_unmodified,
            warnings: warnings.take(),
        })
    }

    /// Restore a recovery point (all of it, or `opts.paths` relative to the backed-up source)
    /// into `target`. See [`RestoreOptions`] for the rules on existing content.
    ///
    /// # Errors
    /// [`Error::TargetNotEmpty`], [`Error::PathNotInRecoveryPoint`], [`Error::UnsafePath`],
    /// [`Error::Cancelled`], storage errors.
    pub fn restore(
        &self,
        snapshot: &SnapshotRef,
        target: &Path,
        opts: &RestoreOptions,
        progress: impl Fn(&Progress) + Send + Sync + 'static,
        cancel: CancelToken,
    ) -> Result<RestoreOutcome> {
        let sink = ProgressSink::new(callback(progress), cancel);
        let r = (|| {
            let _guard = self.shared();
            sink.phase(Phase::Preparing, "reading index");
            let repo = self
                .open_repo(&sink)?
                .to_indexed()
                .map_err(rustic_err("read vault index"))?;
            let snap = Self::load_snapshot(&repo, snapshot)?;
            restore_snapshot(&repo, &snap, target, opts, &sink)
        })();
        Self::finish(&sink, r)
    }

    /// Restore a bucket's recovery point (all of it, or `target.keys`) into a bucket: see
    /// [`BucketTarget`].
    ///
    /// # Errors
    /// [`Error::PathNotInRecoveryPoint`], [`Error::InvalidInput`] (bucket missing or already
    /// there), [`Error::PermissionDenied`], [`Error::Cancelled`], storage errors.
    pub fn restore_to_bucket(
        &self,
        snapshot: &SnapshotRef,
        target: &crate::BucketTarget,
        progress: impl Fn(&Progress) + Send + Sync + 'static,
        cancel: CancelToken,
    ) -> Result<RestoreOutcome> {
        let sink = ProgressSink::new(callback(progress), cancel);
        let r = (|| {
            let _guard = self.shared();
            sink.phase(Phase::Preparing, "reading index");
            let repo = self
                .open_repo(&sink)?
                .to_indexed()
                .map_err(rustic_err("read vault index"))?;
            let snap = Self::load_snapshot(&repo, snapshot)?;
            crate::sources::bucket::restore_to_bucket(&repo, &snap, target, &sink)
        })();
        Self::finish(&sink, r)
    }

    /// [`VaultRepo::restore_to_bucket`] on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`VaultRepo::restore_to_bucket`].
    pub async fn restore_to_bucket_async(
        &self,
        snapshot: SnapshotRef,
        target: crate::BucketTarget,
        progress: impl Fn(&Progress) + Send + Sync + 'static,
        cancel: CancelToken,
    ) -> Result<RestoreOutcome> {
        let me = self.clone();
        Self::spawn(move || me.restore_to_bucket(&snapshot, &target, progress, cancel)).await
    }

    /// Writes the content of a recovery point that holds one stream (a database dump, a disk
    /// image) to `w`, reporting its bytes as progress; returns the bytes written. The caller
    /// wraps this in [`Self::finish`] through its own public entry point.
    pub(crate) fn dump_stream(
        &self,
        snapshot: &SnapshotRef,
        w: &mut dyn std::io::Write,
        sink: &Arc<ProgressSink>,
    ) -> Result<u64> {
        let _guard = self.shared();
        sink.phase(Phase::Preparing, "reading index");
        let repo = self
            .open_repo(sink)?
            .to_indexed()
            .map_err(rustic_err("read vault index"))?;
        let snap = Self::load_snapshot(&repo, snapshot)?;
        let total = snap.summary.as_ref().map(|x| x.total_bytes_processed);
        sink.update(true, |p| {
            p.phase = Phase::Transferring;
            "reading recovery point".clone_into(&mut p.activity);
            p.bytes_total = total;
        });
        let mut node = None;
        crate::compare::walk_files(&repo, &snap, sink, |_, n| {
            node.get_or_insert_with(|| n.clone());
            Ok(())
        })?;
        let node = node.ok_or_else(|| {
            Error::InvalidInput(format!("recovery point {snapshot} holds no stream to read"))
        })?;
        let mut counting = CountingWriter {
            inner: w,
            sink,
            written: 0,
        };
        repo.dump(&node, &mut counting)
            .map_err(rustic_err("read recovery point"))?;
        Ok(counting.written)
    }

    /// Copy a recovery point into `dest` (another vault, other keys) as recovery point
    /// `dest_recovery_point_id`; returns the snapshot in `dest`. Only blobs `dest` lacks are
    /// copied; the snapshot is written last, so an interrupted copy leaves no recovery point.
    ///
    /// # Errors
    /// [`Error::RecoveryPointNotFound`], [`Error::Cancelled`], storage errors.
    pub fn copy_to(
        &self,
        dest: &VaultRepo,
        snapshot: &SnapshotRef,
        dest_recovery_point_id: &str,
        progress: impl Fn(&Progress) + Send + Sync + 'static,
        cancel: CancelToken,
    ) -> Result<SnapshotRef> {
        let sink = ProgressSink::new(callback(progress), cancel);
        let r = (|| {
            check_tag("recovery point id", dest_recovery_point_id)?;
            let _g1 = self.shared();
            let _g2 = (!Arc::ptr_eq(&self.lock, &dest.lock)).then(|| dest.shared());
            sink.phase(Phase::Preparing, "reading indexes");
            let src = self
                .open_repo(&sink)?
                .to_indexed()
                .map_err(rustic_err("read vault index"))?;
            let dst = dest
                .open_repo(&sink)?
                .to_indexed_ids()
                .map_err(rustic_err("read destination index"))?;
            if src.config().chunker_polynomial != dst.config().chunker_polynomial {
                tracing::info!(
                    "copy destination {:?} chunks differently from the source; copied data will \
                     not deduplicate against the destination's own backups",
                    dest.location
                );
            }
            let mut snap = Self::load_snapshot(&src, snapshot)?;
            let mut tags: Vec<String> = snap
                .tags
                .iter()
                .filter(|t| !t.starts_with(RECOVERY_POINT_TAG_PREFIX))
                .cloned()
                .collect();
            tags.push(format!(
                "{RECOVERY_POINT_TAG_PREFIX}{dest_recovery_point_id}"
            ));
            snap.tags = rustic_core::StringList::from_str(&tags.join(","))
                .map_err(|e| Error::InvalidInput(format!("tags: {e}")))?;
            let before: std::collections::HashSet<_> = dst
                .list::<SnapshotId>()
                .map_err(rustic_err("copy"))?
                .collect();
            src.copy(&dst, [&snap]).map_err(rustic_err("copy"))?;
            sink.phase(Phase::Finishing, "finding copied snapshot");
            let mut new = dst
                .get_all_snapshots()
                .map_err(rustic_err("copy"))?
                .into_iter()
                .filter(|s| !before.contains(&s.id))
                .filter(|s| recovery_point_of(s).as_deref() == Some(dest_recovery_point_id));
            new.next()
                .map(|s| SnapshotRef(s.id.to_hex().to_string()))
                .ok_or_else(|| Error::Engine("copied snapshot not found in destination".into()))
        })();
        Self::finish(&sink, r)
    }

    /// Delete a recovery point: its snapshot goes at once; unused data is pruned if no other
    /// operation is using the vault in this process (see the module docs).
    ///
    /// # Errors
    /// [`Error::RecoveryPointNotFound`], storage errors.
    pub fn delete(&self, snapshot: &SnapshotRef) -> Result<DeleteOutcome> {
        let sink = ProgressSink::silent();
        {
            let repo = self.open_repo(&sink)?;
            let snap = Self::load_snapshot(&repo, snapshot)?;
            repo.delete_snapshots(&[snap.id])
                .map_err(rustic_err("delete recovery point"))?;
        }
        let Ok(guard) = self.lock.try_write() else {
            tracing::info!(
                "vault {:?} busy; unused data will be pruned later",
                self.location
            );
            return Ok(DeleteOutcome { pruned: false });
        };
        self.prune_locked(&sink)?;
        drop(guard);
        Ok(DeleteOutcome { pruned: true })
    }

    /// Removes a recovery point's snapshot without pruning: its unused data stays until a later
    /// prune. For vaults that other processes may write at the same time (a bucket shared by
    /// the nodes of a cluster), where a prune could remove the packs of another node's backup
    /// in progress (see "Locking and prune policy" in docs/engine.md).
    ///
    /// # Errors
    /// [`Error::RecoveryPointNotFound`] when the snapshot is gone; storage errors.
    pub fn forget(&self, snapshot: &SnapshotRef) -> Result<DeleteOutcome> {
        let repo = self.open_repo(&ProgressSink::silent())?;
        let snap = Self::load_snapshot(&repo, snapshot)?;
        repo.delete_snapshots(&[snap.id])
            .map_err(rustic_err("delete recovery point"))?;
        Ok(DeleteOutcome { pruned: false })
    }

    /// [`VaultRepo::forget`] on the blocking pool.
    ///
    /// # Errors
    /// As [`VaultRepo::forget`].
    pub async fn forget_async(&self, snapshot: SnapshotRef) -> Result<DeleteOutcome> {
        let me = self.clone();
        Self::spawn(move || me.forget(&snapshot)).await
    }

    /// Remove data no recovery point uses any more, waiting for running operations on this
    /// vault to finish first.
    ///
    /// # Errors
    /// Storage errors.
    pub fn prune(&self) -> Result<()> {
        let _guard = self
            .lock
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.prune_locked(&ProgressSink::silent())
    }

    fn prune_locked(&self, sink: &Arc<ProgressSink>) -> Result<()> {
        let repo = self.open_repo(sink)?;
        let opts = PruneOptions::default().instant_delete(true);
        let plan = repo.prune_plan(&opts).map_err(rustic_err("prune"))?;
        repo.prune(&opts, plan).map_err(rustic_err("prune"))?;
        if let Some(root) = self.location.local_root() {
            sweep_tmp(root);
        }
        Ok(())
    }

    /// Check the vault's structure (indexes, snapshots, trees, pack headers) and, with
    /// `read_data`, read and authenticate every pack.
    ///
    /// # Errors
    /// [`Error::Cancelled`], or storage errors that stop the check itself; damage found is in
    /// the report.
    pub fn verify(
        &self,
        read_data: bool,
        progress: impl Fn(&Progress) + Send + Sync + 'static,
        cancel: CancelToken,
    ) -> Result<VerifyReport> {
        let sink = ProgressSink::new(callback(progress), cancel);
        let r = (|| {
            let _guard = self.shared();
            let repo = self.open_repo(&sink)?;
            let mut report = VerifyReport::default();
            // rustic_core 0.13's check panics ("index still in use") when its worker threads
            // have not let go of the index within the 100 ms it grants them, which a loaded
            // machine can take longer than. The check only reads, so it is simply run again;
            // a panic that keeps coming back is reported as a failed check, never passed on.
            let mut attempts = 0;
            let outcome = loop {
                attempts += 1;
                let opts = CheckOptions::default().read_data(read_data);
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| repo.check(opts))) {
                    Ok(outcome) => break Some(outcome),
                    Err(_) if attempts < 3 => sink.check_cancel()?,
                    Err(_) => break None,
                }
            };
            let Some(outcome) = outcome else {
                report.errors.push(
                    "verify: the repository check stopped unexpectedly three times; run it again"
                        .to_string(),
                );
                sink.check_cancel()?;
                return Ok(report);
            };
            match outcome {
                Ok(results) => {
                    for (level, err) in results.0 {
                        let line = err.to_string().replace('\n', " ");
                        if format!("{level:?}") == "Warn" {
                            report.warnings.push(line);
                        } else {
                            report.errors.push(line);
                        }
                    }
                }
                Err(e) => {
                    sink.check_cancel()?;
                    report
                        .errors
                        .push(Error::from_rustic("verify", &e).to_string());
                }
            }
            sink.check_cancel()?;
            Ok(report)
        })();
        Self::finish(&sink, r)
    }

    /// Compare what a restore of the whole recovery point wrote into `target` with the
    /// recovery point as the vault holds it (see [`CompareReport`]).
    ///
    /// # Errors
    /// [`Error::RecoveryPointNotFound`], [`Error::Cancelled`], damaged vault data or storage
    /// errors that stop the comparison; differences found are in the report.
    pub fn compare_restored(
        &self,
        snapshot: &SnapshotRef,
        target: &Path,
        cancel: CancelToken,
    ) -> Result<CompareReport> {
        let sink = ProgressSink::new(callback(|_| {}), cancel);
        let r = (|| {
            let _guard = self.shared();
            let repo = self
                .open_repo(&sink)?
                .to_indexed()
                .map_err(rustic_err("read vault index"))?;
            let snap = Self::load_snapshot(&repo, snapshot)?;
            compare_snapshot(&repo, &snap, target, &sink)
        })();
        Self::finish(&sink, r)
    }

    /// The catalogue of a recovery point: every regular file of its snapshot, in path order
    /// (see [`CatalogEntry`]).
    ///
    /// # Errors
    /// [`Error::RecoveryPointNotFound`], [`Error::Cancelled`], damaged vault data or storage
    /// errors.
    pub fn catalog(
        &self,
        snapshot: &SnapshotRef,
        cancel: CancelToken,
    ) -> Result<Vec<CatalogEntry>> {
        let sink = ProgressSink::new(callback(|_| {}), cancel);
        let r = (|| {
            let _guard = self.shared();
            let repo = self
                .open_repo(&sink)?
                .to_indexed()
                .map_err(rustic_err("read vault index"))?;
            let snap = Self::load_snapshot(&repo, snapshot)?;
            catalog_snapshot(&repo, &snap, &sink)
        })();
        Self::finish(&sink, r)
    }

    /// [`VaultRepo::catalog`] on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`VaultRepo::catalog`].
    pub async fn catalog_async(
        &self,
        snapshot: SnapshotRef,
        cancel: CancelToken,
    ) -> Result<Vec<CatalogEntry>> {
        let me = self.clone();
        Self::spawn(move || me.catalog(&snapshot, cancel)).await
    }

    /// The catalogue of a recovery point built from `base`, the catalogue of an earlier
    /// recovery point of this vault: directories whose tree is unchanged since the base are
    /// taken from it without being read (see [`Catalog`]). Without a base, every directory is
    /// read. The entries equal [`VaultRepo::catalog`]'s.
    ///
    /// # Errors
    /// As [`VaultRepo::catalog`]; also when the base's snapshot cannot be read.
    pub fn catalog_from(
        &self,
        snapshot: &SnapshotRef,
        base: Option<&CatalogBase>,
        cancel: CancelToken,
    ) -> Result<Catalog> {
        let sink = ProgressSink::new(callback(|_| {}), cancel);
        let r = (|| {
            let _guard = self.shared();
            let repo = self
                .open_repo(&sink)?
                .to_indexed()
                .map_err(rustic_err("read vault index"))?;
            let snap = Self::load_snapshot(&repo, snapshot)?;
            let base_snap = match base {
                Some(b) => Some((Self::load_snapshot(&repo, &b.snapshot)?, &b.entries[..])),
                None => None,
            };
            let base = base_snap.as_ref().map(|(s, rows)| (s, *rows));
            catalog_with_base(&repo, &snap, base, &sink)
        })();
        Self::finish(&sink, r)
    }

    /// [`VaultRepo::catalog_from`] on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`VaultRepo::catalog_from`].
    pub async fn catalog_from_async(
        &self,
        snapshot: SnapshotRef,
        base: Option<CatalogBase>,
        cancel: CancelToken,
    ) -> Result<Catalog> {
        let me = self.clone();
        Self::spawn(move || me.catalog_from(&snapshot, base.as_ref(), cancel)).await
    }

    /// Scans a recovery point's files with `rules` (see [`ScanReport`]); with `base`, a
    /// recovery point of the same resource, only files whose content `base` does not hold.
    ///
    /// # Errors
    /// [`Error::RecoveryPointNotFound`], [`Error::Cancelled`], damaged vault data or storage
    /// errors.
    pub fn scan(
        &self,
        snapshot: &SnapshotRef,
        base: Option<&SnapshotRef>,
        rules: &ScanRules,
        cancel: CancelToken,
    ) -> Result<ScanReport> {
        let sink = ProgressSink::new(callback(|_| {}), cancel);
        let r = (|| {
            let _guard = self.shared();
            let repo = self
                .open_repo(&sink)?
                .to_indexed()
                .map_err(rustic_err("read vault index"))?;
            let snap = Self::load_snapshot(&repo, snapshot)?;
            let base = base.map(|b| Self::load_snapshot(&repo, b)).transpose()?;
            scan_snapshot(&repo, &snap, base.as_ref(), rules, &sink)
        })();
        Self::finish(&sink, r)
    }

    /// [`VaultRepo::scan`] on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`VaultRepo::scan`].
    pub async fn scan_async(
        &self,
        snapshot: SnapshotRef,
        base: Option<SnapshotRef>,
        rules: ScanRules,
        cancel: CancelToken,
    ) -> Result<ScanReport> {
        let me = self.clone();
        Self::spawn(move || me.scan(&snapshot, base.as_ref(), &rules, cancel)).await
    }

    /// [`VaultRepo::compare_restored`] on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`VaultRepo::compare_restored`].
    pub async fn compare_restored_async(
        &self,
        snapshot: SnapshotRef,
        target: PathBuf,
        cancel: CancelToken,
    ) -> Result<CompareReport> {
        let me = self.clone();
        Self::spawn(move || me.compare_restored(&snapshot, &target, cancel)).await
    }

    /// Run blocking engine work on tokio's blocking pool.
    async fn spawn<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Error::Engine(format!("engine task failed: {e}")))?
    }

    /// [`VaultRepo::backup`] on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`VaultRepo::backup`].
    pub async fn backup_async(
        &self,
        source: SourceSpec,
        recovery_point_id: String,
        parent: Option<SnapshotRef>,
        tags: Vec<String>,
        progress: impl Fn(&Progress) + Send + Sync + 'static,
        cancel: CancelToken,
    ) -> Result<BackupOutcome> {
        let me = self.clone();
        Self::spawn(move || {
            me.backup(
                &source,
                &recovery_point_id,
                parent.as_ref(),
                &tags,
                progress,
                cancel,
            )
        })
        .await
    }

    /// [`VaultRepo::restore`] on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`VaultRepo::restore`].
    pub async fn restore_async(
        &self,
        snapshot: SnapshotRef,
        target: PathBuf,
        opts: RestoreOptions,
        progress: impl Fn(&Progress) + Send + Sync + 'static,
        cancel: CancelToken,
    ) -> Result<RestoreOutcome> {
        let me = self.clone();
        Self::spawn(move || me.restore(&snapshot, &target, &opts, progress, cancel)).await
    }

    /// [`VaultRepo::copy_to`] on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`VaultRepo::copy_to`].
    pub async fn copy_to_async(
        &self,
        dest: VaultRepo,
        snapshot: SnapshotRef,
        dest_recovery_point_id: String,
        progress: impl Fn(&Progress) + Send + Sync + 'static,
        cancel: CancelToken,
    ) -> Result<SnapshotRef> {
        let me = self.clone();
        Self::spawn(move || me.copy_to(&dest, &snapshot, &dest_recovery_point_id, progress, cancel))
            .await
    }

    /// [`VaultRepo::delete`] on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`VaultRepo::delete`].
    pub async fn delete_async(&self, snapshot: SnapshotRef) -> Result<DeleteOutcome> {
        let me = self.clone();
        Self::spawn(move || me.delete(&snapshot)).await
    }

    /// [`VaultRepo::verify`] on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`VaultRepo::verify`].
    pub async fn verify_async(
        &self,
        read_data: bool,
        progress: impl Fn(&Progress) + Send + Sync + 'static,
        cancel: CancelToken,
    ) -> Result<VerifyReport> {
        let me = self.clone();
        Self::spawn(move || me.verify(read_data, progress, cancel)).await
    }

    /// [`VaultRepo::list_snapshots`] on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`VaultRepo::list_snapshots`].
    pub async fn list_snapshots_async(&self) -> Result<Vec<RecoveryPointInfo>> {
        let me = self.clone();
        Self::spawn(move || me.list_snapshots()).await
    }
}

/// Passes a dump on, counting its bytes as progress and stopping when cancelled.
struct CountingWriter<'a> {
    inner: &'a mut dyn std::io::Write,
    sink: &'a ProgressSink,
    written: u64,
}

impl std::io::Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.sink.cancel.is_cancelled() {
            return Err(std::io::Error::other("operation cancelled"));
        }
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        self.sink.update(false, |p| p.bytes_done += n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
