//! Opaque pagination tokens.
//!
//! A NextToken is the hex encoding of the last key returned, bound to the scope it was issued
//! for; a token from another scope or a tampered one is refused with
//! InvalidParameterValueException.

use coffer_api::ApiError;

use coffer_store::{StoreError, Txn};

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
