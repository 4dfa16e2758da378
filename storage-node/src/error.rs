//! Errors of the storage node and of its RPC client.

use cairn::id::ChunkId;

/// Result with the node [`Error`] as default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a node (or a caller of its RPC) can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A local disk operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// RocksDB failed.
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),
    /// A stored shard does not match its checksum (bit rot, a torn write,
    /// tampering). Treated as missing, and counted.
    #[error("shard {index} of chunk {chunk} is corrupt")]
    CorruptShard {
        /// Chunk.
        chunk: ChunkId,
        /// Shard index.
        index: u8,
    },
    /// The shard is not on this node.
    #[error("shard {index} of chunk {chunk} not found")]
    ShardNotFound {
        /// Chunk.
        chunk: ChunkId,
        /// Shard index.
        index: u8,
    },
    /// A record or body could not be decoded.
    #[error(transparent)]
    Core(#[from] cairn::Error),
    /// The peer could not be reached or did not answer in time.
    #[error("rpc to {addr}: {reason}")]
    Rpc {
        /// Peer address.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The peer answered with an error status.
    #[error("rpc to {addr}: status {status}: {message}")]
    RpcStatus {
        /// Peer address.
        addr: String,
        /// HTTP status.
        status: u16,
        /// Body of the answer.
        message: String,
    },
    /// A request carried no valid signature of the cluster secret.
    #[error("unauthenticated rpc: {0}")]
    Unauthenticated(String),
    /// A request was well signed but made no sense.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A metadata group could not serve a request in time (no leader, no
    /// quorum, no cluster map yet). Retrying later may succeed.
    #[error("metadata unavailable: {0}")]
    Unavailable(String),
}
