//! Errors of the core library.

use crate::id::ChunkId;

/// Result with the core [`Error`] as its default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the core library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Fewer than `k` intact shards were available to rebuild a chunk.
    #[error("chunk {chunk}: only {available} of the {needed} shards needed are available")]
    NotEnoughShards {
        /// The chunk being rebuilt.
        chunk: ChunkId,
        /// Intact shards on hand.
        available: usize,
        /// Shards the code needs (`k`).
        needed: usize,
    },
    /// A chunk rebuilt from its shards does not hash to its id.
    #[error("chunk {chunk}: content does not match its id")]
    CorruptChunk {
        /// The chunk whose content is wrong.
        chunk: ChunkId,
    },
    /// The erasure codec rejected its input.
    #[error("erasure codec: {0}")]
    Codec(String),
    /// A layout is not usable (too few nodes for the profile, duplicate ids...).
    #[error("invalid layout: {0}")]
    InvalidLayout(String),
    /// A stored or received record could not be decoded.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// Which kind of record.
        what: &'static str,
        /// Why.
        reason: String,
    },
}
