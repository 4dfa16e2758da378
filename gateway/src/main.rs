//! `cairn-gateway`: the S3 gateway process (or, with `--dev`, a whole
//! all-in-one cluster).

use anyhow::Context;
use cairn_gateway::config::{
    DEFAULT_CHUNK_SIZE_BYTES, DEFAULT_INLINE_THRESHOLD_BYTES, DEFAULT_MAX_CONCURRENT_TRANSFERS,
    GatewayConfig,
};
use cairn_gateway::dev::{self, DevOptions};
use cairn_gateway::server::{self, Gateway};
use clap::Parser;
use std::path::PathBuf;

/// The Cairn S3 gateway.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// S3 + admin listen address.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: String,
    /// Run an all-in-one cluster (6 embedded storage nodes, 4+2) under --data.
    #[arg(long)]
    dev: bool,
    /// Data directory for --dev.
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Storage node RPC addresses to start from (comma-separated).
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<String>,
    /// File holding the cluster secret (or set CAIRN_CLUSTER_SECRET).
    #[arg(long, env = "CAIRN_CLUSTER_SECRET_FILE")]
    cluster_secret_file: Option<PathBuf>,
    /// File holding the admin API token (or set CAIRN_ADMIN_TOKEN).
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// Region clients sign for.
    #[arg(long, default_value = "us-east-1", env = "CAIRN_REGION")]
    region: String,
    /// Base domain for virtual-host-style requests (repeatable).
    #[arg(long = "domain", default_value = "localhost")]
    domains: Vec<String>,
    /// Chunk size in bytes.
    #[arg(long, default_value_t = DEFAULT_CHUNK_SIZE_BYTES)]
    chunk_size_bytes: usize,
    /// Objects up to this size are stored inside their manifest.
    #[arg(long, default_value_t = DEFAULT_INLINE_THRESHOLD_BYTES)]
    inline_threshold_bytes: usize,
    /// Chunked PUTs and GETs served at once; beyond it, 503 SlowDown.
    #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENT_TRANSFERS)]
    max_concurrent_transfers: usize,
    /// Write the bound address to this file once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Also serve buckets' static websites here (the bucket chosen by the
    /// `Host` header); off unless given.
    #[arg(long)]
    website_listen: Option<String>,
    /// Write the website endpoint's bound address to this file.
    #[arg(long)]
    website_addr_file: Option<PathBuf>,
    /// TEST ONLY: seconds the nodes' lifecycle "day" lasts (their
    /// `--lifecycle-day-secs`), for the expiry dates answers announce.
    #[arg(long, env = "CAIRN_LIFECYCLE_DAY_SECS", default_value_t = 86_400)]
    lifecycle_day_secs: u64,
}

fn secret_from(file: &Option<PathBuf>, env: &str, what: &str) -> anyhow::Result<String> {
    if let Some(path) = file {
        return Ok(std::fs::read_to_string(path)
            .with_context(|| format!("reading {what} from {}", path.display()))?
            .trim()
            .to_owned());
    }
    std::env::var(env).map_err(|_| anyhow::anyhow!("no {what}: pass its file or set {env}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // s3s logs every failed operation at ERROR, 4xx included, with the
    // whole response; the gateway logs one line per failed request itself.
    // (--dev embeds nodes: their filter applies too.)
    cairn_node::logging::init(&format!(
        "{},s3s=off",
        cairn_node::logging::NODE_DEFAULT_FILTER
    ));
    let args = Args::parse();
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    if args.dev {
        return dev::run(
            DevOptions {
                data_dir: args.data,
                listen: args.listen,
                region: args.region,
                domains: args.domains,
            },
            metrics,
        )
        .await;
    }
    anyhow::ensure!(!args.nodes.is_empty(), "pass --nodes (or --dev)");
    let config = GatewayConfig {
        seed_nodes: args.nodes,
        cluster_secret: secret_from(
            &args.cluster_secret_file,
            "CAIRN_CLUSTER_SECRET",
            "cluster secret",
        )?,
        admin_token: secret_from(&args.admin_token_file, "CAIRN_ADMIN_TOKEN", "admin token")?,
        root_access_key: std::env::var("CAIRN_ROOT_ACCESS_KEY")
            .context("set CAIRN_ROOT_ACCESS_KEY")?,
        root_secret_key: std::env::var("CAIRN_ROOT_SECRET_KEY")
            .context("set CAIRN_ROOT_SECRET_KEY")?,
        region: args.region,
        domains: args.domains,
        chunk_size_bytes: args.chunk_size_bytes,
        inline_threshold_bytes: args.inline_threshold_bytes,
        max_concurrent_transfers: args.max_concurrent_transfers,
        lifecycle_day: std::time::Duration::from_secs(args.lifecycle_day_secs.max(1)),
    };
    let gw = Gateway::new(config, metrics).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let bound = listener.local_addr()?;
    if let Some(path) = &args.addr_file {
        std::fs::write(path, bound.to_string())?;
    }
    println!("cairn-gateway listening on {bound}");
    if let Some(addr) = &args.website_listen {
        let site = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let site_bound = site.local_addr()?;
        if let Some(path) = &args.website_addr_file {
            std::fs::write(path, site_bound.to_string())?;
        }
        println!("cairn-gateway serving websites on {site_bound}");
        let gw = gw.clone();
        tokio::spawn(async move {
            if let Err(e) = cairn_gateway::website::run(gw, site, std::future::pending()).await {
                tracing::error!(error = %e, "website endpoint stopped");
            }
        });
    }
    server::run(gw, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
