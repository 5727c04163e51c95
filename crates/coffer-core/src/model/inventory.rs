//! The resource inventory: the resources Coffer can back up, read from its configuration.
//!
//! AWS discovers resources in an account; Coffer is told about them. Each entry maps a
//! resource ARN, in AWS's format where the meaning matches, to a source on this machine:
//! `arn:aws:elasticfilesystem:REGION:ACCOUNT:file-system/ID` is a directory tree (type EFS),
//! `arn:aws:ec2:REGION:ACCOUNT:volume/ID` a disk image or block device read as one stream
//! (type EBS), `arn:aws:s3:::BUCKET` the objects of an S3-compatible bucket (type S3; the
//! account and region come from the entry, defaulting to the server's), a database file
//! declared with type `SQLite` (`arn:aws:sqlite:REGION:ACCOUNT:database/NAME` by default) a
//! SQLite database copied online, `arn:aws:rds:REGION:ACCOUNT:db:NAME` a PostgreSQL database
//! reached by URL (type RDS), and `arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/ID` a
//! composite of other resources (type CloudFormation, with `members`). The account and region
//! of the ARN scope the resource like any other. The
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
    /// A group of other resources (`members`), backed up as a composite recovery point.
    Composite,
    // RDS (PostgreSQL)
    /// A PostgreSQL database, dumped with `pg_dump` (`ResourceEntry::url`).
    Postgres,
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
    ("CloudFormation", SourceKind::Composite),
    ("RDS", SourceKind::Postgres),
    // S3 buckets and SQLite files
    ("S3", SourceKind::Bucket),
    ("SQLite", SourceKind::Sqlite),
];

/// One entry of the `[[resources]]` list in the configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ResourceEntry {
    pub arn: String,
    /// A directory, a file or a block device (a SQLite database file; none for a bucket, a
    /// composite resource or RDS).
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
    // S3 buckets and SQLite files
    /// The bucket's server and credentials (type S3 only).
    pub s3: Option<S3Endpoint>,
}

/// What an operator can declare, for messages about an entry Coffer cannot back up.
pub const SUPPORTED_KINDS: &str = "Coffer backs up EFS file systems \
(arn:aws:elasticfilesystem:REGION:ACCOUNT:file-system/ID, a directory tree), EBS volumes \
(arn:aws:ec2:REGION:ACCOUNT:volume/ID, a file or block device), RDS databases \
(arn:aws:rds:REGION:ACCOUNT:db:NAME, a PostgreSQL database given by url), S3 buckets \
(arn:aws:s3:::BUCKET, with a [resources.s3] table), SQLite database files \
(type = \"SQLite\", e.g. arn:aws:sqlite:REGION:ACCOUNT:database/NAME), and CloudFormation \
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
                         to declare another ARN form as one of them, set type = \"EFS\", \"EBS\", \"RDS\" or \"SQLite\"",
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
        let (source, database) = check_source(e, kind, a.resource)?;
        Ok(Resource {
            arn: e.arn.clone(),
            account,
            region,
            resource_type,
            kind,
            name: e.name.clone().unwrap_or(default_name),
            source,
            tags: e.tags.clone(),
            members: e.members.clone(),
            database,
            s3: e.s3.clone(),
        })
    }
}

/// A composite resource (a CloudFormation stack) lists its members and has no source; no other
/// kind takes members.
fn check_members(e: &ResourceEntry, kind: SourceKind) -> Result<(), String> {
    match (kind, e.members.is_empty(), e.source.as_os_str().is_empty()) {
        (SourceKind::Composite, true, _) => Err(format!(
            "{} is a composite resource: list the resources it groups with members = [ARN, ...]",
            e.arn
        )),
        (SourceKind::Composite, false, false) => Err(format!(
            "{} is a composite resource: its members hold the data, so it takes no source",
            e.arn
        )),
        (SourceKind::Composite, false, true) | (_, true, _) => Ok(()),
        (_, false, _) => Err(format!(
            "{} is not a composite resource: only a CloudFormation stack takes members",
            e.arn
        )),
    }
}

/// The source of an entry as its kind needs it, and for RDS how to reach the database: a bucket
/// has a valid name and a `[resources.s3]` table (its source reads `s3://BUCKET`); a database
/// has a `url` and no source; a composite resource has neither (its members hold the data);
/// any other kind has a source path. `[resources.s3]` belongs to buckets only, `url` and
/// `password_env` to databases only.
fn check_source(
    e: &ResourceEntry,
    kind: SourceKind,
    resource: &str,
) -> Result<(PathBuf, Option<DatabaseSource>), String> {
    if kind != SourceKind::Bucket && e.s3.is_some() {
        return Err(format!(
            "{}: a [resources.s3] table belongs to S3 buckets only; remove it",
            e.arn
        ));
    }
    if kind != SourceKind::Postgres && (e.url.is_some() || e.password_env.is_some()) {
        return Err(format!(
            "{}: url and password_env are for RDS resources; remove them",
            e.arn
        ));
    }
    match kind {
        SourceKind::Bucket => Ok((check_bucket(e, resource)?, None)),
        SourceKind::Postgres => Ok((PathBuf::new(), Some(DatabaseSource::from_entry(e)?))),
        SourceKind::Composite => Ok((PathBuf::new(), None)),
        SourceKind::Directory | SourceKind::Stream | SourceKind::Sqlite => {
            if e.source.as_os_str().is_empty() {
                return Err(format!(
                    "{} needs a source: set source = \"/path\" (a directory, a file or a block device) on this machine",
                    e.arn
                ));
            }
            Ok((e.source.clone(), None))
        }
    }
}

/// A bucket entry: a valid bucket name, a `[resources.s3]` table and no source path; its
/// source reads `s3://BUCKET`.
fn check_bucket(e: &ResourceEntry, resource: &str) -> Result<PathBuf, String> {
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
                    if !matches!(
                        r.kind,
                        SourceKind::Composite | SourceKind::Postgres | SourceKind::Bucket
                    ) && !r.source.exists()
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
            account: None,
            region: None,
            s3: None,
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
        let table = not_in_inventory("arn:aws:dynamodb:us-east-1:111122223333:table/orders");
        assert!(
            table.contains("not a kind of resource Coffer can back up")
                && table.contains("EFS file systems")
                && table.contains("RDS databases")
                && table.contains("S3 buckets")
                && table.contains("SQLite database files")
                && table.contains("CloudFormation"),
            "{table}"
        );
        for known in [
            "arn:aws:s3:::bucket",
            "arn:aws:rds:us-east-1:111122223333:db:main",
            "arn:aws:sqlite:us-east-1:111122223333:database/app",
        ] {
            let m = not_in_inventory(known);
            assert!(m.contains("declare it under [[resources]]"), "{m}");
        }
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
