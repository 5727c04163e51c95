//! The resource inventory: the resources Coffer can back up, read from its configuration.
//!
//! AWS discovers resources in an account; Coffer is told about them. Each entry maps a
//! resource ARN, in AWS's format where the meaning matches, to a source on this machine:
//! `arn:aws:elasticfilesystem:REGION:ACCOUNT:file-system/ID` is a directory tree (type EFS),
//! `arn:aws:ec2:REGION:ACCOUNT:volume/ID` a disk image or block device read as one stream
//! (type EBS), `arn:aws:rds:REGION:ACCOUNT:db:NAME` a PostgreSQL database reached by URL (type
//! RDS). The account and region of the ARN scope the resource like any other. The
//! inventory can be replaced while Coffer runs (the server re-reads it on SIGHUP or when the
//! file changes); jobs look resources up at the moment they need them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::model::arn;
use serde::Deserialize;

/// How a resource's data is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A directory tree with all its metadata.
    Directory,
    /// One file or block device as a single stream.
    Stream,
    /// A group of other resources (`members`), backed up as a composite recovery point.
    Composite,
    // RDS (PostgreSQL)
    /// A PostgreSQL database, dumped with `pg_dump` (`ResourceEntry::url`).
    Postgres,
}

/// The resource types Coffer can back up, with the AWS name and how their data is read.
pub const SUPPORTED_TYPES: &[(&str, SourceKind)] = &[
    ("EBS", SourceKind::Stream),
    ("EFS", SourceKind::Directory),
    ("CloudFormation", SourceKind::Composite),
    ("RDS", SourceKind::Postgres),
];

/// One entry of the `[[resources]]` list in the configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ResourceEntry {
    pub arn: String,
    /// A directory, a file or a block device (none for a composite resource or RDS).
    #[serde(default)]
    pub source: PathBuf,
    /// The resources a composite resource (a CloudFormation stack) groups, by ARN.
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// The AWS resource type (EFS, EBS); derived from the ARN when absent.
    #[serde(default, rename = "type")]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    // RDS (PostgreSQL)
    /// The database's `postgres://USER@HOST:PORT/DATABASE` URL.
    #[serde(default)]
    pub url: Option<String>,
    /// The environment variable that holds the database password (read when a job runs).
    #[serde(default)]
    pub password_env: Option<String>,
}

// RDS (PostgreSQL)
/// How Coffer reaches a PostgreSQL database. Its `Debug` never shows a password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseSource {
    pub url: String,
    pub password_env: Option<String>,
}

impl std::fmt::Debug for DatabaseSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = coffer_engine::sources::postgres::PgConn::parse(&self.url, None)
            .map_or_else(|_| "<invalid url>".to_string(), |c| c.url());
        write!(f, "{url} (password from {:?})", self.password_env)
    }
}

impl DatabaseSource {
    /// How to reach the database now: its URL, with the password read from the environment
    /// variable `password_env` names (the configuration never holds it). `arn` names the
    /// resource in messages.
    ///
    /// # Errors
    /// A missing variable or a bad URL, saying what to set.
    pub fn connection(
        &self,
        arn: &str,
    ) -> coffer_engine::Result<coffer_engine::sources::postgres::PgConn> {
        let password = match &self.password_env {
            None => None,
            Some(var) => Some(std::env::var(var).map_err(|_| {
                coffer_engine::Error::Database(format!(
                    "the environment variable {var} (password_env of {arn}) is not set in Coffer's environment; set it to the database password and restart Coffer"
                ))
            })?),
        };
        coffer_engine::sources::postgres::PgConn::parse(&self.url, password)
    }

    fn from_entry(e: &ResourceEntry) -> Result<Self, String> {
        let url = e.url.clone().ok_or_else(|| {
            format!(
                "{} is an RDS resource: give url = \"postgres://USER@HOST:PORT/DATABASE\" and, for the password, password_env = \"VARIABLE\"",
                e.arn
            )
        })?;
        coffer_engine::sources::postgres::PgConn::parse(&url, None)
            .map_err(|err| format!("url of {}: {err}", e.arn))?;
        if !e.source.as_os_str().is_empty() {
            return Err(format!(
                "{} is an RDS resource: it is reached by url, not source; remove source",
                e.arn
            ));
        }
        Ok(Self {
            url,
            password_env: e.password_env.clone(),
        })
    }
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
    /// A composite resource's members (ARNs of other resources of the inventory).
    pub members: Vec<String>,
    // RDS (PostgreSQL)
    /// How to reach the database (RDS resources only).
    pub database: Option<DatabaseSource>,
}

/// What an operator can declare, for messages about an entry Coffer cannot back up.
pub const SUPPORTED_KINDS: &str = "Coffer backs up EFS file systems \
(arn:aws:elasticfilesystem:REGION:ACCOUNT:file-system/ID, a directory tree), EBS volumes \
(arn:aws:ec2:REGION:ACCOUNT:volume/ID, a file or block device), RDS databases \
(arn:aws:rds:REGION:ACCOUNT:db:NAME, a PostgreSQL database given by url), and CloudFormation \
stacks (arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/ID, with members = [ARN, ...]) as composites";

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
    match (a.service, a.resource.split(['/', ':']).next().unwrap_or("")) {
        ("elasticfilesystem", "file-system") => Some("EFS"),
        ("ec2", "volume") => Some("EBS"),
        ("cloudformation", "stack") => Some("CloudFormation"),
        ("rds", "db") => Some("RDS"),
        _ => None,
    }
}

/// Only a composite resource takes `members`, and it takes no source.
fn check_members(e: &ResourceEntry, kind: SourceKind) -> Result<(), String> {
    match (kind, e.members.is_empty(), e.source.as_os_str().is_empty()) {
        (SourceKind::Composite, true, _) => {
            return Err(format!(
                "{} is a composite resource: list the resources it groups with members = [ARN, ...]",
                e.arn
            ));
        }
        (SourceKind::Composite, false, false) => {
            return Err(format!(
                "{} is a composite resource: its members hold the data, so it takes no source",
                e.arn
            ));
        }
        (SourceKind::Composite, false, true) => {}
        (_, false, _) => {
            return Err(format!(
                "{} is not a composite resource: only a CloudFormation stack takes members",
                e.arn
            ));
        }
        // Whether the others need a source is checked below (an RDS database takes a url).
        (_, true, _) => {}
    }
    Ok(())
}

impl Resource {
    /// Checks an inventory entry; the message says what to fix.
    pub fn from_entry(e: &ResourceEntry) -> Result<Resource, String> {
        let a = arn::parse(&e.arn).ok_or_else(|| format!("'{}' is not an ARN", e.arn))?;
        if a.account.len() != 12 || !a.account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("ARN {} must name a 12-digit account", e.arn));
        }
        if a.region.is_empty() {
            return Err(format!("ARN {} must name a region", e.arn));
        }
        let resource_type = match &e.resource_type {
            Some(t) => t.clone(),
            None => type_of_arn(&e.arn)
                .ok_or_else(|| {
                    format!(
                        "{} is not a kind of resource Coffer can back up. {SUPPORTED_KINDS}; \
                         to declare another ARN form as one of them, set type = \"EFS\", \"EBS\" or \"RDS\"",
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
        check_members(e, kind)?;
        let default_name = a
            .resource
            .rsplit(['/', ':'])
            .next()
            .unwrap_or(a.resource)
            .to_string();
        let database = match kind {
            SourceKind::Postgres => Some(DatabaseSource::from_entry(e)?),
            SourceKind::Composite => None,
            _ if e.url.is_some() || e.password_env.is_some() => {
                return Err(format!(
                    "{}: url and password_env are for RDS resources; give source instead",
                    e.arn
                ));
            }
            _ if e.source.as_os_str().is_empty() => {
                return Err(format!(
                    "{} needs a source (a directory, a file or a block device)",
                    e.arn
                ));
            }
            _ => None,
        };
        Ok(Resource {
            arn: e.arn.clone(),
            account: a.account.to_string(),
            region: a.region.to_string(),
            resource_type,
            kind,
            name: e.name.clone().unwrap_or(default_name),
            source: e.source.clone(),
            tags: e.tags.clone(),
            members: e.members.clone(),
            database,
        })
    }
}

/// The current inventory, shared and replaceable.
#[derive(Clone, Default)]
pub struct Inventory {
    resources: Arc<RwLock<Vec<Resource>>>,
}

impl Inventory {
    /// Replaces the inventory with `entries`; returns a problem per entry that was left out.
    /// An entry whose source is missing is kept (its jobs fail with that message) and reported.
    pub fn replace(&self, entries: &[ResourceEntry]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut resources = Vec::new();
        for e in entries {
            match Resource::from_entry(e) {
                Ok(r) => {
                    if !matches!(r.kind, SourceKind::Composite | SourceKind::Postgres)
                        && !r.source.exists()
                    {
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
            members: Vec::new(),
            arn: arn.into(),
            source: "/nonexistent".into(),
            name: None,
            resource_type: None,
            tags: BTreeMap::new(),
            url: None,
            password_env: None,
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
            Resource::from_entry(&entry("arn:aws:dynamodb:us-east-1:111122223333:table/t"))
                .unwrap_err();
        assert!(
            refused.contains("EFS file systems") && refused.contains("EBS volumes"),
            "{refused}"
        );
        assert!(Resource::from_entry(&entry("arn:aws:ec2:us-east-1:abc:volume/v")).is_err());
    }

    #[test]
    fn rds_resources_are_databases_reached_by_url() {
        let arn = "arn:aws:rds:us-east-1:111122223333:db:shop";
        let no_url = Resource::from_entry(&ResourceEntry {
            source: PathBuf::new(),
            ..entry(arn)
        })
        .unwrap_err();
        assert!(no_url.contains("give url"), "{no_url}");
        let r = Resource::from_entry(&ResourceEntry {
            source: PathBuf::new(),
            url: Some("postgres://app:hunter2@127.0.0.1:5432/shop".into()),
            password_env: Some("SHOP_PG_PASSWORD".into()),
            ..entry(arn)
        })
        .unwrap();
        assert_eq!(
            (r.resource_type.as_str(), r.kind, r.name.as_str()),
            ("RDS", SourceKind::Postgres, "shop")
        );
        let shown = format!("{r:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let with_source = Resource::from_entry(&ResourceEntry {
            url: Some("postgres://app@127.0.0.1/shop".into()),
            ..entry(arn)
        })
        .unwrap_err();
        assert!(with_source.contains("remove source"), "{with_source}");
        let efs_with_url = Resource::from_entry(&ResourceEntry {
            url: Some("postgres://app@127.0.0.1/shop".into()),
            ..entry("arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-1")
        })
        .unwrap_err();
        assert!(efs_with_url.contains("for RDS resources"), "{efs_with_url}");
        // No source to check on disk: the inventory reports nothing.
        let inv = Inventory::default();
        let problems = inv.replace(&[ResourceEntry {
            source: PathBuf::new(),
            url: Some("postgres://app@127.0.0.1/shop".into()),
            ..entry(arn)
        }]);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn unknown_arns_say_what_can_be_backed_up() {
        let efs =
            not_in_inventory("arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-x");
        assert!(efs.contains("declare it under [[resources]]"), "{efs}");
        assert!(!efs.contains("EBS volumes"), "{efs}");
        let s3 = not_in_inventory("arn:aws:s3:::bucket");
        assert!(
            s3.contains("not a kind of resource Coffer can back up")
                && s3.contains("EFS file systems")
                && s3.contains("EBS volumes"),
            "{s3}"
        );
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
}
