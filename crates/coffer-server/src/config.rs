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

/// `coffer serve` flags. Every flag can also be set by `COFFER_<NAME>`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "COFFER_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Directory for metadata, vaults and generated credentials.
    #[arg(long, env = "COFFER_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long, env = "COFFER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Development mode: throwaway state, no authentication, admin endpoints, movable clock.
    #[arg(long, env = "COFFER_DEV")]
    pub dev: bool,
    /// Authentication: `sigv4` (default) or `none`.
    #[arg(long, env = "COFFER_AUTH", value_enum)]
    pub auth: Option<AuthSetting>,
    /// Access key id of a single credential.
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
    /// Account id of that credential (default 000000000000).
    #[arg(long, env = "COFFER_ACCOUNT_ID")]
    pub account_id: Option<String>,
    /// Region assumed for requests that carry no signature (auth none only).
    #[arg(long, env = "COFFER_DEFAULT_REGION")]
    pub default_region: Option<String>,
    /// Log format.
    #[arg(long, env = "COFFER_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// How many backup, copy and restore jobs run at once (default 2).
    #[arg(long, env = "COFFER_MAX_CONCURRENT_JOBS")]
    pub max_concurrent_jobs: Option<usize>,
    /// Seconds to drain on SIGTERM / SIGINT (running jobs handed back, outbox flushed)
    /// before exiting [default: 30].
    #[arg(long, env = "COFFER_SHUTDOWN_TIMEOUT", value_name = "SECONDS")]
    pub shutdown_timeout: Option<u64>,
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
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub auth: Option<AuthSetting>,
    pub default_region: Option<String>,
    pub log_format: Option<LogFormat>,
    pub max_concurrent_jobs: Option<usize>,
    #[serde(default)]
    pub credentials: Vec<CredentialEntry>,
    /// The resource inventory (see README "Resources").
    #[serde(default)]
    pub resources: Vec<coffer_core::ResourceEntry>,
    /// Where the notifications of each SNS topic go (see docs/notifications.md).
    #[serde(default)]
    pub notification_targets: Vec<crate::notify::NotificationTarget>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("parsing the configuration file {}", path.display()))
    }
}

/// The merged configuration `serve` runs with.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// `None` in development mode: state goes to a temporary directory.
    pub data_dir: Option<PathBuf>,
    pub dev: bool,
    pub auth: AuthSetting,
    pub credentials: Vec<CredentialEntry>,
    pub default_account: String,
    pub default_region: String,
    pub log_format: LogFormat,
    pub max_concurrent_jobs: usize,
    /// How long shutdown may take.
    pub shutdown_timeout: std::time::Duration,
    /// The configuration file, re-read for the inventory on SIGHUP or when it changes.
    pub config_file: Option<PathBuf>,
    pub resources: Vec<coffer_core::ResourceEntry>,
    pub notification_targets: Vec<crate::notify::NotificationTarget>,
}

impl Config {
    pub fn resolve(args: ServeArgs) -> Result<Self> {
        let file = match &args.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        let mut credentials = file.credentials;
        let default_account = args.account_id.clone().unwrap_or_else(default_account);
        if default_account.len() != 12 || !default_account.bytes().all(|b| b.is_ascii_digit()) {
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
        for c in &credentials {
            if c.account_id.len() != 12 || !c.account_id.bytes().all(|b| b.is_ascii_digit()) {
                bail!(
                    "the account id of access key {} must be 12 digits",
                    c.access_key_id
                );
            }
        }
        for t in &file.notification_targets {
            t.check()?;
        }
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
                args.data_dir.or(file.data_dir)
            } else {
                Some(
                    args.data_dir
                        .or(file.data_dir)
                        .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
                )
            },
            dev: args.dev,
            auth,
            credentials,
            default_account,
            default_region: args
                .default_region
                .or(file.default_region)
                .unwrap_or_else(|| DEFAULT_REGION.into()),
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            max_concurrent_jobs: args
                .max_concurrent_jobs
                .or(file.max_concurrent_jobs)
                .unwrap_or(2)
                .max(1),
            shutdown_timeout: std::time::Duration::from_secs(args.shutdown_timeout.unwrap_or(30)),
            config_file: args.config.clone(),
            resources: file.resources,
            notification_targets: file.notification_targets,
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
