//! The transport of Raft messages between nodes, coalesced per peer.
//!
//! Every group's messages to one peer go through one queue: while a
//! request to the peer is in flight, later messages wait and leave together
//! in the next one (at most [`MAX_BATCHES_IN_FLIGHT`] at once, each at most
//! [`MAX_BATCH_MESSAGES`] messages and [`MAX_BATCH_BYTES`]). With the
//! node's heartbeat ticker firing every group's heartbeats at the same
//! moment, an idle node sends one request per peer per heartbeat interval,
//! however many groups it leads.
//!
//! The transport also keeps each group's read lease: when a follower
//! acknowledged the leader's vote in an append, and when that append left.

use super::{PeerNode, READ_LEASE, TypeConfig};
use crate::client::NodeClient;
use cairn::record::{self, GroupId};
use openraft::Vote;
use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Requests in flight to one peer at once.
pub const MAX_BATCHES_IN_FLIGHT: usize = 4;
/// Messages in one request.
pub const MAX_BATCH_MESSAGES: usize = 512;
/// Bytes of messages in one request (a message larger than this goes alone).
pub const MAX_BATCH_BYTES: usize = 8 << 20;
/// Messages waiting for one peer; beyond, senders wait (openraft then
/// slows its replication to that peer).
pub const PEER_QUEUE: usize = 4096;
/// Time allowed for a request of appends and votes.
pub const RAFT_RPC_TIMEOUT: Duration = Duration::from_secs(3);
/// Time allowed for a request carrying a snapshot chunk.
pub const SNAPSHOT_RPC_TIMEOUT: Duration = Duration::from_secs(15);

/// One Raft message.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    /// Entries or a heartbeat.
    Append(AppendEntriesRequest<TypeConfig>),
    /// An election.
    Vote(VoteRequest<u64>),
    /// A piece of a snapshot.
    Snapshot(InstallSnapshotRequest<TypeConfig>),
}

/// The answer to one [`RaftRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftResponse {
    /// To an append.
    Append(AppendEntriesResponse<u64>),
    /// To a vote.
    Vote(VoteResponse<u64>),
    /// To a snapshot piece.
    Snapshot(InstallSnapshotResponse<u64>),
    /// The receiver could not handle it (no such group there, shutting down...).
    Failed(String),
}

/// `POST /v1/raft`: messages of any groups for one node.
#[derive(Debug, Serialize, Deserialize)]
pub struct RaftBatch {
    /// `(group, encoded RaftRequest)`.
    pub messages: Vec<(GroupId, Vec<u8>)>,
}

/// The answers, in order.
#[derive(Debug, Serialize, Deserialize)]
pub struct RaftBatchReply {
    /// Encoded [`RaftResponse`]s.
    pub replies: Vec<Vec<u8>>,
}

struct Pending {
    group: GroupId,
    body: Vec<u8>,
    snapshot: bool,
    reply: oneshot::Sender<Result<RaftResponse, String>>,
}

/// When a follower last acknowledged a leader's vote.
#[derive(Debug, Clone, Copy)]
struct Ack {
    vote: Vote<u64>,
    sent_at: Instant,
}

/// The queues to every peer, and the read leases.
pub struct Transport {
    client: NodeClient,
    peers: Mutex<BTreeMap<String, mpsc::Sender<Pending>>>,
    acks: Mutex<BTreeMap<(GroupId, u64), Ack>>,
}

impl Transport {
    /// A transport signing with `client`.
    pub fn new(client: NodeClient) -> Arc<Self> {
        Arc::new(Self {
            client,
            peers: Mutex::new(BTreeMap::new()),
            acks: Mutex::new(BTreeMap::new()),
        })
    }

    fn queue(&self, addr: &str) -> mpsc::Sender<Pending> {
        let mut peers = self.peers.lock().expect("peers lock");
        if let Some(q) = peers.get(addr)
            && !q.is_closed()
        {
            return q.clone();
        }
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        tokio::spawn(run_peer(self.client.clone(), addr.to_owned(), rx));
        peers.insert(addr.to_owned(), tx.clone());
        tx
    }

    async fn send(
        &self,
        addr: &str,
        group: GroupId,
        request: &RaftRequest,
    ) -> Result<RaftResponse, String> {
        let snapshot = matches!(request, RaftRequest::Snapshot(_));
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            group,
            body: record::encode(request),
            snapshot,
            reply,
        };
        self.queue(addr)
            .send(pending)
            .await
            .map_err(|_| "peer queue closed".to_owned())?;
        answer
            .await
            .map_err(|_| "peer queue dropped the message".to_owned())?
    }

    fn note_ack(&self, group: GroupId, target: u64, vote: Vote<u64>, sent_at: Instant) {
        let mut acks = self.acks.lock().expect("acks lock");
        let e = acks.entry((group, target)).or_insert(Ack { vote, sent_at });
        if e.vote != vote || e.sent_at < sent_at {
            *e = Ack { vote, sent_at };
        }
    }

    /// Whether `me`, leader of `group` with `vote`, holds a read lease:
    /// with itself, a majority of `voters` acknowledged `vote` in appends
    /// sent less than [`READ_LEASE`] ago.
    pub fn has_lease(
        &self,
        group: GroupId,
        me: u64,
        vote: Vote<u64>,
        voters: &BTreeSet<u64>,
    ) -> bool {
        let acks = self.acks.lock().expect("acks lock");
        let now = Instant::now();
        let fresh = voters
            .iter()
            .filter(|v| {
                **v == me
                    || acks.get(&(group, **v)).is_some_and(|a| {
                        a.vote == vote && now.duration_since(a.sent_at) < READ_LEASE
                    })
            })
            .count();
        fresh > voters.len() / 2
    }
}

/// Drain one peer's queue into batched requests.
async fn run_peer(client: NodeClient, addr: String, mut rx: mpsc::Receiver<Pending>) {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_BATCHES_IN_FLIGHT));
    let mut held: Option<Pending> = None;
    loop {
        let first = match held.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let mut batch = vec![first];
        let mut bytes = batch[0].body.len();
        // A snapshot piece travels alone, on its longer timeout.
        if !batch[0].snapshot {
            while batch.len() < MAX_BATCH_MESSAGES && bytes < MAX_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(p) if p.snapshot || bytes + p.body.len() > MAX_BATCH_BYTES => {
                        held = Some(p);
                        break;
                    }
                    Ok(p) => {
                        bytes += p.body.len();
                        batch.push(p);
                    }
                    Err(_) => break,
                }
            }
        }
        let (client, addr) = (client.clone(), addr.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let timeout = if batch[0].snapshot {
                SNAPSHOT_RPC_TIMEOUT
            } else {
                RAFT_RPC_TIMEOUT
            };
            let (replies, bodies): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .map(|p| (p.reply, (p.group, p.body)))
                .unzip();
            let body = record::encode(&RaftBatch { messages: bodies });
            let answer = client
                .rpc_raft(&addr, body, timeout)
                .await
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    record::decode::<RaftBatchReply>("raft batch reply", &b)
                        .map_err(|e| e.to_string())
                });
            match answer {
                Ok(r) if r.replies.len() == replies.len() => {
                    for (tx, body) in replies.into_iter().zip(r.replies) {
                        let _ = tx.send(
                            record::decode::<RaftResponse>("raft response", &body)
                                .map_err(|e| e.to_string()),
                        );
                    }
                }
                Ok(_) => {
                    for tx in replies {
                        let _ = tx.send(Err("malformed raft batch reply".into()));
                    }
                }
                Err(e) => {
                    for tx in replies {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
            }
        });
    }
}

/// Makes the per-target clients of one group.
#[derive(Clone)]
pub struct GroupNetwork {
    /// The group.
    pub group: GroupId,
    /// The node's transport.
    pub transport: Arc<Transport>,
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = PeerLink;

    async fn new_client(&mut self, target: u64, node: &PeerNode) -> PeerLink {
        PeerLink {
            group: self.group,
            target,
            addr: node.addr.clone(),
            transport: self.transport.clone(),
        }
    }
}

/// One group's messages to one target.
pub struct PeerLink {
    group: GroupId,
    target: u64,
    addr: String,
    transport: Arc<Transport>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

fn unreachable<E: std::error::Error>(why: String) -> RPCError<u64, PeerNode, E> {
    RPCError::Unreachable(Unreachable::new(&TransportError(why)))
}

impl RaftNetwork<TypeConfig> for PeerLink {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, PeerNode, RaftError<u64>>> {
        let vote = rpc.vote;
        let sent_at = Instant::now();
        match self
            .transport
            .send(&self.addr, self.group, &RaftRequest::Append(rpc))
            .await
        {
            Ok(RaftResponse::Append(r)) => {
                if !matches!(r, AppendEntriesResponse::HigherVote(_)) {
                    self.transport
                        .note_ack(self.group, self.target, vote, sent_at);
                }
                Ok(r)
            }
            Ok(RaftResponse::Failed(e)) | Err(e) => Err(unreachable(e)),
            Ok(other) => Err(unreachable(format!("unexpected answer {other:?}"))),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, PeerNode, RaftError<u64, InstallSnapshotError>>,
    > {
        match self
            .transport
            .send(&self.addr, self.group, &RaftRequest::Snapshot(rpc))
            .await
        {
            Ok(RaftResponse::Snapshot(r)) => Ok(r),
            Ok(RaftResponse::Failed(e)) | Err(e) => Err(unreachable(e)),
            Ok(other) => Err(unreachable(format!("unexpected answer {other:?}"))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, PeerNode, RaftError<u64>>> {
        match self
            .transport
            .send(&self.addr, self.group, &RaftRequest::Vote(rpc))
            .await
        {
            Ok(RaftResponse::Vote(r)) => Ok(r),
            Ok(RaftResponse::Failed(e)) | Err(e) => Err(unreachable(e)),
            Ok(other) => Err(unreachable(format!("unexpected answer {other:?}"))),
        }
    }
}

/// Handle one message for a group of this node.
pub async fn handle(group: Option<Arc<super::groups::Group>>, body: &[u8]) -> RaftResponse {
    let Some(group) = group else {
        return RaftResponse::Failed("this node does not host the group".into());
    };
    let raft = &group.raft;
    let request: RaftRequest = match record::decode("raft request", body) {
        Ok(r) => r,
        Err(e) => return RaftResponse::Failed(e.to_string()),
    };
    match request {
        RaftRequest::Append(r) => {
            // The leader speaks: the group is not quiet any more.
            group.resume_elections();
            match raft.append_entries(r).await {
                Ok(r) => RaftResponse::Append(r),
                Err(e) => RaftResponse::Failed(e.to_string()),
            }
        }
        RaftRequest::Vote(r) => match raft.vote(r).await {
            Ok(r) => RaftResponse::Vote(r),
            Err(e) => RaftResponse::Failed(e.to_string()),
        },
        RaftRequest::Snapshot(r) => match raft.install_snapshot(r).await {
            Ok(r) => RaftResponse::Snapshot(r),
            Err(e) => RaftResponse::Failed(e.to_string()),
        },
    }
}
