//! The node RPC client, used by gateways and by nodes talking to each other.
//! Methods that cross the network are named `rpc_<verb>`.

use crate::auth;
use crate::error::{Error, Result};
use crate::net::Network;
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
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

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

/// Largest reply body accepted: a shard, or the largest control answer.
pub const MAX_REPLY_BYTES: usize =
    if crate::shard_store::MAX_SHARD_BYTES > crate::server::MAX_CONTROL_BODY_BYTES {
        crate::shard_store::MAX_SHARD_BYTES
    } else {
        crate::server::MAX_CONTROL_BODY_BYTES
    };

type Http = hyper_util::client::legacy::Client<crate::net::Connector, Full<Bytes>>;

/// A signing HTTP client for the node RPC. Cheap to clone.
#[derive(Clone)]
pub struct NodeClient {
    http: Http,
    signer: Arc<auth::Signer>,
    suspects: Arc<Mutex<BTreeMap<String, Instant>>>,
}

/// Whether a request honours the suspect list (data and metadata) or goes
/// through regardless (probes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Work,
    Probe,
}

/// A node's whole answer.
struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

/// Why an exchange failed.
enum Failure {
    /// No connection could be opened.
    Connect(String),
    /// The node went silent for too long, or the request ran out of time.
    Timeout(&'static str),
    /// Anything else (a reset connection, a malformed or oversized answer).
    Other(String),
}

impl Failure {
    fn reason(&self) -> String {
        match self {
            Self::Connect(e) => format!("connect: {e}"),
            Self::Timeout(what) => format!("timed out {what}"),
            Self::Other(e) => e.clone(),
        }
    }
}

/// An error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// `fut`, unless `deadline` passes or (with `idle`) it takes longer than that.
async fn within<T>(
    deadline: Instant,
    idle: Option<Duration>,
    what: &'static str,
    fut: impl Future<Output = T>,
) -> std::result::Result<T, Failure> {
    let until = match idle {
        Some(idle) => deadline.min(Instant::now() + idle),
        None => deadline,
    };
    tokio::time::timeout_at(until, fut)
        .await
        .map_err(|_| Failure::Timeout(what))
}

impl NodeClient {
    /// A client that signs with `cluster_secret`, over TCP.
    pub fn new(cluster_secret: &str) -> Self {
        Self::on(cluster_secret, &Network::tcp())
    }

    /// A client that signs with `cluster_secret`, over `network`.
    pub fn on(cluster_secret: &str, network: &Network) -> Self {
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(network.connector());
        Self {
            http,
            signer: Arc::new(auth::Signer::new(cluster_secret)),
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

    fn note(&self, addr: &str, outcome: std::result::Result<(), &Failure>) {
        let mut suspects = self.suspects.lock().expect("suspects lock poisoned");
        match outcome {
            Ok(()) => {
                suspects.remove(addr);
            }
            Err(e @ (Failure::Connect(_) | Failure::Timeout(_))) => {
                if suspects
                    .insert(addr.to_owned(), Instant::now() + SUSPECT_FOR)
                    .is_none()
                {
                    tracing::warn!(%addr, error = %e.reason(), "node unreachable; skipping it for a while");
                    metrics::counter!("cairn_rpc_nodes_suspected_total").increment(1);
                }
            }
            Err(Failure::Other(_)) => {}
        }
    }

    fn request(method: Method, url: String) -> http::request::Builder {
        http::Request::builder().method(method).uri(url)
    }

    /// Sign and send a request, and read its whole answer: within `timeout`
    /// in all, and (unless `idle` is `None`, for long polls) never silent
    /// for longer than `idle`.
    async fn exchange(
        &self,
        addr: &str,
        builder: http::request::Builder,
        body: Bytes,
        timeout: Duration,
        idle: Option<Duration>,
        kind: Kind,
    ) -> Result<Reply> {
        let rpc_err = |reason: String| Error::Rpc {
            addr: addr.to_owned(),
            reason,
        };
        if kind == Kind::Work && self.is_suspected(addr) {
            return Err(rpc_err("skipped: unreachable moments ago".into()));
        }
        let (mut parts, ()) = builder
            .body(())
            .map_err(|e| rpc_err(e.to_string()))?
            .into_parts();
        self.signer.sign(&mut parts, &body)?;
        let req = http::Request::from_parts(parts, Full::new(body));
        let deadline = Instant::now() + timeout;
        let outcome = async {
            let resp = within(
                deadline,
                idle,
                "waiting for the answer",
                self.http.request(req),
            )
            .await?
            .map_err(|e| {
                if e.is_connect() {
                    Failure::Connect(chain(&e))
                } else {
                    Failure::Other(chain(&e))
                }
            })?;
            let (head, mut incoming) = resp.into_parts();
            let mut frames: Vec<Bytes> = Vec::new();
            let mut len = 0usize;
            while let Some(frame) =
                within(deadline, idle, "reading the answer", incoming.frame()).await?
            {
                let frame = frame.map_err(|e| Failure::Other(chain(&e)))?;
                if let Ok(data) = frame.into_data() {
                    len += data.len();
                    if len > MAX_REPLY_BYTES {
                        return Err(Failure::Other(format!(
                            "answer larger than {MAX_REPLY_BYTES} bytes"
                        )));
                    }
                    frames.push(data);
                }
            }
            let body = match frames.len() {
                0 => Bytes::new(),
                1 => frames.pop().expect("one frame"),
                _ => Bytes::from(frames.concat()),
            };
            Ok(Reply {
                status: head.status,
                headers: head.headers,
                body,
            })
        }
        .await;
        match outcome {
            Ok(reply) => {
                self.note(addr, Ok(()));
                Ok(reply)
            }
            Err(e) => {
                self.note(addr, Err(&e));
                Err(rpc_err(e.reason()))
            }
        }
    }

    async fn send_kind(
        &self,
        addr: &str,
        builder: http::request::Builder,
        body: Bytes,
        timeout: Duration,
        kind: Kind,
    ) -> Result<Reply> {
        self.exchange(addr, builder, body, timeout, Some(READ_IDLE_TIMEOUT), kind)
            .await
    }

    async fn send(
        &self,
        addr: &str,
        builder: http::request::Builder,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Reply> {
        self.send_kind(addr, builder, body, timeout, Kind::Work)
            .await
    }

    fn ok(addr: &str, reply: Reply) -> Result<Reply> {
        if reply.status.is_success() {
            return Ok(reply);
        }
        Err(Error::RpcStatus {
            addr: addr.to_owned(),
            status: reply.status.as_u16(),
            message: String::from_utf8_lossy(&reply.body).into_owned(),
        })
    }

    fn body(addr: &str, reply: Reply) -> Result<Bytes> {
        Ok(Self::ok(addr, reply)?.body)
    }

    async fn control<T: serde::de::DeserializeOwned>(
        &self,
        addr: &str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        what: &'static str,
        kind: Kind,
    ) -> Result<T> {
        let b = Self::request(method, format!("http://{addr}{path}"));
        let body = body.map(Bytes::from).unwrap_or_default();
        let reply = self.send_kind(addr, b, body, CONTROL_TIMEOUT, kind).await?;
        let bytes = Self::body(addr, reply)?;
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
        let b = Self::request(Method::PUT, Self::shard_url(addr, chunk, index))
            .header(SHARD_CHECKSUM_HEADER, sum)
            .header(SHARD_GEOMETRY_HEADER, geometry.to_string());
        let reply = self.send(addr, b, data, SHARD_TIMEOUT).await?;
        Self::ok(addr, reply).map(|_| ())
    }

    /// Read a shard, verified on the node and again here.
    pub async fn rpc_get_shard(&self, addr: &str, chunk: &ChunkId, index: u8) -> Result<Bytes> {
        let b = Self::request(Method::GET, Self::shard_url(addr, chunk, index));
        let reply = self.send(addr, b, Bytes::new(), SHARD_TIMEOUT).await?;
        match reply.status {
            StatusCode::NOT_FOUND => {
                return Err(Error::ShardNotFound {
                    chunk: *chunk,
                    index,
                });
            }
            StatusCode::CONFLICT => {
                return Err(Error::CorruptShard {
                    chunk: *chunk,
                    index,
                });
            }
            _ => {}
        }
        let expected = reply
            .headers
            .get(SHARD_CHECKSUM_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let data = Self::body(addr, reply)?;
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
        let b = Self::request(Method::HEAD, Self::shard_url(addr, chunk, index));
        let reply = self.send(addr, b, Bytes::new(), CONTROL_TIMEOUT).await?;
        match reply.status {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Self::ok(addr, reply).map(|_| false),
        }
    }

    /// Whether the node holds a shard intact (it reads and checks it).
    pub async fn rpc_verify_shard(&self, addr: &str, chunk: &ChunkId, index: u8) -> Result<bool> {
        let url = format!("{}/verify", Self::shard_url(addr, chunk, index));
        let b = Self::request(Method::POST, url);
        let reply = self.send(addr, b, Bytes::new(), SHARD_TIMEOUT).await?;
        match reply.status {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND | StatusCode::CONFLICT => Ok(false),
            _ => Self::ok(addr, reply).map(|_| false),
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

    /// Send a request whose answer carries nothing but its status.
    async fn acknowledged(
        &self,
        addr: &str,
        method: Method,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
        kind: Kind,
    ) -> Result<()> {
        let b = Self::request(method, format!("http://{addr}{path}"));
        let reply = self
            .send_kind(addr, b, Bytes::from(body), timeout, kind)
            .await?;
        Self::ok(addr, reply).map(|_| ())
    }

    /// Make this node known to the node at `addr`.
    pub async fn rpc_hello(&self, addr: &str, hello: &cairn::rpc::Hello) -> Result<()> {
        self.acknowledged(
            addr,
            Method::POST,
            "/v1/peer/hello",
            record::encode(hello),
            CONTROL_TIMEOUT,
            Kind::Probe,
        )
        .await
    }

    /// Nodes waiting to be added that said hello to the node at `addr`.
    pub async fn rpc_candidates(&self, addr: &str) -> Result<Vec<cairn::rpc::Hello>> {
        self.probe(addr, "/v1/candidates", "candidates").await
    }

    /// How a node sees its peers.
    pub async fn rpc_peers(&self, addr: &str) -> Result<Vec<PeerView>> {
        self.probe(addr, "/v1/peers", "peer views").await
    }

    /// A node's repair worker report.
    pub async fn rpc_repair_report(&self, addr: &str) -> Result<RepairReport> {
        self.probe(addr, "/v1/repair", "repair report").await
    }

    /// A node's garbage collector report.
    pub async fn rpc_gc_report(&self, addr: &str) -> Result<cairn::rpc::GcReport> {
        self.probe(addr, "/v1/gc", "gc report").await
    }

    /// Start a collector pass on a node; its report, whose `requested` is
    /// the pass to wait for.
    pub async fn rpc_gc_run(&self, addr: &str) -> Result<cairn::rpc::GcReport> {
        self.post_control(addr, "/v1/gc/run", Vec::new(), "gc report", CONTROL_TIMEOUT)
            .await
    }

    /// A node's scrubber report.
    pub async fn rpc_scrub_report(&self, addr: &str) -> Result<cairn::rpc::ScrubReport> {
        self.probe(addr, "/v1/scrub", "scrub report").await
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
        let b = Self::request(Method::DELETE, Self::shard_url(addr, chunk, index));
        let reply = self.send(addr, b, Bytes::new(), CONTROL_TIMEOUT).await?;
        Self::ok(addr, reply).map(|_| ())
    }

    /// A GET of a control record that goes through even to suspected nodes.
    async fn probe<T: serde::de::DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        what: &'static str,
    ) -> Result<T> {
        self.control(addr, Method::GET, path, None, what, Kind::Probe)
            .await
    }

    async fn post_control<T: serde::de::DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: Vec<u8>,
        what: &'static str,
        timeout: Duration,
    ) -> Result<T> {
        let b = Self::request(Method::POST, format!("http://{addr}{path}"));
        let reply = self
            .send_kind(addr, b, Bytes::from(body), timeout, Kind::Work)
            .await?;
        let bytes = Self::body(addr, reply)?;
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
        let b = Self::request(Method::POST, format!("http://{addr}/v1/raft"));
        // Raft has its own backoff: never skip a peer here.
        let reply = self
            .send_kind(addr, b, Bytes::from(body), timeout, Kind::Probe)
            .await?;
        Self::body(addr, reply)
    }

    /// The system records changed after `after` (a long poll of the
    /// system group's leader).
    pub async fn rpc_system_changes(&self, addr: &str, after: u64) -> Result<SystemChanges> {
        let url = format!("http://{addr}/v1/meta/system/changes?after={after}");
        let b = Self::request(Method::GET, url);
        let reply = self
            .exchange(
                addr,
                b,
                Bytes::new(),
                SYSTEM_CHANGES_TIMEOUT,
                None,
                Kind::Work,
            )
            .await?;
        let bytes = Self::body(addr, reply)?;
        Ok(record::decode("system changes", &bytes)?)
    }

    /// The node's cluster map once its version is past `after`, or its
    /// current one after the node's watch wait (a long poll).
    pub async fn rpc_watch_map(&self, addr: &str, after: u64) -> Result<Option<Layout>> {
        let url = format!("http://{addr}/v1/cluster/watch?after={after}");
        let b = Self::request(Method::GET, url);
        let reply = self
            .exchange(addr, b, Bytes::new(), WATCH_TIMEOUT, None, Kind::Probe)
            .await?;
        let bytes = Self::body(addr, reply)?;
        Ok(record::decode("layout", &bytes)?)
    }

    /// Tell a peer this node lives (an encoded `NodeBeat`).
    pub async fn rpc_node_beat(&self, addr: &str, body: Vec<u8>) -> Result<()> {
        self.acknowledged(
            addr,
            Method::POST,
            "/v1/peer/beat",
            body,
            CONTROL_TIMEOUT,
            Kind::Probe,
        )
        .await
    }

    /// Ask a node to take part in creating a cluster with `layout`.
    pub async fn rpc_bootstrap(&self, addr: &str, layout: &Layout) -> Result<BootstrapReply> {
        let b = Self::request(Method::POST, format!("http://{addr}/v1/cluster/bootstrap"));
        let reply = self
            .send_kind(
                addr,
                b,
                Bytes::from(record::encode(layout)),
                META_RPC_TIMEOUT,
                Kind::Probe,
            )
            .await?;
        let bytes = Self::body(addr, reply)?;
        Ok(record::decode("bootstrap reply", &bytes)?)
    }

    /// The node's id and layout version.
    pub async fn rpc_identity(&self, addr: &str) -> Result<NodeIdentity> {
        self.probe(addr, "/v1/identity", "identity").await
    }

    /// The metadata groups the node hosts, and their state.
    pub async fn rpc_groups(&self, addr: &str) -> Result<Vec<cairn::rpc::GroupStatus>> {
        self.probe(addr, "/v1/groups", "group statuses").await
    }

    /// The node's counters.
    pub async fn rpc_stats(&self, addr: &str) -> Result<NodeStats> {
        self.probe(addr, "/v1/stats", "stats").await
    }

    /// The layout the node holds.
    pub async fn rpc_get_layout(&self, addr: &str) -> Result<Option<Layout>> {
        self.probe(addr, "/v1/layout", "layout").await
    }

    /// The staged layout changes the node holds.
    pub async fn rpc_get_staged(&self, addr: &str) -> Result<Option<StagedLayout>> {
        self.probe(addr, "/v1/layout/staged", "staged layout").await
    }

    /// Store staged layout changes on the node.
    pub async fn rpc_put_staged(&self, addr: &str, staged: &StagedLayout) -> Result<()> {
        self.acknowledged(
            addr,
            Method::PUT,
            "/v1/layout/staged",
            record::encode(staged),
            CONTROL_TIMEOUT,
            Kind::Probe,
        )
        .await
    }
}
