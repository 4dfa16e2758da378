//! Cairn core library.
//!
//! Owns the pure, deterministic parts of the system: content ids (BLAKE3),
//! chunking arithmetic, the erasure codec wrapper, the cluster layout and the
//! placement table derived from it, metadata record types and their versioned
//! encoding, the metadata commands and their deterministic application, the
//! clock seam, and the message types of the node RPC and the admin API.
//!
//! Architecture Invariant: this library never does I/O and knows nothing of
//! HTTP, sockets or RocksDB. The `cairn` operator CLI binary that lives beside
//! it is the only part of this package that talks to the network.
#![warn(missing_docs)]

pub mod access;
pub mod clock;
pub mod codec;
pub mod command;
pub mod error;
pub mod id;
pub mod layout;
pub mod placement;
pub mod policy;
pub mod record;
pub mod rpc;

pub use error::{Error, Result};
