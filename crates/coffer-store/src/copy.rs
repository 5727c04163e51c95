//! Copying a whole store into a new, empty one: `coffer store copy --from A --to B`.
//!
//! Why it exists: an operator who outgrows one machine moves from the embedded SQLite store to
//! PostgreSQL (several nodes, docs/cluster.md) and needs to carry the existing store over; the
//! scale benchmark builds its PostgreSQL database the same way, because seeding it statement by
//! statement is far slower than seeding SQLite and copying. Both backends keep the same single
//! `records (tbl, key, value)` table, so a copy moves rows, nothing is translated.
//!
//! How:
//! - Both ends are opened through the backends' normal open first, so their migrations run
//!   and a store newer than this Coffer is refused, then dropped; the copy itself uses
//!   connections of its own.
//! - The source is read in one consistent snapshot (a SQLite read transaction; PostgreSQL
//!   `REPEATABLE READ READ ONLY`, paged through a portal), in `(tbl, key)` order, and streamed
//!   to the target in batches over a bounded channel: memory stays a few batches whatever the
//!   store's size.
//! - The target is written in one transaction: PostgreSQL with `COPY ... FROM STDIN (FORMAT
//!   binary)` under the cluster-wide write lock, SQLite with one prepared INSERT. The target
//!   must hold no records (checked inside that transaction); a failure rolls everything back,
//!   so a failed copy leaves the target empty.
//! - Source and target each run on a thread of their own (a PostgreSQL end drives its client
//!   on a runtime of its own), so [`copy`] can be called from any thread that may block.
//!
//! Writes made to the source while the copy runs are not carried: stop the servers first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_postgres::NoTls;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use crate::postgres::{self, PostgresStore};
use crate::sqlite::{self, SqliteStore};
use crate::{ErrorKind, Location, Result, StoreError};

/// Rows per message between the reader and the writer.
const BATCH: usize = 1000;
/// Messages the channel holds: what the reader may run ahead of the writer.
const IN_FLIGHT: usize = 8;

/// How far a copy has got, handed to the caller's progress callback after each batch.
#[derive(Debug, Clone, Copy)]
pub struct CopyProgress {
    /// Rows written to the target so far (not yet committed).
    pub rows: u64,
    /// Rows in the source's snapshot.
    pub total: u64,
    /// Time since the copy started.
    pub elapsed: Duration,
}

/// What a finished copy carried.
#[derive(Debug, Clone)]
pub struct CopySummary {
    /// The source and the target, as the logs name them (no password).
    pub from: String,
    pub to: String,
    /// Rows per logical table (`tbl`).
    pub tables: BTreeMap<String, u64>,
    /// Rows in all.
    pub rows: u64,
    /// Bytes of keys and values carried.
    pub bytes: u64,
    /// From the start of the copy to the target's commit.
    pub elapsed: Duration,
    /// PostgreSQL targets only: how long `VACUUM (ANALYZE)` of the copied rows took after the
    /// commit, or why it failed (the copy stands either way; the database's autovacuum does the
    /// same work later).
    pub vacuum: Option<std::result::Result<Duration, String>>,
}

/// One record of the `records` table.
struct Row {
    tbl: String,
    key: String,
    value: Vec<u8>,
}

/// What the reader sends the writer.
enum Msg {
    /// How many rows the snapshot holds (sent first).
    Total(u64),
    Rows(Vec<Row>),
    /// The snapshot has been read to its end (only sent when it was).
    End,
}

/// One end of a copy, opened and described.
enum End {
    Sqlite(PathBuf),
    Postgres(Box<tokio_postgres::Config>),
}

/// Copies every record of the store at `from` into the store at `to` (each a SQLite file path,
/// `sqlite://PATH` or a `postgres://` URL, as `--store` takes), calling `progress` after each
/// batch. The target must hold no records; a source SQLite file must exist. Blocks until the
/// target has committed (call it from a thread that may block, e.g. `spawn_blocking`).
pub fn copy(
    from: &str,
    to: &str,
    progress: &mut (dyn FnMut(&CopyProgress) + Send),
) -> Result<CopySummary> {
    let started = Instant::now();
    let source_location = Location::parse(from)?;
    let target_location = Location::parse(to)?;
    if let Location::Sqlite(path) = &source_location
        && !path.exists()
    {
        return Err(StoreError::Refused(format!(
            "there is no store to copy at {} (--from names an existing SQLite file, \
             e.g. DATA_DIR/metadata.db, or a postgres:// URL)",
            path.display()
        )));
    }
    let (source, from_described) = open(&source_location)
        .map_err(|e| e.map_message(|m| format!("opening the source store (--from): {m}")))?;
    if same_store(&source, &target_location) {
        return Err(StoreError::Refused(format!(
            "--from and --to name the same store ({from_described}); give a new, empty store \
             as --to"
        )));
    }
    let (target, to_described) = open(&target_location)
        .map_err(|e| e.map_message(|m| format!("opening the target store (--to): {m}")))?;

    let (sender, receiver) = mpsc::channel(IN_FLIGHT);
    let (read, written) = std::thread::scope(|s| {
        let reader = s.spawn(|| read_source(&source, sender));
        let writer = s.spawn(|| write_target(&target, &to_described, receiver, started, progress));
        (join(reader), join(writer))
    });
    let stopped = |e: &StoreError| matches!(e, StoreError::Task(m) if m == TARGET_STOPPED);
    let reading = |e: StoreError| e.map_message(|m| format!("reading {from_described}: {m}"));
    let outcome = match (read, written) {
        (Ok(()), Ok(summary)) => Ok(summary),
        // The reader failed; the writer only saw the rows stop.
        (Err(e), _) if !stopped(&e) => Err(reading(e)),
        // The writer failed (or refused the target); the reader only saw it stop taking rows.
        (_, Err(e @ StoreError::Refused(_))) => Err(e),
        (_, Err(e)) => Err(e.map_message(|m| format!("writing {to_described}: {m}"))),
        (Err(e), Ok(_)) => Err(reading(e)),
    };
    let mut summary = outcome?;
    summary.from = from_described;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// The reader's error when the writer stopped taking rows (the writer's error says why).
const TARGET_STOPPED: &str = "the target stopped taking rows";
/// The writer's error when the rows stopped before the end of the snapshot.
const SOURCE_STOPPED: &str = "the source stopped before the end of its records";

fn join<T>(handle: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    handle
        .join()
        .unwrap_or_else(|_| Err(StoreError::Task("a copy thread panicked".into())))
}

/// Opens the store at `location` through its backend's normal open (migrations, version check),
/// closes it again and returns how the copy connects to it, with its description.
fn open(location: &Location<'_>) -> Result<(End, String)> {
    match location {
        Location::Sqlite(path) => {
            let store = SqliteStore::open(path)?;
            let described = crate::Store::describe(&store);
            drop(store);
            Ok((End::Sqlite(path.to_path_buf()), described))
        }
        Location::Postgres(url) => {
            let store = PostgresStore::open(url)?;
            let described = crate::Store::describe(&store);
            drop(store);
            let (config, _) = postgres::connection_config(url)?;
            Ok((End::Postgres(Box::new(config)), described))
        }
    }
}

/// Whether the opened source and the target location are one store: the same SQLite file
/// (after following links), or the same PostgreSQL hosts, ports and database.
fn same_store(source: &End, target: &Location<'_>) -> bool {
    match (source, target) {
        (End::Sqlite(a), Location::Sqlite(b)) => match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        },
        (End::Postgres(a), Location::Postgres(b)) => match postgres::connection_config(b) {
            Ok((b, _)) => {
                let ports = |c: &tokio_postgres::Config| match c.get_ports() {
                    [] => vec![5432],
                    p => p.to_vec(),
                };
                a.get_hosts() == b.get_hosts()
                    && ports(a) == ports(&b)
                    && a.get_dbname() == b.get_dbname()
            }
            Err(_) => false,
        },
        _ => false,
    }
}

/// Runs `f` on a runtime of this thread's own (a PostgreSQL end's client and its connection).
fn on_runtime<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Task(format!("starting a runtime for the copy: {e}")))?
        .block_on(f)
}

async fn connect(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "copy: PostgreSQL connection ended");
        }
    });
    Ok(client)
}

// Reading the source.

fn read_source(source: &End, sender: mpsc::Sender<Msg>) -> Result<()> {
    match source {
        End::Sqlite(path) => read_sqlite(path, sender),
        End::Postgres(config) => on_runtime(read_postgres(config, sender)),
    }
}

const SELECT_ALL: &str = "SELECT tbl, key, value FROM records ORDER BY tbl, key";

fn read_sqlite(path: &Path, sender: mpsc::Sender<Msg>) -> Result<()> {
    let mut conn = sqlite::connect_for_copy(path)?;
    conn.pragma_update(None, "query_only", "ON")?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
    // The first statement of the transaction fixes its snapshot; the SELECT below reads the same.
    let total: i64 = tx.query_row("SELECT count(*) FROM records", [], |r| r.get(0))?;
    send_blocking(&sender, Msg::Total(total as u64))?;
    let mut stmt = tx.prepare(SELECT_ALL)?;
    let mut rows = stmt.query([])?;
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(r) = rows.next()? {
        batch.push(Row {
            tbl: r.get(0)?,
            key: r.get(1)?,
            value: r.get(2)?,
        });
        if batch.len() == BATCH {
            send_blocking(
                &sender,
                Msg::Rows(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))),
            )?;
        }
    }
    if !batch.is_empty() {
        send_blocking(&sender, Msg::Rows(batch))?;
    }
    send_blocking(&sender, Msg::End)
}

fn send_blocking(sender: &mpsc::Sender<Msg>, msg: Msg) -> Result<()> {
    sender
        .blocking_send(msg)
        .map_err(|_| StoreError::Task(TARGET_STOPPED.into()))
}

async fn send(sender: &mpsc::Sender<Msg>, msg: Msg) -> Result<()> {
    sender
        .send(msg)
        .await
        .map_err(|_| StoreError::Task(TARGET_STOPPED.into()))
}

/// A column of a source row, or the store's Corrupt error naming it.
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    i: usize,
) -> Result<T> {
    row.try_get(i)
        .map_err(|e| StoreError::corrupt(format!("a record's column {i}"), e))
}

async fn read_postgres(config: &tokio_postgres::Config, sender: mpsc::Sender<Msg>) -> Result<()> {
    let mut client = connect(config).await?;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let total: i64 = tx
        .query_one("SELECT count(*) FROM records", &[])
        .await?
        .get(0);
    send(&sender, Msg::Total(total as u64)).await?;
    let stmt = tx.prepare(SELECT_ALL).await?;
    let portal = tx.bind(&stmt, &[]).await?;
    loop {
        let rows = tx.query_portal(&portal, BATCH as i32).await?;
        if rows.is_empty() {
            break;
        }
        let batch = rows
            .iter()
            .map(|r| {
                Ok(Row {
                    tbl: column(r, 0)?,
                    key: column(r, 1)?,
                    value: column(r, 2)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        send(&sender, Msg::Rows(batch)).await?;
    }
    tx.rollback().await?;
    send(&sender, Msg::End).await
}

// Writing the target.

/// What the writer counts as rows go by.
struct Tally {
    summary: CopySummary,
    total: u64,
    started: Instant,
}

impl Tally {
    fn new(to: &str, started: Instant) -> Self {
        Tally {
            summary: CopySummary {
                from: String::new(),
                to: to.to_string(),
                tables: BTreeMap::new(),
                rows: 0,
                bytes: 0,
                elapsed: Duration::ZERO,
                vacuum: None,
            },
            total: 0,
            started,
        }
    }

    /// Counts a written batch and tells the caller.
    fn add(&mut self, batch: &[Row], progress: &mut (dyn FnMut(&CopyProgress) + Send)) {
        for row in batch {
            match self.summary.tables.get_mut(&row.tbl) {
                Some(n) => *n += 1,
                None => {
                    self.summary.tables.insert(row.tbl.clone(), 1);
                }
            }
            self.summary.bytes += (row.key.len() + row.value.len()) as u64;
        }
        self.summary.rows += batch.len() as u64;
        progress(&CopyProgress {
            rows: self.summary.rows,
            total: self.total,
            elapsed: self.started.elapsed(),
        });
    }

    /// Checks, before the commit, that every row of the snapshot arrived and that the target
    /// took as many as were sent (`stored`).
    fn check(&self, stored: u64) -> Result<()> {
        if self.summary.rows != self.total || stored != self.total {
            return Err(StoreError::msg(
                ErrorKind::Other,
                format!(
                    "the source's snapshot holds {} records but {} were read and {} stored; \
                     nothing was committed",
                    self.total, self.summary.rows, stored
                ),
            ));
        }
        Ok(())
    }
}

fn write_target(
    target: &End,
    described: &str,
    receiver: mpsc::Receiver<Msg>,
    started: Instant,
    progress: &mut (dyn FnMut(&CopyProgress) + Send),
) -> Result<CopySummary> {
    let tally = Tally::new(described, started);
    match target {
        End::Sqlite(path) => write_sqlite(path, described, receiver, tally, progress),
        End::Postgres(config) => {
            on_runtime(write_postgres(config, described, receiver, tally, progress))
        }
    }
}

fn not_empty(described: &str) -> StoreError {
    StoreError::Refused(format!(
        "the target store {described} already holds records; copy into a new, empty store \
         (a SQLite path where no file is, or a new database: createdb -E UTF8 -T template0 \
         NAME), or empty this one first"
    ))
}

fn write_sqlite(
    path: &Path,
    described: &str,
    mut receiver: mpsc::Receiver<Msg>,
    mut tally: Tally,
    progress: &mut (dyn FnMut(&CopyProgress) + Send),
) -> Result<CopySummary> {
    let mut conn = sqlite::connect_for_copy(path)?;
    // A larger page cache for one long transaction of ordered inserts.
    conn.pragma_update(None, "cache_size", -64 * 1024)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let held: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM records)", [], |r| r.get(0))?;
    if held {
        return Err(not_empty(described));
    }
    let mut stored = 0u64;
    {
        let mut insert = tx.prepare("INSERT INTO records (tbl, key, value) VALUES (?1, ?2, ?3)")?;
        loop {
            match receiver.blocking_recv() {
                Some(Msg::Total(n)) => tally.total = n,
                Some(Msg::Rows(batch)) => {
                    for row in &batch {
                        stored +=
                            insert.execute(rusqlite::params![row.tbl, row.key, row.value])? as u64;
                    }
                    tally.add(&batch, progress);
                }
                Some(Msg::End) => break,
                None => return Err(StoreError::Task(SOURCE_STOPPED.into())),
            }
        }
    }
    tally.check(stored)?;
    tx.commit()?;
    Ok(tally.summary)
}

async fn write_postgres(
    config: &tokio_postgres::Config,
    described: &str,
    mut receiver: mpsc::Receiver<Msg>,
    mut tally: Tally,
    progress: &mut (dyn FnMut(&CopyProgress) + Send),
) -> Result<CopySummary> {
    let mut client = connect(config).await?;
    let tx = client.transaction().await?;
    // The cluster's write lock: a node left running on the target waits instead of writing
    // between the check below and the commit.
    // The COPY is one statement as long as the whole copy: no statement timeout the database
    // or role may set ends it.
    tx.batch_execute("SET LOCAL lock_timeout = '30s'; SET LOCAL statement_timeout = 0")
        .await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&postgres::WRITE_LOCK])
        .await?;
    let held: bool = tx
        .query_one("SELECT EXISTS (SELECT 1 FROM records)", &[])
        .await?
        .get(0);
    if held {
        return Err(not_empty(described));
    }
    let sink = tx
        .copy_in("COPY records (tbl, key, value) FROM STDIN (FORMAT binary)")
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT, Type::BYTEA]);
    let mut writer = std::pin::pin!(writer);
    loop {
        match receiver.recv().await {
            Some(Msg::Total(n)) => tally.total = n,
            Some(Msg::Rows(batch)) => {
                for row in &batch {
                    writer
                        .as_mut()
                        .write(&[&row.tbl, &row.key, &row.value])
                        .await?;
                }
                tally.add(&batch, progress);
            }
            Some(Msg::End) => break,
            // Dropping the writer unfinished aborts the COPY; the transaction rolls back.
            None => return Err(StoreError::Task(SOURCE_STOPPED.into())),
        }
    }
    let stored = writer.as_mut().finish().await?;
    tally.check(stored)?;
    tx.commit().await?;
    tally.summary.vacuum = Some(vacuum_analyze(&client).await);
    Ok(tally.summary)
}

/// After a copy into PostgreSQL: the new rows have no planner statistics, no hint bits and no
/// visibility map yet, and autovacuum would work through all of them (minutes at a million
/// rows, throttled) while the first nodes serve. `VACUUM (ANALYZE)` does it now, unthrottled.
/// VACUUM cannot run in a transaction block, so each statement goes alone.
async fn vacuum_analyze(client: &tokio_postgres::Client) -> std::result::Result<Duration, String> {
    let started = Instant::now();
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .map_err(|e| e.to_string())?;
    client
        .batch_execute("VACUUM (ANALYZE) records")
        .await
        .map_err(|e| e.to_string())?;
    Ok(started.elapsed())
}
