//! The gateway's view of the cluster: the cluster map, its placement
//! table, node addresses, and the signing RPC client.
//!
//! The map is read from the nodes (the highest version any of them holds)
//! at start; then each known node is watched (a long poll that answers as
//! soon as the node holds a newer map), so a map committed by the system
//! group reaches every gateway at once. Versions come only from the system
//! group's compare-and-set, so two maps with one version are the same map.
//! The placement table is built once per version, never on the request path.

use crate::error::{Error, Result};
use cairn::layout::Layout;
use cairn_node::chunks::Placement;
use cairn_node::client::NodeClient;
use cairn_node::table::client::MapSource;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

/// Pause before watching a node again after a failed watch (it is down or
/// unreachable), so a dead node costs one connection attempt per pause.
pub const WATCH_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Time a readiness check gives the nodes to answer.
pub const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

struct Current {
    layout: Arc<Layout>,
    placement: Arc<Placement>,
}

/// The cluster as this gateway sees it.
pub struct Cluster {
    /// The RPC client.
    pub client: NodeClient,
    seeds: Vec<String>,
    current: RwLock<Option<Current>>,
    // Addresses with a running watch task.
    watched: Mutex<BTreeSet<String>>,
}

impl MapSource for Cluster {
    fn map(&self) -> Option<Arc<Layout>> {
        self.current
            .read()
            .expect("map lock poisoned")
            .as_ref()
            .map(|c| c.layout.clone())
    }
}

impl Cluster {
    /// A view starting from `seeds`.
    pub fn new(client: NodeClient, seeds: Vec<String>) -> Self {
        Self {
            client,
            seeds,
            current: RwLock::new(None),
            watched: Mutex::new(BTreeSet::new()),
        }
    }

    /// The current placement, or [`Error::NoLayout`].
    pub fn placement(&self) -> Result<Arc<Placement>> {
        self.current
            .read()
            .expect("map lock poisoned")
            .as_ref()
            .map(|c| c.placement.clone())
            .ok_or(Error::NoLayout)
    }

    /// The current map's version (0: none).
    pub fn version(&self) -> u64 {
        self.map().map(|m| m.version).unwrap_or(0)
    }

    /// Every address known: seeds plus the map's nodes.
    pub fn known_addrs(&self) -> Vec<String> {
        let mut set: BTreeSet<String> = self.seeds.iter().cloned().collect();
        if let Some(m) = self.map() {
            set.extend(m.nodes.iter().map(|n| n.addr.clone()));
        }
        set.into_iter().collect()
    }

    /// Adopt `layout` if it is newer than the current map.
    pub fn adopt(&self, layout: Layout) -> Result<()> {
        if layout.version <= self.version() {
            return Ok(());
        }
        let placement = Arc::new(Placement::new(layout.clone())?);
        let mut current = self.current.write().expect("map lock poisoned");
        if current
            .as_ref()
            .is_some_and(|c| c.layout.version >= layout.version)
        {
            return Ok(());
        }
        tracing::info!(version = layout.version, "adopting cluster map");
        *current = Some(Current {
            layout: Arc::new(layout),
            placement,
        });
        Ok(())
    }

    /// Ask every known node for its map and adopt the newest.
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
            tracing::warn!(error = %e, "a node holds an unusable cluster map");
        }
    }

    /// Watch every known node for newer maps, for as long as the view
    /// lives; nodes that join the map later are watched from then on.
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

    /// Whether this gateway can serve requests: it has a map and a majority
    /// of the map's nodes answer. `Err` says why not.
    pub async fn readiness(&self) -> std::result::Result<(), String> {
        let Some(map) = self.map() else {
            return Err(Error::NoLayout.to_string());
        };
        let answers =
            futures::future::join_all(map.nodes.iter().map(|n| {
                tokio::time::timeout(READY_PROBE_TIMEOUT, self.client.rpc_identity(&n.addr))
            }))
            .await;
        let up = answers.iter().filter(|a| matches!(a, Ok(Ok(_)))).count();
        let need = map.nodes.len() / 2 + 1;
        if up >= need {
            Ok(())
        } else {
            Err(format!(
                "only {up} of {} storage nodes answer ({need} needed)",
                map.nodes.len()
            ))
        }
    }
}

/// Long-poll one node for newer maps until the view is dropped or the node
/// leaves the known addresses.
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
        let after = c.version();
        let client = c.client.clone();
        drop(c);
        match client.rpc_watch_map(&addr, after).await {
            Ok(Some(layout)) if layout.version > after => {
                let Some(c) = cluster.upgrade() else { return };
                if let Err(e) = c.adopt(layout) {
                    tracing::warn!(%addr, error = %e, "a node holds an unusable cluster map");
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
