//! Restore access backup vaults and approval teams: CreateRestoreAccessBackupVault,
//! ListRestoreAccessBackupVaults, RevokeRestoreAccessBackupVault,
//! AssociateBackupVaultMpaApprovalTeam, DisassociateBackupVaultMpaApprovalTeam, and the
//! approvals that members of a team give through Coffer's own endpoint.
//!
//! Every step (request, each approval, the decision, expiry, revocation, team change) is one
//! store transaction that also writes the step to the approval team's SNS topic through the
//! outbox, and is logged at INFO once committed. Records and rules are in
//! `model::approvals` (teams, sessions) and `model::restore_access` (vaults, access). See
//! docs/vaults.md, "Restore access and approval teams".

use chrono::{DateTime, Utc};
use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};
use coffer_store::Txn;

use crate::control::vaults::new_record;
use crate::dataplane::Executor;
use crate::model::approvals::{
    self, ApprovalTeamEntry, ApprovalTeams, Request, SessionRecord, SessionView, Vote,
};
use crate::model::error::Result;
use crate::model::events::{self, Notice};
use crate::model::restore_access::{link, of_source, settle, unlink};
use crate::model::vaults::{self, RestoreAccessLink, TeamUpdate, VaultRecord};
use crate::model::{Meta, arn, paging, tags};

/// Writes a step of session `s` to its team's SNS topic (when the team has one), in the
/// caller's transaction. The event is named `step`; AWS Backup has no vault event for these.
fn publish(
    tx: &mut dyn Txn,
    team: Option<&ApprovalTeamEntry>,
    s: &SessionRecord,
    step: &str,
    message: String,
    now: DateTime<Utc>,
) -> Result<()> {
    let Some(topic) = team.and_then(|t| t.sns_topic_arn.as_deref()) else {
        return Ok(());
    };
    let (account, vault) = arn::parse(&s.subject_vault_arn)
        .map(|a| {
            let name = a
                .resource
                .strip_prefix("backup-vault:")
                .unwrap_or(a.resource);
            (a.account.to_string(), name.to_string())
        })
        .unwrap_or_default();
    let notice = Notice {
        event_type: "MPA_SESSION",
        state: s.status.as_str().to_string(),
        id: s.id.clone(),
        start_time: s.initiated,
        at: now,
        message: format!("{message} Session ARN: {}.", s.arn),
    };
    let event = BackupVaultEvent::Unknown(step.to_string());
    events::enqueue(tx, topic, &account, &s.region, &vault, &event, &notice)?;
    Ok(())
}

/// The (account, region, name) of a backup vault ARN, or InvalidParameterValueException
/// naming `field`.
fn vault_arn_parts(field: &str, value: &str) -> Result<(String, String, String)> {
    arn::parse(value)
        .filter(|a| a.service == "backup" && !a.account.is_empty())
        .and_then(|a| {
            let name = a.resource.strip_prefix("backup-vault:")?;
            (!name.is_empty()).then(|| (a.account.to_string(), a.region.to_string(), name.to_string()))
        })
        .ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "{field} '{value}' is not a backup vault ARN (arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME)."
            ))
            .into()
        })
}

/// The configured team of `team_arn`, or InvalidRequestException saying what to do.
fn configured(teams: &ApprovalTeams, team_arn: &str) -> Result<ApprovalTeamEntry> {
    teams.get(team_arn).ok_or_else(|| {
        ApiError::invalid_request(format!(
            "Approval team {team_arn} is not configured on this Coffer; declare it in [[approval_teams]] of the configuration file."
        ))
        .into()
    })
}

pub(crate) async fn create(
    plane: &Executor,
    ctx: &RequestContext,
    input: CreateRestoreAccessBackupVaultInput,
) -> Result<CreateRestoreAccessBackupVaultOutput> {
    let source = vault_arn_parts("SourceBackupVaultArn", &input.source_backup_vault_arn)?;
    if source.1 != ctx.region {
        return Err(ApiError::invalid_parameter(format!(
            "SourceBackupVaultArn '{}' is in region {}; create the restore access backup vault in the source vault's region.",
            input.source_backup_vault_arn, source.1
        ))
        .into());
    }
    let initial_tags = input.backup_vault_tags.clone().unwrap_or_default();
    tags::check_initial(&initial_tags)?;
    let name = input.backup_vault_name.clone().unwrap_or_else(|| {
        let id = uuid::Uuid::new_v4().simple().to_string();
        format!("restore-access-{}", &id[..12])
    });
    let teams = plane.approval_teams().clone();
    let now = plane.clock().now();
    let ctx2 = ctx.clone();
    let (v, session) = plane
        .store()
        .write(move |tx| create_in(tx, &teams, &ctx2, source, &name, input, initial_tags, now))
        .await?;
    if let Some(s) = &session {
        tracing::info!(vault = %v.arn, source = %s.subject_vault_arn, session = %s.arn, team = %s.team_arn, requester = %s.requester_account, approvals_required = s.required, "restore access requested; awaiting approval");
    }
    Ok(CreateRestoreAccessBackupVaultOutput {
        creation_date: Some(Timestamp(v.creation_date)),
        restore_access_backup_vault_arn: Some(v.arn.clone()),
        restore_access_backup_vault_name: Some(v.name.clone()),
        vault_state: v.mpa.restore_access.as_ref().map(|l| l.state_at(now)),
    })
}

/// CreateRestoreAccessBackupVault's transaction: the source must be an air-gapped vault with
/// a configured approval team; the new vault (CREATING) and its session are stored together.
/// A retry with the same CreatorRequestId answers the vault it made (and no new session).
#[allow(clippy::too_many_arguments)]
fn create_in(
    tx: &mut dyn Txn,
    teams: &ApprovalTeams,
    ctx: &RequestContext,
    (sa, sr, sn): (String, String, String),
    name: &str,
    input: CreateRestoreAccessBackupVaultInput,
    initial_tags: tags::Tags,
    now: DateTime<Utc>,
) -> Result<(VaultRecord, Option<SessionRecord>)> {
    let source = vaults::read(tx, &vaults::key(&sa, &sr, &sn), &sn)?;
    if !source.air_gapped {
        return Err(ApiError::invalid_request(format!(
            "Backup vault {} is not a logically air-gapped backup vault; only an air-gapped vault gives restore access.",
            source.arn
        ))
        .into());
    }
    let team_arn = source.mpa.team_arn.clone().ok_or_else(|| {
        ApiError::invalid_request(format!(
            "Backup vault {} has no approval team; its owner associates one first (AssociateBackupVaultMpaApprovalTeam).",
            source.arn
        ))
    })?;
    let team = configured(teams, &team_arn)?;
    let k = vaults::key(&ctx.account_id, &ctx.region, name);
    if let Some(existing) = tx.get(vaults::TABLE, &k)? {
        let existing: VaultRecord = serde_json::from_slice(&existing)?;
        let retry = existing.mpa.restore_access.is_some()
            && existing.creator_request_id.is_some()
            && existing.creator_request_id == input.creator_request_id;
        if retry {
            return Ok((existing, None));
        }
        return Err(
            ApiError::already_exists("Backup vault with the same name already exists")
                .with_member("Arn", existing.arn.clone())
                .into(),
        );
    }
    let key = (
        source.encryption_key_type.clone(),
        source.encryption_key_arn.clone(),
    );
    let mut v = new_record(ctx, name, input.creator_request_id, key, now);
    let s = SessionRecord::open(
        &team,
        Request::RestoreAccess {
            vault_key: k.clone(),
        },
        &source.arn,
        &ctx.account_id,
        &ctx.region,
        input.requester_comment,
        now,
    )?;
    v.mpa.restore_access = Some(RestoreAccessLink {
        source_arn: source.arn.clone(),
        source_account: source.account.clone(),
        source_region: source.region.clone(),
        source_name: source.name.clone(),
        source_uid: source.uid.clone(),
        session_arn: s.arn.clone(),
        state: VaultState::Creating,
        approval_date: None,
        expires: s.expires,
    });
    vaults::write(tx, &k, &v)?;
    tags::set(tx, &v.arn, &initial_tags)?;
    link(tx, &v)?;
    approvals::save(tx, &s)?;
    let message = format!(
        "Account {} requests restore access to {} (restore access backup vault {}); {} approval(s) of team {} needed.",
        ctx.account_id, source.arn, v.arn, s.required, s.team_arn
    );
    publish(tx, Some(&team), &s, "APPROVAL_REQUESTED", message, now)?;
    Ok((v, Some(s)))
}

pub(crate) async fn list(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListRestoreAccessBackupVaultsInput,
) -> Result<ListRestoreAccessBackupVaultsOutput> {
    let (a, r, name) = (
        ctx.account_id.clone(),
        ctx.region.clone(),
        input.backup_vault_name.clone(),
    );
    let mut found = meta
        .store()
        .read(move |tx| {
            let source = vaults::read(tx, &vaults::key(&a, &r, &name), &name)?;
            of_source(tx, &source.uid, None)
        })
        .await?;
    found.sort_by(|x, y| x.arn.cmp(&y.arn));
    let (page, next_token) = paging::page(
        found,
        |v| v.arn.clone(),
        input.next_token.as_deref(),
        input.max_results,
    )?;
    let now = meta.clock().now();
    let members = page
        .iter()
        .map(|v| {
            let l = v.mpa.restore_access.as_ref();
            RestoreAccessBackupVaultListMember {
                approval_date: l.and_then(|l| l.approval_date).map(Timestamp),
                creation_date: Some(Timestamp(v.creation_date)),
                latest_revoke_request: None,
                restore_access_backup_vault_arn: Some(v.arn.clone()),
                vault_state: l.map(|l| l.state_at(now)),
            }
        })
        .collect();
    Ok(ListRestoreAccessBackupVaultsOutput {
        next_token,
        restore_access_backup_vaults: Some(members),
    })
}

/// RevokeRestoreAccessBackupVault, by the owner of the source vault: the restore access vault
/// is deleted at once (no approval: taking access away needs none) and a session still
/// awaiting approval fails.
pub(crate) async fn revoke(
    plane: &Executor,
    ctx: &RequestContext,
    input: RevokeRestoreAccessBackupVaultInput,
) -> Result<()> {
    let (ra, rr, rn) = vault_arn_parts(
        "RestoreAccessBackupVaultArn",
        &input.restore_access_backup_vault_arn,
    )?;
    let (a, r) = (ctx.account_id.clone(), ctx.region.clone());
    let teams = plane.approval_teams().clone();
    let now = plane.clock().now();
    let arn_given = input.restore_access_backup_vault_arn.clone();
    let revoked = plane
        .store()
        .write(move |tx| -> Result<VaultRecord> {
            let source = vaults::read(
                tx,
                &vaults::key(&a, &r, &input.backup_vault_name),
                &input.backup_vault_name,
            )?;
            let k = vaults::key(&ra, &rr, &rn);
            let v = tx
                .get(vaults::TABLE, &k)?
                .map(|v| serde_json::from_slice::<VaultRecord>(&v))
                .transpose()?
                .filter(|v| {
                    v.mpa
                        .restore_access
                        .as_ref()
                        .is_some_and(|l| l.source_uid == source.uid)
                })
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "{arn_given} is not a restore access backup vault of '{}'.",
                        source.name
                    ))
                })?;
            tx.delete(vaults::TABLE, &k)?;
            tags::remove_all(tx, &v.arn)?;
            unlink(tx, &v)?;
            let l = v.mpa.restore_access.as_ref().expect("filtered above");
            if let Ok(mut s) = approvals::load(tx, &l.session_arn) {
                s.fail("The restore access was revoked before it was approved.");
                approvals::save(tx, &s)?;
                let why = input
                    .requester_comment
                    .as_deref()
                    .map(|c| format!(" Comment: {c}"))
                    .unwrap_or_default();
                let message = format!(
                    "Account {a} revoked restore access backup vault {} to {}.{why}",
                    v.arn, source.arn
                );
                let team = teams.get(&s.team_arn);
                publish(
                    tx,
                    team.as_ref(),
                    &s,
                    "RESTORE_ACCESS_REVOKED",
                    message,
                    now,
                )?;
            }
            Ok(v)
        })
        .await?;
    tracing::info!(vault = %revoked.arn, by = %ctx.account_id, "restore access revoked; the restore access backup vault is deleted");
    Ok(())
}

/// The caller's air-gapped vault `name`, for a change of its approval team.
fn team_vault(tx: &mut dyn Txn, ctx: &RequestContext, name: &str) -> Result<(String, VaultRecord)> {
    let k = vaults::key(&ctx.account_id, &ctx.region, name);
    let v = vaults::read(tx, &k, name)?;
    if !v.air_gapped {
        return Err(ApiError::invalid_request(format!(
            "Backup vault '{name}' is a {}; only a logically air-gapped backup vault has an approval team.",
            v.kind_noun()
        ))
        .into());
    }
    Ok((k, v))
}

/// Refuses a team change while another awaits approval.
fn refuse_pending(v: &VaultRecord, now: DateTime<Utc>) -> Result<()> {
    match &v.mpa.latest_update {
        Some(u) if u.status_at(now) == MpaSessionStatus::Pending => {
            Err(ApiError::invalid_request(format!(
                "A change of the approval team of '{}' is already awaiting approval (session {}); wait for it to be approved or to expire.",
                v.name,
                u.session_arn.as_deref().unwrap_or("-")
            ))
            .into())
        }
        _ => Ok(()),
    }
}

/// Opens a session of the vault's current team for `request`, recording it as the vault's
/// latest team update (PENDING).
#[allow(clippy::too_many_arguments)]
fn open_team_change(
    tx: &mut dyn Txn,
    teams: &ApprovalTeams,
    ctx: &RequestContext,
    k: &str,
    v: &mut VaultRecord,
    request: Request,
    comment: Option<String>,
    now: DateTime<Utc>,
) -> Result<SessionRecord> {
    let current = v.mpa.team_arn.clone().unwrap_or_default();
    let team = configured(teams, &current)?;
    let s = SessionRecord::open(
        &team,
        request,
        &v.arn,
        &ctx.account_id,
        &ctx.region,
        comment,
        now,
    )?;
    v.mpa.latest_update = Some(TeamUpdate {
        session_arn: Some(s.arn.clone()),
        status: MpaSessionStatus::Pending,
        initiated: now,
        expires: Some(s.expires),
        message: None,
    });
    vaults::write(tx, k, v)?;
    approvals::save(tx, &s)?;
    let message = format!(
        "{} for {} awaits {} approval(s) of team {}.",
        s.request.operation(),
        v.arn,
        s.required,
        team.arn
    );
    publish(tx, Some(&team), &s, "APPROVAL_REQUESTED", message, now)?;
    Ok(s)
}

/// AssociateBackupVaultMpaApprovalTeam: the first team is associated at once, as AWS does; a
/// different team replaces the current one once the current team approves.
pub(crate) async fn associate(
    plane: &Executor,
    ctx: &RequestContext,
    input: AssociateBackupVaultMpaApprovalTeamInput,
) -> Result<()> {
    let teams = plane.approval_teams().clone();
    if teams.get(&input.mpa_approval_team_arn).is_none() {
        return Err(ApiError::invalid_parameter(format!(
            "MpaApprovalTeamArn '{}' is not an approval team configured on this Coffer ([[approval_teams]] of the configuration file).",
            input.mpa_approval_team_arn
        ))
        .into());
    }
    let now = plane.clock().now();
    let ctx2 = ctx.clone();
    let vault_name = input.backup_vault_name.clone();
    let team_given = input.mpa_approval_team_arn.clone();
    let session = plane
        .store()
        .write(move |tx| -> Result<Option<SessionRecord>> {
            let (k, mut v) = team_vault(tx, &ctx2, &input.backup_vault_name)?;
            refuse_pending(&v, now)?;
            let team_arn = input.mpa_approval_team_arn.clone();
            match v.mpa.team_arn.clone() {
                Some(cur) if cur == team_arn => Ok(None),
                Some(_) => {
                    let request = Request::Associate {
                        vault_key: k.clone(),
                        team_arn: team_arn.clone(),
                    };
                    let s = open_team_change(
                        tx,
                        &teams,
                        &ctx2,
                        &k,
                        &mut v,
                        request,
                        input.requester_comment,
                        now,
                    )?;
                    Ok(Some(s))
                }
                None => {
                    v.mpa.team_arn = Some(team_arn.clone());
                    v.mpa.latest_update = Some(TeamUpdate {
                        session_arn: None,
                        status: MpaSessionStatus::Approved,
                        initiated: now,
                        expires: None,
                        message: Some("Associated at once: the vault had no approval team.".into()),
                    });
                    vaults::write(tx, &k, &v)?;
                    Ok(None)
                }
            }
        })
        .await?;
    match session {
        Some(s) => {
            tracing::info!(vault = %s.subject_vault_arn, session = %s.arn, team = %team_given, "approval team change requested; awaiting the current team's approval")
        }
        None => {
            tracing::info!(vault = %vault_name, team = %team_given, account = %ctx.account_id, "approval team associated")
        }
    }
    Ok(())
}

/// DisassociateBackupVaultMpaApprovalTeam: the team is removed once it approves.
pub(crate) async fn disassociate(
    plane: &Executor,
    ctx: &RequestContext,
    input: DisassociateBackupVaultMpaApprovalTeamInput,
) -> Result<()> {
    let teams = plane.approval_teams().clone();
    let now = plane.clock().now();
    let ctx2 = ctx.clone();
    let s = plane
        .store()
        .write(move |tx| -> Result<SessionRecord> {
            let (k, mut v) = team_vault(tx, &ctx2, &input.backup_vault_name)?;
            if v.mpa.team_arn.is_none() {
                return Err(ApiError::invalid_request(format!(
                    "Backup vault '{}' has no approval team to disassociate.",
                    v.name
                ))
                .into());
            }
            refuse_pending(&v, now)?;
            let request = Request::Disassociate {
                vault_key: k.clone(),
            };
            open_team_change(
                tx,
                &teams,
                &ctx2,
                &k,
                &mut v,
                request,
                input.requester_comment,
                now,
            )
        })
        .await?;
    tracing::info!(vault = %s.subject_vault_arn, session = %s.arn, team = %s.team_arn, "approval team removal requested; awaiting the team's approval");
    Ok(())
}

/// Expires `s` if its time has passed: saves it, brings its vault in line and publishes the
/// failure. Answers whether it expired.
fn settle_expiry(
    tx: &mut dyn Txn,
    teams: &ApprovalTeams,
    s: &mut SessionRecord,
    now: DateTime<Utc>,
) -> Result<bool> {
    if !s.expire_if_due(now) {
        return Ok(false);
    }
    approvals::save(tx, s)?;
    settle(tx, s, now)?;
    let message = format!(
        "{} for {} expired without enough approvals.",
        s.request.operation(),
        s.subject_vault_arn
    );
    let team = teams.get(&s.team_arn);
    publish(
        tx,
        team.as_ref(),
        s,
        "APPROVAL_SESSION_FAILED",
        message,
        now,
    )?;
    Ok(true)
}

/// Records the approval of session `session_arn` by the member signing with `access_key_id`.
/// The approval that reaches the team's threshold applies the request in the same
/// transaction. A member approving twice counts once; a non-member is refused.
pub async fn approve(
    plane: &Executor,
    access_key_id: &str,
    session_arn: &str,
) -> Result<SessionView> {
    let teams = plane.approval_teams().clone();
    let now = plane.clock().now();
    let (akid, arn_given) = (access_key_id.to_string(), session_arn.to_string());
    let (view, vote, expired) = plane
        .store()
        .write(move |tx| -> Result<(SessionView, Option<Vote>, bool)> {
            let mut s = approvals::load(tx, &arn_given)?;
            if settle_expiry(tx, &teams, &mut s, now)? {
                return Ok((s.view(), None, true));
            }
            let team = configured(&teams, &s.team_arn)?;
            let vote = approvals::approve(&mut s, &team, &akid, now)?;
            if vote == Vote::Repeated {
                return Ok((s.view(), Some(vote), false));
            }
            approvals::save(tx, &s)?;
            let message = format!(
                "{} approved {} for {} ({} of {} approvals).",
                akid,
                s.request.operation(),
                s.subject_vault_arn,
                s.approvals.len(),
                s.required
            );
            publish(tx, Some(&team), &s, "APPROVAL_RECEIVED", message, now)?;
            if vote == Vote::Decided {
                settle(tx, &s, now)?;
                let message = format!(
                    "{} for {} is approved and applied.",
                    s.request.operation(),
                    s.subject_vault_arn
                );
                publish(
                    tx,
                    Some(&team),
                    &s,
                    "APPROVAL_SESSION_APPROVED",
                    message,
                    now,
                )?;
            }
            Ok((s.view(), Some(vote), false))
        })
        .await?;
    if expired {
        tracing::info!(session = %view.session_arn, vault = %view.backup_vault_arn, "approval session expired unapproved");
        return Err(ApiError::invalid_request(format!(
            "Session {} expired at {} before it was approved; the requester must ask again.",
            view.session_arn, view.expiry_date
        ))
        .into());
    }
    match vote {
        Some(Vote::Decided) => {
            tracing::info!(session = %view.session_arn, operation = %view.operation, vault = %view.backup_vault_arn, member = %access_key_id, "approval session approved; request applied")
        }
        Some(Vote::Counted) => {
            tracing::info!(session = %view.session_arn, member = %access_key_id, approvals = view.approved_by.len(), required = view.approvals_required, "approval recorded")
        }
        _ => {
            tracing::info!(session = %view.session_arn, member = %access_key_id, "approval repeated; counted once")
        }
    }
    Ok(view)
}

/// The sessions of every team `access_key_id` is a member of (expired ones settled first),
/// oldest first.
pub async fn sessions(plane: &Executor, access_key_id: &str) -> Result<Vec<SessionView>> {
    let teams = plane.approval_teams().clone();
    let mine = teams.of_member(access_key_id);
    let now = plane.clock().now();
    let mut views = plane
        .store()
        .write(move |tx| -> Result<Vec<SessionView>> {
            let mut out = Vec::new();
            for t in &mine {
                for mut s in approvals::of_team(tx, &t.arn)? {
                    settle_expiry(tx, &teams, &mut s, now)?;
                    out.push(s.view());
                }
            }
            Ok(out)
        })
        .await?;
    views.sort_by(|a, b| a.initiation_date.cmp(&b.initiation_date));
    Ok(views)
}
