//! Input decoding and validation against the model's constraints.
//!
//! The generated `validate.rs` calls these checks member by member; messages follow AWS's
//! wording ("Value 'x' at 'BackupVaultName' failed to satisfy constraint: ...") so that the
//! user sees which member broke which rule.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::model_enum::ModelEnum;

/// A structure that can check itself against the model's constraints.
pub trait Validate {
    /// Checks the value; `path` names where it sits in the request (empty at the top).
    fn validate_at(&self, path: &str) -> Result<(), ApiError>;

    fn validate(&self) -> Result<(), ApiError> {
        self.validate_at("")
    }
}

/// A model pattern, compiled once.
pub struct Pattern {
    source: &'static str,
    regex: Option<fancy_regex::Regex>,
}

impl Pattern {
    pub fn new(source: &'static str) -> Self {
        let regex = fancy_regex::Regex::new(source).ok();
        if regex.is_none() {
            tracing::warn!(
                pattern = source,
                "model pattern does not compile; not enforced"
            );
        }
        Pattern { source, regex }
    }

    pub fn is_match(&self, text: &str) -> bool {
        match &self.regex {
            Some(r) => r.is_match(text).unwrap_or(false),
            None => true,
        }
    }
}

pub fn member_path(path: &str, member: &str) -> String {
    if path.is_empty() {
        member.to_string()
    } else {
        format!("{path}.{member}")
    }
}

fn shown(value: &str) -> String {
    let mut v: String = value.chars().take(100).collect();
    if value.chars().count() > 100 {
        v.push_str("...");
    }
    v
}

fn failed(path: &str, value: &str, constraint: String) -> ApiError {
    ApiError::invalid_parameter(format!(
        "1 validation error detected: Value '{}' at '{path}' failed to satisfy constraint: {constraint}",
        shown(value)
    ))
}

pub fn check_length(
    path: &str,
    len: usize,
    min: Option<i64>,
    max: Option<i64>,
) -> Result<(), ApiError> {
    if let Some(min) = min
        && (len as i64) < min
    {
        return Err(ApiError::invalid_parameter(format!(
            "1 validation error detected: Value at '{path}' failed to satisfy constraint: Member must have length greater than or equal to {min}"
        )));
    }
    if let Some(max) = max
        && (len as i64) > max
    {
        return Err(ApiError::invalid_parameter(format!(
            "1 validation error detected: Value at '{path}' failed to satisfy constraint: Member must have length less than or equal to {max}"
        )));
    }
    Ok(())
}

pub fn check_count(
    path: &str,
    len: usize,
    min: Option<i64>,
    max: Option<i64>,
) -> Result<(), ApiError> {
    check_length(path, len, min, max)
}

pub fn check_pattern(path: &str, value: &str, pattern: &Pattern) -> Result<(), ApiError> {
    if pattern.is_match(value) {
        Ok(())
    } else {
        Err(failed(
            path,
            value,
            format!(
                "Member must satisfy regular expression pattern: {}",
                pattern.source
            ),
        ))
    }
}

/// Refuses a value outside the model enum's set (decoded as `Unknown`), naming the set.
pub fn check_enum<E: ModelEnum>(path: &str, value: &E) -> Result<(), ApiError> {
    if value.is_known() {
        Ok(())
    } else {
        Err(failed(
            path,
            value.as_str(),
            format!(
                "Member must satisfy enum value set: [{}]",
                E::VALUES.join(", ")
            ),
        ))
    }
}

pub fn check_range(
    path: &str,
    value: i64,
    min: Option<i64>,
    max: Option<i64>,
) -> Result<(), ApiError> {
    if let Some(min) = min
        && value < min
    {
        return Err(failed(
            path,
            &value.to_string(),
            format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if let Some(max) = max
        && value > max
    {
        return Err(failed(
            path,
            &value.to_string(),
            format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// Decodes an operation's input from its JSON form. A missing required member becomes
/// MissingParameterValueException, a member of the wrong type InvalidParameterValueException,
/// both naming the member.
pub fn decode_input<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    // The common case pays no path tracking; a failure is decoded again to name the member.
    if let Ok(v) = T::deserialize(&value) {
        return Ok(v);
    }
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Ok(v),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            if let Some(rest) = inner.strip_prefix("missing field `") {
                let field = rest.split('`').next().unwrap_or_default();
                let full = if path == "." || path.is_empty() {
                    field.to_string()
                } else {
                    format!("{path}.{field}")
                };
                Err(ApiError::missing_parameter(format!(
                    "Missing required parameter in input: \"{full}\""
                )))
            } else {
                Err(ApiError::invalid_parameter(format!(
                    "Invalid value for parameter {path}: {inner}"
                )))
            }
        }
    }
}

/// Encodes an operation's output body.
pub fn encode_output<T: Serialize>(output: &T) -> Result<Vec<u8>, ApiError> {
    // Encoded straight into the buffer the response body takes over (no copy); sized for a
    // typical answer so a list page grows it a few times at most.
    let mut body = Vec::with_capacity(1024);
    serde_json::to_writer(&mut body, output).map_err(ApiError::internal)?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{CreateBackupVaultInput, ListBackupJobsInput, UpdateRegionSettingsInput};

    #[test]
    fn pattern_violation_names_the_member() {
        let input = CreateBackupVaultInput {
            backup_vault_name: "bad name!".into(),
            ..Default::default()
        };
        let err = input.validate().unwrap_err();
        assert_eq!(err.code(), "InvalidParameterValueException");
        assert!(
            err.message().contains("'BackupVaultName'"),
            "{}",
            err.message()
        );
        assert!(
            err.message().contains("regular expression"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn enum_and_range_violations() {
        let input = ListBackupJobsInput {
            by_state: Some("SLEEPING".into()),
            ..Default::default()
        };
        let err = input.validate().unwrap_err();
        assert!(err.message().contains("ByState") && err.message().contains("COMPLETED"));
        let input = ListBackupJobsInput {
            max_results: Some(5000),
            ..Default::default()
        };
        let err = input.validate().unwrap_err();
        assert!(
            err.message().contains("less than or equal to 1000"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn missing_and_mistyped_members() {
        let err = decode_input::<CreateBackupVaultInput>(serde_json::json!({})).unwrap_err();
        assert_eq!(err.code(), "MissingParameterValueException");
        assert!(err.message().contains("BackupVaultName"));
        let err = decode_input::<CreateBackupVaultInput>(
            serde_json::json!({"BackupVaultName": "v", "BackupVaultTags": 3}),
        )
        .unwrap_err();
        assert_eq!(err.code(), "InvalidParameterValueException");
        assert!(
            err.message().contains("BackupVaultTags"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn resource_types_may_contain_spaces_as_aws_names_do() {
        // A deviation from the model's ResourceType pattern (see scripts/codegen.py).
        let input = UpdateRegionSettingsInput {
            resource_type_opt_in_preference: Some(
                [
                    ("Storage Gateway".to_string(), true),
                    ("SAP HANA on Amazon EC2".to_string(), false),
                ]
                .into(),
            ),
            ..Default::default()
        };
        assert!(input.validate().is_ok());
        let input = ListBackupJobsInput {
            by_resource_type: Some("EBS/../etc".into()),
            ..Default::default()
        };
        assert!(input.validate().is_err());
    }
}
