//! Cairn storage node.
//!
//! Owns the shard store (shard files plus a RocksDB index), the metadata
//! groups on Raft and their client ([`table`]), the node RPC server and its
//! client.
//! Does not own S3: gateways speak S3 and drive nodes through [`client`].
//!
//! Architecture Invariant: a node never serves a shard it has not verified
//! against the checksum stored beside it, and never acknowledges a shard
//! write before the bytes are fsynced.
#![warn(missing_docs)]

pub mod auth;
pub mod blocking;
pub mod buggify;
pub mod chunks;
pub mod client;
pub mod config;
pub mod db;
pub mod disk;
pub mod error;
pub mod files;
pub mod gc;
pub mod lifecycle;
pub mod liveness;
pub mod logging;
pub mod net;
pub mod random;
pub mod repair;
pub mod sabotage;
pub mod scrub;
pub mod server;
pub mod shard_store;
pub mod steward;
pub mod table;

pub use error::{Error, Result};
