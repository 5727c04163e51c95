//! The resource inventory: the resources Coffer can back up, read from its configuration.
//!
//! AWS discovers resources in an account; Coffer is told about them. Each entry maps a
//! resource ARN, in AWS's format where the meaning matches, to a source on this machine:
//! `arn:aws:elasticfilesystem:REGION:ACCOUNT:file-system/ID` is a directory tree (type EFS),
//! `arn:aws:ec2:REGION:ACCOUNT:volume/ID` a disk image or block device read as one stream
//! (type EBS). The account and region of the ARN scope the resource like any other. The
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
}

/// The resource types Coffer can back up, with the AWS name and how their data is read.
pub const SUPPORTED_TYPES: &[(&str, SourceKind)] = &[
    ("EBS", SourceKind::Stream),
    ("EFS", SourceKind::Directory),
    ("CloudFormation", SourceKind::Composite),
];

/// One entry of the `[[resources]]` list in the configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ResourceEntry {
    pub arn: String,
    /// A directory, a file or a block device (none for a composite resource).
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
}

/// What an operator can declare, for messages about an entry Coffer cannot back up.
pub const SUPPORTED_KINDS: &str = "Coffer backs up EFS file systems \
(arn:aws:elasticfilesystem:REGION:ACCOUNT:file-system/ID, a directory tree) and EBS volumes \
(arn:aws:ec2:REGION:ACCOUNT:volume/ID, a file or block device), and CloudFormation stacks \
(arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/ID, with members = [ARN, ...]) as composites";

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
        ("cloudformation", "stack") => Some("CloudFormation"),
        _ => None,
    }
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
                         to declare another ARN form as one of them, set type = \"EFS\" or \"EBS\"",
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
            (_, true, true) => return Err(format!("{} needs a source", e.arn)),
            (_, true, false) => {}
        }
        let default_name = a
            .resource
            .rsplit(['/', ':'])
            .next()
            .unwrap_or(a.resource)
            .to_string();
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
                    if r.kind != SourceKind::Composite && !r.source.exists() {
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
