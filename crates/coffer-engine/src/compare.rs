//! Checking a restore against its recovery point.
//!
//! Restore testing needs to know that what a restore wrote is what the vault holds, not just
//! that the restore ended without an error. [`compare_snapshot`] walks the recovery point's
//! snapshot tree in the repository and, for every regular file, checks that the restored file
//! exists, has the recorded size, and has the same bytes as the file's content blobs read back
//! from the vault (decrypted and authenticated as a restore reads them). It never looks at the
//! resource that was backed up.

use std::{
    ffi::OsStr,
    fs,
    io::{BufReader, Read, Write},
    path::{Path, PathBuf},
};

use rustic_core::{IndexedFull, LsOptions, Repository, repofile::Node, repofile::SnapshotFile};

use crate::{Error, Result, progress::ProgressSink, restore::unreadable_root};

/// At most this many problems are listed (the count of files checked goes on).
const MAX_PROBLEMS: usize = 20;

/// What a comparison found.
#[derive(Clone, Debug, Default)]
pub struct CompareReport {
    /// Regular files of the recovery point checked.
    pub files: u64,
    /// Bytes compared.
    pub bytes: u64,
    /// Every difference found (a missing file, a size or content that differs), by path
    /// relative to the restore target; empty when the restore matches.
    pub problems: Vec<String>,
}

impl CompareReport {
    /// True when every file matched.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, p: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(p);
        }
    }
}

/// Compares every regular file of `snap` with what lies under `target` (see the module
/// documentation).
pub(crate) fn compare_snapshot<S: IndexedFull>(
    repo: &Repository<S>,
    snap: &SnapshotFile,
    target: &Path,
    sink: &ProgressSink,
) -> Result<CompareReport> {
    let mut report = CompareReport::default();
    walk_files(repo, snap, sink, |rel, n| {
        compare_file(repo, &target.join(rel), rel, n, &mut report)
    })?;
    Ok(report)
}

/// Calls `visit` with every regular file of `snap`, by its path relative to the recovery
/// point's root (for a recovery point of one file, its name), in the tree's order (sorted by
/// path within each directory). Restore comparison and the catalogue both walk here.
pub(crate) fn walk_files<S: IndexedFull>(
    repo: &Repository<S>,
    snap: &SnapshotFile,
    sink: &ProgressSink,
    mut visit: impl FnMut(&Path, &Node) -> Result<()>,
) -> Result<()> {
    let root = snap
        .paths
        .iter()
        .next()
        .cloned()
        .ok_or_else(|| Error::VaultDamaged("recovery point records no source path".into()))?;
    let node = repo
        .node_from_snapshot_and_path(snap, &root)
        .map_err(|e| unreadable_root(&root, &e))?;
    if node.is_dir() {
        let ls = repo
            .ls(&node, &LsOptions::default())
            .map_err(|e| Error::from_rustic("list recovery point", &e))?;
        for item in ls {
            sink.check_cancel()?;
            let (path, n) = item.map_err(|e| Error::from_rustic("list recovery point", &e))?;
            if n.is_file() {
                visit(&path, &n)?;
            }
        }
    } else if node.is_file() {
        let name = Path::new(&root)
            .file_name()
            .map(OsStr::to_os_string)
            .ok_or_else(|| Error::InvalidInput("cannot name the restored file".into()))?;
        visit(&PathBuf::from(name), &node)?;
    }
    Ok(())
}

/// Reads the restored file alongside the content the vault writes, and notes the first
/// offset where they differ.
struct Comparer {
    file: BufReader<fs::File>,
    offset: u64,
    mismatch_at: Option<u64>,
    buf: Vec<u8>,
}

impl Write for Comparer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.mismatch_at.is_none() {
            self.buf.resize(data.len(), 0);
            let same = self.file.read_exact(&mut self.buf).is_ok() && self.buf == data;
            if !same {
                let at = self
                    .buf
                    .iter()
                    .zip(data)
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                self.mismatch_at = Some(self.offset + at as u64);
            }
        }
        self.offset += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn compare_file<S: IndexedFull>(
    repo: &Repository<S>,
    restored: &Path,
    rel: &Path,
    node: &Node,
    report: &mut CompareReport,
) -> Result<()> {
    report.files += 1;
    let shown = rel.display();
    let meta = match fs::symlink_metadata(restored) {
        Ok(m) if m.is_file() => m,
        Ok(_) => {
            report.problem(format!("{shown}: restored as something other than a file"));
            return Ok(());
        }
        Err(_) => {
            report.problem(format!("{shown}: missing from the restore"));
            return Ok(());
        }
    };
    if meta.len() != node.meta.size {
        report.problem(format!(
            "{shown}: size {} bytes, the recovery point records {}",
            meta.len(),
            node.meta.size
        ));
        return Ok(());
    }
    let file = fs::File::open(restored).map_err(|e| Error::io("read", restored, e))?;
    let mut cmp = Comparer {
        file: BufReader::with_capacity(1 << 20, file),
        offset: 0,
        mismatch_at: None,
        buf: Vec::new(),
    };
    repo.dump(node, &mut cmp)
        .map_err(|e| Error::from_rustic("read recovery point", &e))?;
    report.bytes += cmp.offset;
    if let Some(at) = cmp.mismatch_at {
        report.problem(format!(
            "{shown}: content differs from the recovery point at byte {at}"
        ));
    } else if cmp.offset != node.meta.size {
        report.problem(format!(
            "{shown}: the recovery point holds {} bytes of content for a recorded size of {}",
            cmp.offset, node.meta.size
        ));
    }
    Ok(())
}
