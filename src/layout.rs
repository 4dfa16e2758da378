//! The cluster layout and the placement table derived from it.
//!
//! A [`Layout`] is a versioned record of the storage nodes (id, address, zone,
//! capacity), the erasure profile, the partition count and the placement:
//! partition -> ordered list of `k + m` distinct nodes, planned when the
//! layout is applied from the previous one with the fewest changes
//! ([`crate::placement`]). Shard `i` of a chunk lives on the `i`-th node of
//! its partition. Metadata lives in `G` data groups plus the system group,
//! each a Raft group of `2m + 1` voters.
//!
//! The [`PlacementTable`] is built once per layout version, never on the
//! request path.

use crate::codec::ErasureProfile;
use crate::error::{Error, Result};
use crate::id::{ChunkId, NodeId};
use crate::placement::{self, Member};
use crate::record::GroupId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};

pub use crate::placement::MAX_PARTITION_BITS;
/// Largest capacity weight a node can be given.
pub const MAX_CAPACITY: u32 = 64;
/// Data groups of a new cluster by default (see docs/PERFORMANCE.md for
/// the measurement behind it): enough that writes to different buckets
/// spread over every node's leaderships, few enough that idle groups cost
/// little on small machines.
pub const DEFAULT_METADATA_GROUPS: u32 = 32;
/// Largest number of data groups a cluster may have.
pub const MAX_METADATA_GROUPS: u32 = 1024;
/// Most earlier placements a map keeps while their data moves (each a
/// migration still in progress); a change that would need more waits.
pub const MAX_PLACEMENT_HISTORY: usize = 8;

/// A node marked out: placement gives its slots to other nodes until it
/// is in again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutMark {
    /// Marked by the cluster after the down-out grace (and taken back in
    /// when it returns), rather than by an operator.
    pub auto: bool,
    /// When, ms since the epoch.
    pub since_ms: u64,
}

/// An earlier effective placement whose shards may still sit on its nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastPlacement {
    /// The placement version it was.
    pub version: u64,
    /// Its partition count exponent.
    pub partition_bits: u8,
    /// Its rows.
    pub rows: Vec<Vec<NodeId>>,
}

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
    /// Partition -> its `k + m` nodes, by shard index
    /// ([`Layout::plan_placement`]), as planned: nodes marked out keep
    /// their slots here, and [`Layout::effective_placement`] lends them to
    /// others.
    pub placement: Vec<Vec<NodeId>>,
    /// Nodes marked out.
    pub out: BTreeMap<NodeId, OutMark>,
    /// Nodes being drained: they hold nothing in the plan, and leave
    /// `nodes` when the migration away from them completes.
    pub leaving: BTreeSet<NodeId>,
    /// The map version at which the effective placement last changed.
    pub placement_version: u64,
    /// Earlier effective placements, newest first, kept until every node
    /// has moved their data to the current one.
    pub history: Vec<PastPlacement>,
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
        if self.placement.len() != 1usize << self.partition_bits {
            return Err(Error::InvalidLayout(format!(
                "{} placement rows for {} partitions",
                self.placement.len(),
                1u32 << self.partition_bits
            )));
        }
        for (p, row) in self.placement.iter().enumerate() {
            let distinct: HashSet<_> = row.iter().collect();
            if row.len() != total || distinct.len() != total || row.iter().any(|n| !ids.contains(n))
            {
                return Err(Error::InvalidLayout(format!(
                    "partition {p}: its row must be {total} distinct nodes of the layout"
                )));
            }
        }
        if let Some(n) = self
            .out
            .keys()
            .chain(&self.leaving)
            .find(|n| !ids.contains(n))
        {
            return Err(Error::InvalidLayout(format!(
                "node {n} is out or leaving but not in the layout"
            )));
        }
        if self.history.len() > MAX_PLACEMENT_HISTORY {
            return Err(Error::InvalidLayout(format!(
                "{} migrations in progress, at most {MAX_PLACEMENT_HISTORY}",
                self.history.len()
            )));
        }
        for past in &self.history {
            if past.partition_bits > MAX_PARTITION_BITS
                || past.rows.len() != 1usize << past.partition_bits
                || past.rows.iter().flatten().any(|n| !ids.contains(n))
            {
                return Err(Error::InvalidLayout(format!(
                    "placement {} of the history is not over nodes of the layout",
                    past.version
                )));
            }
        }
        Ok(())
    }

    /// The placement in force: the planned rows, with the slots of nodes
    /// marked out given to other nodes (the neediest that fit, as when a
    /// node leaves), so it is a function of the plan and the out-set only,
    /// and a node taken back in gets exactly its slots back.
    pub fn effective_placement(&self) -> Result<Vec<Vec<NodeId>>> {
        if self.out.is_empty() {
            return Ok(self.placement.clone());
        }
        let members: Vec<Member> = self
            .members()
            .into_iter()
            .map(|mut m| {
                if self.out.contains_key(&m.id) {
                    m.capacity = 0;
                }
                m
            })
            .collect();
        placement::fill(
            &members,
            self.profile.total_shards(),
            self.partition_bits,
            &self.placement,
        )
        .map_err(|_| {
            Error::InvalidLayout(
                "the nodes still in cannot hold every shard of a chunk apart".into(),
            )
        })
    }

    /// The next version of this map, changed by `change`; when the effective
    /// placement changes, the current one joins the history (its data moves
    /// to the new owners before it retires). Fails when the result is not a
    /// valid map.
    pub fn next(&self, change: impl FnOnce(&mut Layout) -> Result<()>) -> Result<Layout> {
        let before = self.effective_placement()?;
        let mut next = self.clone();
        next.version = self.version + 1;
        change(&mut next)?;
        let after = next.effective_placement()?;
        if after != before || next.partition_bits != self.partition_bits {
            // A split keeps every row: no data moves, no history needed.
            let split_only = next.partition_bits > self.partition_bits
                && after.iter().enumerate().all(|(p, row)| {
                    *row == before[p >> (next.partition_bits - self.partition_bits)]
                });
            if !split_only {
                next.history.insert(
                    0,
                    PastPlacement {
                        version: self.placement_version,
                        partition_bits: self.partition_bits,
                        rows: before,
                    },
                );
                next.placement_version = next.version;
            }
        }
        next.validate()?;
        Ok(next)
    }

    /// Give every metadata group whose voters include a node that is out or
    /// leaving another voter in its place: the node in with the fewest
    /// voterships (ties by id), not yet a voter of the group. The epoch of
    /// each changed group goes up. Fails when too few nodes are in.
    pub fn replace_voters(&mut self) -> Result<()> {
        let gone = |n: &NodeId| self.out.contains_key(n) || self.leaving.contains(n);
        let mut load: BTreeMap<NodeId, usize> = self
            .nodes
            .iter()
            .filter(|n| !gone(&n.id))
            .map(|n| (n.id, 0))
            .collect();
        for v in self.groups.iter().flat_map(|g| &g.voters) {
            if let Some(c) = load.get_mut(v) {
                *c += 1;
            }
        }
        let mut groups = self.groups.clone();
        for (g, info) in groups.iter_mut().enumerate() {
            if !info.voters.iter().any(gone) {
                continue;
            }
            for slot in 0..info.voters.len() {
                if !gone(&info.voters[slot]) {
                    continue;
                }
                let pick = load
                    .iter()
                    .filter(|(n, _)| !info.voters.contains(n))
                    .min_by_key(|(n, c)| (**c, **n))
                    .map(|(n, _)| *n)
                    .ok_or_else(|| {
                        Error::InvalidLayout(format!(
                            "group {g}: no node in to replace voter {}",
                            info.voters[slot]
                        ))
                    })?;
                *load.get_mut(&pick).expect("listed") += 1;
                info.voters[slot] = pick;
            }
            info.epoch += 1;
        }
        self.groups = groups;
        Ok(())
    }

    /// Every node of the current placement holds its shards: forget the
    /// earlier placements and the drained nodes.
    pub fn retire_history(&mut self) {
        self.history.clear();
        let leaving = std::mem::take(&mut self.leaving);
        self.nodes.retain(|n| !leaving.contains(&n.id));
        self.out.retain(|n, _| !leaving.contains(n));
    }

    /// The members placement plans over, by id (so the plan does not
    /// depend on the order of the node list).
    fn members(&self) -> Vec<Member> {
        let mut out: Vec<Member> = self
            .nodes
            .iter()
            .map(|n| Member {
                id: n.id,
                zone: n.zone.clone(),
                capacity: if self.leaving.contains(&n.id) {
                    0
                } else {
                    n.capacity
                },
            })
            .collect();
        out.sort_by_key(|m| m.id);
        out
    }

    /// Plan this layout's partition count and placement from `previous`
    /// (the layout it replaces, if any): partitions split as the cluster
    /// grows, and only the shards that must move do (see
    /// [`crate::placement`]).
    pub fn plan_placement(&mut self, previous: Option<&Layout>) -> Result<()> {
        let total = self.profile.total_shards();
        let same_shape = previous.is_some_and(|p| p.profile.total_shards() == total);
        let prev_rows: &[Vec<NodeId>] = match previous {
            Some(p) if same_shape => &p.placement,
            _ => &[],
        };
        let bits = placement::partition_bits_for(
            self.nodes.len(),
            total,
            previous.filter(|_| same_shape).map(|p| p.partition_bits),
        );
        self.partition_bits = bits;
        self.placement = placement::plan(&self.members(), total, bits, prev_rows)?;
        Ok(())
    }

    /// Balance figures of the placement.
    pub fn balance(&self) -> placement::Balance {
        placement::balance(&self.members(), &self.placement)
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

    /// A new cluster's first map (version 1): `nodes` under `profile`,
    /// placed, with its system group and `data_groups` data groups.
    pub fn first(nodes: Vec<NodeInfo>, profile: ErasureProfile, data_groups: u32) -> Result<Self> {
        let mut layout = Layout {
            version: 1,
            profile,
            partition_bits: 0,
            groups: Vec::new(),
            nodes,
            placement: Vec::new(),
            out: Default::default(),
            leaving: Default::default(),
            placement_version: 1,
            history: Vec::new(),
        };
        layout.plan_placement(None)?;
        layout.assign_groups(data_groups)?;
        Ok(layout)
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
        if self.placement.is_empty() {
            self.plan_placement(None)?;
        }
        let replicas = self.metadata_replicas();
        let partitions = self.placement.len() as u64;
        self.groups = (0..=data_groups)
            .map(|g| {
                let first = u64::from(g) * partitions / (u64::from(data_groups) + 1);
                // The partition's nodes first; when 2m + 1 exceeds k + m,
                // the next partitions' nodes fill up.
                let mut voters: Vec<NodeId> = Vec::with_capacity(replicas);
                for p in (first..first + partitions).map(|p| (p % partitions) as u32) {
                    for n in &self.placement[p as usize] {
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

/// What `cairn layout simulate` measures of a synthetic cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Simulation {
    /// Nodes.
    pub nodes: usize,
    /// Zones.
    pub zones: usize,
    /// `K+M`.
    pub profile: String,
    /// Partitions planned.
    pub partitions: usize,
    /// Smallest node share divided by its capacity share.
    pub balance_min_ratio: f64,
    /// Largest node share divided by its capacity share.
    pub balance_max_ratio: f64,
    /// Shards moved when one node joins, divided by its capacity share of
    /// the shards (the ideal).
    pub movement_add_ratio: f64,
    /// Shards moved when one node leaves, divided by what it held; `None`
    /// when the cluster could not lose a node.
    pub movement_remove_ratio: Option<f64>,
    /// Most shards of one chunk in one zone.
    pub max_shards_per_zone: usize,
    /// Time to plan the first layout, ms.
    pub plan_ms: u128,
}

/// Plan a synthetic cluster of `nodes` nodes (node `i` in zone `i mod
/// zones`, capacities repeated over the nodes) and measure it, and what
/// adding and removing one node would move.
pub fn simulate(
    nodes: usize,
    zones: usize,
    (k, m): (u8, u8),
    capacities: &[u32],
) -> Result<Simulation> {
    if nodes == 0 || zones == 0 || capacities.is_empty() {
        return Err(Error::InvalidLayout(
            "nodes, zones and capacities must be positive".into(),
        ));
    }
    let node = |i: usize| NodeInfo {
        id: NodeId(0x1_0000 + i as u64 * 2_654_435_761),
        addr: format!("10.{}.{}.{}:7000", i / 62_500, i / 250 % 250, i % 250),
        zone: format!("zone{}", i % zones),
        capacity: capacities[i % capacities.len()],
    };
    let layout_of = |n: usize| Layout {
        version: 1,
        profile: ErasureProfile {
            data_shards: k,
            parity_shards: m,
        },
        partition_bits: 0,
        groups: Vec::new(),
        nodes: (0..n).map(node).collect(),
        placement: Vec::new(),
        out: Default::default(),
        leaving: Default::default(),
        placement_version: 0,
        history: Vec::new(),
    };
    let total = usize::from(k) + usize::from(m);
    let share = |l: &Layout, i: usize| {
        let cap: u64 = l.nodes.iter().map(|n| u64::from(n.capacity)).sum();
        (l.placement.len() * total) as f64 * f64::from(l.nodes[i].capacity) / cap as f64
    };
    let started = std::time::Instant::now();
    let mut base = layout_of(nodes);
    base.plan_placement(None)?;
    let plan_ms = started.elapsed().as_millis();
    let balance = base.balance();
    let mut added = layout_of(nodes + 1);
    added.plan_placement(Some(&base))?;
    let movement_add_ratio =
        placement::moved_slots(&base.placement, &added.placement) as f64 / share(&added, nodes);
    let movement_remove_ratio = if nodes > total {
        let mut removed = layout_of(nodes - 1);
        removed.plan_placement(Some(&base))?;
        Some(
            placement::moved_slots(&base.placement, &removed.placement) as f64
                / share(&base, nodes - 1),
        )
    } else {
        None
    };
    Ok(Simulation {
        nodes,
        zones,
        profile: format!("{k}+{m}"),
        partitions: base.placement.len(),
        balance_min_ratio: balance.min_ratio,
        balance_max_ratio: balance.max_ratio,
        movement_add_ratio,
        movement_remove_ratio,
        max_shards_per_zone: balance.max_shards_per_zone,
        plan_ms,
    })
}

/// The partitions (first and last) of a `bits`-bit placement that overlap
/// partition `p` of a `of_bits`-bit one.
fn overlapping(p: u32, of_bits: u8, bits: u8) -> (u32, u32) {
    if bits <= of_bits {
        let q = p >> (of_bits - bits);
        (q, q)
    } else {
        let shift = bits - of_bits;
        (p << shift, ((p + 1) << shift) - 1)
    }
}

/// The key range (`chunk id ++ shard index`, end excluded) of partition `p`
/// of a `bits`-bit placement.
pub fn partition_key_range(p: u32, bits: u8) -> ([u8; 33], [u8; 33]) {
    let mut from = [0u8; 33];
    let mut to = [0xffu8; 33];
    if bits > 0 {
        let start = u64::from(p) << (32 - u32::from(bits));
        from[..4].copy_from_slice(&(start as u32).to_be_bytes());
        let end = (u64::from(p) + 1) << (32 - u32::from(bits));
        if end <= u64::from(u32::MAX) {
            to = [0u8; 33];
            to[..4].copy_from_slice(&(end as u32).to_be_bytes());
        }
    }
    (from, to)
}

/// The data group (of `groups`) a partition key hashes to.
pub fn data_group_of(partition_key: &str, groups: u32) -> GroupId {
    assert!(groups >= 1, "a cluster has at least one data group");
    let h = blake3::hash(partition_key.as_bytes());
    let n = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
    GroupId(1 + (n % u64::from(groups)) as u32)
}

/// Partition -> the ordered `k + m` nodes that hold its shards, in the
/// placement in force and in the earlier ones still migrating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementTable {
    /// The layout version this table was built from.
    pub version: u64,
    /// The map version at which this placement came into force.
    pub placement_version: u64,
    /// The profile of that layout.
    pub profile: ErasureProfile,
    /// log2 of the partition count.
    pub partition_bits: u8,
    partitions: Vec<Vec<NodeId>>,
    past: Vec<(u8, Vec<Vec<NodeId>>)>,
    groups: Vec<GroupInfo>,
}

impl PlacementTable {
    /// The table of `layout`.
    pub fn build(layout: &Layout) -> Result<Self> {
        layout.validate()?;
        Ok(Self {
            version: layout.version,
            placement_version: layout.placement_version,
            profile: layout.profile,
            partition_bits: layout.partition_bits,
            partitions: layout.effective_placement()?,
            past: layout
                .history
                .iter()
                .map(|p| (p.partition_bits, p.rows.clone()))
                .collect(),
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

    /// Whether earlier placements are still migrating.
    pub fn migrating(&self) -> bool {
        !self.past.is_empty()
    }

    /// The rows of the earlier placements a chunk was placed by, newest
    /// first.
    pub fn past_rows(&self, chunk: &ChunkId) -> impl Iterator<Item = &[NodeId]> {
        self.past
            .iter()
            .map(move |(bits, rows)| rows[chunk.partition(*bits) as usize].as_slice())
    }

    /// Where shard `index` of a chunk may be: its owner now, then its
    /// owners in the earlier placements still migrating, each once.
    pub fn shard_holders(&self, chunk: &ChunkId, index: usize) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = Vec::with_capacity(1 + self.past.len());
        let now = self.chunk_nodes(chunk).get(index).copied();
        let past = self.past_rows(chunk).map(|row| row.get(index).copied());
        for n in std::iter::once(now).chain(past).flatten() {
            if !out.contains(&n) {
                out.push(n);
            }
        }
        out
    }

    /// Every node that may hold shards of partition `partition` of the
    /// placement in force: its row, and the rows of the earlier placements
    /// that overlap it.
    pub fn partition_sources(&self, partition: u32) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = self.partition_nodes(partition).to_vec();
        for (bits, rows) in &self.past {
            let (lo, hi) = overlapping(partition, self.partition_bits, *bits);
            for row in &rows[lo as usize..=hi as usize] {
                for n in row {
                    if !out.contains(n) {
                        out.push(*n);
                    }
                }
            }
        }
        out
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
    use std::collections::{BTreeMap, BTreeSet};

    fn layout(nodes: usize, zones: usize, k: u8, m: u8) -> Layout {
        let mut l = bare(nodes, zones, k, m);
        if l.nodes.len() >= l.profile.total_shards() {
            l.plan_placement(None).unwrap();
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
            partition_bits: 0,
            groups: Vec::new(),
            nodes: (0..nodes)
                .map(|i| NodeInfo {
                    id: NodeId(0x1000 + i as u64 * 7919),
                    addr: format!("127.0.0.1:{}", 7000 + i),
                    zone: format!("z{}", i % zones),
                    capacity: 1,
                })
                .collect(),
            placement: Vec::new(),
            out: Default::default(),
            leaving: Default::default(),
            placement_version: 0,
            history: Vec::new(),
        }
    }

    #[test]
    fn too_few_nodes_is_rejected() {
        assert!(bare(5, 1, 4, 2).plan_placement(None).is_err());
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

    #[test]
    fn a_node_out_lends_only_its_own_slots_and_gets_them_back() {
        let base = layout(7, 7, 4, 2);
        let gone = base.nodes[3].id;
        let out = base
            .next(|l| {
                l.out.insert(
                    gone,
                    OutMark {
                        auto: true,
                        since_ms: 1,
                    },
                );
                l.replace_voters()
            })
            .unwrap();
        let (before, after) = (
            base.effective_placement().unwrap(),
            out.effective_placement().unwrap(),
        );
        for (b, a) in before.iter().zip(&after) {
            for (x, y) in b.iter().zip(a) {
                assert!(x == y || *x == gone, "only the out node's slots change");
                assert_ne!(*y, gone);
            }
        }
        assert_eq!(out.history.len(), 1, "the old placement migrates");
        assert_eq!(out.placement_version, out.version);
        assert!(out.groups.iter().all(|g| !g.voters.contains(&gone)));
        let back = out.next(|l| {
            l.out.remove(&gone);
            Ok(())
        });
        let back = back.unwrap();
        assert_eq!(
            back.effective_placement().unwrap(),
            before,
            "its slots return"
        );
        let mut retired = back.clone();
        retired.retire_history();
        assert!(retired.history.is_empty());
        let t = PlacementTable::build(&back).unwrap();
        let chunk = ChunkId::of(b"x");
        let holders = t.shard_holders(&chunk, 0);
        assert_eq!(holders[0], t.chunk_nodes(&chunk)[0]);
    }

    #[test]
    fn drain_then_add_then_out_still_places() {
        let base = layout(7, 7, 4, 2);
        let gone = base.nodes[0].id;
        let mut drained = base
            .next(|l| {
                l.leaving.insert(gone);
                let prev = l.clone();
                l.plan_placement(Some(&prev))?;
                l.replace_voters()
            })
            .unwrap();
        drained.retire_history();
        assert!(drained.node(gone).is_none());
        let extra = bare(8, 8, 4, 2).nodes[7].clone();
        let grown = drained
            .next(|l| {
                l.nodes.push(extra.clone());
                let prev = l.clone();
                l.plan_placement(Some(&prev))
            })
            .unwrap();
        for n in grown.nodes.clone() {
            let out = grown.next(|l| {
                l.out.insert(
                    n.id,
                    OutMark {
                        auto: false,
                        since_ms: 0,
                    },
                );
                l.replace_voters()
            });
            assert!(out.is_ok(), "out {}: {out:?}", n.id);
        }
    }

    #[test]
    fn partition_key_ranges_tile_the_key_space() {
        let bits = 8;
        let (first, _) = partition_key_range(0, bits);
        assert_eq!(first, [0u8; 33]);
        for p in 0..(1u32 << bits) - 1 {
            assert_eq!(
                partition_key_range(p, bits).1,
                partition_key_range(p + 1, bits).0
            );
        }
        let id = ChunkId([0x80; 32]);
        let (from, to) = partition_key_range(id.partition(bits), bits);
        assert!(from.as_slice() <= &id.0[..] && id.0[..] < to[..32]);
    }

    #[test]
    fn a_grown_cluster_splits_its_partitions_without_moving_them() {
        let small = layout(6, 6, 4, 2);
        let mut big = bare(42, 6, 4, 2);
        // Only the partition count grows when the same nodes stay: copy
        // the small layout's nodes in.
        big.nodes[..6].clone_from_slice(&small.nodes);
        big.plan_placement(Some(&small)).unwrap();
        assert!(big.partition_bits > small.partition_bits);
        let b = big.balance();
        assert!(b.min_ratio > 0.95 && b.max_ratio < 1.05, "{b:?}");
    }

    #[test]
    fn a_thousand_nodes_in_ten_zones_balance_and_move_little() {
        let s = simulate(1000, 10, (4, 2), &[1]).unwrap();
        assert!(
            s.balance_min_ratio >= 0.95 && s.balance_max_ratio <= 1.05,
            "{s:?}"
        );
        assert!(s.movement_add_ratio <= 1.2, "{s:?}");
        assert!(s.movement_remove_ratio.unwrap() <= 1.2, "{s:?}");
        assert_eq!(s.max_shards_per_zone, 1, "{s:?}");
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
            let most = total.div_ceil(zones_present);
            for p in 0..t.partition_count() {
                let set: BTreeSet<_> = t.partition_nodes(p).iter().collect();
                prop_assert_eq!(set.len(), total);
                let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
                for id in t.partition_nodes(p) {
                    *per_zone.entry(l.node(*id).unwrap().zone.as_str()).or_insert(0) += 1;
                }
                prop_assert!(per_zone.values().all(|n| *n <= most), "{per_zone:?}");
            }
        }

        #[test]
        fn the_plan_does_not_depend_on_the_order_of_the_node_list(nodes in 6usize..12, seed in any::<u64>()) {
            let l = layout(nodes, 3, 4, 2);
            let mut shuffled = bare(nodes, 3, 4, 2);
            let n = shuffled.nodes.len();
            let mut s = seed;
            for i in (1..n).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                shuffled.nodes.swap(i, (s >> 33) as usize % (i + 1));
            }
            shuffled.plan_placement(None).unwrap();
            prop_assert_eq!(&l.placement, &shuffled.placement);
        }
    }
}
