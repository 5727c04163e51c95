//! Restoring a recovery point into a directory, safely.
//!
//! `rustic_core` restores whatever names a snapshot's trees hold. A vault may have been written
//! by other tools, or tampered with, so before anything is written the engine walks the nodes to
//! restore and refuses names that would leave the target (`..`, `/`, empty) and paths that
//! would pass through a symlink the restore itself creates. When overwriting a non-empty
//! target, symlinks and multiply-linked files already at the paths being restored are removed
//! first, so a restore never writes through them to somewhere outside the target.

use std::{
    collections::HashSet,
    ffi::OsStr,
    fs,
    os::unix::fs::MetadataExt,
    path::{Component, Path, PathBuf},
    sync::{Arc, Mutex},
};

use rustic_core::{
    ErrorKind, IndexedFull, LocalDestination, LsOptions, Repository, RusticError, RusticResult,
    repofile::{Node, SnapshotFile},
};

use crate::{Error, RestoreOutcome, Result, progress::ProgressSink};

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

pub(crate) fn restore_snapshot<S: IndexedFull>(
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
    if non_empty && !opts.overwrite {
        return Err(Error::TargetNotEmpty(target.to_path_buf()));
    }

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
                Error::PathNotInRecoveryPoint(if sel_str.is_empty() {
                    root.clone()
                } else {
                    sel_str.to_string()
                })
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
        for item in plain()? {
            sink.check_cancel()?;
            let (path, node) = item.map_err(|e| Error::from_rustic("list recovery point", &e))?;
            if !is_plain_relative(&path) || unsafe_name(&node.name()) {
                return Err(Error::UnsafePath(path.display().to_string()));
            }
            if node.is_symlink() {
                symlinks.insert(path.to_path_buf());
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

        let dest_str = dest_dir
            .to_str()
            .ok_or_else(|| Error::InvalidInput("restore path is not UTF-8".into()))?;
        let dest = LocalDestination::new(dest_str, true, false)
            .map_err(|e| Error::from_rustic("restore", &e))?;
        let plan = repo
            .prepare_restore(&ropts, guarded()?, &dest, false)
            .map_err(map_err)?;
        outcome.files_restored += plan.stats.files.restore;
        outcome.files_unchanged += plan.stats.files.unchanged;
        outcome.bytes_restored += plan.restore_size;
        let files = plan.stats.files.restore;
        sink.update(true, |p| {
            p.files_total = Some(p.files_total.unwrap_or(0) + files)
        });
        sink.check_cancel()?;
        repo.restore(plan, &ropts, guarded()?, &dest)
            .map_err(map_err)?;
        sink.update(true, |p| p.files_done += files);
        sink.check_cancel()?;
    }
    Ok(outcome)
}
