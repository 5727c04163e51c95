//! A record a vault has at most one of, kept in its own table under the vault's key: its
//! access policy, its notification subscription. Put, Get and Delete of each work the same
//! way (the vault must exist; Get of an absent record is ResourceNotFoundException naming
//! what is missing; Delete of an absent record succeeds), so they are written once here and
//! the API modules only say what the record holds.

use coffer_api::{ApiError, RequestContext};
use coffer_store::{StoreError, Txn};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::Meta;
use crate::model::error::Result;
use crate::model::vaults::{self, VaultRecord};

/// One kind of per-vault record.
pub(crate) struct VaultSubResource {
    /// Its table, keyed like the vault.
    pub table: &'static str,
    /// What it is, for messages ("access policy").
    pub what: &'static str,
}

impl VaultSubResource {
    /// The record of the vault stored under `vault_key`, if any.
    pub(crate) fn get<T: DeserializeOwned>(
        &self,
        tx: &mut dyn Txn,
        vault_key: &str,
    ) -> std::result::Result<Option<T>, StoreError> {
        match tx.get(self.table, vault_key)? {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| StoreError::corrupt(format!("{} {vault_key}", self.what), e)),
            None => Ok(None),
        }
    }

    /// Removes the record of a vault (DeleteBackup…, or the vault being deleted).
    pub(crate) fn remove(
        &self,
        tx: &mut dyn Txn,
        vault_key: &str,
    ) -> std::result::Result<(), StoreError> {
        tx.delete(self.table, vault_key)?;
        Ok(())
    }

    /// Stores `record` for the caller's vault `vault_name` (which must exist).
    pub(crate) async fn put<T: Serialize + Send + 'static>(
        &'static self,
        meta: &Meta,
        ctx: &RequestContext,
        vault_name: String,
        record: T,
    ) -> Result<()> {
        self.put_guarded(meta, ctx, vault_name, record, |_, _, _| Ok(()))
            .await
    }

    /// [`VaultSubResource::put`], first asking `guard` (in the same transaction, with the
    /// vault's key and record) whether the change is allowed.
    pub(crate) async fn put_guarded<T: Serialize + Send + 'static>(
        &'static self,
        meta: &Meta,
        ctx: &RequestContext,
        vault_name: String,
        record: T,
        guard: impl FnOnce(&mut dyn Txn, &str, &VaultRecord) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let k = vaults::key(&ctx.account_id, &ctx.region, &vault_name);
        meta.store()
            .write(move |tx| -> Result<()> {
                let vault = vaults::read(tx, &k, &vault_name)?;
                guard(tx, &k, &vault)?;
                tx.put(self.table, &k, &serde_json::to_vec(&record)?)?;
                Ok(())
            })
            .await
    }

    /// Reads the record of the caller's vault `vault_name` and builds the output from the
    /// vault and it; an absent record is ResourceNotFoundException.
    pub(crate) async fn describe<T, O>(
        &'static self,
        meta: &Meta,
        ctx: &RequestContext,
        vault_name: String,
        output: impl FnOnce(VaultRecord, T) -> O + Send + 'static,
    ) -> Result<O>
    where
        T: DeserializeOwned,
        O: Send + 'static,
    {
        let k = vaults::key(&ctx.account_id, &ctx.region, &vault_name);
        meta.store()
            .read(move |tx| -> Result<O> {
                let v = vaults::read(tx, &k, &vault_name)?;
                let Some(record) = self.get(tx, &k)? else {
                    return Err(ApiError::not_found(format!(
                        "Backup vault '{vault_name}' has no {}.",
                        self.what
                    ))
                    .into());
                };
                Ok(output(v, record))
            })
            .await
    }

    /// Deletes the record of the caller's vault `vault_name` (which must exist).
    pub(crate) async fn delete(
        &'static self,
        meta: &Meta,
        ctx: &RequestContext,
        vault_name: String,
    ) -> Result<()> {
        self.delete_guarded(meta, ctx, vault_name, |_, _, _| Ok(()))
            .await
    }

    /// [`VaultSubResource::delete`], first asking `guard` as [`VaultSubResource::put_guarded`]
    /// does.
    pub(crate) async fn delete_guarded(
        &'static self,
        meta: &Meta,
        ctx: &RequestContext,
        vault_name: String,
        guard: impl FnOnce(&mut dyn Txn, &str, &VaultRecord) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let k = vaults::key(&ctx.account_id, &ctx.region, &vault_name);
        meta.store()
            .write(move |tx| -> Result<()> {
                let vault = vaults::read(tx, &k, &vault_name)?;
                guard(tx, &k, &vault)?;
                self.remove(tx, &k)?;
                Ok(())
            })
            .await
    }
}
