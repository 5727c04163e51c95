//! SQLite database files as resources: an online, consistent copy made with SQLite's backup
//! API while the application keeps writing, stored as one file.
//!
//! The copy is taken in one step of the backup API (all pages under one read transaction), so
//! it is the database as of one moment: in WAL mode writers carry on meanwhile; in rollback
//! journal mode they wait for the copy (SQLite's busy handling). The copy goes to a temporary
//! file (in `TMPDIR`), is read into the vault and removed. The recovery point holds one file
//! at the database's path; a restore writes it into the target directory, where it opens as
//! the database as of the backup.

use std::{
    fs,
    io::{self, Read},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use rusqlite::{
    Connection, OpenFlags,
    backup::{Backup, StepResult},
};
use rustic_core::repofile::{Metadata, Node, NodeType};

use crate::{
    Error, Result,
    source::{OpenFn, Source, SourceEntry},
};

/// A SQLite database file to back up.
pub struct SqliteSource {
    path: PathBuf,
    /// The copy [`Source::check`] made, taken by [`Source::entries`].
    copy: Mutex<Option<tempfile::NamedTempFile>>,
}

impl SqliteSource {
    /// A source for the database at `path` (absolute).
    #[must_use]
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            copy: Mutex::new(None),
        }
    }

    /// The file exists and is a SQLite database.
    fn validate(&self) -> Result<()> {
        let meta = fs::metadata(&self.path).map_err(|e| Error::io("source", &self.path, e))?;
        if !meta.is_file() {
            return Err(Error::InvalidInput(format!(
                "{} is not a file (SQLite resources are database files)",
                self.path.display()
            )));
        }
        let mut header = [0u8; 16];
        fs::File::open(&self.path)
            .and_then(|mut f| f.read_exact(&mut header))
            .map_err(|e| Error::io("source", &self.path, e))?;
        if &header != b"SQLite format 3\0" {
            return Err(Error::InvalidInput(format!(
                "{} is not a SQLite database (its header is not `SQLite format 3`)",
                self.path.display()
            )));
        }
        Ok(())
    }

    fn sqlite_err(&self, what: &str, e: &rusqlite::Error) -> Error {
        Error::InvalidInput(format!(
            "SQLite database {}: {what}: {e}",
            self.path.display()
        ))
    }

    /// The consistent copy, in a temporary file.
    fn snapshot(&self) -> Result<tempfile::NamedTempFile> {
        self.validate()?;
        let tmp = tempfile::Builder::new()
            .prefix("coffer-sqlite-")
            .tempfile()
            .map_err(|e| Error::io("create temporary copy", &std::env::temp_dir(), e))?;
        let src = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| self.sqlite_err("cannot open", &e))?;
        src.busy_timeout(Duration::from_secs(60))
            .map_err(|e| self.sqlite_err("cannot set the busy timeout", &e))?;
        let mut dst = Connection::open(tmp.path())
            .map_err(|e| self.sqlite_err("cannot open the temporary copy", &e))?;
        {
            let backup =
                Backup::new(&src, &mut dst).map_err(|e| self.sqlite_err("cannot back up", &e))?;
            // -1: every page in one step, under one read transaction: one moment's database.
            // Busy or locked (a writer holds the lock in rollback-journal mode): try again.
            let mut done = false;
            for _ in 0..1200 {
                match backup
                    .step(-1)
                    .map_err(|e| self.sqlite_err("backup failed", &e))?
                {
                    StepResult::Done => {
                        done = true;
                        break;
                    }
                    StepResult::More | StepResult::Busy | StepResult::Locked => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
            if !done {
                return Err(Error::InvalidInput(format!(
                    "SQLite database {}: stayed locked for a minute; try again when its writers pause",
                    self.path.display()
                )));
            }
        }
        dst.close()
            .map_err(|(_, e)| self.sqlite_err("cannot close the temporary copy", &e))?;
        Ok(tmp)
    }
}

/// The temporary copy, removed when its reader is dropped.
struct CopyReader {
    file: fs::File,
    _tmp: tempfile::NamedTempFile,
}

impl Read for CopyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Source for SqliteSource {
    fn snapshot_path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Checks the file and makes the consistent copy now, so that a database that cannot be
    /// copied fails the backup instead of leaving an empty recovery point.
    fn check(&self) -> Result<()> {
        let tmp = self.snapshot()?;
        *self
            .copy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tmp);
        Ok(())
    }

    fn totals(&self) -> Result<Option<(u64, u64)>> {
        let len = fs::metadata(&self.path)
            .map_err(|e| Error::io("source", &self.path, e))?
            .len();
        Ok(Some((len, 1)))
    }

    /// The copy's time is the backup's: never matched with a parent by metadata.
    fn trust_metadata(&self) -> bool {
        false
    }

    fn entries(&self) -> Box<dyn Iterator<Item = Result<SourceEntry>> + Send> {
        let make = || -> Result<SourceEntry> {
            let taken = self
                .copy
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            let tmp = match taken {
                Some(t) => t,
                None => self.snapshot()?,
            };
            let len = tmp
                .as_file()
                .metadata()
                .map_err(|e| Error::io("temporary copy", tmp.path(), e))?
                .len();
            let name = self
                .path
                .file_name()
                .map(std::ffi::OsStr::to_os_string)
                .ok_or_else(|| {
                    Error::InvalidInput(format!("no file name: {}", self.path.display()))
                })?;
            let mode = fs::metadata(&self.path)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
                .unwrap_or(0o644);
            let node_meta = Metadata {
                mode: Some(mode),
                mtime: rustic_core::jiff::Timestamp::try_from(SystemTime::now()).ok(),
                size: len,
                links: 1,
                ..Metadata::default()
            };
            let slot = Arc::new(Mutex::new(Some(tmp)));
            let open: OpenFn = Box::new(move || -> io::Result<Box<dyn Read + Send>> {
                let tmp = slot
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take()
                    .ok_or_else(|| io::Error::other("the copy was read already"))?;
                let file = tmp.reopen()?;
                Ok(Box::new(CopyReader { file, _tmp: tmp }))
            });
            Ok(SourceEntry {
                path: self.path.clone(),
                node: Node::new_node(&name, NodeType::File, node_meta),
                open: Some(open),
                watch_changes: false,
            })
        };
        Box::new(std::iter::once(make()))
    }
}
