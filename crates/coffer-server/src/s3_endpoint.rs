//! Coffer's S3-compatible read endpoint for backup access points.
//!
//! A backup access point serves one recovery point read-only, as AWS serves it through an S3
//! access point: the access point's alias (`NAME-XXXXXXXXXXXX-s3alias`, shown as
//! `AccessPointAlias` in its metadata) is the bucket name, the recovery point's files are the
//! objects. It shares Coffer's listener: a request whose SigV4 credential scope names the
//! service `s3` comes here (as one naming `sts` goes to STS), in path-style addressing
//! (`http://HOST:PORT/ALIAS/KEY`). The `s3s` crate speaks the protocol (routing, XML, ranges,
//! and SigV4 checked against Coffer's own credentials); this module answers ListObjectsV2,
//! ListObjects, HeadBucket, HeadObject and GetObject (ranged too) by reading the snapshot
//! through the engine (`coffer_engine::SnapshotReader`), blob by blob, never restoring to
//! disk. Every other S3 operation answers NotImplemented; nothing can be written.
//!
//! Who may read: the access point's owning account, unless its AccessPointPolicy denies it;
//! another account only when the policy grants it (see `coffer_core::ServedAccessPoint`).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use coffer_api::sigv4::{AuthMode, SignedParts};
use coffer_core::{Coffer, ServedAccessPoint};
use coffer_engine::{CatalogEntry, OpenedFile, SnapshotReader};
use http::{Request, Response};
use hyper::body::Incoming;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

/// The bytes read from the vault per piece of a streamed object.
const CHUNK: usize = 1 << 20;
/// How many opened recovery points are kept for the next request (each holds its vault's
/// index and file list in memory).
const KEPT_READERS: usize = 16;
/// S3's page size when MaxKeys is not given, and its largest.
const MAX_KEYS: i32 = 1000;

/// Whether `req` is for the S3 endpoint: its SigV4 credential scope names service `s3`.
pub fn is_s3<B>(req: &Request<B>) -> bool {
    let signed = SignedParts {
        method: req.method().as_str(),
        raw_path: req.uri().path(),
        raw_query: req.uri().query().unwrap_or(""),
        headers: req.headers(),
        body: &[],
    };
    coffer_api::sigv4::scope_service(&signed).as_deref() == Some("s3")
}

/// The endpoint: the `s3s` service over Coffer's access points.
pub struct S3Endpoint {
    service: S3Service,
}

impl S3Endpoint {
    pub fn new(coffer: Coffer, auth: &AuthMode) -> Self {
        let (keys, default_account) = match auth {
            AuthMode::SigV4(map) => (Some(map.clone()), None),
            AuthMode::None { default_account } => (None, Some(default_account.clone())),
        };
        let points = AccessPoints {
            coffer,
            keys: keys.clone(),
            default_account,
            readers: Mutex::default(),
        };
        let mut builder = S3ServiceBuilder::new(points);
        if let Some(keys) = keys {
            builder.set_auth(CofferKeys(keys));
        }
        S3Endpoint {
            service: builder.build(),
        }
    }

    /// Answers one S3 request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<s3s::Body> {
        match self.service.call(req.map(s3s::Body::from)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = ?e, "an S3 request could not be answered");
                let mut r = Response::new(s3s::Body::empty());
                *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                r
            }
        }
    }
}

/// Coffer's configured credentials, as `s3s` checks signatures with them.
struct CofferKeys(Arc<HashMap<String, coffer_api::sigv4::Credential>>);

#[async_trait::async_trait]
impl s3s::auth::S3Auth for CofferKeys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<s3s::auth::SecretKey> {
        match self.0.get(access_key) {
            Some(c) => Ok(c.secret_access_key.clone().into()),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in Coffer's credentials."
            )),
        }
    }
}

struct AccessPoints {
    coffer: Coffer,
    keys: Option<Arc<HashMap<String, coffer_api::sigv4::Credential>>>,
    default_account: Option<String>,
    /// Opened recovery points by snapshot id (a snapshot never changes).
    readers: Mutex<HashMap<String, SnapshotReader>>,
}

fn internal(e: impl std::fmt::Display) -> S3Error {
    tracing::warn!(error = %e, "reading a recovery point through an access point failed");
    s3_error!(
        InternalError,
        "Coffer could not read the recovery point; the server log has the cause."
    )
}

impl AccessPoints {
    /// The caller's account: the signing key's, or the default one when authentication is off.
    fn account_of<T>(&self, req: &S3Request<T>) -> S3Result<String> {
        match (&self.keys, &req.credentials) {
            (Some(keys), Some(c)) => keys
                .get(&c.access_key)
                .map(|k| k.account_id.clone())
                .ok_or_else(|| s3_error!(InvalidAccessKeyId)),
            (Some(_), None) => Err(s3_error!(AccessDenied, "Signature is required.")),
            (None, _) => Ok(self.default_account.clone().unwrap_or_default()),
        }
    }

    /// The access point `bucket` names, once the caller may do `action` on `resource`.
    async fn authorise<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        action: &str,
        key: Option<&str>,
    ) -> S3Result<(ServedAccessPoint, SnapshotReader)> {
        let account = self.account_of(req)?;
        let served = self
            .coffer
            .served_access_point(bucket)
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                s3_error!(
                    NoSuchBucket,
                    "No backup access point has the alias '{bucket}'."
                )
            })?;
        let resource = match key {
            Some(k) => format!("arn:aws:s3:::{bucket}/{k}"),
            None => format!("arn:aws:s3:::{bucket}"),
        };
        if !served.allows(&account, action, &resource) {
            return Err(s3_error!(
                AccessDenied,
                "Account {account} may not perform {action} on {resource}: the access point belongs to another account and its policy does not grant this."
            ));
        }
        let reader = self.reader(&served).await?;
        Ok((served, reader))
    }

    async fn reader(&self, served: &ServedAccessPoint) -> S3Result<SnapshotReader> {
        let id = served.snapshot.0.clone();
        if let Some(r) = self.kept().get(&id) {
            return Ok(r.clone());
        }
        let reader = served
            .repo
            .open_reader_async(served.snapshot.clone())
            .await
            .map_err(internal)?;
        let mut kept = self.kept();
        if kept.len() >= KEPT_READERS
            && let Some(k) = kept.keys().next().cloned()
        {
            kept.remove(&k);
        }
        kept.insert(id, reader.clone());
        Ok(reader)
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<String, SnapshotReader>> {
        self.readers.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn open(&self, reader: &SnapshotReader, key: &str) -> S3Result<OpenedFile> {
        let (r, k) = (reader.clone(), key.to_string());
        tokio::task::spawn_blocking(move || r.open(&k))
            .await
            .map_err(internal)?
            .map_err(internal)?
            .ok_or_else(|| s3_error!(NoSuchKey, "The recovery point holds no file '{key}'."))
    }
}

fn e_tag(entry: &CatalogEntry) -> ETag {
    ETag::Strong(entry.content_hash.chars().take(32).collect())
}

fn last_modified(entry: &CatalogEntry) -> Option<Timestamp> {
    let ms = u64::try_from(entry.modified_ms?).ok()?;
    Some(Timestamp::from(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
    ))
}

fn size_of(entry: &CatalogEntry) -> i64 {
    i64::try_from(entry.size).unwrap_or(i64::MAX)
}

/// A streamed object body: pieces read from the vault on the blocking pool, two ahead at
/// most, until the range is done or the client goes away.
struct Pieces(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_core::Stream for Pieces {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

fn stream_range(reader: SnapshotReader, file: OpenedFile, start: u64, end: u64) -> StreamingBlob {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let mut at = start;
        while at < end {
            let want = usize::try_from(end - at).unwrap_or(CHUNK).min(CHUNK);
            let piece = match reader.read_at(&file, at, want) {
                Ok(b) if b.is_empty() => Err(std::io::Error::other(
                    "the recovery point's file ended before its recorded size",
                )),
                Ok(b) => Ok(b),
                Err(e) => {
                    tracing::warn!(error = %e, "reading a recovery point through an access point failed");
                    Err(std::io::Error::other("reading the recovery point failed"))
                }
            };
            let failed = piece.is_err();
            if let Ok(b) = &piece {
                at += b.len() as u64;
            }
            if tx.blocking_send(piece).is_err() || failed {
                return;
            }
        }
    });
    StreamingBlob::wrap(Pieces(rx))
}

/// What AWS's `EncodingType=url` escapes in keys: everything but unreserved characters and `/`.
const KEY_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// One page of a listing: the keys after `after` under `prefix`, rolled up at `delimiter`.
struct Listing {
    objects: Vec<CatalogEntry>,
    prefixes: Vec<String>,
    next: Option<String>,
}

fn list(
    files: &[CatalogEntry],
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
) -> Listing {
    let mut out = Listing {
        objects: Vec::new(),
        prefixes: Vec::new(),
        next: None,
    };
    let mut last: Option<String> = None;
    for f in files {
        let Some(rest) = f.path.strip_prefix(prefix) else {
            continue;
        };
        if let Some(a) = after
            && (f.path.as_str() <= a
                || (delimiter.is_some_and(|d| a.ends_with(d)) && f.path.starts_with(a)))
        {
            continue;
        }
        let rolled = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
            rest.find(d)
                .map(|i| format!("{prefix}{}", &rest[..i + d.len()]))
        });
        if let Some(p) = &rolled
            && out.prefixes.last() == Some(p)
        {
            continue;
        }
        if out.objects.len() + out.prefixes.len() >= max {
            out.next = last;
            return out;
        }
        match rolled {
            Some(p) => {
                last = Some(p.clone());
                out.prefixes.push(p);
            }
            None => {
                last = Some(f.path.clone());
                out.objects.push(f.clone());
            }
        }
    }
    out
}

fn page_size(max_keys: Option<i32>) -> S3Result<usize> {
    match max_keys {
        Some(n) if n < 0 => Err(s3_error!(
            InvalidArgument,
            "max-keys must be 0 or more (at most {MAX_KEYS})."
        )),
        Some(n) => Ok(usize::try_from(n.min(MAX_KEYS)).unwrap_or(0)),
        None => Ok(MAX_KEYS as usize),
    }
}

fn encoded(s: &str, url: bool) -> String {
    if url {
        utf8_percent_encode(s, KEY_ESCAPES).to_string()
    } else {
        s.to_string()
    }
}

fn object(entry: &CatalogEntry, url: bool) -> Object {
    Object {
        key: Some(encoded(&entry.path, url)),
        size: Some(size_of(entry)),
        e_tag: Some(e_tag(entry)),
        last_modified: last_modified(entry),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        ..Default::default()
    }
}

fn is_url(e: Option<&EncodingType>) -> bool {
    e.is_some_and(|e| e.as_str() == EncodingType::URL)
}

fn common_prefixes(prefixes: Vec<String>, url: bool) -> Option<Vec<CommonPrefix>> {
    (!prefixes.is_empty()).then(|| {
        prefixes
            .into_iter()
            .map(|p| CommonPrefix {
                prefix: Some(encoded(&p, url)),
            })
            .collect()
    })
}

#[async_trait::async_trait]
impl S3 for AccessPoints {
    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let bucket = req.input.bucket.clone();
        let (served, _) = self.authorise(&req, &bucket, "s3:ListBucket", None).await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(served.region),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let bucket = req.input.bucket.clone();
        let (_, reader) = self.authorise(&req, &bucket, "s3:ListBucket", None).await?;
        let i = &req.input;
        let prefix = i.prefix.clone().unwrap_or_default();
        let after = match &i.continuation_token {
            Some(t) => Some(
                hex::decode(t)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        s3_error!(
                            InvalidArgument,
                            "The continuation token is not one Coffer gave."
                        )
                    })?,
            ),
            None => i.start_after.clone(),
        };
        let max = page_size(i.max_keys)?;
        let l = list(
            reader.files(),
            &prefix,
            i.delimiter.as_deref(),
            after.as_deref(),
            max,
        );
        let url = is_url(i.encoding_type.as_ref());
        let count = l.objects.len() + l.prefixes.len();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(bucket),
            prefix: Some(encoded(&prefix, url)),
            delimiter: i.delimiter.clone(),
            max_keys: Some(i32::try_from(max).unwrap_or(MAX_KEYS)),
            key_count: Some(i32::try_from(count).unwrap_or(i32::MAX)),
            continuation_token: i.continuation_token.clone(),
            start_after: i.start_after.clone(),
            is_truncated: Some(l.next.is_some()),
            next_continuation_token: l.next.map(hex::encode),
            contents: Some(l.objects.iter().map(|o| object(o, url)).collect()),
            common_prefixes: common_prefixes(l.prefixes, url),
            encoding_type: i.encoding_type.clone(),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let bucket = req.input.bucket.clone();
        let (_, reader) = self.authorise(&req, &bucket, "s3:ListBucket", None).await?;
        let i = &req.input;
        let prefix = i.prefix.clone().unwrap_or_default();
        let max = page_size(i.max_keys)?;
        let l = list(
            reader.files(),
            &prefix,
            i.delimiter.as_deref(),
            i.marker.as_deref(),
            max,
        );
        let url = is_url(i.encoding_type.as_ref());
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(bucket),
            prefix: Some(encoded(&prefix, url)),
            delimiter: i.delimiter.clone(),
            marker: i.marker.clone(),
            max_keys: Some(i32::try_from(max).unwrap_or(MAX_KEYS)),
            is_truncated: Some(l.next.is_some()),
            next_marker: l.next,
            contents: Some(l.objects.iter().map(|o| object(o, url)).collect()),
            common_prefixes: common_prefixes(l.prefixes, url),
            encoding_type: i.encoding_type.clone(),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let (_, reader) = self
            .authorise(&req, &bucket, "s3:GetObject", Some(&key))
            .await?;
        let file = self.open(&reader, &key).await?;
        let e = &file.entry;
        Ok(S3Response::new(HeadObjectOutput {
            accept_ranges: Some("bytes".into()),
            content_length: Some(size_of(e)),
            content_type: Some("application/octet-stream".into()),
            e_tag: Some(e_tag(e)),
            last_modified: last_modified(e),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let (_, reader) = self
            .authorise(&req, &bucket, "s3:GetObject", Some(&key))
            .await?;
        if req.input.part_number.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "Recovery point files are not multipart objects; leave partNumber out."
            ));
        }
        let file = self.open(&reader, &key).await?;
        let entry = file.entry.clone();
        let (range, content_range) = match &req.input.range {
            Some(r) => {
                let range = r.check(entry.size).map_err(|_| {
                    let mut e = S3Error::with_message(
                        S3ErrorCode::InvalidRange,
                        format!(
                            "The requested range is not satisfiable: the file has {} bytes.",
                            entry.size
                        ),
                    );
                    e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
                    e
                })?;
                let shown = format!(
                    "bytes {}-{}/{}",
                    range.start,
                    range.end.saturating_sub(1),
                    entry.size
                );
                (range, Some(shown))
            }
            None => (0..entry.size, None),
        };
        let length = i64::try_from(range.end - range.start).unwrap_or(i64::MAX);
        Ok(S3Response::new(GetObjectOutput {
            body: Some(stream_range(reader, file, range.start, range.end)),
            accept_ranges: Some("bytes".into()),
            content_length: Some(length),
            content_range,
            content_type: Some("application/octet-stream".into()),
            e_tag: Some(e_tag(&entry)),
            last_modified: last_modified(&entry),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str) -> CatalogEntry {
        CatalogEntry {
            path: path.into(),
            size: 1,
            modified_ms: None,
            content_hash: "00".into(),
        }
    }

    #[test]
    fn listing_rolls_up_at_the_delimiter_and_pages_by_key() {
        let files: Vec<_> = ["a.txt", "docs/x/1", "docs/x/2", "docs/y.md", "z"]
            .into_iter()
            .map(f)
            .collect();
        let l = list(&files, "docs/", Some("/"), None, 1000);
        let keys: Vec<_> = l.objects.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(keys, ["docs/y.md"]);
        assert_eq!(l.prefixes, ["docs/x/"]);
        assert!(l.next.is_none());
        let top = list(&files, "", Some("/"), None, 2);
        assert_eq!(top.objects.len() + top.prefixes.len(), 2);
        assert_eq!(top.next.as_deref(), Some("docs/"));
        let rest = list(&files, "", Some("/"), top.next.as_deref(), 2);
        let keys: Vec<_> = rest.objects.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(keys, ["z"]);
        assert!(rest.prefixes.is_empty());
        assert!(rest.next.is_none());
    }
}
