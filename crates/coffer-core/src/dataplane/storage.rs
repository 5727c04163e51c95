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
}

fn engine_failure(e: coffer_engine::Error) -> ApiError {
    ApiError::internal(format!("vault storage: {e}"))
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
            let location = VaultLocation::local(storage.root.join(&current.uid));
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
        .map_err(|e| e.0.message().to_string())?;
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
