//! Coffer's metadata store: the one durable source of truth for plans, vaults, jobs and
//! recovery points.
//!
//! The domain sees one small trait: a transaction over named tables of keyed records (the
//! domain serialises its records itself). Everything a closure does inside
//! [`StoreHandle::write`] commits atomically before the call returns, so whatever a client
//! was told succeeded is durable. Keeping the interface this narrow is what lets a PostgreSQL
//! backend follow without touching the domain: it needs the same five record operations and
//! serialisable transactions, nothing else (a sixth, `get_many`, has a default made of the
//! five; PostgreSQL answers it in one query).
//!
//! The embedded default is SQLite in WAL mode with `synchronous = FULL`; several nodes share
//! one PostgreSQL database (see `postgres.rs` for how its transactions stay serial).

mod cache;
mod copy;
mod postgres;
mod sqlite;

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;

pub use copy::{CopyProgress, CopySummary, copy};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// What kind of failure a [`StoreError`] is: what the caller can do about it.
///
/// - `Conflict`: another transaction held what this one needed (SQLite busy or locked,
///   PostgreSQL serialization failure, deadlock, lock timeout). Running the work again later
///   can succeed.
/// - `Unavailable`: the store could not be reached or used (cannot open or connect, the pool
///   timed out, a connection dropped, disk I/O failed). Running it again later can succeed
///   once the database or disk is back.
/// - `Corrupt`: what is stored cannot be read (a record that does not decode, a SQLite file
///   that is damaged or not a database). Running it again gives the same answer.
/// - `Other`: anything else (a statement the backend refused, a bug). Not retryable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Conflict,
    Unavailable,
    Corrupt,
    Other,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Other => "error",
        })
    }
}

/// The error a store failure carries as its cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failure of the store itself (I/O, corruption, a backend error). The domain turns it into
/// ServiceUnavailableException; the detail (the message and the cause chain) is for the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed: `kind` says whether a retry can help, `source` is the backend's
    /// own error when there is one.
    #[error("metadata store {kind}: {message}")]
    Backend {
        kind: ErrorKind,
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    #[error("metadata store task failed: {0}")]
    Task(String),
    #[error("unsupported store location: {0}")]
    Unsupported(String),
    /// An operation on a whole store refused what it was given (`coffer store copy` into a
    /// store that holds records, from a store that does not exist); the message says what to do.
    #[error("{0}")]
    Refused(String),
}

impl StoreError {
    /// A backend failure of `kind`, described by `message`, caused by `source`.
    pub fn new(kind: ErrorKind, message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Backend {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A backend failure of `kind` with no underlying error (a check Coffer made itself).
    pub fn msg(kind: ErrorKind, message: impl Into<String>) -> Self {
        StoreError::Backend {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// A stored record that does not decode: `what` names it, `source` says why.
    pub fn corrupt(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::new(ErrorKind::Corrupt, what, source)
    }

    /// The same failure with its message rewritten by `f` (context added where it crosses a
    /// layer); the kind and the source stay.
    pub fn map_message(self, f: impl FnOnce(&str) -> String) -> Self {
        match self {
            StoreError::Backend {
                kind,
                message,
                source,
            } => StoreError::Backend {
                kind,
                message: f(&message),
                source,
            },
            StoreError::Task(m) => StoreError::Task(f(&m)),
            StoreError::Unsupported(m) => StoreError::Unsupported(f(&m)),
            StoreError::Refused(m) => StoreError::Refused(f(&m)),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Backend { kind, .. } => *kind,
            StoreError::Task(_) | StoreError::Unsupported(_) | StoreError::Refused(_) => {
                ErrorKind::Other
            }
        }
    }

    /// Whether running the same work again later can succeed (a conflict with another
    /// transaction, or a store that was unreachable): callers with a retry budget retry these
    /// with backoff and give up on the others at once.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Conflict | ErrorKind::Unavailable)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One record: its key and its serialised value.
pub type Record = (String, Vec<u8>);

/// The operations available inside a transaction.
pub trait Txn {
    /// The record stored under `key`, if any.
    fn get(&mut self, table: &str, key: &str) -> Result<Option<Vec<u8>>>;
    /// Stores `value` under `key`, replacing any earlier value.
    fn put(&mut self, table: &str, key: &str, value: &[u8]) -> Result<()>;
    /// Stores `value` only if `key` is free; returns whether it was stored.
    fn insert_new(&mut self, table: &str, key: &str, value: &[u8]) -> Result<bool>;
    /// Removes `key`; returns whether it existed.
    fn delete(&mut self, table: &str, key: &str) -> Result<bool>;
    /// Records whose key starts with `prefix`, in key order, strictly after `start_after`
    /// when given, at most `limit` of them.
    fn scan(
        &mut self,
        table: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>>;
    /// The records stored under `keys`, in their order (`None` for a key with none): one
    /// query on PostgreSQL, where each read is a round trip to the server; the default reads
    /// them one by one, which is as fast on SQLite.
    fn get_many(&mut self, table: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.get(table, k)).collect()
    }
}

/// A transaction that answers the reads of keys named in advance from one [`Txn::get_many`]
/// per table: how a listing loads the records a page of index entries points at in one
/// round trip, without its per-entry code knowing. Every other call goes to the transaction
/// underneath; a write forgets what was read ahead for its key.
pub struct Prefetched<'a> {
    inner: &'a mut dyn Txn,
    ahead: HashMap<(String, String), Option<Vec<u8>>>,
}

impl<'a> Prefetched<'a> {
    /// Reads `keys` of each table of `wanted` ahead.
    pub fn read(inner: &'a mut dyn Txn, wanted: Vec<(&str, Vec<String>)>) -> Result<Self> {
        let mut ahead = HashMap::new();
        for (table, keys) in wanted {
            if keys.is_empty() {
                continue;
            }
            let values = inner.get_many(table, &keys)?;
            for (key, value) in keys.into_iter().zip(values) {
                ahead.insert((table.to_string(), key), value);
            }
        }
        Ok(Prefetched { inner, ahead })
    }

    fn forget(&mut self, table: &str, key: &str) {
        if !self.ahead.is_empty() {
            self.ahead.remove(&(table.to_string(), key.to_string()));
        }
    }
}

impl Txn for Prefetched<'_> {
    fn get(&mut self, table: &str, key: &str) -> Result<Option<Vec<u8>>> {
        if self.ahead.is_empty() {
            return self.inner.get(table, key);
        }
        match self.ahead.remove(&(table.to_string(), key.to_string())) {
            Some(value) => Ok(value),
            None => self.inner.get(table, key),
        }
    }
    fn put(&mut self, table: &str, key: &str, value: &[u8]) -> Result<()> {
        self.forget(table, key);
        self.inner.put(table, key, value)
    }
    fn insert_new(&mut self, table: &str, key: &str, value: &[u8]) -> Result<bool> {
        self.forget(table, key);
        self.inner.insert_new(table, key, value)
    }
    fn delete(&mut self, table: &str, key: &str) -> Result<bool> {
        self.forget(table, key);
        self.inner.delete(table, key)
    }
    fn scan(
        &mut self,
        table: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>> {
        self.inner.scan(table, prefix, start_after, limit)
    }
    fn get_many(&mut self, table: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        self.inner.get_many(table, keys)
    }
}

/// Work run inside one transaction. It returns whether to commit.
pub type TxnWork = Box<dyn FnOnce(&mut dyn Txn) -> Result<bool> + Send>;

/// A metadata-store backend.
pub trait Store: Send + Sync + 'static {
    /// Runs `work` in a read-write transaction, committing when it returns `Ok(true)`.
    fn run_write(&self, work: TxnWork) -> BoxFuture<'_, Result<()>>;
    /// Runs `work` in a read-only transaction (a consistent snapshot).
    fn run_read(&self, work: TxnWork) -> BoxFuture<'_, Result<()>>;
    /// Runs `work` in a read-only transaction on the calling thread, for a backend whose reads
    /// do not wait on the network or on other transactions (SQLite in WAL mode); `None`, with
    /// `work` not called, for one that must run reads elsewhere (then [`Store::run_read`]).
    fn read_inline(&self, work: &mut dyn FnMut(&mut dyn Txn) -> Result<()>) -> Option<Result<()>> {
        let _ = work;
        None
    }
    /// Removes every record (development mode's reset).
    fn clear(&self) -> BoxFuture<'_, Result<()>>;
    /// A short description for logs, without secrets.
    fn describe(&self) -> String;
}

/// Where a store is, read off a `--store` location.
pub(crate) enum Location<'a> {
    /// A SQLite file (a path, or `sqlite://PATH`).
    Sqlite(&'a std::path::Path),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(&'a str),
}

impl<'a> Location<'a> {
    /// Reads `location`; another `scheme://` is refused, naming the forms Coffer takes.
    pub(crate) fn parse(location: &'a str) -> Result<Self> {
        if StoreHandle::is_postgres(location) {
            return Ok(Location::Postgres(location));
        }
        if let Some((scheme, _)) = location.split_once("://")
            && scheme != "sqlite"
        {
            return Err(StoreError::Unsupported(format!(
                "{scheme}:// is not a store Coffer knows; give a SQLite file path, \
                 sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE"
            )));
        }
        let path = location.strip_prefix("sqlite://").unwrap_or(location);
        Ok(Location::Sqlite(std::path::Path::new(path)))
    }
}

/// A shared handle on a store with typed transaction helpers, and (for the embedded,
/// single-writer store) a read cache.
#[derive(Clone)]
pub struct StoreHandle {
    store: Arc<dyn Store>,
    cache: Option<Arc<cache::ReadCache>>,
}

/// Records which keys a write transaction touched, so the cache can forget them.
struct Recording<'a> {
    inner: &'a mut dyn Txn,
    touched: Vec<(String, String)>,
}

impl Txn for Recording<'_> {
    fn get(&mut self, table: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get(table, key)
    }
    fn put(&mut self, table: &str, key: &str, value: &[u8]) -> Result<()> {
        self.touched.push((table.to_string(), key.to_string()));
        self.inner.put(table, key, value)
    }
    fn insert_new(&mut self, table: &str, key: &str, value: &[u8]) -> Result<bool> {
        self.touched.push((table.to_string(), key.to_string()));
        self.inner.insert_new(table, key, value)
    }
    fn delete(&mut self, table: &str, key: &str) -> Result<bool> {
        self.touched.push((table.to_string(), key.to_string()));
        self.inner.delete(table, key)
    }
    fn scan(
        &mut self,
        table: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>> {
        self.inner.scan(table, prefix, start_after, limit)
    }
    fn get_many(&mut self, table: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        self.inner.get_many(table, keys)
    }
}

/// The least key above every key that starts with `prefix`, the exclusive upper bound of a
/// prefix scan; `None` when no key is above them all (an empty prefix, or one made only of
/// U+10FFFF). Both backends order keys by code point: SQLite's BINARY collation and
/// PostgreSQL's "C" compare the UTF-8 bytes, which sort as their code points do. So the bound
/// is the prefix with its last character raised by one, after dropping any trailing U+10FFFF,
/// which cannot be raised; a fixed bound such as `prefix` + U+10FFFF would miss the keys that
/// continue the prefix with U+10FFFF.
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // Surrogates are not characters: the one after U+D7FF is U+E000.
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(c as u32 + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Told how long each transaction took, from the call to its answer (`true` for a write),
/// for the server's metrics. Set once per process with [`set_latency_hook`].
pub type LatencyHook = Arc<dyn Fn(bool, std::time::Duration) + Send + Sync>;

static LATENCY_HOOK: std::sync::OnceLock<LatencyHook> = std::sync::OnceLock::new();

/// Installs the process's [`LatencyHook`]; `false` when one is already installed.
pub fn set_latency_hook(hook: LatencyHook) -> bool {
    LATENCY_HOOK.set(hook).is_ok()
}

impl StoreHandle {
    /// A handle without a read cache (for backends shared by several nodes).
    pub fn new(store: Arc<dyn Store>) -> Self {
        StoreHandle { store, cache: None }
    }

    /// A handle with a read cache: only for a store this process alone writes.
    pub fn new_single_writer(store: Arc<dyn Store>) -> Self {
        StoreHandle {
            store,
            cache: Some(Arc::default()),
        }
    }

    /// Reads one record, from the cache when possible.
    pub async fn get_cached(&self, table: &str, key: &str) -> Result<Option<Arc<Vec<u8>>>> {
        if let Some(cache) = &self.cache {
            if let Some(hit) = cache.get(table, key) {
                return Ok(hit);
            }
            let generation = cache.generation();
            let (t, k) = (table.to_string(), key.to_string());
            let value = self.read(move |tx| tx.get(&t, &k)).await?.map(Arc::new);
            cache.fill_get(generation, table, key, value.clone());
            return Ok(value);
        }
        let (t, k) = (table.to_string(), key.to_string());
        Ok(self.read(move |tx| tx.get(&t, &k)).await?.map(Arc::new))
    }

    /// Scans records, from the cache when possible (see [`Txn::scan`]).
    pub async fn scan_cached(
        &self,
        table: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Arc<Vec<Record>>> {
        let id = (
            table.to_string(),
            prefix.to_string(),
            start_after.map(str::to_string),
            limit,
        );
        let generation = match &self.cache {
            Some(cache) => {
                if let Some(hit) = cache.scan(&id) {
                    return Ok(hit);
                }
                Some(cache.generation())
            }
            None => None,
        };
        let (t, p, s) = (id.0.clone(), id.1.clone(), id.2.clone());
        let rows = Arc::new(
            self.read(move |tx| tx.scan(&t, &p, s.as_deref(), limit))
                .await?,
        );
        if let (Some(cache), Some(g)) = (&self.cache, generation) {
            cache.fill_scan(g, id, rows.clone());
        }
        Ok(rows)
    }

    /// Whether `location` names a PostgreSQL database rather than a SQLite file.
    pub fn is_postgres(location: &str) -> bool {
        location.starts_with("postgres://") || location.starts_with("postgresql://")
    }

    /// Opens the store named by `location`: a `postgres://` or `postgresql://` URL
    /// (PostgreSQL, shared by several nodes, so no read cache), or a file path or
    /// `sqlite://PATH` URL (SQLite, with the single-writer read cache). Blocks while it
    /// connects and migrates.
    pub fn open(location: &str) -> Result<Self> {
        match Location::parse(location)? {
            Location::Postgres(url) => {
                let store = PostgresStore::open(url)?;
                Ok(StoreHandle::new(Arc::new(store)))
            }
            Location::Sqlite(path) => {
                let store = SqliteStore::open(path)?;
                Ok(StoreHandle::new_single_writer(Arc::new(store)))
            }
        }
    }

    /// Runs `f` in a read-write transaction. It commits when `f` returns `Ok`, and rolls
    /// back when `f` returns an error, which is handed back unchanged.
    pub async fn write<R, E, F>(&self, f: F) -> std::result::Result<R, E>
    where
        F: FnOnce(&mut dyn Txn) -> std::result::Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.run(f, true).await
    }

    /// Runs `f` in a read-only transaction.
    pub async fn read<R, E, F>(&self, f: F) -> std::result::Result<R, E>
    where
        F: FnOnce(&mut dyn Txn) -> std::result::Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.run(f, false).await
    }

    async fn run<R, E, F>(&self, f: F, write: bool) -> std::result::Result<R, E>
    where
        F: FnOnce(&mut dyn Txn) -> std::result::Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let started = std::time::Instant::now();
        let result = if write {
            self.run_timed(f, write).await
        } else {
            self.read_here(f).await
        };
        if let Some(hook) = LATENCY_HOOK.get() {
            hook(write, started.elapsed());
        }
        result
    }

    /// A read on the calling thread when the backend allows it (no thread hop, no shared
    /// slots), else on the backend's own terms.
    async fn read_here<R, E, F>(&self, f: F) -> std::result::Result<R, E>
    where
        F: FnOnce(&mut dyn Txn) -> std::result::Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let mut f = Some(f);
        let mut out = None;
        let ran = self.store.read_inline(&mut |tx| {
            if let Some(f) = f.take() {
                out = Some(f(tx));
            }
            Ok(())
        });
        match (ran, f) {
            (None, Some(f)) => self.run_timed(f, false).await,
            (Some(Err(e)), _) => Err(e.into()),
            _ => out.unwrap_or_else(|| {
                Err(StoreError::Task("transaction produced no result".into()).into())
            }),
        }
    }

    async fn run_timed<R, E, F>(&self, f: F, write: bool) -> std::result::Result<R, E>
    where
        F: FnOnce(&mut dyn Txn) -> std::result::Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let slot: Arc<std::sync::Mutex<Option<std::result::Result<R, E>>>> = Arc::default();
        let touched: Arc<std::sync::Mutex<Vec<(String, String)>>> = Arc::default();
        let out = slot.clone();
        let touched_out = touched.clone();
        let work: TxnWork = Box::new(move |txn| {
            let mut recording = Recording {
                inner: txn,
                touched: Vec::new(),
            };
            let result = f(&mut recording);
            let commit = result.is_ok();
            *touched_out.lock().unwrap_or_else(|e| e.into_inner()) = recording.touched;
            *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            Ok(commit)
        });
        let outcome = if write {
            self.store.run_write(work).await
        } else {
            self.store.run_read(work).await
        };
        if let Some(cache) = &self.cache {
            cache.invalidate(&touched.lock().unwrap_or_else(|e| e.into_inner()));
        }
        outcome?;
        let result = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        result.unwrap_or_else(|| {
            Err(StoreError::Task("transaction produced no result".into()).into())
        })
    }

    pub async fn clear(&self) -> Result<()> {
        let r = self.store.clear().await;
        if let Some(cache) = &self.cache {
            cache.clear();
        }
        r
    }

    pub fn describe(&self) -> String {
        self.store.describe()
    }
}

#[cfg(test)]
mod tests;
