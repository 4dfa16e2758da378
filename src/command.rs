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

use crate::id::ChunkId;
use crate::layout::Layout;
use crate::record::{
    self, AccessKeyRecord, BucketId, BucketRecord, BucketSettings, BucketStats, ChunkState,
    ConfigKind, DefaultRetention, DeleteMarker, DropRecord, Grant, GroupStats, IntentRecord,
    LifecycleConfig, MetaKey, ObjectData, ObjectEntry, PartRecord, RefRecord, Referrer, RequestId,
    Retention, SegmentChunks, Table, UploadRecord, VersionId, VersionRef, Versioning, keys,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod lifecycle;
pub mod versions;

pub use lifecycle::LifecycleCursor;

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
/// Most configurations a bucket has (one per [`ConfigKind`], with room).
pub const MAX_CONFIG_KINDS: usize = 64;
/// Most chunks one reference command names.
pub const MAX_REF_BATCH: usize = 1024;
/// Most writes in progress a bucket's seal cancels in one apply (each is a
/// PUT a client is still sending; the rest fail at their commit anyway,
/// as their bucket is sealed).
pub const MAX_SEAL_INTENTS: usize = 10_000;

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
    /// The version to remove for good; `None`: the key's latest, as the
    /// bucket's versioning says.
    pub version: Option<VersionRef>,
    /// Only if the ETag of the version deleted is this (`If-Match`).
    pub if_match: Option<String>,
    /// The id of the delete marker this deletion makes, if it makes one.
    pub marker: VersionId,
    /// The caller may bypass GOVERNANCE retention and asked to.
    pub bypass_governance: bool,
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
    /// System group: set (or remove, with `None`) one configuration of a
    /// bucket, if the name is still the bucket's.
    PutBucketConfig {
        /// The bucket's name.
        name: String,
        /// The id it must still have.
        bucket: BucketId,
        /// Which configuration.
        kind: ConfigKind,
        /// Its encoded record.
        value: Option<Vec<u8>>,
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
        /// The deleter's clock (the delete markers' Last-Modified).
        now_ms: u64,
        /// The deleter's access key id (the delete markers' owner).
        owner: String,
    },
    /// Data group: a new bucket's settings, before its name is
    /// registered (a bucket created with Object Lock); only where none
    /// were set.
    InitBucket {
        /// Bucket.
        bucket: BucketId,
        /// Its settings.
        settings: BucketSettings,
    },
    /// Data group: turn Object Lock on (a versioning-enabled bucket) and
    /// set its default retention (`None`: no default).
    SetObjectLock {
        /// Bucket.
        bucket: BucketId,
        /// The default retention.
        default_retention: Option<DefaultRetention>,
    },
    /// Data group: set or clear a version's retention, as Object Lock
    /// allows: COMPLIANCE never shortened or removed before its date,
    /// GOVERNANCE only with `bypass_governance`.
    SetRetention {
        /// Bucket.
        bucket: BucketId,
        /// Key.
        key: String,
        /// The version (`None`: the latest).
        version: Option<VersionRef>,
        /// The new retention.
        retention: Option<Retention>,
        /// The caller may bypass GOVERNANCE retention and asked to.
        bypass_governance: bool,
        /// The caller's clock (whether a retention is still running).
        now_ms: u64,
    },
    /// Data group: replace a version's tags.
    SetTags {
        /// Bucket.
        bucket: BucketId,
        /// Key.
        key: String,
        /// The version (`None`: the latest).
        version: Option<VersionRef>,
        /// The tags.
        tags: Vec<(String, String)>,
    },
    /// Data group: put a version under legal hold or release it.
    SetLegalHold {
        /// Bucket.
        bucket: BucketId,
        /// Key.
        key: String,
        /// The version (`None`: the latest).
        version: Option<VersionRef>,
        /// On or off.
        on: bool,
    },
    /// Data group: turn a bucket's versioning on or suspend it.
    SetVersioning {
        /// Bucket.
        bucket: BucketId,
        /// Enabled or Suspended.
        state: Versioning,
    },
    /// Data group: set (or remove, with `None`) a bucket's lifecycle
    /// configuration.
    SetLifecycle {
        /// Bucket.
        bucket: BucketId,
        /// The configuration (at most [`lifecycle::MAX_RULES`] rules).
        config: Option<LifecycleConfig>,
    },
    /// Data group: one step of a lifecycle pass over a bucket: from
    /// `from`, read at most [`lifecycle::STEP_READS`] records and apply
    /// the rules that are due (see `docs/design/lifecycle.md`).
    Lifecycle {
        /// Bucket.
        bucket: BucketId,
        /// Where this step starts.
        from: LifecycleCursor,
        /// The worker's clock (bounded by the leader's).
        now_ms: u64,
        /// The length of a day, in ms (a shorter one only in tests).
        day_ms: u64,
        /// Ids for the delete markers the step may make; it makes at most
        /// this many (at most [`lifecycle::STEP_ACTIONS`]).
        markers: Vec<VersionId>,
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
    /// Bucket's group: a write will add chunk references under `writer`
    /// before it commits (it must commit while this intent exists).
    BeginWrite {
        /// Bucket.
        bucket: BucketId,
        /// The writer id (the version or part upload it will commit).
        writer: VersionId,
        /// Object key.
        key: String,
        /// The writer's clock.
        now_ms: u64,
    },
    /// Bucket's group: a long write is still going.
    RenewWrite {
        /// Bucket.
        bucket: BucketId,
        /// The writer.
        writer: VersionId,
        /// The writer's clock.
        now_ms: u64,
    },
    /// Bucket's group: end a write's intent, so that it can never commit
    /// (its references are then dead).
    CancelWrite {
        /// Bucket.
        bucket: BucketId,
        /// The writer.
        writer: VersionId,
        /// Only if it was last renewed at or before this (the audit's
        /// guard against a renewal it did not see).
        renewed_at_most: Option<u64>,
    },
    /// Chunks' group: `referrer` references these chunks (each with the
    /// bytes it takes in shards).
    AddRefs {
        /// Who.
        referrer: Referrer,
        /// At most [`MAX_REF_BATCH`], all of this group.
        chunks: Vec<(ChunkId, u64)>,
        /// The proposer's clock.
        now_ms: u64,
        /// Copies: only chunks that still exist (referenced, or
        /// unreferenced but not being deleted) may be referenced.
        require_present: bool,
    },
    /// Chunks' group: `writer` no longer references these chunks.
    RemoveRefs {
        /// The writer.
        writer: VersionId,
        /// At most [`MAX_REF_BATCH`], all of this group.
        chunks: Vec<ChunkId>,
        /// The proposer's clock.
        now_ms: u64,
    },
    /// Chunks' group: the audit saw these references' writers committed.
    ConfirmRefs {
        /// `(chunk, writer)`, at most [`MAX_REF_BATCH`].
        refs: Vec<(ChunkId, VersionId)>,
    },
    /// Chunks' group: start deleting chunks that have had no reference for
    /// `grace_ms` (and, with `orphans`, chunks that never had one).
    Condemn {
        /// At most [`MAX_REF_BATCH`], all of this group.
        chunks: Vec<ChunkId>,
        /// The proposer's clock.
        now_ms: u64,
        /// The grace period.
        grace_ms: u64,
        /// Whether chunks with no record at all are condemned too (the
        /// proposer found their shards older than the grace).
        orphans: bool,
    },
    /// Chunks' group: condemned chunks are gone from every holder.
    Forget {
        /// At most [`MAX_REF_BATCH`], all of this group.
        chunks: Vec<ChunkId>,
    },
    /// A group's dropped references were removed.
    DropsDone {
        /// The writers whose drop records go.
        writers: Vec<VersionId>,
    },
    /// Bucket's group: set (or clear, with `None`) a bucket's quota.
    SetQuota {
        /// Bucket.
        bucket: BucketId,
        /// Most bytes of objects.
        max_bytes: Option<u64>,
        /// Most objects.
        max_objects: Option<u64>,
    },
    /// Data group: replace a version's ACL grants.
    SetGrants {
        /// Bucket.
        bucket: BucketId,
        /// Key.
        key: String,
        /// The version (`None`: the latest).
        version: Option<VersionRef>,
        /// The grants beyond its owner's full control.
        grants: Vec<Grant>,
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
                | Self::PutBucketConfig { .. }
                | Self::AllowKey { .. }
                | Self::PutAccessKey { .. }
                | Self::DeleteAccessKey { .. }
        )
    }

    /// Take the earlier of the proposer's clock and `node_now_ms` (the
    /// leader's) where a clock decides whether a retention still runs:
    /// so a version is removed before its retain-until date only if the
    /// gateway's clock and the leader's both run ahead.
    pub fn clamp_clock(&mut self, node_now_ms: u64) {
        match self {
            Self::DeleteObjects { now_ms, .. }
            | Self::SetRetention { now_ms, .. }
            | Self::Lifecycle { now_ms, .. } => {
                *now_ms = (*now_ms).min(node_now_ms);
            }
            _ => {}
        }
    }

    /// The bucket a data-group command writes to.
    pub fn bucket(&self) -> Option<BucketId> {
        match self {
            Self::PutObject { bucket, .. }
            | Self::DeleteObjects { bucket, .. }
            | Self::SetVersioning { bucket, .. }
            | Self::SetLifecycle { bucket, .. }
            | Self::Lifecycle { bucket, .. }
            | Self::InitBucket { bucket, .. }
            | Self::SetObjectLock { bucket, .. }
            | Self::SetRetention { bucket, .. }
            | Self::SetLegalHold { bucket, .. }
            | Self::SetTags { bucket, .. }
            | Self::SetGrants { bucket, .. }
            | Self::CreateUpload { bucket, .. }
            | Self::PutPart { bucket, .. }
            | Self::CompleteUpload { bucket, .. }
            | Self::AbortUpload { bucket, .. }
            | Self::SealBucket { bucket }
            | Self::UnsealBucket { bucket }
            | Self::BeginWrite { bucket, .. }
            | Self::RenewWrite { bucket, .. }
            | Self::CancelWrite { bucket, .. }
            | Self::SetQuota { bucket, .. } => Some(*bucket),
            _ => None,
        }
    }

    /// The partition keys whose group a data command must go to: its
    /// bucket's, or its chunks' (`None`: any group, as for
    /// [`Command::DropsDone`], which names records of the group it is sent
    /// to).
    pub fn partition_keys(&self) -> Option<Vec<String>> {
        if let Some(b) = self.bucket() {
            return Some(vec![b.to_hex()]);
        }
        let hex = |c: &ChunkId| c.to_hex();
        Some(match self {
            Self::AddRefs { chunks, .. } => chunks.iter().map(|(c, _)| hex(c)).collect(),
            Self::RemoveRefs { chunks, .. }
            | Self::Condemn { chunks, .. }
            | Self::Forget { chunks } => chunks.iter().map(hex).collect(),
            Self::ConfirmRefs { refs } => refs.iter().map(|(c, _)| hex(c)).collect(),
            _ => return None,
        })
    }
}

/// What applying a command decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Done.
    Ok,
    /// A write to a versioned bucket made this version.
    Versioned {
        /// Its S3 version id.
        version_id: String,
    },
    /// A deletion in a versioned bucket, or of a named version.
    Removed {
        /// The version removed, or the delete marker made.
        version_id: Option<String>,
        /// Whether that is a delete marker.
        delete_marker: bool,
    },
    /// The bucket's state does not allow this (Object Lock keeps
    /// versioning enabled) (409).
    InvalidBucketState,
    /// The version is under retention or legal hold (403).
    ObjectLocked,
    /// Object Lock is not enabled on the bucket (400).
    NoObjectLock,
    /// No such version (404).
    NoSuchVersion,
    /// The version named is a delete marker (405).
    DeleteMarker,
    /// Per deletion of a batch, in order.
    Deleted(Vec<Outcome>),
    /// What a [`Command::Lifecycle`] step did.
    Lifecycle {
        /// Where the next step starts (`None`: the pass is over).
        next: Option<LifecycleCursor>,
        /// Versions expired, delete markers made or removed, uploads
        /// aborted.
        actions: u32,
    },
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
    /// A chunk named is being deleted; try again once it is gone.
    ChunkBusy,
    /// A chunk a copy names no longer exists.
    ChunkGone,
    /// The write's intent is gone (cancelled by the audit, or the bucket
    /// was sealed): it cannot commit.
    WriteExpired,
    /// No such write intent.
    NoSuchWrite,
    /// The bucket's quota would be exceeded.
    QuotaExceeded,
    /// What a [`Command::Condemn`] found.
    Condemned {
        /// Condemned by this command: the proposer deletes them.
        now: Vec<ChunkId>,
        /// Condemned earlier, with when (a deletion that may still be in
        /// progress, or one whose deleter died).
        before: Vec<(ChunkId, u64)>,
    },
    /// The command was malformed or met a record it cannot read; nothing
    /// was changed.
    Invalid(String),
}

impl Outcome {
    /// Whether the command did what it was asked (its writes were made).
    pub fn succeeded(&self) -> bool {
        matches!(
            self,
            Self::Ok
                | Self::Versioned { .. }
                | Self::Removed { .. }
                | Self::Deleted(_)
                | Self::Lifecycle { .. }
        )
    }
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
    let outcome = apply(txn, index, &request.command);
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

/// Abort an upload: its parts go, their chunks are dropped.
fn abort_upload(
    txn: &mut impl Txn,
    bucket: BucketId,
    key: &str,
    upload_id: &str,
) -> Result<Outcome, Outcome> {
    let ukey = keys::upload(bucket, key, upload_id);
    if txn.get(&ukey).is_none() {
        return Ok(Outcome::NoSuchUpload);
    }
    let mut part_bytes = 0u64;
    for (sort_key, value) in all_parts(txn, bucket, upload_id) {
        let part: PartRecord = decode_value(Table::Parts, &value)?;
        part_bytes += part.size;
        drop_refs(
            txn,
            part.version,
            part.chunks.iter().map(|c| c.id).collect(),
        );
        txn.delete(MetaKey::new(Table::Parts, bucket.to_hex(), sort_key));
    }
    account(
        txn,
        bucket,
        Delta {
            uploads: -1,
            upload_bytes: -(part_bytes as i64),
            ..Delta::default()
        },
    )?;
    txn.delete(ukey);
    Ok(Outcome::Ok)
}

/// Where the `i`th version made by the entry at log index `index` stands
/// among its key's versions: later entries' versions stand later.
fn sequence(index: u64, i: usize) -> u64 {
    (index << 10) | i as u64
}

/// Apply one command, the entry at log index `index` (see the module
/// documentation).
pub fn apply(txn: &mut impl Txn, index: u64, command: &Command) -> Outcome {
    const _: () = assert!(MAX_DELETE_BATCH < 1 << 10);
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
                        let configs = txn.scan(
                            Table::BucketConfigs,
                            "",
                            &keys::bucket_configs_prefix(*id),
                            None,
                            MAX_CONFIG_KINDS,
                        );
                        for (sort_key, _) in configs {
                            txn.delete(MetaKey::new(Table::BucketConfigs, "", sort_key));
                        }
                        Ok(Outcome::Ok)
                    }
                    _ => Ok(Outcome::NoSuchBucket),
                }
            }
            Command::PutBucketConfig {
                name,
                bucket,
                kind,
                value,
            } => {
                match read::<BucketRecord>(txn, &keys::bucket(name))? {
                    Some(b) if b.id == *bucket => {}
                    _ => return Ok(Outcome::NoSuchBucket),
                }
                let key = keys::bucket_config(*bucket, *kind);
                match value {
                    Some(v) => txn.put(key, v.clone()),
                    None => txn.delete(key),
                }
                Ok(Outcome::Ok)
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
                let current = read::<ObjectEntry>(txn, &keys::object(*bucket, key))?;
                if let Some(failed) = check(condition.as_ref(), current.as_ref()) {
                    return Ok(failed);
                }
                let intent = keys::intent(*bucket, entry.version);
                if !here_chunks(&entry.data).is_empty() && txn.get(&intent).is_none() {
                    return Ok(Outcome::WriteExpired);
                }
                let out = versions::put(
                    txn,
                    *bucket,
                    key,
                    entry.clone(),
                    sequence(index, 0),
                    Delta::default(),
                )?;
                if out.succeeded() {
                    txn.delete(intent);
                }
                Ok(out)
            }
            Command::DeleteObjects {
                bucket,
                deletions,
                now_ms,
                owner,
            } => {
                if deletions.len() > MAX_DELETE_BATCH {
                    return Ok(Outcome::Invalid("too many deletions".into()));
                }
                let mut outcomes = Vec::with_capacity(deletions.len());
                for (i, d) in deletions.iter().enumerate() {
                    if let Some(etag) = &d.if_match {
                        let target = versions::find(txn, *bucket, &d.key, d.version)?;
                        let failed = match target {
                            None => Some(Outcome::NoSuchKey),
                            Some(versions::Found::Current(e))
                            | Some(versions::Found::Noncurrent(
                                _,
                                record::VersionRecord::Object(e),
                            )) => (e.etag != *etag).then_some(Outcome::PreconditionFailed),
                            Some(versions::Found::Noncurrent(..)) => {
                                Some(Outcome::PreconditionFailed)
                            }
                        };
                        if let Some(failed) = failed {
                            outcomes.push(failed);
                            continue;
                        }
                    }
                    let marker = DeleteMarker {
                        version: d.marker,
                        seq: sequence(index, i),
                        null_version: false,
                        last_modified_ms: *now_ms,
                        owner: owner.clone(),
                    };
                    outcomes.push(versions::delete(
                        txn,
                        versions::Delete {
                            bucket: *bucket,
                            key: &d.key,
                            version: d.version,
                            marker,
                            bypass_governance: d.bypass_governance,
                        },
                    )?);
                }
                Ok(Outcome::Deleted(outcomes))
            }
            Command::SetVersioning { bucket, state } => {
                unsealed(txn, *bucket)?;
                versions::set_versioning(txn, *bucket, *state)
            }
            Command::SetLifecycle { bucket, config } => {
                unsealed(txn, *bucket)?;
                match config {
                    Some(c) if c.rules.len() > lifecycle::MAX_RULES => {
                        Ok(Outcome::Invalid("too many lifecycle rules".into()))
                    }
                    Some(c) => {
                        txn.put(keys::lifecycle(*bucket), record::encode(c));
                        Ok(Outcome::Ok)
                    }
                    None => {
                        txn.delete(keys::lifecycle(*bucket));
                        Ok(Outcome::Ok)
                    }
                }
            }
            Command::Lifecycle {
                bucket,
                from,
                now_ms,
                day_ms,
                markers,
            } => {
                unsealed(txn, *bucket)?;
                lifecycle::step(
                    txn,
                    index,
                    lifecycle::Step {
                        bucket: *bucket,
                        from: from.clone(),
                        now_ms: *now_ms,
                        day_ms: *day_ms,
                        markers,
                    },
                )
            }
            Command::InitBucket { bucket, settings } => {
                unsealed(txn, *bucket)?;
                let skey = keys::bucket_settings(*bucket);
                if txn.get(&skey).is_none() {
                    txn.put(skey, record::encode(settings));
                }
                Ok(Outcome::Ok)
            }
            Command::SetObjectLock {
                bucket,
                default_retention,
            } => {
                unsealed(txn, *bucket)?;
                versions::set_object_lock(txn, *bucket, *default_retention)
            }
            Command::SetRetention {
                bucket,
                key,
                version,
                retention,
                bypass_governance,
                now_ms,
            } => {
                unsealed(txn, *bucket)?;
                versions::set_retention(
                    txn,
                    *bucket,
                    key,
                    *version,
                    *retention,
                    *bypass_governance,
                    *now_ms,
                )
            }
            Command::SetTags {
                bucket,
                key,
                version,
                tags,
            } => {
                unsealed(txn, *bucket)?;
                let tags = tags.clone();
                versions::set_field(txn, *bucket, key, *version, |e| e.tags = tags)
            }
            Command::SetGrants {
                bucket,
                key,
                version,
                grants,
            } => {
                unsealed(txn, *bucket)?;
                let grants = grants.clone();
                versions::set_field(txn, *bucket, key, *version, |e| e.grants = grants)
            }
            Command::SetLegalHold {
                bucket,
                key,
                version,
                on,
            } => {
                unsealed(txn, *bucket)?;
                versions::set_legal_hold(txn, *bucket, key, *version, *on)
            }
            Command::CreateUpload { bucket, record } => {
                unsealed(txn, *bucket)?;
                if (record.retention.is_some() || record.legal_hold)
                    && !versions::settings(txn, *bucket)?.object_lock
                {
                    return Ok(Outcome::NoObjectLock);
                }
                let ukey = keys::upload(*bucket, &record.key, &record.upload_id);
                if txn.get(&ukey).is_none() {
                    account(
                        txn,
                        *bucket,
                        Delta {
                            uploads: 1,
                            ..Delta::default()
                        },
                    )?;
                }
                txn.put(ukey, record::encode(record));
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
                let intent = keys::intent(*bucket, record.version);
                if !record.chunks.is_empty() && txn.get(&intent).is_none() {
                    return Ok(Outcome::WriteExpired);
                }
                let pkey = keys::part(*bucket, upload_id, record.part_number);
                let old = read::<PartRecord>(txn, &pkey)?;
                if let Some(old) = &old
                    && old.version != record.version
                {
                    drop_refs(txn, old.version, old.chunks.iter().map(|c| c.id).collect());
                }
                let old_size = old.map_or(0, |o| o.size);
                account(
                    txn,
                    *bucket,
                    Delta {
                        upload_bytes: record.size as i64 - old_size as i64,
                        ..Delta::default()
                    },
                )?;
                txn.delete(intent);
                txn.put(pkey, record::encode(record));
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
                let current = read::<ObjectEntry>(txn, &keys::object(*bucket, key))?;
                if let Some(failed) = check(condition.as_ref(), current.as_ref()) {
                    return Ok(failed);
                }
                // Parts the object does not list go with the upload.
                let listed: std::collections::BTreeSet<u32> =
                    parts.iter().map(|p| p.part_number).collect();
                let mut part_bytes = 0u64;
                let mut unlisted = Vec::new();
                for (sort_key, value) in all_parts(txn, *bucket, upload_id) {
                    let part: PartRecord = decode_value(Table::Parts, &value)?;
                    part_bytes += part.size;
                    if !listed.contains(&part.part_number) {
                        unlisted.push((sort_key, part));
                    }
                }
                let out = versions::put(
                    txn,
                    *bucket,
                    key,
                    entry.clone(),
                    sequence(index, 0),
                    Delta {
                        uploads: -1,
                        upload_bytes: -(part_bytes as i64),
                        ..Delta::default()
                    },
                )?;
                if !out.succeeded() {
                    return Ok(out);
                }
                for (sort_key, part) in unlisted {
                    drop_refs(
                        txn,
                        part.version,
                        part.chunks.iter().map(|c| c.id).collect(),
                    );
                    txn.delete(MetaKey::new(Table::Parts, bucket.to_hex(), sort_key));
                }
                txn.delete(ukey);
                Ok(out)
            }
            Command::AbortUpload {
                bucket,
                key,
                upload_id,
            } => abort_upload(txn, *bucket, key, upload_id),
            Command::SealBucket { bucket } => {
                let pk = bucket.to_hex();
                let busy = !txn.scan(Table::Objects, &pk, "", None, 1).is_empty()
                    || !txn.scan(Table::Versions, &pk, "", None, 1).is_empty()
                    || !txn.scan(Table::Uploads, &pk, "", None, 1).is_empty();
                if busy {
                    return Ok(Outcome::BucketNotEmpty);
                }
                // PUTs still sending can no longer commit: their references
                // are dead from here on.
                for (writer, _) in txn.scan(Table::Intents, &pk, "", None, MAX_SEAL_INTENTS) {
                    txn.delete(MetaKey::new(Table::Intents, pk.clone(), writer));
                }
                txn.delete(keys::bucket_stats(*bucket));
                txn.delete(keys::bucket_settings(*bucket));
                txn.delete(keys::lifecycle(*bucket));
                txn.put(keys::sealed(*bucket), Vec::new());
                Ok(Outcome::Ok)
            }
            Command::UnsealBucket { bucket } => {
                txn.delete(keys::sealed(*bucket));
                Ok(Outcome::Ok)
            }
            Command::BeginWrite {
                bucket,
                writer,
                key,
                now_ms,
            } => {
                unsealed(txn, *bucket)?;
                let intent = IntentRecord {
                    key: key.clone(),
                    renewed_ms: *now_ms,
                };
                txn.put(keys::intent(*bucket, *writer), record::encode(&intent));
                Ok(Outcome::Ok)
            }
            Command::RenewWrite {
                bucket,
                writer,
                now_ms,
            } => {
                let ikey = keys::intent(*bucket, *writer);
                let Some(mut intent) = read::<IntentRecord>(txn, &ikey)? else {
                    return Ok(Outcome::NoSuchWrite);
                };
                intent.renewed_ms = intent.renewed_ms.max(*now_ms);
                txn.put(ikey, record::encode(&intent));
                Ok(Outcome::Ok)
            }
            Command::CancelWrite {
                bucket,
                writer,
                renewed_at_most,
            } => {
                let ikey = keys::intent(*bucket, *writer);
                match read::<IntentRecord>(txn, &ikey)? {
                    Some(i) if renewed_at_most.is_none_or(|t| i.renewed_ms <= t) => {
                        txn.delete(ikey);
                        Ok(Outcome::Ok)
                    }
                    _ => Ok(Outcome::NoSuchWrite),
                }
            }
            Command::AddRefs {
                referrer,
                chunks,
                now_ms,
                require_present,
            } => {
                if chunks.len() > MAX_REF_BATCH {
                    return Ok(Outcome::Invalid("too many chunks".into()));
                }
                for (c, _) in chunks {
                    match read::<ChunkState>(txn, &keys::chunk_state(c))? {
                        Some(ChunkState::Condemned { .. }) => return Ok(Outcome::ChunkBusy),
                        None if *require_present && !has_refs(txn, c) => {
                            return Ok(Outcome::ChunkGone);
                        }
                        _ => {}
                    }
                }
                let writer = referrer.writer();
                let mut stats = read_group_stats(txn)?;
                for (c, stored) in chunks {
                    match read::<ChunkState>(txn, &keys::chunk_state(c))? {
                        Some(ChunkState::Unreferenced { stored: s, .. }) => {
                            txn.delete(keys::chunk_state(c));
                            stats.unreferenced_chunks = stats.unreferenced_chunks.saturating_sub(1);
                            stats.unreferenced_bytes = stats.unreferenced_bytes.saturating_sub(s);
                            stats.chunks += 1;
                            stats.stored_bytes += s;
                        }
                        Some(ChunkState::Condemned { .. }) => {
                            unreachable!("condemned chunks were refused above")
                        }
                        None if !has_refs(txn, c) => {
                            stats.chunks += 1;
                            stats.stored_bytes += stored;
                        }
                        None => {}
                    }
                    let r = RefRecord {
                        referrer: referrer.clone(),
                        created_ms: *now_ms,
                        stored: *stored,
                    };
                    let value = record::encode(&r);
                    txn.put(keys::unconfirmed(c, writer), value.clone());
                    txn.put(keys::chunk_ref(c, writer), value);
                }
                txn.put(keys::group_stats(), record::encode(&stats));
                Ok(Outcome::Ok)
            }
            Command::RemoveRefs {
                writer,
                chunks,
                now_ms,
            } => {
                if chunks.len() > MAX_REF_BATCH {
                    return Ok(Outcome::Invalid("too many chunks".into()));
                }
                let mut stats = read_group_stats(txn)?;
                for c in chunks {
                    let rkey = keys::chunk_ref(c, *writer);
                    let Some(r) = read::<RefRecord>(txn, &rkey)? else {
                        continue;
                    };
                    txn.delete(rkey);
                    txn.delete(keys::unconfirmed(c, *writer));
                    if !has_refs(txn, c) && txn.get(&keys::chunk_state(c)).is_none() {
                        let state = ChunkState::Unreferenced {
                            since_ms: *now_ms,
                            stored: r.stored,
                        };
                        txn.put(keys::chunk_state(c), record::encode(&state));
                        stats.chunks = stats.chunks.saturating_sub(1);
                        stats.stored_bytes = stats.stored_bytes.saturating_sub(r.stored);
                        stats.unreferenced_chunks += 1;
                        stats.unreferenced_bytes += r.stored;
                    }
                }
                txn.put(keys::group_stats(), record::encode(&stats));
                Ok(Outcome::Ok)
            }
            Command::ConfirmRefs { refs } => {
                if refs.len() > MAX_REF_BATCH {
                    return Ok(Outcome::Invalid("too many references".into()));
                }
                for (c, w) in refs {
                    txn.delete(keys::unconfirmed(c, *w));
                }
                Ok(Outcome::Ok)
            }
            Command::Condemn {
                chunks,
                now_ms,
                grace_ms,
                orphans,
            } => {
                if chunks.len() > MAX_REF_BATCH {
                    return Ok(Outcome::Invalid("too many chunks".into()));
                }
                let (mut now, mut before) = (Vec::new(), Vec::new());
                for c in chunks {
                    if has_refs(txn, c) {
                        continue;
                    }
                    let skey = keys::chunk_state(c);
                    let stored = match read::<ChunkState>(txn, &skey)? {
                        Some(ChunkState::Condemned { since_ms, .. }) => {
                            before.push((*c, since_ms));
                            continue;
                        }
                        Some(ChunkState::Unreferenced { since_ms, stored })
                            if since_ms.saturating_add(*grace_ms) <= *now_ms =>
                        {
                            stored
                        }
                        None if *orphans => 0,
                        _ => continue,
                    };
                    let state = ChunkState::Condemned {
                        since_ms: *now_ms,
                        stored,
                    };
                    txn.put(skey, record::encode(&state));
                    now.push(*c);
                }
                Ok(Outcome::Condemned { now, before })
            }
            Command::Forget { chunks } => {
                if chunks.len() > MAX_REF_BATCH {
                    return Ok(Outcome::Invalid("too many chunks".into()));
                }
                let mut stats = read_group_stats(txn)?;
                for c in chunks {
                    let skey = keys::chunk_state(c);
                    if let Some(ChunkState::Condemned { stored, .. }) =
                        read::<ChunkState>(txn, &skey)?
                    {
                        txn.delete(skey);
                        if stored > 0 {
                            stats.unreferenced_chunks = stats.unreferenced_chunks.saturating_sub(1);
                            stats.unreferenced_bytes =
                                stats.unreferenced_bytes.saturating_sub(stored);
                        }
                    }
                }
                txn.put(keys::group_stats(), record::encode(&stats));
                Ok(Outcome::Ok)
            }
            Command::DropsDone { writers } => {
                if writers.len() > MAX_REF_BATCH {
                    return Ok(Outcome::Invalid("too many drops".into()));
                }
                for w in writers {
                    txn.delete(keys::drop(*w));
                }
                Ok(Outcome::Ok)
            }
            Command::SetQuota {
                bucket,
                max_bytes,
                max_objects,
            } => {
                unsealed(txn, *bucket)?;
                let skey = keys::bucket_stats(*bucket);
                let mut stats = read::<BucketStats>(txn, &skey)?.unwrap_or_default();
                stats.max_bytes = *max_bytes;
                stats.max_objects = *max_objects;
                txn.put(skey, record::encode(&stats));
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

#[cfg(test)]
fn part_number_of(sort_key: &str) -> Option<u32> {
    sort_key.rsplit_once('/')?.1.parse().ok()
}

fn decode_value<T: serde::de::DeserializeOwned>(table: Table, bytes: &[u8]) -> Result<T, Outcome> {
    record::decode(table.name(), bytes).map_err(|e| Outcome::Invalid(e.to_string()))
}

/// The chunks an object entry lists itself (single PUTs and copies; a
/// multipart object's chunks are its parts').
pub fn here_chunks(data: &ObjectData) -> Vec<ChunkId> {
    match data {
        ObjectData::Chunks { segments, .. } => segments
            .iter()
            .filter_map(|s| match &s.chunks {
                SegmentChunks::Here(c) => Some(c.iter().map(|c| c.id)),
                SegmentChunks::Part { .. } => None,
            })
            .flatten()
            .collect(),
        ObjectData::Inline(_) => Vec::new(),
    }
}

fn has_refs(txn: &impl Txn, chunk: &ChunkId) -> bool {
    !txn.scan(Table::Refs, &chunk.to_hex(), "", None, 1)
        .is_empty()
}

/// Leave a drop record: the node leading the group removes `writer`'s
/// references to `chunks` from their groups.
fn drop_refs(txn: &mut impl Txn, writer: VersionId, chunks: Vec<ChunkId>) {
    if !chunks.is_empty() {
        txn.put(keys::drop(writer), record::encode(&DropRecord { chunks }));
    }
}

/// An object version going away drops its references, and takes the part
/// records it owns (and their references) with it.
fn drop_data(txn: &mut impl Txn, bucket: BucketId, old: &ObjectEntry) -> Result<(), Outcome> {
    drop_refs(txn, old.version, here_chunks(&old.data));
    if let ObjectData::Chunks { segments, .. } = &old.data {
        for s in segments {
            if let SegmentChunks::Part {
                upload_id,
                part_number,
            } = &s.chunks
            {
                let pkey = keys::part(bucket, upload_id, *part_number);
                if let Some(part) = read::<PartRecord>(txn, &pkey)? {
                    drop_refs(
                        txn,
                        part.version,
                        part.chunks.iter().map(|c| c.id).collect(),
                    );
                }
                txn.delete(pkey);
            }
        }
    }
    Ok(())
}

/// A change of a bucket's usage.
#[derive(Debug, Default, Clone, Copy)]
struct Delta {
    objects: i64,
    bytes: i64,
    uploads: i64,
    upload_bytes: i64,
}

fn add(v: u64, d: i64) -> u64 {
    v.saturating_add_signed(d)
}

fn read_group_stats(txn: &impl Txn) -> Result<GroupStats, Outcome> {
    Ok(read::<GroupStats>(txn, &keys::group_stats())?.unwrap_or_default())
}

/// Refuse a write that would take a bucket past its quota (shrinking is
/// always allowed).
fn admit(txn: &impl Txn, bucket: BucketId, objects: i64, bytes: i64) -> Result<(), Outcome> {
    let Some(s) = read::<BucketStats>(txn, &keys::bucket_stats(bucket))? else {
        return Ok(());
    };
    let over_objects = objects > 0 && s.max_objects.is_some_and(|m| add(s.objects, objects) > m);
    let over_bytes = bytes > 0 && s.max_bytes.is_some_and(|m| add(s.bytes, bytes) > m);
    if over_objects || over_bytes {
        return Err(Outcome::QuotaExceeded);
    }
    Ok(())
}

/// Keep a bucket's usage and its group's totals.
fn account(txn: &mut impl Txn, bucket: BucketId, d: Delta) -> Result<(), Outcome> {
    let skey = keys::bucket_stats(bucket);
    let mut s = read::<BucketStats>(txn, &skey)?.unwrap_or_default();
    s.objects = add(s.objects, d.objects);
    s.bytes = add(s.bytes, d.bytes);
    s.uploads = add(s.uploads, d.uploads);
    s.upload_bytes = add(s.upload_bytes, d.upload_bytes);
    txn.put(skey, record::encode(&s));
    let mut g = read_group_stats(txn)?;
    g.objects = add(g.objects, d.objects);
    g.bytes = add(g.bytes, d.bytes);
    g.uploads = add(g.uploads, d.uploads);
    g.upload_bytes = add(g.upload_bytes, d.upload_bytes);
    txn.put(keys::group_stats(), record::encode(&g));
    Ok(())
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
    use crate::record::{ChunkRef, Segment};

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
            seq: 0,
            null_version: true,
            owner: "o".into(),
            noncurrent_since_ms: None,
            tags: vec![],
            retention: None,
            legal_hold: false,
            grants: vec![],
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
                version: None,
                if_match: None,
                marker: VersionId([9; 16]),
                bypass_governance: false,
            }],
            now_ms: 1,
            owner: "o".into(),
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
                    version: None,
                    if_match: None,
                    marker: VersionId([9; 16]),
                    bypass_governance: false,
                },
                Deletion {
                    key: "missing".into(),
                    version: None,
                    if_match: None,
                    marker: VersionId([9; 16]),
                    bypass_governance: false,
                },
            ],
            now_ms: 1,
            owner: "o".into(),
        });
        assert_eq!(out, Outcome::Deleted(vec![Outcome::Ok, Outcome::Ok]));
        assert_eq!(
            s.kv.0.keys().filter(|k| k.table == Table::Objects).count(),
            0
        );
    }

    fn part(n: u32, etag: &str) -> PartRecord {
        PartRecord {
            version: VersionId([n as u8; 16]),
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
            tags: vec![],
            retention: None,
            legal_hold: false,
            grants: vec![],
        };
        assert_eq!(
            s.run(Command::CreateUpload {
                bucket: B,
                record: upload
            }),
            Outcome::Ok
        );
        for n in 1..=3 {
            s.run(Command::BeginWrite {
                bucket: B,
                writer: VersionId([n as u8; 16]),
                key: "big".into(),
                now_ms: 1,
            });
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

    fn chunk(n: u8) -> ChunkId {
        ChunkId([n; 32])
    }

    fn chunked(version: u8, chunks: &[u8]) -> ObjectEntry {
        let mut e = entry("c");
        e.version = VersionId([version; 16]);
        e.size = 10 * chunks.len() as u64;
        e.data = ObjectData::Chunks {
            codec: CodecId::ReedSolomonGf8,
            profile: ErasureProfile {
                data_shards: 1,
                parity_shards: 0,
            },
            segments: vec![Segment {
                len: e.size,
                chunks: SegmentChunks::Here(
                    chunks
                        .iter()
                        .map(|&c| ChunkRef {
                            id: chunk(c),
                            len: 10,
                        })
                        .collect(),
                ),
            }],
        };
        e
    }

    /// A whole PUT as the gateway runs it, every group in one state.
    fn put_chunked(s: &mut State, key: &str, version: u8, chunks: &[u8], now_ms: u64) -> Outcome {
        let writer = VersionId([version; 16]);
        s.run(Command::BeginWrite {
            bucket: B,
            writer,
            key: key.into(),
            now_ms,
        });
        let referrer = Referrer::Object {
            bucket: B,
            key: key.into(),
            version: writer,
        };
        let out = s.run(Command::AddRefs {
            referrer,
            chunks: chunks.iter().map(|&c| (chunk(c), 30)).collect(),
            now_ms,
            require_present: false,
        });
        if out != Outcome::Ok {
            return out;
        }
        s.run(put_entry(key, chunked(version, chunks)))
    }

    fn put_entry(key: &str, entry: ObjectEntry) -> Command {
        Command::PutObject {
            bucket: B,
            key: key.into(),
            entry,
            condition: None,
        }
    }

    /// Run the drop records as the node leading the group would.
    fn run_drops(s: &mut State, now_ms: u64) {
        let drops = s.kv.scan(Table::Drops, "", "", None, 1000);
        let mut writers = Vec::new();
        for (w, v) in drops {
            let writer = VersionId::parse(&w).unwrap();
            let d: DropRecord = record::decode("drop", &v).unwrap();
            s.run(Command::RemoveRefs {
                writer,
                chunks: d.chunks,
                now_ms,
            });
            writers.push(writer);
        }
        s.run(Command::DropsDone { writers });
    }

    fn state(s: &State, c: u8) -> Option<ChunkState> {
        s.kv.get(&keys::chunk_state(&chunk(c)))
            .map(|b| record::decode("chunk state", &b).unwrap())
    }

    fn group_stats(s: &State) -> GroupStats {
        s.kv.get(&keys::group_stats())
            .map(|b| record::decode("group stats", &b).unwrap())
            .unwrap_or_default()
    }

    #[test]
    fn a_commit_needs_its_intent_and_consumes_it() {
        let mut s = State::new();
        // No intent: a chunked entry cannot commit.
        assert_eq!(
            s.run(put_entry("k", chunked(1, &[1]))),
            Outcome::WriteExpired
        );
        assert_eq!(put_chunked(&mut s, "k", 2, &[1], 5), Outcome::Ok);
        assert!(s.kv.get(&keys::intent(B, VersionId([2; 16]))).is_none());
        // A cancelled write can never commit afterwards.
        s.run(Command::BeginWrite {
            bucket: B,
            writer: VersionId([3; 16]),
            key: "k".into(),
            now_ms: 5,
        });
        let cancel = |at_most| Command::CancelWrite {
            bucket: B,
            writer: VersionId([3; 16]),
            renewed_at_most: Some(at_most),
        };
        assert_eq!(s.run(cancel(4)), Outcome::NoSuchWrite, "renewed after 4");
        assert_eq!(s.run(cancel(5)), Outcome::Ok);
        assert_eq!(
            s.run(put_entry("k", chunked(3, &[2]))),
            Outcome::WriteExpired
        );
        assert_eq!(current(&s, "k").unwrap().version, VersionId([2; 16]));
    }

    #[test]
    fn a_shared_chunk_lives_while_any_reference_does_and_is_counted_once() {
        let mut s = State::new();
        put_chunked(&mut s, "a", 1, &[7, 8], 10);
        put_chunked(&mut s, "b", 2, &[7], 10);
        let g = group_stats(&s);
        assert_eq!(
            (g.chunks, g.stored_bytes, g.objects, g.bytes),
            (2, 60, 2, 30)
        );
        s.run(Command::DeleteObjects {
            bucket: B,
            deletions: vec![Deletion {
                key: "a".into(),
                version: None,
                if_match: None,
                marker: VersionId([9; 16]),
                bypass_governance: false,
            }],
            now_ms: 1,
            owner: "o".into(),
        });
        run_drops(&mut s, 20);
        assert_eq!(state(&s, 7), None, "b still references 7");
        assert_eq!(
            state(&s, 8),
            Some(ChunkState::Unreferenced {
                since_ms: 20,
                stored: 30
            })
        );
        let condemn = |now_ms| Command::Condemn {
            chunks: vec![chunk(7), chunk(8)],
            now_ms,
            grace_ms: 100,
            orphans: false,
        };
        assert_eq!(
            s.run(condemn(50)),
            Outcome::Condemned {
                now: vec![],
                before: vec![]
            },
            "within the grace"
        );
        assert_eq!(
            s.run(condemn(120)),
            Outcome::Condemned {
                now: vec![chunk(8)],
                before: vec![]
            }
        );
        // A PUT that dedups onto a condemned chunk waits; a copy fails.
        assert_eq!(put_chunked(&mut s, "c", 3, &[8], 121), Outcome::ChunkBusy);
        let g = group_stats(&s);
        assert_eq!((g.chunks, g.stored_bytes), (1, 30));
        assert_eq!((g.unreferenced_chunks, g.unreferenced_bytes), (1, 30));
        s.run(Command::Forget {
            chunks: vec![chunk(8)],
        });
        assert_eq!(state(&s, 8), None);
        let g = group_stats(&s);
        assert_eq!(
            (g.chunks, g.stored_bytes, g.objects, g.bytes),
            (1, 30, 1, 10)
        );
        assert_eq!((g.unreferenced_chunks, g.unreferenced_bytes), (0, 0));
        let copy = Command::AddRefs {
            referrer: Referrer::Object {
                bucket: B,
                key: "d".into(),
                version: VersionId([4; 16]),
            },
            chunks: vec![(chunk(8), 30)],
            now_ms: 130,
            require_present: true,
        };
        assert_eq!(s.run(copy), Outcome::ChunkGone);
        // After it is forgotten, the PUT references it again (and writes
        // its shards afresh).
        assert_eq!(put_chunked(&mut s, "c", 3, &[8], 131), Outcome::Ok);
        assert_eq!(group_stats(&s).chunks, 2);
    }

    #[test]
    fn a_reference_taken_before_the_condemnation_saves_the_chunk() {
        let mut s = State::new();
        put_chunked(&mut s, "a", 1, &[5], 0);
        s.run(put("a", "inline", None));
        run_drops(&mut s, 1);
        // The dedup hit lands between the last reference's removal and
        // the collector's pass.
        assert_eq!(put_chunked(&mut s, "b", 2, &[5], 500), Outcome::Ok);
        let out = s.run(Command::Condemn {
            chunks: vec![chunk(5)],
            now_ms: 1_000,
            grace_ms: 100,
            orphans: true,
        });
        assert_eq!(
            out,
            Outcome::Condemned {
                now: vec![],
                before: vec![]
            }
        );
    }

    #[test]
    fn orphans_are_condemned_only_when_asked_and_never_counted() {
        let mut s = State::new();
        let condemn = |orphans| Command::Condemn {
            chunks: vec![chunk(9)],
            now_ms: 1,
            grace_ms: 0,
            orphans,
        };
        assert_eq!(
            s.run(condemn(false)),
            Outcome::Condemned {
                now: vec![],
                before: vec![]
            }
        );
        assert_eq!(
            s.run(condemn(true)),
            Outcome::Condemned {
                now: vec![chunk(9)],
                before: vec![]
            }
        );
        // Condemned already: another deleter's.
        assert_eq!(
            s.run(condemn(true)),
            Outcome::Condemned {
                now: vec![],
                before: vec![(chunk(9), 1)]
            }
        );
        s.run(Command::Forget {
            chunks: vec![chunk(9)],
        });
        assert_eq!(group_stats(&s).chunks, 0);
    }

    #[test]
    fn quotas_hold_exactly_at_their_limit() {
        let mut s = State::new();
        s.run(Command::SetQuota {
            bucket: B,
            max_bytes: Some(6),
            max_objects: Some(3),
        });
        assert_eq!(s.run(put("a", "1", None)), Outcome::Ok);
        assert_eq!(
            s.run(put("b", "1", None)),
            Outcome::Ok,
            "6 bytes: at the limit"
        );
        assert_eq!(s.run(put("c", "1", None)), Outcome::QuotaExceeded);
        assert!(current(&s, "c").is_none());
        // Overwriting with the same size is not growth.
        assert_eq!(s.run(put("a", "2", None)), Outcome::Ok);
        s.run(Command::SetQuota {
            bucket: B,
            max_bytes: None,
            max_objects: Some(3),
        });
        assert_eq!(s.run(put("c", "1", None)), Outcome::Ok);
        assert_eq!(s.run(put("d", "1", None)), Outcome::QuotaExceeded);
        let stats: BucketStats =
            record::decode("stats", &s.kv.get(&keys::bucket_stats(B)).unwrap()).unwrap();
        assert_eq!((stats.objects, stats.bytes), (3, 9));
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
