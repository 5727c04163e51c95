//! Running the backup job of a composite resource (a CloudFormation stack declared with
//! `members`): each member is backed up into the vault's repository as its own snapshot, and
//! one transaction then records the parent recovery point (IsParent, no snapshot of its own)
//! with one nested point per member (ParentRecoveryPointArn, CompositeMemberIdentifier: the
//! member's name) and completes the job. If any member cannot be read, the snapshots already
//! written are removed and the job ends without a recovery point, so a composite is recorded
//! whole or not at all. Records and rules are in `model::composite`.

use chrono::{DateTime, Utc};
use coffer_engine::{BackupOutcome, SnapshotRef, VaultRepo};

use crate::dataplane::backup::{complete, locate, recovery_point, refusal, source_of};
use crate::dataplane::jobs::{JobControl, engine_stopped, failed, finish};
use crate::dataplane::{Executor, storage};
use crate::model::arn;
use crate::model::error::Result;
use crate::model::inventory::{Resource, SourceKind};
use crate::model::jobs::JobRecord;
use crate::model::recovery_points::{self, Membership, RecoveryPointRecord};
use crate::model::states::JobState;
use crate::model::vaults::VaultRecord;

/// Whether `job` backs up a composite resource (as the inventory declares it now).
pub(crate) fn groups(plane: &Executor, job: &JobRecord) -> bool {
    plane
        .inventory()
        .get(&job.resource_arn)
        .is_some_and(|r| r.kind == SourceKind::Composite)
}

pub(crate) async fn run(plane: &Executor, job: JobRecord, control: &JobControl) {
    if let Err(e) = run_inner(plane, &job, control).await {
        failed(plane, &job, &e).await;
    }
}

/// One member backed up: its resource, its nested point's id, what the engine wrote.
struct Nested {
    member: Resource,
    id: String,
    outcome: BackupOutcome,
}

async fn run_inner(plane: &Executor, job: &JobRecord, control: &JobControl) -> Result<()> {
    let Some((resource, vault)) = locate(plane, job).await? else {
        return Ok(());
    };
    if let Some(message) = refusal(&vault, job) {
        finish(plane, job, JobState::Failed, Some(message), "FAILED").await;
        return Ok(());
    }
    let members = match members_of(plane, &resource, job) {
        Ok(m) => m,
        Err(message) => {
            finish(plane, job, JobState::Failed, Some(message), "FAILED").await;
            return Ok(());
        }
    };
    let repo = storage::repo_for(plane, &vault, None).await?;
    let mut done: Vec<Nested> = Vec::new();
    for member in members {
        match back_up_member(plane, job, &vault, &repo, &member, control).await? {
            Ok(n) => done.push(n),
            Err(e) => {
                discard(plane, &repo, &done).await;
                tracing::info!(job = %job.id, member = %member.arn, error = %e, "a composite backup ended without a recovery point");
                engine_stopped(plane, job, control, &e, JobState::Aborted).await;
                return Ok(());
            }
        }
    }
    let now = plane.clock().now();
    let (parent, children, total) = records(job, &vault, &resource, &done, now);
    if let Err(e) = complete(plane, job, parent, children, &total, now).await {
        discard(plane, &repo, &done).await;
        failed(plane, job, &e).await;
    }
    Ok(())
}

/// The member resources of `resource`, each a directory tree or a stream of the job's
/// account and region in the inventory; the message says which one is not.
fn members_of(
    plane: &Executor,
    resource: &Resource,
    job: &JobRecord,
) -> std::result::Result<Vec<Resource>, String> {
    resource
        .members
        .iter()
        .map(|arn| match plane.inventory().get(arn) {
            Some(m)
                if m.kind != SourceKind::Composite
                    && m.account == job.account
                    && m.region == job.region =>
            {
                Ok(m)
            }
            _ => Err(format!(
                "Member {arn} of composite resource {} is not a directory tree or volume of Coffer's inventory in this account and region; declare it under [[resources]].",
                resource.arn
            )),
        })
        .collect()
}

/// Backs one member up as a nested point, with its latest point in the vault as parent.
async fn back_up_member(
    plane: &Executor,
    job: &JobRecord,
    vault: &VaultRecord,
    repo: &VaultRepo,
    member: &Resource,
    control: &JobControl,
) -> Result<std::result::Result<Nested, coffer_engine::Error>> {
    let previous = recovery_points::latest_for_resource(
        plane,
        &job.account,
        &job.region,
        &vault.name,
        &member.arn,
    )
    .await?
    .filter(|p| p.vault_uid == vault.uid && p.tier.is_none())
    .map(|p| p.snapshot);
    let source = match source_of(member) {
        Ok(Some(source)) => source,
        Ok(None) => {
            return Ok(Err(coffer_engine::Error::InvalidInput(format!(
                "member {} is itself a composite",
                member.arn
            ))));
        }
        Err(e) => return Ok(Err(e)),
    };
    let id = uuid::Uuid::new_v4().to_string();
    let tags = vec![
        format!("resource:{}", member.arn),
        format!(
            "composite:{}",
            job.recovery_point_id.as_deref().unwrap_or_default()
        ),
    ];
    let (observer, cancel) = (control.observer(), control.cancel.clone());
    Ok(repo
        .backup_async(source, id.clone(), previous, tags, observer, cancel)
        .await
        .map(|outcome| Nested {
            member: member.clone(),
            id,
            outcome,
        }))
}

/// Removes the snapshots of a composite that will not be recorded.
async fn discard(plane: &Executor, repo: &VaultRepo, done: &[Nested]) {
    for n in done {
        let _ = crate::dataplane::storage::remove_snapshot(
            plane,
            repo,
            SnapshotRef(n.outcome.snapshot.0.clone()),
        )
        .await;
    }
}

/// The parent point, its nested points, and the job's totals over them.
fn records(
    job: &JobRecord,
    vault: &VaultRecord,
    resource: &Resource,
    done: &[Nested],
    now: DateTime<Utc>,
) -> (RecoveryPointRecord, Vec<RecoveryPointRecord>, BackupOutcome) {
    let mut total = BackupOutcome {
        snapshot: SnapshotRef(String::new()),
        bytes_added: 0,
        bytes_stored: 0,
        total_bytes: 0,
        files: 0,
        files_new: 0,
        files_changed: 0,
        files_unmodified: 0,
        warnings: Vec::new(),
    };
    let mut children = Vec::new();
    let parent_arn = job.recovery_point_arn.clone().unwrap_or_default();
    for n in done {
        let o = &n.outcome;
        total.bytes_added += o.bytes_added;
        total.bytes_stored += o.bytes_stored;
        total.total_bytes += o.total_bytes;
        total.files += o.files;
        total.files_new += o.files_new;
        total.files_changed += o.files_changed;
        total.files_unmodified += o.files_unmodified;
        total.warnings.extend(o.warnings.iter().cloned());
        let mut child = recovery_point(job, vault, &n.member, o, now);
        child.id = n.id.clone();
        child.arn = arn::recovery_point(&job.region, &job.account, &n.id);
        child.resource_arn = n.member.arn.clone();
        child.resource_type = n.member.resource_type.clone();
        child.resource_name = Some(n.member.name.clone());
        child.composite = Membership {
            is_parent: false,
            parent_arn: Some(parent_arn.clone()),
            member_id: Some(n.member.name.clone()),
        };
        children.push(child);
    }
    let mut parent = recovery_point(job, vault, resource, &total, now);
    parent.source_path = None;
    parent.composite = Membership {
        is_parent: true,
        parent_arn: None,
        member_id: None,
    };
    (parent, children, total)
}
