//! The PostgreSQL backend, for deployments where several `coffer` nodes share one database.
//!
//! It keeps the same records table as SQLite (`tbl`, `key` in byte order, `value`), so the
//! domain runs unchanged. The domain's transactions are closures run once (`FnOnce`), so they
//! cannot be re-run after a serialisation failure; instead conflicts are made impossible:
//!
//! - a write transaction takes one cluster-wide transaction-scoped advisory lock as its first
//!   statement, in READ COMMITTED, so writers run one after another across every node and each
//!   statement after the lock sees everything committed before it: the same single-writer
//!   serial order SQLite gives inside one process, held across processes by PostgreSQL;
//! - a read transaction is REPEATABLE READ READ ONLY: one consistent snapshot, which
//!   PostgreSQL never aborts for serialisation.
//!
//! Every step before the closure runs (getting a connection, BEGIN, waiting for the lock) is
//! retried with backoff when it fails for a transient reason (a dropped connection, a lock
//! timeout, a serialisation or deadlock error), so a restarted database or a busy cluster
//! delays callers instead of failing them. A failure inside the closure or at COMMIT is
//! surfaced: the closure cannot be re-run, and a lost COMMIT's outcome is unknown.
//!
//! The closures are synchronous (see [`crate::Txn`]): each runs on the blocking thread pool
//! and drives the async client (`tokio-postgres` through a `deadpool-postgres` pool) with the
//! runtime's handle, one statement at a time. Migrations are numbered and applied at open
//! under the same lock, so several nodes starting together migrate once. There is no read
//! cache: other nodes write to the same database.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use futures_util::future::BoxFuture;
use tokio::runtime::Handle;
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;

use crate::{ErrorKind, Record, Result, Store, StoreError, Txn, TxnWork};

/// The advisory lock every write transaction (and every migration) holds: "Coffer" + 1.
/// `BEGIN_WRITE` spells the same number out.
pub(crate) const WRITE_LOCK: i64 = 0x436f_6666_6572_0001;

/// How many connections one node keeps to the database at most.
const POOL_SIZE: usize = 16;

/// Attempts at getting a connection and beginning a transaction before giving up.
const BEGIN_ATTEMPTS: u32 = 8;

const MIGRATIONS: &[&str] = &[
    // 1: one table of keyed records per logical table name; keys compare byte by byte, as in
    // SQLite, so scans page in the same order on both backends.
    "CREATE TABLE records (
        tbl TEXT NOT NULL,
        key TEXT COLLATE \"C\" NOT NULL,
        value BYTEA NOT NULL,
        PRIMARY KEY (tbl, key)
    );",
];

pub(crate) const BEGIN_WRITE: &str = "BEGIN ISOLATION LEVEL READ COMMITTED;
     SET LOCAL lock_timeout = '30s';
     SET LOCAL idle_in_transaction_session_timeout = '60s';
     SELECT pg_advisory_xact_lock(4859215112930721793);";
const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
     SET LOCAL idle_in_transaction_session_timeout = '60s';";

pub struct PostgresStore {
    pool: Pool,
    described: String,
}

/// What kind of failure a PostgreSQL error is (see [`ErrorKind`]): serialization failures,
/// deadlocks and lock timeouts are conflicts; connection trouble (SQLSTATE class 08, a server
/// shutting down or refusing connections, no SQLSTATE at all: I/O, a closed connection, a
/// timeout) makes the store unavailable; data the server reports damaged (XX001, XX002) and a
/// value that does not decode are corruption.
pub(crate) fn postgres_kind(e: &tokio_postgres::Error) -> ErrorKind {
    match e.code() {
        Some(code) => {
            let c = code.code();
            if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::LOCK_NOT_AVAILABLE
            {
                ErrorKind::Conflict
            } else if c.starts_with("08")
                || c.starts_with("53")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
            {
                ErrorKind::Unavailable
            } else if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED {
                ErrorKind::Corrupt
            } else {
                ErrorKind::Other
            }
        }
        None if e.to_string().starts_with("error deserializing") => ErrorKind::Corrupt,
        // No SQLSTATE: I/O, a closed connection, a failed connect, a timeout.
        None => ErrorKind::Unavailable,
    }
}

/// A PostgreSQL error as a store error: its kind, a message that says what the server said
/// (the client's own Display hides the cause), and the error itself as the source.
fn pg_error(e: tokio_postgres::Error) -> StoreError {
    let message = match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {} ({})", db.message(), db.code().code()),
        None => {
            let mut text = format!("PostgreSQL: {e}");
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            text
        }
    };
    StoreError::new(postgres_kind(&e), message, e)
}

/// A pool failure as a store error: waiting for or creating a connection timed out, or the
/// pool is closed, are the store being unavailable.
fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_error(e),
        other => StoreError::new(
            ErrorKind::Unavailable,
            format!("PostgreSQL connection pool: {other}"),
            other,
        ),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        pg_error(e)
    }
}

/// Where the store is, for logs: user, hosts, ports and database, never the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "postgresql {}@{}:{}/{}",
        config.get_user().unwrap_or("?"),
        hosts.join(","),
        if ports.is_empty() {
            "5432".to_string()
        } else {
            ports.join(",")
        },
        config.get_dbname().unwrap_or("?"),
    )
}

/// The client configuration of a `postgres://` URL (or a libpq key=value string), with the
/// password from `PGPASSWORD` when the URL has none, a 10 s connect timeout unless it sets one,
/// and the application name `coffer`; and its description for logs (no password).
pub(crate) fn connection_config(location: &str) -> Result<(tokio_postgres::Config, String)> {
    let mut config: tokio_postgres::Config = location.parse().map_err(|e| {
        StoreError::new(
            ErrorKind::Unavailable,
            format!("the PostgreSQL store location is not a valid connection URL: {e}"),
            e,
        )
    })?;
    if config.get_password().is_none()
        && let Ok(pw) = std::env::var("PGPASSWORD")
    {
        config.password(pw);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    config.application_name("coffer");
    let described = describe(&config);
    Ok((config, described))
}

impl PostgresStore {
    /// Connects to the database named by a `postgres://` URL (or a libpq key=value string),
    /// applies pending migrations and returns the store. A URL without a password takes it
    /// from `PGPASSWORD` when that is set. Blocks the calling thread while it connects.
    pub fn open(location: &str) -> Result<Self> {
        let (config, described) = connection_config(location)?;

        // The migration runs on a thread of its own with a runtime of its own, so opening
        // works from synchronous code and from inside an async runtime alike.
        let migrate_config = config.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| StoreError::Task(e.to_string()))?;
            rt.block_on(migrate(migrate_config))
        })
        .join()
        .map_err(|_| StoreError::Task("the migration thread panicked".into()))?
        .map_err(|e| {
            e.map_message(|detail| {
                let hint = if detail.contains("TLS") {
                    " (Coffer does not speak TLS to PostgreSQL yet: use sslmode=disable or \
                     prefer, over a local or private connection)"
                } else {
                    ""
                };
                format!("opening {described}: {detail}{hint}")
            })
        })?;

        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| {
                StoreError::new(
                    ErrorKind::Other,
                    format!("PostgreSQL connection pool: {e}"),
                    e,
                )
            })?;
        Ok(PostgresStore { pool, described })
    }
}

async fn migrate(config: tokio_postgres::Config) -> Result<()> {
    let (mut client, connection) = config.connect(NoTls).await?;
    let driver = tokio::spawn(connection);
    let result = async {
        let encoding: String = client
            .query_one("SHOW server_encoding", &[])
            .await?
            .get(0);
        if encoding != "UTF8" {
            return Err(StoreError::msg(
                ErrorKind::Other,
                format!(
                    "the database uses encoding {encoding}; Coffer needs a UTF8 database \
                     (CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0)"
                ),
            ));
        }
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS coffer_schema_migrations (
                version INTEGER PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await?;
        let version: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM coffer_schema_migrations",
                &[],
            )
            .await?
            .get(0);
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
            tx.batch_execute(sql).await?;
            let v = (i + 1) as i32;
            tx.execute(
                "INSERT INTO coffer_schema_migrations (version) VALUES ($1)",
                &[&v],
            )
            .await?;
            tracing::info!(version = v, "metadata schema migrated (PostgreSQL)");
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    drop(client);
    let _ = driver.await;
    result
}

/// A pooled connection inside a transaction. If it is dropped before COMMIT or ROLLBACK
/// completed (an error, a panic in the closure), the connection is closed instead of going
/// back to the pool, so the server rolls the transaction back and releases its lock.
struct Session {
    client: Option<Object>,
}

impl Session {
    fn client(&self) -> &Object {
        self.client.as_ref().expect("session holds a connection")
    }

    /// The transaction ended cleanly: the connection may serve the next one.
    fn release(mut self) {
        self.client.take();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(obj) = self.client.take() {
            drop(Object::take(obj));
        }
    }
}

/// Gets a connection and begins a transaction, retrying transient failures with backoff.
fn begin(rt: &Handle, pool: &Pool, write: bool) -> Result<Session> {
    let sql = if write { BEGIN_WRITE } else { BEGIN_READ };
    let mut delay = Duration::from_millis(20);
    let mut attempt = 1;
    loop {
        let outcome = rt.block_on(async {
            let client = pool.get().await.map_err(|e| {
                let e = pool_error(e);
                (e.is_retryable(), e)
            })?;
            let session = Session {
                client: Some(client),
            };
            match session.client().batch_execute(sql).await {
                Ok(()) => Ok(session),
                Err(e) => {
                    let e = pg_error(e);
                    Err((e.is_retryable(), e))
                }
            }
        });
        match outcome {
            Ok(session) => return Ok(session),
            Err((retry, e)) if retry && attempt < BEGIN_ATTEMPTS => {
                tracing::debug!(attempt, error = %e, "beginning a PostgreSQL transaction failed; retrying");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(2));
                attempt += 1;
            }
            Err((_, e)) => return Err(e),
        }
    }
}

fn run_txn(rt: &Handle, pool: &Pool, work: TxnWork, write: bool) -> Result<()> {
    let session = begin(rt, pool, write)?;
    let commit = {
        let mut txn = PgTxn {
            rt,
            client: session.client(),
        };
        work(&mut txn)?
    };
    let end = if commit { "COMMIT" } else { "ROLLBACK" };
    rt.block_on(session.client().batch_execute(end))?;
    session.release();
    Ok(())
}

struct PgTxn<'a> {
    rt: &'a Handle,
    client: &'a Object,
}

impl PgTxn<'_> {
    fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>> {
        self.rt.block_on(async {
            let stmt = self.client.prepare_cached(sql).await?;
            Ok(self.client.query(&stmt, params).await?)
        })
    }

    fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64> {
        self.rt.block_on(async {
            let stmt = self.client.prepare_cached(sql).await?;
            Ok(self.client.execute(&stmt, params).await?)
        })
    }
}

impl Txn for PgTxn<'_> {
    fn get(&mut self, table: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let rows = self.query(
            "SELECT value FROM records WHERE tbl = $1 AND key = $2",
            &[&table, &key],
        )?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    fn get_many(&mut self, table: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.len() < 2 {
            return keys.iter().map(|k| self.get(table, k)).collect();
        }
        let rows = self.query(
            "SELECT key, value FROM records WHERE tbl = $1 AND key = ANY($2)",
            &[&table, &keys],
        )?;
        let found: std::collections::HashMap<String, Vec<u8>> =
            rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    fn put(&mut self, table: &str, key: &str, value: &[u8]) -> Result<()> {
        self.execute(
            "INSERT INTO records (tbl, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value",
            &[&table, &key, &value],
        )?;
        Ok(())
    }

    fn insert_new(&mut self, table: &str, key: &str, value: &[u8]) -> Result<bool> {
        Ok(self.execute(
            "INSERT INTO records (tbl, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&table, &key, &value],
        )? == 1)
    }

    fn delete(&mut self, table: &str, key: &str) -> Result<bool> {
        Ok(self.execute(
            "DELETE FROM records WHERE tbl = $1 AND key = $2",
            &[&table, &key],
        )? == 1)
    }

    fn scan(
        &mut self,
        table: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>> {
        let upper = crate::prefix_end(prefix);
        let after = start_after.filter(|s| *s >= prefix);
        let lower = after.unwrap_or(prefix);
        let op = if after.is_some() { ">" } else { ">=" };
        let bound = if upper.is_some() { " AND key < $4" } else { "" };
        let sql = format!(
            "SELECT key, value FROM records WHERE tbl = $1 AND key {op} $2{bound} ORDER BY key LIMIT $3"
        );
        let limit = limit.min(i64::MAX as usize) as i64;
        let mut args: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            vec![&table, &lower, &limit];
        if let Some(upper) = &upper {
            args.push(upper);
        }
        let rows = self.query(&sql, &args)?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

impl PostgresStore {
    fn run(&self, work: TxnWork, write: bool) -> BoxFuture<'_, Result<()>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let rt = Handle::current();
            tokio::task::spawn_blocking(move || run_txn(&rt, &pool, work, write))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))?
        })
    }
}

impl Store for PostgresStore {
    fn run_write(&self, work: TxnWork) -> BoxFuture<'_, Result<()>> {
        self.run(work, true)
    }

    fn run_read(&self, work: TxnWork) -> BoxFuture<'_, Result<()>> {
        self.run(work, false)
    }

    fn clear(&self) -> BoxFuture<'_, Result<()>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let rt = Handle::current();
            tokio::task::spawn_blocking(move || {
                let session = begin(&rt, &pool, true)?;
                rt.block_on(
                    session
                        .client()
                        .batch_execute("DELETE FROM records; COMMIT"),
                )?;
                session.release();
                Ok(())
            })
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
        })
    }

    fn describe(&self) -> String {
        self.described.clone()
    }
}
