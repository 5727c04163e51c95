//! What every enum of the service model has in common, so the generated enums stay short and
//! behave the same.
//!
//! `scripts/codegen.py` turns each enum shape of the model (`BackupJobState`, `StorageClass`,
//! ...) into a Rust enum with one unit variant per value and `Unknown(String)` for anything else,
//! so that an output from a newer model, or an input outside the set, still decodes and the
//! generated validation can refuse it with AWS's message naming the allowed values. The
//! generated file writes the parts that differ per enum (the variants, their wire spelling,
//! `VALUES`) and calls [`model_enum_impls!`] for the parts that do not: serde as the wire string,
//! `Display`, `FromStr`, `From<String>`, `Default` and [`ModelEnum`].

use std::fmt::{Debug, Display};
use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// An enum of the service model: a closed set of wire values plus `Unknown` for any other.
pub trait ModelEnum:
    Sized
    + Clone
    + Debug
    + Default
    + Display
    + PartialEq
    + Serialize
    + DeserializeOwned
    + FromStr
    + for<'a> From<&'a str>
    + From<String>
{
    /// The shape's name in the model.
    const SHAPE: &'static str;
    /// Every value the model allows, in the model's order.
    const VALUES: &'static [&'static str];

    /// The value as it goes on the wire.
    fn as_str(&self) -> &str;

    /// Whether the value is one of [`ModelEnum::VALUES`] (not `Unknown`).
    fn is_known(&self) -> bool;
}

/// Something done once per enum of the model, with the enum as a type: see
/// `generated::types::for_each_model_enum`.
pub trait ModelEnumVisitor {
    /// Called with one enum of the model.
    fn visit<E: ModelEnum>(&mut self);
}

/// Implements the traits every generated model enum shares; `$name` must have inherent
/// `as_str`, `is_known`, the constants `SHAPE` and `VALUES`, a `From<&str>` impl and an
/// `Unknown(String)` variant.
macro_rules! model_enum_impls {
    ($name:ident) => {
        impl $crate::model_enum::ModelEnum for $name {
            const SHAPE: &'static str = $name::SHAPE;
            const VALUES: &'static [&'static str] = $name::VALUES;

            fn as_str(&self) -> &str {
                $name::as_str(self)
            }

            fn is_known(&self) -> bool {
                $name::is_known(self)
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                match $name::from(value.as_str()) {
                    $name::Unknown(_) => $name::Unknown(value),
                    known => known,
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Ok($name::from(value))
            }
        }

        /// An empty `Unknown`, as an absent string member defaults to `""`; validation refuses it.
        impl Default for $name {
            fn default() -> Self {
                $name::Unknown(String::new())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                <String as serde::Deserialize>::deserialize(deserializer).map($name::from)
            }
        }
    };
}

pub(crate) use model_enum_impls;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::generated::types::{
        BackupJobState, BackupVaultEvent, ListBackupJobsInput, PutBackupVaultNotificationsInput,
        ScanResultStatus, for_each_model_enum,
    };
    use crate::validate::{Validate, check_enum, decode_input};

    const MODEL: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../model/backup/service-2.json"
    ));

    /// The model's enum shapes and their values.
    fn model_enums() -> BTreeMap<String, Vec<String>> {
        let model: serde_json::Value = serde_json::from_str(MODEL).unwrap();
        model["shapes"]
            .as_object()
            .unwrap()
            .iter()
            .filter_map(|(name, shape)| {
                let values = shape.get("enum")?.as_array()?;
                let values = values.iter().map(|v| v.as_str().unwrap().to_owned());
                Some((name.clone(), values.collect::<Vec<_>>()))
            })
            .collect()
    }

    const OUTSIDE: &str = "NOT_IN_THE_MODEL";

    /// Checks one enum and records its shape name and values.
    #[derive(Default)]
    struct RoundTrip {
        seen: BTreeMap<String, Vec<String>>,
    }

    impl ModelEnumVisitor for RoundTrip {
        fn visit<E: ModelEnum>(&mut self) {
            let mut variants: Vec<E> = Vec::new();
            for &value in E::VALUES {
                let e = <E as From<&str>>::from(value);
                assert!(e.is_known(), "{}: {value} decoded as unknown", E::SHAPE);
                assert_eq!(e.as_str(), value);
                assert_eq!(e.to_string(), value);
                assert_eq!(<E as From<String>>::from(value.to_owned()), e);
                assert_eq!(value.parse::<E>().ok(), Some(e.clone()));
                let json = serde_json::to_string(&e).unwrap();
                assert_eq!(json, serde_json::to_string(value).unwrap());
                assert_eq!(serde_json::from_str::<E>(&json).unwrap(), e);
                assert!(
                    !variants.contains(&e),
                    "{}: two values share a variant",
                    E::SHAPE
                );
                variants.push(e);
            }

            let unknown: E = serde_json::from_str(&format!("\"{OUTSIDE}\"")).unwrap();
            assert!(!unknown.is_known(), "{}", E::SHAPE);
            assert_eq!(unknown.as_str(), OUTSIDE);
            assert_eq!(unknown, <E as From<&str>>::from(OUTSIDE));
            assert_eq!(
                serde_json::to_string(&unknown).unwrap(),
                format!("\"{OUTSIDE}\"")
            );
            let err = check_enum("Member", &unknown).unwrap_err();
            assert_eq!(err.code(), "InvalidParameterValueException");
            assert_eq!(
                err.message(),
                format!(
                    "1 validation error detected: Value '{OUTSIDE}' at 'Member' failed to satisfy \
                     constraint: Member must satisfy enum value set: [{}]",
                    E::VALUES.join(", ")
                )
            );
            assert!(!E::default().is_known(), "{}", E::SHAPE);
            for known in &variants {
                assert!(check_enum("Member", known).is_ok());
            }

            let values = E::VALUES.iter().map(|v| v.to_string()).collect();
            assert!(self.seen.insert(E::SHAPE.to_owned(), values).is_none());
        }
    }

    #[test]
    fn every_model_enum_round_trips_every_value_and_refuses_others() {
        let mut check = RoundTrip::default();
        for_each_model_enum(&mut check);
        assert_eq!(check.seen, model_enums());
    }

    #[test]
    fn variant_names_follow_the_wire_spelling() {
        assert_eq!(BackupJobState::Completed.as_str(), "COMPLETED");
        assert_eq!(
            BackupVaultEvent::from("S3_BACKUP_OBJECT_FAILED"),
            BackupVaultEvent::S3BackupObjectFailed
        );
        // The model's own `UNKNOWN` is a value like any other, apart from the catch-all.
        assert_eq!(
            ScanResultStatus::from("UNKNOWN"),
            ScanResultStatus::UnknownValue
        );
        assert!(ScanResultStatus::UnknownValue.is_known());
        assert_eq!(
            ScanResultStatus::from("unknown"),
            ScanResultStatus::Unknown("unknown".into())
        );
    }

    #[test]
    fn an_input_outside_the_set_decodes_and_validation_refuses_it_as_before() {
        let input: ListBackupJobsInput =
            decode_input(serde_json::json!({"ByState": "SLEEPING"})).unwrap();
        assert_eq!(
            input.by_state,
            Some(BackupJobState::Unknown("SLEEPING".into()))
        );
        let err = input.validate().unwrap_err();
        assert_eq!(err.code(), "InvalidParameterValueException");
        assert_eq!(
            err.message(),
            "1 validation error detected: Value 'SLEEPING' at 'ByState' failed to satisfy \
             constraint: Member must satisfy enum value set: [CREATED, PENDING, RUNNING, \
             ABORTING, ABORTED, COMPLETED, FAILED, EXPIRED, PARTIAL]"
        );

        let input: PutBackupVaultNotificationsInput = decode_input(serde_json::json!({
            "BackupVaultName": "primary",
            "SNSTopicArn": "arn:aws:sns:us-east-1:111122223333:t",
            "BackupVaultEvents": ["BACKUP_JOB_STARTED", "BACKUP_JOB_EXPLODED"],
        }))
        .unwrap();
        assert_eq!(
            input.backup_vault_events,
            [
                BackupVaultEvent::BackupJobStarted,
                BackupVaultEvent::Unknown("BACKUP_JOB_EXPLODED".into())
            ]
        );
        let err = input.validate().unwrap_err();
        assert!(
            err.message().starts_with(
                "1 validation error detected: Value 'BACKUP_JOB_EXPLODED' at \
                 'BackupVaultEvents[1]' failed to satisfy constraint: Member must satisfy enum \
                 value set: [BACKUP_JOB_STARTED, "
            ),
            "{}",
            err.message()
        );
    }
}
