//! Due-time queues: what the scheduler and the lifecycle sweep read instead of every plan and
//! every recovery point.
//!
//! Each queue is a table of the store whose keys start with a fixed-width sortable time
//! (`2026-12-03T05:00:00.000000Z:...`), so key order is due order: a pass scans from the start
//! and stops at the first entry after its now, reading O(1) records when nothing is due
//! however many plans or points exist. The model keeps the entries in the same transaction as
//! the record they follow (docs/architecture.md, "Indexes"):
//!
//! - `sched_due` (key `TIME:ACCOUNT:REGION:PLANID:RULEID`, value the rule key): each rule's
//!   next firing, the same time as its `sched_rule` record's `next`. Written when a plan
//!   version is saved ([`schedule_rules`]), moved by each firing ([`set_rule`]), removed when
//!   the plan is deleted ([`unschedule_rules`]).
//! - `lifecycle_due` (key `TIME:RPKEY`, value the recovery point key): each recovery point's
//!   next lifecycle date (cold move or deletion); `lifecycle_due_of` maps the point's key to
//!   its entry so a change moves it. The sweep re-checks the point (and its vault lock) when
//!   an entry is due and re-queues it at whatever comes next.
//!
//! `due_backfill` records that a queue was built from the records of a store written before
//! the queues existed (built once, in bounded batches, by the worker that reads the queue).

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use coffer_api::types::BackupRule;
use coffer_cron::Schedule;
use coffer_store::Txn;
use serde::{Deserialize, Serialize};

use crate::model::error::Result;

/// Each rule's next firing: key `ACCOUNT:REGION:PLANID:RULEID`.
pub(crate) const SCHED_RULE: &str = "sched_rule";
/// The rules' next firings in time order.
pub(crate) const SCHED_DUE: &str = "sched_due";
/// The recovery points' next lifecycle dates in time order.
pub(crate) const LIFECYCLE_DUE: &str = "lifecycle_due";
/// A recovery point's key to its `lifecycle_due` entry.
pub(crate) const LIFECYCLE_DUE_OF: &str = "lifecycle_due_of";
/// Which queues were built from an older store's records (keys `sched`, `lifecycle`).
pub(crate) const BACKFILL: &str = "due_backfill";

/// Length of the time at the start of a due key.
const STAMP_LEN: usize = 27;

/// `at` as a fixed-width sortable stamp (microseconds, UTC, rounded up so an entry is never
/// due before its time; years outside 1000..=9999 are clamped).
pub(crate) fn stamp(at: DateTime<Utc>) -> String {
    let sub = at.timestamp_subsec_nanos() % 1_000;
    let at = if sub == 0 {
        at
    } else {
        at + chrono::Duration::nanoseconds(i64::from(1_000 - sub))
    };
    let last = Utc
        .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
        .single()
        .unwrap_or(at);
    let first = Utc
        .with_ymd_and_hms(1000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(at);
    at.clamp(first, last)
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The key of an entry due at `at` for `what`.
pub(crate) fn due_key(at: DateTime<Utc>, what: &str) -> String {
    format!("{}:{what}", stamp(at))
}

/// The time at the start of a due key.
pub(crate) fn due_time(key: &str) -> Option<DateTime<Utc>> {
    let s = key.get(..STAMP_LEN)?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// What a scan of a due queue found.
#[derive(Debug, Default)]
pub(crate) struct DueScan {
    /// Entries due at or before the scan's now, in due order: (key, value).
    pub entries: Vec<(String, String)>,
    /// The time of the first entry after now, when the scan reached it.
    pub next: Option<DateTime<Utc>>,
    /// The scan stopped at its limit: more entries are due.
    pub more: bool,
}

/// Entries of `table` due at or before `now`, in due order, strictly after `start_after`,
/// at most `limit` of them, and the first entry after `now` (one more record read).
pub(crate) fn due_entries(
    tx: &mut dyn Txn,
    table: &str,
    now: DateTime<Utc>,
    start_after: Option<&str>,
    limit: usize,
) -> Result<DueScan> {
    // The first read is of one record (an idle pass reads no more); each next one doubles.
    let mut batch = 1usize;
    let mut out = DueScan::default();
    let mut cursor = start_after.map(str::to_string);
    loop {
        let want = batch.min(limit + 1 - out.entries.len());
        batch = (batch * 2).min(256);
        let rows = tx.scan(table, "", cursor.as_deref(), want)?;
        let short = rows.len() < want;
        for (k, v) in rows {
            cursor = Some(k.clone());
            // A key that is not a due key was never written by Coffer: passed over.
            let Some(at) = due_time(&k) else { continue };
            if at > now {
                out.next = Some(at);
                return Ok(out);
            }
            if out.entries.len() == limit {
                out.more = true;
                return Ok(out);
            }
            out.entries
                .push((k, String::from_utf8_lossy(&v).into_owned()));
        }
        if short {
            return Ok(out);
        }
    }
}

/// The time of the first entry of `table` (what is due next, or overdue).
pub(crate) fn first_due(tx: &mut dyn Txn, table: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(tx
        .scan(table, "", None, 1)?
        .first()
        .and_then(|(k, _)| due_time(k)))
}

/// Whether the queue `which` still has to be built from an older store's records.
pub(crate) fn needs_backfill(tx: &mut dyn Txn, which: &str) -> Result<bool> {
    Ok(tx.get(BACKFILL, which)?.is_none())
}

/// Records that the queue `which` was built.
pub(crate) fn backfilled(tx: &mut dyn Txn, which: &str, at: DateTime<Utc>) -> Result<()> {
    tx.put(BACKFILL, which, stamp(at).as_bytes())?;
    Ok(())
}

// ---- the scheduler's queue ----

/// Where a rule's schedule stands (table `sched_rule`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RuleState {
    /// The schedule `next` was computed for; a different one (UpdateBackupPlan) starts over.
    pub expression: String,
    pub timezone: String,
    /// The next scheduled time not yet fired (`None`: the schedule never runs again).
    pub next: Option<DateTime<Utc>>,
}

pub(crate) fn rule_key(account: &str, region: &str, plan_id: &str, rule_id: &str) -> String {
    format!("{account}:{region}:{plan_id}:{rule_id}")
}

/// A rule's schedule expression and timezone, with AWS's defaults.
pub(crate) fn rule_schedule(rule: &BackupRule) -> (String, String) {
    (
        rule.schedule_expression
            .clone()
            .unwrap_or_else(|| Schedule::DEFAULT_EXPRESSION.into()),
        rule.schedule_expression_timezone
            .clone()
            .unwrap_or_else(|| Schedule::DEFAULT_TIMEZONE.into()),
    )
}

/// The stored state of rule `rk`.
pub(crate) fn load_rule(tx: &mut dyn Txn, rk: &str) -> Result<Option<RuleState>> {
    Ok(match tx.get(SCHED_RULE, rk)? {
        Some(v) => Some(serde_json::from_slice(&v)?),
        None => None,
    })
}

/// Stores `state` for rule `rk` and moves its `sched_due` entry from `old`'s next firing to
/// `state`'s.
pub(crate) fn set_rule(
    tx: &mut dyn Txn,
    rk: &str,
    old: Option<&RuleState>,
    state: &RuleState,
) -> Result<()> {
    if let Some(at) = old.and_then(|o| o.next)
        && Some(at) != state.next
    {
        tx.delete(SCHED_DUE, &due_key(at, rk))?;
    }
    tx.put(SCHED_RULE, rk, &serde_json::to_vec(state)?)?;
    if let Some(at) = state.next {
        tx.put(SCHED_DUE, &due_key(at, rk), rk.as_bytes())?;
    }
    Ok(())
}

/// Forgets rule `rk`: its state and its queue entry.
pub(crate) fn forget_rule(tx: &mut dyn Txn, rk: &str) -> Result<()> {
    if let Some(old) = load_rule(tx, rk)? {
        if let Some(at) = old.next {
            tx.delete(SCHED_DUE, &due_key(at, rk))?;
        }
        tx.delete(SCHED_RULE, rk)?;
    }
    Ok(())
}

/// Queues the rules of a plan version written at `since`: a rule whose schedule is unchanged
/// keeps its next firing; a new rule (or one whose schedule changed) fires next after
/// `since`. Rules of `previous` (the version it replaces) that are gone are forgotten. A rule
/// whose schedule cannot be evaluated is left out (and logged).
pub(crate) fn schedule_rules(
    tx: &mut dyn Txn,
    (account, region, plan_id): (&str, &str, &str),
    since: DateTime<Utc>,
    rules: &[BackupRule],
    previous: &[BackupRule],
) -> Result<()> {
    for old in previous {
        if let Some(id) = &old.rule_id
            && !rules.iter().any(|r| r.rule_id.as_ref() == Some(id))
        {
            forget_rule(tx, &rule_key(account, region, plan_id, id))?;
        }
    }
    for rule in rules {
        let Some(rule_id) = &rule.rule_id else {
            continue;
        };
        let rk = rule_key(account, region, plan_id, rule_id);
        let (expression, timezone) = rule_schedule(rule);
        let stored = load_rule(tx, &rk)?;
        if stored
            .as_ref()
            .is_some_and(|s| s.expression == expression && s.timezone == timezone)
        {
            continue;
        }
        let next = match Schedule::parse(&expression, &timezone) {
            Ok(s) => s.next_after(since),
            Err(e) => {
                tracing::warn!(plan = %plan_id, rule = %rule.rule_name, error = %e, "rule schedule cannot be evaluated; it does not fire");
                None
            }
        };
        let state = RuleState {
            expression,
            timezone,
            next,
        };
        set_rule(tx, &rk, stored.as_ref(), &state)?;
    }
    Ok(())
}

/// Removes the rules of a deleted plan from the queue.
pub(crate) fn unschedule_rules(
    tx: &mut dyn Txn,
    (account, region, plan_id): (&str, &str, &str),
    rules: &[BackupRule],
) -> Result<()> {
    for rule in rules {
        if let Some(id) = &rule.rule_id {
            forget_rule(tx, &rule_key(account, region, plan_id, id))?;
        }
    }
    Ok(())
}

// ---- the lifecycle's queue ----

/// Queues the recovery point at `rp_key` at `at` (`None`: nothing to do, it leaves the queue),
/// moving its earlier entry.
pub(crate) fn queue_lifecycle(
    tx: &mut dyn Txn,
    rp_key: &str,
    at: Option<DateTime<Utc>>,
) -> Result<()> {
    let new = at.map(|t| due_key(t, rp_key));
    let old = tx
        .get(LIFECYCLE_DUE_OF, rp_key)?
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    if old == new {
        return Ok(());
    }
    if let Some(o) = &old {
        tx.delete(LIFECYCLE_DUE, o)?;
    }
    match &new {
        Some(n) => {
            tx.put(LIFECYCLE_DUE, n, rp_key.as_bytes())?;
            tx.put(LIFECYCLE_DUE_OF, rp_key, n.as_bytes())?;
        }
        None => {
            tx.delete(LIFECYCLE_DUE_OF, rp_key)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_sort_as_times_do() {
        let a = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let b = a + chrono::Duration::microseconds(1);
        let c = a + chrono::Duration::days(400);
        let (sa, sb, sc) = (stamp(a), stamp(b), stamp(c));
        assert_eq!(sa.len(), STAMP_LEN);
        assert!(sa < sb && sb < sc);
        assert_eq!(due_time(&due_key(b, "x:y")), Some(b));
        let odd = b + chrono::Duration::nanoseconds(1);
        assert_eq!(
            due_time(&due_key(odd, "x")),
            Some(b + chrono::Duration::microseconds(1)),
            "rounded up: never due early"
        );
        let far = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(
            stamp(far + chrono::Duration::days(5)).len(),
            STAMP_LEN,
            "clamped"
        );
    }
}
