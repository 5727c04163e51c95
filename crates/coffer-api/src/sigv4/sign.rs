//! SigV4 signing of outgoing requests (Coffer as a client, e.g. publishing notifications to
//! an SNS endpoint). Uses the same canonicalisation as verification, so what Coffer signs is
//! exactly what it would accept.

use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue};

use super::canonical::{canonical_request, sha256_hex};
use super::key::{hmac_sha256, signing_key};
use crate::error::ApiError;

/// The parts of an outgoing request that are signed.
pub struct OutgoingRequest<'a> {
    pub method: &'a str,
    /// The path as it will be sent (already percent-encoded).
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    /// `host` (and any other header to sign) must already be present.
    pub headers: &'a mut HeaderMap,
    pub body: &'a [u8],
}

/// Signs `req` for `service` in `region`: adds `x-amz-date`, `x-amz-content-sha256` and
/// `authorization` (signing `host`, those two and `content-type` when present).
pub fn sign(
    req: OutgoingRequest<'_>,
    access_key_id: &str,
    secret_access_key: &str,
    region: &str,
    service: &str,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let date = &amz_date[..8];
    let payload_hash = sha256_hex(req.body);
    let value =
        |v: &str| HeaderValue::from_str(v).map_err(|_| ApiError::internal("unsigned header value"));
    req.headers.insert("x-amz-date", value(&amz_date)?);
    req.headers
        .insert("x-amz-content-sha256", value(&payload_hash)?);
    let mut signed: Vec<&str> = Vec::new();
    for name in ["content-type", "host", "x-amz-content-sha256", "x-amz-date"] {
        if req.headers.contains_key(name) {
            signed.push(name);
        }
    }
    let creq = canonical_request(
        req.method,
        req.raw_path,
        req.raw_query,
        req.headers,
        &signed,
        &payload_hash,
        false,
    )?;
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(creq.as_bytes())
    );
    let key = signing_key(secret_access_key, date, region, service);
    let signature = hex::encode(hmac_sha256(&key, string_to_sign.as_bytes()));
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders={}, Signature={signature}",
        signed.join(";")
    );
    req.headers.insert("authorization", value(&auth)?);
    Ok(())
}
