//! Tags as stored (table `tags`, keyed by resource ARN) and the rules a tag set obeys.

use std::collections::BTreeMap;

use coffer_api::ApiError;
use coffer_store::{StoreError, Txn};

use crate::model::error::Result;

pub(crate) const TABLE: &str = "tags";

pub(crate) type Tags = BTreeMap<String, String>;

/// The tags of `arn` (empty when it has none).
pub(crate) fn get(tx: &mut dyn Txn, arn: &str) -> Result<Tags, StoreError> {
    match tx.get(TABLE, arn)? {
        Some(v) => {
            serde_json::from_slice(&v).map_err(|e| StoreError::corrupt(format!("tags of {arn}"), e))
        }
        None => Ok(Tags::new()),
    }
}

/// Replaces the tags of `arn`.
pub(crate) fn set(tx: &mut dyn Txn, arn: &str, tags: &Tags) -> Result<(), StoreError> {
    if tags.is_empty() {
        tx.delete(TABLE, arn)?;
        return Ok(());
    }
    let v =
        serde_json::to_vec(tags).map_err(|e| StoreError::corrupt(format!("tags of {arn}"), e))?;
    tx.put(TABLE, arn, &v)
}

/// Removes every tag of `arn` (when the resource is deleted).
pub(crate) fn remove_all(tx: &mut dyn Txn, arn: &str) -> Result<(), StoreError> {
    tx.delete(TABLE, arn)?;
    Ok(())
}

/// The most tags one resource may carry.
pub(crate) const MAX_TAGS: usize = 50;

pub(crate) fn check_tags(tags: &Tags) -> Result<()> {
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(ApiError::invalid_parameter(format!(
                "Tag key '{k}' must be 1 to 128 characters long."
            ))
            .into());
        }
        if v.chars().count() > 256 {
            return Err(ApiError::invalid_parameter(format!(
                "The value of tag '{k}' must be at most 256 characters long."
            ))
            .into());
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(ApiError::invalid_parameter(format!(
                "Tag key '{k}' uses the reserved prefix 'aws:'."
            ))
            .into());
        }
    }
    Ok(())
}

/// Checks tags given when a resource is created.
pub(crate) fn check_initial(tags: &Tags) -> Result<()> {
    check_tags(tags)?;
    if tags.len() > MAX_TAGS {
        return Err(ApiError::limit_exceeded(format!(
            "A resource can carry at most {MAX_TAGS} tags."
        ))
        .into());
    }
    Ok(())
}
