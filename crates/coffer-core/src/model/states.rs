//! The states of jobs and recovery points, as types, and the one place where a job's state
//! may change.
//!
//! Each enum is stored and shown exactly as AWS Backup spells the value (`RUNNING`, `WARM`), so
//! records written before these types existed read back unchanged. A job's move from one state
//! to another is allowed or not by [`JobState::may_become`]; the job store refuses any other
//! write (see `model::jobs::save_job`), so a wrong transition is a bug a test catches rather than
//! a silent write.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A backup, copy or restore job's state (BackupJobState, CopyJobState, RestoreJobStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Waiting to run (backup and copy jobs).
    Created,
    /// Waiting to run (restore jobs).
    Pending,
    Running,
    /// A stop was requested while it ran; the worker is stopping it.
    Aborting,
    Aborted,
    Completed,
    Failed,
    Expired,
    Partial,
}

/// Every job state, for tests and tables.
pub const ALL_JOB_STATES: [JobState; 9] = [
    JobState::Created,
    JobState::Pending,
    JobState::Running,
    JobState::Aborting,
    JobState::Aborted,
    JobState::Completed,
    JobState::Failed,
    JobState::Expired,
    JobState::Partial,
];

impl JobState {
    /// The value AWS Backup uses.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Created => "CREATED",
            JobState::Pending => "PENDING",
            JobState::Running => "RUNNING",
            JobState::Aborting => "ABORTING",
            JobState::Aborted => "ABORTED",
            JobState::Completed => "COMPLETED",
            JobState::Failed => "FAILED",
            JobState::Expired => "EXPIRED",
            JobState::Partial => "PARTIAL",
        }
    }

    /// A job in a terminal state never changes state again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed
                | JobState::Failed
                | JobState::Aborted
                | JobState::Expired
                | JobState::Partial
        )
    }

    /// Waiting in the queue to be claimed.
    pub fn is_waiting(self) -> bool {
        matches!(self, JobState::Created | JobState::Pending)
    }

    /// The states a new job may be stored in: waiting, or already ended (a plan's firing whose
    /// start window had passed, a copy action whose destination cannot be used).
    pub fn may_start_as(self) -> bool {
        self.is_waiting() || matches!(self, JobState::Expired | JobState::Failed)
    }

    /// Whether a job in this state may be saved in state `next`. Saving in the same state
    /// (progress, lease renewal, a restore's validation result) is always allowed.
    pub fn may_become(self, next: JobState) -> bool {
        use JobState::*;
        if self == next {
            return true;
        }
        match self {
            // Claimed, stopped before it started, or its start window ended.
            Created | Pending => matches!(next, Running | Aborted | Expired | Failed),
            // Ends, is asked to stop, or goes back to the queue after a crash.
            Running => matches!(
                next,
                Completed | Partial | Failed | Aborted | Aborting | Expired | Created | Pending
            ),
            // Stops, or ended before the stop was noticed.
            Aborting => matches!(next, Aborted | Failed | Completed | Partial),
            Aborted | Completed | Failed | Expired | Partial => false,
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for JobState {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<String> for JobState {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

/// A recovery point's status (RecoveryPointStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecoveryPointStatus {
    Completed,
    Partial,
    Deleting,
    Expired,
}

impl RecoveryPointStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryPointStatus::Completed => "COMPLETED",
            RecoveryPointStatus::Partial => "PARTIAL",
            RecoveryPointStatus::Deleting => "DELETING",
            RecoveryPointStatus::Expired => "EXPIRED",
        }
    }
}

/// Where a recovery point's data is kept (StorageClass).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StorageClass {
    Warm,
    Cold,
    Deleted,
}

impl StorageClass {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageClass::Warm => "WARM",
            StorageClass::Cold => "COLD",
            StorageClass::Deleted => "DELETED",
        }
    }
}

/// The kind of a job; each kind has its own table and states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum JobKind {
    Backup,
    Copy,
    Restore,
}

impl JobKind {
    pub fn table(self) -> &'static str {
        match self {
            JobKind::Backup => "backup_job",
            JobKind::Copy => "copy_job",
            JobKind::Restore => "restore_job",
        }
    }
    /// The kind's name in queue keys.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Copy => "copy",
            JobKind::Restore => "restore",
        }
    }
    /// The kind a queue key's tag names.
    pub(crate) fn from_tag(tag: &str) -> Option<JobKind> {
        [JobKind::Backup, JobKind::Copy, JobKind::Restore]
            .into_iter()
            .find(|k| k.tag() == tag)
    }

    /// The state of a job waiting to run.
    pub fn waiting_state(self) -> JobState {
        match self {
            JobKind::Restore => JobState::Pending,
            _ => JobState::Created,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_stored_as_aws_spells_them() {
        for s in ALL_JOB_STATES {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
            let back: JobState = serde_json::from_str(&format!("\"{s}\"")).unwrap();
            assert_eq!(back, s);
        }
        assert_eq!(
            serde_json::to_string(&StorageClass::Cold).unwrap(),
            "\"COLD\""
        );
        assert_eq!(
            serde_json::from_str::<RecoveryPointStatus>("\"COMPLETED\"").unwrap(),
            RecoveryPointStatus::Completed
        );
    }

    #[test]
    fn terminal_states_never_change() {
        for from in ALL_JOB_STATES.into_iter().filter(|s| s.is_terminal()) {
            for to in ALL_JOB_STATES.into_iter().filter(|t| *t != from) {
                assert!(!from.may_become(to), "{from} -> {to} must be refused");
            }
        }
    }

    #[test]
    fn the_transitions_jobs_make_are_allowed_and_others_are_not() {
        use JobState::*;
        let allowed = [
            (Created, Running),
            (Pending, Running),
            (Created, Aborted),
            (Created, Expired),
            (Running, Completed),
            (Running, Failed),
            (Running, Aborting),
            (Running, Created),
            (Running, Pending),
            (Aborting, Aborted),
            (Aborting, Completed),
        ];
        for (a, b) in allowed {
            assert!(a.may_become(b), "{a} -> {b}");
        }
        let refused = [
            (Created, Completed),
            (Pending, Aborting),
            (Aborting, Running),
            (Aborting, Created),
            (Completed, Running),
            (Failed, Created),
        ];
        for (a, b) in refused {
            assert!(!a.may_become(b), "{a} -> {b}");
        }
        assert!(Created.may_start_as() && Expired.may_start_as());
        assert!(!Running.may_start_as() && !Completed.may_start_as());
    }
}
