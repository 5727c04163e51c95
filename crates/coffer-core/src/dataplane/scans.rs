//! Running malware scan jobs (the records are `model::scans`) and holding the scan rules.
//!
//! Each runner pass claims waiting scan jobs under a lease (`node/incarnation`, one minute on
//! the wall clock, renewed while the scan runs), at most [`MAX_RUNNING`] at a time in this
//! process, and runs each in its own task: the recovery point's snapshot is read from the vault
//! and every file (for an incremental scan, every file whose content the base point does not
//! hold) evaluated with the current [`ScanRuleSet`] (`coffer_engine::VaultRepo::scan`). A job
//! whose lease belongs to an earlier run of Coffer was cut off by a crash or a restart: it
//! waits again and runs from the start, at most `model::scans::MAX_ATTEMPTS` runs in all. On
//! shutdown a running scan is asked to stop and goes back to CREATED (not counted as an
//! attempt); one still running when the process exits is found by its lease at the next start.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use chrono::{DateTime, Duration, Utc};
use coffer_engine::{CancelToken, ScanRules, SnapshotRef};
use coffer_store::Txn;

use crate::dataplane::{Executor, tiers};
use crate::model::error::Result;
use crate::model::scans::{self, MAX_ATTEMPTS, ScanJobRecord, State};
use crate::model::{recovery_points, vaults};

/// Scans running at once in one process.
pub(crate) const MAX_RUNNING: usize = 2;
/// How long a lease lasts without renewal (wall clock).
const LEASE_SECS: i64 = 60;
/// How often a running scan renews its lease.
const BEAT: std::time::Duration = std::time::Duration::from_secs(5);

/// The rules scans evaluate: the built-in EICAR rule plus the configured rule files
/// (`scan_rules` in the server's configuration), replaced whole when the configuration is
/// re-read. A scan uses the set current when it starts. Cheap to clone.
#[derive(Clone, Default)]
pub struct ScanRuleSet(Arc<RwLock<ScanRules>>);

impl ScanRuleSet {
    /// The rules in force now.
    pub fn current(&self) -> ScanRules {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Compiles the rule files `patterns` name (paths whose file name may hold `*` and `?`)
    /// and puts them in force, with the built-in rule. Returns the files loaded; on an error
    /// (a rule that does not compile, a pattern that names no file) the rules in force stay and
    /// the message names the file and what to fix.
    pub fn load(&self, patterns: &[String]) -> std::result::Result<Vec<PathBuf>, String> {
        let files = expand(patterns)?;
        let rules = ScanRules::load(&files).map_err(|e| e.status_message())?;
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = rules;
        Ok(files)
    }
}

/// The files `patterns` name, sorted within each pattern. A pattern without `*` or `?` must
/// name an existing file; one with them may match none.
pub fn expand(patterns: &[String]) -> std::result::Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in patterns {
        let path = Path::new(p);
        let name = path.file_name().map(|n| n.to_string_lossy().to_string());
        let Some(name) = name.filter(|n| n.contains(['*', '?'])) else {
            if !path.is_file() {
                return Err(format!(
                    "scan rule file {p} does not exist or is not a file"
                ));
            }
            out.push(path.to_path_buf());
            continue;
        };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("scan rules {p}: cannot list {}: {e}", dir.display()))?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| wildcard(&name, &e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

/// Whether `name` matches `pattern` (`*` any run of characters, `?` one character).
fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The scans running in this process (by job key).
fn running() -> &'static Mutex<HashSet<String>> {
    static R: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// Who claims, for leases: `owner` is `node/incarnation`, `node_prefix` is `node/`.
pub(crate) struct Claimer<'a> {
    pub owner: &'a str,
    pub node_prefix: &'a str,
}

/// Sends interrupted scans round again and claims waiting ones into free slots, then runs
/// each claimed job in its own task.
pub(crate) async fn process_scans(plane: &Executor, who: &Claimer<'_>) -> Result<()> {
    let mine: HashSet<String> = running().lock().unwrap_or_else(|e| e.into_inner()).clone();
    let free = MAX_RUNNING.saturating_sub(mine.len());
    let (owner, prefix) = (who.owner.to_string(), who.node_prefix.to_string());
    let (now, wall) = (plane.clock().now(), Utc::now());
    let claimed = plane
        .store()
        .write(move |tx| claim(tx, &owner, &prefix, &mine, free, now, wall))
        .await?;
    for job in claimed {
        running()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.key());
        let (plane, owner) = (plane.clone(), who.owner.to_string());
        tokio::spawn(async move {
            let key = job.key();
            if let Err(e) = run(&plane, job, &owner).await {
                tracing::warn!(scan_job = %key, error = %coffer_api::error_chain(&e.0), "a scan job could not be recorded; its lease runs out and it runs again");
            }
            running()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
            plane.running().wake();
        });
    }
    Ok(())
}

/// One transaction: settles interrupted jobs and claims up to `free` waiting ones.
fn claim(
    tx: &mut dyn Txn,
    owner: &str,
    prefix: &str,
    mine: &HashSet<String>,
    free: usize,
    now: DateTime<Utc>,
    wall: DateTime<Utc>,
) -> Result<Vec<ScanJobRecord>> {
    let mut jobs = scans::work(tx)?;
    jobs.sort_by_key(|j| j.creation_date);
    let mut claimed = Vec::new();
    for mut job in jobs {
        if job.state == State::Running {
            let ours_now = job.lease_owner.as_deref() == Some(owner) && mine.contains(&job.key());
            let orphaned = job.lease_owner.as_deref().is_some_and(|o| {
                (o.starts_with(prefix) && o != owner) || (o == owner && !mine.contains(&job.key()))
            }) || job.lease_until.is_none_or(|u| u < wall);
            if ours_now || !orphaned {
                continue;
            }
            if job.attempts >= MAX_ATTEMPTS {
                job.fail(
                    format!("Coffer was interrupted {MAX_ATTEMPTS} times while this scan ran; the scan was given up."),
                    now,
                );
                scans::save(tx, &job)?;
                continue;
            }
            job.state = State::Created;
            job.lease_owner = None;
            job.lease_until = None;
            job.status_message = Some(format!(
                "Coffer was interrupted during attempt {} of {MAX_ATTEMPTS}; the scan runs again.",
                job.attempts
            ));
            scans::save(tx, &job)?;
        }
        if job.state == State::Created && claimed.len() < free {
            job.state = State::Running;
            job.attempts += 1;
            job.scan_id = Some(uuid::Uuid::new_v4().to_string());
            job.lease_owner = Some(owner.to_string());
            job.lease_until = Some(wall + Duration::seconds(LEASE_SECS));
            scans::save(tx, &job)?;
            claimed.push(job);
        }
    }
    Ok(claimed)
}

/// What one scan came to.
enum Outcome {
    Done(coffer_engine::ScanReport),
    Failed(String),
    /// Shut down while it ran: back to CREATED.
    Stopped,
}

/// Runs one claimed job with its lease heartbeat, and records how it ended.
async fn run(plane: &Executor, job: ScanJobRecord, owner: &str) -> Result<()> {
    tracing::info!(scan_job = %job.id, recovery_point = %job.rp_arn, mode = %job.mode, attempt = job.attempts, "scan job started");
    let cancel = CancelToken::new();
    let beat = tokio::spawn(heartbeat(
        plane.clone(),
        job.key(),
        owner.to_string(),
        cancel.clone(),
    ));
    let outcome = scan(plane, &job, cancel).await;
    beat.abort();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) if e.is_client_error() => Outcome::Failed(e.0.message().to_string()),
        Err(e) => return Err(e),
    };
    finish(plane, &job, owner, outcome).await
}

/// Reads the recovery point (and the base) and evaluates the rules over its files.
async fn scan(plane: &Executor, job: &ScanJobRecord, cancel: CancelToken) -> Result<Outcome> {
    let (a, r, arn, base) = (
        job.account.clone(),
        job.region.clone(),
        job.rp_arn.clone(),
        job.base_rp_arn.clone(),
    );
    let found = plane
        .store()
        .read(move |tx| -> Result<_> {
            let rp = recovery_points::find(tx, &a, &r, &arn)?;
            let base = match base {
                Some(b) => Some(recovery_points::find(tx, &a, &r, &b)?),
                None => None,
            };
            Ok((rp, base))
        })
        .await;
    let (rp, base) = match found {
        Ok(f) => f,
        Err(e) if e.is_client_error() => {
            return Ok(Outcome::Failed(format!(
                "The recovery point to scan (or its base) no longer exists: {}",
                e.0.message()
            )));
        }
        Err(e) => return Err(e),
    };
    let Some(vault) = vaults::find(plane, &rp.account, &rp.region, &rp.vault_name).await? else {
        return Ok(Outcome::Failed(format!(
            "The backup vault '{}' no longer exists.",
            rp.vault_name
        )));
    };
    let repo = tiers::repo_holding(plane, &vault, &rp).await?;
    // An incremental scan compares with its base in the same repository; a base kept in
    // another tier makes it a full scan.
    let base_snapshot: Option<SnapshotRef> = base.filter(|b| b.tier == rp.tier).map(|b| b.snapshot);
    let rules = plane.scan_rules().current();
    match repo
        .scan_async(rp.snapshot.clone(), base_snapshot, rules, cancel)
        .await
    {
        Ok(report) => Ok(Outcome::Done(report)),
        Err(coffer_engine::Error::Cancelled) => Ok(Outcome::Stopped),
        Err(e) => Ok(Outcome::Failed(format!(
            "The recovery point's files could not be read: {}",
            e.status_message()
        ))),
    }
}

/// Renews the lease while the scan runs, and stops the scan when Coffer shuts down.
async fn heartbeat(plane: Executor, key: String, owner: String, cancel: CancelToken) {
    loop {
        tokio::time::sleep(BEAT).await;
        if plane.running().is_shutting_down() {
            cancel.cancel();
        }
        let (k, o) = (key.clone(), owner.clone());
        let renewed = plane
            .store()
            .write(move |tx| -> Result<()> {
                if let Some(mut j) = scans::get(tx, &k)?
                    && j.state == State::Running
                    && j.lease_owner.as_deref() == Some(o.as_str())
                {
                    j.lease_until = Some(Utc::now() + Duration::seconds(LEASE_SECS));
                    scans::save(tx, &j)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = renewed {
            tracing::warn!(scan_job = %key, error = %coffer_api::error_chain(&e.0), "renewing a scan job's lease failed");
        }
    }
}

/// Records the outcome, if the job is still this run's.
async fn finish(
    plane: &Executor,
    job: &ScanJobRecord,
    owner: &str,
    outcome: Outcome,
) -> Result<()> {
    let now = plane.clock().now();
    let (key, o) = (job.key(), owner.to_string());
    let ended = plane
        .store()
        .write(move |tx| -> Result<Option<ScanJobRecord>> {
            let Some(mut j) = scans::get(tx, &key)? else {
                return Ok(None);
            };
            if j.state != State::Running || j.lease_owner.as_deref() != Some(o.as_str()) {
                return Ok(None);
            }
            match outcome {
                Outcome::Done(report) => j.complete(report, now),
                Outcome::Failed(m) => j.fail(m, now),
                Outcome::Stopped => {
                    j.state = State::Created;
                    j.attempts = j.attempts.saturating_sub(1);
                    j.lease_owner = None;
                    j.lease_until = None;
                    j.status_message = Some(
                        "Coffer stopped while this scan ran; it runs again when Coffer starts."
                            .into(),
                    );
                }
            }
            scans::save(tx, &j)?;
            Ok(Some(j))
        })
        .await?;
    if let Some(j) = ended {
        log_end(&j);
    }
    Ok(())
}

fn log_end(j: &ScanJobRecord) {
    let status = j.status_message.as_deref().unwrap_or_default();
    match (j.state, &j.result) {
        (State::Completed, Some(coffer_api::types::ScanResultStatus::ThreatsFound)) => {
            let findings = j.report.as_ref().map_or(String::new(), |r| {
                r.findings
                    .iter()
                    .map(|f| format!("{} ({})", f.path, f.rules.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            tracing::warn!(scan_job = %j.id, recovery_point = %j.rp_arn, %findings, "scan job found threats");
        }
        (State::Completed, _) => {
            tracing::info!(scan_job = %j.id, recovery_point = %j.rp_arn, %status, "scan job completed");
        }
        (State::Created, _) => {
            tracing::info!(scan_job = %j.id, "scan job handed back to the queue");
        }
        _ => {
            tracing::warn!(scan_job = %j.id, recovery_point = %j.rp_arn, state = ?j.state, %status, "scan job ended");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, state: State, owner: Option<&str>, attempts: u32, secs: i64) -> ScanJobRecord {
        let at = DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap();
        ScanJobRecord {
            account: "111122223333".into(),
            region: "us-east-1".into(),
            id: id.into(),
            vault_name: "v".into(),
            vault_arn: "arn:aws:backup:us-east-1:111122223333:backup-vault:v".into(),
            rp_arn: "arn:aws:backup:us-east-1:111122223333:recovery-point:rp".into(),
            resource_arn: "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs".into(),
            resource_name: "fs".into(),
            resource_type: "EFS".into(),
            iam_role_arn: "r".into(),
            scanner_role_arn: "s".into(),
            mode: coffer_api::types::ScanMode::FullScan,
            base_rp_arn: None,
            created_by: None,
            creation_date: at,
            completion_date: None,
            state,
            status_message: None,
            result: None,
            report: None,
            scan_id: None,
            attempts,
            lease_owner: owner.map(str::to_string),
            lease_until: owner.map(|_| Utc::now() + Duration::seconds(60)),
            token: None,
        }
    }

    /// A job leased by an earlier incarnation of this node runs again (attempts counted, given
    /// up after the last); another node's live lease is left alone; free slots go oldest first.
    #[tokio::test(flavor = "multi_thread")]
    async fn claims_settle_interrupted_jobs_and_respect_live_leases() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            coffer_store::StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        let now = Utc::now();
        let claimed = store
            .write(move |tx| -> Result<Vec<ScanJobRecord>> {
                for j in [
                    job("A", State::Running, Some("n1/old"), 1, 1),
                    job("B", State::Running, Some("n2/x"), 1, 2),
                    job("C", State::Running, Some("n1/old"), MAX_ATTEMPTS, 3),
                    job("D", State::Created, None, 0, 4),
                ] {
                    scans::save(tx, &j)?;
                }
                claim(tx, "n1/new", "n1/", &HashSet::new(), 1, now, Utc::now())
            })
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].id, "A");
        assert_eq!(claimed[0].attempts, 2);
        assert_eq!(claimed[0].lease_owner.as_deref(), Some("n1/new"));
        assert!(
            claimed[0]
                .status_message
                .as_deref()
                .unwrap()
                .contains("interrupted during attempt 1")
        );
        let get = |id: &'static str| {
            let store = store.clone();
            async move {
                store
                    .read(move |tx| scans::get(tx, &scans::key("111122223333", "us-east-1", id)))
                    .await
                    .unwrap()
                    .unwrap()
            }
        };
        assert_eq!(get("B").await.lease_owner.as_deref(), Some("n2/x"));
        assert_eq!(get("B").await.state, State::Running);
        let c = get("C").await;
        assert_eq!(c.state, State::Failed);
        assert!(c.status_message.unwrap().contains("interrupted 3 times"));
        assert_eq!(get("D").await.state, State::Created);
        let work = store.read(scans::work).await.unwrap();
        let mut ids: Vec<_> = work.into_iter().map(|j| j.id).collect();
        ids.sort();
        assert_eq!(ids, ["A", "B", "D"], "the ended job left the work list");
    }

    #[test]
    fn wildcards_match_file_names() {
        assert!(wildcard("*.yar", "a.yar"));
        assert!(wildcard("rule?.yar", "rule1.yar"));
        assert!(!wildcard("*.yar", "a.yara"));
        assert!(wildcard("*", ""));
        assert!(!wildcard("a*b", "ac"));
    }

    #[test]
    fn patterns_expand_to_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yar"), "").unwrap();
        std::fs::write(dir.path().join("a.yar"), "").unwrap();
        std::fs::write(dir.path().join("c.txt"), "").unwrap();
        let p = format!("{}/*.yar", dir.path().display());
        let files = expand(&[p]).unwrap();
        assert_eq!(
            files,
            vec![dir.path().join("a.yar"), dir.path().join("b.yar")]
        );
        let missing = format!("{}/none.yar", dir.path().display());
        assert!(expand(&[missing]).unwrap_err().contains("does not exist"));
    }
}
