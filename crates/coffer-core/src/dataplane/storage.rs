//! Where vaults keep their data: one restic-format repository per vault, created on first use.
//!
//! A vault's repository lives in `DATA_DIR/vaults/<vault uid>` (a fresh uid per vault, so a
//! vault deleted and created again under the same name starts empty). Its key is created with
//! the repository and stored sealed under the server's master key (`DATA_DIR/master.key`,
//! owner-only) in the vault's record. Open repositories are kept for reuse, so a job does not
//! pay the cost of opening one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use coffer_api::ApiError;
use coffer_engine::{MasterKey, VaultLocation, VaultRepo};

use crate::dataplane::Executor;
use crate::model::error::Result;
use crate::model::vaults;
use crate::model::vaults::VaultRecord;
use crate::model::vaults::{REMOVALS, RepoRecord};

/// The data plane's shared state.
pub struct VaultStorage {
    root: PathBuf,
    master: MasterKey,
    open: Mutex<HashMap<String, VaultRepo>>,
    creating: tokio::sync::Mutex<()>,
}

impl VaultStorage {
    /// Opens (or creates) the master key in `data_dir` and keeps vaults under it.
    pub fn open(data_dir: &std::path::Path) -> std::result::Result<Self, String> {
        let master =
            MasterKey::load_or_create(&data_dir.join("master.key")).map_err(|e| e.to_string())?;
        Ok(VaultStorage {
            root: data_dir.join("vaults"),
            master,
            open: Mutex::default(),
            creating: tokio::sync::Mutex::new(()),
        })
    }

    pub fn master_key(&self) -> &MasterKey {
        &self.master
    }

    /// Where restore tests restore to: `restore-tests/` beside the vaults in the data
    /// directory, one directory per restore job (see docs/restore-testing.md).
    pub(crate) fn scratch_dir(&self) -> PathBuf {
        self.root.with_file_name("restore-tests")
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
fn engine_failure(e: coffer_engine::Error) -> ApiError {
    ApiError::internal(e)
}

/// The repository of a vault, created on first use (like `like`'s chunking when given).
/// A repository directory of a vault that records no repository is what a crash between
/// creating the repository and recording it leaves behind. Nothing refers to it (a job writes
/// into a repository only once it is recorded), so it is moved aside, never reused or deleted,
/// and a new repository is created in its place.
fn set_aside_leftover(dir: &std::path::Path) -> std::io::Result<()> {
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
    // Read the record again: another job may have created the repository meanwhile.
    let current = vaults::get(plane, &vault.account, &vault.region, &vault.name).await?;
    if current.uid != vault.uid {
        return Err(
            ApiError::not_found(format!("Backup vault '{}' was deleted.", vault.name)).into(),
        );
    }
    let repo = match &current.repo {
        Some(rec) => {
            let (location, sealed, master) = (
                rec.location.clone(),
                rec.sealed_key.clone(),
                storage.master.clone(),
            );
            tokio::task::spawn_blocking(move || VaultRepo::open(location, &sealed, &master))
                .await
                .map_err(ApiError::internal)?
                .map_err(engine_failure)?
        }
        None => {
            let dir = storage.root.join(&current.uid);
            let leftover = dir.clone();
            tokio::task::spawn_blocking(move || set_aside_leftover(&leftover))
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?;
            let location = VaultLocation::local(dir);
            let master = storage.master.clone();
            let like = like.cloned();
            let (repo, sealed) = tokio::task::spawn_blocking(move || match like {
                Some(l) => VaultRepo::create_like(location, &master, &l),
                None => VaultRepo::create(location, &master),
            })
            .await
            .map_err(ApiError::internal)?
            .map_err(engine_failure)?;
            let record = RepoRecord {
                location: repo.location().clone(),
                sealed_key: sealed,
            };
            vaults::set_repo(plane, &current, record).await?;
            repo
        }
    };
    storage
        .open
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(vault.uid.clone(), repo.clone());
    Ok(repo)
}

/// What an operator needs to open a vault with plain `restic` or `rustic`: the repository and
/// its password (see docs/engine.md). The vault must hold data already.
pub async fn export_vault_key(
    store: &coffer_store::StoreHandle,
    master: &MasterKey,
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
    let master = master.clone();
    tokio::task::spawn_blocking(move || {
        VaultRepo::export_key(repo.location, &repo.sealed_key, &master)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// Removes the repositories of deleted vaults; returns how many were removed.
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
        if let VaultLocation::Local { path } = &location
            && path.starts_with(&storage.root)
            && let Err(e) = std::fs::remove_dir_all(path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, path = %path.display(), "removing a deleted vault's data failed; will retry");
            continue;
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
}
