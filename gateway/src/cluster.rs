//! The gateway's view of the cluster: the current layout, its placement
//! table, node addresses, and the signing RPC client.
//!
//! The layout is read from the nodes (the highest version any of them holds)
//! at start, then each known node is watched (a long poll that answers as
//! soon as the node holds a newer layout), so a layout applied through any
//! gateway reaches every gateway at once. The placement table is built once
//! per version, never on the request path.

use crate::error::{Error, Result};
use cairn::id::NodeId;
use cairn::layout::{Layout, PlacementTable};
use cairn_node::client::NodeClient;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

/// Pause before watching a node again after a failed watch (it is down or
/// unreachable), so a dead node costs one connection attempt per pause.
pub const WATCH_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Time a readiness check gives the nodes to answer.
pub const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A layout with its placement table.
pub struct Placement {
    /// The layout.
    pub layout: Layout,
    /// Its table.
    pub table: PlacementTable,
    addrs: BTreeMap<NodeId, String>,
}

impl Placement {
    /// Address of a node of the layout.
    pub fn addr(&self, id: NodeId) -> &str {
        self.addrs.get(&id).map(String::as_str).unwrap_or("")
    }
}

/// The cluster as this gateway sees it.
pub struct Cluster {
    /// The RPC client.
    pub client: NodeClient,
    seeds: Vec<String>,
    placement: RwLock<Option<Arc<Placement>>>,
    // Addresses with a running watch task.
    watched: Mutex<HashSet<String>>,
}

impl Cluster {
    /// A view starting from `seeds`.
    pub fn new(client: NodeClient, seeds: Vec<String>) -> Self {
        Self {
            client,
            seeds,
            placement: RwLock::new(None),
            watched: Mutex::new(HashSet::new()),
        }
    }

    /// The current placement, or [`Error::NoLayout`].
    pub fn placement(&self) -> Result<Arc<Placement>> {
        self.placement
            .read()
            .expect("placement lock poisoned")
            .clone()
            .ok_or(Error::NoLayout)
    }

    /// Every address known: seeds plus layout nodes.
    pub fn known_addrs(&self) -> Vec<String> {
        let mut set: BTreeSet<String> = self.seeds.iter().cloned().collect();
        if let Ok(p) = self.placement() {
            set.extend(p.layout.nodes.iter().map(|n| n.addr.clone()));
        }
        set.into_iter().collect()
    }

    /// Adopt `layout` if it is newer than the current one.
    pub fn adopt(&self, layout: Layout) -> Result<()> {
        let current = self.placement().map(|p| p.layout.version).unwrap_or(0);
        if layout.version <= current {
            return Ok(());
        }
        let table = PlacementTable::build(&layout)?;
        let addrs = layout
            .nodes
            .iter()
            .map(|n| (n.id, n.addr.clone()))
            .collect();
        tracing::info!(version = layout.version, "adopting layout");
        *self.placement.write().expect("placement lock poisoned") = Some(Arc::new(Placement {
            layout,
            table,
            addrs,
        }));
        Ok(())
    }

    /// Ask every known node for its layout and adopt the newest.
    pub async fn refresh(&self) {
        let addrs = self.known_addrs();
        let answers =
            futures::future::join_all(addrs.iter().map(|a| self.client.rpc_get_layout(a))).await;
        let newest = answers
            .into_iter()
            .filter_map(|r| r.ok().flatten())
            .max_by_key(|l| l.version);
        if let Some(layout) = newest
            && let Err(e) = self.adopt(layout)
        {
            tracing::warn!(error = %e, "a node holds an unusable layout");
        }
    }

    /// Watch every known node for newer layouts, for as long as the view
    /// lives; nodes that join the layout later are watched from then on.
    pub fn spawn_watchers(self: &Arc<Self>) {
        for addr in self.known_addrs() {
            let fresh = self
                .watched
                .lock()
                .expect("watched lock poisoned")
                .insert(addr.clone());
            if fresh {
                tokio::spawn(watch(Arc::downgrade(self), addr));
            }
        }
    }

    /// Whether this gateway can serve requests: it has a layout and a
    /// majority of the layout's nodes answer. `Err` says why not.
    pub async fn readiness(&self) -> std::result::Result<(), String> {
        let placement = self.placement().map_err(|e| e.to_string())?;
        let nodes = &placement.layout.nodes;
        let answers =
            futures::future::join_all(nodes.iter().map(|n| {
                tokio::time::timeout(READY_PROBE_TIMEOUT, self.client.rpc_identity(&n.addr))
            }))
            .await;
        let up = answers.iter().filter(|a| matches!(a, Ok(Ok(_)))).count();
        let need = nodes.len() / 2 + 1;
        if up >= need {
            Ok(())
        } else {
            Err(format!(
                "only {up} of {} storage nodes answer ({need} needed)",
                nodes.len()
            ))
        }
    }
}

/// Long-poll one node for newer layouts until the view is dropped or the
/// node leaves the known addresses.
async fn watch(cluster: Weak<Cluster>, addr: String) {
    loop {
        let Some(c) = cluster.upgrade() else { return };
        if !c.known_addrs().contains(&addr) {
            c.watched
                .lock()
                .expect("watched lock poisoned")
                .remove(&addr);
            return;
        }
        let after = c.placement().map(|p| p.layout.version).unwrap_or(0);
        let client = c.client.clone();
        drop(c);
        match client.rpc_watch_layout(&addr, after).await {
            Ok(Some(layout)) if layout.version > after => {
                let Some(c) = cluster.upgrade() else { return };
                if let Err(e) = c.adopt(layout) {
                    tracing::warn!(%addr, error = %e, "a node holds an unusable layout");
                    drop(c);
                    tokio::time::sleep(WATCH_RETRY_INTERVAL).await;
                    continue;
                }
                c.spawn_watchers();
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(WATCH_RETRY_INTERVAL).await,
        }
    }
}
