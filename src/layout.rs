//! The cluster layout and the placement table derived from it.
//!
//! A [`Layout`] is a versioned record of the storage nodes (id, address, zone,
//! capacity), the erasure profile and the partition count. Every process
//! derives the same [`PlacementTable`] from it: partition -> ordered list of
//! `k + m` distinct nodes. Shard `i` of a chunk lives on the `i`-th node of its
//! partition. Metadata lives in `G` data groups plus the system group, each
//! a Raft group whose voters are the first `2m + 1` nodes of one partition.
//!
//! The table is built once per layout version, never on the request path.

use crate::codec::ErasureProfile;
use crate::error::{Error, Result};
use crate::id::{ChunkId, NodeId};
use crate::record::GroupId;
use hashring::HashRing;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};

/// Default partition count exponent: 2^8 = 256 partitions, plenty for
/// clusters of up to a few dozen nodes.
pub const DEFAULT_PARTITION_BITS: u8 = 8;
/// Largest partition exponent accepted (65,536 partitions).
pub const MAX_PARTITION_BITS: u8 = 16;
/// Ring positions per unit of capacity. More positions spread partitions more
/// evenly; the ring is walked once per partition when the table is built.
pub const VIRTUAL_NODES_PER_CAPACITY: u32 = 16;
/// Largest capacity weight a node can be given.
pub const MAX_CAPACITY: u32 = 64;
/// Data groups of a new cluster by default (see docs/PERFORMANCE.md for
/// the measurement behind it): enough that writes to different buckets
/// spread over every node's leaderships, few enough that idle groups cost
/// little on small machines.
pub const DEFAULT_METADATA_GROUPS: u32 = 32;
/// Largest number of data groups a cluster may have.
pub const MAX_METADATA_GROUPS: u32 = 1024;

/// One storage node as the layout knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's identity.
    pub id: NodeId,
    /// `host:port` of its RPC endpoint.
    pub addr: String,
    /// Failure domain; shards of one chunk go to distinct zones when possible.
    pub zone: String,
    /// Relative weight (1..=[`MAX_CAPACITY`]).
    pub capacity: u32,
}

/// The versioned cluster layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Increases by one with every applied change; 0 means "no layout yet".
    pub version: u64,
    /// The erasure profile used for new writes.
    pub profile: ErasureProfile,
    /// log2 of the partition count.
    pub partition_bits: u8,
    /// The metadata groups, by group id (0: the system group): their voters.
    /// Set when the cluster is created ([`Layout::assign_groups`]); after
    /// that they change only by Raft membership changes.
    pub groups: Vec<GroupInfo>,
    /// The storage nodes.
    pub nodes: Vec<NodeInfo>,
}

/// One metadata group as the cluster map records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// Its voters.
    pub voters: Vec<NodeId>,
    /// 0 while the voters are those the group was created with; each
    /// membership change adds one. A node starts (initializes) a group of
    /// its own only at epoch 0: later voters join through the leader.
    pub epoch: u64,
}

impl Layout {
    /// Check the layout can be placed: enough nodes for the profile, distinct
    /// ids and addresses, sane capacities.
    pub fn validate(&self) -> Result<()> {
        let total = self.profile.total_shards();
        if self.profile.data_shards == 0 {
            return Err(Error::InvalidLayout("k must be at least 1".into()));
        }
        if self.nodes.len() < total {
            return Err(Error::InvalidLayout(format!(
                "profile {}+{} needs {total} nodes, the layout has {}",
                self.profile.data_shards,
                self.profile.parity_shards,
                self.nodes.len()
            )));
        }
        let data_groups = self.groups.len().saturating_sub(1);
        if !(1..=MAX_METADATA_GROUPS as usize).contains(&data_groups) {
            return Err(Error::InvalidLayout(format!(
                "{data_groups} data groups, not in 1..={MAX_METADATA_GROUPS}"
            )));
        }
        for (g, info) in self.groups.iter().enumerate() {
            let voters: HashSet<_> = info.voters.iter().collect();
            if voters.is_empty()
                || voters.len() != info.voters.len()
                || info.voters.iter().any(|v| self.node(*v).is_none())
            {
                return Err(Error::InvalidLayout(format!(
                    "group {g}: its voters must be distinct nodes of the layout"
                )));
            }
        }
        if self.partition_bits > MAX_PARTITION_BITS {
            return Err(Error::InvalidLayout(format!(
                "partition_bits {} > {MAX_PARTITION_BITS}",
                self.partition_bits
            )));
        }
        let ids: HashSet<_> = self.nodes.iter().map(|n| n.id).collect();
        let addrs: HashSet<_> = self.nodes.iter().map(|n| &n.addr).collect();
        if ids.len() != self.nodes.len() || addrs.len() != self.nodes.len() {
            return Err(Error::InvalidLayout("duplicate node id or address".into()));
        }
        if let Some(n) = self
            .nodes
            .iter()
            .find(|n| n.capacity == 0 || n.capacity > MAX_CAPACITY)
        {
            return Err(Error::InvalidLayout(format!(
                "node {} capacity {} not in 1..={MAX_CAPACITY}",
                n.id, n.capacity
            )));
        }
        Ok(())
    }

    /// The node with this id.
    pub fn node(&self, id: NodeId) -> Option<&NodeInfo> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Number of metadata replicas per group: 2m + 1, capped by the node
    /// count, so metadata survives as many lost nodes as data does.
    pub fn metadata_replicas(&self) -> usize {
        (2 * usize::from(self.profile.parity_shards) + 1).min(self.nodes.len())
    }

    /// Number of data groups.
    pub fn metadata_groups(&self) -> u32 {
        self.groups.len().saturating_sub(1) as u32
    }

    /// Give a new cluster's layout its system group and `data_groups` data
    /// groups, each with `2m + 1` voters: the first nodes of a partition of
    /// the placement (zone-spread), groups spread evenly over partitions.
    pub fn assign_groups(&mut self, data_groups: u32) -> Result<()> {
        if !(1..=MAX_METADATA_GROUPS).contains(&data_groups) {
            return Err(Error::InvalidLayout(format!(
                "{data_groups} data groups, not in 1..={MAX_METADATA_GROUPS}"
            )));
        }
        let placement = PlacementTable::build_nodes(self)?;
        let replicas = self.metadata_replicas();
        let partitions = u64::from(placement.partition_count());
        self.groups = (0..=data_groups)
            .map(|g| {
                let first = u64::from(g) * partitions / (u64::from(data_groups) + 1);
                // The partition's nodes first; when 2m + 1 exceeds k + m,
                // the next partitions' nodes fill up.
                let mut voters: Vec<NodeId> = Vec::with_capacity(replicas);
                for p in (first..first + partitions).map(|p| (p % partitions) as u32) {
                    for n in placement.partition_nodes(p) {
                        if voters.len() < replicas && !voters.contains(n) {
                            voters.push(*n);
                        }
                    }
                    if voters.len() == replicas {
                        break;
                    }
                }
                // With very few partitions some node may be in none of them.
                let mut rest: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
                rest.sort();
                for n in rest {
                    if voters.len() < replicas && !voters.contains(&n) {
                        voters.push(n);
                    }
                }
                GroupInfo { voters, epoch: 0 }
            })
            .collect();
        Ok(())
    }
}

/// The data group (of `groups`) a partition key hashes to.
pub fn data_group_of(partition_key: &str, groups: u32) -> GroupId {
    assert!(groups >= 1, "a cluster has at least one data group");
    let h = blake3::hash(partition_key.as_bytes());
    let n = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
    GroupId(1 + (n % u64::from(groups)) as u32)
}

/// A ring position: one virtual node of a storage node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VirtualNode {
    node: NodeId,
    replica: u32,
}

impl Hash for VirtualNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.node.0.to_le_bytes());
        state.write(&self.replica.to_le_bytes());
    }
}

/// The key a partition is looked up with on the ring.
struct PartitionKey(u32);

impl Hash for PartitionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(b"partition");
        state.write(&self.0.to_le_bytes());
    }
}

/// Ring positions from BLAKE3, so they are identical on every platform and
/// every Rust version (std's SipHash keys and `Hash` impls are not promised
/// to be stable).
#[derive(Clone, Copy, Default)]
struct Blake3BuildHasher;

struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        let hash = self.0.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        u64::from_le_bytes(first)
    }
}

impl BuildHasher for Blake3BuildHasher {
    type Hasher = Blake3Hasher;
    fn build_hasher(&self) -> Blake3Hasher {
        Blake3Hasher(blake3::Hasher::new())
    }
}

/// Partition -> the ordered `k + m` nodes that hold its shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementTable {
    /// The layout version this table was built from.
    pub version: u64,
    /// The profile of that layout.
    pub profile: ErasureProfile,
    /// log2 of the partition count.
    pub partition_bits: u8,
    partitions: Vec<Vec<NodeId>>,
    groups: Vec<GroupInfo>,
}

impl PlacementTable {
    /// Build the table for `layout`. Deterministic: the same layout gives the
    /// same table in every process, whatever the order of its node list.
    pub fn build(layout: &Layout) -> Result<Self> {
        layout.validate()?;
        Self::build_nodes(layout)
    }

    /// The table of the layout's nodes, whatever its groups say.
    fn build_nodes(layout: &Layout) -> Result<Self> {
        let total = layout.profile.total_shards();
        if layout.profile.data_shards == 0 || layout.nodes.len() < total {
            return Err(Error::InvalidLayout(format!(
                "profile {}+{} needs {total} nodes, the layout has {}",
                layout.profile.data_shards,
                layout.profile.parity_shards,
                layout.nodes.len()
            )));
        }
        let zone_of: BTreeMap<NodeId, &str> = layout
            .nodes
            .iter()
            .map(|n| (n.id, n.zone.as_str()))
            .collect();
        let mut ring: HashRing<VirtualNode, Blake3BuildHasher> =
            HashRing::with_hasher(Blake3BuildHasher);
        let mut sorted: Vec<&NodeInfo> = layout.nodes.iter().collect();
        sorted.sort_by_key(|n| n.id);
        for node in sorted {
            for replica in 0..node.capacity * VIRTUAL_NODES_PER_CAPACITY {
                ring.add(VirtualNode {
                    node: node.id,
                    replica,
                });
            }
        }
        let zone_count = zone_of.values().collect::<BTreeSet<_>>().len();
        let partition_count = 1u32 << layout.partition_bits;
        let mut partitions = Vec::with_capacity(partition_count as usize);
        for p in 0..partition_count {
            let walk = ring
                .get_with_replicas(&PartitionKey(p), ring.len())
                .expect("validated layouts have nodes");
            // Walk order, first taking one node per new zone (spread over
            // failure domains), then filling up with the next distinct nodes.
            let mut chosen: Vec<NodeId> = Vec::with_capacity(total);
            let mut zones_used: BTreeSet<&str> = BTreeSet::new();
            for v in &walk {
                if chosen.len() == total || zones_used.len() == zone_count {
                    break;
                }
                if !chosen.contains(&v.node) && zones_used.insert(zone_of[&v.node]) {
                    chosen.push(v.node);
                }
            }
            for v in &walk {
                if chosen.len() == total {
                    break;
                }
                if !chosen.contains(&v.node) {
                    chosen.push(v.node);
                }
            }
            assert_eq!(chosen.len(), total, "validated layouts have k+m nodes");
            partitions.push(chosen);
        }
        Ok(Self {
            version: layout.version,
            profile: layout.profile,
            partition_bits: layout.partition_bits,
            partitions,
            groups: layout.groups.clone(),
        })
    }

    /// Number of partitions (2^partition_bits).
    pub fn partition_count(&self) -> u32 {
        1 << self.partition_bits
    }

    /// The `k + m` nodes of a partition, shard index order.
    pub fn partition_nodes(&self, partition: u32) -> &[NodeId] {
        &self.partitions[partition as usize]
    }

    /// The `k + m` nodes that hold a chunk's shards, shard index order.
    pub fn chunk_nodes(&self, chunk: &ChunkId) -> &[NodeId] {
        self.partition_nodes(chunk.partition(self.partition_bits))
    }

    /// Number of data groups.
    pub fn metadata_groups(&self) -> u32 {
        self.groups.len().saturating_sub(1) as u32
    }

    /// The data group of a partition key (a bucket id): every record of one
    /// bucket lives in one group, so its conditional writes are decided in
    /// one log.
    pub fn data_group(&self, partition_key: &str) -> GroupId {
        data_group_of(partition_key, self.metadata_groups())
    }

    /// Every group: the system group, then the data groups.
    pub fn groups(&self) -> impl Iterator<Item = GroupId> + use<> {
        (0..=self.metadata_groups()).map(GroupId)
    }

    /// A group as the cluster map records it.
    pub fn group(&self, group: GroupId) -> &GroupInfo {
        &self.groups[group.0 as usize]
    }

    /// The voters of a group.
    pub fn group_voters(&self, group: GroupId) -> &[NodeId] {
        &self.group(group).voters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn layout(nodes: usize, zones: usize, k: u8, m: u8) -> Layout {
        let mut l = bare(nodes, zones, k, m);
        if l.nodes.len() >= l.profile.total_shards() {
            l.assign_groups(8).unwrap();
        }
        l
    }

    fn bare(nodes: usize, zones: usize, k: u8, m: u8) -> Layout {
        Layout {
            version: 1,
            profile: ErasureProfile {
                data_shards: k,
                parity_shards: m,
            },
            partition_bits: 6,
            groups: Vec::new(),
            nodes: (0..nodes)
                .map(|i| NodeInfo {
                    id: NodeId(0x1000 + i as u64 * 7919),
                    addr: format!("127.0.0.1:{}", 7000 + i),
                    zone: format!("z{}", i % zones),
                    capacity: 1,
                })
                .collect(),
        }
    }

    fn slots(t: &PlacementTable) -> BTreeSet<(u32, NodeId)> {
        (0..t.partition_count())
            .flat_map(|p| t.partition_nodes(p).iter().map(move |n| (p, *n)))
            .collect()
    }

    #[test]
    fn too_few_nodes_is_rejected() {
        assert!(PlacementTable::build(&layout(5, 1, 4, 2)).is_err());
    }

    #[test]
    fn default_profiles_fit_their_cluster() {
        for n in 1..12 {
            let p = ErasureProfile::default_for(n);
            assert!(p.total_shards() <= n, "{n} nodes");
        }
        assert_eq!(ErasureProfile::default_for(6).total_shards(), 6);
    }

    #[test]
    fn groups_have_two_m_plus_one_distinct_voters() {
        let t = PlacementTable::build(&layout(8, 8, 4, 2)).unwrap();
        for g in t.groups() {
            let voters: BTreeSet<_> = t.group_voters(g).iter().collect();
            assert_eq!(voters.len(), 5, "{g}");
        }
        let g = t.data_group("0123456789abcdef");
        assert!((1..=8).contains(&g.0));
        assert_eq!(g, t.data_group("0123456789abcdef"));
    }

    proptest! {
        #[test]
        fn partitions_hold_distinct_nodes_spread_over_zones(
            nodes in 6usize..16, zones in 1usize..8, k in 1u8..5, m in 0u8..3,
        ) {
            let l = layout(nodes, zones, k, m);
            let t = PlacementTable::build(&l).unwrap();
            let total = l.profile.total_shards();
            let zones_present = zones.min(nodes);
            for p in 0..t.partition_count() {
                let set: BTreeSet<_> = t.partition_nodes(p).iter().collect();
                prop_assert_eq!(set.len(), total);
                let z: BTreeSet<_> = t.partition_nodes(p).iter()
                    .map(|id| &l.node(*id).unwrap().zone).collect();
                prop_assert_eq!(z.len(), total.min(zones_present));
            }
        }

        #[test]
        fn every_process_derives_the_same_table(nodes in 6usize..12, seed in any::<u64>()) {
            let l = layout(nodes, 3, 4, 2);
            let mut shuffled = l.clone();
            // A deterministic shuffle of the node list.
            let n = shuffled.nodes.len();
            let mut s = seed;
            for i in (1..n).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                shuffled.nodes.swap(i, (s >> 33) as usize % (i + 1));
            }
            prop_assert_eq!(PlacementTable::build(&l).unwrap(), PlacementTable::build(&shuffled).unwrap());
        }

        #[test]
        fn adding_or_removing_a_node_moves_a_bounded_share(nodes in 7usize..14) {
            let before = layout(nodes, nodes, 4, 2);
            let mut after = before.clone();
            after.nodes.pop();
            let a = slots(&PlacementTable::build_nodes(&before).unwrap());
            let b = slots(&PlacementTable::build_nodes(&after).unwrap());
            let moved = b.difference(&a).count();
            // Removing one of n nodes must re-home its own slots (about
            // total/n of them); allow twice that plus noise, never a reshuffle.
            let ideal = a.len() / nodes;
            prop_assert!(moved <= 2 * ideal + 16, "moved {moved}, ideal {ideal}");
        }
    }
}
