//! What the restore metadata of a bucket's recovery point (resource type S3) asks for: the
//! bucket to write into, whether Coffer creates it, a key prefix, and the keys to restore.
//! AWS's own S3 restore keys are read where they fit (`DestinationBucketName`, `NewBucket`,
//! `ItemsToRestore`); `DestinationPrefix` is Coffer's. StartRestoreJob checks the metadata
//! with [`bucket_plan`] before the job is queued, and the data plane reads it again with it.

use std::collections::BTreeMap;

use coffer_api::ApiError;

use crate::model::error::Result;
use crate::model::restore::flag;

/// The resource type of a bucket's recovery points.
pub(crate) const BUCKET_TYPE: &str = "S3";

/// Where a bucket restore writes, and what.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BucketPlan {
    pub(crate) bucket: String,
    pub(crate) new_bucket: bool,
    pub(crate) prefix: String,
    pub(crate) keys: Vec<String>,
}

/// The bucket a bucket resource's ARN names (`arn:aws:s3:::BUCKET`).
pub(crate) fn bucket_of_arn(arn: &str) -> &str {
    arn.strip_prefix("arn:aws:s3:::").unwrap_or(arn)
}

fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
}

/// Reads the metadata of a restore of bucket `source` (see the module documentation).
pub(crate) fn bucket_plan(metadata: &BTreeMap<String, String>, source: &str) -> Result<BucketPlan> {
    let bucket = metadata
        .get("DestinationBucketName")
        .map(|b| b.trim())
        .filter(|b| !b.is_empty())
        .unwrap_or(source)
        .to_string();
    if !valid_bucket(&bucket) {
        return Err(ApiError::invalid_parameter(format!(
            "DestinationBucketName '{bucket}' is not a bucket name (3-63 lowercase letters, digits, '.' and '-')."
        ))
        .into());
    }
    let new_bucket = flag(metadata, "NewBucket")?;
    if new_bucket && bucket == source {
        return Err(ApiError::invalid_parameter(format!(
            "NewBucket is true but DestinationBucketName names the backed-up bucket {source}; name a bucket that does not exist yet."
        ))
        .into());
    }
    let prefix = metadata
        .get("DestinationPrefix")
        .map(|p| p.trim_start_matches('/').to_string())
        .unwrap_or_default();
    let mut keys = Vec::new();
    if let Some(items) = metadata
        .get("ItemsToRestore")
        .filter(|s| !s.trim().is_empty())
    {
        let list: Vec<String> = serde_json::from_str(items).map_err(|_| {
            ApiError::invalid_parameter(format!(
                "ItemsToRestore must be a JSON array of keys, e.g. [\"s3://{source}/docs/a.txt\"] or [\"docs/a.txt\"]; got {items}"
            ))
        })?;
        for item in list {
            let key = item
                .strip_prefix(&format!("s3://{source}/"))
                .unwrap_or(&item)
                .trim_start_matches('/');
            if key.is_empty() || key.starts_with("s3://") || key.split('/').any(|c| c == "..") {
                return Err(ApiError::invalid_parameter(format!(
                    "ItemsToRestore entry '{item}' must be a key of bucket {source} (s3://{source}/KEY or KEY)."
                ))
                .into());
            }
            keys.push(key.to_string());
        }
    }
    Ok(BucketPlan {
        bucket,
        new_bucket,
        prefix,
        keys,
    })
}

/// The restore metadata GetRecoveryPointRestoreMetadata shows for a bucket's recovery point.
pub(crate) fn bucket_restore_metadata(source: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("DestinationBucketName".to_string(), source.to_string()),
        ("NewBucket".to_string(), "false".to_string()),
        ("DestinationPrefix".to_string(), String::new()),
        ("ItemsToRestore".to_string(), "[]".to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bucket_metadata_is_read_with_aws_keys() {
        let p = bucket_plan(&md(&[]), "photos").unwrap();
        assert_eq!((p.bucket.as_str(), p.new_bucket), ("photos", false));
        let p = bucket_plan(
            &md(&[
                ("DestinationBucketName", "photos-restored"),
                ("NewBucket", "true"),
                ("DestinationPrefix", "/again/"),
                ("ItemsToRestore", r#"["s3://photos/a/b.jpg", "c.txt"]"#),
            ]),
            "photos",
        )
        .unwrap();
        assert_eq!(
            p,
            BucketPlan {
                bucket: "photos-restored".into(),
                new_bucket: true,
                prefix: "again/".into(),
                keys: vec!["a/b.jpg".into(), "c.txt".into()],
            }
        );
        for bad in [
            md(&[("NewBucket", "true")]),
            md(&[("DestinationBucketName", "Bad_Name")]),
            md(&[("ItemsToRestore", "a.txt")]),
            md(&[("ItemsToRestore", r#"["s3://other/a"]"#)]),
            md(&[("ItemsToRestore", r#"["../x"]"#)]),
        ] {
            let e = bucket_plan(&bad, "photos").unwrap_err();
            assert!(e.0.message().len() > 20, "{}", e.0.message());
        }
    }
}
