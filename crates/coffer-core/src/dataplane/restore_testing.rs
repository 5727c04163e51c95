//! The data-plane side of restore testing: checking what a restore test restored, and
//! deleting its scratch data when its validation window ends.
//!
//! [`validate`] compares every file the restore wrote with the recovery point as the vault
//! holds it (its snapshot tree and content blobs, `VaultRepo::compare_restored`), never with
//! the resource that was backed up, and gives the job's ValidationStatus and message.
//! [`sweep`] deletes the scratch directory of every restore test that is due (see
//! `model::restore_testing::deletion_due`) and records DeletionStatus on its job.

use std::path::Path;

use chrono::{DateTime, Utc};
use coffer_api::types::{RestoreDeletionStatus, RestoreValidationStatus};
use coffer_engine::{CancelToken, VaultRepo};

use crate::dataplane::Executor;
use crate::model::error::Result;
use crate::model::jobs::{JobKind, JobRecord, load_job, save_job};
use crate::model::paging::scan_all;
use crate::model::recovery_points::RecoveryPointRecord;
use crate::model::restore_testing::{TESTS, TestRecord, deletion_due};
use crate::model::states::JobState;

/// Compares the restore in `target` with `rp` (see the module comment).
pub(crate) async fn validate(
    repo: &VaultRepo,
    rp: &RecoveryPointRecord,
    target: &Path,
    cancel: CancelToken,
) -> (RestoreValidationStatus, String) {
    let outcome = repo
        .compare_restored_async(rp.snapshot.clone(), target.to_path_buf(), cancel)
        .await;
    match outcome {
        Ok(r) if r.is_ok() => (
            RestoreValidationStatus::Successful,
            format!(
                "Coffer compared the {} restored files ({} bytes) with recovery point {}: every file's size and content match.",
                r.files, r.bytes, rp.id
            ),
        ),
        Ok(r) => (
            RestoreValidationStatus::Failed,
            format!(
                "The restore does not match recovery point {} ({} of {} files checked differ or are missing): {}",
                rp.id,
                r.problems.len(),
                r.files,
                r.problems.join("; ")
            ),
        ),
        Err(e) => (
            RestoreValidationStatus::Failed,
            format!(
                "Coffer could not read recovery point {} to compare the restore with it: {}",
                rp.id,
                e.status_message()
            ),
        ),
    }
}

/// What one sweep did, and when the next restore test is due for deletion.
#[derive(Debug, Default)]
pub(crate) struct Swept {
    pub deleted: usize,
    pub next: Option<DateTime<Utc>>,
}

/// Removes a restore test's scratch directory, which must lie in `root`. Returns the
/// DeletionStatus and its message.
fn remove_scratch(root: &Path, scratch: &Path) -> (RestoreDeletionStatus, String) {
    if scratch.parent() != Some(root) {
        return (
            RestoreDeletionStatus::Failed,
            format!(
                "Coffer did not delete {}: it is not a restore test directory under {}.",
                scratch.display(),
                root.display()
            ),
        );
    }
    match std::fs::remove_dir_all(scratch) {
        Ok(()) => (
            RestoreDeletionStatus::Successful,
            format!("The restored data in {} was deleted.", scratch.display()),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            RestoreDeletionStatus::Successful,
            format!(
                "The restore wrote nothing to keep: {} does not exist.",
                scratch.display()
            ),
        ),
        Err(e) => (
            RestoreDeletionStatus::Failed,
            format!("Coffer could not delete {}: {e}", scratch.display()),
        ),
    }
}

/// Deletes the scratch data of every restore test due by `now`; returns how many and the
/// next due time of those left.
pub(crate) async fn sweep(plane: &Executor, now: DateTime<Utc>) -> Result<Swept> {
    let Ok(storage) = plane.storage() else {
        return Ok(Swept::default());
    };
    let root = storage.scratch_dir();
    let tests = plane
        .store()
        .read(|tx| -> Result<Vec<(TestRecord, Option<JobRecord>)>> {
            let mut out = Vec::new();
            for (_, v) in scan_all(tx, TESTS, "")? {
                let t: TestRecord = serde_json::from_slice(&v)?;
                let job = load_job(tx, JobKind::Restore, &t.job_key)?;
                out.push((t, job));
            }
            Ok(out)
        })
        .await?;
    let mut swept = Swept::default();
    for (test, job) in tests {
        let due = job.as_ref().map_or(Some(now), |j| deletion_due(&test, j));
        match due {
            Some(d) if d <= now => {
                let (status, message) = remove_scratch(&root, &test.scratch);
                record_deletion(plane, test, status, message).await?;
                swept.deleted += 1;
            }
            Some(d) => swept.next = Some(swept.next.map_or(d, |n| n.min(d))),
            None => {}
        }
    }
    Ok(swept)
}

/// Records a restore test's deletion on its job and forgets the test. A validation still
/// open when the window closed is TIMED_OUT.
async fn record_deletion(
    plane: &Executor,
    test: TestRecord,
    status: RestoreDeletionStatus,
    message: String,
) -> Result<()> {
    let failed = status == RestoreDeletionStatus::Failed;
    let job_key = test.job_key.clone();
    plane
        .store()
        .write(move |tx| -> Result<()> {
            if let Some(mut j) = load_job(tx, JobKind::Restore, &test.job_key)? {
                let open = matches!(
                    j.validation_status,
                    None | Some(RestoreValidationStatus::Validating)
                );
                if j.state == JobState::Completed && open {
                    j.validation_status = Some(RestoreValidationStatus::TimedOut);
                    j.validation_status_message = Some(format!(
                        "No validation result was recorded within the {}-hour validation window.",
                        test.validation_window_hours
                    ));
                }
                j.deletion_status = Some(status.clone());
                j.deletion_status_message = Some(message.clone());
                save_job(tx, &j)?;
            }
            if !failed {
                tx.delete(TESTS, &test.job_key)?;
            }
            Ok(())
        })
        .await?;
    if failed {
        tracing::warn!(job = %job_key, "a restore test's scratch data could not be deleted; Coffer tries again");
    }
    Ok(())
}
