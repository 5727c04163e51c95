//! Restoring a recovery point into a directory, safely.
//!
//! `rustic_core` restores whatever names a snapshot's trees hold. A vault may have been written
//! by other tools, or tampered with, so before anything is written the engine walks the nodes to
//! restore and refuses names that would leave the target (`..`, `/`, empty) and paths that
//! would pass through a symlink the restore itself creates. When overwriting a non-empty
//! target, symlinks and multiply-linked files already at the paths being restored are removed
//! first, so a restore never writes through them to somewhere outside the target.
//!
//! A restore can be cut off by a crash and run again (the jobs layer retries interrupted jobs).
//! So that the second run can tell its own partial files from a user's, a restore that names
//! itself ([`RestoreOptions::resume_id`]) and finds its target empty first leaves a claim in the
//! target (`.coffer-restore-<id>`, written and synced before any restored file). A later run with
//! the same id that finds its claim knows the target was empty when the restore began, so it
//! finishes the restore over what is there (files already complete are kept, the rest rewritten)
//! instead of refusing a non-empty target. The caller removes the claim with [`release_restore_claim`]
//! once it has recorded the restore as done; a failed restore removes it at once.

use std::{
    collections::HashSet,
    ffi::OsStr,
    fs,
    io::{BufWriter, Write},
    os::unix::fs::MetadataExt,
    path::{Component, Path, PathBuf},
    sync::{Arc, Mutex},
};

use rustic_core::{
    ErrorKind, IndexedFull, LocalDestination, LsOptions, Repository, RusticError, RusticResult,
    repofile::{Node, SnapshotFile},
};

use crate::{Error, Phase, RestoreOutcome, Result, progress::ProgressSink};

/// How to restore.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Paths to restore, relative to the backed-up source (e.g. `etc/app.conf`, `photos`).
    /// Empty: the whole recovery point. Each lands at the same relative path under the target.
    pub paths: Vec<PathBuf>,
    /// Restore into a non-empty target, replacing files that differ (files already identical
    /// are left alone; files not in the recovery point are kept). Without it a non-empty target
    /// is refused.
    pub overwrite: bool,
    /// Names this restore (the jobs layer passes the job id; letters, digits, `-` and `_`) so
    /// that a run cut off by a crash can be run again into the same target: see the module
    /// documentation. `None`: a non-empty target is refused unless `overwrite` is set.
    pub resume_id: Option<String>,
}

/// The name of the claim a restore named `id` leaves in its target while it runs.
const CLAIM_PREFIX: &str = ".coffer-restore-";

fn claim_path(target: &Path, id: &str) -> Result<PathBuf> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(Error::InvalidInput(format!(
            "restore id must be 1-128 letters, digits, `-` or `_`: {id:?}"
        )));
    }
    Ok(target.join(format!("{CLAIM_PREFIX}{id}")))
}

/// Whether `path` is a claim this engine wrote (a regular file, not a link to one).
fn is_claim(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

/// Write the claim and make it durable (file and directory entry) before anything is restored.
fn write_claim(path: &Path, target: &Path) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io("create", path, e))?;
    f.write_all(
        b"Coffer is restoring into this directory, which was empty when the restore began.\n\
          Coffer removes this file when the restore has completed.\n",
    )
    .and_then(|()| f.sync_all())
    .map_err(|e| Error::io("write", path, e))?;
    fs::File::open(target)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync", target, e))
}

/// Removes the claim a restore named `id` left in `target` (see the module documentation).
/// Nothing to do when there is none.
///
/// # Errors
/// The claim exists but cannot be removed, or `id` is not a valid restore id.
pub fn release_restore_claim(target: &Path, id: &str) -> Result<()> {
    let path = claim_path(target, id)?;
    if !is_claim(&path) {
        return Ok(());
    }
    fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))
}

/// The error for a recovery point whose root (always in its snapshot) cannot be looked up:
/// its tree data is damaged or missing from the vault.
pub(crate) fn unreadable_root(root: &str, e: &RusticError) -> Error {
    Error::VaultDamaged(format!(
        "the file tree of {root} in the recovery point cannot be read ({})",
        Error::from_rustic("read tree", e)
    ))
}

fn is_plain_relative(p: &Path) -> bool {
    p.components().all(|c| matches!(c, Component::Normal(_)))
}

fn unsafe_name(name: &OsStr) -> bool {
    let b = name.as_encoded_bytes();
    b.is_empty() || b == b"." || b == b".." || b.contains(&b'/')
}

fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Remove a symlink or multiply-linked file at `path` so that restoring there cannot write
/// through it.
fn defuse(path: &Path) -> Result<()> {
    if let Ok(meta) = fs::symlink_metadata(path) {
        let ft = meta.file_type();
        if ft.is_symlink() || (ft.is_file() && meta.nlink() > 1) {
            fs::remove_file(path).map_err(|e| Error::io("remove", path, e))?;
        }
    }
    Ok(())
}

type NodeIter<'a> = Box<dyn Iterator<Item = RusticResult<(PathBuf, Node)>> + 'a>;

/// The nodes to restore: a directory's content, or the one file node.
fn node_iter<'a, S: IndexedFull>(
    repo: &'a Repository<S>,
    node: &'a Node,
    single: Option<&(PathBuf, Node)>,
) -> Result<NodeIter<'a>> {
    if let Some(item) = single {
        return Ok(Box::new(std::iter::once(Ok(item.clone()))));
    }
    let ls = repo
        .ls(node, &LsOptions::default())
        .map_err(|e| Error::from_rustic("list recovery point", &e))?;
    Ok(Box::new(ls))
}

/// Counts bytes written into progress.
struct CountingWriter<'a, W> {
    inner: W,
    sink: &'a ProgressSink,
    written: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        self.sink.update(false, |p| p.bytes_done += n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Write one file's content blob by blob, then give it the recorded size and mtime.
/// Returns the bytes written, or `None` when an identical file (size and mtime) was there.
fn write_file<S: IndexedFull>(
    repo: &Repository<S>,
    path: &Path,
    node: &Node,
    sink: &ProgressSink,
) -> Result<Option<u64>> {
    let mtime = node.meta.mtime.map(std::time::SystemTime::from);
    if let Ok(meta) = fs::symlink_metadata(path)
        && meta.is_file()
        && meta.len() == node.meta.size
        && mtime.is_some()
        && meta.modified().ok() == mtime
    {
        return Ok(None);
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
    }
    let file = fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
    let mut w = CountingWriter {
        inner: BufWriter::with_capacity(1 << 20, &file),
        sink,
        written: 0,
    };
    repo.dump(node, &mut w).map_err(|e| {
        if sink.cancel.is_cancelled() {
            Error::Cancelled
        } else {
            Error::from_rustic("restore", &e)
        }
    })?;
    w.flush().map_err(|e| Error::io("write", path, e))?;
    let written = w.written;
    drop(w);
    file.set_len(node.meta.size)
        .map_err(|e| Error::io("write", path, e))?;
    if let Some(t) = mtime {
        file.set_modified(t)
            .map_err(|e| Error::io("write", path, e))?;
    }
    Ok(Some(written))
}

/// Phase A of a restore: write every regular file's content with a few worker threads, each
/// holding one blob at a time, so memory stays small whatever the pack size. (`rustic_core`'s
/// own content restore reads whole pack ranges on 20 threads at once: hundreds of MiB.)
/// Returns (files written, bytes written, files already identical).
fn write_contents<S: IndexedFull + Sync>(
    repo: &Repository<S>,
    nodes: impl Iterator<Item = RusticResult<(PathBuf, Node)>>,
    dest_dir: &Path,
    sink: &Arc<ProgressSink>,
) -> Result<(u64, u64, u64)> {
    let workers = std::thread::available_parallelism().map_or(4, |n| (n.get() * 2).clamp(4, 8));
    let (tx, rx) = std::sync::mpsc::sync_channel::<(PathBuf, Node)>(workers * 8);
    let rx = Mutex::new(rx);
    let failure = Mutex::new(None::<Error>);
    let totals = Mutex::new((0u64, 0u64, 0u64));
    let lock = |m: &Mutex<Option<Error>>| m.lock().map(|g| g.is_some()).unwrap_or(true);
    sink.phase(Phase::Transferring, "restoring file contents");
    std::thread::scope(|s| -> Result<()> {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let job = rx
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .recv();
                    let Ok((path, node)) = job else { break };
                    if lock(&failure) {
                        continue;
                    }
                    match write_file(repo, &path, &node, sink) {
                        Ok(r) => {
                            let mut t = totals
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            match r {
                                Some(b) => {
                                    t.0 += 1;
                                    t.1 += b;
                                }
                                None => t.2 += 1,
                            }
                            sink.update(false, |p| p.files_done += 1);
                        }
                        Err(e) => {
                            let mut f = failure
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            f.get_or_insert(e);
                        }
                    }
                }
            });
        }
        let mut result = Ok(());
        for item in nodes {
            if lock(&failure) || sink.cancel.is_cancelled() {
                break;
            }
            match item {
                Ok((path, node)) if node.is_file() => {
                    if tx.send((dest_dir.join(path), node)).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    result = Err(Error::from_rustic("list recovery point", &e));
                    break;
                }
            }
        }
        drop(tx);
        result
    })?;
    sink.check_cancel()?;
    if let Some(e) = failure
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        return Err(e);
    }
    Ok(totals
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

pub(crate) fn restore_snapshot<S: IndexedFull + Sync>(
    repo: &Repository<S>,
    snap: &SnapshotFile,
    target: &Path,
    opts: &RestoreOptions,
    sink: &Arc<ProgressSink>,
) -> Result<RestoreOutcome> {
    if target.to_str().is_none() {
        return Err(Error::InvalidInput(format!(
            "restore target is not UTF-8: {}",
            target.display()
        )));
    }
    match fs::symlink_metadata(target) {
        Ok(m) if !m.is_dir() && !m.file_type().is_symlink() => {
            return Err(Error::InvalidInput(format!(
                "restore target is not a directory: {}",
                target.display()
            )));
        }
        Ok(_) => {}
        Err(_) => fs::create_dir_all(target).map_err(|e| Error::io("create", target, e))?,
    }
    let non_empty = fs::read_dir(target)
        .map_err(|e| Error::io("read", target, e))?
        .next()
        .is_some();
    let claim = opts
        .resume_id
        .as_deref()
        .map(|id| claim_path(target, id))
        .transpose()?;
    // This restore's own claim: the target was empty when it began (an earlier run was cut off).
    let resumed = non_empty && claim.as_deref().is_some_and(is_claim);
    if non_empty && !opts.overwrite && !resumed {
        return Err(Error::TargetNotEmpty(target.to_path_buf()));
    }
    if resumed {
        tracing::info!(target = %target.display(), "finishing a restore that was interrupted");
    }
    let claim = match claim {
        Some(c) if !non_empty => {
            write_claim(&c, target)?;
            Some(c)
        }
        Some(c) if resumed => Some(c),
        _ => None,
    };
    let r = restore_into(repo, snap, target, opts, non_empty, sink);
    if r.is_err()
        && let Some(c) = &claim
    {
        // A restore that failed is over: a new one into this target starts afresh.
        if let Err(e) = fs::remove_file(c) {
            tracing::warn!(claim = %c.display(), error = %e, "cannot remove the restore claim");
        }
    }
    r
}

/// The restore proper, once the target has been checked (and claimed).
fn restore_into<S: IndexedFull + Sync>(
    repo: &Repository<S>,
    snap: &SnapshotFile,
    target: &Path,
    opts: &RestoreOptions,
    non_empty: bool,
    sink: &Arc<ProgressSink>,
) -> Result<RestoreOutcome> {
    let root = snap
        .paths
        .iter()
        .next()
        .cloned()
        .ok_or_else(|| Error::VaultDamaged("recovery point records no source path".into()))?;
    let selections = if opts.paths.is_empty() {
        vec![PathBuf::new()]
    } else {
        opts.paths.clone()
    };

    let mut ropts = rustic_core::RestoreOptions::default().numeric_id(true);
    if !running_as_root() {
        ropts = ropts.no_ownership(true);
    }

    let mut outcome = RestoreOutcome::default();
    for sel in &selections {
        if !is_plain_relative(sel) {
            return Err(Error::InvalidInput(format!(
                "restore path must be relative without `..`: {}",
                sel.display()
            )));
        }
        let sel_str = sel.to_str().ok_or_else(|| {
            Error::InvalidInput(format!("restore path is not UTF-8: {}", sel.display()))
        })?;
        let snap_path = if sel_str.is_empty() {
            root.clone()
        } else {
            format!("{}/{sel_str}", root.trim_end_matches('/'))
        };
        let node = repo
            .node_from_snapshot_and_path(snap, &snap_path)
            .map_err(|e| {
                tracing::debug!("looking up {snap_path}: {}", e.display_log());
                if sel_str.is_empty() {
                    // The snapshot's own root is always in it: its tree cannot be read.
                    unreadable_root(&root, &e)
                } else {
                    Error::PathNotInRecoveryPoint(sel_str.to_string())
                }
            })?;

        // Directory the nodes are restored into; for a single file its parent.
        let (dest_dir, single): (PathBuf, Option<(PathBuf, Node)>) = if node.is_dir() {
            (target.join(sel), None)
        } else {
            let name = if sel_str.is_empty() {
                Path::new(&root).file_name().map(OsStr::to_os_string)
            } else {
                sel.file_name().map(OsStr::to_os_string)
            }
            .ok_or_else(|| Error::InvalidInput("cannot name the restored file".into()))?;
            let parent = target.join(sel.parent().unwrap_or(Path::new("")));
            (parent, Some((PathBuf::from(name), node.clone())))
        };
        // Directories between the target and the destination are created here; when the
        // target had content, anything there that could redirect writes is removed first.
        let mut p = target.to_path_buf();
        for c in dest_dir
            .strip_prefix(target)
            .unwrap_or(Path::new(""))
            .components()
        {
            p.push(c);
            if non_empty {
                defuse(&p)?;
            }
        }
        fs::create_dir_all(&dest_dir).map_err(|e| Error::io("create", &dest_dir, e))?;

        let plain = || node_iter(repo, &node, single.as_ref());

        // Pass 0: validate every name, note the symlinks the restore will create, defuse.
        let mut symlinks = HashSet::new();
        let (mut files, mut bytes) = (0u64, 0u64);
        for item in plain()? {
            sink.check_cancel()?;
            let (path, node) = item.map_err(|e| Error::from_rustic("list recovery point", &e))?;
            if !is_plain_relative(&path) || unsafe_name(&node.name()) {
                return Err(Error::UnsafePath(path.display().to_string()));
            }
            if node.is_symlink() {
                symlinks.insert(path.to_path_buf());
            }
            if node.is_file() {
                files += 1;
                bytes += node.meta.size;
            }
            if non_empty {
                defuse(&dest_dir.join(&path))?;
            }
        }
        let symlinks = Arc::new(symlinks);
        let bad_path = Arc::new(Mutex::new(None::<PathBuf>));
        let guarded = || -> Result<_> {
            let symlinks = symlinks.clone();
            let bad_path = bad_path.clone();
            Ok(plain()?.map(move |item| {
                let (path, node) = item?;
                if path.ancestors().skip(1).any(|a| symlinks.contains(a)) {
                    *bad_path
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(path.clone());
                    return Err(RusticError::new(
                        ErrorKind::InvalidInput,
                        "path `{path}` passes through a symlink",
                    )
                    .attach_context("path", path.display().to_string()));
                }
                Ok((path, node))
            }))
        };
        let map_err = |e: Box<RusticError>| {
            if let Some(p) = bad_path
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
            {
                Error::UnsafePath(p.display().to_string())
            } else {
                Error::from_rustic("restore", &e)
            }
        };

        sink.update(true, |p| {
            p.files_total = Some(p.files_total.unwrap_or(0) + files);
            p.bytes_total = Some(p.bytes_total.unwrap_or(0) + bytes);
        });
        // Phase A: file contents, written by the engine (see `write_contents`).
        let (files, bytes, unchanged) =
            write_contents(repo, guarded()?, &dest_dir, sink).map_err(|e| match e {
                Error::Engine(_) | Error::InvalidInput(_) => bad_path
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take()
                    .map_or(e, |p| Error::UnsafePath(p.display().to_string())),
                other => other,
            })?;
        outcome.files_restored += files;
        outcome.files_unchanged += unchanged;
        outcome.bytes_restored += bytes;
        sink.check_cancel()?;

        // Phase B: `rustic_core` creates directories, symlinks and special files and restores
        // all metadata. The files written above match by size and mtime, so it leaves their
        // content alone.
        let dest_str = dest_dir
            .to_str()
            .ok_or_else(|| Error::InvalidInput("restore path is not UTF-8".into()))?;
        let dest = LocalDestination::new(dest_str, true, false)
            .map_err(|e| Error::from_rustic("restore", &e))?;
        sink.phase(Phase::Finishing, "restoring metadata");
        let plan = repo
            .prepare_restore(&ropts, guarded()?, &dest, false)
            .map_err(map_err)?;
        // `rustic_core` unwraps read errors inside its restore workers, so a failing read
        // panics there; turn that back into an error.
        let nodes = guarded()?;
        let restored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            repo.restore(plan, &ropts, nodes, &dest)
        }));
        match restored {
            Ok(r) => r.map_err(map_err)?,
            Err(_) if sink.cancel.is_cancelled() => return Err(Error::Cancelled),
            Err(_) => {
                return Err(Error::Storage(
                    "restore: reading the vault failed (see the log)".into(),
                ));
            }
        }
        sink.check_cancel()?;
    }
    let done = outcome.bytes_restored;
    sink.update(true, |p| {
        p.bytes_done = done;
        p.bytes_total = Some(done);
    });
    Ok(outcome)
}
