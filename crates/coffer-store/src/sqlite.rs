//! The embedded SQLite backend: WAL journal, `synchronous = FULL`.
//!
//! Reads run on the caller's own thread (the request's task), on a small pool of reader
//! connections: a WAL reader never waits for the writer, and the pages a hot read needs are in
//! SQLite's page cache, so a thread hop would cost more than the read (a scan that turns out
//! long, past [`SHORT_SCAN`] rows, finishes with the thread's other tasks handed to another
//! thread, see [`blocking`]). Writes go to one writer
//! thread that owns the writer connection and commits in groups: it takes every write
//! transaction waiting, runs each inside its own savepoint of one SQLite transaction, commits
//! once (one fsync for the batch) and only then answers each caller. Schema changes are
//! numbered migrations tracked in `PRAGMA user_version`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures_util::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::{ErrorKind, Record, Result, Store, StoreError, Txn, TxnWork};

/// What kind of failure a SQLite error is (see [`ErrorKind`]).
pub(crate) fn sqlite_kind(e: &rusqlite::Error) -> ErrorKind {
    use rusqlite::ErrorCode as C;
    match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            C::DatabaseBusy | C::DatabaseLocked => ErrorKind::Conflict,
            C::DatabaseCorrupt | C::NotADatabase => ErrorKind::Corrupt,
            C::CannotOpen
            | C::SystemIoFailure
            | C::DiskFull
            | C::PermissionDenied
            | C::ReadOnly
            | C::FileLockingProtocolFailed
            | C::OutOfMemory => ErrorKind::Unavailable,
            _ => ErrorKind::Other,
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::Utf8Error(..) => ErrorKind::Corrupt,
        _ => ErrorKind::Other,
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::new(sqlite_kind(&e), format!("SQLite: {e}"), e)
    }
}

/// How long a SQLite statement waits for another connection's lock before failing busy.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

const MIGRATIONS: &[&str] = &[
    // 1: one table of keyed records per logical table name.
    "CREATE TABLE records (
        tbl TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (tbl, key)
    ) WITHOUT ROWID;",
];

pub struct SqliteStore {
    path: String,
    /// Where write transactions go: the writer thread's queue (taken when the store drops).
    writer: Option<std::sync::mpsc::Sender<Job>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    readers: Readers,
    /// How many batches the writer has committed (each one fsync).
    commits: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// The page size of a new store's file.
const PAGE_SIZE: i64 = 8192;

/// Each reader connection's page cache, in KiB (SQLite's default is 2 MiB): with
/// [`IDLE_READERS`] readers at most 64 MiB, enough for the hot pages of a large store.
const READER_CACHE_KIB: i64 = 8 * 1024;

fn connect(path: &Path, busy_timeout: std::time::Duration) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(busy_timeout)?;
    // Only a new, empty file takes this (an existing store keeps the page size it was made
    // with). With 8 KiB pages a record of up to about 2 KiB (a job, a recovery point) lives
    // in its B-tree page; with 4 KiB it spilled to an overflow page that SQLite reads from the
    // file on every lookup, bypassing its page cache.
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// A connection of its own for `coffer store copy` (crate::copy), set up as the store's are.
pub(crate) fn connect_for_copy(path: &Path) -> Result<Connection> {
    connect(path, BUSY_TIMEOUT)
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_busy_timeout(path, BUSY_TIMEOUT)
    }

    /// Opens the store with statements waiting at most `busy_timeout` for another
    /// connection's lock (tests use a short one to meet a busy database quickly).
    pub(crate) fn open_with_busy_timeout(
        path: &Path,
        busy_timeout: std::time::Duration,
    ) -> Result<Self> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::new(
                    ErrorKind::Unavailable,
                    format!("creating {}: {e}", parent.display()),
                    e,
                )
            })?;
        }
        let mut writer = connect(path, busy_timeout)?;
        migrate(&mut writer)?;
        let readers = Readers {
            path: path.to_path_buf(),
            busy_timeout,
            idle: Mutex::new(Vec::new()),
        };
        let first_reader = readers.connect()?;
        readers
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(first_reader);
        let (jobs, queue) = std::sync::mpsc::channel();
        let commits = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = commits.clone();
        let writer_thread = std::thread::Builder::new()
            .name("coffer-store-writer".into())
            .spawn(move || writer_loop(writer, queue, &counted))
            .map_err(|e| {
                StoreError::new(ErrorKind::Other, "starting the metadata writer thread", e)
            })?;
        Ok(SqliteStore {
            path: path.display().to_string(),
            writer: Some(jobs),
            writer_thread: Some(writer_thread),
            readers,
            commits,
        })
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version as usize > MIGRATIONS.len() {
        return Err(StoreError::msg(
            ErrorKind::Other,
            format!(
                "the metadata database has schema version {version}, newer than this Coffer ({}); upgrade Coffer",
                MIGRATIONS.len()
            ),
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "metadata schema migrated");
    }
    Ok(())
}

struct SqliteTxn<'a> {
    conn: &'a Connection,
}

impl Txn for SqliteTxn<'_> {
    fn get(&mut self, table: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT value FROM records WHERE tbl = ?1 AND key = ?2")?;
        Ok(stmt
            .query_row(params![table, key], |r| r.get(0))
            .optional()?)
    }

    fn put(&mut self, table: &str, key: &str, value: &[u8]) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO records (tbl, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value",
        )?;
        stmt.execute(params![table, key, value])?;
        Ok(())
    }

    fn insert_new(&mut self, table: &str, key: &str, value: &[u8]) -> Result<bool> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO records (tbl, key, value) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )?;
        Ok(stmt.execute(params![table, key, value])? == 1)
    }

    fn delete(&mut self, table: &str, key: &str) -> Result<bool> {
        let mut stmt = self
            .conn
            .prepare_cached("DELETE FROM records WHERE tbl = ?1 AND key = ?2")?;
        Ok(stmt.execute(params![table, key])? == 1)
    }

    fn scan(
        &mut self,
        table: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>> {
        let upper = crate::prefix_end(prefix);
        let lower = start_after.filter(|s| *s >= prefix).unwrap_or(prefix);
        let op = if start_after.is_some_and(|s| s >= prefix) {
            ">"
        } else {
            ">="
        };
        let bound = if upper.is_some() { " AND key < ?4" } else { "" };
        let sql = format!(
            "SELECT key, value FROM records WHERE tbl = ?1 AND key {op} ?2{bound} ORDER BY key LIMIT ?3"
        );
        let limit = limit.min(i64::MAX as usize) as i64;
        let mut args: Vec<&dyn rusqlite::ToSql> = vec![&table, &lower, &limit];
        if let Some(upper) = &upper {
            args.push(upper);
        }
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query_map(&*args, |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows.by_ref().take(SHORT_SCAN) {
            out.push(row?);
        }
        if out.len() == SHORT_SCAN {
            // A long scan: finish it without holding up the other tasks of this thread.
            blocking(|| {
                for row in rows {
                    out.push(row?);
                }
                Ok::<_, rusqlite::Error>(())
            })?;
        }
        Ok(out)
    }
}

/// How many rows a scan reads on the caller's thread before it finishes as blocking work.
const SHORT_SCAN: usize = 512;

/// Runs `f`, which may take long, where it does not hold up other tasks: on a worker of a
/// multi-threaded runtime the worker's other tasks move to another thread first
/// (`block_in_place`); anywhere else (the writer thread, a current-thread runtime) it just runs.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    let multi = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// The message of a panic caught in a transaction's closure.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string());
    format!("the transaction's work panicked: {what}")
}

/// The same SQLite failure again, for each caller of a batch it failed (rusqlite's error is
/// not `Clone`; SQLite's own failure, which carries the code the kind comes from, is).
fn shared(e: &rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone()).into()
        }
        other => StoreError::msg(sqlite_kind(other), format!("SQLite: {other}")),
    }
}

// Reads: a small pool of reader connections, used on the caller's own thread.

/// How many idle reader connections the pool keeps (more are opened while that many reads run
/// at once, and closed when they end).
const IDLE_READERS: usize = 8;

/// Reader connections waiting for their next read.
struct Readers {
    path: PathBuf,
    busy_timeout: std::time::Duration,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn connect(&self) -> Result<Connection> {
        let conn = connect(&self.path, self.busy_timeout)?;
        // A read transaction never writes (as on PostgreSQL, where reads are READ ONLY): a
        // write through a reader would bypass the writer and the cache's invalidation.
        conn.pragma_update(None, "query_only", "ON")?;
        conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
        Ok(conn)
    }

    /// Runs `work` in one read transaction (a WAL snapshot) on the calling thread.
    fn run(&self, work: &mut dyn FnMut(&mut dyn Txn) -> Result<()>) -> Result<()> {
        let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match taken {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let result = read_on(&mut conn, work);
        if result.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
        }
        result
    }
}

fn read_on(conn: &mut Connection, work: &mut dyn FnMut(&mut dyn Txn) -> Result<()>) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        work(&mut SqliteTxn { conn: &tx })
    }))
    .unwrap_or_else(|panic| Err(StoreError::Task(panic_message(panic))));
    tx.rollback()?;
    outcome
}

// Writes: one writer thread, group commit.

/// The most write transactions one commit carries.
const MAX_BATCH: usize = 512;

enum Work {
    Txn(TxnWork),
    Clear,
}

struct Job {
    work: Work,
    done: tokio::sync::oneshot::Sender<Result<()>>,
}

/// The writer connection's thread: takes every write transaction waiting, runs each in a
/// savepoint of one SQLite transaction, commits them together (one fsync), then answers each.
fn writer_loop(
    mut conn: Connection,
    jobs: std::sync::mpsc::Receiver<Job>,
    commits: &std::sync::atomic::AtomicU64,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, batch, commits);
    }
}

/// Runs a batch of write transactions and commits once. A transaction whose work fails (or
/// asks not to commit) is rolled back to its savepoint alone; its neighbours commit. A failure
/// of the batch itself (BEGIN, a savepoint, COMMIT, or SQLite rolling the whole transaction
/// back on an I/O error) fails every caller whose work it would have carried: nobody is told
/// a write succeeded unless its COMMIT did. Each commit is counted in `commits`.
fn commit_batch(conn: &mut Connection, batch: Vec<Job>, commits: &std::sync::atomic::AtomicU64) {
    let mut ran: Vec<(tokio::sync::oneshot::Sender<Result<()>>, Result<()>)> =
        Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        for job in jobs {
            let _ = job.done.send(Err(shared(&e)));
        }
        return;
    }
    for job in jobs.by_ref() {
        match run_in_savepoint(conn, job.work) {
            Ok(outcome) => ran.push((job.done, outcome)),
            Err(broken) => {
                // The transaction is no longer sound: give up all of it.
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                let _ = job.done.send(Err(shared(&broken)));
                for (done, _) in ran.drain(..) {
                    let _ = done.send(Err(shared(&broken)));
                }
                for job in jobs {
                    let _ = job.done.send(Err(shared(&broken)));
                }
                return;
            }
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for (done, outcome) in ran {
                let _ = done.send(outcome);
            }
        }
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            for (done, _) in ran {
                let _ = done.send(Err(shared(&e)));
            }
        }
    }
}

/// Runs one write transaction's work inside a savepoint: kept when the work returns
/// `Ok(true)`, rolled back otherwise. The outer error is a failure of the enclosing
/// transaction (the savepoint statements failed, or SQLite rolled everything back); the inner
/// result is this transaction's own outcome.
fn run_in_savepoint(
    conn: &Connection,
    work: Work,
) -> std::result::Result<Result<()>, rusqlite::Error> {
    statement(conn, "SAVEPOINT txn")?;
    let result = match work {
        Work::Clear => conn
            .execute("DELETE FROM records", [])
            .map(|_| true)
            .map_err(StoreError::from),
        Work::Txn(work) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            work(&mut SqliteTxn { conn })
        }))
        .unwrap_or_else(|panic| Err(StoreError::Task(panic_message(panic)))),
    };
    if conn.is_autocommit() {
        // An I/O error or a full disk made SQLite roll the whole transaction back.
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
            Some(match &result {
                Err(e) => format!("the transaction was rolled back: {e}"),
                Ok(_) => "the transaction was rolled back".to_string(),
            }),
        ));
    }
    if !matches!(result, Ok(true)) {
        statement(conn, "ROLLBACK TO txn")?;
    }
    statement(conn, "RELEASE txn")?;
    Ok(result.map(|_| ()))
}

/// Runs one of the writer's own statements, prepared once per connection.
fn statement(conn: &Connection, sql: &str) -> std::result::Result<(), rusqlite::Error> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

impl SqliteStore {
    /// How many batches of write transactions have committed (one fsync each).
    pub fn commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn submit(&self, work: Work) -> BoxFuture<'static, Result<()>> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let sent = self
            .writer
            .as_ref()
            .is_some_and(|jobs| jobs.send(Job { work, done }).is_ok());
        Box::pin(async move {
            if !sent {
                return Err(StoreError::Task("the metadata writer has stopped".into()));
            }
            answer
                .await
                .map_err(|_| StoreError::Task("the metadata writer stopped".into()))?
        })
    }
}

impl Store for SqliteStore {
    fn run_write(&self, work: TxnWork) -> BoxFuture<'_, Result<()>> {
        self.submit(Work::Txn(work))
    }

    fn run_read(&self, work: TxnWork) -> BoxFuture<'_, Result<()>> {
        let mut work = Some(work);
        let result = self.readers.run(&mut |tx| match work.take() {
            Some(work) => work(tx).map(|_| ()),
            None => Ok(()),
        });
        Box::pin(std::future::ready(result))
    }

    fn read_inline(&self, work: &mut dyn FnMut(&mut dyn Txn) -> Result<()>) -> Option<Result<()>> {
        Some(self.readers.run(work))
    }

    fn clear(&self) -> BoxFuture<'_, Result<()>> {
        self.submit(Work::Clear)
    }

    fn describe(&self) -> String {
        format!("sqlite {}", self.path)
    }
}

impl Drop for SqliteStore {
    /// Lets the writer finish what it was given, then waits for its thread, so the file is
    /// closed when the store is gone (a reopen sees every acknowledged write either way).
    fn drop(&mut self) {
        self.writer.take();
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
    }
}
