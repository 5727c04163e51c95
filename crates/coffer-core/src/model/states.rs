//! The states of jobs and recovery points, as types, and the one place where a job's state
//! may change.
//!
//! Each enum is stored and shown exactly as AWS Backup spells the value (`RUNNING`, `WARM`), so
//! records written before these types existed read back unchanged. A job's move from one state
//! to another is allowed or not by [`JobState::may_become`]; the job store refuses any other
//! write (see `model::jobs::save_job`), so a wrong transition is a bug a test catches rather than
//! a silent write.
//!
//! Each type converts into the generated enum of every API member that shows it
//! (`JobState` -> `BackupJobState`, `CopyJobState`, `RestoreJobStatus`, ...), variant by
//! variant, and back from the filters that name one, so handlers never spell a state.

use std::fmt;

use coffer_api::types as wire;
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
    pub const ALL: [JobState; 9] = ALL_JOB_STATES;

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

/// Ordered by AWS's spelling, so that rows grouped by state (job summaries) come alphabetically.
impl Ord for JobState {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for JobState {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
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
    pub const ALL: [RecoveryPointStatus; 4] = [
        RecoveryPointStatus::Completed,
        RecoveryPointStatus::Partial,
        RecoveryPointStatus::Deleting,
        RecoveryPointStatus::Expired,
    ];

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
    pub const ALL: [StorageClass; 3] = [
        StorageClass::Warm,
        StorageClass::Cold,
        StorageClass::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StorageClass::Warm => "WARM",
            StorageClass::Cold => "COLD",
            StorageClass::Deleted => "DELETED",
        }
    }
}

/// A storage tier other than a vault's own repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Where MoveToColdStorageAfterDays sends a point (StorageClass COLD).
    Cold,
    /// Where tiering configurations send S3 points (StorageClass stays WARM, as in AWS).
    LowCost,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Cold => "cold",
            Tier::LowCost => "low_cost",
        }
    }
}

/// A core state read from a value of a generated enum (a List* filter, an API output), if the
/// core type has that state; an `Unknown` value that [`From`] made (a copy job's `ABORTED`) reads
/// back as the state it shows.
pub trait FromWire<W>: Sized {
    fn from_wire(value: &W) -> Option<Self>;
}

/// Converts a core state into the generated enum `$wire` of an API member, variant by variant,
/// and a value of `$wire` back into the core state. A core state the shape does not list (a copy
/// job that was ABORTED: CopyJobState has no such value) is shown as `Unknown` with AWS's
/// spelling, exactly as it is stored, and reads back as that state; a `$wire` value the core
/// type lacks reads back as `None`.
macro_rules! shown_as {
    ($core:ident => $wire:ident: $($variant:ident),+) => {
        impl From<$core> for wire::$wire {
            #[allow(unreachable_patterns)]
            fn from(state: $core) -> Self {
                match state {
                    $($core::$variant => wire::$wire::$variant,)+
                    other => wire::$wire::Unknown(other.as_str().to_owned()),
                }
            }
        }

        impl FromWire<wire::$wire> for $core {
            fn from_wire(value: &wire::$wire) -> Option<$core> {
                match value {
                    $(wire::$wire::$variant => Some($core::$variant),)+
                    other => $core::ALL.into_iter().find(|c| c.as_str() == other.as_str()),
                }
            }
        }
    };
}

shown_as!(JobState => BackupJobState:
    Created, Pending, Running, Aborting, Aborted, Completed, Failed, Expired, Partial);
shown_as!(JobState => CopyJobState: Created, Running, Completed, Failed, Partial);
shown_as!(JobState => RestoreJobStatus: Pending, Running, Completed, Aborted, Failed);
shown_as!(JobState => BackupJobStatus:
    Created, Pending, Running, Aborting, Aborted, Completed, Failed, Expired, Partial);
shown_as!(JobState => CopyJobStatus: Created, Running, Aborting, Aborted, Completed, Failed, Partial);
shown_as!(JobState => RestoreJobState: Created, Pending, Running, Aborted, Completed, Failed);
shown_as!(RecoveryPointStatus => RecoveryPointStatus: Completed, Partial, Deleting, Expired);
shown_as!(StorageClass => StorageClass: Warm, Cold, Deleted);

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

    /// A core value shown as `W` keeps its AWS spelling, is `Unknown` exactly when `W` does not
    /// list it, and reads back from `W` as itself.
    fn shown_as<C, W>(core: C, spelled: &str)
    where
        C: Copy + PartialEq + fmt::Debug + FromWire<W>,
        W: coffer_api::ModelEnum + From<C>,
    {
        let shown = <W as From<C>>::from(core);
        assert_eq!(shown.as_str(), spelled, "{}", W::SHAPE);
        assert_eq!(
            shown.is_known(),
            W::VALUES.contains(&spelled),
            "{}",
            W::SHAPE
        );
        assert_eq!(C::from_wire(&shown), Some(core), "{}", W::SHAPE);
        let outside = <W as From<&str>>::from("NOT_A_STATE");
        assert_eq!(C::from_wire(&outside), None, "{}", W::SHAPE);
    }

    #[test]
    fn states_convert_to_the_api_enums_by_their_aws_spelling() {
        for s in ALL_JOB_STATES {
            shown_as::<_, wire::BackupJobState>(s, s.as_str());
            shown_as::<_, wire::CopyJobState>(s, s.as_str());
            shown_as::<_, wire::RestoreJobStatus>(s, s.as_str());
            shown_as::<_, wire::BackupJobStatus>(s, s.as_str());
            shown_as::<_, wire::CopyJobStatus>(s, s.as_str());
            shown_as::<_, wire::RestoreJobState>(s, s.as_str());
            assert!(wire::BackupJobState::from(s).is_known());
        }
        for p in RecoveryPointStatus::ALL {
            shown_as::<_, wire::RecoveryPointStatus>(p, p.as_str());
            assert!(wire::RecoveryPointStatus::from(p).is_known());
        }
        for c in StorageClass::ALL {
            shown_as::<_, wire::StorageClass>(c, c.as_str());
            assert!(wire::StorageClass::from(c).is_known());
        }
        assert_eq!(
            wire::CopyJobState::from(JobState::Aborted),
            wire::CopyJobState::Unknown("ABORTED".into())
        );
        assert_eq!(
            JobState::from_wire(&wire::RestoreJobStatus::Unknown("X".into())),
            None
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
