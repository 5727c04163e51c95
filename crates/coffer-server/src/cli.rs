//! Operator commands that need no running server: `coffer config check FILE`,
//! `coffer inventory`, `coffer notifications dead-letters | replay`, `coffer bench-seed`
//! (fills a new store for the scale benchmark, docs/benchmarks.md) and `coffer store copy`
//! (carries a stopped Coffer's store into a new one, e.g. SQLite to PostgreSQL, docs/store.md).
//!
//! Why: an operator should learn that a configuration is broken, or that a declared source
//! cannot be read, before a night of failed backups, and should be able to see and resend the
//! notifications Coffer gave up on. The configuration commands read the file only; the
//! notification commands open the data directory's metadata store, which a running Coffer
//! shares safely (SQLite in WAL mode): a replayed message is picked up by its delivery worker.

use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use coffer_core::inventory::{Resource, SourceKind};
use coffer_core::{Outbox, ResourceEntry};
use coffer_store::StoreHandle;

use crate::config::FileConfig;

/// `coffer config ...`
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file without starting: syntax, credentials, resources,
    /// notification targets. Exits non-zero when Coffer would refuse the file or leave an
    /// entry out; sources that do not exist are reported as warnings.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}

/// `coffer inventory` arguments.
#[derive(Debug, clap::Args)]
pub struct InventoryArgs {
    /// The configuration file declaring `[[resources]]`.
    #[arg(long, env = "COFFER_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
}

/// `coffer notifications ...`
#[derive(Debug, clap::Subcommand)]
pub enum NotificationsCommand {
    /// List the notifications given up on (dead letters), with the reason.
    DeadLetters {
        #[command(flatten)]
        data: DataDirArg,
        /// Print JSON (one object) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back in the outbox: the running server delivers them again.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["ids", "all"])))]
    Replay {
        #[command(flatten)]
        data: DataDirArg,
        /// A message id to replay (repeatable).
        #[arg(long = "id", value_name = "MESSAGE_ID")]
        ids: Vec<String>,
        /// Replay every dead letter.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct DataDirArg {
    /// The data directory of the Coffer whose notifications these are.
    #[arg(long, env = "COFFER_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// The metadata store, when it is not the data directory's SQLite file: the same
    /// `--store` (PATH or postgres:// URL) the server was started with.
    #[arg(
        long,
        env = "COFFER_STORE",
        value_name = "PATH|URL",
        hide_env_values = true
    )]
    pub store: Option<String>,
}

/// `coffer config check FILE`: prints what is wrong and what was found; `Ok(false)` when
/// the file has errors.
pub fn config_check(file: &Path) -> Result<bool> {
    let config = FileConfig::load(file)?;
    let mut errors = config.errors();
    let mut warnings = Vec::new();
    let mut ok = 0;
    for (i, e) in config.resources.iter().enumerate() {
        match check_entry(e, &config.resources[..i]) {
            Entry::Usable(reach) => {
                ok += 1;
                if let Err(w) = reach {
                    warnings.push(format!("{}: {w}", e.arn));
                }
            }
            Entry::LeftOut(why) => errors.push(why),
        }
    }
    if let Err(e) = coffer_core::ScanRuleSet::default().load(&config.scan_rules) {
        errors.push(format!("scan_rules: {e}"));
    }
    for e in &errors {
        println!("error: {e}");
    }
    for w in &warnings {
        println!("warning: {w}");
    }
    if errors.is_empty() {
        println!(
            "{}: valid ({} credential{}, {ok} resource{}, {} notification target{})",
            file.display(),
            config.credentials.len(),
            plural(config.credentials.len()),
            plural(ok),
            config.notification_targets.len(),
            plural(config.notification_targets.len()),
        );
        Ok(true)
    } else {
        println!(
            "{}: {} error{}",
            file.display(),
            errors.len(),
            plural(errors.len())
        );
        Ok(false)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

enum Entry {
    /// Kept in the inventory; whether its source can be read now.
    Usable(std::result::Result<String, String>),
    /// Left out of the inventory, with why.
    LeftOut(String),
}

fn check_entry(e: &ResourceEntry, before: &[ResourceEntry]) -> Entry {
    if before.iter().any(|b| b.arn == e.arn) {
        return Entry::LeftOut(format!(
            "{} is listed twice in [[resources]]; only the first entry is used",
            e.arn
        ));
    }
    match Resource::from_entry(e) {
        Ok(r) => Entry::Usable(reachable(&r)),
        Err(why) => Entry::LeftOut(why),
    }
}

/// Whether Coffer can read a resource's source now: it exists, is of the kind the resource
/// type needs, and opens. The answer describes the source or says what is wrong.
pub fn reachable(r: &Resource) -> std::result::Result<String, String> {
    if r.kind == SourceKind::Composite {
        return Ok(format!(
            "composite of {} member(s): {}",
            r.members.len(),
            r.members.join(", ")
        ));
    }
    if let Some(db) = &r.database {
        let conn = db.connection(&r.arn).map_err(|e| e.status_message())?;
        let size = conn
            .query("SELECT pg_database_size(current_database())")
            .map_err(|e| e.status_message())?;
        return Ok(format!(
            "PostgreSQL database {}, {size} bytes on disk",
            conn.url()
        ));
    }
    let path = &r.source;
    if r.kind == SourceKind::Bucket {
        return Ok(format!(
            "bucket at {} (reached when a job runs)",
            r.s3.as_ref().map_or("?", |s| s.endpoint.as_str())
        ));
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("source {}: {e}", path.display()))?;
    match r.kind {
        SourceKind::Directory => {
            if !meta.is_dir() {
                return Err(format!(
                    "source {} is not a directory ({} resources are directory trees)",
                    path.display(),
                    r.resource_type
                ));
            }
            let entries = std::fs::read_dir(path)
                .map_err(|e| format!("source {} cannot be read: {e}", path.display()))?
                .count();
            Ok(format!("directory, {entries} entries at the top"))
        }
        SourceKind::Postgres => Err(format!("{} has no database url", r.arn)),
        SourceKind::Stream => {
            if meta.is_dir() {
                return Err(format!(
                    "source {} is a directory ({} resources are one file or block device)",
                    path.display(),
                    r.resource_type
                ));
            }
            std::fs::File::open(path)
                .map_err(|e| format!("source {} cannot be read: {e}", path.display()))?;
            if meta.file_type().is_block_device() {
                Ok("block device".to_string())
            } else {
                Ok(format!("file, {} bytes", meta.len()))
            }
        }
        SourceKind::Sqlite => {
            let source = coffer_engine::SqliteSource::new(path.clone());
            coffer_engine::Source::totals(&source)
                .map_err(|e| e.status_message())
                .map(|t| format!("SQLite database, {} bytes", t.map_or(0, |t| t.0)))
        }
        SourceKind::Bucket => Err("a bucket has no source path".to_string()),
        SourceKind::Composite => Err("a composite resource has no source of its own".into()),
    }
}

/// `coffer inventory`: one line per declared resource with whether its source is reachable;
/// `Ok(false)` when any entry is left out or unreachable.
pub fn inventory(file: &Path) -> Result<bool> {
    let config = FileConfig::load(file)?;
    if config.resources.is_empty() {
        println!(
            "{} declares no [[resources]] (see docs/jobs.md)",
            file.display()
        );
        return Ok(true);
    }
    let mut all_ok = true;
    let mut rows = vec![[
        "ARN".to_string(),
        "TYPE".into(),
        "NAME".into(),
        "SOURCE".into(),
        "STATUS".into(),
    ]];
    for (i, e) in config.resources.iter().enumerate() {
        let (kind, name, status) = match check_entry(e, &config.resources[..i]) {
            Entry::Usable(reach) => {
                let r = Resource::from_entry(e).expect("checked above");
                let status = match reach {
                    Ok(what) => format!("ok: {what}"),
                    Err(why) => {
                        all_ok = false;
                        format!("UNREACHABLE: {why}")
                    }
                };
                let tags = r
                    .tags
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",");
                let name = if tags.is_empty() {
                    r.name
                } else {
                    format!("{} [{tags}]", r.name)
                };
                (r.resource_type, name, status)
            }
            Entry::LeftOut(why) => {
                all_ok = false;
                ("-".into(), "-".into(), format!("LEFT OUT: {why}"))
            }
        };
        rows.push([
            e.arn.clone(),
            kind,
            name,
            e.source.display().to_string(),
            status,
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let mut line = String::new();
        for (c, w) in widths.iter().enumerate() {
            line.push_str(&format!("{:<w$}  ", r[c], w = *w));
        }
        line.push_str(&r[4]);
        println!("{line}");
    }
    Ok(all_ok)
}

async fn open_outbox(data: &DataDirArg) -> Result<Outbox> {
    if let Some(location) = data.store.as_deref().filter(|s| !s.is_empty()) {
        let store = StoreHandle::open(location).context("opening the metadata store")?;
        return Ok(Outbox::new(store));
    }
    let data_dir = &data.data_dir;
    let db = data_dir.join("metadata.db");
    if !db.exists() {
        bail!(
            "no Coffer metadata in {} (give --data-dir or set COFFER_DATA_DIR)",
            data_dir.display()
        );
    }
    let store = StoreHandle::open(db.to_str().context("data directory path is not UTF-8")?)
        .context("opening the metadata store")?;
    Ok(Outbox::new(store))
}

/// `coffer notifications ...`
pub async fn notifications(cmd: NotificationsCommand) -> Result<()> {
    match cmd {
        NotificationsCommand::DeadLetters { data, json } => {
            let outbox = open_outbox(&data).await?;
            let dead = outbox
                .dead_letters(usize::MAX)
                .await
                .map_err(|e| anyhow::anyhow!("reading the dead letters: {e}"))?;
            if json {
                let list: Vec<_> = dead.iter().map(crate::admin::dead_letter).collect();
                println!(
                    "{}",
                    serde_json::json!({"count": list.len(), "dead_letters": list})
                );
                return Ok(());
            }
            if dead.is_empty() {
                println!("No dead letters.");
            }
            for m in &dead {
                println!(
                    "{}  {}  {}  vault {} (account {}, {})  topic {}",
                    m.id,
                    m.timestamp
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    m.event,
                    m.vault_name,
                    m.account,
                    m.region,
                    m.topic_arn
                );
                println!(
                    "    reason: {}",
                    m.dead_reason.as_deref().unwrap_or("(none recorded)")
                );
            }
            Ok(())
        }
        NotificationsCommand::Replay { data, ids, all } => {
            let outbox = open_outbox(&data).await?;
            let ids = if all { None } else { Some(ids) };
            let replayed = outbox
                .replay_dead(None, ids.as_deref())
                .await
                .map_err(|e| anyhow::anyhow!("replaying the dead letters: {e}"))?;
            if let Some(ids) = &ids {
                for id in ids {
                    if !replayed.iter().any(|m| &m.id == id) {
                        println!("not a dead letter: {id}");
                    }
                }
            }
            println!(
                "{} notification{} back in the outbox; a running Coffer delivers {} to its configured target.",
                replayed.len(),
                plural(replayed.len()),
                if replayed.len() == 1 { "it" } else { "them" }
            );
            Ok(())
        }
    }
}

/// `coffer bench-seed` arguments: what to put in a new store for the scale benchmark.
#[derive(Debug, clap::Args)]
pub struct BenchSeedArgs {
    /// The new metadata store: a SQLite file path or postgres://USER:PASSWORD@HOST:PORT/DATABASE.
    #[arg(long, value_name = "PATH|URL", hide_env_values = true)]
    pub store: String,
    /// Accounts (ids 100000000000, 100000000001, ...).
    #[arg(long, default_value_t = 100)]
    pub accounts: u32,
    /// Backup plans in all, spread evenly over the accounts.
    #[arg(long, default_value_t = 100_000)]
    pub plans: u64,
    /// Recovery points in all (metadata only: no data is backed up).
    #[arg(long, default_value_t = 1_000_000)]
    pub recovery_points: u64,
    /// Jobs in all: eight in ten backups, one copy, one restore; all ended.
    #[arg(long, default_value_t = 1_000_000)]
    pub jobs: u64,
    #[arg(long, default_value_t = 10)]
    pub vaults_per_account: u32,
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Records per transaction.
    #[arg(long, default_value_t = 2000)]
    pub batch: usize,
    /// Where to write the manifest (JSON: the parameters, the time each phase took, sample
    /// ids per account); written once the seeding has finished.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
}

/// `coffer bench-seed`: seeds the store, printing progress and the rate of each phase.
pub async fn bench_seed(args: BenchSeedArgs) -> Result<()> {
    let store = StoreHandle::open(&args.store).context("opening the metadata store")?;
    let spec = coffer_core::seed::SeedSpec {
        accounts: args.accounts,
        vaults_per_account: args.vaults_per_account,
        plans: args.plans,
        recovery_points: args.recovery_points,
        jobs: args.jobs,
        region: args.region,
        batch: args.batch,
        now: chrono::Utc::now(),
    };
    println!(
        "seeding {} ({} accounts, {} vaults each, {} plans, {} recovery points, {} jobs)",
        store.describe(),
        spec.accounts,
        spec.vaults_per_account,
        spec.plans,
        spec.recovery_points,
        spec.jobs
    );
    let mut shown = (String::new(), std::time::Instant::now());
    let mut report = |p: coffer_core::seed::Progress| {
        let finished = p.done == p.total;
        if !finished && shown.0 == p.phase && shown.1.elapsed().as_secs() < 10 {
            return;
        }
        shown = (p.phase.to_string(), std::time::Instant::now());
        let rate = p.done as f64 / p.elapsed.as_secs_f64().max(1e-3);
        println!(
            "{:>16}: {:>9} of {:<9} {:>5.1}%  {:>8.0}/s  {:>7.1} s",
            p.phase,
            p.done,
            p.total,
            100.0 * p.done as f64 / p.total.max(1) as f64,
            rate,
            p.elapsed.as_secs_f64()
        );
    };
    let manifest = coffer_core::seed::seed(&store, &spec, &mut report).await?;
    let total: f64 = manifest.seconds.values().sum();
    println!("seeded in {total:.1} s");
    if let Some(path) = &args.manifest {
        let text = serde_json::to_string_pretty(&manifest)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("manifest: {}", path.display());
    }
    Ok(())
}

/// `coffer store ...`
#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Copy every record of a store into a new, empty store: SQLite to PostgreSQL, PostgreSQL
    /// to SQLite, or SQLite to SQLite. Stop the servers using the source first: writes made
    /// during the copy are not carried. Vault data and DATA_DIR (master.key) are not in the
    /// store and are not copied (docs/store.md, "Moving a store").
    Copy(StoreCopyArgs),
}

/// `coffer store copy` arguments.
#[derive(Debug, clap::Args)]
pub struct StoreCopyArgs {
    /// The store to copy: a SQLite file (DATA_DIR/metadata.db) or postgres://USER:PASSWORD@HOST:PORT/DATABASE.
    #[arg(long, value_name = "PATH|URL")]
    pub from: String,
    /// The new store: a SQLite path where no store is yet, or an empty PostgreSQL database
    /// (createdb -E UTF8 -T template0 NAME); Coffer creates its tables. A target holding
    /// records is refused.
    #[arg(long, value_name = "PATH|URL")]
    pub to: String,
}

/// One progress line of `coffer store copy`, on stderr (a closed stderr stops nothing).
fn show_progress(p: &coffer_store::CopyProgress) {
    let seconds = p.elapsed.as_secs_f64().max(1e-3);
    let _ = writeln!(
        std::io::stderr(),
        "copied {:>10} of {:<10} rows {:>5.1}%  {:>9.0} rows/s  {:>7.1} s",
        p.rows,
        p.total,
        100.0 * p.rows as f64 / p.total.max(1) as f64,
        p.rows as f64 / seconds,
        seconds
    );
}

/// `coffer store ...`
pub async fn store(cmd: StoreCommand) -> Result<()> {
    match cmd {
        StoreCommand::Copy(args) => store_copy(args).await,
    }
}

/// `coffer store copy`: progress on stderr every few seconds, the summary on stdout.
async fn store_copy(args: StoreCopyArgs) -> Result<()> {
    let to_postgres = coffer_store::StoreHandle::is_postgres(&args.to);
    let summary = tokio::task::spawn_blocking(move || {
        let mut shown = std::time::Instant::now();
        let mut report = |p: &coffer_store::CopyProgress| {
            if shown.elapsed().as_secs() >= 2 || p.rows == p.total {
                shown = std::time::Instant::now();
                show_progress(p);
                if p.rows == p.total && to_postgres {
                    let _ = writeln!(
                        std::io::stderr(),
                        "committing, then VACUUM (ANALYZE) of the copied records"
                    );
                }
            }
        };
        coffer_store::copy(&args.from, &args.to, &mut report)
    })
    .await
    .context("the copy stopped")?
    .context("copying the metadata store (nothing was committed to the target)")?;
    let seconds = summary.elapsed.as_secs_f64();
    let mut text = format!(
        "copied {} records ({} bytes of keys and values) from {} to {} in {seconds:.1} s ({:.0} rows/s)\n",
        summary.rows,
        summary.bytes,
        summary.from,
        summary.to,
        summary.rows as f64 / seconds.max(1e-3)
    );
    match &summary.vacuum {
        Some(Ok(took)) => text.push_str(&format!(
            "VACUUM (ANALYZE) of the copied records took {:.1} s\n",
            took.as_secs_f64()
        )),
        Some(Err(e)) => text.push_str(&format!(
            "warning: the copy committed, but VACUUM (ANALYZE) of the copied records failed: {e}; \
             run `VACUUM (ANALYZE) records` on the database (autovacuum will otherwise do it later)\n"
        )),
        None => {}
    }
    let width = summary.tables.keys().map(String::len).max().unwrap_or(0);
    for (table, rows) in &summary.tables {
        text.push_str(&format!("  {table:<width$}  {rows:>10}\n"));
    }
    // The copy has committed: a closed stdout (`| head`) is no failure of it.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(())
}
