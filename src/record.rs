//! Metadata records, their keys, and their versioned encoding.
//!
//! Metadata lives in tables of key -> value records. Every record's key
//! names its table, its partition key (which decides its metadata group)
//! and its sort key (the order of a range scan). The system group holds the
//! cluster map, the bucket registry and the access keys; every other record
//! lives in the data group its partition key hashes to (see
//! [`crate::layout::PlacementTable::data_group`]). Every encoded value
//! starts with a format version byte; see `docs/design/on-disk-format.md`.

use crate::codec::{CodecId, ErasureProfile};
use crate::error::{Error, Result};
use crate::id::ChunkId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Format version of every encoded record and RPC body written today.
/// Version 1 was the last-writer-wins format (no consensus), version 2 the
/// cluster map before placement, out-set and migrations were part of it,
/// version 3 the records before chunk references (a store of that version
/// holds chunks no reference covers, which the collector would take for
/// garbage), version 4 the records before object versions, tags, retention
/// and grants were part of them; none is read.
pub const FORMAT_VERSION: u8 = 5;

/// Encode `value` as `[FORMAT_VERSION] ++ postcard(value)`.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    // Serialising our own plain structs into a Vec cannot fail.
    out.extend(postcard::to_stdvec(value).expect("postcard encoding of a record"));
    out
}

/// Decode bytes written by [`encode`]. `what` names the record in errors.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, rest)) => postcard::from_bytes(rest).map_err(|e| Error::Decode {
            what,
            reason: e.to_string(),
        }),
        Some((v, _)) => Err(Error::Decode {
            what,
            reason: format!("unknown format version {v}"),
        }),
        None => Err(Error::Decode {
            what,
            reason: "empty".into(),
        }),
    }
}

/// A metadata group: one Raft group and the records it orders. Group 0 is
/// the system group; data groups are numbered from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupId(pub u32);

impl GroupId {
    /// The system group: cluster map, bucket registry, access keys.
    pub const SYSTEM: GroupId = GroupId(0);

    /// Whether this is the system group.
    pub fn is_system(self) -> bool {
        self == Self::SYSTEM
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{}", self.0)
    }
}

/// The metadata tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum Table {
    /// System: the cluster map (partition key "", sort key "current").
    ClusterMap = 1,
    /// System: bucket names (partition key "", sort key = name) -> [`BucketRecord`].
    Buckets = 2,
    /// System: access keys (partition key "", sort key = access key id).
    AccessKeys = 3,
    /// System: a bucket's configurations, one record per kind (partition
    /// key "", sort key = bucket id / [`ConfigKind::name`]) -> the kind's
    /// record (tags: `Vec<(String, String)>`).
    BucketConfigs = 4,
    /// Current object versions (partition key = bucket id, sort key = key).
    Objects = 10,
    /// Multipart uploads in progress (partition key = bucket id, sort key =
    /// key NUL upload id).
    Uploads = 11,
    /// Uploaded parts (partition key = bucket id, sort key = upload id / 5-digit part number).
    /// They outlive their upload as the segments of the object it completed.
    Parts = 12,
    /// Buckets that were deleted: no record may be written under their id
    /// again (partition key = bucket id, sort key "").
    Sealed = 13,
    /// Chunk references, in the chunk's group (partition key = chunk id,
    /// sort key = the referring writer's id) -> [`RefRecord`].
    Refs = 14,
    /// References not yet seen committed, for the audit (partition key "",
    /// sort key = chunk id / writer id) -> [`RefRecord`].
    Unconfirmed = 15,
    /// Chunks without references: waiting for the grace period, or being
    /// deleted (partition key "", sort key = chunk id) -> [`ChunkState`].
    ChunkStates = 16,
    /// References to remove, left by object versions and parts that went
    /// away (partition key "", sort key = writer id) -> [`DropRecord`].
    Drops = 17,
    /// Writes in progress that added references before their commit
    /// (partition key = bucket id, sort key = writer id) -> [`IntentRecord`].
    Intents = 18,
    /// A bucket's usage and quota (partition key = bucket id, sort key "")
    /// -> [`BucketStats`].
    BucketStats = 19,
    /// Outcomes of recent requests, by request id, so a retried request is
    /// answered as it was the first time (partition key "", sort key = id).
    Requests = 20,
    /// The same requests by log index, to forget them in order (partition
    /// key "", sort key = 20-digit index).
    RequestsByIndex = 21,
    /// The group's totals (partition key "", sort key "") -> [`GroupStats`].
    GroupStats = 22,
    /// Object versions other than the current object: older versions and
    /// delete markers (partition key = bucket id, sort key =
    /// [`keys::version`]: the escaped key, then the version's sequence
    /// inverted, so a key's versions sort newest first) -> [`VersionRecord`].
    Versions = 23,
    /// Where a version of [`Table::Versions`] is, by its id (partition key
    /// = bucket id, sort key = version id in hex) -> its sort key there.
    VersionIds = 24,
    /// Where a key's `null` version is when it is in [`Table::Versions`]
    /// (partition key = bucket id, sort key = object key) -> its sort key
    /// there.
    NullVersions = 25,
    /// A bucket's settings that its writes obey: versioning, Object Lock
    /// (partition key = bucket id, sort key "") -> [`BucketSettings`].
    BucketSettings = 26,
    /// Lifecycle configurations of the group's buckets (partition key "",
    /// sort key = bucket id), in the bucket's data group so its rules and
    /// its worker's actions are ordered with its writes ->
    /// [`LifecycleConfig`].
    Lifecycles = 27,
}

impl Table {
    /// From its byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::ClusterMap,
            2 => Self::Buckets,
            3 => Self::AccessKeys,
            4 => Self::BucketConfigs,
            10 => Self::Objects,
            11 => Self::Uploads,
            12 => Self::Parts,
            13 => Self::Sealed,
            14 => Self::Refs,
            15 => Self::Unconfirmed,
            16 => Self::ChunkStates,
            17 => Self::Drops,
            18 => Self::Intents,
            19 => Self::BucketStats,
            20 => Self::Requests,
            21 => Self::RequestsByIndex,
            22 => Self::GroupStats,
            23 => Self::Versions,
            24 => Self::VersionIds,
            25 => Self::NullVersions,
            26 => Self::BucketSettings,
            27 => Self::Lifecycles,
            _ => return None,
        })
    }

    /// Name in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::ClusterMap => "cluster map",
            Self::Buckets => "bucket record",
            Self::AccessKeys => "access key record",
            Self::BucketConfigs => "bucket configuration",
            Self::Objects => "object entry",
            Self::Uploads => "upload record",
            Self::Parts => "part record",
            Self::Sealed => "bucket seal",
            Self::Refs | Self::Unconfirmed => "chunk reference",
            Self::ChunkStates => "chunk state",
            Self::Drops => "dropped references",
            Self::Intents => "write intent",
            Self::BucketStats => "bucket usage",
            Self::GroupStats => "group usage",
            Self::Requests | Self::RequestsByIndex => "request outcome",
            Self::Versions => "object version",
            Self::VersionIds | Self::NullVersions => "version index",
            Self::BucketSettings => "bucket settings",
            Self::Lifecycles => "lifecycle configuration",
        }
    }
}

/// The key of one metadata record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MetaKey {
    /// Which table.
    pub table: Table,
    /// Decides the group of the record.
    pub partition_key: String,
    /// Order within the partition key.
    pub sort_key: String,
}

impl MetaKey {
    /// A key.
    pub fn new(
        table: Table,
        partition_key: impl Into<String>,
        sort_key: impl Into<String>,
    ) -> Self {
        Self {
            table,
            partition_key: partition_key.into(),
            sort_key: sort_key.into(),
        }
    }

    /// The storage prefix of a partition key in a table: `table ++ u16 BE
    /// len(partition key) ++ partition key`. Keys of one partition key sort
    /// by sort key after it.
    pub fn storage_prefix(table: Table, partition_key: &str) -> Vec<u8> {
        let pk = partition_key.as_bytes();
        assert!(pk.len() <= usize::from(u16::MAX), "partition key too long");
        let mut out = Vec::with_capacity(3 + pk.len());
        out.push(table as u8);
        out.extend_from_slice(&(pk.len() as u16).to_be_bytes());
        out.extend_from_slice(pk);
        out
    }

    /// The storage key: [`MetaKey::storage_prefix`] ++ sort key.
    pub fn storage_key(&self) -> Vec<u8> {
        let mut out = Self::storage_prefix(self.table, &self.partition_key);
        out.extend_from_slice(self.sort_key.as_bytes());
        out
    }

    /// Inverse of [`MetaKey::storage_key`].
    pub fn from_storage_key(bytes: &[u8]) -> Result<Self> {
        let bad = |reason: &str| Error::Decode {
            what: "metadata key",
            reason: reason.into(),
        };
        if bytes.len() < 3 {
            return Err(bad("short"));
        }
        let table = Table::from_u8(bytes[0]).ok_or_else(|| bad("unknown table"))?;
        let len = usize::from(u16::from_be_bytes([bytes[1], bytes[2]]));
        let pk = bytes.get(3..3 + len).ok_or_else(|| bad("truncated"))?;
        let sk = &bytes[3 + len..];
        Ok(Self {
            table,
            partition_key: String::from_utf8(pk.to_vec()).map_err(|_| bad("utf-8"))?,
            sort_key: String::from_utf8(sk.to_vec()).map_err(|_| bad("utf-8"))?,
        })
    }
}

/// A 16-byte random id printed as 32 hex digits: bucket ids, version ids,
/// request ids.
macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// Lower-case hexadecimal form (32 characters).
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parse the hexadecimal form.
            pub fn parse(s: &str) -> Option<Self> {
                let mut out = [0u8; 16];
                hex::decode_to_slice(s, &mut out).ok()?;
                Some(Self(out))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &self.to_hex()[..12])
            }
        }
    };
}

random_id!(
    /// A bucket's identity. The name is an alias of it: a bucket deleted and
    /// created again under the same name gets a new id, and never sees the
    /// old bucket's objects or uploads.
    BucketId
);
random_id!(
    /// The identity of one stored object version (one PUT, Copy or Complete).
    VersionId
);
random_id!(
    /// The identity of one logical metadata request; a retry carries the
    /// same id and is answered with the first attempt's outcome.
    RequestId
);

/// A bucket: the registry entry under its name in the system group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    /// Its identity (the partition key of its objects).
    pub id: BucketId,
    /// The bucket's name.
    pub name: String,
    /// Access key id of the key that created it (its owner).
    pub owner: String,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// Other access keys allowed to read and write it.
    pub allowed_keys: Vec<String>,
}

/// An S3 access key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    /// The public id.
    pub access_key_id: String,
    /// The signing secret.
    pub secret_access_key: String,
    /// A human name.
    pub name: String,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
}

/// One chunk of an object's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// Content address.
    pub id: ChunkId,
    /// Length in bytes.
    pub len: u32,
}

/// Where a run of an object's chunks is listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SegmentChunks {
    /// In the object entry itself (single PUTs and copies).
    Here(Vec<ChunkRef>),
    /// In a part record of the multipart upload that made the object, kept
    /// as long as the object.
    Part {
        /// The upload.
        upload_id: String,
        /// The part number.
        part_number: u32,
    },
}

/// A contiguous run of an object's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Bytes in the run.
    pub len: u64,
    /// Its chunks.
    pub chunks: SegmentChunks,
}

/// Where an object's (or a part's) bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectData {
    /// Small objects: the bytes themselves, inside the entry.
    Inline(Vec<u8>),
    /// Erasure-coded chunks, in order, by segment.
    Chunks {
        /// Codec that encoded them.
        codec: CodecId,
        /// The profile they were encoded with.
        profile: ErasureProfile,
        /// The segments, in byte order.
        segments: Vec<Segment>,
    },
}

impl ObjectData {
    /// No bytes at all.
    pub fn empty() -> Self {
        Self::Inline(Vec::new())
    }
}

/// The kind of an object-level checksum, as S3 reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChecksumKind {
    /// Checksum of the whole object's bytes.
    FullObject,
    /// Checksum of the parts' checksums, with a `-N` suffix.
    Composite,
}

/// An additional checksum (`x-amz-checksum-*`) stored with an object or part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChecksum {
    /// `CRC32`, `CRC32C`, `CRC64NVME`, `SHA1` or `SHA256`.
    pub algorithm: String,
    /// Base64 value as S3 prints it (with `-N` for composite ones).
    pub value: String,
    /// Full-object or composite.
    pub kind: ChecksumKind,
}

/// The current version of an object: what HEAD, GET and a listing need,
/// and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    /// This version's identity.
    pub version: VersionId,
    /// Size in bytes.
    pub size: u64,
    /// S3 ETag without quotes.
    pub etag: String,
    /// Last-Modified, ms since the epoch.
    pub last_modified_ms: u64,
    /// Content-Type.
    pub content_type: Option<String>,
    /// Other standard headers that round-trip (Cache-Control, ...), lower-case names.
    pub headers: Vec<(String, String)>,
    /// `x-amz-meta-*` (names without the prefix, lower case).
    pub user_metadata: Vec<(String, String)>,
    /// The additional checksum, when the client sent one.
    pub checksum: Option<StoredChecksum>,
    /// Sizes of the parts of a multipart object (empty for single PUTs).
    pub part_sizes: Vec<u64>,
    /// The bytes.
    pub data: ObjectData,
    /// Where it stands among the key's versions: set when it is applied
    /// (see [`crate::command::apply`]); later versions have larger ones.
    pub seq: u64,
    /// Whether its S3 version id is `null`: written while the bucket's
    /// versioning was off or suspended.
    pub null_version: bool,
    /// Access key id of the writer.
    pub owner: String,
    /// When a newer version took its place (ms since the epoch), for a
    /// noncurrent version.
    pub noncurrent_since_ms: Option<u64>,
    /// Object tags, in the order given.
    pub tags: Vec<(String, String)>,
    /// Object Lock retention.
    pub retention: Option<Retention>,
    /// Object Lock legal hold.
    pub legal_hold: bool,
    /// ACL grants (the owner's full control is implied).
    pub grants: Vec<Grant>,
}

impl ObjectEntry {
    /// Its S3 version id (`null`, or the version's id in hex).
    pub fn version_id(&self) -> String {
        version_id(self.version, self.null_version)
    }
}

/// The S3 version id of a version.
pub fn version_id(version: VersionId, null: bool) -> String {
    if null {
        "null".to_owned()
    } else {
        version.to_hex()
    }
}

/// A version id as a request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionRef {
    /// `null`.
    Null,
    /// Any other: a version's id.
    Id(VersionId),
}

impl VersionRef {
    /// Parse an S3 version id (`None`: not one Cairn ever gave out).
    pub fn parse(s: &str) -> Option<Self> {
        if s == "null" {
            Some(Self::Null)
        } else if s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            VersionId::parse(s).map(Self::Id)
        } else {
            None
        }
    }

    /// Whether it names this version.
    pub fn names(&self, version: VersionId, null: bool) -> bool {
        match self {
            Self::Null => null,
            Self::Id(v) => !null && *v == version,
        }
    }
}

/// Object Lock retention modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockMode {
    /// Shortened or removed only with the bypass permission and header.
    Governance,
    /// Never shortened or removed, by anyone, until its date.
    Compliance,
}

/// A version's retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// The mode.
    pub mode: LockMode,
    /// Retained until, ms since the epoch.
    pub until_ms: u64,
}

/// Who an ACL grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grantee {
    /// An access key (S3's canonical user id).
    User(String),
    /// A predefined group, by its URI.
    Group(String),
}

/// ACL permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Permission {
    /// All of them.
    FullControl,
    /// Read the object (list the bucket).
    Read,
    /// Write objects (buckets only).
    Write,
    /// Read the ACL.
    ReadAcp,
    /// Write the ACL.
    WriteAcp,
}

/// One ACL grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// To whom.
    pub grantee: Grantee,
    /// What.
    pub permission: Permission,
}

/// A delete marker: the latest version of a key that reads as absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteMarker {
    /// Its identity.
    pub version: VersionId,
    /// Where it stands among the key's versions.
    pub seq: u64,
    /// Whether its S3 version id is `null` (made while versioning was
    /// suspended).
    pub null_version: bool,
    /// When it was made, ms since the epoch.
    pub last_modified_ms: u64,
    /// Access key id of the deleter.
    pub owner: String,
}

/// A version in [`Table::Versions`].
// Decoded one at a time and never kept in bulk: boxing the entry would
// cost an allocation per version read for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionRecord {
    /// An object version that is not the current one.
    Object(ObjectEntry),
    /// A delete marker.
    DeleteMarker(DeleteMarker),
}

impl VersionRecord {
    /// Its identity.
    pub fn version(&self) -> VersionId {
        match self {
            Self::Object(e) => e.version,
            Self::DeleteMarker(m) => m.version,
        }
    }

    /// Its sequence.
    pub fn seq(&self) -> u64 {
        match self {
            Self::Object(e) => e.seq,
            Self::DeleteMarker(m) => m.seq,
        }
    }

    /// Whether its version id is `null`.
    pub fn is_null(&self) -> bool {
        match self {
            Self::Object(e) => e.null_version,
            Self::DeleteMarker(m) => m.null_version,
        }
    }

    /// Its S3 version id.
    pub fn version_id(&self) -> String {
        version_id(self.version(), self.is_null())
    }

    /// Last-Modified, ms since the epoch.
    pub fn last_modified_ms(&self) -> u64 {
        match self {
            Self::Object(e) => e.last_modified_ms,
            Self::DeleteMarker(m) => m.last_modified_ms,
        }
    }
}

/// The kinds of bucket configuration kept in the system group, where
/// every gateway caches them with the bucket record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConfigKind {
    /// Bucket tags: `Vec<(String, String)>`.
    Tagging,
    /// CORS rules: `Vec<CorsRule>`.
    Cors,
    /// The bucket policy: its JSON text as `PutBucketPolicy` gave it
    /// (`String`, validated by the gateway).
    Policy,
    /// The Public Access Block: [`crate::access::PublicAccessBlock`].
    PublicAccessBlock,
    /// Object Ownership: `Option<crate::access::Ownership>`, `None` once
    /// the controls were deleted; no record: `BucketOwnerEnforced`, as a
    /// new bucket has.
    Ownership,
    /// The bucket's ACL grants beyond its owner's full control:
    /// `Vec<Grant>`.
    Acl,
    /// Static website hosting: the gateway's `WebsiteConfig`.
    Website,
}

impl ConfigKind {
    /// Its name in sort keys.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tagging => "tagging",
            Self::Cors => "cors",
            Self::Policy => "policy",
            Self::PublicAccessBlock => "public-access-block",
            Self::Ownership => "ownership",
            Self::Acl => "acl",
            Self::Website => "website",
        }
    }
}

/// One CORS rule of a bucket, as `PutBucketCors` gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    /// Its id, if any.
    pub id: Option<String>,
    /// Origins it allows (each with at most one `*`).
    pub allowed_origins: Vec<String>,
    /// Methods it allows (GET, PUT, POST, DELETE, HEAD).
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may ask for (each with at most one `*`).
    pub allowed_headers: Vec<String>,
    /// Response headers browsers may show to scripts.
    pub expose_headers: Vec<String>,
    /// How long a browser may cache a preflight answer, in seconds.
    pub max_age_s: Option<i32>,
}

/// A bucket's lifecycle configuration, as `PutBucketLifecycleConfiguration`
/// gave it (validated by the gateway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleConfig {
    /// The bucket owner (the owner of the delete markers expiration makes).
    pub owner: String,
    /// Its rules, in the order given.
    pub rules: Vec<LifecycleRule>,
}

/// One lifecycle rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRule {
    /// Its id (unique in the configuration).
    pub id: String,
    /// `Enabled` (otherwise `Disabled`: kept, not applied).
    pub enabled: bool,
    /// Which versions it applies to.
    pub filter: LifecycleFilter,
    /// Expiration of current versions (`Days` or `Date`) or of expired
    /// object delete markers.
    pub expiration: Option<LifecycleExpiration>,
    /// `NoncurrentVersionExpiration`.
    pub noncurrent: Option<NoncurrentExpiration>,
    /// `AbortIncompleteMultipartUpload`: days after initiation.
    pub abort_upload_days: Option<u32>,
}

/// How a rule's filter was written, so it reads back as it was put.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FilterForm {
    /// No filter at all.
    None,
    /// The rule's own (deprecated) `Prefix`.
    Legacy,
    /// A `Filter` with at most one condition.
    Single,
    /// A `Filter` with an `And`.
    And,
}

/// A rule's filter: every condition given must hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleFilter {
    /// How it was written.
    pub form: FilterForm,
    /// Keys starting with this.
    pub prefix: String,
    /// Versions carrying every one of these tags.
    pub tags: Vec<(String, String)>,
    /// Versions larger than this many bytes.
    pub size_greater_than: Option<u64>,
    /// Versions smaller than this many bytes.
    pub size_less_than: Option<u64>,
}

/// A rule's `Expiration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleExpiration {
    /// Current versions this many days after their creation.
    pub days: Option<u32>,
    /// Current versions from this date (midnight UTC, ms since the epoch).
    pub date_ms: Option<u64>,
    /// Delete markers that are a key's only version.
    pub expired_object_delete_marker: Option<bool>,
}

/// A rule's `NoncurrentVersionExpiration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoncurrentExpiration {
    /// Noncurrent versions this many days after they became noncurrent.
    pub days: u32,
    /// But keep this many newer noncurrent versions of each key.
    pub newer_versions: Option<u32>,
}

/// A bucket's versioning state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    /// Never enabled: every write replaces the key's `null` version and a
    /// DELETE removes it.
    #[default]
    Unversioned,
    /// Every write adds a version; a DELETE adds a delete marker.
    Enabled,
    /// Writes replace the `null` version; a DELETE makes the `null`
    /// version a delete marker. Older versions stay.
    Suspended,
}

/// A bucket's default retention for new versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    /// The mode.
    pub mode: LockMode,
    /// Days (exactly one of days and years is set).
    pub days: Option<u32>,
    /// Years.
    pub years: Option<u32>,
}

/// The settings a bucket's writes obey, kept in its data group so that
/// every write is applied under the settings of its moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketSettings {
    /// Versioning.
    pub versioning: Versioning,
    /// Object Lock enabled (only when the bucket is created; never off
    /// again; versioning stays enabled).
    pub object_lock: bool,
    /// Retention new versions get when their write names none.
    pub default_retention: Option<DefaultRetention>,
}

/// What a listing shows of an object: the node projects entries to this,
/// so a listing never carries inline bytes, headers or chunk lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    /// Object key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes.
    pub etag: String,
    /// Last-Modified, ms since the epoch.
    pub last_modified_ms: u64,
    /// The additional checksum's algorithm and kind, if any.
    pub checksum: Option<(String, ChecksumKind)>,
}

impl ListEntry {
    /// The listing view of an entry.
    pub fn of(key: String, e: &ObjectEntry) -> Self {
        Self {
            key,
            size: e.size,
            etag: e.etag.clone(),
            last_modified_ms: e.last_modified_ms,
            checksum: e.checksum.as_ref().map(|c| (c.algorithm.clone(), c.kind)),
        }
    }
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// Object key.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
    /// Initiated, ms since the epoch.
    pub initiated_ms: u64,
    /// Access key id that created it.
    pub owner: String,
    /// Content-Type for the final object.
    pub content_type: Option<String>,
    /// Standard headers for the final object.
    pub headers: Vec<(String, String)>,
    /// User metadata for the final object.
    pub user_metadata: Vec<(String, String)>,
    /// Checksum algorithm the parts are uploaded with, if any.
    pub checksum_algorithm: Option<String>,
    /// Checksum type requested at creation (`COMPOSITE` or `FULL_OBJECT`).
    pub checksum_kind: Option<ChecksumKind>,
    /// Tags for the final object.
    pub tags: Vec<(String, String)>,
    /// Retention for the final object.
    pub retention: Option<Retention>,
    /// Legal hold for the final object.
    pub legal_hold: bool,
    /// ACL grants for the final object.
    pub grants: Vec<Grant>,
}

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    /// This upload of the part (a part number uploaded again is a new
    /// one): the writer id of its chunk references.
    pub version: VersionId,
    /// 1..=10000.
    pub part_number: u32,
    /// Size in bytes.
    pub size: u64,
    /// MD5 of the part, hex.
    pub etag: String,
    /// Uploaded, ms since the epoch.
    pub last_modified_ms: u64,
    /// The part's additional checksum.
    pub checksum: Option<StoredChecksum>,
    /// Its chunks (a part is never inline).
    pub chunks: Vec<ChunkRef>,
    /// The profile they were encoded with (`None` for an empty part).
    pub profile: Option<ErasureProfile>,
}

/// What holds a chunk reference: one object version or one uploaded part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Referrer {
    /// A single PUT or a copy (its chunks are listed in its entry).
    Object {
        /// Bucket.
        bucket: BucketId,
        /// Key.
        key: String,
        /// The version.
        version: VersionId,
    },
    /// An uploaded part (kept as a segment of the object its upload made).
    Part {
        /// Bucket.
        bucket: BucketId,
        /// The upload.
        upload_id: String,
        /// Part number.
        part_number: u32,
        /// This upload of the part.
        version: VersionId,
    },
}

impl Referrer {
    /// The writer id: the sort key of its references and of its intent.
    pub fn writer(&self) -> VersionId {
        match self {
            Self::Object { version, .. } | Self::Part { version, .. } => *version,
        }
    }

    /// Its bucket.
    pub fn bucket(&self) -> BucketId {
        match self {
            Self::Object { bucket, .. } | Self::Part { bucket, .. } => *bucket,
        }
    }

    /// The record that is current while the referrer lives.
    pub fn record_key(&self) -> MetaKey {
        match self {
            Self::Object { bucket, key, .. } => keys::object(*bucket, key),
            Self::Part {
                bucket,
                upload_id,
                part_number,
                ..
            } => keys::part(*bucket, upload_id, *part_number),
        }
    }

    /// The record that says the referrer is a noncurrent object version
    /// (a part's writer id never has one).
    pub fn version_key(&self) -> MetaKey {
        keys::version_id(self.bucket(), self.writer())
    }

    /// Whether the referrer is committed and lives, given `record` (the
    /// value under [`Referrer::record_key`]) and `version` (the value
    /// under [`Referrer::version_key`]).
    pub fn is_current(&self, record: Option<&[u8]>, version: Option<&[u8]>) -> bool {
        if matches!(self, Self::Object { .. }) && version.is_some() {
            return true;
        }
        let Some(bytes) = record else { return false };
        let version = match self {
            Self::Object { .. } => decode::<ObjectEntry>("object entry", bytes).map(|e| e.version),
            Self::Part { .. } => decode::<PartRecord>("part record", bytes).map(|p| p.version),
        };
        version.is_ok_and(|v| v == self.writer())
    }
}

/// One chunk reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefRecord {
    /// Who holds it.
    pub referrer: Referrer,
    /// When it was added (the proposer's clock), ms since the epoch.
    pub created_ms: u64,
    /// Bytes the chunk takes in shards (data and parity).
    pub stored: u64,
}

/// A chunk no reference covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkState {
    /// Its last reference went at `since_ms`; deleted after the grace.
    Unreferenced {
        /// When, ms since the epoch.
        since_ms: u64,
        /// Bytes it takes in shards (0: never counted, an orphan).
        stored: u64,
    },
    /// Being deleted from its holders: no reference may be added until it
    /// is forgotten.
    Condemned {
        /// When, ms since the epoch.
        since_ms: u64,
        /// Bytes it takes in shards (0: never counted, an orphan).
        stored: u64,
    },
}

/// References to remove after an object version or part went away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropRecord {
    /// The chunks it referenced (in any order, maybe repeated).
    pub chunks: Vec<ChunkId>,
}

/// A write that may add references before its commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentRecord {
    /// Object key of the write.
    pub key: String,
    /// Last renewal (the writer's clock), ms since the epoch.
    pub renewed_ms: u64,
}

/// A bucket's usage, kept by every write, and its quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketStats {
    /// Objects (current versions).
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Multipart uploads in progress.
    pub uploads: u64,
    /// Bytes of their parts.
    pub upload_bytes: u64,
    /// Refuse writes past this many bytes of objects.
    pub max_bytes: Option<u64>,
    /// Refuse writes past this many objects.
    pub max_objects: Option<u64>,
}

/// A group's totals, kept by every write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStats {
    /// Objects of the buckets of this group.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Uploads in progress.
    pub uploads: u64,
    /// Bytes of their parts.
    pub upload_bytes: u64,
    /// Referenced chunks of this group.
    pub chunks: u64,
    /// Their bytes in shards (data and parity): each chunk once, however
    /// many objects share it.
    pub stored_bytes: u64,
    /// Chunks whose references all went, not yet deleted.
    pub unreferenced_chunks: u64,
    /// Their bytes in shards.
    pub unreferenced_bytes: u64,
}

/// Keys of the records, in one place.
pub mod keys {
    use super::*;

    /// The cluster map.
    pub fn cluster_map() -> MetaKey {
        MetaKey::new(Table::ClusterMap, "", "current")
    }

    /// A bucket's registry entry.
    pub fn bucket(name: &str) -> MetaKey {
        MetaKey::new(Table::Buckets, "", name)
    }

    /// An access key.
    pub fn access_key(id: &str) -> MetaKey {
        MetaKey::new(Table::AccessKeys, "", id)
    }

    /// The sort-key prefix of a bucket's configurations.
    pub fn bucket_configs_prefix(bucket: BucketId) -> String {
        format!("{bucket}/")
    }

    /// One configuration of a bucket.
    pub fn bucket_config(bucket: BucketId, kind: ConfigKind) -> MetaKey {
        MetaKey::new(
            Table::BucketConfigs,
            "",
            format!("{}{}", bucket_configs_prefix(bucket), kind.name()),
        )
    }

    /// An object's current entry.
    pub fn object(bucket: BucketId, key: &str) -> MetaKey {
        MetaKey::new(Table::Objects, bucket.to_hex(), key)
    }

    /// An upload.
    pub fn upload(bucket: BucketId, key: &str, upload_id: &str) -> MetaKey {
        MetaKey::new(
            Table::Uploads,
            bucket.to_hex(),
            format!("{key}\0{upload_id}"),
        )
    }

    /// The sort-key prefix of an upload's parts.
    pub fn parts_prefix(upload_id: &str) -> String {
        format!("{upload_id}/")
    }

    /// A part.
    pub fn part(bucket: BucketId, upload_id: &str, part_number: u32) -> MetaKey {
        MetaKey::new(
            Table::Parts,
            bucket.to_hex(),
            format!("{}{part_number:05}", parts_prefix(upload_id)),
        )
    }

    /// The seal of a deleted bucket.
    pub fn sealed(bucket: BucketId) -> MetaKey {
        MetaKey::new(Table::Sealed, bucket.to_hex(), "")
    }

    /// A chunk reference.
    pub fn chunk_ref(chunk: &ChunkId, writer: VersionId) -> MetaKey {
        MetaKey::new(Table::Refs, chunk.to_hex(), writer.to_hex())
    }

    /// The audit's entry of a reference not yet seen committed.
    pub fn unconfirmed(chunk: &ChunkId, writer: VersionId) -> MetaKey {
        MetaKey::new(Table::Unconfirmed, "", format!("{chunk}/{writer}"))
    }

    /// The (chunk, writer) of an [`unconfirmed`] sort key.
    pub fn parse_unconfirmed(sort_key: &str) -> Option<(ChunkId, VersionId)> {
        let (c, w) = sort_key.split_once('/')?;
        Some((c.parse().ok()?, VersionId::parse(w)?))
    }

    /// A chunk without references.
    pub fn chunk_state(chunk: &ChunkId) -> MetaKey {
        MetaKey::new(Table::ChunkStates, "", chunk.to_hex())
    }

    /// References to remove.
    pub fn drop(writer: VersionId) -> MetaKey {
        MetaKey::new(Table::Drops, "", writer.to_hex())
    }

    /// A write in progress.
    pub fn intent(bucket: BucketId, writer: VersionId) -> MetaKey {
        MetaKey::new(Table::Intents, bucket.to_hex(), writer.to_hex())
    }

    /// A bucket's usage.
    pub fn bucket_stats(bucket: BucketId) -> MetaKey {
        MetaKey::new(Table::BucketStats, bucket.to_hex(), "")
    }

    /// The group's totals.
    pub fn group_stats() -> MetaKey {
        MetaKey::new(Table::GroupStats, "", "")
    }

    /// A key as it starts the sort keys of its versions: NUL becomes
    /// NUL 0x01, so that the end mark NUL NUL sorts before anything a
    /// longer key continues with, and keys' versions sort as the keys do.
    pub fn escape_key(key: &str) -> String {
        key.replace('\0', "\0\u{1}")
    }

    fn unescape_key(escaped: &str) -> String {
        escaped.replace("\0\u{1}", "\0")
    }

    /// The sort-key prefix of all of one key's versions.
    pub fn versions_of(key: &str) -> String {
        format!("{}\0\0", escape_key(key))
    }

    /// A version of [`Table::Versions`]: newest first within its key.
    pub fn version(bucket: BucketId, key: &str, seq: u64) -> MetaKey {
        MetaKey::new(Table::Versions, bucket.to_hex(), version_sort_key(key, seq))
    }

    /// The sort key of [`version`]: after it come the key's older versions.
    pub fn version_sort_key(key: &str, seq: u64) -> String {
        format!("{}{:016x}", versions_of(key), u64::MAX - seq)
    }

    /// The (key, seq) of a [`Table::Versions`] sort key.
    pub fn parse_version(sort_key: &str) -> Option<(String, u64)> {
        let (escaped, inverted) = sort_key.split_at_checked(sort_key.len().checked_sub(18)?)?;
        let inverted = inverted.strip_prefix("\0\0")?;
        let inv = u64::from_str_radix(inverted, 16).ok()?;
        Some((unescape_key(escaped), u64::MAX - inv))
    }

    /// Where a version of [`Table::Versions`] is, by id.
    pub fn version_id(bucket: BucketId, version: VersionId) -> MetaKey {
        MetaKey::new(Table::VersionIds, bucket.to_hex(), version.to_hex())
    }

    /// Where a key's `null` version is, when it is not current.
    pub fn null_version(bucket: BucketId, key: &str) -> MetaKey {
        MetaKey::new(Table::NullVersions, bucket.to_hex(), key)
    }

    /// A bucket's settings.
    pub fn bucket_settings(bucket: BucketId) -> MetaKey {
        MetaKey::new(Table::BucketSettings, bucket.to_hex(), "")
    }

    /// A bucket's lifecycle configuration (in its data group).
    pub fn lifecycle(bucket: BucketId) -> MetaKey {
        MetaKey::new(Table::Lifecycles, "", bucket.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_keys_round_trip_and_sort_by_sort_key() {
        let a = MetaKey::new(Table::Objects, "bkt", "a/b");
        let b = MetaKey::new(Table::Objects, "bkt", "a0");
        let c = MetaKey::new(Table::Objects, "bkt2", "");
        assert_eq!(MetaKey::from_storage_key(&a.storage_key()).unwrap(), a);
        assert!(a.storage_key() < b.storage_key());
        assert!(
            a.storage_key()
                .starts_with(&MetaKey::storage_prefix(Table::Objects, "bkt"))
        );
        assert!(
            !c.storage_key()
                .starts_with(&MetaKey::storage_prefix(Table::Objects, "bkt"))
        );
    }

    #[test]
    fn unknown_format_versions_are_refused() {
        let bytes = encode(&AccessKeyRecord {
            access_key_id: "GK1".into(),
            secret_access_key: "s".into(),
            name: "n".into(),
            created_ms: 1,
        });
        assert!(decode::<AccessKeyRecord>("key", &bytes).is_ok());
        let mut old = bytes.clone();
        old[0] = 1;
        assert!(decode::<AccessKeyRecord>("key", &old).is_err());
        assert!(decode::<AccessKeyRecord>("key", &[]).is_err());
    }

    #[test]
    fn random_ids_print_and_parse_as_hex() {
        let id = BucketId([0xab; 16]);
        assert_eq!(BucketId::parse(&id.to_hex()), Some(id));
        assert_eq!(BucketId::parse("zz"), None);
    }
}
