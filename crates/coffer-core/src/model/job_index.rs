//! The jobs' secondary indexes: what lets a List*Jobs call read one page of the jobs it asks
//! for instead of every job of the account.
//!
//! The indexes are entries of table `job_index` in the same store, written by
//! `jobs::save_job` (and `jobs::enqueue`) in the transaction that writes the job, so a job
//! and its entries always agree. Every key starts with the job's scope
//! (`KIND:ACCOUNT:REGION:`) and ends with its position in the order the API lists in,
//! `CREATED:ID` (`CREATED` in zero-padded microseconds), so the keys of one index read in key
//! order are the jobs oldest first:
//!
//! - `SCOPE created:POS`, one per job, its value a [`Summary`] (what the job summaries count);
//! - `SCOPE FIELD=VALUE:POS` for each [`Field`] the job has a value for (state, vault, resource
//!   ARN and type, destination vault, recovery point, restore testing plan), `VALUE` escaped
//!   so that it never contains `:`;
//! - `SCOPE FIELD+state=VALUE|STATE:POS` for the fields a listing often gives together with a
//!   state (vault, resource type, destination vault): the rule is that a state, which few
//!   values share among many jobs, is paired with each field that is not selective enough on
//!   its own, so "the FAILED jobs of vault v" reads exactly those jobs (the resource ARN,
//!   recovery point and restore testing plan are selective enough alone);
//! - `SCOPE completed:COMPLETED:POS` once the job has a completion date.
//!
//! A listing scans one index from the position its NextToken names, loads each job by key,
//! checks the rest of the filter and stops after one page ([`page`]). A store written before
//! these indexes is indexed once by [`backfill`], in bounded batches behind a cursor in table
//! `job_index_meta`; until it has finished ([`built`]), listings read every job as before.
//! A store indexed before the paired entries existed gets them by a second pass of the same
//! backfill; until that has finished ([`pairs_built`]), listings read the single-field
//! indexes.
//! A job deleted by the history pruner takes its entries with it ([`unindex`]).
//!
//! The same saves keep the per-day job counts (`model::job_counts`); a third pass of the
//! backfill counts the jobs of a store written before them ([`counts_built`], [`counted`]).

use chrono::{DateTime, Utc};
use coffer_api::ApiError;
use coffer_store::{Prefetched, Txn};
use serde::{Deserialize, Serialize};

use crate::model::error::Result;
pub(crate) use crate::model::job_counts::Summary;
use crate::model::job_counts::escape;
use crate::model::queue::job_key;
use crate::model::states::{JobKind, JobState};
use crate::model::{Meta, job_counts, paging};

pub(crate) const TABLE: &str = "job_index";
const META: &str = "job_index_meta";
const BACKFILL_KEY: &str = "backfill";
/// The cursor of the pass that adds the paired entries ([`Field::paired`]) to jobs indexed
/// before they existed.
const PAIRS_KEY: &str = "backfill_pairs";
/// The cursor of the pass that counts the jobs written before the per-day counts.
const COUNTS_KEY: &str = "backfill_counts";
const KINDS: [JobKind; 3] = [JobKind::Backup, JobKind::Copy, JobKind::Restore];

/// What of a stored job its entries are built from; it reads a job's stored JSON as it is.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Indexed {
    pub kind: JobKind,
    pub id: String,
    pub account: String,
    pub region: String,
    pub state: JobState,
    pub creation_date: DateTime<Utc>,
    #[serde(default)]
    pub completion_date: Option<DateTime<Utc>>,
    pub vault_name: String,
    pub resource_arn: String,
    pub resource_type: String,
    #[serde(default)]
    pub message_category: Option<String>,
    #[serde(default)]
    pub dest_vault_arn: Option<String>,
    #[serde(default)]
    pub recovery_point_arn: Option<String>,
    #[serde(default)]
    pub restore_testing_plan_arn: Option<String>,
}

/// A filter a List*Jobs call may give that has an index of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    State,
    Vault,
    Resource,
    ResourceType,
    DestVault,
    RecoveryPoint,
    Plan,
    /// A vault and a state together (value [`pair`]).
    VaultState,
    /// A resource type and a state together.
    TypeState,
    /// A destination vault and a state together.
    DestState,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::State => "state",
            Field::Vault => "vault",
            Field::Resource => "resource",
            Field::ResourceType => "type",
            Field::DestVault => "dest",
            Field::RecoveryPoint => "rp",
            Field::Plan => "plan",
            Field::VaultState => "vault+state",
            Field::TypeState => "type+state",
            Field::DestState => "dest+state",
        }
    }

    /// The field that pairs this one with a state, if it has one.
    pub(crate) fn paired(self) -> Option<Field> {
        match self {
            Field::Vault => Some(Field::VaultState),
            Field::ResourceType => Some(Field::TypeState),
            Field::DestVault => Some(Field::DestState),
            _ => None,
        }
    }
}

/// The value of a paired field: `VALUE|STATE`. A state never contains `|`, so the last `|`
/// splits it again: no two pairs share a value.
pub(crate) fn pair(value: &str, state: JobState) -> String {
    format!("{value}|{}", state.as_str())
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros().max(0)
}

fn scope(kind: JobKind, account: &str, region: &str) -> String {
    format!("{}:{account}:{region}:", kind.tag())
}

fn field_prefix(kind: JobKind, account: &str, region: &str, field: Field, value: &str) -> String {
    format!(
        "{}{}={}:",
        scope(kind, account, region),
        field.name(),
        escape(value)
    )
}

fn created_prefix(kind: JobKind, account: &str, region: &str) -> String {
    format!("{}created:", scope(kind, account, region))
}

fn completed_prefix(kind: JobKind, account: &str, region: &str) -> String {
    format!("{}completed:", scope(kind, account, region))
}

/// A job's place in the listing order: `CREATED:ID`. A NextToken is one, hex-encoded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position(String);

impl Position {
    pub fn of(creation_date: DateTime<Utc>, id: &str) -> Position {
        Position(format!("{:020}:{id}", micros(creation_date)))
    }

    /// The position a key's tail names, if it is one.
    fn parse(tail: &str) -> Option<Position> {
        let (created, id) = tail.split_at_checked(20)?;
        let id = id.strip_prefix(':')?;
        let valid =
            created.bytes().all(|b| b.is_ascii_digit()) && !id.is_empty() && !id.contains(':');
        valid.then(|| Position(tail.to_string()))
    }

    fn id(&self) -> &str {
        &self.0[21..]
    }

    pub fn token(&self) -> String {
        paging::encode(&self.0)
    }

    /// The position a NextToken names, or InvalidParameterValueException.
    pub fn from_token(token: &str) -> Result<Position> {
        let tail = paging::decode(token, "")?;
        Position::parse(&tail).ok_or_else(|| {
            ApiError::invalid_parameter(
                "The NextToken is not valid for this request; start again without it.",
            )
            .into()
        })
    }
}

impl Indexed {
    fn position(&self) -> Position {
        Position::of(self.creation_date, &self.id)
    }

    fn fields(&self) -> Vec<(Field, String)> {
        let mut out = vec![
            (Field::State, self.state.as_str().to_string()),
            (Field::Vault, self.vault_name.clone()),
            (Field::Resource, self.resource_arn.clone()),
            (Field::ResourceType, self.resource_type.clone()),
        ];
        let optional = [
            (Field::DestVault, &self.dest_vault_arn),
            (Field::RecoveryPoint, &self.recovery_point_arn),
            (Field::Plan, &self.restore_testing_plan_arn),
        ];
        out.extend(
            optional
                .into_iter()
                .filter_map(|(f, v)| v.clone().map(|v| (f, v))),
        );
        let paired: Vec<(Field, String)> = out
            .iter()
            .filter_map(|(f, v)| Some((f.paired()?, pair(v, self.state))))
            .collect();
        out.extend(paired);
        out
    }

    /// The entries of this job's paired fields (what the second backfill pass adds).
    fn paired_entries(&self) -> Vec<String> {
        let pos = self.position();
        self.fields()
            .into_iter()
            .filter(|(f, _)| [Field::VaultState, Field::TypeState, Field::DestState].contains(f))
            .map(|(f, v)| {
                let prefix = field_prefix(self.kind, &self.account, &self.region, f, &v);
                format!("{prefix}{}", pos.0)
            })
            .collect()
    }

    /// What the job summaries count of this job.
    fn summary(&self) -> Summary {
        Summary {
            creation_date: self.creation_date,
            state: self.state,
            resource_type: self.resource_type.clone(),
            message_category: self.message_category.clone(),
        }
    }

    /// Adds `delta` to the count of this job's group (`model::job_counts`).
    fn count(&self, tx: &mut dyn Txn, delta: i64) -> Result<()> {
        let scope = (self.account.as_str(), self.region.as_str());
        job_counts::add(tx, self.kind, scope, &self.summary(), delta)
    }

    /// Every entry of this job: `(key, value)`.
    fn entries(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let (kind, account, region) = (self.kind, &self.account, &self.region);
        let pos = self.position();
        let mut out = vec![(
            format!("{}{}", created_prefix(kind, account, region), pos.0),
            serde_json::to_vec(&self.summary())?,
        )];
        for (field, value) in self.fields() {
            let prefix = field_prefix(kind, account, region, field, &value);
            out.push((format!("{prefix}{}", pos.0), Vec::new()));
        }
        if let Some(done) = self.completion_date {
            let prefix = completed_prefix(kind, account, region);
            out.push((
                format!("{prefix}{:020}:{}", micros(done), pos.0),
                Vec::new(),
            ));
        }
        Ok(out)
    }
}

/// Brings a job's entries from what `old` (the job as stored before, if any) had to what
/// `new` has: deletes the entries that no longer apply and writes the new or changed ones, so
/// a save that changes nothing indexed (progress, a lease) writes nothing here.
pub(crate) fn reindex(tx: &mut dyn Txn, old: Option<&Indexed>, new: &Indexed) -> Result<()> {
    if old == Some(new) {
        return Ok(());
    }
    let fresh = new.entries()?;
    let stale = match old {
        Some(o) => o.entries()?,
        None => Vec::new(),
    };
    for (k, _) in &stale {
        if !fresh.iter().any(|(f, _)| f == k) {
            tx.delete(TABLE, k)?;
        }
    }
    for (k, v) in &fresh {
        if !stale.contains(&(k.clone(), v.clone())) {
            tx.put(TABLE, k, v)?;
        }
    }
    let regrouped = old.is_none_or(|o| !job_counts::same_group(&o.summary(), &new.summary()));
    if regrouped && counted(tx, new)? {
        if let Some(o) = old {
            o.count(tx, -1)?;
        }
        new.count(tx, 1)?;
    }
    Ok(())
}

/// Whether `job`'s saves keep the per-day counts: once the backfill's counting pass has
/// reached it (a job it has not reached yet is counted as it then is, when it is).
fn counted(tx: &mut dyn Txn, job: &Indexed) -> Result<bool> {
    let state = backfill_state(tx, COUNTS_KEY)?;
    if state.done {
        return Ok(true);
    }
    let place = KINDS.iter().position(|k| *k == job.kind).unwrap_or(0);
    let key = job_key(&job.account, &job.region, &job.id);
    Ok(place < state.kind
        || (place == state.kind && state.after.as_deref().is_some_and(|a| key.as_str() <= a)))
}

/// Whether every job is in the per-day counts (the backfill's counting pass has finished):
/// until then the summaries read every job of their period.
#[cfg(test)]
pub(crate) fn counts_built(tx: &mut dyn Txn) -> Result<bool> {
    Ok(backfill_state(tx, COUNTS_KEY)?.done)
}

/// Deletes the entries of the record `key` of `table`, when that is a job table and the
/// record exists (the history pruner calls it before deleting the record).
pub(crate) fn unindex(tx: &mut dyn Txn, table: &str, key: &str) -> Result<()> {
    if !KINDS.iter().any(|k| k.table() == table) {
        return Ok(());
    }
    let Some(value) = tx.get(table, key)? else {
        return Ok(());
    };
    let Ok(job) = serde_json::from_slice::<Indexed>(&value) else {
        return Ok(());
    };
    for (k, _) in job.entries()? {
        tx.delete(TABLE, &k)?;
    }
    if counted(tx, &job)? {
        job.count(tx, -1)?;
    }
    Ok(())
}

/// Where the backfill of jobs written before the indexes stands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Backfill {
    /// Index into [`KINDS`].
    kind: usize,
    /// The last job key read in that kind's table.
    after: Option<String>,
    done: bool,
}

fn backfill_state(tx: &mut dyn Txn, key: &str) -> Result<Backfill> {
    Ok(match tx.get(META, key)? {
        Some(v) => serde_json::from_slice(&v)?,
        None => Backfill::default(),
    })
}

/// Which passes of the job backfill ([`backfill`]) are complete: every job indexed, every job
/// with its paired entries, every job in the per-day counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Passes {
    pub indexed: bool,
    pub paired: bool,
    pub counted: bool,
}

/// The names under which [`Meta::seen_built`] remembers the passes seen complete.
const SEEN_INDEXED: &str = "job_index";
const SEEN_PAIRED: &str = "job_index_pairs";
const SEEN_COUNTED: &str = "job_index_counts";

impl Passes {
    /// The passes this process has seen complete (a pass never comes undone, so a listing
    /// does not read their state again: on PostgreSQL each read is a round trip).
    pub(crate) fn seen(meta: &Meta) -> Passes {
        Passes {
            indexed: meta.seen_built(SEEN_INDEXED),
            paired: meta.seen_built(SEEN_PAIRED),
            counted: meta.seen_built(SEEN_COUNTED),
        }
    }

    /// `self` with the passes not known complete read from the store (one `get_many`).
    pub(crate) fn read(self, tx: &mut dyn Txn) -> Result<Passes> {
        let wanted: Vec<(&str, bool)> = [
            (BACKFILL_KEY, self.indexed),
            (PAIRS_KEY, self.paired),
            (COUNTS_KEY, self.counted),
        ]
        .into_iter()
        .filter(|(_, known)| !known)
        .collect();
        if wanted.is_empty() {
            return Ok(self);
        }
        let keys: Vec<String> = wanted.iter().map(|(k, _)| k.to_string()).collect();
        let values = tx.get_many(META, &keys)?;
        let mut out = self;
        for ((key, _), value) in wanted.iter().zip(values) {
            let done = match value {
                Some(v) => serde_json::from_slice::<Backfill>(&v)?.done,
                None => false,
            };
            match *key {
                BACKFILL_KEY => out.indexed = done,
                PAIRS_KEY => out.paired = done,
                _ => out.counted = done,
            }
        }
        Ok(out)
    }

    /// Remembers in `meta` the passes complete.
    pub(crate) fn note(self, meta: &Meta) {
        for (done, name) in [
            (self.indexed, SEEN_INDEXED),
            (self.paired, SEEN_PAIRED),
            (self.counted, SEEN_COUNTED),
        ] {
            if done {
                meta.note_built(name);
            }
        }
    }
}

/// Whether every job is indexed (the backfill has finished): until then a listing reads
/// every job of its scope.
#[cfg(test)]
pub(crate) fn built(tx: &mut dyn Txn) -> Result<bool> {
    Ok(backfill_state(tx, BACKFILL_KEY)?.done)
}

/// Whether every job has its paired entries ([`Field::paired`]): until then a listing reads
/// a single field's index.
#[cfg(test)]
pub(crate) fn pairs_built(tx: &mut dyn Txn) -> Result<bool> {
    Ok(backfill_state(tx, PAIRS_KEY)?.done)
}

/// Indexes up to `limit` jobs written before the indexes (a job whose `created` entry exists
/// is indexed already and only read), then, once every job is, adds the paired entries to up
/// to `limit` jobs indexed before those existed, then counts up to `limit` jobs written
/// before the per-day counts; returns whether the three passes are complete.
/// A record that does not read as a job is left alone. Cheap once complete (three reads).
pub(crate) fn backfill(tx: &mut dyn Txn, limit: usize) -> Result<bool> {
    if !backfill_pass(tx, BACKFILL_KEY, limit, index_unindexed)? {
        return Ok(false);
    }
    if !backfill_pass(tx, PAIRS_KEY, limit, add_pairs)? {
        return Ok(false);
    }
    backfill_pass(tx, COUNTS_KEY, limit, |tx, job| job.count(tx, 1))
}

/// Indexes `job` unless its `created` entry shows it is.
fn index_unindexed(tx: &mut dyn Txn, job: &Indexed) -> Result<()> {
    let created = format!(
        "{}{}",
        created_prefix(job.kind, &job.account, &job.region),
        job.position().0
    );
    if tx.get(TABLE, &created)?.is_none() {
        reindex(tx, None, job)?;
    }
    Ok(())
}

/// Writes `job`'s paired entries (idempotent).
fn add_pairs(tx: &mut dyn Txn, job: &Indexed) -> Result<()> {
    for k in job.paired_entries() {
        tx.put(TABLE, &k, b"")?;
    }
    Ok(())
}

/// One batch of the backfill pass whose cursor is `META`'s `key`: `each` on up to `limit`
/// jobs after the cursor; returns whether the pass has read every job table.
fn backfill_pass(
    tx: &mut dyn Txn,
    key: &str,
    limit: usize,
    each: fn(&mut dyn Txn, &Indexed) -> Result<()>,
) -> Result<bool> {
    let mut state = backfill_state(tx, key)?;
    if state.done {
        return Ok(true);
    }
    if let Some(&kind) = KINDS.get(state.kind) {
        let rows = tx.scan(kind.table(), "", state.after.as_deref(), limit)?;
        for (key, value) in &rows {
            let Ok(job) = serde_json::from_slice::<Indexed>(value) else {
                tracing::warn!(table = kind.table(), key = %key, "a stored job does not decode; it is left out of the job indexes");
                continue;
            };
            each(tx, &job)?;
        }
        match rows.last() {
            Some((last, _)) if rows.len() == limit => state.after = Some(last.clone()),
            _ => {
                state.kind += 1;
                state.after = None;
            }
        }
    }
    state.done = state.kind >= KINDS.len();
    tx.put(META, key, &serde_json::to_vec(&state)?)?;
    Ok(state.done)
}

/// Which index a listing reads, and the range of it.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub kind: JobKind,
    pub account: String,
    pub region: String,
    /// The equality filter whose index is read; `None` reads the creation-date index (or
    /// the completion-date one, see [`page`]).
    pub field: Option<(Field, String)>,
    /// Creation dates outside `[from, to]` are not read (the filter decides the ends).
    pub created: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    /// Completion dates outside `[from, to]` are not read, when the completion-date index is.
    pub completed: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
}

/// Rows read from the store at a time while a page fills.
fn batch(limit: usize) -> usize {
    limit.saturating_add(1).clamp(16, 1000)
}

/// One page of the jobs `plan` reads, after position `after`, in listing order: each job
/// key read goes through `load`, which returns the job if it passes the rest of the filter.
/// The page ends after `limit` jobs; the position of its last job is returned when another
/// one follows. With no equality field and no creation bounds but completion bounds, the
/// completion-date index is read over those bounds and its jobs put in listing order; every
/// other plan reads its index in listing order and stops after one job more than the page.
pub(crate) fn page<T>(
    tx: &mut dyn Txn,
    plan: &Plan,
    after: Option<&Position>,
    limit: usize,
    load: impl FnMut(&mut dyn Txn, &str) -> Result<Option<T>>,
) -> Result<(Vec<T>, Option<Position>)> {
    let by_completion =
        plan.field.is_none() && plan.created == (None, None) && plan.completed != (None, None);
    if by_completion {
        return page_by_completion(tx, plan, after, limit, load);
    }
    let prefix = match &plan.field {
        Some((f, v)) => field_prefix(plan.kind, &plan.account, &plan.region, *f, v),
        None => created_prefix(plan.kind, &plan.account, &plan.region),
    };
    let from = plan.created.0.map(|t| format!("{prefix}{:020}", micros(t)));
    let token = after.map(|p| format!("{prefix}{}", p.0));
    let to = plan.created.1.map(|t| format!("{:020}", micros(t)));
    let mut cursor = from.max(token);
    walk(tx, plan, &prefix, &mut cursor, to, limit, load)
}

/// Reads the index under `prefix` from `cursor` (creation dates up to `to`) until the page
/// is full and one more job is found, or the index ends.
fn walk<T>(
    tx: &mut dyn Txn,
    plan: &Plan,
    prefix: &str,
    cursor: &mut Option<String>,
    to: Option<String>,
    limit: usize,
    mut load: impl FnMut(&mut dyn Txn, &str) -> Result<Option<T>>,
) -> Result<(Vec<T>, Option<Position>)> {
    let mut out = Vec::new();
    let mut last: Option<Position> = None;
    loop {
        let rows = tx.scan(TABLE, prefix, cursor.as_deref(), batch(limit))?;
        let exhausted = rows.len() < batch(limit);
        // The jobs of the batch's entries, read in one go (one round trip on PostgreSQL).
        let wanted = rows
            .iter()
            .filter_map(|(key, _)| Position::parse(&key[prefix.len()..]))
            .take_while(|pos| to.as_deref().is_none_or(|t| &pos.0[..20] <= t))
            .map(|pos| job_key(&plan.account, &plan.region, pos.id()))
            .collect();
        let tx = &mut Prefetched::read(&mut *tx, vec![(plan.kind.table(), wanted)])?;
        for (key, _) in rows {
            let Some(pos) = Position::parse(&key[prefix.len()..]) else {
                *cursor = Some(key);
                continue;
            };
            if to.as_deref().is_some_and(|t| &pos.0[..20] > t) {
                return Ok((out, None));
            }
            *cursor = Some(key);
            let Some(job) = load(tx, &job_key(&plan.account, &plan.region, pos.id()))? else {
                continue;
            };
            if out.len() == limit {
                return Ok((out, last));
            }
            out.push(job);
            last = Some(pos);
        }
        if exhausted {
            return Ok((out, None));
        }
    }
}

/// [`page`] over the completion-date index: every job completed within the bounds that
/// passes `load`, put in listing order, then paged.
fn page_by_completion<T>(
    tx: &mut dyn Txn,
    plan: &Plan,
    after: Option<&Position>,
    limit: usize,
    mut load: impl FnMut(&mut dyn Txn, &str) -> Result<Option<T>>,
) -> Result<(Vec<T>, Option<Position>)> {
    let prefix = completed_prefix(plan.kind, &plan.account, &plan.region);
    let mut cursor = plan
        .completed
        .0
        .map(|t| format!("{prefix}{:020}", micros(t)));
    let to = plan.completed.1.map(|t| format!("{:020}", micros(t)));
    let mut found = Vec::new();
    'scan: loop {
        let rows = tx.scan(TABLE, &prefix, cursor.as_deref(), 1000)?;
        let exhausted = rows.len() < 1000;
        // The jobs of the batch's entries in range, read in one go.
        let wanted = rows
            .iter()
            .map(|(key, _)| &key[prefix.len()..])
            .take_while(|tail| {
                to.as_deref()
                    .is_none_or(|t| tail.get(..20).is_some_and(|d| d <= t))
            })
            .filter_map(|tail| tail.get(21..).and_then(Position::parse))
            .filter(|p| after.is_none_or(|a| p > a))
            .map(|pos| job_key(&plan.account, &plan.region, pos.id()))
            .collect();
        let tx = &mut Prefetched::read(&mut *tx, vec![(plan.kind.table(), wanted)])?;
        for (key, _) in rows {
            let tail = &key[prefix.len()..];
            let (done, pos) = (tail.get(..20), tail.get(21..).and_then(Position::parse));
            if to.as_deref().is_some_and(|t| done.is_none_or(|d| d > t)) {
                break 'scan;
            }
            cursor = Some(key.clone());
            let Some(pos) = pos.filter(|p| after.is_none_or(|a| p > a)) else {
                continue;
            };
            if let Some(job) = load(tx, &job_key(&plan.account, &plan.region, pos.id()))? {
                found.push((pos, job));
            }
        }
        if exhausted {
            break;
        }
    }
    Ok(in_order(found, None, limit))
}

/// One page of `items` (each with its position, in any order) after `after`, in listing
/// order, with the position of its last item when another follows.
pub(crate) fn in_order<T>(
    mut items: Vec<(Position, T)>,
    after: Option<&Position>,
    limit: usize,
) -> (Vec<T>, Option<Position>) {
    items.retain(|(p, _)| after.is_none_or(|a| p > a));
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let more = items.len() > limit;
    items.truncate(limit);
    let next = more.then(|| items.last().map(|(p, _)| p.clone())).flatten();
    (items.into_iter().map(|(_, t)| t).collect(), next)
}

/// The keys of the jobs of `kind` in a scope whose `field` is `value`, in listing order.
pub(crate) fn job_keys(
    tx: &mut dyn Txn,
    kind: JobKind,
    account: &str,
    region: &str,
    field: Field,
    value: &str,
) -> Result<Vec<String>> {
    let prefix = field_prefix(kind, account, region, field, value);
    Ok(paging::scan_all(tx, TABLE, &prefix)?
        .into_iter()
        .filter_map(|(k, _)| Position::parse(&k[prefix.len()..]))
        .map(|p| job_key(account, region, p.id()))
        .collect())
}

/// The summaries of the jobs of `kind` in a scope created in `[from, to)`, oldest first.
pub(crate) fn summaries(
    tx: &mut dyn Txn,
    kind: JobKind,
    account: &str,
    region: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Summary>> {
    let prefix = created_prefix(kind, account, region);
    let mut cursor = Some(format!("{prefix}{:020}", micros(from)));
    let end = format!("{:020}", micros(to));
    let mut out = Vec::new();
    loop {
        let rows = tx.scan(TABLE, &prefix, cursor.as_deref(), 1000)?;
        let exhausted = rows.len() < 1000;
        for (key, value) in rows {
            if key[prefix.len()..]
                .get(..20)
                .is_none_or(|c| c > end.as_str())
            {
                return Ok(out);
            }
            let s: Summary = serde_json::from_slice(&value)?;
            if s.creation_date >= from && s.creation_date < to {
                out.push(s);
            }
            cursor = Some(key);
        }
        if exhausted {
            return Ok(out);
        }
    }
}

/// A transaction that counts the records it reads, for tests that hold a listing to what it
/// may read: a `get` is one, a scan one plus each row it returns.
#[cfg(test)]
pub(crate) struct Counting<'a> {
    pub inner: &'a mut dyn Txn,
    pub reads: usize,
}

#[cfg(test)]
impl Txn for Counting<'_> {
    fn get(&mut self, t: &str, k: &str) -> coffer_store::Result<Option<Vec<u8>>> {
        self.reads += 1;
        self.inner.get(t, k)
    }
    fn put(&mut self, t: &str, k: &str, v: &[u8]) -> coffer_store::Result<()> {
        self.inner.put(t, k, v)
    }
    fn insert_new(&mut self, t: &str, k: &str, v: &[u8]) -> coffer_store::Result<bool> {
        self.inner.insert_new(t, k, v)
    }
    fn delete(&mut self, t: &str, k: &str) -> coffer_store::Result<bool> {
        self.inner.delete(t, k)
    }
    fn scan(
        &mut self,
        t: &str,
        p: &str,
        after: Option<&str>,
        limit: usize,
    ) -> coffer_store::Result<Vec<coffer_store::Record>> {
        let rows = self.inner.scan(t, p, after, limit)?;
        self.reads += 1 + rows.len();
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::history;
    use crate::model::jobs::{JobRecord, enqueue, load_job, save_job};
    use chrono::{Duration, TimeZone, Timelike};
    use coffer_store::StoreHandle;

    const ACCOUNT: &str = "111122223333";
    const REGION: &str = "us-east-1";

    fn store() -> (tempfile::TempDir, StoreHandle) {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        (dir, store)
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
    }

    /// Job `i`: created `i` minutes after t0, in vault `v{i % 3}`, on resource `r{i % 4}` (ARNs
    /// with `:` in them, one the prefix of another).
    fn job(i: usize) -> JobRecord {
        let resource = format!("arn:aws:ec2:{REGION}:{ACCOUNT}:volume/r{}", i % 4);
        let mut j = JobRecord::new(
            JobKind::Backup,
            ACCOUNT,
            REGION,
            t0() + Duration::minutes(i as i64),
            if i % 4 == 3 {
                format!("arn:aws:ec2:{REGION}:{ACCOUNT}:volume/r1:extra")
            } else {
                resource
            },
            if i.is_multiple_of(2) { "EBS" } else { "EFS" }.into(),
        );
        j.id = format!("JOB-{i:03}");
        j.vault_name = format!("v{}", i % 3);
        j
    }

    async fn entries(store: &StoreHandle) -> Vec<String> {
        store
            .read(|tx| -> Result<Vec<String>> {
                Ok(paging::scan_all(tx, TABLE, "")?
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect())
            })
            .await
            .unwrap()
    }

    fn plan(field: Option<(Field, &str)>) -> Plan {
        Plan {
            kind: JobKind::Backup,
            account: ACCOUNT.into(),
            region: REGION.into(),
            field: field.map(|(f, v)| (f, v.to_string())),
            created: (None, None),
            completed: (None, None),
        }
    }

    /// Every page of `plan` with pages of `limit`, filtered by `keep`: the ids in order, and
    /// how many pages it took.
    async fn list_all(
        store: &StoreHandle,
        plan: Plan,
        limit: usize,
        keep: fn(&JobRecord) -> bool,
    ) -> (Vec<String>, usize) {
        let mut ids = Vec::new();
        let mut after: Option<Position> = None;
        let mut pages = 0;
        loop {
            let (p, a) = (plan.clone(), after.clone());
            let (page, next) = store
                .read(move |tx| {
                    page(tx, &p, a.as_ref(), limit, |tx, key| {
                        Ok(load_job(tx, JobKind::Backup, key)?.filter(keep))
                    })
                })
                .await
                .unwrap();
            pages += 1;
            assert!(page.len() <= limit);
            ids.extend(page.into_iter().map(|j| j.id));
            // The token goes through its wire form and back.
            match next {
                Some(n) => after = Some(Position::from_token(&n.token()).unwrap()),
                None => return (ids, pages),
            }
        }
    }

    #[tokio::test]
    async fn entries_follow_state_changes_and_go_with_the_pruned_job() {
        let (_dir, store) = store();
        let done = t0() + Duration::hours(2);
        store
            .write(move |tx| -> Result<()> {
                let mut j = job(1);
                enqueue(tx, &j)?;
                j.state = JobState::Running;
                save_job(tx, &j)?;
                j.percent_done = 50.0;
                save_job(tx, &j)?;
                j.state = JobState::Completed;
                j.message_category = Some("SUCCESS".into());
                j.completion_date = Some(done);
                save_job(tx, &j)?;
                Ok(())
            })
            .await
            .unwrap();
        let keys = entries(&store).await;
        // created, state, vault, resource, type, vault+state, type+state, completed.
        assert_eq!(keys.len(), 8, "{keys:#?}");
        assert!(keys.iter().any(|k| k.contains(":state=COMPLETED:")));
        assert!(
            keys.iter()
                .any(|k| k.contains(":vault+state=v1|COMPLETED:"))
        );
        assert!(
            keys.iter()
                .any(|k| k.contains(":type+state=EFS|COMPLETED:"))
        );
        assert!(
            !keys
                .iter()
                .any(|k| k.contains("CREATED:") || k.contains("RUNNING:")),
            "the old states' entries are gone: {keys:#?}"
        );
        let completed = format!("completed:{:020}:", done.timestamp_micros());
        assert!(keys.iter().any(|k| k.contains(&completed)), "{keys:#?}");
        // The summary in the creation entry follows the job.
        let summary = store
            .read(|tx| {
                summaries(
                    tx,
                    JobKind::Backup,
                    ACCOUNT,
                    REGION,
                    t0(),
                    t0() + Duration::days(1),
                )
            })
            .await
            .unwrap();
        assert_eq!(summary.len(), 1);
        assert_eq!(summary[0].state, JobState::Completed);
        assert_eq!(summary[0].message_category.as_deref(), Some("SUCCESS"));
        // Pruning the finished job deletes its entries with it.
        let cut = done + Duration::days(1);
        let p = store
            .write(move |tx| history::prune(tx, cut, 10))
            .await
            .unwrap();
        assert_eq!(p.entries, 1);
        assert!(entries(&store).await.is_empty());
    }

    #[tokio::test]
    async fn pages_through_an_index_return_every_match_once_in_order() {
        let (_dir, store) = store();
        store
            .write(|tx| -> Result<()> {
                for i in 0..60 {
                    let mut j = job(i);
                    if i % 5 == 0 {
                        j.state = JobState::Expired;
                        // Completed in the reverse order of their creation.
                        j.completion_date = Some(t0() + Duration::minutes(100 - i as i64));
                    }
                    save_job(tx, &j)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        let all: Vec<JobRecord> = (0..60).map(job).collect();
        let ids = |f: &dyn Fn(&JobRecord) -> bool| -> Vec<String> {
            all.iter().filter(|j| f(j)).map(|j| j.id.clone()).collect()
        };
        // Every job, oldest first, in pages of 7.
        let (got, pages) = list_all(&store, plan(None), 7, |_| true).await;
        assert_eq!(got, ids(&|_| true));
        assert_eq!(pages, 9);
        // One vault's jobs.
        let (got, _) = list_all(&store, plan(Some((Field::Vault, "v1"))), 4, |_| true).await;
        assert_eq!(got, ids(&|j| j.vault_name == "v1"));
        // A resource whose ARN is the prefix of another's sees only its own jobs.
        let r1 = format!("arn:aws:ec2:{REGION}:{ACCOUNT}:volume/r1");
        let (got, _) = list_all(&store, plan(Some((Field::Resource, &r1))), 3, |_| true).await;
        assert_eq!(got, ids(&|j| j.resource_arn == r1));
        assert_eq!(got.len(), 15);
        // A state's index, with a filter checked on the loaded job (a page of exactly the
        // matches has no next page).
        let (got, pages) = list_all(&store, plan(Some((Field::State, "EXPIRED"))), 6, |j| {
            j.resource_type == "EBS"
        })
        .await;
        assert_eq!(got, ids(&|j| j.id.ends_with('0')));
        assert_eq!(pages, 1);
        // Creation bounds limit the scan range.
        let mut ranged = plan(None);
        ranged.created = (
            Some(t0() + Duration::minutes(10)),
            Some(t0() + Duration::minutes(20)),
        );
        let (got, _) = list_all(&store, ranged, 4, |_| true).await;
        assert_eq!(got, ids(&|j| (10..=20).contains(&j.creation_date.minute())));
        // Completion bounds read the completion index, and still list oldest first.
        let mut by_done = plan(None);
        by_done.completed = (
            Some(t0() + Duration::minutes(50)),
            Some(t0() + Duration::minutes(80)),
        );
        let (got, _) = list_all(&store, by_done, 2, |_| true).await;
        let minute = |j: &JobRecord| j.creation_date.minute();
        let expect = ids(&|j| minute(j) % 5 == 0 && (20..=50).contains(&minute(j)));
        assert_eq!(expect.len(), 7);
        assert_eq!(got, expect);
    }

    #[tokio::test]
    async fn a_store_written_before_the_indexes_is_backfilled_in_batches() {
        let (_dir, store) = store();
        store
            .write(|tx| -> Result<()> {
                for i in 0..25 {
                    let j = job(i);
                    // Written as an earlier Coffer did: the record alone.
                    tx.put(JobKind::Backup.table(), &j.key(), &serde_json::to_vec(&j)?)?;
                }
                tx.put(
                    JobKind::Backup.table(),
                    &format!("{ACCOUNT}:{REGION}:broken"),
                    b"not json",
                )?;
                // One job written by this Coffer already has its entries.
                save_job(tx, &job(30))?;
                Ok(())
            })
            .await
            .unwrap();
        assert!(!store.read(built).await.unwrap());
        let mut passes = 0;
        while !store.write(|tx| backfill(tx, 4)).await.unwrap() {
            passes += 1;
            assert!(passes < 50, "the backfill does not end");
        }
        assert!(
            passes >= 6,
            "batches of 4 over 27 records take several passes"
        );
        assert!(store.read(built).await.unwrap());
        let (got, _) = list_all(&store, plan(Some((Field::Vault, "v2"))), 5, |_| true).await;
        let expect: Vec<String> = (0..25)
            .chain([30])
            .map(job)
            .filter(|j| j.vault_name == "v2")
            .map(|j| j.id)
            .collect();
        assert_eq!(got, expect);
        // created, state, vault, resource, type, vault+state, type+state.
        assert_eq!(entries(&store).await.len(), 26 * 7);
        assert!(store.read(pairs_built).await.unwrap());
        // Once complete it does nothing more.
        assert!(store.write(|tx| backfill(tx, 4)).await.unwrap());
    }

    #[test]
    fn a_token_that_names_no_position_is_refused() {
        for bad in [
            "zz",
            "00",
            &paging::encode("JOB-1"),
            &paging::encode("0000000000000000000x:J"),
        ] {
            let e = Position::from_token(bad).unwrap_err();
            assert_eq!(e.0.code(), "InvalidParameterValueException");
        }
        let p = Position::of(t0(), "JOB-1");
        assert_eq!(Position::from_token(&p.token()).unwrap(), p);
    }

    /// Every page of `plan` in pages of `limit` through a counting transaction: the ids in
    /// order and the records read.
    async fn count_all(store: &StoreHandle, plan: Plan, limit: usize) -> (Vec<String>, usize) {
        let mut ids = Vec::new();
        let mut after: Option<Position> = None;
        let mut reads = 0;
        loop {
            let (p, a) = (plan.clone(), after.clone());
            let (page, next, n) = store
                .read(move |tx| -> Result<_> {
                    let mut c = Counting {
                        inner: tx,
                        reads: 0,
                    };
                    let (page, next) = page(&mut c, &p, a.as_ref(), limit, |tx, key| {
                        Ok(load_job(tx, JobKind::Backup, key)?
                            .filter(|j| j.vault_name == "v1" && j.state == JobState::Failed))
                    })?;
                    Ok((page, next, c.reads))
                })
                .await
                .unwrap();
            reads += n;
            ids.extend(page.into_iter().map(|j| j.id));
            match next {
                Some(n) => after = Some(n),
                None => return (ids, reads),
            }
        }
    }

    #[tokio::test]
    async fn a_vault_and_a_state_together_read_only_their_jobs() {
        let (_dir, store) = store();
        let failed = |i: usize| i.is_multiple_of(20);
        store
            .write(move |tx| -> Result<()> {
                for i in 0..400 {
                    let mut j = job(i);
                    j.state = if failed(i) {
                        JobState::Failed
                    } else {
                        JobState::Created
                    };
                    save_job(tx, &j)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        let expect: Vec<String> = (0..400)
            .filter(|&i| failed(i) && i % 3 == 1)
            .map(|i| job(i).id)
            .collect();
        assert_eq!(expect.len(), 6);
        let both = pair("v1", JobState::Failed);
        let (got, paired_reads) =
            count_all(&store, plan(Some((Field::VaultState, &both))), 2).await;
        assert_eq!(got, expect);
        // Three pages: each scans what is left of the 6 entries and loads its jobs and the
        // one after.
        assert!(paired_reads <= 3 * 7 + 6 + 3, "{paired_reads} records read");
        // The vault's own index reads every job of the vault (133) to find the same 6.
        let (got, vault_reads) = count_all(&store, plan(Some((Field::Vault, "v1"))), 2).await;
        assert_eq!(got, expect);
        assert!(vault_reads > 2 * 133, "{vault_reads} records read");
    }

    #[tokio::test]
    async fn a_store_indexed_before_the_pairs_gets_them_by_the_second_pass() {
        let (_dir, store) = store();
        store
            .write(|tx| -> Result<()> {
                for i in 0..30 {
                    let mut j = job(i);
                    j.state = JobState::Failed;
                    save_job(tx, &j)?;
                }
                // As an earlier Coffer left it: indexed, without the paired entries.
                for (k, _) in paging::scan_all(tx, TABLE, "")? {
                    if k.contains("+state=") {
                        tx.delete(TABLE, &k)?;
                    }
                }
                let done = Backfill {
                    kind: KINDS.len(),
                    after: None,
                    done: true,
                };
                tx.put(META, BACKFILL_KEY, &serde_json::to_vec(&done)?)?;
                Ok(())
            })
            .await
            .unwrap();
        assert!(store.read(built).await.unwrap());
        assert!(!store.read(pairs_built).await.unwrap());
        let read_passes = |known: Passes| {
            store.read(move |tx| -> Result<(Passes, usize)> {
                let mut counting = Counting {
                    inner: tx,
                    reads: 0,
                };
                let passes = known.read(&mut counting)?;
                Ok((passes, counting.reads))
            })
        };
        let halfway = Passes {
            indexed: true,
            paired: false,
            counted: false,
        };
        assert_eq!(read_passes(Passes::default()).await.unwrap(), (halfway, 3));
        // What a process has seen complete is not read again; a pass never seen is.
        let meta = Meta::new(store.clone(), crate::model::clock::Clock::system());
        assert_eq!(Passes::seen(&meta), Passes::default());
        halfway.note(&meta);
        assert_eq!(Passes::seen(&meta), halfway);
        assert_eq!(
            read_passes(Passes::seen(&meta)).await.unwrap(),
            (halfway, 2)
        );
        let mut passes = 0;
        while !store.write(|tx| backfill(tx, 4)).await.unwrap() {
            passes += 1;
            assert!(passes < 50, "the backfill does not end");
        }
        assert!(passes >= 7, "batches of 4 over 30 jobs take several passes");
        assert!(store.read(pairs_built).await.unwrap());
        let complete = Passes {
            indexed: true,
            paired: true,
            counted: true,
        };
        assert_eq!(read_passes(Passes::default()).await.unwrap(), (complete, 3));
        assert_eq!(read_passes(complete).await.unwrap(), (complete, 0));
        // A wiped store's builds start over.
        complete.note(&meta);
        meta.forget_built();
        assert_eq!(Passes::seen(&meta), Passes::default());
        let paired = entries(&store).await;
        assert_eq!(paired.iter().filter(|k| k.contains("+state=")).count(), 60);
        let both = pair("v1", JobState::Failed);
        let (got, _) = count_all(&store, plan(Some((Field::VaultState, &both))), 3).await;
        let expect: Vec<String> = (0..30).filter(|i| i % 3 == 1).map(|i| job(i).id).collect();
        assert_eq!(got, expect);
    }
}
