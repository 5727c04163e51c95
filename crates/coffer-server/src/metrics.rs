//! Prometheus metrics at `GET /metrics` (OpenMetrics text, `prometheus-client`).
//!
//! Why: an operator running Coffer needs to graph and alert on it (failed jobs, a growing
//! notification backlog, slow requests) without reading logs. Two kinds of metric:
//!
//! - counted as requests are answered: `coffer_api_requests_total{operation,status}` and
//!   `coffer_api_request_duration_seconds{operation}` (the operation comes from the API
//!   handler's routing; requests refused before routing count as `operation="unrouted"`), and
//!   `coffer_sign_in_failures_total{error}`;
//! - reported by the domain as it works (`coffer_core::telemetry`): jobs ended with their
//!   durations and bytes, scheduler lag, lifecycle actions, store transaction latency;
//! - read at scrape time through the same `BackupService` calls the API uses: jobs by account,
//!   region, kind and state (`coffer_jobs`), recovery points and stored bytes per vault
//!   (`coffer_vault_recovery_points`, `coffer_vault_size_bytes`), and the notification outbox
//!   (`coffer_notifications_pending`, `coffer_notifications_dead_letters`). A store that cannot
//!   be read sets `coffer_store_up` to 0 instead of failing the scrape.
//!
//! Nothing secret is exposed: counts, durations, account ids and vault names. The endpoint
//! needs no authentication unless `metrics_token` is set, then it wants
//! `Authorization: Bearer TOKEN` (docs/metrics.md).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use coffer_api::types::{
    ListBackupJobsInput, ListBackupVaultsInput, ListCopyJobsInput,
    ListRecoveryPointsByBackupVaultInput, ListRestoreJobsInput,
};
use coffer_api::{ApiError, BackupService, RequestContext};
use coffer_core::Coffer;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

use coffer_core::Telemetry;

type Labels = Vec<(&'static str, String)>;

/// Request latency buckets: 1 ms doubling to about 33 s.
#[derive(Clone)]
struct LatencyBuckets;

impl MetricConstructor<Histogram> for LatencyBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.001, 2.0, 16))
    }
}

/// Every metric Coffer exports, registered once.
pub struct Metrics {
    registry: Registry,
    token: Option<String>,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, LatencyBuckets>,
    sign_in_failures: Family<Labels, Counter>,
    jobs: Family<Labels, Gauge>,
    vault_points: Family<Labels, Gauge>,
    vault_bytes: Family<Labels, Gauge>,
    pending: Gauge,
    dead: Gauge,
    store_up: Gauge,
    scrape_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    domain: DomainMetrics,
    // Scrapes run one at a time (the gauges are cleared and refilled by each).
    scrape: tokio::sync::Mutex<()>,
}

impl Metrics {
    pub fn new(token: Option<String>) -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("coffer"),
            token,
            requests: Family::default(),
            latency: Family::new_with_constructor(LatencyBuckets),
            sign_in_failures: Family::default(),
            jobs: Family::default(),
            vault_points: Family::default(),
            vault_bytes: Family::default(),
            pending: Gauge::default(),
            dead: Gauge::default(),
            store_up: Gauge::default(),
            scrape_seconds: Gauge::default(),
            domain: DomainMetrics::default(),
            scrape: tokio::sync::Mutex::new(()),
        };
        let r = &mut m.registry;
        r.register(
            "api_requests",
            "AWS Backup API requests answered, by operation and HTTP status",
            m.requests.clone(),
        );
        r.register(
            "api_request_duration_seconds",
            "Time to answer an AWS Backup API request, by operation",
            m.latency.clone(),
        );
        r.register(
            "sign_in_failures",
            "API requests refused for their credentials, by error",
            m.sign_in_failures.clone(),
        );
        r.register(
            "jobs",
            "Backup, copy and restore jobs in the store, by account, region, kind and state",
            m.jobs.clone(),
        );
        r.register(
            "vault_recovery_points",
            "Recovery points per vault",
            m.vault_points.clone(),
        );
        r.register(
            "vault_size_bytes",
            "Bytes of the recovery points per vault (as BackupSizeInBytes reports them)",
            m.vault_bytes.clone(),
        );
        r.register(
            "notifications_pending",
            "Vault notifications waiting in the outbox for delivery",
            m.pending.clone(),
        );
        r.register(
            "notifications_dead_letters",
            "Vault notifications given up on (list and replay: coffer notifications)",
            m.dead.clone(),
        );
        r.register(
            "store_up",
            "1 when the metadata store answered the last scrape's reads, else 0",
            m.store_up.clone(),
        );
        r.register(
            "scrape_store_read_seconds",
            "Time the last scrape spent reading the metadata store",
            m.scrape_seconds.clone(),
        );
        m.domain.register(&mut m.registry);
        m
    }

    /// What the domain reports into (install it with `coffer_core::telemetry::install`).
    pub fn telemetry(&self) -> Arc<dyn Telemetry> {
        Arc::new(self.domain.clone())
    }

    /// Counts one answered API request.
    pub fn observe_request(&self, operation: Option<&str>, status: u16, elapsed: Duration) {
        let op = operation.unwrap_or("unrouted").to_string();
        self.requests
            .get_or_create(&vec![
                ("operation", op.clone()),
                ("status", status.to_string()),
            ])
            .inc();
        self.latency
            .get_or_create(&vec![("operation", op)])
            .observe(elapsed.as_secs_f64());
    }

    pub fn sign_in_failed(&self, error: &str) {
        self.sign_in_failures
            .get_or_create(&vec![("error", error.to_string())])
            .inc();
    }

    /// Answers `GET /metrics`.
    pub async fn handle(&self, coffer: &Coffer, headers: &HeaderMap) -> Response<Full<Bytes>> {
        if let Some(token) = &self.token {
            let given = headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if given.map(str::as_bytes) != Some(token.as_bytes()) {
                let mut r = Response::new(Full::new(Bytes::from_static(
                    b"metrics need Authorization: Bearer <metrics_token>\n",
                )));
                *r.status_mut() = StatusCode::UNAUTHORIZED;
                return r;
            }
        }
        let _one_at_a_time = self.scrape.lock().await;
        let started = std::time::Instant::now();
        match self.read_store(coffer).await {
            Ok(()) => {
                self.store_up.set(1);
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: reading the metadata store failed");
                self.store_up.set(0);
            }
        }
        self.scrape_seconds.set(started.elapsed().as_secs_f64());
        let mut text = String::new();
        if let Err(e) = encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "metrics: encoding failed");
            let mut r = Response::new(Full::new(Bytes::from_static(b"encoding failed\n")));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return r;
        }
        let mut r = Response::new(Full::new(Bytes::from(text)));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
        );
        r
    }

    async fn read_store(&self, coffer: &Coffer) -> Result<(), String> {
        let counts = coffer.outbox().counts().await.map_err(|e| e.to_string())?;
        self.pending.set(counts.pending as i64);
        self.dead.set(counts.failed as i64);

        let mut jobs: BTreeMap<Labels, i64> = BTreeMap::new();
        let mut points: BTreeMap<Labels, (i64, i64)> = BTreeMap::new();
        for (account, region) in scopes(coffer).await? {
            let ctx = RequestContext {
                account_id: account.clone(),
                region: region.clone(),
                access_key_id: None,
                request_id: "metrics-scrape".to_string(),
            };
            let api = |e: ApiError| format!("{account} {region}: {}", e.message());
            let scope = |kind: &str, state: String| {
                vec![
                    ("account", account.clone()),
                    ("region", region.clone()),
                    ("kind", kind.to_string()),
                    ("state", state),
                ]
            };
            let mut next = None;
            loop {
                let out = coffer
                    .list_backup_vaults(
                        &ctx,
                        ListBackupVaultsInput {
                            next_token: next,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(api)?;
                for v in out.backup_vault_list.unwrap_or_default() {
                    let name = v.backup_vault_name.unwrap_or_default();
                    let bytes = vault_bytes(coffer, &ctx, &name).await.map_err(api)?;
                    points.insert(
                        vec![
                            ("account", account.clone()),
                            ("region", region.clone()),
                            ("vault", name),
                        ],
                        (v.number_of_recovery_points.unwrap_or(0), bytes),
                    );
                }
                next = out.next_token;
                if next.is_none() {
                    break;
                }
            }
            let mut next = None;
            loop {
                let out = coffer
                    .list_backup_jobs(
                        &ctx,
                        ListBackupJobsInput {
                            next_token: next,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(api)?;
                for j in out.backup_jobs.unwrap_or_default() {
                    *jobs
                        .entry(scope("backup", j.state.unwrap_or_default().to_string()))
                        .or_default() += 1;
                }
                next = out.next_token;
                if next.is_none() {
                    break;
                }
            }
            let mut next = None;
            loop {
                let out = coffer
                    .list_copy_jobs(
                        &ctx,
                        ListCopyJobsInput {
                            next_token: next,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(api)?;
                for j in out.copy_jobs.unwrap_or_default() {
                    *jobs
                        .entry(scope("copy", j.state.unwrap_or_default().to_string()))
                        .or_default() += 1;
                }
                next = out.next_token;
                if next.is_none() {
                    break;
                }
            }
            let mut next = None;
            loop {
                let out = coffer
                    .list_restore_jobs(
                        &ctx,
                        ListRestoreJobsInput {
                            next_token: next,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(api)?;
                for j in out.restore_jobs.unwrap_or_default() {
                    *jobs
                        .entry(scope("restore", j.status.unwrap_or_default().to_string()))
                        .or_default() += 1;
                }
                next = out.next_token;
                if next.is_none() {
                    break;
                }
            }
        }
        // Refilled from scratch, so a deleted vault's series disappears.
        self.jobs.clear();
        for (labels, n) in jobs {
            self.jobs.get_or_create(&labels).set(n);
        }
        self.vault_points.clear();
        self.vault_bytes.clear();
        for (labels, (n, bytes)) in points {
            self.vault_points.get_or_create(&labels).set(n);
            self.vault_bytes.get_or_create(&labels).set(bytes);
        }
        Ok(())
    }
}

/// The sum of a vault's recovery point sizes.
async fn vault_bytes(coffer: &Coffer, ctx: &RequestContext, vault: &str) -> Result<i64, ApiError> {
    let mut total = 0;
    let mut next = None;
    loop {
        let out = coffer
            .list_recovery_points_by_backup_vault(
                ctx,
                ListRecoveryPointsByBackupVaultInput {
                    backup_vault_name: vault.to_string(),
                    next_token: next,
                    ..Default::default()
                },
            )
            .await?;
        total += out
            .recovery_points
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.backup_size_in_bytes)
            .sum::<i64>();
        next = out.next_token;
        if next.is_none() {
            return Ok(total);
        }
    }
}

/// The (account, region) pairs that have vaults: vault records are keyed `ACCOUNT:REGION:NAME`.
async fn scopes(coffer: &Coffer) -> Result<BTreeSet<(String, String)>, String> {
    let keys = coffer
        .store()
        .read(|tx| tx.scan("vault", "", None, usize::MAX))
        .await
        .map_err(|e| e.to_string())?;
    Ok(keys
        .into_iter()
        .filter_map(|(k, _)| {
            let mut parts = k.splitn(3, ':');
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect())
}

/// Job durations: 0.1 s doubling to about 3.6 h.
#[derive(Clone)]
struct JobBuckets;

impl MetricConstructor<Histogram> for JobBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.1, 2.0, 18))
    }
}

/// Store transactions: 0.1 ms doubling to about 3.3 s.
#[derive(Clone)]
struct StoreBuckets;

impl MetricConstructor<Histogram> for StoreBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.0001, 2.0, 16))
    }
}

/// What the domain reports as it works (see `coffer_core::telemetry`): counted in this
/// process from its start, like the request counters.
#[derive(Clone)]
struct DomainMetrics {
    jobs_ended: Family<Labels, Counter>,
    job_seconds: Family<Labels, Histogram, JobBuckets>,
    job_bytes: Family<Labels, Counter>,
    scheduler_lag: Histogram,
    lifecycle: Family<Labels, Counter>,
    store_seconds: Family<Labels, Histogram, StoreBuckets>,
}

impl Default for DomainMetrics {
    fn default() -> Self {
        DomainMetrics {
            jobs_ended: Family::default(),
            job_seconds: Family::new_with_constructor(JobBuckets),
            job_bytes: Family::default(),
            // 10 ms, x4, to about 45 min.
            scheduler_lag: Histogram::new(exponential_buckets(0.01, 4.0, 10)),
            lifecycle: Family::default(),
            store_seconds: Family::new_with_constructor(StoreBuckets),
        }
    }
}

impl DomainMetrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "jobs_ended",
            "Jobs that reached a final state in this process, by kind and state",
            self.jobs_ended.clone(),
        );
        r.register(
            "job_duration_seconds",
            "How long jobs ran, from start to end on the Coffer clock, by kind and final state",
            self.job_seconds.clone(),
        );
        r.register(
            "job_transferred_bytes",
            "Bytes jobs moved (BytesTransferred at their end), by kind",
            self.job_bytes.clone(),
        );
        r.register(
            "scheduler_lag_seconds",
            "How long after its scheduled time each plan rule fired",
            self.scheduler_lag.clone(),
        );
        r.register(
            "lifecycle_actions",
            "Recovery points the lifecycle moved to cold storage or deleted, by action",
            self.lifecycle.clone(),
        );
        r.register(
            "store_transaction_duration_seconds",
            "Metadata store transactions, from the call to the answer, by kind (read, write)",
            self.store_seconds.clone(),
        );
    }
}

impl Telemetry for DomainMetrics {
    fn job_ended(&self, kind: &'static str, state: &'static str, seconds: f64, bytes: u64) {
        let labels = vec![("kind", kind.to_string()), ("state", state.to_string())];
        self.jobs_ended.get_or_create(&labels).inc();
        self.job_seconds.get_or_create(&labels).observe(seconds);
        self.job_bytes
            .get_or_create(&vec![("kind", kind.to_string())])
            .inc_by(bytes);
    }

    fn plan_fired(&self, lag_seconds: f64) {
        self.scheduler_lag.observe(lag_seconds);
    }

    fn lifecycle_action(&self, action: &'static str) {
        self.lifecycle
            .get_or_create(&vec![("action", action.to_string())])
            .inc();
    }

    fn store_transaction(&self, write: bool, seconds: f64) {
        let kind = if write { "write" } else { "read" };
        self.store_seconds
            .get_or_create(&vec![("kind", kind.to_string())])
            .observe(seconds);
    }
}
