//! What gets backed up. Every kind of source (directory tree, single file or block device,
//! database dumps (`sources::postgres`), later buckets) implements [`Source`], which yields entries in the order
//! a restic tree needs. [`WatchedSource`] adapts any `Source` to `rustic_core`'s `ReadSource`
//! and adds what a server needs on top: counting files for progress, noticing files that
//! vanish or change while they are read (reported as warnings, never fatal), and stopping when
//! the operation is cancelled.

use std::{
    ffi::OsString,
    fs,
    io::{self, Read, Seek, SeekFrom},
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::SystemTime,
};

use rustic_core::{
    Excludes, LocalSource, LocalSourceFilterOptions, LocalSourceSaveOptions, ReadSource,
    ReadSourceEntry, RusticResult,
    repofile::{Metadata, Node, NodeType},
};

use crate::{Error, Result, progress::ProgressSink};

/// Opens an entry's content for reading.
pub type OpenFn = Box<dyn FnOnce() -> io::Result<Box<dyn Read + Send>> + Send>;

/// One entry of a source: a directory, file, symlink or special file, with its metadata, and for
/// files a way to read the content.
pub struct SourceEntry {
    /// Absolute path as the snapshot records it.
    pub path: PathBuf,
    /// Name, type and metadata.
    pub node: Node,
    /// Content opener (regular files only).
    pub open: Option<OpenFn>,
    /// Whether to check, after reading, that the file did not change meanwhile.
    pub watch_changes: bool,
}

/// A kind of data Coffer can back up.
///
/// Entries must come in the order a restic tree is built: depth first, every directory before
/// its content, names sorted within a directory, all below [`Source::snapshot_path`].
pub trait Source: Send + Sync {
    /// The path the recovery point records for this source (absolute).
    fn snapshot_path(&self) -> PathBuf;

    /// Fail early with a clear error when the source cannot be backed up at all.
    ///
    /// # Errors
    /// [`Error::SourceNotFound`], [`Error::PermissionDenied`], ...
    fn check(&self) -> Result<()>;

    /// Total bytes and files, when they can be known before reading (used for progress).
    ///
    /// # Errors
    /// Any error met while scanning; it is only logged.
    fn totals(&self) -> Result<Option<(u64, u64)>>;

    /// The entries; an `Err` item is reported as a warning and the entry is skipped.
    fn entries(&self) -> Box<dyn Iterator<Item = Result<SourceEntry>> + Send>;

    /// Whether files whose metadata equals the parent recovery point's may be taken from it
    /// without reading them. False for sources whose metadata says nothing about the content
    /// (block devices).
    fn trust_metadata(&self) -> bool {
        true
    }

    /// Why reading the source failed, when it knows better than the read error the repository
    /// library reports (a database dump tool that exited with an error). Asked once, after a
    /// backup that failed.
    fn failure(&self) -> Option<Error> {
        None
    }
}

/// The sources Coffer knows how to build from its inventory.
#[derive(Clone)]
#[non_exhaustive]
pub enum SourceSpec {
    /// A directory tree (or a single regular file) read with all its metadata.
    Directory(PathBuf),
    /// A single file or block device read as one stream (a disk image, raw or qcow2).
    Stream(PathBuf),
    /// The objects of an S3-compatible bucket.
    Bucket {
        /// The server and credentials.
        endpoint: crate::S3Endpoint,
        /// The bucket.
        bucket: String,
    },
    /// A SQLite database file, copied online with SQLite's backup API.
    Sqlite(PathBuf),
    /// Any other implementation of [`Source`].
    Custom(Arc<dyn Source>),
}

impl std::fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Directory(p) => write!(f, "Directory({})", p.display()),
            Self::Stream(p) => write!(f, "Stream({})", p.display()),
            Self::Bucket { bucket, .. } => write!(f, "Bucket({bucket})"),
            Self::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            Self::Custom(s) => write!(f, "Custom({})", s.snapshot_path().display()),
        }
    }
}

impl SourceSpec {
    pub(crate) fn to_source(&self) -> Result<Arc<dyn Source>> {
        Ok(match self {
            Self::Directory(p) => Arc::new(DirectorySource::new(absolute(p)?)),
            Self::Stream(p) => Arc::new(StreamSource::new(absolute(p)?)),
            Self::Bucket { endpoint, bucket } => {
                Arc::new(crate::BucketSource::new(endpoint, bucket)?)
            }
            Self::Sqlite(p) => Arc::new(crate::SqliteSource::new(absolute(p)?)),
            Self::Custom(s) => s.clone(),
        })
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io("source", p, e))
}

fn timestamp(t: io::Result<SystemTime>) -> Option<rustic_core::jiff::Timestamp> {
    t.ok()
        .and_then(|t| rustic_core::jiff::Timestamp::try_from(t).ok())
}

/// A directory tree (or single file), read through `rustic_core`'s local source: regular,
/// empty, sparse and huge files, symlinks, special files, permissions, ownership, timestamps,
/// empty directories, and any file name bytes.
pub struct DirectorySource {
    root: PathBuf,
}

impl DirectorySource {
    /// A source for the tree at `root` (absolute).
    #[must_use]
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }
}

impl Source for DirectorySource {
    fn snapshot_path(&self) -> PathBuf {
        self.root.clone()
    }

    fn check(&self) -> Result<()> {
        let meta =
            fs::symlink_metadata(&self.root).map_err(|e| Error::io("source", &self.root, e))?;
        if meta.is_dir() {
            fs::read_dir(&self.root).map_err(|e| Error::io("source", &self.root, e))?;
        }
        Ok(())
    }

    fn totals(&self) -> Result<Option<(u64, u64)>> {
        let (mut bytes, mut files) = (0u64, 0u64);
        let mut stack = vec![self.root.clone()];
        while let Some(p) = stack.pop() {
            let Ok(meta) = fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                if let Ok(rd) = fs::read_dir(&p) {
                    stack.extend(rd.flatten().map(|e| e.path()));
                }
            } else if meta.is_file() {
                bytes += meta.len();
                files += 1;
            }
        }
        Ok(Some((bytes, files)))
    }

    fn entries(&self) -> Box<dyn Iterator<Item = Result<SourceEntry>> + Send> {
        let src = match LocalSource::new(
            LocalSourceSaveOptions::default(),
            &Excludes::default(),
            &LocalSourceFilterOptions::default(),
            std::slice::from_ref(&self.root),
        ) {
            Ok(s) => s,
            Err(e) => {
                let err = Error::from_rustic("read source", &e);
                return Box::new(std::iter::once(Err(err)));
            }
        };
        Box::new(src.entries().map(|item| {
            let entry = item.map_err(|e| Error::from_rustic("read source", &e))?;
            let open: Option<OpenFn> = entry.open.map(|_| {
                let path = entry.path.clone();
                Box::new(move || -> io::Result<Box<dyn Read + Send>> {
                    Ok(Box::new(fs::File::open(&path)?))
                }) as OpenFn
            });
            Ok(SourceEntry {
                path: entry.path,
                node: entry.node,
                open,
                watch_changes: true,
            })
        }))
    }
}

/// A single file or block device read as one stream of bytes (a disk image, raw or qcow2). The
/// recovery point holds one regular file at the device's or file's path.
pub struct StreamSource {
    path: PathBuf,
}

impl StreamSource {
    /// A source for the file or device at `path` (absolute).
    #[must_use]
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    fn length(&self) -> Result<(u64, fs::Metadata)> {
        let meta = fs::metadata(&self.path).map_err(|e| Error::io("source", &self.path, e))?;
        if meta.is_file() {
            return Ok((meta.len(), meta));
        }
        if !meta.file_type().is_block_device() {
            return Err(Error::InvalidInput(format!(
                "not a regular file or block device: {}",
                self.path.display()
            )));
        }
        let mut f = fs::File::open(&self.path).map_err(|e| Error::io("source", &self.path, e))?;
        let len = f
            .seek(SeekFrom::End(0))
            .map_err(|e| Error::io("source", &self.path, e))?;
        Ok((len, meta))
    }
}

impl Source for StreamSource {
    fn snapshot_path(&self) -> PathBuf {
        self.path.clone()
    }

    fn check(&self) -> Result<()> {
        self.length()?;
        fs::File::open(&self.path).map_err(|e| Error::io("source", &self.path, e))?;
        Ok(())
    }

    fn totals(&self) -> Result<Option<(u64, u64)>> {
        Ok(Some((self.length()?.0, 1)))
    }

    fn trust_metadata(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|m| m.is_file())
    }

    fn entries(&self) -> Box<dyn Iterator<Item = Result<SourceEntry>> + Send> {
        let make = || -> Result<SourceEntry> {
            let (len, meta) = self.length()?;
            let is_file = meta.is_file();
            let name: OsString = self
                .path
                .file_name()
                .ok_or_else(|| {
                    Error::InvalidInput(format!("no file name: {}", self.path.display()))
                })?
                .to_os_string();
            let node_meta = Metadata {
                mode: Some(meta.permissions().mode() & 0o777),
                // A device's times say nothing about its content: never match a parent by them.
                mtime: if is_file {
                    timestamp(meta.modified())
                } else {
                    timestamp(Ok(SystemTime::now()))
                },
                atime: None,
                ctime: if is_file {
                    rustic_core::jiff::Timestamp::new(meta.ctime(), 0).ok()
                } else {
                    None
                },
                uid: Some(meta.uid()),
                gid: Some(meta.gid()),
                inode: if is_file { meta.ino() } else { 0 },
                device_id: if is_file { meta.dev() } else { 0 },
                size: len,
                links: 1,
                ..Metadata::default()
            };
            let path = self.path.clone();
            Ok(SourceEntry {
                path: self.path.clone(),
                node: Node::new_node(&name, NodeType::File, node_meta),
                open: Some(Box::new(move || -> io::Result<Box<dyn Read + Send>> {
                    Ok(Box::new(fs::File::open(&path)?.take(len)))
                })),
                watch_changes: is_file,
            })
        };
        Box::new(std::iter::once(make()))
    }
}

/// Warnings collected during one backup (capped so memory stays bounded).
#[derive(Default)]
pub(crate) struct Warnings {
    list: Mutex<(Vec<String>, u64)>,
}

const MAX_WARNINGS: usize = 1000;

impl Warnings {
    pub(crate) fn push(&self, w: String) {
        tracing::warn!("{w}");
        let mut g = self
            .list
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.0.len() < MAX_WARNINGS {
            g.0.push(w);
        } else {
            g.1 += 1;
        }
    }

    pub(crate) fn take(&self) -> Vec<String> {
        let mut g = self
            .list
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = std::mem::take(&mut g.0);
        if g.1 > 0 {
            out.push(format!("... and {} more warnings", g.1));
        }
        out
    }
}

/// A [`Source`] as `rustic_core` reads it, with change detection, progress and cancellation.
pub(crate) struct WatchedSource {
    pub(crate) inner: Arc<dyn Source>,
    pub(crate) sink: Arc<ProgressSink>,
    pub(crate) warnings: Arc<Warnings>,
}

/// Opens an entry for `rustic_core`, watching it.
pub(crate) struct WatchedOpen {
    open: OpenFn,
    path: PathBuf,
    expected: Option<(u64, Option<rustic_core::jiff::Timestamp>)>,
    sink: Arc<ProgressSink>,
    warnings: Arc<Warnings>,
}

impl rustic_core::ReadSourceOpen for WatchedOpen {
    type Reader = WatchedReader;

    fn open(self) -> RusticResult<Self::Reader> {
        match (self.open)() {
            Ok(inner) => Ok(WatchedReader {
                inner,
                path: self.path,
                expected: self.expected,
                read: 0,
                finished: false,
                sink: self.sink,
                warnings: self.warnings,
            }),
            Err(e) => {
                let what = if e.kind() == io::ErrorKind::NotFound {
                    "file vanished during backup"
                } else {
                    "cannot read file"
                };
                self.warnings
                    .push(format!("{what}: {}: {e}", self.path.display()));
                Err(rustic_core::RusticError::with_source(
                    rustic_core::ErrorKind::InputOutput,
                    "cannot open `{path}`",
                    e,
                )
                .attach_context("path", self.path.display().to_string()))
            }
        }
    }
}

/// Reads a file's content, checking for cancellation and for changes made while reading.
pub(crate) struct WatchedReader {
    inner: Box<dyn Read + Send>,
    path: PathBuf,
    expected: Option<(u64, Option<rustic_core::jiff::Timestamp>)>,
    read: u64,
    finished: bool,
    sink: Arc<ProgressSink>,
    warnings: Arc<Warnings>,
}

impl WatchedReader {
    fn at_end(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let Some((size, mtime)) = self.expected else {
            return;
        };
        let now = fs::symlink_metadata(&self.path);
        let changed = match &now {
            Err(_) => true,
            Ok(m) => m.len() != size || self.read != size || timestamp(m.modified()) != mtime,
        };
        if changed {
            let what = if now.is_err() {
                "file vanished during backup"
            } else {
                "file changed during backup"
            };
            self.warnings.push(format!(
                "{what}: {} (the recovery point holds the bytes read)",
                self.path.display()
            ));
        }
    }
}

impl Read for WatchedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.sink.cancel.is_cancelled() {
            return Err(io::Error::other("operation cancelled"));
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.at_end();
        }
        self.read += n as u64;
        Ok(n)
    }
}

impl ReadSource for WatchedSource {
    type Open = WatchedOpen;
    type Iter = Box<dyn Iterator<Item = RusticResult<ReadSourceEntry<WatchedOpen>>> + Send>;

    fn size(&self) -> RusticResult<Option<u64>> {
        match self.inner.totals() {
            Ok(Some((bytes, files))) => {
                self.sink.update(true, |p| p.files_total = Some(files));
                Ok(Some(bytes))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::debug!("cannot size the source: {e}");
                Ok(None)
            }
        }
    }

    fn entries(&self) -> Self::Iter {
        let sink = self.sink.clone();
        let sink2 = self.sink.clone();
        let warnings = self.warnings.clone();
        let iter = self
            .inner
            .entries()
            .take_while(move |_| !sink.cancel.is_cancelled())
            .filter_map(move |item| match item {
                Err(e) => {
                    warnings.push(format!("skipped: {e}"));
                    None
                }
                Ok(entry) => {
                    if entry.node.is_file() {
                        sink2.update(false, |p| p.files_done += 1);
                    }
                    let expected = entry
                        .watch_changes
                        .then_some((entry.node.meta.size, entry.node.meta.mtime));
                    let open = entry.open.map(|open| WatchedOpen {
                        open,
                        path: entry.path.clone(),
                        expected,
                        sink: sink2.clone(),
                        warnings: warnings.clone(),
                    });
                    Some(Ok(ReadSourceEntry {
                        path: entry.path,
                        node: entry.node,
                        open,
                    }))
                }
            });
        Box::new(iter)
    }
}
