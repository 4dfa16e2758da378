//! What a gateway shares between requests: configuration, the cluster
//! view, the metadata client and the data pipelines. The S3 handlers, the
//! admin API and the server all depend on this module; it depends on none
//! of them.

use crate::cluster::Cluster;
use crate::config::GatewayConfig;
use crate::data::DataPath;
use crate::error::Result;
use crate::meta::Meta;
use cairn::record::{AccessKeyRecord, MetaKey, Table};
use cairn_node::client::NodeClient;
use std::sync::Arc;

/// Everything a gateway shares between requests.
pub struct Gateway {
    /// Its configuration.
    pub config: GatewayConfig,
    /// The cluster view.
    pub cluster: Arc<Cluster>,
    /// Replicated metadata.
    pub meta: Arc<Meta>,
    /// Data pipelines.
    pub data: Arc<DataPath>,
    /// The Prometheus recorder of this process, if one was installed.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl Gateway {
    /// Build the gateway state and read the layout once.
    pub async fn new(
        config: GatewayConfig,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> anyhow::Result<Arc<Self>> {
        config.validate().map_err(anyhow::Error::msg)?;
        let client = NodeClient::new(&config.cluster_secret);
        let cluster = Arc::new(Cluster::new(client, config.seed_nodes.clone()));
        cluster.refresh().await;
        cluster.spawn_watchers();
        let writer = rand::random::<u64>();
        let meta = Arc::new(Meta::new(cluster.clone(), writer, config.clock_offset_ms));
        let data = Arc::new(DataPath::new(
            cluster.clone(),
            meta.clone(),
            config.chunk_size_bytes,
            config.inline_threshold_bytes,
            config.max_concurrent_transfers,
        ));
        data.spawn_repairer();
        Ok(Arc::new(Self {
            config,
            cluster,
            meta,
            data,
            metrics,
        }))
    }

    /// Whether `access_key` is the root key.
    pub fn is_root(&self, access_key: &str) -> bool {
        access_key == self.config.root_access_key
    }

    /// Look up an access key (quorum read).
    pub async fn access_key(&self, id: &str) -> Result<Option<AccessKeyRecord>> {
        self.meta
            .get(&MetaKey::new(Table::AccessKeys, "", id))
            .await
    }
}
