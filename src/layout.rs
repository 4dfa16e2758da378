//! The cluster layout and the placement table derived from it.
//!
//! A [`Layout`] is a versioned record of the storage nodes (id, address, zone,
//! capacity), the erasure profile and the partition count. Every process
//! derives the same [`PlacementTable`] from it: partition -> ordered list of
//! `k + m` distinct nodes. Shard `i` of a chunk lives on the `i`-th node of its
//! partition; the metadata of a partition lives on the first `2m + 1`.
//!
//! The table is built once per layout version, never on the request path.

use crate::codec::ErasureProfile;
use crate::error::{Error, Result};
use crate::id::{ChunkId, NodeId, partition_of_hash};
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
    /// The storage nodes.
    pub nodes: Vec<NodeInfo>,
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

    /// Number of metadata replicas per partition: 2m + 1, capped by the
    /// node count, so metadata survives as many lost nodes as data does.
    pub fn metadata_replicas(&self) -> usize {
        (2 * usize::from(self.profile.parity_shards) + 1).min(self.nodes.len())
    }
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
    metadata_replicas: usize,
}

impl PlacementTable {
    /// Build the table for `layout`. Deterministic: the same layout gives the
    /// same table in every process, whatever the order of its node list.
    pub fn build(layout: &Layout) -> Result<Self> {
        layout.validate()?;
        let total = layout.profile.total_shards();
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
            metadata_replicas: layout.metadata_replicas(),
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

    /// The metadata partition of a partition key (a bucket name, say).
    pub fn metadata_partition(&self, partition_key: &[u8]) -> u32 {
        partition_of_hash(blake3::hash(partition_key).as_bytes(), self.partition_bits)
    }

    /// The replicas of the metadata stored under `partition_key`.
    pub fn metadata_nodes(&self, partition_key: &[u8]) -> &[NodeId] {
        let p = self.metadata_partition(partition_key);
        &self.partitions[p as usize][..self.metadata_replicas]
    }

    /// Number of metadata replicas per partition.
    pub fn metadata_replicas(&self) -> usize {
        self.metadata_replicas
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn layout(nodes: usize, zones: usize, k: u8, m: u8) -> Layout {
        Layout {
            version: 1,
            profile: ErasureProfile {
                data_shards: k,
                parity_shards: m,
            },
            partition_bits: 6,
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
    fn metadata_uses_two_m_plus_one_replicas() {
        let t = PlacementTable::build(&layout(8, 8, 4, 2)).unwrap();
        assert_eq!(t.metadata_nodes(b"bucket").len(), 5);
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
            let a = slots(&PlacementTable::build(&before).unwrap());
            let b = slots(&PlacementTable::build(&after).unwrap());
            let moved = b.difference(&a).count();
            // Removing one of n nodes must re-home its own slots (about
            // total/n of them); allow twice that plus noise, never a reshuffle.
            let ideal = a.len() / nodes;
            prop_assert!(moved <= 2 * ideal + 16, "moved {moved}, ideal {ideal}");
        }
    }
}
