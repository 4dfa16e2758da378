//! What a node stores on: its key-value store and its files, together, so
//! a node can be opened on real disks or on simulated ones.

use crate::db::{self, Db, MemoryKv};
use crate::files::{Files, MemoryFiles, OsFiles};
use std::path::Path;
use std::sync::Arc;

/// A node's storage.
#[derive(Clone)]
pub struct Disk {
    /// The key-value store (shard index, metadata, Raft logs).
    pub kv: Db,
    /// The shard files.
    pub files: Arc<dyn Files>,
}

impl Disk {
    /// RocksDB under `dir/db` and the operating system's files.
    pub fn open(dir: &Path) -> crate::Result<Self> {
        Ok(Self {
            kv: db::open(&dir.join("db"))?,
            files: Arc::new(OsFiles),
        })
    }
}

/// A disk in memory that can lose power: what the node did not make
/// durable is lost by [`MemoryDisk::power_loss`], and the node that was
/// running on it can no longer touch it. [`MemoryDisk::disk`] after that
/// gives a restarted node what survived.
#[derive(Clone, Default)]
pub struct MemoryDisk {
    /// Its key-value store.
    pub kv: MemoryKv,
    /// Its files.
    pub files: MemoryFiles,
}

impl MemoryDisk {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// The disk as a node opens it.
    pub fn disk(&self) -> Disk {
        Disk {
            kv: Arc::new(self.kv.reopen()),
            files: Arc::new(self.files.reopen()),
        }
    }

    /// Lose power. `pick(n)` chooses a number in `0..=n`: how many of the
    /// `n` unsynced key-value writes survive (a prefix), and at what
    /// length a file whose `n` written bytes were not all synced is torn.
    pub fn power_loss(&self, mut pick: impl FnMut(usize) -> usize) {
        self.kv.power_loss(&mut pick);
        self.files.power_loss(|len| Some(pick(len)));
    }
}
