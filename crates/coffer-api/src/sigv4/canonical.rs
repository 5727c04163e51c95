//! The canonical request of SigV4, rebuilt from what arrived on the wire.
//!
//! For every service but S3 the SDKs normalise the path before signing (empty and `.` segments
//! dropped, `..` removes the segment before it) and then percent-encode it once more ("double
//! encoding"): an ARN label sent as `arn%3Aaws...` is signed as `arn%253Aaws...`. aws-sdk-rust
//! and botocore differ only in whether `/a/.` keeps its trailing slash, so both forms are
//! offered ([`canonical_uris`]). For the query, aws-sdk-rust decodes and re-encodes every pair
//! (`+` read as a space), botocore signs the pairs as sent, sorted ([`canonical_queries`]).

use http::HeaderMap;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Everything but the unreserved characters `A-Z a-z 0-9 - _ . ~`.
const QUERY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// The same, keeping `/` as the path separator.
const PATH_SET: &AsciiSet = &QUERY_SET.remove(b'/');

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The path with empty and dot segments removed (RFC 3986 5.2.4 plus the SDKs' `//` rule).
/// `keep_dot_slash`: `/a/.` and `/a/..` end in a slash (aws-sdk-rust) or not (botocore).
fn normalize_path(raw_path: &str, keep_dot_slash: bool) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in raw_path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut normalized = format!("/{}", out.join("/"));
    let trailing = if keep_dot_slash {
        ["/", "/.", "/./", "/..", "/../"]
            .iter()
            .any(|s| raw_path.ends_with(s))
    } else {
        raw_path.ends_with('/')
    };
    if trailing && !normalized.ends_with('/') {
        normalized.push('/');
    }
    normalized
}

/// The canonical URI as aws-sdk-rust signs it: normalised, then each character but the
/// unreserved ones and `/` percent-encoded again.
pub fn canonical_uri(raw_path: &str) -> String {
    if raw_path.is_empty() {
        return "/".to_string();
    }
    utf8_percent_encode(&normalize_path(raw_path, true), PATH_SET).to_string()
}

/// Every canonical URI an SDK may have signed for this path (one, or two when aws-sdk-rust
/// and botocore disagree on a trailing dot segment).
pub fn canonical_uris(raw_path: &str) -> Vec<String> {
    let rust = canonical_uri(raw_path);
    let boto = if raw_path.is_empty() {
        "/".to_string()
    } else {
        utf8_percent_encode(&normalize_path(raw_path, false), PATH_SET).to_string()
    };
    if boto == rust {
        vec![rust]
    } else {
        vec![rust, boto]
    }
}

/// Splits a raw query into decoded (name, value) pairs, in order. `+` stays a plus sign.
pub fn decode_query(raw_query: &str) -> Vec<(String, String)> {
    raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode_str(k).decode_utf8_lossy().into_owned(),
                percent_decode_str(v).decode_utf8_lossy().into_owned(),
            )
        })
        .collect()
}

/// The canonical query string as aws-sdk-rust (and the SigV4 specification) builds it: pairs
/// decoded (`+` as a space, as the operation's input reads them) and encoded again, sorted by
/// name then value. For a presigned request the signature parameter itself is left out.
pub fn canonical_query(raw_query: &str, presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = decode_query_form(raw_query)
        .into_iter()
        .filter(|(k, _)| !(presigned && k == "X-Amz-Signature"))
        .map(|(k, v)| {
            (
                utf8_percent_encode(&k, QUERY_SET).to_string(),
                utf8_percent_encode(&v, QUERY_SET).to_string(),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Every canonical query an SDK may have signed: the re-encoded form above, and the pairs as
/// sent, sorted (what botocore signs for a query already in the URL) when that differs.
pub fn canonical_queries(raw_query: &str, presigned: bool) -> Vec<String> {
    let encoded = canonical_query(raw_query, presigned);
    let mut raw: Vec<(&str, &str)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .filter(|(k, _)| !(presigned && *k == "X-Amz-Signature"))
        .collect();
    raw.sort();
    let raw = raw
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    if raw == encoded {
        vec![encoded]
    } else {
        vec![encoded, raw]
    }
}

fn canonical_header_value(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The full canonical request, with the aws-sdk-rust forms of URI and query.
pub fn canonical_request(
    method: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    signed_headers: &[&str],
    payload_hash: &str,
    presigned: bool,
) -> Result<String, ApiError> {
    Ok(canonical_request_from(
        method,
        &canonical_uri(raw_path),
        &canonical_query(raw_query, presigned),
        &canonical_headers(headers, signed_headers)?,
        payload_hash,
    ))
}

/// The canonical headers block and signed-header list (`name:value\n...\nname;name`).
pub fn canonical_headers(headers: &HeaderMap, signed_headers: &[&str]) -> Result<String, ApiError> {
    let mut out = String::with_capacity(128);
    for name in signed_headers {
        let values: Vec<String> = headers
            .get_all(*name)
            .iter()
            .map(|v| canonical_header_value(v.as_bytes()))
            .collect();
        if values.is_empty() {
            return Err(ApiError::invalid_signature(format!(
                "The signed header '{name}' is missing from the request."
            )));
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    Ok(out)
}

/// Assembles a canonical request from its canonical parts.
pub fn canonical_request_from(
    method: &str,
    uri: &str,
    query: &str,
    headers_block: &str,
    payload_hash: &str,
) -> String {
    format!("{method}\n{uri}\n{query}\n{headers_block}\n{payload_hash}")
}

/// Splits a raw query into (name, value) pairs for the operation's input, decoding `+` as a
/// space the way form-encoded query strings are read.
pub fn decode_query_form(raw_query: &str) -> Vec<(String, String)> {
    raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let plus = |s: &str| s.replace('+', " ");
            (
                percent_decode_str(&plus(k))
                    .decode_utf8_lossy()
                    .into_owned(),
                percent_decode_str(&plus(v))
                    .decode_utf8_lossy()
                    .into_owned(),
            )
        })
        .collect()
}
