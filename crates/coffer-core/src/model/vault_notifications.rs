//! A vault's notification subscription as stored (table `vault_notifications`, keyed like the
//! vault); events find it with [`subscription`].

use chrono::{DateTime, Utc};
use coffer_store::{StoreError, Txn};
use serde::{Deserialize, Serialize};

use crate::model::error::Result;

pub(crate) const TABLE: &str = "vault_notifications";

/// A vault's notification subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VaultSubscription {
    pub sns_topic_arn: String,
    /// `BackupVaultEvent` values, each once, in the order given.
    pub events: Vec<String>,
    pub updated: DateTime<Utc>,
}

impl VaultSubscription {
    /// Whether `event` (a `BackupVaultEvent` value) is published.
    pub(crate) fn wants(&self, event: &str) -> bool {
        self.events.iter().any(|e| e == event)
    }
}

/// The subscription of the vault stored under `vault_key` (see [`vaults::key`]), if any.
pub(crate) fn subscription(
    tx: &mut dyn Txn,
    vault_key: &str,
) -> Result<Option<VaultSubscription>, StoreError> {
    match tx.get(TABLE, vault_key)? {
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| StoreError::Backend(format!("vault notifications {vault_key}: {e}"))),
        None => Ok(None),
    }
}

/// Removes the subscription of a vault (when the vault is deleted).
pub(crate) fn remove(tx: &mut dyn Txn, vault_key: &str) -> Result<(), StoreError> {
    tx.delete(TABLE, vault_key)?;
    Ok(())
}
