//! Configuration: command-line flags, `COFFER_*` environment variables and an optional TOML
//! file, merged in that order of precedence over built-in defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9191";
pub const DEFAULT_DATA_DIR: &str = "coffer-data";
pub const DEFAULT_ACCOUNT: &str = "000000000000";
pub const DEFAULT_REGION: &str = "us-east-1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthSetting {
    /// Verify AWS Signature Version 4 on every request (the default).
    Sigv4,
    /// Accept any signature: for throwaway test setups only.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `coffer serve` flags. Every flag can also be set by `COFFER_<NAME>`; most also by a key of
/// the `--config` file. A flag wins over its variable, the variable over the file, the file over
/// the default. The defaults are written in the help text rather than as clap defaults so that
/// a file key is not hidden by a default the user never typed.
#[derive(Debug, Args, Default)]
#[command(
    after_help = "Precedence: flag, then COFFER_* variable, then the --config file, then the default.\nThe file also holds [[credentials]], [[resources]], [[notification_targets]], [[report_buckets]], [[approval_teams]], scan_rules and [vault_storage]; resources, notification targets, report buckets, approval teams and scan_rules (YARA rule files) are re-read on SIGHUP and when the file changes; other settings take effect at the next start.\nCheck a file without starting: coffer config check FILE."
)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port) [default: 127.0.0.1:9191] [file key: listen]
    #[arg(long, env = "COFFER_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Directory for metadata, vaults, master.key and generated credentials [default: coffer-data; a temporary directory with --dev] [file key: data_dir]
    #[arg(long, env = "COFFER_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Metadata store: a SQLite file path or postgres://USER:PASSWORD@HOST:PORT/DATABASE, shared by several nodes [default: DATA_DIR/metadata.db] [file key: store]
    #[arg(
        long,
        env = "COFFER_STORE",
        value_name = "PATH|URL",
        hide_env_values = true
    )]
    pub store: Option<String>,
    /// TOML configuration file (see README "Configuration")
    #[arg(long, env = "COFFER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Development mode: throwaway state, no authentication, admin endpoints, movable clock [default: off]
    #[arg(long, env = "COFFER_DEV")]
    pub dev: bool,
    /// Authentication [default: sigv4; none with --dev] [file key: auth]
    #[arg(long, env = "COFFER_AUTH", value_enum)]
    pub auth: Option<AuthSetting>,
    /// Access key id of a single credential (more: [[credentials]] in the file) [default: one generated on first start]
    #[arg(long, env = "COFFER_ACCESS_KEY_ID", requires = "secret_access_key")]
    pub access_key_id: Option<String>,
    /// Secret access key of that credential.
    #[arg(
        long,
        env = "COFFER_SECRET_ACCESS_KEY",
        requires = "access_key_id",
        hide_env_values = true
    )]
    pub secret_access_key: Option<String>,
    /// Account id of that credential and of a generated one [default: 000000000000]
    #[arg(long, env = "COFFER_ACCOUNT_ID")]
    pub account_id: Option<String>,
    /// Region assumed for requests that carry no signature (auth none only) [default: us-east-1] [file key: default_region]
    #[arg(long, env = "COFFER_DEFAULT_REGION")]
    pub default_region: Option<String>,
    /// A region name to accept in SigV4 credential scopes besides AWS's own regions
    /// (repeatable; `COFFER_REGIONS` takes a comma-separated list) [file key: regions]
    #[arg(long = "region", env = "COFFER_REGIONS", value_delimiter = ',')]
    pub regions: Vec<String>,
    /// Log format on stderr; the level comes from COFFER_LOG (e.g. debug) [default: text] [file key: log_format]
    #[arg(long, env = "COFFER_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// How many backup, copy and restore jobs run at once [default: 2] [file key: max_concurrent_jobs]
    #[arg(long, env = "COFFER_MAX_CONCURRENT_JOBS")]
    pub max_concurrent_jobs: Option<usize>,
    /// Days finished jobs, idempotency tokens, plan firings and notification dead letters are
    /// kept before they are pruned [default: 30] [file key: history_retention_days]
    #[arg(long, env = "COFFER_HISTORY_RETENTION_DAYS", value_name = "DAYS")]
    pub history_retention_days: Option<u32>,
    /// Seconds to drain on SIGTERM / SIGINT (running jobs handed back, outbox flushed)
    /// before exiting [default: 30].
    #[arg(long, env = "COFFER_SHUTDOWN_TIMEOUT", value_name = "SECONDS")]
    pub shutdown_timeout: Option<u64>,
    /// A bearer token that GET /metrics then requires [default: none, /metrics is open] [file key: metrics_token]
    #[arg(long, env = "COFFER_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Seconds a running job's lease holds without renewal: how long after a node of a cluster
    /// dies another node takes its jobs over (renewed twice a second) [default: 60] [file key: job_lease_seconds]
    #[arg(long, env = "COFFER_JOB_LEASE_SECONDS", value_name = "SECONDS")]
    pub job_lease_seconds: Option<u32>,
    #[command(flatten)]
    pub vault_storage: VaultStorageArgs,
}

/// Where vault repositories live: flags and `COFFER_VAULT_*` variables over the file's
/// `[vault_storage]` (docs/vaults.md, "Where vault data lives"). The bucket's secret key is
/// never a flag: it is read from the environment variable the file names
/// (`secret_access_key_env`, by default `COFFER_VAULT_S3_SECRET_ACCESS_KEY`).
#[derive(Debug, Args, Default, Clone)]
pub struct VaultStorageArgs {
    /// Where new vaults' repositories go: local (DATA_DIR/vaults) or s3 (the bucket below) [default: s3 when a bucket is configured, else local] [file key: vault_storage.default]
    #[arg(long, env = "COFFER_VAULT_STORAGE", value_enum)]
    pub vault_storage: Option<VaultStorageSetting>,
    /// S3-compatible endpoint URL of the vault bucket [file key: vault_storage.s3.endpoint]
    #[arg(long, env = "COFFER_VAULT_S3_ENDPOINT", value_name = "URL")]
    pub vault_s3_endpoint: Option<String>,
    /// The vault bucket (must exist) [file key: vault_storage.s3.bucket]
    #[arg(long, env = "COFFER_VAULT_S3_BUCKET")]
    pub vault_s3_bucket: Option<String>,
    /// Key prefix of the vault repositories in the bucket [default: coffer] [file key: vault_storage.s3.prefix]
    #[arg(long, env = "COFFER_VAULT_S3_PREFIX")]
    pub vault_s3_prefix: Option<String>,
    /// Signing region of the bucket's endpoint [default: us-east-1] [file key: vault_storage.s3.region]
    #[arg(long, env = "COFFER_VAULT_S3_REGION")]
    pub vault_s3_region: Option<String>,
    /// Access key id for the bucket; the secret key comes from COFFER_VAULT_S3_SECRET_ACCESS_KEY (or the variable named by vault_storage.s3.secret_access_key_env) [file key: vault_storage.s3.access_key_id]
    #[arg(long, env = "COFFER_VAULT_S3_ACCESS_KEY_ID")]
    pub vault_s3_access_key_id: Option<String>,
}

/// `--vault-storage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VaultStorageSetting {
    Local,
    S3,
}

/// The file's `[vault_storage]` table.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultStorageFile {
    pub default: Option<coffer_core::StorageKind>,
    pub s3: Option<VaultBucketFile>,
    /// Rules by vault name, first match wins: `[[vault_storage.vaults]] name = "scratch-*"
    /// location = "local"`.
    #[serde(default)]
    pub vaults: Vec<coffer_core::PlacementRule>,
}

/// The file's `[vault_storage.s3]` table. No secret in the file: it names the variable.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultBucketFile {
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key_env: Option<String>,
}

/// The variable the vault bucket's secret key is read from unless the file names another.
pub const DEFAULT_VAULT_SECRET_ENV: &str = "COFFER_VAULT_S3_SECRET_ACCESS_KEY";

/// The vault storage settings from flags/variables over the file; an unusable combination
/// is an error saying what to fix.
pub fn placement(
    args: &VaultStorageArgs,
    file: Option<&VaultStorageFile>,
) -> Result<coffer_core::Placement> {
    let empty = VaultStorageFile::default();
    let file = file.unwrap_or(&empty);
    let fs3 = file.s3.clone().unwrap_or_default();
    let endpoint = args.vault_s3_endpoint.clone().or(fs3.endpoint);
    let bucket = args.vault_s3_bucket.clone().or(fs3.bucket);
    let s3 = match (endpoint, bucket) {
        (None, None) if file.s3.is_none() => None,
        (Some(endpoint), Some(bucket)) => {
            let secret_env = fs3
                .secret_access_key_env
                .unwrap_or_else(|| DEFAULT_VAULT_SECRET_ENV.to_string());
            let secret_access_key = std::env::var(&secret_env).unwrap_or_default();
            if secret_access_key.is_empty() {
                bail!(
                    "the vault bucket's secret key is missing: set the environment variable {secret_env}"
                );
            }
            Some(coffer_core::S3VaultBucket {
                endpoint,
                bucket,
                prefix: args
                    .vault_s3_prefix
                    .clone()
                    .or(fs3.prefix)
                    .unwrap_or_else(|| "coffer".into()),
                region: args
                    .vault_s3_region
                    .clone()
                    .or(fs3.region)
                    .unwrap_or_else(|| DEFAULT_REGION.into()),
                access_key_id: args
                    .vault_s3_access_key_id
                    .clone()
                    .or(fs3.access_key_id)
                    .unwrap_or_default(),
                secret_access_key,
            })
        }
        _ => bail!(
            "the vault bucket needs both an endpoint and a bucket name (vault_storage.s3.endpoint and .bucket, or --vault-s3-endpoint and --vault-s3-bucket)"
        ),
    };
    let default = match args.vault_storage {
        Some(VaultStorageSetting::Local) => coffer_core::StorageKind::Local,
        Some(VaultStorageSetting::S3) => coffer_core::StorageKind::S3,
        None => file.default.unwrap_or(if s3.is_some() {
            coffer_core::StorageKind::S3
        } else {
            coffer_core::StorageKind::Local
        }),
    };
    let placement = coffer_core::Placement {
        s3,
        default,
        rules: file.vaults.clone(),
    };
    if let Some(p) = placement.problems().into_iter().next() {
        bail!("{p}");
    }
    Ok(placement)
}

/// One access key and the account it belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CredentialEntry {
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default = "default_account")]
    pub account_id: String,
}

fn default_account() -> String {
    DEFAULT_ACCOUNT.to_string()
}

/// The TOML file given by `--config`.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub auth: Option<AuthSetting>,
    pub default_region: Option<String>,
    /// Region names accepted in credential scopes besides AWS's own.
    #[serde(default)]
    pub regions: Vec<String>,
    pub log_format: Option<LogFormat>,
    pub max_concurrent_jobs: Option<usize>,
    pub history_retention_days: Option<u32>,
    pub job_lease_seconds: Option<u32>,
    pub metrics_token: Option<String>,
    #[serde(default)]
    pub credentials: Vec<CredentialEntry>,
    /// The resource inventory (see README "Resources").
    #[serde(default)]
    pub resources: Vec<coffer_core::ResourceEntry>,
    /// Where the notifications of each SNS topic go (see docs/notifications.md).
    #[serde(default)]
    pub notification_targets: Vec<crate::notify::NotificationTarget>,
    /// The local directory of each S3 bucket report plans deliver to (see docs/audit.md).
    #[serde(default)]
    pub report_buckets: Vec<coffer_core::ReportBucketEntry>,
    /// The approval teams vaults can be associated with (see docs/vaults.md, "Restore access
    /// and approval teams").
    #[serde(default)]
    pub approval_teams: Vec<coffer_core::ApprovalTeamEntry>,
    /// YARA rule files malware scans evaluate besides the built-in EICAR rule; a file name
    /// may hold `*` and `?` (see docs/scans.md).
    #[serde(default)]
    pub scan_rules: Vec<String>,
    /// Where the cold and the low-cost storage tiers keep recovery points' data (see
    /// docs/tiering.md); without it data stays in the vaults' own repositories.
    #[serde(default)]
    pub tiers: TierSettings,
    /// Where vault repositories live (docs/vaults.md, "Where vault data lives").
    pub vault_storage: Option<VaultStorageFile>,
}

/// The `[tiers]` table: a directory for each storage tier a server offers.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSettings {
    /// Where MoveToColdStorageAfterDays moves data (a slower disk, say).
    pub cold: Option<PathBuf>,
    /// Where tiering configurations move S3 recovery points' data.
    pub low_cost: Option<PathBuf>,
}

impl TierSettings {
    /// What is wrong with the table, each problem saying what to fix.
    fn errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for (name, dir) in [("cold", &self.cold), ("low_cost", &self.low_cost)] {
            if let Some(d) = dir
                && !d.is_absolute()
            {
                errors.push(format!(
                    "[tiers] {name} must be an absolute directory path, got '{}'",
                    d.display()
                ));
            }
        }
        if let (Some(c), Some(l)) = (&self.cold, &self.low_cost)
            && (c.starts_with(l) || l.starts_with(c))
        {
            errors.push(format!(
                "[tiers] cold ('{}') and low_cost ('{}') must be separate directories, neither inside the other",
                c.display(),
                l.display()
            ));
        }
        errors
    }

    pub fn dirs(&self) -> coffer_core::TierDirs {
        coffer_core::TierDirs {
            cold: self.cold.clone(),
            low_cost: self.low_cost.clone(),
        }
    }
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("parsing the configuration file {}", path.display()))
    }

    /// What makes the file unusable, each problem naming the entry and what to fix. Resource
    /// entries are not checked here: a bad one is left out of the inventory and logged, and
    /// [`crate::cli`] reports them.
    pub fn errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for c in &self.credentials {
            if !is_account_id(&c.account_id) {
                errors.push(format!(
                    "the account id of access key {} must be 12 digits, got '{}'",
                    c.access_key_id, c.account_id
                ));
            }
            if c.access_key_id.is_empty() || c.secret_access_key.is_empty() {
                errors.push(format!(
                    "credential '{}': access_key_id and secret_access_key must not be empty",
                    c.access_key_id
                ));
            }
            if !seen.insert(c.access_key_id.as_str()) {
                errors.push(format!(
                    "access key {} is listed twice in [[credentials]]",
                    c.access_key_id
                ));
            }
        }
        let mut topics = std::collections::HashSet::new();
        for t in &self.notification_targets {
            if let Err(e) = t.check() {
                errors.push(format!("{e:#}"));
            }
            if !topics.insert(t.topic_arn.as_str()) {
                errors.push(format!(
                    "notification target '{}' is listed twice in [[notification_targets]]",
                    t.topic_arn
                ));
            }
        }
        let mut buckets = std::collections::HashSet::new();
        for b in &self.report_buckets {
            if b.bucket.is_empty() {
                errors.push("a [[report_buckets]] entry has an empty bucket name".to_string());
            }
            if !b.directory.is_absolute() {
                errors.push(format!(
                    "report bucket '{}': directory must be an absolute path, got '{}'",
                    b.bucket,
                    b.directory.display()
                ));
            }
            if !buckets.insert(b.bucket.as_str()) {
                errors.push(format!(
                    "report bucket '{}' is listed twice in [[report_buckets]]",
                    b.bucket
                ));
            }
        }
        let mut teams = std::collections::HashSet::new();
        for t in &self.approval_teams {
            if let Some(p) = t.problem() {
                errors.push(p);
            }
            if !teams.insert(t.arn.as_str()) {
                errors.push(format!(
                    "approval team '{}' is listed twice in [[approval_teams]]",
                    t.arn
                ));
            }
        }
        errors.extend(self.tiers.errors());
        if self.max_concurrent_jobs == Some(0) {
            errors.push("max_concurrent_jobs must be at least 1".to_string());
        }
        if self.job_lease_seconds.is_some_and(|s| s < 2) {
            errors.push("job_lease_seconds must be at least 2".to_string());
        }
        if self.history_retention_days == Some(0) {
            errors.push("history_retention_days must be at least 1".to_string());
        }
        errors
    }
}

fn is_account_id(a: &str) -> bool {
    a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())
}

/// The merged configuration `serve` runs with.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// `None` in development mode: state goes to a temporary directory.
    pub data_dir: Option<PathBuf>,
    /// The metadata store's location when not the SQLite file in the data directory. May
    /// hold a password: never log it (log `StoreHandle::describe` instead).
    pub store: Option<String>,
    pub dev: bool,
    pub auth: AuthSetting,
    pub credentials: Vec<CredentialEntry>,
    pub default_account: String,
    pub default_region: String,
    /// Region names accepted in credential scopes besides AWS's own and `default_region`.
    pub regions: Vec<String>,
    pub log_format: LogFormat,
    pub max_concurrent_jobs: usize,
    /// Days finished history is kept.
    pub history_retention_days: u32,
    /// Seconds of a job lease, when not the default.
    pub job_lease_seconds: Option<u32>,
    /// How long shutdown may take.
    pub shutdown_timeout: std::time::Duration,
    pub metrics_token: Option<String>,
    /// The configuration file, re-read on SIGHUP or when it changes (see `reload`).
    pub config_file: Option<PathBuf>,
    /// The file as read at start, what a re-read is compared with.
    pub file: FileConfig,
    pub resources: Vec<coffer_core::ResourceEntry>,
    pub notification_targets: Vec<crate::notify::NotificationTarget>,
    pub report_buckets: Vec<coffer_core::ReportBucketEntry>,
    /// Where vault repositories live.
    pub vault_storage: coffer_core::Placement,
}

impl Config {
    pub fn resolve(args: ServeArgs) -> Result<Self> {
        let file = match &args.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        if let Some(first) = file.errors().into_iter().next() {
            bail!(
                "{first} (in {}; `coffer config check FILE` lists every problem)",
                args.config.as_deref().unwrap_or(Path::new("")).display()
            );
        }
        let mut credentials = file.credentials.clone();
        let default_account = args.account_id.clone().unwrap_or_else(default_account);
        if !is_account_id(&default_account) {
            bail!("--account-id must be 12 digits, got '{default_account}'");
        }
        if let (Some(id), Some(secret)) = (args.access_key_id, args.secret_access_key) {
            credentials.retain(|c| c.access_key_id != id);
            credentials.push(CredentialEntry {
                access_key_id: id,
                secret_access_key: secret,
                account_id: default_account.clone(),
            });
        }
        let mut regions = file.regions.clone();
        regions.extend(args.regions);
        for r in &regions {
            if r.is_empty()
                || r.len() > 64
                || !r
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                bail!("region '{r}' must be lowercase letters, digits and '-' (like us-east-1)");
            }
        }
        let vault_storage = placement(&args.vault_storage, file.vault_storage.as_ref())?;
        let auth = args.auth.or(file.auth).unwrap_or(if args.dev {
            AuthSetting::None
        } else {
            AuthSetting::Sigv4
        });
        Ok(Config {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            data_dir: if args.dev {
                args.data_dir.or(file.data_dir.clone())
            } else {
                Some(
                    args.data_dir
                        .or(file.data_dir.clone())
                        .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
                )
            },
            store: args.store.or(file.store.clone()).filter(|s| !s.is_empty()),
            dev: args.dev,
            auth,
            credentials,
            default_account,
            default_region: args
                .default_region
                .or(file.default_region.clone())
                .unwrap_or_else(|| DEFAULT_REGION.into()),
            regions,
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            max_concurrent_jobs: args
                .max_concurrent_jobs
                .or(file.max_concurrent_jobs)
                .unwrap_or(2)
                .max(1),
            history_retention_days: args
                .history_retention_days
                .or(file.history_retention_days)
                .unwrap_or(coffer_core::model::history::DEFAULT_RETENTION_DAYS)
                .max(1),
            job_lease_seconds: args.job_lease_seconds.or(file.job_lease_seconds),
            shutdown_timeout: std::time::Duration::from_secs(args.shutdown_timeout.unwrap_or(30)),
            metrics_token: args
                .metrics_token
                .or(file.metrics_token.clone())
                .filter(|t| !t.is_empty()),
            config_file: args.config.clone(),
            resources: file.resources.clone(),
            notification_targets: file.notification_targets.clone(),
            report_buckets: file.report_buckets.clone(),
            vault_storage,
            file,
        })
    }
}

/// Loads the credential generated on first start, or creates one and stores it with
/// owner-only permissions. Returns the credential and whether it was just created.
pub fn generated_credential(data_dir: &Path, account: &str) -> Result<(CredentialEntry, bool)> {
    let path = data_dir.join("credentials.json");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let c: CredentialEntry =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        return Ok((c, false));
    }
    let id = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    let c = CredentialEntry {
        access_key_id: format!("AKIA{}", &id[..16]),
        secret_access_key: format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
        account_id: account.to_string(),
    };
    write_private(&path, serde_json::to_string_pretty(&c)?.as_bytes())?;
    Ok((c, true))
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// This node's id, created once and kept in the data directory (job leases name it).
pub fn node_id(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("node-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim().to_string();
        if !id.is_empty() {
            return Ok(id);
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    write_private(&path, id.as_bytes())?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_teams_are_checked() {
        let file: FileConfig = toml::from_str(
            r#"
[[approval_teams]]
arn = "arn:aws:mpa:us-east-1:111122223333:approval-team/ok"
members = ["A", "B"]
approvals_required = 2

[[approval_teams]]
arn = "arn:aws:mpa:us-east-1:111122223333:approval-team/ok"
members = ["A"]
approvals_required = 3
"#,
        )
        .unwrap();
        let errors = file.errors();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("approvals_required between 1 and its 1 member"));
        assert!(errors[1].contains("listed twice in [[approval_teams]]"));
        assert!(
            toml::from_str::<FileConfig>(
                "[[approval_teams]]\narn = \"x\"\nmembers = []\napprovals_required = 1\nquorum = 2\n"
            )
            .is_err()
        );
    }

    #[test]
    fn tier_directories_are_checked() {
        let ok: FileConfig =
            toml::from_str("[tiers]\ncold = \"/srv/cold\"\nlow_cost = \"/srv/low\"\n").unwrap();
        assert!(ok.errors().is_empty(), "{:?}", ok.errors());
        assert_eq!(
            ok.tiers.dirs().cold.as_deref(),
            Some(Path::new("/srv/cold"))
        );
        let bad: FileConfig =
            toml::from_str("[tiers]\ncold = \"rel\"\nlow_cost = \"rel/inner\"\n").unwrap();
        let errors = bad.errors();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("[tiers] cold must be an absolute directory path, got 'rel'")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("must be separate directories")),
            "{errors:?}"
        );
        assert!(toml::from_str::<FileConfig>("[tiers]\nwarm = \"/x\"\n").is_err());
    }

    #[test]
    fn report_buckets_are_checked() {
        let file: FileConfig = toml::from_str(
            r#"
[[report_buckets]]
bucket = "audit"
directory = "/srv/reports"

[[report_buckets]]
bucket = "audit"
directory = "relative/dir"

[[report_buckets]]
bucket = ""
directory = "/x"
"#,
        )
        .unwrap();
        let errors = file.errors();
        assert!(
            errors.iter().any(|e| e.contains("listed twice")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("absolute path")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("empty bucket name")),
            "{errors:?}"
        );
        let good: FileConfig =
            toml::from_str("[[report_buckets]]\nbucket = \"a\"\ndirectory = \"/srv/a\"\n").unwrap();
        assert!(good.errors().is_empty());
        assert!(
            toml::from_str::<FileConfig>("[[report_buckets]]\nbucket = \"a\"\ndir = \"/a\"\n")
                .is_err()
        );
    }
}
