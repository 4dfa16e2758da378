//! The node's RocksDB: one database, six column families.
//!
//! - `node`: the node's own identity, the cluster map it knows, a pending
//!   cluster creation.
//! - `shards`: the shard index (chunk id ++ shard index -> length, checksum).
//! - `meta`: the records of the metadata groups this node hosts
//!   (group ++ table ++ partition key ++ sort key).
//! - `raft_log`: the groups' Raft logs (group ++ index).
//! - `raft_state`: per group, vote, committed, purged and applied log ids,
//!   membership, snapshot metadata.
//! - `repair`: repair hints this node holds (chunk id -> shards to rebuild).

use crate::error::Result;
use rocksdb::{ColumnFamilyDescriptor, DB, Options, WriteOptions};
use std::path::Path;
use std::sync::Arc;

/// Column family of the node's own records.
pub const CF_NODE: &str = "node";
/// Column family of the shard index.
pub const CF_SHARDS: &str = "shards";
/// Column family of metadata records.
pub const CF_META: &str = "meta";
/// Column family of the Raft logs.
pub const CF_RAFT_LOG: &str = "raft_log";
/// Column family of the groups' Raft state.
pub const CF_RAFT_STATE: &str = "raft_state";
/// Column family of repair hints.
pub const CF_REPAIR: &str = "repair";

/// Open (or create) the node database under `dir`.
pub fn open(dir: &Path) -> Result<Arc<DB>> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // Bounded background threads and open files: a node shares two cores
    // with its neighbours in development clusters.
    opts.increase_parallelism(2);
    opts.set_max_open_files(512);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    let cfs = [
        CF_NODE,
        CF_SHARDS,
        CF_META,
        CF_RAFT_LOG,
        CF_RAFT_STATE,
        CF_REPAIR,
    ]
    .into_iter()
    .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    let db = DB::open_cf_descriptors(&opts, dir, cfs)?;
    Ok(Arc::new(db))
}

/// Write options for acknowledged writes: synced to the WAL when `fsync`.
pub fn write_options(fsync: bool) -> WriteOptions {
    let mut wo = WriteOptions::default();
    wo.set_sync(fsync);
    wo
}
