//! Integration tests of coffer-cron: hand-checked examples, error messages, and property tests
//! against a brute-force reference.

mod errors;
mod examples;
mod properties;

use chrono::{DateTime, TimeZone, Utc};
use coffer_cron::Schedule;

/// `YYYY-MM-DDTHH:MM` in UTC.
pub fn utc(text: &str) -> DateTime<Utc> {
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .unwrap_or_else(|error| panic!("bad test instant {text}: {error}"));
    Utc.from_utc_datetime(&naive)
}

/// The next `n` runs after `after`, formatted as `YYYY-MM-DDTHH:MM` UTC.
pub fn runs(expression: &str, timezone: &str, after: &str, n: usize) -> Vec<String> {
    Schedule::parse(expression, timezone)
        .unwrap_or_else(|error| panic!("{error}"))
        .upcoming(utc(after), n)
        .iter()
        .map(|run| run.format("%Y-%m-%dT%H:%M").to_string())
        .collect()
}
