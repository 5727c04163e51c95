//! Notification delivery: takes vault events from the durable outbox (written by the domain in
//! the same transaction as the state change, see `coffer_core::events`) to the targets the
//! configuration names for each SNS topic ARN.
//!
//! Why a separate worker: a slow or dead subscriber must never slow a job down. Jobs only write
//! the outbox; this worker delivers at least once, in order per topic, with exponential backoff
//! per topic (the attempt count and next attempt time are kept in the outbox record, so a
//! restart resumes where it was). A topic whose head message is backing off does not hold up
//! other topics. Messages that still fail after a day, and messages whose topic has no target
//! configured, go to the dead-letter table (`GET /_coffer/notifications` counts them).
//! With several nodes on one store, each topic is delivered under a lease in the store
//! (`Outbox::claim`), so a message goes out once whichever node delivers it: the lease is
//! renewed every few seconds while a message is on its way (a slow subscriber or a slow store
//! does not cost a live worker its topic), and each attempt is cut off before the lease it was
//! started under ends (so no other worker can start one while it is still open). Only a
//! worker that dies between the subscriber's answer and the removal of the message leaves one
//! to be sent again; the worker that takes over says so in its log.
//!
//! Two kinds of target: a webhook receiving the JSON envelope SNS sends to HTTP subscribers,
//! or an SNS endpoint receiving a SigV4-signed `Publish` call (Query protocol). The targets can
//! be replaced while the worker runs (the configuration file is re-read, see `reload`); dead
//! letters can be listed and replayed (`admin`, `cli`).
//!
//! Logs: each delivery at INFO, each message given up at WARN with the cause, each failed
//! attempt at INFO with the error and the next try.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration as StdDuration;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use coffer_core::background::worker::{self, Worker, WorkerHandle};
use coffer_core::{Claimed, Outbox, OutboxClaim, OutboxMessage};
use http::{HeaderMap, HeaderValue};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

/// Give up on a message this long after it was written.
const GIVE_UP_AFTER_HOURS: i64 = 24;
/// ... or after this many attempts (about a day at the longest backoff).
const MAX_ATTEMPTS: u32 = 400;
/// Backoff: 1 s doubling per failed attempt, at most this.
const MAX_BACKOFF_SECS: i64 = 300;
/// How often the outbox is looked at.
const POLL: StdDuration = StdDuration::from_millis(500);
/// One delivery attempt takes at most this long (connecting included) ...
const ATTEMPT_TIMEOUT: StdDuration = StdDuration::from_secs(15);
/// ... and ends at least a fifteenth of the topic lease (2 s) before the lease it was started
/// under: room for clocks of nodes that differ a little.
const LEASE_MARGIN_DIVISOR: i32 = 15;
/// An attempt is not started with less than this left of it (the message waits for the next
/// pass, which takes the lease again).
const MIN_ATTEMPT: StdDuration = StdDuration::from_millis(500);
/// The lease is renewed every sixth of its length (5 s) while a topic is being delivered.
const RENEWALS_PER_LEASE: i32 = 6;

/// One `[[notification_targets]]` entry of the configuration file.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NotificationTarget {
    pub topic_arn: String,
    /// An HTTP(S) URL receiving the SNS HTTP-subscriber envelope.
    #[serde(default)]
    pub webhook: Option<String>,
    /// An SNS (or SNS-compatible) endpoint receiving `Publish`.
    #[serde(default)]
    pub sns_endpoint: Option<String>,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// The signing region; by default the topic ARN's region.
    #[serde(default)]
    pub region: Option<String>,
}

impl std::fmt::Debug for NotificationTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationTarget")
            .field("topic_arn", &self.topic_arn)
            .field("webhook", &self.webhook)
            .field("sns_endpoint", &self.sns_endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl NotificationTarget {
    /// Checks the entry; the error names the topic and what is wrong.
    pub fn check(&self) -> Result<()> {
        let t = &self.topic_arn;
        if !t.starts_with("arn:") || t.split(':').count() != 6 || t.split(':').nth(2) != Some("sns")
        {
            bail!("notification target '{t}': topic_arn must be an SNS topic ARN");
        }
        match (&self.webhook, &self.sns_endpoint) {
            (Some(u), None) => check_url(t, u),
            (None, Some(u)) => {
                check_url(t, u)?;
                if self.access_key_id.is_none() || self.secret_access_key.is_none() {
                    bail!(
                        "notification target '{t}': sns_endpoint needs access_key_id and secret_access_key"
                    );
                }
                Ok(())
            }
            _ => bail!("notification target '{t}': give exactly one of webhook or sns_endpoint"),
        }
    }

    fn signing_region(&self) -> String {
        self.region.clone().unwrap_or_else(|| {
            self.topic_arn
                .split(':')
                .nth(3)
                .unwrap_or("us-east-1")
                .to_string()
        })
    }
}

fn check_url(topic: &str, u: &str) -> Result<()> {
    let url = reqwest::Url::parse(u)
        .with_context(|| format!("notification target '{topic}': '{u}' is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("notification target '{topic}': '{u}' must be an http or https URL");
    }
    Ok(())
}

/// The delivery worker.
pub struct Delivery {
    outbox: Outbox,
    targets: RwLock<HashMap<String, NotificationTarget>>,
    client: reqwest::Client,
    busy: Mutex<HashSet<String>>,
    warned: Mutex<HashSet<String>>,
    /// This worker's name in the topics' delivery leases (see [`coffer_core::OutboxClaim`]).
    holder: String,
}

/// Delivery as a background worker: a pass every [`POLL`].
struct DeliveryWorker(Arc<Delivery>);

#[async_trait]
impl Worker for DeliveryWorker {
    fn name(&self) -> &'static str {
        "notification delivery"
    }

    fn period(&self) -> StdDuration {
        POLL
    }

    async fn tick(&self) -> std::result::Result<(), String> {
        self.0.pass().await.map_err(|e| format!("{e:#}"))
    }

    /// Flushes the outbox: one more pass for what the last state changes wrote, then waits
    /// for the deliveries under way (what cannot be delivered in time stays in the outbox for
    /// the next start).
    async fn drain(&self, _budget: StdDuration) {
        self.0.idle().await;
        if let Err(e) = self.0.pass().await {
            tracing::warn!(error = %format!("{e:#}"), "flushing the notification outbox failed");
        }
        self.0.idle().await;
    }
}

impl Delivery {
    /// Starts delivering in the background as a worker (needs a tokio runtime). The answer is
    /// the delivery, through which the targets are replaced, and the worker's handle, whose
    /// stop flushes the outbox once more (see [`Worker::drain`]).
    pub fn start(
        outbox: Outbox,
        targets: &[NotificationTarget],
    ) -> Result<(Arc<Delivery>, WorkerHandle)> {
        let d = Arc::new(Delivery::new(outbox, targets)?);
        tracing::info!(holder = %d.holder, "notification delivery started");
        let handle = worker::start(Arc::new(DeliveryWorker(d.clone())));
        Ok((d, handle))
    }

    /// The delivery, not started (see [`Delivery::start`]).
    fn new(outbox: Outbox, targets: &[NotificationTarget]) -> Result<Delivery> {
        let client = reqwest::Client::builder()
            .connect_timeout(StdDuration::from_secs(5))
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .context("building the notification HTTP client")?;
        Ok(Delivery {
            outbox,
            targets: RwLock::new(by_topic(targets)),
            client,
            busy: Mutex::default(),
            warned: Mutex::default(),
            holder: uuid::Uuid::new_v4().to_string(),
        })
    }

    /// Replaces the targets (from a re-read configuration file). Messages of a topic that was
    /// just given a target are delivered from the next pass on; those already given up wait
    /// in the dead letters until replayed.
    pub fn replace_targets(&self, targets: &[NotificationTarget]) {
        *self.targets.write().unwrap_or_else(|e| e.into_inner()) = by_topic(targets);
        self.lock_warned().clear();
    }

    fn target(&self, topic: &str) -> Option<NotificationTarget> {
        self.targets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
            .cloned()
    }

    /// Looks at the outbox once: every topic with waiting messages and no delivery under way
    /// gets a task that delivers its due messages in order.
    async fn pass(self: &Arc<Self>) -> Result<()> {
        let pending = self.outbox.pending(10_000).await?;
        let mut by_topic: BTreeMap<String, Vec<(String, OutboxMessage)>> = BTreeMap::new();
        for (k, m) in pending {
            by_topic
                .entry(m.topic_arn.clone())
                .or_default()
                .push((k, m));
        }
        for (topic, messages) in by_topic {
            let Some(target) = self.target(&topic) else {
                if self.lock_warned().insert(topic.clone()) {
                    tracing::warn!(
                        topic = %topic,
                        "vault notifications for this SNS topic have no target configured ([[notification_targets]]); they are kept as dead letters (add a target, then replay them: coffer notifications replay)"
                    );
                }
                for (k, m) in messages {
                    tracing::warn!(topic = %m.topic_arn, event = %m.event, id = %m.id, vault = %m.vault_name, reason = NO_TARGET, "notification dead-lettered");
                    self.outbox.give_up(&k, NO_TARGET).await?;
                }
                continue;
            };
            if !self.lock_busy().insert(topic.clone()) {
                continue;
            }
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.deliver_topic(&target, messages).await {
                    tracing::warn!(topic = %target.topic_arn, error = %e, "notification delivery failed");
                }
                me.lock_busy().remove(&target.topic_arn);
            });
        }
        Ok(())
    }

    /// Resolves once no topic is being delivered.
    async fn idle(&self) {
        while !self.lock_busy().is_empty() {
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    }

    fn lock_busy(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_warned(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.warned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Delivers one topic's messages in order under the topic's lease in the store (so that,
    /// with several nodes, one delivers each topic), renewing the lease while it works, then
    /// lets the lease go.
    async fn deliver_topic(
        &self,
        target: &NotificationTarget,
        messages: Vec<(String, OutboxMessage)>,
    ) -> Result<()> {
        let renewal = Renewal::start(self.outbox.clone(), &self.holder, &target.topic_arn);
        let delivered = self.deliver_held(target, messages, &renewal).await;
        renewal.stop().await;
        let released = self.outbox.release(&self.holder, &target.topic_arn).await;
        delivered?;
        Ok(released?)
    }

    /// Delivers the messages in order, stopping at the first that is not due or fails, or
    /// when another node holds the topic. Each message is read again under the renewed
    /// lease first: one another node delivered meanwhile is skipped.
    async fn deliver_held(
        &self,
        target: &NotificationTarget,
        messages: Vec<(String, OutboxMessage)>,
        renewal: &Renewal,
    ) -> Result<()> {
        for (key, _) in messages {
            if renewal.lost() {
                return Ok(());
            }
            let claimed = match self
                .outbox
                .claim(&self.holder, &target.topic_arn, &key)
                .await?
            {
                OutboxClaim::Deliver(c) => *c,
                OutboxClaim::Gone => continue,
                OutboxClaim::NotDue | OutboxClaim::HeldElsewhere => return Ok(()),
            };
            renewal.sending(Some(&key));
            let settled = self.attempt(target, &key, claimed).await;
            renewal.sending(None);
            if !settled? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// One attempt at a claimed message, settled in the store (delivered, failed, given up)
    /// or, when it cannot start well inside the lease, left for the next pass. Answers
    /// whether the topic's next message may follow.
    async fn attempt(&self, target: &NotificationTarget, key: &str, c: Claimed) -> Result<bool> {
        let m = c.message;
        if let Some(previous) = &c.interrupted {
            tracing::warn!(topic = %m.topic_arn, event = %m.event, id = %m.id, previous_holder = %previous.holder, "notification was being sent by a worker that stopped or lost its lease before recording the outcome; sending it again (the subscriber may get it twice)");
        }
        let now = Utc::now();
        if m.attempts >= MAX_ATTEMPTS || now - m.queued_at > Duration::hours(GIVE_UP_AFTER_HOURS) {
            let reason = format!(
                "gave up after {} attempts: {}",
                m.attempts,
                m.last_error.as_deref().unwrap_or("no attempt succeeded")
            );
            tracing::warn!(topic = %m.topic_arn, event = %m.event, id = %m.id, vault = %m.vault_name, %reason, "notification dead-lettered");
            self.outbox.give_up(key, &reason).await?;
            return Ok(true);
        }
        let Some(budget) = attempt_budget(c.until, Utc::now(), self.outbox.lease()) else {
            tracing::info!(topic = %m.topic_arn, id = %m.id, "the notification lease was nearly over before the attempt could start; trying again");
            self.outbox.not_sent(&self.holder, key).await?;
            return Ok(false);
        };
        match self.send(target, &m, budget).await {
            Ok(()) => {
                // Recorded before anything else: until then a crash sends the message again.
                self.outbox.delivered(key).await?;
                tracing::info!(topic = %m.topic_arn, event = %m.event, id = %m.id, vault = %m.vault_name, attempt = m.attempts + 1, "notification delivered");
                Ok(true)
            }
            Err(e) => {
                let wait = backoff(m.attempts + 1);
                tracing::info!(topic = %m.topic_arn, event = %m.event, id = %m.id, attempt = m.attempts + 1, error = %format!("{e:#}"), retry_in_secs = wait.num_seconds(), "notification not delivered yet");
                self.outbox
                    .attempt_failed(key, &format!("{e:#}"), now + wait)
                    .await?;
                Ok(false)
            }
        }
    }

    /// Sends one message; the attempt is abandoned after `budget`.
    async fn send(
        &self,
        target: &NotificationTarget,
        m: &OutboxMessage,
        budget: StdDuration,
    ) -> Result<()> {
        let (url, headers, body) = match (&target.webhook, &target.sns_endpoint) {
            (Some(url), _) => {
                let (h, b) = webhook_request(m)?;
                (url.clone(), h, b)
            }
            (None, Some(url)) => {
                let (h, b) = publish_request(target, url, m, Utc::now())?;
                (url.clone(), h, b)
            }
            (None, None) => bail!("the target has neither webhook nor sns_endpoint"),
        };
        let resp = self
            .client
            .post(&url)
            .headers(headers)
            .body(body)
            .timeout(budget)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let text: String = text.chars().take(300).collect();
            bail!("POST {url} answered {status}: {text}");
        }
        Ok(())
    }
}

/// How long an attempt under a lease ending at `until` may take from `now`: at most
/// [`ATTEMPT_TIMEOUT`], ending a fifteenth of the lease before it does; `None` when that
/// leaves less than [`MIN_ATTEMPT`].
fn attempt_budget(
    until: DateTime<Utc>,
    now: DateTime<Utc>,
    lease: Duration,
) -> Option<StdDuration> {
    let left = (until - now - lease / LEASE_MARGIN_DIVISOR).to_std().ok()?;
    let budget = left.min(ATTEMPT_TIMEOUT);
    (budget >= MIN_ATTEMPT).then_some(budget)
}

/// Keeps a topic's lease (and the mark of the message on its way) renewed while an attempt
/// runs: a slow subscriber or a slow store write must not let the lease run out under a live
/// worker, or another node would send the message again.
struct Renewal {
    shared: Arc<RenewalShared>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct RenewalShared {
    /// The key of the message on its way, if any.
    sending: Mutex<Option<String>>,
    /// The lease was found taken by another worker.
    lost: AtomicBool,
}

impl Renewal {
    fn start(outbox: Outbox, holder: &str, topic: &str) -> Renewal {
        let shared = Arc::new(RenewalShared::default());
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let every = (outbox.lease() / RENEWALS_PER_LEASE)
            .to_std()
            .unwrap_or(StdDuration::from_secs(1));
        let (s, holder, topic) = (shared.clone(), holder.to_string(), topic.to_string());
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let key = s.sending.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let Some(key) = key else { continue };
                match outbox.renew(&holder, &topic, &key).await {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        tracing::warn!(topic = %topic, "another worker took this topic's notification lease while a message was on its way (this worker stalled longer than the lease); this worker stops delivering the topic after the attempt");
                        s.lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(topic = %topic, error = %format!("{e:#}"), "renewing the notification lease failed; trying again")
                    }
                }
            }
        });
        Renewal { shared, stop, task }
    }

    /// Says which message is on its way (`None`: none).
    fn sending(&self, key: Option<&str>) {
        *self
            .shared
            .sending
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = key.map(str::to_string);
    }

    fn lost(&self) -> bool {
        self.shared.lost.load(Ordering::SeqCst)
    }

    /// Stops renewing, after the renewal under way (so that none lands after the release).
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The dead-letter reason of a message whose topic has no target.
pub const NO_TARGET: &str = "no target configured for topic";

fn by_topic(targets: &[NotificationTarget]) -> HashMap<String, NotificationTarget> {
    targets
        .iter()
        .map(|t| (t.topic_arn.clone(), t.clone()))
        .collect()
}

/// The wait after `attempts` failed attempts: 1, 2, 4, ... seconds, at most five minutes.
fn backoff(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(16);
    Duration::seconds((1i64 << exp).min(MAX_BACKOFF_SECS))
}

fn header(v: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(v).with_context(|| format!("header value '{v}'"))
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The JSON envelope SNS posts to HTTP subscribers (unsigned: no Signature fields).
pub fn webhook_envelope(m: &OutboxMessage) -> serde_json::Value {
    let attributes: serde_json::Map<String, serde_json::Value> = m
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!({"Type": "String", "Value": v})))
        .collect();
    serde_json::json!({
        "Type": "Notification",
        "MessageId": m.id,
        "TopicArn": m.topic_arn,
        "Subject": m.subject,
        "Message": m.message,
        "Timestamp": timestamp(m.timestamp),
        "MessageAttributes": attributes,
    })
}

fn webhook_request(m: &OutboxMessage) -> Result<(HeaderMap, Vec<u8>)> {
    let mut h = HeaderMap::new();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    h.insert(
        "x-amz-sns-message-type",
        HeaderValue::from_static("Notification"),
    );
    h.insert("x-amz-sns-message-id", header(&m.id)?);
    h.insert("x-amz-sns-topic-arn", header(&m.topic_arn)?);
    h.insert(
        "user-agent",
        HeaderValue::from_static("Coffer notification delivery"),
    );
    Ok((h, serde_json::to_vec(&webhook_envelope(m))?))
}

/// Form encoding as the AWS Query protocol wants it (unreserved characters kept).
const FORM_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The form fields of an SNS `Publish` call for `m`.
pub fn publish_form(m: &OutboxMessage) -> Vec<(String, String)> {
    let mut f = vec![
        ("Action".to_string(), "Publish".to_string()),
        ("Version".to_string(), "2010-03-31".to_string()),
        ("TopicArn".to_string(), m.topic_arn.clone()),
        ("Subject".to_string(), m.subject.clone()),
        ("Message".to_string(), m.message.clone()),
    ];
    for (i, (k, v)) in m.attributes.iter().enumerate() {
        let n = i + 1;
        f.push((format!("MessageAttributes.entry.{n}.Name"), k.clone()));
        f.push((
            format!("MessageAttributes.entry.{n}.Value.DataType"),
            "String".into(),
        ));
        f.push((
            format!("MessageAttributes.entry.{n}.Value.StringValue"),
            v.clone(),
        ));
    }
    f
}

fn publish_request(
    target: &NotificationTarget,
    url: &str,
    m: &OutboxMessage,
    now: DateTime<Utc>,
) -> Result<(HeaderMap, Vec<u8>)> {
    let body = publish_form(m)
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, FORM_SET),
                utf8_percent_encode(v, FORM_SET)
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    let parsed = reqwest::Url::parse(url).with_context(|| format!("'{url}' is not a URL"))?;
    let host = match (parsed.host_str(), parsed.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => bail!("'{url}' has no host"),
    };
    let mut h = HeaderMap::new();
    h.insert("host", header(&host)?);
    h.insert(
        "content-type",
        HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
    );
    let path = if parsed.path().is_empty() {
        "/"
    } else {
        parsed.path()
    };
    coffer_api::sigv4::sign(
        coffer_api::sigv4::OutgoingRequest {
            method: "POST",
            raw_path: path,
            raw_query: parsed.query().unwrap_or(""),
            headers: &mut h,
            body: body.as_bytes(),
        },
        target.access_key_id.as_deref().unwrap_or_default(),
        target.secret_access_key.as_deref().unwrap_or_default(),
        &target.signing_region(),
        "sns",
        now,
    )
    .map_err(|e| anyhow::anyhow!("signing the Publish request: {}", e.message()))?;
    Ok((h, body.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> OutboxMessage {
        OutboxMessage {
            id: "m-1".into(),
            topic_arn: "arn:aws:sns:us-east-1:000000000000:t".into(),
            account: "000000000000".into(),
            region: "us-east-1".into(),
            vault_name: "v".into(),
            event: coffer_api::types::BackupVaultEvent::BackupJobCompleted,
            subject: "Notification from AWS Backup".into(),
            message: "An AWS Backup job was completed successfully. Recovery point ARN: x".into(),
            attributes: BTreeMap::from([
                ("EventType".into(), "BACKUP_JOB".into()),
                ("State".into(), "COMPLETED".into()),
            ]),
            timestamp: Utc::now(),
            attempts: 0,
            next_attempt: None,
            queued_at: Utc::now(),
            last_error: None,
            dead_reason: None,
            sending: None,
        }
    }

    #[test]
    fn an_attempt_ends_well_inside_the_lease_it_started_under() {
        let lease = Duration::seconds(30);
        let now = Utc::now();
        assert_eq!(
            attempt_budget(now + lease, now, lease),
            Some(ATTEMPT_TIMEOUT)
        );
        assert_eq!(
            attempt_budget(now + Duration::seconds(10), now, lease),
            Some(StdDuration::from_secs(8)),
            "two seconds before the lease ends"
        );
        assert_eq!(attempt_budget(now + Duration::seconds(2), now, lease), None);
        assert_eq!(attempt_budget(now - Duration::seconds(1), now, lease), None);
    }

    /// A webhook that records each request on arrival and answers only once `open` says so.
    async fn held_webhook() -> (
        std::net::SocketAddr,
        Arc<std::sync::atomic::AtomicUsize>,
        tokio::sync::watch::Sender<bool>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (open, opened) = tokio::sync::watch::channel(false);
        let g = got.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (g, mut opened) = (g.clone(), opened.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Headers and the whole body (Content-Length) make one request.
                    loop {
                        let n = conn.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        let Some(end) = text.find("\r\n\r\n") else {
                            continue;
                        };
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                    g.fetch_add(1, Ordering::SeqCst);
                    let _ = opened.wait_for(|o| *o).await;
                    let _ = conn
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                });
            }
        });
        (addr, got, open)
    }

    async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + StdDuration::from_secs(20);
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    }

    /// Two workers on one store, one topic, a subscriber slower than the lease's renewal
    /// interval: the worker sending renews its lease and the message's mark while the POST is
    /// on its way, the other finds the topic held the whole time and never sends, and the
    /// message goes out once.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_send_outlasting_the_renewal_interval_keeps_the_topic_and_goes_out_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let store = coffer_store::StoreHandle::open(path.to_str().unwrap()).unwrap();
        let m = message();
        let key = format!("{:020}:{}", Utc::now().timestamp_micros(), m.id);
        let (k, v) = (key.clone(), serde_json::to_vec(&m).unwrap());
        store
            .write(move |tx| tx.put("outbox", &k, &v))
            .await
            .unwrap();
        let (addr, got, open) = held_webhook().await;
        let target = NotificationTarget {
            topic_arn: m.topic_arn.clone(),
            webhook: Some(format!("http://{addr}/hook")),
            sns_endpoint: None,
            access_key_id: None,
            secret_access_key: None,
            region: None,
        };
        // A 6-second lease: renewed every second, an attempt may take 5.6 s.
        let outbox = Outbox::with_lease(store.clone(), Duration::seconds(6));
        let worker =
            || Arc::new(Delivery::new(outbox.clone(), std::slice::from_ref(&target)).unwrap());
        let (a, b) = (worker(), worker());
        let mark = || async {
            let pending = outbox.pending(10).await.unwrap();
            pending.into_iter().find_map(|(_, m)| m.sending)
        };
        a.pass().await.unwrap();
        wait_for("the POST arrived", async || {
            (got.load(Ordering::SeqCst) == 1).then_some(())
        })
        .await;
        let first = mark().await.expect("the message is marked as on its way");
        assert_eq!(first.holder, a.holder);
        wait_for("the lease renewed during the POST", async || {
            mark().await.filter(|s| s.until > first.until)
        })
        .await;
        b.pass().await.unwrap();
        b.idle().await;
        assert_eq!(got.load(Ordering::SeqCst), 1, "B left A's topic alone");
        open.send(true).unwrap();
        a.idle().await;
        assert_eq!(outbox.counts().await.unwrap().pending, 0, "A recorded it");
        b.pass().await.unwrap();
        b.idle().await;
        assert_eq!(got.load(Ordering::SeqCst), 1, "sent once");
        let topic = m.topic_arn.clone();
        let lease = store
            .read(move |tx| tx.get("outbox_lease", &topic))
            .await
            .unwrap();
        assert!(lease.is_none(), "A let the topic go");
    }

    /// A worker that died in the middle of an attempt: the other worker leaves its message
    /// alone while that worker's lease and one more run, then sends it (the one case of a
    /// message sent again).
    #[tokio::test(flavor = "multi_thread")]
    async fn a_message_whose_worker_died_mid_attempt_is_sent_again_after_one_more_lease() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let store = coffer_store::StoreHandle::open(path.to_str().unwrap()).unwrap();
        let m = message();
        let key = format!("{:020}:{}", Utc::now().timestamp_micros(), m.id);
        let (k, v) = (key.clone(), serde_json::to_vec(&m).unwrap());
        store
            .write(move |tx| tx.put("outbox", &k, &v))
            .await
            .unwrap();
        let (addr, got, open) = held_webhook().await;
        open.send(true).unwrap();
        let target = NotificationTarget {
            topic_arn: m.topic_arn.clone(),
            webhook: Some(format!("http://{addr}/hook")),
            sns_endpoint: None,
            access_key_id: None,
            secret_access_key: None,
            region: None,
        };
        let lease = Duration::seconds(3);
        let outbox = Outbox::with_lease(store.clone(), lease);
        let OutboxClaim::Deliver(dead) = outbox.claim("dead", &m.topic_arn, &key).await.unwrap()
        else {
            panic!("the first worker claims the message");
        };
        let b = Arc::new(Delivery::new(outbox.clone(), std::slice::from_ref(&target)).unwrap());
        b.pass().await.unwrap();
        b.idle().await;
        assert_eq!(
            got.load(Ordering::SeqCst),
            0,
            "the dead worker's lease holds"
        );
        wait_for("one more lease after the dead worker's", async || {
            (Utc::now() > dead.until + lease).then_some(())
        })
        .await;
        b.pass().await.unwrap();
        b.idle().await;
        assert_eq!(got.load(Ordering::SeqCst), 1, "sent again once");
        assert_eq!(outbox.counts().await.unwrap().pending, 0);
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(backoff(1).num_seconds(), 1);
        assert_eq!(backoff(2).num_seconds(), 2);
        assert_eq!(backoff(4).num_seconds(), 8);
        assert_eq!(backoff(30).num_seconds(), 300);
    }

    #[test]
    fn envelope_has_the_sns_fields() {
        let e = webhook_envelope(&message());
        assert_eq!(e["Type"], "Notification");
        assert_eq!(e["Subject"], "Notification from AWS Backup");
        assert_eq!(
            e["MessageAttributes"]["State"],
            serde_json::json!({"Type": "String", "Value": "COMPLETED"})
        );
    }

    #[test]
    fn publish_is_signed_form() {
        let t = NotificationTarget {
            topic_arn: "arn:aws:sns:eu-west-1:000000000000:t".into(),
            webhook: None,
            sns_endpoint: Some("http://127.0.0.1:4566/".into()),
            access_key_id: Some("AKID".into()),
            secret_access_key: Some("secret".into()),
            region: None,
        };
        t.check().unwrap();
        let (h, body) =
            publish_request(&t, "http://127.0.0.1:4566/", &message(), Utc::now()).unwrap();
        let body = String::from_utf8(body).unwrap();
        assert!(body.starts_with("Action=Publish&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns"));
        assert!(body.contains("MessageAttributes.entry.1.Name=EventType"));
        let auth = h["authorization"].to_str().unwrap();
        assert!(auth.contains("/eu-west-1/sns/aws4_request"), "{auth}");
        assert_eq!(h["host"], "127.0.0.1:4566");
    }

    #[test]
    fn targets_are_checked() {
        let mut t = NotificationTarget {
            topic_arn: "arn:aws:sns:us-east-1:000000000000:t".into(),
            webhook: Some("http://127.0.0.1:9000/hook".into()),
            sns_endpoint: None,
            access_key_id: None,
            secret_access_key: None,
            region: None,
        };
        t.check().unwrap();
        t.sns_endpoint = Some("http://x".into());
        assert!(t.check().is_err());
        t.webhook = None;
        assert!(t.check().unwrap_err().to_string().contains("access_key_id"));
        t.topic_arn = "topic".into();
        assert!(t.check().is_err());
    }
}
