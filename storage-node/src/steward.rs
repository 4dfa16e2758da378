//! The cluster's steward: the node leading the system group looks after
//! the cluster map, one compare-and-set change at a time.
//!
//! - A node down (as this node's failure detector sees it) for longer than
//!   `down_out_after` is marked out, and metadata groups it votes in get
//!   another voter, in one map change; refused while the nodes still in
//!   could not hold `k + m` shards of a chunk apart or `2m + 1` voters.
//! - A node marked out automatically that beats again is taken back in; its
//!   slots of the plan return to it, so its shards are used again.
//! - Once every node of the placement in force reports it holds all its
//!   shards of that placement (`synced` in its beats), the earlier
//!   placements retire.
//!
//! Every node runs [`tend`]; only the system group's leader acts, so the
//! timing of a down-out is the leader's view. A new leader starts its own
//! count, which delays an out by at most the grace, never hastens one.

use crate::server::Node;
use cairn::command::{Command, Outcome, Request};
use cairn::id::NodeId;
use cairn::layout::{Layout, OutMark};
use cairn::record::{GroupId, RequestId};
use cairn::rpc::{CommandReply, Liveness};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// A node marked out automatically is taken back in once it has beaten for
/// this long without a gap.
pub const BACK_IN_AFTER: Duration = Duration::from_secs(5);

/// One round: act on the map if this node leads the system group.
pub async fn tend(node: &Arc<Node>, map: &Arc<Layout>) {
    node.tables.reconcile_voters(map).await;
    if !node.tables.leads(GroupId::SYSTEM) {
        return;
    }
    let Some(next) = next_change(node, map) else {
        return;
    };
    let (what, next) = match next {
        Ok(change) => change,
        Err(why) => {
            tracing::warn!(%why, "cluster map change not possible");
            return;
        }
    };
    // A change proposed late: the map it was computed from may have moved
    // on (the compare-and-set refuses it then) or the node may be back.
    crate::buggify::stall(0.1, Duration::from_secs(2)).await;
    let request = Request {
        id: RequestId(crate::random::random()),
        command: Command::SetClusterMap {
            expected: map.version,
            layout: next.clone(),
        },
    };
    match node.tables.command(GroupId::SYSTEM, request).await {
        CommandReply::Done(Outcome::Ok) => {
            tracing::info!(version = next.version, %what, "cluster map changed");
            node.tables.adopt(next).await;
        }
        other => tracing::debug!(?other, %what, "cluster map change not made"),
    }
}

type Change = Result<(String, Layout), String>;

/// The first change due that the map allows; when every change due is
/// refused, why the first was. A refused change never hides a later one:
/// with the history of placements full, outs and ins are refused until a
/// retirement shortens it, and the retirement must still be made (found by
/// simulation seed 826, where the cluster stayed migrating forever).
fn next_change(node: &Arc<Node>, map: &Layout) -> Option<Change> {
    let mut refused: Option<Change> = None;
    for change in due_changes(node, map) {
        match change {
            Ok(c) => return Some(Ok(c)),
            Err(why) => {
                refused.get_or_insert(Err(why));
            }
        }
    }
    refused
}

/// Every change due now, in order of precedence: outs, ins, retirement.
fn due_changes(node: &Arc<Node>, map: &Layout) -> Vec<Change> {
    let mut due = Vec::new();
    let grace = node.down_out_after;
    let live = &node.tables.liveness;
    // Out: down longer than the grace.
    for n in &map.nodes {
        if n.id == node.id || map.out.contains_key(&n.id) || map.leaving.contains(&n.id) {
            continue;
        }
        let view = live.view(n.id);
        if let Liveness::Down { since_ms } = view.liveness
            && live.silence(n.id) >= grace
        {
            let id = n.id;
            due.push(
                map.next(|l| {
                    l.out.insert(
                        id,
                        OutMark {
                            auto: true,
                            since_ms,
                        },
                    );
                    l.replace_voters()
                })
                .map(|l| (format!("node {id} down for {grace:?}: out"), l))
                .map_err(|e| format!("node {id} is down but cannot be marked out: {e}")),
            );
        }
    }
    // In: an automatically marked node that beats again.
    for (id, mark) in &map.out {
        if !mark.auto || map.leaving.contains(id) {
            continue;
        }
        if live.view(*id).liveness == Liveness::Up && live.heard_for(*id) >= BACK_IN_AFTER {
            let id = *id;
            due.push(
                map.next(|l| {
                    l.out.remove(&id);
                    Ok(())
                })
                .map(|l| (format!("node {id} is back: in"), l))
                .map_err(|e| e.to_string()),
            );
        }
    }
    // Retire: every owner holds the placement in force.
    if !map.history.is_empty() {
        let Ok(placement) = map.effective_placement() else {
            return due;
        };
        let owners: BTreeSet<NodeId> = placement.into_iter().flatten().collect();
        let all_synced = owners.iter().all(|o| {
            let synced = if *o == node.id {
                node.repair.synced()
            } else {
                live.view(*o).synced
            };
            synced >= map.placement_version
        });
        if all_synced {
            due.push(
                map.next(|l| {
                    l.retire_history();
                    Ok(())
                })
                .map(|l| ("migration complete: earlier placements retired".into(), l))
                .map_err(|e| e.to_string()),
            );
        }
    }
    due
}
