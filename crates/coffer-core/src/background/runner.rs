//! The worker pool that runs queued jobs.
//!
//! One worker per process (see `background::worker`): every second, or at once when woken, it
//! carries out queued recovery point deletions, expires jobs whose start window has passed,
//! and claims as many waiting jobs as it has free slots, sharing them between accounts in turn
//! (see [`claim`]), each under a lease (`node/incarnation`, one minute on the wall clock,
//! renewed by the job's heartbeat). A job whose lease belongs to an earlier incarnation of this
//! node, or has run out, was cut off by a crash: it is queued again (at most three attempts in
//! all) or ends FAILED / ABORTED with a message saying so. A job whose last run failed for a
//! reason that can pass waits until its `next_attempt` (see `dataplane::jobs::failed`) and is
//! skipped, not claimed, until then.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use coffer_store::Txn;

use crate::background::worker::Worker;
use crate::dataplane::jobs::{COMPLETION_WINDOW_ENDED, JobControl};
use crate::dataplane::{self, Executor};
use crate::model::error::Result;
use crate::model::jobs::{self, JobKind, JobRecord, MAX_ATTEMPTS, QUEUE, load_job, save_job};
use crate::model::queue;
use crate::model::states::JobState;

/// How long a job's lease holds without renewal, unless configured ([`Runner::with_lease`]).
pub(crate) const LEASE: i64 = 60;
/// How many entries at the head of each account's queue one pass looks at (besides the
/// account's running jobs): enough to expire and claim, never the whole queue.
const HEAD: usize = 64;
/// How many accounts one pass serves at most.
const MAX_ACCOUNTS_PER_PASS: usize = 10_000;

/// The job runner of this process: its identity for leases, its slots, whose turn it is, and
/// the lock that keeps its passes one at a time.
pub struct Runner {
    node: String,
    incarnation: String,
    slots: usize,
    /// Seconds a claimed job's lease holds without renewal (renewed twice a second).
    lease: i64,
    /// The account served last, so the next pass starts with the one after it.
    last_served: std::sync::Mutex<Option<String>>,
    /// One pass over the queue at a time in this process (the loop and the clock endpoint's
    /// catch-up both run passes), so free slots are never handed out twice.
    pass: tokio::sync::Mutex<()>,
}

impl Runner {
    pub fn new(node: &str, slots: usize) -> Self {
        Runner {
            node: node.to_string(),
            incarnation: uuid::Uuid::new_v4().to_string(),
            slots: slots.max(1),
            lease: LEASE,
            last_served: std::sync::Mutex::default(),
            pass: tokio::sync::Mutex::new(()),
        }
    }

    /// Leases of `secs` seconds (at least 2) instead of a minute: another node takes a job
    /// over that long after its node died.
    pub fn with_lease(mut self, secs: u32) -> Self {
        self.lease = i64::from(secs.max(2));
        self
    }

    fn owner(&self) -> String {
        format!("{}/{}", self.node, self.incarnation)
    }

    /// One pass now: queued deletions, expirations, claims (what the worker does each tick).
    pub(crate) async fn pass(&self, plane: &Executor) -> Result<Passed> {
        let held = self.hold().await;
        self.pass_held(&held, plane).await
    }

    /// Keeps the runner's own passes (the worker's) waiting until the guard is dropped, so that
    /// only the holder's passes ([`Runner::pass_held`]) claim jobs meanwhile: time travel holds
    /// the runner while it steps, and so knows every job started and expired on the way.
    pub(crate) async fn hold(&self) -> RunnerHeld<'_> {
        RunnerHeld(self.pass.lock().await)
    }

    /// One pass by the holder of the runner.
    pub(crate) async fn pass_held(
        &self,
        _held: &RunnerHeld<'_>,
        plane: &Executor,
    ) -> Result<Passed> {
        if plane.running().is_shutting_down() {
            return Ok(Passed::default());
        }
        if let Err(e) = dataplane::deletions::process_deletions(plane).await {
            tracing::warn!(error = %coffer_api::error_chain(&e.0), "carrying out recovery point deletions failed; retrying");
        }
        if let Err(e) = dataplane::storage::process_removals(plane).await {
            tracing::warn!(error = %coffer_api::error_chain(&e.0), "removing deleted vaults' data failed; retrying");
        }
        if let Err(e) = dataplane::indexes::process_indexes(plane).await {
            tracing::warn!(error = %coffer_api::error_chain(&e.0), "building or removing recovery point indexes failed; retrying");
        }
        let claimer = dataplane::scans::Claimer {
            owner: &self.owner(),
            node_prefix: &format!("{}/", self.node),
        };
        if let Err(e) = dataplane::scans::process_scans(plane, &claimer).await {
            tracing::warn!(error = %coffer_api::error_chain(&e.0), "claiming or settling scan jobs failed; retrying");
        }
        if let Err(e) = dataplane::search::process_search(plane).await {
            tracing::warn!(error = %coffer_api::error_chain(&e.0), "carrying on search jobs and exports failed; retrying");
        }
        let free = self.slots.saturating_sub(plane.running().count());
        let turn = ClaimTurn {
            now: plane.clock().now(),
            wall: Utc::now(),
            owner: self.owner(),
            node_prefix: format!("{}/", self.node),
            free,
            lease: self.lease,
            after_account: self
                .last_served
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        };
        let claimed = plane.store().write(move |tx| claim(tx, &turn)).await?;
        if claimed.last_served.is_some() {
            *self.last_served.lock().unwrap_or_else(|e| e.into_inner()) = claimed.last_served;
        }
        let mut passed = Passed {
            started: Vec::with_capacity(claimed.jobs.len()),
            expired: claimed.expired,
        };
        for job in claimed.jobs {
            passed.started.push((job.kind, job.key()));
            self.spawn(plane, job);
        }
        Ok(passed)
    }

    /// Runs a claimed job on the data plane, with its heartbeat.
    fn spawn(&self, plane: &Executor, job: JobRecord) {
        let control = plane.running().register(&job.key(), job.complete_by);
        let plane = plane.clone();
        let owner = self.owner();
        let lease = self.lease;
        tokio::spawn(async move {
            let key = job.key();
            let beat = tokio::spawn(heartbeat(
                plane.clone(),
                owner,
                job.clone(),
                control.clone(),
                lease,
            ));
            match job.kind {
                JobKind::Backup if dataplane::composite::groups(&plane, &job) => {
                    dataplane::composite::run(&plane, job, &control).await
                }
                JobKind::Backup => dataplane::backup::run(&plane, job, &control).await,
                JobKind::Copy => dataplane::copy::run(&plane, job, &control).await,
                JobKind::Restore => dataplane::restore::run(&plane, job, &control).await,
            }
            beat.abort();
            plane.running().unregister(&key);
            plane.running().wake();
        });
    }
}

/// The runner held by time travel (see [`Runner::hold`]).
pub(crate) struct RunnerHeld<'a>(#[allow(dead_code)] tokio::sync::MutexGuard<'a, ()>);

/// What one pass of the runner did.
#[derive(Debug, Default)]
pub(crate) struct Passed {
    /// The jobs it started, as (kind, job key).
    pub started: Vec<(JobKind, String)>,
    /// How many waiting jobs it recorded EXPIRED (start window ended).
    pub expired: usize,
}

/// What [`claim`] did in one transaction.
#[derive(Debug, Default)]
pub(crate) struct Claimed {
    /// The jobs claimed, now RUNNING under this runner's lease.
    pub jobs: Vec<JobRecord>,
    /// The account served last (the next pass starts after it).
    pub last_served: Option<String>,
    /// How many waiting jobs were recorded EXPIRED.
    pub expired: usize,
}

/// The runner as a [`Worker`]: a pass per tick, woken when jobs are queued or end; stopping
/// it hands the running jobs back (see [`RunnerWorker::drain`]).
pub(crate) struct RunnerWorker {
    pub runner: Arc<Runner>,
    pub plane: Executor,
}

#[async_trait]
impl Worker for RunnerWorker {
    fn name(&self) -> &'static str {
        "job runner"
    }

    async fn tick(&self) -> std::result::Result<(), String> {
        self.runner
            .pass(&self.plane)
            .await
            .map(|_| ())
            .map_err(|e| coffer_api::error_chain(&e.0))
    }

    async fn woken(&self) {
        self.plane.running().woken().await
    }

    /// Stops claiming, asks every running job to stop at its next checkpoint and hand itself
    /// back to the queue (a later start runs it again), and waits for them within `budget`.
    async fn drain(&self, budget: StdDuration) {
        let _no_more_passes = self.runner.pass.lock().await;
        let n = self.plane.running().shut_down();
        if n > 0 {
            tracing::info!(jobs = n, "handing running jobs back to the queue");
        }
        let _ = tokio::time::timeout(budget, self.plane.running().all_ended()).await;
    }
}

/// What one pass decides with: the times, who claims, how many slots are free and whose turn
/// comes first.
pub(crate) struct ClaimTurn {
    pub now: DateTime<Utc>,
    pub wall: DateTime<Utc>,
    pub owner: String,
    pub node_prefix: String,
    pub free: usize,
    /// Seconds of a new lease.
    pub lease: i64,
    /// Accounts after this one come first this pass (round robin).
    pub after_account: Option<String>,
}

/// One pass over the queue, in one transaction: every account's head is settled (ended jobs
/// dropped, orphaned ones sent round again, jobs past their start window expired), then up to
/// `free` waiting jobs are claimed, one per account in turn (each account's oldest first),
/// starting after the account served last. Returns the claimed jobs, the account served last
/// and how many jobs expired. However long one account's queue, another account's job waits
/// at most one turn.
pub(crate) fn claim(tx: &mut dyn Txn, turn: &ClaimTurn) -> Result<Claimed> {
    jobs::migrate_legacy_queue(tx, 1000)?;
    let mut accounts = queue::accounts(tx, MAX_ACCOUNTS_PER_PASS)?;
    if let Some(after) = &turn.after_account {
        let first = accounts.partition_point(|a| a <= after);
        accounts.rotate_left(first);
    }
    let mut ready: Vec<(String, std::collections::VecDeque<JobRecord>)> = Vec::new();
    let mut expired = 0;
    for account in accounts {
        let mut waiting = std::collections::VecDeque::new();
        for (qkey, entry) in queue::head(tx, &account, HEAD + turn.free)? {
            match settle(tx, turn, &qkey, &entry)? {
                Settled::Waits(job) => waiting.push_back(*job),
                Settled::Expired => expired += 1,
                Settled::Not => {}
            }
        }
        ready.push((account, waiting));
    }
    let mut claimed = Vec::new();
    let mut last = None;
    while claimed.len() < turn.free && ready.iter().any(|(_, w)| !w.is_empty()) {
        for (account, waiting) in ready.iter_mut() {
            if claimed.len() >= turn.free {
                break;
            }
            if let Some(mut job) = waiting.pop_front() {
                job.state = JobState::Running;
                job.attempts += 1;
                job.started_at = Some(turn.now);
                job.lease_owner = Some(turn.owner.clone());
                job.lease_until = Some(turn.wall + Duration::seconds(turn.lease));
                job.next_attempt = None;
                save_job(tx, &job)?;
                claimed.push(job);
                last = Some(account.clone());
            }
        }
    }
    Ok(Claimed {
        jobs: claimed,
        last_served: last,
        expired,
    })
}

/// What [`settle`] found a queued job to be.
enum Settled {
    /// Waiting to be claimed.
    Waits(Box<JobRecord>),
    /// Recorded EXPIRED now: its start window ended.
    Expired,
    /// Ended, running, or unreadable: not for this pass.
    Not,
}

/// Looks at one queued job: drops the entry of a job that ended or cannot be read, sends a job
/// whose worker is gone round again (or ends it after too many attempts), expires one whose
/// start window ended (at StartBy it has ended: a job must start before it).
fn settle(tx: &mut dyn Txn, turn: &ClaimTurn, qkey: &str, entry: &queue::Entry) -> Result<Settled> {
    let mut job = match load_job(tx, entry.kind, &entry.job_key) {
        Ok(Some(j)) if !j.is_terminal() => j,
        Ok(_) => {
            tx.delete(QUEUE, qkey)?;
            return Ok(Settled::Not);
        }
        Err(e) if e.is_corrupt_record() => {
            // A record that cannot be read must not block the queue: drop its entry, loudly.
            tracing::error!(job = %entry.job_key, error = %coffer_api::error_chain(&e.0), "a queued job cannot be read; it is taken off the queue");
            tx.delete(QUEUE, qkey)?;
            return Ok(Settled::Not);
        }
        // The store failing is not the record being unreadable: the pass fails and the next
        // one tries again, with the entry kept.
        Err(e) => return Err(e),
    };
    if !job.state.is_waiting() {
        if !orphaned(&job, turn) {
            return Ok(Settled::Not);
        }
        send_round_again(&mut job, turn.now);
        save_job(tx, &job)?;
        if job.is_terminal() {
            return Ok(Settled::Not);
        }
    }
    if job.start_by.is_some_and(|s| s <= turn.now) {
        job.state = JobState::Expired;
        job.status_message = Some(format!(
            "The job did not start within its start window (it had to start by {}).",
            job.start_by.map(|s| s.to_rfc3339()).unwrap_or_default()
        ));
        job.completion_date = Some(turn.now);
        save_job(tx, &job)?;
        return Ok(Settled::Expired);
    }
    // A failed run waits out its backoff; the jobs behind it are claimed meanwhile.
    if job.next_attempt.is_some_and(|t| t > turn.now) {
        return Ok(Settled::Not);
    }
    Ok(Settled::Waits(Box::new(job)))
}

/// Whether a RUNNING or ABORTING job's worker is gone: its lease belongs to an earlier
/// incarnation of this node, or ran out.
fn orphaned(job: &JobRecord, turn: &ClaimTurn) -> bool {
    match (&job.lease_owner, job.lease_until) {
        (Some(o), _) if *o == turn.owner => false,
        (Some(o), _) if o.starts_with(&turn.node_prefix) => true,
        (_, Some(until)) => until < turn.wall,
        _ => true,
    }
}

/// An orphaned job: a stop under way ends ABORTED; otherwise it waits again, unless it was
/// interrupted too often.
fn send_round_again(job: &mut JobRecord, now: DateTime<Utc>) {
    job.lease_owner = None;
    job.lease_until = None;
    if job.state == JobState::Aborting {
        job.state = JobState::Aborted;
        job.status_message = Some("Coffer stopped while the job was being stopped.".into());
        job.completion_date = Some(now);
    } else if job.attempts >= MAX_ATTEMPTS {
        job.state = JobState::Failed;
        job.status_message = Some(format!(
            "Coffer was interrupted while running this job {} times; giving up.",
            job.attempts
        ));
        job.message_category = Some("INTERRUPTED".into());
        job.completion_date = Some(now);
    } else {
        job.state = job.kind.waiting_state();
        job.status_message = Some(format!(
            "Coffer was interrupted while running this job; it runs again (attempt {} of {MAX_ATTEMPTS}).",
            job.attempts + 1
        ));
        job.percent_done = 0.0;
    }
}

/// While a job runs: writes its progress, renews its lease, and cancels it when a stop was
/// requested or its completion window ended.
async fn heartbeat(
    plane: Executor,
    owner: String,
    job: JobRecord,
    control: JobControl,
    lease: i64,
) {
    loop {
        tokio::time::sleep(StdDuration::from_millis(500)).await;
        let progress = control
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let now = plane.clock().now();
        let key = job.key();
        let kind = job.kind;
        let owner = owner.clone();
        let state = plane
            .store()
            .write(
                move |tx| -> Result<Option<(JobState, Option<chrono::DateTime<Utc>>)>> {
                    let Some(mut j) = load_job(tx, kind, &key)? else {
                        return Ok(None);
                    };
                    if j.is_terminal() || j.lease_owner.as_deref() != Some(owner.as_str()) {
                        return Ok(None);
                    }
                    if let Some(p) = progress.percent() {
                        j.percent_done = p.min(99.0);
                    }
                    j.bytes_transferred = progress.bytes_done as i64;
                    j.lease_until = Some(Utc::now() + Duration::seconds(lease));
                    save_job(tx, &j)?;
                    Ok(Some((j.state, j.complete_by)))
                },
            )
            .await;
        match state {
            Ok(Some((state, complete_by))) => {
                if state == JobState::Aborting {
                    control.cancel_with("The job was stopped by a StopBackupJob request.");
                }
                if complete_by.is_some_and(|c| now >= c) {
                    control.cancel_with(COMPLETION_WINDOW_ENDED);
                }
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %coffer_api::error_chain(&e.0), "writing job progress failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::jobs::{BackupJobSpec, create_backup_job, enqueue};
    use coffer_store::StoreHandle;

    const A: &str = "111122223333";
    const B: &str = "444455556666";
    const REGION: &str = "us-east-1";

    fn backup_spec(account: &str, at: DateTime<Utc>) -> BackupJobSpec {
        BackupJobSpec {
            account: account.into(),
            region: REGION.into(),
            vault_name: "v".into(),
            vault_arn: crate::model::arn::backup_vault(REGION, account, "v"),
            resource_arn: format!("arn:aws:elasticfilesystem:{REGION}:{account}:file-system/fs"),
            resource_type: "EFS".into(),
            resource_name: None,
            iam_role_arn: "arn:aws:iam::111122223333:role/r".into(),
            idempotency_token: None,
            creation_date: at,
            start_by: at + Duration::days(30),
            complete_by: at + Duration::days(60),
            lifecycle: None,
            recovery_point_tags: Default::default(),
            created_by: None,
            copy_actions: Vec::new(),
            index_resource_types: Vec::new(),
            continuous: false,
            expired_message: None,
        }
    }

    /// The claimed jobs and the account served last.
    fn claim_pair(tx: &mut dyn Txn, turn: &ClaimTurn) -> Result<(Vec<JobRecord>, Option<String>)> {
        claim(tx, turn).map(|c| (c.jobs, c.last_served))
    }

    fn turn(free: usize, after_account: Option<String>, now: DateTime<Utc>) -> ClaimTurn {
        ClaimTurn {
            now,
            wall: now,
            owner: "node/this".into(),
            node_prefix: "node/".into(),
            free,
            lease: LEASE,
            after_account,
        }
    }

    /// 3,000 backups of one account are queued before another account's restore: the restore
    /// is claimed at the first pass with two free slots, and by the second pass with one.
    #[tokio::test(flavor = "multi_thread")]
    async fn thousands_of_one_accounts_jobs_do_not_delay_anothers() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        let t0 = Utc::now() - Duration::hours(1);
        store
            .write(move |tx| -> Result<()> {
                for i in 0..3000 {
                    create_backup_job(tx, backup_spec(A, t0 + Duration::milliseconds(i)))?;
                }
                let restore = JobRecord::new(
                    JobKind::Restore,
                    B,
                    REGION,
                    t0 + Duration::seconds(10),
                    "arn:aws:elasticfilesystem:us-east-1:444455556666:file-system/fs".into(),
                    "EFS".into(),
                );
                enqueue(tx, &restore)?;
                Ok(())
            })
            .await
            .unwrap();
        let now = Utc::now();
        let (two, last) = store
            .write(move |tx| claim_pair(tx, &turn(2, None, now)))
            .await
            .unwrap();
        let kinds: Vec<(String, JobKind)> =
            two.iter().map(|j| (j.account.clone(), j.kind)).collect();
        assert_eq!(
            kinds,
            [
                (A.to_string(), JobKind::Backup),
                (B.to_string(), JobKind::Restore)
            ]
        );
        assert_eq!(
            two[0].creation_date, t0,
            "each account's oldest job goes first"
        );
        assert_eq!(last.as_deref(), Some(B));

        // One slot: A's turn, then B's, whatever A has queued.
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        store
            .write(move |tx| -> Result<()> {
                for i in 0..3000 {
                    create_backup_job(tx, backup_spec(A, t0 + Duration::milliseconds(i)))?;
                }
                create_backup_job(tx, backup_spec(B, t0 + Duration::seconds(10)))?;
                Ok(())
            })
            .await
            .unwrap();
        let (first, last) = store
            .write(move |tx| claim_pair(tx, &turn(1, None, now)))
            .await
            .unwrap();
        assert_eq!(first[0].account, A);
        let (second, _) = store
            .write(move |tx| claim_pair(tx, &turn(1, last, now)))
            .await
            .unwrap();
        assert_eq!(second[0].account, B, "B waits one turn at most");
        assert_eq!(second[0].state, JobState::Running);
    }

    /// A queued job past its start window is expired by the pass that sees it, and a queue
    /// entry whose job record cannot be read is dropped rather than failing every pass.
    #[tokio::test(flavor = "multi_thread")]
    async fn expired_and_unreadable_jobs_never_block_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        let t0 = Utc::now() - Duration::days(2);
        let (old, ok) = store
            .write(move |tx| -> Result<(JobRecord, JobRecord)> {
                let mut spec = backup_spec(A, t0);
                spec.start_by = t0 + Duration::hours(1);
                let old = create_backup_job(tx, spec)?;
                let broken = create_backup_job(tx, backup_spec(A, t0 + Duration::seconds(1)))?;
                tx.put(JobKind::Backup.table(), &broken.key(), b"not json")?;
                let ok = create_backup_job(tx, backup_spec(A, t0 + Duration::seconds(2)))?;
                Ok((old, ok))
            })
            .await
            .unwrap();
        let now = Utc::now();
        let claimed = store
            .write(move |tx| claim(tx, &turn(1, None, now)))
            .await
            .unwrap();
        assert_eq!(claimed.expired, 1);
        let claimed = claimed.jobs;
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].id, ok.id);
        let old_state = store
            .read(move |tx| load_job(tx, JobKind::Backup, &old.key()))
            .await
            .unwrap()
            .unwrap()
            .state;
        assert_eq!(old_state, JobState::Expired);
        let left = store.read(|tx| tx.scan(QUEUE, "", None, 10)).await.unwrap();
        assert_eq!(left.len(), 1, "only the claimed job stays queued: {left:?}");
    }

    /// A backup into a vault whose repository is broken (its directory replaced by a file):
    /// each run fails on the vault's storage and the job waits out its backoff on the Coffer
    /// clock (1 minute, then 2), skipped by the claims meanwhile while the job queued behind it
    /// is claimed; the third failure ends it FAILED with a message naming the last error.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_job_that_keeps_failing_backs_off_and_ends_failed() {
        use crate::dataplane::storage::{VaultStorage, repo_for};
        use crate::model::Meta;
        use crate::model::clock::{Clock, backoff};
        use crate::model::inventory::{Inventory, ResourceEntry};
        use crate::model::vaults::{self, VaultRecord};

        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        let clock = Clock::movable();
        let source = dir.path().join("source");
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("f"), b"data").unwrap();
        let inventory = Inventory::default();
        let spec = backup_spec(A, Utc::now());
        let problems = inventory.replace(&[ResourceEntry {
            members: Vec::new(),
            arn: spec.resource_arn.clone(),
            source,
            name: None,
            resource_type: None,
            tags: Default::default(),
            account: None,
            region: None,
            s3: None,
            url: None,
            password_env: None,
        }]);
        assert!(problems.is_empty(), "{problems:?}");
        let plane = Executor::new(
            Meta::new(store.clone(), clock.clone()),
            inventory,
            Some(VaultStorage::open(dir.path()).unwrap()),
        );
        let vault = VaultRecord {
            account: A.into(),
            region: REGION.into(),
            name: "v".into(),
            arn: spec.vault_arn.clone(),
            creation_date: Utc::now(),
            creator_request_id: None,
            encryption_key_arn: format!("arn:aws:kms:{REGION}:{A}:alias/aws/backup"),
            encryption_key_type: "AWS_OWNED_KMS_KEY".into(),
            recovery_points: 0,
            uid: "v-uid".into(),
            repo: None,
            lock: None,
            air_gapped: false,
            mpa: Default::default(),
        };
        let saved = vault.clone();
        store
            .write(move |tx| vaults::save(tx, &saved))
            .await
            .unwrap();
        repo_for(&plane, &vault, None).await.unwrap();
        let repo_dir = dir.path().join("vaults").join("v-uid");
        std::fs::remove_dir_all(&repo_dir).unwrap();
        std::fs::write(&repo_dir, b"not a repository").unwrap();

        let t0 = clock.now();
        let (failing, behind) = store
            .write(move |tx| -> Result<(JobRecord, JobRecord)> {
                let first = create_backup_job(tx, backup_spec(A, t0 - Duration::seconds(2)))?;
                let second = create_backup_job(tx, backup_spec(A, t0 - Duration::seconds(1)))?;
                Ok((first, second))
            })
            .await
            .unwrap();
        let load = |key: String| {
            let store = store.clone();
            async move {
                store
                    .read(move |tx| load_job(tx, JobKind::Backup, &key))
                    .await
                    .unwrap()
                    .unwrap()
            }
        };
        let claim_now = |free: usize| {
            let store = store.clone();
            let now = clock.now();
            async move {
                store
                    .write(move |tx| claim(tx, &turn(free, None, now)))
                    .await
                    .unwrap()
                    .jobs
            }
        };
        let run_once = |job: JobRecord| {
            let plane = plane.clone();
            async move {
                let control = plane.running().register(&job.key(), None);
                dataplane::backup::run(&plane, job.clone(), &control).await;
                plane.running().unregister(&job.key());
            }
        };

        for attempt in 1..=MAX_ATTEMPTS {
            let claimed = claim_now(1).await;
            assert_eq!(claimed.len(), 1);
            assert_eq!(claimed[0].id, failing.id, "attempt {attempt}");
            assert_eq!(claimed[0].attempts, attempt);
            let before = clock.now();
            run_once(claimed[0].clone()).await;
            let after = clock.now();
            let j = load(failing.key()).await;
            let message = j.status_message.clone().unwrap_or_default();
            if attempt == MAX_ATTEMPTS {
                assert_eq!(j.state, JobState::Failed, "{message}");
                assert!(
                    message
                        .starts_with("The job failed 3 times; the last error: vault not found: "),
                    "{message}"
                );
                break;
            }
            assert_eq!(j.state, JobState::Created, "{message}");
            assert!(
                message.starts_with(&format!("Attempt {attempt} of 3 failed: vault not found: ")),
                "{message}"
            );
            let next = j.next_attempt.expect("a next attempt time");
            let wait = backoff(attempt);
            assert!(
                next >= before + wait && next <= after + wait,
                "{next} {before}"
            );

            // Before its time the failing job is skipped: the job behind it is claimed (once).
            let claimed = claim_now(2).await;
            let ids: Vec<&str> = claimed.iter().map(|j| j.id.as_str()).collect();
            if attempt == 1 {
                assert_eq!(ids, [behind.id.as_str()]);
            } else {
                assert!(ids.is_empty(), "{ids:?}");
            }
            clock.advance(wait).unwrap();
        }
    }

    /// Queue entries written before the fair queue are rewritten and their jobs still run.
    #[tokio::test(flavor = "multi_thread")]
    async fn legacy_queue_entries_are_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        let t0 = Utc::now() - Duration::minutes(5);
        let job = store
            .write(move |tx| -> Result<JobRecord> {
                let job = create_backup_job(tx, backup_spec(A, t0))?;
                tx.delete(QUEUE, &job.queue_key())?;
                tx.put(QUEUE, &format!("backup:{}", job.key()), b"")?;
                Ok(job)
            })
            .await
            .unwrap();
        let now = Utc::now();
        let (claimed, _) = store
            .write(move |tx| claim_pair(tx, &turn(1, None, now)))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].id, job.id);
        let keys: Vec<String> = store
            .read(|tx| tx.scan(QUEUE, "", None, 10))
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, [job.queue_key()]);
    }
}
