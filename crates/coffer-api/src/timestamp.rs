//! Timestamps as AWS's rest-json protocol puts them on the wire.
//!
//! In JSON bodies a timestamp is epoch seconds with a fraction (`1568928754.747`); in query
//! strings it is ISO 8601 (`2024-01-01T00:00:00Z`, sometimes with fractional seconds).

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, serialised as epoch seconds with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    pub fn from_epoch_seconds(secs: f64) -> Option<Self> {
        if !secs.is_finite() {
            return None;
        }
        let millis = (secs * 1000.0).round();
        if millis.abs() > 8.0e15 {
            return None;
        }
        Utc.timestamp_millis_opt(millis as i64)
            .single()
            .map(Timestamp)
    }

    pub fn epoch_seconds(&self) -> f64 {
        self.0.timestamp_millis() as f64 / 1000.0
    }

    /// Parses the forms clients put in query strings: RFC 3339 / ISO 8601 (with or without
    /// fractional seconds or an offset, assumed UTC when absent), or epoch seconds.
    pub fn parse_query(text: &str) -> Option<Self> {
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Some(Timestamp(t.with_timezone(&Utc)));
        }
        for fmt in [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S",
            "%Y%m%dT%H%M%SZ",
        ] {
            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), fmt) {
                return Some(Timestamp(t.and_utc()));
            }
        }
        text.parse::<f64>().ok().and_then(Self::from_epoch_seconds)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Timestamp(t)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let millis = self.0.timestamp_millis();
        if millis % 1000 == 0 {
            s.serialize_i64(millis / 1000)
        } else {
            s.serialize_f64(self.epoch_seconds())
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a timestamp (epoch seconds)")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
                Timestamp::from_epoch_seconds(v).ok_or_else(|| E::custom("timestamp out of range"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_query(v).ok_or_else(|| E::custom("not a timestamp"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_fractional_epoch_seconds() {
        let t: Timestamp = serde_json::from_str("1568928754.747").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "1568928754.747");
        let whole: Timestamp = serde_json::from_str("1568928754").unwrap();
        assert_eq!(serde_json::to_string(&whole).unwrap(), "1568928754");
    }

    #[test]
    fn parses_query_forms() {
        let a = Timestamp::parse_query("2024-01-01T00:00:00Z").unwrap();
        let b = Timestamp::parse_query("2024-01-01T00:00:00.000000Z").unwrap();
        let c = Timestamp::parse_query("1704067200").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert!(Timestamp::parse_query("yesterday").is_none());
    }
}
