//! The replicated tables: metadata groups on Raft.
//!
//! Every metadata record belongs to one group (the system group, or the
//! data group its partition key hashes to), and every group is a Raft
//! group (openraft) whose voters are `2m + 1` storage nodes. This layer
//! owns the groups a node hosts: their logs and state machines in the
//! node's RocksDB ([`log`], [`machine`]), the transport that carries their
//! messages between nodes, coalesced per peer ([`network`]), starting and
//! initializing them from the cluster map, linearizable reads and
//! conditional writes ([`groups`]), and the client that gateways and node
//! workers use to reach a group's leader ([`client`]).
//!
//! Architecture Invariant: a metadata write is acknowledged only once it is
//! committed (fsynced on a majority of the group's voters) and applied on
//! the leader; a read is served only by a leader that holds a lease
//! confirmed by a majority, or that has just confirmed its leadership with
//! a majority (ReadIndex). See `docs/design/metadata.md`.

pub mod client;
pub mod groups;
pub mod log;
pub mod machine;
pub mod network;
pub mod snapshot_file;
pub mod store;

use cairn::command::{Outcome, Request};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A peer as Raft memberships record it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerNode {
    /// `host:port` of its node RPC.
    pub addr: String,
}

impl std::fmt::Display for PeerNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.addr)
    }
}

openraft::declare_raft_types!(
    /// The Raft types of every metadata group.
    pub TypeConfig:
        D = Request,
        R = Outcome,
        NodeId = u64,
        Node = PeerNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = snapshot_file::SnapshotFile,
        AsyncRuntime = Runtime,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
);

/// A group's Raft handle.
pub type Raft = openraft::Raft<TypeConfig>;

/// openraft's tokio runtime, except that election timeouts are drawn from
/// [`crate::random`] (seeded in a simulation).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Runtime;

impl openraft::AsyncRuntime for Runtime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle<T: openraft::OptionalSend + 'static> = tokio::task::JoinHandle<T>;
    type Sleep = tokio::time::Sleep;
    type Instant = openraft::TokioInstant;
    type TimeoutError = tokio::time::error::Elapsed;
    type Timeout<R, T: Future<Output = R> + openraft::OptionalSend> = tokio::time::Timeout<T>;
    type ThreadLocalRng = crate::random::RaftRng;
    type OneshotSender<T: openraft::OptionalSend> = openraft::async_runtime::TokioOneShotSender<T>;
    type OneshotReceiverError = tokio::sync::oneshot::error::RecvError;
    type OneshotReceiver<T: openraft::OptionalSend> = tokio::sync::oneshot::Receiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + openraft::OptionalSend + 'static,
        T::Output: openraft::OptionalSend + 'static,
    {
        openraft::TokioRuntime::spawn(future)
    }

    fn sleep(duration: std::time::Duration) -> Self::Sleep {
        openraft::TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        openraft::TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + openraft::OptionalSend>(
        duration: std::time::Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        openraft::TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + openraft::OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        openraft::TokioRuntime::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        join_error.is_panic()
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        crate::random::RaftRng
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: openraft::OptionalSend,
    {
        openraft::TokioRuntime::oneshot()
    }
}

/// How often a leader sends heartbeats to its followers. One ticker per
/// node sends them for every group it leads at once, so they travel in one
/// request per peer (see [`network`]).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(200);
/// A follower that hears nothing from its leader for a random time in this
/// range starts an election. Followers also refuse to vote until
/// [`ELECTION_TIMEOUT_MAX`] after hearing from a leader (openraft's leader
/// lease), so a dead leader is replaced 1.2 to 2.4 s after its last
/// heartbeat (a candidate that stood too early tries again).
pub const ELECTION_TIMEOUT_MIN: Duration = Duration::from_millis(800);
/// See [`ELECTION_TIMEOUT_MIN`].
pub const ELECTION_TIMEOUT_MAX: Duration = Duration::from_millis(1200);
/// How long after a majority acknowledged a heartbeat (counted from when
/// it was sent) the leader serves reads without asking again. No other
/// leader can be elected before [`ELECTION_TIMEOUT_MAX`] has passed on the
/// followers' clocks since then; the lease stays inside that even if
/// clocks run at rates 3x apart.
pub const READ_LEASE: Duration = Duration::from_millis(400);
/// A snapshot is built after this many log entries since the last one;
/// the log before it is then purged (keeping [`LOGS_KEPT_AFTER_SNAPSHOT`]).
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 20_000;
/// Entries kept after a snapshot, so a briefly absent follower catches up
/// from the log rather than by a snapshot.
pub const LOGS_KEPT_AFTER_SNAPSHOT: u64 = 5_000;
/// Entries per append message (bounds a message to a few MiB: the largest
/// entries, a 10,000-part CompleteMultipartUpload, are a few hundred KiB).
pub const MAX_ENTRIES_PER_APPEND: u64 = 32;
/// Snapshot bytes per install message.
pub const SNAPSHOT_CHUNK_BYTES: u64 = 1 << 20;

/// How reads confirm that the leader is still the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadBarrier {
    /// A lease confirmed by a majority within [`READ_LEASE`]; ReadIndex
    /// when it has lapsed. The default.
    Lease,
    /// A round of heartbeats to a majority for every read (ReadIndex).
    ReadIndex,
}

/// The openraft configuration every group runs with.
pub fn raft_config() -> openraft::Config {
    openraft::Config {
        cluster_name: "cairn".into(),
        heartbeat_interval: HEARTBEAT_INTERVAL.as_millis() as u64,
        election_timeout_min: ELECTION_TIMEOUT_MIN.as_millis() as u64,
        election_timeout_max: ELECTION_TIMEOUT_MAX.as_millis() as u64,
        // Heartbeats come from the node's ticker, for all groups at once.
        enable_heartbeat: false,
        max_payload_entries: MAX_ENTRIES_PER_APPEND,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES),
        max_in_snapshot_log_to_keep: LOGS_KEPT_AFTER_SNAPSHOT,
        snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
        install_snapshot_timeout: 10_000,
        ..Default::default()
    }
    .validate()
    .expect("the metadata Raft configuration is valid")
}
