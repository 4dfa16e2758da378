//! The node RPC server: shards, metadata records, identity, layout, stats.

use crate::auth;
use crate::config::NodeConfig;
use crate::db::{self, CF_NODE};
use crate::error::{Error, Result};
use crate::meta_store::MetaStore;
use crate::shard_store::{FileShardStore, MAX_SHARD_BYTES, ShardStore};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use cairn::id::{ChunkId, NodeId, shard_checksum};
use cairn::layout::Layout;
use cairn::record;
use cairn::rpc::{
    MAX_META_BATCH, MAX_SCAN_LIMIT, MetaReadRequest, MetaReadResponse, MetaScanRequest,
    MetaWriteRequest, MetaWriteResponse, NodeIdentity, NodeStats, SHARD_CHECKSUM_HEADER,
    StagedLayout,
};
use rocksdb::DB;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;

/// Largest control (non-shard) request body: a metadata batch.
pub const MAX_CONTROL_BODY_BYTES: usize = 64 << 20;
/// Shard transfers a node serves at once; more wait their turn. Each holds
/// at most one shard (a few MiB at the default chunk size) in memory.
pub const MAX_CONCURRENT_SHARD_TRANSFERS: usize = 64;

/// Longest a layout watch waits for a newer layout before it answers with
/// the current one (the watcher then asks again).
pub const LAYOUT_WATCH_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A running node's shared state.
pub struct Node {
    /// This node's id.
    pub id: NodeId,
    db: Arc<DB>,
    shards: Arc<dyn ShardStore>,
    meta: MetaStore,
    secret: String,
    corrupt_detected: AtomicU64,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    shard_transfers: Arc<tokio::sync::Semaphore>,
    // The version of the layout held, for watchers (`/v1/layout/watch`).
    layout_version: tokio::sync::watch::Sender<u64>,
}

impl Node {
    /// Open the node's stores under `config.data_dir`.
    pub fn open(
        config: &NodeConfig,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> Result<Arc<Self>> {
        config.validate().map_err(Error::BadRequest)?;
        std::fs::create_dir_all(&config.data_dir)?;
        let db = db::open(&config.data_dir.join("db"))?;
        let cf = db.cf_handle(CF_NODE).expect("node column family");
        let id = match db.get_cf(&cf, b"node_id")? {
            Some(v) if v.len() == 8 => NodeId(u64::from_le_bytes(v[..].try_into().expect("8"))),
            _ => {
                let id = NodeId(rand::random::<u64>() | 1);
                db.put_cf_opt(
                    &cf,
                    b"node_id",
                    id.0.to_le_bytes(),
                    &db::write_options(true),
                )?;
                id
            }
        };
        let shards: Arc<dyn ShardStore> = Arc::new(FileShardStore::open(
            &config.data_dir,
            db.clone(),
            config.fsync,
        )?);
        let meta = MetaStore::new(db.clone(), config.fsync);
        let held: Option<Layout> = db
            .get_cf(&cf, "layout")?
            .map(|v| record::decode("layout", &v))
            .transpose()?;
        let (layout_version, _) = tokio::sync::watch::channel(held.map(|l| l.version).unwrap_or(0));
        Ok(Arc::new(Self {
            id,
            db,
            shards,
            meta,
            secret: config.cluster_secret.clone(),
            corrupt_detected: AtomicU64::new(0),
            metrics,
            shard_transfers: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_SHARD_TRANSFERS)),
            layout_version,
        }))
    }

    fn get_node_record<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let cf = self.db.cf_handle(CF_NODE).expect("node column family");
        Ok(self
            .db
            .get_cf(&cf, key)?
            .map(|v| record::decode(key_name(key), &v))
            .transpose()?)
    }

    fn put_node_record<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let cf = self.db.cf_handle(CF_NODE).expect("node column family");
        self.db
            .put_cf_opt(&cf, key, record::encode(value), &db::write_options(true))?;
        Ok(())
    }

    /// The layout this node holds.
    pub fn layout(&self) -> Result<Option<Layout>> {
        self.get_node_record("layout")
    }

    /// The node's counters.
    pub fn stats(&self) -> NodeStats {
        let (shards, shard_bytes) = self.shards.usage();
        NodeStats {
            shards,
            shard_bytes,
            corrupt_shards_detected: self.corrupt_detected.load(Ordering::Relaxed),
            metadata_records: self.meta.approximate_count(),
        }
    }

    fn note_corrupt(&self, chunk: &ChunkId, index: u8) {
        self.corrupt_detected.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("cairn_node_corrupt_shards_total", "node" => self.id.to_string())
            .increment(1);
        tracing::warn!(node = %self.id, %chunk, index, "corrupt shard detected; not served");
    }
}

fn key_name(key: &str) -> &'static str {
    match key {
        "layout" => "layout",
        _ => "staged layout",
    }
}

/// Errors as RPC answers: a status and a short text body.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::ShardNotFound { .. } => StatusCode::NOT_FOUND,
            Error::CorruptShard { .. } => StatusCode::CONFLICT,
            Error::Unauthenticated(_) => StatusCode::FORBIDDEN,
            Error::BadRequest(_) | Error::Core(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %self, "rpc failed");
        }
        (status, self.to_string()).into_response()
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
}

fn parse_shard(chunk: &str, index: &str) -> Result<(ChunkId, u8)> {
    let chunk = chunk
        .parse::<ChunkId>()
        .map_err(|e| Error::BadRequest(e.to_string()))?;
    let index = index
        .parse::<u8>()
        .map_err(|_| Error::BadRequest(format!("bad shard index {index}")))?;
    Ok((chunk, index))
}

async fn put_shard(
    State(node): State<Arc<Node>>,
    Path((chunk, index)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode> {
    let (chunk, index) = parse_shard(&chunk, &index)?;
    let expected = headers
        .get(SHARD_CHECKSUM_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::BadRequest("missing shard checksum".into()))?
        .to_owned();
    blocking(move || {
        if hex::encode(shard_checksum(&body)) != expected {
            return Err(Error::BadRequest(
                "shard body does not match its checksum".into(),
            ));
        }
        node.shards.put(&chunk, index, &body)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_shard(
    State(node): State<Arc<Node>>,
    Path((chunk, index)): Path<(String, String)>,
) -> Result<Response> {
    let (chunk, index) = parse_shard(&chunk, &index)?;
    let n = node.clone();
    let data = blocking(move || n.shards.get(&chunk, index)).await;
    match data {
        Ok(data) => {
            let sum = hex::encode(shard_checksum(&data));
            Ok(([(SHARD_CHECKSUM_HEADER, sum)], data).into_response())
        }
        Err(e @ Error::CorruptShard { .. }) => {
            node.note_corrupt(&chunk, index);
            Err(e)
        }
        Err(e) => Err(e),
    }
}

async fn head_shard(
    State(node): State<Arc<Node>>,
    Path((chunk, index)): Path<(String, String)>,
) -> Result<StatusCode> {
    let (chunk, index) = parse_shard(&chunk, &index)?;
    let present = blocking(move || node.shards.contains(&chunk, index)).await?;
    Ok(if present {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    })
}

async fn delete_shard(
    State(node): State<Arc<Node>>,
    Path((chunk, index)): Path<(String, String)>,
) -> Result<StatusCode> {
    let (chunk, index) = parse_shard(&chunk, &index)?;
    blocking(move || node.shards.delete(&chunk, index)).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn encoded<T: serde::Serialize>(value: &T) -> Response {
    record::encode(value).into_response()
}

async fn meta_write(State(node): State<Arc<Node>>, body: Bytes) -> Result<Response> {
    let req: MetaWriteRequest = record::decode("meta write", &body)?;
    if req.writes.len() > MAX_META_BATCH {
        return Err(Error::BadRequest("batch too large".into()));
    }
    let newer = blocking(move || node.meta.write(&req.writes)).await?;
    Ok(encoded(&MetaWriteResponse { newer }))
}

async fn meta_read(State(node): State<Arc<Node>>, body: Bytes) -> Result<Response> {
    let req: MetaReadRequest = record::decode("meta read", &body)?;
    if req.keys.len() > MAX_META_BATCH {
        return Err(Error::BadRequest("batch too large".into()));
    }
    let values = blocking(move || node.meta.read(&req.keys)).await?;
    Ok(encoded(&MetaReadResponse { values }))
}

async fn meta_scan(State(node): State<Arc<Node>>, body: Bytes) -> Result<Response> {
    let req: MetaScanRequest = record::decode("meta scan", &body)?;
    if !(1..=MAX_SCAN_LIMIT).contains(&req.limit) {
        return Err(Error::BadRequest("scan limit out of range".into()));
    }
    let resp = blocking(move || node.meta.scan(&req)).await?;
    Ok(encoded(&resp))
}

async fn identity(State(node): State<Arc<Node>>) -> Result<Response> {
    let layout_version = node.layout()?.map(|l| l.version).unwrap_or(0);
    Ok(encoded(&NodeIdentity {
        node_id: node.id,
        layout_version,
    }))
}

async fn stats(State(node): State<Arc<Node>>) -> Response {
    encoded(&node.stats())
}

async fn get_layout(State(node): State<Arc<Node>>) -> Result<Response> {
    Ok(encoded(&node.layout()?))
}

async fn put_layout(State(node): State<Arc<Node>>, body: Bytes) -> Result<StatusCode> {
    let layout: Layout = record::decode("layout", &body)?;
    layout
        .validate()
        .map_err(|e| Error::BadRequest(e.to_string()))?;
    let current = node.layout()?.map(|l| l.version).unwrap_or(0);
    if layout.version <= current {
        // Layouts only move forward; an older or equal one is a no-op.
        return Ok(StatusCode::OK);
    }
    node.put_node_record("layout", &layout)?;
    node.layout_version.send_replace(layout.version);
    tracing::info!(node = %node.id, version = layout.version, "layout applied");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/layout/watch?after=V`.
#[derive(Debug, serde::Deserialize)]
struct WatchQuery {
    after: u64,
}

/// Answer with the layout as soon as its version is past `after`, or with
/// the current one after [`LAYOUT_WATCH_WAIT`]: how gateways learn a newly
/// applied layout at once rather than on their next poll.
async fn watch_layout(
    State(node): State<Arc<Node>>,
    axum::extract::Query(q): axum::extract::Query<WatchQuery>,
) -> Result<Response> {
    let mut versions = node.layout_version.subscribe();
    let _ = tokio::time::timeout(LAYOUT_WATCH_WAIT, versions.wait_for(|v| *v > q.after)).await;
    Ok(encoded(&node.layout()?))
}

async fn get_staged(State(node): State<Arc<Node>>) -> Result<Response> {
    Ok(encoded(&node.get_node_record::<StagedLayout>("staged")?))
}

async fn put_staged(State(node): State<Arc<Node>>, body: Bytes) -> Result<StatusCode> {
    let staged: StagedLayout = record::decode("staged layout", &body)?;
    node.put_node_record("staged", &staged)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn metrics_text(State(node): State<Arc<Node>>) -> Response {
    let stats = node.stats();
    let mut text = node
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    // Always-present gauges, whatever recorder the process installed.
    text.push_str(&format!(
        "cairn_node_shards{{node=\"{id}\"}} {}\ncairn_node_shard_bytes{{node=\"{id}\"}} {}\ncairn_node_corrupt_shards_detected{{node=\"{id}\"}} {}\n",
        stats.shards,
        stats.shard_bytes,
        stats.corrupt_shards_detected,
        id = node.id
    ));
    text.into_response()
}

async fn require_signature(
    State(node): State<Arc<Node>>,
    req: Request,
    next: Next,
) -> Result<Response> {
    auth::verify_request(&node.secret, req.method(), req.uri(), req.headers())?;
    Ok(next.run(req).await)
}

/// Queue shard transfers beyond [`MAX_CONCURRENT_SHARD_TRANSFERS`] before
/// their bodies are read.
async fn limit_shard_transfers(
    State(node): State<Arc<Node>>,
    req: Request,
    next: Next,
) -> Response {
    let _permit = node
        .shard_transfers
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    next.run(req).await
}

/// The node's HTTP router.
pub fn router(node: Arc<Node>) -> Router {
    let signed = Router::new()
        .route(
            "/v1/shards/{chunk}/{index}",
            put(put_shard)
                .get(get_shard)
                .head(head_shard)
                .delete(delete_shard)
                .layer(DefaultBodyLimit::max(MAX_SHARD_BYTES))
                .layer(middleware::from_fn_with_state(
                    node.clone(),
                    limit_shard_transfers,
                )),
        )
        .route("/v1/meta/write", post(meta_write))
        .route("/v1/meta/read", post(meta_read))
        .route("/v1/meta/scan", post(meta_scan))
        .route("/v1/identity", get(identity))
        .route("/v1/stats", get(stats))
        .route("/v1/layout", get(get_layout).put(put_layout))
        .route("/v1/layout/watch", get(watch_layout))
        .route("/v1/layout/staged", get(get_staged).put(put_staged))
        .layer(DefaultBodyLimit::max(MAX_CONTROL_BODY_BYTES))
        .route_layer(middleware::from_fn_with_state(
            node.clone(),
            require_signature,
        ));
    Router::new()
        .merge(signed)
        .route("/metrics", get(metrics_text))
        .route("/health", get(|| async { "ok" }))
        .with_state(node)
}

/// Serve `node` on `listener` until `shutdown` completes.
pub async fn run(
    node: Arc<Node>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(node = %node.id, %addr, "storage node serving");
    axum::serve(listener, router(node))
        .with_graceful_shutdown(shutdown)
        .await
}
