//! Metadata commands and how a group applies them.
//!
//! Every metadata change is a [`Command`] proposed to the Raft group that
//! owns its records and applied, in log order, by every replica with
//! [`apply`]. Conditions (If-None-Match, If-Match, CreateBucket's
//! uniqueness, the cluster map's compare-and-set) are decided here, at
//! apply time, against the state every earlier entry left: so exactly one
//! of two racing conditional writes wins, and a write whose condition
//! fails changes nothing.
//!
//! `apply` must be deterministic: the same state and the same request give
//! the same writes and the same [`Outcome`] on every replica. It reads and
//! writes through [`Txn`], which the storage node implements over RocksDB
//! and tests over a `BTreeMap`.

use crate::layout::Layout;
use crate::record::{
    self, AccessKeyRecord, BucketId, BucketRecord, MetaKey, ObjectData, ObjectEntry, PartRecord,
    RequestId, SegmentChunks, Table, UploadRecord, keys,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Requests remembered for answering retries: a retry arriving within
/// this many log entries of the first attempt gets the first outcome.
/// Retries come within a client's deadline (seconds), this covers minutes
/// of writes at thousands per second.
pub const REQUEST_WINDOW: u64 = 100_000;
/// Every this many log entries, requests older than the window are
/// forgotten (at most this many at a time, so an apply stays short).
pub const REQUEST_PRUNE_EVERY: u64 = 1024;
/// Largest number of keys in one [`Command::DeleteObjects`] (S3's limit).
pub const MAX_DELETE_BATCH: usize = 1000;
/// Largest number of parts listed in one upload (S3's limit).
pub const MAX_PARTS: usize = 10_000;

/// A command with the id that makes retries safe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the client, the same for every retry.
    pub id: RequestId,
    /// What to do.
    pub command: Command,
}

/// A precondition on the current version of an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    /// `If-None-Match: *`: only if the key has no object.
    Absent,
    /// `If-Match: <etag>` (`*` is `Present`): only if the current ETag is this.
    ETag(String),
    /// `If-Match: *`: only if the key has an object.
    Present,
}

/// One deletion of a [`Command::DeleteObjects`] batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    /// The key.
    pub key: String,
    /// Only if its current ETag is this (`If-Match`).
    pub if_match: Option<String>,
}

/// A part as CompleteMultipartUpload lists it, with what the client's
/// view of it was when the object entry was computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedPart {
    /// Part number.
    pub part_number: u32,
    /// Its ETag when it was read.
    pub etag: String,
    /// Its size when it was read.
    pub size: u64,
}

/// Every change to metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// System group: replace the cluster map if its version is `expected`.
    SetClusterMap {
        /// The version the change was computed from.
        expected: u64,
        /// The new map; its version must be `expected + 1`.
        layout: Layout,
    },
    /// System group: register a bucket under a name no bucket has.
    CreateBucket {
        /// The new bucket.
        record: BucketRecord,
    },
    /// System group: forget a bucket's name (its data group sealed it first).
    DeleteBucket {
        /// The name.
        name: String,
        /// The id it must still have.
        id: BucketId,
    },
    /// System group: let another key use a bucket.
    AllowKey {
        /// The bucket's name.
        name: String,
        /// The key.
        access_key_id: String,
    },
    /// System group: add an access key.
    PutAccessKey {
        /// The key.
        record: AccessKeyRecord,
    },
    /// System group: remove an access key.
    DeleteAccessKey {
        /// Its id.
        access_key_id: String,
    },
    /// Data group: make `entry` the current version of `key`.
    PutObject {
        /// Bucket.
        bucket: BucketId,
        /// Key.
        key: String,
        /// The new version.
        entry: ObjectEntry,
        /// Only if this holds of the current version.
        condition: Option<Condition>,
    },
    /// Data group: delete objects (a missing key is not an error, as in S3).
    DeleteObjects {
        /// Bucket.
        bucket: BucketId,
        /// At most [`MAX_DELETE_BATCH`].
        deletions: Vec<Deletion>,
    },
    /// Data group: start a multipart upload.
    CreateUpload {
        /// Bucket.
        bucket: BucketId,
        /// The upload.
        record: UploadRecord,
    },
    /// Data group: record an uploaded part (replacing one with its number).
    PutPart {
        /// Bucket.
        bucket: BucketId,
        /// Key of the upload.
        key: String,
        /// The upload.
        upload_id: String,
        /// The part.
        record: PartRecord,
    },
    /// Data group: complete an upload into the object `entry`, whose
    /// segments are the listed parts.
    CompleteUpload {
        /// Bucket.
        bucket: BucketId,
        /// Key.
        key: String,
        /// The upload.
        upload_id: String,
        /// The parts, in order, as they were when `entry` was computed.
        parts: Vec<CompletedPart>,
        /// The object it becomes.
        entry: ObjectEntry,
        /// Only if this holds of the current version of `key`.
        condition: Option<Condition>,
    },
    /// Data group: abort an upload and forget its parts.
    AbortUpload {
        /// Bucket.
        bucket: BucketId,
        /// Key.
        key: String,
        /// The upload.
        upload_id: String,
    },
    /// Data group: refuse every later write to a bucket, if it is empty
    /// (the first step of DeleteBucket).
    SealBucket {
        /// Bucket.
        bucket: BucketId,
    },
    /// Data group: undo a seal whose DeleteBucket could not finish.
    UnsealBucket {
        /// Bucket.
        bucket: BucketId,
    },
}

impl Command {
    /// Whether this command belongs to the system group.
    pub fn is_system(&self) -> bool {
        matches!(
            self,
            Self::SetClusterMap { .. }
                | Self::CreateBucket { .. }
                | Self::DeleteBucket { .. }
                | Self::AllowKey { .. }
                | Self::PutAccessKey { .. }
                | Self::DeleteAccessKey { .. }
        )
    }

    /// The bucket a data-group command writes to.
    pub fn bucket(&self) -> Option<BucketId> {
        match self {
            Self::PutObject { bucket, .. }
            | Self::DeleteObjects { bucket, .. }
            | Self::CreateUpload { bucket, .. }
            | Self::PutPart { bucket, .. }
            | Self::CompleteUpload { bucket, .. }
            | Self::AbortUpload { bucket, .. }
            | Self::SealBucket { bucket }
            | Self::UnsealBucket { bucket } => Some(*bucket),
            _ => None,
        }
    }
}

/// What applying a command decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Done.
    Ok,
    /// Per deletion of a batch, in order.
    Deleted(Vec<Outcome>),
    /// A condition did not hold (412).
    PreconditionFailed,
    /// `If-Match` on a key with no object (404).
    NoSuchKey,
    /// The bucket does not exist or was deleted (404).
    NoSuchBucket,
    /// The upload does not exist: never created, completed or aborted (404).
    NoSuchUpload,
    /// A listed part is missing or is not what the client saw (400).
    InvalidPart,
    /// The name belongs to another owner's bucket (409).
    BucketAlreadyExists,
    /// The name belongs to a bucket of the same owner (409).
    BucketAlreadyOwnedByYou,
    /// The bucket still holds objects or uploads (409).
    BucketNotEmpty,
    /// No such access key.
    NoSuchAccessKey,
    /// The cluster map is not at the expected version.
    ClusterMapConflict {
        /// Its version now.
        current: u64,
    },
    /// The command was malformed or met a record it cannot read; nothing
    /// was changed.
    Invalid(String),
}

/// Reads and writes of one apply. Reads see the writes made before them
/// in the same apply.
pub trait Txn: KvRead {
    /// Write a record.
    fn put(&mut self, key: MetaKey, value: Vec<u8>);
    /// Remove a record.
    fn delete(&mut self, key: MetaKey);
}

/// Reads of metadata records: committed state, or a [`Txn`] over it.
pub trait KvRead {
    /// The value under `key`.
    fn get(&self, key: &MetaKey) -> Option<Vec<u8>>;
    /// Up to `limit` records of `(table, partition_key)` whose sort key
    /// starts with `prefix` and sorts after `after`, in order.
    fn scan(
        &self,
        table: Table,
        partition_key: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<(String, Vec<u8>)>;
}

/// A [`Txn`] over committed state: writes are kept in order and read back
/// before the base.
pub struct Overlay<'a, B: KvRead + ?Sized> {
    base: &'a B,
    writes: BTreeMap<MetaKey, Option<Vec<u8>>>,
}

impl<'a, B: KvRead + ?Sized> Overlay<'a, B> {
    /// Writes over `base`.
    pub fn new(base: &'a B) -> Self {
        Self {
            base,
            writes: BTreeMap::new(),
        }
    }

    /// The writes made: `None` values are deletions.
    pub fn into_writes(self) -> BTreeMap<MetaKey, Option<Vec<u8>>> {
        self.writes
    }
}

impl<B: KvRead + ?Sized> KvRead for Overlay<'_, B> {
    fn get(&self, key: &MetaKey) -> Option<Vec<u8>> {
        match self.writes.get(key) {
            Some(v) => v.clone(),
            None => self.base.get(key),
        }
    }

    fn scan(
        &self,
        table: Table,
        partition_key: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<(String, Vec<u8>)> {
        // Overlay writes can hide base records and add new ones: read
        // enough of the base to fill `limit` after the hidden ones.
        let hidden = self
            .writes
            .iter()
            .filter(|(k, v)| v.is_none() && k.table == table && k.partition_key == partition_key)
            .count();
        let mut merged: BTreeMap<String, Vec<u8>> = self
            .base
            .scan(table, partition_key, prefix, after, limit + hidden)
            .into_iter()
            .collect();
        for (k, v) in &self.writes {
            if k.table != table
                || k.partition_key != partition_key
                || !k.sort_key.starts_with(prefix)
                || after.is_some_and(|a| k.sort_key.as_str() <= a)
            {
                continue;
            }
            match v {
                Some(v) => merged.insert(k.sort_key.clone(), v.clone()),
                None => merged.remove(&k.sort_key),
            };
        }
        merged.into_iter().take(limit).collect()
    }
}

impl<B: KvRead + ?Sized> Txn for Overlay<'_, B> {
    fn put(&mut self, key: MetaKey, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    fn delete(&mut self, key: MetaKey) {
        self.writes.insert(key, None);
    }
}

fn request_key(id: RequestId) -> MetaKey {
    MetaKey::new(Table::Requests, "", id.to_hex())
}

fn request_index_key(index: u64) -> MetaKey {
    MetaKey::new(Table::RequestsByIndex, "", format!("{index:020}"))
}

/// A remembered outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Remembered {
    index: u64,
    outcome: Outcome,
}

/// Apply the request at log index `index`: a request seen before (a retry)
/// gets its first outcome and changes nothing; otherwise the command is
/// applied and its outcome remembered for [`REQUEST_WINDOW`] entries.
pub fn apply_request(txn: &mut impl Txn, index: u64, request: &Request) -> Outcome {
    if index.is_multiple_of(REQUEST_PRUNE_EVERY) && index > REQUEST_WINDOW {
        forget_requests_before(txn, index - REQUEST_WINDOW);
    }
    let key = request_key(request.id);
    if let Some(bytes) = txn.get(&key)
        && let Ok(r) = record::decode::<Remembered>("request outcome", &bytes)
    {
        return r.outcome;
    }
    let outcome = apply(txn, &request.command);
    txn.put(
        key,
        record::encode(&Remembered {
            index,
            outcome: outcome.clone(),
        }),
    );
    txn.put(request_index_key(index), request.id.0.to_vec());
    outcome
}

fn forget_requests_before(txn: &mut impl Txn, before: u64) {
    let old = txn.scan(
        Table::RequestsByIndex,
        "",
        "",
        None,
        REQUEST_PRUNE_EVERY as usize,
    );
    for (sort_key, id) in old {
        if sort_key.parse::<u64>().is_ok_and(|i| i >= before) {
            break;
        }
        if let Ok(id) = <[u8; 16]>::try_from(id.as_slice()) {
            txn.delete(request_key(RequestId(id)));
        }
        txn.delete(MetaKey::new(Table::RequestsByIndex, "", sort_key));
    }
}

fn read<T: serde::de::DeserializeOwned>(
    txn: &impl Txn,
    key: &MetaKey,
) -> Result<Option<T>, Outcome> {
    match txn.get(key) {
        None => Ok(None),
        Some(bytes) => record::decode(key.table.name(), &bytes)
            .map(Some)
            .map_err(|e| Outcome::Invalid(e.to_string())),
    }
}

/// Apply one command (see the module documentation).
pub fn apply(txn: &mut impl Txn, command: &Command) -> Outcome {
    // Errors are outcomes: `?` returns the first one, before any write.
    let result = (|| -> Result<Outcome, Outcome> {
        match command {
            Command::SetClusterMap { expected, layout } => {
                let key = keys::cluster_map();
                let current = read::<Layout>(txn, &key)?.map(|l| l.version).unwrap_or(0);
                if current != *expected || layout.version != expected + 1 {
                    return Ok(Outcome::ClusterMapConflict { current });
                }
                if let Err(e) = layout.validate() {
                    return Ok(Outcome::Invalid(e.to_string()));
                }
                txn.put(key, record::encode(layout));
                Ok(Outcome::Ok)
            }
            Command::CreateBucket { record } => {
                let key = keys::bucket(&record.name);
                if let Some(existing) = read::<BucketRecord>(txn, &key)? {
                    return Ok(if existing.owner == record.owner {
                        Outcome::BucketAlreadyOwnedByYou
                    } else {
                        Outcome::BucketAlreadyExists
                    });
                }
                txn.put(key, record::encode(record));
                Ok(Outcome::Ok)
            }
            Command::DeleteBucket { name, id } => {
                let key = keys::bucket(name);
                match read::<BucketRecord>(txn, &key)? {
                    Some(b) if b.id == *id => {
                        txn.delete(key);
                        Ok(Outcome::Ok)
                    }
                    _ => Ok(Outcome::NoSuchBucket),
                }
            }
            Command::AllowKey {
                name,
                access_key_id,
            } => {
                let key = keys::bucket(name);
                let Some(mut b) = read::<BucketRecord>(txn, &key)? else {
                    return Ok(Outcome::NoSuchBucket);
                };
                if txn.get(&keys::access_key(access_key_id)).is_none() {
                    return Ok(Outcome::NoSuchAccessKey);
                }
                if !b.allowed_keys.contains(access_key_id) {
                    b.allowed_keys.push(access_key_id.clone());
                    txn.put(key, record::encode(&b));
                }
                Ok(Outcome::Ok)
            }
            Command::PutAccessKey { record } => {
                txn.put(
                    keys::access_key(&record.access_key_id),
                    record::encode(record),
                );
                Ok(Outcome::Ok)
            }
            Command::DeleteAccessKey { access_key_id } => {
                let key = keys::access_key(access_key_id);
                if txn.get(&key).is_none() {
                    return Ok(Outcome::NoSuchAccessKey);
                }
                txn.delete(key);
                Ok(Outcome::Ok)
            }
            Command::PutObject {
                bucket,
                key,
                entry,
                condition,
            } => {
                unsealed(txn, *bucket)?;
                let okey = keys::object(*bucket, key);
                let current = read::<ObjectEntry>(txn, &okey)?;
                if let Some(failed) = check(condition.as_ref(), current.as_ref()) {
                    return Ok(failed);
                }
                if let Some(old) = &current {
                    drop_owned_parts(txn, *bucket, old);
                }
                txn.put(okey, record::encode(entry));
                Ok(Outcome::Ok)
            }
            Command::DeleteObjects { bucket, deletions } => {
                if deletions.len() > MAX_DELETE_BATCH {
                    return Ok(Outcome::Invalid("too many deletions".into()));
                }
                let mut outcomes = Vec::with_capacity(deletions.len());
                for d in deletions {
                    let okey = keys::object(*bucket, &d.key);
                    let current = read::<ObjectEntry>(txn, &okey)?;
                    let condition = d.if_match.clone().map(Condition::ETag);
                    if let Some(failed) = check(condition.as_ref(), current.as_ref()) {
                        outcomes.push(failed);
                        continue;
                    }
                    if let Some(old) = &current {
                        drop_owned_parts(txn, *bucket, old);
                        txn.delete(okey);
                    }
                    outcomes.push(Outcome::Ok);
                }
                Ok(Outcome::Deleted(outcomes))
            }
            Command::CreateUpload { bucket, record } => {
                unsealed(txn, *bucket)?;
                txn.put(
                    keys::upload(*bucket, &record.key, &record.upload_id),
                    record::encode(record),
                );
                Ok(Outcome::Ok)
            }
            Command::PutPart {
                bucket,
                key,
                upload_id,
                record,
            } => {
                unsealed(txn, *bucket)?;
                if txn.get(&keys::upload(*bucket, key, upload_id)).is_none() {
                    return Ok(Outcome::NoSuchUpload);
                }
                txn.put(
                    keys::part(*bucket, upload_id, record.part_number),
                    record::encode(record),
                );
                Ok(Outcome::Ok)
            }
            Command::CompleteUpload {
                bucket,
                key,
                upload_id,
                parts,
                entry,
                condition,
            } => {
                unsealed(txn, *bucket)?;
                let ukey = keys::upload(*bucket, key, upload_id);
                if txn.get(&ukey).is_none() {
                    return Ok(Outcome::NoSuchUpload);
                }
                if parts.is_empty() || parts.len() > MAX_PARTS {
                    return Ok(Outcome::Invalid("part count".into()));
                }
                for p in parts {
                    match read::<PartRecord>(txn, &keys::part(*bucket, upload_id, p.part_number))? {
                        Some(r) if r.etag == p.etag && r.size == p.size => {}
                        _ => return Ok(Outcome::InvalidPart),
                    }
                }
                let okey = keys::object(*bucket, key);
                let current = read::<ObjectEntry>(txn, &okey)?;
                if let Some(failed) = check(condition.as_ref(), current.as_ref()) {
                    return Ok(failed);
                }
                if let Some(old) = &current {
                    drop_owned_parts(txn, *bucket, old);
                }
                // Parts the object does not list go with the upload.
                let listed: std::collections::BTreeSet<u32> =
                    parts.iter().map(|p| p.part_number).collect();
                for (sort_key, _) in all_parts(txn, *bucket, upload_id) {
                    let number = part_number_of(&sort_key);
                    if !number.is_some_and(|n| listed.contains(&n)) {
                        txn.delete(MetaKey::new(Table::Parts, bucket.to_hex(), sort_key));
                    }
                }
                txn.delete(ukey);
                txn.put(okey, record::encode(entry));
                Ok(Outcome::Ok)
            }
            Command::AbortUpload {
                bucket,
                key,
                upload_id,
            } => {
                let ukey = keys::upload(*bucket, key, upload_id);
                if txn.get(&ukey).is_none() {
                    return Ok(Outcome::NoSuchUpload);
                }
                for (sort_key, _) in all_parts(txn, *bucket, upload_id) {
                    txn.delete(MetaKey::new(Table::Parts, bucket.to_hex(), sort_key));
                }
                txn.delete(ukey);
                Ok(Outcome::Ok)
            }
            Command::SealBucket { bucket } => {
                let pk = bucket.to_hex();
                let busy = !txn.scan(Table::Objects, &pk, "", None, 1).is_empty()
                    || !txn.scan(Table::Uploads, &pk, "", None, 1).is_empty();
                if busy {
                    return Ok(Outcome::BucketNotEmpty);
                }
                txn.put(keys::sealed(*bucket), Vec::new());
                Ok(Outcome::Ok)
            }
            Command::UnsealBucket { bucket } => {
                txn.delete(keys::sealed(*bucket));
                Ok(Outcome::Ok)
            }
        }
    })();
    result.unwrap_or_else(|failed| failed)
}

fn unsealed(txn: &impl Txn, bucket: BucketId) -> Result<(), Outcome> {
    match txn.get(&keys::sealed(bucket)) {
        Some(_) => Err(Outcome::NoSuchBucket),
        None => Ok(()),
    }
}

/// `None` when `condition` holds of `current`, else the failure.
fn check(condition: Option<&Condition>, current: Option<&ObjectEntry>) -> Option<Outcome> {
    match (condition?, current) {
        (Condition::Absent, None) => None,
        (Condition::Absent, Some(_)) => Some(Outcome::PreconditionFailed),
        (Condition::Present | Condition::ETag(_), None) => Some(Outcome::NoSuchKey),
        (Condition::Present, Some(_)) => None,
        (Condition::ETag(e), Some(cur)) if *e == cur.etag => None,
        (Condition::ETag(_), Some(_)) => Some(Outcome::PreconditionFailed),
    }
}

fn all_parts(txn: &impl Txn, bucket: BucketId, upload_id: &str) -> Vec<(String, Vec<u8>)> {
    txn.scan(
        Table::Parts,
        &bucket.to_hex(),
        &keys::parts_prefix(upload_id),
        None,
        MAX_PARTS,
    )
}

fn part_number_of(sort_key: &str) -> Option<u32> {
    sort_key.rsplit_once('/')?.1.parse().ok()
}

/// An object version going away takes the part records it owns with it.
fn drop_owned_parts(txn: &mut impl Txn, bucket: BucketId, old: &ObjectEntry) {
    if let ObjectData::Chunks { segments, .. } = &old.data {
        for s in segments {
            if let SegmentChunks::Part {
                upload_id,
                part_number,
            } = &s.chunks
            {
                txn.delete(keys::part(bucket, upload_id, *part_number));
            }
        }
    }
}

/// A [`KvRead`] over a `BTreeMap`, for tests and simulation.
#[derive(Debug, Default, Clone)]
pub struct MemoryKv(pub BTreeMap<MetaKey, Vec<u8>>);

impl KvRead for MemoryKv {
    fn get(&self, key: &MetaKey) -> Option<Vec<u8>> {
        self.0.get(key).cloned()
    }

    fn scan(
        &self,
        table: Table,
        partition_key: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<(String, Vec<u8>)> {
        let start = MetaKey::new(table, partition_key, after.unwrap_or(prefix));
        self.0
            .range(start..)
            .filter(|(k, _)| after.is_none_or(|a| k.sort_key.as_str() > a))
            .take_while(|(k, _)| {
                k.table == table
                    && k.partition_key == partition_key
                    && k.sort_key.starts_with(prefix)
            })
            .take(limit)
            .map(|(k, v)| (k.sort_key.clone(), v.clone()))
            .collect()
    }
}

impl MemoryKv {
    /// Apply `request` at `index` and keep its writes.
    pub fn apply(&mut self, index: u64, request: &Request) -> Outcome {
        let mut txn = Overlay::new(&*self);
        let outcome = apply_request(&mut txn, index, request);
        for (k, v) in txn.into_writes() {
            match v {
                Some(v) => self.0.insert(k, v),
                None => self.0.remove(&k),
            };
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{CodecId, ErasureProfile};
    use crate::record::{ChunkRef, Segment, VersionId};

    struct State {
        kv: MemoryKv,
        index: u64,
    }

    impl State {
        fn new() -> Self {
            Self {
                kv: MemoryKv::default(),
                index: 0,
            }
        }

        fn run(&mut self, command: Command) -> Outcome {
            self.index += 1;
            let id = RequestId(rand_id(self.index));
            self.kv.apply(self.index, &Request { id, command })
        }
    }

    fn rand_id(n: u64) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&n.to_le_bytes());
        out[8] = 0x5a;
        out
    }

    const B: BucketId = BucketId([7; 16]);

    fn entry(etag: &str) -> ObjectEntry {
        ObjectEntry {
            version: VersionId([1; 16]),
            size: 3,
            etag: etag.into(),
            last_modified_ms: 1,
            content_type: None,
            headers: vec![],
            user_metadata: vec![],
            checksum: None,
            part_sizes: vec![],
            data: ObjectData::Inline(b"abc".to_vec()),
        }
    }

    fn put(key: &str, etag: &str, condition: Option<Condition>) -> Command {
        Command::PutObject {
            bucket: B,
            key: key.into(),
            entry: entry(etag),
            condition,
        }
    }

    fn current(s: &State, key: &str) -> Option<ObjectEntry> {
        s.kv.get(&keys::object(B, key))
            .map(|b| record::decode("object entry", &b).unwrap())
    }

    #[test]
    fn if_none_match_has_exactly_one_winner() {
        let mut s = State::new();
        assert_eq!(s.run(put("k", "a", Some(Condition::Absent))), Outcome::Ok);
        assert_eq!(
            s.run(put("k", "b", Some(Condition::Absent))),
            Outcome::PreconditionFailed
        );
        assert_eq!(current(&s, "k").unwrap().etag, "a");
    }

    #[test]
    fn if_match_compares_the_current_etag() {
        let mut s = State::new();
        assert_eq!(
            s.run(put("k", "a", Some(Condition::ETag("x".into())))),
            Outcome::NoSuchKey
        );
        s.run(put("k", "a", None));
        assert_eq!(
            s.run(put("k", "b", Some(Condition::ETag("x".into())))),
            Outcome::PreconditionFailed
        );
        assert_eq!(
            s.run(put("k", "b", Some(Condition::ETag("a".into())))),
            Outcome::Ok
        );
        assert_eq!(current(&s, "k").unwrap().etag, "b");
    }

    #[test]
    fn a_retried_request_gets_its_first_outcome_and_changes_nothing() {
        let mut s = State::new();
        let req = Request {
            id: RequestId([9; 16]),
            command: put("k", "a", Some(Condition::Absent)),
        };
        assert_eq!(s.kv.apply(1, &req), Outcome::Ok);
        s.run(put("k", "b", None));
        // The retry of the first request says Ok again, not 412, and does
        // not overwrite the later write.
        assert_eq!(s.kv.apply(5, &req), Outcome::Ok);
        assert_eq!(current(&s, "k").unwrap().etag, "b");
    }

    #[test]
    fn old_requests_are_forgotten_in_order() {
        let mut s = State::new();
        for _ in 0..(REQUEST_WINDOW + 3 * REQUEST_PRUNE_EVERY) {
            s.index += 1;
            let id = RequestId(rand_id(s.index));
            s.kv.apply(
                s.index,
                &Request {
                    id,
                    command: Command::UnsealBucket { bucket: B },
                },
            );
        }
        let remembered = s.kv.0.keys().filter(|k| k.table == Table::Requests).count() as u64;
        assert!(
            remembered <= REQUEST_WINDOW + REQUEST_PRUNE_EVERY,
            "{remembered}"
        );
        assert!(remembered >= REQUEST_WINDOW);
    }

    #[test]
    fn create_bucket_has_one_owner() {
        let mut s = State::new();
        let rec = |owner: &str, id: u8| BucketRecord {
            id: BucketId([id; 16]),
            name: "photos".into(),
            owner: owner.into(),
            created_ms: 1,
            allowed_keys: vec![],
        };
        assert_eq!(
            s.run(Command::CreateBucket {
                record: rec("a", 1)
            }),
            Outcome::Ok
        );
        assert_eq!(
            s.run(Command::CreateBucket {
                record: rec("b", 2)
            }),
            Outcome::BucketAlreadyExists
        );
        assert_eq!(
            s.run(Command::CreateBucket {
                record: rec("a", 3)
            }),
            Outcome::BucketAlreadyOwnedByYou
        );
        assert_eq!(
            s.run(Command::DeleteBucket {
                name: "photos".into(),
                id: BucketId([2; 16])
            }),
            Outcome::NoSuchBucket
        );
    }

    #[test]
    fn the_cluster_map_changes_by_compare_and_set() {
        let mut s = State::new();
        let layout = |version| {
            let mut l = Layout {
                version,
                profile: ErasureProfile {
                    data_shards: 1,
                    parity_shards: 0,
                },
                partition_bits: 0,
                groups: vec![],
                nodes: vec![crate::layout::NodeInfo {
                    id: crate::id::NodeId(1),
                    addr: "a:1".into(),
                    zone: "z".into(),
                    capacity: 1,
                }],
                placement: vec![],
                out: Default::default(),
                leaving: Default::default(),
                placement_version: 0,
                history: Vec::new(),
            };
            l.plan_placement(None).unwrap();
            l.assign_groups(2).unwrap();
            l
        };
        let set = |expected, version| Command::SetClusterMap {
            expected,
            layout: layout(version),
        };
        assert_eq!(s.run(set(0, 1)), Outcome::Ok);
        assert_eq!(s.run(set(0, 1)), Outcome::ClusterMapConflict { current: 1 });
        assert_eq!(s.run(set(1, 3)), Outcome::ClusterMapConflict { current: 1 });
        assert_eq!(s.run(set(1, 2)), Outcome::Ok);
    }

    #[test]
    fn a_sealed_bucket_takes_no_writes_and_only_an_empty_one_seals() {
        let mut s = State::new();
        s.run(put("k", "a", None));
        assert_eq!(
            s.run(Command::SealBucket { bucket: B }),
            Outcome::BucketNotEmpty
        );
        s.run(Command::DeleteObjects {
            bucket: B,
            deletions: vec![Deletion {
                key: "k".into(),
                if_match: None,
            }],
        });
        assert_eq!(s.run(Command::SealBucket { bucket: B }), Outcome::Ok);
        assert_eq!(s.run(put("k", "a", None)), Outcome::NoSuchBucket);
    }

    #[test]
    fn deletes_leave_nothing_behind() {
        let mut s = State::new();
        s.run(put("k", "a", None));
        let before = s.kv.0.keys().filter(|k| k.table == Table::Objects).count();
        assert_eq!(before, 1);
        let out = s.run(Command::DeleteObjects {
            bucket: B,
            deletions: vec![
                Deletion {
                    key: "k".into(),
                    if_match: None,
                },
                Deletion {
                    key: "missing".into(),
                    if_match: None,
                },
            ],
        });
        assert_eq!(out, Outcome::Deleted(vec![Outcome::Ok, Outcome::Ok]));
        assert_eq!(
            s.kv.0.keys().filter(|k| k.table == Table::Objects).count(),
            0
        );
    }

    fn part(n: u32, etag: &str) -> PartRecord {
        PartRecord {
            part_number: n,
            size: 5,
            etag: etag.into(),
            last_modified_ms: 1,
            checksum: None,
            chunks: vec![ChunkRef {
                id: crate::id::ChunkId([n as u8; 32]),
                len: 5,
            }],
            profile: Some(ErasureProfile {
                data_shards: 1,
                parity_shards: 0,
            }),
        }
    }

    #[test]
    fn complete_keeps_listed_parts_as_segments_and_drops_the_rest() {
        let mut s = State::new();
        let upload = UploadRecord {
            key: "big".into(),
            upload_id: "u1".into(),
            initiated_ms: 1,
            owner: "o".into(),
            content_type: None,
            headers: vec![],
            user_metadata: vec![],
            checksum_algorithm: None,
            checksum_kind: None,
        };
        assert_eq!(
            s.run(Command::CreateUpload {
                bucket: B,
                record: upload
            }),
            Outcome::Ok
        );
        for n in 1..=3 {
            let out = s.run(Command::PutPart {
                bucket: B,
                key: "big".into(),
                upload_id: "u1".into(),
                record: part(n, &format!("e{n}")),
            });
            assert_eq!(out, Outcome::Ok);
        }
        let mut obj = entry("x-2");
        obj.data = ObjectData::Chunks {
            codec: CodecId::ReedSolomonGf8,
            profile: ErasureProfile {
                data_shards: 1,
                parity_shards: 0,
            },
            segments: [1, 3]
                .iter()
                .map(|&n| Segment {
                    len: 5,
                    chunks: SegmentChunks::Part {
                        upload_id: "u1".into(),
                        part_number: n,
                    },
                })
                .collect(),
        };
        let complete = |parts: Vec<CompletedPart>| Command::CompleteUpload {
            bucket: B,
            key: "big".into(),
            upload_id: "u1".into(),
            parts,
            entry: obj.clone(),
            condition: None,
        };
        let listed = |n: u32, etag: &str| CompletedPart {
            part_number: n,
            etag: etag.into(),
            size: 5,
        };
        assert_eq!(
            s.run(complete(vec![listed(1, "e1"), listed(3, "wrong")])),
            Outcome::InvalidPart
        );
        assert_eq!(
            s.run(complete(vec![listed(1, "e1"), listed(3, "e3")])),
            Outcome::Ok
        );
        let parts: Vec<u32> =
            s.kv.0
                .keys()
                .filter(|k| k.table == Table::Parts)
                .filter_map(|k| part_number_of(&k.sort_key))
                .collect();
        assert_eq!(parts, [1, 3]);
        assert_eq!(
            s.run(complete(vec![listed(1, "e1")])),
            Outcome::NoSuchUpload
        );
        // Overwriting the object takes its parts with it.
        s.run(put("big", "y", None));
        assert_eq!(s.kv.0.keys().filter(|k| k.table == Table::Parts).count(), 0);
    }

    #[test]
    fn overlay_scans_see_their_own_writes() {
        let mut kv = MemoryKv::default();
        for k in ["a", "b", "c"] {
            kv.0.insert(MetaKey::new(Table::Objects, "p", k), vec![1]);
        }
        let mut txn = Overlay::new(&kv);
        txn.delete(MetaKey::new(Table::Objects, "p", "a"));
        txn.put(MetaKey::new(Table::Objects, "p", "bb"), vec![2]);
        let got: Vec<String> = txn
            .scan(Table::Objects, "p", "", None, 3)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(got, ["b", "bb", "c"]);
        let got: Vec<String> = txn
            .scan(Table::Objects, "p", "b", Some("b"), 10)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(got, ["bb"]);
    }
}
