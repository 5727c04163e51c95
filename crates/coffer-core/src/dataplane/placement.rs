//! Where a vault's repository goes: local disk or a bucket on an S3-compatible endpoint.
//!
//! The server's configuration names at most one bucket (`[vault_storage.s3]`, docs/vaults.md,
//! "Where vault data lives"), a default place for new vaults and, optionally, rules by vault
//! name. The choice is made once, when a vault's repository is created (its first backup or
//! copy), and recorded in the vault's record; later changes of the settings do not move a vault.
//!
//! The record never holds the bucket's credentials or this node's cache directory: what is
//! stored is the endpoint, bucket, key prefix and region, and every node fills in its own
//! credentials and cache when it opens the repository ([`Placement::resolve`]). So rotating the
//! bucket's key is a configuration change, the metadata store holds no secret that opens the
//! data, and nodes of a cluster with different data directories share the same records.

use std::path::{Path, PathBuf};

use coffer_engine::VaultLocation;

use crate::model::selections::wildcard_match;

/// Which kind of storage a new vault's repository goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// A directory under the data directory (`DATA_DIR/vaults/<vault uid>`).
    #[default]
    Local,
    /// The configured bucket, under `PREFIX/<vault uid>`.
    S3,
}

/// The bucket vault repositories may live in. `Debug` never shows the secret key.
#[derive(Clone, PartialEq, Eq)]
pub struct S3VaultBucket {
    /// Endpoint URL, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://garage:3900`.
    pub endpoint: String,
    pub bucket: String,
    /// Key prefix under which each vault gets `PREFIX/<vault uid>` (no leading or trailing `/`).
    pub prefix: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3VaultBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3VaultBucket")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<hidden>")
            .finish()
    }
}

/// One `[[vault_storage.vaults]]` rule: vaults whose name matches `name` (`*` for any run of
/// characters) go to `location`. The first matching rule wins.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementRule {
    pub name: String,
    pub location: StorageKind,
}

/// The vault storage settings of a server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub s3: Option<S3VaultBucket>,
    /// Where a vault no rule names goes.
    pub default: StorageKind,
    pub rules: Vec<PlacementRule>,
}

impl Placement {
    /// What makes the settings unusable, each saying what to fix.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let wants_s3 = self.default == StorageKind::S3
            || self.rules.iter().any(|r| r.location == StorageKind::S3);
        if wants_s3 && self.s3.is_none() {
            out.push(
                "vault storage names location \"s3\" but no bucket is configured: add [vault_storage.s3] (endpoint, bucket, access_key_id, secret_access_key_env) or the --vault-s3-* flags".to_string(),
            );
        }
        if let Some(s3) = &self.s3 {
            for (what, v) in [
                ("endpoint", &s3.endpoint),
                ("bucket", &s3.bucket),
                ("region", &s3.region),
                ("access_key_id", &s3.access_key_id),
                ("secret access key", &s3.secret_access_key),
            ] {
                if v.is_empty() {
                    out.push(format!("[vault_storage.s3]: {what} must not be empty"));
                }
            }
            if !(s3.endpoint.starts_with("http://") || s3.endpoint.starts_with("https://")) {
                out.push(format!(
                    "[vault_storage.s3]: endpoint must be an http:// or https:// URL, got '{}'",
                    s3.endpoint
                ));
            }
        }
        for r in &self.rules {
            if r.name.is_empty() {
                out.push("a [[vault_storage.vaults]] rule has an empty name pattern".to_string());
            }
        }
        out
    }

    /// Where the repository of vault `name` (unique id `uid`) is created.
    pub(crate) fn location_for(&self, name: &str, uid: &str, data_dir: &Path) -> VaultLocation {
        let kind = self
            .rules
            .iter()
            .find(|r| wildcard_match(&r.name, name))
            .map_or(self.default, |r| r.location);
        match (kind, &self.s3) {
            (StorageKind::S3, Some(s3)) => VaultLocation::S3 {
                endpoint: s3.endpoint.clone(),
                bucket: s3.bucket.clone(),
                root: join_prefix(&s3.prefix, uid),
                region: s3.region.clone(),
                access_key_id: String::new(),
                secret_access_key: String::new(),
                cache_dir: None,
            },
            _ => VaultLocation::local(data_dir.join("vaults").join(uid)),
        }
    }

    /// `location` as the vault's record keeps it: without credentials or a cache directory.
    pub(crate) fn stored(location: &VaultLocation) -> VaultLocation {
        match location {
            VaultLocation::S3 {
                endpoint,
                bucket,
                root,
                region,
                ..
            } => VaultLocation::S3 {
                endpoint: endpoint.clone(),
                bucket: bucket.clone(),
                root: root.clone(),
                region: region.clone(),
                access_key_id: String::new(),
                secret_access_key: String::new(),
                cache_dir: None,
            },
            other => other.clone(),
        }
    }

    /// A recorded location ready to open on this node: an S3 location gets the configured
    /// bucket's credentials and a cache in this node's data directory. A bucket this server
    /// has no settings for is an error that says what to configure.
    pub(crate) fn resolve(
        &self,
        location: &VaultLocation,
        cache_root: &Path,
    ) -> Result<VaultLocation, String> {
        let VaultLocation::S3 {
            endpoint,
            bucket,
            root,
            region,
            ..
        } = location
        else {
            return Ok(location.clone());
        };
        let same = |s3: &&S3VaultBucket| {
            s3.endpoint.trim_end_matches('/') == endpoint.trim_end_matches('/')
                && s3.bucket == *bucket
        };
        let Some(s3) = self.s3.as_ref().filter(same) else {
            return Err(format!(
                "this vault's repository is in bucket '{bucket}' at {endpoint}, but this Coffer has no [vault_storage.s3] settings for that bucket"
            ));
        };
        Ok(VaultLocation::S3 {
            endpoint: endpoint.clone(),
            bucket: bucket.clone(),
            root: root.clone(),
            region: region.clone(),
            access_key_id: s3.access_key_id.clone(),
            secret_access_key: s3.secret_access_key.clone(),
            cache_dir: Some(cache_root.join(cache_name(root))),
        })
    }
}

fn join_prefix(prefix: &str, uid: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        uid.to_string()
    } else {
        format!("{p}/{uid}")
    }
}

/// The cache directory name of an S3 repository root (one level, no `/`).
fn cache_name(root: &str) -> PathBuf {
    PathBuf::from(root.trim_matches('/').replace('/', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket() -> S3VaultBucket {
        S3VaultBucket {
            endpoint: "http://127.0.0.1:9000".into(),
            bucket: "b".into(),
            prefix: "coffer/vaults/".into(),
            region: "us-east-1".into(),
            access_key_id: "AK".into(),
            secret_access_key: "SECRET".into(),
        }
    }

    #[test]
    fn rules_pick_the_place_and_the_record_keeps_no_secret() {
        let p = Placement {
            s3: Some(bucket()),
            default: StorageKind::S3,
            rules: vec![PlacementRule {
                name: "local-*".into(),
                location: StorageKind::Local,
            }],
        };
        assert!(p.problems().is_empty(), "{:?}", p.problems());
        let dir = Path::new("/data");
        assert_eq!(
            p.location_for("local-a", "u1", dir),
            VaultLocation::local("/data/vaults/u1")
        );
        let s3 = p.location_for("prod", "u2", dir);
        assert_eq!(
            s3.restic_repository(),
            "s3:http://127.0.0.1:9000/b/coffer/vaults/u2"
        );
        let stored = serde_json::to_string(&Placement::stored(&s3)).unwrap();
        assert!(
            !stored.contains("SECRET") && !stored.contains("\"AK\""),
            "{stored}"
        );
        let open = p.resolve(&s3, Path::new("/data/s3-cache")).unwrap();
        let VaultLocation::S3 {
            secret_access_key,
            cache_dir,
            ..
        } = open
        else {
            panic!("an S3 location")
        };
        assert_eq!(secret_access_key, "SECRET");
        assert_eq!(
            cache_dir.as_deref(),
            Some(Path::new("/data/s3-cache/coffer_vaults_u2"))
        );
        assert!(!format!("{:?}", bucket()).contains("SECRET"));
    }

    #[test]
    fn a_bucket_without_settings_is_refused_with_what_to_configure() {
        let p = Placement {
            s3: None,
            default: StorageKind::S3,
            rules: vec![],
        };
        assert!(p.problems()[0].contains("[vault_storage.s3]"));
        let loc = Placement {
            s3: Some(bucket()),
            ..Placement::default()
        };
        let s3 = Placement {
            default: StorageKind::S3,
            ..loc.clone()
        }
        .location_for("v", "u", Path::new("/d"));
        let err = p.resolve(&s3, Path::new("/c")).unwrap_err();
        assert!(err.contains("bucket 'b'"), "{err}");
        // Local vaults go local whatever the default when no bucket is set.
        assert_eq!(
            loc.location_for("v", "u", Path::new("/d")),
            VaultLocation::local("/d/vaults/u")
        );
    }
}
