//! The admin HTTP API (JSON, bearer token): cluster status, layout, keys,
//! buckets. The `cairn` CLI is its client.
//!
//! Every non-S3 route of the gateway lives under `/_cairn/`: a bucket name
//! cannot start with `_`, so no S3 request (path-style `/BUCKET/KEY`) is
//! ever taken for one of them — a bucket may well be called `admin`,
//! `health` or `metrics`.

use crate::s3::bucket as bucket_admin;
use crate::state::Gateway;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use cairn::codec::ErasureProfile;
use cairn::command::{Command, Outcome};
use cairn::id::NodeId;
use cairn::layout::{DEFAULT_METADATA_GROUPS, Layout, NodeInfo, PlacementTable};
use cairn::record::{AccessKeyRecord, BucketRecord, GroupId, Table};
use cairn::rpc::admin::*;
use cairn::rpc::{ListItem, MAX_SCAN_LIMIT, StagedLayout};
use cairn_node::table::client::MapSource;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// An admin API failure: a status and a JSON body.
pub struct AdminFailure(StatusCode, String, String);

impl AdminFailure {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self(status, code.to_owned(), message.into())
    }
}

impl IntoResponse for AdminFailure {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(AdminError {
                code: self.1,
                message: self.2,
            }),
        )
            .into_response()
    }
}

impl From<cairn_node::Error> for AdminFailure {
    fn from(e: cairn_node::Error) -> Self {
        crate::error::Error::from(e).into()
    }
}

impl From<crate::error::Error> for AdminFailure {
    fn from(e: crate::error::Error) -> Self {
        crate::request_log::note_cause(&e);
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            e.to_string(),
        )
    }
}

impl From<s3s::S3Error> for AdminFailure {
    fn from(e: s3s::S3Error) -> Self {
        let status = e.status_code().unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self::new(status, e.code().as_str(), e.message().unwrap_or_default())
    }
}

type AdminResult<T> = Result<T, AdminFailure>;

async fn require_token(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let ok = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| {
            let (a, b) = (t.as_bytes(), gw.config.admin_token.as_bytes());
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
        });
    if !ok {
        return AdminFailure::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "missing or wrong admin token",
        )
        .into_response();
    }
    next.run(req).await
}

/// The admin, health and metrics routes.
pub fn router(gw: Arc<Gateway>) -> Router {
    let admin = Router::new()
        .route("/_cairn/admin/v1/status", get(status))
        .route("/_cairn/admin/v1/layout", get(layout))
        .route("/_cairn/admin/v1/layout/assign", post(assign))
        .route("/_cairn/admin/v1/layout/remove", post(remove))
        .route("/_cairn/admin/v1/layout/apply", post(apply))
        .route("/_cairn/admin/v1/keys", get(list_keys).post(create_key))
        .route("/_cairn/admin/v1/keys/{id}", delete(delete_key))
        .route(
            "/_cairn/admin/v1/buckets",
            get(list_buckets).post(create_bucket),
        )
        .route("/_cairn/admin/v1/buckets/{name}", delete(delete_bucket))
        .route("/_cairn/admin/v1/buckets/{name}/allow", post(allow_bucket))
        .route_layer(middleware::from_fn_with_state(gw.clone(), require_token));
    Router::new()
        .merge(admin)
        .route("/_cairn/health", get(live))
        .route("/_cairn/health/live", get(live))
        .route("/_cairn/health/ready", get(ready))
        .route("/_cairn/metrics", get(metrics_text))
        .with_state(gw)
}

/// Liveness: the process serves HTTP. Says nothing of the cluster (a load
/// balancer or Kubernetes restarts a process that fails it).
async fn live() -> &'static str {
    "ok"
}

/// Readiness: this gateway has a layout and reaches a majority of its
/// storage nodes, so S3 requests can be served (a load balancer sends
/// traffic only to gateways that pass it). `503` with the reason otherwise.
async fn ready(State(gw): State<Arc<Gateway>>) -> Response {
    match gw.cluster.readiness().await {
        Ok(()) => "ready".into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

async fn metrics_text(State(gw): State<Arc<Gateway>>) -> String {
    gw.metrics.as_ref().map(|h| h.render()).unwrap_or_default()
}

/// A node as discovered from the seed list and the layout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiscoveredNode {
    /// Its id, when it answered.
    pub id: Option<NodeId>,
    /// Its RPC address.
    pub addr: String,
}

async fn discover(gw: &Gateway) -> Vec<DiscoveredNode> {
    let addrs = gw.cluster.known_addrs();
    let ids =
        futures::future::join_all(addrs.iter().map(|a| gw.cluster.client.rpc_identity(a))).await;
    addrs
        .into_iter()
        .zip(ids)
        .map(|(addr, id)| DiscoveredNode {
            id: id.ok().map(|i| i.node_id),
            addr,
        })
        .collect()
}

/// Sum of object counts and sizes over every bucket (a listing of each).
async fn object_totals(gw: &Gateway) -> crate::error::Result<(u64, u64)> {
    let buckets = crate::s3::bucket::all_buckets(gw)
        .await
        .map_err(crate::error::Error::S3)?;
    let (mut objects, mut bytes) = (0u64, 0u64);
    for b in buckets {
        let mut after: Option<String> = None;
        loop {
            let (items, more) = gw
                .meta
                .client
                .list_objects(b.id, "", None, after.as_deref(), MAX_SCAN_LIMIT)
                .await?;
            for item in items {
                if let ListItem::Object(e) = item {
                    objects += 1;
                    bytes += e.size;
                    after = Some(e.key);
                }
            }
            if !more {
                break;
            }
        }
    }
    Ok((objects, bytes))
}

async fn status(State(gw): State<Arc<Gateway>>) -> AdminResult<Json<ClusterStatus>> {
    gw.cluster.refresh().await;
    let layout = gw.cluster.map().map(|m| m.as_ref().clone());
    let addrs = gw.cluster.known_addrs();
    let answers = futures::future::join_all(addrs.iter().map(|a| async {
        let id = gw.cluster.client.rpc_identity(a).await;
        let stats = gw.cluster.client.rpc_stats(a).await;
        (id, stats)
    }))
    .await;
    let mut nodes = Vec::new();
    let mut shard_bytes = 0;
    for (addr, (id, stats)) in addrs.into_iter().zip(answers) {
        let in_layout = layout
            .as_ref()
            .and_then(|l| l.nodes.iter().find(|n| n.addr == addr));
        let stats = stats.ok();
        shard_bytes += stats.as_ref().map(|s| s.shard_bytes).unwrap_or(0);
        nodes.push(NodeStatus {
            id: id
                .as_ref()
                .ok()
                .map(|i| i.node_id)
                .or(in_layout.map(|n| n.id)),
            addr,
            zone: in_layout.map(|n| n.zone.clone()),
            capacity: in_layout.map(|n| n.capacity),
            up: id.is_ok(),
            in_layout: in_layout.is_some(),
            stats,
        });
    }
    let (objects, object_bytes) = if layout.is_some() {
        object_totals(&gw).await.unwrap_or((0, 0))
    } else {
        (0, 0)
    };
    Ok(Json(ClusterStatus {
        layout,
        nodes,
        objects,
        object_bytes,
        shard_bytes,
    }))
}

/// `GET /admin/v1/layout`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayoutView {
    /// The applied layout.
    pub current: Option<Layout>,
    /// Changes staged for the next apply.
    pub staged: StagedLayout,
    /// Nodes the gateway can see.
    pub nodes: Vec<DiscoveredNode>,
}

async fn read_staged(gw: &Gateway) -> StagedLayout {
    for addr in gw.cluster.known_addrs() {
        if let Ok(s) = gw.cluster.client.rpc_get_staged(&addr).await {
            return s.unwrap_or_default();
        }
    }
    StagedLayout::default()
}

async fn write_staged(gw: &Gateway, staged: &StagedLayout) -> AdminResult<()> {
    let addrs = gw.cluster.known_addrs();
    let results = futures::future::join_all(
        addrs
            .iter()
            .map(|a| gw.cluster.client.rpc_put_staged(a, staged)),
    )
    .await;
    if results.iter().any(|r| r.is_ok()) {
        Ok(())
    } else {
        Err(AdminFailure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "no node reachable",
        ))
    }
}

async fn layout(State(gw): State<Arc<Gateway>>) -> AdminResult<Json<LayoutView>> {
    gw.cluster.refresh().await;
    Ok(Json(LayoutView {
        current: gw.cluster.map().map(|m| m.as_ref().clone()),
        staged: read_staged(&gw).await,
        nodes: discover(&gw).await,
    }))
}

/// Stage a node's zone and capacity (shared with `--dev`).
pub async fn stage_assign(gw: &Gateway, req: AssignRequest) -> AdminResult<StagedLayout> {
    let nodes = discover(gw).await;
    let current = gw.cluster.map();
    let addr = nodes
        .iter()
        .find(|n| n.id == Some(req.node_id))
        .map(|n| n.addr.clone())
        .or_else(|| {
            current
                .as_ref()
                .and_then(|m| m.node(req.node_id).map(|n| n.addr.clone()))
        })
        .ok_or_else(|| {
            AdminFailure::new(
                StatusCode::NOT_FOUND,
                "NoSuchNode",
                format!("no node {} is reachable", req.node_id),
            )
        })?;
    let mut staged = read_staged(gw).await;
    staged.assign.retain(|n| n.id != req.node_id);
    staged.remove.retain(|n| *n != req.node_id);
    staged.assign.push(NodeInfo {
        id: req.node_id,
        addr,
        zone: req.zone,
        capacity: req.capacity,
    });
    write_staged(gw, &staged).await?;
    Ok(staged)
}

async fn assign(
    State(gw): State<Arc<Gateway>>,
    Json(req): Json<AssignRequest>,
) -> AdminResult<Json<StagedLayout>> {
    Ok(Json(stage_assign(&gw, req).await?))
}

/// `POST /admin/v1/layout/remove`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveRequest {
    /// The node to take out.
    pub node_id: NodeId,
}

async fn remove(
    State(gw): State<Arc<Gateway>>,
    Json(req): Json<RemoveRequest>,
) -> AdminResult<Json<StagedLayout>> {
    let mut staged = read_staged(&gw).await;
    staged.assign.retain(|n| n.id != req.node_id);
    if !staged.remove.contains(&req.node_id) {
        staged.remove.push(req.node_id);
    }
    write_staged(&gw, &staged).await?;
    Ok(Json(staged))
}

/// Apply the staged changes as the next cluster map version (shared with
/// `--dev`). The first map creates the cluster (its metadata groups start
/// on their voters); every later one is a compare-and-set on the version
/// it was computed from, so of two concurrent applies one wins and the
/// other is told of the conflict.
pub async fn apply_staged(gw: &Gateway, req: ApplyRequest) -> AdminResult<Layout> {
    gw.cluster.refresh().await;
    let current = gw.cluster.map().map(|m| m.as_ref().clone());
    let staged = read_staged(gw).await;
    let mut nodes: Vec<NodeInfo> = current
        .as_ref()
        .map(|l| l.nodes.clone())
        .unwrap_or_default();
    for n in &staged.assign {
        nodes.retain(|x| x.id != n.id);
        nodes.push(n.clone());
    }
    nodes.retain(|n| !staged.remove.contains(&n.id));
    let profile = req
        .profile
        .or(staged.profile)
        .map(|(k, m)| ErasureProfile {
            data_shards: k,
            parity_shards: m,
        })
        .or(current.as_ref().map(|l| l.profile))
        .unwrap_or_else(|| ErasureProfile::default_for(nodes.len()));
    let invalid = |e: cairn::Error| {
        AdminFailure::new(StatusCode::BAD_REQUEST, "InvalidLayout", e.to_string())
    };
    let mut layout = Layout {
        version: current.as_ref().map(|l| l.version).unwrap_or(0) + 1,
        profile,
        partition_bits: 0,
        groups: current
            .as_ref()
            .map(|l| l.groups.clone())
            .unwrap_or_default(),
        nodes,
        placement: Vec::new(),
    };
    // Only what must move moves: the plan starts from the current placement.
    layout.plan_placement(current.as_ref()).map_err(invalid)?;
    if current.is_some() && req.metadata_groups.is_some() {
        return Err(AdminFailure::new(
            StatusCode::BAD_REQUEST,
            "InvalidLayout",
            "the number of metadata groups is fixed when the cluster is created",
        ));
    }
    let Some(cur) = &current else {
        layout
            .assign_groups(DEFAULT_METADATA_GROUPS)
            .map_err(invalid)?;
        PlacementTable::build(&layout).map_err(invalid)?;
        cairn_node::table::client::create_cluster(&gw.cluster.client, layout.clone())
            .await
            .map_err(|e| {
                AdminFailure::new(StatusCode::CONFLICT, "ClusterNotCreated", e.to_string())
            })?;
        gw.cluster.adopt(layout.clone())?;
        gw.cluster.spawn_watchers();
        clear_staged(gw, layout.version).await?;
        return Ok(layout);
    };
    if let Some(v) = layout
        .groups
        .iter()
        .flat_map(|g| &g.voters)
        .find(|v| layout.node(**v).is_none())
    {
        return Err(AdminFailure::new(
            StatusCode::CONFLICT,
            "RebalanceNotAvailable",
            format!("node {v} holds metadata; moving metadata groups is not built yet"),
        ));
    }
    let table = PlacementTable::build(&layout).map_err(invalid)?;
    let old = PlacementTable::build(cur).expect("the current layout is valid");
    let moves =
        (0..table.partition_count()).any(|p| table.partition_nodes(p) != old.partition_nodes(p));
    if (moves || layout.profile != cur.profile) && !req.force {
        return Err(AdminFailure::new(
            StatusCode::CONFLICT,
            "RebalanceNotAvailable",
            "this change moves data between nodes, and the rebalancer is not built yet; \
             existing objects would become unreadable (pass force to apply anyway)",
        ));
    }
    let outcome = gw
        .meta
        .system(Command::SetClusterMap {
            expected: cur.version,
            layout: layout.clone(),
        })
        .await?;
    match outcome {
        Outcome::Ok => {}
        Outcome::ClusterMapConflict { current } => {
            return Err(AdminFailure::new(
                StatusCode::CONFLICT,
                "LayoutConflict",
                format!(
                    "the layout changed meanwhile (it is at version {current}, this change was \
                     computed from {}); look at it again and re-apply",
                    cur.version
                ),
            ));
        }
        other => {
            return Err(AdminFailure::new(
                StatusCode::BAD_REQUEST,
                "InvalidLayout",
                format!("{other:?}"),
            ));
        }
    }
    gw.cluster.adopt(layout.clone())?;
    gw.cluster.spawn_watchers();
    clear_staged(gw, layout.version).await?;
    Ok(layout)
}

async fn clear_staged(gw: &Gateway, version: u64) -> AdminResult<()> {
    write_staged(
        gw,
        &StagedLayout {
            base_version: version,
            ..Default::default()
        },
    )
    .await
}

async fn apply(
    State(gw): State<Arc<Gateway>>,
    Json(req): Json<ApplyRequest>,
) -> AdminResult<Json<Layout>> {
    Ok(Json(apply_staged(&gw, req).await?))
}

/// Largest number of access keys listed.
const MAX_KEYS_LISTED: usize = 100_000;

async fn list_keys(State(gw): State<Arc<Gateway>>) -> AdminResult<Json<Vec<KeyInfo>>> {
    let (keys, _) = gw
        .meta
        .client
        .scan_all::<AccessKeyRecord>(
            GroupId::SYSTEM,
            Table::AccessKeys,
            "",
            "",
            None,
            MAX_KEYS_LISTED,
        )
        .await?;
    Ok(Json(
        keys.into_iter()
            .map(|(_, k)| KeyInfo {
                access_key_id: k.access_key_id,
                name: k.name,
                created_ms: k.created_ms,
            })
            .collect(),
    ))
}

/// Create an access key (shared with `--dev`).
pub async fn create_key_record(gw: &Gateway, name: &str) -> crate::error::Result<CreatedKey> {
    let id = format!("GK{}", hex::encode_upper(rand::random::<[u8; 9]>()));
    let secret = hex::encode(rand::random::<[u8; 24]>());
    let record = AccessKeyRecord {
        access_key_id: id.clone(),
        secret_access_key: secret.clone(),
        name: name.to_owned(),
        created_ms: crate::s3::now_ms(),
    };
    gw.meta.system(Command::PutAccessKey { record }).await?;
    Ok(CreatedKey {
        access_key_id: id,
        secret_access_key: secret,
    })
}

async fn create_key(
    State(gw): State<Arc<Gateway>>,
    Json(req): Json<CreateKeyRequest>,
) -> AdminResult<Json<CreatedKey>> {
    if req.name.is_empty() || req.name.len() > 128 {
        return Err(AdminFailure::new(
            StatusCode::BAD_REQUEST,
            "InvalidName",
            "key names are 1..=128 characters",
        ));
    }
    Ok(Json(create_key_record(&gw, &req.name).await?))
}

fn no_such_key(id: &str) -> AdminFailure {
    AdminFailure::new(
        StatusCode::NOT_FOUND,
        "NoSuchKey",
        format!("no access key {id}"),
    )
}

fn no_such_bucket() -> AdminFailure {
    AdminFailure::new(
        StatusCode::NOT_FOUND,
        "NoSuchBucket",
        "The specified bucket does not exist",
    )
}

async fn delete_key(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> AdminResult<StatusCode> {
    match gw
        .meta
        .system(Command::DeleteAccessKey {
            access_key_id: id.clone(),
        })
        .await?
    {
        Outcome::Ok => Ok(StatusCode::NO_CONTENT),
        _ => Err(no_such_key(&id)),
    }
}

fn bucket_info(b: BucketRecord) -> BucketInfo {
    BucketInfo {
        name: b.name,
        owner: b.owner,
        created_ms: b.created_ms,
        allowed_keys: b.allowed_keys,
    }
}

async fn list_buckets(State(gw): State<Arc<Gateway>>) -> AdminResult<Json<Vec<BucketInfo>>> {
    Ok(Json(
        crate::s3::bucket::all_buckets(&gw)
            .await?
            .into_iter()
            .map(bucket_info)
            .collect(),
    ))
}

async fn create_bucket(
    State(gw): State<Arc<Gateway>>,
    Json(req): Json<CreateBucketRequest>,
) -> AdminResult<StatusCode> {
    if !s3s::path::check_bucket_name(&req.name) {
        return Err(AdminFailure::new(
            StatusCode::BAD_REQUEST,
            "InvalidBucketName",
            "The specified bucket is not valid.",
        ));
    }
    let owner = req
        .owner
        .unwrap_or_else(|| gw.config.root_access_key.clone());
    bucket_admin::create_owned(&gw, &req.name, &owner).await?;
    Ok(StatusCode::CREATED)
}

async fn delete_bucket(
    State(gw): State<Arc<Gateway>>,
    Path(name): Path<String>,
) -> AdminResult<StatusCode> {
    let bucket = gw.meta.bucket(&name).await?.ok_or_else(no_such_bucket)?;
    bucket_admin::delete_checked(&gw, &bucket).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn allow_bucket(
    State(gw): State<Arc<Gateway>>,
    Path(name): Path<String>,
    Json(req): Json<AllowRequest>,
) -> AdminResult<Json<BucketInfo>> {
    if gw.is_root(&req.access_key_id) {
        // The root key may use every bucket already.
        let bucket = gw.meta.bucket(&name).await?.ok_or_else(no_such_bucket)?;
        return Ok(Json(bucket_info(bucket)));
    }
    match gw
        .meta
        .system(Command::AllowKey {
            name: name.clone(),
            access_key_id: req.access_key_id.clone(),
        })
        .await?
    {
        Outcome::Ok => {}
        Outcome::NoSuchBucket => return Err(no_such_bucket()),
        _ => return Err(no_such_key(&req.access_key_id)),
    }
    let bucket = gw.meta.bucket(&name).await?.ok_or_else(no_such_bucket)?;
    Ok(Json(bucket_info(bucket)))
}
