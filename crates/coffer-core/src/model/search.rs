//! AWS Backup Search's records and rules: search jobs, their results, and exports of them.
//!
//! A search job looks for files in the catalogues of indexed recovery points
//! (`model::indexes`). When it starts, the recovery points it will read are chosen once, by its
//! SearchScope (resource type, recovery point ARNs, source resource ARNs, creation time range,
//! recovery point tags) among the ACTIVE indexes, and frozen in the job's record; the data plane
//! (`dataplane::search`) then reads their catalogues a page at a time, each page one step that
//! writes its matches and moves the job's cursor in one transaction, so a job interrupted by a
//! restart resumes where it stopped and never reports a file twice.
//!
//! Tables (keys scoped `ACCOUNT:REGION:`): `search_job` (the job, with its frozen recovery
//! points and cursor), `search_result` (`...:JOB:SEQ`, one matched file each, in the order
//! found), `search_export_job` (exports of a job's results), `search_work` (the jobs and exports
//! a runner pass has to carry on: RUNNING / STOPPING searches, RUNNING exports) and
//! `search_token` (ClientToken to job id, for idempotent starts). An ended search is entered
//! for history retention (`model::history`) with its result rows, token and tags; an ended
//! export with its token and tags (the files it wrote stay).
//!
//! Coffer's EFS resources (directory trees) answer searches for resource type EBS: their files
//! are EBS result items (file path, size, modification time), see docs/search.md.

use chrono::{DateTime, TimeZone, Utc};
use coffer_api::search::types::{
    EBSResultItem, ItemFilters, LongCondition, LongConditionOperator, ResourceType, ResultItem,
    SearchJobState, SearchScope, StringCondition, StringConditionOperator, TimeConditionOperator,
};
use coffer_api::{ApiError, Timestamp};
use coffer_engine::CatalogEntry;
use coffer_store::Txn;
use serde::{Deserialize, Serialize};

use crate::model::error::Result;
use crate::model::indexes::{self, IndexRecord};
use crate::model::{history, tags};

pub(crate) const JOBS: &str = "search_job";
pub(crate) const RESULTS: &str = "search_result";
pub(crate) const EXPORTS: &str = "search_export_job";
const WORK: &str = "search_work";
const TOKENS: &str = "search_token";

/// The state of a search job, as AWS spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum JobStatus {
    Running,
    Stopping,
    Stopped,
    Completed,
    Failed,
}

impl JobStatus {
    pub(crate) fn wire(self) -> SearchJobState {
        match self {
            JobStatus::Running => SearchJobState::Running,
            JobStatus::Stopping => SearchJobState::Stopping,
            JobStatus::Stopped => SearchJobState::Stopped,
            JobStatus::Completed => SearchJobState::Completed,
            JobStatus::Failed => SearchJobState::Failed,
        }
    }

    pub(crate) fn is_active(self) -> bool {
        matches!(self, JobStatus::Running | JobStatus::Stopping)
    }
}

/// One recovery point a search job reads, as it was when the job started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScannedPoint {
    pub rp_id: String,
    pub rp_arn: String,
    pub vault_name: String,
    pub resource_arn: String,
    pub resource_type: String,
    pub backup_creation: DateTime<Utc>,
    pub index_creation: DateTime<Utc>,
    pub items: i64,
}

/// A search job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SearchJob {
    pub account: String,
    pub region: String,
    pub id: String,
    pub arn: String,
    pub name: Option<String>,
    pub status: JobStatus,
    pub message: Option<String>,
    pub scope: SearchScope,
    pub filters: ItemFilters,
    pub encryption_key_arn: Option<String>,
    pub creation: DateTime<Utc>,
    pub completion: Option<DateTime<Utc>>,
    pub points: Vec<ScannedPoint>,
    /// The cursor: the point being read, and the last path read in it.
    pub point: usize,
    pub after: Option<String>,
    pub items_scanned: i64,
    pub items_matched: i64,
    /// The ClientToken that started the job, pruned with it (absent from older records).
    #[serde(default)]
    pub token: Option<String>,
}

impl SearchJob {
    pub(crate) fn key(&self) -> String {
        key(&self.account, &self.region, &self.id)
    }

    /// How many items the job reads in all (the frozen points' index counts).
    pub(crate) fn items_to_scan(&self) -> i64 {
        self.points.iter().map(|p| p.items).sum()
    }
}

pub(crate) fn key(account: &str, region: &str, id: &str) -> String {
    format!("{account}:{region}:{id}")
}

pub(crate) fn job_arn(region: &str, account: &str, id: &str) -> String {
    format!("arn:aws:backup:{region}:{account}:search-job/{id}")
}

pub(crate) fn export_arn(region: &str, account: &str, id: &str) -> String {
    format!("arn:aws:backup:{region}:{account}:search-result-export-job/{id}")
}

/// The prefix of a job's result rows.
pub(crate) fn results_prefix(account: &str, region: &str, id: &str) -> String {
    format!("{account}:{region}:{id}:")
}

/// One matched file, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ResultRow {
    pub rp_arn: String,
    pub vault_name: String,
    pub resource_arn: String,
    pub path: String,
    pub size: u64,
    pub modified_ms: Option<i64>,
}

impl ResultRow {
    /// The path as results show it: absolute inside the recovery point (`/docs/a.txt`).
    pub(crate) fn file_path(&self) -> String {
        format!("/{}", self.path)
    }

    pub(crate) fn modified(&self) -> Option<DateTime<Utc>> {
        self.modified_ms
            .and_then(|m| Utc.timestamp_millis_opt(m).single())
    }

    /// The result as the API shows it: an EBS result item (Coffer's EFS trees included).
    pub(crate) fn item(&self) -> ResultItem {
        let fs = self
            .resource_arn
            .rsplit(['/', ':'])
            .next()
            .map(String::from);
        ResultItem {
            ebs_result_item: Some(EBSResultItem {
                backup_resource_arn: Some(self.rp_arn.clone()),
                backup_vault_name: Some(self.vault_name.clone()),
                creation_time: None,
                file_path: Some(self.file_path()),
                file_size: Some(self.size as i64),
                file_system_identifier: fs,
                last_modified_time: self.modified().map(Timestamp),
                source_resource_arn: Some(self.resource_arn.clone()),
            }),
            s3_result_item: None,
        }
    }
}

/// The state of an export job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum ExportStatus {
    Running,
    Completed,
    Failed,
}

/// An export of a search job's results to a bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ExportJob {
    pub account: String,
    pub region: String,
    pub id: String,
    pub arn: String,
    pub search_job_id: String,
    pub search_job_arn: String,
    pub bucket: String,
    pub prefix: Option<String>,
    pub role_arn: Option<String>,
    pub status: ExportStatus,
    pub message: Option<String>,
    pub creation: DateTime<Utc>,
    pub completion: Option<DateTime<Utc>>,
    /// The ClientToken that started the export, pruned with it (absent from older records).
    #[serde(default)]
    pub token: Option<String>,
}

impl ExportJob {
    pub(crate) fn key(&self) -> String {
        key(&self.account, &self.region, &self.id)
    }
}

/// What a runner pass carries on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Work {
    Search(String),
    Export(String),
}

fn work_key(w: &Work) -> String {
    match w {
        Work::Search(k) => format!("search:{k}"),
        Work::Export(k) => format!("export:{k}"),
    }
}

pub(crate) fn get_job(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    id: &str,
) -> Result<Option<SearchJob>> {
    get_job_by_key(tx, &key(account, region, id))
}

pub(crate) fn get_job_by_key(tx: &mut dyn Txn, k: &str) -> Result<Option<SearchJob>> {
    match tx.get(JOBS, k)? {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

/// Stores a job, keeping the work list in step with its status.
pub(crate) fn save_job(tx: &mut dyn Txn, job: &SearchJob) -> Result<()> {
    let k = job.key();
    tx.put(JOBS, &k, &serde_json::to_vec(job)?)?;
    let w = work_key(&Work::Search(k));
    if job.status.is_active() {
        tx.put(WORK, &w, b"")?;
    } else {
        tx.delete(WORK, &w)?;
        job_history(tx, job)?;
    }
    Ok(())
}

/// Enters an ended search job for deletion once the history retention has passed since it
/// ended: the job, its result rows, its token and its tags (entering it again is harmless).
fn job_history(tx: &mut dyn Txn, job: &SearchJob) -> Result<()> {
    let Some(ended) = job.completion else {
        return Ok(());
    };
    let (a, r) = (&job.account, &job.region);
    let mut items = vec![
        (JOBS.to_string(), job.key()),
        history::prefix_item(RESULTS, &results_prefix(a, r, &job.id)),
        (tags::TABLE.to_string(), job.arn.clone()),
    ];
    if let Some(t) = &job.token {
        items.push((TOKENS.to_string(), key(a, r, t)));
    }
    history::record(tx, ended, &items)
}

/// Enters an ended export job the same way: the job, its token and its tags. The files it
/// wrote stay in their bucket.
fn export_history(tx: &mut dyn Txn, job: &ExportJob) -> Result<()> {
    let Some(ended) = job.completion else {
        return Ok(());
    };
    let (a, r) = (&job.account, &job.region);
    let mut items = vec![
        (EXPORTS.to_string(), job.key()),
        (tags::TABLE.to_string(), job.arn.clone()),
    ];
    if let Some(t) = &job.token {
        items.push((TOKENS.to_string(), key(a, r, &format!("export:{t}"))));
    }
    history::record(tx, ended, &items)
}

/// Enters a search job written before search jobs were pruned, if it has ended.
pub(crate) fn enter_finished_job(tx: &mut dyn Txn, value: &[u8]) -> Result<()> {
    let job: SearchJob = serde_json::from_slice(value)?;
    if !job.status.is_active() {
        job_history(tx, &job)?;
    }
    Ok(())
}

/// Enters an export job written before exports were pruned, if it has ended.
pub(crate) fn enter_finished_export(tx: &mut dyn Txn, value: &[u8]) -> Result<()> {
    let job: ExportJob = serde_json::from_slice(value)?;
    if job.status != ExportStatus::Running {
        export_history(tx, &job)?;
    }
    Ok(())
}

pub(crate) fn get_export(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    id: &str,
) -> Result<Option<ExportJob>> {
    get_export_by_key(tx, &key(account, region, id))
}

pub(crate) fn get_export_by_key(tx: &mut dyn Txn, k: &str) -> Result<Option<ExportJob>> {
    match tx.get(EXPORTS, k)? {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

pub(crate) fn save_export(tx: &mut dyn Txn, job: &ExportJob) -> Result<()> {
    let k = job.key();
    tx.put(EXPORTS, &k, &serde_json::to_vec(job)?)?;
    let w = work_key(&Work::Export(k));
    if job.status == ExportStatus::Running {
        tx.put(WORK, &w, b"")?;
    } else {
        tx.delete(WORK, &w)?;
        export_history(tx, job)?;
    }
    Ok(())
}

/// The searches and exports a runner pass has to carry on.
pub(crate) fn work(tx: &mut dyn Txn) -> Result<Vec<Work>> {
    Ok(crate::model::paging::scan_all(tx, WORK, "")?
        .into_iter()
        .filter_map(|(k, _)| {
            if let Some(j) = k.strip_prefix("search:") {
                Some(Work::Search(j.to_string()))
            } else {
                k.strip_prefix("export:")
                    .map(|e| Work::Export(e.to_string()))
            }
        })
        .collect())
}

/// The job a ClientToken started, if any.
pub(crate) fn token_job(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    token: &str,
) -> Result<Option<String>> {
    Ok(tx
        .get(TOKENS, &key(account, region, token))?
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}

pub(crate) fn remember_token(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    token: &str,
    id: &str,
) -> Result<()> {
    tx.put(TOKENS, &key(account, region, token), id.as_bytes())?;
    Ok(())
}

/// Writes matched rows after the job's last one (numbered from `first`).
pub(crate) fn put_results(
    tx: &mut dyn Txn,
    job: &SearchJob,
    first: i64,
    rows: &[ResultRow],
) -> Result<()> {
    let prefix = results_prefix(&job.account, &job.region, &job.id);
    for (i, row) in rows.iter().enumerate() {
        let seq = first + i as i64;
        tx.put(
            RESULTS,
            &format!("{prefix}{seq:012}"),
            &serde_json::to_vec(row)?,
        )?;
    }
    Ok(())
}

// ------------------------------------------------------------------------------------ rules

/// Checks a search job's scope and filters before it starts; the message says what to fix.
pub(crate) fn check_request(scope: &SearchScope, filters: &ItemFilters) -> Result<()> {
    let kind = scope.backup_resource_types.first();
    let ebs = filters.ebs_item_filters.as_deref().unwrap_or_default();
    let s3 = filters.s3_item_filters.as_deref().unwrap_or_default();
    if kind == Some(&ResourceType::Ebs) && !s3.is_empty() {
        return Err(ApiError::invalid_parameter(
            "S3ItemFilters apply to S3 searches; this search's BackupResourceTypes is EBS: use EBSItemFilters.",
        )
        .into());
    }
    if kind == Some(&ResourceType::S3) && !ebs.is_empty() {
        return Err(ApiError::invalid_parameter(
            "EBSItemFilters apply to EBS searches; this search's BackupResourceTypes is S3: use S3ItemFilters.",
        )
        .into());
    }
    if ebs.iter().any(|f| f.creation_times.is_some()) {
        return Err(ApiError::invalid_parameter(
            "EBSItemFilters.CreationTimes cannot be searched: Coffer's file catalogues record no file creation time. Filter on LastModificationTimes instead.",
        )
        .into());
    }
    if let Some(t) = &scope.backup_resource_creation_time
        && let (Some(a), Some(b)) = (t.created_after, t.created_before)
        && a > b
    {
        return Err(ApiError::invalid_parameter(
            "BackupResourceCreationTime.CreatedAfter is later than CreatedBefore: no recovery point can match.",
        )
        .into());
    }
    Ok(())
}

/// Whether an indexed recovery point falls inside a search's scope (its tags are read only
/// when the scope names tags).
pub(crate) fn in_scope(tx: &mut dyn Txn, scope: &SearchScope, rec: &IndexRecord) -> Result<bool> {
    if rec.status != indexes::Status::Active {
        return Ok(false);
    }
    let type_fits = match scope.backup_resource_types.first() {
        Some(ResourceType::Ebs) => rec.resource_type == "EBS" || rec.resource_type == "EFS",
        Some(ResourceType::S3) => rec.resource_type == "S3",
        _ => false,
    };
    if !type_fits {
        return Ok(false);
    }
    if let Some(arns) = scope
        .backup_resource_arns
        .as_ref()
        .filter(|a| !a.is_empty())
        && !arns.contains(&rec.rp_arn)
    {
        return Ok(false);
    }
    if let Some(arns) = scope
        .source_resource_arns
        .as_ref()
        .filter(|a| !a.is_empty())
        && !arns.contains(&rec.resource_arn)
    {
        return Ok(false);
    }
    if let Some(t) = &scope.backup_resource_creation_time
        && (t
            .created_after
            .is_some_and(|a| rec.backup_creation_date < a.0)
            || t.created_before
                .is_some_and(|b| rec.backup_creation_date > b.0))
    {
        return Ok(false);
    }
    if let Some(want) = scope
        .backup_resource_tags
        .as_ref()
        .filter(|t| !t.is_empty())
    {
        let have = crate::model::tags::get(tx, &rec.rp_arn)?;
        if want.iter().any(|(k, v)| have.get(k) != Some(v)) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The points of the caller's ACTIVE indexes inside `scope`, in key order.
pub(crate) fn points_in_scope(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    scope: &SearchScope,
) -> Result<Vec<ScannedPoint>> {
    let mut out = Vec::new();
    for (_, v) in
        crate::model::paging::scan_all(tx, indexes::TABLE, &format!("{account}:{region}:"))?
    {
        let rec: IndexRecord = serde_json::from_slice(&v)?;
        if in_scope(tx, scope, &rec)? {
            out.push(ScannedPoint {
                rp_id: rec.rp_id.clone(),
                rp_arn: rec.rp_arn.clone(),
                vault_name: rec.vault_name.clone(),
                resource_arn: rec.resource_arn.clone(),
                resource_type: rec.resource_type.clone(),
                backup_creation: rec.backup_creation_date,
                index_creation: rec.creation_date,
                items: rec.total_items.unwrap_or(0),
            });
        }
    }
    Ok(out)
}

/// Whether a file matches a search's item filters: inside a filter, each kind of condition
/// given (paths, sizes, times) by any one of its conditions (AWS: "all items that match any of
/// the included values"), and every kind given; and every filter of the list (AWS's documents
/// leave the list's combination open; requiring all is what lets two filters bound a range,
/// `Sizes >= 10` and `Sizes <= 500`). No filters match every file.
#[cfg(test)]
pub(crate) fn matches(filters: &ItemFilters, file: &CatalogEntry) -> bool {
    Matcher::new(filters).matches(file, &mut String::new())
}

/// A search's item filters prepared once for many files (see [`matches`] for the rules):
/// path values taken from the root, times in milliseconds; and, for the filters that confine
/// the path to exact paths or prefixes, those bounds, so that a stretch of the catalogue
/// between two paths can be passed over unread ([`Matcher::may_match_between`]).
pub(crate) struct Matcher {
    filters: Vec<Prepared>,
}

struct Prepared {
    paths: Option<Vec<PathTest>>,
    sizes: Option<Vec<LongCondition>>,
    times: Option<Vec<(TimeConditionOperator, i64)>>,
    /// When every path condition is an exact path or a prefix: those, relative to the root.
    bounds: Option<Vec<Bound>>,
}

enum PathTest {
    Glob(String, bool),
    Contains(String, bool),
    Begins(String, bool),
    Ends(String, bool),
    Never,
}

enum Bound {
    Exact(String),
    Prefix(String),
    Nothing,
}

/// Whether a filter gives conditions of a kind (an empty list is none).
fn nonempty<C>(v: &Option<Vec<C>>) -> bool {
    v.as_ref().is_some_and(|c| !c.is_empty())
}

/// A value not starting with `/` or `*` is taken from the recovery point's root.
fn rooted(v: &str) -> String {
    if v.starts_with('/') || v.starts_with('*') {
        v.to_string()
    } else {
        format!("/{v}")
    }
}

impl PathTest {
    fn new(c: &StringCondition) -> PathTest {
        let v = c.value.as_str();
        let op = c
            .operator
            .clone()
            .unwrap_or(StringConditionOperator::EqualsTo);
        match op {
            StringConditionOperator::EqualsTo => PathTest::Glob(rooted(v), false),
            StringConditionOperator::NotEqualsTo => PathTest::Glob(rooted(v), true),
            StringConditionOperator::Contains => PathTest::Contains(v.into(), false),
            StringConditionOperator::DoesNotContain => PathTest::Contains(v.into(), true),
            StringConditionOperator::BeginsWith => PathTest::Begins(rooted(v), false),
            StringConditionOperator::DoesNotBeginWith => PathTest::Begins(rooted(v), true),
            StringConditionOperator::EndsWith => PathTest::Ends(v.into(), false),
            StringConditionOperator::DoesNotEndWith => PathTest::Ends(v.into(), true),
            StringConditionOperator::Unknown(_) => PathTest::Never,
        }
    }

    fn holds(&self, path: &str) -> bool {
        match self {
            PathTest::Glob(p, neg) => glob(p, path) != *neg,
            PathTest::Contains(v, neg) => path.contains(v.as_str()) != *neg,
            PathTest::Begins(v, neg) => path.starts_with(v.as_str()) != *neg,
            PathTest::Ends(v, neg) => path.ends_with(v.as_str()) != *neg,
            PathTest::Never => false,
        }
    }

    /// The paths this test admits as a bound, when it is an exact path or a prefix.
    fn bound(&self) -> Option<Bound> {
        let relative = |v: &str| v.strip_prefix('/').map(str::to_string);
        match self {
            PathTest::Glob(p, false) if !p.contains(['*', '?']) => {
                Some(relative(p).map_or(Bound::Nothing, Bound::Exact))
            }
            PathTest::Begins(p, false) => Some(relative(p).map_or(Bound::Nothing, Bound::Prefix)),
            PathTest::Never => Some(Bound::Nothing),
            _ => None,
        }
    }
}

impl Bound {
    /// Whether a path this bound admits can lie between `first` and `last` (inclusive).
    fn meets(&self, first: &str, last: &str) -> bool {
        match self {
            Bound::Exact(p) => first <= p.as_str() && p.as_str() <= last,
            Bound::Prefix(p) => {
                last >= p.as_str() && (first < p.as_str() || first.starts_with(p.as_str()))
            }
            Bound::Nothing => false,
        }
    }
}

impl Matcher {
    pub(crate) fn new(filters: &ItemFilters) -> Matcher {
        let list = filters.ebs_item_filters.as_deref().unwrap_or_default();
        let filters = list
            .iter()
            .map(|f| {
                let paths: Option<Vec<PathTest>> = nonempty(&f.file_paths)
                    .then(|| f.file_paths.iter().flatten().map(PathTest::new).collect());
                let bounds = paths
                    .as_ref()
                    .and_then(|ps| ps.iter().map(PathTest::bound).collect::<Option<Vec<_>>>());
                let times = nonempty(&f.last_modification_times).then(|| {
                    f.last_modification_times
                        .iter()
                        .flatten()
                        .map(|c| {
                            let op = c
                                .operator
                                .clone()
                                .unwrap_or(TimeConditionOperator::EqualsTo);
                            (op, c.value.0.timestamp_millis())
                        })
                        .collect()
                });
                Prepared {
                    paths,
                    sizes: f.sizes.clone().filter(|s| !s.is_empty()),
                    times,
                    bounds,
                }
            })
            .collect();
        Matcher { filters }
    }

    /// Whether `file` matches; `buf` is scratch space for its absolute path.
    pub(crate) fn matches(&self, file: &CatalogEntry, buf: &mut String) -> bool {
        buf.clear();
        buf.push('/');
        buf.push_str(&file.path);
        self.filters.iter().all(|f| {
            f.paths
                .as_ref()
                .is_none_or(|ps| ps.iter().any(|p| p.holds(buf)))
                && f.sizes
                    .as_ref()
                    .is_none_or(|cs| cs.iter().any(|c| long_matches(c, file.size as i64)))
                && f.times.as_ref().is_none_or(|cs| {
                    file.modified_ms
                        .is_some_and(|m| cs.iter().any(|(op, v)| time_matches(op, *v, m)))
                })
        })
    }

    /// Whether a file whose catalogue path (relative to the root) lies between `first` and
    /// `last` (inclusive) can match: false only when a filter confines paths to exact paths
    /// or prefixes none of which lies there.
    pub(crate) fn may_match_between(&self, first: &str, last: &str) -> bool {
        self.filters.iter().all(|f| {
            f.bounds
                .as_ref()
                .is_none_or(|bs| bs.iter().any(|b| b.meets(first, last)))
        })
    }
}

/// A path condition. EQUALS_TO and NOT_EQUALS_TO take wildcards (`*` any run of characters,
/// `/` included; `?` one character); a value not starting with `/` or `*` is taken from the
/// recovery point's root (`docs/a.txt` is `/docs/a.txt`) for EQUALS_TO and BEGINS_WITH.
#[cfg(test)]
pub(crate) fn string_matches(c: &StringCondition, path: &str) -> bool {
    PathTest::new(c).holds(path)
}

fn long_matches(c: &LongCondition, value: i64) -> bool {
    match c
        .operator
        .clone()
        .unwrap_or(LongConditionOperator::EqualsTo)
    {
        LongConditionOperator::EqualsTo => value == c.value,
        LongConditionOperator::NotEqualsTo => value != c.value,
        LongConditionOperator::LessThanEqualTo => value <= c.value,
        LongConditionOperator::GreaterThanEqualTo => value >= c.value,
        LongConditionOperator::Unknown(_) => false,
    }
}

/// A time condition, compared to the millisecond.
fn time_matches(op: &TimeConditionOperator, v: i64, modified_ms: i64) -> bool {
    match op {
        TimeConditionOperator::EqualsTo => modified_ms == v,
        TimeConditionOperator::NotEqualsTo => modified_ms != v,
        TimeConditionOperator::LessThanEqualTo => modified_ms <= v,
        TimeConditionOperator::GreaterThanEqualTo => modified_ms >= v,
        TimeConditionOperator::Unknown(_) => false,
    }
}

/// Wildcard match of the whole text: `*` any run of characters, `?` exactly one.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    // On bytes, without allocating: `?` takes one whole character of the text, and a retry
    // after `*` moves on by one whole character, so this matches character by character.
    let width = |b: u8| match b {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    };
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'?' {
            pi += 1;
            ti += width(t[ti]);
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            let st = st + width(t[st]);
            pi = sp + 1;
            ti = st;
            star = Some((sp, st));
        } else {
            return false;
        }
    }
    ti == t.len() && p[pi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_api::search::types::{EBSItemFilter, TimeCondition};

    fn file(path: &str, size: u64, modified_ms: i64) -> CatalogEntry {
        CatalogEntry {
            path: path.into(),
            size,
            modified_ms: Some(modified_ms),
            content_hash: "h".into(),
        }
    }

    fn cond(op: StringConditionOperator, v: &str) -> StringCondition {
        StringCondition {
            operator: Some(op),
            value: v.into(),
        }
    }

    #[test]
    fn wildcards_match_whole_paths() {
        assert!(glob("/docs/*.txt", "/docs/a.txt"));
        assert!(glob("/docs/*.txt", "/docs/sub/a.txt"));
        assert!(!glob("/docs/*.txt", "/docs/a.txt.bak"));
        assert!(glob("*report-?.csv", "/x/y/report-1.csv"));
        assert!(!glob("*report-?.csv", "/x/y/report-10.csv"));
        assert!(glob("**", ""));
        // `?` is one character, however many bytes it takes.
        assert!(glob("/d/?.txt", "/d/é.txt"));
        assert!(glob("/d/??.txt", "/d/日本.txt"));
        assert!(!glob("/d/?.txt", "/d/日本.txt"));
        assert!(glob("*本*", "/d/日本語.txt"));
        assert!(glob("/d/*?", "/d/é"));
        assert!(!glob("/d/é", "/d/e"));
    }

    fn paths(conds: Vec<StringCondition>) -> Matcher {
        Matcher::new(&ItemFilters {
            ebs_item_filters: Some(vec![EBSItemFilter {
                file_paths: Some(conds),
                ..Default::default()
            }]),
            s3_item_filters: None,
        })
    }

    /// Exact paths and prefixes bound the stretches of the catalogue worth reading; any other
    /// path condition (wildcards, negations, CONTAINS, ENDS_WITH) bounds nothing.
    #[test]
    fn exact_paths_and_prefixes_rule_out_stretches_of_the_catalogue() {
        use StringConditionOperator as O;
        let needle = paths(vec![cond(O::EqualsTo, "/d0999/f0999999.txt")]);
        assert!(needle.may_match_between("d0998/a", "d0999/f0999999.txt"));
        assert!(needle.may_match_between("d0999/f0999999.txt", "e"));
        assert!(!needle.may_match_between("a", "d0999/f0999998.txt"));
        assert!(!needle.may_match_between("d0999/f1", "z"));
        // Taken from the root without the leading `/`, as the other operators are.
        let rel = paths(vec![cond(O::EqualsTo, "docs/a.txt")]);
        assert!(rel.may_match_between("docs/a.txt", "docs/a.txt"));
        assert!(!rel.may_match_between("docs/b", "docs/c"));
        let prefix = paths(vec![cond(O::BeginsWith, "/docs/")]);
        assert!(prefix.may_match_between("a", "docs/"));
        assert!(prefix.may_match_between("docs/x", "docs/y"));
        assert!(prefix.may_match_between("a", "z"));
        assert!(!prefix.may_match_between("a", "docs"));
        assert!(!prefix.may_match_between("docs0", "z"));
        // Alternatives: either bound will do.
        let either = paths(vec![cond(O::EqualsTo, "/a/1"), cond(O::BeginsWith, "/z/")]);
        assert!(either.may_match_between("y", "z/0"));
        assert!(!either.may_match_between("b", "y"));
        // A prefix that no absolute path has.
        assert!(!paths(vec![cond(O::BeginsWith, "*x")]).may_match_between("a", "z"));
        for open in [
            cond(O::EqualsTo, "/d*/f0999999.txt"),
            cond(O::EqualsTo, "/d0999/f099999?.txt"),
            cond(O::NotEqualsTo, "/a"),
            cond(O::Contains, "f0999999"),
            cond(O::EndsWith, ".txt"),
            cond(O::DoesNotBeginWith, "/a"),
        ] {
            assert!(paths(vec![open]).may_match_between("a", "b"));
        }
        assert!(Matcher::new(&ItemFilters::default()).may_match_between("a", "b"));
        // A bounded filter and an open one: the bound holds.
        let both = Matcher::new(&ItemFilters {
            ebs_item_filters: Some(vec![
                EBSItemFilter {
                    file_paths: Some(vec![cond(O::BeginsWith, "/docs/")]),
                    ..Default::default()
                },
                EBSItemFilter {
                    file_paths: Some(vec![cond(O::EndsWith, ".txt")]),
                    ..Default::default()
                },
            ]),
            s3_item_filters: None,
        });
        assert!(!both.may_match_between("e", "z"));
        assert!(both.may_match_between("docs/a", "docs/b"));
    }

    #[test]
    fn path_conditions_are_taken_from_the_root() {
        use StringConditionOperator as O;
        let p = "/docs/a.txt";
        assert!(string_matches(&cond(O::EqualsTo, "docs/a.txt"), p));
        assert!(string_matches(&cond(O::BeginsWith, "docs"), p));
        assert!(!string_matches(&cond(O::DoesNotBeginWith, "/docs"), p));
        assert!(string_matches(&cond(O::EndsWith, ".txt"), p));
        assert!(string_matches(&cond(O::Contains, "cs/a"), p));
        assert!(string_matches(&cond(O::NotEqualsTo, "*.csv"), p));
    }

    /// Conditions of one kind are alternatives, kinds are all required, filters alternatives.
    #[test]
    fn filters_combine_kinds_with_and_and_conditions_with_or() {
        let f = |paths: Vec<StringCondition>, sizes: Vec<LongCondition>| ItemFilters {
            ebs_item_filters: Some(vec![EBSItemFilter {
                file_paths: Some(paths),
                sizes: Some(sizes),
                ..Default::default()
            }]),
            s3_item_filters: None,
        };
        let ge = |v| LongCondition {
            operator: Some(LongConditionOperator::GreaterThanEqualTo),
            value: v,
        };
        let le = |v| LongCondition {
            operator: Some(LongConditionOperator::LessThanEqualTo),
            value: v,
        };
        let big = file("a/big.bin", 5000, 0);
        let small = file("a/small.txt", 10, 0);
        let txt = cond(StringConditionOperator::EndsWith, ".txt");
        let bin = cond(StringConditionOperator::EndsWith, ".bin");
        let filters = f(vec![txt.clone(), bin.clone()], vec![ge(100)]);
        assert!(matches(&filters, &big));
        assert!(!matches(&filters, &small));
        let filters = f(vec![txt.clone()], vec![ge(20), le(10)]);
        assert!(matches(&filters, &small), "conditions of one kind: any");
        assert!(matches(&filters, &file("a/b.txt", 50, 0)));
        // Two filters: both must hold, so they bound a range.
        let range = ItemFilters {
            ebs_item_filters: Some(vec![
                EBSItemFilter {
                    sizes: Some(vec![ge(10)]),
                    ..Default::default()
                },
                EBSItemFilter {
                    sizes: Some(vec![le(4999)]),
                    ..Default::default()
                },
            ]),
            s3_item_filters: None,
        };
        assert!(matches(&range, &small));
        assert!(!matches(&range, &big));
        assert!(!matches(&range, &file("tiny", 9, 0)));
        assert!(matches(&ItemFilters::default(), &big));
        let t = Utc.timestamp_millis_opt(1_000).unwrap();
        let newer = ItemFilters {
            ebs_item_filters: Some(vec![EBSItemFilter {
                last_modification_times: Some(vec![TimeCondition {
                    operator: Some(TimeConditionOperator::GreaterThanEqualTo),
                    value: Timestamp(t),
                }]),
                ..Default::default()
            }]),
            s3_item_filters: None,
        };
        assert!(matches(&newer, &file("x", 1, 1_000)));
        assert!(!matches(&newer, &file("x", 1, 999)));
    }
}
