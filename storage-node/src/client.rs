//! The node RPC client, used by gateways and by nodes talking to each other.
//! Methods that cross the network are named `rpc_<verb>`.

use crate::auth;
use crate::error::{Error, Result};
use bytes::Bytes;
use cairn::codec::ShardGeometry;
use cairn::id::{ChunkId, shard_checksum};
use cairn::layout::Layout;
use cairn::record;
use cairn::rpc::{
    BootstrapReply, CommandReply, ListShardsReply, ListShardsRequest, NodeIdentity, NodeStats,
    PeerView, ReadReply, RepairReport, RepairThrottle, SHARD_CHECKSUM_HEADER,
    SHARD_GEOMETRY_HEADER, StagedLayout, SystemChanges,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Time allowed to open a connection to a node.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for one shard transfer (a shard is at most a few MiB).
pub const SHARD_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for one control request (metadata, identity, stats).
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept per node.
pub const POOL_IDLE_PER_HOST: usize = 32;
/// Longest silence allowed while waiting for a node's answer or body bytes.
/// A node that accepts connections but stops answering (hung, or cut off)
/// is given up on after this long rather than after a whole transfer timeout.
pub const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a node that failed to connect or went silent is skipped by data
/// and metadata requests before it is tried again. Probes (identity, stats,
/// layout) still reach it, and the first success clears it.
pub const SUSPECT_FOR: Duration = Duration::from_secs(10);

/// Time allowed for a cluster-map watch: the node's own wait plus a margin.
pub const WATCH_TIMEOUT: Duration =
    Duration::from_secs(crate::table::groups::MAP_WATCH_WAIT.as_secs() + 5);
/// Time allowed for a metadata command or read: the node's own wait for a
/// commit (or a leadership check) plus a margin.
pub const META_RPC_TIMEOUT: Duration = Duration::from_secs(4);
/// Time allowed for a system-change watch (the node waits half a second).
pub const SYSTEM_CHANGES_TIMEOUT: Duration = Duration::from_secs(4);

/// A signing HTTP client for the node RPC. Cheap to clone.
#[derive(Clone)]
pub struct NodeClient {
    http: reqwest::Client,
    // For long polls (watches): no idle-read timeout, since the node stays
    // silent until it has news.
    watch_http: reqwest::Client,
    secret: Arc<str>,
    suspects: Arc<Mutex<HashMap<String, Instant>>>,
}

/// Whether a request honours the suspect list (data and metadata) or goes
/// through regardless (probes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Work,
    Probe,
}

impl NodeClient {
    /// A client that signs with `cluster_secret`.
    pub fn new(cluster_secret: &str) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
            .tcp_nodelay(true)
            .read_timeout(READ_IDLE_TIMEOUT)
            .build()
            .expect("reqwest client builds with static settings");
        let watch_http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            .expect("reqwest client builds with static settings");
        Self {
            http,
            watch_http,
            secret: cluster_secret.into(),
            suspects: Arc::default(),
        }
    }

    /// Whether `addr` failed recently and is being skipped.
    pub fn is_suspected(&self, addr: &str) -> bool {
        let mut suspects = self.suspects.lock().expect("suspects lock poisoned");
        match suspects.get(addr) {
            Some(until) if Instant::now() < *until => true,
            Some(_) => {
                suspects.remove(addr);
                false
            }
            None => false,
        }
    }

    fn note(&self, addr: &str, outcome: std::result::Result<(), &reqwest::Error>) {
        let mut suspects = self.suspects.lock().expect("suspects lock poisoned");
        match outcome {
            Ok(()) => {
                suspects.remove(addr);
            }
            Err(e) if e.is_connect() || e.is_timeout() => {
                if suspects
                    .insert(addr.to_owned(), Instant::now() + SUSPECT_FOR)
                    .is_none()
                {
                    tracing::warn!(%addr, error = %e, "node unreachable; skipping it for a while");
                    metrics::counter!("cairn_rpc_nodes_suspected_total").increment(1);
                }
            }
            Err(_) => {}
        }
    }

    async fn send_kind(
        &self,
        addr: &str,
        builder: reqwest::RequestBuilder,
        timeout: Duration,
        kind: Kind,
    ) -> Result<reqwest::Response> {
        let rpc_err = |e: reqwest::Error| Error::Rpc {
            addr: addr.to_owned(),
            reason: e.to_string(),
        };
        if kind == Kind::Work && self.is_suspected(addr) {
            return Err(Error::Rpc {
                addr: addr.to_owned(),
                reason: "skipped: unreachable moments ago".into(),
            });
        }
        // The request goes out on the client that built it (plain or long-poll).
        let (http, req) = builder.timeout(timeout).build_split();
        let mut req = req.map_err(rpc_err)?;
        auth::sign_request(&self.secret, &mut req)?;
        match http.execute(req).await {
            Ok(resp) => {
                self.note(addr, Ok(()));
                Ok(resp)
            }
            Err(e) => {
                self.note(addr, Err(&e));
                Err(rpc_err(e))
            }
        }
    }

    async fn send(
        &self,
        addr: &str,
        builder: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<reqwest::Response> {
        self.send_kind(addr, builder, timeout, Kind::Work).await
    }

    async fn ok(addr: &str, resp: reqwest::Response) -> Result<reqwest::Response> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let message = resp.text().await.unwrap_or_default();
        Err(Error::RpcStatus {
            addr: addr.to_owned(),
            status: status.as_u16(),
            message,
        })
    }

    async fn body(&self, addr: &str, resp: reqwest::Response) -> Result<Bytes> {
        match Self::ok(addr, resp).await?.bytes().await {
            Ok(b) => Ok(b),
            Err(e) => {
                self.note(addr, Err(&e));
                Err(Error::Rpc {
                    addr: addr.to_owned(),
                    reason: e.to_string(),
                })
            }
        }
    }

    async fn control<T: serde::de::DeserializeOwned>(
        &self,
        addr: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        what: &'static str,
        kind: Kind,
    ) -> Result<T> {
        let mut b = self.http.request(method, format!("http://{addr}{path}"));
        if let Some(body) = body {
            b = b.body(body);
        }
        let resp = self.send_kind(addr, b, CONTROL_TIMEOUT, kind).await?;
        let bytes = self.body(addr, resp).await?;
        Ok(record::decode(what, &bytes)?)
    }

    fn shard_url(addr: &str, chunk: &ChunkId, index: u8) -> String {
        format!("http://{addr}/v1/shards/{chunk}/{index}")
    }

    /// Store a shard on the node at `addr` (fsynced before it answers).
    pub async fn rpc_put_shard(
        &self,
        addr: &str,
        chunk: &ChunkId,
        index: u8,
        geometry: &ShardGeometry,
        data: Bytes,
    ) -> Result<()> {
        let sum = hex::encode(shard_checksum(&data));
        let b = self
            .http
            .put(Self::shard_url(addr, chunk, index))
            .header(SHARD_CHECKSUM_HEADER, sum)
            .header(SHARD_GEOMETRY_HEADER, geometry.to_string())
            .body(data);
        let resp = self.send(addr, b, SHARD_TIMEOUT).await?;
        Self::ok(addr, resp).await?;
        Ok(())
    }

    /// Read a shard, verified on the node and again here.
    pub async fn rpc_get_shard(&self, addr: &str, chunk: &ChunkId, index: u8) -> Result<Bytes> {
        let b = self.http.get(Self::shard_url(addr, chunk, index));
        let resp = self.send(addr, b, SHARD_TIMEOUT).await?;
        match resp.status().as_u16() {
            404 => {
                return Err(Error::ShardNotFound {
                    chunk: *chunk,
                    index,
                });
            }
            409 => {
                return Err(Error::CorruptShard {
                    chunk: *chunk,
                    index,
                });
            }
            _ => {}
        }
        let expected = resp
            .headers()
            .get(SHARD_CHECKSUM_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let data = self.body(addr, resp).await?;
        match expected {
            Some(e) if e == hex::encode(shard_checksum(&data)) => Ok(data),
            _ => Err(Error::CorruptShard {
                chunk: *chunk,
                index,
            }),
        }
    }

    /// Whether the node holds a shard.
    pub async fn rpc_has_shard(&self, addr: &str, chunk: &ChunkId, index: u8) -> Result<bool> {
        let b = self.http.head(Self::shard_url(addr, chunk, index));
        let resp = self.send(addr, b, CONTROL_TIMEOUT).await?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Self::ok(addr, resp).await.map(|_| false),
        }
    }

    /// Whether the node holds a shard intact (it reads and checks it).
    pub async fn rpc_verify_shard(&self, addr: &str, chunk: &ChunkId, index: u8) -> Result<bool> {
        let b = self
            .http
            .post(format!("{}/verify", Self::shard_url(addr, chunk, index)));
        let resp = self.send(addr, b, SHARD_TIMEOUT).await?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 | 409 => Ok(false),
            _ => Self::ok(addr, resp).await.map(|_| false),
        }
    }

    /// A page of a node's shard index.
    pub async fn rpc_list_shards(
        &self,
        addr: &str,
        req: &ListShardsRequest,
    ) -> Result<ListShardsReply> {
        self.post_control(
            addr,
            "/v1/shards/list",
            record::encode(req),
            "shard listing",
            CONTROL_TIMEOUT,
        )
        .await
    }

    /// Make this node known to the node at `addr`.
    pub async fn rpc_hello(&self, addr: &str, hello: &cairn::rpc::Hello) -> Result<()> {
        let b = self
            .http
            .post(format!("http://{addr}/v1/peer/hello"))
            .body(record::encode(hello));
        let resp = self
            .send_kind(addr, b, CONTROL_TIMEOUT, Kind::Probe)
            .await?;
        Self::ok(addr, resp).await.map(|_| ())
    }

    /// Nodes waiting to be added that said hello to the node at `addr`.
    pub async fn rpc_candidates(&self, addr: &str) -> Result<Vec<cairn::rpc::Hello>> {
        self.control(
            addr,
            reqwest::Method::GET,
            "/v1/candidates",
            None,
            "candidates",
            Kind::Probe,
        )
        .await
    }

    /// How a node sees its peers.
    pub async fn rpc_peers(&self, addr: &str) -> Result<Vec<PeerView>> {
        self.control(
            addr,
            reqwest::Method::GET,
            "/v1/peers",
            None,
            "peer views",
            Kind::Probe,
        )
        .await
    }

    /// A node's repair worker report.
    pub async fn rpc_repair_report(&self, addr: &str) -> Result<RepairReport> {
        self.control(
            addr,
            reqwest::Method::GET,
            "/v1/repair",
            None,
            "repair report",
            Kind::Probe,
        )
        .await
    }

    /// A node's garbage collector report.
    pub async fn rpc_gc_report(&self, addr: &str) -> Result<cairn::rpc::GcReport> {
        self.control(
            addr,
            reqwest::Method::GET,
            "/v1/gc",
            None,
            "gc report",
            Kind::Probe,
        )
        .await
    }

    /// Start a collector pass on a node; its report, whose `requested` is
    /// the pass to wait for.
    pub async fn rpc_gc_run(&self, addr: &str) -> Result<cairn::rpc::GcReport> {
        self.post_control(addr, "/v1/gc/run", Vec::new(), "gc report", CONTROL_TIMEOUT)
            .await
    }

    /// A node's scrubber report.
    pub async fn rpc_scrub_report(&self, addr: &str) -> Result<cairn::rpc::ScrubReport> {
        self.control(
            addr,
            reqwest::Method::GET,
            "/v1/scrub",
            None,
            "scrub report",
            Kind::Probe,
        )
        .await
    }

    /// Start or pause a node's scrubber (`action`: `start`, `pause`).
    pub async fn rpc_scrub(&self, addr: &str, action: &str) -> Result<cairn::rpc::ScrubReport> {
        self.post_control(
            addr,
            &format!("/v1/scrub/{action}"),
            Vec::new(),
            "scrub report",
            CONTROL_TIMEOUT,
        )
        .await
    }

    /// Change a node's repair worker limits.
    pub async fn rpc_repair_throttle(
        &self,
        addr: &str,
        throttle: &RepairThrottle,
    ) -> Result<RepairReport> {
        self.post_control(
            addr,
            "/v1/repair/throttle",
            record::encode(throttle),
            "repair report",
            CONTROL_TIMEOUT,
        )
        .await
    }

    /// Delete a shard.
    pub async fn rpc_delete_shard(&self, addr: &str, chunk: &ChunkId, index: u8) -> Result<()> {
        let b = self.http.delete(Self::shard_url(addr, chunk, index));
        let resp = self.send(addr, b, CONTROL_TIMEOUT).await?;
        Self::ok(addr, resp).await.map(|_| ())
    }

    async fn post_control<T: serde::de::DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: Vec<u8>,
        what: &'static str,
        timeout: Duration,
    ) -> Result<T> {
        let b = self.http.post(format!("http://{addr}{path}")).body(body);
        let resp = self.send_kind(addr, b, timeout, Kind::Work).await?;
        let bytes = self.body(addr, resp).await?;
        Ok(record::decode(what, &bytes)?)
    }

    /// Propose a metadata command (an encoded `CommandRequest`) to a node.
    pub async fn rpc_meta_command(&self, addr: &str, body: Vec<u8>) -> Result<CommandReply> {
        self.post_control(
            addr,
            "/v1/meta/command",
            body,
            "command reply",
            META_RPC_TIMEOUT,
        )
        .await
    }

    /// A metadata read (an encoded `ReadRequest`) on a node.
    pub async fn rpc_meta_read(&self, addr: &str, body: Vec<u8>) -> Result<ReadReply> {
        self.post_control(addr, "/v1/meta/read", body, "read reply", META_RPC_TIMEOUT)
            .await
    }

    /// Raft messages for a node (an encoded batch); the encoded replies.
    pub async fn rpc_raft(&self, addr: &str, body: Vec<u8>, timeout: Duration) -> Result<Bytes> {
        let b = self.http.post(format!("http://{addr}/v1/raft")).body(body);
        // Raft has its own backoff: never skip a peer here.
        let resp = self.send_kind(addr, b, timeout, Kind::Probe).await?;
        self.body(addr, resp).await
    }

    /// The system records changed after `after` (a long poll of the
    /// system group's leader).
    pub async fn rpc_system_changes(&self, addr: &str, after: u64) -> Result<SystemChanges> {
        let b = self.watch_http.get(format!(
            "http://{addr}/v1/meta/system/changes?after={after}"
        ));
        let resp = self
            .send_kind(addr, b, SYSTEM_CHANGES_TIMEOUT, Kind::Work)
            .await?;
        let bytes = self.body(addr, resp).await?;
        Ok(record::decode("system changes", &bytes)?)
    }

    /// The node's cluster map once its version is past `after`, or its
    /// current one after the node's watch wait (a long poll).
    pub async fn rpc_watch_map(&self, addr: &str, after: u64) -> Result<Option<Layout>> {
        let b = self
            .watch_http
            .get(format!("http://{addr}/v1/cluster/watch?after={after}"));
        let resp = self.send_kind(addr, b, WATCH_TIMEOUT, Kind::Probe).await?;
        let bytes = self.body(addr, resp).await?;
        Ok(record::decode("layout", &bytes)?)
    }

    /// Tell a peer this node lives (an encoded `NodeBeat`).
    pub async fn rpc_node_beat(&self, addr: &str, body: Vec<u8>) -> Result<()> {
        let b = self
            .http
            .post(format!("http://{addr}/v1/peer/beat"))
            .body(body);
        let resp = self
            .send_kind(addr, b, CONTROL_TIMEOUT, Kind::Probe)
            .await?;
        Self::ok(addr, resp).await.map(|_| ())
    }

    /// Ask a node to take part in creating a cluster with `layout`.
    pub async fn rpc_bootstrap(&self, addr: &str, layout: &Layout) -> Result<BootstrapReply> {
        let b = self
            .http
            .post(format!("http://{addr}/v1/cluster/bootstrap"))
            .body(record::encode(layout));
        let resp = self
            .send_kind(addr, b, META_RPC_TIMEOUT, Kind::Probe)
            .await?;
        let bytes = self.body(addr, resp).await?;
        Ok(record::decode("bootstrap reply", &bytes)?)
    }

    /// The node's id and layout version.
    pub async fn rpc_identity(&self, addr: &str) -> Result<NodeIdentity> {
        self.control(
            addr,
            reqwest::Method::GET,
            "/v1/identity",
            None,
            "identity",
            Kind::Probe,
        )
        .await
    }

    /// The metadata groups the node hosts, and their state.
    pub async fn rpc_groups(&self, addr: &str) -> Result<Vec<cairn::rpc::GroupStatus>> {
        self.control(
            addr,
            reqwest::Method::GET,
            "/v1/groups",
            None,
            "group statuses",
            Kind::Probe,
        )
        .await
    }

    /// The node's counters.
    pub async fn rpc_stats(&self, addr: &str) -> Result<NodeStats> {
        self.control(
            addr,
            reqwest::Method::GET,
            "/v1/stats",
            None,
            "stats",
            Kind::Probe,
        )
        .await
    }

    /// The layout the node holds.
    pub async fn rpc_get_layout(&self, addr: &str) -> Result<Option<Layout>> {
        self.control(
            addr,
            reqwest::Method::GET,
            "/v1/layout",
            None,
            "layout",
            Kind::Probe,
        )
        .await
    }

    /// The staged layout changes the node holds.
    pub async fn rpc_get_staged(&self, addr: &str) -> Result<Option<StagedLayout>> {
        self.control(
            addr,
            reqwest::Method::GET,
            "/v1/layout/staged",
            None,
            "staged layout",
            Kind::Probe,
        )
        .await
    }

    /// Store staged layout changes on the node.
    pub async fn rpc_put_staged(&self, addr: &str, staged: &StagedLayout) -> Result<()> {
        let b = self
            .http
            .put(format!("http://{addr}/v1/layout/staged"))
            .body(record::encode(staged));
        let resp = self
            .send_kind(addr, b, CONTROL_TIMEOUT, Kind::Probe)
            .await?;
        Self::ok(addr, resp).await.map(|_| ())
    }
}
