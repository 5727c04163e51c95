//! Malware scanning of a recovery point: YARA rules evaluated over every file it holds.
//!
//! A scan job must say whether the data a recovery point holds carries known malware without
//! restoring it anywhere. [`ScanRules`] is a compiled rule set (the built-in EICAR test-file
//! rule plus the operator's rule files), evaluated with `boreal`, a pure-Rust YARA evaluator.
//! [`VaultRepo::scan`](crate::VaultRepo::scan) walks the snapshot tree in the vault, reads each
//! regular file's content back from the repository (decrypted and authenticated as a restore
//! reads it) and evaluates the rules over it. An incremental scan is given a base snapshot of
//! the same resource: a file whose content (its list of content blob ids) the base holds is
//! skipped, so only new or changed content is read.
//!
//! Files are evaluated in windows of [`WINDOW`] bytes overlapping by [`OVERLAP`] bytes: a file
//! up to a window long is evaluated whole; a larger one window by window, so memory stays
//! bounded (a rule's `filesize` then sees the window's size).

use std::collections::{BTreeSet, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustic_core::{IndexedFull, Repository, repofile::Node, repofile::SnapshotFile};

use crate::{Error, Result, compare::walk_files, progress::ProgressSink};

/// The largest piece of a file evaluated at once.
pub const WINDOW: usize = 64 << 20;
/// How much of the previous window is evaluated again with the next one, so that a pattern
/// across a window boundary (shorter than this) is still found.
pub const OVERLAP: usize = 64 << 10;

/// The name of the built-in rule that finds the EICAR anti-malware test file.
pub const EICAR_RULE: &str = "EICAR_Test_File";

/// The built-in rule: the 68-byte EICAR test string anywhere in a file.
const BUILTIN: &str = r#"
rule EICAR_Test_File {
    meta:
        description = "The EICAR anti-malware test file"
    strings:
        $eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    condition:
        $eicar
}
"#;

/// A compiled rule set: the built-in rule and the rules of the files it was loaded from.
#[derive(Clone)]
pub struct ScanRules {
    scanner: Arc<boreal::Scanner>,
    files: Vec<PathBuf>,
    rules: usize,
}

impl std::fmt::Debug for ScanRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanRules")
            .field("files", &self.files)
            .field("rules", &self.rules)
            .finish()
    }
}

impl Default for ScanRules {
    fn default() -> Self {
        Self::builtin()
    }
}

fn compiler() -> boreal::Compiler {
    // boreal without its optional features: rules see file content, with the modules that need
    // no file parser (no `pe`, `elf` or `hash` conditions).
    boreal::Compiler::new()
}

impl ScanRules {
    /// The built-in EICAR rule alone.
    #[must_use]
    pub fn builtin() -> Self {
        let mut c = compiler();
        c.add_rules_str_in_namespace(BUILTIN, "coffer")
            .expect("the built-in rule compiles");
        let scanner = c.finalize();
        let rules = scanner.rules().count();
        ScanRules {
            scanner: Arc::new(scanner),
            files: Vec::new(),
            rules,
        }
    }

    /// The built-in rule plus every rule of `files` (each file in a namespace of its own, so
    /// two files may use the same rule name).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the file, line and column of the first rule that does not
    /// parse or compile, or a file that cannot be read.
    pub fn load(files: &[PathBuf]) -> Result<Self> {
        let mut c = compiler();
        c.add_rules_str_in_namespace(BUILTIN, "coffer")
            .map_err(|e| Error::InvalidInput(format!("built-in rule: {e}")))?;
        for (i, f) in files.iter().enumerate() {
            c.add_rules_file_in_namespace(f, format!("file{i}"))
                .map_err(|e| Error::InvalidInput(rule_error(f, &e)))?;
        }
        let scanner = c.finalize();
        let rules = scanner.rules().count();
        Ok(ScanRules {
            scanner: Arc::new(scanner),
            files: files.to_vec(),
            rules,
        })
    }

    /// The rule files this set was loaded from.
    #[must_use]
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// How many rules the set holds (the built-in one included).
    #[must_use]
    pub fn rule_count(&self) -> usize {
        self.rules
    }

    /// The names of the rules that match `data`, evaluated as one piece.
    #[must_use]
    pub fn matching(&self, data: &[u8]) -> BTreeSet<String> {
        let result = match self.scanner.scan_mem(data) {
            Ok(r) => r,
            // Only a configured timeout fails a scan, and none is set; the partial result
            // still names the rules matched so far.
            Err((_, r)) => r,
        };
        result
            .rules
            .iter()
            .filter(|r| r.matched)
            .map(|r| r.name.to_string())
            .collect()
    }
}

fn rule_error(file: &Path, e: &boreal::compiler::AddRuleError) -> String {
    let text = e.to_string().replace('\n', " ");
    if text.starts_with(&file.display().to_string()) {
        format!("rule file {text}")
    } else {
        format!("rule file {}: {text}", file.display())
    }
}

/// One file in which rules matched.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanFinding {
    /// The path relative to the recovery point's root, `/`-separated.
    pub path: String,
    /// The rules that matched, by name, sorted.
    pub rules: Vec<String>,
}

/// What a scan read and found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanReport {
    /// Regular files whose content was read and evaluated.
    pub files_scanned: u64,
    /// Bytes of content read and evaluated.
    pub bytes_scanned: u64,
    /// Files skipped by an incremental scan (their content is in the base).
    pub files_skipped: u64,
    /// Bytes of the skipped files.
    pub bytes_skipped: u64,
    /// The files in which rules matched, in the tree's order.
    pub findings: Vec<ScanFinding>,
}

/// The identity of a file's content: its content blob ids, in order.
fn content_key(node: &Node) -> String {
    let mut s = String::new();
    for id in node.content.iter().flatten() {
        s.push_str(&id.to_hex());
    }
    s
}

fn rel_path(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Scans every regular file of `snap` (only those whose content `base` does not hold, when a
/// base is given) with `rules`.
pub(crate) fn scan_snapshot<S: IndexedFull>(
    repo: &Repository<S>,
    snap: &SnapshotFile,
    base: Option<&SnapshotFile>,
    rules: &ScanRules,
    sink: &ProgressSink,
) -> Result<ScanReport> {
    let mut known = HashSet::new();
    if let Some(base) = base {
        walk_files(repo, base, sink, |_, n| {
            known.insert(content_key(n));
            Ok(())
        })?;
    }
    let mut report = ScanReport::default();
    walk_files(repo, snap, sink, |rel, n| {
        if base.is_some() && known.contains(&content_key(n)) {
            report.files_skipped += 1;
            report.bytes_skipped += n.meta.size;
            return Ok(());
        }
        let mut w = Windowed::new(rules, sink);
        repo.dump(n, &mut w)
            .map_err(|e| Error::from_rustic("read recovery point", &e))?;
        let (matched, read) = w.finish()?;
        report.files_scanned += 1;
        report.bytes_scanned += read;
        if !matched.is_empty() {
            report.findings.push(ScanFinding {
                path: rel_path(rel),
                rules: matched.into_iter().collect(),
            });
        }
        Ok(())
    })?;
    Ok(report)
}

/// Takes a file's content as the vault writes it out and evaluates the rules window by window.
struct Windowed<'a> {
    rules: &'a ScanRules,
    window: usize,
    overlap: usize,
    sink: &'a ProgressSink,
    buf: Vec<u8>,
    /// Bytes at the start of `buf` already evaluated (the overlap kept from the last window).
    seen: usize,
    read: u64,
    windows: u64,
    matched: BTreeSet<String>,
    cancelled: bool,
}

impl<'a> Windowed<'a> {
    fn new(rules: &'a ScanRules, sink: &'a ProgressSink) -> Self {
        Self::sized(rules, sink, WINDOW, OVERLAP)
    }

    fn sized(rules: &'a ScanRules, sink: &'a ProgressSink, window: usize, overlap: usize) -> Self {
        Windowed {
            rules,
            window,
            overlap,
            sink,
            buf: Vec::new(),
            seen: 0,
            read: 0,
            windows: 0,
            matched: BTreeSet::new(),
            cancelled: false,
        }
    }

    fn evaluate(&mut self) {
        self.matched.extend(self.rules.matching(&self.buf));
        self.windows += 1;
    }

    fn finish(mut self) -> Result<(BTreeSet<String>, u64)> {
        if self.cancelled {
            return Err(Error::Cancelled);
        }
        self.sink.check_cancel()?;
        if self.windows == 0 || self.buf.len() > self.seen {
            self.evaluate();
        }
        Ok((self.matched, self.read))
    }
}

impl Write for Windowed<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.sink.check_cancel().is_err() {
            self.cancelled = true;
            return Err(std::io::Error::other("scan cancelled"));
        }
        let mut rest = data;
        while !rest.is_empty() {
            let take = rest.len().min(self.window - self.buf.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == self.window {
                self.evaluate();
                self.buf.drain(..self.window - self.overlap);
                self.seen = self.overlap;
            }
        }
        self.read += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eicar() -> Vec<u8> {
        [
            "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
            "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*",
        ]
        .concat()
        .into_bytes()
    }

    #[test]
    fn builtin_rule_finds_eicar_only() {
        let rules = ScanRules::builtin();
        assert_eq!(
            rules.matching(&eicar()).into_iter().collect::<Vec<_>>(),
            vec![EICAR_RULE.to_string()]
        );
        assert!(rules.matching(b"an ordinary file").is_empty());
    }

    #[test]
    fn rule_files_load_and_bad_ones_name_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("a.yar");
        std::fs::write(
            &good,
            "rule Custom_Marker { strings: $a = \"coffer-marker\" condition: $a }",
        )
        .unwrap();
        let rules = ScanRules::load(std::slice::from_ref(&good)).unwrap();
        assert_eq!(rules.rule_count(), 2);
        assert!(
            rules
                .matching(b"xx coffer-marker yy")
                .contains("Custom_Marker")
        );
        let bad = dir.path().join("b.yar");
        std::fs::write(&bad, "rule Broken {\n condition: $missing }").unwrap();
        let Err(Error::InvalidInput(m)) = ScanRules::load(&[good, bad]) else {
            panic!("a broken rule file must be refused")
        };
        assert!(m.contains("b.yar:2"), "{m}");
    }

    #[test]
    fn windows_find_a_pattern_across_a_boundary() {
        let rules = ScanRules::builtin();
        let sink = ProgressSink::silent();
        // The same arithmetic as 64 MiB windows, on 4 KiB windows overlapping by 256 bytes.
        let (window, overlap) = (4096, 256);
        for at in [0, window - 10, 2 * window - overlap - 30, 3 * window] {
            let mut w = Windowed::sized(&rules, &sink, window, overlap);
            let mut data = vec![b'a'; at];
            data.extend(eicar());
            data.extend(vec![b'b'; 100]);
            for chunk in data.chunks(1000) {
                w.write_all(chunk).unwrap();
            }
            let (matched, read) = w.finish().unwrap();
            assert_eq!(read, data.len() as u64);
            assert!(matched.contains(EICAR_RULE), "EICAR at byte {at}");
        }
        let mut w = Windowed::sized(&rules, &sink, window, overlap);
        w.write_all(&vec![b'c'; 3 * window]).unwrap();
        assert!(w.finish().unwrap().0.is_empty());
    }
}
