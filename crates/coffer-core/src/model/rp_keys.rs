//! The keys of a vault's recovery point index (`rp_by_vault`) and what its entries hold.
//!
//! Each entry names its point and carries the status of the point's file index, if it has
//! one, so that a page of ListRecoveryPointsByBackupVault reads one record per point (the
//! point) instead of two (the point and its index record). The entries are written by
//! `model::recovery_points` with the point, and the status in them by `model::indexes` with
//! each index record; this module is apart from both because `recovery_points` uses
//! `indexes`, and `indexes` must reach the entries without importing `recovery_points` back.

use chrono::{DateTime, Utc};
use coffer_store::Txn;

use crate::model::error::Result;

/// A vault's points, newest first: key `ACCOUNT:REGION:VAULT:NEWEST:ID` (see [`newest_first`]),
/// value the point's key and its index's status (see [`entry`]).
pub(crate) const BY_VAULT: &str = "rp_by_vault";

/// A fixed-width stamp of `at` that sorts newest first (microseconds before the end of time).
pub(crate) fn newest_first(at: DateTime<Utc>) -> String {
    format!("{:019}", i64::MAX - at.timestamp_micros().max(0))
}

/// The prefix of vault `vault`'s entries in [`BY_VAULT`].
pub(crate) fn by_vault_prefix(account: &str, region: &str, vault: &str) -> String {
    format!("{account}:{region}:{vault}:")
}

/// The key of point `id`'s entry in [`BY_VAULT`] (created at `created`).
pub(crate) fn by_vault_key(
    account: &str,
    region: &str,
    vault: &str,
    created: DateTime<Utc>,
    id: &str,
) -> String {
    format!(
        "{}{}:{id}",
        by_vault_prefix(account, region, vault),
        newest_first(created)
    )
}

/// The value of an entry: the point's key, then its index's status (`PENDING`, `ACTIVE`, ...)
/// after a newline when it has an index. A key never holds a newline.
pub(crate) fn entry(point_key: &str, index_status: Option<&str>) -> Vec<u8> {
    match index_status {
        Some(s) => format!("{point_key}\n{s}").into_bytes(),
        None => point_key.as_bytes().to_vec(),
    }
}

/// The point's key and its index's status an entry's value holds ([`entry`]).
pub(crate) fn read_entry(value: &[u8]) -> (String, Option<String>) {
    let text = String::from_utf8_lossy(value);
    match text.split_once('\n') {
        Some((key, status)) => (key.to_string(), Some(status.to_string())),
        None => (text.into_owned(), None),
    }
}

/// Puts `index_status` into the entry of point `id` of vault `vault` (created at `created`),
/// when the point has one (a deleted point has none, and gets none back).
pub(crate) fn set_index_status(
    tx: &mut dyn Txn,
    (account, region, vault): (&str, &str, &str),
    created: DateTime<Utc>,
    id: &str,
    index_status: Option<&str>,
) -> Result<()> {
    let k = by_vault_key(account, region, vault, created, id);
    if let Some(v) = tx.get(BY_VAULT, &k)? {
        let (point_key, _) = read_entry(&v);
        tx.put(BY_VAULT, &k, &entry(&point_key, index_status))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_with_and_without_a_status() {
        let key = "111122223333:us-east-1:v:continuous:db-x-1";
        assert_eq!(read_entry(&entry(key, None)), (key.to_string(), None));
        assert_eq!(
            read_entry(&entry(key, Some("ACTIVE"))),
            (key.to_string(), Some("ACTIVE".to_string()))
        );
    }
}
