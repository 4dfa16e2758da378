//! Message types of the node RPC and of the gateway's admin API.
//!
//! Node RPC bodies are encoded with [`crate::record::encode`] (a version byte
//! plus postcard); shard bodies travel raw. The admin API speaks JSON, since
//! operators and scripts read it.

use crate::hlc::Timestamp;
use crate::id::NodeId;
use crate::layout::Layout;
use crate::record::{MetaKey, Table, Versioned};
use serde::{Deserialize, Serialize};

/// The SigV4 service name node RPC requests are signed for.
pub const RPC_SIGNING_SERVICE: &str = "cairn-rpc";
/// The SigV4 region node RPC requests are signed for.
pub const RPC_SIGNING_REGION: &str = "cairn";
/// Header carrying a shard's BLAKE3 (hex) on shard PUT and GET.
pub const SHARD_CHECKSUM_HEADER: &str = "x-cairn-shard-checksum";
/// Largest number of records one metadata scan returns.
pub const MAX_SCAN_LIMIT: u32 = 1000;
/// Largest number of keys or writes in one metadata read or write batch.
pub const MAX_META_BATCH: usize = 1000;

/// Who a node is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// Its id.
    pub node_id: NodeId,
    /// The version of the layout it holds (0: none).
    pub layout_version: u64,
}

/// Write a batch of metadata records; each is kept only if newer than what
/// the replica has.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetaWriteRequest {
    /// The writes.
    pub writes: Vec<(MetaKey, Versioned)>,
}

/// A replica's answer to a [`MetaWriteRequest`]: for each write, in order,
/// `None` when it was applied, or the timestamp of the newer (or equal)
/// record the replica kept instead.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetaWriteResponse {
    /// Per write: the kept newer timestamp, if the write lost.
    pub newer: Vec<Option<Timestamp>>,
}

/// Read a batch of metadata records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetaReadRequest {
    /// The keys.
    pub keys: Vec<MetaKey>,
}

/// The replica's values for a [`MetaReadRequest`], in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetaReadResponse {
    /// `None` where the replica has never seen the key.
    pub values: Vec<Option<Versioned>>,
}

/// An ordered range scan of one partition key of one table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetaScanRequest {
    /// Which table.
    pub table: Table,
    /// Which partition key.
    pub partition_key: String,
    /// Only sort keys starting with this.
    pub prefix: String,
    /// Only sort keys strictly after this.
    pub start_after: Option<String>,
    /// At most this many records (tombstones included), 1..=[`MAX_SCAN_LIMIT`].
    pub limit: u32,
}

/// Records of a scan in sort-key order, tombstones included (the reader
/// merges replicas before it drops them).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetaScanResponse {
    /// `(sort key, value)` pairs.
    pub entries: Vec<(String, Versioned)>,
    /// Whether the scan stopped at `limit` with records left.
    pub truncated: bool,
}

/// Counters a node reports about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStats {
    /// Shards stored.
    pub shards: u64,
    /// Bytes of shard data stored.
    pub shard_bytes: u64,
    /// Shards found corrupt (checksum mismatch) or missing on read since start.
    pub corrupt_shards_detected: u64,
    /// Metadata records stored (tombstones included).
    pub metadata_records: u64,
}

/// Stage changes to the layout: nodes added or changed, removed, a new profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedLayout {
    /// Base version the changes apply to.
    pub base_version: u64,
    /// Nodes to add or change: (id, addr, zone, capacity).
    pub assign: Vec<crate::layout::NodeInfo>,
    /// Nodes to remove.
    pub remove: Vec<NodeId>,
    /// A new erasure profile `(k, m)`.
    pub profile: Option<(u8, u8)>,
}

/// Admin API (JSON) types.
pub mod admin {
    use super::*;

    /// `GET /admin/v1/status`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct ClusterStatus {
        /// The current layout (version 0 when none is applied).
        pub layout: Option<Layout>,
        /// Every node known, from the layout and the gateway's seed list.
        pub nodes: Vec<NodeStatus>,
        /// Objects stored (sum of current object versions over buckets).
        pub objects: u64,
        /// Logical bytes stored (object sizes).
        pub object_bytes: u64,
        /// Physical shard bytes on all reachable nodes (after dedup, with parity).
        pub shard_bytes: u64,
    }

    /// One node's state as the gateway sees it.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct NodeStatus {
        /// Id, when the node answered at least once.
        pub id: Option<NodeId>,
        /// RPC address.
        pub addr: String,
        /// Zone, when in the layout.
        pub zone: Option<String>,
        /// Capacity, when in the layout.
        pub capacity: Option<u32>,
        /// Whether it answered the last health probe.
        pub up: bool,
        /// Whether the current layout includes it.
        pub in_layout: bool,
        /// Its counters, when it answered.
        pub stats: Option<NodeStats>,
    }

    /// `POST /admin/v1/layout/assign`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct AssignRequest {
        /// Node id (16 hex digits).
        pub node_id: NodeId,
        /// Zone.
        pub zone: String,
        /// Capacity weight.
        pub capacity: u32,
    }

    /// `POST /admin/v1/layout/apply`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct ApplyRequest {
        /// Erasure profile `k`, `m`; defaults from the node count when absent.
        pub profile: Option<(u8, u8)>,
        /// Apply even when the change moves data between nodes (which,
        /// until the rebalancer exists, makes existing objects unreadable).
        #[serde(default)]
        pub force: bool,
    }

    /// An access key as listed (no secret).
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct KeyInfo {
        /// Access key id.
        pub access_key_id: String,
        /// Name.
        pub name: String,
        /// Creation, ms since the epoch.
        pub created_ms: u64,
    }

    /// A freshly created key: the only time its secret is shown.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct CreatedKey {
        /// Access key id.
        pub access_key_id: String,
        /// Secret access key.
        pub secret_access_key: String,
    }

    /// `POST /admin/v1/keys`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct CreateKeyRequest {
        /// Human name.
        pub name: String,
    }

    /// A bucket as listed.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct BucketInfo {
        /// Name.
        pub name: String,
        /// Owning access key.
        pub owner: String,
        /// Creation, ms since the epoch.
        pub created_ms: u64,
        /// Other keys allowed.
        pub allowed_keys: Vec<String>,
    }

    /// `POST /admin/v1/buckets`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct CreateBucketRequest {
        /// Name.
        pub name: String,
        /// Owning access key (the root key when absent).
        pub owner: Option<String>,
    }

    /// `POST /admin/v1/buckets/{bucket}/allow`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct AllowRequest {
        /// The key to grant.
        pub access_key_id: String,
    }

    /// Error body of the admin API.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct AdminError {
        /// Short machine-readable code.
        pub code: String,
        /// Human message.
        pub message: String,
    }
}
