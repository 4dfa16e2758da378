//! What a gateway shares between requests: configuration, the cluster
//! view, the metadata client and the data pipelines. The S3 handlers, the
//! admin API and the server all depend on this module; it depends on none
//! of them.

use crate::cluster::Cluster;
use crate::config::GatewayConfig;
use crate::data::DataPath;
use crate::error::Result;
use crate::meta::Meta;
use cairn::record::AccessKeyRecord;
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
        Self::new_on(config, cairn_node::net::Network::tcp(), metrics).await
    }

    /// Build the gateway state, reaching the nodes over `network`.
    pub async fn new_on(
        config: GatewayConfig,
        network: cairn_node::net::Network,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> anyhow::Result<Arc<Self>> {
        config.validate().map_err(anyhow::Error::msg)?;
        let client = NodeClient::on(&config.cluster_secret, &network);
        let cluster = Arc::new(Cluster::new(client, config.seed_nodes.clone()));
        cluster.refresh().await;
        cluster.spawn_watchers();
        let meta = Meta::new(cluster.clone());
        let data = Arc::new(DataPath::new(
            cluster.clone(),
            meta.clone(),
            config.chunk_size_bytes,
            config.inline_threshold_bytes,
            config.max_concurrent_transfers,
        ));
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

    /// Look up an access key (cached; see `meta`).
    pub async fn access_key(&self, id: &str) -> Result<Option<AccessKeyRecord>> {
        self.meta.access_key(id).await
    }
}
