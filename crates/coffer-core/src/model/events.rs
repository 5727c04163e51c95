//! Vault events and the notification outbox.
//!
//! A vault with a notification subscription (see [`vault_notifications`]) publishes the
//! `BackupVaultEvent`s it asked for to its SNS topic. So that no event is lost, an event is
//! written to the `outbox` table by [`emit`] inside the very store transaction that makes the
//! state change it reports: the job ending, the recovery point changing, the plan being saved.
//! If that transaction rolls back, the event never existed; if it commits, the event will be
//! delivered even if Coffer dies a moment later. Delivery itself (HTTP, SNS) belongs to the
//! server, which reads the outbox through [`Outbox`]; a message is removed once delivered, or
//! moved to `outbox_dead` (the dead letters) when it cannot be.
//!
//! Outbox keys are `WALL-MICROS:ID` (zero-padded), so a scan returns messages in the order the
//! events happened; the delivery worker keeps that order per topic.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use coffer_api::types::BackupVaultEvent;
use coffer_store::{StoreError, StoreHandle, Txn};
use serde::{Deserialize, Serialize};

use crate::model::error::Result;
use crate::model::recovery_points::RecoveryPointRecord;
use crate::model::{vault_notifications, vaults};

pub(crate) const OUTBOX: &str = "outbox";
pub(crate) const DEAD: &str = "outbox_dead";
/// Which delivery worker delivers a topic, until when (key: the topic ARN). With several nodes
/// on one store, only the holder of a topic's lease delivers its messages, so each message
/// goes out once (barring a crash between the receiver's answer and the removal) and in order.
pub(crate) const TOPIC_LEASES: &str = "outbox_lease";
/// How long a topic's lease holds without renewal. The holder renews it before every message
/// and every few seconds while a message is on its way (see [`Outbox::renew`]), and ends each
/// attempt before the lease it holds runs out, so a live holder keeps its topic however slow
/// the subscriber or the store; a dead one's topic is taken over this long after its last
/// renewal (one more lease when it died in the middle of an attempt, see [`OutboxClaim`]).
pub const TOPIC_LEASE_SECS: i64 = 30;

/// The SNS subject AWS Backup uses for every notification.
pub const SUBJECT: &str = "Notification from AWS Backup";

/// What an event says, besides its name: the body of the SNS message and its attributes.
#[derive(Debug, Clone)]
pub(crate) struct Notice {
    /// `BACKUP_JOB`, `COPY_JOB`, `RESTORE_JOB`, `RECOVERY_POINT`, `BACKUP_PLAN`.
    pub event_type: &'static str,
    /// The state the event reports (a job state, `MODIFIED`, `CREATED`).
    pub state: String,
    /// The job, recovery point or plan id.
    pub id: String,
    /// When the job (or the thing the event is about) started.
    pub start_time: DateTime<Utc>,
    /// When the event happened.
    pub at: DateTime<Utc>,
    /// The message text, worded as AWS Backup words it.
    pub message: String,
}

/// One notification waiting for delivery (or, in `outbox_dead`, given up on).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutboxMessage {
    pub id: String,
    pub topic_arn: String,
    pub account: String,
    pub region: String,
    pub vault_name: String,
    pub event: BackupVaultEvent,
    pub subject: String,
    pub message: String,
    /// SNS string message attributes: EventType, State, AccountId, Id, StartTime.
    pub attributes: BTreeMap<String, String>,
    /// When the event happened (Coffer's clock), the envelope's Timestamp.
    pub timestamp: DateTime<Utc>,
    /// Delivery attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Not before this wall-clock time (backoff after a failed attempt).
    #[serde(default)]
    pub next_attempt: Option<DateTime<Utc>>,
    /// When the message was written (wall clock), to give up after a day.
    pub queued_at: DateTime<Utc>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// Dead letters only: why delivery was given up.
    #[serde(default)]
    pub dead_reason: Option<String>,
    /// The attempt under way: set when a worker claims the message to send it, cleared when
    /// the attempt is settled (delivered, failed, given up). Found set by another worker, it
    /// says an attempt was never settled: its worker died (or lost the topic) mid-send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending: Option<Sending>,
}

/// A delivery attempt under way: which worker makes it, and until when its lease holds (the
/// attempt is over by then, see [`OutboxClaim::Deliver`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sending {
    pub holder: String,
    pub until: DateTime<Utc>,
}

fn store_err(e: serde_json::Error) -> StoreError {
    StoreError::corrupt("outbox record", e)
}

/// Writes `event` for the vault `vault_name` of (`account`, `region`) to the outbox, if the
/// vault's subscription asks for it. Call it inside the transaction of the state change.
pub(crate) fn emit(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    vault_name: &str,
    event: &BackupVaultEvent,
    notice: &Notice,
) -> Result<(), StoreError> {
    let vkey = vaults::key(account, region, vault_name);
    let Some(sub) = vault_notifications::subscription(tx, &vkey)? else {
        return Ok(());
    };
    if !sub.wants(event) {
        return Ok(());
    }
    enqueue(
        tx,
        &sub.sns_topic_arn,
        account,
        region,
        vault_name,
        event,
        notice,
    )
}

/// Writes `event` about vault `vault_name` to the outbox for `topic_arn`, whatever the vault
/// subscribed to: for the events no vault subscription names, such as the steps of an
/// approval session, which go to the approval team's topic (see `model::restore_access`).
pub(crate) fn enqueue(
    tx: &mut dyn Txn,
    topic_arn: &str,
    account: &str,
    region: &str,
    vault_name: &str,
    event: &BackupVaultEvent,
    notice: &Notice,
) -> Result<(), StoreError> {
    let id = uuid::Uuid::new_v4().to_string();
    let wall = Utc::now();
    let attributes = BTreeMap::from([
        ("EventType".to_string(), notice.event_type.to_string()),
        ("State".to_string(), notice.state.clone()),
        ("AccountId".to_string(), account.to_string()),
        ("Id".to_string(), notice.id.clone()),
        (
            "StartTime".to_string(),
            notice
                .start_time
                .to_rfc3339_opts(SecondsFormat::Millis, true),
        ),
    ]);
    let m = OutboxMessage {
        id: id.clone(),
        topic_arn: topic_arn.to_string(),
        account: account.to_string(),
        region: region.to_string(),
        vault_name: vault_name.to_string(),
        event: event.clone(),
        subject: SUBJECT.to_string(),
        message: notice.message.clone(),
        attributes,
        timestamp: notice.at,
        attempts: 0,
        next_attempt: None,
        queued_at: wall,
        last_error: None,
        dead_reason: None,
        sending: None,
    };
    let key = format!("{:020}:{id}", next_micros(wall.timestamp_micros()));
    tx.put(OUTBOX, &key, &serde_json::to_vec(&m).map_err(store_err)?)
}

/// Deletes at most `limit` dead letters queued at or before `cutoff` (wall clock), oldest
/// first; returns how many. Their keys start with the time they were queued, so nothing
/// newer is read.
pub(crate) fn prune_dead(
    tx: &mut dyn Txn,
    cutoff: DateTime<Utc>,
    limit: usize,
) -> Result<usize, StoreError> {
    // ';' sorts right after ':', so every key of the cutoff's own microsecond is within.
    let bound = format!("{:020};", cutoff.timestamp_micros().max(0));
    let mut n = 0;
    for (key, _) in tx.scan(DEAD, "", None, limit)? {
        if key.as_str() > bound.as_str() {
            break;
        }
        tx.delete(DEAD, &key)?;
        n += 1;
    }
    Ok(n)
}

/// Outbox key times: the wall clock in microseconds, but strictly increasing within this process
/// (store writes are serialised, so keys follow commit order even if the wall clock steps back).
fn next_micros(now: i64) -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1).max(0);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// Emits RECOVERY_POINT_MODIFIED for `rp`; `what` says what changed ("lifecycle",
/// "deleted", "tags").
pub(crate) fn recovery_point_modified(
    tx: &mut dyn Txn,
    rp: &RecoveryPointRecord,
    at: DateTime<Utc>,
    what: &str,
) -> Result<(), StoreError> {
    let notice = Notice {
        event_type: "RECOVERY_POINT",
        state: if what == "deleted" {
            "DELETED".into()
        } else {
            "MODIFIED".into()
        },
        id: rp.id.clone(),
        start_time: rp.creation_date,
        at,
        message: format!(
            "An AWS Backup recovery point was modified ({what}). Recovery point ARN: {}. Resource ARN : {}",
            rp.arn, rp.resource_arn
        ),
    };
    emit(
        tx,
        &rp.account,
        &rp.region,
        &rp.vault_name,
        &BackupVaultEvent::RecoveryPointModified,
        &notice,
    )
}

/// Emits BACKUP_PLAN_CREATED or BACKUP_PLAN_MODIFIED to every vault the plan's rules back up
/// into (each once).
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_changed(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    created: bool,
    plan_id: &str,
    plan_arn: &str,
    version_id: &str,
    target_vaults: &[String],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (event, state, verb) = if created {
        (BackupVaultEvent::BackupPlanCreated, "CREATED", "created")
    } else {
        (BackupVaultEvent::BackupPlanModified, "MODIFIED", "modified")
    };
    let notice = Notice {
        event_type: "BACKUP_PLAN",
        state: state.into(),
        id: plan_id.to_string(),
        start_time: at,
        at,
        message: format!(
            "An AWS Backup backup plan was {verb}. Backup plan ARN : {plan_arn}. Version ID : {version_id}"
        ),
    };
    let mut seen: Vec<&str> = Vec::new();
    for v in target_vaults {
        if seen.contains(&v.as_str()) {
            continue;
        }
        seen.push(v);
        emit(tx, account, region, v, &event, &notice)?;
    }
    Ok(())
}

#[derive(Debug, Serialize, Deserialize)]
struct TopicLease {
    holder: String,
    until: DateTime<Utc>,
}

fn put_lease(
    tx: &mut dyn Txn,
    topic: &str,
    holder: &str,
    until: DateTime<Utc>,
) -> Result<(), StoreError> {
    let lease = TopicLease {
        holder: holder.to_string(),
        until,
    };
    tx.put(
        TOPIC_LEASES,
        topic,
        &serde_json::to_vec(&lease).map_err(store_err)?,
    )
}

/// What [`Outbox::claim`] found for one message.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboxClaim {
    /// The caller holds the topic: deliver this (current) message, and end the attempt
    /// before the lease ends (`Claimed::until`), so that no other worker can start one while
    /// the caller's is still on its way.
    Deliver(Box<Claimed>),
    /// The message is no longer waiting (another worker delivered or gave it up): skip it.
    Gone,
    /// The message waits for its next attempt time (backoff): deliver nothing of the topic
    /// before then.
    NotDue,
    /// Another worker holds the topic, or its attempt at this message was never settled and
    /// may still be (its lease ended less than one more lease ago): deliver nothing of the
    /// topic now.
    HeldElsewhere,
}

/// A message claimed for one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub message: OutboxMessage,
    /// The caller's lease on the topic holds until then (unless renewed).
    pub until: DateTime<Utc>,
    /// An earlier attempt that was never settled (its worker died or lost the topic between
    /// claiming and recording the outcome): the subscriber may have the message already.
    pub interrupted: Option<Sending>,
}

/// The outbox as the delivery worker sees it.
#[derive(Clone)]
pub struct Outbox {
    store: StoreHandle,
    lease: chrono::Duration,
}

/// How many notifications wait and how many were given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub pending: usize,
    pub failed: usize,
}

impl Outbox {
    pub fn new(store: StoreHandle) -> Self {
        Outbox::with_lease(store, chrono::Duration::seconds(TOPIC_LEASE_SECS))
    }

    /// An outbox whose topic leases last `lease` (tests shorten it).
    pub fn with_lease(store: StoreHandle, lease: chrono::Duration) -> Self {
        Outbox { store, lease }
    }

    /// How long a topic lease holds without renewal.
    pub fn lease(&self) -> chrono::Duration {
        self.lease
    }

    /// Up to `limit` waiting messages, oldest first, with their keys.
    pub async fn pending(&self, limit: usize) -> Result<Vec<(String, OutboxMessage)>, StoreError> {
        let rows = self
            .store
            .read(move |tx| tx.scan(OUTBOX, "", None, limit))
            .await?;
        rows.into_iter()
            .map(|(k, v)| Ok((k, serde_json::from_slice(&v).map_err(store_err)?)))
            .collect()
    }

    /// Takes or renews the lease on `topic` for `holder`, reads the message at `key` again and
    /// marks it as being sent by `holder`, in one transaction: call it before each delivery
    /// attempt. A message marked by another worker whose lease ended less than one more lease
    /// ago is left alone (that worker may be alive and about to record the outcome).
    pub async fn claim(
        &self,
        holder: &str,
        topic: &str,
        key: &str,
    ) -> Result<OutboxClaim, StoreError> {
        let (holder, topic, k) = (holder.to_string(), topic.to_string(), key.to_string());
        let lease = self.lease;
        self.store
            .write(move |tx| {
                let now = Utc::now();
                if let Some(v) = tx.get(TOPIC_LEASES, &topic)? {
                    let l: TopicLease = serde_json::from_slice(&v).map_err(store_err)?;
                    if l.holder != holder && l.until > now {
                        return Ok(OutboxClaim::HeldElsewhere);
                    }
                }
                let Some(v) = tx.get(OUTBOX, &k)? else {
                    put_lease(tx, &topic, &holder, now + lease)?;
                    return Ok(OutboxClaim::Gone);
                };
                let mut message: OutboxMessage = serde_json::from_slice(&v).map_err(store_err)?;
                if message.next_attempt.is_some_and(|n| n > now) {
                    return Ok(OutboxClaim::NotDue);
                }
                let interrupted = message.sending.take();
                if let Some(s) = &interrupted
                    && s.holder != holder
                    && now < s.until + lease
                {
                    return Ok(OutboxClaim::HeldElsewhere);
                }
                let until = now + lease;
                put_lease(tx, &topic, &holder, until)?;
                message.sending = Some(Sending {
                    holder: holder.clone(),
                    until,
                });
                tx.put(
                    OUTBOX,
                    &k,
                    &serde_json::to_vec(&message).map_err(store_err)?,
                )?;
                message.sending = None;
                Ok(OutboxClaim::Deliver(Box::new(Claimed {
                    message,
                    until,
                    interrupted,
                })))
            })
            .await
    }

    /// Renews `holder`'s lease on `topic` while its attempt at the message at `key` is on its
    /// way, and the attempt's mark with it. Answers the new end of the lease, or `None` when
    /// `holder` no longer holds the topic (another worker took it after it ran out).
    pub async fn renew(
        &self,
        holder: &str,
        topic: &str,
        key: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let (holder, topic, k) = (holder.to_string(), topic.to_string(), key.to_string());
        let lease = self.lease;
        self.store
            .write(move |tx| {
                let Some(v) = tx.get(TOPIC_LEASES, &topic)? else {
                    return Ok(None);
                };
                let l: TopicLease = serde_json::from_slice(&v).map_err(store_err)?;
                if l.holder != holder {
                    return Ok(None);
                }
                let until = Utc::now() + lease;
                put_lease(tx, &topic, &holder, until)?;
                if let Some(v) = tx.get(OUTBOX, &k)? {
                    let mut m: OutboxMessage = serde_json::from_slice(&v).map_err(store_err)?;
                    if let Some(s) = m.sending.as_mut().filter(|s| s.holder == holder) {
                        s.until = until;
                        tx.put(OUTBOX, &k, &serde_json::to_vec(&m).map_err(store_err)?)?;
                    }
                }
                Ok(Some(until))
            })
            .await
    }

    /// Clears `holder`'s mark on the message at `key`, claimed but not sent (too little of the
    /// lease was left to start the attempt).
    pub async fn not_sent(&self, holder: &str, key: &str) -> Result<(), StoreError> {
        let (holder, k) = (holder.to_string(), key.to_string());
        self.store
            .write(move |tx| {
                let Some(v) = tx.get(OUTBOX, &k)? else {
                    return Ok(());
                };
                let mut m: OutboxMessage = serde_json::from_slice(&v).map_err(store_err)?;
                if m.sending.as_ref().is_some_and(|s| s.holder == holder) {
                    m.sending = None;
                    tx.put(OUTBOX, &k, &serde_json::to_vec(&m).map_err(store_err)?)?;
                }
                Ok(())
            })
            .await
    }

    /// Gives up `holder`'s lease on `topic` (its delivery pass is over), so any worker may
    /// take the topic at once.
    pub async fn release(&self, holder: &str, topic: &str) -> Result<(), StoreError> {
        let (holder, topic) = (holder.to_string(), topic.to_string());
        self.store
            .write(move |tx| {
                if let Some(v) = tx.get(TOPIC_LEASES, &topic)? {
                    let lease: TopicLease = serde_json::from_slice(&v).map_err(store_err)?;
                    if lease.holder == holder {
                        tx.delete(TOPIC_LEASES, &topic)?;
                    }
                }
                Ok(())
            })
            .await
    }

    /// Removes a delivered message.
    pub async fn delivered(&self, key: &str) -> Result<(), StoreError> {
        let k = key.to_string();
        self.store
            .write(move |tx| tx.delete(OUTBOX, &k).map(|_| ()))
            .await
    }

    /// Records a failed attempt: the message waits until `next_attempt`.
    pub async fn attempt_failed(
        &self,
        key: &str,
        error: &str,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (k, error) = (key.to_string(), error.to_string());
        self.store
            .write(move |tx| {
                let Some(v) = tx.get(OUTBOX, &k)? else {
                    return Ok(());
                };
                let mut m: OutboxMessage = serde_json::from_slice(&v).map_err(store_err)?;
                m.attempts += 1;
                m.next_attempt = Some(next_attempt);
                m.last_error = Some(error);
                m.sending = None;
                tx.put(OUTBOX, &k, &serde_json::to_vec(&m).map_err(store_err)?)
            })
            .await
    }

    /// Moves a message to the dead letters with `reason`.
    pub async fn give_up(&self, key: &str, reason: &str) -> Result<(), StoreError> {
        let (k, reason) = (key.to_string(), reason.to_string());
        self.store
            .write(move |tx| {
                let Some(v) = tx.get(OUTBOX, &k)? else {
                    return Ok(());
                };
                let mut m: OutboxMessage = serde_json::from_slice(&v).map_err(store_err)?;
                m.dead_reason = Some(reason);
                m.sending = None;
                tx.put(DEAD, &k, &serde_json::to_vec(&m).map_err(store_err)?)?;
                tx.delete(OUTBOX, &k)?;
                Ok(())
            })
            .await
    }

    /// The dead letters, oldest first.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxMessage>, StoreError> {
        let rows = self
            .store
            .read(move |tx| tx.scan(DEAD, "", None, limit))
            .await?;
        rows.into_iter()
            .map(|(_, v)| serde_json::from_slice(&v).map_err(store_err))
            .collect()
    }

    /// Sends dead letters back to the outbox for another round of delivery: those of
    /// `account` (every account when `None`) whose message id is in `ids` (all when `None`).
    /// Each goes back under its original key, so per-topic order is kept, with its attempts,
    /// backoff and age reset (an old message would otherwise be given up again at once); its
    /// last error stays for the record. Returns the replayed messages.
    pub async fn replay_dead(
        &self,
        account: Option<&str>,
        ids: Option<&[String]>,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let account = account.map(str::to_string);
        let ids = ids.map(<[String]>::to_vec);
        let now = Utc::now();
        self.store
            .write(move |tx| {
                let mut replayed = Vec::new();
                for (k, v) in tx.scan(DEAD, "", None, usize::MAX)? {
                    let mut m: OutboxMessage = serde_json::from_slice(&v).map_err(store_err)?;
                    if account.as_ref().is_some_and(|a| *a != m.account)
                        || ids.as_ref().is_some_and(|ids| !ids.contains(&m.id))
                    {
                        continue;
                    }
                    m.attempts = 0;
                    m.next_attempt = None;
                    m.queued_at = now;
                    m.dead_reason = None;
                    m.sending = None;
                    tx.put(OUTBOX, &k, &serde_json::to_vec(&m).map_err(store_err)?)?;
                    tx.delete(DEAD, &k)?;
                    replayed.push(m);
                }
                Ok(replayed)
            })
            .await
    }

    pub async fn counts(&self) -> Result<OutboxCounts, StoreError> {
        self.store
            .read(|tx| {
                Ok(OutboxCounts {
                    pending: tx.scan(OUTBOX, "", None, usize::MAX)?.len(),
                    failed: tx.scan(DEAD, "", None, usize::MAX)?.len(),
                })
            })
            .await
    }
}

#[cfg(test)]
mod outbox_tests {
    use super::*;
    use crate::Clock;
    use coffer_api::RequestContext;
    use coffer_api::types::*;

    fn notice() -> Notice {
        Notice {
            event_type: "BACKUP_JOB",
            state: "COMPLETED".into(),
            id: "J1".into(),
            start_time: Utc::now(),
            at: Utc::now(),
            message: "An AWS Backup job was completed successfully.".into(),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn events_are_written_with_their_transaction_and_only_when_subscribed() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("meta.db").to_str().unwrap()).unwrap();
        let meta = crate::model::Meta::new(store, Clock::movable());
        let ctx = RequestContext::new("111122223333", "us-east-1");
        for v in ["watched", "quiet"] {
            crate::control::vaults::create(
                &meta,
                &ctx,
                CreateBackupVaultInput {
                    backup_vault_name: v.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        crate::control::vault_notifications::put(
            &meta,
            &ctx,
            PutBackupVaultNotificationsInput {
                backup_vault_events: vec![BackupVaultEvent::BackupJobSuccessful],
                backup_vault_name: "watched".into(),
                sns_topic_arn: "arn:aws:sns:us-east-1:111122223333:t".into(),
            },
        )
        .await
        .unwrap();
        // Rolled back with the state change.
        let r: Result<(), StoreError> = meta
            .store()
            .write(|tx| {
                let n = notice();
                emit(
                    tx,
                    "111122223333",
                    "us-east-1",
                    "watched",
                    &BackupVaultEvent::BackupJobSuccessful,
                    &n,
                )?;
                Err(StoreError::msg(
                    coffer_store::ErrorKind::Other,
                    "the state change failed",
                ))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(
            Outbox::new(meta.store().clone())
                .counts()
                .await
                .unwrap()
                .pending,
            0
        );
        meta.store()
            .write(|tx| {
                let n = notice();
                let a = ("111122223333", "us-east-1");
                let (ok, failed) = (
                    &BackupVaultEvent::BackupJobSuccessful,
                    &BackupVaultEvent::BackupJobFailed,
                );
                emit(tx, a.0, a.1, "watched", ok, &n)?;
                emit(tx, a.0, a.1, "watched", failed, &n)?;
                emit(tx, a.0, a.1, "quiet", ok, &n)
            })
            .await
            .unwrap();
        let outbox = Outbox::new(meta.store().clone());
        let pending = outbox.pending(10).await.unwrap();
        assert_eq!(pending.len(), 1);
        let (key, m) = &pending[0];
        assert_eq!(m.event, BackupVaultEvent::BackupJobSuccessful);
        assert_eq!(m.topic_arn, "arn:aws:sns:us-east-1:111122223333:t");
        assert_eq!(m.attributes["AccountId"], "111122223333");
        assert_eq!(m.subject, SUBJECT);
        let later = Utc::now() + chrono::Duration::seconds(5);
        outbox.attempt_failed(key, "refused", later).await.unwrap();
        let m = &outbox.pending(10).await.unwrap()[0].1;
        assert_eq!((m.attempts, m.next_attempt), (1, Some(later)));
        outbox
            .give_up(key, "no target configured for topic")
            .await
            .unwrap();
        assert_eq!(
            outbox.counts().await.unwrap(),
            OutboxCounts {
                pending: 0,
                failed: 1
            }
        );
        let dead = outbox.dead_letters(10).await.unwrap();
        assert_eq!(
            dead[0].dead_reason.as_deref(),
            Some("no target configured for topic")
        );
        // Replay: another account's replay touches nothing; the owner's brings it back, fresh.
        assert!(
            outbox
                .replay_dead(Some("444455556666"), None)
                .await
                .unwrap()
                .is_empty()
        );
        let other_id = ["not-an-id".to_string()];
        assert!(
            outbox
                .replay_dead(None, Some(&other_id))
                .await
                .unwrap()
                .is_empty()
        );
        let replayed = outbox
            .replay_dead(Some("111122223333"), None)
            .await
            .unwrap();
        assert_eq!(replayed.len(), 1);
        let back = outbox.pending(10).await.unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(&back[0].0, key);
        let m = &back[0].1;
        assert_eq!(
            (m.attempts, m.next_attempt, m.dead_reason.as_deref()),
            (0, None, None)
        );
        assert_eq!(m.last_error.as_deref(), Some("refused"));
        assert_eq!(
            outbox.counts().await.unwrap(),
            OutboxCounts {
                pending: 1,
                failed: 0
            }
        );
    }

    #[tokio::test]
    async fn dead_letters_are_pruned_oldest_first_up_to_the_cutoff() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("meta.db").to_str().unwrap()).unwrap();
        let t0 = Utc::now();
        let stamp = move |d: i64| (t0 + chrono::Duration::days(d)).timestamp_micros();
        store
            .write(move |tx| -> Result<(), StoreError> {
                for (d, id) in [(0, "a"), (5, "b"), (10, "c")] {
                    tx.put(DEAD, &format!("{:020}:{id}", stamp(d)), b"{}")?;
                }
                Ok(())
            })
            .await
            .unwrap();
        let cutoff = t0 + chrono::Duration::days(5);
        let n = store
            .write(move |tx| prune_dead(tx, cutoff, 10))
            .await
            .unwrap();
        assert_eq!(n, 2, "the letters of day 0 and day 5 (at the cutoff) go");
        let left = store.read(|tx| tx.scan(DEAD, "", None, 10)).await.unwrap();
        assert_eq!(left.len(), 1);
        assert!(left[0].0.ends_with(":c"));
    }

    /// Two delivery workers on one store: the topic's lease lets one deliver; a message the
    /// first delivered is gone for the second once it takes the topic over; a lease that ran
    /// out is taken over.
    #[tokio::test(flavor = "multi_thread")]
    async fn one_worker_at_a_time_delivers_a_topic_and_a_delivered_message_is_not_sent_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("meta.db").to_str().unwrap()).unwrap();
        let topic = "arn:aws:sns:us-east-1:111122223333:t";
        store
            .write(move |tx| {
                for _ in 0..2 {
                    enqueue(
                        tx,
                        topic,
                        "111122223333",
                        "us-east-1",
                        "v",
                        &BackupVaultEvent::BackupJobCompleted,
                        &notice(),
                    )?;
                }
                Ok::<(), StoreError>(())
            })
            .await
            .unwrap();
        let outbox = Outbox::new(store.clone());
        let pending = outbox.pending(10).await.unwrap();
        let (k1, k2) = (pending[0].0.clone(), pending[1].0.clone());
        let first = outbox.claim("a", topic, &k1).await.unwrap();
        assert!(matches!(first, OutboxClaim::Deliver(ref c) if c.message.id == pending[0].1.id));
        assert_eq!(
            outbox.claim("b", topic, &k1).await.unwrap(),
            OutboxClaim::HeldElsewhere
        );
        outbox.delivered(&k1).await.unwrap();
        outbox.release("a", topic).await.unwrap();
        // B's view was taken before A delivered: the first message is gone, the second is B's.
        assert_eq!(
            outbox.claim("b", topic, &k1).await.unwrap(),
            OutboxClaim::Gone
        );
        assert!(matches!(
            outbox.claim("b", topic, &k2).await.unwrap(),
            OutboxClaim::Deliver(ref c) if c.interrupted.is_none()
        ));
        // B dies in the middle of its attempt at the second message: its lease runs out, but
        // the message stays B's until one more lease has passed (B might still be recording
        // the outcome), then A takes it over, told that B's attempt was never settled.
        let ago = |secs| Utc::now() - chrono::Duration::seconds(secs);
        expire(&store, topic, "b", &k2, ago(1)).await;
        assert_eq!(
            outbox.claim("a", topic, &k2).await.unwrap(),
            OutboxClaim::HeldElsewhere
        );
        expire(&store, topic, "b", &k2, ago(TOPIC_LEASE_SECS + 1)).await;
        match outbox.claim("a", topic, &k2).await.unwrap() {
            OutboxClaim::Deliver(c) => {
                assert_eq!(c.interrupted.map(|s| s.holder).as_deref(), Some("b"));
                assert!(c.until > Utc::now());
            }
            other => panic!("{other:?}"),
        }
    }

    /// Sets `holder`'s lease on `topic` and its mark on the message at `key` to end at `until`
    /// (as if it had stopped renewing them then).
    async fn expire(
        store: &StoreHandle,
        topic: &str,
        holder: &str,
        key: &str,
        until: DateTime<Utc>,
    ) {
        let (topic, holder, key) = (topic.to_string(), holder.to_string(), key.to_string());
        store
            .write(move |tx| {
                put_lease(tx, &topic, &holder, until)?;
                let mut m: OutboxMessage =
                    serde_json::from_slice(&tx.get(OUTBOX, &key)?.unwrap()).unwrap();
                m.sending = Some(Sending { holder, until });
                tx.put(OUTBOX, &key, &serde_json::to_vec(&m).unwrap())
            })
            .await
            .unwrap();
    }

    /// A lease that runs out during a send: the holder's renewal keeps the topic and the mark
    /// while the attempt is on its way; a holder that was stalled past its lease finds the
    /// topic gone, and the worker that took it waits for the attempt to be settled, so the
    /// message goes out once. A failed attempt settles the mark and backs the topic off.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_lease_running_out_mid_send_is_renewed_or_waits_for_the_attempt_to_settle() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("meta.db").to_str().unwrap()).unwrap();
        let topic = "arn:aws:sns:us-east-1:111122223333:t";
        store
            .write(move |tx| {
                enqueue(
                    tx,
                    topic,
                    "111122223333",
                    "us-east-1",
                    "v",
                    &BackupVaultEvent::BackupJobCompleted,
                    &notice(),
                )
            })
            .await
            .unwrap();
        let outbox = Outbox::new(store.clone());
        let key = outbox.pending(1).await.unwrap()[0].0.clone();
        let mark = |outbox: Outbox, key: String| async move {
            let m = outbox.pending(10).await.unwrap();
            m.into_iter()
                .find(|(k, _)| *k == key)
                .and_then(|(_, m)| m.sending)
        };
        assert!(matches!(
            outbox.claim("a", topic, &key).await.unwrap(),
            OutboxClaim::Deliver(_)
        ));
        assert_eq!(
            mark(outbox.clone(), key.clone())
                .await
                .map(|s| s.holder)
                .as_deref(),
            Some("a")
        );
        // A's send outlasts the lease it started under, but A renews while it waits.
        let ago = |secs| Utc::now() - chrono::Duration::seconds(secs);
        expire(&store, topic, "a", &key, ago(TOPIC_LEASE_SECS + 1)).await;
        let until = outbox.renew("a", topic, &key).await.unwrap().unwrap();
        assert!(until > Utc::now());
        assert_eq!(
            mark(outbox.clone(), key.clone()).await.map(|s| s.until),
            Some(until)
        );
        assert_eq!(
            outbox.claim("b", topic, &key).await.unwrap(),
            OutboxClaim::HeldElsewhere
        );
        // A stalls past its lease: B takes the topic on an earlier message's claim (here the
        // lease alone), but not A's message while A's attempt may still be settled.
        expire(&store, topic, "a", &key, ago(1)).await;
        assert_eq!(
            outbox.claim("b", topic, &key).await.unwrap(),
            OutboxClaim::HeldElsewhere
        );
        // A wakes up: its attempt ended before its lease did (see `notify`), it records the
        // delivery; B finds the message gone, and A's renewal finds the topic no longer A's.
        outbox.delivered(&key).await.unwrap();
        assert_eq!(
            outbox.claim("b", topic, &key).await.unwrap(),
            OutboxClaim::Gone
        );
        assert_eq!(outbox.renew("a", topic, &key).await.unwrap(), None);

        // A failed attempt clears the mark; the topic waits for the next attempt time.
        store
            .write(move |tx| {
                enqueue(
                    tx,
                    topic,
                    "111122223333",
                    "us-east-1",
                    "v",
                    &BackupVaultEvent::BackupJobCompleted,
                    &notice(),
                )
            })
            .await
            .unwrap();
        let key = outbox.pending(1).await.unwrap()[0].0.clone();
        assert!(matches!(
            outbox.claim("b", topic, &key).await.unwrap(),
            OutboxClaim::Deliver(_)
        ));
        let later = Utc::now() + chrono::Duration::seconds(60);
        outbox.attempt_failed(&key, "refused", later).await.unwrap();
        assert_eq!(mark(outbox.clone(), key.clone()).await, None);
        assert_eq!(
            outbox.claim("b", topic, &key).await.unwrap(),
            OutboxClaim::NotDue
        );
        assert_eq!(
            outbox.pending(1).await.unwrap()[0].1.attempts,
            1,
            "the failed attempt is counted"
        );
    }
}
