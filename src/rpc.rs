//! Message types of the node RPC and of the gateway's admin API.
//!
//! Node RPC bodies are encoded with [`crate::record::encode`] (a version byte
//! plus postcard); shard bodies travel raw. The admin API speaks JSON, since
//! operators and scripts read it.

use crate::command::{Outcome, Request};
use crate::id::NodeId;
use crate::layout::Layout;
use crate::record::{BucketId, GroupId, ListEntry, MetaKey, Table};
use serde::{Deserialize, Serialize};

/// The SigV4 service name node RPC requests are signed for.
pub const RPC_SIGNING_SERVICE: &str = "cairn-rpc";
/// The SigV4 region node RPC requests are signed for.
pub const RPC_SIGNING_REGION: &str = "cairn";
/// Header carrying a shard's BLAKE3 (hex) on shard PUT and GET.
pub const SHARD_CHECKSUM_HEADER: &str = "x-cairn-shard-checksum";
/// Largest number of records one metadata scan returns.
pub const MAX_SCAN_LIMIT: u32 = 1000;
/// Largest number of keys in one metadata read.
pub const MAX_META_BATCH: usize = 1000;

/// Who a node is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// Its id.
    pub node_id: NodeId,
    /// The version of the cluster map it holds (0: none).
    pub layout_version: u64,
}

/// `POST /v1/meta/command`: propose a command to a group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandRequest {
    /// The group that owns the records.
    pub group: GroupId,
    /// The command and its id.
    pub request: Request,
}

/// Why a node could not serve a metadata request itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// It is not the group's leader; the leader it knows, if any.
    NotLeader(Option<NodeId>),
    /// It does not host the group, or the group cannot serve now (no
    /// leader, no quorum, shutting down). Retry, elsewhere or later.
    Unavailable(String),
}

/// The answer to a [`CommandRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CommandReply {
    /// Committed and applied: what apply decided.
    Done(Outcome),
    /// Not done here.
    Refused(Refusal),
}

/// A linearizable read of one group, served by its leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Read {
    /// Point reads (at most [`MAX_META_BATCH`] keys).
    Get(Vec<MetaKey>),
    /// An ordered range of one partition key.
    Scan {
        /// Table.
        table: Table,
        /// Partition key.
        partition_key: String,
        /// Only sort keys starting with this.
        prefix: String,
        /// Only sort keys strictly after this.
        start_after: Option<String>,
        /// At most this many, 1..=[`MAX_SCAN_LIMIT`].
        limit: u32,
    },
    /// A page of a bucket listing, rolled up by delimiter on the node.
    ListObjects {
        /// Bucket.
        bucket: BucketId,
        /// Only keys starting with this.
        prefix: String,
        /// Roll keys up to the first delimiter after the prefix.
        delimiter: Option<String>,
        /// Only keys (and prefixes) strictly after this.
        start_after: Option<String>,
        /// At most this many objects and prefixes, 1..=[`MAX_SCAN_LIMIT`].
        limit: u32,
    },
}

/// `POST /v1/meta/read`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadRequest {
    /// The group.
    pub group: GroupId,
    /// What to read.
    pub read: Read,
}

/// One item of a listing page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListItem {
    /// An object.
    Object(ListEntry),
    /// A common prefix (ends with the delimiter).
    Prefix(String),
}

/// The answer to a [`ReadRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ReadReply {
    /// For [`Read::Get`], in order.
    Values(Vec<Option<Vec<u8>>>),
    /// For [`Read::Scan`]: `(sort key, value)` in order, and whether the
    /// scan stopped at its limit with records left.
    Entries(Vec<(String, Vec<u8>)>, bool),
    /// For [`Read::ListObjects`]: the items in order, and whether more follow.
    Listing(Vec<ListItem>, bool),
    /// Not served here.
    Refused(Refusal),
}

/// `GET /v1/meta/system/watch?after=I`: the system records that changed
/// after log index `I`, as soon as there are any (or none, after a wait).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SystemChanges {
    /// Changes up to `index` (applied and confirmed by the leader).
    Changes {
        /// The system group's applied index covered.
        index: u64,
        /// Keys written or deleted after the asked index, up to `index`.
        keys: Vec<MetaKey>,
    },
    /// The asked index is too old to list changes since (or from another
    /// leader's memory): forget everything cached, continue from `index`.
    Reset {
        /// The applied index to continue from.
        index: u64,
    },
    /// Not served here.
    Refused(Refusal),
}

/// `POST /v1/cluster/bootstrap`: the answer of one node asked to take
/// part in creating a cluster with a first layout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum BootstrapReply {
    /// This node belongs to that cluster now.
    Accepted,
    /// This node already belongs to a cluster: its map.
    AlreadyCreated(Option<Layout>),
    /// This node accepted another first layout (a concurrent creation).
    Conflict,
}

/// `POST /v1/peer/beat`: a node lives, and leads these groups quietly
/// (no heartbeats; their followers hold their elections while beats come).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeBeat {
    /// The sender.
    pub from: NodeId,
    /// `(group, term)` of the quiet groups it leads.
    pub quiet: Vec<(GroupId, u64)>,
}

/// One metadata group as a node hosting it sees it (`GET /v1/groups`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    /// The group.
    pub group: GroupId,
    /// Whether this node leads it.
    pub leading: bool,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// The current term.
    pub term: u64,
    /// The last log index applied here.
    pub applied: u64,
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
    /// Metadata records stored, all groups this node hosts together (RocksDB's estimate).
    pub metadata_records: u64,
    /// Metadata groups hosted here.
    pub groups: u64,
    /// Of them, those this node leads.
    pub groups_led: u64,
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
        /// Data groups of a new cluster (the first apply only; the default
        /// otherwise: `layout::DEFAULT_METADATA_GROUPS`).
        #[serde(default)]
        pub metadata_groups: Option<u32>,
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
