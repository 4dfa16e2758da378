//! The node's RocksDB: one database, three column families.
//!
//! - `node`: the node's own identity and the layout it holds.
//! - `shards`: the shard index (chunk id ++ shard index -> length, checksum).
//! - `meta`: the replicated metadata records of the partitions this node holds.

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
    let cfs = [CF_NODE, CF_SHARDS, CF_META]
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
