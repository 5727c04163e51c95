//! Carrying out queued recovery point deletions: the snapshot of a deleted recovery point is
//! removed from its vault's repository (the record went in the deleting transaction).

use crate::dataplane::{Executor, storage};
use crate::model::error::Result;
use crate::model::recovery_points::*;
use crate::model::vaults;

/// Carries out queued snapshot removals; returns how many were done. One that fails stays
/// queued for a later pass and never stops the others (nor the runner's claims).
pub(crate) async fn process_deletions(plane: &Executor) -> Result<usize> {
    let rows = plane
        .store()
        .read(|tx| tx.scan(DELETIONS, "", None, 16))
        .await?;
    let mut done = 0;
    for (key, v) in rows {
        match carry_out(plane, &v).await {
            Ok(true) => {
                plane
                    .store()
                    .write(move |tx| tx.delete(DELETIONS, &key))
                    .await?;
                done += 1;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(deletion = %key, error = %e.0, "removing a deleted recovery point's data failed; will retry");
            }
        }
    }
    Ok(done)
}

/// Removes one deleted recovery point's snapshot; `false` when it must be tried again.
async fn carry_out(plane: &Executor, v: &[u8]) -> Result<bool> {
    let d: Deletion = serde_json::from_slice(v)?;
    // A store failure is an error (the deletion is tried again), never "vault gone".
    let vault = vaults::find(plane, &d.account, &d.region, &d.vault_name)
        .await?
        .filter(|v| v.uid == d.vault_uid);
    let Some(vault) = vault.filter(|v| v.repo.is_some()) else {
        return Ok(true);
    };
    let repo = storage::repo_for(plane, &vault, None).await?;
    match repo.delete_async(d.snapshot.clone()).await {
        Ok(_) | Err(coffer_engine::Error::RecoveryPointNotFound(_)) => Ok(true),
        Err(e) => {
            tracing::warn!(error = %e, vault = %d.vault_name, "removing a deleted recovery point's data failed; will retry");
            Ok(false)
        }
    }
}
