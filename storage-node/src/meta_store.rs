//! The metadata replica: records of the partitions this node holds, in
//! RocksDB, each kept only if newer (by hybrid-logical-clock timestamp) than
//! the one it replaces. Replication, quorums and read repair are the
//! caller's (see `client::MetaClient` in the gateway); this is one replica.

use crate::db::{self, CF_META};
use crate::error::Result;
use cairn::hlc::Timestamp;
use cairn::record::{self, MetaKey, Versioned};
use cairn::rpc::{MAX_SCAN_LIMIT, MetaScanRequest, MetaScanResponse};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};
use std::sync::{Arc, Mutex};

/// One node's metadata replica.
pub struct MetaStore {
    db: Arc<DB>,
    fsync: bool,
    // Serialises read-compare-write so two concurrent writes of one key
    // cannot both win. RocksDB's own group commit batches the syncs.
    write_lock: Mutex<()>,
}

impl MetaStore {
    /// The replica in `db`.
    pub fn new(db: Arc<DB>, fsync: bool) -> Self {
        Self {
            db,
            fsync,
            write_lock: Mutex::new(()),
        }
    }

    /// Apply writes, keeping each only if newer than the stored value.
    /// Returns, per write, `None` when applied or the stored timestamp that
    /// won over it.
    pub fn write(&self, writes: &[(MetaKey, Versioned)]) -> Result<Vec<Option<Timestamp>>> {
        let cf = self.db.cf_handle(CF_META).expect("meta column family");
        let _guard = self.write_lock.lock().expect("meta write lock poisoned");
        let mut batch = WriteBatch::default();
        let mut outcome = Vec::with_capacity(writes.len());
        for (key, value) in writes {
            let storage_key = key.storage_key();
            let kept = match self.db.get_pinned_cf(&cf, &storage_key)? {
                Some(old) => {
                    let old = record::decode::<Versioned>("versioned record", &old)?.ts;
                    (old >= value.ts).then_some(old)
                }
                None => None,
            };
            if kept.is_none() {
                batch.put_cf(&cf, storage_key, record::encode(value));
            }
            outcome.push(kept);
        }
        if !batch.is_empty() {
            self.db.write_opt(batch, &db::write_options(self.fsync))?;
        }
        Ok(outcome)
    }

    /// Read records; `None` for keys never seen.
    pub fn read(&self, keys: &[MetaKey]) -> Result<Vec<Option<Versioned>>> {
        let cf = self.db.cf_handle(CF_META).expect("meta column family");
        keys.iter()
            .map(|k| {
                self.db
                    .get_pinned_cf(&cf, k.storage_key())?
                    .map(|v| record::decode("versioned record", &v).map_err(Into::into))
                    .transpose()
            })
            .collect()
    }

    /// An ordered range scan of one partition key, tombstones included.
    pub fn scan(&self, req: &MetaScanRequest) -> Result<MetaScanResponse> {
        assert!((1..=MAX_SCAN_LIMIT).contains(&req.limit));
        let cf = self.db.cf_handle(CF_META).expect("meta column family");
        let base = MetaKey::storage_prefix(req.table, &req.partition_key);
        let mut full_prefix = base.clone();
        full_prefix.extend_from_slice(req.prefix.as_bytes());
        let mut start = full_prefix.clone();
        if let Some(after) = &req.start_after {
            let mut a = base.clone();
            a.extend_from_slice(after.as_bytes());
            if a > start {
                start = a;
            }
        }
        let mut entries = Vec::new();
        let mut truncated = false;
        let iter = self
            .db
            .iterator_cf(&cf, IteratorMode::From(&start, Direction::Forward));
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(&full_prefix) {
                break;
            }
            let sort_key = &k[base.len()..];
            if req
                .start_after
                .as_ref()
                .is_some_and(|a| sort_key <= a.as_bytes())
            {
                continue;
            }
            if entries.len() == req.limit as usize {
                truncated = true;
                break;
            }
            let sort_key = String::from_utf8_lossy(sort_key).into_owned();
            entries.push((sort_key, record::decode("versioned record", &v)?));
        }
        Ok(MetaScanResponse { entries, truncated })
    }

    /// Approximate number of records stored.
    pub fn approximate_count(&self) -> u64 {
        let cf = self.db.cf_handle(CF_META).expect("meta column family");
        self.db
            .property_int_value_cf(&cf, "rocksdb.estimate-num-keys")
            .ok()
            .flatten()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn::record::Table;

    fn ts(ms: u64) -> Timestamp {
        Timestamp {
            wall_ms: ms,
            logical: 0,
            writer: 1,
        }
    }

    fn v(ms: u64, value: &str) -> Versioned {
        Versioned {
            ts: ts(ms),
            value: Some(value.as_bytes().to_vec()),
        }
    }

    #[test]
    fn older_writes_lose() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetaStore::new(db::open(dir.path()).unwrap(), true);
        let k = MetaKey::new(Table::Objects, "b", "k");
        assert_eq!(store.write(&[(k.clone(), v(10, "new"))]).unwrap(), [None]);
        assert_eq!(
            store.write(&[(k.clone(), v(5, "old"))]).unwrap(),
            [Some(ts(10))]
        );
        assert_eq!(store.read(&[k]).unwrap()[0], Some(v(10, "new")));
    }

    #[test]
    fn concurrent_writers_of_one_key_keep_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MetaStore::new(db::open(dir.path()).unwrap(), false));
        let k = MetaKey::new(Table::Objects, "b", "contended");
        let threads: Vec<_> = (1..=8u64)
            .map(|t| {
                let (store, k) = (store.clone(), k.clone());
                std::thread::spawn(move || {
                    for i in 0..200u64 {
                        store.write(&[(k.clone(), v(i * 8 + t, "x"))]).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            store.read(&[k]).unwrap()[0].as_ref().unwrap().ts,
            ts(199 * 8 + 8)
        );
    }

    #[test]
    fn scans_are_ordered_prefixed_and_paged() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetaStore::new(db::open(dir.path()).unwrap(), false);
        let writes: Vec<_> = ["a/1", "a/2", "a/3", "b", "a0"]
            .iter()
            .map(|k| (MetaKey::new(Table::Objects, "bkt", *k), v(1, k)))
            .chain([(MetaKey::new(Table::Objects, "bkt2", "a/9"), v(1, "x"))])
            .collect();
        store.write(&writes).unwrap();
        let scan = |prefix: &str, after: Option<&str>, limit| {
            store
                .scan(&MetaScanRequest {
                    table: Table::Objects,
                    partition_key: "bkt".into(),
                    prefix: prefix.into(),
                    start_after: after.map(Into::into),
                    limit,
                })
                .unwrap()
        };
        let r = scan("a/", None, 2);
        assert_eq!(
            r.entries.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
            ["a/1", "a/2"]
        );
        assert!(r.truncated);
        let r = scan("a/", Some("a/2"), 10);
        assert_eq!(
            r.entries.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
            ["a/3"]
        );
        assert!(!r.truncated);
        let r = scan("", Some("a/3"), 10);
        assert_eq!(
            r.entries.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
            ["a0", "b"]
        );
    }
}
