//! AWS Signature Version 4 verification.
//!
//! Requests are signed with an `Authorization: AWS4-HMAC-SHA256 ...` header (or, for presigned
//! URLs, `X-Amz-*` query parameters). Verification rebuilds the canonical request from what
//! arrived, derives the signing key from the caller's secret (cached per key, date, region and
//! service), and compares signatures in constant time. The region of the credential scope
//! becomes the request's region; the access key's account becomes its account.
//!
//! What is refused, beyond a signature that does not match: a credential scope naming another
//! service or an unknown region, SignedHeaders without `host`, a payload hash other than the
//! body's real one (UNSIGNED-PAYLOAD included), a date outside the 15-minute skew either way,
//! a presigned URL dated in the future or valid for more than 7 days, two Authorization headers
//! or a header and a presigned query at once, and session tokens (Coffer issues none). See
//! docs/hardening.md.
//!
//! One concern per file: `canonical` builds the canonical request, `key` derives signing keys,
//! `regions` says which scopes are valid, this file parses the credential and decides.

pub mod canonical;
mod key;
mod regions;
mod sign;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use http::HeaderMap;
use subtle::ConstantTimeEq;

pub use canonical::{canonical_query, canonical_request, canonical_uri, sha256_hex};
pub use key::{SigningKeyCache, hmac_sha256, signing_key};
pub use regions::{AWS_REGIONS, ScopePolicy};
pub use sign::{OutgoingRequest, sign};

use crate::error::ApiError;

/// The largest accepted difference between the request's date and the server's clock.
pub const MAX_SKEW: chrono::Duration = chrono::Duration::minutes(15);
/// The longest a presigned URL may stay valid (`X-Amz-Expires`), as AWS allows: 7 days.
pub const MAX_PRESIGNED_EXPIRES: i64 = 604_800;

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
    /// A presigned URL carries `X-Amz-Security-Token`.
    session_token: bool,
}

/// Authenticates a request under `mode`. `now` is the wall clock (never the development clock).
pub fn authenticate(
    mode: &AuthMode,
    keys: &SigningKeyCache,
    parts: &SignedParts<'_>,
    policy: &ScopePolicy,
    now: DateTime<Utc>,
) -> Result<Caller, ApiError> {
    match mode {
        AuthMode::None { default_account } => {
            let parsed = parse(parts).ok().flatten();
            let (akid, region, service) = match parsed {
                Some(p) => {
                    check_scope(&p, policy)?;
                    (Some(p.access_key_id), p.region, p.service)
                }
                None => (None, policy.default_region.clone(), policy.service.clone()),
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
            check_scope(&p, policy)?;
            if !p.signed_headers.iter().any(|h| h == "host") {
                return Err(ApiError::invalid_signature(
                    "'Host' must be a 'SignedHeader' in the AWS Authorization.",
                ));
            }
            if parts.headers.contains_key("x-amz-security-token") || p.session_token {
                return Err(ApiError::unrecognized_client_token());
            }
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
            if !p.amz_date.starts_with(&p.date) || p.date.len() != 8 {
                return Err(ApiError::invalid_signature(
                    "The credential scope date does not match X-Amz-Date.",
                ));
            }
            let stamp = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
            if request_time > now + MAX_SKEW {
                return Err(ApiError::invalid_signature(format!(
                    "Signature not yet current: {} is still later than {} ({} + 15 min.). Check the client's clock.",
                    p.amz_date,
                    stamp(now + MAX_SKEW),
                    stamp(now)
                )));
            }
            if p.presigned {
                let expires = p.expires.unwrap_or(900);
                if !(1..=MAX_PRESIGNED_EXPIRES).contains(&expires) {
                    return Err(ApiError::incomplete_signature(format!(
                        "X-Amz-Expires must be between 1 and {MAX_PRESIGNED_EXPIRES} seconds (7 days); it is {expires}."
                    )));
                }
                if now > request_time + chrono::Duration::seconds(expires) {
                    return Err(ApiError::invalid_signature(format!(
                        "Signature expired: the presigned request was valid until {} and it is now {}.",
                        stamp(request_time + chrono::Duration::seconds(expires)),
                        stamp(now)
                    )));
                }
            } else if now - request_time > MAX_SKEW {
                return Err(ApiError::invalid_signature(format!(
                    "Signature expired: {} is outside the allowed clock skew of 15 minutes from the server time {}. Check the client's clock.",
                    p.amz_date,
                    stamp(now)
                )));
            }
            // The payload hash is always the body's own: a declared hash that differs, and
            // UNSIGNED-PAYLOAD (which would let the body change after signing), are refused.
            let body_hash = sha256_hex(parts.body);
            match parts
                .headers
                .get("x-amz-content-sha256")
                .map(|v| v.to_str().unwrap_or(""))
            {
                Some("UNSIGNED-PAYLOAD") => {
                    return Err(ApiError::invalid_signature(
                        "UNSIGNED-PAYLOAD is not accepted by this service: sign the SHA-256 of the request body.",
                    ));
                }
                Some(h) if h != body_hash => {
                    return Err(ApiError::invalid_signature(
                        "The x-amz-content-sha256 header does not match the request body.",
                    ));
                }
                _ => {}
            }
            let signing_key = keys.get(&cred.secret_access_key, &p.date, &p.region, &p.service);
            let scope = format!("{}/{}/{}/aws4_request", p.date, p.region, p.service);
            let signed: Vec<&str> = p.signed_headers.iter().map(String::as_str).collect();
            let headers_block = canonical::canonical_headers(parts.headers, &signed)?;
            // At most four candidates, and more than one only for unusual paths or queries
            // where the SDKs' canonical forms differ.
            for uri in canonical::canonical_uris(parts.raw_path) {
                for query in canonical::canonical_queries(parts.raw_query, p.presigned) {
                    let creq = canonical::canonical_request_from(
                        parts.method,
                        &uri,
                        &query,
                        &headers_block,
                        &body_hash,
                    );
                    let string_to_sign = format!(
                        "AWS4-HMAC-SHA256\n{}\n{}\n{}",
                        p.amz_date,
                        scope,
                        sha256_hex(creq.as_bytes())
                    );
                    let expected =
                        hex::encode(hmac_sha256(&signing_key, string_to_sign.as_bytes()));
                    if bool::from(expected.as_bytes().ct_eq(p.signature.as_bytes())) {
                        return Ok(Caller {
                            access_key_id: Some(p.access_key_id),
                            account_id: cred.account_id.clone(),
                            region: p.region,
                            service: p.service,
                        });
                    }
                }
            }
            Err(ApiError::invalid_signature(
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
            ))
        }
    }
}

/// The service a request's SigV4 credential scope names, when it carries a readable one (how
/// one endpoint tells AWS Backup's requests from STS's).
pub fn scope_service(parts: &SignedParts<'_>) -> Option<String> {
    parse(parts).ok().flatten().map(|p| p.service)
}

/// The credential scope must name this service and a region that exists.
fn check_scope(p: &ParsedAuth, policy: &ScopePolicy) -> Result<(), ApiError> {
    if p.service != policy.service {
        return Err(ApiError::invalid_signature(format!(
            "Credential should be scoped to correct service: '{}'.",
            policy.service
        )));
    }
    if !policy.region_known(&p.region) {
        return Err(ApiError::invalid_signature(format!(
            "Credential should be scoped to a valid region, not '{}'.",
            shorten(&p.region)
        )));
    }
    Ok(())
}

/// Caller-supplied text echoed in a message, cut short.
fn shorten(text: &str) -> String {
    let mut s: String = text.chars().take(64).collect();
    if text.chars().count() > 64 {
        s.push_str("...");
    }
    s
}

/// Reads the signature parameters from the Authorization header or the presigned query.
/// `Ok(None)` means the request carries no signature at all.
fn parse(parts: &SignedParts<'_>) -> Result<Option<ParsedAuth>, ApiError> {
    let presigned = canonical::decode_query(parts.raw_query)
        .iter()
        .any(|(k, _)| {
            matches!(
                k.as_str(),
                "X-Amz-Algorithm" | "X-Amz-Credential" | "X-Amz-Signature"
            )
        });
    let mut auth_headers = parts.headers.get_all(http::header::AUTHORIZATION).iter();
    if let Some(auth) = auth_headers.next() {
        if auth_headers.next().is_some() {
            return Err(ApiError::incomplete_signature(
                "The request carries more than one Authorization header; send exactly one.",
            ));
        }
        if presigned {
            return Err(ApiError::incomplete_signature(
                "Only one authentication mechanism is allowed: either the Authorization header or X-Amz-* query parameters, not both.",
            ));
        }
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
        let mut dates = parts.headers.get_all("x-amz-date").iter();
        if dates.next().is_some() && dates.next().is_some() {
            return Err(ApiError::incomplete_signature(
                "The request carries more than one X-Amz-Date header; send exactly one.",
            ));
        }
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
            session_token: false,
        }));
    }
    if presigned {
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
            session_token: q.contains_key("X-Amz-Security-Token"),
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
