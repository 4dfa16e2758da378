//! Planning the placement: which `k + m` nodes hold each partition, by
//! shard index.
//!
//! The placement is data of the layout (a row of `k + m` node ids per
//! partition), computed when a layout is applied from the previous one with
//! as few changes as balance allows:
//!
//! 1. Partitions split when the cluster grows (the partition count keeps at
//!    least [`SLOTS_PER_NODE`] shard slots per node, so shares can be
//!    balanced to a few percent): a partition's two halves keep its row, so
//!    a split moves nothing.
//! 2. Slots of nodes that left become holes; each hole is filled, at its own
//!    shard index, by the node furthest below its capacity share that is not
//!    in the row yet and whose zone has room in the row (at most
//!    `ceil((k+m)/zones)` shards of a partition per zone). Ties go to the
//!    node that comes first on the partition's walk of a consistent-hash
//!    ring (`hashring`), so rows look like consistent hashing's.
//! 3. Nodes above their share give slots, one at a time and at the same
//!    index, to nodes below theirs, until every node is within one slot of
//!    its share.
//!
//! A node joining takes exactly the slots it needs (step 3), a node leaving
//! gives back exactly its own (step 2), and no other slot moves or changes
//! index: movement is the ideal, balance is within one slot of each
//! capacity share. `cairn layout simulate` measures both at any scale.

use crate::error::{Error, Result};
use crate::id::NodeId;
use hashring::HashRing;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hash, Hasher};

/// Shard slots per node the partition count aims for, at least: with 64,
/// one slot is 1.6 % of a node's share.
pub const SLOTS_PER_NODE: u64 = 64;
/// Fewest partitions a layout has (2^8).
pub const MIN_PARTITION_BITS: u8 = 8;
/// Most partitions a layout may have (2^16).
pub const MAX_PARTITION_BITS: u8 = 16;
/// Ring positions per node for the preference order (only the order of
/// candidates of equal need comes from the ring).
const RING_POSITIONS_PER_NODE: u32 = 8;
/// Ring positions walked per partition for its preference order.
const PREFERENCE_DEPTH: usize = 64;

/// One node as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its id.
    pub id: NodeId,
    /// Its failure domain.
    pub zone: String,
    /// Relative weight; 0 holds nothing (being drained).
    pub capacity: u32,
}

/// The partition count exponent for `nodes` nodes and `total` shards per
/// chunk: at least [`SLOTS_PER_NODE`] slots per node, never fewer
/// partitions than `previous`.
pub fn partition_bits_for(nodes: usize, total: usize, previous: Option<u8>) -> u8 {
    let want = (nodes as u64 * SLOTS_PER_NODE).div_ceil(total.max(1) as u64);
    let mut bits = MIN_PARTITION_BITS;
    while (1u64 << bits) < want && bits < MAX_PARTITION_BITS {
        bits += 1;
    }
    bits.max(previous.unwrap_or(0))
}

/// Ring positions from BLAKE3, identical on every platform.
#[derive(Clone, Copy, Default)]
struct Blake3BuildHasher;

struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        let hash = self.0.finalize();
        u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"))
    }
}

impl BuildHasher for Blake3BuildHasher {
    type Hasher = Blake3Hasher;
    fn build_hasher(&self) -> Blake3Hasher {
        Blake3Hasher(blake3::Hasher::new())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RingPosition {
    node: NodeId,
    replica: u32,
}

impl Hash for RingPosition {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.node.0.to_le_bytes());
        state.write(&self.replica.to_le_bytes());
    }
}

struct PartitionKey(u32);

impl Hash for PartitionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(b"partition");
        state.write(&self.0.to_le_bytes());
    }
}

/// Slots each member should hold, in thousandths: its capacity share of
/// the slots, except that a zone cannot hold more than `max_per_zone`
/// shards of each partition (nor more than one per node of it), so a zone
/// whose capacity share is above that holds its most, and the rest is
/// shared by capacity over the other zones (water-filling).
fn zone_aware_targets(members: &[Member], slots: u64, total: usize) -> Vec<i64> {
    let partitions = slots as f64 / total as f64;
    let mut zones: BTreeMap<&str, (f64, usize)> = BTreeMap::new(); // capacity, holders
    for m in members.iter().filter(|m| m.capacity > 0) {
        let z = zones.entry(m.zone.as_str()).or_insert((0.0, 0));
        z.0 += f64::from(m.capacity);
        z.1 += 1;
    }
    let max_per_zone = total.div_ceil(zones.len().max(1));
    let most = |holders: usize| partitions * max_per_zone.min(holders) as f64;
    let mut zone_slots: BTreeMap<&str, f64> = BTreeMap::new();
    let mut fixed: BTreeSet<&str> = BTreeSet::new();
    loop {
        let left = slots as f64 - fixed.iter().map(|z| zone_slots[z]).sum::<f64>();
        let free_capacity: f64 = zones
            .iter()
            .filter(|(z, _)| !fixed.contains(*z))
            .map(|(_, (c, _))| c)
            .sum();
        let mut changed = false;
        for (z, (c, holders)) in &zones {
            if fixed.contains(z) {
                continue;
            }
            let share = left * c / free_capacity.max(f64::MIN_POSITIVE);
            if share > most(*holders) {
                zone_slots.insert(z, most(*holders));
                fixed.insert(z);
                changed = true;
            } else {
                zone_slots.insert(z, share);
            }
        }
        if !changed {
            break;
        }
    }
    members
        .iter()
        .map(|m| match zones.get(m.zone.as_str()) {
            Some((c, _)) if m.capacity > 0 => {
                (zone_slots[m.zone.as_str()] * f64::from(m.capacity) / c * 1000.0) as i64
            }
            _ => 0,
        })
        .collect()
}

/// The state of a plan being made.
struct Planner<'a> {
    members: &'a [Member],
    index_of: BTreeMap<NodeId, usize>,
    zone_of: Vec<usize>,
    max_per_zone: usize,
    // Slots each member should hold, in thousandths of a slot.
    target_milli: Vec<i64>,
    count: Vec<i64>,
    // (need in thousandths, member index), largest need last.
    by_need: BTreeSet<(i64, usize)>,
    ring: HashRing<RingPosition, Blake3BuildHasher>,
}

impl<'a> Planner<'a> {
    fn new(members: &'a [Member], slots: u64, total: usize) -> Self {
        let zones: BTreeSet<&str> = members.iter().map(|m| m.zone.as_str()).collect();
        let zone_index: BTreeMap<&str, usize> =
            zones.iter().enumerate().map(|(i, z)| (*z, i)).collect();
        let mut ring = HashRing::with_hasher(Blake3BuildHasher);
        for m in members.iter().filter(|m| m.capacity > 0) {
            for replica in 0..RING_POSITIONS_PER_NODE {
                ring.add(RingPosition {
                    node: m.id,
                    replica,
                });
            }
        }
        Self {
            members,
            index_of: members.iter().enumerate().map(|(i, m)| (m.id, i)).collect(),
            zone_of: members
                .iter()
                .map(|m| zone_index[m.zone.as_str()])
                .collect(),
            max_per_zone: total.div_ceil(zones.len()),
            target_milli: zone_aware_targets(members, slots, total),
            count: vec![0; members.len()],
            by_need: BTreeSet::new(),
            ring,
        }
    }

    fn need(&self, i: usize) -> i64 {
        self.target_milli[i] - self.count[i] * 1000
    }

    fn set_count(&mut self, i: usize, count: i64) {
        self.by_need.remove(&(self.need(i), i));
        self.count[i] = count;
        self.by_need.insert((self.need(i), i));
    }

    /// Whether member `i` may take a slot of `row`.
    fn fits(&self, row: &[Option<usize>], i: usize) -> bool {
        if self.members[i].capacity == 0 || row.contains(&Some(i)) {
            return false;
        }
        let zone = self.zone_of[i];
        row.iter()
            .flatten()
            .filter(|j| self.zone_of[**j] == zone)
            .count()
            < self.max_per_zone
    }

    /// The member that should fill a hole of `row`: the neediest that fits,
    /// the earliest in `preference` (the partition's ring walk) among equals.
    fn pick(&self, row: &[Option<usize>], preference: &[usize]) -> Option<usize> {
        let (top, first) = self
            .by_need
            .iter()
            .rev()
            .find(|(_, i)| self.fits(row, *i))
            .copied()?;
        Some(
            preference
                .iter()
                .copied()
                .find(|&i| self.need(i) == top && self.fits(row, i))
                .unwrap_or(first),
        )
    }

    /// Members in the order partition `p`'s ring walk meets them.
    fn preference(&self, p: u32) -> Vec<usize> {
        let mut out = Vec::new();
        if let Some(walk) = self
            .ring
            .get_with_replicas(&PartitionKey(p), PREFERENCE_DEPTH)
        {
            for pos in walk {
                if let Some(&i) = self.index_of.get(&pos.node)
                    && !out.contains(&i)
                {
                    out.push(i);
                }
            }
        }
        out
    }
}

/// Plan the rows of `2^bits` partitions with `total` shards each over
/// `members`, starting from `previous` rows (of any smaller power-of-two
/// count; nodes no longer members are replaced). Fails when the members
/// cannot hold `total` distinct shards per partition within the zone rule.
pub fn plan(
    members: &[Member],
    total: usize,
    bits: u8,
    previous: &[Vec<NodeId>],
) -> Result<Vec<Vec<NodeId>>> {
    plan_steps(members, total, bits, previous, true)
}

/// Only steps 1 and 2 of [`plan`]: the slots of nodes that hold nothing
/// now (capacity 0, or no longer members) go to the neediest nodes that
/// fit, and no other slot changes. Used to lend the slots of nodes marked
/// out.
pub fn fill(
    members: &[Member],
    total: usize,
    bits: u8,
    rows: &[Vec<NodeId>],
) -> Result<Vec<Vec<NodeId>>> {
    plan_steps(members, total, bits, rows, false)
}

fn plan_steps(
    members: &[Member],
    total: usize,
    bits: u8,
    previous: &[Vec<NodeId>],
    rebalance: bool,
) -> Result<Vec<Vec<NodeId>>> {
    let holders = members.iter().filter(|m| m.capacity > 0).count();
    if holders < total {
        return Err(Error::InvalidLayout(format!(
            "{total} shards per chunk need {total} nodes with capacity, there are {holders}"
        )));
    }
    let partitions = 1usize << bits;
    let slots = (partitions * total) as u64;
    let mut planner = Planner::new(members, slots, total);
    // 1. Split the previous rows up to the new partition count.
    let mut rows: Vec<Vec<Option<usize>>> = vec![vec![None; total]; partitions];
    if !previous.is_empty() && previous.len().is_power_of_two() && previous.len() <= partitions {
        let factor = partitions / previous.len();
        for (p, row) in rows.iter_mut().enumerate() {
            let parent = &previous[p / factor];
            if parent.len() == total {
                for (slot, id) in row.iter_mut().zip(parent) {
                    *slot = planner.index_of.get(id).copied();
                }
            }
        }
    }
    // Nodes that hold nothing now (drained) leave too, and no node stays
    // twice in a row.
    for row in &mut rows {
        for s in 0..total {
            if let Some(i) = row[s]
                && (members[i].capacity == 0 || row[..s].contains(&Some(i)))
            {
                row[s] = None;
            }
        }
    }
    let mut counts = vec![0i64; members.len()];
    for i in rows.iter().flatten().flatten() {
        counts[*i] += 1;
    }
    for (i, c) in counts.into_iter().enumerate() {
        planner.set_count(i, c);
    }
    // 2. Fill the holes.
    for (p, row) in rows.iter_mut().enumerate() {
        if row.iter().all(Option::is_some) {
            continue;
        }
        let preference = planner.preference(p as u32);
        for s in 0..total {
            if row[s].is_some() {
                continue;
            }
            let i = planner.pick(row, &preference).ok_or_else(|| {
                Error::InvalidLayout(
                    "the zones cannot hold the shards of a chunk apart (too few zones or nodes)"
                        .into(),
                )
            })?;
            row[s] = Some(i);
            planner.set_count(i, planner.count[i] + 1);
        }
    }
    // 3. Move slots, one at a time, from members above their share to
    // members below it by a whole slot; members within a slot of their
    // share trade nothing, so every move is one the balance needs.
    let mut moved = rebalance;
    while moved {
        moved = false;
        for (p, row) in rows.iter_mut().enumerate() {
            if planner
                .by_need
                .iter()
                .next_back()
                .is_none_or(|(high, _)| *high < 1000)
            {
                break;
            }
            let mut preference: Option<Vec<usize>> = None;
            for s in 0..total {
                let giver = row[s].expect("every slot is filled");
                if planner.need(giver) >= 0 {
                    continue;
                }
                row[s] = None;
                let pref = preference.get_or_insert_with(|| planner.preference(p as u32));
                match planner.pick(row, pref) {
                    Some(taker) if planner.need(taker) >= 1000 => {
                        row[s] = Some(taker);
                        planner.set_count(taker, planner.count[taker] + 1);
                        planner.set_count(giver, planner.count[giver] - 1);
                        moved = true;
                    }
                    _ => row[s] = Some(giver),
                }
            }
        }
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|i| members[i.expect("filled")].id)
                .collect()
        })
        .collect())
}

/// Figures of a placement, for planning and for the tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Balance {
    /// Smallest node share divided by its capacity share.
    pub min_ratio: f64,
    /// Largest node share divided by its capacity share.
    pub max_ratio: f64,
    /// Most shards of one partition in one zone.
    pub max_shards_per_zone: usize,
}

/// Measure `rows` over `members`.
pub fn balance(members: &[Member], rows: &[Vec<NodeId>]) -> Balance {
    let mut count: BTreeMap<NodeId, u64> = BTreeMap::new();
    let mut max_zone = 0;
    let zone: BTreeMap<NodeId, &str> = members.iter().map(|m| (m.id, m.zone.as_str())).collect();
    for row in rows {
        let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
        for id in row {
            *count.entry(*id).or_insert(0) += 1;
            let z = per_zone
                .entry(zone.get(id).copied().unwrap_or(""))
                .or_insert(0);
            *z += 1;
            max_zone = max_zone.max(*z);
        }
    }
    let slots: u64 = count.values().sum();
    let capacity: u64 = members.iter().map(|m| u64::from(m.capacity)).sum();
    let (mut min_ratio, mut max_ratio) = (f64::MAX, 0.0f64);
    for m in members.iter().filter(|m| m.capacity > 0) {
        let share = *count.get(&m.id).unwrap_or(&0) as f64 / slots as f64;
        let capacity_share = f64::from(m.capacity) / capacity as f64;
        let ratio = share / capacity_share;
        min_ratio = min_ratio.min(ratio);
        max_ratio = max_ratio.max(ratio);
    }
    Balance {
        min_ratio,
        max_ratio,
        max_shards_per_zone: max_zone,
    }
}

/// Slots whose node differs between two plans (after splitting `before` to
/// the size of `after`).
pub fn moved_slots(before: &[Vec<NodeId>], after: &[Vec<NodeId>]) -> u64 {
    let factor = after.len() / before.len().max(1);
    after
        .iter()
        .enumerate()
        .map(|(p, row)| {
            let parent = &before[p / factor.max(1)];
            row.iter().zip(parent).filter(|(a, b)| a != b).count() as u64
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn members(n: usize, zones: usize) -> Vec<Member> {
        (0..n)
            .map(|i| Member {
                id: NodeId(0x1000 + i as u64 * 7919),
                zone: format!("z{}", i % zones),
                capacity: 1,
            })
            .collect()
    }

    #[test]
    fn a_new_plan_is_balanced_and_spread_over_zones() {
        let m = members(12, 4);
        let bits = partition_bits_for(12, 6, None);
        let rows = plan(&m, 6, bits, &[]).unwrap();
        let b = balance(&m, &rows);
        assert!(b.min_ratio > 0.95 && b.max_ratio < 1.05, "{b:?}");
        assert!(b.max_shards_per_zone <= 2, "{b:?}");
        for row in &rows {
            let distinct: BTreeSet<_> = row.iter().collect();
            assert_eq!(distinct.len(), 6);
        }
    }

    #[test]
    fn too_few_nodes_or_zones_are_refused() {
        assert!(plan(&members(5, 5), 6, 8, &[]).is_err());
    }

    proptest! {
        #[test]
        fn adding_or_removing_a_node_moves_only_what_it_must(n in 7usize..20, zones in 1usize..7) {
            let total = 6;
            let before_members = members(n, zones);
            let bits = partition_bits_for(n + 1, total, None);
            let before = plan(&before_members, total, bits, &[]).unwrap();
            // Add one.
            let added = members(n + 1, zones);
            let after = plan(&added, total, bits, &before).unwrap();
            let slots = (before.len() * total) as f64;
            let ideal_add = slots / (n + 1) as f64;
            let moved = moved_slots(&before, &after) as f64;
            prop_assert!(moved <= 1.2 * ideal_add + 1.0, "add: moved {moved}, ideal {ideal_add}");
            // Remove one (the one added, or another: the last of them).
            let removed = &added[..n];
            let back = plan(removed, total, bits, &after).unwrap();
            let ideal_remove = slots / (n + 1) as f64;
            let moved = moved_slots(&after, &back) as f64;
            prop_assert!(moved <= 1.2 * ideal_remove + 1.0, "remove: moved {moved}, ideal {ideal_remove}");
            // Balance against capacity holds unless the zone rule pins a
            // zone's share (every row full of every zone, zones of unequal
            // sizes).
            let pinned = zones > 1 && zones <= total && n % zones != 0;
            if !pinned {
                let b = balance(removed, &back);
                prop_assert!(b.min_ratio > 0.93 && b.max_ratio < 1.07, "{b:?}");
            }
        }
    }
}
