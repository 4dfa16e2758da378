//! Message types of the node RPC and of the gateway's admin API.
//!
//! Node RPC bodies are encoded with [`crate::record::encode`] (a version byte
//! plus postcard); shard bodies travel raw. The admin API speaks JSON, since
//! operators and scripts read it.

use crate::command::versions::{VersionItem, VersionsFrom};
use crate::command::{Outcome, Request};
use crate::id::{ChunkId, NodeId};
use crate::layout::Layout;
use crate::record::{BucketId, GroupId, ListEntry, MetaKey, Table, VersionRecord, VersionRef};
use serde::{Deserialize, Serialize};

/// The SigV4 service name node RPC requests are signed for.
pub const RPC_SIGNING_SERVICE: &str = "cairn-rpc";
/// The SigV4 region node RPC requests are signed for.
pub const RPC_SIGNING_REGION: &str = "cairn";
/// Header carrying a shard's BLAKE3 (hex) on shard PUT and GET.
pub const SHARD_CHECKSUM_HEADER: &str = "x-cairn-shard-checksum";
/// Header carrying a shard's [`crate::codec::ShardGeometry`] on shard PUT
/// and GET.
pub const SHARD_GEOMETRY_HEADER: &str = "x-cairn-shard-geometry";
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
    /// For each chunk (at most [`MAX_META_BATCH`]), whether its group knows
    /// it: it has references, or is waiting for deletion or being deleted.
    Known(Vec<ChunkId>),
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
    /// One version of a key (with `version: None`, its latest: the
    /// current object, or else its newest delete marker or version).
    Version {
        /// Bucket.
        bucket: BucketId,
        /// Key.
        key: String,
        /// Which.
        version: Option<VersionRef>,
    },
    /// A page of a bucket's versions and delete markers.
    ListVersions {
        /// Bucket.
        bucket: BucketId,
        /// Only keys starting with this.
        prefix: String,
        /// Roll keys up to the first delimiter after the prefix.
        delimiter: Option<String>,
        /// Only versions after this one.
        from: Option<VersionsFrom>,
        /// At most this many versions and prefixes, 1..=[`MAX_SCAN_LIMIT`].
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
// One answer per read, moved once: not worth boxing a variant.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ReadReply {
    /// For [`Read::Get`], in order.
    Values(Vec<Option<Vec<u8>>>),
    /// For [`Read::Scan`]: `(sort key, value)` in order, and whether the
    /// scan stopped at its limit with records left.
    Entries(Vec<(String, Vec<u8>)>, bool),
    /// For [`Read::ListObjects`]: the items in order, and whether more follow.
    Listing(Vec<ListItem>, bool),
    /// For [`Read::Known`], in order.
    Flags(Vec<bool>),
    /// For [`Read::Version`]: the version, and whether it is the key's
    /// latest.
    Version(Option<(VersionRecord, bool)>),
    /// For [`Read::ListVersions`]: the items in order, and whether more
    /// follow.
    Versions(Vec<VersionItem>, bool),
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
    /// Its RPC address.
    pub addr: String,
    /// `(group, term)` of the quiet groups it leads.
    pub quiet: Vec<(GroupId, u64)>,
    /// The placement version this node holds everything of (its repair
    /// worker's last complete pass), 0 before its first.
    pub synced: u64,
    /// Shard bytes stored.
    pub used_bytes: u64,
    /// Size of the file system holding its data.
    pub total_bytes: u64,
    /// The cluster map version it holds (a node behind fetches the map
    /// from a node ahead, so a node added to the layout learns it).
    pub map_version: u64,
}

/// `POST /v1/peer/hello`: a node not in the layout yet makes itself known
/// (`cairn-node --join`), so gateways can find it for `layout assign`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Its id.
    pub node: NodeId,
    /// Its RPC address.
    pub addr: String,
}

/// `POST /v1/shards/list`: shards of this node's index in a key range
/// (`chunk id ++ shard index`, `from` included, `to` excluded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListShardsRequest {
    /// First key.
    pub from: Vec<u8>,
    /// End key (excluded).
    pub to: Vec<u8>,
    /// Most entries wanted.
    pub limit: u32,
}

/// One shard in a [`ListShardsReply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedShard {
    /// Its chunk.
    pub chunk: crate::id::ChunkId,
    /// Its index.
    pub index: u8,
    /// The chunk's geometry, when its file carries it.
    pub geometry: Option<crate::codec::ShardGeometry>,
}

/// Answer to [`ListShardsRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListShardsReply {
    /// The shards, in key order.
    pub shards: Vec<ListedShard>,
    /// Whether the range holds more after the last one.
    pub more: bool,
}

/// How one node sees another (`GET /v1/peers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Liveness {
    /// Beats arrive as expected.
    Up,
    /// Beats are late (phi above the suspect threshold).
    Suspect,
    /// Beats stopped (phi above the down threshold); since when, ms since
    /// the epoch (the last beat heard).
    Down {
        /// The last beat heard, ms since the epoch (0: never heard).
        since_ms: u64,
    },
}

/// One peer in a node's view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerView {
    /// The peer.
    pub node: NodeId,
    /// Its liveness as seen here.
    pub liveness: Liveness,
    /// Its failure suspicion (phi accrual).
    pub phi: f64,
    /// What its last beat said.
    pub synced: u64,
    /// Shard bytes, from its last beat.
    pub used_bytes: u64,
    /// File system size, from its last beat.
    pub total_bytes: u64,
}

/// A node's repair and rebalance worker, as it reports itself
/// (`GET /v1/repair`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepairReport {
    /// `idle`, `scanning`, `repairing`, `paused`.
    pub state: String,
    /// The placement version the current pass works for.
    pub placement_version: u64,
    /// The placement version of the last pass that completed with nothing
    /// left to do (0: none yet).
    pub synced: u64,
    /// Passes completed since the worker started.
    pub passes: u64,
    /// The placement version of the last pass whose scan reached every
    /// source (its counts below are of that placement); 0: none yet.
    pub counted_at: u64,
    /// Chunks this node counts as short of shards on their current owners
    /// (each chunk is counted by one node): shards missing -> chunks.
    pub by_missing_shards: std::collections::BTreeMap<u8, u64>,
    /// Shards this node must rebuild or fetch, queued or not yet scanned.
    pub shards_to_fix: u64,
    /// Shards it holds that belong elsewhere.
    pub misplaced_shards: u64,
    /// Bytes still to rebuild or move here (as far as scanned).
    pub bytes_remaining: u64,
    /// Bytes rebuilt or moved here since start.
    pub bytes_done: u64,
    /// Shards rebuilt from parity since start.
    pub shards_rebuilt: u64,
    /// Shards copied from a previous owner since start.
    pub shards_moved: u64,
    /// Misplaced shards deleted once their owner held them, since start.
    pub shards_dropped: u64,
    /// Chunks fewer than `k` shards of which could be found, with every
    /// holder answering (lost, or left by a failed write).
    pub unrecoverable_chunks: u64,
    /// Tasks that failed and wait for a retry.
    pub retrying: u64,
    /// Rebuild throughput over the last few seconds, bytes/s.
    pub rate_bytes_per_s: f64,
    /// Throttle: bytes/s (0: unlimited).
    pub max_bytes_per_s: u64,
    /// Throttle: tasks at once.
    pub concurrency: u32,
    /// Metadata groups this node leads whose voters are not yet those the
    /// map names (the node's repair worker leaves this 0; the node fills
    /// it in).
    pub voter_changes_pending: u64,
}

/// A node's scrubber, as it reports itself (`GET /v1/scrub`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubReport {
    /// `running`, `paused`, `idle`.
    pub state: String,
    /// Shards verified in the current (or last) pass.
    pub shards_checked: u64,
    /// Shards found corrupt since start.
    pub corrupt_found: u64,
    /// Of them, those rebuilt here or not owned here (dropped).
    pub repaired: u64,
    /// Corrupt shards deleted here and waiting for their rebuild.
    pub waiting_repair: u64,
    /// Passes completed (kept across restarts).
    pub passes: u64,
    /// When the next scheduled pass starts, ms since the epoch.
    pub next_pass_ms: u64,
}

/// `POST /v1/repair/throttle`: change a worker's limits at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairThrottle {
    /// Bytes/s (0: unlimited).
    pub max_bytes_per_s: Option<u64>,
    /// Tasks at once (at least 1).
    pub concurrency: Option<u32>,
    /// Pause or resume.
    pub paused: Option<bool>,
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
        /// Objects stored (current versions), from the groups' counters.
        pub objects: u64,
        /// Logical bytes stored (object sizes), from the groups' counters.
        pub object_bytes: u64,
        /// Multipart uploads in progress.
        pub uploads: u64,
        /// Bytes of their parts.
        pub upload_bytes: u64,
        /// Chunks referenced by objects, parts and uploads.
        pub chunks: u64,
        /// Their bytes in shards (each chunk once however many objects share
        /// it, with parity), from the groups' counters.
        pub stored_bytes: u64,
        /// Chunks no longer referenced, not yet collected, and their bytes.
        pub garbage_chunks: u64,
        /// See `garbage_chunks`.
        pub garbage_bytes: u64,
        /// Shard bytes on the disks of all reachable nodes (garbage not yet
        /// collected included).
        pub shard_bytes: u64,
        /// Data groups whose counters could not be read (the figures above
        /// then leave them out).
        pub groups_unread: u32,
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
        /// Only compute the planned movement; change nothing.
        #[serde(default)]
        pub dry_run: bool,
        /// Data groups of a new cluster (the first apply only; the default
        /// otherwise: `layout::DEFAULT_METADATA_GROUPS`).
        #[serde(default)]
        pub metadata_groups: Option<u32>,
    }

    /// What applying a layout moves (`layout apply --dry-run`, and the
    /// answer of every apply).
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct PlannedLayout {
        /// The layout it would become (or became).
        pub layout: Layout,
        /// Partitions whose row changes.
        pub partitions_changed: u64,
        /// Partitions in all.
        pub partitions: u64,
        /// Shard slots that change node.
        pub shards_moved_slots: u64,
        /// Estimated bytes to move: moved slots times the mean bytes per
        /// slot now.
        pub bytes_to_move: u64,
        /// Whether it was applied.
        pub applied: bool,
    }

    /// One node in `GET /admin/v1/nodes`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct NodeEntry {
        /// Its id.
        pub id: NodeId,
        /// RPC address.
        pub addr: String,
        /// Zone.
        pub zone: String,
        /// Capacity weight.
        pub capacity: u32,
        /// `up`, `suspect`, `down`, `out` (down or not), `leaving`.
        pub state: String,
        /// Whether it answers the gateway now.
        pub reachable: bool,
        /// Since when it is down (last beat heard), ms since the epoch.
        pub down_since_ms: Option<u64>,
        /// When it was marked out, and whether automatically.
        pub out: Option<crate::layout::OutMark>,
        /// Shard bytes stored.
        pub used_bytes: u64,
        /// Size of its file system.
        pub total_bytes: u64,
        /// Metadata groups it votes in.
        pub voter_of: u32,
    }

    /// `GET /admin/v1/repair`: the repair and rebalance workers of every
    /// node together (every key is described in `docs/design/repair.md`).
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct RepairStatus {
        /// `verified` (a complete pass of every owner found nothing
        /// missing), `repairing`, `counting` (some owner has not finished a
        /// scan of the placement in force, or cannot be reached).
        pub state: String,
        /// Chunks short of at least one shard on their current owners.
        pub degraded_chunks: u64,
        /// Shards missing -> chunks.
        pub by_missing_shards: std::collections::BTreeMap<String, u64>,
        /// Shards held by a node that does not own them.
        pub misplaced_shards: u64,
        /// Bytes still to rebuild or move, as far as scanned.
        pub bytes_remaining: u64,
        /// Bytes rebuilt or moved since the workers started.
        pub bytes_done: u64,
        /// Rebuild and move rate now, bytes/s.
        pub rate_bytes_per_s: f64,
        /// bytes_remaining / rate, seconds (`null` when idle).
        pub eta_s: Option<f64>,
        /// Chunks fewer than k shards of which could be found.
        pub unrecoverable_chunks: u64,
        /// Whether earlier placements are still migrating.
        pub migrating: bool,
        /// Metadata groups whose voters are not yet those the map names
        /// (one may still count a lost node among its voters).
        pub voter_changes_pending: u64,
        /// The placement version in force.
        pub placement_version: u64,
        /// Owners that did not answer.
        pub unreachable: Vec<NodeId>,
        /// Each node's own report.
        pub nodes: Vec<(NodeId, super::RepairReport)>,
    }

    /// `GET /admin/v1/scrub`: every node's scrubber together.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct ScrubStatus {
        /// `running` (some node scrubs), `paused` (some node is paused,
        /// none runs), `idle`.
        pub state: String,
        /// Shards verified in the current or last pass, all nodes.
        pub shards_checked: u64,
        /// Corrupt shards found since the nodes started.
        pub corrupt_found: u64,
        /// Of them, rebuilt (or dropped where not owned).
        pub repaired: u64,
        /// Corrupt shards deleted and waiting for their rebuild.
        pub waiting_repair: u64,
        /// Passes completed, summed over nodes.
        pub passes: u64,
        /// Nodes that did not answer.
        pub unreachable: Vec<NodeId>,
        /// Each node's own report.
        pub nodes: Vec<(NodeId, super::ScrubReport)>,
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

    /// `GET /admin/v1/buckets/{name}`: a bucket's usage and quota, from the
    /// counters its writes keep.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct BucketUsage {
        /// Name.
        pub name: String,
        /// Owning access key.
        pub owner: String,
        /// Objects.
        pub objects: u64,
        /// Their bytes.
        pub bytes: u64,
        /// Multipart uploads in progress.
        pub uploads: u64,
        /// Bytes of their parts so far.
        pub upload_bytes: u64,
        /// Quota: most bytes of objects.
        pub max_bytes: Option<u64>,
        /// Quota: most objects.
        pub max_objects: Option<u64>,
    }

    /// `PUT /admin/v1/buckets/{name}/quota` (absent fields: no limit).
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    pub struct QuotaRequest {
        /// Most bytes of objects.
        pub max_bytes: Option<u64>,
        /// Most objects.
        pub max_objects: Option<u64>,
    }

    /// `GET /admin/v1/gc`, `POST /admin/v1/gc/run`: every node's collector.
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    pub struct GcStatus {
        /// `collecting` (some node is in a pass) or `idle`.
        pub state: String,
        /// The grace period, seconds (the largest any node reports).
        pub grace_s: u64,
        /// Chunks deleted since the nodes started, all nodes.
        pub chunks_deleted: u64,
        /// Of which orphans.
        pub orphans_deleted: u64,
        /// Bytes they took in shards.
        pub bytes_freed: u64,
        /// Chunks waiting for the grace, and their bytes.
        pub waiting_chunks: u64,
        /// See `waiting_chunks`.
        pub waiting_bytes: u64,
        /// Drop records not yet processed.
        pub pending_drops: u64,
        /// Nodes that did not answer.
        pub unreachable: Vec<NodeId>,
        /// Each node's own report.
        pub nodes: Vec<(NodeId, super::GcReport)>,
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

/// A node's garbage collector (`GET /v1/gc`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GcReport {
    /// `idle` or `collecting`.
    pub state: String,
    /// The grace period, seconds.
    pub grace_s: u64,
    /// Passes finished since the node started.
    pub passes: u64,
    /// The pass the last `gc run` asked for (finished once `passes` reaches
    /// it).
    pub requested: u64,
    /// When the last finished pass started and ended, ms since the epoch
    /// (0: none yet).
    pub last_started_ms: u64,
    /// See `last_started_ms`.
    pub last_finished_ms: u64,
    /// Whether the last finished pass did all it found to do (every
    /// holder answered, every command committed).
    pub last_complete: bool,
    /// Chunks deleted from their holders since start (orphans included).
    pub chunks_deleted: u64,
    /// Of which orphans (shards no reference ever covered).
    pub orphans_deleted: u64,
    /// Shard deletions holders confirmed.
    pub shards_deleted: u64,
    /// Bytes those chunks took in shards (orphans not counted).
    pub bytes_freed: u64,
    /// References removed since start: of object versions and parts that
    /// went away, and of writes that never committed.
    pub refs_removed: u64,
    /// References the audit saw committed.
    pub refs_confirmed: u64,
    /// Writes whose intent expired (their writer stopped) that the audit
    /// cancelled.
    pub writes_cancelled: u64,
    /// In the groups this node leads, at the last pass: chunks without
    /// references waiting for the grace, and their bytes.
    pub waiting_chunks: u64,
    /// See `waiting_chunks`.
    pub waiting_bytes: u64,
    /// Drop records not yet processed in the groups this node leads.
    pub pending_drops: u64,
}
