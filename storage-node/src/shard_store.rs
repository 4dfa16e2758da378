//! The shard store: one file per shard plus an index in RocksDB.
//!
//! A shard file is a fixed header followed by the shard bytes (layout in
//! `docs/design/on-disk-format.md`). The header carries the BLAKE3 of the
//! bytes, so every read is verified without trusting the index; the index
//! serves listing and counting. Writes go to a temporary file, are fsynced,
//! renamed into place, and the directory is fsynced: a crash leaves either
//! the old state or the whole new shard, never a torn one that reads as good.

use crate::db::{self, Cf, Db};
use crate::error::{Error, Result};
use crate::files::Files;
use cairn::clock::now_ms;
use cairn::codec::{CodecId, ErasureProfile, ShardGeometry};
use cairn::id::{ChunkId, shard_checksum};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Magic bytes at the start of every shard file.
pub const SHARD_MAGIC: &[u8; 4] = b"CRNS";
/// Format version of shard files written today (2: the header carries the
/// chunk's geometry). Version 1 files are still read.
pub const SHARD_FORMAT_VERSION: u8 = 2;
/// Shard file header length in bytes (version 2).
pub const SHARD_HEADER_LEN: usize = 96;
/// Header length of version 1 files.
const SHARD_HEADER_LEN_V1: usize = 80;
/// Most shard index entries one listing returns.
pub const MAX_LIST_SHARDS: usize = 4096;
/// Largest shard a node accepts. Chunks are at most 64 MiB, and k >= 1.
pub const MAX_SHARD_BYTES: usize = 64 << 20;

/// One shard as the index knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardEntry {
    /// Its chunk.
    pub chunk: ChunkId,
    /// Its index.
    pub index: u8,
    /// Payload length.
    pub len: u64,
    /// The chunk's geometry (`None` for shards written before files
    /// carried it).
    pub geometry: Option<ShardGeometry>,
    /// When it was written, ms since the epoch (0: before the index
    /// recorded it).
    pub written_ms: u64,
}

impl ShardEntry {
    /// The entry as a shard listing carries it.
    pub fn listed(&self) -> cairn::rpc::ListedShard {
        cairn::rpc::ListedShard {
            chunk: self.chunk,
            index: self.index,
            geometry: self.geometry,
        }
    }
}

/// One page of a listing: up to `limit` entries from `from` (excluded end
/// `to`), and whether more follow.
pub fn list_page(
    store: &dyn ShardStore,
    from: &[u8; 33],
    to: &[u8; 33],
    limit: usize,
) -> Result<(Vec<cairn::rpc::ListedShard>, bool)> {
    let list = store.list(from, to, limit + 1)?;
    let more = list.len() > limit;
    Ok((
        list.iter().take(limit).map(ShardEntry::listed).collect(),
        more,
    ))
}

/// The seam between the node and its disks.
pub trait ShardStore: Send + Sync + 'static {
    /// Store shard `index` of `chunk`, durably, before returning.
    fn put(&self, chunk: &ChunkId, index: u8, geometry: &ShardGeometry, data: &[u8]) -> Result<()>;
    /// Read and verify a shard, with the geometry its file carries (`None`
    /// for files written before they carried it).
    fn read(&self, chunk: &ChunkId, index: u8) -> Result<(Vec<u8>, Option<ShardGeometry>)>;
    /// Read and verify a shard.
    fn get(&self, chunk: &ChunkId, index: u8) -> Result<Vec<u8>> {
        self.read(chunk, index).map(|(data, _)| data)
    }
    /// Whether a shard is stored: in the index (not verified).
    fn contains(&self, chunk: &ChunkId, index: u8) -> Result<bool>;
    /// Remove a shard; absent shards are not an error.
    fn delete(&self, chunk: &ChunkId, index: u8) -> Result<()>;
    /// (shards, bytes) stored.
    fn usage(&self) -> (u64, u64);
    /// Up to `limit` shards of the index with `from <= (chunk, index) <
    /// to`, in order (keys are `chunk id ++ index`).
    fn list(&self, from: &[u8; 33], to: &[u8; 33], limit: usize) -> Result<Vec<ShardEntry>>;
}

fn geometry_bytes(g: &ShardGeometry) -> [u8; 11] {
    let mut b = [0u8; 11];
    b[0] = g.codec as u8;
    b[1] = g.profile.data_shards;
    b[2] = g.profile.parity_shards;
    b[3..11].copy_from_slice(&g.chunk_len.to_le_bytes());
    b
}

fn geometry_of(b: &[u8]) -> Option<ShardGeometry> {
    if b.len() < 11 || b[0] != CodecId::ReedSolomonGf8 as u8 || b[1] == 0 {
        return None;
    }
    Some(ShardGeometry::reed_solomon(
        ErasureProfile {
            data_shards: b[1],
            parity_shards: b[2],
        },
        u64::from_le_bytes(b[3..11].try_into().expect("8 bytes")),
    ))
}

/// The index key of a shard: `chunk id ++ index`.
pub fn index_key(chunk: &ChunkId, index: u8) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[..32].copy_from_slice(&chunk.0);
    k[32] = index;
    k
}

/// The smallest index key after `k`.
pub fn next_index_key(k: &[u8; 33]) -> [u8; 33] {
    let mut out = *k;
    for b in out.iter_mut().rev() {
        if *b == 0xff {
            *b = 0;
        } else {
            *b += 1;
            return out;
        }
    }
    [0xff; 33]
}

/// Shards as files under `dir/shards`, indexed in RocksDB.
pub struct FileShardStore {
    root: PathBuf,
    db: Db,
    files: Arc<dyn Files>,
    fsync: bool,
    shards: AtomicU64,
    bytes: AtomicU64,
}

impl FileShardStore {
    /// Whether the index has an entry for the shard.
    fn indexed(&self, chunk: &ChunkId, index: u8) -> Result<bool> {
        Ok(self.db.get(Cf::Shards, &index_key(chunk, index))?.is_some())
    }

    /// Open the store rooted at `dir` (creates `dir/shards`); shard files
    /// are written and synced (when `fsync`) through `files`.
    pub fn open(dir: &Path, db: Db, files: Arc<dyn Files>, fsync: bool) -> Result<Self> {
        let root = dir.join("shards");
        files.create_dir_all(&root)?;
        let (mut shards, mut bytes) = (0u64, 0u64);
        for item in db.iter(Cf::Shards, db::From::Start) {
            let (_, v) = item?;
            shards += 1;
            if v.len() >= 9 {
                bytes += u64::from_le_bytes(v[1..9].try_into().expect("8 bytes"));
            }
        }
        Ok(Self {
            root,
            db,
            files,
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

    fn header(
        chunk: &ChunkId,
        index: u8,
        geometry: &ShardGeometry,
        data: &[u8],
    ) -> [u8; SHARD_HEADER_LEN] {
        let mut h = [0u8; SHARD_HEADER_LEN];
        h[..4].copy_from_slice(SHARD_MAGIC);
        h[4] = SHARD_FORMAT_VERSION;
        h[5] = index;
        h[8..16].copy_from_slice(&(data.len() as u64).to_le_bytes());
        h[16..48].copy_from_slice(&shard_checksum(data));
        h[48..80].copy_from_slice(&chunk.0);
        h[80..91].copy_from_slice(&geometry_bytes(geometry));
        h
    }

    /// The shards the index lists whose file is missing or shorter or
    /// longer than the entry says. A shard's file is durable before its
    /// entry is written and its entry goes before its file, so there are
    /// none, whatever power losses came between: the simulation checks it
    /// at the end of every run.
    pub fn unbacked(&self) -> Result<Vec<(ChunkId, u8)>> {
        let mut out = Vec::new();
        for item in self.db.iter(Cf::Shards, db::From::Start) {
            let (k, v) = item?;
            if k.len() != 33 || v.len() < 9 {
                continue;
            }
            let chunk = ChunkId(k[..32].try_into().expect("32 bytes"));
            let len = u64::from_le_bytes(v[1..9].try_into().expect("8 bytes"));
            let header = if v[0] == 1 {
                SHARD_HEADER_LEN_V1
            } else {
                SHARD_HEADER_LEN
            };
            let file_len = match self.files.open(&self.shard_path(&chunk, k[32])) {
                Ok(f) => std::io::copy(
                    &mut f.take(MAX_SHARD_BYTES as u64 * 2),
                    &mut std::io::sink(),
                )?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => return Err(e.into()),
            };
            if file_len != header as u64 + len {
                out.push((chunk, k[32]));
            }
        }
        Ok(out)
    }

    /// Read and verify a shard with its geometry (`None` in version 1
    /// files).
    pub fn get_with_geometry(
        &self,
        chunk: &ChunkId,
        index: u8,
    ) -> Result<(Vec<u8>, Option<ShardGeometry>)> {
        let path = self.shard_path(chunk, index);
        let mut f = match self.files.open(&path) {
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
        if f.read_exact(&mut header[..SHARD_HEADER_LEN_V1]).is_err()
            || &header[..4] != SHARD_MAGIC
            || header[5] != index
            || header[48..80] != chunk.0
        {
            return Err(corrupt());
        }
        let geometry = match header[4] {
            1 => None,
            2 => {
                if f.read_exact(&mut header[SHARD_HEADER_LEN_V1..]).is_err() {
                    return Err(corrupt());
                }
                Some(geometry_of(&header[80..91]).ok_or_else(corrupt)?)
            }
            _ => return Err(corrupt()),
        };
        let len = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes")) as usize;
        if len > MAX_SHARD_BYTES || geometry.is_some_and(|g| g.shard_len() != len) {
            return Err(corrupt());
        }
        let mut data = Vec::with_capacity(len);
        f.take(len as u64 + 1).read_to_end(&mut data)?;
        if data.len() != len || shard_checksum(&data) != header[16..48] {
            return Err(corrupt());
        }
        Ok((data, geometry))
    }
}

impl ShardStore for FileShardStore {
    fn put(&self, chunk: &ChunkId, index: u8, geometry: &ShardGeometry, data: &[u8]) -> Result<()> {
        assert!(data.len() <= MAX_SHARD_BYTES, "caller checks shard size");
        let path = self.shard_path(chunk, index);
        let dir = path.parent().expect("shard paths have a parent");
        self.files.create_dir_all(dir)?;
        let existed = self.indexed(chunk, index)?;
        let tmp = dir.join(format!(
            ".tmp-{}-{index}-{}",
            &chunk.to_hex()[..16],
            crate::random::random::<u64>()
        ));
        let write = || -> std::io::Result<()> {
            let header = Self::header(chunk, index, geometry, data);
            // The simulation's broken build that skips the shard fsync
            // (the index entry below is still synced).
            let fsync = self.fsync && !crate::sabotage::on(&crate::sabotage::SKIP_SHARD_FSYNC);
            self.files.write_new(&tmp, &[&header, data], fsync)?;
            self.files.rename(&tmp, &path)?;
            if fsync {
                self.files.sync_dir(dir)?;
            }
            Ok(())
        };
        if let Err(e) = write() {
            let _ = self.files.remove(&tmp);
            return Err(e.into());
        }
        let mut value = Vec::with_capacity(60);
        value.push(SHARD_FORMAT_VERSION);
        value.extend_from_slice(&(data.len() as u64).to_le_bytes());
        value.extend_from_slice(&shard_checksum(data));
        value.extend_from_slice(&geometry_bytes(geometry));
        value.extend_from_slice(&now_ms().to_le_bytes());
        self.db
            .put(Cf::Shards, &index_key(chunk, index), &value, self.fsync)?;
        if !existed {
            self.shards.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    fn read(&self, chunk: &ChunkId, index: u8) -> Result<(Vec<u8>, Option<ShardGeometry>)> {
        self.get_with_geometry(chunk, index)
    }

    fn contains(&self, chunk: &ChunkId, index: u8) -> Result<bool> {
        // The index says what the store holds: a file without its entry
        // is what a put cut short by a power loss leaves (the file made
        // durable, the entry not yet), and the next put of the shard
        // replaces it. Answering from the file would tell repair the
        // shard is here while every listing says it is not.
        self.indexed(chunk, index)
    }

    fn delete(&self, chunk: &ChunkId, index: u8) -> Result<()> {
        let path = self.shard_path(chunk, index);
        let old = self.db.get(Cf::Shards, &index_key(chunk, index))?;
        // The entry first: cut short, this leaves a file without an entry,
        // which the store does not count as held (see `contains`), never
        // an entry whose file is gone.
        self.db
            .delete(Cf::Shards, &index_key(chunk, index), self.fsync)?;
        match self.files.remove(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
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

    fn list(&self, from: &[u8; 33], to: &[u8; 33], limit: usize) -> Result<Vec<ShardEntry>> {
        let mut out = Vec::new();
        for item in self.db.iter(Cf::Shards, db::From::Forward(from)) {
            let (k, v) = item?;
            if k.as_ref() >= to.as_slice() || out.len() >= limit.min(MAX_LIST_SHARDS) {
                break;
            }
            if k.len() != 33 || v.len() < 9 {
                continue;
            }
            out.push(ShardEntry {
                chunk: ChunkId(k[..32].try_into().expect("32 bytes")),
                index: k[32],
                len: u64::from_le_bytes(v[1..9].try_into().expect("8 bytes")),
                geometry: (v[0] >= 2).then(|| geometry_of(&v[41..])).flatten(),
                written_ms: v
                    .get(52..60)
                    .map_or(0, |t| u64::from_le_bytes(t.try_into().expect("8 bytes"))),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(len: u64) -> ShardGeometry {
        ShardGeometry::reed_solomon(
            ErasureProfile {
                data_shards: 1,
                parity_shards: 0,
            },
            len,
        )
    }

    fn store(dir: &Path) -> FileShardStore {
        FileShardStore::open(
            dir,
            db::open(&dir.join("db")).unwrap(),
            Arc::new(crate::files::OsFiles),
            true,
        )
        .unwrap()
    }

    #[test]
    fn shards_round_trip_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let id = ChunkId::of(b"chunk");
        s.put(&id, 3, &g(11), b"shard bytes").unwrap();
        s.put(&id, 3, &g(11), b"shard bytes").unwrap();
        assert_eq!(s.get(&id, 3).unwrap(), b"shard bytes");
        assert_eq!(
            s.get_with_geometry(&id, 3).unwrap().1,
            Some(g(11)),
            "the file carries its geometry"
        );
        let listed = s.list(&[0; 33], &[0xff; 33], 10).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].chunk, listed[0].index), (id, 3));
        assert_eq!(listed[0].geometry, Some(g(11)));
        assert_eq!(s.usage(), (1, 11));
        assert!(matches!(s.get(&id, 4), Err(Error::ShardNotFound { .. })));
        s.delete(&id, 3).unwrap();
        assert_eq!(s.usage(), (0, 0));
        assert!(!s.contains(&id, 3).unwrap());
    }

    #[test]
    fn a_file_whose_index_entry_was_lost_is_not_held_until_put_again() {
        // What a power loss between a put's file and its index entry
        // leaves: the store must not say it holds the shard (listings,
        // which repair compares against, do not name it), and the next put
        // makes it whole and counted once.
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let id = ChunkId::of(b"chunk");
        s.put(&id, 2, &g(5), b"bytes").unwrap();
        s.db.delete(Cf::Shards, &index_key(&id, 2), true).unwrap();
        assert!(
            s.files.exists(&s.shard_path(&id, 2)),
            "the file is still there"
        );
        assert!(!s.contains(&id, 2).unwrap());
        assert!(s.list(&[0; 33], &[0xff; 33], 10).unwrap().is_empty());
        s.put(&id, 2, &g(5), b"bytes").unwrap();
        assert!(s.contains(&id, 2).unwrap());
        assert_eq!(s.list(&[0; 33], &[0xff; 33], 10).unwrap().len(), 1);
    }

    #[test]
    fn a_flipped_bit_is_reported_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let id = ChunkId::of(b"chunk");
        s.put(&id, 0, &g(1000), &[5u8; 1000]).unwrap();
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
    fn version_1_files_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let id = ChunkId::of(b"old");
        s.put(&id, 2, &g(4), b"abcd").unwrap();
        // Rewrite the file as version 1 wrote it: an 80-byte header.
        let path = s.shard_path(&id, 2);
        let bytes = std::fs::read(&path).unwrap();
        let mut v1 = bytes[..SHARD_HEADER_LEN_V1].to_vec();
        v1[4] = 1;
        v1.extend_from_slice(&bytes[SHARD_HEADER_LEN..]);
        std::fs::write(&path, &v1).unwrap();
        assert_eq!(
            s.get_with_geometry(&id, 2).unwrap(),
            (b"abcd".to_vec(), None)
        );
    }

    #[test]
    fn usage_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = store(dir.path());
            s.put(&ChunkId::of(b"a"), 0, &g(10), &[1; 10]).unwrap();
            s.put(&ChunkId::of(b"b"), 1, &g(20), &[1; 20]).unwrap();
        }
        assert_eq!(store(dir.path()).usage(), (2, 30));
    }
}
