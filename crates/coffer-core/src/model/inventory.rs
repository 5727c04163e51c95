//! The resource inventory: the resources Coffer can back up, read from its configuration.
//!
//! AWS discovers resources in an account; Coffer is told about them. Each entry maps a
//! resource ARN, in AWS's format where the meaning matches, to a source on this machine:
//! `arn:aws:elasticfilesystem:REGION:ACCOUNT:file-system/ID` is a directory tree (type EFS),
//! `arn:aws:ec2:REGION:ACCOUNT:volume/ID` a disk image or block device read as one stream
//! (type EBS), `arn:aws:s3:::BUCKET` the objects of an S3-compatible bucket (type S3; the
//! account and region come from the entry, defaulting to the server's), and a database file
//! declared with type `SQLite` (`arn:aws:sqlite:REGION:ACCOUNT:database/NAME` by default) a
//! SQLite database copied online. The account and region of the ARN scope the resource like any other. The
//! inventory can be replaced while Coffer runs (the server re-reads it on SIGHUP or when the
//! file changes); jobs look resources up at the moment they need them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::model::arn;
use coffer_engine::S3Endpoint;
use serde::Deserialize;

/// How a resource's data is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A directory tree with all its metadata.
    Directory,
    /// One file or block device as a single stream.
    Stream,
    // S3 buckets and SQLite files
    /// The objects of an S3-compatible bucket.
    Bucket,
    /// A SQLite database file, copied with SQLite's backup API.
    Sqlite,
}

/// The resource types Coffer can back up, with the AWS name and how their data is read.
pub const SUPPORTED_TYPES: &[(&str, SourceKind)] = &[
    ("EBS", SourceKind::Stream),
    ("EFS", SourceKind::Directory),
    // S3 buckets and SQLite files
    ("S3", SourceKind::Bucket),
    ("SQLite", SourceKind::Sqlite),
];

/// One entry of the `[[resources]]` list in the configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ResourceEntry {
    pub arn: String,
    /// A directory, a file or a block device (a SQLite database file; none for a bucket).
    #[serde(default)]
    pub source: PathBuf,
    #[serde(default)]
    pub name: Option<String>,
    /// The AWS resource type (EFS, EBS); derived from the ARN when absent.
    #[serde(default, rename = "type")]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    // S3 buckets and SQLite files
    /// The account of a bucket (its ARN names none); default: the server's account.
    #[serde(default)]
    pub account: Option<String>,
    /// The region of a bucket; default: the server's default region.
    #[serde(default)]
    pub region: Option<String>,
    /// Where a bucket lives and the credentials to read and write it (type S3).
    #[serde(default)]
    pub s3: Option<S3Endpoint>,
}

/// A resource Coffer knows about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub arn: String,
    pub account: String,
    pub region: String,
    pub resource_type: String,
    pub kind: SourceKind,
    pub name: String,
    pub source: PathBuf,
    pub tags: BTreeMap<String, String>,
    /// The bucket's server and credentials (type S3 only).
    pub s3: Option<S3Endpoint>,
}

/// What an operator can declare, for messages about an entry Coffer cannot back up.
pub const SUPPORTED_KINDS: &str = "Coffer backs up EFS file systems \
(arn:aws:elasticfilesystem:REGION:ACCOUNT:file-system/ID, a directory tree) and EBS volumes \
(arn:aws:ec2:REGION:ACCOUNT:volume/ID, a file or block device), S3 buckets \
(arn:aws:s3:::BUCKET, with a [resources.s3] table) and SQLite database files \
(type = \"SQLite\", e.g. arn:aws:sqlite:REGION:ACCOUNT:database/NAME)";

/// Why a resource ARN that is not in the inventory cannot be backed up, and what to do: an
/// ARN of a kind Coffer cannot back up says which kinds it can; another is to be declared.
pub fn not_in_inventory(arn: &str) -> String {
    if type_of_arn(arn).is_some() {
        format!(
            "Resource {arn} is not in Coffer's inventory; declare it under [[resources]] in the configuration file."
        )
    } else {
        format!(
            "Resource {arn} is not in Coffer's inventory, and is not a kind of resource Coffer can back up. {SUPPORTED_KINDS}; declare them under [[resources]] in the configuration file."
        )
    }
}

/// The type AWS gives a resource ARN, when Coffer can back it up.
pub fn type_of_arn(arn: &str) -> Option<&'static str> {
    let a = arn::parse(arn)?;
    match (a.service, a.resource.split('/').next().unwrap_or("")) {
        ("elasticfilesystem", "file-system") => Some("EFS"),
        ("ec2", "volume") => Some("EBS"),
        // S3 buckets and SQLite files
        ("s3", b) if !b.is_empty() && !b.contains('/') => Some("S3"),
        ("sqlite", "database") => Some("SQLite"),
        _ => None,
    }
}

/// The account and region of an entry: the ARN's, or for a bucket (whose ARN has neither)
/// the entry's `account` / `region`, defaulting to `defaults` (the server's).
fn scope(
    e: &ResourceEntry,
    a: &arn::Arn<'_>,
    defaults: Option<(&str, &str)>,
) -> Result<(String, String), String> {
    let is_bucket = a.service == "s3" && a.account.is_empty() && a.region.is_empty();
    if !is_bucket {
        if e.account.is_some() || e.region.is_some() {
            return Err(format!(
                "{}: account and region come from the ARN; remove the account and region keys",
                e.arn
            ));
        }
        return Ok((a.account.to_string(), a.region.to_string()));
    }
    let account = e
        .account
        .clone()
        .or_else(|| defaults.map(|d| d.0.to_string()))
        .ok_or_else(|| {
            format!(
                "{}: set account = \"ACCOUNT\" (12 digits) for the bucket",
                e.arn
            )
        })?;
    let region = e
        .region
        .clone()
        .or_else(|| defaults.map(|d| d.1.to_string()))
        .ok_or_else(|| format!("{}: set region = \"REGION\" for the bucket", e.arn))?;
    Ok((account, region))
}

/// A bucket name S3 accepts: 3-63 lowercase letters, digits, `.` and `-`.
fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
}

impl Resource {
    /// Checks an inventory entry; the message says what to fix. A bucket entry must name its
    /// account and region (see [`Resource::from_entry_in`]).
    pub fn from_entry(e: &ResourceEntry) -> Result<Resource, String> {
        Self::from_entry_in(e, None)
    }

    /// Checks an inventory entry, with the server's account and region as the defaults of a
    /// bucket's scope.
    pub fn from_entry_in(
        e: &ResourceEntry,
        defaults: Option<(&str, &str)>,
    ) -> Result<Resource, String> {
        let a = arn::parse(&e.arn).ok_or_else(|| format!("'{}' is not an ARN", e.arn))?;
        let (account, region) = scope(e, &a, defaults)?;
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("ARN {} must name a 12-digit account", e.arn));
        }
        if region.is_empty() {
            return Err(format!("ARN {} must name a region", e.arn));
        }
        let resource_type = match &e.resource_type {
            Some(t) => t.clone(),
            None => type_of_arn(&e.arn)
                .ok_or_else(|| {
                    format!(
                        "{} is not a kind of resource Coffer can back up. {SUPPORTED_KINDS}; \
                         to declare another ARN form as one of them, set type = \"EFS\", \"EBS\" or \"SQLite\"",
                        e.arn
                    )
                })?
                .to_string(),
        };
        let kind = SUPPORTED_TYPES
            .iter()
            .find(|(t, _)| *t == resource_type)
            .map(|(_, k)| *k)
            .ok_or_else(|| {
                format!(
                    "resource type {resource_type} of {} is not supported. {SUPPORTED_KINDS}",
                    e.arn
                )
            })?;
        let default_name = a
            .resource
            .rsplit(['/', ':'])
            .next()
            .unwrap_or(a.resource)
            .to_string();
        let source = check_source(e, kind, a.resource)?;
        Ok(Resource {
            arn: e.arn.clone(),
            account,
            region,
            resource_type,
            kind,
            name: e.name.clone().unwrap_or(default_name),
            source,
            tags: e.tags.clone(),
            s3: e.s3.clone(),
        })
    }
}

/// The source of an entry as its kind needs it: a bucket has a valid name and a
/// `[resources.s3]` table (its source reads `s3://BUCKET`); any other kind has a source path
/// and no `[resources.s3]` table.
fn check_source(e: &ResourceEntry, kind: SourceKind, resource: &str) -> Result<PathBuf, String> {
    if kind != SourceKind::Bucket {
        if e.s3.is_some() {
            return Err(format!(
                "{}: a [resources.s3] table belongs to S3 buckets only; remove it",
                e.arn
            ));
        }
        if e.source.as_os_str().is_empty() {
            return Err(format!("{}: set source = \"/path\" on this machine", e.arn));
        }
        return Ok(e.source.clone());
    }
    if !valid_bucket(resource) {
        return Err(format!(
            "{}: '{resource}' is not a bucket name (3-63 lowercase letters, digits, '.' and '-')",
            e.arn
        ));
    }
    if e.s3.is_none() {
        return Err(format!(
            "{}: an S3 bucket needs a [resources.s3] table with endpoint, access_key_id and secret_access_key (and region, default us-east-1)",
            e.arn
        ));
    }
    if !e.source.as_os_str().is_empty() {
        return Err(format!(
            "{}: a bucket has no source path; remove source (the [resources.s3] table says where it is)",
            e.arn
        ));
    }
    Ok(PathBuf::from(format!("s3://{resource}")))
}

/// The current inventory, shared and replaceable.
#[derive(Clone, Default)]
pub struct Inventory {
    resources: Arc<RwLock<Vec<Resource>>>,
    /// The server's account and default region: the scope of a bucket entry that names none.
    defaults: Arc<RwLock<Option<(String, String)>>>,
}

impl Inventory {
    /// Sets the account and region given to bucket entries that name none (the next
    /// [`Inventory::replace`] uses them).
    pub fn set_default_scope(&self, account: &str, region: &str) {
        *self.defaults.write().unwrap_or_else(|e| e.into_inner()) =
            Some((account.to_string(), region.to_string()));
    }

    /// Replaces the inventory with `entries`; returns a problem per entry that was left out.
    /// An entry whose source is missing is kept (its jobs fail with that message) and reported.
    pub fn replace(&self, entries: &[ResourceEntry]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut resources = Vec::new();
        let defaults = self
            .defaults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let defaults = defaults.as_ref().map(|(a, r)| (a.as_str(), r.as_str()));
        for e in entries {
            match Resource::from_entry_in(e, defaults) {
                Ok(r) => {
                    if r.kind != SourceKind::Bucket && !r.source.exists() {
                        problems.push(format!(
                            "source {} of {} does not exist (yet)",
                            r.source.display(),
                            r.arn
                        ));
                    }
                    if resources.iter().any(|x: &Resource| x.arn == r.arn) {
                        problems.push(format!(
                            "{} is listed twice; the first entry is used",
                            r.arn
                        ));
                        continue;
                    }
                    resources.push(r);
                }
                Err(p) => problems.push(p),
            }
        }
        *self.resources.write().unwrap_or_else(|e| e.into_inner()) = resources;
        problems
    }

    pub fn get(&self, arn: &str) -> Option<Resource> {
        self.resources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|r| r.arn == arn)
            .cloned()
    }

    /// The resources of one account and region.
    pub fn in_scope(&self, account: &str, region: &str) -> Vec<Resource> {
        self.resources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|r| r.account == account && r.region == region)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(arn: &str) -> ResourceEntry {
        ResourceEntry {
            arn: arn.into(),
            source: "/nonexistent".into(),
            name: None,
            resource_type: None,
            tags: BTreeMap::new(),
            account: None,
            region: None,
            s3: None,
        }
    }

    #[test]
    fn types_come_from_the_arn() {
        let r = Resource::from_entry(&entry(
            "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-docs",
        ))
        .unwrap();
        assert_eq!(
            (r.resource_type.as_str(), r.kind, r.name.as_str()),
            ("EFS", SourceKind::Directory, "fs-docs")
        );
        let r = Resource::from_entry(&entry("arn:aws:ec2:us-east-1:111122223333:volume/vol-1"))
            .unwrap();
        assert_eq!(
            (r.resource_type.as_str(), r.kind),
            ("EBS", SourceKind::Stream)
        );
        let refused =
            Resource::from_entry(&entry("arn:aws:rds:us-east-1:111122223333:db:main")).unwrap_err();
        assert!(
            refused.contains("EFS file systems") && refused.contains("EBS volumes"),
            "{refused}"
        );
        assert!(Resource::from_entry(&entry("arn:aws:ec2:us-east-1:abc:volume/v")).is_err());
    }

    #[test]
    fn unknown_arns_say_what_can_be_backed_up() {
        let efs =
            not_in_inventory("arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-x");
        assert!(efs.contains("declare it under [[resources]]"), "{efs}");
        assert!(!efs.contains("EBS volumes"), "{efs}");
        let rds = not_in_inventory("arn:aws:rds:us-east-1:111122223333:db:main");
        assert!(
            rds.contains("not a kind of resource Coffer can back up")
                && rds.contains("EFS file systems")
                && rds.contains("S3 buckets"),
            "{rds}"
        );
        let s3 = not_in_inventory("arn:aws:s3:::bucket");
        assert!(s3.contains("declare it under [[resources]]"), "{s3}");
    }

    #[test]
    fn missing_sources_are_reported_not_dropped() {
        let inv = Inventory::default();
        let problems = inv.replace(&[entry("arn:aws:ec2:us-east-1:111122223333:volume/vol-1")]);
        assert_eq!(problems.len(), 1);
        assert!(
            inv.get("arn:aws:ec2:us-east-1:111122223333:volume/vol-1")
                .is_some()
        );
        assert_eq!(inv.in_scope("111122223333", "us-east-1").len(), 1);
        assert!(inv.in_scope("111122223333", "eu-west-1").is_empty());
    }

    #[test]
    fn buckets_take_their_scope_from_the_entry_or_the_server() {
        let mut e = entry("arn:aws:s3:::photos");
        e.source = PathBuf::new();
        let no_table = Resource::from_entry_in(&e, Some(("111122223333", "eu-west-1")));
        assert!(no_table.unwrap_err().contains("[resources.s3]"));
        e.s3 = Some(S3Endpoint {
            endpoint: "http://127.0.0.1:9000".into(),
            region: "us-east-1".into(),
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
        });
        let r = Resource::from_entry_in(&e, Some(("111122223333", "eu-west-1"))).unwrap();
        assert_eq!(
            (
                r.resource_type.as_str(),
                r.kind,
                r.account.as_str(),
                r.region.as_str()
            ),
            ("S3", SourceKind::Bucket, "111122223333", "eu-west-1")
        );
        assert_eq!(r.source, PathBuf::from("s3://photos"));
        assert!(Resource::from_entry(&e).unwrap_err().contains("account"));
        e.account = Some("444455556666".into());
        e.region = Some("us-west-2".into());
        let r = Resource::from_entry(&e).unwrap();
        assert_eq!(
            (r.account.as_str(), r.region.as_str()),
            ("444455556666", "us-west-2")
        );
        let mut bad = e.clone();
        bad.arn = "arn:aws:s3:::Not_A_Bucket".into();
        assert!(
            Resource::from_entry(&bad)
                .unwrap_err()
                .contains("bucket name")
        );

        let db = entry("arn:aws:sqlite:us-east-1:111122223333:database/app");
        let r = Resource::from_entry(&db).unwrap();
        assert_eq!(
            (r.resource_type.as_str(), r.kind),
            ("SQLite", SourceKind::Sqlite)
        );
        let mut declared = entry("arn:aws:ec2:us-east-1:111122223333:volume/app-db");
        declared.resource_type = Some("SQLite".into());
        assert_eq!(
            Resource::from_entry(&declared).unwrap().kind,
            SourceKind::Sqlite
        );
    }
}
