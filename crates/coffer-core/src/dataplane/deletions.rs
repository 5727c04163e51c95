//! Carrying out queued recovery point deletions: the snapshot of a deleted recovery point is
//! removed from its vault's repository (the record went in the deleting transaction).

use crate::dataplane::{Executor, storage};
use crate::model::error::Result;
use crate::model::recovery_points::*;
use crate::model::vaults;

/// Carries out queued snapshot removals; returns how many were done.
pub(crate) async fn process_deletions(plane: &Executor) -> Result<usize> {
    let rows = plane
        .store()
        .read(|tx| tx.scan(DELETIONS, "", None, 16))
        .await?;
    let mut done = 0;
    for (key, v) in rows.iter() {
        let d: Deletion = serde_json::from_slice(v)?;
        let vault = vaults::get(plane, &d.account, &d.region, &d.vault_name)
            .await
            .ok()
            .filter(|v| v.uid == d.vault_uid);
        if let Some(vault) = vault
            && vault.repo.is_some()
        {
            let repo = storage::repo_for(plane, &vault, None).await?;
            match repo.delete_async(d.snapshot.clone()).await {
                Ok(_) | Err(coffer_engine::Error::RecoveryPointNotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, vault = %d.vault_name, "removing a deleted recovery point's data failed; will retry");
                    continue;
                }
            }
        }
        let k = key.clone();
        plane
            .store()
            .write(move |tx| tx.delete(DELETIONS, &k))
            .await?;
        done += 1;
    }
    Ok(done)
}
