//! AWS Signature Version 4 verification.
//!
//! Requests are signed with an `Authorization: AWS4-HMAC-SHA256 ...` header (or, for presigned
//! URLs, `X-Amz-*` query parameters). Verification rebuilds the canonical request from what
//! arrived, derives the signing key from the caller's secret (cached per key, date, region and
//! service), and compares signatures in constant time. The region of the credential scope
//! becomes the request's region; the access key's account becomes its account.
//!
//! One concern per file: `canonical` builds the canonical request, `key` derives signing keys,
//! this file parses the credential and decides.

pub mod canonical;
mod key;
mod sign;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use http::HeaderMap;
use subtle::ConstantTimeEq;

pub use canonical::{canonical_query, canonical_request, canonical_uri, sha256_hex};
pub use key::{SigningKeyCache, hmac_sha256, signing_key};
pub use sign::{OutgoingRequest, sign};

use crate::error::ApiError;

/// The largest accepted difference between the request's date and the server's clock.
pub const MAX_SKEW: chrono::Duration = chrono::Duration::minutes(15);

/// A secret access key and the account it belongs to.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account_id: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("account_id", &self.account_id)
            .finish()
    }
}

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum AuthMode {
    /// Signatures are verified against these credentials (by access key id).
    SigV4(Arc<HashMap<String, Credential>>),
    /// Any signature is accepted. Account and region are still read from the request: the
    /// account is the access key id when that is a 12-digit number, otherwise `default_account`.
    None { default_account: String },
}

/// What a request says about who sent it, as far as the API layer needs.
pub struct SignedParts<'a> {
    pub method: &'a str,
    /// The path as sent, still percent-encoded.
    pub raw_path: &'a str,
    /// The query string as sent (without `?`).
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// The caller a request was authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub access_key_id: Option<String>,
    pub account_id: String,
    pub region: String,
    pub service: String,
}

struct ParsedAuth {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
    amz_date: String,
    presigned: bool,
    expires: Option<i64>,
}

/// Authenticates a request under `mode`. `now` is the wall clock (never the development clock).
pub fn authenticate(
    mode: &AuthMode,
    keys: &SigningKeyCache,
    parts: &SignedParts<'_>,
    default_region: &str,
    now: DateTime<Utc>,
) -> Result<Caller, ApiError> {
    match mode {
        AuthMode::None { default_account } => {
            let parsed = parse(parts).ok().flatten();
            let (akid, region, service) = match parsed {
                Some(p) => (Some(p.access_key_id), p.region, p.service),
                None => (None, default_region.to_string(), "backup".to_string()),
            };
            let account = match &akid {
                Some(a) if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) => a.clone(),
                _ => default_account.clone(),
            };
            Ok(Caller {
                access_key_id: akid,
                account_id: account,
                region,
                service,
            })
        }
        AuthMode::SigV4(creds) => {
            let p = parse(parts)?.ok_or_else(ApiError::missing_authentication)?;
            let cred = creds
                .get(&p.access_key_id)
                .ok_or_else(|| ApiError::unrecognized_client(&p.access_key_id))?;
            let request_time = NaiveDateTime::parse_from_str(&p.amz_date, "%Y%m%dT%H%M%SZ")
                .map_err(|_| {
                    ApiError::incomplete_signature(format!(
                        "X-Amz-Date '{}' is not of the form YYYYMMDDTHHMMSSZ.",
                        p.amz_date
                    ))
                })?
                .and_utc();
            if !p.amz_date.starts_with(&p.date) {
                return Err(ApiError::invalid_signature(
                    "The credential scope date does not match X-Amz-Date.",
                ));
            }
            if p.presigned {
                let expires = p.expires.unwrap_or(900);
                if now > request_time + chrono::Duration::seconds(expires) {
                    return Err(ApiError::invalid_signature(format!(
                        "Signature expired: the presigned request was valid until {} and it is now {}.",
                        (request_time + chrono::Duration::seconds(expires))
                            .format("%Y%m%dT%H%M%SZ"),
                        now.format("%Y%m%dT%H%M%SZ")
                    )));
                }
            } else if (now - request_time).abs() > MAX_SKEW {
                return Err(ApiError::invalid_signature(format!(
                    "Signature expired: {} is outside the allowed clock skew of 15 minutes from the server time {}. Check the client's clock.",
                    p.amz_date,
                    now.format("%Y%m%dT%H%M%SZ")
                )));
            }
            let signing_key = keys.get(&cred.secret_access_key, &p.date, &p.region, &p.service);
            let scope = format!("{}/{}/{}/aws4_request", p.date, p.region, p.service);
            let body_hash = sha256_hex(parts.body);
            let declared = parts
                .headers
                .get("x-amz-content-sha256")
                .and_then(|v| v.to_str().ok());
            let payload_hashes: Vec<&str> = match declared {
                Some("UNSIGNED-PAYLOAD") => vec!["UNSIGNED-PAYLOAD"],
                Some(h) if h == body_hash => vec![h],
                Some(_) => {
                    return Err(ApiError::invalid_signature(
                        "The x-amz-content-sha256 header does not match the request body.",
                    ));
                }
                None if p.presigned => vec![body_hash.as_str(), "UNSIGNED-PAYLOAD"],
                None => vec![body_hash.as_str()],
            };
            let signed: Vec<&str> = p.signed_headers.iter().map(String::as_str).collect();
            for payload in payload_hashes {
                let creq = canonical_request(
                    parts.method,
                    parts.raw_path,
                    parts.raw_query,
                    parts.headers,
                    &signed,
                    payload,
                    p.presigned,
                )?;
                let string_to_sign = format!(
                    "AWS4-HMAC-SHA256\n{}\n{}\n{}",
                    p.amz_date,
                    scope,
                    sha256_hex(creq.as_bytes())
                );
                let expected = hex::encode(hmac_sha256(&signing_key, string_to_sign.as_bytes()));
                if bool::from(expected.as_bytes().ct_eq(p.signature.as_bytes())) {
                    return Ok(Caller {
                        access_key_id: Some(p.access_key_id),
                        account_id: cred.account_id.clone(),
                        region: p.region,
                        service: p.service,
                    });
                }
            }
            Err(ApiError::invalid_signature(
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
            ))
        }
    }
}

/// Reads the signature parameters from the Authorization header or the presigned query.
/// `Ok(None)` means the request carries no signature at all.
fn parse(parts: &SignedParts<'_>) -> Result<Option<ParsedAuth>, ApiError> {
    if let Some(auth) = parts.headers.get(http::header::AUTHORIZATION) {
        let auth = auth.to_str().map_err(|_| {
            ApiError::incomplete_signature("The Authorization header is not ASCII.")
        })?;
        let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
            ApiError::incomplete_signature(
                "Authorization header must use the AWS4-HMAC-SHA256 algorithm.",
            )
        })?;
        let mut credential = None;
        let mut signed_headers = None;
        let mut signature = None;
        for item in rest.split(',') {
            let item = item.trim();
            if let Some(v) = item.strip_prefix("Credential=") {
                credential = Some(v);
            } else if let Some(v) = item.strip_prefix("SignedHeaders=") {
                signed_headers = Some(v);
            } else if let Some(v) = item.strip_prefix("Signature=") {
                signature = Some(v);
            }
        }
        let (Some(credential), Some(signed_headers), Some(signature)) =
            (credential, signed_headers, signature)
        else {
            return Err(ApiError::incomplete_signature(
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'.",
            ));
        };
        let amz_date = parts
            .headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::incomplete_signature("The X-Amz-Date header is missing."))?;
        let (akid, date, region, service) = parse_credential(credential)?;
        return Ok(Some(ParsedAuth {
            access_key_id: akid,
            date,
            region,
            service,
            signed_headers: signed_headers.split(';').map(str::to_string).collect(),
            signature: signature.to_string(),
            amz_date: amz_date.to_string(),
            presigned: false,
            expires: None,
        }));
    }
    if parts.raw_query.contains("X-Amz-Signature=") {
        let q: HashMap<String, String> = canonical::decode_query(parts.raw_query)
            .into_iter()
            .collect();
        let get = |k: &str| {
            q.get(k).cloned().ok_or_else(|| {
                ApiError::incomplete_signature(format!("The presigned URL lacks {k}."))
            })
        };
        if get("X-Amz-Algorithm")? != "AWS4-HMAC-SHA256" {
            return Err(ApiError::incomplete_signature(
                "X-Amz-Algorithm must be AWS4-HMAC-SHA256.",
            ));
        }
        let (akid, date, region, service) = parse_credential(&get("X-Amz-Credential")?)?;
        let expires = match q.get("X-Amz-Expires") {
            Some(e) => Some(e.parse::<i64>().map_err(|_| {
                ApiError::incomplete_signature("X-Amz-Expires must be a number of seconds.")
            })?),
            None => None,
        };
        return Ok(Some(ParsedAuth {
            access_key_id: akid,
            date,
            region,
            service,
            signed_headers: get("X-Amz-SignedHeaders")?
                .split(';')
                .map(str::to_string)
                .collect(),
            signature: get("X-Amz-Signature")?,
            amz_date: get("X-Amz-Date")?,
            presigned: true,
            expires,
        }));
    }
    Ok(None)
}

fn parse_credential(credential: &str) -> Result<(String, String, String, String), ApiError> {
    let fields: Vec<&str> = credential.split('/').collect();
    if fields.len() != 5 || fields[4] != "aws4_request" || fields.iter().any(|f| f.is_empty()) {
        return Err(ApiError::incomplete_signature(format!(
            "Credential '{credential}' must have the form ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request."
        )));
    }
    Ok((
        fields[0].to_string(),
        fields[1].to_string(),
        fields[2].to_string(),
        fields[3].to_string(),
    ))
}

#[cfg(test)]
mod tests;
