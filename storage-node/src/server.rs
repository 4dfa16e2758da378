//! The node RPC server: shards, metadata commands and reads, Raft
//! messages, the cluster map and its creation, identity, stats.

use crate::auth;
use crate::client::NodeClient;
use crate::config::NodeConfig;
use crate::db::{Cf, Db};
use crate::error::{Error, Result};
use crate::net::Network;
use crate::shard_store::{FileShardStore, MAX_LIST_SHARDS, MAX_SHARD_BYTES, ShardStore};
use crate::table::groups::Tables;
use crate::table::network::{self, RaftBatch, RaftBatchReply};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use cairn::codec::ShardGeometry;
use cairn::id::{ChunkId, NodeId, shard_checksum};
use cairn::layout::Layout;
use cairn::record;
use cairn::rpc::{
    CommandRequest, ListShardsReply, ListShardsRequest, NodeIdentity, NodeStats, PeerView,
    ReadRequest, RepairThrottle, SHARD_CHECKSUM_HEADER, SHARD_GEOMETRY_HEADER, StagedLayout,
};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest control (non-shard) request body: a metadata batch.
pub const MAX_CONTROL_BODY_BYTES: usize = 64 << 20;
/// Shard transfers a node serves at once; more wait their turn. Each holds
/// at most one shard (a few MiB at the default chunk size) in memory.
pub const MAX_CONCURRENT_SHARD_TRANSFERS: usize = 64;

/// Time between two hellos of a node waiting to be added.
pub const HELLO_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
/// Time between two rounds of the node's housekeeping.
pub const HOUSEKEEPING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Size of the file system holding `dir`, bytes (0 when unknown).
fn fs_size(dir: &std::path::Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return 0;
    };
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `st` a valid
    // out-pointer for the duration of the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    st.f_blocks as u64 * st.f_frsize as u64
}

/// A running node's shared state.
pub struct Node {
    /// This node's id.
    pub id: NodeId,
    db: Db,
    shards: Arc<dyn ShardStore>,
    /// The metadata groups it hosts.
    pub tables: Arc<Tables>,
    secret: String,
    network: Network,
    replay: auth::ReplayGuard,
    corrupt_detected: AtomicU64,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    shard_transfers: Arc<tokio::sync::Semaphore>,
    /// The repair and rebalance worker.
    pub repair: Arc<crate::repair::Repair>,
    /// The scrubber.
    pub scrub: Arc<crate::scrub::Scrub>,
    /// The garbage collector.
    pub gc: Arc<crate::gc::Gc>,
    /// The lifecycle worker.
    pub lifecycle: Arc<crate::lifecycle::Lifecycle>,
    data_dir: std::path::PathBuf,
    /// How long a node must be down before it is marked out.
    pub down_out_after: std::time::Duration,
}

impl Node {
    /// Open the node's stores under `config.data_dir` and start the
    /// metadata groups it hosts.
    pub async fn open(
        config: &NodeConfig,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> Result<Arc<Self>> {
        std::fs::create_dir_all(&config.data_dir)?;
        let disk = crate::disk::Disk::open(&config.data_dir)?;
        Self::open_on(config, disk, Network::tcp(), metrics).await
    }

    /// Open the node on `disk`, reaching its peers over `network` (its Raft
    /// snapshots are files under `config.data_dir` whatever the disk).
    pub async fn open_on(
        config: &NodeConfig,
        disk: crate::disk::Disk,
        network: Network,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> Result<Arc<Self>> {
        config.validate().map_err(Error::BadRequest)?;
        let db = disk.kv;
        let id = match db.get(Cf::Node, b"node_id")? {
            Some(v) if v.len() == 8 => NodeId(u64::from_le_bytes(v[..].try_into().expect("8"))),
            _ => {
                let id = NodeId(crate::random::random::<u64>() | 1);
                db.put(Cf::Node, b"node_id", &id.0.to_le_bytes(), true)?;
                id
            }
        };
        let shards: Arc<dyn ShardStore> = Arc::new(FileShardStore::open(
            &config.data_dir,
            db.clone(),
            disk.files,
            config.fsync,
        )?);
        let tables = Tables::open(
            id,
            db.clone(),
            config.data_dir.clone(),
            NodeClient::on(&config.cluster_secret, &network),
            config.read_barrier,
        )
        .await?;
        crate::repair::clear_queue(db.as_ref());
        let shard_transfers = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_SHARD_TRANSFERS));
        let repair = crate::repair::Repair::new(
            id,
            db.clone(),
            shards.clone(),
            Arc::downgrade(&tables),
            NodeClient::on(&config.cluster_secret, &network),
            shard_transfers.clone(),
            MAX_CONCURRENT_SHARD_TRANSFERS,
        );
        repair.spawn();
        let scrub = crate::scrub::Scrub::new(db.clone(), shards.clone(), repair.clone());
        scrub.spawn();
        let gc = crate::gc::Gc::new(
            shards.clone(),
            Arc::downgrade(&tables),
            NodeClient::on(&config.cluster_secret, &network),
            config.gc_grace,
        );
        gc.spawn();
        let lifecycle = crate::lifecycle::Lifecycle::new(
            Arc::downgrade(&tables),
            NodeClient::on(&config.cluster_secret, &network),
            config.lifecycle_day,
        );
        lifecycle.spawn();
        let node = Arc::new(Self {
            id,
            db,
            shards,
            tables,
            secret: config.cluster_secret.clone(),
            network,
            replay: auth::ReplayGuard::new(),
            corrupt_detected: AtomicU64::new(0),
            metrics,
            shard_transfers,
            repair,
            scrub,
            gc,
            lifecycle,
            data_dir: config.data_dir.clone(),
            down_out_after: config.down_out_after,
        });
        node.spawn_housekeeping();
        Ok(node)
    }

    /// Every [`HOUSEKEEPING_INTERVAL`]: refresh what the beats tell, wake
    /// the worker when the placement changed, and (on the node leading the
    /// system group) look after the cluster map.
    fn spawn_housekeeping(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut placement_version = 0;
            loop {
                tokio::time::sleep(HOUSEKEEPING_INTERVAL).await;
                let Some(node) = me.upgrade() else { return };
                let (_, used) = node.shards.usage();
                let total = fs_size(&node.data_dir);
                *node.tables.beat_info.lock().expect("beat info lock") =
                    (node.repair.synced(), used, total);
                if let Some(map) = node.tables.map() {
                    if map.placement_version != placement_version {
                        placement_version = map.placement_version;
                        node.repair.wake();
                    }
                    crate::steward::tend(&node, &map).await;
                }
            }
        });
    }

    /// Until this node is in a cluster map, tell the nodes at `join` every
    /// [`HELLO_INTERVAL`] that it exists at `addr`, so an operator can add it.
    pub fn spawn_join(self: &Arc<Self>, join: Vec<String>, addr: String) {
        if join.is_empty() {
            return;
        }
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(node) = me.upgrade() else { return };
                if node.tables.map().is_some_and(|m| m.node(node.id).is_some()) {
                    return;
                }
                let hello = cairn::rpc::Hello {
                    node: node.id,
                    addr: addr.clone(),
                };
                let client = NodeClient::on(&node.secret, &node.network);
                drop(node);
                for a in &join {
                    let _ = client.rpc_hello(a, &hello).await;
                }
                tokio::time::sleep(HELLO_INTERVAL).await;
            }
        });
    }

    /// The shard store.
    pub fn shard_store(&self) -> &Arc<dyn ShardStore> {
        &self.shards
    }

    fn get_node_record<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        Ok(self
            .db
            .get(Cf::Node, key.as_bytes())?
            .map(|v| record::decode(key_name(key), &v))
            .transpose()?)
    }

    fn put_node_record<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<()> {
        self.db
            .put(Cf::Node, key.as_bytes(), &record::encode(value), true)?;
        Ok(())
    }

    /// The cluster map this node knows.
    pub fn layout(&self) -> Option<Layout> {
        self.tables.map().map(|m| m.as_ref().clone())
    }

    /// The node's counters.
    pub fn stats(&self) -> NodeStats {
        let (shards, shard_bytes) = self.shards.usage();
        let (groups, groups_led) = self.tables.counts();
        NodeStats {
            shards,
            shard_bytes,
            corrupt_shards_detected: self.corrupt_detected.load(Ordering::Relaxed),
            metadata_records: self.metadata_records(),
            groups,
            groups_led,
        }
    }

    fn metadata_records(&self) -> u64 {
        self.db.estimate_keys(Cf::Meta)
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
    crate::blocking::spawn(f)
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
    // The signature check verified the body against the signed BLAKE3 of
    // the content; the shard's checksum is the same hash of the same bytes.
    let content = headers
        .get(auth::CONTENT_HASH_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content != expected {
        return Err(Error::BadRequest(
            "shard body does not match its checksum".into(),
        ));
    }
    let geometry: ShardGeometry = headers
        .get(SHARD_GEOMETRY_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::BadRequest("missing shard geometry".into()))?
        .parse()?;
    if geometry.shard_len() != body.len() {
        return Err(Error::BadRequest(format!(
            "a shard of {geometry} is {} bytes, not {}",
            geometry.shard_len(),
            body.len()
        )));
    }
    blocking(move || node.shards.put(&chunk, index, &geometry, &body)).await?;
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

/// `POST /v1/shards/{chunk}/{index}/verify`: 200 when the shard is here
/// and intact, 404 when absent, 409 when corrupt.
async fn verify_shard(
    State(node): State<Arc<Node>>,
    Path((chunk, index)): Path<(String, String)>,
) -> Result<StatusCode> {
    let (chunk, index) = parse_shard(&chunk, &index)?;
    let n = node.clone();
    match blocking(move || n.shards.get(&chunk, index)).await {
        Ok(_) => Ok(StatusCode::OK),
        Err(e @ Error::CorruptShard { .. }) => {
            node.note_corrupt(&chunk, index);
            Err(e)
        }
        Err(e) => Err(e),
    }
}

async fn list_shards(State(node): State<Arc<Node>>, body: Bytes) -> Result<Response> {
    let req: ListShardsRequest = record::decode("shard listing", &body)?;
    let key = |b: &[u8]| -> Result<[u8; 33]> {
        b.try_into()
            .map_err(|_| Error::BadRequest("shard keys are 33 bytes".into()))
    };
    let (from, to) = (key(&req.from)?, key(&req.to)?);
    let limit = (req.limit as usize).clamp(1, MAX_LIST_SHARDS);
    let (shards, more) =
        blocking(move || crate::shard_store::list_page(node.shards.as_ref(), &from, &to, limit))
            .await?;
    Ok(encoded(&ListShardsReply { shards, more }))
}

async fn peers(State(node): State<Arc<Node>>) -> Response {
    let views: Vec<PeerView> = node
        .tables
        .map()
        .map(|m| {
            m.nodes
                .iter()
                .map(|n| {
                    if n.id == node.id {
                        PeerView {
                            node: n.id,
                            liveness: cairn::rpc::Liveness::Up,
                            phi: 0.0,
                            synced: node.repair.synced(),
                            used_bytes: node.shards.usage().1,
                            total_bytes: fs_size(&node.data_dir),
                        }
                    } else {
                        node.tables.liveness.view(n.id)
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    encoded(&views)
}

async fn scrub_report(State(node): State<Arc<Node>>) -> Response {
    encoded(&node.scrub.report())
}

async fn scrub_action(
    State(node): State<Arc<Node>>,
    Path(action): Path<String>,
) -> Result<Response> {
    match action.as_str() {
        "start" => node.scrub.start(),
        "pause" => node.scrub.pause(),
        _ => return Err(Error::BadRequest("scrub start or pause".into())),
    }
    Ok(encoded(&node.scrub.report()))
}

async fn gc_report(State(node): State<Arc<Node>>) -> Response {
    encoded(&node.gc.report())
}

async fn gc_run(State(node): State<Arc<Node>>) -> Response {
    node.gc.request();
    encoded(&node.gc.report())
}

async fn repair_report(State(node): State<Arc<Node>>) -> Response {
    encoded(&repair_report_of(&node))
}

/// The repair worker's report with the voter changes this node leads.
fn repair_report_of(node: &Node) -> cairn::rpc::RepairReport {
    let mut r = node.repair.report();
    if let Some(map) = node.tables.map() {
        r.voter_changes_pending = node.tables.voter_changes_pending(&map);
    }
    r
}

async fn repair_throttle(State(node): State<Arc<Node>>, body: Bytes) -> Result<Response> {
    let t: RepairThrottle = record::decode("repair throttle", &body)?;
    node.repair.set_throttle(&t)?;
    Ok(encoded(&repair_report_of(&node)))
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

async fn meta_command(State(node): State<Arc<Node>>, body: Bytes) -> Result<Response> {
    let req: CommandRequest = record::decode("command request", &body)?;
    Ok(encoded(&node.tables.command(req.group, req.request).await))
}

async fn meta_read(State(node): State<Arc<Node>>, body: Bytes) -> Result<Response> {
    let req: ReadRequest = record::decode("read request", &body)?;
    Ok(encoded(&node.tables.read(req.group, req.read).await))
}

/// `?after=N` of the long polls.
#[derive(Debug, serde::Deserialize)]
struct After {
    after: u64,
}

async fn system_changes(
    State(node): State<Arc<Node>>,
    axum::extract::Query(q): axum::extract::Query<After>,
) -> Response {
    encoded(&node.tables.system_changes(q.after).await)
}

/// Answer with the cluster map as soon as its version is past `after`, or
/// with the current one after a wait: how gateways and nodes learn a new
/// map at once rather than on their next poll.
async fn watch_map(
    State(node): State<Arc<Node>>,
    axum::extract::Query(q): axum::extract::Query<After>,
) -> Response {
    encoded(&node.tables.watch_map(q.after).await)
}

async fn bootstrap(State(node): State<Arc<Node>>, body: Bytes) -> Result<Response> {
    let layout: Layout = record::decode("layout", &body)?;
    Ok(encoded(&node.tables.bootstrap(layout).await?))
}

async fn hello(State(node): State<Arc<Node>>, body: Bytes) -> Result<StatusCode> {
    let hello: cairn::rpc::Hello = record::decode("hello", &body)?;
    let mut c = node.tables.candidates.lock().expect("candidates lock");
    c.retain(|_, (_, t)| t.elapsed() < crate::table::groups::CANDIDATE_TTL);
    if c.len() < crate::table::groups::MAX_CANDIDATES || c.contains_key(&hello.node) {
        c.insert(hello.node, (hello.addr, tokio::time::Instant::now()));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn candidates(State(node): State<Arc<Node>>) -> Response {
    let c = node.tables.candidates.lock().expect("candidates lock");
    let list: Vec<cairn::rpc::Hello> = c
        .iter()
        .filter(|(_, (_, t))| t.elapsed() < crate::table::groups::CANDIDATE_TTL)
        .map(|(id, (addr, _))| cairn::rpc::Hello {
            node: *id,
            addr: addr.clone(),
        })
        .collect();
    encoded(&list)
}

async fn node_beat(State(node): State<Arc<Node>>, body: Bytes) -> Result<StatusCode> {
    let beat: cairn::rpc::NodeBeat = record::decode("node beat", &body)?;
    node.tables.on_beat(beat);
    Ok(StatusCode::NO_CONTENT)
}

/// Raft messages of any groups, answered in order.
async fn raft(State(node): State<Arc<Node>>, body: Bytes) -> Result<Response> {
    let batch: RaftBatch = record::decode("raft batch", &body)?;
    let replies = futures::future::join_all(batch.messages.into_iter().map(|(group, msg)| {
        let g = node.tables.group(group);
        async move { record::encode(&network::handle(g, &msg).await) }
    }))
    .await;
    Ok(encoded(&RaftBatchReply { replies }))
}

async fn identity(State(node): State<Arc<Node>>) -> Result<Response> {
    let layout_version = node.layout().map(|l| l.version).unwrap_or(0);
    Ok(encoded(&NodeIdentity {
        node_id: node.id,
        layout_version,
    }))
}

async fn groups(State(node): State<Arc<Node>>) -> Response {
    encoded(&node.tables.statuses())
}

async fn stats(State(node): State<Arc<Node>>) -> Response {
    encoded(&node.stats())
}

async fn get_layout(State(node): State<Arc<Node>>) -> Response {
    encoded(&node.layout())
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

/// Read the body (at most the route's limit), then check the signature,
/// the body against its signed hash, and the nonce. Shard transfers beyond
/// [`MAX_CONCURRENT_SHARD_TRANSFERS`] wait their turn before their bodies
/// are read, so buffered bodies stay bounded.
async fn require_signature(
    State(node): State<Arc<Node>>,
    req: Request,
    next: Next,
) -> Result<Response> {
    let shard = req.uri().path().starts_with("/v1/shards/");
    let _permit = match shard {
        true => Some(
            node.shard_transfers
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed"),
        ),
        false => None,
    };
    let limit = if shard {
        MAX_SHARD_BYTES
    } else {
        MAX_CONTROL_BODY_BYTES
    };
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| Error::BadRequest(format!("body: {e}")))?;
    auth::verify_request(
        &node.secret,
        &node.replay,
        &parts.method,
        &parts.uri,
        &parts.headers,
        &bytes,
    )?;
    Ok(next
        .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await)
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
                .layer(DefaultBodyLimit::max(MAX_SHARD_BYTES)),
        )
        .route("/v1/meta/command", post(meta_command))
        .route("/v1/meta/read", post(meta_read))
        .route("/v1/meta/system/changes", get(system_changes))
        .route("/v1/raft", post(raft))
        .route("/v1/shards/{chunk}/{index}/verify", post(verify_shard))
        .route("/v1/shards/list", post(list_shards))
        .route("/v1/peers", get(peers))
        .route("/v1/peer/hello", post(hello))
        .route("/v1/candidates", get(candidates))
        .route("/v1/repair", get(repair_report))
        .route("/v1/gc", get(gc_report))
        .route("/v1/gc/run", post(gc_run))
        .route("/v1/scrub", get(scrub_report))
        .route("/v1/scrub/{action}", post(scrub_action))
        .route("/v1/repair/throttle", post(repair_throttle))
        .route("/v1/peer/beat", post(node_beat))
        .route("/v1/cluster/watch", get(watch_map))
        .route("/v1/cluster/bootstrap", post(bootstrap))
        .route("/v1/identity", get(identity))
        .route("/v1/stats", get(stats))
        .route("/v1/groups", get(groups))
        .route("/v1/layout", get(get_layout))
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
pub async fn run<L>(
    node: Arc<Node>,
    listener: L,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let addr = listener.local_addr()?;
    tracing::info!(node = %node.id, ?addr, "storage node serving");
    axum::serve(listener, router(node))
        .with_graceful_shutdown(shutdown)
        .await
}
