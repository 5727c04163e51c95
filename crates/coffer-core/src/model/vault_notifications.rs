//! A vault's notification subscription as stored (table `vault_notifications`, keyed like the
//! vault); events find it with [`subscription`].

use chrono::{DateTime, Utc};
use coffer_api::types::BackupVaultEvent;
use coffer_store::{StoreError, Txn};
use serde::{Deserialize, Serialize};

use crate::model::error::Result;
use crate::model::vault_subresource::VaultSubResource;

/// The notification subscription of each vault (table `vault_notifications`, keyed like the
/// vault).
pub(crate) static SUBSCRIPTION: VaultSubResource = VaultSubResource {
    table: "vault_notifications",
    what: "notification configuration",
};

/// A vault's notification subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VaultSubscription {
    pub sns_topic_arn: String,
    /// The events published, each once, in the order given.
    pub events: Vec<BackupVaultEvent>,
    pub updated: DateTime<Utc>,
}

impl VaultSubscription {
    /// Whether `event` is published.
    pub(crate) fn wants(&self, event: &BackupVaultEvent) -> bool {
        self.events.contains(event)
    }
}

/// The subscription of the vault stored under `vault_key` (see [`vaults::key`]), if any.
pub(crate) fn subscription(
    tx: &mut dyn Txn,
    vault_key: &str,
) -> Result<Option<VaultSubscription>, StoreError> {
    SUBSCRIPTION.get(tx, vault_key)
}

/// Removes the subscription of a vault (when the vault is deleted).
pub(crate) fn remove(tx: &mut dyn Txn, vault_key: &str) -> Result<(), StoreError> {
    SUBSCRIPTION.remove(tx, vault_key)
}
