//! The node's key-value store, behind the [`Kv`] seam: RocksDB in
//! production ([`RocksKv`]), [`MemoryKv`] in tests and simulation. Six
//! column families:
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
//!
//! Durability is the caller's to ask for: a write with `sync` is durable
//! when it returns, and so is every write before it (one write-ahead log);
//! a write without is durable after the next synced write or [`Kv::sync`].
//! A power loss keeps a prefix of the unsynced writes, in order.

use crate::error::Result;
use rocksdb::{ColumnFamilyDescriptor, DB, Options, WriteOptions};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use memory::MemoryKv;

/// The node's store, as the rest of the node holds it.
pub type Db = Arc<dyn Kv>;

/// A column family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cf {
    /// The node's own records.
    Node,
    /// The shard index.
    Shards,
    /// Metadata records.
    Meta,
    /// The Raft logs.
    RaftLog,
    /// The groups' Raft state.
    RaftState,
    /// Repair hints.
    Repair,
}

impl Cf {
    /// Every column family.
    pub const ALL: [Cf; 6] = [
        Cf::Node,
        Cf::Shards,
        Cf::Meta,
        Cf::RaftLog,
        Cf::RaftState,
        Cf::Repair,
    ];

    /// Its name in RocksDB.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Node => "node",
            Cf::Shards => "shards",
            Cf::Meta => "meta",
            Cf::RaftLog => "raft_log",
            Cf::RaftState => "raft_state",
            Cf::Repair => "repair",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One change of a [`Batch`].
#[derive(Debug, Clone)]
enum Op {
    Put(Cf, Vec<u8>, Vec<u8>),
    Delete(Cf, Vec<u8>),
    /// Every key in `[from, to)`.
    DeleteRange(Cf, Vec<u8>, Vec<u8>),
}

/// Changes applied together, atomically.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    ops: Vec<Op>,
    bytes: usize,
}

impl Batch {
    /// Set `key` to `value` (owned bytes are kept, not copied).
    pub fn put(&mut self, cf: Cf, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let (k, v) = (key.into(), value.into());
        self.bytes += k.len() + v.len();
        self.ops.push(Op::Put(cf, k, v));
    }

    /// Remove `key`.
    pub fn delete(&mut self, cf: Cf, key: impl Into<Vec<u8>>) {
        let k = key.into();
        self.bytes += k.len();
        self.ops.push(Op::Delete(cf, k));
    }

    /// Remove every key in `[from, to)`.
    pub fn delete_range(&mut self, cf: Cf, from: impl Into<Vec<u8>>, to: impl Into<Vec<u8>>) {
        let (f, t) = (from.into(), to.into());
        self.bytes += f.len() + t.len();
        self.ops.push(Op::DeleteRange(cf, f, t));
    }

    /// Bytes of keys and values in it.
    pub fn size_in_bytes(&self) -> usize {
        self.bytes
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A key and its value.
pub type Pair = (Box<[u8]>, Box<[u8]>);
/// Records in key order.
pub type Iter<'a> = Box<dyn Iterator<Item = Result<Pair>> + 'a>;

/// Where an iteration starts and which way it goes.
#[derive(Debug, Clone, Copy)]
pub enum From<'k> {
    /// The first key.
    Start,
    /// Keys `>= k`, ascending.
    Forward(&'k [u8]),
    /// Keys `<= k`, descending.
    Reverse(&'k [u8]),
}

/// A consistent read-only view of the store at one moment.
pub trait Snapshot {
    /// The value of `key`.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Records with `from <= key < to`, ascending.
    fn range(&self, cf: Cf, from: &[u8], to: &[u8]) -> Iter<'_>;
}

/// The seam between the node and its key-value store.
pub trait Kv: Send + Sync + 'static {
    /// The value of `key`.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Apply `batch` atomically; durable on return when `sync`.
    fn write(&self, batch: Batch, sync: bool) -> Result<()>;
    /// Make every write so far durable.
    fn sync(&self) -> Result<()>;
    /// Records from `from`, in order. An iterator sees the store as it was
    /// when it started, or later (RocksDB: as it was; memory: pages).
    fn iter(&self, cf: Cf, from: From<'_>) -> Iter<'_>;
    /// A consistent view.
    fn snapshot(&self) -> Box<dyn Snapshot + '_>;
    /// An estimate of the number of keys in `cf`.
    fn estimate_keys(&self, cf: Cf) -> u64;

    /// Set one key.
    fn put(&self, cf: Cf, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        let mut b = Batch::default();
        b.put(cf, key, value);
        self.write(b, sync)
    }

    /// Remove one key.
    fn delete(&self, cf: Cf, key: &[u8], sync: bool) -> Result<()> {
        let mut b = Batch::default();
        b.delete(cf, key);
        self.write(b, sync)
    }
}

/// Open (or create) the node's RocksDB under `dir`.
pub fn open(dir: &Path) -> Result<Db> {
    Ok(Arc::new(RocksKv::open(dir)?))
}

/// The node's RocksDB.
pub struct RocksKv {
    db: DB,
}

fn write_options(sync: bool) -> WriteOptions {
    let mut wo = WriteOptions::default();
    wo.set_sync(sync);
    wo
}

impl RocksKv {
    /// Open (or create) the database under `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // Bounded background threads and open files: a node shares two
        // cores with its neighbours in development clusters.
        opts.increase_parallelism(2);
        opts.set_max_open_files(512);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let cfs = Cf::ALL
            .into_iter()
            .map(|cf| ColumnFamilyDescriptor::new(cf.name(), Options::default()));
        Ok(Self {
            db: DB::open_cf_descriptors(&opts, dir, cfs)?,
        })
    }

    fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        // Every family is created at open.
        self.db.cf_handle(cf.name()).expect("column family")
    }
}

fn mode(from: From<'_>) -> rocksdb::IteratorMode<'_> {
    match from {
        From::Start => rocksdb::IteratorMode::Start,
        From::Forward(k) => rocksdb::IteratorMode::From(k, rocksdb::Direction::Forward),
        From::Reverse(k) => rocksdb::IteratorMode::From(k, rocksdb::Direction::Reverse),
    }
}

impl Kv for RocksKv {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    fn write(&self, batch: Batch, sync: bool) -> Result<()> {
        let mut wb = rocksdb::WriteBatch::default();
        for op in batch.ops {
            match op {
                Op::Put(cf, k, v) => wb.put_cf(self.cf(cf), k, v),
                Op::Delete(cf, k) => wb.delete_cf(self.cf(cf), k),
                Op::DeleteRange(cf, f, t) => wb.delete_range_cf(self.cf(cf), f, t),
            }
        }
        Ok(self.db.write_opt(wb, &write_options(sync))?)
    }

    fn sync(&self) -> Result<()> {
        Ok(self.db.flush_wal(true)?)
    }

    fn iter(&self, cf: Cf, from: From<'_>) -> Iter<'_> {
        Box::new(
            self.db
                .iterator_cf(self.cf(cf), mode(from))
                .map(|r| r.map_err(Into::into)),
        )
    }

    fn snapshot(&self) -> Box<dyn Snapshot + '_> {
        Box::new(RocksSnapshot {
            kv: self,
            snap: self.db.snapshot(),
        })
    }

    fn estimate_keys(&self, cf: Cf) -> u64 {
        self.db
            .property_int_value_cf(self.cf(cf), "rocksdb.estimate-num-keys")
            .ok()
            .flatten()
            .unwrap_or(0)
    }
}

struct RocksSnapshot<'a> {
    kv: &'a RocksKv,
    snap: rocksdb::SnapshotWithThreadMode<'a, DB>,
}

impl Snapshot for RocksSnapshot<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.snap.get_cf(self.kv.cf(cf), key)?)
    }

    fn range(&self, cf: Cf, from: &[u8], to: &[u8]) -> Iter<'_> {
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_snapshot(&self.snap);
        opts.set_iterate_upper_bound(to.to_vec());
        Box::new(
            self.kv
                .db
                .iterator_cf_opt(
                    self.kv.cf(cf),
                    opts,
                    rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward),
                )
                .map(|r| r.map_err(Into::into)),
        )
    }
}

mod memory {
    //! The store in memory, with the durability of a disk: what was not
    //! synced can be lost by [`MemoryKv::power_loss`].

    use super::*;

    type Maps = [BTreeMap<Vec<u8>, Vec<u8>>; 6];

    /// Entries an iterator copies out of the store at a time.
    const PAGE: usize = 256;

    #[derive(Default)]
    struct State {
        /// Incremented by each power loss: handles of an earlier one fail.
        epoch: u64,
        /// What reads see.
        current: Arc<Maps>,
        /// What survives a power loss.
        durable: Maps,
        /// Writes since the last sync, oldest first.
        unsynced: Vec<Batch>,
    }

    fn apply(maps: &mut Maps, batch: &Batch) {
        for op in &batch.ops {
            match op {
                Op::Put(cf, k, v) => {
                    maps[cf.index()].insert(k.clone(), v.clone());
                }
                Op::Delete(cf, k) => {
                    maps[cf.index()].remove(k);
                }
                Op::DeleteRange(cf, f, t) => {
                    if f < t {
                        let map = &mut maps[cf.index()];
                        let doomed: Vec<_> = map
                            .range(f.clone()..t.clone())
                            .map(|(k, _)| k.clone())
                            .collect();
                        for k in doomed {
                            map.remove(&k);
                        }
                    }
                }
            }
        }
    }

    /// A [`Kv`] in memory. Clones share the store. After a power loss the
    /// handles from before it fail every call (the node that held them is
    /// gone); [`MemoryKv::reopen`] gives a working one, which finds what
    /// survived.
    #[derive(Clone, Default)]
    pub struct MemoryKv {
        state: Arc<Mutex<State>>,
        epoch: u64,
    }

    fn powered_off() -> crate::Error {
        crate::Error::Io(std::io::Error::other("the disk lost power"))
    }

    impl MemoryKv {
        /// An empty store.
        pub fn new() -> Self {
            Self::default()
        }

        /// A handle on the store as it is now.
        pub fn reopen(&self) -> Self {
            Self {
                state: self.state.clone(),
                epoch: self.state.lock().expect("kv lock").epoch,
            }
        }

        fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
            let s = self.state.lock().expect("kv lock");
            if s.epoch != self.epoch {
                return Err(powered_off());
            }
            Ok(s)
        }

        /// Writes not yet durable.
        pub fn unsynced(&self) -> usize {
            self.state.lock().expect("kv lock").unsynced.len()
        }

        /// Lose power: of the writes not yet durable, the first
        /// `keep(unsynced)` (at most all) survive, the rest are gone; reads
        /// then see what survived.
        pub fn power_loss(&self, keep: impl FnOnce(usize) -> usize) {
            let mut s = self.state.lock().expect("kv lock");
            s.epoch += 1;
            let unsynced = std::mem::take(&mut s.unsynced);
            let kept = keep(unsynced.len()).min(unsynced.len());
            for b in &unsynced[..kept] {
                apply(&mut s.durable, b);
            }
            s.current = Arc::new(s.durable.clone());
        }

        fn page(&self, cf: Cf, from: &[u8], inclusive: bool, forward: bool) -> Result<Vec<Pair>> {
            use std::ops::Bound::{Excluded, Included, Unbounded};
            let s = self.lock()?;
            let map = &s.current[cf.index()];
            let bound = if inclusive {
                Included(from.to_vec())
            } else {
                Excluded(from.to_vec())
            };
            let pair = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone().into(), v.clone().into());
            Ok(if forward {
                map.range((bound, Unbounded)).take(PAGE).map(pair).collect()
            } else {
                map.range((Unbounded, bound))
                    .rev()
                    .take(PAGE)
                    .map(pair)
                    .collect()
            })
        }
    }

    impl Kv for MemoryKv {
        fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
            let s = self.lock()?;
            Ok(s.current[cf.index()].get(key).cloned())
        }

        fn write(&self, batch: Batch, sync: bool) -> Result<()> {
            let mut s = self.lock()?;
            apply(Arc::make_mut(&mut s.current), &batch);
            if sync {
                let unsynced = std::mem::take(&mut s.unsynced);
                for b in unsynced.iter().chain(std::iter::once(&batch)) {
                    apply(&mut s.durable, b);
                }
            } else {
                s.unsynced.push(batch);
            }
            Ok(())
        }

        fn sync(&self) -> Result<()> {
            let mut s = self.lock()?;
            let unsynced = std::mem::take(&mut s.unsynced);
            for b in &unsynced {
                apply(&mut s.durable, b);
            }
            Ok(())
        }

        fn iter(&self, cf: Cf, from: From<'_>) -> Iter<'_> {
            let (start, forward) = match from {
                From::Start => (Vec::new(), true),
                From::Forward(k) => (k.to_vec(), true),
                From::Reverse(k) => (k.to_vec(), false),
            };
            let mut cursor: Option<Vec<u8>> = None;
            let mut buf = std::collections::VecDeque::new();
            let mut done = false;
            Box::new(std::iter::from_fn(move || {
                if buf.is_empty() && !done {
                    let page = match &cursor {
                        None => self.page(cf, &start, true, forward),
                        Some(last) => self.page(cf, last, false, forward),
                    };
                    let page = match page {
                        Ok(p) => p,
                        Err(e) => {
                            done = true;
                            return Some(Err(e));
                        }
                    };
                    done = page.len() < PAGE;
                    buf.extend(page);
                }
                let next: Pair = buf.pop_front()?;
                cursor = Some(next.0.to_vec());
                Some(Ok(next))
            }))
        }

        fn snapshot(&self) -> Box<dyn Snapshot + '_> {
            // A powered-off handle reads an empty store.
            Box::new(MemorySnapshot(
                self.lock().map(|s| s.current.clone()).unwrap_or_default(),
            ))
        }

        fn estimate_keys(&self, cf: Cf) -> u64 {
            self.lock()
                .map_or(0, |s| s.current[cf.index()].len() as u64)
        }
    }

    struct MemorySnapshot(Arc<Maps>);

    impl Snapshot for MemorySnapshot {
        fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(self.0[cf.index()].get(key).cloned())
        }

        fn range(&self, cf: Cf, from: &[u8], to: &[u8]) -> Iter<'_> {
            if from >= to {
                return Box::new(std::iter::empty());
            }
            Box::new(
                self.0[cf.index()]
                    .range(from.to_vec()..to.to_vec())
                    .map(|(k, v)| Ok((k.clone().into(), v.clone().into()))),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(kv: &dyn Kv, cf: Cf) -> Vec<(Vec<u8>, Vec<u8>)> {
        kv.iter(cf, From::Start)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
            .collect()
    }

    #[test]
    fn unsynced_writes_are_lost_as_a_suffix() {
        let kv = MemoryKv::new();
        kv.put(Cf::Meta, b"a", b"1", true).unwrap();
        kv.put(Cf::Meta, b"b", b"2", false).unwrap();
        kv.put(Cf::Meta, b"c", b"3", false).unwrap();
        kv.delete(Cf::Meta, b"a", false).unwrap();
        assert_eq!(kv.unsynced(), 3);
        // The first unsynced write survives, the two after it do not.
        kv.power_loss(|n| {
            assert_eq!(n, 3);
            1
        });
        assert!(
            kv.get(Cf::Meta, b"a").is_err(),
            "a handle from before fails"
        );
        let kv = kv.reopen();
        assert_eq!(
            all(&kv, Cf::Meta),
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"2".to_vec())
            ]
        );
        // A synced write makes the writes before it durable too.
        kv.put(Cf::Meta, b"d", b"4", false).unwrap();
        kv.put(Cf::Node, b"e", b"5", true).unwrap();
        kv.power_loss(|_| 0);
        let kv = kv.reopen();
        assert_eq!(kv.get(Cf::Meta, b"d").unwrap(), Some(b"4".to_vec()));
        kv.put(Cf::Meta, b"f", b"6", false).unwrap();
        kv.sync().unwrap();
        kv.power_loss(|_| 0);
        let kv = kv.reopen();
        assert_eq!(kv.get(Cf::Meta, b"f").unwrap(), Some(b"6".to_vec()));
    }

    /// The same writes give the same reads in RocksDB and in memory,
    /// across iterator pages and in both directions.
    #[test]
    fn memory_reads_like_rocksdb() {
        let dir = tempfile::tempdir().unwrap();
        let rocks = RocksKv::open(dir.path()).unwrap();
        let mem = MemoryKv::new();
        let stores: [&dyn Kv; 2] = [&rocks, &mem];
        for kv in stores {
            let mut b = Batch::default();
            for i in 0u32..1000 {
                b.put(Cf::RaftLog, i.to_be_bytes(), i.to_le_bytes());
            }
            kv.write(b, false).unwrap();
            let mut b = Batch::default();
            b.delete_range(Cf::RaftLog, 100u32.to_be_bytes(), 200u32.to_be_bytes());
            b.delete(Cf::RaftLog, 500u32.to_be_bytes());
            b.put(Cf::Shards, b"x", b"y");
            kv.write(b, true).unwrap();
        }
        let read = |kv: &dyn Kv| {
            let forward: Vec<_> = kv
                .iter(Cf::RaftLog, From::Forward(&150u32.to_be_bytes()))
                .map(|r| r.unwrap().0.to_vec())
                .collect();
            let reverse: Vec<_> = kv
                .iter(Cf::RaftLog, From::Reverse(&600u32.to_be_bytes()))
                .map(|r| r.unwrap().0.to_vec())
                .collect();
            let snap = kv.snapshot();
            let ranged: Vec<_> = snap
                .range(Cf::RaftLog, &90u32.to_be_bytes(), &210u32.to_be_bytes())
                .map(|r| r.unwrap().0.to_vec())
                .collect();
            (
                forward,
                reverse,
                ranged,
                all(kv, Cf::Shards),
                snap.get(Cf::RaftLog, &7u32.to_be_bytes()).unwrap(),
            )
        };
        let (r, m) = (read(&rocks), read(&mem));
        assert_eq!(r, m);
        assert_eq!(r.0.len(), 799);
        assert_eq!(r.1.len(), 500);
        assert_eq!(r.2.len(), 20);
    }
}
