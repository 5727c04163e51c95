//! Seeding a store for the scale benchmark (`coffer bench-seed`, `bench/scale/run.py`).
//!
//! Why it exists: the scale targets of docs/benchmarks.md ("Scale") are about a store holding
//! 100,000 plans, 1,000,000 recovery points and 1,000,000 jobs across 100 accounts, which no
//! one can build through the API in reasonable time. This module fills a new store with such
//! a population, writing every record through the model's own write functions
//! (`vaults::save`, `plans::put_version`, `recovery_points::insert`, `jobs::save_job`,
//! `tags::set`), a few thousand records per transaction, so every secondary record the model
//! keeps beside them (id lookups, history entries, indexes) is what a real store holds after
//! the same history.
//!
//! What a seeded store is, and is not:
//! - Recovery points are metadata only: no vault has a repository and no snapshot exists.
//!   Listing and describing them works; restoring, copying or indexing one cannot.
//! - Every job has ended (COMPLETED, FAILED, EXPIRED or ABORTED), reached through the moves a
//!   real job makes (CREATED, RUNNING, then its end), so the runner never claims one.
//! - Plans' rules are daily and weekly cron expressions limited to the year 2099, so no firing
//!   is due while a benchmark runs, and lifecycles delete points a year or more after their
//!   creation, so the lifecycle sweep has nothing to do.
//! - Everything is made from the parameters alone (ids are derived, not random), so the same
//!   parameters give the same store, and [`Manifest`] names sample ids for the benchmark.
//!
//! Creation dates spread over the 35 days before the seeding (plans and vaults a few days
//! earlier); finished jobs are kept by the history only as long as its retention, so a server
//! on a seeded store needs `history_retention_days` above 35 to keep them all.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use coffer_api::RequestContext;
use coffer_api::types::{BackupPlanInput, BackupRuleInput, Lifecycle, RecoveryPointCreator};
use coffer_engine::SnapshotRef;
use coffer_store::{StoreHandle, Txn};
use serde::Serialize;

use crate::control::vaults as vault_ops;
use crate::model::error::{Error, Result};
use crate::model::inventory::Inventory;
use crate::model::jobs::{self, JobKind, JobRecord, JobState};
use crate::model::plans::{self, PlanRecord, PlanVersionRecord};
use crate::model::recovery_points::{self, RecoveryPointRecord};
use crate::model::states::{RecoveryPointStatus, StorageClass};
use crate::model::{arn, clock::Clock, plan_rules, tags, vaults};
use crate::{Coffer, DataPlane, VaultStorage};

/// The first account id; account `i` is this plus `i`, as 12 digits.
pub const FIRST_ACCOUNT: u64 = 100_000_000_000;

/// How many days the recovery points' and jobs' creation dates spread over.
pub const SPREAD_DAYS: i64 = 35;

/// Resource types the seeded resources have, with how many recovery points one resource has
/// on average (`RECOVERY_POINTS_PER_RESOURCE`).
const RESOURCE_TYPES: [&str; 4] = ["EBS", "EFS", "RDS", "S3"];
const RECOVERY_POINTS_PER_RESOURCE: u64 = 10;

/// Samples of each kind the manifest names per account.
const SAMPLES: u64 = 8;

/// What to seed.
#[derive(Debug, Clone, Serialize)]
pub struct SeedSpec {
    pub accounts: u32,
    pub vaults_per_account: u32,
    /// Totals across all accounts, spread evenly.
    pub plans: u64,
    pub recovery_points: u64,
    pub jobs: u64,
    pub region: String,
    /// Records per transaction.
    pub batch: usize,
    /// The seeding's "now": creation dates are before it.
    pub now: DateTime<Utc>,
}

/// The 12-digit id of account `i`.
pub fn account_id(i: u32) -> String {
    format!("{:012}", FIRST_ACCOUNT + u64::from(i))
}

/// Where the seeding stands, for the caller to print: a phase, records written of its total,
/// and the time since the phase started.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub phase: &'static str,
    pub done: u64,
    pub total: u64,
    pub elapsed: std::time::Duration,
}

/// Ids the benchmark can ask about, per account, and the parameters they were seeded with.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub spec: SeedSpec,
    pub accounts: Vec<AccountSample>,
    /// Seconds each phase took.
    pub seconds: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AccountSample {
    pub account: String,
    pub vaults: Vec<String>,
    pub plan_ids: Vec<String>,
    /// `(vault name, recovery point ARN, resource ARN)`.
    pub recovery_points: Vec<(String, String, String)>,
    pub resource_arns: Vec<String>,
    pub backup_job_ids: Vec<String>,
    pub copy_job_ids: Vec<String>,
    pub restore_job_ids: Vec<String>,
}

/// A 64-bit mix of `parts` (splitmix64 steps): the seeding's only source of variety.
fn mix(parts: &[u64]) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15;
    for p in parts {
        h ^= p.wrapping_add(0x9E37_79B9_7F4A_7C15);
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
    }
    h
}

/// A UUID derived from `(what, account, index)`: the same parameters give the same ids.
fn uuid_of(what: u64, account: u32, index: u64) -> String {
    let hi = mix(&[what, u64::from(account), index]);
    let lo = mix(&[hi, what]);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

const VAULT_UID: u64 = 1;
const PLAN: u64 = 2;
const PLAN_VERSION: u64 = 3;
const RULE: u64 = 4;
const POINT: u64 = 5;
const JOB: u64 = 6;
const RESOURCE: u64 = 7;

/// The share of `total` that falls to account `a` of `accounts`.
fn share(total: u64, accounts: u32, a: u32) -> u64 {
    let n = u64::from(accounts);
    total / n + u64::from(u64::from(a) < total % n)
}

/// What every record of one account is built from: the spec and the account's counts.
struct Account<'a> {
    spec: &'a SeedSpec,
    index: u32,
    id: String,
    plans: u64,
    points: u64,
    resources: u64,
}

impl<'a> Account<'a> {
    fn new(spec: &'a SeedSpec, index: u32) -> Self {
        let points = share(spec.recovery_points, spec.accounts, index);
        Account {
            spec,
            index,
            id: account_id(index),
            plans: share(spec.plans, spec.accounts, index),
            points,
            resources: points.div_ceil(RECOVERY_POINTS_PER_RESOURCE).max(1),
        }
    }

    fn region(&self) -> &str {
        &self.spec.region
    }

    fn vault_name(&self, v: u64) -> String {
        format!("bench-vault-{v:03}")
    }

    /// The vault plan `l`'s rules write to.
    fn plan_vault(&self, l: u64) -> u64 {
        l % u64::from(self.spec.vaults_per_account)
    }

    fn plan_id(&self, l: u64) -> String {
        uuid_of(PLAN, self.index, l)
    }

    /// Resource `r`: its ARN and type.
    fn resource(&self, r: u64) -> (String, &'static str) {
        let kind = RESOURCE_TYPES[(r % RESOURCE_TYPES.len() as u64) as usize];
        let (a, region) = (&self.id, self.region());
        let suffix = &uuid_of(RESOURCE, self.index, r).replace('-', "")[..17];
        let arn = match kind {
            "EBS" => format!("arn:aws:ec2:{region}:{a}:volume/vol-{suffix}"),
            "EFS" => format!("arn:aws:elasticfilesystem:{region}:{a}:file-system/fs-{suffix}"),
            "RDS" => format!("arn:aws:rds:{region}:{a}:db:bench-db-{r:05}"),
            _ => format!("arn:aws:s3:::bench-{a}-{r:05}"),
        };
        (arn, kind)
    }

    /// The plan that protects resource `r`, if the account has plans.
    fn resource_plan(&self, r: u64) -> Option<u64> {
        (self.plans > 0).then(|| r % self.plans)
    }

    /// The vault resource `r`'s recovery points are in.
    fn resource_vault(&self, r: u64) -> u64 {
        match self.resource_plan(r) {
            Some(l) => self.plan_vault(l),
            None => r % u64::from(self.spec.vaults_per_account),
        }
    }

    /// When the `i`th of `n` things of the account was created: spread over the last
    /// [`SPREAD_DAYS`] days in order, ending an hour before the seeding's now.
    fn spread(&self, i: u64, n: u64, what: u64) -> DateTime<Utc> {
        let span = Duration::days(SPREAD_DAYS).num_seconds() - 3600;
        let step = span as f64 / n.max(1) as f64;
        let jitter = (mix(&[what, u64::from(self.index), i]) % 600) as i64;
        let start = self.spec.now - Duration::days(SPREAD_DAYS);
        start + Duration::seconds((i as f64 * step) as i64 + jitter.min(step as i64))
    }

    fn point_id(&self, p: u64) -> String {
        uuid_of(POINT, self.index, p)
    }

    fn point_arn(&self, p: u64) -> String {
        arn::recovery_point(self.region(), &self.id, &self.point_id(p))
    }
}

/// A seeding that stopped: what it was doing, and why.
#[derive(Debug)]
pub struct SeedError {
    pub during: String,
    pub error: Error,
}

impl std::fmt::Display for SeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.during, self.error.operator_message())?;
        match self.error.0.cause() {
            Some(cause) => write!(f, " ({})", coffer_api::error_chain(cause)),
            None => Ok(()),
        }
    }
}

impl std::error::Error for SeedError {}

fn during(what: impl Into<String>) -> impl FnOnce(Error) -> SeedError {
    let during = what.into();
    move |error| SeedError { during, error }
}

/// One kind of record: its name, how many an account gets, how one is written.
struct Phase {
    name: &'static str,
    per_account: fn(&SeedSpec, u32) -> u64,
    writer: Writer,
}

const PHASES: [Phase; 4] = [
    Phase {
        name: "vaults",
        per_account: |s, _| u64::from(s.vaults_per_account),
        writer: write_vault,
    },
    Phase {
        name: "plans",
        per_account: |s, a| share(s.plans, s.accounts, a),
        writer: write_plan,
    },
    Phase {
        name: "recovery points",
        per_account: |s, a| share(s.recovery_points, s.accounts, a),
        writer: write_point,
    },
    Phase {
        name: "jobs",
        per_account: |s, a| share(s.jobs, s.accounts, a),
        writer: write_job,
    },
];

/// Fills `store`, which must hold no vaults, plans and jobs yet, with what `spec` describes,
/// telling `progress` after every transaction. Returns the manifest of sample ids.
pub async fn seed(
    store: &StoreHandle,
    spec: &SeedSpec,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> std::result::Result<Manifest, SeedError> {
    check_spec(spec).map_err(during("checking the parameters"))?;
    check_empty(store)
        .await
        .map_err(during("checking the store"))?;
    first_start(store)
        .await
        .map_err(during("preparing the store"))?;
    let spec = Arc::new(spec.clone());
    let mut seconds = BTreeMap::new();
    for phase in &PHASES {
        let started = std::time::Instant::now();
        run_phase(store, &spec, phase, progress).await?;
        seconds.insert(phase.name.to_string(), started.elapsed().as_secs_f64());
    }
    Ok(Manifest {
        accounts: (0..spec.accounts).map(|a| sample(&spec, a)).collect(),
        spec: (*spec).clone(),
        seconds,
    })
}

/// What the first start of a server does on a new store, done before anything is written, as
/// it would have been: the one-time builds of the indexes and due-time queues for records
/// older than them (the history's, the jobs', the scheduler's, the lifecycle's, restore
/// testing's), so that a server started on the seeded store finds them done, as on a store it
/// wrote itself. A scratch data directory stands in for the vaults (nothing is written there).
async fn first_start(store: &StoreHandle) -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("coffer-bench-seed-{}", uuid::Uuid::new_v4()));
    let storage = VaultStorage::open(&scratch).map_err(coffer_api::ApiError::internal)?;
    let coffer = Coffer::with_data_plane(
        store.clone(),
        Clock::system(),
        DataPlane {
            storage,
            inventory: Inventory::default(),
            node_id: "bench-seed".into(),
            max_concurrent_jobs: 1,
            history_retention_days: crate::model::history::DEFAULT_RETENTION_DAYS,
            job_lease_secs: None,
        },
    );
    let done = coffer.catch_up().await;
    let pruned = crate::background::history::prune_history(coffer.plane()).await;
    let _ = std::fs::remove_dir_all(&scratch);
    done?;
    pruned?;
    Ok(())
}

fn check_spec(spec: &SeedSpec) -> Result<()> {
    let bad = |m: &str| Err(coffer_api::ApiError::invalid_parameter(m.to_string()).into());
    if spec.accounts == 0 || spec.accounts > 10_000 {
        return bad("--accounts must be between 1 and 10000");
    }
    if spec.vaults_per_account == 0 || spec.vaults_per_account > 1000 {
        return bad("--vaults-per-account must be between 1 and 1000");
    }
    if spec.batch == 0 {
        return bad("--batch must be at least 1");
    }
    Ok(())
}

async fn check_empty(store: &StoreHandle) -> Result<()> {
    let found = store
        .read(|tx| -> Result<bool> {
            for table in [vaults::TABLE, plans::TABLE, JobKind::Backup.table()] {
                if !tx.scan(table, "", None, 1)?.is_empty() {
                    return Ok(true);
                }
            }
            Ok(false)
        })
        .await?;
    if found {
        return Err(coffer_api::ApiError::invalid_parameter(
            "the store already holds vaults, plans or jobs: seed a new, empty store",
        )
        .into());
    }
    Ok(())
}

/// Writes record `i` (of the account's share) of one kind.
type Writer = fn(&mut dyn Txn, &Account, u64) -> Result<()>;

/// Writes one kind of record, account after account, `spec.batch` per transaction.
async fn run_phase(
    store: &StoreHandle,
    spec: &Arc<SeedSpec>,
    phase: &Phase,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> std::result::Result<(), SeedError> {
    let started = std::time::Instant::now();
    let total: u64 = (0..spec.accounts)
        .map(|a| (phase.per_account)(spec, a))
        .sum();
    let writer = phase.writer;
    let mut done = 0;
    for a in 0..spec.accounts {
        let n = (phase.per_account)(spec, a);
        let mut i = 0;
        while i < n {
            let end = (i + spec.batch as u64).min(n);
            let s = spec.clone();
            store
                .write(move |tx| -> Result<()> {
                    let account = Account::new(&s, a);
                    (i..end).try_for_each(|k| writer(tx, &account, k))
                })
                .await
                .map_err(during(format!(
                    "seeding {} of account {}",
                    phase.name,
                    account_id(a)
                )))?;
            done += end - i;
            i = end;
            progress(Progress {
                phase: phase.name,
                done,
                total,
                elapsed: started.elapsed(),
            });
        }
    }
    Ok(())
}

fn write_vault(tx: &mut dyn Txn, a: &Account, v: u64) -> Result<()> {
    let ctx = RequestContext::new(&a.id, a.region());
    let key = vault_ops::encryption_key(&ctx, None)?;
    let created = a.spec.now - Duration::days(SPREAD_DAYS + 5);
    let mut record = vault_ops::new_record(&ctx, &a.vault_name(v), None, key, created);
    record.uid = uuid_of(VAULT_UID, a.index, v);
    vaults::save(tx, &record)?;
    let env = if v.is_multiple_of(3) { "test" } else { "prod" };
    let vault_tags = BTreeMap::from([
        ("env".to_string(), env.to_string()),
        ("team".to_string(), format!("team-{}", v % 7)),
    ]);
    tags::set(tx, &record.arn, &vault_tags)?;
    Ok(())
}

/// Plan `l`'s rules: a daily one, and on every third plan a weekly one too.
fn plan_rules_of(a: &Account, l: u64) -> Vec<(String, BackupRuleInput)> {
    let vault = a.vault_name(a.plan_vault(l));
    let hour = l % 24;
    let mut rules = vec![(
        "daily".to_string(),
        BackupRuleInput {
            rule_name: "daily".into(),
            target_backup_vault_name: vault.clone(),
            schedule_expression: Some(daily_cron(l)),
            lifecycle: Some(Lifecycle {
                delete_after_days: Some(365),
                ..Default::default()
            }),
            recovery_point_tags: Some(BTreeMap::from([(
                "frequency".to_string(),
                "daily".to_string(),
            )])),
            ..Default::default()
        },
    )];
    if l.is_multiple_of(3) {
        rules.push((
            "weekly".to_string(),
            BackupRuleInput {
                rule_name: "weekly".into(),
                target_backup_vault_name: vault,
                schedule_expression: Some(format!("cron(0 {hour} ? * SUN 2099)")),
                lifecycle: Some(Lifecycle {
                    move_to_cold_storage_after_days: Some(90),
                    delete_after_days: Some(455),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ));
    }
    rules
}

fn plan_name(l: u64) -> String {
    format!("bench-plan-{l:06}")
}

/// Plan `l`'s record and first version, its rules normalised as CreateBackupPlan does.
fn plan_of(a: &Account, l: u64) -> Result<(PlanRecord, PlanVersionRecord)> {
    let rules = plan_rules_of(a, l);
    let rule_ids: BTreeMap<String, String> = (rules.iter().enumerate())
        .map(|(k, (name, _))| (name.clone(), uuid_of(RULE, a.index, l * 4 + k as u64)))
        .collect();
    let input = BackupPlanInput {
        backup_plan_name: plan_name(l),
        rules: rules.into_iter().map(|(_, r)| r).collect(),
        ..Default::default()
    };
    let document = plan_rules::normalise(input, &rule_ids)?;
    let id = a.plan_id(l);
    let created = a.spec.now - Duration::days(SPREAD_DAYS + 1) - Duration::minutes(l as i64 % 1440);
    let version_id = base64_of(&uuid_of(PLAN_VERSION, a.index, l));
    let plan = PlanRecord {
        account: a.id.clone(),
        region: a.spec.region.clone(),
        arn: arn::backup_plan(a.region(), &a.id, &id),
        id: id.clone(),
        creation_date: created,
        creator_request_id: None,
        deletion_date: None,
        last_execution_date: None,
        current_sequence: 1,
        current_version_id: version_id.clone(),
    };
    let version = PlanVersionRecord {
        plan_id: id,
        sequence: 1,
        version_id,
        creation_date: created,
        document,
    };
    Ok((plan, version))
}

/// A VersionId as AWS spells it: the base64 of a UUID string.
fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn write_plan(tx: &mut dyn Txn, a: &Account, l: u64) -> Result<()> {
    let (plan, version) = plan_of(a, l)?;
    tx.put(
        plans::TABLE,
        &plans::key(&plan.account, &plan.region, &plan.id),
        &serde_json::to_vec(&plan)?,
    )?;
    plans::put_version(tx, &plan, &version)?;
    let plan_tags = BTreeMap::from([("owner".to_string(), format!("team-{}", l % 7))]);
    tags::set(tx, &plan.arn, &plan_tags)?;
    Ok(())
}

/// What a recovery point made by plan `l`'s daily rule says created it: the same values
/// [`plan_of`] stores, derived without building the plan (it is asked for every point and job).
fn creator(a: &Account, l: u64) -> RecoveryPointCreator {
    let id = a.plan_id(l);
    RecoveryPointCreator {
        backup_plan_arn: Some(arn::backup_plan(a.region(), &a.id, &id)),
        backup_plan_id: Some(id),
        backup_plan_name: Some(plan_name(l)),
        backup_plan_version: Some(base64_of(&uuid_of(PLAN_VERSION, a.index, l))),
        backup_rule_id: Some(uuid_of(RULE, a.index, l * 4)),
        backup_rule_name: Some("daily".into()),
        backup_rule_cron: Some(daily_cron(l)),
        backup_rule_timezone: Some(coffer_cron::Schedule::DEFAULT_TIMEZONE.into()),
    }
}

fn daily_cron(l: u64) -> String {
    format!("cron(0 {} ? * * 2099)", l % 24)
}

/// Recovery point `p` of the account: the resource it holds is `p % resources`.
fn point_of(a: &Account, p: u64) -> Result<(RecoveryPointRecord, tags::Tags)> {
    let r = p % a.resources;
    let (resource_arn, resource_type) = a.resource(r);
    let vault_index = a.resource_vault(r);
    let vault = a.vault_name(vault_index);
    let created = a.spread(p, a.points, POINT);
    let created_by = a.resource_plan(r).map(|l| creator(a, l));
    let size = 1_048_576 + (mix(&[POINT, u64::from(a.index), p]) % (64 << 30)) as i64;
    let rp_tags = BTreeMap::from([("frequency".to_string(), "daily".to_string())]);
    let rp = RecoveryPointRecord {
        id: a.point_id(p),
        arn: a.point_arn(p),
        account: a.id.clone(),
        region: a.spec.region.clone(),
        vault_arn: arn::backup_vault(a.region(), &a.id, &vault),
        vault_name: vault,
        vault_uid: uuid_of(VAULT_UID, a.index, vault_index),
        snapshot: SnapshotRef("seeded-metadata-only".to_string()),
        resource_name: Some(resource_arn.rsplit([':', '/']).next().unwrap_or("").into()),
        resource_arn,
        resource_type: resource_type.to_string(),
        creation_date: created,
        initiation_date: Some(created),
        completion_date: created + Duration::minutes(3 + (p % 40) as i64),
        backup_size: size,
        iam_role_arn: Some(role_arn(&a.id)),
        lifecycle: Some(Lifecycle {
            delete_after_days: Some(365),
            ..Default::default()
        }),
        created_by,
        source_vault_arn: None,
        encryption_key_arn: arn::default_encryption_key(a.region(), &a.id),
        status: RecoveryPointStatus::Completed,
        storage_class: StorageClass::Warm,
        last_restore_time: None,
        source_path: None,
        composite: Default::default(),
        tier: None,
        continuous: None,
    };
    Ok((rp, rp_tags))
}

fn role_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/service-role/AWSBackupDefaultServiceRole")
}

fn write_point(tx: &mut dyn Txn, a: &Account, p: u64) -> Result<()> {
    let (rp, rp_tags) = point_of(a, p)?;
    recovery_points::insert(tx, &rp, &rp_tags)
}

/// Job `j` of the account: one in ten a copy, one in ten a restore (when the account has
/// recovery points to copy or restore), the others backups. Returns the kind and the job's
/// index among the account's jobs of that kind.
fn job_kind(a: &Account, j: u64) -> (JobKind, u64) {
    if a.points == 0 {
        return (JobKind::Backup, j);
    }
    match j % 10 {
        0 => (JobKind::Copy, j / 10),
        1 => (JobKind::Restore, j / 10),
        _ => (JobKind::Backup, j - 2 * (j / 10) - (j % 10).min(2)),
    }
}

/// How many of the account's jobs are backups (see [`job_kind`]).
fn backup_jobs(a: &Account) -> u64 {
    let jobs = share(a.spec.jobs, a.spec.accounts, a.index);
    if a.points == 0 {
        return jobs;
    }
    jobs - jobs.div_ceil(10) - (jobs + 8) / 10
}

/// How job `j` ends: most complete; some fail, expire (backups) or are stopped.
fn job_end(kind: JobKind, roll: u64) -> JobState {
    match (kind, roll % 100) {
        (_, 0..=89) => JobState::Completed,
        (_, 90..=95) => JobState::Failed,
        (JobKind::Backup, 96..=97) => JobState::Expired,
        _ => JobState::Aborted,
    }
}

fn write_job(tx: &mut dyn Txn, a: &Account, j: u64) -> Result<()> {
    let (kind, k) = job_kind(a, j);
    let end = job_end(kind, mix(&[JOB, u64::from(a.index), j]));
    let mut job = match kind {
        JobKind::Backup => backup_job(a, k, end)?,
        JobKind::Copy => copy_job(a, k, end)?,
        JobKind::Restore => restore_job(a, k, end)?,
    };
    job.id = uuid_of(JOB, a.index, j).to_uppercase();
    finish_job(tx, job, end)
}

/// Saves `job` through the states a real job passes: waiting, then RUNNING, then `end`
/// (EXPIRED is recorded at once, as a firing whose start window ended; ABORTED from the
/// queue, stopped before it started).
fn finish_job(tx: &mut dyn Txn, mut job: JobRecord, end: JobState) -> Result<()> {
    let created = job.creation_date;
    if end == JobState::Expired {
        job.state = end;
        job.status_message = Some("The job's start window ended before it could start.".into());
        job.message_category = Some("EXPIRED".into());
        job.completion_date = job.start_by;
        return jobs::save_job(tx, &job);
    }
    jobs::save_job(tx, &job)?;
    if end != JobState::Aborted {
        job.state = JobState::Running;
        job.attempts = 1;
        job.started_at = Some(created + Duration::seconds(20));
        jobs::save_job(tx, &job)?;
    }
    job.state = end;
    job.completion_date = Some(created + Duration::minutes(4 + (created.timestamp() % 50)));
    match end {
        JobState::Completed => {
            job.percent_done = 100.0;
            job.bytes_transferred = job.backup_size;
        }
        JobState::Failed => {
            job.status_message = Some("The source could not be read: permission denied.".into());
            job.message_category = Some("ACCESS_DENIED".into());
        }
        _ => job.status_message = Some("The job was stopped by a user.".into()),
    }
    jobs::save_job(tx, &job)
}

/// Backup job `b`: it made the recovery point of the same rank among the account's points
/// (when there is one), on the same resource, at the same time.
fn backup_job(a: &Account, b: u64, end: JobState) -> Result<JobRecord> {
    let backups = backup_jobs(a).max(1);
    let point = (a.points > 0).then(|| b * a.points / backups);
    let r = point.unwrap_or(b) % a.resources;
    let (resource_arn, resource_type) = a.resource(r);
    let vault = a.vault_name(a.resource_vault(r));
    let created = match point {
        Some(p) => a.spread(p, a.points, POINT),
        None => a.spread(b, backups, JOB),
    };
    let mut job = JobRecord::new(
        JobKind::Backup,
        &a.id,
        a.region(),
        created,
        resource_arn,
        resource_type.to_string(),
    );
    job.vault_arn = arn::backup_vault(a.region(), &a.id, &vault);
    job.vault_name = vault;
    job.iam_role_arn = Some(role_arn(&a.id));
    job.start_by = Some(created + Duration::minutes(plan_rules::DEFAULT_START_WINDOW_MINUTES));
    job.complete_by =
        Some(created + Duration::minutes(plan_rules::DEFAULT_COMPLETION_WINDOW_MINUTES));
    job.created_by = a.resource_plan(r).map(|l| creator(a, l));
    if let Some(p) = point
        && end == JobState::Completed
    {
        job.recovery_point_id = Some(a.point_id(p));
        job.recovery_point_arn = Some(a.point_arn(p));
        job.backup_size = point_of(a, p)?.0.backup_size;
    }
    Ok(job)
}

/// The recovery point copy or restore job `k` of a kind works from.
fn source_point(a: &Account, k: u64, salt: u64) -> Result<(u64, RecoveryPointRecord)> {
    let p = (k * salt) % a.points;
    Ok((p, point_of(a, p)?.0))
}

/// Copy job `c`: a copy of one of the account's points into the next vault.
fn copy_job(a: &Account, c: u64, end: JobState) -> Result<JobRecord> {
    let (p, rp) = source_point(a, c, 7)?;
    let created = (rp.completion_date + Duration::minutes(10)).min(a.spec.now - Duration::hours(1));
    let dest = (a.resource_vault(p % a.resources) + 1) % u64::from(a.spec.vaults_per_account);
    let mut job = JobRecord::new(
        JobKind::Copy,
        &a.id,
        a.region(),
        created,
        rp.resource_arn.clone(),
        rp.resource_type.clone(),
    );
    job.vault_name = rp.vault_name.clone();
    job.vault_arn = rp.vault_arn.clone();
    job.recovery_point_id = Some(rp.id.clone());
    job.recovery_point_arn = Some(rp.arn.clone());
    job.recovery_point_creation_date = Some(rp.creation_date);
    job.dest_vault_arn = Some(arn::backup_vault(a.region(), &a.id, &a.vault_name(dest)));
    job.iam_role_arn = Some(role_arn(&a.id));
    job.backup_size = rp.backup_size;
    if end == JobState::Completed {
        let copy_id = uuid_of(POINT, a.index, u64::MAX - c);
        job.dest_recovery_point_arn = Some(arn::recovery_point(a.region(), &a.id, &copy_id));
    }
    Ok(job)
}

/// Restore job `r`: one of the account's points restored as a new resource.
fn restore_job(a: &Account, r: u64, end: JobState) -> Result<JobRecord> {
    let (_, rp) = source_point(a, r, 13)?;
    let created = (rp.completion_date + Duration::hours(2)).min(a.spec.now - Duration::hours(1));
    let mut job = JobRecord::new(
        JobKind::Restore,
        &a.id,
        a.region(),
        created,
        rp.resource_arn.clone(),
        rp.resource_type.clone(),
    );
    job.vault_name = rp.vault_name.clone();
    job.vault_arn = rp.vault_arn.clone();
    job.recovery_point_id = Some(rp.id.clone());
    job.recovery_point_arn = Some(rp.arn.clone());
    job.recovery_point_creation_date = Some(rp.creation_date);
    job.iam_role_arn = Some(role_arn(&a.id));
    job.backup_size = rp.backup_size;
    if end == JobState::Completed {
        job.created_resource_arn = Some(format!("{}-restored-{r}", rp.resource_arn));
    }
    Ok(job)
}

/// Up to [`SAMPLES`] indexes spread over `0..n`.
fn picks(n: u64) -> Vec<u64> {
    let k = SAMPLES.min(n);
    (0..k).map(|i| i * n / k.max(1)).collect()
}

/// The manifest's samples of account `index`.
fn sample(spec: &SeedSpec, index: u32) -> AccountSample {
    let a = Account::new(spec, index);
    let mut s = AccountSample {
        account: a.id.clone(),
        vaults: (0..u64::from(spec.vaults_per_account))
            .map(|v| a.vault_name(v))
            .collect(),
        plan_ids: picks(a.plans).into_iter().map(|l| a.plan_id(l)).collect(),
        ..Default::default()
    };
    for p in picks(a.points) {
        let r = p % a.resources;
        let resource = a.resource(r).0;
        s.recovery_points.push((
            a.vault_name(a.resource_vault(r)),
            a.point_arn(p),
            resource.clone(),
        ));
        s.resource_arns.push(resource);
    }
    let jobs = share(spec.jobs, spec.accounts, index);
    for j in picks(jobs).into_iter().chain(0..jobs.min(10)) {
        let id = uuid_of(JOB, index, j).to_uppercase();
        let list = match job_kind(&a, j).0 {
            JobKind::Backup => &mut s.backup_job_ids,
            JobKind::Copy => &mut s.copy_job_ids,
            JobKind::Restore => &mut s.restore_job_ids,
        };
        if !list.contains(&id) {
            list.push(id);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_api::BackupService;
    use coffer_api::types::*;

    fn spec() -> SeedSpec {
        SeedSpec {
            accounts: 2,
            vaults_per_account: 3,
            plans: 7,
            recovery_points: 61,
            jobs: 83,
            region: "eu-west-1".into(),
            batch: 10,
            now: Utc::now(),
        }
    }

    fn ctx(a: u32) -> RequestContext {
        RequestContext::new(&account_id(a), "eu-west-1")
    }

    async fn seeded(dir: &std::path::Path) -> (Coffer, Manifest) {
        let store = StoreHandle::open(dir.join("meta.db").to_str().unwrap()).unwrap();
        let mut seen = Vec::new();
        let manifest = seed(&store, &spec(), &mut |p| seen.push((p.phase, p.done)))
            .await
            .unwrap();
        assert_eq!(seen.last(), Some(&("jobs", 83)));
        let coffer = Coffer::with_data_plane(
            store,
            Clock::system(),
            DataPlane {
                storage: VaultStorage::open(&dir.join("data")).unwrap(),
                inventory: Inventory::default(),
                node_id: "seed-test".into(),
                max_concurrent_jobs: 1,
                history_retention_days: 90,
                job_lease_secs: None,
            },
        );
        (coffer, manifest)
    }

    /// What the seeding wrote reads back through the API: every account has its share of
    /// vaults, plans, points and jobs, the vaults count their points, every job has ended,
    /// the manifest's samples exist, and nothing fires, expires or is swept.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_seeded_store_reads_back_through_the_api_and_nothing_runs() {
        let dir = tempfile::tempdir().unwrap();
        let (coffer, manifest) = seeded(dir.path()).await;
        let (mut points, mut jobs, mut plans) = (0, 0, 0);
        for a in 0..2 {
            let vaults = coffer
                .list_backup_vaults(&ctx(a), Default::default())
                .await
                .unwrap()
                .backup_vault_list
                .unwrap();
            assert_eq!(vaults.len(), 3);
            for v in &vaults {
                let listed = coffer
                    .list_recovery_points_by_backup_vault(
                        &ctx(a),
                        ListRecoveryPointsByBackupVaultInput {
                            backup_vault_name: v.backup_vault_name.clone().unwrap(),
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap()
                    .recovery_points
                    .unwrap();
                assert_eq!(Some(listed.len() as i64), v.number_of_recovery_points);
                points += listed.len();
            }
            plans += coffer
                .list_backup_plans(&ctx(a), Default::default())
                .await
                .unwrap()
                .backup_plans_list
                .unwrap()
                .len();
            jobs += count_jobs(&coffer, a).await;
        }
        assert_eq!((plans, points, jobs), (7, 61, 83));
        check_samples(&coffer, &manifest).await;
        let done = coffer.catch_up().await.unwrap();
        assert_eq!(
            (done.firings, done.backup_jobs, done.expired_backup_jobs),
            (0, 0, 0)
        );
        assert_eq!((done.moved_to_cold, done.deleted), (0, 0));
    }

    /// The account's jobs of every kind; each has ended.
    async fn count_jobs(coffer: &Coffer, a: u32) -> usize {
        let ended = |s: &str| ["COMPLETED", "FAILED", "EXPIRED", "ABORTED"].contains(&s);
        let backups = coffer
            .list_backup_jobs(&ctx(a), Default::default())
            .await
            .unwrap()
            .backup_jobs
            .unwrap();
        assert!(
            backups
                .iter()
                .all(|j| ended(j.state.as_ref().unwrap().as_str()))
        );
        assert!(backups.iter().any(|j| j.recovery_point_arn.is_some()));
        let copies = coffer
            .list_copy_jobs(&ctx(a), Default::default())
            .await
            .unwrap()
            .copy_jobs
            .unwrap();
        assert!(
            copies
                .iter()
                .all(|j| ended(j.state.as_ref().unwrap().as_str()))
        );
        let restores = coffer
            .list_restore_jobs(&ctx(a), Default::default())
            .await
            .unwrap()
            .restore_jobs
            .unwrap();
        assert!(
            restores
                .iter()
                .all(|j| ended(j.status.as_ref().unwrap().as_str()))
        );
        assert!(!copies.is_empty() && !restores.is_empty());
        backups.len() + copies.len() + restores.len()
    }

    /// Every id the manifest names answers, with the account's data.
    async fn check_samples(coffer: &Coffer, manifest: &Manifest) {
        for (a, s) in manifest.accounts.iter().enumerate() {
            let c = ctx(a as u32);
            for id in &s.plan_ids {
                let plan = coffer
                    .get_backup_plan(
                        &c,
                        GetBackupPlanInput {
                            backup_plan_id: id.clone(),
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                let rule = &plan.backup_plan.unwrap().rules[0];
                assert!(
                    rule.schedule_expression
                        .as_deref()
                        .unwrap()
                        .ends_with("2099)")
                );
            }
            for (vault, rp, resource) in &s.recovery_points {
                let d = coffer
                    .describe_recovery_point(
                        &c,
                        DescribeRecoveryPointInput {
                            backup_vault_name: vault.clone(),
                            recovery_point_arn: rp.clone(),
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                assert_eq!(d.resource_arn.as_ref(), Some(resource));
            }
            for id in &s.backup_job_ids {
                let j = coffer
                    .describe_backup_job(
                        &c,
                        DescribeBackupJobInput {
                            backup_job_id: id.clone(),
                        },
                    )
                    .await
                    .unwrap();
                assert_eq!(j.account_id.as_deref(), Some(s.account.as_str()));
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_that_holds_data_is_not_seeded_again() {
        let dir = tempfile::tempdir().unwrap();
        let (coffer, _) = seeded(dir.path()).await;
        let again = seed(coffer.meta().store(), &spec(), &mut |_| {}).await;
        let e = again.unwrap_err();
        assert!(e.to_string().contains("seed a new, empty store"), "{e}");
    }

    /// The creator derived for points and jobs is what the stored plan says.
    #[test]
    fn the_creator_of_a_point_matches_its_plan() {
        let s = spec();
        let a = Account::new(&s, 1);
        for l in 0..a.plans {
            let (plan, version) = plan_of(&a, l).unwrap();
            let rule = &version.document.rules[0];
            let expected = RecoveryPointCreator {
                backup_plan_arn: Some(plan.arn),
                backup_plan_id: Some(plan.id),
                backup_plan_name: Some(version.document.backup_plan_name.clone()),
                backup_plan_version: Some(version.version_id.clone()),
                backup_rule_id: rule.rule_id.clone(),
                backup_rule_name: Some(rule.rule_name.clone()),
                backup_rule_cron: rule.schedule_expression.clone(),
                backup_rule_timezone: rule.schedule_expression_timezone.clone(),
            };
            assert_eq!(creator(&a, l), expected);
        }
    }

    #[test]
    fn ids_follow_from_the_parameters_and_jobs_split_by_kind() {
        assert_eq!(uuid_of(JOB, 3, 9), uuid_of(JOB, 3, 9));
        assert_ne!(uuid_of(JOB, 3, 9), uuid_of(JOB, 3, 10));
        let s = spec();
        let a = Account::new(&s, 0);
        let jobs = share(s.jobs, s.accounts, 0);
        let backups = (0..jobs)
            .filter(|j| job_kind(&a, *j).0 == JobKind::Backup)
            .map(|j| job_kind(&a, j).1)
            .collect::<Vec<_>>();
        assert_eq!(backups, (0..backup_jobs(&a)).collect::<Vec<_>>());
    }
}
