//! Metadata records and their versioned encoding.
//!
//! Metadata lives in tables of key -> value records replicated to the
//! metadata replicas of a partition. Every record's key names its table, its
//! partition key (which decides its partition) and its sort key (the order of
//! a range scan). Every encoded value starts with a format version byte; see
//! `docs/design/on-disk-format.md`.

use crate::codec::{CodecId, ErasureProfile};
use crate::error::{Error, Result};
use crate::hlc::Timestamp;
use crate::id::ChunkId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Format version of every encoded record and RPC body written today.
pub const FORMAT_VERSION: u8 = 1;

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

/// The metadata tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum Table {
    /// Buckets (partition key "", sort key = bucket name).
    Buckets = 1,
    /// Access keys (partition key "", sort key = access key id).
    AccessKeys = 2,
    /// Current object versions (partition key = bucket, sort key = object key).
    Objects = 3,
    /// Multipart uploads in progress (partition key = bucket, sort key = key NUL upload id).
    Uploads = 4,
    /// Uploaded parts (partition key = upload id, sort key = 5-digit part number).
    Parts = 5,
    /// Staged (not yet applied) layout changes (partition key "", sort key "staged").
    Cluster = 6,
    /// Chunks a write left below full redundancy (partition key "", sort key
    /// = chunk id hex), until they are repaired.
    RepairHints = 7,
}

impl Table {
    /// From its byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Buckets,
            2 => Self::AccessKeys,
            3 => Self::Objects,
            4 => Self::Uploads,
            5 => Self::Parts,
            6 => Self::Cluster,
            7 => Self::RepairHints,
            _ => return None,
        })
    }
}

/// The key of one metadata record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MetaKey {
    /// Which table.
    pub table: Table,
    /// Decides the partition (and so the replicas) of the record.
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

    /// The bytes the placement hashes to find this record's partition.
    pub fn partition_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.table as u8];
        out.extend_from_slice(self.partition_key.as_bytes());
        out
    }

    /// The storage key: `table ++ u16 BE len(partition key) ++ partition key
    /// ++ sort key`. Keys of one partition key sort by sort key.
    pub fn storage_prefix(table: Table, partition_key: &str) -> Vec<u8> {
        let pk = partition_key.as_bytes();
        assert!(pk.len() <= usize::from(u16::MAX), "partition key too long");
        let mut out = Vec::with_capacity(3 + pk.len());
        out.push(table as u8);
        out.extend_from_slice(&(pk.len() as u16).to_be_bytes());
        out.extend_from_slice(pk);
        out
    }

    /// See [`MetaKey::storage_prefix`].
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

/// A record value as replicas store it: the value (or a tombstone) and the
/// timestamp of the write that produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// When it was written; the larger timestamp wins.
    pub ts: Timestamp,
    /// The encoded record, or `None` for a deletion.
    pub value: Option<Vec<u8>>,
}

/// A bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
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

/// Where an object's (or a part's) bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectData {
    /// Small objects: the bytes themselves, inside the manifest.
    Inline(Vec<u8>),
    /// Erasure-coded chunks, in order.
    Chunks {
        /// Codec that encoded them.
        codec: CodecId,
        /// The profile they were encoded with.
        profile: ErasureProfile,
        /// The chunks.
        chunks: Vec<ChunkRef>,
    },
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

/// The current version of an object: its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
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
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// Bucket.
    pub bucket: String,
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
}

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
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
    /// The bytes.
    pub data: ObjectData,
}

/// A chunk that a write left below full redundancy: the shards that did
/// not reach their nodes, to be rebuilt there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairHint {
    /// The chunk.
    pub chunk: ChunkRef,
    /// The profile it was encoded with.
    pub profile: ErasureProfile,
    /// Shard indices still to write.
    pub missing: Vec<u8>,
    /// When the write happened, ms since the epoch.
    pub created_ms: u64,
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
        let bytes = encode(&BucketRecord {
            name: "b".into(),
            owner: "k".into(),
            created_ms: 1,
            allowed_keys: vec![],
        });
        assert!(decode::<BucketRecord>("bucket", &bytes).is_ok());
        let mut future = bytes.clone();
        future[0] = 99;
        assert!(decode::<BucketRecord>("bucket", &future).is_err());
        assert!(decode::<BucketRecord>("bucket", &[]).is_err());
    }
}
