//! S3-compatible buckets as resources: the objects of a bucket backed up as the files of a
//! recovery point, and restored into the same or another bucket (and prefix).
//!
//! A key `photos/2024/a.jpg` of bucket `b` is the file `/s3/b/photos/2024/a.jpg` of the
//! recovery point, so plain `restic` shows a bucket as a tree. The object's size and
//! LastModified are the file's size and mtime: an object whose size and LastModified equal the
//! parent recovery point's is taken from it without being downloaded (the incremental rule).
//! Content type, user metadata, tags (when the server keeps tags) and the ETag travel as
//! extended attributes (`s3.content-type`, `s3.meta.NAME`, `s3.tag.NAME`, `s3.etag`), read with
//! one HEAD (and one tagging GET) per object.
//!
//! A restic tree lists a directory's names sorted, directories among files, which is not the
//! order S3 lists keys in (`a-b` sorts before `a/c` in S3, after the directory `a` in a tree).
//! So the bucket is walked one prefix level at a time (ListObjectsV2 with delimiter `/`, in
//! pages of 1000), each level sorted on its own: memory holds the levels on the current path,
//! never the whole bucket. Keys a tree cannot hold (an empty, `.` or `..` component, a key
//! that is also a prefix of other keys, folder markers ending in `/`) are skipped with a
//! warning in the job's message.

use std::{
    io::{self, Read},
    path::{Path, PathBuf},
    sync::Arc,
};

use rustic_core::{
    IndexedFull, LsOptions, Repository,
    repofile::{Metadata, Node, NodeType, SnapshotFile},
};

use super::s3::{ObjectMeta, ObjectSummary, S3Client, S3Endpoint};
use crate::{
    Error, Phase, RestoreOutcome, Result,
    progress::ProgressSink,
    source::{OpenFn, Source, SourceEntry},
};

/// Where the recovery point of bucket `bucket` keeps its objects.
#[must_use]
pub fn bucket_snapshot_path(bucket: &str) -> PathBuf {
    PathBuf::from("/s3").join(bucket)
}

/// A bucket to back up.
pub struct BucketSource {
    bucket: String,
    client: Arc<S3Client>,
}

impl BucketSource {
    /// A source for `bucket` on `endpoint`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the HTTP client cannot be built.
    pub fn new(endpoint: &S3Endpoint, bucket: &str) -> Result<Self> {
        Ok(Self {
            bucket: bucket.to_string(),
            client: Arc::new(S3Client::new(endpoint)?),
        })
    }
}

/// One name of a level: an object, or a prefix (directory) below it.
enum Item {
    Object(ObjectSummary),
    Prefix(String),
}

/// One prefix level being walked: its items, sorted by name, and the next to hand out.
struct Level {
    items: std::vec::IntoIter<(String, Item)>,
}

/// The depth-first walk of a bucket in tree order.
struct Walk {
    bucket: String,
    client: Arc<S3Client>,
    root: PathBuf,
    stack: Vec<Level>,
    /// Keys skipped on the levels listed so far, not yet reported.
    skipped: std::collections::VecDeque<String>,
    failed: bool,
}

impl Walk {
    /// Lists the level `prefix` whole (page by page) and sorts it; a key that cannot be a
    /// file of a tree is reported.
    fn level(&self, prefix: &str) -> Result<(Level, Vec<String>)> {
        let mut items: Vec<(String, Item)> = Vec::new();
        let mut skipped = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let (objects, prefixes, next) =
                self.client
                    .list_level(&self.bucket, prefix, token.as_deref())?;
            for o in objects {
                let name = o.key[prefix.len()..].to_string();
                if name.is_empty() {
                    if o.size > 0 {
                        skipped.push(format!(
                            "s3://{}/{}: a folder marker with content",
                            self.bucket, o.key
                        ));
                    }
                    continue;
                }
                if name == "." || name == ".." {
                    skipped.push(format!(
                        "s3://{}/{}: `{name}` cannot be a file name",
                        self.bucket, o.key
                    ));
                    continue;
                }
                items.push((name, Item::Object(o)));
            }
            for p in prefixes {
                let name = p[prefix.len()..].trim_end_matches('/').to_string();
                if name.is_empty() || name == "." || name == ".." {
                    skipped.push(format!(
                        "s3://{}/{p}...: keys with an empty, `.` or `..` part are not backed up",
                        self.bucket
                    ));
                    continue;
                }
                items.push((name, Item::Prefix(p)));
            }
            token = next;
            if token.is_none() {
                break;
            }
        }
        items.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        // A key that is also a prefix: a tree cannot hold a file and a directory of one name.
        let mut kept: Vec<(String, Item)> = Vec::with_capacity(items.len());
        for (name, item) in items {
            if let Some((last, Item::Object(o))) = kept.last()
                && *last == name
                && matches!(item, Item::Prefix(_))
            {
                skipped.push(format!(
                    "s3://{}/{}: the key is also a prefix of other keys, which a recovery point cannot hold (the keys below it are kept)",
                    self.bucket, o.key
                ));
                kept.pop();
            }
            kept.push((name, item));
        }
        Ok((
            Level {
                items: kept.into_iter(),
            },
            skipped,
        ))
    }

    fn entry(&self, o: ObjectSummary) -> Result<SourceEntry> {
        let meta = self.client.head(&self.bucket, &o.key)?;
        let path = self.root.join(&o.key);
        let name = Path::new(&o.key)
            .file_name()
            .map(std::ffi::OsStr::to_os_string)
            .unwrap_or_default();
        let node_meta = Metadata {
            mode: Some(0o644),
            mtime: o.last_modified,
            size: o.size,
            links: 1,
            ..Metadata::default()
        };
        let mut node_meta = node_meta;
        // `rustic_core` does not export the attribute type; it is built through its serde form.
        node_meta.extended_attributes = serde_json::from_value(to_xattrs(&meta, &o.etag))
            .map_err(|e| Error::Engine(format!("object metadata: {e}")))?;
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), o.key.clone());
        let open: OpenFn = Box::new(move || -> io::Result<Box<dyn Read + Send>> {
            let resp = client
                .get(&bucket, &key)
                .map_err(|e| io::Error::other(e.to_string()))?;
            Ok(Box::new(resp))
        });
        Ok(SourceEntry {
            path,
            node: Node::new_node(&name, NodeType::File, node_meta),
            open: Some(open),
            watch_changes: false,
        })
    }
}

impl Iterator for Walk {
    type Item = Result<SourceEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(s) = self.skipped.pop_front() {
                return Some(Err(Error::InvalidInput(s)));
            }
            if self.failed {
                return None;
            }
            let top = self.stack.last_mut()?;
            let Some((_, item)) = top.items.next() else {
                self.stack.pop();
                continue;
            };
            match item {
                Item::Object(o) => return Some(self.entry(o)),
                Item::Prefix(p) => match self.level(&p) {
                    Ok((level, skipped)) => {
                        self.stack.push(level);
                        self.skipped.extend(skipped);
                    }
                    Err(e) => {
                        // A level that cannot be listed would silently lose its keys.
                        self.failed = true;
                        return Some(Err(e));
                    }
                },
            }
        }
    }
}

/// The extended attributes of an object, in `rustic_core`'s serde form (values in base64).
fn to_xattrs(meta: &ObjectMeta, etag: &str) -> serde_json::Value {
    use base64::Engine as _;
    let mut x = Vec::new();
    let mut push = |name: String, value: &str| {
        let value = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
        x.push(serde_json::json!({ "name": name, "value": value }));
    };
    if let Some(ct) = &meta.content_type {
        push("s3.content-type".into(), ct);
    }
    if !etag.is_empty() {
        push("s3.etag".into(), etag);
    }
    for (k, v) in &meta.user_metadata {
        push(format!("s3.meta.{k}"), v);
    }
    for (k, v) in &meta.tags {
        push(format!("s3.tag.{k}"), v);
    }
    serde_json::Value::Array(x)
}

fn from_xattrs(node: &Node) -> ObjectMeta {
    let mut meta = ObjectMeta::default();
    for a in &node.meta.extended_attributes {
        let v = String::from_utf8_lossy(a.value.as_deref().unwrap_or_default()).into_owned();
        if a.name == "s3.content-type" {
            meta.content_type = Some(v);
        } else if let Some(k) = a.name.strip_prefix("s3.meta.") {
            meta.user_metadata.insert(k.to_string(), v);
        } else if let Some(k) = a.name.strip_prefix("s3.tag.") {
            meta.tags.insert(k.to_string(), v);
        }
    }
    meta
}

impl Source for BucketSource {
    fn snapshot_path(&self) -> PathBuf {
        bucket_snapshot_path(&self.bucket)
    }

    fn check(&self) -> Result<()> {
        self.client.check_bucket(&self.bucket)
    }

    fn totals(&self) -> Result<Option<(u64, u64)>> {
        Ok(None)
    }

    fn entries(&self) -> Box<dyn Iterator<Item = Result<SourceEntry>> + Send> {
        let mut walk = Walk {
            bucket: self.bucket.clone(),
            client: self.client.clone(),
            root: self.snapshot_path(),
            stack: Vec::new(),
            skipped: Default::default(),
            failed: false,
        };
        match walk.level("") {
            Ok((level, skipped)) => {
                walk.stack.push(level);
                walk.skipped.extend(skipped);
                Box::new(walk)
            }
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }
}

/// Where a bucket restore writes.
#[derive(Clone, Debug)]
pub struct BucketTarget {
    /// The server and credentials.
    pub endpoint: S3Endpoint,
    /// The bucket written into.
    pub bucket: String,
    /// Prepended to every restored key (`""`: keys as they were).
    pub prefix: String,
    /// Create the bucket first (it must not exist yet).
    pub create: bool,
    /// Keys (or key prefixes ending in `/`) to restore; empty: all of them.
    pub keys: Vec<String>,
}

/// Restores the objects of a bucket's recovery point into `target`.
pub(crate) fn restore_to_bucket<S: IndexedFull + Sync>(
    repo: &Repository<S>,
    snap: &SnapshotFile,
    target: &BucketTarget,
    sink: &Arc<ProgressSink>,
) -> Result<RestoreOutcome> {
    let root = snap
        .paths
        .iter()
        .next()
        .cloned()
        .ok_or_else(|| Error::VaultDamaged("recovery point records no source path".into()))?;
    let client = S3Client::new(&target.endpoint)?;
    let exists = client.bucket_exists(&target.bucket)?;
    match (target.create, exists) {
        (true, true) => {
            return Err(Error::InvalidInput(format!(
                "bucket {} already exists; set NewBucket to false to restore into it",
                target.bucket
            )));
        }
        (true, false) => client.create_bucket(&target.bucket)?,
        (false, false) => {
            return Err(Error::InvalidInput(format!(
                "bucket {} does not exist; create it, or set NewBucket to true so that Coffer creates it",
                target.bucket
            )));
        }
        (false, true) => {}
    }
    let selections = if target.keys.is_empty() {
        vec![String::new()]
    } else {
        target.keys.clone()
    };
    sink.phase(Phase::Transferring, "restoring objects");
    let mut outcome = RestoreOutcome::default();
    for sel in &selections {
        let rel = sel.trim_matches('/');
        let snap_path = if rel.is_empty() {
            root.clone()
        } else {
            format!("{}/{rel}", root.trim_end_matches('/'))
        };
        let node = repo
            .node_from_snapshot_and_path(snap, &snap_path)
            .map_err(|_| Error::PathNotInRecoveryPoint(sel.clone()))?;
        let nodes: Box<dyn Iterator<Item = rustic_core::RusticResult<(PathBuf, Node)>>> =
            if node.is_dir() {
                Box::new(
                    repo.ls(&node, &LsOptions::default())
                        .map_err(|e| Error::from_rustic("list recovery point", &e))?,
                )
            } else {
                Box::new(std::iter::once(Ok((PathBuf::new(), node.clone()))))
            };
        for item in nodes {
            sink.check_cancel()?;
            let (path, node) = item.map_err(|e| Error::from_rustic("list recovery point", &e))?;
            if !node.is_file() {
                continue;
            }
            let rel_key = match (rel.is_empty(), path.as_os_str().is_empty()) {
                (_, true) => rel.to_string(),
                (true, false) => path.to_string_lossy().into_owned(),
                (false, false) => format!("{rel}/{}", path.to_string_lossy()),
            };
            let key = format!("{}{rel_key}", target.prefix);
            put_object(repo, &client, &target.bucket, &key, &node, sink)?;
            outcome.files_restored += 1;
            outcome.bytes_restored += node.meta.size;
            sink.update(false, |p| {
                p.files_done += 1;
                p.bytes_done += node.meta.size;
            });
        }
    }
    Ok(outcome)
}

/// Streams one object's content from the vault into a PUT, through a pipe, so memory holds
/// one blob at a time whatever the object's size.
fn put_object<S: IndexedFull + Sync>(
    repo: &Repository<S>,
    client: &S3Client,
    bucket: &str,
    key: &str,
    node: &Node,
    sink: &ProgressSink,
) -> Result<()> {
    let (reader, mut writer) = io::pipe().map_err(|e| Error::io("pipe", Path::new(key), e))?;
    let meta = from_xattrs(node);
    std::thread::scope(|s| {
        let dump = s.spawn(move || repo.dump(node, &mut writer));
        let put = client.put(bucket, key, &meta, reader, node.meta.size);
        let dumped = dump
            .join()
            .map_err(|_| Error::Engine(format!("restoring {key} failed")))?;
        if let Err(e) = dumped {
            if sink.cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            if put.is_ok() {
                return Err(Error::from_rustic("restore", &e));
            }
        }
        put
    })
}
