//! The compact catalogue of a recovery point: its files in a few large, compressed values.
//!
//! A search reads whole catalogues, and a million JSON rows read one by one take tens of
//! seconds. So an index's catalogue is stored in parts of up to [`PART_FILES`] files in path
//! order (table `rp_catalog_part`, key `ACCOUNT:REGION:RPID:SEQ`, SEQ eight digits from 0),
//! each a columnar encoding compressed with zstd, plus one directory (table `rp_catalog_dir`,
//! key `ACCOUNT:REGION:RPID`) listing every part's first and last path and its file count. A
//! reader finds the part holding a path by binary search in the directory, and a search whose
//! filter confines the path (EQUALS_TO without wildcards, BEGINS_WITH) skips the parts whose
//! path range cannot hold a match without reading them.
//!
//! A part, before compression: the magic `CCP1`, the file count, then the columns: paths
//! (each as the length of the prefix shared with the previous path, the length of the rest,
//! the rest), sizes, modification times (0 when unknown, else the zigzag difference from the
//! previous known time plus one) and content hashes (a kind byte: 1 when every hash is 64
//! lowercase hex digits, stored as 32 raw bytes each; 0 otherwise, each length-prefixed).
//! Integers are LEB128 varints. A search decodes only the columns it filters on.
//!
//! Catalogues written before this format are JSON rows in `rp_catalog` (one per file); an
//! index with no directory is read from them, and `dataplane::indexes` converts them at start.

use coffer_engine::CatalogEntry;
use coffer_store::{StoreError, Txn};
use serde::{Deserialize, Serialize};

use crate::model::error::{Error, Result};

pub(crate) const PARTS: &str = "rp_catalog_part";
pub(crate) const DIRECTORY: &str = "rp_catalog_dir";
/// Files per part.
pub(crate) const PART_FILES: usize = 4096;
const MAGIC: &[u8; 4] = b"CCP1";
/// zstd level: fast to write, and the paths and numbers compress well at it.
const LEVEL: i32 = 3;

/// The parts of one catalogue, in path order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Directory {
    pub files: u64,
    pub parts: Vec<PartInfo>,
}

/// One part: its first and last path and how many files it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartInfo {
    pub first: String,
    pub last: String,
    pub files: u64,
}

impl Directory {
    /// The directory of `entries` (in path order) cut into parts of [`PART_FILES`].
    pub(crate) fn of(entries: &[CatalogEntry]) -> Directory {
        let parts = entries
            .chunks(PART_FILES)
            .map(|c| PartInfo {
                first: c[0].path.clone(),
                last: c[c.len() - 1].path.clone(),
                files: c.len() as u64,
            })
            .collect();
        Directory {
            files: entries.len() as u64,
            parts,
        }
    }

    /// The index of the first part holding a path after `after` (all from the first part when
    /// `None`); `parts.len()` when none does.
    pub(crate) fn first_after(&self, after: Option<&str>) -> usize {
        match after {
            None => 0,
            Some(a) => self.parts.partition_point(|p| p.last.as_str() <= a),
        }
    }
}

fn corrupt(what: &str) -> Error {
    Error(coffer_api::ApiError::internal(StoreError::corrupt(
        "catalogue part",
        what.to_string(),
    )))
}

pub(crate) fn key(account: &str, region: &str, rp_id: &str) -> String {
    format!("{account}:{region}:{rp_id}")
}

/// The prefix of a catalogue's part keys.
pub(crate) fn parts_prefix(account: &str, region: &str, rp_id: &str) -> String {
    format!("{account}:{region}:{rp_id}:")
}

pub(crate) fn part_key(account: &str, region: &str, rp_id: &str, seq: usize) -> String {
    format!("{}{seq:08}", parts_prefix(account, region, rp_id))
}

pub(crate) fn get_directory(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    rp_id: &str,
) -> Result<Option<Directory>> {
    match tx.get(DIRECTORY, &key(account, region, rp_id))? {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

pub(crate) fn put_directory(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    rp_id: &str,
    dir: &Directory,
) -> Result<()> {
    tx.put(
        DIRECTORY,
        &key(account, region, rp_id),
        &serde_json::to_vec(dir)?,
    )?;
    Ok(())
}

/// Reads part `seq` (with the content hashes when `hashes`; empty hashes otherwise).
pub(crate) fn read_part(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    rp_id: &str,
    seq: usize,
    hashes: bool,
) -> Result<Vec<CatalogEntry>> {
    let v = tx
        .get(PARTS, &part_key(account, region, rp_id, seq))?
        .ok_or_else(|| corrupt("a part the catalogue's directory lists is missing"))?;
    decode(&v, hashes)
}

/// Deletes up to `limit` parts under `prefix`, and the directory `dir_key` once none is left;
/// returns how many parts it deleted.
pub(crate) fn delete_parts(
    tx: &mut dyn Txn,
    prefix: &str,
    dir_key: &str,
    limit: usize,
) -> Result<usize> {
    let rows = tx.scan(PARTS, prefix, None, limit)?;
    for (k, _) in &rows {
        tx.delete(PARTS, k)?;
    }
    if rows.len() < limit {
        tx.delete(DIRECTORY, dir_key)?;
    }
    Ok(rows.len())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Encodes `rows` (in path order) as one compressed part.
pub(crate) fn encode(rows: &[CatalogEntry]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(rows.len() * 48);
    out.extend_from_slice(MAGIC);
    put_varint(&mut out, rows.len() as u64);
    let mut prev: &str = "";
    for r in rows {
        let shared = prev
            .bytes()
            .zip(r.path.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        let rest = &r.path.as_bytes()[shared..];
        put_varint(&mut out, shared as u64);
        put_varint(&mut out, rest.len() as u64);
        out.extend_from_slice(rest);
        prev = &r.path;
    }
    for r in rows {
        put_varint(&mut out, r.size);
    }
    let mut last = 0i64;
    for r in rows {
        match r.modified_ms {
            None => put_varint(&mut out, 0),
            Some(m) => {
                put_varint(&mut out, zigzag(m.wrapping_sub(last)).wrapping_add(1));
                last = m;
            }
        }
    }
    encode_hashes(&mut out, rows);
    zstd::bulk::compress(&out, LEVEL).map_err(|e| {
        Error(coffer_api::ApiError::internal(StoreError::corrupt(
            "catalogue part",
            e,
        )))
    })
}

fn is_hex_sha256(h: &str) -> bool {
    h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn encode_hashes(out: &mut Vec<u8>, rows: &[CatalogEntry]) {
    if rows.iter().all(|r| is_hex_sha256(&r.content_hash)) {
        out.push(1);
        for r in rows {
            let raw = r
                .content_hash
                .as_bytes()
                .chunks(2)
                .map(|p| (hex_val(p[0]) << 4) | hex_val(p[1]));
            out.extend(raw);
        }
    } else {
        out.push(0);
        for r in rows {
            put_varint(out, r.content_hash.len() as u64);
            out.extend_from_slice(r.content_hash.as_bytes());
        }
    }
}

fn hex_val(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        _ => b - b'a' + 10,
    }
}

/// Reads a part's bytes in order.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.at)
                .ok_or_else(|| corrupt("a part ends early"))?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(corrupt("a number in a part is too long"))
    }

    fn bytes(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| corrupt("a part ends early"))?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }
}

/// Decodes a part (see the module documentation); without `hashes` the hash column is not
/// read and every `content_hash` is empty.
pub(crate) fn decode(part: &[u8], hashes: bool) -> Result<Vec<CatalogEntry>> {
    let raw = zstd::stream::decode_all(part).map_err(|_| corrupt("a part does not decompress"))?;
    let mut r = Reader { buf: &raw, at: 0 };
    if r.bytes(4)? != MAGIC {
        return Err(corrupt("a part is not in a known format"));
    }
    let n = usize::try_from(r.varint()?).map_err(|_| corrupt("a part's count is too large"))?;
    if n > PART_FILES * 16 {
        return Err(corrupt("a part's count is too large"));
    }
    let mut out: Vec<CatalogEntry> = Vec::with_capacity(n);
    let mut prev: Vec<u8> = Vec::new();
    for _ in 0..n {
        let shared = r.varint()? as usize;
        let len = r.varint()? as usize;
        if shared > prev.len() {
            return Err(corrupt("a path in a part is malformed"));
        }
        prev.truncate(shared);
        prev.extend_from_slice(r.bytes(len)?);
        let path = String::from_utf8(prev.clone())
            .map_err(|_| corrupt("a path in a part is not UTF-8"))?;
        out.push(CatalogEntry {
            path,
            size: 0,
            modified_ms: None,
            content_hash: String::new(),
        });
    }
    for e in &mut out {
        e.size = r.varint()?;
    }
    let mut last = 0i64;
    for e in &mut out {
        let v = r.varint()?;
        if v != 0 {
            last = last.wrapping_add(unzigzag(v - 1));
            e.modified_ms = Some(last);
        }
    }
    if hashes {
        decode_hashes(&mut r, &mut out)?;
    }
    Ok(out)
}

fn decode_hashes(r: &mut Reader<'_>, out: &mut [CatalogEntry]) -> Result<()> {
    let kind = r.bytes(1)?[0];
    for e in out.iter_mut() {
        e.content_hash = match kind {
            1 => to_hex(r.bytes(32)?),
            0 => {
                let len = r.varint()? as usize;
                String::from_utf8(r.bytes(len)?.to_vec())
                    .map_err(|_| corrupt("a hash in a part is not UTF-8"))?
            }
            _ => return Err(corrupt("a part's hash column is of an unknown kind")),
        };
    }
    Ok(())
}

fn to_hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(DIGITS[usize::from(x >> 4)] as char);
        s.push(DIGITS[usize::from(x & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str, size: u64, m: Option<i64>, hash: &str) -> CatalogEntry {
        CatalogEntry {
            path: path.into(),
            size,
            modified_ms: m,
            content_hash: hash.into(),
        }
    }

    /// Every field comes back as it went in: shared and unshared path prefixes, non-ASCII
    /// names, sizes up to u64::MAX, times before and after the epoch or unknown, both hash
    /// kinds.
    #[test]
    fn parts_round_trip() {
        let h = |i: u8| format!("{:02x}", i).repeat(32);
        let rows = vec![
            e("a.txt", 0, Some(1_700_000_000_123), &h(1)),
            e("a/b/c.txt", u64::MAX, None, &h(2)),
            e("a/b/d.txt", 7, Some(-5), &h(255)),
            e("dir/ünïcødé 日本語.txt", 12, Some(i64::MAX), &h(0)),
            e("z", 1, Some(i64::MIN), &h(9)),
        ];
        let part = encode(&rows).unwrap();
        assert_eq!(decode(&part, true).unwrap(), rows);
        let light = decode(&part, false).unwrap();
        assert!(light.iter().all(|x| x.content_hash.is_empty()));
        assert_eq!(
            light
                .iter()
                .map(|x| (&x.path, x.size, x.modified_ms))
                .collect::<Vec<_>>(),
            rows.iter()
                .map(|x| (&x.path, x.size, x.modified_ms))
                .collect::<Vec<_>>()
        );
        // Hashes that are not SHA-256 hex are kept as text.
        let odd = vec![e("a", 1, None, "h"), e("b", 2, Some(3), "")];
        assert_eq!(decode(&encode(&odd).unwrap(), true).unwrap(), odd);
        assert_eq!(decode(&encode(&[]).unwrap(), true).unwrap(), vec![]);
    }

    #[test]
    fn a_damaged_part_is_a_corrupt_record_not_a_panic() {
        let rows = vec![e("a", 1, None, "h"), e("b", 2, Some(3), "x")];
        let part = encode(&rows).unwrap();
        assert!(decode(&part[..part.len() / 2], true).is_err());
        assert!(decode(b"not a part", true).is_err());
        let raw = zstd::bulk::compress(b"CCP1\x05\x00\x01", 1).unwrap();
        let err = decode(&raw, true).unwrap_err();
        assert!(err.is_corrupt_record(), "{err:?}");
    }

    #[test]
    fn the_directory_finds_the_part_after_a_path() {
        let rows: Vec<_> = (0..PART_FILES * 2 + 10)
            .map(|i| e(&format!("f{i:06}"), 0, None, ""))
            .collect();
        let d = Directory::of(&rows);
        assert_eq!(d.parts.len(), 3);
        assert_eq!(d.files, rows.len() as u64);
        assert_eq!(d.first_after(None), 0);
        assert_eq!(d.first_after(Some("f000000")), 0);
        assert_eq!(d.first_after(Some(&rows[PART_FILES - 1].path)), 1);
        assert_eq!(d.first_after(Some(&rows[PART_FILES].path)), 1);
        assert_eq!(d.first_after(Some("zzz")), 3);
    }
}
