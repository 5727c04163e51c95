//! PostgreSQL continuous backup and point-in-time restore: a base backup plus the WAL stream.
//!
//! A continuous backup is made of a base backup (`pg_basebackup --format=tar` streamed into
//! the vault as `/postgres/base.tar`, nothing staged) and the write-ahead log received with
//! `pg_receivewal` from a physical replication slot. The slot is created before the base
//! backup, so the WAL the server keeps for Coffer starts before the backup does, and it keeps
//! holding WAL while Coffer is not receiving (between syncs, or while Coffer is down), so a
//! sync always resumes exactly where the last one stopped. Each sync commits a heartbeat
//! transaction first: the moment before it is the new latest restorable time, and its commit
//! record is a transaction after that moment, which recovery needs to know it reached it.
//!
//! A restore lays out the base backup and every WAL segment in a work directory, writes
//! `recovery.signal` with `recovery_target_time`, starts a temporary `postgres` on a private
//! Unix socket (no TCP) to replay up to that moment, then pipes `pg_dump` of the database from
//! it into `pg_restore` on the target server. Coffer speaks to PostgreSQL only through its
//! tools, as in [`super::postgres`]; passwords travel in `PGPASSWORD` only.

use std::{
    io::{self, Read, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use rustic_core::repofile::{Metadata, Node, NodeType};

use super::postgres::{DumpReader, PgConn, collect_stderr, error_line, find_tool};
use crate::{
    Error, RestoreOptions, Result, SnapshotRef, VaultRepo,
    progress::{CancelToken, ProgressSink},
    source::{OpenFn, Source, SourceEntry},
};

/// The name of the replication slot of a continuous backup whose id is `id`: `coffer_` and
/// the id's letters and digits, lower-cased (PostgreSQL's slot names allow nothing else).
#[must_use]
pub fn slot_name(id: &str) -> String {
    let tail: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let mut name = format!("coffer_{tail}");
    name.truncate(63);
    name
}

/// Adds what to fix to a failure of a replication connection.
fn replication_hint(message: String) -> Error {
    let hint = if message.contains("replication") || message.contains("wal_level") {
        " (continuous backup needs wal_level = replica or logical, max_wal_senders > 0, a role with the REPLICATION attribute and a pg_hba.conf line allowing it replication connections)"
    } else {
        ""
    };
    Error::Database(format!("{message}{hint}"))
}

/// Runs `cmd` to its end (killing it when `cancel` fires); its error line on failure.
fn run_tool(mut cmd: Command, what: &str, cancel: &CancelToken) -> Result<()> {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Database(format!("cannot run {what}: {e}")))?;
    let stderr = collect_stderr(&mut child);
    let status = loop {
        if let Some(s) = child
            .try_wait()
            .map_err(|e| Error::Database(format!("{what}: {e}")))?
        {
            break s;
        }
        if cancel.is_cancelled() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Cancelled);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        Err(replication_hint(format!(
            "{what} failed: {}",
            error_line(&stderr)
        )))
    }
}

/// Where a sync stands on the server: the moment just before its heartbeat transaction
/// committed (RFC 3339, UTC, microseconds, from the server's clock: the clock its commit
/// timestamps use) and the WAL position after that commit.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// The new latest restorable time.
    pub time: String,
    /// The WAL position the receiver must reach (`X/Y`).
    pub lsn: String,
}

/// Checks, before a continuous backup touches anything, that its tools are there and that
/// the database answers.
///
/// # Errors
/// [`Error::Database`] naming the missing tool, or why the database cannot be used.
pub fn check(conn: &PgConn) -> Result<()> {
    find_tool("pg_receivewal")?;
    find_tool("pg_basebackup")?;
    conn.query("SELECT 1").map(|_| ())
}

/// Creates the physical replication slot `slot` when it does not exist yet, reserving WAL
/// from now on (`pg_create_physical_replication_slot(slot, true)`; `pg_receivewal
/// --create-slot` would not reserve any until it first streams).
///
/// # Errors
/// As [`PgConn::query`], with what to fix when the role may not use replication.
pub fn create_slot(conn: &PgConn, slot: &str) -> Result<()> {
    check_slot(slot)?;
    conn.query(&format!(
        "SELECT count(pg_create_physical_replication_slot('{slot}', true)) \
         WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}')"
    ))
    .map(|_| ())
    .map_err(|e| replication_hint(e.to_string()))
}

fn check_slot(slot: &str) -> Result<()> {
    if slot.is_empty() || !slot.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(Error::InvalidInput(format!("{slot:?} cannot name a slot")));
    }
    Ok(())
}

/// Drops the replication slot `slot` if it exists.
///
/// # Errors
/// As [`PgConn::query`].
pub fn drop_slot(conn: &PgConn, slot: &str) -> Result<()> {
    check_slot(slot)?;
    conn.query(&format!(
        "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE slot_name = '{slot}'"
    ))
    .map(|_| ())
}

/// Commits a heartbeat transaction (one that writes a commit record and nothing else) and
/// reads the WAL position after it.
///
/// # Errors
/// As [`PgConn::query`].
pub fn heartbeat(conn: &PgConn) -> Result<Heartbeat> {
    let out = conn.query(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
         || ' ' || txid_current()",
    )?;
    let time = out.split(' ').next().unwrap_or_default().to_string();
    let lsn = conn.query("SELECT pg_current_wal_lsn()")?;
    Ok(Heartbeat { time, lsn })
}

/// Receives the WAL of `slot` into `dir` up to `endpos` with `pg_receivewal` and stops there.
/// It starts where `dir` stops (the last segment there, a `.partial` one included), or at the
/// slot's position when `dir` holds none; the slot moves on as the WAL is written to `dir`.
///
/// # Errors
/// [`Error::Database`] with the tool's error line; [`Error::Cancelled`].
pub fn receive_wal(
    conn: &PgConn,
    slot: &str,
    dir: &Path,
    endpos: &str,
    cancel: &CancelToken,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Io {
        context: format!("create {}", dir.display()),
        source: e,
    })?;
    let mut cmd = conn.command("pg_receivewal")?;
    cmd.args(["--no-loop", "--no-password"])
        .arg("--directory")
        .arg(dir)
        .arg(format!("--slot={slot}"))
        .arg(format!("--endpos={endpos}"))
        .arg(format!("--dbname={}", conn.url()));
    run_tool(cmd, &format!("pg_receivewal from {}", conn.url()), cancel)
}

/// The WAL segments of `dir` that are complete (a `.partial` segment is still being written).
///
/// # Errors
/// [`Error::Io`] when `dir` cannot be read.
pub fn complete_segments(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::Io {
        context: format!("read {}", dir.display()),
        source: e,
    })?;
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 24 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// A PostgreSQL server's base backup as a backup source: one file, `/postgres/base.tar`, the
/// output of `pg_basebackup --format=tar --wal-method=none` (the WAL comes from the slot).
pub struct BaseBackup {
    conn: PgConn,
    failure: Arc<Mutex<Option<String>>>,
}

impl BaseBackup {
    /// A base backup of the server `conn` reaches.
    #[must_use]
    pub fn new(conn: PgConn) -> Self {
        Self {
            conn,
            failure: Arc::default(),
        }
    }
}

impl Source for BaseBackup {
    fn snapshot_path(&self) -> PathBuf {
        PathBuf::from("/postgres/base.tar")
    }

    fn check(&self) -> Result<()> {
        find_tool("pg_basebackup")?;
        self.conn.query("SELECT 1").map(|_| ())
    }

    fn totals(&self) -> Result<Option<(u64, u64)>> {
        let size = self
            .conn
            .query("SELECT sum(pg_database_size(oid))::bigint FROM pg_database")?;
        Ok(size.parse::<u64>().ok().map(|s| (s, 1)))
    }

    fn entries(&self) -> Box<dyn Iterator<Item = Result<SourceEntry>> + Send> {
        let meta = Metadata {
            mode: Some(0o600),
            mtime: rustic_core::jiff::Timestamp::try_from(SystemTime::now()).ok(),
            size: 0,
            links: 1,
            ..Metadata::default()
        };
        let (conn, failure) = (self.conn.clone(), self.failure.clone());
        let open: OpenFn = Box::new(move || -> io::Result<Box<dyn Read + Send>> {
            let mut cmd = conn.command("pg_basebackup").map_err(io::Error::other)?;
            cmd.args([
                "--pgdata=-",
                "--format=tar",
                "--wal-method=none",
                "--checkpoint=fast",
                "--no-manifest",
                "--no-password",
            ])
            .arg(format!("--dbname={}", conn.url()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            let mut child = cmd.spawn()?;
            let stderr = collect_stderr(&mut child);
            let stdout = child
                .stdout
                .take()
                .ok_or_else(|| io::Error::other("pg_basebackup has no output"))?;
            Ok(Box::new(DumpReader {
                child,
                stdout,
                stderr,
                failure: failure.clone(),
                what: format!("pg_basebackup of PostgreSQL server {}", conn.url()),
                done: false,
            }))
        });
        Box::new(std::iter::once(Ok(SourceEntry {
            path: self.snapshot_path(),
            node: Node::new_node(std::ffi::OsStr::new("base.tar"), NodeType::File, meta),
            open: Some(open),
            watch_changes: false,
        })))
    }

    fn trust_metadata(&self) -> bool {
        false
    }

    fn failure(&self) -> Option<Error> {
        self.failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .map(replication_hint)
    }
}

/// What a point-in-time restore needs.
pub struct PitrRestore {
    /// The base backup's snapshot.
    pub base: SnapshotRef,
    /// The WAL snapshots, oldest first.
    pub wal: Vec<SnapshotRef>,
    /// An empty (or absent) directory Coffer may use and remove.
    pub work: PathBuf,
    /// The moment to recover to, as PostgreSQL's recovery_target_time reads a timestamp
    /// (`2024-05-01 12:30:05.123456+00`).
    pub target_time: String,
    /// The database to take from the recovered server.
    pub database: String,
    /// The role to connect to the recovered server as (the backup's login).
    pub user: String,
    /// Where the database goes: an existing empty database.
    pub dest: PgConn,
    /// When Coffer runs as root: the system user that runs the temporary server.
    pub run_as: Option<String>,
}

fn io_err(context: String) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { context, source }
}

/// Restores `r`: recovers the server to `r.target_time` in `r.work` and copies the database
/// into `r.dest`. The work directory is removed afterwards, whatever the outcome.
///
/// # Errors
/// [`Error::Database`] saying what failed (a tool missing, recovery that stopped, `pg_dump`
/// or `pg_restore`); [`Error::Cancelled`]; vault errors.
pub fn restore_point_in_time(repo: &VaultRepo, r: &PitrRestore, cancel: CancelToken) -> Result<()> {
    let _ = std::fs::remove_dir_all(&r.work);
    let out = (|| {
        let data = lay_out(repo, r, &cancel)?;
        let mut server = TempServer::start(&data, r)?;
        let recovered = server
            .wait_recovered(&cancel)
            .and_then(|()| copy_database(&server.conn(&r.database, &r.user), &r.dest, &cancel));
        server.stop();
        recovered
    })();
    let _ = std::fs::remove_dir_all(&r.work);
    out
}

/// Writes the base backup and the WAL into `r.work` and the recovery settings into the data
/// directory; returns the data directory.
fn lay_out(repo: &VaultRepo, r: &PitrRestore, cancel: &CancelToken) -> Result<PathBuf> {
    let (data, wal) = (r.work.join("data"), r.work.join("wal"));
    std::fs::create_dir_all(&wal).map_err(io_err(format!("create {}", wal.display())))?;
    let tar = r.work.join("base.tar");
    {
        let mut f =
            std::fs::File::create(&tar).map_err(io_err(format!("create {}", tar.display())))?;
        let sink = ProgressSink::new(Arc::new(|_: &crate::Progress| {}), cancel.clone());
        repo.dump_stream(&r.base, &mut f, &sink)?;
        f.flush()
            .map_err(io_err(format!("write {}", tar.display())))?;
    }
    std::fs::create_dir_all(&data).map_err(io_err(format!("create {}", data.display())))?;
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&data)
        .status()
        .map_err(|e| Error::Database(format!("cannot run tar to unpack the base backup: {e}")))?;
    if !status.success() {
        return Err(Error::Database(
            "tar could not unpack the base backup".into(),
        ));
    }
    let _ = std::fs::remove_file(&tar);
    for snap in &r.wal {
        let opts = RestoreOptions {
            overwrite: true,
            ..RestoreOptions::default()
        };
        repo.restore(snap, &wal, &opts, |_| {}, cancel.clone())?;
    }
    finish_partial_segments(&wal)?;
    write_recovery_settings(&data, &wal, r)?;
    Ok(data)
}

/// A `.partial` segment stands for its segment when the complete one never arrived.
fn finish_partial_segments(wal: &Path) -> Result<()> {
    let rd = std::fs::read_dir(wal).map_err(io_err(format!("read {}", wal.display())))?;
    for e in rd.flatten() {
        let p = e.path();
        let Some(name) = p.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        if let Some(seg) = name.strip_suffix(".partial") {
            let whole = wal.join(seg);
            if whole.exists() {
                let _ = std::fs::remove_file(&p);
            } else {
                std::fs::rename(&p, &whole).map_err(io_err(format!("rename {}", p.display())))?;
            }
        }
    }
    Ok(())
}

fn write_file(path: &Path, body: &str) -> Result<()> {
    std::fs::write(path, body).map_err(io_err(format!("write {}", path.display())))
}

/// Coffer's own configuration for the temporary server: no TCP, its socket in the work
/// directory, WAL from the vault, recovery up to the target time, then promotion.
fn write_recovery_settings(data: &Path, wal: &Path, r: &PitrRestore) -> Result<()> {
    for stale in ["postmaster.pid", "postmaster.opts", "standby.signal"] {
        let _ = std::fs::remove_file(data.join(stale));
    }
    let conf = format!(
        "listen_addresses = ''\nport = {PORT}\nunix_socket_directories = '{}'\n\
         max_connections = 20\nshared_buffers = 32MB\nfsync = off\narchive_mode = off\n\
         max_wal_senders = 0\nwal_level = replica\nhot_standby = off\nlogging_collector = off\n\
         lc_messages = 'C'\n\
         restore_command = 'cp \"{}/%f\" \"%p\"'\nrecovery_target_time = '{}'\n\
         recovery_target_inclusive = on\nrecovery_target_action = 'promote'\n",
        r.work.display(),
        wal.display(),
        r.target_time
    );
    write_file(&data.join("postgresql.conf"), &conf)?;
    write_file(&data.join("postgresql.auto.conf"), "")?;
    write_file(&data.join("pg_hba.conf"), "local all all trust\n")?;
    write_file(&data.join("pg_ident.conf"), "")?;
    write_file(&data.join("recovery.signal"), "")?;
    if let Some(user) = &r.run_as {
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{user}:"))
            .arg(&r.work)
            .status()
            .map_err(|e| Error::Database(format!("cannot run chown: {e}")))?;
        if !status.success() {
            return Err(Error::Database(format!(
                "cannot give the restore's work directory to system user {user} (the temporary PostgreSQL server cannot run as root); create that user or run Coffer as another user"
            )));
        }
    }
    std::fs::set_permissions(data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(io_err(format!("chmod {}", data.display())))
}

/// The temporary server listens on its own socket directory only, so any port number works.
const PORT: u16 = 5432;

/// The temporary server that replays the WAL.
struct TempServer {
    child: Child,
    work: PathBuf,
    log: PathBuf,
}

impl TempServer {
    fn start(data: &Path, r: &PitrRestore) -> Result<Self> {
        let version = std::fs::read_to_string(data.join("PG_VERSION")).unwrap_or_default();
        let version = version.trim();
        let versioned = PathBuf::from(format!("/usr/lib/postgresql/{version}/bin/postgres"));
        let postgres = if std::env::var_os("COFFER_PG_BINDIR").is_none() && versioned.is_file() {
            versioned
        } else {
            find_tool("postgres").map_err(|_| {
                Error::Database(format!(
                    "the PostgreSQL server program postgres (version {version}, the backed-up server's) was not found; install the PostgreSQL server package (Debian: postgresql-{version}) or set COFFER_PG_BINDIR to the directory that holds it"
                ))
            })?
        };
        let log = r.work.join("server.log");
        let logf =
            std::fs::File::create(&log).map_err(io_err(format!("create {}", log.display())))?;
        let mut cmd = match &r.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&postgres);
                c
            }
            None => Command::new(&postgres),
        };
        cmd.arg("-D")
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf);
        let child = cmd
            .spawn()
            .map_err(|e| Error::Database(format!("cannot start {}: {e}", postgres.display())))?;
        Ok(Self {
            child,
            work: r.work.clone(),
            log,
        })
    }

    fn conn(&self, database: &str, user: &str) -> PgConn {
        PgConn::local_socket(&self.work, PORT, user, database)
    }

    /// The server's last complaints: its FATAL or PANIC line and the line before it (which
    /// often says which setting or file was wrong).
    fn log_error(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let at = lines
            .iter()
            .rposition(|l| l.contains("FATAL:") || l.contains("PANIC:"))
            .unwrap_or(lines.len().saturating_sub(1));
        let text = lines[at.saturating_sub(1)..(at + 1).min(lines.len())].join(" / ");
        if text.is_empty() {
            "no message".to_string()
        } else {
            text.chars().take(400).collect()
        }
    }

    /// Waits until the server has replayed up to the target and left recovery.
    fn wait_recovered(&mut self, cancel: &CancelToken) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(6 * 3600);
        loop {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(Error::Database(format!(
                    "the temporary PostgreSQL server replaying the WAL stopped: {}",
                    self.log_error()
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::Database(
                    "the temporary PostgreSQL server did not finish replaying the WAL within 6 hours".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
            if self.recovered() {
                return Ok(());
            }
        }
    }

    fn recovered(&self) -> bool {
        // The log line PostgreSQL writes once it accepts connections after promotion.
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.contains("database system is ready to accept connections")
    }

    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGQUIT: immediate shutdown; the data is thrown away anyway.
            let _ = Command::new("kill")
                .arg("-QUIT")
                .arg(self.child.id().to_string())
                .status();
            let until = Instant::now() + Duration::from_secs(30);
            while Instant::now() < until {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `pg_dump` of `from` piped into `pg_restore` into `to`.
fn copy_database(from: &PgConn, to: &PgConn, cancel: &CancelToken) -> Result<()> {
    let mut dump = from.command("pg_dump")?;
    dump.args(["--format=custom", "--compress=0", "--no-password"])
        .arg(format!("--dbname={}", from.url()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut dump = dump
        .spawn()
        .map_err(|e| Error::Database(format!("cannot run pg_dump: {e}")))?;
    let dump_err = collect_stderr(&mut dump);
    let Some(out) = dump.stdout.take() else {
        return Err(Error::Database("pg_dump has no output".into()));
    };
    let mut restore = to.command("pg_restore")?;
    restore
        .args([
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--no-password",
        ])
        .arg(format!("--dbname={}", to.url()))
        .stdin(Stdio::from(out))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut restore = restore
        .spawn()
        .map_err(|e| Error::Database(format!("cannot run pg_restore: {e}")))?;
    let restore_err = collect_stderr(&mut restore);
    let status = loop {
        if let Some(s) = restore
            .try_wait()
            .map_err(|e| Error::Database(format!("pg_restore: {e}")))?
        {
            break s;
        }
        if cancel.is_cancelled() {
            let _ = restore.kill();
            let _ = dump.kill();
            let _ = restore.wait();
            let _ = dump.wait();
            return Err(Error::Cancelled);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dump_status = dump
        .wait()
        .map_err(|e| Error::Database(format!("pg_dump: {e}")))?;
    let dump_err = dump_err.and_then(|h| h.join().ok()).unwrap_or_default();
    let restore_err = restore_err.and_then(|h| h.join().ok()).unwrap_or_default();
    if !dump_status.success() {
        return Err(Error::Database(format!(
            "pg_dump of the recovered database {} failed: {}",
            from.database(),
            error_line(&dump_err)
        )));
    }
    if !status.success() {
        return Err(Error::Database(format!(
            "pg_restore into PostgreSQL database {} failed: {}",
            to.url(),
            error_line(&restore_err)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names_are_what_postgresql_accepts() {
        assert_eq!(
            slot_name("continuous:db-Shop-1a2b"),
            "coffer_continuousdbshop1a2b"
        );
        assert!(slot_name(&"x".repeat(100)).len() <= 63);
    }

    #[test]
    fn partial_segments_stand_in_only_for_missing_ones() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = ("000000010000000000000003", "000000010000000000000004");
        std::fs::write(d.path().join(a), b"whole").unwrap();
        std::fs::write(d.path().join(format!("{a}.partial")), b"old").unwrap();
        std::fs::write(d.path().join(format!("{b}.partial")), b"tail").unwrap();
        finish_partial_segments(d.path()).unwrap();
        assert_eq!(std::fs::read(d.path().join(a)).unwrap(), b"whole");
        assert_eq!(std::fs::read(d.path().join(b)).unwrap(), b"tail");
        assert!(!d.path().join(format!("{a}.partial")).exists());
        assert_eq!(complete_segments(d.path()).unwrap().len(), 2);
    }
}
