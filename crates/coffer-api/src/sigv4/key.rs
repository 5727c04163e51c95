//! Signing-key derivation (`AWS4` + secret, then date, region, service, `aws4_request`) and a
//! small cache so a busy client does not pay four HMACs per request.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Derives the SigV4 signing key for one day, region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// Derived signing keys, keyed by their scope (secret, date, region and service, each after
/// its length, so no two scopes share a key). Bounded: cleared when full.
#[derive(Default)]
pub struct SigningKeyCache {
    keys: Mutex<HashMap<String, [u8; 32]>>,
}

const CACHE_LIMIT: usize = 4096;

thread_local! {
    /// Where a lookup's key is assembled, so a hit allocates nothing.
    static SCOPE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

impl SigningKeyCache {
    pub fn get(&self, secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
        SCOPE.with_borrow_mut(|id| {
            id.clear();
            for part in [secret, date, region, service] {
                let _ = write!(id, "{}:", part.len());
                id.push_str(part);
            }
            if let Some(k) = self
                .keys
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(id.as_str())
            {
                return *k;
            }
            let k = signing_key(secret, date, region, service);
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            if keys.len() >= CACHE_LIMIT {
                keys.clear();
            }
            keys.insert(id.clone(), k);
            k
        })
    }
}
