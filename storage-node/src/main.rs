//! `cairn-node`: one storage node process.

use anyhow::Context;
use cairn_node::config::{NodeConfig, read_secret_file};
use cairn_node::server::{self, Node};
use cairn_node::table::ReadBarrier;
use clap::Parser;
use std::path::PathBuf;

/// A Cairn storage node.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Data directory (shards and RocksDB).
    #[arg(long)]
    data: PathBuf,
    /// RPC listen address. Port 0 picks a free port; the address actually
    /// bound is written to DATA/addr and reused on the next start.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// File holding the cluster secret (or set CAIRN_CLUSTER_SECRET).
    #[arg(long, env = "CAIRN_CLUSTER_SECRET_FILE")]
    cluster_secret_file: Option<PathBuf>,
    /// How metadata reads confirm the leader: `lease` (default) or
    /// `read-index` (a heartbeat round per read; for comparison).
    #[arg(long, value_enum, default_value = "lease")]
    read_barrier: Barrier,
    /// Seconds a node must be down before it is marked out and its shards
    /// rebuilt elsewhere (default 600).
    #[arg(long, env = "CAIRN_DOWN_OUT_AFTER", default_value_t = 600)]
    down_out_after: u64,
    /// Seconds a chunk is kept after its last reference went, before the
    /// garbage collector deletes it (default 3600).
    #[arg(long, env = "CAIRN_GC_GRACE", default_value_t = 3600)]
    gc_grace: u64,
    /// TEST ONLY: seconds a lifecycle "day" lasts (default 86400), so
    /// lifecycle rules can be seen acting; never set it on a cluster that
    /// holds data you keep.
    #[arg(long, env = "CAIRN_LIFECYCLE_DAY_SECS", default_value_t = 86_400)]
    lifecycle_day_secs: u64,
    /// RPC addresses of nodes of the cluster to join (comma-separated):
    /// until the layout includes it, this node makes itself known to them,
    /// so `cairn layout show` lists it for `layout assign`.
    #[arg(long, env = "CAIRN_JOIN", value_delimiter = ',')]
    join: Vec<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Barrier {
    Lease,
    ReadIndex,
}

impl From<Barrier> for ReadBarrier {
    fn from(b: Barrier) -> Self {
        match b {
            Barrier::Lease => ReadBarrier::Lease,
            Barrier::ReadIndex => ReadBarrier::ReadIndex,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cairn_node::logging::init(cairn_node::logging::NODE_DEFAULT_FILTER);
    let args = Args::parse();
    let cluster_secret = match (
        &args.cluster_secret_file,
        std::env::var("CAIRN_CLUSTER_SECRET"),
    ) {
        (Some(path), _) => read_secret_file(path)
            .with_context(|| format!("reading cluster secret from {}", path.display()))?,
        (None, Ok(secret)) => secret,
        (None, Err(_)) => anyhow::bail!(
            "no cluster secret: pass --cluster-secret-file or set CAIRN_CLUSTER_SECRET"
        ),
    };
    let config = NodeConfig {
        data_dir: args.data.clone(),
        cluster_secret,
        fsync: true,
        read_barrier: args.read_barrier.into(),
        down_out_after: std::time::Duration::from_secs(args.down_out_after),
        gc_grace: std::time::Duration::from_secs(args.gc_grace),
        lifecycle_day: std::time::Duration::from_secs(args.lifecycle_day_secs.max(1)),
    };
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    let node = Node::open(&config, metrics).await.context("opening node")?;
    // Reuse the address of the previous run so the layout stays true.
    let addr_file = args.data.join("addr");
    let listen = if args.listen.ends_with(":0") {
        std::fs::read_to_string(&addr_file)
            .map(|s| s.trim().to_owned())
            .unwrap_or(args.listen.clone())
    } else {
        args.listen.clone()
    };
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let bound = listener.local_addr()?;
    std::fs::write(&addr_file, bound.to_string())?;
    println!("cairn-node {} listening on {bound}", node.id);
    node.spawn_join(args.join.clone(), bound.to_string());
    server::run(node, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
