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
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use cairn::codec::ErasureProfile;
use cairn::command::{Command, Outcome};
use cairn::id::NodeId;
use cairn::layout::{DEFAULT_METADATA_GROUPS, Layout, NodeInfo, PlacementTable};
use cairn::record::{AccessKeyRecord, BucketRecord, BucketStats, GroupId, GroupStats, Table, keys};
use cairn::rpc::admin::*;
use cairn::rpc::{Liveness, PeerView, RepairReport, RepairThrottle, StagedLayout};
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
        .route("/_cairn/admin/v1/nodes", get(list_nodes))
        .route("/_cairn/admin/v1/nodes/{id}/{action}", post(node_out_in))
        .route("/_cairn/admin/v1/repair", get(repair_status))
        .route("/_cairn/admin/v1/repair/throttle", post(repair_throttle))
        .route("/_cairn/admin/v1/scrub", get(scrub_status))
        .route("/_cairn/admin/v1/scrub/{action}", post(scrub_action))
        .route("/_cairn/admin/v1/keys", get(list_keys).post(create_key))
        .route("/_cairn/admin/v1/keys/{id}", delete(delete_key))
        .route(
            "/_cairn/admin/v1/buckets",
            get(list_buckets).post(create_bucket),
        )
        .route(
            "/_cairn/admin/v1/buckets/{name}",
            get(bucket_usage).delete(delete_bucket),
        )
        .route("/_cairn/admin/v1/buckets/{name}/quota", put(set_quota))
        .route("/_cairn/admin/v1/gc", get(gc_status))
        .route("/_cairn/admin/v1/gc/run", post(gc_run))
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
    let mut addrs = gw.cluster.known_addrs();
    // Nodes waiting to be added, as the known nodes heard of them.
    let heard =
        futures::future::join_all(addrs.iter().map(|a| gw.cluster.client.rpc_candidates(a))).await;
    for c in heard.into_iter().flatten().flatten() {
        if !addrs.contains(&c.addr) {
            addrs.push(c.addr);
        }
    }
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

/// The data groups' counters, summed (one read per group); and how many
/// groups did not answer.
async fn group_totals(gw: &Gateway, groups: u32) -> (GroupStats, u32) {
    let reads = (1..=groups).map(|g| async move {
        gw.meta
            .client
            .get::<GroupStats>(GroupId(g), &keys::group_stats())
            .await
    });
    let mut total = GroupStats::default();
    let mut unread = 0;
    for r in futures::future::join_all(reads).await {
        match r {
            Ok(s) => {
                let s = s.unwrap_or_default();
                total.objects += s.objects;
                total.bytes += s.bytes;
                total.uploads += s.uploads;
                total.upload_bytes += s.upload_bytes;
                total.chunks += s.chunks;
                total.stored_bytes += s.stored_bytes;
                total.unreferenced_chunks += s.unreferenced_chunks;
                total.unreferenced_bytes += s.unreferenced_bytes;
            }
            Err(_) => unread += 1,
        }
    }
    (total, unread)
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
    let (totals, groups_unread) = match &layout {
        Some(l) => group_totals(&gw, l.metadata_groups()).await,
        None => (GroupStats::default(), 0),
    };
    Ok(Json(ClusterStatus {
        layout,
        nodes,
        objects: totals.objects,
        object_bytes: totals.bytes,
        uploads: totals.uploads,
        upload_bytes: totals.upload_bytes,
        chunks: totals.chunks,
        stored_bytes: totals.stored_bytes,
        garbage_chunks: totals.unreferenced_chunks,
        garbage_bytes: totals.unreferenced_bytes,
        shard_bytes,
        groups_unread,
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
pub async fn apply_staged(gw: &Gateway, req: ApplyRequest) -> AdminResult<PlannedLayout> {
    gw.cluster.refresh().await;
    let current = gw.cluster.map().map(|m| m.as_ref().clone());
    let staged = read_staged(gw).await;
    let invalid = |e: cairn::Error| {
        AdminFailure::new(StatusCode::BAD_REQUEST, "InvalidLayout", e.to_string())
    };
    if current.is_some() && req.metadata_groups.is_some() {
        return Err(AdminFailure::new(
            StatusCode::BAD_REQUEST,
            "InvalidLayout",
            "the number of metadata groups is fixed when the cluster is created",
        ));
    }
    let Some(cur) = current else {
        let mut nodes: Vec<NodeInfo> = staged.assign.clone();
        nodes.retain(|n| !staged.remove.contains(&n.id));
        let profile = req
            .profile
            .or(staged.profile)
            .map(|(k, m)| ErasureProfile {
                data_shards: k,
                parity_shards: m,
            })
            .unwrap_or_else(|| ErasureProfile::default_for(nodes.len()));
        let layout = Layout::first(
            nodes,
            profile,
            req.metadata_groups.unwrap_or(DEFAULT_METADATA_GROUPS),
        )
        .map_err(invalid)?;
        PlacementTable::build(&layout).map_err(invalid)?;
        let planned = PlannedLayout {
            partitions: layout.placement.len() as u64,
            partitions_changed: layout.placement.len() as u64,
            shards_moved_slots: 0,
            bytes_to_move: 0,
            applied: !req.dry_run,
            layout: layout.clone(),
        };
        if req.dry_run {
            return Ok(planned);
        }
        cairn_node::table::client::create_cluster(&gw.cluster.client, layout.clone())
            .await
            .map_err(|e| {
                AdminFailure::new(StatusCode::CONFLICT, "ClusterNotCreated", e.to_string())
            })?;
        gw.cluster.adopt(layout.clone())?;
        gw.cluster.spawn_watchers();
        clear_staged(gw, layout.version).await?;
        return Ok(planned);
    };
    if let Some((k, m)) = req.profile.or(staged.profile)
        && (k, m) != (cur.profile.data_shards, cur.profile.parity_shards)
    {
        return Err(AdminFailure::new(
            StatusCode::CONFLICT,
            "ProfileChangeNotAvailable",
            "the erasure profile of a cluster is fixed when it is created (chunks are not \
             re-encoded)",
        ));
    }
    // Added and changed nodes join the plan; removed ones drain: they hold
    // nothing in the new plan and leave once their data has moved.
    let layout = cur
        .next(|l| {
            for n in &staged.assign {
                l.leaving.remove(&n.id);
                l.nodes.retain(|x| x.id != n.id);
                l.nodes.push(n.clone());
            }
            for id in &staged.remove {
                if l.node(*id).is_some() {
                    l.leaving.insert(*id);
                }
            }
            let previous = l.clone();
            l.plan_placement(Some(&previous))?;
            l.replace_voters()
        })
        .map_err(invalid)?;
    let planned = plan_figures(gw, &cur, layout, !req.dry_run).await;
    if req.dry_run {
        return Ok(planned);
    }
    let outcome = gw
        .meta
        .system(Command::SetClusterMap {
            expected: cur.version,
            layout: planned.layout.clone(),
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
    gw.cluster.adopt(planned.layout.clone())?;
    gw.cluster.spawn_watchers();
    clear_staged(gw, planned.layout.version).await?;
    Ok(planned)
}

/// Attempts of a single-node map change (out, in) that meets concurrent
/// changes.
const MAX_MAP_CHANGE_ATTEMPTS: usize = 5;

/// What moving from `cur` to `next` moves.
async fn plan_figures(gw: &Gateway, cur: &Layout, next: Layout, applied: bool) -> PlannedLayout {
    let before = cur.effective_placement().unwrap_or_default();
    let after = next.effective_placement().unwrap_or_default();
    let factor = after.len() / before.len().max(1);
    let partitions_changed = after
        .iter()
        .enumerate()
        .filter(|(p, row)| before.get(p / factor.max(1)) != Some(row))
        .count() as u64;
    let moved = cairn::placement::moved_slots(&before, &after);
    let stats = futures::future::join_all(
        cur.nodes
            .iter()
            .map(|n| gw.cluster.client.rpc_stats(&n.addr)),
    )
    .await;
    let bytes: u64 = stats.iter().flatten().map(|s| s.shard_bytes).sum();
    let slots = (before.len() * cur.profile.total_shards()).max(1) as u64;
    PlannedLayout {
        partitions: after.len() as u64,
        partitions_changed,
        shards_moved_slots: moved,
        bytes_to_move: bytes / slots * moved,
        applied,
        layout: next,
    }
}

/// `GET /admin/v1/nodes`: every node of the map with its state as the
/// nodes' failure detectors and this gateway see it.
async fn list_nodes(State(gw): State<Arc<Gateway>>) -> AdminResult<Json<Vec<NodeEntry>>> {
    gw.cluster.refresh().await;
    let Some(map) = gw.cluster.map() else {
        return Ok(Json(Vec::new()));
    };
    let client = &gw.cluster.client;
    let answers =
        futures::future::join_all(map.nodes.iter().map(|n| client.rpc_peers(&n.addr))).await;
    let mut out = Vec::new();
    for (i, n) in map.nodes.iter().enumerate() {
        let reachable = answers[i].is_ok();
        let views: Vec<&PeerView> = answers
            .iter()
            .flatten()
            .flat_map(|v| v.iter().filter(|p| p.node == n.id))
            .collect();
        let own = answers[i]
            .as_ref()
            .ok()
            .and_then(|v| v.iter().find(|p| p.node == n.id));
        let down_since = views
            .iter()
            .filter_map(|p| match p.liveness {
                Liveness::Down { since_ms } => Some(since_ms),
                _ => None,
            })
            .min();
        let suspect = views.iter().any(|p| p.liveness == Liveness::Suspect);
        let state = if map.leaving.contains(&n.id) {
            "leaving"
        } else if map.out.contains_key(&n.id) {
            "out"
        } else if !reachable && down_since.is_some() {
            "down"
        } else if !reachable || suspect {
            "suspect"
        } else {
            "up"
        };
        let best = own.or_else(|| views.iter().copied().max_by_key(|p| p.used_bytes));
        out.push(NodeEntry {
            id: n.id,
            addr: n.addr.clone(),
            zone: n.zone.clone(),
            capacity: n.capacity,
            state: state.into(),
            reachable,
            down_since_ms: if reachable { None } else { down_since },
            out: map.out.get(&n.id).copied(),
            used_bytes: best.map(|p| p.used_bytes).unwrap_or(0),
            total_bytes: best.map(|p| p.total_bytes).unwrap_or(0),
            voter_of: map
                .groups
                .iter()
                .filter(|g| g.voters.contains(&n.id))
                .count() as u32,
        });
    }
    Ok(Json(out))
}

/// `POST /admin/v1/nodes/{id}/out` and `/in`: mark a node out (its shards
/// are rebuilt on the nodes that take its slots, its groups get other
/// voters) or take it back in.
async fn node_out_in(
    State(gw): State<Arc<Gateway>>,
    Path((id, action)): Path<(String, String)>,
) -> AdminResult<Json<PlannedLayout>> {
    let id: NodeId = id.parse().map_err(|_| {
        AdminFailure::new(StatusCode::BAD_REQUEST, "InvalidArgument", "bad node id")
    })?;
    let out = match action.as_str() {
        "out" => true,
        "in" => false,
        _ => {
            return Err(AdminFailure::new(
                StatusCode::NOT_FOUND,
                "NoSuchAction",
                "out or in",
            ));
        }
    };
    // The steward changes the map too (outs, ins, retirements): on a
    // conflict the change is computed again from the newer map.
    let mut conflict = String::new();
    for _ in 0..MAX_MAP_CHANGE_ATTEMPTS {
        gw.cluster.refresh().await;
        let cur = gw.cluster.map().ok_or_else(|| {
            AdminFailure::new(StatusCode::CONFLICT, "NoLayout", "no layout applied yet")
        })?;
        if cur.node(id).is_none() {
            return Err(AdminFailure::new(
                StatusCode::NOT_FOUND,
                "NoSuchNode",
                format!("node {id} is not in the layout"),
            ));
        }
        let next = cur
            .next(|l| {
                if out {
                    l.out.insert(
                        id,
                        cairn::layout::OutMark {
                            auto: false,
                            since_ms: cairn::clock::now_ms(),
                        },
                    );
                    l.replace_voters()
                } else {
                    l.out.remove(&id);
                    Ok(())
                }
            })
            .map_err(|e| AdminFailure::new(StatusCode::CONFLICT, "InvalidLayout", e.to_string()))?;
        let planned = plan_figures(&gw, &cur, next, true).await;
        match gw
            .meta
            .system(Command::SetClusterMap {
                expected: cur.version,
                layout: planned.layout.clone(),
            })
            .await?
        {
            Outcome::Ok => {
                gw.cluster.adopt(planned.layout.clone())?;
                return Ok(Json(planned));
            }
            Outcome::ClusterMapConflict { current } => {
                conflict = format!("the layout moved to version {current} meanwhile");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => {
                return Err(AdminFailure::new(
                    StatusCode::CONFLICT,
                    "InvalidLayout",
                    format!("{other:?}"),
                ));
            }
        }
    }
    Err(AdminFailure::new(
        StatusCode::CONFLICT,
        "LayoutConflict",
        format!("{conflict}; try again"),
    ))
}

/// `GET /admin/v1/repair`.
async fn repair_status(State(gw): State<Arc<Gateway>>) -> AdminResult<Json<RepairStatus>> {
    gw.cluster.refresh().await;
    let map = gw.cluster.map().ok_or_else(|| {
        AdminFailure::new(StatusCode::CONFLICT, "NoLayout", "no layout applied yet")
    })?;
    Ok(Json(aggregate_repair(&gw, &map).await))
}

/// Every node's worker report, summed. Counts only ever come from
/// complete scans; an owner that has not finished one of the placement in
/// force, or does not answer, adds one to `degraded_chunks` (it may hold
/// or lack anything), so the total is 0 only when every owner has counted
/// and found nothing short.
pub async fn aggregate_repair(gw: &Gateway, map: &Layout) -> RepairStatus {
    let owners: std::collections::BTreeSet<NodeId> = map
        .effective_placement()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect();
    let client = &gw.cluster.client;
    let reports = futures::future::join_all(
        map.nodes
            .iter()
            .map(|n| async move { (n.id, client.rpc_repair_report(&n.addr).await) }),
    )
    .await;
    let mut status = RepairStatus {
        state: String::new(),
        degraded_chunks: 0,
        by_missing_shards: Default::default(),
        misplaced_shards: 0,
        bytes_remaining: 0,
        bytes_done: 0,
        rate_bytes_per_s: 0.0,
        eta_s: None,
        unrecoverable_chunks: 0,
        migrating: !map.history.is_empty(),
        voter_changes_pending: 0,
        placement_version: map.placement_version,
        unreachable: Vec::new(),
        nodes: Vec::new(),
    };
    let mut uncounted = 0u64;
    let mut busy = false;
    for (id, r) in reports {
        let owner = owners.contains(&id);
        match r {
            Ok(r) => {
                if owner && r.counted_at != map.placement_version {
                    uncounted += 1;
                }
                for (missing, chunks) in &r.by_missing_shards {
                    *status
                        .by_missing_shards
                        .entry(missing.to_string())
                        .or_insert(0) += chunks;
                    status.degraded_chunks += chunks;
                }
                busy |= r.shards_to_fix > 0 || r.state == "repairing";
                status.misplaced_shards += r.misplaced_shards;
                status.bytes_remaining += r.bytes_remaining;
                status.bytes_done += r.bytes_done;
                status.rate_bytes_per_s += r.rate_bytes_per_s;
                status.unrecoverable_chunks += r.unrecoverable_chunks;
                status.voter_changes_pending += r.voter_changes_pending;
                status.nodes.push((id, r));
            }
            Err(_) if owner && !map.out.contains_key(&id) => {
                uncounted += 1;
                status.unreachable.push(id);
            }
            Err(_) => {}
        }
    }
    status.degraded_chunks += uncounted;
    status.state = if uncounted > 0 {
        "counting"
    } else if status.degraded_chunks > 0
        || busy
        || status.migrating
        || status.voter_changes_pending > 0
    {
        "repairing"
    } else {
        "verified"
    }
    .into();
    status.eta_s = (status.rate_bytes_per_s > 0.0 && status.bytes_remaining > 0)
        .then(|| status.bytes_remaining as f64 / status.rate_bytes_per_s);
    status
}

/// `GET /admin/v1/scrub`.
async fn scrub_status(State(gw): State<Arc<Gateway>>) -> AdminResult<Json<ScrubStatus>> {
    scrub_on_all(&gw, None).await
}

/// `POST /admin/v1/scrub/start` or `/pause`: on every node of the map.
async fn scrub_action(
    State(gw): State<Arc<Gateway>>,
    Path(action): Path<String>,
) -> AdminResult<Json<ScrubStatus>> {
    if action != "start" && action != "pause" {
        return Err(AdminFailure::new(
            StatusCode::NOT_FOUND,
            "NoSuchAction",
            "start or pause",
        ));
    }
    scrub_on_all(&gw, Some(&action)).await
}

/// Answers of the nodes of a map.
type NodeAnswers<T> = (Arc<Layout>, Vec<(NodeId, cairn_node::Result<T>)>);

/// Ask every node of the current map at once (`NoLayout` without one);
/// the map and each node's answer.
async fn ask_every_node<T, Fut>(
    gw: &Gateway,
    ask: impl Fn(cairn_node::client::NodeClient, String) -> Fut,
) -> AdminResult<NodeAnswers<T>>
where
    Fut: std::future::Future<Output = cairn_node::Result<T>>,
{
    gw.cluster.refresh().await;
    let map = gw.cluster.map().ok_or_else(|| {
        AdminFailure::new(StatusCode::CONFLICT, "NoLayout", "no layout applied yet")
    })?;
    let asks = map.nodes.iter().map(|n| {
        let answer = ask(gw.cluster.client.clone(), n.addr.clone());
        async move { (n.id, answer.await) }
    });
    let answers = futures::future::join_all(asks).await;
    Ok((map, answers))
}

async fn scrub_on_all(gw: &Gateway, action: Option<&str>) -> AdminResult<Json<ScrubStatus>> {
    let (map, answers) = ask_every_node(gw, |client, addr| async move {
        match action {
            Some(a) => client.rpc_scrub(&addr, a).await,
            None => client.rpc_scrub_report(&addr).await,
        }
    })
    .await?;
    let mut status = ScrubStatus {
        state: "idle".into(),
        shards_checked: 0,
        corrupt_found: 0,
        repaired: 0,
        waiting_repair: 0,
        passes: 0,
        unreachable: Vec::new(),
        nodes: Vec::new(),
    };
    let (mut running, mut paused) = (false, false);
    for (id, r) in answers {
        match r {
            Ok(r) => {
                running |= r.state == "running";
                paused |= r.state == "paused";
                status.shards_checked += r.shards_checked;
                status.corrupt_found += r.corrupt_found;
                status.repaired += r.repaired;
                status.waiting_repair += r.waiting_repair;
                status.passes += r.passes;
                status.nodes.push((id, r));
            }
            Err(_) if !map.out.contains_key(&id) => status.unreachable.push(id),
            Err(_) => {}
        }
    }
    status.state = if running {
        "running"
    } else if paused {
        "paused"
    } else {
        "idle"
    }
    .into();
    Ok(Json(status))
}

/// `POST /admin/v1/repair/throttle`: every node's worker limits.
async fn repair_throttle(
    State(gw): State<Arc<Gateway>>,
    Json(t): Json<RepairThrottle>,
) -> AdminResult<Json<Vec<(NodeId, RepairReport)>>> {
    let map = gw.cluster.map().ok_or_else(|| {
        AdminFailure::new(StatusCode::CONFLICT, "NoLayout", "no layout applied yet")
    })?;
    let client = &gw.cluster.client;
    let answers = futures::future::join_all(
        map.nodes
            .iter()
            .map(|n| async move { (n.id, client.rpc_repair_throttle(&n.addr, &t).await) }),
    )
    .await;
    Ok(Json(
        answers
            .into_iter()
            .filter_map(|(id, r)| Some((id, r.ok()?)))
            .collect(),
    ))
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
) -> AdminResult<Json<PlannedLayout>> {
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
    bucket_admin::create_owned(&gw, &req.name, &owner, false).await?;
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

/// `GET /admin/v1/buckets/{name}`.
async fn bucket_usage(
    State(gw): State<Arc<Gateway>>,
    Path(name): Path<String>,
) -> AdminResult<Json<BucketUsage>> {
    let bucket = gw.meta.bucket(&name).await?.ok_or_else(no_such_bucket)?;
    let group = gw.meta.client.bucket_group(bucket.id)?;
    let stats: BucketStats = gw
        .meta
        .client
        .get(group, &keys::bucket_stats(bucket.id))
        .await?
        .unwrap_or_default();
    Ok(Json(BucketUsage {
        name: bucket.name,
        owner: bucket.owner,
        objects: stats.objects,
        bytes: stats.bytes,
        uploads: stats.uploads,
        upload_bytes: stats.upload_bytes,
        max_bytes: stats.max_bytes,
        max_objects: stats.max_objects,
    }))
}

/// `PUT /admin/v1/buckets/{name}/quota`.
async fn set_quota(
    State(gw): State<Arc<Gateway>>,
    Path(name): Path<String>,
    Json(req): Json<QuotaRequest>,
) -> AdminResult<Json<BucketUsage>> {
    let bucket = gw.meta.bucket(&name).await?.ok_or_else(no_such_bucket)?;
    let set = Command::SetQuota {
        bucket: bucket.id,
        max_bytes: req.max_bytes,
        max_objects: req.max_objects,
    };
    match gw.meta.data(set).await? {
        Outcome::Ok => bucket_usage(State(gw), Path(name)).await,
        _ => Err(no_such_bucket()),
    }
}

/// `GET /admin/v1/gc`.
async fn gc_status(State(gw): State<Arc<Gateway>>) -> AdminResult<Json<GcStatus>> {
    gc_on_all(&gw, false).await
}

/// `POST /admin/v1/gc/run`: a pass on every node of the map.
async fn gc_run(State(gw): State<Arc<Gateway>>) -> AdminResult<Json<GcStatus>> {
    gc_on_all(&gw, true).await
}

async fn gc_on_all(gw: &Gateway, run: bool) -> AdminResult<Json<GcStatus>> {
    let (_, answers) = ask_every_node(gw, |client, addr| async move {
        if run {
            client.rpc_gc_run(&addr).await
        } else {
            client.rpc_gc_report(&addr).await
        }
    })
    .await?;
    let mut status = GcStatus {
        state: "idle".into(),
        ..GcStatus::default()
    };
    for (id, r) in answers {
        match r {
            Ok(r) => {
                if r.state == "collecting" {
                    status.state = "collecting".into();
                }
                status.grace_s = status.grace_s.max(r.grace_s);
                status.chunks_deleted += r.chunks_deleted;
                status.orphans_deleted += r.orphans_deleted;
                status.bytes_freed += r.bytes_freed;
                status.waiting_chunks += r.waiting_chunks;
                status.waiting_bytes += r.waiting_bytes;
                status.pending_drops += r.pending_drops;
                status.nodes.push((id, r));
            }
            Err(_) => status.unreachable.push(id),
        }
    }
    Ok(Json(status))
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
