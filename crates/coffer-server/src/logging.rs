//! Logging setup and the log lines the server itself owes its operators.
//!
//! Why a module: what goes to the log decides whether running Coffer day to day is blind. The
//! level comes from `COFFER_LOG` (default `info`); the vault engine's own chatter (`rustic_core`,
//! one line per repository open) is kept for `debug`; colour codes are written only when stderr
//! is a terminal, so a log file or journal stays plain text. Failed sign-ins are logged at WARN,
//! at most once a minute per access key (with how many were held back), naming the key id and
//! the reason, never a secret or a signature.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The default filter: Coffer at INFO, the engine's library at WARN.
const DEFAULT_FILTER: &str = "info,rustic_core=warn";

/// The filter for a `COFFER_LOG` value: as given, plus `rustic_core=warn` unless the value
/// names `rustic_core` itself or asks for debug or trace everywhere.
pub fn filter_directives(env: Option<&str>) -> String {
    match env.map(str::trim).filter(|v| !v.is_empty()) {
        None => DEFAULT_FILTER.to_string(),
        Some(v) => {
            let global_verbose = v
                .split(',')
                .any(|d| !d.contains('=') && matches!(d.trim(), "debug" | "trace"));
            if v.contains("rustic_core") || global_verbose {
                v.to_string()
            } else {
                format!("{v},rustic_core=warn")
            }
        }
    }
}

pub fn init(format: LogFormat) {
    let env = std::env::var("COFFER_LOG").ok();
    let filter = EnvFilter::try_new(filter_directives(env.as_deref())).unwrap_or_else(|e| {
        eprintln!("coffer: COFFER_LOG is not a valid filter ({e}); using {DEFAULT_FILTER}");
        EnvFilter::new(DEFAULT_FILTER)
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// How long failed sign-ins of one access key are summed up before the next WARN line.
const SIGN_IN_WINDOW: Duration = Duration::from_secs(60);
/// At most this many access keys are tracked (a flood of random keys cannot grow memory).
const MAX_TRACKED_KEYS: usize = 1024;

/// Rate-limited WARN lines for requests refused for their credentials.
#[derive(Default)]
pub struct FailedSignIns {
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl FailedSignIns {
    /// Records a refused request; logs at once, or later with the count held back.
    pub fn record(&self, access_key_id: &str, peer: &str, error_type: &str) {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_TRACKED_KEYS {
            seen.retain(|_, (at, _)| now.duration_since(*at) < SIGN_IN_WINDOW);
        }
        // Key ids are logged as sent, cut short: they are not secret, but they are user input.
        let key: String = access_key_id.chars().take(32).collect();
        match seen.get_mut(&key) {
            Some((at, held)) if now.duration_since(*at) < SIGN_IN_WINDOW => *held += 1,
            _ => {
                let held_back = seen.get(&key).map(|(_, n)| *n).unwrap_or(0);
                if held_back == 0 {
                    tracing::warn!(access_key_id = %key, %peer, error = error_type, "failed sign-in");
                } else {
                    tracing::warn!(
                        access_key_id = %key,
                        %peer,
                        error = error_type,
                        "failed sign-in ({held_back} more for this key in the minute before, not logged one by one)"
                    );
                }
                if seen.len() < MAX_TRACKED_KEYS {
                    seen.insert(key, (now, 0));
                }
            }
        }
    }
}

/// The access key id named by a request's SigV4 `Authorization` header or presigned query.
pub fn access_key_of(headers: &http::HeaderMap, query: Option<&str>) -> String {
    let from_header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .and_then(|v| v.split('/').next())
        .map(str::to_string);
    let from_query = || {
        query?
            .split('&')
            .find_map(|kv| kv.strip_prefix("X-Amz-Credential="))
            .and_then(|v| v.split(['/', '%']).next())
            .map(str::to_string)
    };
    from_header
        .or_else(from_query)
        .unwrap_or_else(|| "(none)".to_string())
}

/// Whether an API error type means the caller's credentials were refused. A request with no
/// credentials at all (`MissingAuthenticationTokenException`, e.g. a browser asking for
/// `/favicon.ico`) is not a sign-in attempt and is not logged.
pub fn is_sign_in_failure(error_type: &str) -> bool {
    matches!(
        error_type,
        "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignatureException"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_chatter_needs_debug() {
        assert_eq!(filter_directives(None), "info,rustic_core=warn");
        assert_eq!(filter_directives(Some("")), "info,rustic_core=warn");
        assert_eq!(filter_directives(Some("warn")), "warn,rustic_core=warn");
        assert_eq!(filter_directives(Some("debug")), "debug");
        assert_eq!(
            filter_directives(Some("info,rustic_core=info")),
            "info,rustic_core=info"
        );
    }

    #[test]
    fn access_key_comes_from_the_credential() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/backup/aws4_request, SignedHeaders=host, Signature=abc",
            ),
        );
        assert_eq!(access_key_of(&h, None), "AKIDEXAMPLE");
        assert_eq!(
            access_key_of(
                &http::HeaderMap::new(),
                Some("X-Amz-Credential=AKIDQ%2F20150830%2Fus-east-1")
            ),
            "AKIDQ"
        );
        assert_eq!(access_key_of(&http::HeaderMap::new(), None), "(none)");
    }
}
