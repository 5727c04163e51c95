//! End-to-end tests of the engine against real vault repositories in temporary directories:
//! byte-for-byte and metadata-for-metadata restores, deduplication, incremental backups,
//! copies, deletes, verification of damaged vaults, a process killed mid-backup, cancellation,
//! and plain `restic` opening a vault with an exported key.

use std::{
    collections::BTreeMap,
    ffi::OsStr,
    fs,
    io::Write,
    os::unix::{
        ffi::OsStrExt,
        fs::{MetadataExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use coffer_engine::{
    CancelToken, Error, MasterKey, Phase, Progress, RestoreOptions, SealedVaultKey, SnapshotRef,
    Source, SourceEntry, SourceSpec, VaultLocation, VaultRepo,
};
use sha2::{Digest, Sha256};

// ---------- helpers ----------

fn no_progress(_: &Progress) {}

struct Rng(u64);
impl Rng {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            v.extend_from_slice(&self.0.to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

fn is_root() -> bool {
    fs::metadata("/proc/self").unwrap().uid() == 0
}

/// A tree with every kind of entry the engine must keep.
fn make_tree(root: &Path, seed: u64) {
    let mut rng = Rng(seed | 1);
    fs::create_dir_all(root).unwrap();
    write(&root.join("small.txt"), b"hello coffer\n");
    write(&root.join("empty"), b"");
    write(&root.join("dir/a.bin"), &rng.bytes(300_000));
    write(&root.join("dir/sub/b.bin"), &rng.bytes(700_000));
    write(&root.join("big.bin"), &rng.bytes(2 * 1024 * 1024 + 17));
    // Sparse: a hole, then data, then a hole at the end.
    {
        let mut f = fs::File::create(root.join("sparse.img")).unwrap();
        f.set_len(3 * 1024 * 1024).unwrap();
        use std::io::Seek;
        f.seek(std::io::SeekFrom::Start(1024 * 1024)).unwrap();
        f.write_all(&rng.bytes(4096)).unwrap();
    }
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::create_dir_all(root.join("nested/empty/deeper")).unwrap();
    write(&root.join("ünïcødé 日本語.txt"), "unicode".as_bytes());
    write(
        &root.join(OsStr::from_bytes(b"latin1-\xe9t\xe9.txt")),
        b"not utf-8 name",
    );
    std::os::unix::fs::symlink("small.txt", root.join("link-rel")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("link-abs")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("link-dangling")).unwrap();
    write(&root.join("private.key"), b"secret");
    fs::set_permissions(root.join("private.key"), fs::Permissions::from_mode(0o600)).unwrap();
    write(&root.join("run.sh"), b"#!/bin/sh\necho hi\n");
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(root.join("nested"), fs::Permissions::from_mode(0o750)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(root.join("small.txt"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(root.join("link-rel"), Some(4321), Some(8765)).unwrap();
    }
    // Fixed, distinct mtimes (files first, directories last so they stick).
    let mut t = 1_600_000_000i64;
    for e in walk(root).iter().rev() {
        t += 3601;
        let ft = filetime::FileTime::from_unix_time(t, 123_000_000);
        let m = fs::symlink_metadata(e).unwrap();
        if m.file_type().is_symlink() {
            filetime::set_symlink_file_times(e, ft, ft).unwrap();
        } else {
            filetime::set_file_times(e, ft, ft).unwrap();
        }
    }
}

/// All paths below `root` (not `root` itself), parents before children.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for e in entries {
            out.push(e.clone());
            if fs::symlink_metadata(&e).unwrap().is_dir() {
                stack.push(e);
            }
        }
    }
    out
}

/// Everything that must survive a round trip, per relative path.
fn manifest(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut m = BTreeMap::new();
    for p in walk(root) {
        let meta = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        let ft = meta.file_type();
        let what = if ft.is_symlink() {
            format!("link->{}", fs::read_link(&p).unwrap().display())
        } else if ft.is_dir() {
            format!("dir mode={:o}", meta.mode() & 0o7777)
        } else {
            let data = fs::read(&p).unwrap();
            format!(
                "file mode={:o} size={} sha256={}",
                meta.mode() & 0o7777,
                data.len(),
                hex(&Sha256::digest(&data))
            )
        };
        let owner = if is_root() {
            format!(" owner={}:{}", meta.uid(), meta.gid())
        } else {
            String::new()
        };
        m.insert(
            rel,
            format!("{what}{owner} mtime={}.{}", meta.mtime(), meta.mtime_nsec()),
        );
    }
    m
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn assert_same_tree(a: &Path, b: &Path) {
    let (ma, mb) = (manifest(a), manifest(b));
    for (k, v) in &ma {
        assert_eq!(Some(v), mb.get(k), "entry {} differs", k.display());
    }
    assert_eq!(ma.len(), mb.len(), "extra entries in {}", b.display());
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    master: MasterKey,
}

impl Fixture {
    fn new() -> Self {
        coffer_engine::bridge_log_to_tracing();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let master = MasterKey::load_or_create(&dir.join("master.key")).unwrap();
        Self {
            _tmp: tmp,
            dir,
            master,
        }
    }

    fn vault(&self, name: &str) -> (VaultRepo, SealedVaultKey) {
        VaultRepo::create(VaultLocation::local(self.dir.join(name)), &self.master).unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn backup(
    v: &VaultRepo,
    src: &Path,
    rp: &str,
    parent: Option<&SnapshotRef>,
) -> coffer_engine::BackupOutcome {
    v.backup(
        &SourceSpec::Directory(src.to_path_buf()),
        rp,
        parent,
        &[],
        no_progress,
        CancelToken::new(),
    )
    .unwrap()
}

fn restore(
    v: &VaultRepo,
    snap: &SnapshotRef,
    target: &Path,
    opts: &RestoreOptions,
) -> coffer_engine::Result<coffer_engine::RestoreOutcome> {
    v.restore(snap, target, opts, no_progress, CancelToken::new())
}

fn verify(v: &VaultRepo, read_data: bool) -> coffer_engine::VerifyReport {
    v.verify(read_data, no_progress, CancelToken::new())
        .unwrap()
}

fn dir_size(p: &Path) -> u64 {
    walk(p)
        .iter()
        .filter_map(|e| fs::symlink_metadata(e).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

fn packs(vault: &Path) -> Vec<PathBuf> {
    walk(&vault.join("data"))
        .into_iter()
        .filter(|p| p.is_file())
        .collect()
}

// ---------- tests ----------

#[test]
fn restore_is_byte_and_metadata_exact() {
    let fx = Fixture::new();
    let src = fx.path("src");
    make_tree(&src, 1);
    let (vault, sealed) = fx.vault("vault");
    let out = backup(&vault, &src, "rp-1", None);
    assert_eq!(out.snapshot.0.len(), 64, "full snapshot id");
    assert!(out.files >= 10);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);

    // Reopen from the sealed key, as the server does after a restart.
    let vault = VaultRepo::open(vault.location().clone(), &sealed, &fx.master).unwrap();
    let list = vault.list_snapshots().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].recovery_point_id.as_deref(), Some("rp-1"));
    assert_eq!(list[0].snapshot, out.snapshot);
    assert_eq!(
        vault.find_recovery_point("rp-1").unwrap(),
        Some(out.snapshot.clone())
    );

    let target = fx.path("restored");
    let r = restore(&vault, &out.snapshot, &target, &RestoreOptions::default()).unwrap();
    assert!(r.files_restored >= 8);
    assert_same_tree(&src, &target);

    // A non-empty target is refused unless overwriting is asked for.
    let err = restore(&vault, &out.snapshot, &target, &RestoreOptions::default()).unwrap_err();
    assert!(matches!(err, Error::TargetNotEmpty(_)), "{err}");
    fs::write(target.join("small.txt"), b"changed").unwrap();
    fs::write(target.join("extra-file"), b"kept").unwrap();
    restore(
        &vault,
        &out.snapshot,
        &target,
        &RestoreOptions {
            overwrite: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        fs::read(target.join("small.txt")).unwrap(),
        b"hello coffer\n"
    );
    fs::remove_file(target.join("extra-file")).unwrap();
    assert_same_tree(&src, &target);

    // Selected paths land at their relative place.
    let partial = fx.path("partial");
    restore(
        &vault,
        &out.snapshot,
        &partial,
        &RestoreOptions {
            paths: vec!["dir/sub".into(), "run.sh".into()],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        fs::read(partial.join("dir/sub/b.bin")).unwrap(),
        fs::read(src.join("dir/sub/b.bin")).unwrap()
    );
    assert_eq!(
        fs::read(partial.join("run.sh")).unwrap(),
        fs::read(src.join("run.sh")).unwrap()
    );
    assert!(!partial.join("big.bin").exists());

    // Paths not in the recovery point and escaping paths get clear errors.
    let err = restore(
        &vault,
        &out.snapshot,
        &fx.path("x"),
        &RestoreOptions {
            paths: vec!["nope".into()],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.status_message(),
        "path not found in recovery point: nope"
    );
    let err = restore(
        &vault,
        &out.snapshot,
        &fx.path("y"),
        &RestoreOptions {
            paths: vec!["../etc".into()],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    let err = vault
        .backup(
            &SourceSpec::Directory(fx.path("missing")),
            "rp-x",
            None,
            &[],
            no_progress,
            CancelToken::new(),
        )
        .unwrap_err();
    assert_eq!(
        err.status_message(),
        format!("source not found: {}", fx.path("missing").display())
    );
    assert!(verify(&vault, true).is_ok());
}

/// A restore compares equal to its recovery point; a flipped byte, a truncated file and a
/// missing file are each reported by path, and a damaged vault stops the comparison.
#[test]
fn compare_restored_finds_every_difference() {
    let fx = Fixture::new();
    let src = fx.path("src");
    make_tree(&src, 7);
    let (vault, _) = fx.vault("vault");
    let out = backup(&vault, &src, "rp-1", None);
    let target = fx.path("restored");
    restore(&vault, &out.snapshot, &target, &RestoreOptions::default()).unwrap();
    let report = vault
        .compare_restored(&out.snapshot, &target, CancelToken::new())
        .unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert!(report.files >= 8, "{report:?}");
    assert!(report.bytes > 3_000_000, "{report:?}");

    let mut a = fs::read(target.join("dir/a.bin")).unwrap();
    a[150_000] ^= 1;
    fs::write(target.join("dir/a.bin"), &a).unwrap();
    let b = fs::read(target.join("dir/sub/b.bin")).unwrap();
    fs::write(target.join("dir/sub/b.bin"), &b[..1000]).unwrap();
    fs::remove_file(target.join("small.txt")).unwrap();
    let report = vault
        .compare_restored(&out.snapshot, &target, CancelToken::new())
        .unwrap();
    let all = report.problems.join("\n");
    assert_eq!(report.problems.len(), 3, "{all}");
    assert!(
        all.contains("dir/a.bin: content differs from the recovery point at byte 150000"),
        "{all}"
    );
    assert!(
        all.contains("dir/sub/b.bin: size 1000 bytes, the recovery point records 700000"),
        "{all}"
    );
    assert!(all.contains("small.txt: missing from the restore"), "{all}");

    for pack in packs(&fx.path("vault")) {
        fs::remove_file(pack).unwrap();
    }
    let err = vault
        .compare_restored(&out.snapshot, &target, CancelToken::new())
        .unwrap_err();
    assert!(
        matches!(err, Error::VaultDamaged(_) | Error::Storage(_)),
        "{err}"
    );
}

#[test]
fn overwrite_never_writes_through_symlinks_in_the_target() {
    let fx = Fixture::new();
    let src = fx.path("src");
    write(&src.join("sub/file.txt"), b"from backup");
    write(&src.join("top.txt"), b"top");
    let (vault, _) = fx.vault("vault");
    let out = backup(&vault, &src, "rp", None);

    let outside = fx.path("outside");
    fs::create_dir_all(&outside).unwrap();
    write(&outside.join("top.txt"), b"outside file");
    let target = fx.path("target");
    fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("sub")).unwrap();
    std::os::unix::fs::symlink(outside.join("top.txt"), target.join("top.txt")).unwrap();
    restore(
        &vault,
        &out.snapshot,
        &target,
        &RestoreOptions {
            overwrite: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!outside.join("file.txt").exists());
    assert_eq!(fs::read(outside.join("top.txt")).unwrap(), b"outside file");
    assert_eq!(
        fs::read(target.join("sub/file.txt")).unwrap(),
        b"from backup"
    );
    assert_eq!(fs::read(target.join("top.txt")).unwrap(), b"top");
}

#[test]
fn same_data_is_stored_once_and_unchanged_files_are_not_reread() {
    let fx = Fixture::new();
    let src = fx.path("src");
    let data = Rng(7).bytes(3 * 1024 * 1024);
    write(&src.join("one.bin"), &data);
    write(&src.join("copy/two.bin"), &data);
    let (vault, _) = fx.vault("vault");
    let first = backup(&vault, &src, "rp-1", None);
    assert!(
        first.bytes_stored < 4 * 1024 * 1024,
        "6 MiB holding the same 3 MiB twice stored {} bytes",
        first.bytes_stored
    );
    assert!(dir_size(vault.location_path()) < 4 * 1024 * 1024);

    let second = backup(&vault, &src, "rp-2", Some(&first.snapshot));
    assert_eq!(second.bytes_added, 0);
    assert_eq!(second.files_unmodified, 2);
    assert_ne!(second.snapshot, first.snapshot);

    // Without a parent, the files are read again but still not stored again.
    let third = backup(&vault, &src, "rp-3", None);
    assert_eq!(third.bytes_added, 0);
    assert_eq!(third.files_unmodified, 0);
}

trait LocationPath {
    fn location_path(&self) -> &Path;
}
impl LocationPath for VaultRepo {
    fn location_path(&self) -> &Path {
        match self.location() {
            VaultLocation::Local { path } => path,
            _ => unreachable!(),
        }
    }
}

#[test]
fn incremental_backups_restore_each_day_exactly() {
    let fx = Fixture::new();
    let src = fx.path("src");
    make_tree(&src, 2);
    let (vault, _) = fx.vault("vault");
    let day1 = backup(&vault, &src, "day-1", None);
    let day1_copy = fx.path("day1-expected");
    copy_tree(&src, &day1_copy);

    // Next day: change the middle of a file, append to another, delete, add, rename.
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(src.join("big.bin"))
        .unwrap();
    use std::io::Seek;
    f.seek(std::io::SeekFrom::Start(1024 * 1024)).unwrap();
    f.write_all(&Rng(99).bytes(100_000)).unwrap();
    drop(f);
    fs::OpenOptions::new()
        .append(true)
        .open(src.join("dir/a.bin"))
        .unwrap()
        .write_all(b"appended")
        .unwrap();
    fs::remove_file(src.join("dir/sub/b.bin")).unwrap();
    write(&src.join("new/file.txt"), b"new");
    fs::rename(src.join("run.sh"), src.join("run2.sh")).unwrap();

    let day2 = backup(&vault, &src, "day-2", Some(&day1.snapshot));
    assert!(day2.files_changed >= 2, "{day2:?}");
    assert!(day2.files_unmodified >= 4, "{day2:?}");
    // Only changed chunks are new: far less than the tree.
    // (Files this small are one or two chunks, so a changed file is mostly stored again.)
    assert!(day2.bytes_added < day2.total_bytes / 2, "{day2:?}");

    let r2 = fx.path("r2");
    restore(&vault, &day2.snapshot, &r2, &RestoreOptions::default()).unwrap();
    assert_same_tree(&src, &r2);
    let r1 = fx.path("r1");
    restore(&vault, &day1.snapshot, &r1, &RestoreOptions::default()).unwrap();
    assert_eq!(manifest(&day1_copy).len(), manifest(&r1).len());
    for (k, v) in manifest(&day1_copy) {
        let mine = manifest(&r1);
        // Contents and modes must match day 1 exactly (mtimes of the copy differ).
        let strip = |s: &str| s.split(" mtime=").next().unwrap().to_string();
        assert_eq!(strip(&v), strip(&mine[&k]), "{}", k.display());
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn copy_to_another_vault_then_restore_from_the_copy() {
    let fx = Fixture::new();
    let src = fx.path("src");
    make_tree(&src, 3);
    let (a, _) = fx.vault("a");
    let out = backup(&a, &src, "rp-a", None);
    let (b, sealed_b) =
        VaultRepo::create_like(VaultLocation::local(fx.path("b")), &fx.master, &a).unwrap();
    let copied = a
        .copy_to(&b, &out.snapshot, "rp-b", no_progress, CancelToken::new())
        .unwrap();
    assert_eq!(copied.0.len(), 64);
    let b = VaultRepo::open(b.location().clone(), &sealed_b, &fx.master).unwrap();
    let list = b.list_snapshots().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].recovery_point_id.as_deref(), Some("rp-b"));
    let target = fx.path("from-copy");
    restore(&b, &copied, &target, &RestoreOptions::default()).unwrap();
    assert_same_tree(&src, &target);
    assert!(verify(&b, true).is_ok());

    // A vault created independently (other chunker) also receives copies.
    let (c, _) = fx.vault("c");
    let copied_c = a
        .copy_to(&c, &out.snapshot, "rp-c", no_progress, CancelToken::new())
        .unwrap();
    let target = fx.path("from-c");
    restore(&c, &copied_c, &target, &RestoreOptions::default()).unwrap();
    assert_same_tree(&src, &target);

    // Another vault's key does not open this vault.
    let (_, sealed_c) = fx.vault("d");
    let err = VaultRepo::open(b.location().clone(), &sealed_c, &fx.master).unwrap_err();
    assert!(matches!(err, Error::KeyRejected(_)), "{err}");
    let err =
        VaultRepo::open(VaultLocation::local(fx.path("none")), &sealed_c, &fx.master).unwrap_err();
    assert!(matches!(err, Error::VaultNotFound(_)), "{err}");

    // Wrong master key: the sealed key is rejected.
    let err = VaultRepo::open(b.location().clone(), &sealed_b, &MasterKey::generate()).unwrap_err();
    assert!(matches!(err, Error::KeyRejected(_)), "{err}");
}

#[test]
fn delete_removes_the_recovery_point_and_its_data() {
    let fx = Fixture::new();
    let (vault, _) = fx.vault("vault");
    let s1 = fx.path("s1");
    write(&s1.join("a.bin"), &Rng(11).bytes(3 * 1024 * 1024));
    let s2 = fx.path("s2");
    write(&s2.join("b.bin"), &Rng(12).bytes(1024 * 1024));
    let o1 = backup(&vault, &s1, "rp-1", None);
    let o2 = backup(&vault, &s2, "rp-2", None);
    let before = dir_size(vault.location_path());
    let d = vault.delete(&o1.snapshot).unwrap();
    assert!(d.pruned);
    let after = dir_size(vault.location_path());
    assert!(
        after + 2 * 1024 * 1024 < before,
        "before {before} after {after}"
    );
    let list = vault.list_snapshots().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].snapshot, o2.snapshot);
    let report = verify(&vault, true);
    assert!(report.is_ok(), "{report:?}");
    let target = fx.path("t");
    restore(&vault, &o2.snapshot, &target, &RestoreOptions::default()).unwrap();
    assert_same_tree(&s2, &target);
    let err = vault.delete(&o1.snapshot).unwrap_err();
    assert!(matches!(err, Error::RecoveryPointNotFound(_)), "{err}");
}

#[test]
fn verify_detects_a_flipped_byte_and_a_missing_pack() {
    let fx = Fixture::new();
    let src = fx.path("src");
    write(&src.join("a.bin"), &Rng(5).bytes(1024 * 1024));
    let (vault, _) = fx.vault("vault");
    backup(&vault, &src, "rp", None);
    assert!(verify(&vault, true).is_ok());

    let mut all = packs(vault.location_path());
    all.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).unwrap().len()));
    let biggest = all[0].clone();
    let mut bytes = fs::read(&biggest).unwrap();
    bytes[1000] ^= 0x55;
    fs::set_permissions(&biggest, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&biggest, &bytes).unwrap();
    let report = verify(&vault, true);
    assert!(!report.is_ok(), "flipped byte not found");
    eprintln!("damage reported: {:?}", report.errors);

    fs::remove_file(&biggest).unwrap();
    let report = verify(&vault, false);
    assert!(!report.is_ok(), "missing pack not found");
}

/// A source whose files vanish or change between listing and reading.
struct FlakySource {
    root: PathBuf,
}

impl Source for FlakySource {
    fn snapshot_path(&self) -> PathBuf {
        self.root.clone()
    }
    fn check(&self) -> coffer_engine::Result<()> {
        Ok(())
    }
    fn totals(&self) -> coffer_engine::Result<Option<(u64, u64)>> {
        Ok(None)
    }
    fn entries(&self) -> Box<dyn Iterator<Item = coffer_engine::Result<SourceEntry>> + Send> {
        let dir = coffer_engine::SourceEntry {
            path: self.root.clone(),
            node: node(self.root.file_name().unwrap(), true, 0),
            open: None,
            watch_changes: false,
        };
        let grown = self.root.join("grown.txt");
        let g2 = grown.clone();
        let changed = SourceEntry {
            path: grown,
            node: node(OsStr::new("grown.txt"), false, 3),
            open: Some(Box::new(move || {
                Ok(Box::new(fs::File::open(&g2)?) as Box<dyn std::io::Read + Send>)
            })),
            watch_changes: true,
        };
        let gone = SourceEntry {
            path: self.root.join("vanished.txt"),
            node: node(OsStr::new("vanished.txt"), false, 5),
            open: Some(Box::new(|| {
                Err(std::io::Error::from(std::io::ErrorKind::NotFound))
            })),
            watch_changes: true,
        };
        Box::new(vec![Ok(dir), Ok(changed), Ok(gone)].into_iter())
    }
}

fn node(name: &OsStr, dir: bool, size: u64) -> coffer_engine::rustic::Node {
    use coffer_engine::rustic::{Metadata, Node, NodeType};
    let ty = if dir { NodeType::Dir } else { NodeType::File };
    Node::new_node(
        name,
        ty,
        Metadata {
            size,
            mode: Some(0o644),
            ..Metadata::default()
        },
    )
}

#[test]
fn files_that_change_or_vanish_are_reported_not_fatal() {
    let fx = Fixture::new();
    let root = fx.path("flaky");
    write(&root.join("grown.txt"), b"much longer than three bytes");
    let (vault, _) = fx.vault("vault");
    let out = vault
        .backup(
            &SourceSpec::Custom(Arc::new(FlakySource { root: root.clone() })),
            "rp",
            None,
            &[],
            no_progress,
            CancelToken::new(),
        )
        .unwrap();
    let w = out.warnings.join("\n");
    assert!(
        w.contains("file changed during backup") && w.contains("grown.txt"),
        "{w}"
    );
    assert!(
        w.contains("file vanished during backup") && w.contains("vanished.txt"),
        "{w}"
    );
    assert!(verify(&vault, false).is_ok());
}

#[test]
fn disk_image_is_backed_up_as_one_stream() {
    let fx = Fixture::new();
    let img = fx.path("images/disk.img");
    write(&img, &Rng(21).bytes(1024 * 1024 + 5));
    let (vault, _) = fx.vault("vault");
    let out = vault
        .backup(
            &SourceSpec::Stream(img.clone()),
            "rp-img",
            None,
            &[],
            no_progress,
            CancelToken::new(),
        )
        .unwrap();
    assert_eq!(out.files, 1);
    let again = vault
        .backup(
            &SourceSpec::Stream(img.clone()),
            "rp-img2",
            Some(&out.snapshot),
            &[],
            no_progress,
            CancelToken::new(),
        )
        .unwrap();
    assert_eq!(again.bytes_added, 0);
    let target = fx.path("t");
    restore(&vault, &again.snapshot, &target, &RestoreOptions::default()).unwrap();
    assert_eq!(
        fs::read(target.join("disk.img")).unwrap(),
        fs::read(&img).unwrap()
    );
}

#[test]
fn progress_is_reported_and_cancel_leaves_no_recovery_point() {
    let fx = Fixture::new();
    let src = fx.path("src");
    for i in 0..6 {
        write(
            &src.join(format!("f{i}.bin")),
            &Rng(30 + i).bytes(1024 * 1024),
        );
    }
    let (vault, _) = fx.vault("vault");
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let s2 = seen.clone();
    let out = vault
        .backup(
            &SourceSpec::Directory(src.clone()),
            "rp-1",
            None,
            &["daily".to_string()],
            move |p: &Progress| s2.lock().unwrap().push(p.clone()),
            CancelToken::new(),
        )
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    let last = seen.last().unwrap();
    assert_eq!(last.phase, Phase::Done);
    assert_eq!(last.bytes_total, Some(6 * 1024 * 1024));
    assert!(last.bytes_done >= 6 * 1024 * 1024, "{last:?}");
    assert_eq!(last.files_total, Some(6));
    assert_eq!(last.files_done, 6);
    assert_eq!(
        vault.list_snapshots().unwrap()[0].tags,
        vec!["daily".to_string()]
    );

    // A restore reports files and bytes too.
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let s3 = seen.clone();
    vault
        .restore(
            &out.snapshot,
            &fx.path("t-progress"),
            &RestoreOptions::default(),
            move |p: &Progress| s3.lock().unwrap().push(p.clone()),
            CancelToken::new(),
        )
        .unwrap();
    let last = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(last.phase, Phase::Done);
    assert_eq!(last.files_total, Some(6));
    assert_eq!(last.files_done, 6);
    assert_eq!(last.bytes_done, 6 * 1024 * 1024);
    assert_eq!(last.percent(), Some(100.0));

    // Cancel once some bytes went through.
    let src2 = fx.path("src2");
    for i in 0..6 {
        write(
            &src2.join(format!("g{i}.bin")),
            &Rng(60 + i).bytes(1024 * 1024),
        );
    }
    let cancel = CancelToken::new();
    let c2 = cancel.clone();
    let err = vault
        .backup(
            &SourceSpec::Directory(src2),
            "rp-cancelled",
            Some(&out.snapshot),
            &[],
            move |p: &Progress| {
                if p.bytes_done > 512 * 1024 {
                    c2.cancel();
                }
            },
            cancel,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert_eq!(vault.find_recovery_point("rp-cancelled").unwrap(), None);
    assert!(verify(&vault, true).is_ok());

    // Cancel a restore midway: it ends cleanly (done already, or cancelled), never a crash.
    let cancel = CancelToken::new();
    let c3 = cancel.clone();
    let r = vault.restore(
        &out.snapshot,
        &fx.path("t-mid"),
        &RestoreOptions::default(),
        move |p: &Progress| {
            if p.phase == Phase::Transferring && p.bytes_done > 0 {
                c3.cancel();
            }
        },
        cancel,
    );
    assert!(matches!(r, Ok(_) | Err(Error::Cancelled)), "{r:?}");

    // Cancel a restore.
    let cancel = CancelToken::new();
    cancel.cancel();
    let err = vault
        .restore(
            &out.snapshot,
            &fx.path("t"),
            &RestoreOptions::default(),
            no_progress,
            cancel,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_entry_points_run_on_different_vaults_concurrently() {
    let fx = Fixture::new();
    let src = fx.path("src");
    make_tree(&src, 4);
    let (a, _) = fx.vault("a");
    let (b, _) = fx.vault("b");
    let ticks = Arc::new(AtomicU64::new(0));
    let t1 = ticks.clone();
    let fa = a.backup_async(
        SourceSpec::Directory(src.clone()),
        "rp-a".into(),
        None,
        vec![],
        move |_: &Progress| {
            t1.fetch_add(1, Ordering::Relaxed);
        },
        CancelToken::new(),
    );
    let fb = b.backup_async(
        SourceSpec::Directory(src.clone()),
        "rp-b".into(),
        None,
        vec![],
        no_progress,
        CancelToken::new(),
    );
    let (ra, rb) = tokio::join!(fa, fb);
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ticks.load(Ordering::Relaxed) > 0);
    let target = fx.path("t");
    b.restore_async(
        rb.snapshot,
        target.clone(),
        RestoreOptions::default(),
        no_progress,
        CancelToken::new(),
    )
    .await
    .unwrap();
    assert_same_tree(&src, &target);
    assert!(
        a.verify_async(false, no_progress, CancelToken::new())
            .await
            .unwrap()
            .is_ok()
    );
    a.delete_async(ra.snapshot).await.unwrap();
    assert!(a.list_snapshots_async().await.unwrap().is_empty());
}

// ---------- restic interoperability ----------

#[test]
fn restic_opens_a_vault_with_the_exported_key() {
    if std::process::Command::new("restic")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: the `restic` binary is not installed (apt-get install restic)");
        return;
    }
    let fx = Fixture::new();
    let src = fx.path("src");
    make_tree(&src, 5);
    let (vault, sealed) = fx.vault("vault");
    let out = backup(&vault, &src, "rp-restic", None);
    let key = VaultRepo::export_key(vault.location().clone(), &sealed, &fx.master).unwrap();
    // A second export reuses the key file.
    let again = VaultRepo::export_key(vault.location().clone(), &sealed, &fx.master).unwrap();
    assert_eq!(again.password, key.password);
    assert_eq!(fs::read_dir(fx.path("vault/keys")).unwrap().count(), 1);
    let restic = |args: &[&str]| {
        let o = std::process::Command::new("restic")
            .args(["-r", &key.repository, "--no-cache"])
            .args(args)
            .env("RESTIC_PASSWORD", &key.password)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "restic {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let snaps = restic(&["snapshots", "--json"]);
    assert!(snaps.contains(&out.snapshot.0), "{snaps}");
    assert!(snaps.contains("coffer-rp:rp-restic"), "{snaps}");
    restic(&["check", "--read-data"]);
    let target = fx.path("restic-restore");
    restic(&[
        "restore",
        &out.snapshot.0,
        "--target",
        target.to_str().unwrap(),
    ]);
    let target = target.join(src.strip_prefix("/").unwrap());
    // restic restores file contents, modes and link targets as Coffer does.
    let strip = |m: BTreeMap<PathBuf, String>| -> BTreeMap<PathBuf, String> {
        m.into_iter()
            .map(|(k, v)| {
                (
                    k,
                    v.split(" owner=")
                        .next()
                        .unwrap()
                        .split(" mtime=")
                        .next()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect()
    };
    assert_eq!(strip(manifest(&src)), strip(manifest(&target)));
}

// ---------- crash safety ----------

const CRASH_ENV: &str = "COFFER_ENGINE_CRASH_CHILD";

/// Not a test on its own: the body of the child process that the crash test kills.
#[test]
fn crash_child_process() {
    let Ok(dir) = std::env::var(CRASH_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let master = MasterKey::load_or_create(&dir.join("master.key")).unwrap();
    let sealed = SealedVaultKey::from_string(fs::read_to_string(dir.join("sealed")).unwrap());
    let vault = VaultRepo::open(VaultLocation::local(dir.join("vault")), &sealed, &master).unwrap();
    let op = std::env::var("COFFER_ENGINE_CRASH_OP").unwrap();
    fs::write(dir.join("child-started"), b"").unwrap();
    match op.as_str() {
        "backup" => {
            vault
                .backup(
                    &SourceSpec::Directory(dir.join("src")),
                    "rp-crash",
                    None,
                    &[],
                    no_progress,
                    CancelToken::new(),
                )
                .unwrap();
        }
        "copy" => {
            let sealed_b =
                SealedVaultKey::from_string(fs::read_to_string(dir.join("sealed-b")).unwrap());
            let b = VaultRepo::open(
                VaultLocation::local(dir.join("vault-b")),
                &sealed_b,
                &master,
            )
            .unwrap();
            let snap = SnapshotRef(fs::read_to_string(dir.join("snap")).unwrap());
            vault
                .copy_to(&b, &snap, "rp-copy", no_progress, CancelToken::new())
                .unwrap();
        }
        "delete" => {
            let snap = SnapshotRef(fs::read_to_string(dir.join("snap-del")).unwrap());
            vault.delete(&snap).unwrap();
        }
        "restore" => {
            let snap = SnapshotRef(fs::read_to_string(dir.join("snap-restore")).unwrap());
            vault
                .restore(
                    &snap,
                    &dir.join("t-resume"),
                    &RestoreOptions {
                        resume_id: Some(RESUME_ID.into()),
                        ..Default::default()
                    },
                    no_progress,
                    CancelToken::new(),
                )
                .unwrap();
        }
        _ => unreachable!(),
    }
    fs::write(dir.join("child-finished"), b"").unwrap();
}

/// Run the child doing `op` and kill it (SIGKILL) as soon as it starts writing into `vault`: a
/// pack (or index) file half written in the vault's temporary directory, or a new pack in place.
fn run_child_and_kill(dir: &Path, op: &str, vault: &Path) -> bool {
    let initial = packs(vault).len();
    let snapshots = |v: &Path| fs::read_dir(v.join("snapshots")).map_or(0, |d| d.count());
    let initial_snaps = snapshots(vault);
    run_child_and_kill_when(dir, op, &|| {
        fs::read_dir(vault.join(".coffer-tmp")).is_ok_and(|mut d| d.next().is_some())
            || packs(vault).len() != initial
            || snapshots(vault) != initial_snaps
    })
}

/// Run the child doing `op` and kill it (SIGKILL) as soon as `ready` says so.
fn run_child_and_kill_when(dir: &Path, op: &str, ready: &dyn Fn() -> bool) -> bool {
    let exe = std::env::current_exe().unwrap();
    let _ = fs::remove_file(dir.join("child-finished"));
    let mut child = std::process::Command::new(exe)
        .args([
            "--exact",
            "crash_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_ENV, dir)
        .env("COFFER_ENGINE_CRASH_OP", op)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ready() && start.elapsed() < Duration::from_secs(120) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
    !dir.join("child-finished").exists()
}

#[test]
fn a_process_killed_mid_backup_copy_or_delete_leaves_a_valid_vault() {
    let fx = Fixture::new();
    let dir = fx.dir.clone();
    // Enough data that the backup takes a while: incompressible files.
    for i in 0..6 {
        write(
            &dir.join(format!("src/f{i}.bin")),
            &Rng(100 + i).bytes(2 * 1024 * 1024),
        );
    }
    let (vault, sealed) = fx.vault("vault");
    fs::write(dir.join("sealed"), sealed.as_str()).unwrap();

    let killed = run_child_and_kill(&dir, "backup", &dir.join("vault"));
    assert!(
        killed,
        "the child finished before it could be killed; grow the data"
    );
    let report = verify(&vault, true);
    assert!(report.is_ok(), "{report:?}");
    // No half-made recovery point: either none, or (killed after the snapshot was renamed into
    // place) a complete one.
    if let Some(snap) = vault.find_recovery_point("rp-crash").unwrap() {
        let t = dir.join("t-crash");
        restore(&vault, &snap, &t, &RestoreOptions::default()).unwrap();
        assert_same_tree(&dir.join("src"), &t);
        vault.delete(&snap).unwrap();
    }
    assert!(vault.list_snapshots().unwrap().is_empty());

    // The vault keeps working: a full backup, then a copy killed midway.
    let out = backup(&vault, &dir.join("src"), "rp-after", None);
    let (b, sealed_b) = VaultRepo::create_like(
        VaultLocation::local(dir.join("vault-b")),
        &fx.master,
        &vault,
    )
    .unwrap();
    fs::write(dir.join("sealed-b"), sealed_b.as_str()).unwrap();
    fs::write(dir.join("snap"), &out.snapshot.0).unwrap();
    let killed = run_child_and_kill(&dir, "copy", &dir.join("vault-b"));
    eprintln!("copy child killed before finishing: {killed}");
    let report = verify(&b, true);
    assert!(report.is_ok(), "{report:?}");
    if let Some(snap) = b.find_recovery_point("rp-copy").unwrap() {
        let t = dir.join("t-copy");
        restore(&b, &snap, &t, &RestoreOptions::default()).unwrap();
        assert_same_tree(&dir.join("src"), &t);
    } else {
        assert!(killed);
    }
    // A delete killed once the snapshot is gone, i.e. during the prune.
    let other = dir.join("src-other");
    write(&other.join("o.bin"), &Rng(300).bytes(1024 * 1024));
    let keep = backup(&vault, &other, "rp-keep", None);
    fs::write(dir.join("snap-del"), &out.snapshot.0).unwrap();
    let killed = run_child_and_kill(&dir, "delete", &dir.join("vault"));
    eprintln!("delete child killed before finishing: {killed}");
    let report = verify(&vault, true);
    assert!(report.is_ok(), "{report:?}");
    let left: Vec<_> = vault
        .list_snapshots()
        .unwrap()
        .into_iter()
        .map(|i| i.snapshot)
        .collect();
    assert!(left.contains(&keep.snapshot), "{left:?}");
    let t = dir.join("t-keep");
    restore(&vault, &keep.snapshot, &t, &RestoreOptions::default()).unwrap();
    assert_same_tree(&other, &t);
    // If the delete got as far as removing the snapshot, back the source up again.
    let out = if left.contains(&out.snapshot) {
        out
    } else {
        backup(&vault, &dir.join("src"), "rp-again", None)
    };

    // Prune clears what the dead processes left behind.
    vault.prune().unwrap();
    let report = verify(&vault, true);
    assert!(report.is_ok() && report.warnings.is_empty(), "{report:?}");
    let target = dir.join("t");
    restore(&vault, &out.snapshot, &target, &RestoreOptions::default()).unwrap();
    assert_same_tree(&dir.join("src"), &target);
}

const RESUME_ID: &str = "job-7f3a";

/// Bytes of regular files under `root`, and whether an entry other than the claim is there.
fn restored_so_far(root: &Path) -> (u64, bool) {
    if !root.is_dir() {
        return (0, false);
    }
    let claim = format!(".coffer-restore-{RESUME_ID}");
    let mut bytes = 0;
    let mut other = false;
    for p in walk(root) {
        if p.file_name() == Some(OsStr::new(&claim)) {
            continue;
        }
        other = true;
        if let Ok(m) = fs::symlink_metadata(&p)
            && m.is_file()
        {
            bytes += m.len();
        }
    }
    (bytes, other)
}

#[test]
fn a_restore_killed_midway_finishes_when_run_again_with_its_id() {
    let fx = Fixture::new();
    let dir = fx.dir.clone();
    let src = dir.join("src");
    for i in 0..16 {
        write(
            &src.join(format!("d{}/f{i}.bin", i % 3)),
            &Rng(500 + i).bytes(1024 * 1024 + i as usize),
        );
    }
    write(&src.join("small.txt"), b"small");
    let (vault, sealed) = fx.vault("vault");
    fs::write(dir.join("sealed"), sealed.as_str()).unwrap();
    let out = backup(&vault, &src, "rp-r", None);
    fs::write(dir.join("snap-restore"), &out.snapshot.0).unwrap();
    let target = dir.join("t-resume");
    let claim = target.join(format!(".coffer-restore-{RESUME_ID}"));

    // Kill the restoring process once it has written some content, before it is done.
    let killed = run_child_and_kill_when(&dir, "restore", &|| restored_so_far(&target).0 > 0);
    assert!(
        killed,
        "the child finished before it could be killed; grow the data"
    );
    let (bytes, _) = restored_so_far(&target);
    assert!(bytes < 16 * 1024 * 1024, "killed after {bytes} bytes");
    assert!(claim.is_file(), "the claim is written before any content");

    // Without its id the partial target is somebody's directory: refused, and left alone.
    let again = |id: Option<&str>| {
        restore(
            &vault,
            &out.snapshot,
            &target,
            &RestoreOptions {
                resume_id: id.map(str::to_string),
                ..Default::default()
            },
        )
    };
    for id in [None, Some("another-job")] {
        let err = again(id).unwrap_err();
        assert!(matches!(err, Error::TargetNotEmpty(_)), "{id:?}: {err}");
        assert!(claim.is_file());
    }
    // With its id the restore finishes over its own partial files.
    let r = again(Some(RESUME_ID)).unwrap();
    assert!(r.files_restored > 0, "{r:?}");
    assert!(claim.is_file(), "the caller releases the claim");
    coffer_engine::release_restore_claim(&target, RESUME_ID).unwrap();
    assert!(!claim.exists());
    assert_same_tree(&src, &target);
    coffer_engine::release_restore_claim(&target, RESUME_ID).unwrap();

    // A claim is only taken in an empty target: a user's directory is never treated as one.
    let users = dir.join("users");
    write(&users.join("mine.txt"), b"mine");
    let err = restore(
        &vault,
        &out.snapshot,
        &users,
        &RestoreOptions {
            resume_id: Some(RESUME_ID.into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::TargetNotEmpty(_)), "{err}");
    assert!(!users.join(format!(".coffer-restore-{RESUME_ID}")).exists());

    // A restore that fails removes its claim: the next one into that target starts afresh.
    let failed = dir.join("failed");
    let err = restore(
        &vault,
        &out.snapshot,
        &failed,
        &RestoreOptions {
            paths: vec!["nope".into()],
            resume_id: Some(RESUME_ID.into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::PathNotInRecoveryPoint(_)), "{err}");
    assert_eq!(fs::read_dir(&failed).unwrap().count(), 0);

    // Ids that could name another path are refused.
    let err = restore(
        &vault,
        &out.snapshot,
        &dir.join("z"),
        &RestoreOptions {
            resume_id: Some("../x".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
}

/// A source that records entries whose names try to escape a restore target.
struct EvilSource {
    root: PathBuf,
    name: &'static [u8],
}

impl Source for EvilSource {
    fn snapshot_path(&self) -> PathBuf {
        self.root.clone()
    }
    fn check(&self) -> coffer_engine::Result<()> {
        Ok(())
    }
    fn totals(&self) -> coffer_engine::Result<Option<(u64, u64)>> {
        Ok(None)
    }
    fn entries(&self) -> Box<dyn Iterator<Item = coffer_engine::Result<SourceEntry>> + Send> {
        let dir = SourceEntry {
            path: self.root.clone(),
            node: node(self.root.file_name().unwrap(), true, 0),
            open: None,
            watch_changes: false,
        };
        let evil = SourceEntry {
            path: self.root.join("evil"),
            node: node(OsStr::from_bytes(self.name), false, 6),
            open: Some(Box::new(|| {
                Ok(Box::new(&b"pwned\n"[..]) as Box<dyn std::io::Read + Send>)
            })),
            watch_changes: false,
        };
        Box::new(vec![Ok(dir), Ok(evil)].into_iter())
    }
}

#[test]
fn restore_refuses_names_that_escape_the_target() {
    let fx = Fixture::new();
    let (vault, _) = fx.vault("vault");
    for (i, name) in [&b".."[..], b"../../escaped", b"a/../../escaped"]
        .into_iter()
        .enumerate()
    {
        let out = vault
            .backup(
                &SourceSpec::Custom(Arc::new(EvilSource {
                    root: fx.path("evil-src"),
                    name,
                })),
                &format!("rp-{i}"),
                None,
                &[],
                no_progress,
                CancelToken::new(),
            )
            .unwrap();
        let target = fx.path(&format!("deep/target-{i}"));
        let err = restore(&vault, &out.snapshot, &target, &RestoreOptions::default()).unwrap_err();
        assert!(matches!(err, Error::UnsafePath(_)), "{name:?}: {err}");
        assert!(!fx.path("escaped").exists() && !fx.path("deep/escaped").exists());
        assert_eq!(fs::read_dir(&target).unwrap().count(), 0, "nothing written");
    }
}

/// S3-compatible storage, run only with `--features s3` and an endpoint in the environment:
/// COFFER_TEST_S3_ENDPOINT, COFFER_TEST_S3_BUCKET (existing), COFFER_TEST_S3_ACCESS_KEY,
/// COFFER_TEST_S3_SECRET_KEY, optionally COFFER_TEST_S3_REGION. CI starts s3s-fs on
/// 127.0.0.1 for it (`.ci/s3`). Backup, incremental backup, reopen, restore, copy from a local
/// vault into the S3 vault and back out, delete, verify, and plain `restic` opening the S3
/// vault with the exported key.
#[cfg(feature = "s3")]
#[test]
fn s3_vault_round_trip_when_an_endpoint_is_configured() {
    let Ok(endpoint) = std::env::var("COFFER_TEST_S3_ENDPOINT") else {
        eprintln!("SKIPPED: set COFFER_TEST_S3_ENDPOINT (and _BUCKET, _ACCESS_KEY, _SECRET_KEY)");
        return;
    };
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let fx = Fixture::new();
    let src = fx.path("src");
    make_tree(&src, 8);
    let location = VaultLocation::S3 {
        endpoint,
        bucket: env("COFFER_TEST_S3_BUCKET"),
        root: format!("engine-test/{}", std::process::id()),
        region: std::env::var("COFFER_TEST_S3_REGION").unwrap_or_else(|_| "us-east-1".into()),
        access_key_id: env("COFFER_TEST_S3_ACCESS_KEY"),
        secret_access_key: env("COFFER_TEST_S3_SECRET_KEY"),
        cache_dir: Some(fx.path("cache")),
    };
    let (vault, sealed) = VaultRepo::create(location.clone(), &fx.master).unwrap();
    let out = backup(&vault, &src, "rp-s3", None);
    let again = backup(&vault, &src, "rp-s3-2", Some(&out.snapshot));
    assert_eq!(again.bytes_added, 0);
    let vault = VaultRepo::open(location.clone(), &sealed, &fx.master).unwrap();
    let target = fx.path("t");
    restore(&vault, &again.snapshot, &target, &RestoreOptions::default()).unwrap();
    assert_same_tree(&src, &target);

    // Copy a local vault's recovery point into the S3 vault, and the S3 one out to a local
    // vault; both restore byte for byte.
    let other = fx.path("src-other");
    make_tree(&other, 9);
    let (local, sealed_local) = fx.vault("local");
    let local_out = backup(&local, &other, "rp-local", None);
    let into_s3 = local
        .copy_to(
            &vault,
            &local_out.snapshot,
            "rp-copied-in",
            no_progress,
            CancelToken::new(),
        )
        .unwrap();
    let from_s3 = vault
        .copy_to(
            &local,
            &out.snapshot,
            "rp-copied-out",
            no_progress,
            CancelToken::new(),
        )
        .unwrap();
    let vault = VaultRepo::open(location.clone(), &sealed, &fx.master).unwrap();
    let t = fx.path("t-copied-in");
    restore(&vault, &into_s3, &t, &RestoreOptions::default()).unwrap();
    assert_same_tree(&other, &t);
    let local = VaultRepo::open(local.location().clone(), &sealed_local, &fx.master).unwrap();
    let t = fx.path("t-copied-out");
    restore(&local, &from_s3, &t, &RestoreOptions::default()).unwrap();
    assert_same_tree(&src, &t);

    vault.delete(&out.snapshot).unwrap();
    let left: Vec<_> = vault
        .list_snapshots()
        .unwrap()
        .into_iter()
        .filter_map(|s| s.recovery_point_id)
        .collect();
    assert!(!left.contains(&"rp-s3".to_string()), "{left:?}");
    assert!(left.contains(&"rp-s3-2".to_string()), "{left:?}");
    assert!(verify(&vault, true).is_ok());

    // Plain restic opens the S3 vault with the exported key and the bucket's credentials.
    if std::process::Command::new("restic")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("restic part SKIPPED: the `restic` binary is not installed");
        return;
    }
    let key = VaultRepo::export_key(location, &sealed, &fx.master).unwrap();
    assert!(key.repository.starts_with("s3:http"), "{}", key.repository);
    let restic = |args: &[&str]| {
        let o = std::process::Command::new("restic")
            .args(["-r", &key.repository, "--no-cache"])
            .args(args)
            .env("RESTIC_PASSWORD", &key.password)
            .env("AWS_ACCESS_KEY_ID", env("COFFER_TEST_S3_ACCESS_KEY"))
            .env("AWS_SECRET_ACCESS_KEY", env("COFFER_TEST_S3_SECRET_KEY"))
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "restic {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let snaps: serde_json::Value = serde_json::from_str(&restic(&["snapshots", "--json"])).unwrap();
    let mut ids: Vec<&str> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut want = [again.snapshot.0.as_str(), into_s3.0.as_str()];
    want.sort_unstable();
    assert_eq!(
        ids, want,
        "the deleted point is gone, the others are listed"
    );
    // Not `restic check` here: against s3s-fs 0.14.1, restic's listing of the nested `data/`
    // prefix comes back empty (`restic list packs` prints nothing while the packs are there
    // and the engine's verify above read every one), so check would report them missing.
    // The local-vault test runs `restic check --read-data`.
    let t = fx.path("restic-restore");
    restic(&[
        "restore",
        &again.snapshot.0,
        "--target",
        t.to_str().unwrap(),
    ]);
    let restored = t.join(src.strip_prefix("/").unwrap());
    let contents = |root: &Path| -> BTreeMap<PathBuf, Vec<u8>> {
        walk(root)
            .into_iter()
            .filter(|p| fs::symlink_metadata(p).unwrap().is_file())
            .map(|p| {
                let data = fs::read(&p).unwrap();
                (p.strip_prefix(root).unwrap().to_path_buf(), data)
            })
            .collect()
    };
    assert_eq!(contents(&src), contents(&restored));
}

/// A catalogue built from the previous recovery point's catalogue equals the full one, and
/// reads only the directories on the way to what changed.
#[test]
fn an_incremental_catalogue_equals_the_full_one_and_reads_only_changed_trees() {
    let fx = Fixture::new();
    let src = fx.path("src");
    for d in 0..20 {
        for s in 0..3 {
            for f in 0..5 {
                let p = src.join(format!("d{d:02}/s{s}/f{f}.txt"));
                write(&p, format!("{d}-{s}-{f}").as_bytes());
            }
        }
    }
    write(&src.join("top.txt"), b"top");
    let (vault, _) = fx.vault("vault");
    let day1 = backup(&vault, &src, "day-1", None);
    let full1 = vault.catalog(&day1.snapshot, CancelToken::new()).unwrap();
    assert_eq!(full1.len(), 301);

    // One file changed deep down, one added in another directory, one removed.
    write(&src.join("d07/s1/f3.txt"), b"changed content");
    write(&src.join("d12/s0/new.txt"), b"new");
    fs::remove_file(src.join("d15/s2/f0.txt")).unwrap();
    let day2 = backup(&vault, &src, "day-2", Some(&day1.snapshot));

    let full2 = vault.catalog(&day2.snapshot, CancelToken::new()).unwrap();
    let scratch = vault
        .catalog_from(&day2.snapshot, None, CancelToken::new())
        .unwrap();
    assert_eq!(scratch.entries, full2);
    assert_eq!(scratch.files_reused, 0);
    // The root, 20 directories and 60 subdirectories.
    assert_eq!(scratch.trees_read, 81);

    let base = coffer_engine::CatalogBase {
        snapshot: day1.snapshot.clone(),
        entries: full1,
    };
    let inc = vault
        .catalog_from(&day2.snapshot, Some(&base), CancelToken::new())
        .unwrap();
    assert_eq!(inc.entries, full2, "the incremental catalogue differs");
    assert_eq!(inc.entries.len(), 301);
    let changed = inc
        .entries
        .iter()
        .find(|e| e.path == "d07/s1/f3.txt")
        .unwrap();
    assert_eq!(changed.size, 15);
    // Read: the root and the three changed directories with their changed subdirectory, in
    // both snapshots (4 trees each, 8 in all); the other 17 directories are reused whole,
    // and so are the unchanged subdirectories of the changed ones.
    assert_eq!(inc.trees_read, 2 * (1 + 3 + 3), "{inc:?}");
    // Read from the trees: top.txt and the files of the three changed subdirectories
    // (5 + 6 + 4); every other row comes from day 1's catalogue.
    assert_eq!(inc.files_reused, 301 - 16, "{inc:?}");
}
