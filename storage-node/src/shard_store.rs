//! The shard store: one file per shard plus an index in RocksDB.
//!
//! A shard file is a fixed header followed by the shard bytes (layout in
//! `docs/design/on-disk-format.md`). The header carries the BLAKE3 of the
//! bytes, so every read is verified without trusting the index; the index
//! serves listing and counting. Writes go to a temporary file, are fsynced,
//! renamed into place, and the directory is fsynced: a crash leaves either
//! the old state or the whole new shard, never a torn one that reads as good.

use crate::db::{self, CF_SHARDS};
use crate::error::{Error, Result};
use cairn::id::{ChunkId, shard_checksum};
use rocksdb::DB;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Magic bytes at the start of every shard file.
pub const SHARD_MAGIC: &[u8; 4] = b"CRNS";
/// Format version of shard files written today.
pub const SHARD_FORMAT_VERSION: u8 = 1;
/// Shard file header length in bytes.
pub const SHARD_HEADER_LEN: usize = 80;
/// Largest shard a node accepts. Chunks are at most 64 MiB, and k >= 1.
pub const MAX_SHARD_BYTES: usize = 64 << 20;

/// The seam between the node and its disks.
pub trait ShardStore: Send + Sync + 'static {
    /// Store shard `index` of `chunk`, durably, before returning.
    fn put(&self, chunk: &ChunkId, index: u8, data: &[u8]) -> Result<()>;
    /// Read and verify a shard.
    fn get(&self, chunk: &ChunkId, index: u8) -> Result<Vec<u8>>;
    /// Whether a shard is stored (not verified).
    fn contains(&self, chunk: &ChunkId, index: u8) -> Result<bool>;
    /// Remove a shard; absent shards are not an error.
    fn delete(&self, chunk: &ChunkId, index: u8) -> Result<()>;
    /// (shards, bytes) stored.
    fn usage(&self) -> (u64, u64);
}

/// Shards as files under `dir/shards`, indexed in RocksDB.
pub struct FileShardStore {
    root: PathBuf,
    db: Arc<DB>,
    fsync: bool,
    shards: AtomicU64,
    bytes: AtomicU64,
}

fn index_key(chunk: &ChunkId, index: u8) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[..32].copy_from_slice(&chunk.0);
    k[32] = index;
    k
}

impl FileShardStore {
    /// Open the store rooted at `dir` (creates `dir/shards`).
    pub fn open(dir: &Path, db: Arc<DB>, fsync: bool) -> Result<Self> {
        let root = dir.join("shards");
        std::fs::create_dir_all(&root)?;
        let (mut shards, mut bytes) = (0u64, 0u64);
        let cf = db.cf_handle(CF_SHARDS).expect("shards column family");
        for item in db.iterator_cf(&cf, rocksdb::IteratorMode::Start) {
            let (_, v) = item?;
            shards += 1;
            if v.len() >= 9 {
                bytes += u64::from_le_bytes(v[1..9].try_into().expect("8 bytes"));
            }
        }
        Ok(Self {
            root,
            db,
            fsync,
            shards: AtomicU64::new(shards),
            bytes: AtomicU64::new(bytes),
        })
    }

    /// The file a shard lives in.
    pub fn shard_path(&self, chunk: &ChunkId, index: u8) -> PathBuf {
        let hex = chunk.to_hex();
        self.root.join(&hex[..2]).join(format!("{hex}.{index}"))
    }

    fn header(chunk: &ChunkId, index: u8, data: &[u8]) -> [u8; SHARD_HEADER_LEN] {
        let mut h = [0u8; SHARD_HEADER_LEN];
        h[..4].copy_from_slice(SHARD_MAGIC);
        h[4] = SHARD_FORMAT_VERSION;
        h[5] = index;
        h[8..16].copy_from_slice(&(data.len() as u64).to_le_bytes());
        h[16..48].copy_from_slice(&shard_checksum(data));
        h[48..80].copy_from_slice(&chunk.0);
        h
    }
}

impl ShardStore for FileShardStore {
    fn put(&self, chunk: &ChunkId, index: u8, data: &[u8]) -> Result<()> {
        assert!(data.len() <= MAX_SHARD_BYTES, "caller checks shard size");
        let path = self.shard_path(chunk, index);
        let dir = path.parent().expect("shard paths have a parent");
        std::fs::create_dir_all(dir)?;
        let existed = path.exists();
        let tmp = dir.join(format!(
            ".tmp-{}-{index}-{}",
            &chunk.to_hex()[..16],
            rand::random::<u64>()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&Self::header(chunk, index, data))?;
            f.write_all(data)?;
            if self.fsync {
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &path)?;
            if self.fsync {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        let mut value = Vec::with_capacity(41);
        value.push(SHARD_FORMAT_VERSION);
        value.extend_from_slice(&(data.len() as u64).to_le_bytes());
        value.extend_from_slice(&shard_checksum(data));
        let cf = self.db.cf_handle(CF_SHARDS).expect("shards column family");
        self.db.put_cf_opt(
            &cf,
            index_key(chunk, index),
            value,
            &db::write_options(self.fsync),
        )?;
        if !existed {
            self.shards.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    fn get(&self, chunk: &ChunkId, index: u8) -> Result<Vec<u8>> {
        let path = self.shard_path(chunk, index);
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::ShardNotFound {
                    chunk: *chunk,
                    index,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let corrupt = || Error::CorruptShard {
            chunk: *chunk,
            index,
        };
        let mut header = [0u8; SHARD_HEADER_LEN];
        if f.read_exact(&mut header).is_err()
            || &header[..4] != SHARD_MAGIC
            || header[4] != SHARD_FORMAT_VERSION
            || header[5] != index
            || header[48..80] != chunk.0
        {
            return Err(corrupt());
        }
        let len = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes")) as usize;
        if len > MAX_SHARD_BYTES {
            return Err(corrupt());
        }
        let mut data = Vec::with_capacity(len);
        f.take(len as u64 + 1).read_to_end(&mut data)?;
        if data.len() != len || shard_checksum(&data) != header[16..48] {
            return Err(corrupt());
        }
        Ok(data)
    }

    fn contains(&self, chunk: &ChunkId, index: u8) -> Result<bool> {
        Ok(self.shard_path(chunk, index).exists())
    }

    fn delete(&self, chunk: &ChunkId, index: u8) -> Result<()> {
        let path = self.shard_path(chunk, index);
        let cf = self.db.cf_handle(CF_SHARDS).expect("shards column family");
        let old = self.db.get_cf(&cf, index_key(chunk, index))?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        self.db
            .delete_cf_opt(&cf, index_key(chunk, index), &db::write_options(self.fsync))?;
        if let Some(v) = old
            && v.len() >= 9
        {
            self.shards.fetch_sub(1, Ordering::Relaxed);
            let len = u64::from_le_bytes(v[1..9].try_into().expect("8 bytes"));
            self.bytes.fetch_sub(len, Ordering::Relaxed);
        }
        Ok(())
    }

    fn usage(&self) -> (u64, u64) {
        (
            self.shards.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> FileShardStore {
        FileShardStore::open(dir, db::open(&dir.join("db")).unwrap(), true).unwrap()
    }

    #[test]
    fn shards_round_trip_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let id = ChunkId::of(b"chunk");
        s.put(&id, 3, b"shard bytes").unwrap();
        s.put(&id, 3, b"shard bytes").unwrap();
        assert_eq!(s.get(&id, 3).unwrap(), b"shard bytes");
        assert_eq!(s.usage(), (1, 11));
        assert!(matches!(s.get(&id, 4), Err(Error::ShardNotFound { .. })));
        s.delete(&id, 3).unwrap();
        assert_eq!(s.usage(), (0, 0));
        assert!(!s.contains(&id, 3).unwrap());
    }

    #[test]
    fn a_flipped_bit_is_reported_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let id = ChunkId::of(b"chunk");
        s.put(&id, 0, &[5u8; 1000]).unwrap();
        let path = s.shard_path(&id, 0);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[SHARD_HEADER_LEN + 500] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(s.get(&id, 0), Err(Error::CorruptShard { .. })));
        // Truncation too.
        std::fs::write(&path, &bytes[..SHARD_HEADER_LEN + 10]).unwrap();
        assert!(matches!(s.get(&id, 0), Err(Error::CorruptShard { .. })));
    }

    #[test]
    fn usage_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = store(dir.path());
            s.put(&ChunkId::of(b"a"), 0, &[1; 10]).unwrap();
            s.put(&ChunkId::of(b"b"), 1, &[1; 20]).unwrap();
        }
        assert_eq!(store(dir.path()).usage(), (2, 30));
    }
}
