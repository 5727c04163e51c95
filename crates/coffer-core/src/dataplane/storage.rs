//! Where vaults keep their data: one restic-format repository per vault, created on first use.
//!
//! A vault's repository lives in `DATA_DIR/vaults/<vault uid>` or, when the server has a
//! bucket for vault storage, under `PREFIX/<vault uid>` in that bucket (`placement`; a fresh
//! uid per vault, so a vault deleted and created again under the same name starts empty). Its
//! key is created with the repository and stored sealed under the server's master key
//! (`DATA_DIR/master.key`, owner-only) in the vault's record. Open repositories are kept for
//! reuse, so a job does not pay the cost of opening one.
//!
//! Creation is race-free across the nodes of a cluster: a node first claims the creation in
//! the metadata store (`model::vaults::claim_repo_creation`), creates the repository, and
//! records it only while its claim stands; every other node (and every other job of this one)
//! waits for the record and opens what it names. A claim whose holder died runs out after
//! [`CREATION_CLAIM_SECS`] and is taken over.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use coffer_api::ApiError;
use coffer_engine::{MasterKey, VaultLocation, VaultRepo};

use crate::dataplane::Executor;
use crate::dataplane::placement::Placement;
use crate::model::error::Result;
use crate::model::states::Tier;
use crate::model::vaults;
use crate::model::vaults::VaultRecord;
use crate::model::vaults::{REMOVALS, RepoCreation, RepoRecord};

/// How long a claim to create a vault's repository holds (creating one takes a few requests).
pub(crate) const CREATION_CLAIM_SECS: i64 = 120;

/// The data plane's shared state.
pub struct VaultStorage {
    root: PathBuf,
    master: MasterKey,
    placement: Placement,
    /// Whether other nodes may write the same bucket vaults (a shared metadata store): then
    /// deleting a recovery point does not prune (see [`remove_snapshot`]).
    shared: bool,
    /// This process's name in repository creation claims.
    holder: String,
    open: Mutex<HashMap<String, VaultRepo>>,
    creating: tokio::sync::Mutex<()>,
    /// The directories of the configured storage tiers (`dataplane::tiers`).
    tiers: TierDirs,
}

/// Where the storage tiers keep their repositories: a directory each, or none (the tier is
/// not configured; see docs/tiering.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TierDirs {
    pub cold: Option<PathBuf>,
    pub low_cost: Option<PathBuf>,
}

impl VaultStorage {
    /// Opens (or creates) the master key in `data_dir` and keeps vaults under it.
    pub fn open(data_dir: &std::path::Path) -> std::result::Result<Self, String> {
        let master =
            MasterKey::load_or_create(&data_dir.join("master.key")).map_err(|e| e.to_string())?;
        Ok(VaultStorage {
            root: data_dir.join("vaults"),
            master,
            placement: Placement::default(),
            shared: false,
            holder: uuid::Uuid::new_v4().to_string(),
            open: Mutex::default(),
            creating: tokio::sync::Mutex::new(()),
            tiers: TierDirs::default(),
        })
    }

    /// Keeps the repositories of the storage tiers in `tiers`' directories.
    pub fn with_tiers(mut self, tiers: TierDirs) -> Self {
        self.tiers = tiers;
        self
    }

    /// The directory of `tier`, when configured.
    pub(crate) fn tier_dir(&self, tier: Tier) -> Option<&std::path::Path> {
        match tier {
            Tier::Cold => self.tiers.cold.as_deref(),
            Tier::LowCost => self.tiers.low_cost.as_deref(),
        }
    }

    /// An open repository kept under `key` (a vault uid, or a tier repository's key).
    pub(crate) fn cached(&self, key: &str) -> Option<VaultRepo> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(key).cloned()
    }

    pub(crate) fn keep_open(&self, key: &str, repo: &VaultRepo) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.insert(key.to_string(), repo.clone());
    }

    /// Held while a repository is created and recorded.
    pub(crate) fn creating(&self) -> &tokio::sync::Mutex<()> {
        &self.creating
    }

    /// Is `path` inside a directory Coffer keeps repositories in (removable when its vault
    /// is deleted)?
    fn holds(&self, path: &std::path::Path) -> bool {
        path.starts_with(&self.root)
            || [&self.tiers.cold, &self.tiers.low_cost]
                .into_iter()
                .flatten()
                .any(|d| path.starts_with(d))
    }

    /// Where new vaults' repositories go (local disk unless configured otherwise), and the
    /// credentials for a bucket that recorded repositories name.
    pub fn with_placement(mut self, placement: Placement) -> std::result::Result<Self, String> {
        if let Some(p) = placement.problems().into_iter().next() {
            return Err(p);
        }
        self.placement = placement;
        Ok(self)
    }

    /// Other nodes share the metadata store (and so the bucket's vaults): recovery points
    /// deleted from a bucket vault leave their data for later, never pruned while another node
    /// may be writing into the same repository.
    pub fn shared_with_other_nodes(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }

    pub fn master_key(&self) -> &MasterKey {
        &self.master
    }

    /// Where restore tests restore to: `restore-tests/` beside the vaults in the data
    /// directory, one directory per restore job (see docs/restore-testing.md).
    pub(crate) fn scratch_dir(&self) -> PathBuf {
        self.root.with_file_name("restore-tests")
    }

    fn data_dir(&self) -> PathBuf {
        self.root.parent().map(PathBuf::from).unwrap_or_default()
    }

    /// A recorded location as this node opens it (with the bucket's credentials and a cache
    /// in the data directory).
    fn resolve(&self, location: &VaultLocation) -> Result<VaultLocation> {
        self.placement
            .resolve(location, &self.root.with_file_name("s3-cache"))
            .map_err(|m| ApiError::internal(coffer_engine::Error::InvalidInput(m)).into())
    }

    /// Where continuous backups of PostgreSQL stage the WAL they received until it is in the
    /// vault (`pitr/<slot>/`), and where point-in-time restores recover
    /// (`pitr/restore-<job>/`), beside the vaults (see docs/jobs.md).
    pub(crate) fn pitr_dir(&self) -> PathBuf {
        self.root.with_file_name("pitr")
    }
}

/// A vault storage failure: internal, with the engine's error kept as the cause (a job's
/// message and its retry decision read it).
pub(crate) fn engine_failure(e: coffer_engine::Error) -> ApiError {
    ApiError::internal(e)
}

/// A repository directory of a vault that records no repository is what a crash between
/// creating the repository and recording it leaves behind. Nothing refers to it (a job writes
/// into a repository only once it is recorded), so it is moved aside, never reused or deleted,
/// and a new repository is created in its place.
pub(crate) fn set_aside_leftover(dir: &std::path::Path) -> std::io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aside = dir.with_file_name(format!(
        ".abandoned-{name}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::rename(dir, &aside)?;
    tracing::warn!(
        leftover = %dir.display(),
        moved_to = %aside.display(),
        "a vault repository was created but never recorded (a crash at its creation); set it aside and creating it again"
    );
    Ok(())
}

/// Removes a snapshot from a vault's repository: with a prune, unless the repository is in a
/// bucket that other nodes write too (a prune there could remove the packs of another node's
/// backup in progress); then only the snapshot goes and its data stays.
pub(crate) async fn remove_snapshot(
    plane: &Executor,
    repo: &VaultRepo,
    snapshot: coffer_engine::SnapshotRef,
) -> std::result::Result<coffer_engine::DeleteOutcome, coffer_engine::Error> {
    let shared_bucket = plane.storage().is_ok_and(|s| s.shared)
        && matches!(repo.location(), VaultLocation::S3 { .. });
    if shared_bucket {
        repo.forget_async(snapshot).await
    } else {
        repo.delete_async(snapshot).await
    }
}

/// The repository of a vault, created on first use (like `like`'s chunking when given).
pub(crate) async fn repo_for(
    plane: &Executor,
    vault: &VaultRecord,
    like: Option<&VaultRepo>,
) -> Result<VaultRepo> {
    let storage = plane.storage()?;
    if let Some(r) = storage
        .open
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&vault.uid)
    {
        return Ok(r.clone());
    }
    let _guard = storage.creating.lock().await;
    let repo = loop {
        match recorded_or_claimed(plane, storage, vault).await? {
            Some(rec) => break open_recorded(storage, rec).await?,
            None => {
                if let Some(repo) = create_claimed(plane, storage, vault, like).await? {
                    break repo;
                }
            }
        }
    };
    storage
        .open
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(vault.uid.clone(), repo.clone());
    Ok(repo)
}

/// The vault's recorded repository, or `None` once this process holds the claim to create it;
/// waits while another process holds it (at most a claim's length and a little more).
async fn recorded_or_claimed(
    plane: &Executor,
    storage: &VaultStorage,
    vault: &VaultRecord,
) -> Result<Option<RepoRecord>> {
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_secs(CREATION_CLAIM_SECS as u64 + 30);
    loop {
        let (v, holder) = (vault.clone(), storage.holder.clone());
        let now = chrono::Utc::now();
        let until = now + chrono::Duration::seconds(CREATION_CLAIM_SECS);
        let found = plane
            .store()
            .write(move |tx| vaults::claim_repo_creation(tx, &v, &holder, now, until))
            .await?;
        match found {
            RepoCreation::Exists(rec) => return Ok(Some(rec)),
            RepoCreation::Claimed => return Ok(None),
            RepoCreation::Busy if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            RepoCreation::Busy => {
                return Err(ApiError::internal(coffer_engine::Error::Storage(format!(
                    "another Coffer node has been creating the repository of vault '{}' for too long",
                    vault.name
                )))
                .into());
            }
        }
    }
}

async fn open_recorded(storage: &VaultStorage, rec: RepoRecord) -> Result<VaultRepo> {
    let location = storage.resolve(&rec.location)?;
    let (sealed, master) = (rec.sealed_key, storage.master.clone());
    Ok(
        tokio::task::spawn_blocking(move || VaultRepo::open(location, &sealed, &master))
            .await
            .map_err(ApiError::internal)?
            .map_err(engine_failure)?,
    )
}

/// Creates the vault's repository under this process's claim and records it; `None` when the
/// claim ran out and another process recorded its own meanwhile (the caller opens that one).
async fn create_claimed(
    plane: &Executor,
    storage: &VaultStorage,
    vault: &VaultRecord,
    like: Option<&VaultRepo>,
) -> Result<Option<VaultRepo>> {
    let planned = storage
        .placement
        .location_for(&vault.name, &vault.uid, &storage.data_dir());
    let (repo, sealed) = match create_at(storage, planned.clone(), like).await {
        Err(coffer_engine::Error::VaultExists(_)) if matches!(planned, VaultLocation::S3 { .. }) => {
            // A bucket's leftover of a creator that died cannot be moved aside: create next to it.
            let fresh = storage.placement.location_for(
                &vault.name,
                &format!("{}-{}", vault.uid, uuid::Uuid::new_v4().simple()),
                &storage.data_dir(),
            );
            tracing::warn!(leftover = %planned.restic_repository(), "a vault repository was created but never recorded (a crash at its creation); creating it again beside it");
            create_at(storage, fresh, like).await
        }
        other => other,
    }
    .map_err(engine_failure)?;
    let record = RepoRecord {
        location: Placement::stored(repo.location()),
        sealed_key: sealed,
    };
    let (v, holder) = (vault.clone(), storage.holder.clone());
    let recorded = plane
        .store()
        .write(move |tx| vaults::record_created_repo(tx, &v, &holder, &record))
        .await?;
    if recorded {
        tracing::info!(vault = %vault.name, repository = %repo.location().restic_repository(), "vault repository created");
        return Ok(Some(repo));
    }
    tracing::warn!(vault = %vault.name, "another node recorded this vault's repository first (this node's claim ran out); using that one");
    Ok(None)
}

async fn create_at(
    storage: &VaultStorage,
    planned: VaultLocation,
    like: Option<&VaultRepo>,
) -> std::result::Result<(VaultRepo, coffer_engine::SealedVaultKey), coffer_engine::Error> {
    let location = storage
        .resolve(&planned)
        .map_err(|e| coffer_engine::Error::InvalidInput(e.0.message().to_string()))?;
    let master = storage.master.clone();
    let like = like.cloned();
    tokio::task::spawn_blocking(move || {
        if let VaultLocation::Local { path } = &location {
            set_aside_leftover(path).map_err(|e| {
                coffer_engine::Error::Storage(format!("setting aside {}: {e}", path.display()))
            })?;
        }
        match like {
            Some(l) => VaultRepo::create_like(location, &master, &l),
            None => VaultRepo::create(location, &master),
        }
    })
    .await
    .map_err(|e| coffer_engine::Error::Storage(e.to_string()))?
}

/// What an operator needs to open a vault with plain `restic` or `rustic`: the repository and
/// its password (see docs/engine.md). The vault must hold data already.
pub async fn export_vault_key(
    store: &coffer_store::StoreHandle,
    storage: &VaultStorage,
    account: &str,
    region: &str,
    vault: &str,
) -> std::result::Result<coffer_engine::ExportedVaultKey, String> {
    let key = vaults::key(account, region, vault);
    let name = vault.to_string();
    let record = store
        .read(move |tx| vaults::load(tx, &key, &name))
        .await
        .map_err(|e| coffer_api::error_chain(&e.0))?;
    let repo = record.repo.ok_or_else(|| {
        format!("backup vault '{vault}' holds no data yet: its repository is created by its first backup or copy")
    })?;
    let location = storage
        .resolve(&repo.location)
        .map_err(|e| e.0.message().to_string())?;
    let master = storage.master.clone();
    tokio::task::spawn_blocking(move || VaultRepo::export_key(location, &repo.sealed_key, &master))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Removes the repositories of deleted vaults; returns how many were removed. A local one is
/// removed only inside this node's vault directory; one in the bucket with every file in it.
pub(crate) async fn process_removals(plane: &Executor) -> Result<usize> {
    let rows = plane
        .store()
        .read(|tx| tx.scan(REMOVALS, "", None, 16))
        .await?;
    let storage = plane.storage()?;
    let mut done = 0;
    for (uid, v) in rows.iter() {
        let location: VaultLocation = serde_json::from_slice(v)?;
        storage
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
        let removable = match &location {
            VaultLocation::Local { path } => storage.holds(path),
            _ => true,
        };
        if removable {
            let resolved = storage.resolve(&location)?;
            let removed = tokio::task::spawn_blocking(move || resolved.remove_repository()).await;
            if let Ok(Err(e)) | Err(e) =
                removed.map_err(|e| coffer_engine::Error::Storage(e.to_string()))
            {
                tracing::warn!(error = %e, repository = %location.restic_repository(), "removing a deleted vault's data failed; will retry");
                continue;
            }
        }
        let k = uid.clone();
        plane
            .store()
            .write(move |tx| tx.delete(REMOVALS, &k))
            .await?;
        done += 1;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Meta;
    use crate::model::clock::Clock;
    use coffer_store::StoreHandle;

    /// A kill between creating a vault's repository and recording it left its directory
    /// behind; the next job sets it aside and creates the repository, instead of failing
    /// with "vault already exists" for ever.
    #[tokio::test]
    async fn a_repository_left_unrecorded_by_a_crash_is_set_aside_and_created_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        let storage = VaultStorage::open(dir.path()).unwrap();
        let plane = Executor::new(
            Meta::new(store.clone(), Clock::system()),
            Default::default(),
            Some(storage),
        );
        let record = VaultRecord {
            account: "111122223333".into(),
            region: "us-east-1".into(),
            name: "v".into(),
            arn: "arn:aws:backup:us-east-1:111122223333:backup-vault:v".into(),
            creation_date: chrono::Utc::now(),
            creator_request_id: None,
            encryption_key_arn: "arn:aws:kms:us-east-1:111122223333:alias/aws/backup".into(),
            encryption_key_type: coffer_api::types::EncryptionKeyType::AwsOwnedKmsKey,
            recovery_points: 0,
            uid: "vault-uid-1".into(),
            repo: None,
            lock: None,
            air_gapped: false,
            mpa: Default::default(),
        };
        let saved = record.clone();
        store
            .write(move |tx| vaults::save(tx, &saved))
            .await
            .unwrap();
        // What the crash left: a repository on disk that the store does not know.
        let leftover = dir.path().join("vaults").join("vault-uid-1");
        let master = MasterKey::load_or_create(&dir.path().join("master.key")).unwrap();
        VaultRepo::create(VaultLocation::local(leftover.clone()), &master).unwrap();

        let repo = repo_for(&plane, &record, None)
            .await
            .expect("repository created");
        assert_eq!(repo.location(), &VaultLocation::local(leftover.clone()));
        let now = vaults::get(&plane, "111122223333", "us-east-1", "v")
            .await
            .unwrap();
        assert!(now.repo.is_some(), "the new repository is recorded");
        let aside: Vec<_> = std::fs::read_dir(dir.path().join("vaults"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".abandoned-vault-uid-1-"))
            .collect();
        assert_eq!(aside.len(), 1, "the leftover is kept aside, not deleted");
    }

    /// Two nodes (two storages with their own claims, one store) want a new vault's
    /// repository at once: one creates it, the other waits and opens the same one.
    #[tokio::test(flavor = "multi_thread")]
    async fn two_nodes_creating_one_vaults_repository_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        let node = || {
            Executor::new(
                Meta::new(store.clone(), Clock::system()),
                Default::default(),
                Some(VaultStorage::open(dir.path()).unwrap()),
            )
        };
        let (a, b) = (node(), node());
        let mut record = VaultRecord {
            account: "111122223333".into(),
            region: "us-east-1".into(),
            name: "v".into(),
            arn: "arn:aws:backup:us-east-1:111122223333:backup-vault:v".into(),
            creation_date: chrono::Utc::now(),
            creator_request_id: None,
            encryption_key_arn: "arn:aws:kms:us-east-1:111122223333:alias/aws/backup".into(),
            encryption_key_type: coffer_api::types::EncryptionKeyType::AwsOwnedKmsKey,
            recovery_points: 0,
            uid: "vault-uid-2".into(),
            repo: None,
            lock: None,
            air_gapped: false,
            mpa: Default::default(),
        };
        let saved = record.clone();
        store
            .write(move |tx| vaults::save(tx, &saved))
            .await
            .unwrap();
        record.repo = None;
        let (ra, rb) = tokio::join!(repo_for(&a, &record, None), repo_for(&b, &record, None));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra.location(), rb.location());
        let entries: Vec<_> = std::fs::read_dir(dir.path().join("vaults"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            entries,
            vec!["vault-uid-2".to_string()],
            "one repository, nothing set aside"
        );
        let claims = store
            .read(|tx| tx.scan(vaults::REPO_CLAIMS, "", None, 10))
            .await
            .unwrap();
        assert!(
            claims.is_empty(),
            "the claim is gone once the repository is recorded"
        );
    }
}
