//! PostgreSQL databases: backed up as one consistent `pg_dump --format=custom` stream and
//! restored with `pg_restore` into a new database.
//!
//! Coffer speaks to PostgreSQL only through its client tools (`psql`, `pg_dump`,
//! `pg_restore`), so the dump is exactly what an operator would make by hand and can be
//! restored without Coffer (`restic dump` of the recovery point piped into `pg_restore`). The
//! dump is streamed from `pg_dump`'s standard output into the vault, never staged on disk. A
//! password never appears on a command line or in a message: it is taken out of the URL and
//! given to the tools in `PGPASSWORD`.

use std::{
    io::{self, BufWriter, Read},
    path::PathBuf,
    process::{Child, ChildStdout, Command, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::SystemTime,
};

use rustic_core::repofile::{Metadata, Node, NodeType};

use crate::{
    Error, Result, SnapshotRef, VaultRepo,
    progress::{CancelToken, Progress, ProgressSink},
    source::{OpenFn, Source, SourceEntry},
    vault::callback,
};

/// A connection to one PostgreSQL database: a `postgres://` URL without its password, and the
/// password apart.
#[derive(Clone)]
pub struct PgConn {
    /// `scheme://[user@]host[:port]`, no password.
    base: String,
    database: String,
    /// The URL's query (`sslmode=...`), without `?`.
    query: String,
    password: Option<String>,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url())
    }
}

/// Whether `name` can name a database Coffer creates: a letter or `_`, then up to 62 letters,
/// digits, `_` or `-` (so it needs no escaping anywhere).
#[must_use]
pub fn valid_database_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl PgConn {
    /// Reads a `postgres://user[:password]@host[:port]/database[?params]` URL. A password in
    /// the URL is taken out of it; `password` (from the configuration's `password_env`) wins
    /// over it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming what is wrong with the URL (never echoing a password).
    pub fn parse(url: &str, password: Option<String>) -> Result<Self> {
        let rest = url
            .strip_prefix("postgres://")
            .map(|r| ("postgres://", r))
            .or_else(|| {
                url.strip_prefix("postgresql://")
                    .map(|r| ("postgresql://", r))
            });
        let Some((scheme, rest)) = rest else {
            return Err(Error::InvalidInput(
                "a PostgreSQL url must start with postgres:// or postgresql://".into(),
            ));
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if hostport.is_empty() {
            return Err(Error::InvalidInput(
                "a PostgreSQL url must name a host (postgres://USER@HOST:PORT/DATABASE)".into(),
            ));
        }
        let (user, url_password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, pw)) => (user, Some(percent_decode(pw))),
                None => (u, None),
            },
            None => ("", None),
        };
        let base = if user.is_empty() {
            format!("{scheme}{hostport}")
        } else {
            format!("{scheme}{user}@{hostport}")
        };
        Ok(Self {
            base,
            database: percent_decode(database),
            query: query.to_string(),
            password: password.or(url_password),
        })
    }

    /// The database name the URL gives (empty: the server's default, the user's name).
    #[must_use]
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The login's user name (`postgres` when the URL names none).
    #[must_use]
    pub fn user(&self) -> String {
        let rest = self.base.split_once("://").map_or("", |(_, r)| r);
        match rest.rsplit_once('@') {
            Some((u, _)) if !u.is_empty() => percent_decode(u),
            _ => "postgres".to_string(),
        }
    }

    /// A server on this machine reached through its Unix socket in `dir` on `port`, as
    /// `user`, without a password (the temporary server of a point-in-time restore).
    #[must_use]
    pub fn local_socket(dir: &std::path::Path, port: u16, user: &str, database: &str) -> Self {
        Self {
            base: format!("postgresql://{user}@"),
            database: database.to_string(),
            query: format!("host={}&port={port}", dir.display()),
            password: None,
        }
    }

    /// The same server and login, another database.
    #[must_use]
    pub fn with_database(&self, name: &str) -> Self {
        Self {
            database: name.to_string(),
            ..self.clone()
        }
    }

    /// The URL without its password: safe to log and to show.
    #[must_use]
    pub fn url(&self) -> String {
        let mut u = format!("{}/{}", self.base, self.database);
        if !self.query.is_empty() {
            u.push('?');
            u.push_str(&self.query);
        }
        u
    }

    /// A command for `tool` with this connection's password in its environment.
    pub(crate) fn command(&self, tool: &str) -> Result<Command> {
        let mut cmd = Command::new(find_tool(tool)?);
        cmd.env("PGCONNECT_TIMEOUT", "10")
            .env("PGAPPNAME", "coffer")
            .stdin(Stdio::null());
        match &self.password {
            Some(p) => cmd.env("PGPASSWORD", p),
            None => cmd.env_remove("PGPASSWORD"),
        };
        Ok(cmd)
    }

    /// Runs one SQL statement with `psql`; returns its unaligned output.
    ///
    /// # Errors
    /// [`Error::Database`] with psql's own error line when the server cannot be reached, the
    /// login is refused or the statement fails.
    pub fn query(&self, sql: &str) -> Result<String> {
        let out = self
            .command("psql")?
            .args([
                "--no-psqlrc",
                "--no-password",
                "-v",
                "ON_ERROR_STOP=1",
                "-qAt",
            ])
            .arg("-d")
            .arg(self.url())
            .arg("-c")
            .arg(sql)
            .output()
            .map_err(|e| Error::Database(format!("cannot run psql: {e}")))?;
        if !out.status.success() {
            return Err(Error::Database(format!(
                "PostgreSQL database {} cannot be used: {}",
                self.url(),
                error_line(&String::from_utf8_lossy(&out.stderr))
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Whether database `name` exists on this server, and the comment it carries.
    ///
    /// # Errors
    /// As [`Self::query`]; an invalid name is [`Error::InvalidInput`].
    pub fn database_comment(&self, name: &str) -> Result<Option<String>> {
        check_name(name)?;
        let out = self.query(&format!(
            "SELECT 'x' || coalesce(shobj_description(oid, 'pg_database'), '') \
             FROM pg_database WHERE datname = '{name}'"
        ))?;
        Ok(out.strip_prefix('x').map(str::to_string))
    }

    /// Creates database `name` (owned by this connection's user) and marks it with
    /// `comment`, so that a restore run again after a crash recognises its own database.
    ///
    /// # Errors
    /// As [`Self::query`] (the user may lack CREATEDB; the name may be taken).
    pub fn create_database(&self, name: &str, comment: &str) -> Result<()> {
        check_name(name)?;
        self.query(&format!("CREATE DATABASE \"{name}\""))?;
        let comment = comment.replace('\'', "''");
        self.query(&format!("COMMENT ON DATABASE \"{name}\" IS '{comment}'"))?;
        Ok(())
    }

    /// Drops database `name` if it exists.
    ///
    /// # Errors
    /// As [`Self::query`].
    pub fn drop_database(&self, name: &str) -> Result<()> {
        check_name(name)?;
        self.query(&format!("DROP DATABASE IF EXISTS \"{name}\""))?;
        Ok(())
    }
}

fn check_name(name: &str) -> Result<()> {
    if valid_database_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "'{name}' cannot name a database: use a letter or _ then letters, digits, _ or -, at most 63"
        )))
    }
}

/// The line of a PostgreSQL tool's error output that says what went wrong.
pub(crate) fn error_line(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = lines
        .iter()
        .find(|l| l.contains("error:") || l.contains("FATAL:") || l.contains("ERROR:"))
        .or(lines.last())
        .copied()
        .unwrap_or("no error message");
    line.chars().take(200).collect()
}

/// Where a PostgreSQL client tool is: in `COFFER_PG_BINDIR` when that is set, otherwise on
/// the PATH, otherwise in the newest `/usr/lib/postgresql/*/bin` (Debian's layout).
pub(crate) fn find_tool(tool: &str) -> Result<PathBuf> {
    let missing = |place: String| {
        Error::Database(format!(
            "the PostgreSQL client tool {tool} was not found {place}; install the PostgreSQL \
             client package (Debian: postgresql-client) or set COFFER_PG_BINDIR to the \
             directory that holds it"
        ))
    };
    if let Some(dir) = std::env::var_os("COFFER_PG_BINDIR").filter(|d| !d.is_empty()) {
        let p = PathBuf::from(&dir).join(tool);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(missing(format!(
                "in COFFER_PG_BINDIR ({})",
                PathBuf::from(dir).display()
            )))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(p) = std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
    {
        return Ok(p);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join("bin").join(tool))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|p| p.is_file());
    versions.sort_by_key(|p| {
        p.components()
            .nth(4)
            .and_then(|c| c.as_os_str().to_str()?.parse::<u32>().ok())
    });
    versions
        .pop()
        .ok_or_else(|| missing("on Coffer's PATH".into()))
}

/// Collects a child's error output on a thread (so a full pipe never blocks it), keeping
/// the last 16 KiB.
pub(crate) fn collect_stderr(child: &mut Child) -> Option<JoinHandle<String>> {
    let mut stderr = child.stderr.take()?;
    Some(std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&buf[..n]);
            if kept.len() > 16384 {
                kept.drain(..kept.len() - 16384);
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    }))
}

/// A PostgreSQL database as a backup source: one file, `/postgres/<database>.pgdump`, whose
/// content is `pg_dump --format=custom` (a consistent snapshot of the database, taken in one
/// repeatable-read transaction).
pub struct PostgresDump {
    conn: PgConn,
    failure: Arc<Mutex<Option<String>>>,
}

impl PostgresDump {
    /// A source for the database `conn` names.
    #[must_use]
    pub fn new(conn: PgConn) -> Self {
        Self {
            conn,
            failure: Arc::default(),
        }
    }

    fn file_name(&self) -> String {
        let db = self.conn.database();
        format!("{}.pgdump", if db.is_empty() { "database" } else { db })
    }

    fn open_dump(conn: &PgConn, failure: &Arc<Mutex<Option<String>>>) -> io::Result<DumpReader> {
        let mut cmd = conn.command("pg_dump").map_err(io::Error::other)?;
        cmd.args(["--format=custom", "--no-password", "--compress=0"])
            .arg(format!("--dbname={}", conn.url()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let stderr = collect_stderr(&mut child);
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("pg_dump has no output"))?;
        Ok(DumpReader {
            child,
            stdout,
            stderr,
            failure: failure.clone(),
            what: format!("pg_dump of PostgreSQL database {}", conn.url()),
            done: false,
        })
    }
}

impl Source for PostgresDump {
    fn snapshot_path(&self) -> PathBuf {
        PathBuf::from("/postgres").join(self.file_name())
    }

    fn check(&self) -> Result<()> {
        find_tool("pg_dump")?;
        self.conn.query("SELECT 1").map(|_| ())
    }

    fn totals(&self) -> Result<Option<(u64, u64)>> {
        // The database's size on disk: the dump is usually smaller, so progress is a floor.
        let size = self
            .conn
            .query("SELECT pg_database_size(current_database())")?;
        Ok(size.parse::<u64>().ok().map(|s| (s, 1)))
    }

    fn entries(&self) -> Box<dyn Iterator<Item = Result<SourceEntry>> + Send> {
        let name = self.file_name();
        let meta = Metadata {
            mode: Some(0o600),
            mtime: rustic_core::jiff::Timestamp::try_from(SystemTime::now()).ok(),
            // Not known before pg_dump ends; the snapshot's summary holds the dump's size.
            size: 0,
            links: 1,
            ..Metadata::default()
        };
        let (conn, failure) = (self.conn.clone(), self.failure.clone());
        let open: OpenFn = Box::new(move || -> io::Result<Box<dyn Read + Send>> {
            Ok(Box::new(Self::open_dump(&conn, &failure)?))
        });
        Box::new(std::iter::once(Ok(SourceEntry {
            path: self.snapshot_path(),
            node: Node::new_node(std::ffi::OsStr::new(&name), NodeType::File, meta),
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
            .map(Error::Database)
    }
}

/// A tool's output (`pg_dump`, `pg_basebackup`); at its end, the tool's exit status decides
/// whether the stream is whole.
pub(crate) struct DumpReader {
    pub(crate) child: Child,
    pub(crate) stdout: ChildStdout,
    pub(crate) stderr: Option<JoinHandle<String>>,
    pub(crate) failure: Arc<Mutex<Option<String>>>,
    /// What the stream is, for the failure message ("pg_dump of PostgreSQL database URL").
    pub(crate) what: String,
    pub(crate) done: bool,
}

impl Read for DumpReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.done {
            self.done = true;
            let status = self.child.wait()?;
            let stderr = self
                .stderr
                .take()
                .and_then(|h| h.join().ok())
                .unwrap_or_default();
            if !status.success() {
                let message = format!("{} failed: {}", self.what, error_line(&stderr));
                *self
                    .failure
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(message.clone());
                return Err(io::Error::other(message));
            }
        }
        Ok(n)
    }
}

impl Drop for DumpReader {
    fn drop(&mut self) {
        if !self.done {
            // Cancelled or failed elsewhere: do not leave pg_dump running.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Restores a recovery point made from a [`PostgresDump`] into the database `target` names
/// (which must exist and be empty), with `pg_restore --single-transaction --exit-on-error
/// --no-owner`, streaming the dump from the vault into it. Returns the dump's bytes.
///
/// # Errors
/// [`Error::Database`] with `pg_restore`'s error line; [`Error::Cancelled`]; vault errors.
pub fn restore_database(
    repo: &VaultRepo,
    snapshot: &SnapshotRef,
    target: &PgConn,
    progress: impl Fn(&Progress) + Send + Sync + 'static,
    cancel: CancelToken,
) -> Result<u64> {
    let sink = ProgressSink::new(callback(progress), cancel);
    let r = run_restore(repo, snapshot, target, &sink);
    VaultRepo::finish(&sink, r)
}

fn run_restore(
    repo: &VaultRepo,
    snapshot: &SnapshotRef,
    target: &PgConn,
    sink: &Arc<ProgressSink>,
) -> Result<u64> {
    let mut cmd = target.command("pg_restore")?;
    cmd.args([
        "--single-transaction",
        "--exit-on-error",
        "--no-owner",
        "--no-password",
    ])
    .arg(format!("--dbname={}", target.url()))
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Database(format!("cannot run pg_restore: {e}")))?;
    let stderr = collect_stderr(&mut child);
    let written = match child.stdin.take() {
        Some(stdin) => {
            let mut w = BufWriter::with_capacity(1 << 20, stdin);
            let r = repo.dump_stream(snapshot, &mut w, sink);
            // Close pg_restore's input so it sees the end of the dump.
            let flushed = w.into_inner().map(drop).map_err(|e| e.into_error());
            r.and_then(|n| {
                flushed
                    .map(|()| n)
                    .map_err(|e| Error::Database(e.to_string()))
            })
        }
        None => Err(Error::Database("pg_restore has no input".into())),
    };
    if sink.cancel.is_cancelled() {
        let _ = child.kill();
    }
    let status = child
        .wait()
        .map_err(|e| Error::Database(format!("pg_restore: {e}")))?;
    let stderr = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    if !status.success() && !sink.cancel.is_cancelled() {
        return Err(Error::Database(format!(
            "pg_restore into PostgreSQL database {} failed: {}",
            target.url(),
            error_line(&stderr)
        )));
    }
    written
}

/// [`restore_database`] on tokio's blocking pool.
///
/// # Errors
/// As [`restore_database`].
pub async fn restore_database_async(
    repo: VaultRepo,
    snapshot: SnapshotRef,
    target: PgConn,
    progress: impl Fn(&Progress) + Send + Sync + 'static,
    cancel: CancelToken,
) -> Result<u64> {
    tokio::task::spawn_blocking(move || {
        restore_database(&repo, &snapshot, &target, progress, cancel)
    })
    .await
    .map_err(|e| Error::Engine(format!("engine task failed: {e}")))?
}

/// Runs blocking database work (a [`PgConn`] query) on tokio's blocking pool.
///
/// # Errors
/// What `f` returns.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Engine(format!("engine task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_leave_the_url() {
        let c = PgConn::parse(
            "postgres://app:s%40cret@db.local:5433/shop?sslmode=disable",
            None,
        )
        .unwrap();
        assert_eq!(c.url(), "postgres://app@db.local:5433/shop?sslmode=disable");
        assert_eq!(c.password.as_deref(), Some("s@cret"));
        assert_eq!(format!("{c:?}"), c.url());
        let c = PgConn::parse("postgresql://app:x@h/shop", Some("env".into())).unwrap();
        assert_eq!(c.password.as_deref(), Some("env"));
        assert_eq!(c.with_database("copy").url(), "postgresql://app@h/copy");
        assert!(PgConn::parse("mysql://h/db", None).is_err());
        assert!(PgConn::parse("postgres:///db", None).is_err());
    }

    #[test]
    fn database_names_need_no_quoting() {
        assert!(valid_database_name("shop_restored-1"));
        for bad in ["", "1shop", "a\"b", "a b", "a'b", &"x".repeat(64)] {
            assert!(!valid_database_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_error_line_is_the_one_that_says_what_failed() {
        let s = "pg_dump: detail\npg_dump: error: connection to server failed: refused\n";
        assert_eq!(
            error_line(s),
            "pg_dump: error: connection to server failed: refused"
        );
        assert_eq!(error_line(""), "no error message");
    }
}
