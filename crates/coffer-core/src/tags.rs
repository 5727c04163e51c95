//! Tags of taggable resources (vaults, plans, recovery points), stored apart from the
//! resources themselves in table `tags`, keyed by the resource's ARN. Keeping them in one place
//! lets TagResource / UntagResource / ListTags work the same way for every resource type, and
//! lets each resource module set the tags given at creation in the same transaction.

use std::collections::BTreeMap;

use coffer_store::{StoreError, Txn};

pub(crate) const TABLE: &str = "tags";

pub(crate) type Tags = BTreeMap<String, String>;

/// The tags of `arn` (empty when it has none).
pub(crate) fn get(tx: &mut dyn Txn, arn: &str) -> Result<Tags, StoreError> {
    match tx.get(TABLE, arn)? {
        Some(v) => serde_json::from_slice(&v)
            .map_err(|e| StoreError::Backend(format!("tags of {arn}: {e}"))),
        None => Ok(Tags::new()),
    }
}

/// Replaces the tags of `arn`.
pub(crate) fn set(tx: &mut dyn Txn, arn: &str, tags: &Tags) -> Result<(), StoreError> {
    if tags.is_empty() {
        tx.delete(TABLE, arn)?;
        return Ok(());
    }
    let v = serde_json::to_vec(tags).map_err(|e| StoreError::Backend(e.to_string()))?;
    tx.put(TABLE, arn, &v)
}

/// Removes every tag of `arn` (when the resource is deleted).
pub(crate) fn remove_all(tx: &mut dyn Txn, arn: &str) -> Result<(), StoreError> {
    tx.delete(TABLE, arn)?;
    Ok(())
}
