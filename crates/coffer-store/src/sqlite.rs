//! The embedded SQLite backend: WAL journal, `synchronous = FULL`, one writer connection and
//! one reader connection, each used from the blocking thread pool so async tasks never wait
//! on disk. Schema changes are numbered migrations tracked in `PRAGMA user_version`.

use std::path::Path;
use std::sync::{Arc, Mutex};

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
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
}

fn connect(path: &Path, busy_timeout: std::time::Duration) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
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
        let reader = connect(path, busy_timeout)?;
        Ok(SqliteStore {
            path: path.display().to_string(),
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
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
    tx: &'a rusqlite::Transaction<'a>,
}

impl Txn for SqliteTxn<'_> {
    fn get(&mut self, table: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT value FROM records WHERE tbl = ?1 AND key = ?2")?;
        Ok(stmt
            .query_row(params![table, key], |r| r.get(0))
            .optional()?)
    }

    fn put(&mut self, table: &str, key: &str, value: &[u8]) -> Result<()> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO records (tbl, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value",
        )?;
        stmt.execute(params![table, key, value])?;
        Ok(())
    }

    fn insert_new(&mut self, table: &str, key: &str, value: &[u8]) -> Result<bool> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO records (tbl, key, value) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )?;
        Ok(stmt.execute(params![table, key, value])? == 1)
    }

    fn delete(&mut self, table: &str, key: &str) -> Result<bool> {
        let mut stmt = self
            .tx
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
        let upper = format!("{prefix}\u{10FFFF}");
        let lower = start_after.filter(|s| *s >= prefix).unwrap_or(prefix);
        let op = if start_after.is_some_and(|s| s >= prefix) {
            ">"
        } else {
            ">="
        };
        let sql = format!(
            "SELECT key, value FROM records WHERE tbl = ?1 AND key {op} ?2 AND key < ?3 ORDER BY key LIMIT ?4"
        );
        let mut stmt = self.tx.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![table, lower, upper, limit.min(i64::MAX as usize) as i64],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)),
        )?;
        Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
    }
}

fn run_blocking(
    conn: Arc<Mutex<Connection>>,
    work: TxnWork,
    behavior: TransactionBehavior,
) -> BoxFuture<'static, Result<()>> {
    Box::pin(async move {
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            let tx = conn.transaction_with_behavior(behavior)?;
            let commit = {
                let mut txn = SqliteTxn { tx: &tx };
                work(&mut txn)?
            };
            if commit {
                tx.commit()?;
            } else {
                tx.rollback()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    })
}

impl Store for SqliteStore {
    fn run_write(&self, work: TxnWork) -> BoxFuture<'_, Result<()>> {
        run_blocking(self.writer.clone(), work, TransactionBehavior::Immediate)
    }

    fn run_read(&self, work: TxnWork) -> BoxFuture<'_, Result<()>> {
        run_blocking(self.reader.clone(), work, TransactionBehavior::Deferred)
    }

    fn clear(&self) -> BoxFuture<'_, Result<()>> {
        let conn = self.writer.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
                conn.execute("DELETE FROM records", [])?;
                Ok::<_, StoreError>(())
            })
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??;
            Ok(())
        })
    }

    fn describe(&self) -> String {
        format!("sqlite {}", self.path)
    }
}
