//! The gateway's view of the cluster: the current layout, its placement
//! table, node addresses, and the signing RPC client.
//!
//! The layout is read from the nodes (the highest version any of them holds)
//! at start and refreshed in the background; the placement table is built
//! once per version, never on the request path.

use crate::error::{Error, Result};
use cairn::id::NodeId;
use cairn::layout::{Layout, PlacementTable};
use cairn_node::client::NodeClient;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often the layout is re-read from the nodes.
pub const LAYOUT_REFRESH_INTERVAL: Duration = Duration::from_secs(2);

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
}

impl Cluster {
    /// A view starting from `seeds`.
    pub fn new(client: NodeClient, seeds: Vec<String>) -> Self {
        Self {
            client,
            seeds,
            placement: RwLock::new(None),
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

    /// Refresh the layout forever, every [`LAYOUT_REFRESH_INTERVAL`].
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LAYOUT_REFRESH_INTERVAL).await;
                match me.upgrade() {
                    Some(c) => c.refresh().await,
                    None => return,
                }
            }
        })
    }
}
