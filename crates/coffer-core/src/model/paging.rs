//! Opaque pagination tokens.
//!
//! A NextToken is the hex encoding of the last key returned, bound to the scope it was issued
//! for; a token from another scope or a tampered one is refused with
//! InvalidParameterValueException.

use coffer_api::ApiError;

use coffer_store::{Prefetched, StoreError, Txn};

pub const DEFAULT_PAGE_SIZE: usize = 1000;

pub fn page_size(max_results: Option<i32>) -> usize {
    max_results
        .map(|m| m.clamp(1, 1000) as usize)
        .unwrap_or(DEFAULT_PAGE_SIZE)
}

pub fn encode(last_key: &str) -> String {
    last_key.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Decodes a token issued for keys under `prefix`.
pub fn decode(token: &str, prefix: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::invalid_parameter(
            "The NextToken is not valid for this request; start again without it.",
        )
    };
    // Checked before slicing: the slices below cut at byte offsets, which is only safe on ASCII.
    if !token.len().is_multiple_of(2) || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    let key = String::from_utf8(bytes).map_err(|_| bad())?;
    if !key.starts_with(prefix) {
        return Err(bad());
    }
    Ok(key)
}

/// Every record of `table` under `prefix`, read in pages.
pub(crate) fn scan_all(
    tx: &mut dyn Txn,
    table: &str,
    prefix: &str,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    loop {
        let start = out.last().map(|(k, _)| k.clone());
        let rows = tx.scan(table, prefix, start.as_deref(), 1000)?;
        let done = rows.len() < 1000;
        out.extend(rows);
        if done {
            return Ok(out);
        }
    }
}

/// The most rows [`scan_page`] reads from the store at a time. It starts with one more row
/// than the page holds (a listing that filters nothing reads no row it does not return but
/// the one that says another page follows) and doubles the batch each time a filter passes
/// rows over.
const SCAN_BATCH: usize = 1000;

/// One page of the records of `table` under `prefix`, after the key `next_token` names: each
/// record goes through `member`, which turns it into a list member or drops it (`None`). The
/// page ends after `max_results` members; the token for the next page is returned only when
/// another member follows. Every key-ordered listing (plans, plan versions, selections)
/// pages through here.
pub(crate) fn scan_page<T>(
    tx: &mut dyn Txn,
    table: &str,
    prefix: &str,
    next_token: Option<&str>,
    max_results: Option<i32>,
    member: impl FnMut(&mut dyn Txn, &[u8]) -> crate::model::error::Result<Option<T>>,
) -> crate::model::error::Result<(Vec<T>, Option<String>)> {
    let all = KeyRange::default();
    scan_page_within(tx, table, prefix, &all, next_token, max_results, member)
}

/// Where within a prefix a listing's keys can be: what a filter on the key's leading part
/// (a date in an index ordered by date) rules out before and after it.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyRange {
    /// Only keys after this one.
    pub after: Option<String>,
    /// Only keys before this one: the walk stops at the first key at or past it.
    pub before: Option<String>,
}

/// [`scan_page`] over the keys of `range` only: the walk starts after `range.after` (or the
/// token's key, whichever is later) and ends at `range.before`, so a bounded filter reads only
/// what it can match.
pub(crate) fn scan_page_within<T>(
    tx: &mut dyn Txn,
    table: &str,
    prefix: &str,
    range: &KeyRange,
    next_token: Option<&str>,
    max_results: Option<i32>,
    member: impl FnMut(&mut dyn Txn, &[u8]) -> crate::model::error::Result<Option<T>>,
) -> crate::model::error::Result<(Vec<T>, Option<String>)> {
    let ahead = |_: &[(String, Vec<u8>)]| Vec::new();
    scan_page_ahead(
        tx,
        table,
        prefix,
        range,
        next_token,
        max_results,
        ahead,
        member,
    )
}

/// What a listing over an index reads ahead for a batch of its entries: per table, the keys
/// of the records `member` will read for them (see [`scan_page_ahead`]).
pub(crate) type Ahead = Vec<(&'static str, Vec<String>)>;

/// [`scan_page_within`] over an index whose entries point at records elsewhere: for each
/// batch of entries it reads, the records `ahead` names are read first in one
/// [`Txn::get_many`] per table (one round trip on PostgreSQL instead of one per entry), and
/// `member`'s reads of them are answered from there.
#[allow(clippy::too_many_arguments)]
pub(crate) fn scan_page_ahead<T>(
    tx: &mut dyn Txn,
    table: &str,
    prefix: &str,
    range: &KeyRange,
    next_token: Option<&str>,
    max_results: Option<i32>,
    ahead: impl Fn(&[(String, Vec<u8>)]) -> Ahead,
    mut member: impl FnMut(&mut dyn Txn, &[u8]) -> crate::model::error::Result<Option<T>>,
) -> crate::model::error::Result<(Vec<T>, Option<String>)> {
    let mut cursor = match next_token {
        Some(t) => Some(decode(t, prefix)?),
        None => None,
    };
    if let Some(a) = &range.after
        && cursor.as_ref().is_none_or(|c| c < a)
    {
        cursor = Some(a.clone());
    }
    let limit = page_size(max_results);
    let mut page = Vec::new();
    let mut batch = limit.saturating_add(1).min(SCAN_BATCH);
    loop {
        let rows = tx.scan(table, prefix, cursor.as_deref(), batch)?;
        let exhausted = rows.len() < batch;
        batch = batch.saturating_mul(2).min(SCAN_BATCH);
        let within = rows
            .iter()
            .take_while(|(k, _)| range.before.as_ref().is_none_or(|b| k < b))
            .count();
        let tx = &mut Prefetched::read(&mut *tx, ahead(&rows[..within]))?;
        for (k, v) in rows {
            if range.before.as_ref().is_some_and(|b| &k >= b) {
                return Ok((page, None));
            }
            let Some(m) = member(tx, &v)? else {
                cursor = Some(k);
                continue;
            };
            if page.len() == limit {
                // One more member exists: the page ends at the row before it.
                return Ok((page, cursor.map(|k| encode(&k))));
            }
            page.push(m);
            cursor = Some(k);
        }
        if exhausted {
            return Ok((page, None));
        }
    }
}

/// One page of `items` (already filtered and ordered, each named by `id`), after the item
/// `next_token` names, with the token for the next page: the paging of listings built in
/// memory (jobs, recovery points, summaries, templates).
pub(crate) fn page<T>(
    items: Vec<T>,
    id: impl Fn(&T) -> String,
    next_token: Option<&str>,
    max: Option<i32>,
) -> crate::model::error::Result<(Vec<T>, Option<String>)> {
    let limit = page_size(max);
    let start = match next_token {
        Some(t) => {
            let after = decode(t, "")?;
            match items.iter().position(|i| id(i) == after) {
                Some(p) => p + 1,
                None => {
                    return Err(ApiError::invalid_parameter(
                        "The NextToken is not valid for this request; start again without it.",
                    )
                    .into());
                }
            }
        }
        None => 0,
    };
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(limit).collect();
    let next = if start + page.len() < total {
        page.last().map(|l| encode(&id(l)))
    } else {
        None
    };
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_within_their_scope() {
        let t = encode("111122223333:us-east-1:vault-b");
        assert_eq!(
            decode(&t, "111122223333:us-east-1:").unwrap(),
            "111122223333:us-east-1:vault-b"
        );
        assert!(decode(&t, "444455556666:us-east-1:").is_err());
        assert!(decode("zz", "").is_err());
    }

    /// A token with multi-byte characters is refused, never sliced inside a character.
    #[test]
    fn non_ascii_tokens_are_refused() {
        for t in ["\u{1F980}", "a\u{e9}", "\u{e9}a0", "0\u{1F980}0"] {
            assert_eq!(
                decode(t, "").unwrap_err().code(),
                "InvalidParameterValueException"
            );
        }
    }
}
