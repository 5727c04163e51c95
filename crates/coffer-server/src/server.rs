//! Startup and the HTTP server loop: logging, data directory, credentials, store, domain,
//! then one hyper connection task per client until SIGINT / SIGTERM.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use coffer_api::http::{ApiHandler, with_common_headers};
use coffer_api::sigv4::{AuthMode, Credential};
use coffer_core::{Clock, Coffer, DataPlane, Inventory, VaultStorage};
use coffer_store::StoreHandle;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::admin;
use crate::config::{AuthSetting, Config, generated_credential};
use crate::wire::AwsErrors;

struct App {
    api: ApiHandler<Coffer>,
    admin: admin::Admin,
    sign_ins: crate::logging::FailedSignIns,
    metrics: crate::metrics::Metrics,
    console: crate::console::Console,
    s3: crate::s3_endpoint::S3Endpoint,
}

/// A response of the API, the console and the admin endpoints, or the S3 endpoint's (whose
/// object bodies stream).
type AnyBody = http_body_util::Either<Full<Bytes>, s3s::Body>;

impl App {
    /// Sends a request whose credential scope names `s3` to the access points' S3 endpoint,
    /// everything else to [`App::handle`].
    async fn serve(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<AnyBody> {
        if crate::s3_endpoint::is_s3(&req) {
            return self.s3.handle(req).await.map(http_body_util::Either::Right);
        }
        self.handle(req, peer)
            .await
            .map(http_body_util::Either::Left)
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        if req.uri().path() == "/metrics" && req.method() == http::Method::GET {
            return self.metrics.handle(&self.admin.coffer, req.headers()).await;
        }
        if crate::console::is_console_path(req.uri().path()) {
            let (parts, body) = req.into_parts();
            let body = match Limited::new(body, 64 * 1024).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return crate::console::plain(
                        http::StatusCode::PAYLOAD_TOO_LARGE,
                        "The form is too large.",
                    );
                }
            };
            return self
                .console
                .handle(
                    crate::console::ConsoleRequest {
                        method: &parts.method,
                        path: parts.uri.path(),
                        query: parts.uri.query(),
                        headers: &parts.headers,
                        body: &body,
                        peer: peer.to_string(),
                    },
                    &self.sign_ins,
                    &self.metrics,
                )
                .await;
        }
        if admin::is_admin_path(req.uri().path()) {
            let (parts, body) = req.into_parts();
            let body = match Limited::new(body, 64 * 1024).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => Bytes::new(),
            };
            let r = self.admin.handle(&parts, &body).await;
            return with_common_headers(r, &uuid::Uuid::new_v4().to_string());
        }
        let key = crate::logging::access_key_of(req.headers(), req.uri().query());
        let started = std::time::Instant::now();
        let response = self.api.handle(req).await;
        self.metrics.observe_request(
            response
                .extensions()
                .get::<coffer_api::http::RoutedOperation>()
                .map(|op| op.0),
            response.status().as_u16(),
            started.elapsed(),
        );
        if response.status() == http::StatusCode::FORBIDDEN
            && let Some(kind) = response
                .headers()
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok())
            && crate::logging::is_sign_in_failure(kind)
        {
            self.sign_ins.record(&key, &peer.to_string(), kind);
            self.metrics.sign_in_failed(kind);
        }
        response
    }
}

pub async fn run(config: Config) -> Result<()> {
    crate::logging::init(config.log_format);
    let (_temp, data_dir) = match &config.data_dir {
        Some(d) => (None, d.clone()),
        None => {
            let t = tempfile::Builder::new()
                .prefix("coffer-dev-")
                .tempdir()
                .context("creating a temporary data directory")?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;

    let mut printed_credential = None;
    let auth = match config.auth {
        AuthSetting::None => {
            tracing::warn!(
                "authentication is OFF (auth = none): any request is accepted; use this only for throwaway test setups"
            );
            AuthMode::None {
                default_account: config.default_account.clone(),
            }
        }
        AuthSetting::Sigv4 => {
            let mut entries = config.credentials.clone();
            if entries.is_empty() {
                let (c, created) = generated_credential(&data_dir, &config.default_account)?;
                printed_credential = Some((c.clone(), created));
                entries.push(c);
            }
            let map: HashMap<String, Credential> = entries
                .into_iter()
                .map(|c| {
                    (
                        c.access_key_id.clone(),
                        Credential {
                            access_key_id: c.access_key_id,
                            secret_access_key: c.secret_access_key,
                            account_id: c.account_id,
                        },
                    )
                })
                .collect();
            AuthMode::SigV4(Arc::new(map))
        }
    };

    let store = open_store(config.store.as_deref(), &data_dir)?;
    let clock = if config.dev {
        Clock::movable()
    } else {
        Clock::system()
    };
    // tracing-subscriber already forwards the `log` records of rustic_core into tracing.
    let inventory = Inventory::default();
    inventory.set_default_scope(&config.default_account, &config.default_region);
    for problem in inventory.replace(&config.resources) {
        tracing::warn!(%problem, "resource inventory");
    }
    let metrics = crate::metrics::Metrics::new(config.metrics_token.clone());
    coffer_core::telemetry::install(metrics.telemetry());
    let shared = config
        .store
        .as_deref()
        .is_some_and(StoreHandle::is_postgres);
    let storage = VaultStorage::open(&data_dir)
        .and_then(|s| s.with_placement(config.vault_storage.clone()))
        .map(|s| {
            s.shared_with_other_nodes(shared)
                .with_tiers(config.file.tiers.dirs())
        })
        .map_err(|e| anyhow::anyhow!("opening vault storage: {e}"))?;
    match &config.vault_storage.s3 {
        Some(s3) => tracing::info!(
            endpoint = %s3.endpoint,
            bucket = %s3.bucket,
            prefix = %s3.prefix,
            default = ?config.vault_storage.default,
            rules = config.vault_storage.rules.len(),
            "vault storage: S3-compatible bucket configured"
        ),
        None => {
            tracing::info!(dir = %data_dir.join("vaults").display(), "vault storage: local disk")
        }
    }
    let coffer = Coffer::with_data_plane(
        store.clone(),
        clock,
        DataPlane {
            storage,
            inventory: inventory.clone(),
            node_id: crate::config::node_id(&data_dir)?,
            max_concurrent_jobs: config.max_concurrent_jobs,
            history_retention_days: config.history_retention_days,
            job_lease_secs: config.job_lease_seconds,
        },
    );
    coffer.report_buckets().replace(&config.report_buckets);
    coffer.approval_teams().replace(&config.file.approval_teams);
    let rule_files = coffer
        .scan_rules()
        .load(&config.file.scan_rules)
        .map_err(|e| anyhow::anyhow!("{e} (scan_rules in the configuration file)"))?;
    tracing::info!(files = rule_files.len(), "scan rules loaded");
    if config.dev {
        // Report plans work without configuration in development mode: an unconfigured
        // bucket is a directory of the (temporary) data directory.
        coffer
            .report_buckets()
            .set_fallback(data_dir.join("report-buckets"));
    }
    coffer.start_workers();
    let (delivery, delivery_worker) =
        crate::notify::Delivery::start(coffer.outbox(), &config.notification_targets)?;
    if let Some(file) = config.config_file.clone() {
        tokio::spawn(crate::reload::watch(
            file,
            config.file.clone(),
            inventory,
            coffer.report_buckets().clone(),
            coffer.approval_teams().clone(),
            coffer.scan_rules().clone(),
            delivery,
        ));
    }
    let auth_for_s3 = auth.clone();
    let app = Arc::new(App {
        api: ApiHandler::new(
            Arc::new(coffer.clone()),
            auth.clone(),
            &config.default_region,
        )
        .with_search(Arc::new(coffer.clone()))
        .with_regions(config.regions.clone()),
        console: crate::console::Console::new(
            coffer.clone(),
            config.dev,
            auth.clone(),
            &config.default_region,
        ),
        admin: admin::Admin {
            coffer: coffer.clone(),
            dev: config.dev,
            auth,
            policy: coffer_api::sigv4::ScopePolicy::new("backup", &config.default_region)
                .with_regions(config.regions.clone()),
            keys: Default::default(),
        },
        sign_ins: Default::default(),
        metrics,
        s3: crate::s3_endpoint::S3Endpoint::new(coffer.clone(), &auth_for_s3),
    });

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, store = %store.describe(), dev = config.dev, "coffer started");
    print_banner(&config, addr, &data_dir, printed_credential.as_ref());

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(app.serve(req, peer).await) }
                    });
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(AwsErrors::new(stream)), service)
                        .await
                    {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => {
                tracing::info!("shutting down");
                break;
            }
        }
    }
    drain(&coffer, delivery_worker, config.shutdown_timeout).await;
    Ok(())
}

/// After SIGTERM / SIGINT (new connections are no longer accepted): stops the workers so no
/// plan fires and no job is claimed, hands running jobs back to the queue at their next
/// checkpoint (the next start runs them again), then flushes the notification outbox, all
/// within `budget`.
async fn drain(
    coffer: &Coffer,
    delivery: coffer_core::background::worker::WorkerHandle,
    budget: std::time::Duration,
) {
    let started = std::time::Instant::now();
    let workers_stopped = coffer.shutdown(budget).await;
    let left = budget.saturating_sub(started.elapsed());
    let flushed = delivery.stop(left).await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    if workers_stopped && flushed {
        tracing::info!(elapsed_ms, "shutdown complete");
    } else {
        tracing::warn!(
            elapsed_ms,
            budget_secs = budget.as_secs(),
            "shutdown budget reached; jobs still running are found by their lease on the next start"
        );
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn print_banner(
    config: &Config,
    addr: std::net::SocketAddr,
    data_dir: &std::path::Path,
    credential: Option<&(crate::config::CredentialEntry, bool)>,
) {
    println!("Coffer listening on http://{addr}");
    if config.dev {
        println!(
            "Development mode: throwaway state in {}, authentication off, admin endpoints under /_coffer/.",
            data_dir.display()
        );
    } else {
        println!("Data directory: {}", data_dir.display());
        println!(
            "Back up {}: it unlocks every vault, and losing it loses them all.",
            data_dir.join("master.key").display()
        );
    }
    if let Some((c, created)) = credential {
        println!(
            "{} credential (stored in {}/credentials.json, owner-only):",
            if *created {
                "Generated a"
            } else {
                "Using the generated"
            },
            data_dir.display()
        );
        println!("  export AWS_ACCESS_KEY_ID={}", c.access_key_id);
        println!("  export AWS_SECRET_ACCESS_KEY={}", c.secret_access_key);
    } else if config.auth == AuthSetting::None {
        println!("Authentication is off: any access key works.");
        println!("  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test");
    } else {
        println!("Sign requests with one of the configured credentials.");
    }
    println!("Point the AWS CLI at it:");
    println!(
        "  aws --endpoint-url http://{addr} --region {} backup list-backup-vaults",
        config.default_region
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

/// `coffer coverage`: probes every operation of both services (AWS Backup, then AWS Backup
/// Search) on a throwaway instance.
pub async fn print_coverage() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = StoreHandle::open(
        dir.path()
            .join("metadata.db")
            .to_str()
            .context("temp path")?,
    )?;
    let coffer = Coffer::new(store, Clock::system());
    let rows = coffer_core::coverage::probe(&coffer).await;
    print!("{}", coffer_core::coverage::markdown(&rows));
    let rows = coffer_core::coverage::probe_search(&coffer).await;
    print!(
        "\nAWS Backup Search (signing name `backup-search`, same endpoint): {}",
        coffer_core::coverage::markdown_search(&rows)
    );
    Ok(())
}

/// `coffer vault-key export` arguments.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The vault's name.
    #[arg(long)]
    pub vault: String,
    /// The data directory of the Coffer that holds the vault.
    #[arg(long, env = "COFFER_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: std::path::PathBuf,
    /// The vault's account.
    #[arg(long, env = "COFFER_ACCOUNT_ID", default_value = crate::config::DEFAULT_ACCOUNT)]
    pub account_id: String,
    /// The vault's region.
    #[arg(long, default_value = crate::config::DEFAULT_REGION)]
    pub region: String,
    /// The server's metadata store when it is not DATA_DIR/metadata.db (see `serve --store`).
    #[arg(long, env = "COFFER_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// The server's configuration file, for its `[vault_storage]` (a vault in a bucket).
    #[arg(long, env = "COFFER_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub vault_storage: crate::config::VaultStorageArgs,
}

/// Opens the metadata store: `location` when given (SQLite path or PostgreSQL URL), else the
/// SQLite file in the data directory.
fn open_store(location: Option<&str>, data_dir: &std::path::Path) -> Result<StoreHandle> {
    let default;
    let location = match location {
        Some(l) => l,
        None => {
            default = data_dir.join("metadata.db");
            default
                .to_str()
                .context("data directory path is not UTF-8")?
        }
    };
    StoreHandle::open(location).context("opening the metadata store")
}

/// Prints what an operator needs to open a vault with plain restic: a way back to the data
/// even without Coffer.
pub async fn export_vault_key(args: ExportArgs) -> Result<()> {
    if args.store.is_none() && !args.data_dir.join("metadata.db").exists() {
        anyhow::bail!(
            "no Coffer metadata in {} (give --data-dir, and --store if the server uses one)",
            args.data_dir.display()
        );
    }
    let store = open_store(args.store.as_deref(), &args.data_dir)?;
    let file = match &args.config {
        Some(p) => crate::config::FileConfig::load(p)?.vault_storage,
        None => None,
    };
    let placement = crate::config::placement(&args.vault_storage, file.as_ref())?;
    let storage = VaultStorage::open(&args.data_dir)
        .and_then(|s| s.with_placement(placement))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = coffer_core::export_vault_key(
        &store,
        &storage,
        &args.account_id,
        &args.region,
        &args.vault,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("repository: {}", key.repository);
    println!("password:   {}", key.password);
    println!();
    println!("Open it with plain restic, for example:");
    println!(
        "  RESTIC_PASSWORD='{}' restic -r {} snapshots",
        key.password, key.repository
    );
    Ok(())
}
