//! `--dev`: an all-in-one cluster in one process — six embedded storage
//! nodes (separate directories, real RocksDB and fsync), a 4+2 layout, and
//! the S3 endpoint. For trying Cairn out and for development; nothing about
//! the data path is simulated.

use crate::admin::{apply_staged, stage_assign};
use crate::config::{
    DEFAULT_CHUNK_SIZE_BYTES, DEFAULT_INLINE_THRESHOLD_BYTES, DEFAULT_MAX_CONCURRENT_TRANSFERS,
    GatewayConfig,
};
use crate::server;
use crate::state::Gateway;
use anyhow::Context;
use cairn::rpc::admin::{ApplyRequest, AssignRequest};
use cairn_node::config::{NodeConfig, generate_secret};
use cairn_node::server::Node;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Storage nodes of the dev cluster.
pub const DEV_NODES: usize = 6;

/// Options of `--dev`.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// Data directory: `node1..node6`, secrets, credentials.
    pub data_dir: PathBuf,
    /// S3 listen address.
    pub listen: String,
    /// Region.
    pub region: String,
    /// Virtual-host base domains.
    pub domains: Vec<String>,
}

/// Read `path`, or create it with `make()` (mode 0600) and return that.
fn read_or_create(path: &Path, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    if let Ok(s) = std::fs::read_to_string(path) {
        return Ok(s.trim().to_owned());
    }
    let value = make();
    std::fs::write(path, format!("{value}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(value)
}

/// Start the embedded nodes and the gateway; serve until ctrl-c.
pub async fn run(
    opts: DevOptions,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opts.data_dir)?;
    let secret = read_or_create(&opts.data_dir.join("cluster-secret"), generate_secret)?;
    let admin_token = match std::env::var("CAIRN_ADMIN_TOKEN") {
        Ok(t) if !t.is_empty() => t,
        _ => read_or_create(&opts.data_dir.join("admin-token"), generate_secret)?,
    };
    let (root_access_key, root_secret_key) = match (
        std::env::var("CAIRN_ROOT_ACCESS_KEY"),
        std::env::var("CAIRN_ROOT_SECRET_KEY"),
    ) {
        (Ok(a), Ok(s)) if !a.is_empty() && !s.is_empty() => (a, s),
        _ => {
            let creds = read_or_create(&opts.data_dir.join("root-credentials"), || {
                format!(
                    "GK{} {}",
                    hex::encode_upper(rand::random::<[u8; 9]>()),
                    hex::encode(rand::random::<[u8; 24]>())
                )
            })?;
            let (a, s) = creds
                .split_once(' ')
                .context("root-credentials holds `ACCESS_KEY SECRET_KEY`")?;
            (a.to_owned(), s.to_owned())
        }
    };
    // Test-only, as the node's `--lifecycle-day-secs`.
    let lifecycle_day = std::env::var("CAIRN_LIFECYCLE_DAY_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(cairn_node::config::DEFAULT_LIFECYCLE_DAY, |s| {
            std::time::Duration::from_secs(s.max(1))
        });
    let mut addrs = Vec::new();
    for i in 1..=DEV_NODES {
        let dir = opts.data_dir.join(format!("node{i}"));
        let config = NodeConfig {
            data_dir: dir.clone(),
            cluster_secret: secret.clone(),
            fsync: true,
            read_barrier: cairn_node::table::ReadBarrier::Lease,
            down_out_after: cairn_node::config::DEFAULT_DOWN_OUT_AFTER,
            gc_grace: std::env::var("CAIRN_GC_GRACE")
                .ok()
                .and_then(|v| v.parse().ok())
                .map_or(
                    cairn_node::config::DEFAULT_GC_GRACE,
                    std::time::Duration::from_secs,
                ),
            lifecycle_day,
        };
        let node = Node::open(&config, metrics.clone())
            .await
            .with_context(|| format!("opening node {i}"))?;
        let addr_file = dir.join("addr");
        let want = std::fs::read_to_string(&addr_file)
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "127.0.0.1:0".into());
        let listener = tokio::net::TcpListener::bind(&want)
            .await
            .with_context(|| format!("binding node {i} on {want}"))?;
        let bound = listener.local_addr()?.to_string();
        std::fs::write(&addr_file, &bound)?;
        addrs.push((node.id, bound));
        tokio::spawn(cairn_node::server::run(
            node,
            listener,
            std::future::pending(),
        ));
    }
    let config = GatewayConfig {
        seed_nodes: addrs.iter().map(|(_, a)| a.clone()).collect(),
        cluster_secret: secret,
        admin_token: admin_token.clone(),
        root_access_key: root_access_key.clone(),
        root_secret_key: root_secret_key.clone(),
        region: opts.region.clone(),
        domains: opts.domains.clone(),
        chunk_size_bytes: DEFAULT_CHUNK_SIZE_BYTES,
        inline_threshold_bytes: DEFAULT_INLINE_THRESHOLD_BYTES,
        max_concurrent_transfers: DEFAULT_MAX_CONCURRENT_TRANSFERS,
        lifecycle_day,
    };
    let gw: Arc<Gateway> = Gateway::new(config, metrics).await?;
    if gw.cluster.version() == 0 {
        for (i, (id, _)) in addrs.iter().enumerate() {
            stage_assign(
                &gw,
                AssignRequest {
                    node_id: *id,
                    zone: format!("dev-{}", i + 1),
                    capacity: 1,
                },
            )
            .await
            .map_err(|_| anyhow::anyhow!("staging node {id}"))?;
        }
        apply_staged(
            &gw,
            ApplyRequest {
                profile: Some((4, 2)),
                dry_run: false,
                metadata_groups: None,
            },
        )
        .await
        .map_err(|_| anyhow::anyhow!("applying the dev layout"))?;
    }
    let listener = tokio::net::TcpListener::bind(&opts.listen)
        .await
        .with_context(|| format!("binding {}", opts.listen))?;
    let bound = listener.local_addr()?;
    println!(
        "Cairn dev cluster: {DEV_NODES} storage nodes (4+2), data in {}",
        opts.data_dir.display()
    );
    println!("  S3 endpoint:        http://{bound}");
    println!("  region:             {}", opts.region);
    println!("  access key id:      {root_access_key}");
    println!("  secret access key:  {root_secret_key}");
    println!("  admin endpoint:     http://{bound}  (CAIRN_ADMIN_TOKEN={admin_token})");
    server::run(gw, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
