//! Approval teams and their sessions: Coffer's counterpart of AWS Multi-party approval.
//!
//! AWS lets a team of people approve, together, what no single account should decide alone:
//! access to a logically air-gapped vault from another account (CreateRestoreAccessBackupVault)
//! and changes of the vault's team. Coffer has no identity center, so a team is declared in
//! the configuration (`[[approval_teams]]`, held here as [`ApprovalTeams`]): its ARN, the
//! access key ids of its members and how many of them must approve. A request opens a
//! [`SessionRecord`] (table `mpa_session`, key `TEAM_ID:SESSION_ID`, so a team's sessions are
//! one scan) that stays PENDING until that many distinct members approve it (signed with
//! their own keys, through `POST /_coffer/approvals/approve`), or fails when it expires.
//! What an approved session does to vaults is `model::restore_access`'s.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Duration, Utc};
use coffer_api::ApiError;
use coffer_api::types::MpaSessionStatus;
use coffer_store::Txn;
use serde::{Deserialize, Serialize};

use crate::model::arn;
use crate::model::error::Result;

pub(crate) const SESSIONS: &str = "mpa_session";

/// How long a session waits for its approvals when the team does not say.
pub const DEFAULT_EXPIRY_HOURS: i64 = 24;

/// One `[[approval_teams]]` entry of the configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApprovalTeamEntry {
    /// `arn:aws:mpa:REGION:ACCOUNT:approval-team/ID`, the ARN vaults are associated with.
    pub arn: String,
    /// The access key ids of the members (each a configured credential).
    pub members: Vec<String>,
    /// How many distinct members must approve a request.
    pub approvals_required: usize,
    /// How long a request waits for its approvals before it fails (hours; default 24).
    #[serde(default)]
    pub expiry_hours: Option<i64>,
    /// An SNS topic ARN that receives every step of the team's sessions (through the
    /// notification outbox and `[[notification_targets]]`).
    #[serde(default)]
    pub sns_topic_arn: Option<String>,
}

impl ApprovalTeamEntry {
    /// What is wrong with the entry, if anything (checked when the configuration is read).
    pub fn problem(&self) -> Option<String> {
        let name = &self.arn;
        if team_id(&self.arn).is_none() {
            return Some(format!(
                "approval team '{name}' is not an approval team ARN (arn:aws:mpa:REGION:ACCOUNT:approval-team/ID)"
            ));
        }
        let mut members = self.members.clone();
        members.sort();
        members.dedup();
        if members.len() != self.members.len() || members.iter().any(String::is_empty) {
            return Some(format!(
                "approval team '{name}' lists a member twice or an empty access key id"
            ));
        }
        if self.approvals_required == 0 || self.approvals_required > members.len() {
            return Some(format!(
                "approval team '{name}' needs approvals_required between 1 and its {} member(s)",
                members.len()
            ));
        }
        if self.expiry_hours.is_some_and(|h| !(1..=8760).contains(&h)) {
            return Some(format!(
                "approval team '{name}' needs expiry_hours between 1 and 8760"
            ));
        }
        None
    }

    fn expiry(&self) -> Duration {
        Duration::hours(self.expiry_hours.unwrap_or(DEFAULT_EXPIRY_HOURS))
    }
}

/// The configured approval teams by ARN; replaced when the configuration is read again.
#[derive(Clone, Default)]
pub struct ApprovalTeams(Arc<RwLock<BTreeMap<String, ApprovalTeamEntry>>>);

impl ApprovalTeams {
    /// Replaces the teams (entries with a problem are left out by the caller's check).
    pub fn replace(&self, entries: &[ApprovalTeamEntry]) {
        let map = entries.iter().map(|e| (e.arn.clone(), e.clone())).collect();
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = map;
    }

    pub(crate) fn get(&self, arn: &str) -> Option<ApprovalTeamEntry> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(arn)
            .cloned()
    }

    /// The teams `access_key_id` is a member of.
    pub(crate) fn of_member(&self, access_key_id: &str) -> Vec<ApprovalTeamEntry> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|t| t.members.iter().any(|m| m == access_key_id))
            .cloned()
            .collect()
    }
}

/// The id at the end of a team ARN (`arn:aws:mpa:REGION:ACCOUNT:approval-team/ID`).
pub(crate) fn team_id(team_arn: &str) -> Option<&str> {
    let a = arn::parse(team_arn)?;
    let id = a.resource.strip_prefix("approval-team/")?;
    let ok = a.service == "mpa"
        && !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(id)
}

/// What a session asks the team to approve.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) enum Request {
    /// Open the restore access backup vault stored under `vault_key`.
    RestoreAccess { vault_key: String },
    /// Make `team_arn` the team of the air-gapped vault stored under `vault_key`.
    Associate { vault_key: String, team_arn: String },
    /// Remove the team of the air-gapped vault stored under `vault_key`.
    Disassociate { vault_key: String },
}

impl Request {
    /// The API operation that made the request.
    pub(crate) fn operation(&self) -> &'static str {
        match self {
            Request::RestoreAccess { .. } => "CreateRestoreAccessBackupVault",
            Request::Associate { .. } => "AssociateBackupVaultMpaApprovalTeam",
            Request::Disassociate { .. } => "DisassociateBackupVaultMpaApprovalTeam",
        }
    }
}

/// One member's approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Approval {
    pub access_key_id: String,
    pub at: DateTime<Utc>,
}

/// A request awaiting (or done with) its team's approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub id: String,
    pub arn: String,
    pub team_arn: String,
    pub request: Request,
    /// The vault the request is about (a restore access vault's source, or the vault whose
    /// team changes): shown to approvers.
    pub subject_vault_arn: String,
    pub requester_account: String,
    pub region: String,
    pub comment: Option<String>,
    pub initiated: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    pub required: usize,
    pub approvals: Vec<Approval>,
    pub status: MpaSessionStatus,
    pub status_message: Option<String>,
}

fn key(team_id: &str, id: &str) -> String {
    format!("{team_id}:{id}")
}

impl SessionRecord {
    /// Opens a session of `team` for `request` (not yet stored: see [`save`]).
    pub(crate) fn open(
        team: &ApprovalTeamEntry,
        request: Request,
        subject_vault_arn: &str,
        requester_account: &str,
        region: &str,
        comment: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<SessionRecord> {
        let tid = team_id(&team.arn).ok_or_else(|| {
            ApiError::invalid_parameter(format!("'{}' is not an approval team ARN.", team.arn))
        })?;
        let t = arn::parse(&team.arn).expect("checked by team_id");
        let id = uuid::Uuid::new_v4().to_string();
        Ok(SessionRecord {
            arn: format!(
                "arn:{}:mpa:{}:{}:session/{tid}/{id}",
                t.partition, t.region, t.account
            ),
            id,
            team_arn: team.arn.clone(),
            request,
            subject_vault_arn: subject_vault_arn.to_string(),
            requester_account: requester_account.to_string(),
            region: region.to_string(),
            comment,
            initiated: now,
            expires: now + team.expiry(),
            required: team.approvals_required,
            approvals: Vec::new(),
            status: MpaSessionStatus::Pending,
            status_message: None,
        })
    }

    fn store_key(&self) -> String {
        key(team_id(&self.team_arn).unwrap_or_default(), &self.id)
    }

    /// Fails a pending session whose expiry has passed; answers whether it did.
    pub(crate) fn expire_if_due(&mut self, now: DateTime<Utc>) -> bool {
        if self.status == MpaSessionStatus::Pending && now >= self.expires {
            self.status = MpaSessionStatus::Failed;
            self.status_message = Some(format!(
                "The request expired at {} with {} of {} approvals.",
                self.expires.to_rfc3339(),
                self.approvals.len(),
                self.required
            ));
            return true;
        }
        false
    }

    /// Ends a pending session without approval (the request was withdrawn or revoked).
    pub(crate) fn fail(&mut self, why: &str) {
        if self.status == MpaSessionStatus::Pending {
            self.status = MpaSessionStatus::Failed;
            self.status_message = Some(why.to_string());
        }
    }
}

/// What an approval did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Vote {
    /// Counted; more approvals are needed.
    Counted,
    /// This member had approved already: nothing changes.
    Repeated,
    /// The last approval needed: the session is APPROVED.
    Decided,
}

/// Records `access_key_id`'s approval of `s` (already checked for expiry). A key that is not
/// a member of `team` is refused (AccessDeniedException), as is a session that is not PENDING
/// (InvalidRequestException).
pub(crate) fn approve(
    s: &mut SessionRecord,
    team: &ApprovalTeamEntry,
    access_key_id: &str,
    now: DateTime<Utc>,
) -> Result<Vote> {
    if !team.members.iter().any(|m| m == access_key_id) {
        return Err(ApiError::new(
            403,
            "AccessDeniedException",
            format!(
                "Access key {access_key_id} is not a member of approval team {}; only its members can approve session {}.",
                team.arn, s.arn
            ),
        )
        .into());
    }
    if s.status != MpaSessionStatus::Pending {
        return Err(ApiError::invalid_request(format!(
            "Session {} is {}; only a PENDING session can be approved.{}",
            s.arn,
            s.status.as_str(),
            s.status_message
                .as_deref()
                .map(|m| format!(" {m}"))
                .unwrap_or_default()
        ))
        .into());
    }
    if s.approvals.iter().any(|a| a.access_key_id == access_key_id) {
        return Ok(Vote::Repeated);
    }
    s.approvals.push(Approval {
        access_key_id: access_key_id.to_string(),
        at: now,
    });
    if s.approvals.len() >= s.required {
        s.status = MpaSessionStatus::Approved;
        s.status_message = Some(format!(
            "Approved by {} of the team's members.",
            s.approvals.len()
        ));
        return Ok(Vote::Decided);
    }
    Ok(Vote::Counted)
}

pub(crate) fn save(tx: &mut dyn Txn, s: &SessionRecord) -> Result<()> {
    tx.put(SESSIONS, &s.store_key(), &serde_json::to_vec(s)?)?;
    Ok(())
}

/// The session `session_arn` names; absent (or not a session ARN) is ResourceNotFoundException.
pub(crate) fn load(tx: &mut dyn Txn, session_arn: &str) -> Result<SessionRecord> {
    let missing = || ApiError::not_found(format!("Approval session {session_arn} does not exist."));
    let parts = arn::parse(session_arn)
        .filter(|a| a.service == "mpa")
        .and_then(|a| a.resource.strip_prefix("session/"))
        .and_then(|r| r.split_once('/'))
        .ok_or_else(missing)?;
    match tx.get(SESSIONS, &key(parts.0, parts.1))? {
        Some(v) => Ok(serde_json::from_slice(&v)?),
        None => Err(missing().into()),
    }
}

/// Every session of the team `team_arn`, oldest key first.
pub(crate) fn of_team(tx: &mut dyn Txn, team_arn: &str) -> Result<Vec<SessionRecord>> {
    let Some(tid) = team_id(team_arn) else {
        return Ok(Vec::new());
    };
    let rows = tx.scan(SESSIONS, &format!("{tid}:"), None, usize::MAX)?;
    rows.iter()
        .map(|(_, v)| Ok(serde_json::from_slice(v)?))
        .collect()
}

/// A session as approvers see it (`GET /_coffer/approvals`, `coffer approvals list`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub session_arn: String,
    pub approval_team_arn: String,
    /// The operation that asked: CreateRestoreAccessBackupVault,
    /// AssociateBackupVaultMpaApprovalTeam or DisassociateBackupVaultMpaApprovalTeam.
    pub operation: String,
    /// The vault the request is about.
    pub backup_vault_arn: String,
    pub requester_account: String,
    pub requester_comment: Option<String>,
    /// PENDING, APPROVED or FAILED.
    pub status: String,
    pub status_message: Option<String>,
    pub initiation_date: String,
    pub expiry_date: String,
    pub approvals_required: usize,
    /// The access key ids of the members who approved, in order.
    pub approved_by: Vec<String>,
}

impl SessionRecord {
    pub(crate) fn view(&self) -> SessionView {
        SessionView {
            session_arn: self.arn.clone(),
            approval_team_arn: self.team_arn.clone(),
            operation: self.request.operation().to_string(),
            backup_vault_arn: self.subject_vault_arn.clone(),
            requester_account: self.requester_account.clone(),
            requester_comment: self.comment.clone(),
            status: self.status.as_str().to_string(),
            status_message: self.status_message.clone(),
            initiation_date: self.initiated.to_rfc3339(),
            expiry_date: self.expires.to_rfc3339(),
            approvals_required: self.required,
            approved_by: self
                .approvals
                .iter()
                .map(|a| a.access_key_id.clone())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn team(required: usize) -> ApprovalTeamEntry {
        ApprovalTeamEntry {
            arn: "arn:aws:mpa:us-east-1:111122223333:approval-team/t1".into(),
            members: vec!["A".into(), "B".into(), "C".into()],
            approvals_required: required,
            expiry_hours: None,
            sns_topic_arn: None,
        }
    }

    fn session(t: &ApprovalTeamEntry) -> SessionRecord {
        SessionRecord::open(
            t,
            Request::Disassociate {
                vault_key: "k".into(),
            },
            "arn:aws:backup:us-east-1:111122223333:backup-vault:v",
            "111122223333",
            "us-east-1",
            None,
            Utc::now(),
        )
        .unwrap()
    }

    #[test]
    fn distinct_members_decide_and_others_are_refused() {
        let t = team(2);
        let mut s = session(&t);
        assert!(
            s.arn
                .starts_with("arn:aws:mpa:us-east-1:111122223333:session/t1/")
        );
        let now = Utc::now();
        assert_eq!(approve(&mut s, &t, "A", now).unwrap(), Vote::Counted);
        assert_eq!(approve(&mut s, &t, "A", now).unwrap(), Vote::Repeated);
        let e = approve(&mut s, &t, "Z", now).unwrap_err();
        assert_eq!(e.0.code(), "AccessDeniedException");
        assert_eq!(s.status, MpaSessionStatus::Pending);
        assert_eq!(approve(&mut s, &t, "B", now).unwrap(), Vote::Decided);
        assert_eq!(s.status, MpaSessionStatus::Approved);
        let e = approve(&mut s, &t, "C", now).unwrap_err();
        assert_eq!(e.0.code(), "InvalidRequestException");
    }

    #[test]
    fn a_session_expires_unapproved() {
        let t = team(1);
        let mut s = session(&t);
        assert!(!s.expire_if_due(s.initiated + Duration::hours(23)));
        assert!(s.expire_if_due(s.initiated + Duration::hours(24)));
        assert_eq!(s.status, MpaSessionStatus::Failed);
        assert!(approve(&mut s, &t, "A", Utc::now()).is_err());
    }

    #[test]
    fn entries_are_checked() {
        assert_eq!(team(2).problem(), None);
        assert!(team(0).problem().is_some());
        assert!(team(4).problem().is_some());
        let mut bad = team(1);
        bad.arn = "arn:aws:iam::111122223333:role/x".into();
        assert!(bad.problem().unwrap().contains("not an approval team ARN"));
        let mut twice = team(1);
        twice.members.push("A".into());
        assert!(twice.problem().unwrap().contains("twice"));
    }
}
